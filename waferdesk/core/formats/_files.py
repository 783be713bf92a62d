"""Small helpers every reader shares: open a file with a size cap, read an npz safely.

Kept private to the formats package so each reader stays a plain function of a path.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import FormatError
from .limits import MAX_MEMBER_RATIO

# what reading a damaged zip member raises: a bad CRC or header, a broken deflate stream
# (zlib.error), an unknown compression method (NotImplementedError), an encryption flag
# (RuntimeError: zipfile asks for a password), a short file
ZIP_MEMBER_ERRORS = (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, OSError, EOFError, ValueError)


def file_size(path: Path, limit: int, what: str) -> int:
    """Size of ``path`` in bytes; a clear error when it is missing or over ``limit``."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise FormatError(path, f"cannot open ({exc.strerror or exc})") from None
    if not path.is_file():
        raise FormatError(path, "is not a file")
    if size > limit:
        raise FormatError(path, f"{what} file is {size} bytes, over the {limit}-byte limit")
    return size


def read_bytes(path: Path, limit: int, what: str) -> bytes:
    """The whole file, refusing it before reading when it is larger than ``limit``."""
    file_size(path, limit, what)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise FormatError(path, f"cannot read ({exc.strerror or exc})") from None


def head(path: Path, n: int = 512) -> bytes:
    """The first ``n`` bytes (empty when unreadable), for content sniffing."""
    try:
        with path.open("rb") as fh:
            return fh.read(n)
    except OSError:
        return b""


class CheckedNpz:
    """An ``.npz`` whose members are checked before any array is allocated.

    ``np.load`` trusts the shape in each ``.npy`` header and allocates it before reading the
    data, and a zip member can expand far beyond its compressed size; so every member's
    declared size, compression ratio and header are checked against the caller's limits
    first. Arrays are read with ``allow_pickle=False``: object arrays are refused.
    """

    def __init__(self, path: Path, zf: zipfile.ZipFile) -> None:
        self.path, self.zf = path, zf
        self.members = {i.filename: i for i in zf.infolist()}

    def has(self, name: str) -> bool:
        return f"{name}.npy" in self.members

    def array(self, name: str, kinds: str, ndim: int, max_items: int) -> np.ndarray:
        """Member ``name`` (without ``.npy``) as an array of a dtype kind in ``kinds`` and ``ndim`` dims."""
        info = self.members.get(f"{name}.npy")
        if info is None:
            raise FormatError(self.path, f"missing array {name!r}")
        if info.compress_size and info.file_size > 1 << 20 and info.file_size / info.compress_size > MAX_MEMBER_RATIO:
            raise FormatError(
                self.path, f"array {name!r} expands {info.file_size // info.compress_size}x when unpacked; refused"
            )
        try:
            with self.zf.open(info) as fh:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, _fortran, dtype = np.lib.format.read_array_header_1_0(fh)
                else:
                    shape, _fortran, dtype = np.lib.format.read_array_header_2_0(fh)
                header_len = fh.tell()
        except ZIP_MEMBER_ERRORS as exc:
            raise FormatError(self.path, f"array {name!r} has no valid .npy header ({exc})") from None
        if dtype.hasobject:
            raise FormatError(self.path, f"array {name!r} holds Python objects; refused (no pickles)")
        if dtype.kind not in kinds or len(shape) != ndim:
            raise FormatError(self.path, f"array {name!r}: expected {ndim}-D of kind {kinds!r}, got {shape} {dtype}")
        items = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if any(s < 0 for s in shape) or items > max_items:
            raise FormatError(self.path, f"array {name!r} declares shape {shape}, over the limit of {max_items} items")
        if info.file_size != header_len + items * dtype.itemsize:
            raise FormatError(
                self.path,
                f"array {name!r} declares shape {shape} ({items * dtype.itemsize} bytes) but holds "
                f"{info.file_size - header_len} bytes; truncated or corrupt",
            )
        try:
            with self.zf.open(info) as fh:  # streamed into the (now bounded) array, no second copy
                arr = np.lib.format.read_array(fh, allow_pickle=False)
        except ZIP_MEMBER_ERRORS as exc:
            raise FormatError(self.path, f"array {name!r} is corrupt ({exc})") from None
        return arr


def open_npz(path: Path, limit: int) -> tuple[zipfile.ZipFile, CheckedNpz]:
    """Open ``path`` as a zip of ``.npy`` members, or raise a clear :class:`FormatError`."""
    file_size(path, limit, "npz")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError) as exc:
        raise FormatError(path, f"not a readable .npz archive ({exc})") from None
    return zf, CheckedNpz(path, zf)
