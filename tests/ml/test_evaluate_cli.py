"""`waferdesk evaluate` through the ONNX model, as users run it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from waferdesk.cli import main
from waferdesk.core.formats import write_wdm
from waferdesk.core.inference import Segmenter
from waferdesk.core.synth import SynthConfig, generate_record
from waferdesk.core.taxonomy import default_taxonomy
from waferdesk.ml.evaluate import synthetic_metrics


def _test_file(tmp_path: Path, n: int = 12) -> tuple[Path, list]:
    recs = [generate_record(303, i, SynthConfig(size_range=(15, 60))) for i in range(n)]
    return write_wdm(tmp_path / "test.wdm", recs), recs


def test_evaluate_json_has_synthetic_and_real_numbers(tiny_onnx: Path, tmp_path: Path, real_data_path, capsys) -> None:
    data, recs = _test_file(tmp_path)
    out = tmp_path / "report"
    args = ["--model", str(tiny_onnx), "--data", str(data), "--real", str(real_data_path), "--limit", "40"]
    code = main(["evaluate", *args, "--json", "--out", str(out)])
    assert code == 0
    r = json.loads(capsys.readouterr().out)
    assert set(r["class_iou"]) == set(default_taxonomy().names)
    assert 0 <= r["miou"] <= 1 and r["synthetic"]["n_wafers"] == len(recs)
    assert r["real"]["n_wafers"] == 40 and 0 <= r["real_macro_f1"] <= 1 and 0 <= r["real_accuracy"] <= 1
    v = default_taxonomy().verdict  # the verdict thresholds the numbers were computed under
    assert r["verdict_policy"] == {"min_share": v.min_share, "min_dies": v.min_dies, "random_min_density": 0.3}
    # the numbers are those of the engine's own predictions on the same wafers
    seg = Segmenter(tiny_onnx, cache=False)
    from waferdesk.ml.evaluate import Predicted

    preds = [Predicted(p.mask, p.summary.verdict) for p in seg.predict_many([x.wafer for x in recs])]
    assert synthetic_metrics(recs, preds)["class_iou"] == r["class_iou"]
    for name in ("metrics.json", "confusion_synthetic.png", "confusion_real.png", "confusion_real.json"):
        assert (out / name).is_file(), name
    cm = json.loads((out / "confusion_real.json").read_text())
    assert np.array(cm["counts"]).sum() == 40


def test_evaluate_records_metrics_in_the_card(tiny_onnx: Path, tmp_path: Path, capsys) -> None:
    import shutil

    from waferdesk.core.modelcard import card_path_for, load_model_card

    model = tmp_path / "m.onnx"
    shutil.copy(tiny_onnx, model)
    shutil.copy(card_path_for(tiny_onnx), card_path_for(model))
    data, _ = _test_file(tmp_path, 4)
    assert main(["evaluate", "--model", str(model), "--data", str(data), "--real", "none", "--record"]) == 0
    text = capsys.readouterr().out
    assert "mIoU" in text and "not evaluated" in text
    card = load_model_card(model)  # sha still matches: only the card changed
    assert card.metrics["test"]["synthetic"]["n_wafers"] == 4 and card.metrics["test"]["miou"] is not None
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(model),
                "--data",
                str(data),
                "--real",
                "none",
                "--limit",
                "2",
                "--record",
                "check",
            ]
        )
        == 0
    )
    card = load_model_card(model)
    assert card.metrics["check"]["synthetic"]["n_wafers"] == 2 and card.metrics["test"]["synthetic"]["n_wafers"] == 4
    assert main(["evaluate", "--model", str(model), "--data", str(data), "--real", "none", "--record", "bad key"]) == 2
    assert "'bad key' is not a valid key" in capsys.readouterr().err


def test_evaluate_refuses_unlabelled_or_missing_files(tiny_onnx: Path, tmp_path: Path, capsys) -> None:
    from waferdesk.core.formats import write_wafers

    plain = write_wafers(tmp_path / "plain.wdm", [generate_record(1, 0).wafer])
    assert main(["evaluate", "--model", str(tiny_onnx), "--data", str(plain), "--real", "none"]) == 2
    assert "no wafer with a label mask" in capsys.readouterr().err
    data, _ = _test_file(tmp_path, 2)
    assert main(["evaluate", "--model", str(tiny_onnx), "--data", str(data), "--real", str(tmp_path / "x.npz")]) == 2
    assert "x.npz: real-data file not found" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(tmp_path / "none.onnx"), "--data", str(data), "--real", "none"]) == 2
    assert "none.onnx: model file not found" in capsys.readouterr().err


def test_evaluate_refuses_a_broken_real_npz_in_one_line(tiny_model: Path, tmp_path: Path, capsys) -> None:
    """Offsets and shapes that do not fit together used to end in an IndexError / ValueError traceback."""
    data, _ = _test_file(tmp_path, 2)
    layouts = {
        "short.npz": {"maps_flat": np.ones(25, np.uint8), "shapes": np.array([[5, 5]]), "offsets": np.array([0])},
        "off.npz": {"maps_flat": np.ones(10, np.uint8), "shapes": np.array([[5, 5]]), "offsets": np.array([0, 25])},
    }
    for name, arrays in layouts.items():
        real = tmp_path / name
        np.savez(real, labels=np.array(["Center"]), **arrays)
        assert main(["evaluate", "--model", str(tiny_model), "--data", str(data), "--real", str(real)]) == 2
        err = capsys.readouterr().err
        assert f"{real}: map 0:" in err and "Traceback" not in err, err


def test_evaluate_says_a_garbage_real_file_is_not_a_wm811k_npz(tiny_model: Path, tmp_path: Path, capsys) -> None:
    """Bytes numpy cannot read as an npz used to quote its "allow_pickle=" advice, which misleads."""
    data, _ = _test_file(tmp_path, 2)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    objects = tmp_path / "objects.npz"  # the right names, but object arrays
    np.savez(objects, maps_flat=np.array([None]), shapes=np.array([None]), offsets=np.array([None]), labels=[None])
    for real in (garbage, objects):
        assert main(["evaluate", "--model", str(tiny_model), "--data", str(data), "--real", str(real)]) == 2
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if ": error: " in line]
        assert len(lines) == 1 and "Traceback" not in err, err
        assert f"{real}: not a WM-811K .npz in the expected layout" in lines[0], err
        assert "allow_pickle" not in err, err


def test_evaluate_refuses_an_out_folder_it_cannot_create_before_evaluating(
    tiny_model: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    """--out naming a file used to fail only after the whole evaluation, losing its numbers."""
    import waferdesk.ml.evaluate

    def must_not_run(*_a, **_k):
        raise AssertionError("evaluated although --out cannot be written")

    monkeypatch.setattr(waferdesk.ml.evaluate, "evaluate_sets", must_not_run)
    data, _ = _test_file(tmp_path, 2)
    args = ["evaluate", "--model", str(tiny_model), "--data", str(data), "--real", "none", "--out", str(data)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"--out {data}: cannot create the output folder" in err and "Traceback" not in err


def test_evaluate_refuses_a_negative_limit(tiny_model: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    """--limit -1 used to mean "all" (the help says 0 is all), starting the full evaluation."""
    import waferdesk.ml.evaluate

    def must_not_run(*_a, **_k):
        raise AssertionError("evaluated with a negative --limit")

    monkeypatch.setattr(waferdesk.ml.evaluate, "evaluate_sets", must_not_run)
    data, _ = _test_file(tmp_path, 2)
    args = ["evaluate", "--model", str(tiny_model), "--data", str(data), "--real", "none", "--limit", "-1"]
    assert main(args) == 2
    assert "--limit must be 0 (all) or a positive count, got -1" in capsys.readouterr().err


def test_evaluate_runs_the_views_the_card_asks_for_unless_told(tmp_path: Path, capsys) -> None:
    from model_fixtures import make_tiny_model

    from waferdesk.ml.evaluate import Predicted

    model = make_tiny_model(tmp_path / "m", name="tta", inference={"views": 4})
    data, recs = _test_file(tmp_path, 6)
    wafers = [x.wafer for x in recs]
    results = {}
    for flag in ([], ["--views", "1"]):
        assert main(["evaluate", "--model", str(model), "--data", str(data), "--real", "none", "--json", *flag]) == 0
        r = json.loads(capsys.readouterr().out)
        views = 4 if not flag else 1
        assert r["views"] == views
        seg = Segmenter(model, cache=False, views=views)
        preds = [Predicted(p.mask, p.summary.verdict) for p in seg.predict_many(wafers)]
        assert synthetic_metrics(recs, preds)["class_iou"] == r["class_iou"]
        results[views] = r["class_iou"]
    assert results[4] != results[1]
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--model", str(model), "--data", str(data), "--real", "none", "--views", "3"])
    assert exc.value.code == 2
    assert "invalid choice: 3" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(model), "--data", str(data), "--real", "none", "--views", "2"]) == 0
    assert "2 views averaged" in capsys.readouterr().out.splitlines()[0]
