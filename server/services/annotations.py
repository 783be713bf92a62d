"""Annotations: create, edit, submit, review, delete; every change versioned and audited.

Rules (the issue's, enforced here so every route and the COCO import share them):
- a mask has the wafer's shape, classes from the taxonomy, labels on failing dies only (the
  core's :meth:`LabelMask.validate` names the offending die); submitting demands every
  failing die labelled (ground truth is complete);
- an annotator writes and edits only their own annotations (one live one per wafer);
- every change names the version it was based on; a stale one is a 409 carrying the current
  version (``details.current_version``), so two people never silently overwrite each other;
  on Postgres the row is locked for the check-and-write, on SQLite the write transaction is;
- ``draft -> submitted -> approved | rejected``; editing a rejected annotation makes it a
  draft again; an approved one is ground truth and is not edited (a reviewer rejects it
  first); the latest approved annotation of a wafer is its ground truth;
- delete is soft (``deleted_at``); every change writes an audit row in its transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from waferdesk.core.errors import ValidationError
from waferdesk.core.taxonomy import default_taxonomy
from waferdesk.core.wafer import LabelMask, WaferMap

from ..core.errors import ConflictError, ForbiddenError, GoneError, NotFoundError, UnprocessableError
from ..core.permissions import Permission, allows
from ..db.base import utcnow
from ..db.models import Annotation, Prediction, User, Wafer
from ..db.models.annotations import ANNOTATION_SOURCES
from ..db.session import begin_write
from . import audit, queue
from .masks import class_counts, pack_labels, parse_labels, unpack_labels
from .wafers import die_grid, get_wafer

LIVE = Annotation.deleted_at.is_(None)
LABELLED_STATUSES = ("submitted", "approved")
MAX_POLYGONS = 10_000
UNSET: Any = object()


@dataclass
class Content:
    """What an annotator sends: the mask (already parsed) and how it was made."""

    labels: np.ndarray
    source: str = "manual"
    polygons: list[dict[str, Any]] | None = None
    time_spent_s: float = 0.0
    prediction_id: int | None = None
    client_key: str | None = None  # the client's idempotency key (a desktop outbox entry)


# -- helpers ---------------------------------------------------------------------------------
def can_read_all(user: User) -> bool:
    return allows(user.role, Permission.ANNOTATIONS_READ_ALL)


def can_review(user: User) -> bool:
    return allows(user.role, Permission.ANNOTATIONS_REVIEW)


def wafer_map_of(row: Wafer) -> WaferMap:
    """The die grid with the wafer's name (what label checks need; no bins or metadata)."""
    return WaferMap(dies=die_grid(row), lot=row.lot, wafer_id=row.wafer_id, product=row.product)


def labels_of(ann: Annotation, wafer: Wafer) -> np.ndarray:
    return unpack_labels(ann.labels, (wafer.rows, wafer.cols))


def check_labels(wafer: Wafer, labels: np.ndarray, complete: bool) -> None:
    """4xx naming the die when ``labels`` break the rules for ``wafer``."""
    try:
        LabelMask(labels).validate(wafer_map_of(wafer), complete=complete)
    except ValidationError as exc:
        hint = " (submitting needs every failing die labelled; save it as a draft meanwhile)" if complete else ""
        raise UnprocessableError(f"{exc}{hint}", code="invalid_labels", details={"field": "labels"}) from None


def check_polygons(polygons: Any) -> list[dict[str, Any]] | None:
    """``[{"class": name, "vertices": [[x, y], ...]}, ...]`` in die units, or None."""
    if polygons is None:
        return None
    names = default_taxonomy().names
    if not isinstance(polygons, list) or len(polygons) > MAX_POLYGONS:
        raise UnprocessableError(f"body field polygons: a list of at most {MAX_POLYGONS} polygons")
    out = []
    for i, poly in enumerate(polygons):
        where = f"body field polygons[{i}]"
        if not isinstance(poly, dict) or poly.get("class") not in names:
            raise UnprocessableError(f"{where}: needs 'class', one of {', '.join(names)}", code="invalid_polygons")
        verts = poly.get("vertices")
        try:
            arr = np.asarray(verts, dtype=np.float64)
        except (TypeError, ValueError):
            arr = np.zeros((0,))
        if arr.ndim != 2 or arr.shape[1] != 2 or len(arr) < 3 or not np.isfinite(arr).all():
            raise UnprocessableError(f"{where}: 'vertices' must be at least 3 [x, y] points", code="invalid_polygons")
        out.append({"class": poly["class"], "vertices": arr.tolist()})
    return out


