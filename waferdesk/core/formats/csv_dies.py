"""Plain-text die lists: one die per line, ``x, y`` and a bin code or a pass/fail result.

The most common thing a tester or a spreadsheet can export. Columns are found by a header
line (case and ``_``/``-``/space ignored): ``x``/``col``, ``y``/``row``, ``bin`` (passing
bins given by ``pass_bins``, default ``{1}``) and/or ``pass`` (pass/fail, p/f, 1/0,
true/false, good/bad), optional ``lot`` and ``wafer`` (several wafers per file, grouped by
lot + wafer in order of appearance) and optional ``class`` (a taxonomy class per failing die,
so a label mask travels too). Without a header the file must have three numeric columns
``x, y, bin``. Separators: comma, semicolon, tab or spaces; ``#`` starts a comment line.

``y`` grows downwards (row index), as in every picture WaferDesk draws. Dies not listed are
"no die". Coordinates may start anywhere; the smallest x/y of a wafer become column/row 0 and
are remembered in ``extra`` (``csv_x0``/``csv_y0``) so writing it back gives the same numbers.
"""

from __future__ import annotations

import csv
import itertools
import math
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FormatError, ValidationError
from ..records import WaferRecord
from ..taxonomy import IGNORE, default_taxonomy
from ..wafer import FAIL, NO_DIE, PASS, LabelMask, WaferMap
from ._files import file_size, head
from .limits import MAX_COORD, MAX_SIDE, MAX_TEXT_BYTES

SUFFIXES = (".csv", ".txt")
DEFAULT_PASS_BINS = frozenset({1})
_ALIASES = {
    "x": {"x", "col", "column", "diex", "xcoord", "xindex", "xpos"},
    "y": {"y", "row", "diey", "ycoord", "yindex", "ypos"},
    "bin": {"bin", "bincode", "hbin", "hardbin", "softbin", "sbin", "binnumber"},
    "pass": {"pass", "pf", "passfail", "result", "status", "ispass"},
    "lot": {"lot", "lotid", "lotname"},
    "wafer": {"wafer", "waferid", "waferindex", "waferno", "slot"},
    "class": {"class", "label", "pattern", "defectclass"},
}
_PASS_WORDS = {"pass": 1, "p": 1, "1": 1, "true": 1, "good": 1, "fail": 0, "f": 0, "0": 0, "false": 0, "bad": 0}


def _norm(name: str) -> str:
    return "".join(ch for ch in name.strip().lower() if ch not in " _-.")


@dataclass
class _Wafer:
    """Columns of one wafer's dies, kept in compact arrays while the file is read."""

    x: array = field(default_factory=lambda: array("q"))
    y: array = field(default_factory=lambda: array("q"))
    bin: array = field(default_factory=lambda: array("q"))  # -1 = not given
    ok: array = field(default_factory=lambda: array("b"))  # 1 pass, 0 fail, -1 not given
    cls: array = field(default_factory=lambda: array("B"))  # IGNORE = none
    line: array = field(default_factory=lambda: array("q"))


def _int(path: Path, line: int, name: str, value: str) -> int:
    try:
        return int(value)  # the common case, fast
    except ValueError:
        pass
    try:
        num = float(value)
    except ValueError:
        raise FormatError(path, f"line {line}: {name} {value!r} is not an integer") from None
    if not math.isfinite(num) or num != int(num):
        raise FormatError(path, f"line {line}: {name} {value!r} is not an integer")
    return int(num)


