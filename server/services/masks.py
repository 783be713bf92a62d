"""Label masks on the wire and in the database.

Clients send a mask as rows of class indices (255 = no class) or as ``{"rle": [[value, run],
...]}`` over the row-major mask: the same two shapes the server answers predictions with,
so a prediction's mask can be posted back as an annotation unchanged. In the database a mask
is the zlib-packed uint8 grid (:func:`server.db.types.pack_array`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from waferdesk.core.taxonomy import IGNORE, default_taxonomy

from ..core.errors import UnprocessableError
from ..db.types import pack_array, unpack_array


def _bad(message: str) -> UnprocessableError:
    return UnprocessableError(f"body field labels: {message}", code="invalid_labels", details={"field": "labels"})


def parse_labels(payload: Any, shape: tuple[int, int]) -> np.ndarray:
    """The uint8 grid of a ``labels`` payload, which must have the wafer's ``shape``."""
    h, w = shape
    if isinstance(payload, dict):
        runs = payload.get("rle")
        if not isinstance(runs, list):
            raise _bad("an object must be {'rle': [[value, run], ...]}")
        try:
            arr = np.asarray(runs, dtype=np.int64).reshape(-1, 2)
        except (TypeError, ValueError, OverflowError):
            raise _bad("rle must be a list of [value, run] integer pairs") from None
        if arr.size and ((arr[:, 1] < 0).any() or (arr[:, 0] < 0).any() or (arr[:, 0] > IGNORE).any()):
            raise _bad("rle values must lie in 0..255 and runs be non-negative")
        if arr.size and (arr[:, 1] > h * w).any():  # before summing: huge runs must not wrap around
            raise _bad(f"an rle run of {int(arr[:, 1].max())} dies is longer than the wafer's {h}x{w} = {h * w} cells")
        total = int(arr[:, 1].sum()) if arr.size else 0
        if total != h * w:
            raise _bad(f"rle covers {total} dies; the wafer has {h}x{w} = {h * w} cells")
        return np.repeat(arr[:, 0], arr[:, 1]).astype(np.uint8).reshape(shape)
    if isinstance(payload, list):
        try:
            arr = np.asarray(payload)
        except ValueError:
            raise _bad("rows of unequal length") from None
        if arr.ndim != 2 or arr.dtype.kind not in "iu":
            raise _bad(f"expected rows of integers, got an array of shape {arr.shape} ({arr.dtype})")
        if arr.shape != shape:
            raise _bad(f"shape {arr.shape[0]}x{arr.shape[1]} != wafer {h}x{w}")
        if arr.size and (arr.min() < 0 or arr.max() > IGNORE):
            raise _bad("values must lie in 0..255 (class index, 255 = no class)")
        return arr.astype(np.uint8)
    raise _bad("expected rows of class indices or {'rle': [[value, run], ...]}")


def class_counts(labels: np.ndarray) -> dict[str, int]:
    """Labelled dies per class name (every class of the taxonomy, zeros included)."""
    names = default_taxonomy().names
    counts = np.bincount(labels[labels != IGNORE].ravel(), minlength=len(names))
    return {name: int(counts[i]) for i, name in enumerate(names)}


def pack_labels(labels: np.ndarray) -> bytes:
    return pack_array(labels, "uint8")


def unpack_labels(blob: bytes, shape: tuple[int, int]) -> np.ndarray:
    return unpack_array(blob, shape, "uint8")
