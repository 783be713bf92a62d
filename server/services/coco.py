"""COCO export and import of annotations (``POST /annotations/export`` and ``/import``).

Export: one image per wafer (die grid width x height, lot / wafer / product metadata, the
wafer's ``content_hash`` and ``wafer_db_id``), the taxonomy as categories, and per image one
annotation per class present, with compressed RLE, area and bbox (built by
:func:`waferdesk.core.coco.build_coco`, so the server, the CLI and the desktop write the
same bytes). Which annotations: live ones of the chosen status (``approved`` = ground truth
by default), filtered by lot, date (the annotation's last change) and round (the wafers of
that round's queue items); when a wafer has several, the most recently changed one is
exported (for ``approved`` that is the wafer's ground truth). Images are numbered 1..N in
wafer-id order, so the same annotations always export to the same document (bar
``info.date_created``).

Import: every image must match a stored wafer (``content_hash``, else lot + wafer id + grid
hash) and its mask must pass the annotation rules (complete unless imported as drafts), or
nothing is imported (422 naming every problem). The importer becomes the annotator: their
live annotation of the wafer is updated (a new version) or a new one created; ``approved``
imports are reviewed by the importer. Every change is audited as ``import``. An import never
silently demotes ground truth: when the importer's live annotation is ``approved`` and the
import is not, an identical mask leaves it untouched (``unchanged``) and a different one is a
problem of that image (the whole import is refused); ``approved`` imports replace it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from waferdesk.core.coco import build_coco
from waferdesk.core.coco_import import CocoImage, parse_coco
from waferdesk.core.errors import ValidationError
from waferdesk.core.wafer import LabelMask

from ..core.errors import UnprocessableError
from ..db.base import utcnow
from ..db.models import ALRound, Annotation, QueueItem, User, Wafer
from ..db.session import begin_write
from . import audit
from .annotations import LIVE, bump_version, existing_of, wafer_map_of
from .masks import class_counts, pack_labels, unpack_labels

STATUSES = ("draft", "submitted", "approved", "rejected")


@dataclass
class ExportFilter:
    status: str = "approved"
    lot: str | None = None
    updated_from: datetime | None = None
    updated_to: datetime | None = None
    round_number: int | None = None


def export_document(session: Session, flt: ExportFilter) -> dict[str, Any]:
    if flt.status not in STATUSES:
        raise UnprocessableError(f"field status: {flt.status!r} is not one of {', '.join(STATUSES)}")
    q = (
        select(Annotation, Wafer)
        .join(Wafer, Wafer.id == Annotation.wafer_id)
        .where(LIVE, Annotation.status == flt.status)
    )
    if flt.lot is not None:
        q = q.where(Wafer.lot == flt.lot)
    if flt.updated_from is not None:
        q = q.where(Annotation.updated_at >= flt.updated_from)
    if flt.updated_to is not None:
        q = q.where(Annotation.updated_at < flt.updated_to)
    if flt.round_number is not None:
        rnd = select(ALRound.id).where(ALRound.number == flt.round_number).scalar_subquery()
        q = q.where(Annotation.wafer_id.in_(select(QueueItem.wafer_id).where(QueueItem.round_id == rnd)))
    chosen: dict[int, tuple[Annotation, Wafer]] = {}
    for ann, wafer in session.execute(q.order_by(Annotation.wafer_id, Annotation.updated_at, Annotation.id)):
        chosen[wafer.id] = (ann, wafer)  # ascending: the latest change per wafer wins
    items = []
    for wid in sorted(chosen):
        ann, wafer = chosen[wid]
        items.append((wafer_map_of(wafer), LabelMask(unpack_labels(ann.labels, (wafer.rows, wafer.cols))), wafer))
    doc = build_coco(
        ((wm, mask) for wm, mask, _ in items),
        description=f"WaferDesk annotations ({flt.status}); one pixel per die",
    )
    for img, (_, _, wafer) in zip(doc["images"], items, strict=True):
        meta = wafer.meta or {}
        img["notch"] = meta.get("notch") or "down"
        img["source"] = meta.get("source") or wafer.source_name
        img["content_hash"] = wafer.content_hash
        img["wafer_db_id"] = wafer.id
    return doc


@dataclass
class ImportResult:
    created: int
    updated: int
    unchanged: int
    annotation_ids: list[int]


def _match(session: Session, img: CocoImage) -> Wafer | None:
    if img.content_hash:
        row = session.scalar(select(Wafer).where(Wafer.content_hash == img.content_hash))
        if row is not None:
            return row
    if img.lot is None and img.wafer_id is None:
        return None
    rows = list(
        session.scalars(
            select(Wafer).where(
                Wafer.lot == (img.lot or ""),
                Wafer.wafer_id == (img.wafer_id or ""),
                Wafer.rows == img.height,
                Wafer.cols == img.width,
            )
        )
    )
    if img.grid_sha256:
        rows = [r for r in rows if wafer_map_of(r).grid_hash() == img.grid_sha256]
    if len(rows) > 1:
        raise ValidationError(f"{img.name}: matches {len(rows)} stored wafers by lot and wafer id; cannot tell which")
    return rows[0] if rows else None


def import_document(session: Session, user: User, doc: Any, status: str, filename: str = "COCO file") -> ImportResult:
    if status not in ("draft", "submitted", "approved"):
        raise UnprocessableError(f"form field status: {status!r} is not one of draft, submitted, approved")
    try:
        images = parse_coco(doc)
    except ValueError as exc:
        raise UnprocessableError(f"{filename}: not a usable COCO file: {exc}", code="bad_file") from None
    begin_write(session)
    problems: list[dict[str, str]] = []
    plan: list[tuple[Wafer, np.ndarray]] = []
    for img in images:
        try:
            wafer = _match(session, img)
            if wafer is None:
                raise ValidationError(f"{img.name}: no stored wafer matches (content_hash, or lot + wafer id + grid)")
            mask = img.mask_for(wafer_map_of(wafer), complete=status != "draft")
            _keep_approval(session, user, img, wafer, mask.labels, status)
        except ValidationError as exc:
            problems.append({"image": str(img.id), "reason": str(exc)})
            continue
        plan.append((wafer, mask.labels))
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UnprocessableError(
            f"{filename}: {problems[0]['reason']}{more}; nothing was imported", code="bad_file", details=problems
        )
    seen: set[int] = set()
    result = ImportResult(0, 0, 0, [])
    for wafer, labels in plan:
        if wafer.id in seen:
            raise UnprocessableError(
                f"{filename}: wafer {wafer.id} appears twice; nothing was imported", code="bad_file"
            )
        seen.add(wafer.id)
        ann = _apply(session, user, wafer, labels, status, result)
        result.annotation_ids.append(ann.id)
    session.commit()
    return result


def _demotes(ann: Annotation, status: str) -> bool:
    """Importing as ``status`` would take ``ann``'s approval (ground truth) away."""
    return ann.status == "approved" and status != "approved"


