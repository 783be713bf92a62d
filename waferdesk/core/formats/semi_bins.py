"""What SEMI G85 and E142 wafer maps share: safe XML parsing and bin-code rows.

Both formats write one text row of bin codes per die row and a table saying which codes
pass. XML is parsed with defusedxml: a document that declares entities (billion laughs) or
points at external ones (XXE) is refused before anything is expanded or fetched.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from ..errors import FormatError
from ..wafer import FAIL, NO_DIE, PASS, WaferMap
from ._files import read_bytes
from .limits import MAX_SIDE, MAX_XML_BYTES

BIN_TYPES = ("ASCII", "Decimal", "HexaDecimal")
NOTCH_OF_DEGREES = {0: "down", 90: "left", 180: "up", 270: "right"}
"""SEMI ``Orientation``: where the notch/flat points, in degrees clockwise from the bottom."""
DEGREES_OF_NOTCH = {v: k for k, v in NOTCH_OF_DEGREES.items()}


def parse_xml(path: Path) -> ET.Element:
    """Parse ``path`` with entity and external-reference protection and a size cap."""
    data = read_bytes(path, MAX_XML_BYTES, "XML")
    try:
        return fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise FormatError(
            path, f"refused: the XML declares entities or external references ({exc}); wafer maps need neither"
        ) from None
    except ET.ParseError as exc:
        raise FormatError(path, f"not well-formed XML ({exc})") from None


def local(tag: object) -> str:
    """Tag name without its namespace (``{http://www.semi.org}Map`` -> ``Map``)."""
    return tag.split("}")[-1] if isinstance(tag, str) else ""


def children(el: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in el if local(c.tag) == name]


def child(el: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in el if local(c.tag) == name), None)


def notch_of(path: Path, value: str | None) -> str:
    if value is None or not value.strip():
        return "down"
    try:
        deg = float(value) % 360
    except ValueError:
        raise FormatError(path, f"Orientation {value!r} is not a number of degrees") from None
    return NOTCH_OF_DEGREES[round(deg / 90.0) % 4 * 90]


class BinDecoder:
    """Turns the text rows of one map into an int32 grid of bin codes (-1 = no die).

    ``ASCII``: one character per die (or whitespace-separated tokens), the code is the
    character's code point. ``Decimal`` / ``HexaDecimal``: whitespace-separated numbers, or
    fixed-width fields when a row has no spaces (width from the longest code written in the
    bin table or ``NullBin``; two digits for hex when nothing says).
    """

    def __init__(self, path: Path, bin_type: str, null_bin: str, codes: list[str]) -> None:
        if bin_type not in BIN_TYPES:
            raise FormatError(path, f"BinType {bin_type!r} is not supported (supported: {', '.join(BIN_TYPES)})")
        self.path, self.type, self.null_text = path, bin_type, null_bin.strip()
        widths = [len(c.strip()) for c in [*codes, null_bin] if c.strip()]
        self.width = max(widths) if widths else (2 if bin_type == "HexaDecimal" else 1)
        self.null = self.code(self.null_text, "NullBin") if self.null_text else None

    def code(self, token: str, where: str) -> int:
        if self.type == "ASCII":
            if len(token) != 1:
                raise FormatError(self.path, f"{where}: ASCII bin code {token!r} is not one character")
            return ord(token)
        try:
            value = int(token, 16 if self.type == "HexaDecimal" else 10)
        except ValueError:
            raise FormatError(self.path, f"{where}: {token!r} is not a {self.type} bin code") from None
        if not 0 <= value < 2**31:
            raise FormatError(self.path, f"{where}: bin code {token!r} out of range")
        return value

    def tokens(self, text: str, where: str) -> list[str]:
        text = text.strip()
        if any(ch.isspace() for ch in text):
            return text.split()
        if self.type == "ASCII":
            return list(text)
        if len(text) % self.width:
            raise FormatError(
                self.path, f"{where}: {len(text)} characters is not a whole number of {self.width}-digit codes"
            )
        return [text[i : i + self.width] for i in range(0, len(text), self.width)]

    def grid(self, rows: list[str], what: str) -> np.ndarray:
        if not rows:
            raise FormatError(self.path, f"{what}: no rows of bin codes")
        if len(rows) > MAX_SIDE:
            raise FormatError(self.path, f"{what}: {len(rows)} rows, over the limit of {MAX_SIDE}")
        out: list[list[int]] = []
        for r, text in enumerate(rows):
            where = f"{what} row {r + 1}"
            toks = self.tokens(text, where)
            if len(toks) > MAX_SIDE:
                raise FormatError(self.path, f"{where}: {len(toks)} dies, over the limit of {MAX_SIDE}")
            if out and len(toks) != len(out[0]):
                raise FormatError(self.path, f"{where}: {len(toks)} dies, but row 1 has {len(out[0])}")
            out.append([self.code(t, where) for t in toks])
        if not out[0]:
            raise FormatError(self.path, f"{what}: rows are empty")
        grid = np.array(out, dtype=np.int64)
        if self.null is not None:
            grid[grid == self.null] = -1
        return grid.astype(np.int32)


def check_size(path: Path, what: str, grid: np.ndarray, rows: str | None, cols: str | None) -> None:
    """Declared Rows/Columns, when given, must match the data (a truncated file shows here)."""
    for declared, actual, name in ((rows, grid.shape[0], "Rows"), (cols, grid.shape[1], "Columns")):
        if declared is None or not declared.strip():
            continue
        try:
            n = int(declared)
        except ValueError:
            raise FormatError(path, f"{what}: {name} {declared!r} is not a number") from None
        if n != actual:
            raise FormatError(path, f"{what}: declares {name}={n} but the data has {actual}")


def code_text(code: int, bin_type: str, width: int) -> str:
    if bin_type == "ASCII":
        return chr(code)
    return format(code, f"0{width}X" if bin_type == "HexaDecimal" else f"0{width}d")


def writable_bins(bins: np.ndarray, bin_pass: frozenset[int], prefer_ascii: bool) -> tuple[str, int, int]:
    """Choose (bin type, field width, null code) that can write ``bins`` losslessly."""
    used = sorted({int(v) for v in np.unique(bins) if v >= 0} | set(bin_pass))
    printable = [c for c in range(33, 127) if chr(c) not in "<>&\"'"]
    if prefer_ascii and all(c in printable for c in used):
        free = [c for c in (ord("."), *printable) if c not in used]
        if free:
            return "ASCII", 1, free[0]
    top = max(used, default=1)
    width = len(str(top))
    null = 10**width - 1
    if null in used:
        width += 1
        null = 10**width - 1
    return "Decimal", width, null


def bins_to_write(w: WaferMap, path: Path) -> tuple[np.ndarray, frozenset[int], bool]:
    """The codes to write: the map's own bins, or '1' pass / 'X' fail when it has none."""
    if w.bins is None or w.bin_pass is None:
        bins = np.where(w.dies == PASS, ord("1"), np.where(w.dies == FAIL, ord("X"), -1)).astype(np.int32)
        return bins, frozenset({ord("1")}), True
    implied = np.where(w.bins < 0, NO_DIE, np.where(np.isin(w.bins, list(w.bin_pass)), PASS, FAIL))
    if not np.array_equal(implied, w.dies):
        raise FormatError(path, f"wafer {w.name}: its bin codes disagree with its pass/fail grid; not written")
    return w.bins, w.bin_pass, w.extra.get("bin_type") == "ASCII"


def write_xml(out: Path, root: ET.Element) -> Path:
    """Write a document atomically (temp file renamed into place), indented for people."""
    tree = ET.ElementTree(root)
    ET.indent(tree, space=" ")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    try:
        tree.write(tmp, encoding="utf-8", xml_declaration=True)
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise FormatError(out, f"cannot write ({exc.strerror or exc})") from None
    return out
