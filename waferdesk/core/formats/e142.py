"""SEMI E142 substrate maps (``<MapData>``), the XML successor of G85.

Read: each ``SubstrateMap`` with a ``BinCodeMap`` becomes a wafer. Which codes pass comes
from ``BinDefinitions``: ``BinQuality="Pass"``, or ``Pick="true"`` where no quality is given
(E142 marks the dies to pick, i.e. the good ones). Lot ids come from the matching
``Substrate``, the die size from the device ``Layout`` (its ``DefaultUnits``). Write: a
minimal document of the same shape, so maps can be handed to E142 tools.
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

NAMESPACE = "urn:semi-org:xsd.E142-1.V1005.SubstrateMap"
_TO_MM = {"mm": 1.0, "millimeter": 1.0, "micron": 1e-3, "um": 1e-3, "micrometer": 1e-3, "nm": 1e-6, "cm": 10.0}


def _layouts(root: ET.Element) -> dict[str, tuple[tuple[float, float] | None, str]]:
    """LayoutId -> (die size in mm or None, product id) for every ``Layout`` with a ``DeviceSize``.

    The wafer-level layout (``Dimension`` 1 x 1, whose ``DeviceSize`` is the wafer) is skipped.
    """
    out: dict[str, tuple[tuple[float, float] | None, str]] = {}
    for layout in root.iter():
        if local(layout.tag) != "Layout":
            continue
        dim, size, prod = child(layout, "Dimension"), child(layout, "DeviceSize"), child(layout, "ProductId")
        if dim is not None and dim.get("X") == "1" and dim.get("Y") == "1":
            continue
        pitch = None
        scale = _TO_MM.get((layout.get("DefaultUnits") or "micron").strip().lower())
        if size is not None and scale:
            try:
                x, y = float(size.get("X", "")) * scale, float(size.get("Y", "")) * scale
            except ValueError:
                x = y = float("nan")
            if x > 0 and y > 0 and np.isfinite(x) and np.isfinite(y):
                pitch = (x, y)
        out[layout.get("LayoutId", "")] = (pitch, (prod.text or "").strip() if prod is not None else "")
    return out


def _lots(root: ET.Element) -> dict[str, tuple[str, str]]:
    """SubstrateId -> (lot id, slot number) from the ``Substrates`` section."""
    out: dict[str, tuple[str, str]] = {}
    for sub in root.iter():
        if local(sub.tag) == "Substrate" and sub.get("SubstrateId") is not None:
            lot, slot = child(sub, "LotId"), child(sub, "SlotNumber")
            out[sub.get("SubstrateId", "")] = (
                (lot.text or "").strip() if lot is not None else "",
                (slot.text or "").strip() if slot is not None else "",
            )
    return out


def _passes(d: ET.Element) -> bool:
    quality = (d.get("BinQuality") or "").strip().lower()
    if quality:
        return quality == "pass"
    return (d.get("Pick") or "").strip().lower() == "true"


def maps_from_root(path: Path, root: ET.Element) -> list[WaferRecord]:
    layouts = _layouts(root)
    fallback = next(iter(layouts.values()), (None, ""))
    lots = _lots(root)
    out: list[WaferRecord] = []
    smaps = [el for el in root.iter() if local(el.tag) == "SubstrateMap"]
    for m, smap in enumerate(smaps, 1):
        what = f"SubstrateMap {m}"
        bcm = next((el for el in smap.iter() if local(el.tag) == "BinCodeMap"), None)
        if bcm is None:
            continue
        defs_el = child(bcm, "BinDefinitions")
        defs = children(defs_el, "BinDefinition") if defs_el is not None else []
        if any(d.get("BinCode") is None for d in defs):
            raise FormatError(path, f"{what}: a <BinDefinition> has no BinCode")
        table = {(d.get("BinCode") or "").strip(): _passes(d) for d in defs}
        decoder = BinDecoder(path, bcm.get("BinType", "ASCII"), bcm.get("NullBin", ""), list(table))
        grid = decoder.grid([el.text or "" for el in children(bcm, "BinCode")], what)
        check_size(path, what, grid, None, None)
        passing = {decoder.code(c, f"{what} BinCode") for c, ok in table.items() if ok}
        defined = {decoder.code(c, f"{what} BinCode") for c in table}
        extra = {"bin_type": decoder.type}
        used = {int(v) for v in np.unique(grid) if v >= 0}
        if undefined := sorted(used - defined):
            extra["undefined_bins"] = ",".join(code_text(c, decoder.type, decoder.width) for c in undefined[:50])
        sid = (smap.get("SubstrateId") or "").strip()
        lot, slot = lots.get(sid, ("", ""))
        spec = (smap.get("LayoutSpecifier") or "").strip().split("/")[-1]
        pitch, product = layouts.get(spec, fallback)
        if slot:
            extra["slot"] = slot
        try:
            wafer = WaferMap.from_bins(
                grid,
                passing,
                no_die=-1,
                lot=lot,
                wafer_id=sid,
                product=product,
                notch=notch_of(path, smap.get("Orientation")),
                die_pitch=pitch,
                source=f"e142:{path.name}",
                extra=extra,
            )
        except ValidationError as exc:
            raise FormatError(path, f"{what}: {exc}") from None
        out.append(WaferRecord(wafer))
    if not out:
        raise FormatError(path, "an E142 document without any <SubstrateMap> holding a <BinCodeMap>")
    return out


def write_e142(path: str | Path, records: Iterable[WaferRecord | WaferMap]) -> Path:
    """Write maps as one E142 ``MapData`` document (one layout per distinct die size)."""
    out = Path(path)
    wafers = [r.wafer if isinstance(r, WaferRecord) else r for r in records]
    root = ET.Element("MapData", {"xmlns": NAMESPACE})
    layouts = ET.SubElement(root, "Layouts")
    subs = ET.SubElement(root, "Substrates")
    smaps = ET.SubElement(root, "SubstrateMaps")
    for i, w in enumerate(wafers):
        sid = w.wafer_id or f"W{i + 1}"
        lay = ET.SubElement(layouts, "Layout", {"LayoutId": f"Devices{i + 1}", "DefaultUnits": "mm"})
        ET.SubElement(lay, "Dimension", {"X": str(w.shape[1]), "Y": str(w.shape[0])})
        if w.die_pitch:
            ET.SubElement(lay, "DeviceSize", {"X": f"{w.die_pitch[0]:g}", "Y": f"{w.die_pitch[1]:g}"})
        if w.product:
            ET.SubElement(lay, "ProductId").text = w.product
        sub = ET.SubElement(subs, "Substrate", {"SubstrateType": "Wafer", "SubstrateId": sid})
        ET.SubElement(sub, "LotId").text = w.lot
        smap = ET.SubElement(
            smaps,
            "SubstrateMap",
            {
                "SubstrateType": "Wafer",
                "SubstrateId": sid,
                "LayoutSpecifier": f"Devices{i + 1}",
                "Orientation": str(DEGREES_OF_NOTCH[w.notch]),
                "OriginLocation": "UpperLeft",
                "AxisDirection": "DownRight",
            },
        )
        bins, bin_pass, ascii_ok = bins_to_write(w, out)
        bin_type, width, null = choose_bin_type(bins, bin_pass, ascii_ok)
        overlay = ET.SubElement(smap, "Overlay", {"MapName": "BinMap", "MapVersion": "1"})
        bcm = ET.SubElement(overlay, "BinCodeMap", {"BinType": bin_type, "NullBin": code_text(null, bin_type, width)})
        defs = ET.SubElement(bcm, "BinDefinitions")
        codes, counts = np.unique(bins[bins >= 0], return_counts=True)
        count = dict(zip(codes.tolist(), counts.tolist(), strict=True))
        for code in sorted(set(count) | set(bin_pass)):
            ok = code in bin_pass
            ET.SubElement(
                defs,
                "BinDefinition",
                {
                    "BinCode": code_text(code, bin_type, width),
                    "BinCount": str(count.get(code, 0)),
                    "BinQuality": "Pass" if ok else "Fail",
                    "Pick": "true" if ok else "false",
                },
            )
        sep = "" if bin_type == "ASCII" else " "
        for row in np.where(bins < 0, null, bins):
            ET.SubElement(bcm, "BinCode").text = sep.join(code_text(int(c), bin_type, width) for c in row)
    return write_xml(out, root)
