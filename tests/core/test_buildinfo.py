"""What this installation is (variant, bundle or not) and the provider probe behind --version."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from waferdesk.core import buildinfo
from waferdesk.core.resources import resources_dir


@pytest.fixture
def fresh_caches():
    buildinfo.build_info.cache_clear()
    resources_dir.cache_clear()
    yield
    buildinfo.build_info.cache_clear()
    resources_dir.cache_clear()


def test_probe_model_is_valid_onnx_and_runs() -> None:
    onnx = pytest.importorskip("onnx")
    import onnxruntime as ort

    model = onnx.load_from_string(buildinfo.probe_model_bytes())
    onnx.checker.check_model(model, full_check=True)
    sess = ort.InferenceSession(buildinfo.probe_model_bytes(), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"x": np.array([2.5], np.float32)})
    assert y.tolist() == [2.5]


def test_probe_names_the_provider_that_runs() -> None:
    provider, note = buildinfo.probe_provider()
    assert provider == "CPUExecutionProvider"
    assert note.startswith("running on CPU")


def test_variant_of_a_python_install_comes_from_the_onnxruntime_distribution(fresh_caches) -> None:
    info = buildinfo.build_info()
    assert info.variant == "cpu" and info.frozen is False
    assert info.onnxruntime.startswith("onnxruntime 1.") and info.source == "installed packages"


def test_a_bundle_says_its_variant_in_build_info(fresh_caches, repo_root: Path, tmp_path: Path, monkeypatch) -> None:
    res = tmp_path / "res"
    shutil.copytree(repo_root / "resources", res, ignore=shutil.ignore_patterns("models", "samples"))
    (res / buildinfo.BUILD_INFO_NAME).write_text(
        json.dumps({"variant": "gpu", "onnxruntime": "onnxruntime-gpu 1.31.1", "built_at": "2026-01-02T03:04:05Z"})
    )
    monkeypatch.setenv("WAFERDESK_RESOURCES", str(res))
    info = buildinfo.build_info()
    assert (info.variant, info.onnxruntime, info.built_at) == ("gpu", "onnxruntime-gpu 1.31.1", "2026-01-02T03:04:05Z")
    assert info.source == "bundle build-info.json"
