"""WM-811K readers: the pickle-free npz layout (read + write) and LSWMD.pkl (restricted unpickling)."""

from __future__ import annotations

import io
import os
import pickle
import sys
import zipfile

import numpy as np
import pytest

from waferdesk.core.errors import FormatError
from waferdesk.core.formats import read_any, read_wm811k_npz, read_wm811k_pkl, write_wm811k_npz
from waferdesk.core.formats.wm811k import LABELS
from waferdesk.core.wafer import WaferMap


def _maps() -> list[WaferMap]:
    rng = np.random.default_rng(0)
    out = []
    for i, (h, w) in enumerate([(26, 26), (22, 18), (40, 33)]):
        dies = rng.integers(1, 3, size=(h, w)).astype(np.uint8)
        dies[0, :3] = 0
        out.append(WaferMap(dies, label=[None, "Center", "Edge-Ring"][i], extra={"source_row": str(100 + i)}))
    return out


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _npz(path, members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> None:
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        for name, data in members.items():
            z.writestr(name, data)


def test_npz_round_trip_keeps_maps_labels_and_rows(tmp_path) -> None:
    maps = _maps()
    path = write_wm811k_npz(tmp_path / "m.npz", maps)
    back = read_any(path)
    assert [r.wafer.label for r in back] == [None, "Center", "Edge-Ring"]
    assert [r.wafer.extra["source_row"] for r in back] == ["100", "101", "102"]
    for a, b in zip(maps, back, strict=True):
        assert np.array_equal(a.dies, b.wafer.dies)
        assert b.mask is None
    # the layout is the one of shared/data: plain arrays, no pickles
    with np.load(path, allow_pickle=False) as z:
        assert set(z.files) == {"maps_flat", "shapes", "offsets", "labels", "source_row"}
        assert z["shapes"].dtype == np.int16 and z["offsets"][-1] == z["maps_flat"].size


def test_reads_the_real_validation_split(real_data_path) -> None:
    recs = read_wm811k_npz(real_data_path)
    assert len(recs) == 12450
    assert {r.wafer.label for r in recs} == set(LABELS)
    sizes = [r.wafer.shape for r in recs]
    assert min(sizes) >= (18, 18) and max(max(s) for s in sizes) <= 212
    assert read_wm811k_npz(real_data_path, limit=5)[4].wafer.dies.tobytes() == recs[4].wafer.dies.tobytes()


def test_npz_hostile_and_broken_files_get_clear_errors(tmp_path) -> None:
    good = write_wm811k_npz(tmp_path / "good.npz", _maps())
    with zipfile.ZipFile(good) as z:
        members = {n: z.read(n) for n in z.namelist()}

    def variant(name: str, **replace: bytes | None) -> object:
        data = {k: v for k, v in {**members, **replace}.items() if v is not None}
        _npz(tmp_path / name, data)
        return tmp_path / name

    (tmp_path / "trunc.npz").write_bytes(good.read_bytes()[:300])
    with pytest.raises(FormatError, match=r"trunc\.npz"):
        read_any(tmp_path / "trunc.npz")
    with pytest.raises(FormatError, match="missing array 'offsets'"):
        read_wm811k_npz(variant("nooff.npz", **{"offsets.npy": None}))
    # a header declaring 10^12 dies over a few bytes of data: refused before any allocation
    header = _npy(np.zeros(4, np.uint8)).replace(b"(4,)", b"(1000000000000,)")
    with pytest.raises(FormatError, match=r"maps_flat.*declares shape"):
        read_wm811k_npz(variant("huge.npz", **{"maps_flat.npy": header}))
    with pytest.raises(FormatError, match="offsets do not match"):
        read_wm811k_npz(variant("off.npz", **{"offsets.npy": _npy(np.array([0, 5, 6, 7], np.int64))}))
    with pytest.raises(FormatError, match=r"map 0 has size \(0, 26\)"):
        read_wm811k_npz(variant("neg.npz", **{"shapes.npy": _npy(np.array([[0, 26], [22, 18], [40, 33]], np.int16))}))
    obj = np.array([np.zeros(3)] * 3 + [None], dtype=object)[:3]
    buf = io.BytesIO()
    np.save(buf, obj, allow_pickle=True)
    with pytest.raises(FormatError, match="holds Python objects"):
        read_wm811k_npz(variant("obj.npz", **{"labels.npy": buf.getvalue()}))
    bad = _npy(np.full(26 * 26 + 22 * 18 + 40 * 33, 7, np.uint8))
    with pytest.raises(FormatError, match=r"bad\.npz: map 0: .*value 7"):
        read_wm811k_npz(variant("bad.npz", **{"maps_flat.npy": bad}))


def test_npz_zip_bomb_is_refused_before_unpacking(tmp_path) -> None:
    n = 4096 * 4096
    members = {
        "shapes.npy": _npy(np.array([[4096, 4096]], np.int16)),
        "offsets.npy": _npy(np.array([0, n], np.int64)),
        "maps_flat.npy": _npy(np.zeros(n, np.uint8)),
    }
    _npz(tmp_path / "bomb.npz", members, compression=zipfile.ZIP_LZMA)  # a few KB on disk, 16 MB unpacked
    assert (tmp_path / "bomb.npz").stat().st_size < 50_000
    with pytest.raises(FormatError, match=r"bomb\.npz: array 'maps_flat' expands \d+x when unpacked; refused"):
        read_any(tmp_path / "bomb.npz")


# -- LSWMD.pkl ---------------------------------------------------------------------------------


def _frame():
    pd = pytest.importorskip("pandas")
    return pd.DataFrame(
        {
            "waferMap": [np.array([[0, 1, 2], [1, 1, 0]], np.uint8), np.array([[1, 2], [2, 1]], np.uint8)],
            "dieSize": [1683.0, 600.0],
            "lotName": ["lot1", "lot47"],
            "waferIndex": [1.0, 25.0],
            "trianTestLabel": [np.array([["Training"]]), np.zeros((0, 0))],
            "failureType": [np.array([["Edge-Ring"]]), np.zeros((0, 0))],
        }
    )


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_lswmd_pickle_rows_become_wafers(tmp_path, protocol) -> None:
    path = tmp_path / "LSWMD.pkl"
    _frame().to_pickle(path, protocol=protocol)
    recs = read_any(path)
    assert [(r.wafer.lot, r.wafer.wafer_id, r.wafer.label) for r in recs] == [
        ("lot1", "1", "Edge-Ring"),
        ("lot47", "25", None),
    ]
    assert recs[0].wafer.extra["split"] == "Training" and recs[0].wafer.extra["die_size"] == "1683"
    assert recs[1].wafer.dies.tolist() == [[1, 2], [2, 1]]


def test_pickle_that_runs_code_is_refused_and_nothing_runs(tmp_path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"waferMap": [Evil()]}, protocol=2))
    with pytest.raises(FormatError, match=r"evil\.pkl: refused to unpickle: the file asks for (posix|os)\.system"):
        read_wm811k_pkl(path)
    assert not marker.exists()
    path.write_bytes(pickle.dumps(eval, protocol=4))  # builtins.eval by name
    with pytest.raises(FormatError, match=r"builtins\.eval"):
        read_any(path)


