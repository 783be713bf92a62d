"""Readers and writers of wafer-map files.

Each format is a pair of plain functions raising :class:`~waferdesk.core.errors.FormatError`
(which names the file and the problem). :func:`read_any` picks the reader from the file's
content first (zip members, pickle and XML signatures) and its suffix second;
:func:`write_any` picks the writer from the suffix; :func:`expand_paths` expands folders.

| suffix              | read | write | module                      |
|---------------------|------|-------|-----------------------------|
| .wdm                | yes  | yes   | :mod:`.wdm` (own format)    |
| .npz                | yes  | yes   | :mod:`.wm811k` (WM-811K)    |
| .pkl / .pickle      | yes  | no    | :mod:`.wm811k_pickle`       |
| .xml / .g85 / .e142 | yes  | yes   | :mod:`.g85`, :mod:`.e142`   |
| .csv / .txt         | yes  | yes   | :mod:`.csv_dies`            |
| .png                | no   | yes   | :mod:`.png` (pictures)      |
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..errors import FormatError, UnsupportedFormatError
from ..records import WaferRecord
from ..wafer import WaferMap
from . import csv_dies, semi_xml, wm811k, wm811k_pickle
from ._files import head
from .csv_dies import read_csv, write_csv
from .e142 import write_e142
from .g85 import write_g85
from .png import write_png, write_pngs
from .semi_xml import read_semi_xml
from .wdm import SUFFIX as WDM_SUFFIX
from .wdm import is_wdm, read_wdm, write_wafers, write_wdm
from .wm811k import is_wm811k_npz, read_wm811k_npz, write_wm811k_npz
from .wm811k_pickle import is_pickle, read_wm811k_pkl

READABLE_SUFFIXES = (
    WDM_SUFFIX,
    wm811k.SUFFIX,
    *wm811k_pickle.SUFFIXES,
    *semi_xml.SUFFIXES,
    *csv_dies.SUFFIXES,
)
WRITABLE_SUFFIXES = (WDM_SUFFIX, wm811k.SUFFIX, ".xml", ".g85", ".e142", *csv_dies.SUFFIXES, ".png")
_ZIP_MAGIC = b"PK\x03\x04"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def read_any(path: str | Path, pass_bins: Iterable[int] | None = None) -> list[WaferRecord]:
    """Read every wafer in ``path`` with the reader its content or suffix calls for.

    ``pass_bins`` (CSV die lists with a bin column and no pass column) says which bin codes
    pass; default bin 1.
    """
    p = Path(path)
    if p.is_dir():
        raise FormatError(p, "is a folder; use expand_paths() to list the wafer files in it")
    suffix = p.suffix.lower()
    start = head(p)
    if not start and not p.exists():
        raise FormatError(p, "cannot open (no such file)")
    if start.startswith(_ZIP_MAGIC):
        if is_wdm(p):
            return read_wdm(p)
        if is_wm811k_npz(p) or suffix == wm811k.SUFFIX:
            return read_wm811k_npz(p)
        if suffix == WDM_SUFFIX:  # a broken .wdm: let its reader say what is wrong
            return read_wdm(p)
        raise UnsupportedFormatError(p, "a zip archive that is neither a WaferDesk .wdm nor a WM-811K .npz")
    if start.startswith(_PNG_MAGIC) or suffix == ".png":
        raise UnsupportedFormatError(p, "PNG pictures are written by WaferDesk but cannot be read as wafer maps")
    if is_pickle(start) or suffix in wm811k_pickle.SUFFIXES:
        return read_wm811k_pkl(p)
    if semi_xml.looks_like_xml(start) or suffix in semi_xml.SUFFIXES:
        return read_semi_xml(p)
    if suffix in csv_dies.SUFFIXES:
        return read_csv(p, pass_bins)
    if suffix in (WDM_SUFFIX, wm811k.SUFFIX):  # right name, wrong content
        return read_wdm(p) if suffix == WDM_SUFFIX else read_wm811k_npz(p)
    raise UnsupportedFormatError(p, f"unsupported file type {p.suffix!r}; readable: {', '.join(READABLE_SUFFIXES)}")


def write_any(path: str | Path, records: Iterable[WaferRecord | WaferMap]) -> list[Path]:
    """Write ``records`` in the format the suffix of ``path`` names; returns the files written.

    Formats other than ``.wdm`` and ``.csv`` do not carry label masks (a PNG draws them).
    """
    p = Path(path)
    recs = [r if isinstance(r, WaferRecord) else WaferRecord(r) for r in records]
    suffix = p.suffix.lower()
    if suffix == WDM_SUFFIX:
        return [write_wdm(p, recs)]
    if suffix == wm811k.SUFFIX:
        return [write_wm811k_npz(p, recs)]
    if suffix in (".xml", ".g85"):
        return [write_g85(p, recs)]
    if suffix == ".e142":
        return [write_e142(p, recs)]
    if suffix in csv_dies.SUFFIXES:
        return [write_csv(p, recs)]
    if suffix == ".png":
        return write_pngs(p, recs)
    raise UnsupportedFormatError(p, f"cannot write {p.suffix!r} files; writable: {', '.join(WRITABLE_SUFFIXES)}")


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


__all__ = [
    "READABLE_SUFFIXES",
    "WRITABLE_SUFFIXES",
    "expand_paths",
    "read_any",
    "read_csv",
    "read_semi_xml",
    "read_wdm",
    "read_wm811k_npz",
    "read_wm811k_pkl",
    "write_any",
    "write_csv",
    "write_e142",
    "write_g85",
    "write_png",
    "write_pngs",
    "write_wafers",
    "write_wdm",
    "write_wm811k_npz",
]