def check_version(ann: Annotation, version: int) -> None:
    if ann.version != version:
        raise ConflictError(
            f"annotation {ann.id} is at version {ann.version}, your change was based on version {version}: "
            "reload it and apply your change again",
            code="version_conflict",
            details={
                "annotation_id": ann.id,
                "current_version": ann.version,
                "your_version": version,
                "status": ann.status,
                "updated_at": ann.updated_at.isoformat(),
            },
        )


def load(session: Session, annotation_id: int, lock: bool = False) -> Annotation:
    """A live annotation (404 when missing or deleted); ``lock`` holds its row (Postgres)."""
    q = select(Annotation).where(Annotation.id == annotation_id, LIVE)
    if lock:
        q = q.with_for_update()
    ann = session.scalar(q.execution_options(populate_existing=True))
    if ann is None:
        raise NotFoundError(f"annotation {annotation_id} not found", code="annotation_not_found")
    return ann


def visible(session: Session, user: User, annotation_id: int) -> Annotation:
    ann = load(session, annotation_id)
    if ann.annotator_id != user.id and not can_read_all(user):
        raise ForbiddenError(f"annotation {annotation_id} belongs to another annotator", code="not_your_annotation")
    return ann


def _own(ann: Annotation, user: User) -> None:
    if ann.annotator_id != user.id:
        raise ForbiddenError(
            f"annotation {ann.id} belongs to another annotator; annotators edit only their own",
            code="not_your_annotation",
        )


def _transition(ann: Annotation, allowed: tuple[str, ...], action: str) -> None:
    if ann.status not in allowed:
        raise ConflictError(
            f"annotation {ann.id} is {ann.status}; only {' or '.join(allowed)} annotations can be {action}",
            code="invalid_transition",
            details={"annotation_id": ann.id, "status": ann.status, "current_version": ann.version},
        )


def bump_version(ann: Annotation) -> None:
    ann.version += 1
    ann.updated_at = max(utcnow(), ann.updated_at + timedelta(microseconds=1))


def _check_prediction(session: Session, prediction_id: int | None, wafer_id: int) -> None:
    if prediction_id is None:
        return
    wid = session.scalar(select(Prediction.wafer_id).where(Prediction.id == prediction_id))
    if wid != wafer_id:
        raise UnprocessableError(
            f"body field prediction_id: prediction {prediction_id} is not a prediction of wafer {wafer_id}",
            code="invalid_input",
        )


def _check_source(source: str) -> None:
    if source not in ANNOTATION_SOURCES:
        raise UnprocessableError(f"body field source: {source!r} is not one of {', '.join(ANNOTATION_SOURCES)}")


def existing_of(session: Session, wafer_id: int, annotator_id: int) -> Annotation | None:
    return session.scalar(
        select(Annotation).where(Annotation.wafer_id == wafer_id, Annotation.annotator_id == annotator_id, LIVE)
    )


def _already(ann: Annotation) -> ConflictError:
    return ConflictError(
        f"you already annotate wafer {ann.wafer_id} (annotation {ann.id}, version {ann.version}); "
        f"edit it with PUT /annotations/{ann.id}",
        code="already_annotated",
        details={"annotation_id": ann.id, "current_version": ann.version, "status": ann.status},
    )


def by_client_key(session: Session, user: User, client_key: str | None) -> Annotation | None:
    """The annotation ``user`` created with this idempotency key (live or not), if any."""
    if client_key is None:
        return None
    return session.scalar(
        select(Annotation)
        .where(Annotation.annotator_id == user.id, Annotation.client_key == client_key)
        .execution_options(populate_existing=True)
    )


def _replay(done: Annotation) -> Annotation:
    """The annotation a repeated client key made, unless it has been deleted since: then a 410
    ``annotation_deleted`` (deleted annotations appear in no answer), so a desktop outbox that
    replays after a lost answer stops retrying, tells the user, and never makes it again."""
    if done.deleted_at is not None:
        raise GoneError(
            f"annotation {done.id} (wafer {done.wafer_id}), which this client_key created, has been deleted "
            "since; it is not made again: start a new annotation of the wafer to label it again",
            code="annotation_deleted",
            details={"annotation_id": done.id, "wafer_id": done.wafer_id, "deleted_at": done.deleted_at.isoformat()},
        )
    return done


