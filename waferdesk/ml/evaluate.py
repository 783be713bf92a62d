"""Evaluation: what the model learned (synthetic, per die) and whether that transfers (real maps).

Two reports, always together:
- synthetic, against per-die ground truth: confusion over failing dies, per-class IoU and
  mIoU (pass and no-die cells never count), and wafer-level verdict accuracy (the verdict of
  the ground-truth mask vs the verdict of the predicted mask);
- real WM-811K maps, against their wafer-level labels: the predicted PRIMARY verdict (the
  dominant class, or ``none``) mapped through :data:`~waferdesk.ml.data.WM811K_TO_CLASS`;
  accuracy, per-label F1 and macro-F1 over the 8 mapped labels, and a confusion matrix with
  one row per WM-811K label and one column per verdict.

This module needs numpy and the core only (no torch): ``waferdesk evaluate`` runs the ONNX
model through :class:`waferdesk.core.inference.Segmenter`, exactly as users run it; training
feeds the same functions with the torch network's predictions (:mod:`.predict`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from waferdesk.core.atomic import atomic_open
from waferdesk.core.metrics import confusion, f1_scores, iou_from_confusion, label_confusion
from waferdesk.core.records import WaferRecord
from waferdesk.core.results import NONE, Verdict, VerdictPolicy, summarize
from waferdesk.core.taxonomy import default_taxonomy
from waferdesk.core.wafer import LabelMask, WaferMap

from .data import WM811K_LABELS, WM811K_TO_CLASS

REAL_TARGETS = tuple(dict.fromkeys(WM811K_TO_CLASS.values()))
"""The 8 verdicts real labels map to: center, ring, edge, particle, scratch, random, etching, none."""


@dataclass(frozen=True)
class Predicted:
    """What evaluation needs of one prediction: the per-die mask and the wafer verdict."""

    mask: LabelMask
    verdict: Verdict


def predicted_from_mask(wafer: WaferMap, mask: LabelMask, policy: VerdictPolicy | None = None) -> Predicted:
    return Predicted(mask, summarize(wafer, mask, policy).verdict)


PredictFn = Callable[[Sequence[WaferMap]], Iterable[Predicted]]


def _round(x: float, nd: int = 4) -> float | None:
    return None if not np.isfinite(x) else round(float(x), nd)


def synthetic_metrics(
    records: Sequence[WaferRecord], preds: Sequence[Predicted], policy: VerdictPolicy | None = None
) -> dict[str, Any]:
    """Per-die IoU over failing dies and verdict accuracy against ground-truth masks."""
    tax = default_taxonomy()
    k = len(tax)
    cm = np.zeros((k, k), dtype=np.int64)
    exact = primary = 0
    for rec, p in zip(records, preds, strict=True):
        if rec.mask is None:
            raise ValueError(f"wafer {rec.wafer.name}: no ground-truth mask to evaluate against")
        cm += confusion(rec.mask.labels, p.mask.labels, k)
        truth = summarize(rec.wafer, rec.mask, policy).verdict
        exact += set(truth.classes) == set(p.verdict.classes)
        primary += truth.primary == p.verdict.primary
    iou = iou_from_confusion(cm)
    n = max(1, len(records))
    finite = iou[np.isfinite(iou)]
    return {
        "n_wafers": len(records),
        "n_fail_dies": int(cm.sum()),
        "miou": _round(finite.mean()) if finite.size else None,
        "class_iou": {name: _round(v) for name, v in zip(tax.names, iou, strict=True)},
        "die_accuracy": _round(np.trace(cm) / max(1, cm.sum())),
        "verdict_accuracy": _round(exact / n),
        "primary_verdict_accuracy": _round(primary / n),
        "confusion": {"rows": "truth", "cols": "prediction", "classes": list(tax.names), "counts": cm.tolist()},
    }


def real_metrics(wafers: Sequence[WaferMap], preds: Sequence[Predicted]) -> dict[str, Any]:
    """Wafer-level accuracy / F1 of the predicted primary verdict against WM-811K labels."""
    tax = default_taxonomy()
    raw = [w.label or "" for w in wafers]
    unknown = sorted({r for r in raw if r not in WM811K_TO_CLASS})
    if unknown:
        raise ValueError(f"real maps carry labels outside WM-811K's: {unknown}")
    truth = [WM811K_TO_CLASS[r] for r in raw]
    pred = [p.verdict.primary for p in preds]
    f1 = f1_scores(truth, pred, REAL_TARGETS)
    vals = np.array([v for v in f1.values() if np.isfinite(v)])
    cols = [*tax.names, NONE]
    cm = label_confusion(raw, pred, WM811K_LABELS, cols)
    recall = {
        lab: _round(cm[i, cols.index(WM811K_TO_CLASS[lab])] / max(1, cm[i].sum()))
        for i, lab in enumerate(WM811K_LABELS)
    }
    return {
        "n_wafers": len(wafers),
        "accuracy": _round(np.mean(np.array(truth) == np.array(pred))) if truth else None,
        "macro_f1": _round(vals.mean()) if vals.size else None,
        "class_f1": {k: _round(v) for k, v in f1.items()},
        "label_recall": recall,
        "confusion": {
            "rows": "WM-811K label",
            "cols": "predicted primary verdict",
            "row_labels": list(WM811K_LABELS),
            "col_labels": cols,
            "counts": cm.tolist(),
        },
    }


# -- the ONNX path (what users run) -----------------------------------------------------------
def onnx_predict_fn(
    model_path: str | Path | None, batch_size: int = 32, progress: Any = None, views: int | None = None
) -> tuple[PredictFn, Any]:
    """A predict function over the ONNX model through the product's inference engine
    (``views`` None: the views its card asks for, as every consumer runs it)."""
    from waferdesk.core.inference import Segmenter

    seg = Segmenter(model_path, cache=False, views=views)

    def run(wafers: Sequence[WaferMap]) -> Iterable[Predicted]:
        for pred in seg.predict_many(wafers, batch_size=batch_size):
            if progress is not None:
                progress.update(1)
            yield Predicted(pred.mask, pred.summary.verdict)

    return run, seg


def evaluate_sets(
    predict_fn: PredictFn,
    records: Sequence[WaferRecord] | None,
    real: Sequence[WaferMap] | None,
) -> dict[str, Any]:
    """Both reports for whatever sets are given (``None`` skips one)."""
    out: dict[str, Any] = {}
    if records:
        preds = list(predict_fn([r.wafer for r in records]))
        out["synthetic"] = synthetic_metrics(records, preds)
    if real:
        preds = list(predict_fn(real))
        out["real"] = real_metrics(real, preds)
    return out


def flat_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers at top level (``miou``, ``class_iou``, ``real_macro_f1``...)."""
    out: dict[str, Any] = {}
    syn = report.get("synthetic")
    if syn:
        out["miou"] = syn["miou"]
        out["class_iou"] = syn["class_iou"]
        out["verdict_accuracy"] = syn["verdict_accuracy"]
        out["primary_verdict_accuracy"] = syn["primary_verdict_accuracy"]
    real = report.get("real")
    if real:
        out["real_accuracy"] = real["accuracy"]
        out["real_macro_f1"] = real["macro_f1"]
        out["real_class_f1"] = real["class_f1"]
    return out


