"""Readers and writers of wafer-map files.

Each format is a pair of plain functions raising :class:`~waferdesk.core.errors.FormatError`
(which names the file and the problem). :func:`read_any` picks the reader from the file's
content and suffix; :func:`read_paths` expands folders.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..errors import UnsupportedFormatError
from ..records import WaferRecord
from .wdm import SUFFIX as WDM_SUFFIX
from .wdm import is_wdm, read_wdm, write_wafers, write_wdm

READABLE_SUFFIXES = (WDM_SUFFIX,)


def read_any(path: str | Path) -> list[WaferRecord]:
    """Read every wafer in ``path`` with the reader its content or suffix calls for."""
    p = Path(path)
    if p.suffix.lower() == WDM_SUFFIX or is_wdm(p):
        return read_wdm(p)
    raise UnsupportedFormatError(p, f"unsupported file type {p.suffix!r}; readable: {', '.join(READABLE_SUFFIXES)}")


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders expanded (sorted) to the readable files inside them."""
    out: list[Path] = []
    for item in paths:
        p = Path(item)
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in READABLE_SUFFIXES)
        else:
            out.append(p)
    return out


__all__ = ["READABLE_SUFFIXES", "expand_paths", "read_any", "read_wdm", "write_wafers", "write_wdm"]
