"""Provider choice: what runs is read back from the session, and a GPU that cannot start
falls back to the CPU with one clear sentence (this machine has no GPU)."""

from __future__ import annotations

import pytest

from waferdesk.core.errors import ModelError
from waferdesk.core.inference import Segmenter, choose_providers, make_session, physical_cores
from waferdesk.core.inference.providers import CPU, CUDA, DIRECTML, TENSORRT

ort = pytest.importorskip("onnxruntime")


def test_choice_order_and_aliases() -> None:
    gpu_build = [TENSORRT, CUDA, CPU]
    assert choose_providers("auto", [CPU, "AzureExecutionProvider"]) == [CPU]
    assert choose_providers("cpu", gpu_build) == [CPU]
    assert choose_providers("cuda", [CPU]) == [CUDA, CPU]  # kept, so we can say why it is not running
    assert choose_providers("directml", [DIRECTML, CPU]) == [DIRECTML, CPU]
    assert choose_providers([CUDA], gpu_build) == [CUDA, CPU]
    auto = choose_providers("auto", [TENSORRT, CUDA, DIRECTML, CPU])
    assert auto[-1] == CPU and auto.index(CUDA) < auto.index(DIRECTML)
    with pytest.raises(ModelError, match="unknown"):
        choose_providers("quantum", gpu_build)


def test_cuda_that_cannot_load_falls_back_to_cpu_with_a_clear_message(tiny_model) -> None:
    """Like onnxruntime-gpu on a machine without CUDA libraries: listed, yet it cannot run."""
    seg = Segmenter(tiny_model, providers="cuda", available_providers=[CUDA, CPU], cache=False)
    assert seg.provider == CPU
    assert seg.session.get_providers() == [CPU]
    assert seg.provider_note.startswith("CUDA requested but ")
    assert seg.provider_note.endswith("; running on CPU")
    assert "not found" in seg.provider_note or "did not start" in seg.provider_note


def test_cuda_on_a_cpu_only_build_names_the_missing_extra(tiny_model) -> None:
    if CUDA in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    _, info = make_session(tiny_model, "cuda")
    assert info.provider == CPU
    assert info.note == (
        "CUDA requested but this onnxruntime build has no GPU support "
        "(install the 'gpu' extra: onnxruntime-gpu); running on CPU"
    )


def test_a_provider_that_fails_to_start_is_dropped_and_reported(tiny_model) -> None:
    calls = []

    def factory(model, sess_options=None, providers=(), **kw):
        names = [p[0] if isinstance(p, tuple) else p for p in providers]
        calls.append(names)
        if CUDA in names:
            raise RuntimeError("CUDA failure 100: no CUDA-capable device is detected")
        return ort.InferenceSession(model, sess_options=sess_options, providers=providers)

    seg = Segmenter(tiny_model, providers="auto", available_providers=[CUDA, CPU], session_factory=factory)
    assert calls == [[CUDA, CPU], [CPU]]
    assert seg.provider == CPU
    assert seg.provider_note == (
        "CUDA available but it failed to start (CUDA failure 100: no CUDA-capable device is detected); running on CPU"
    )


def test_cpu_only_auto_says_so(tiny_model) -> None:
    seg = Segmenter(tiny_model, providers="auto", available_providers=[CPU], cache=False)
    assert seg.provider == CPU and seg.provider_note == "running on CPU (no GPU provider in this build)"
    seg = Segmenter(tiny_model, providers="cpu", cache=False)
    assert seg.provider_note == "running on CPU (CPU requested)"


def test_threads_default_to_physical_cores_and_can_be_set(tiny_model, monkeypatch) -> None:
    assert Segmenter(tiny_model, providers="cpu", cache=False).threads == physical_cores() >= 1
    assert Segmenter(tiny_model, providers="cpu", threads=1, cache=False).threads == 1
    monkeypatch.setenv("WAFERDESK_THREADS", "3")
    assert physical_cores() == 3


def test_unloadable_model_file_is_a_model_error(tmp_path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf")
    with pytest.raises(ModelError, match=r"bad\.onnx: cannot be loaded"):
        make_session(bad, "cpu")


def test_cuda_library_names_follow_the_onnxruntime_build(monkeypatch) -> None:
    """onnxruntime-gpu 1.31 is built for CUDA 13: the diagnosis must look for CUDA 13 libraries."""
    import types

    from waferdesk.core.inference import providers

    fake = types.ModuleType("onnxruntime.capi.build_and_package_info")
    fake.cuda_version = "13.0"
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime.capi.build_and_package_info", fake)
    import onnxruntime.capi

    monkeypatch.setattr(onnxruntime.capi, "build_and_package_info", fake, raising=False)
    assert providers.cuda_major() == 13
    assert any(name.endswith(".so.13") or "64_13" in name for name in providers._cuda_libraries())
    note = providers.diagnose("CUDAExecutionProvider", ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert "CUDA 13" in note or "loaded" in note
