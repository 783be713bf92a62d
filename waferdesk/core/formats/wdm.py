"""WaferDesk's own file (``.wdm``): many wafers, their masks and metadata in one compact file.

Layout: a zip archive (deflate) of
- ``header.json``: ``{"format": "waferdesk-maps", "version": 1, "classes": [...], "count": N}``
- ``meta.json``: a list of N metadata objects (lot, wafer_id, product, notch, die_pitch,
  source, label, bin_pass, extra)
- ``shapes.npy`` int32 (N, 2), ``offsets.npy`` int64 (N+1)
- ``dies.npy`` uint8: every die grid raveled (C order) and concatenated
- ``masks.npy`` uint8 (same layout, 255 where no label) and ``has_mask.npy`` bool (N), when
  any wafer has a mask
- ``bins.npy`` int32 and ``has_bins.npy`` bool, when any wafer carries bin codes.
Arrays are plain ``.npy`` members read with ``allow_pickle=False``; every size is checked
before anything large is allocated. The class names are stored so a file labelled under a
different taxonomy is refused instead of silently relabelled.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ..atomic import atomic_open
from ..errors import FormatError, ValidationError
from ..records import WaferRecord
from ..taxonomy import default_taxonomy
from ..wafer import LabelMask, WaferMap
from ._files import ZIP_MEMBER_ERRORS
from .limits import MAX_DIES_TOTAL, MAX_FILE_BYTES, MAX_MEMBER_RATIO, MAX_SIDE, MAX_WAFERS

FORMAT_NAME = "waferdesk-maps"
FORMAT_VERSION = 1
SUFFIX = ".wdm"


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _meta_of(w: WaferMap) -> dict:
    return {
        "lot": w.lot,
        "wafer_id": w.wafer_id,
        "product": w.product,
        "notch": w.notch,
        "die_pitch": list(w.die_pitch) if w.die_pitch else None,
        "source": w.source,
        "label": w.label,
        "bin_pass": sorted(w.bin_pass) if w.bin_pass is not None else None,
        "extra": dict(w.extra),
    }


def write_wdm(path: str | Path, records: Iterable[WaferRecord]) -> Path:
    """Write records to a ``.wdm`` file atomically (a temp file renamed into place)."""
    out = Path(path)
    recs = list(records)
    tax = default_taxonomy()
    shapes = np.array([r.wafer.shape for r in recs], dtype=np.int32).reshape(-1, 2)
    sizes = shapes[:, 0].astype(np.int64) * shapes[:, 1]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    dies = np.concatenate([r.wafer.dies.ravel() for r in recs]) if recs else np.zeros(0, np.uint8)
    members: dict[str, bytes] = {
        "header.json": json.dumps(
            {"format": FORMAT_NAME, "version": FORMAT_VERSION, "classes": list(tax.names), "count": len(recs)}
        ).encode(),
        "meta.json": json.dumps([_meta_of(r.wafer) for r in recs]).encode(),
        "shapes.npy": _npy_bytes(shapes),
        "offsets.npy": _npy_bytes(offsets),
        "dies.npy": _npy_bytes(dies.astype(np.uint8)),
    }
    has_mask = np.array([r.mask is not None for r in recs], dtype=bool)
    if has_mask.any():
        masks = np.concatenate(
            [(r.mask.labels if r.mask is not None else np.full(r.wafer.shape, 255, np.uint8)).ravel() for r in recs]
        )
        members["masks.npy"] = _npy_bytes(masks.astype(np.uint8))
        members["has_mask.npy"] = _npy_bytes(has_mask)
    has_bins = np.array([r.wafer.bins is not None for r in recs], dtype=bool)
    if has_bins.any():
        bins = np.concatenate(
            [(r.wafer.bins if r.wafer.bins is not None else np.full(r.wafer.shape, -1, np.int32)).ravel() for r in recs]
        )
        members["bins.npy"] = _npy_bytes(bins.astype(np.int32))
        members["has_bins.npy"] = _npy_bytes(has_bins)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with (
            atomic_open(out, "wb") as fh,
            zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf,
        ):
            for name, data in members.items():
                zf.writestr(name, data)
    except OSError as exc:
        raise FormatError(out, f"cannot write ({exc.strerror or exc})") from None
    return out


class _Archive:
    """Reads members of a zip with size checks, so a crafted file cannot blow up memory."""

    def __init__(self, path: Path, zf: zipfile.ZipFile) -> None:
        self.path, self.zf = path, zf
        self.names = set(zf.namelist())

    def raw(self, name: str, max_bytes: int) -> bytes:
        if name not in self.names:
            raise FormatError(self.path, f"missing member {name!r}; not a complete WaferDesk file")
        info = self.zf.getinfo(name)
        if info.file_size > max_bytes:
            raise FormatError(self.path, f"member {name!r} is {info.file_size} bytes, over the limit of {max_bytes}")
        if info.compress_size and info.file_size / info.compress_size > MAX_MEMBER_RATIO and info.file_size > 1 << 20:
            raise FormatError(self.path, f"member {name!r} expands {info.file_size // info.compress_size}x; refused")
        try:
            data = self.zf.read(name)
        except ZIP_MEMBER_ERRORS as exc:
            raise FormatError(self.path, f"member {name!r} is corrupt ({exc})") from None
        if len(data) != info.file_size:
            raise FormatError(self.path, f"member {name!r} is truncated")
        return data

    def array(self, name: str, dtype: str, ndim: int, max_items: int) -> np.ndarray:
        data = self.raw(name, max_items * np.dtype(dtype).itemsize + 4096)
        try:
            arr = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise FormatError(self.path, f"member {name!r} is not a valid array ({exc})") from None
        if arr.dtype != np.dtype(dtype) or arr.ndim != ndim:
            raise FormatError(self.path, f"member {name!r}: expected {ndim}-D {dtype}, got {arr.ndim}-D {arr.dtype}")
        return arr

    def json(self, name: str, max_bytes: int) -> object:
        try:
            return json.loads(self.raw(name, max_bytes).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise FormatError(self.path, f"member {name!r} is not valid JSON ({exc})") from None


def is_wdm(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            return "header.json" in zf.namelist() and "dies.npy" in zf.namelist()
    except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError):
        return False


def read_wdm(path: str | Path) -> list[WaferRecord]:
    """Read every record of a ``.wdm`` file, or raise :class:`FormatError` naming the problem."""
    src = Path(path)
    try:
        size = src.stat().st_size
    except OSError as exc:
        raise FormatError(src, f"cannot open ({exc.strerror or exc})") from None
    if size > MAX_FILE_BYTES:
        raise FormatError(src, f"file is {size} bytes, over the {MAX_FILE_BYTES}-byte limit")
    try:
        zf = zipfile.ZipFile(src)
    except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError) as exc:
        raise FormatError(src, f"not a WaferDesk .wdm file (not a readable zip archive: {exc})") from None
    with zf:
        ar = _Archive(src, zf)
        header = ar.json("header.json", 1 << 20)
        if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
            raise FormatError(src, "header.json does not declare format 'waferdesk-maps'")
        if header.get("version") != FORMAT_VERSION:
            raise FormatError(src, f"format version {header.get('version')!r} is not supported (this reader: 1)")
        tax = default_taxonomy()
        if list(header.get("classes", [])) != list(tax.names):
            raise FormatError(
                src, f"labelled with classes {header.get('classes')} but this WaferDesk uses {list(tax.names)}"
            )
        count = header.get("count")
        if not isinstance(count, int) or not 0 <= count <= MAX_WAFERS:
            raise FormatError(src, f"header count {count!r} is not a wafer count in 0..{MAX_WAFERS}")
        shapes = ar.array("shapes.npy", "int32", 2, 2 * count)
        offsets = ar.array("offsets.npy", "int64", 1, count + 1)
        if shapes.shape != (count, 2) or offsets.shape != (count + 1,):
            raise FormatError(src, f"shapes/offsets do not match the header count {count}")
        if count and (shapes.min() < 1 or shapes.max() > MAX_SIDE):
            raise FormatError(src, f"a map size lies outside 1..{MAX_SIDE} dies per side")
        sizes = shapes[:, 0].astype(np.int64) * shapes[:, 1]
        if offsets[0] != 0 or not np.array_equal(np.diff(offsets), sizes):
            raise FormatError(src, "offsets do not match the map shapes")
        total = int(offsets[-1])
        if total > MAX_DIES_TOTAL:
            raise FormatError(src, f"{total} dies in all, over the limit of {MAX_DIES_TOTAL}")
        dies = ar.array("dies.npy", "uint8", 1, total)
        if dies.size != total:
            raise FormatError(src, f"dies.npy holds {dies.size} dies, the shapes need {total}")
        meta = ar.json("meta.json", 64 * 1024 + 4096 * count)
        if not isinstance(meta, list) or len(meta) != count:
            raise FormatError(src, "meta.json must be a list with one object per wafer")
        masks = has_mask = bins = has_bins = None
        if "masks.npy" in ar.names:
            masks = ar.array("masks.npy", "uint8", 1, total)
            has_mask = ar.array("has_mask.npy", "bool", 1, count)
            if masks.size != total or has_mask.size != count:
                raise FormatError(src, "masks.npy / has_mask.npy do not match the maps")
        if "bins.npy" in ar.names:
            bins = ar.array("bins.npy", "int32", 1, total)
            has_bins = ar.array("has_bins.npy", "bool", 1, count)
            if bins.size != total or has_bins.size != count:
                raise FormatError(src, "bins.npy / has_bins.npy do not match the maps")

    records: list[WaferRecord] = []
    for i in range(count):
        a, b = int(offsets[i]), int(offsets[i + 1])
        shape = (int(shapes[i, 0]), int(shapes[i, 1]))
        m = meta[i]
        if not isinstance(m, dict):
            raise FormatError(src, f"wafer {i}: metadata is not an object")
        try:
            pitch = m.get("die_pitch")
            bin_pass = m.get("bin_pass")
            wafer = WaferMap(
                dies=dies[a:b].reshape(shape),
                lot=str(m.get("lot") or ""),
                wafer_id=str(m.get("wafer_id") or ""),
                product=str(m.get("product") or ""),
                notch=str(m.get("notch") or "down"),
                die_pitch=(float(pitch[0]), float(pitch[1])) if pitch else None,
                source=str(m.get("source") or ""),
                label=None if m.get("label") is None else str(m["label"]),
                bins=bins[a:b].reshape(shape) if bins is not None and has_bins[i] else None,
                bin_pass=frozenset(int(x) for x in bin_pass) if bin_pass is not None else None,
                extra={str(k): str(v) for k, v in (m.get("extra") or {}).items()},
            )
            mask = None
            if masks is not None and has_mask[i]:
                mask = LabelMask(masks[a:b].reshape(shape))
                mask.validate(wafer)
        except ValidationError as exc:
            raise FormatError(src, f"wafer {i}: {exc}") from None
        except (TypeError, ValueError, IndexError) as exc:
            raise FormatError(src, f"wafer {i}: malformed metadata ({exc})") from None
        records.append(WaferRecord(wafer, mask))
    return records


def write_wafers(path: str | Path, wafers: Sequence[WaferMap]) -> Path:
    """Convenience: write maps without masks."""
    return write_wdm(path, [WaferRecord(w) for w in wafers])
