"""Column types: JSON that is JSONB on Postgres, and compact array blobs.

Arrays are stored as zlib-compressed raw bytes with their shape and dtype in other columns:
a 300x300 die grid is 90 kB raw and typically 1-3 kB stored, and reading it back needs no
pickle (nothing in the database can execute code on load).
"""

from __future__ import annotations

import zlib

import numpy as np
from sqlalchemy import JSON
from sqlalchemy.dialects.postgresql import JSONB

JSONType = JSON().with_variant(JSONB(), "postgresql")


def pack_array(arr: np.ndarray, dtype: str) -> bytes:
    """C-order bytes of ``arr`` as little-endian ``dtype``, zlib-compressed."""
    return zlib.compress(np.ascontiguousarray(arr, dtype=np.dtype(dtype).newbyteorder("<")).tobytes(), 6)


def unpack_array(blob: bytes, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Inverse of :func:`pack_array`; checks the size so a corrupt row fails loudly."""
    dt = np.dtype(dtype).newbyteorder("<")
    raw = zlib.decompress(blob)
    expected = int(np.prod(shape)) * dt.itemsize
    if len(raw) != expected:
        raise ValueError(f"stored array holds {len(raw)} bytes, shape {shape} of {dtype} needs {expected}")
    return np.frombuffer(raw, dtype=dt).reshape(shape).astype(np.dtype(dtype))
