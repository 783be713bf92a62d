"""Segmentation and wafer-level metrics, over failing dies only.

Pass dies and no-die cells carry no label, so they never count: an IoU of 0.97 means 97 %
agreement on the dies that actually failed, not a number inflated by easy background.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .taxonomy import IGNORE


def confusion(truth: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n, n) counts, rows = truth, cols = prediction, over cells labelled in ``truth``."""
    t = np.asarray(truth).ravel()
    p = np.asarray(pred).ravel()
    keep = t != IGNORE
    t, p = t[keep].astype(np.int64), p[keep].astype(np.int64)
    p = np.where(p >= n_classes, n_classes, p)  # unlabelled predictions never match
    cm = np.bincount(t * (n_classes + 1) + p, minlength=n_classes * (n_classes + 1))
    return cm.reshape(n_classes, n_classes + 1)[:, :n_classes]


def iou_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Per-class IoU; NaN for a class absent from both truth and prediction."""
    tp = np.diag(cm).astype(float)
    denom = cm.sum(axis=0) + cm.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / np.maximum(denom, 1), np.nan)


def mean_iou(cm: np.ndarray) -> float:
    iou = iou_from_confusion(cm)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def f1_scores(truth: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    """Per-label F1 of single-label predictions (labels absent from truth and prediction: NaN)."""
    out: dict[str, float] = {}
    t = np.asarray(truth)
    p = np.asarray(pred)
    for lab in labels:
        tp = int(np.sum((t == lab) & (p == lab)))
        fp = int(np.sum((t != lab) & (p == lab)))
        fn = int(np.sum((t == lab) & (p != lab)))
        out[lab] = float("nan") if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)
    return out


def label_confusion(truth: Sequence[str], pred: Sequence[str], rows: Sequence[str], cols: Sequence[str]) -> np.ndarray:
    """Counts of (truth row, predicted col) pairs for string labels."""
    ri = {r: i for i, r in enumerate(rows)}
    ci = {c: i for i, c in enumerate(cols)}
    cm = np.zeros((len(rows), len(cols)), dtype=np.int64)
    for a, b in zip(truth, pred, strict=True):
        if a in ri and b in ci:
            cm[ri[a], ci[b]] += 1
    return cm
