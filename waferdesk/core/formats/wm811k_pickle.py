"""WM-811K as published: ``LSWMD.pkl``, a pandas-pickled DataFrame, read without trusting it.

Unpickling runs whatever callables the file names, so a pickle from the internet is code.
This reader unpickles with a restricted ``find_class``: only the handful of numpy and pandas
types that rebuild a DataFrame of numpy arrays, strings and floats may be named; anything
else (``os.system``, ``builtins.eval``, ``subprocess`` ...) stops the load with a
:class:`FormatError` before it can be called. pandas is needed to rebuild the DataFrame but
is optional for WaferDesk: without it the reader says so and suggests the ``.npz`` layout.

Columns: ``waferMap`` (2-D 0/1/2 array), ``dieSize``, ``lotName``, ``waferIndex``,
``failureType`` (``[['none']]``-style arrays, empty when unlabelled) and ``trianTestLabel``
(sic). A row becomes ``WaferMap(lot=lotName, wafer_id=str(int(waferIndex)), label=...)``.
"""

from __future__ import annotations

import importlib
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FormatError, ValidationError
from ..records import WaferRecord
from ..wafer import WaferMap
from ._files import file_size
from .limits import MAX_PICKLE_BYTES

SUFFIXES = (".pkl", ".pickle")

# (module, name) a DataFrame of numpy arrays / strings / floats needs, after _remap.
_ALLOWED = {
    ("builtins", "slice"),
    ("builtins", "bytes"),
    ("builtins", "bytearray"),
    ("builtins", "object"),
    ("builtins", "frozenset"),
    ("builtins", "set"),
    ("_codecs", "encode"),
    ("copyreg", "_reconstructor"),
    ("collections", "OrderedDict"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("pandas", "DataFrame"),
    ("pandas.core.frame", "DataFrame"),
    ("pandas", "Index"),
    ("pandas", "RangeIndex"),
    ("pandas", "StringDtype"),
    ("pandas.arrays", "StringArray"),
    ("pandas.core.arrays.string_", "StringArray"),
    ("pandas.core.arrays.string_", "StringDtype"),
    ("pandas.core.indexes.base", "Index"),
    ("pandas.core.indexes.base", "_new_Index"),
    ("pandas.core.indexes.range", "RangeIndex"),
    ("pandas.core.internals.managers", "BlockManager"),
    ("pandas._libs.internals", "_unpickle_block"),
    ("pandas._libs.internals", "BlockPlacement"),
    ("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked"),
}

# Where older pandas/Python kept these names (LSWMD.pkl was written by pandas 0.x).
_RENAMED = {
    ("pandas.core.indexes.numeric", "Int64Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.core.indexes.numeric", "UInt64Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.core.indexes.numeric", "Float64Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.core.internals.blocks", "new_block"): ("pandas._libs.internals", "_unpickle_block"),
    ("pandas.core.internals", "BlockManager"): ("pandas.core.internals.managers", "BlockManager"),
}
_MODULE_PREFIXES = (
    ("pandas.indexes.", "pandas.core.indexes."),
    ("pandas.core.index", "pandas.core.indexes.base"),
)


def _remap(module: str, name: str) -> tuple[str, str]:
    module = {"__builtin__": "builtins", "copy_reg": "copyreg"}.get(module, module)
    for old, new in _MODULE_PREFIXES:
        if module == old or (old.endswith(".") and module.startswith(old)):
            module = new + module[len(old) :] if old.endswith(".") else new
            break
    return _RENAMED.get((module, name), (module, name))


class _RefusedError(Exception):
    """Raised from find_class: the pickle named something outside the allow-list."""


def _check(module: str, name: str) -> tuple[str, str]:
    key = _remap(module, name)
    if key not in _ALLOWED and not (key[0] == "numpy.dtypes" and key[1].endswith("DType")):
        raise _RefusedError(f"{module}.{name}")
    return key


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(*_check(module, name))


def _compat_unpickler(fh: Any) -> Any:
    """pandas' own compat unpickler (for pickles of old pandas), with the same allow-list."""
    from pandas.compat import pickle_compat

    class _SafeCompat(pickle_compat.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            return pickle._Unpickler.find_class(self, *_check(module, name))

    return _SafeCompat(fh, encoding="latin1")


class _Capped(io.RawIOBase):
    """A read-only file view that never asks the OS for more than the file holds.

    A crafted length field must not make ``read(n)`` allocate ``n`` bytes up front.
    """

    def __init__(self, fh: io.BufferedReader, size: int) -> None:
        self._fh, self._left = fh, size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._fh.read(n)
        self._left -= len(data)
        return data

    def readinto(self, buf: Any) -> int:
        view = memoryview(buf)[: self._left]
        got = self._fh.readinto(view)
        self._left -= got
        return got

    def readline(self, limit: int = -1) -> bytes:
        limit = self._left if limit is None or limit < 0 else min(limit, self._left)
        data = self._fh.readline(limit)
        self._left -= len(data)
        return data


def _load(src: Path, size: int) -> Any:
    errors = (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        ImportError,
        IndexError,
        KeyError,
    )
    first: Exception | None = None
    for make in (lambda fh: _SafeUnpickler(fh, encoding="latin1"), _compat_unpickler):
        try:
            with src.open("rb") as raw:
                return make(_Capped(raw, size)).load()
        except _RefusedError as exc:
            raise FormatError(
                src,
                f"refused to unpickle: the file asks for {exc}, which a WM-811K DataFrame does not need "
                "(pickles can run code; only numpy/pandas data types are allowed)",
            ) from None
        except MemoryError:
            raise FormatError(src, "not enough memory to unpickle this file") from None
        except OSError as exc:
            raise FormatError(src, f"cannot read ({exc.strerror or exc})") from None
        except errors as exc:
            first = first or exc
    raise FormatError(src, f"not a readable WM-811K pickle ({type(first).__name__}: {first})")


def _label(value: object) -> str | None:
    """``[['none']]`` -> 'none'; ``[]``/NaN/None -> None."""
    if isinstance(value, np.ndarray):
        if value.size == 0:
            return None
        value = value.ravel()[0]
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if isinstance(value, str):
        return value.strip() or None
    return None


def _number(value: object) -> float | None:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) else None


def is_pickle(head: bytes) -> bool:
    """Protocol 2+ pickles start with PROTO (0x80) and a protocol number."""
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def read_wm811k_pkl(path: str | Path, limit: int | None = None) -> list[WaferRecord]:
    """Read ``LSWMD.pkl``-style rows (at most ``limit``) as records without masks."""
    src = Path(path)
    size = file_size(src, MAX_PICKLE_BYTES, "pickle")
    try:
        pd = importlib.import_module("pandas")
    except ImportError:
        raise FormatError(
            src,
            "reading WM-811K pickles needs pandas, which is not installed "
            "(pip install 'waferdesk[wm811k]'), or convert the file to the pickle-free .npz layout",
        ) from None
    frame = _load(src, size)
    if not isinstance(frame, pd.DataFrame):
        raise FormatError(src, f"holds a {type(frame).__name__}, not a WM-811K DataFrame")
    if "waferMap" not in frame.columns:
        raise FormatError(src, f"no 'waferMap' column (columns: {', '.join(map(str, frame.columns))})")
    n = len(frame) if limit is None else min(len(frame), max(0, int(limit)))

    def column(name: str) -> list[object]:
        return list(frame[name].iloc[:n]) if name in frame.columns else [None] * n

    maps, lots, idx = column("waferMap"), column("lotName"), column("waferIndex")
    fail_types, splits, die_sizes = column("failureType"), column("trianTestLabel"), column("dieSize")
    records: list[WaferRecord] = []
    for i in range(n):
        grid = maps[i]
        if not isinstance(grid, np.ndarray):
            raise FormatError(src, f"row {i}: waferMap is a {type(grid).__name__}, not an array")
        extra = {"row": str(i)}
        if (split := _label(splits[i])) is not None:
            extra["split"] = split
        if (die := _number(die_sizes[i])) is not None:
            extra["die_size"] = f"{die:g}"
        index = _number(idx[i])
        lot = lots[i]
        try:
            wafer = WaferMap(
                dies=grid,
                lot=str(lot) if isinstance(lot, str) else "",
                wafer_id=str(int(index)) if index is not None else "",
                source=f"wm811k:{src.name}#{i}",
                label=_label(fail_types[i]),
                extra=extra,
            )
        except ValidationError as exc:
            raise FormatError(src, f"row {i}: {exc}") from None
        records.append(WaferRecord(wafer))
    return records
