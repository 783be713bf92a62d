"""``/annotations``: create, read, edit, submit, review (approve / reject), delete, agreement.

Annotators (``annotations:write_own``) see and change only their own annotations;
engineers and admins also read everyone's (``annotations:read_all``) and review them
(``annotations:review``). Every change names the version it is based on (409 with
``details.current_version`` when stale). COCO export and import are in ``exports.py``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response, status
from sqlalchemy import select

from waferdesk.core.taxonomy import default_taxonomy

from ...core.permissions import Permission
from ...db.models import Annotation, User, Wafer
from ...services import agreement as agreement_svc
from ...services import annotations as svc
from ...services import audit
from ...services.masks import parse_labels, unpack_labels
from ...services.prediction import mask_payload
from ...services.wafers import get_wafer
from ..deps import CtxDep, SessionDep, require
from ..schemas.annotations import (
    AgreementOut,
    AnnotationCreate,
    AnnotationOut,
    AnnotationPage,
    AnnotationUpdate,
    AuditOut,
    RejectBody,
    ReviewItem,
    SubmitBody,
    VersionBody,
)
from ..schemas.common import DbId, DbOffset, error_responses

router = APIRouter(prefix="/annotations", tags=["annotations"])
Writer = Annotated[User, Depends(require(Permission.ANNOTATIONS_WRITE_OWN))]
Reviewer = Annotated[User, Depends(require(Permission.ANNOTATIONS_REVIEW))]
Reader = Annotated[User, Depends(require(Permission.ANNOTATIONS_READ_ALL))]
MaskFormat = Annotated[
    Literal["lists", "rle", "none"], Query(description="labels as rows of ints, run-length encoded, or left out")
]


def annotation_outs(session: SessionDep, anns: list[Annotation], mask: str = "rle") -> list[AnnotationOut]:
    if not anns:
        return []
    wafers = {w.id: w for w in session.scalars(select(Wafer).where(Wafer.id.in_({a.wafer_id for a in anns})))}
    names = svc.usernames(session, {a.annotator_id for a in anns})
    truth = svc.ground_truth_ids(session, list(wafers))
    classes = list(default_taxonomy().names)
    out = []
    for a in anns:
        w = wafers[a.wafer_id]
        labels = None if mask == "none" else mask_payload(unpack_labels(a.labels, (w.rows, w.cols)), mask)
        out.append(
            AnnotationOut(
                id=a.id,
                wafer_id=a.wafer_id,
                annotator_id=a.annotator_id,
                annotator=names.get(a.annotator_id) if a.annotator_id is not None else None,
                status=a.status,
                source=a.source,
                version=a.version,
                ground_truth=truth.get(a.wafer_id) == a.id,
                n_labelled=a.n_labelled,
                counts=a.counts,
                polygons=a.polygons,
                time_spent_s=round(a.time_spent_s, 3),
                reject_reason=a.reject_reason,
                reviewer_id=a.reviewer_id,
                reviewed_at=a.reviewed_at,
                prediction_id=a.prediction_id,
                created_at=a.created_at,
                updated_at=a.updated_at,
                submitted_at=a.submitted_at,
                labels=labels,
                classes=classes,
            )
        )
    return out


def _one(session: SessionDep, ann: Annotation, mask: str = "rle") -> AnnotationOut:
    return annotation_outs(session, [ann], mask)[0]


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=AnnotationOut, responses=error_responses(404, 409, 410, 422)
)
def create_annotation(body: AnnotationCreate, user: Writer, session: SessionDep, response: Response) -> AnnotationOut:
    """Your annotation of a wafer (a draft, or submitted at once with ``submit: true``).

    With ``client_key``, a retry of a create whose answer was lost returns the annotation the
    first attempt made (200, header ``Idempotent-Replay: true``), never a second one; when that
    annotation has been deleted since, the retry is 410 ``annotation_deleted`` (nothing made)."""
    wafer = get_wafer(session, body.wafer_id)
    content = svc.Content(
        labels=parse_labels(body.labels, (wafer.rows, wafer.cols)),
        source=body.source,
        polygons=svc.check_polygons(body.polygons),
        time_spent_s=body.time_spent_s,
        prediction_id=body.prediction_id,
        client_key=body.client_key,
    )
    ann, replayed = svc.create_idempotent(session, user, body.wafer_id, content, submit=body.submit)
    if replayed:
        response.status_code = status.HTTP_200_OK
        response.headers["Idempotent-Replay"] = "true"
    return _one(session, ann)


@router.get("", response_model=AnnotationPage, responses=error_responses(422))
def list_annotations(
    user: Reader,
    session: SessionDep,
    status_: Annotated[Literal["draft", "submitted", "approved", "rejected"] | None, Query(alias="status")] = None,
    wafer_id: DbId | None = None,
    annotator_id: DbId | None = None,
    mask: MaskFormat = "none",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[DbOffset, Query()] = 0,
) -> AnnotationPage:
    """Everyone's live annotations, most recently changed first."""
    flt = svc.AnnotationFilter(status=status_, wafer_id=wafer_id, annotator_id=annotator_id)
    rows, total = svc.list_annotations(session, flt, limit, offset)
    return AnnotationPage(items=annotation_outs(session, rows, mask), total=total, limit=limit, offset=offset)


