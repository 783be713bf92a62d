"""Inter-annotator agreement: when two annotators label the same wafer, how alike are they?

Per-class IoU between the two masks over the failing dies (the core's
:func:`~waferdesk.core.metrics.confusion`, the same measure the model is scored with), and
their mean (mIoU, classes absent from both masks left out). Only live submitted or approved
annotations count (drafts are unfinished). A wafer whose worst pair is below the
``agreement_threshold`` setting is flagged: ``GET /annotations/review`` lists its
annotations first, and the statistics name it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from waferdesk.core.metrics import confusion, iou_from_confusion
from waferdesk.core.taxonomy import default_taxonomy

from ..db.models import Annotation, Wafer
from .masks import unpack_labels

LIVE_LABELLED = (Annotation.deleted_at.is_(None), Annotation.status.in_(("submitted", "approved")))


@dataclass
class PairAgreement:
    annotation_ids: tuple[int, int]
    annotator_ids: tuple[int | None, int | None]
    per_class: dict[str, float | None]
    miou: float | None


@dataclass
class WaferAgreement:
    wafer_id: int
    pairs: list[PairAgreement] = field(default_factory=list)
    threshold: float = 0.0

    @property
    def min_miou(self) -> float | None:
        vals = [p.miou for p in self.pairs if p.miou is not None]
        return min(vals) if vals else None

    @property
    def flagged(self) -> bool:
        m = self.min_miou
        return m is not None and m < self.threshold

    def as_dict(self) -> dict[str, Any]:
        return {
            "wafer_id": self.wafer_id,
            "min_miou": None if self.min_miou is None else round(self.min_miou, 4),
            "flagged": self.flagged,
            "pairs": [
                {
                    "annotation_ids": list(p.annotation_ids),
                    "annotator_ids": list(p.annotator_ids),
                    "miou": None if p.miou is None else round(p.miou, 4),
                    "per_class": {k: (None if v is None else round(v, 4)) for k, v in p.per_class.items()},
                }
                for p in self.pairs
            ],
        }


def pair_iou(a: np.ndarray, b: np.ndarray) -> tuple[dict[str, float | None], float | None]:
    """Per-class IoU and mIoU between two label grids (over the dies labelled in both)."""
    names = default_taxonomy().names
    keep = (a != 255) & (b != 255)
    iou = iou_from_confusion(confusion(np.where(keep, a, 255), np.where(keep, b, 255), len(names)))
    per = {n: (None if np.isnan(v) else float(v)) for n, v in zip(names, iou, strict=True)}
    vals = [v for v in per.values() if v is not None]
    return per, (float(np.mean(vals)) if vals else None)


def multi_annotated_wafers(session: Session, wafer_ids: list[int] | None = None) -> list[int]:
    """Wafers with live submitted/approved annotations by at least two annotators."""
    q = select(Annotation.wafer_id).where(*LIVE_LABELLED)
    if wafer_ids is not None:
        q = q.where(Annotation.wafer_id.in_(wafer_ids))
    q = q.group_by(Annotation.wafer_id).having(func.count(func.distinct(Annotation.annotator_id)) >= 2)
    return sorted(session.scalars(q))


def agreement(session: Session, threshold: float, wafer_ids: list[int] | None = None) -> list[WaferAgreement]:
    """Agreement of every multiply-annotated wafer (or of these wafers), by wafer id."""
    ids = multi_annotated_wafers(session, wafer_ids)
    if not ids:
        return []
    shapes = {
        w.id: (w.rows, w.cols)
        for w in session.execute(select(Wafer.id, Wafer.rows, Wafer.cols).where(Wafer.id.in_(ids)))
    }
    anns = session.execute(
        select(Annotation.id, Annotation.wafer_id, Annotation.annotator_id, Annotation.labels)
        .where(Annotation.wafer_id.in_(ids), *LIVE_LABELLED)
        .order_by(Annotation.wafer_id, Annotation.id)
    ).all()
    by_wafer: dict[int, list] = {}
    for row in anns:
        by_wafer.setdefault(row.wafer_id, []).append(row)
    out = []
    for wid in ids:
        result = WaferAgreement(wid, threshold=threshold)
        masks = [(r, unpack_labels(r.labels, shapes[wid])) for r in by_wafer.get(wid, [])]
        for (ra, ma), (rb, mb) in combinations(masks, 2):
            if ra.annotator_id == rb.annotator_id:
                continue
            per, miou = pair_iou(ma, mb)
            result.pairs.append(PairAgreement((ra.id, rb.id), (ra.annotator_id, rb.annotator_id), per, miou))
        out.append(result)
    return out


def summary(results: list[WaferAgreement], threshold: float, max_listed: int = 100) -> dict[str, Any]:
    """For the statistics: how many wafers were compared, their mean agreement, which are flagged."""
    names = default_taxonomy().names
    pairs = [p for r in results for p in r.pairs]
    per_class = {}
    for n in names:
        vals = [p.per_class[n] for p in pairs if p.per_class.get(n) is not None]
        per_class[n] = round(float(np.mean(vals)), 4) if vals else None  # None: no pair used the class
    mious = [p.miou for p in pairs if p.miou is not None]
    flagged = [r.wafer_id for r in results if r.flagged]
    return {
        "wafers_compared": len(results),
        "pairs": len(pairs),
        "mean_miou": round(float(np.mean(mious)), 4) if mious else None,
        "per_class_iou": per_class,
        "threshold": threshold,
        "flagged": len(flagged),
        "flagged_wafers": flagged[:max_listed],
    }