def _keep_approval(session: Session, user: User, img: CocoImage, wafer: Wafer, labels: np.ndarray, status: str) -> None:
    """Refuse an image whose import would replace the importer's approved annotation of the
    wafer with a different mask of a lower status (an identical mask leaves it as it is)."""
    ann = existing_of(session, wafer.id, user.id)
    if ann is None or not _demotes(ann, status):
        return
    if np.array_equal(unpack_labels(ann.labels, (wafer.rows, wafer.cols)), labels):
        return
    raise ValidationError(
        f"{img.name}: your annotation of this wafer (annotation {ann.id}) is approved; importing it as "
        f"{status} would take its approval away. Import with status=approved to replace the ground truth"
    )


def _apply(
    session: Session, user: User, wafer: Wafer, labels: np.ndarray, status: str, result: ImportResult
) -> Annotation:
    now = utcnow()
    ann = existing_of(session, wafer.id, user.id)
    before = None
    if ann is not None:
        same = np.array_equal(unpack_labels(ann.labels, (wafer.rows, wafer.cols)), labels) and (
            ann.status == status or _demotes(ann, status)  # an identical mask keeps the approval
        )
        if same:
            result.unchanged += 1
            return ann
        before = audit.annotation_summary(ann)
        bump_version(ann)
        result.updated += 1
    else:
        ann = Annotation(
            wafer_id=wafer.id,
            annotator_id=user.id,
            source="manual",
            version=1,
            created_at=now,
            updated_at=now,
            time_spent_s=0.0,
        )
        session.add(ann)
        result.created += 1
    ann.labels = pack_labels(labels)
    ann.n_labelled = int(np.count_nonzero(labels != 255))
    ann.counts = class_counts(labels)
    ann.status = status
    ann.reject_reason = None
    ann.submitted_at = now if status != "draft" else None
    ann.reviewer_id = user.id if status == "approved" else None
    ann.reviewed_at = now if status == "approved" else None
    session.flush()
    audit.record(session, user.id, "import", "annotation", ann.id, before, audit.annotation_summary(ann))
    return ann
