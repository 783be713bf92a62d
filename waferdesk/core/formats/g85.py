"""SEMI G85 XML wafer maps (``<Maps><Map><Device><Bin/>...<Data><Row/>``).

A ``Device`` holds the map: ``Bin`` elements name each bin code and whether it passes
(``BinQuality``), ``Row`` elements (inside ``Data``, or directly inside ``Device`` as some
tools write) hold one code per die, ``NullBin`` marks cells without a die. Each device
becomes one :class:`WaferMap` with the bin codes kept (``bins`` / ``bin_pass``), so nothing
the tester wrote is lost. Codes used in the map but missing from the bin table count as
fails and are listed in ``extra["undefined_bins"]``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import FormatError, ValidationError
from ..records import WaferRecord
from ..wafer import WaferMap
from .semi_bins import (
    DEGREES_OF_NOTCH,
    BinDecoder,
    bins_to_write,
    check_size,
    child,
    children,
    code_text,
    local,
    notch_of,
    write_xml,
)
from .semi_bins import writable_bins as choose_bin_type

SUFFIXES = (".xml", ".g85")
NAMESPACE = "http://www.semi.org"
FORMAT_REVISION = "SEMI G85 0703"


def _um_to_mm(path: Path, x: str | None, y: str | None) -> tuple[float, float] | None:
    if not x or not y:
        return None
    try:
        px, py = float(x) / 1000.0, float(y) / 1000.0
    except ValueError:
        raise FormatError(path, f"DeviceSizeX/Y {x!r}/{y!r} are not numbers") from None
    return (px, py) if px > 0 and py > 0 and np.isfinite(px) and np.isfinite(py) else None


def _device(path: Path, map_el: ET.Element, dev: ET.Element, what: str) -> WaferMap:
    a = dev.attrib
    bins_el = children(dev, "Bin")
    table: dict[str, bool] = {}
    for b in bins_el:
        code = b.get("BinCode")
        if code is None:
            raise FormatError(path, f"{what}: a <Bin> has no BinCode")
        table.setdefault(code.strip(), (b.get("BinQuality") or "").strip().lower() == "pass")
    data = child(dev, "Data")
    row_els = children(data if data is not None else dev, "Row")
    decoder = BinDecoder(path, a.get("BinType", "ASCII"), a.get("NullBin", ""), list(table))
    grid = decoder.grid([r.text or "" for r in row_els], what)
    check_size(path, what, grid, a.get("Rows"), a.get("Columns"))
    passing = {decoder.code(c, f"{what} BinCode") for c, ok in table.items() if ok}
    defined = {decoder.code(c, f"{what} BinCode") for c in table}
    used = {int(v) for v in np.unique(grid) if v >= 0}
    extra = {"bin_type": decoder.type}
    if undefined := sorted(used - defined):
        extra["undefined_bins"] = ",".join(code_text(c, decoder.type, decoder.width) for c in undefined[:50])
    for key in ("WaferSize", "SupplierName", "CreateDate", "OriginLocation"):
        if a.get(key):
            extra[key[0].lower() + key[1:]] = a[key]
    try:
        return WaferMap.from_bins(
            grid,
            passing,
            no_die=-1,
            lot=(a.get("LotId") or "").strip(),
            wafer_id=(map_el.get("SubstrateId") or "").strip(),
            product=(a.get("ProductId") or "").strip(),
            notch=notch_of(path, a.get("Orientation")),
            die_pitch=_um_to_mm(path, a.get("DeviceSizeX"), a.get("DeviceSizeY")),
            source=f"g85:{path.name}",
            extra=extra,
        )
    except ValidationError as exc:
        raise FormatError(path, f"{what}: {exc}") from None


def maps_from_root(path: Path, root: ET.Element) -> list[WaferRecord]:
    """Every device of a parsed G85 document (root ``Maps`` or a single ``Map``)."""
    map_els = [root] if local(root.tag) == "Map" else children(root, "Map")
    out: list[WaferRecord] = []
    for m, map_el in enumerate(map_els, 1):
        devices = children(map_el, "Device")
        for d, dev in enumerate(devices, 1):
            what = f"Map {m}" + (f" Device {d}" if len(devices) > 1 else "")
            out.append(WaferRecord(_device(path, map_el, dev, what)))
    if not out:
        raise FormatError(path, "a G85 document without any <Map><Device> wafer map")
    return out


def _add_device(map_el: ET.Element, w: WaferMap, path: Path) -> None:
    bins, bin_pass, ascii_ok = bins_to_write(w, path)
    bin_type, width, null = choose_bin_type(bins, bin_pass, ascii_ok)
    attrs = {
        "BinType": bin_type,
        "NullBin": code_text(null, bin_type, width),
        "Rows": str(w.shape[0]),
        "Columns": str(w.shape[1]),
        "MapType": "Array",
        "Orientation": str(DEGREES_OF_NOTCH[w.notch]),
    }
    if w.lot:
        attrs["LotId"] = w.lot
    if w.product:
        attrs["ProductId"] = w.product
    if w.die_pitch:
        attrs["DeviceSizeX"], attrs["DeviceSizeY"] = (f"{v * 1000:g}" for v in w.die_pitch)
    dev = ET.SubElement(map_el, "Device", attrs)
    codes, counts = np.unique(bins[bins >= 0], return_counts=True)
    count = dict(zip(codes.tolist(), counts.tolist(), strict=True))
    for code in sorted(set(count) | set(bin_pass)):
        ET.SubElement(
            dev,
            "Bin",
            {
                "BinCode": code_text(code, bin_type, width),
                "BinCount": str(count.get(code, 0)),
                "BinQuality": "Pass" if code in bin_pass else "Fail",
            },
        )
    data = ET.SubElement(dev, "Data")
    sep = "" if bin_type == "ASCII" else " "
    for row in np.where(bins < 0, null, bins):
        ET.SubElement(data, "Row").text = sep.join(code_text(int(c), bin_type, width) for c in row)


def write_g85(path: str | Path, records: Iterable[WaferRecord | WaferMap]) -> Path:
    """Write maps as one G85 document, one ``<Map>`` per wafer (masks are not part of G85)."""
    out = Path(path)
    root = ET.Element("Maps")
    for r in records:
        w = r.wafer if isinstance(r, WaferRecord) else r
        attrs = {"xmlns": NAMESPACE, "FormatRevision": FORMAT_REVISION, "SubstrateType": "Wafer"}
        if w.wafer_id:
            attrs["SubstrateId"] = w.wafer_id
        _add_device(ET.SubElement(root, "Map", attrs), w, out)
    return write_xml(out, root)
