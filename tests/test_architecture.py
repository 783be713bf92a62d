"""The design's dependency rules and code style, checked on every test run."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _tool(name: str) -> str:
    exe = Path(sys.executable).parent / name
    found = str(exe) if exe.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed; install the 'test' extra")
    return found


def test_import_contracts_hold() -> None:
    res = subprocess.run([_tool("lint-imports")], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "broken" not in res.stdout.lower().replace("0 broken", "")


def test_ruff_passes() -> None:
    res = subprocess.run([_tool("ruff"), "check", "."], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_core_runs_with_qt_torch_and_web_stack_unimportable() -> None:
    """Like napari's Qt-free model layer: the core works where none of the extras exist."""
    code = textwrap.dedent(
        """
        import sys, importlib.abc, pkgutil, importlib
        BLOCKED = ("PySide6", "pyqtgraph", "torch", "fastapi", "sqlalchemy", "httpx", "keyring",
                   "segmentation_models_pytorch", "starlette")
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"blocked in this test: {name}")
        sys.meta_path.insert(0, Block())
        import waferdesk.core as core
        for m in pkgutil.walk_packages(core.__path__, "waferdesk.core."):
            importlib.import_module(m.name)
        from waferdesk.core.synth import generate_record
        from waferdesk.core.encoding import encode
        rec = generate_record(0, 0)
        x, place = encode(rec.wafer.dies)
        assert x.shape[0] == 6
        print("ok")
        """
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stdout + res.stderr
