"""WM-811K maps in the pickle-free ``.npz`` layout of ``shared/data/wm811k-val.npz``.

Arrays: ``maps_flat`` uint8 (every map raveled in C order and concatenated; 0 no die,
1 pass, 2 fail), ``shapes`` int16 (N, 2), ``offsets`` int64 (N+1), ``labels`` str (N,) with
the wafer-level WM-811K ``failureType`` ("" = unlabelled) and, optionally, ``source_row``
int32 (N,) pointing back into the upstream frame. Reading needs no pickle; every array's
declared size is checked before it is allocated (see :class:`._files.CheckedNpz`).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import FormatError, ValidationError
from ..records import WaferRecord
from ..wafer import WaferMap
from ._files import open_npz
from .limits import MAX_DIES_TOTAL, MAX_FILE_BYTES, MAX_SIDE, MAX_WAFERS

SUFFIX = ".npz"
SOURCE = "wm811k"
LABELS = ("Center", "Donut", "Edge-Loc", "Edge-Ring", "Loc", "Near-full", "Random", "Scratch", "none")
"""The wafer-level labels WM-811K uses (``failureType``)."""


def is_wm811k_npz(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError):
        return False
    return {"maps_flat.npy", "shapes.npy", "offsets.npy"} <= names


def read_wm811k_npz(path: str | Path, limit: int | None = None) -> list[WaferRecord]:
    """Read the maps of a WM-811K ``.npz`` (at most ``limit`` of them) as records without masks.

    Each map keeps its WM-811K label in ``WaferMap.label`` (``None`` when unlabelled) and its
    upstream row in ``extra["source_row"]``.
    """
    src = Path(path)
    zf, npz = open_npz(src, MAX_FILE_BYTES)
    with zf:
        shapes = npz.array("shapes", "iu", 2, 2 * MAX_WAFERS)
        if shapes.shape[1:] != (2,):
            raise FormatError(src, f"shapes must be (N, 2), got {shapes.shape}")
        n = shapes.shape[0]
        offsets = npz.array("offsets", "iu", 1, n + 1).astype(np.int64)
        if offsets.shape != (n + 1,):
            raise FormatError(src, f"offsets must have {n + 1} entries (one more than shapes), got {offsets.shape[0]}")
        if n and (shapes.min() < 1 or shapes.max() > MAX_SIDE):
            bad = int(np.argmax((shapes < 1).any(axis=1) | (shapes > MAX_SIDE).any(axis=1)))
            raise FormatError(src, f"map {bad} has size {tuple(int(v) for v in shapes[bad])}, outside 1..{MAX_SIDE}")
        sizes = shapes[:, 0].astype(np.int64) * shapes[:, 1]
        if offsets[0] != 0 or not np.array_equal(np.diff(offsets), sizes):
            raise FormatError(src, "offsets do not match the map shapes")
        total = int(offsets[-1])
        if total > MAX_DIES_TOTAL:
            raise FormatError(src, f"{total} dies in all, over the limit of {MAX_DIES_TOTAL}")
        flat = npz.array("maps_flat", "iu", 1, total)
        if flat.size != total:
            raise FormatError(src, f"maps_flat holds {flat.size} dies, the shapes need {total}")
        labels = npz.array("labels", "U", 1, n) if npz.has("labels") else np.full(n, "", dtype="<U1")
        rows = npz.array("source_row", "iu", 1, n) if npz.has("source_row") else None
        if labels.shape != (n,) or (rows is not None and rows.shape != (n,)):
            raise FormatError(src, f"labels / source_row must have one entry per map ({n})")
    count = n if limit is None else min(n, max(0, int(limit)))
    records: list[WaferRecord] = []
    for i in range(count):
        a, b = int(offsets[i]), int(offsets[i + 1])
        label = str(labels[i]) or None
        extra = {"source_row": str(int(rows[i]))} if rows is not None else {}
        try:
            wafer = WaferMap(
                dies=flat[a:b].reshape(int(shapes[i, 0]), int(shapes[i, 1])),
                lot="wm811k",
                wafer_id=str(int(rows[i])) if rows is not None else str(i),
                source=f"{SOURCE}:{src.name}#{i}",
                label=label,
                extra=extra,
            )
        except ValidationError as exc:
            raise FormatError(src, f"map {i}: {exc}") from None
        records.append(WaferRecord(wafer))
    return records


def write_wm811k_npz(path: str | Path, records: Iterable[WaferRecord | WaferMap]) -> Path:
    """Write maps in the same layout (masks are not part of it and are dropped).

    ``labels`` takes each map's ``label`` ("" when none); ``source_row`` is kept when every
    map has one in ``extra``, else the position in the file.
    """
    out = Path(path)
    wafers = [r.wafer if isinstance(r, WaferRecord) else r for r in records]
    shapes = np.array([w.shape for w in wafers], dtype=np.int16).reshape(-1, 2)
    sizes = shapes[:, 0].astype(np.int64) * shapes[:, 1]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    flat = np.concatenate([w.dies.ravel() for w in wafers]) if wafers else np.zeros(0, np.uint8)
    labels = np.array([w.label or "" for w in wafers], dtype=str) if wafers else np.zeros(0, "<U1")
    try:
        rows = np.array([int(w.extra["source_row"]) for w in wafers], dtype=np.int32)
    except (KeyError, ValueError):
        rows = np.arange(len(wafers), dtype=np.int32)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    try:
        with tmp.open("wb") as fh:
            np.savez_compressed(
                fh, maps_flat=flat.astype(np.uint8), shapes=shapes, offsets=offsets, labels=labels, source_row=rows
            )
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise FormatError(out, f"cannot write ({exc.strerror or exc})") from None
    return out
