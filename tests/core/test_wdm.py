from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from waferdesk.core.errors import FormatError
from waferdesk.core.formats import read_any, read_wdm, write_wdm
from waferdesk.core.records import WaferRecord
from waferdesk.core.synth import generate
from waferdesk.core.taxonomy import default_taxonomy
from waferdesk.core.wafer import WaferMap


def test_round_trip_keeps_maps_masks_and_metadata(tmp_path) -> None:
    recs = list(generate(30, seed=4))
    recs.append(WaferRecord(WaferMap.from_bins(np.array([[-1, 1], [5, 1]]), {1}, lot="B", die_pitch=(5.0, 6.5))))
    path = write_wdm(tmp_path / "a.wdm", recs)
    back = read_any(path)
    assert len(back) == len(recs)
    for a, b in zip(recs, back, strict=True):
        assert np.array_equal(a.wafer.dies, b.wafer.dies)
        assert a.wafer.content_hash() == b.wafer.content_hash()
        assert (a.wafer.lot, a.wafer.notch, a.wafer.die_pitch, a.wafer.extra) == (
            b.wafer.lot,
            b.wafer.notch,
            b.wafer.die_pitch,
            b.wafer.extra,
        )
        assert (a.mask is None) == (b.mask is None)
        if a.mask is not None:
            assert np.array_equal(a.mask.labels, b.mask.labels)
    assert back[-1].wafer.bins is not None and back[-1].wafer.bin_pass == frozenset({1})


def test_compact(tmp_path) -> None:
    recs = list(generate(200, seed=1))
    path = write_wdm(tmp_path / "a.wdm", recs)
    cells = sum(r.wafer.dies.size for r in recs)
    assert path.stat().st_size < cells * 0.6  # maps + masks well under a byte per die


def _rewrite(src, dst, **replace):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, replace.get(name, zin.read(name)))


def test_hostile_and_broken_files_get_clear_errors(tmp_path) -> None:
    good = write_wdm(tmp_path / "g.wdm", list(generate(3, seed=0)))
    cases = {
        "notzip.wdm": b"hello",
        "trunc.wdm": good.read_bytes()[:200],
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(FormatError, match=name):
            read_wdm(tmp_path / name)
    header = json.dumps({"format": "waferdesk-maps", "version": 1, "classes": ["a"], "count": 3})
    _rewrite(good, tmp_path / "cls.wdm", **{"header.json": header})
    with pytest.raises(FormatError, match="labelled with classes"):
        read_wdm(tmp_path / "cls.wdm")
    with zipfile.ZipFile(good) as z:
        hdr = json.loads(z.read("header.json"))
    hdr["count"] = 10**9
    _rewrite(good, tmp_path / "count.wdm", **{"header.json": json.dumps(hdr)})
    with pytest.raises(FormatError, match="count"):
        read_wdm(tmp_path / "count.wdm")
    # a zip bomb: a huge member of zeros
    with zipfile.ZipFile(tmp_path / "bomb.wdm", "w", compression=zipfile.ZIP_DEFLATED) as z:
        names = list(default_taxonomy().names)
        z.writestr("header.json", json.dumps({"format": "waferdesk-maps", "version": 1, "classes": names, "count": 1}))
        z.writestr("shapes.npy", _npy(np.array([[10, 10]], np.int32)))
        z.writestr("offsets.npy", _npy(np.array([0, 100], np.int64)))
        z.writestr("dies.npy", b"\0" * (300 * 1024 * 1024))
    with pytest.raises(FormatError, match=r"dies\.npy"):
        read_wdm(tmp_path / "bomb.wdm")
    with pytest.raises(FormatError, match="cannot open"):
        read_wdm(tmp_path / "missing.wdm")


def test_labels_on_pass_dies_are_refused(tmp_path) -> None:
    rec = next(generate(1, seed=2))
    bad = rec.mask.labels.copy()
    bad[rec.wafer.dies == 1] = 0
    path = tmp_path / "bad.wdm"
    write_wdm(path, [WaferRecord(rec.wafer, type(rec.mask)(bad))])
    with pytest.raises(FormatError, match=r"wafer 0: .*pass die"):
        read_wdm(path)


def _npy(arr):
    import io

    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _damage_member(path, name: str, how: str) -> None:
    """Break one member of a zip in place: its deflate stream (``data``), its compression method
    (``method``), its encryption flag (``encrypted``) or the zip version it needs (``version``,
    refused when the archive is opened)."""
    with zipfile.ZipFile(path) as zf:
        at = zf.getinfo(name).header_offset
    raw = bytearray(path.read_bytes())
    if how == "data":  # the first deflate block declares type 3, which deflate does not have
        name_len, extra_len = (int.from_bytes(raw[at + i : at + i + 2], "little") for i in (26, 28))
        raw[at + 30 + name_len + extra_len] = 0x07
    else:  # in the local header and in the central directory
        entry = raw.find(b"PK\x01\x02")
        while raw[entry + 46 : entry + 46 + len(name)] != name.encode():
            entry = raw.find(b"PK\x01\x02", entry + 4)
        if how == "method":  # compression method 99
            raw[at + 8 : at + 10] = raw[entry + 10 : entry + 12] = (99).to_bytes(2, "little")
        elif how == "encrypted":
            raw[at + 6] |= 1
            raw[entry + 8] |= 1
        else:  # needs zip version 10.0
            raw[entry + 6 : entry + 8] = (100).to_bytes(2, "little")
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("how", ["data", "method", "encrypted", "version"])
def test_a_damaged_compressed_member_is_a_clear_error(tmp_path, how) -> None:
    path = write_wdm(tmp_path / "damaged.wdm", list(generate(3, seed=2)))
    _damage_member(path, "dies.npy", how)
    with pytest.raises(FormatError, match=r"damaged\.wdm"):
        read_wdm(path)