def _write_json(path: Path, data: Any) -> Path:
    """Atomically: an interrupted write leaves the previous file whole (:mod:`waferdesk.core.atomic`)."""
    with atomic_open(path) as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
    return path


def save_report(report: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """``metrics.json`` plus confusion matrices as JSON and PNG under ``out_dir``."""
    from .plots import plot_confusion

    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    written = [_write_json(d / "metrics.json", report)]
    syn, real = report.get("synthetic"), report.get("real")
    if syn:
        c = syn["confusion"]
        written.append(_write_json(d / "confusion_synthetic.json", c))
        written.append(
            plot_confusion(
                np.array(c["counts"]),
                c["classes"],
                c["classes"],
                d / "confusion_synthetic.png",
                f"Synthetic test set: failing dies ({syn['n_wafers']} wafers), mIoU {syn['miou']}",
                "true class",
                "predicted class",
            )
        )
    if real:
        c = real["confusion"]
        written.append(_write_json(d / "confusion_real.json", c))
        written.append(
            plot_confusion(
                np.array(c["counts"]),
                c["row_labels"],
                c["col_labels"],
                d / "confusion_real.png",
                f"WM-811K ({real['n_wafers']} real maps): accuracy {real['accuracy']}, macro-F1 {real['macro_f1']}",
                "WM-811K label",
                "predicted verdict (primary)",
            )
        )
    return written