def _rows(path: Path, encoding: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every non-empty, non-comment line, with the separator sniffed once.

    Streams the file (memory stays at the compact per-wafer arrays) through one csv reader;
    comment lines reach it as empty lines so its line count stays the file's.
    """
    with path.open(encoding=encoding, newline="") as fh:
        before = 0  # blank and comment lines ahead of the first row
        for first in fh:
            if first.strip() and not first.lstrip().startswith("#"):
                break
            before += 1
        else:
            return
        delim = next((d for d in (",", ";", "\t") if d in first), None)
        lines = itertools.chain([first], fh)
        if delim is None:
            for n, raw in enumerate(lines, before + 1):
                if (fields := raw.split()) and not fields[0].startswith("#"):
                    yield n, fields
            return
        reader = csv.reader((("\n" if ln.lstrip().startswith("#") else ln) for ln in lines), delimiter=delim)
        for fields in reader:
            if fields and any(f.strip() for f in fields):
                yield reader.line_num + before, [f.strip() for f in fields]


def _header(path: Path, n: int, fields: list[str]) -> dict[str, int] | None:
    """Column index per role from a header line, or None when the line is data."""
    found: dict[str, int] = {}
    for i, name in enumerate(fields):
        key = _norm(name)
        for role, names in _ALIASES.items():
            if key in names and role not in found:
                found[role] = i
    if not found:
        try:
            [float(f) for f in fields]
        except ValueError:
            raise FormatError(
                path, f"line {n}: header {fields} names none of the columns x, y, bin, pass, lot, wafer, class"
            ) from None
        return None
    missing = [r for r in ("x", "y") if r not in found]
    if missing or ("bin" not in found and "pass" not in found):
        need = ", ".join(missing + ([] if "bin" in found or "pass" in found else ["bin or pass"]))
        raise FormatError(path, f"line {n}: header {fields} lacks the column(s) {need}")
    return found


def read_csv(path: str | Path, pass_bins: Iterable[int] | None = None) -> list[WaferRecord]:
    """Read a die list; ``pass_bins`` says which bin codes pass when there is no pass column."""
    src = Path(path)
    file_size(src, MAX_TEXT_BYTES, "text")
    if b"\0" in head(src, 4096):
        raise FormatError(src, "is a binary file, not a text die list")
    try:
        return _read(src, "utf-8-sig", pass_bins)
    except UnicodeDecodeError:  # not UTF-8: spreadsheets on Windows often write Latin-1
        return _read(src, "latin-1", pass_bins)
    except OSError as exc:
        raise FormatError(src, f"cannot read ({exc.strerror or exc})") from None


def _read(src: Path, encoding: str, pass_bins: Iterable[int] | None) -> list[WaferRecord]:
    good_bins = frozenset(int(b) for b in pass_bins) if pass_bins is not None else DEFAULT_PASS_BINS
    tax = default_taxonomy()
    class_of = {name.lower(): i for i, name in enumerate(tax.names)}
    cols: dict[str, int] | None = None
    wafers: dict[tuple[str, str], _Wafer] = {}
    ix = iy = need = 0
    ib = ip = il = iw = ic = -1
    for n, fields in _rows(src, encoding):
        if cols is None:
            cols = _header(src, n, fields)
            is_header = cols is not None
            if cols is None:
                if len(fields) != 3:
                    raise FormatError(src, f"line {n}: without a header line each row must be x, y, bin (3 columns)")
                cols = {"x": 0, "y": 1, "bin": 2}
            ix, iy = cols["x"], cols["y"]
            ib, ip, il, iw, ic = (cols.get(k, -1) for k in ("bin", "pass", "lot", "wafer", "class"))
            need = max(cols.values()) + 1
            if is_header:
                continue
        if len(fields) < need:
            raise FormatError(src, f"line {n}: {len(fields)} columns, the header needs {need}")
        x, y = _int(src, n, "x", fields[ix]), _int(src, n, "y", fields[iy])
        if abs(x) > MAX_COORD or abs(y) > MAX_COORD:
            raise FormatError(src, f"line {n}: die ({x}, {y}) lies outside ±{MAX_COORD}; not a die coordinate")
        key = (fields[il] if il >= 0 else "", fields[iw] if iw >= 0 else "")
        w = wafers.get(key)
        if w is None:
            w = wafers[key] = _Wafer()
        code = -1
        if ib >= 0 and (b := fields[ib]):
            code = _int(src, n, "bin", b)
            if not 0 <= code < 2**31:
                raise FormatError(src, f"line {n}: bin {b!r} is not a bin code 0..{2**31 - 1}")
        elif ip < 0:
            raise FormatError(src, f"line {n}: empty bin and no pass column")
        ok = -1
        if ip >= 0:
            ok = _PASS_WORDS.get(fields[ip].lower(), -1)
            if ok < 0:
                words = "pass/fail, p/f, 1/0, true/false, good/bad"
                raise FormatError(src, f"line {n}: pass/fail value {fields[ip]!r} is not one of {words}")
        cls = IGNORE
        if ic >= 0 and (name := fields[ic]):
            cls = class_of.get(name.lower(), -1)
            if cls < 0:
                raise FormatError(src, f"line {n}: class {name!r} is not one of {', '.join(tax.names)}")
        w.x.append(x)
        w.y.append(y)
        w.bin.append(code)
        w.ok.append(ok)
        w.cls.append(cls)
        w.line.append(n)
    if not wafers:
        raise FormatError(src, "holds no dies")
    return [_build(src, key, w, good_bins, cols is not None and "class" in cols) for key, w in wafers.items()]


def _build(src: Path, key: tuple[str, str], w: _Wafer, good_bins: frozenset[int], has_class: bool) -> WaferRecord:
    lot, wafer_id = key
    name = f"wafer {lot or '?'}/{wafer_id or '?'}" if any(key) else "the wafer"
    x, y = np.frombuffer(w.x, np.int64), np.frombuffer(w.y, np.int64)
    lines = np.frombuffer(w.line, np.int64)
    x0, y0 = int(x.min()), int(y.min())
    h, wd = int(y.max()) - y0 + 1, int(x.max()) - x0 + 1
    if h > MAX_SIDE or wd > MAX_SIDE:
        axis, vals = ("x", x) if wd > MAX_SIDE else ("y", y)
        raise FormatError(
            src,
            f"{name}: {axis} runs from {int(vals.min())} (line {int(lines[vals.argmin()])}) to {int(vals.max())} "
            f"(line {int(lines[vals.argmax()])}), more than {MAX_SIDE} dies across",
        )
    flat = (y - y0) * wd + (x - x0)
    order = np.argsort(flat, kind="stable")
    dup = np.nonzero(np.diff(flat[order]) == 0)[0]
    if dup.size:
        i, j = order[dup[0]], order[dup[0] + 1]
        raise FormatError(src, f"line {lines[j]}: die ({x[i]}, {y[i]}) of {name} was already given on line {lines[i]}")
    bins_col, ok = np.frombuffer(w.bin, np.int64), np.frombuffer(w.ok, np.int8)
    has_bins = bins_col >= 0
    if has_bins.any() and not has_bins.all():
        raise FormatError(
            src, f"line {int(lines[np.argmin(has_bins)])}: {name} gives bins for some dies but not this one"
        )
    if (ok >= 0).all():
        passed = ok == 1
        if has_bins.all():
            good = set(np.unique(bins_col[passed]).tolist())
            clash = np.isin(bins_col, list(good)) & ~passed
            if clash.any():
                i = int(np.argmax(clash))
                j = int(np.argmax(passed & (bins_col == bins_col[i])))
                raise FormatError(
                    src, f"line {int(lines[i])}: bin {int(bins_col[i])} fails here but passes on line {int(lines[j])}"
                )
            bin_pass: frozenset[int] | None = frozenset(int(v) for v in good)
        else:
            bin_pass = None
    else:
        passed = np.isin(bins_col, list(good_bins))
        bin_pass = good_bins
    dies = np.full((h, wd), NO_DIE, np.uint8)
    dies.ravel()[flat] = np.where(passed, PASS, FAIL)
    bins = None
    if bin_pass is not None:
        bins = np.full((h, wd), -1, np.int32)
        bins.ravel()[flat] = bins_col
    cls = np.frombuffer(w.cls, np.uint8)
    wrong = (cls != IGNORE) & passed
    if wrong.any():
        i = int(np.argmax(wrong))
        raise FormatError(src, f"line {int(lines[i])}: a class on a passing die; only failing dies carry a class")
    try:
        wafer = WaferMap(
            dies=dies,
            lot=lot,
            wafer_id=wafer_id,
            source=f"csv:{src.name}",
            bins=bins,
            bin_pass=bin_pass,
            extra={"csv_x0": str(x0), "csv_y0": str(y0)},
        )
    except ValidationError as exc:
        raise FormatError(src, f"{name}: {exc}") from None
    mask = None
    if has_class and (cls != IGNORE).any():
        labels = np.full((h, wd), IGNORE, np.uint8)
        labels.ravel()[flat] = cls
        mask = LabelMask(labels)
    return WaferRecord(wafer, mask)


def write_csv(path: str | Path, records: Iterable[WaferRecord | WaferMap]) -> Path:
    """Write every on-wafer die of every record: lot, wafer, x, y, [bin], pass, [class]."""
    out = Path(path)
    recs = [r if isinstance(r, WaferRecord) else WaferRecord(r) for r in records]
    names = default_taxonomy().names
    with_bins = any(r.wafer.bins is not None for r in recs)
    with_class = any(r.mask is not None for r in recs)
    header = ["lot", "wafer", "x", "y", *(["bin"] if with_bins else []), "pass", *(["class"] if with_class else [])]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    try:
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            wr = csv.writer(fh)
            wr.writerow(header)
            for r in recs:
                w = r.wafer
                x0, y0 = int(w.extra.get("csv_x0", 0)), int(w.extra.get("csv_y0", 0))
                rows, cols = np.nonzero(w.dies != NO_DIE)
                for rr, cc in zip(rows.tolist(), cols.tolist(), strict=True):
                    line = [w.lot, w.wafer_id, cc + x0, rr + y0]
                    if with_bins:
                        line.append(int(w.bins[rr, cc]) if w.bins is not None else "")
                    line.append("pass" if w.dies[rr, cc] == PASS else "fail")
                    if with_class:
                        lab = int(r.mask.labels[rr, cc]) if r.mask is not None else IGNORE
                        line.append(names[lab] if lab != IGNORE else "")
                    wr.writerow(line)
        tmp.replace(out)
    except (OSError, ValueError) as exc:
        tmp.unlink(missing_ok=True)
        raise FormatError(out, f"cannot write ({exc})") from None
    return out