def test_old_pandas_module_names_are_mapped(tmp_path) -> None:
    """LSWMD.pkl was written by pandas 0.x, whose Index lived in ``pandas.indexes``."""
    data = pickle.dumps(_frame(), protocol=2)
    old = data.replace(b"cpandas.core.indexes.base\n_new_Index\n", b"cpandas.indexes.base\n_new_Index\n")
    assert old != data
    (tmp_path / "old.pkl").write_bytes(old)
    assert [r.wafer.lot for r in read_wm811k_pkl(tmp_path / "old.pkl")] == ["lot1", "lot47"]


def test_pickle_errors_are_clear(tmp_path, monkeypatch) -> None:
    path = tmp_path / "LSWMD.pkl"
    _frame().to_pickle(path, protocol=4)
    (tmp_path / "cut.pkl").write_bytes(path.read_bytes()[:200])
    with pytest.raises(FormatError, match=r"cut\.pkl: not a readable WM-811K pickle"):
        read_wm811k_pkl(tmp_path / "cut.pkl")
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([1, 2, 3], protocol=4))
    with pytest.raises(FormatError, match="holds a list, not a WM-811K DataFrame"):
        read_wm811k_pkl(tmp_path / "list.pkl")
    frame = _frame()
    frame["waferMap"] = [np.array([[0, 9]], np.uint8), np.array([[1]], np.uint8)]
    frame.to_pickle(tmp_path / "nine.pkl", protocol=4)
    with pytest.raises(FormatError, match=r"nine\.pkl: row 0: .*value 9"):
        read_wm811k_pkl(tmp_path / "nine.pkl")
    monkeypatch.setitem(sys.modules, "pandas", None)  # as on a desktop install without pandas
    with pytest.raises(FormatError, match=r"LSWMD\.pkl: reading WM-811K pickles needs pandas"):
        read_any(path)


@pytest.mark.parametrize("how", ["data", "method", "encrypted", "version"])
def test_npz_with_a_damaged_compressed_array_is_a_clear_error(tmp_path, how) -> None:
    from test_wdm import _damage_member

    path = write_wm811k_npz(tmp_path / "damaged.npz", _maps())
    _damage_member(path, "maps_flat.npy", how)
    with pytest.raises(FormatError, match=r"damaged\.npz"):
        read_wm811k_npz(path)
