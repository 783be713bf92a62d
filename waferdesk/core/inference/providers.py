"""Which ONNX Runtime execution provider runs, and why: choose, create, verify, explain.

``onnxruntime.get_available_providers()`` lists what the installed *build* contains, not
what can run: onnxruntime-gpu lists ``CUDAExecutionProvider`` on a machine without CUDA
libraries and then silently runs on the CPU. So a session is created with an explicit
preference list, :meth:`InferenceSession.get_providers` is read back afterwards, and a
one-sentence ``note`` says which provider actually runs and why a requested GPU one does
not (build without it, CUDA/cuDNN/TensorRT libraries missing, creation error). Everything
that depends on the machine (the available list, the session factory) can be injected so
that the fallback is tested on a machine without a GPU.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelError

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
DIRECTML = "DmlExecutionProvider"
CPU = "CPUExecutionProvider"
PREFERENCE = (TENSORRT, CUDA, DIRECTML, CPU)
"""Order tried by ``"auto"``: fastest first, the CPU always last."""

SHORT = {TENSORRT: "TensorRT", CUDA: "CUDA", DIRECTML: "DirectML", CPU: "CPU"}
ALIASES = {
    "auto": PREFERENCE,
    "cpu": (CPU,),
    "cuda": (CUDA, CPU),
    "gpu": (TENSORRT, CUDA, DIRECTML, CPU),
    "tensorrt": (TENSORRT, CUDA, CPU),
    "trt": (TENSORRT, CUDA, CPU),
    "directml": (DIRECTML, CPU),
    "dml": (DIRECTML, CPU),
}
PROVIDER_CHOICES = ("auto", "cpu", "cuda", "tensorrt", "directml")


def short_name(provider: str) -> str:
    return SHORT.get(provider, provider.removesuffix("ExecutionProvider"))


# ---------------------------------------------------------------------------------------
# machine facts


def physical_cores() -> int:
    """Physical cores this process may use (hyper-threads share one core's ALUs).

    ONNX Runtime's convolutions saturate a core's vector units, so one intra-op thread per
    physical core is fastest; a second thread on a sibling hyper-thread only adds contention.
    ``WAFERDESK_THREADS`` overrides the detection.
    """
    env = os.environ.get("WAFERDESK_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = list(range(os.cpu_count() or 1))
    siblings: set[str] = set()
    for cpu in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        for name in ("core_cpus_list", "thread_siblings_list"):
            try:
                siblings.add((topo / name).read_text().strip())
                break
            except OSError:
                continue
        else:
            siblings.add(str(cpu))  # no topology (not Linux): count logical CPUs
    return max(1, len(siblings))


def cuda_major() -> int:
    """CUDA major version this onnxruntime build was compiled for (onnxruntime-gpu 1.31: 13).

    onnxruntime-gpu records it in ``onnxruntime.capi.build_and_package_info.cuda_version``;
    the CPU package has none, and 12 is then only used to word a message.
    """
    try:
        from onnxruntime.capi import build_and_package_info as info

        return int(str(getattr(info, "cuda_version", "12")).split(".")[0])
    except (ImportError, ValueError):
        return 12


def _cuda_libraries() -> tuple[str, ...]:
    major = cuda_major()
    if sys.platform == "win32":
        return (f"cudart64_{major}.dll", f"cublas64_{major}.dll", "cudnn64_9.dll")
    return (f"libcudart.so.{major}", f"libcublas.so.{major}", "libcudnn.so.9")


def _loadable(names: Sequence[str]) -> str | None:
    """The first library of ``names`` that cannot be loaded, or None when all load."""
    for name in names:
        try:
            ctypes.CDLL(name)
        except OSError:
            return name
    return None


def diagnose(provider: str, available: Sequence[str]) -> str:
    """Why ``provider`` is probably not running here (best effort, never raises)."""
    if provider not in available:
        if provider in (CUDA, TENSORRT):
            return "this onnxruntime build has no GPU support (install the 'gpu' extra: onnxruntime-gpu)"
        if provider == DIRECTML:
            return "this onnxruntime build has no DirectML support (onnxruntime-directml, Windows only)"
        return f"this onnxruntime build has no {provider}"
    try:
        if provider in (CUDA, TENSORRT):
            missing = _loadable(_cuda_libraries())
            if missing:
                return (
                    f"{missing} not found (install the NVIDIA driver, CUDA {cuda_major()} and cuDNN 9, "
                    "or the nvidia-* pip wheels)"
                )
            if provider == TENSORRT:
                lib = "nvinfer_10.dll" if sys.platform == "win32" else "libnvinfer.so.10"
                if _loadable([lib]):
                    return f"{lib} (TensorRT 10) not found"
        return "its libraries loaded but the provider did not start (see onnxruntime's log above)"
    except Exception as exc:  # pragma: no cover - diagnosis must never hide the real result
        return f"unknown reason ({exc})"


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


# ---------------------------------------------------------------------------------------
# choice


def choose_providers(requested: str | Sequence[str] = "auto", available: Sequence[str] | None = None) -> list[str]:
    """The provider list to try, best first, CPU always last.

    ``requested`` is ``auto``/``cpu``/``cuda``/``tensorrt``/``directml`` or explicit provider
    names. ``auto`` keeps only providers the build contains; TensorRT only when its library is
    present (otherwise it would fail slowly at every start); explicit requests are kept even
    when absent, so that the caller can tell the user what was asked for and why it is not
    running.
    """
    avail = list(available) if available is not None else available_providers()
    if isinstance(requested, str):
        key = requested.strip().lower()
        if key in ALIASES:
            names = list(ALIASES[key])
        elif requested in PREFERENCE or requested.endswith("ExecutionProvider"):
            names = [requested, CPU]
        else:
            raise ModelError(f"provider {requested!r} unknown; use one of {', '.join(PROVIDER_CHOICES)}")
        auto = key in ("auto", "gpu")
    else:
        names, auto = [*requested, CPU], False
    if auto:
        names = [n for n in names if n in avail or n == CPU]
        if TENSORRT in names and diagnose(TENSORRT, avail).endswith("not found"):
            names.remove(TENSORRT)
    out: list[str] = []
    for n in names:
        if n not in out:
            out.append(n)
    return out


@dataclass
class SessionInfo:
    """What was asked for, what runs, and one sentence about it for the user."""

    requested: list[str]
    providers: list[str]  # session.get_providers(), the truth
    note: str
    threads: int

    @property
    def provider(self) -> str:
        return self.providers[0] if self.providers else CPU


def _explain(wanted: list[str], running: str, reasons: dict[str, str], auto: bool) -> str:
    gpu_wanted = [p for p in wanted if p != CPU]
    if running != CPU:
        skipped = [p for p in gpu_wanted if p != running and gpu_wanted.index(p) < gpu_wanted.index(running)]
        extra = "".join(f"; {short_name(p)} not used: {reasons.get(p, 'unavailable')}" for p in skipped)
        return f"running on {short_name(running)}{extra}"
    if not gpu_wanted:
        return "running on CPU (CPU requested)" if not auto else "running on CPU (no GPU provider in this build)"
    first = gpu_wanted[0]
    verb = "requested" if not auto else "available"
    why = reasons.get(first, "unavailable")
    return f"{short_name(first)} {verb} but {why}; running on CPU"


SessionFactory = Callable[..., Any]


def session_options(threads: int | None = None) -> tuple[Any, int]:
    import onnxruntime as ort

    n = threads if threads and threads > 0 else physical_cores()
    so = ort.SessionOptions()
    so.intra_op_num_threads = n
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # errors only: our note explains fallbacks in one sentence
    # Idle intra-op threads sleep instead of spinning: the thread that encodes, post-processes
    # and writes between runs then gets the cores (measured: predict_many 350 -> 600 wafers/s
    # with the tiny model on 2 cores; no measurable change for a ResNet-50), and an idle desktop
    # app does not burn CPU. WAFERDESK_ORT_SPIN=1 turns spinning back on.
    if os.environ.get("WAFERDESK_ORT_SPIN", "") != "1":
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return so, n


def _provider_options(name: str) -> dict[str, str]:
    if name == TENSORRT:
        from platformdirs import user_cache_dir

        cache = Path(user_cache_dir("waferdesk")) / "tensorrt"
        cache.mkdir(parents=True, exist_ok=True)
        return {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache), "trt_fp16_enable": "True"}
    return {}


def make_session(
    model: str | Path | bytes,
    providers: str | Sequence[str] = "auto",
    threads: int | None = None,
    *,
    available: Sequence[str] | None = None,
    factory: SessionFactory | None = None,
) -> tuple[Any, SessionInfo]:
    """Create an ``InferenceSession`` on the best provider that really starts.

    Tries the chosen list; when creation fails, drops the failing GPU provider and retries,
    down to the CPU. Afterwards reads :meth:`get_providers` to learn what really runs
    (onnxruntime silently drops a GPU provider whose libraries are missing).
    ``available`` and ``factory`` are injection points for tests.
    """
    import onnxruntime as ort

    avail = list(available) if available is not None else available_providers()
    auto = isinstance(providers, str) and providers.strip().lower() in ("auto", "gpu")
    wanted = choose_providers(providers, avail)
    reasons: dict[str, str] = {}
    if any(p in (CUDA, TENSORRT) for p in wanted) and hasattr(ort, "preload_dlls"):
        with contextlib.suppress(Exception):  # CUDA/cuDNN from the nvidia-* wheels; only a help
            ort.preload_dlls()
    for p in wanted:
        if p not in avail and p != CPU:
            reasons[p] = diagnose(p, avail)
    trying = [p for p in wanted if p in avail or p == CPU]
    so, n = session_options(threads)
    make = factory or ort.InferenceSession
    src = model if isinstance(model, bytes) else str(model)
    while True:
        try:
            with warnings.catch_warnings():  # onnxruntime warns about absent providers; the note says it better
                warnings.filterwarnings("ignore", message="Specified provider")
                sess = make(
                    src,
                    sess_options=so,
                    providers=[(p, _provider_options(p)) for p in trying],
                    enable_fallback=0,
                )
            break
        except Exception as exc:
            gpu = [p for p in trying if p != CPU]
            if not gpu:
                raise ModelError(
                    f"{model if not isinstance(model, bytes) else 'model'}: cannot be loaded ({exc})"
                ) from None
            reasons[gpu[0]] = f"it failed to start ({str(exc).strip().splitlines()[0][:200]})"
            trying.remove(gpu[0])
    actual = list(sess.get_providers())
    running = actual[0] if actual else CPU
    for p in wanted:
        if p != CPU and p not in actual and p not in reasons:
            reasons[p] = diagnose(p, avail)
    note = _explain(wanted, running, reasons, auto)
    return sess, SessionInfo(requested=wanted, providers=actual, note=note, threads=n)
