"""The rules the desktop bundle is built and checked by (packaging/check_bundle.py, pyproject's
desktop extras); the bundle itself is built and smoke-tested by packaging/smoke-test.sh."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def check_bundle():
    spec = importlib.util.spec_from_file_location("check_bundle", REPO / "packaging" / "check_bundle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _touch(root: Path, *paths: str) -> None:
    for p in paths:
        f = root / p
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x")


def test_forbidden_packages_are_found_wherever_they_hide(check_bundle, tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "_internal/torch/lib/libtorch_cpu.so",
        "_internal/fastapi-0.165.0.dist-info/METADATA",
        "_internal/waferdesk/ml/train.py",
        "_internal/python3.11/lib-dynload/_tkinter.cpython-311-x86_64-linux-gnu.so",
        "_internal/numpy/core.so",
        "_internal/libscipy_openblas64_-32a4b2a6.so",  # numpy's OpenBLAS, not scipy
    )
    modules = ["numpy", "waferdesk.core", "sqlalchemy.orm", "server.api", "serverless", "waferdesk.mlx"]
    hits = check_bundle.find_forbidden(tmp_path, modules)
    text = "\n".join(hits)
    for expected in ("torch", "fastapi", "waferdesk.ml)", "_tkinter", "module sqlalchemy.orm", "module server.api"):
        assert expected in text, text
    for clean in ("numpy", "serverless", "waferdesk.mlx", "openblas"):
        assert clean not in text, text


def test_a_clean_tree_has_no_forbidden_packages(check_bundle, tmp_path: Path) -> None:
    _touch(tmp_path, "_internal/numpy/core.so", "_internal/PySide6/Qt/lib/libQt6Core.so.6", "_internal/waferdesk/x")
    assert check_bundle.find_forbidden(tmp_path, ["numpy", "PySide6.QtCore", "onnxruntime", "waferdesk.app"]) == []


def test_required_files_are_named_for_each_platform(check_bundle) -> None:
    linux = check_bundle.required_files(Path("."), "cpu", windows=False)
    windows = check_bundle.required_files(Path("."), "gpu", windows=True)
    assert linux["Qt platform plugin xcb"] == ["_internal/PySide6/Qt/plugins/platforms/libqxcb.so"]
    assert linux["Qt platform plugin offscreen"] == ["_internal/PySide6/Qt/plugins/platforms/libqoffscreen.so"]
    assert "ONNX Runtime CUDA provider" in windows and "Qt platform plugin windows" in windows
    assert windows["command-line executable"] == ["WaferDesk-cli.exe"]


def _extra(pyproject: dict, name: str) -> set[str]:
    """The requirement names of an extra, following self-references like waferdesk[app,cpu]."""
    out: set[str] = set()
    for req in pyproject["project"]["optional-dependencies"][name]:
        m = re.match(r"waferdesk\[(.*)\]", req)
        if m:
            for sub in m.group(1).split(","):
                out |= _extra(pyproject, sub.strip())
        else:
            out.add(re.split(r"[\[=<>~!; ]", req, maxsplit=1)[0].lower())
    return out


def test_desktop_extras_hold_no_forbidden_package_and_one_onnxruntime(check_bundle) -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    base = {re.split(r"[\[=<>~!; ]", r, maxsplit=1)[0].lower() for r in pyproject["project"]["dependencies"]}
    forbidden = {f.replace("_", "-") for f in check_bundle.FORBIDDEN} | set(check_bundle.FORBIDDEN)
    for extra, runtime in (("desktop", "onnxruntime"), ("desktop-gpu", "onnxruntime-gpu")):
        names = _extra(pyproject, extra) | base
        assert not names & forbidden, (extra, names & forbidden)
        assert {n for n in names if n.startswith("onnxruntime")} == {runtime}
