"""A job's training set, as the server hands it to the worker: approved annotations + wafer grids.

The worker gets one ``.wdm`` file (:func:`waferdesk.core.formats.write_wdm`): every selected
wafer (its die grid and metadata, as uploaded) with its ground truth as the label mask,
exactly the records ``waferdesk train --data`` reads. Ground truth is a wafer's live approved
annotation, the most recently changed one when there are several (as the COCO export
chooses). The selection narrows by lot and by active-learning round (the wafers of that
round's queue items). Synthetic wafers (``data.synthetic_count``) are not sent: the worker
generates them itself from their seed, so they cost no transfer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Select, distinct, func, select
from sqlalchemy.orm import Session

from waferdesk.core.formats import write_wdm
from waferdesk.core.records import WaferRecord
from waferdesk.core.wafer import LabelMask

from ...db.models import ALRound, Annotation, QueueItem, Wafer
from ..annotations import LIVE
from ..masks import unpack_labels
from ..wafers import to_wafer_map


def _approved(selection: dict[str, Any]) -> Select:
    q = (
        select(Annotation, Wafer)
        .join(Wafer, Wafer.id == Annotation.wafer_id)
        .where(LIVE, Annotation.status == "approved")
    )
    if selection.get("lots"):
        q = q.where(Wafer.lot.in_(list(selection["lots"])))
    if selection.get("rounds"):
        in_rounds = (
            select(QueueItem.wafer_id)
            .join(ALRound, ALRound.id == QueueItem.round_id)
            .where(ALRound.number.in_(list(selection["rounds"])))
        )
        q = q.where(Annotation.wafer_id.in_(in_rounds))
    return q


def count_annotated(session: Session, selection: dict[str, Any]) -> int:
    """How many wafers the selection's approved annotations cover (no mask is unpacked)."""
    if not selection.get("annotations", True):
        return 0
    sub = _approved(selection).with_only_columns(Annotation.wafer_id).subquery()
    return int(session.scalar(select(func.count(distinct(sub.c.wafer_id)))) or 0)


def annotated_records(session: Session, selection: dict[str, Any]) -> list[WaferRecord]:
    """The selected wafers with their ground truth as label masks, in wafer-id order."""
    if not selection.get("annotations", True):
        return []
    chosen: dict[int, tuple[Annotation, Wafer]] = {}
    q = _approved(selection).order_by(Annotation.wafer_id, Annotation.updated_at, Annotation.id)
    for ann, wafer in session.execute(q):
        chosen[wafer.id] = (ann, wafer)  # ascending: the latest change per wafer wins
    out = []
    for wid in sorted(chosen):
        ann, wafer = chosen[wid]
        out.append(WaferRecord(to_wafer_map(wafer), LabelMask(unpack_labels(ann.labels, (wafer.rows, wafer.cols)))))
    return out


def summary(session: Session, selection: dict[str, Any]) -> dict[str, Any]:
    """What a job would train on: counts, for the submit-time check and the worker."""
    return {
        "annotated_wafers": count_annotated(session, selection),
        "synthetic_wafers": int(selection.get("synthetic_count") or 0),
        "rounds": selection.get("rounds"),
        "lots": selection.get("lots"),
    }


def write_dataset(session: Session, selection: dict[str, Any], path: Path) -> int:
    recs = annotated_records(session, selection)
    write_wdm(path, recs)
    return len(recs)
