"""``waferdesk predict``: PNG + JSON per wafer, summary.csv with the exact columns, and a bad
file in the batch reported and skipped while the rest completes."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from waferdesk.cli import main
from waferdesk.core.formats import write_wdm
from waferdesk.core.inference import UNCERTAINTY_KEYS, Segmenter
from waferdesk.core.synth import generate
from waferdesk.core.taxonomy import default_taxonomy

pytest.importorskip("onnxruntime")

COLUMNS = [
    "source",
    "index",
    "lot",
    "wafer",
    "verdict",
    *default_taxonomy().names,
    "entropy_mean",
    "entropy_max",
    "entropy_topk_mean",
    "margin_mean",
    "margin_min",
]


@pytest.fixture
def inputs(tmp_path):
    a = write_wdm(tmp_path / "in" / "lot-a.wdm", list(generate(3, seed=31)))
    bad = tmp_path / "in" / "broken.wdm"
    bad.write_bytes(b"this is not a wafer file")
    b = write_wdm(tmp_path / "in" / "lot-b.wdm", list(generate(2, seed=32)))
    return a, bad, b


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_predict_writes_results_and_skips_a_bad_file(tiny_model, inputs, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    a, bad, b = inputs
    out = tmp_path / "out"
    missing = tmp_path / "in" / "missing.wdm"
    rc = main(["predict", str(a), str(bad), str(missing), str(b), "--out", str(out), "--model", str(tiny_model)])
    cap = capsys.readouterr()
    assert rc == 1  # partial success: some inputs failed
    assert "skipped" in cap.err and "broken.wdm" in cap.err and "missing.wdm" in cap.err
    assert "wafers/s end to end" in cap.out

    rows = _read_csv(out / "summary.csv")
    assert rows[0] == COLUMNS
    assert [(r[0], r[1]) for r in rows[1:]] == [
        (str(a), "0"),
        (str(a), "1"),
        (str(a), "2"),
        (str(b), "0"),
        (str(b), "1"),
    ]
    errors = _read_csv(out / "errors.csv")
    assert errors[0] == ["source", "error"] and [e[0] for e in errors[1:]] == [str(bad), str(missing)]

    # each row is the engine's answer for that wafer
    seg = Segmenter(tiny_model, providers="cpu", cache=False)
    recs = list(generate(3, seed=31)) + list(generate(2, seed=32))
    names = ["lot-a-0000", "lot-a-0001", "lot-a-0002", "lot-b-0000", "lot-b-0001"]
    embeddings = np.load(out / "embeddings.npy")
    assert embeddings.shape == (5, seg.card.embedding_dim) and embeddings.dtype == np.float32
    for row, rec, name in zip(rows[1:], recs, names, strict=True):
        pred = seg.predict(rec.wafer)
        assert row[2:5] == [rec.wafer.lot, rec.wafer.wafer_id, str(pred.summary.verdict)]
        assert [int(v) for v in row[5:13]] == list(pred.summary.counts.values())
        assert [float(v) for v in row[13:]] == pytest.approx([pred.uncertainty[k] for k in UNCERTAINTY_KEYS], abs=1e-5)
        data = json.loads((out / f"{name}.json").read_text())
        assert data["verdict"] == row[4] and data["image"] == f"{name}.png"
        np.testing.assert_allclose(embeddings[data["embedding_row"]], pred.embedding, atol=1e-6)
        assert np.array_equal(np.array(data["mask"], np.uint8), pred.mask.labels)
        from PIL import Image

        with Image.open(out / f"{name}.png") as im:
            assert im.size[0] >= rec.wafer.shape[1] and im.size[1] >= rec.wafer.shape[0]

    # a second run is answered from the on-disk cache
    rc = main(["predict", str(a), "--out", str(tmp_path / "again"), "--model", str(tiny_model)])
    assert rc == 0 and "3 from cache" in capsys.readouterr().out


def test_predict_folder_without_images(tiny_model, inputs, tmp_path) -> None:
    a, bad, _ = inputs
    bad.unlink()
    out = tmp_path / "out"
    rc = main(["predict", str(a.parent), "--out", str(out), "--model", str(tiny_model), "--no-images", "--no-cache"])
    assert rc == 0
    assert not list(out.glob("*.png")) and len(list(out.glob("*.json"))) == 5
    assert not (out / "errors.csv").exists()
    assert len(_read_csv(out / "summary.csv")) == 6


def test_predict_views_flag_averages_rotated_views(tiny_model, inputs, tmp_path, capsys) -> None:
    a, _, _ = inputs
    out = tmp_path / "out"
    rc = main(["predict", str(a), "--out", str(out), "--model", str(tiny_model), "--no-images", "--views", "4"])
    assert rc == 0 and "4 views averaged" in capsys.readouterr().err
    seg = Segmenter(tiny_model, providers="cpu", cache=False, views=4)
    files = sorted(out.glob("*.json"))
    assert len(files) == 3
    for f, rec in zip(files, generate(3, seed=31), strict=True):
        data = json.loads(f.read_text())
        assert data["model"]["views"] == 4
        assert np.array_equal(np.array(data["mask"], np.uint8), seg.predict(rec.wafer).mask.labels)


def test_predict_without_a_usable_model_is_one_clear_line(inputs, tmp_path, capsys) -> None:
    a, _, _ = inputs
    rc = main(["predict", str(a), "--out", str(tmp_path / "o"), "--model", str(tmp_path / "none.onnx")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "none.onnx: model file not found" in err


def test_output_names_never_collide(tiny_model, tmp_path) -> None:
    a = write_wdm(tmp_path / "x" / "a.wdm", list(generate(2, seed=41)))
    b = write_wdm(tmp_path / "y" / "a-0001.wdm", list(generate(1, seed=42)))
    c = write_wdm(tmp_path / "z" / "a.wdm", list(generate(1, seed=43)))
    out = tmp_path / "out"
    assert main(["predict", str(a), str(b), str(c), "--out", str(out), "--model", str(tiny_model), "--no-cache"]) == 0
    names = sorted(p.name for p in out.glob("*.json"))
    assert names == ["a-0000.json", "a-0001.json", "a-0001~2.json", "a~2.json"]
    sources = {json.loads((out / n).read_text())["source"] for n in names}
    assert sources == {str(a), str(b), str(c)}


def test_a_reader_crash_skips_that_file_and_never_hangs(tiny_model, inputs, tmp_path, capsys, monkeypatch) -> None:
    """A reader's unexpected exception (not a FormatError) used to kill the reader thread
    before it sent its end marker, so the model loop waited for more files forever."""
    import threading

    import waferdesk.core.formats as formats

    a, _, b = inputs
    real_read = formats.read_any

    def read_any(path):
        if path == a:
            raise RuntimeError("reader bug")
        return real_read(path)

    monkeypatch.setattr(formats, "read_any", read_any)
    out = tmp_path / "out"
    result: list[int] = []
    args = ["predict", str(a), str(b), "--out", str(out), "--model", str(tiny_model), "--no-cache"]
    t = threading.Thread(target=lambda: result.append(main(args)), daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), "predict hung after a reader error"
    assert result == [1]
    assert "RuntimeError: reader bug" in capsys.readouterr().err
    errors = _read_csv(out / "errors.csv")
    assert [e[0] for e in errors[1:]] == [str(a)]
    assert [r[0] for r in _read_csv(out / "summary.csv")[1:]] == [str(b), str(b)]


def test_a_rerun_without_rows_leaves_no_stale_embeddings(tiny_model, inputs, tmp_path, capsys) -> None:
    """embeddings.npy row i is summary.csv row i: a rerun into the same folder that predicts
    nothing must not leave the earlier run's embeddings beside its empty summary."""
    a, _, _ = inputs
    out = tmp_path / "out"
    assert main(["predict", str(a), "--out", str(out), "--model", str(tiny_model), "--no-cache"]) == 0
    assert np.load(out / "embeddings.npy").shape[0] == 3
    missing = tmp_path / "in" / "gone.wdm"
    assert main(["predict", str(missing), "--out", str(out), "--model", str(tiny_model), "--no-cache"]) == 1
    capsys.readouterr()
    assert len(_read_csv(out / "summary.csv")) == 1  # the header only
    assert not (out / "embeddings.npy").exists()


def test_an_unusable_cache_folder_only_turns_the_cache_off(tiny_model, inputs, tmp_path, capsys, monkeypatch) -> None:
    """A cache folder that cannot be created (here: a file in its way) stopped the whole job."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    a, _, _ = inputs
    out = tmp_path / "out"
    assert main(["predict", str(a), "--out", str(out), "--model", str(tiny_model)]) == 0
    assert "no prediction cache" in capsys.readouterr().err
    assert len(_read_csv(out / "summary.csv")) == 4