# -- changes ---------------------------------------------------------------------------------
def create(session: Session, user: User, wafer_id: int, content: Content, submit: bool = False) -> Annotation:
    """A new annotation; with ``content.client_key`` a repeat of a create that already happened
    returns that annotation unchanged (see :func:`create_idempotent`)."""
    return create_idempotent(session, user, wafer_id, content, submit)[0]


def create_idempotent(
    session: Session, user: User, wafer_id: int, content: Content, submit: bool = False
) -> tuple[Annotation, bool]:
    """``(annotation, replayed)``: ``replayed`` when the client key was seen before (nothing written)."""
    begin_write(session)
    done = by_client_key(session, user, content.client_key)
    if done is not None:
        session.commit()
        return _replay(done), True
    wafer = get_wafer(session, wafer_id)
    _check_source(content.source)
    check_labels(wafer, content.labels, complete=submit)
    _check_prediction(session, content.prediction_id, wafer.id)
    previous = existing_of(session, wafer.id, user.id)
    if previous is not None:
        raise _already(previous)
    now = utcnow()
    ann = Annotation(
        wafer_id=wafer.id,
        annotator_id=user.id,
        labels=pack_labels(content.labels),
        n_labelled=int(np.count_nonzero(content.labels != 255)),
        counts=class_counts(content.labels),
        polygons=content.polygons,
        source=content.source,
        status="submitted" if submit else "draft",
        prediction_id=content.prediction_id,
        time_spent_s=float(content.time_spent_s),
        version=1,
        created_at=now,
        updated_at=now,
        submitted_at=now if submit else None,
        client_key=content.client_key,
    )
    try:
        with session.begin_nested():
            session.add(ann)
            session.flush()
    except IntegrityError:  # a concurrent create of the same (wafer, annotator), or of the same key
        done = by_client_key(session, user, content.client_key)
        if done is not None:
            session.commit()
            return _replay(done), True
        other = existing_of(session, wafer.id, user.id)
        if other is None:
            raise
        raise _already(other) from None
    audit.record(session, user.id, "create", "annotation", ann.id, None, audit.annotation_summary(ann))
    if submit:
        queue.complete_for(session, ann)
    session.commit()
    return ann, False


def update(
    session: Session,
    user: User,
    annotation_id: int,
    version: int,
    labels: Any = UNSET,
    polygons: Any = UNSET,
    source: str | None = None,
    add_time_s: float = 0.0,
) -> Annotation:
    """Edit your own annotation; ``labels`` is a wire payload (rows or rle), parsed here."""
    begin_write(session)
    ann = load(session, annotation_id, lock=True)
    _own(ann, user)
    check_version(ann, version)
    if ann.status == "approved":
        raise ConflictError(
            f"annotation {ann.id} is approved (ground truth) and is not edited; a reviewer rejects it first",
            code="annotation_approved",
            details={"annotation_id": ann.id, "current_version": ann.version},
        )
    wafer = get_wafer(session, ann.wafer_id)
    before = audit.annotation_summary(ann)
    if labels is not UNSET:
        new = parse_labels(labels, (wafer.rows, wafer.cols))
        check_labels(wafer, new, complete=ann.status == "submitted")
        ann.labels = pack_labels(new)
        ann.n_labelled = int(np.count_nonzero(new != 255))
        ann.counts = class_counts(new)
    if polygons is not UNSET:
        ann.polygons = check_polygons(polygons)
    if source is not None:
        _check_source(source)
        ann.source = source
    ann.time_spent_s += float(add_time_s)
    if ann.status == "rejected":
        ann.status = "draft"
    bump_version(ann)
    audit.record(session, user.id, "update", "annotation", ann.id, before, audit.annotation_summary(ann))
    session.commit()
    return ann


def submit(session: Session, user: User, annotation_id: int, version: int, add_time_s: float = 0.0) -> Annotation:
    """Hand your annotation in for review; completes your claimed queue item of its wafer."""
    begin_write(session)
    ann = load(session, annotation_id, lock=True)
    _own(ann, user)
    check_version(ann, version)
    _transition(ann, ("draft", "rejected"), "submitted")
    wafer = get_wafer(session, ann.wafer_id)
    check_labels(wafer, labels_of(ann, wafer), complete=True)
    before = audit.annotation_summary(ann)
    ann.status = "submitted"
    ann.submitted_at = utcnow()
    ann.reject_reason = None
    ann.time_spent_s += float(add_time_s)
    bump_version(ann)
    audit.record(session, user.id, "submit", "annotation", ann.id, before, audit.annotation_summary(ann))
    queue.complete_for(session, ann)
    session.commit()
    return ann


