"""What this installation is: its variant (CPU or GPU ONNX Runtime), whether it runs from a
frozen bundle, and which execution provider really starts on this machine.

A desktop bundle (packaging/build-desktop.sh) carries ``build-info.json`` among its resources:
the variant it was built as, the onnxruntime distribution it holds, the build time. A pip
install has no such file, and the variant is read from the installed onnxruntime
distribution instead (``onnxruntime`` -> cpu, ``onnxruntime-gpu`` -> gpu; the extras never
install both). ``--version`` and the app's status bar show both facts, so a support call can
tell a CPU bundle on a GPU PC (wrong download) from a GPU bundle whose CUDA libraries are
missing (driver problem).

:func:`probe_provider` answers "which provider starts here" without the default model (it may
be absent, and loading 60 MB to print a version is slow): it opens a one-node ONNX graph,
serialized here by hand because the desktop installs no ``onnx`` package, with the same
provider choice and fallback as the real engine (:func:`~.inference.providers.make_session`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import metadata

from .. import __version__
from .resources import resource_path

BUILD_INFO_NAME = "build-info.json"
VARIANT_OF_DIST = {"onnxruntime": "cpu", "onnxruntime-gpu": "gpu", "onnxruntime-directml": "directml"}


@dataclass(frozen=True)
class BuildInfo:
    version: str  # waferdesk's
    variant: str  # cpu | gpu | directml | none (no onnxruntime installed)
    frozen: bool  # running from a PyInstaller bundle
    onnxruntime: str  # "onnxruntime 1.32.0", or "not installed"
    built_at: str | None = None  # bundles only (UTC, ISO 8601)
    source: str = "installed packages"  # or "bundle build-info.json"

    def as_dict(self) -> dict:
        return asdict(self)


def installed_onnxruntime() -> tuple[str, str] | None:
    """(distribution, version) of the installed ONNX Runtime, or None."""
    for dist in VARIANT_OF_DIST:
        try:
            return dist, metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


@lru_cache(maxsize=1)
def build_info() -> BuildInfo:
    frozen = bool(getattr(sys, "frozen", False))
    try:
        data = json.loads(resource_path(BUILD_INFO_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError, FileNotFoundError):
        data = None
    if isinstance(data, dict) and data.get("variant"):
        return BuildInfo(
            version=__version__,
            variant=str(data["variant"]),
            frozen=frozen,
            onnxruntime=str(data.get("onnxruntime", "unknown")),
            built_at=data.get("built_at"),
            source=f"bundle {BUILD_INFO_NAME}",
        )
    found = installed_onnxruntime()
    return BuildInfo(
        version=__version__,
        variant=VARIANT_OF_DIST[found[0]] if found else "none",
        frozen=frozen,
        onnxruntime=f"{found[0]} {found[1]}" if found else "not installed",
    )


# ---------------------------------------------------------------------------------------
# the probe graph: y = Identity(x), x float[1]; a valid ONNX ModelProto (IR 8, opset 17)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: int | bytes | str) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    raw = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(raw)) + raw


def _value_info(name: str) -> bytes:
    dim = _field(1, _field(1, 1))  # TensorShapeProto.dim { dim_value: 1 }
    tensor = _field(1, 1) + _field(2, dim)  # elem_type FLOAT, shape
    return _field(1, name) + _field(2, _field(1, tensor))  # name, type { tensor_type }


def probe_model_bytes() -> bytes:
    node = _field(1, "x") + _field(2, "y") + _field(4, "Identity")
    graph = _field(1, node) + _field(2, "waferdesk-probe") + _field(11, _value_info("x")) + _field(12, _value_info("y"))
    opset = _field(1, "") + _field(2, 17)
    return _field(1, 8) + _field(2, "waferdesk") + _field(7, graph) + _field(8, opset)


def probe_provider(providers: str = "auto") -> tuple[str, str]:
    """(provider that runs, one-sentence note) for a session made the engine's way.

    Raises ImportError when onnxruntime is not installed.
    """
    from .inference.providers import make_session

    _sess, info = make_session(probe_model_bytes(), providers, threads=1)
    return info.provider, info.note


__all__ = ["BUILD_INFO_NAME", "BuildInfo", "build_info", "installed_onnxruntime", "probe_model_bytes", "probe_provider"]
