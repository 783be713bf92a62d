"""Entry point for SEMI XML wafer maps: parse once (safely), then G85 or E142 by the root element."""

from __future__ import annotations

from pathlib import Path

from ..errors import FormatError
from ..records import WaferRecord
from . import e142, g85
from .semi_bins import local, parse_xml

SUFFIXES = (".xml", ".g85", ".e142")


def looks_like_xml(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return text.startswith(b"<?xml") or text.startswith(b"<Maps") or text.startswith(b"<MapData")


def read_semi_xml(path: str | Path) -> list[WaferRecord]:
    """Read a SEMI G85 (``<Maps>``/``<Map>``) or E142 (``<MapData>``) wafer-map file."""
    src = Path(path)
    root = parse_xml(src)
    kind = local(root.tag)
    if kind in ("Maps", "Map"):
        return g85.maps_from_root(src, root)
    if kind == "MapData":
        return e142.maps_from_root(src, root)
    raise FormatError(src, f"root element <{kind}> is neither a G85 <Maps>/<Map> nor an E142 <MapData> wafer map")
