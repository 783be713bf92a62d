"""CSV die lists: round trips (maps, bins, masks, several wafers), header variants, bad rows."""

from __future__ import annotations

import numpy as np
import pytest

from waferdesk.core.errors import FormatError
from waferdesk.core.formats import read_any, read_csv, write_csv
from waferdesk.core.records import WaferRecord
from waferdesk.core.synth import generate
from waferdesk.core.taxonomy import IGNORE
from waferdesk.core.wafer import WaferMap


def _crop(arr: np.ndarray, on: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(on)
    return arr[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def test_round_trip_of_several_wafers_with_masks_and_bins(tmp_path) -> None:
    recs = list(generate(4, seed=11))
    codes = np.array([[-1, 1, 7], [3, 1, -1]])
    recs.append(WaferRecord(WaferMap.from_bins(codes, {1, 3}, lot="LX", wafer_id="09")))
    path = write_csv(tmp_path / "dies.csv", recs)
    back = read_any(path)
    assert len(back) == len(recs)
    for a, b in zip(recs, back, strict=True):
        assert (a.wafer.lot, a.wafer.wafer_id) == (b.wafer.lot, b.wafer.wafer_id)
        on = a.wafer.dies != 0
        assert np.array_equal(_crop(a.wafer.dies, on), b.wafer.dies)  # a die list has no empty margin
        if a.mask is not None:
            assert np.array_equal(_crop(a.mask.labels, on), b.mask.labels)
            b.mask.validate(b.wafer, complete=True)
    assert np.array_equal(back[-1].wafer.bins, codes) and back[-1].wafer.bin_pass == frozenset({1, 3})
    again = write_csv(tmp_path / "again.csv", back)
    assert again.read_text() == path.read_text()  # coordinates come back exactly as read


def test_header_variants_and_separators(tmp_path) -> None:
    cases = {
        "semi.csv": "# exported by a prober\nX;Y;Result\n10;-3;P\n11;-3;F\n10;-2;pass\n",
        "tabs.txt": "col\trow\tpass\n10\t-3\tTRUE\n11\t-3\tfalse\n10\t-2\t1\n",
        "spaces.txt": "die_x die_y HBin\n10 -3 1\n11 -3 5\n10 -2 1\n",
        "bare.csv": "10,-3,1\n11,-3,9\n10,-2,1\n",
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        (rec,) = read_any(tmp_path / name)
        assert rec.wafer.dies.tolist() == [[1, 2], [1, 0]], name
        assert (rec.wafer.extra["csv_x0"], rec.wafer.extra["csv_y0"]) == ("10", "-3")


def test_pass_bins_choose_which_bins_pass(tmp_path) -> None:
    (tmp_path / "b.csv").write_text("x,y,bin\n0,0,1\n1,0,2\n2,0,3\n")
    assert read_csv(tmp_path / "b.csv")[0].wafer.dies.tolist() == [[1, 2, 2]]
    (rec,) = read_any(tmp_path / "b.csv", pass_bins=[1, 2])
    assert rec.wafer.dies.tolist() == [[1, 1, 2]] and rec.wafer.bin_pass == frozenset({1, 2})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x,y,bin\n0,0,1\n1,zero,1\n", r"line 3: y 'zero' is not an integer"),
        ("x,y,bin\n0,0,1\n1.5,0,1\n", r"line 3: x '1.5' is not an integer"),
        ("x,y,bin\n0,0,1\n1000000000,0,1\n", r"line 3: die \(1000000000, 0\) lies outside"),
        (
            "x,y,bin\n0,0,1\n5000,0,1\n",
            r"the wafer: x runs from 0 \(line 2\) to 5000 \(line 3\), more than 4096 dies across",
        ),
        ("x,y,bin\n0,0,1\n1,0,1\n0,0,2\n", r"line 4: die \(0, 0\) of the wafer was already given on line 2"),
        ("x,y,pass\n0,0,maybe\n", r"line 2: pass/fail value 'maybe' is not one of"),
        ("x,y,pass,class\n0,0,fail,blob\n", r"line 2: class 'blob' is not one of edge, center"),
        ("x,y,pass,class\n0,0,pass,edge\n", r"line 2: a class on a passing die"),
        ("x,yy,bin\n0,0,1\n", r"line 1: header \['x', 'yy', 'bin'\] lacks the column\(s\) y"),
        ("foo,bar\n1,2\n", r"line 1: header \['foo', 'bar'\] names none of the columns"),
        ("1,2,3,4\n", r"line 1: without a header line each row must be x, y, bin"),
        ("x,y,bin\n0,0\n", r"line 2: 2 columns, the header needs 3"),
        ("x,y,bin,pass\n0,0,1,pass\n1,0,1,fail\n", r"line 3: bin 1 fails here but passes on line 2"),
        ("# nothing\n\n", "holds no dies"),
    ],
)
def test_bad_rows_get_line_numbers(tmp_path, text, message) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(FormatError, match=r"bad\.csv: " + message):
        read_any(path)


def test_binary_file_with_csv_suffix(tmp_path) -> None:
    (tmp_path / "x.csv").write_bytes(b"\x00\x01\x02garbage" * 10)
    with pytest.raises(FormatError, match=r"x\.csv: is a binary file"):
        read_any(tmp_path / "x.csv")


def test_wafers_are_grouped_by_lot_and_wafer(tmp_path) -> None:
    text = "lot,wafer,x,y,pass\nA,1,0,0,p\nB,1,0,0,f\nA,2,0,0,p\nA,1,1,0,f\n"
    (tmp_path / "g.csv").write_text(text)
    recs = read_any(tmp_path / "g.csv")
    assert [(r.wafer.lot, r.wafer.wafer_id, r.wafer.dies.tolist()) for r in recs] == [
        ("A", "1", [[1, 2]]),
        ("B", "1", [[2]]),
        ("A", "2", [[1]]),
    ]
    assert all(r.mask is None for r in recs)
    assert IGNORE == 255


def test_latin1_files_from_spreadsheets_read(tmp_path) -> None:
    (tmp_path / "l.csv").write_bytes("# Los caf\xe9\nx;y;pass\n1;2;p\n3;2;f\n".encode("latin-1"))
    (rec,) = read_any(tmp_path / "l.csv")
    assert rec.wafer.dies.tolist() == [[1, 0, 2]]