@router.get("/review", response_model=list[ReviewItem])
def review_list(
    user: Reviewer,
    session: SessionDep,
    ctx: CtxDep,
    mask: MaskFormat = "none",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ReviewItem]:
    """Submitted annotations awaiting review: wafers whose annotators disagree first, then oldest first."""
    rows, _ = svc.list_annotations(session, svc.AnnotationFilter(status="submitted"), 10_000, 0)
    agree = {
        a.wafer_id: a
        for a in agreement_svc.agreement(session, ctx.settings.agreement_threshold, [r.wafer_id for r in rows])
    }
    rows.sort(
        key=lambda a: (not (agree.get(a.wafer_id) and agree[a.wafer_id].flagged), a.submitted_at or a.updated_at, a.id)
    )
    rows = rows[:limit]
    return [
        ReviewItem(
            annotation=out, agreement=AgreementOut(**agree[a.wafer_id].as_dict()) if a.wafer_id in agree else None
        )
        for a, out in zip(rows, annotation_outs(session, rows, mask), strict=True)
    ]


@router.get("/agreement", response_model=list[AgreementOut])
def agreement(
    user: Reader,
    session: SessionDep,
    ctx: CtxDep,
    flagged_only: bool = False,
    wafer_id: DbId | None = None,
) -> list[AgreementOut]:
    """Per-class IoU between annotators of every wafer labelled by two or more."""
    results = agreement_svc.agreement(session, ctx.settings.agreement_threshold, [wafer_id] if wafer_id else None)
    return [AgreementOut(**r.as_dict()) for r in results if r.flagged or not flagged_only]


@router.get("/wafer/{wafer_id}", response_model=list[AnnotationOut], responses=error_responses(404))
def wafer_annotations(
    wafer_id: DbId, user: Writer, session: SessionDep, mask: MaskFormat = "rle"
) -> list[AnnotationOut]:
    """A wafer's live annotations: yours (annotators), or everyone's (engineers, admins)."""
    return annotation_outs(session, svc.for_wafer(session, user, wafer_id), mask)


@router.get("/{annotation_id}", response_model=AnnotationOut, responses=error_responses(403, 404))
def get_annotation(annotation_id: DbId, user: Writer, session: SessionDep, mask: MaskFormat = "rle") -> AnnotationOut:
    return _one(session, svc.visible(session, user, annotation_id), mask)


@router.get("/{annotation_id}/history", response_model=list[AuditOut], responses=error_responses(403, 404))
def annotation_history(annotation_id: DbId, user: Writer, session: SessionDep) -> list[AuditOut]:
    """The audit rows of an annotation: who changed what, when."""
    svc.visible(session, user, annotation_id)
    return [
        AuditOut.model_validate(r, from_attributes=True) for r in audit.history(session, "annotation", annotation_id)
    ]


@router.put("/{annotation_id}", response_model=AnnotationOut, responses=error_responses(403, 404, 409, 422))
def update_annotation(annotation_id: DbId, body: AnnotationUpdate, user: Writer, session: SessionDep) -> AnnotationOut:
    """Edit your annotation; ``version`` must be the current one (else 409 with the current version)."""
    changes = body.model_dump(exclude_unset=True)
    ann = svc.update(
        session,
        user,
        annotation_id,
        body.version,
        labels=changes.get("labels", svc.UNSET),
        polygons=changes.get("polygons", svc.UNSET),
        source=body.source,
        add_time_s=body.add_time_s,
    )
    return _one(session, ann)


@router.delete("/{annotation_id}", response_model=AnnotationOut, responses=error_responses(403, 404, 409, 422))
def delete_annotation(
    annotation_id: DbId,
    user: Writer,
    session: SessionDep,
    version: Annotated[int, Query(description="the version you are deleting")],
) -> AnnotationOut:
    """Soft delete (yours, or any for a reviewer); the row and its history stay."""
    return _one(session, svc.delete(session, user, annotation_id, version), "none")


@router.post("/{annotation_id}/submit", response_model=AnnotationOut, responses=error_responses(403, 404, 409, 422))
def submit_annotation(annotation_id: DbId, body: SubmitBody, user: Writer, session: SessionDep) -> AnnotationOut:
    """Hand in for review (every failing die labelled); completes your claimed queue item of the wafer."""
    return _one(session, svc.submit(session, user, annotation_id, body.version, body.add_time_s))


@router.post("/{annotation_id}/approve", response_model=AnnotationOut, responses=error_responses(404, 409))
def approve_annotation(annotation_id: DbId, body: VersionBody, user: Reviewer, session: SessionDep) -> AnnotationOut:
    """Approve a submitted annotation: it becomes the wafer's ground truth."""
    return _one(session, svc.approve(session, user, annotation_id, body.version))


@router.post("/{annotation_id}/reject", response_model=AnnotationOut, responses=error_responses(404, 409, 422))
def reject_annotation(annotation_id: DbId, body: RejectBody, user: Reviewer, session: SessionDep) -> AnnotationOut:
    """Reject a submitted (or approved) annotation with a reason; its annotator edits it again."""
    return _one(session, svc.reject(session, user, annotation_id, body.version, body.reason))
