"""Evaluation numbers on hand-made predictions whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from waferdesk.core.results import Verdict
from waferdesk.core.synth import generate_record
from waferdesk.core.taxonomy import IGNORE, default_taxonomy
from waferdesk.core.wafer import FAIL, LabelMask, WaferMap
from waferdesk.ml.evaluate import Predicted, predicted_from_mask, real_metrics, save_report, synthetic_metrics

TAX = default_taxonomy()


def test_perfect_predictions_score_one_and_a_wrong_class_costs_iou() -> None:
    recs = [generate_record(8, i) for i in range(10)]
    perfect = [predicted_from_mask(r.wafer, r.mask) for r in recs]
    m = synthetic_metrics(recs, perfect)
    assert m["miou"] == 1.0 and m["verdict_accuracy"] == 1.0 and m["die_accuracy"] == 1.0
    # call every failing die "random": random's IoU = its share, every other present class 0
    allrandom = [
        predicted_from_mask(r.wafer, LabelMask(np.where(r.wafer.dies == FAIL, TAX.index("random"), IGNORE)))
        for r in recs
    ]
    m2 = synthetic_metrics(recs, allrandom)
    cm = np.array(m2["confusion"]["counts"])
    share = cm[:, TAX.index("random")].sum() and cm[TAX.index("random")].sum() / cm.sum()
    assert m2["class_iou"]["random"] == pytest.approx(share, abs=1e-4)
    assert all(v in (0.0, None) for k, v in m2["class_iou"].items() if k != "random")


def _w(label: str) -> WaferMap:
    return WaferMap(dies=np.ones((4, 4), np.uint8), label=label)


def _p(verdict: str) -> Predicted:
    return Predicted(LabelMask.empty((4, 4)), Verdict.parse(verdict))


def test_real_metrics_map_wm811k_labels_and_use_the_primary_verdict() -> None:
    wafers = [_w("Edge-Ring"), _w("Edge-Loc"), _w("Donut"), _w("none"), _w("none"), _w("Loc")]
    preds = [_p("edge"), _p("edge+random"), _p("center"), _p("none"), _p("random"), _p("particle")]
    m = real_metrics(wafers, preds)
    assert m["accuracy"] == pytest.approx(4 / 6, abs=1e-4)
    assert (
        m["class_f1"]["edge"] == 1.0
        and m["class_f1"]["ring"] == 0.0
        and m["class_f1"]["none"] == pytest.approx(2 / 3, abs=1e-4)
    )
    assert m["label_recall"]["Donut"] == 0.0 and m["label_recall"]["Edge-Loc"] == 1.0
    cm = m["confusion"]
    assert cm["row_labels"][:2] == ["Center", "Donut"] and cm["col_labels"][-1] == "none"
    assert cm["counts"][cm["row_labels"].index("Donut")][cm["col_labels"].index("center")] == 1


def test_reports_write_json_and_png(tmp_path) -> None:
    recs = [generate_record(8, i) for i in range(3)]
    syn = synthetic_metrics(recs, [predicted_from_mask(r.wafer, r.mask) for r in recs])
    real = real_metrics([_w("none")], [_p("none")])
    files = save_report({"synthetic": syn, "real": real}, tmp_path)
    names = {f.name for f in files}
    assert {"metrics.json", "confusion_synthetic.png", "confusion_real.png", "confusion_real.json"} <= names
    assert all(f.stat().st_size > 0 for f in files)