def approve(session: Session, reviewer: User, annotation_id: int, version: int) -> Annotation:
    begin_write(session)
    ann = load(session, annotation_id, lock=True)
    check_version(ann, version)
    _transition(ann, ("submitted",), "approved")
    before = audit.annotation_summary(ann)
    ann.status = "approved"
    ann.reviewer_id = reviewer.id
    ann.reviewed_at = utcnow()
    ann.reject_reason = None
    bump_version(ann)
    audit.record(session, reviewer.id, "approve", "annotation", ann.id, before, audit.annotation_summary(ann))
    session.commit()
    return ann


def reject(session: Session, reviewer: User, annotation_id: int, version: int, reason: str) -> Annotation:
    reason = reason.strip()
    if not reason:
        raise UnprocessableError("body field reason: say why the annotation is rejected", code="invalid_input")
    begin_write(session)
    ann = load(session, annotation_id, lock=True)
    check_version(ann, version)
    _transition(ann, ("submitted", "approved"), "rejected")
    before = audit.annotation_summary(ann)
    ann.status = "rejected"
    ann.reject_reason = reason[:1000]
    ann.reviewer_id = reviewer.id
    ann.reviewed_at = utcnow()
    bump_version(ann)
    after = {**audit.annotation_summary(ann), "reason": ann.reject_reason}
    audit.record(session, reviewer.id, "reject", "annotation", ann.id, before, after)
    session.commit()
    return ann


def delete(session: Session, user: User, annotation_id: int, version: int) -> Annotation:
    """Soft delete: your own (not yet approved) annotation, or any one for a reviewer."""
    begin_write(session)
    ann = load(session, annotation_id, lock=True)
    reviewer = can_review(user)
    if not reviewer:
        _own(ann, user)
    check_version(ann, version)
    if ann.status == "approved" and not reviewer:
        raise ConflictError(
            f"annotation {ann.id} is approved (ground truth); only a reviewer deletes it",
            code="annotation_approved",
            details={"annotation_id": ann.id, "current_version": ann.version},
        )
    before = audit.annotation_summary(ann)
    ann.deleted_at = utcnow()
    ann.deleted_by = user.id
    bump_version(ann)
    audit.record(session, user.id, "delete", "annotation", ann.id, before, audit.annotation_summary(ann))
    session.commit()
    return ann


# -- queries ---------------------------------------------------------------------------------
def for_wafer(session: Session, user: User, wafer_id: int) -> list[Annotation]:
    """Live annotations of a wafer: all of them for engineers/admins, your own for annotators."""
    get_wafer(session, wafer_id)
    q = select(Annotation).where(Annotation.wafer_id == wafer_id, LIVE)
    if not can_read_all(user):
        q = q.where(Annotation.annotator_id == user.id)
    return list(session.scalars(q.order_by(Annotation.id)))


@dataclass
class AnnotationFilter:
    status: str | None = None
    wafer_id: int | None = None
    annotator_id: int | None = None


def list_annotations(session: Session, flt: AnnotationFilter, limit: int, offset: int) -> tuple[list[Annotation], int]:
    q = select(Annotation).where(LIVE)
    if flt.status is not None:
        q = q.where(Annotation.status == flt.status)
    if flt.wafer_id is not None:
        q = q.where(Annotation.wafer_id == flt.wafer_id)
    if flt.annotator_id is not None:
        q = q.where(Annotation.annotator_id == flt.annotator_id)
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = list(
        session.scalars(q.order_by(Annotation.updated_at.desc(), Annotation.id.desc()).limit(limit).offset(offset))
    )
    return rows, int(total)


def ground_truth_ids(session: Session, wafer_ids: list[int]) -> dict[int, int]:
    """wafer id -> id of its ground truth (the latest approved live annotation)."""
    if not wafer_ids:
        return {}
    rows = session.execute(
        select(Annotation.wafer_id, Annotation.id)
        .where(Annotation.wafer_id.in_(wafer_ids), Annotation.status == "approved", LIVE)
        .order_by(Annotation.wafer_id, Annotation.reviewed_at, Annotation.id)
    ).all()
    return {w: a for w, a in rows}  # the last per wafer wins


def usernames(session: Session, ids: set[int | None]) -> dict[int, str]:
    clean = [i for i in ids if i is not None]
    if not clean:
        return {}
    return dict(session.execute(select(User.id, User.username).where(User.id.in_(clean))).all())
