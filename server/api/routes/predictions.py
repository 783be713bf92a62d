"""``/predict``, ``/predict/batch``, ``/predictions/{id}``: run and read the active model's predictions.

Both run endpoints take multipart forms: uploaded files (stored like ``POST /wafers``,
de-duplicated by content hash) and/or ids of stored wafers. ``/predict`` answers exactly one
wafer; ``/predict/batch`` up to ``max_batch`` (100 by default) and refuses more with 413.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from sqlalchemy import select

from waferdesk.core.taxonomy import default_taxonomy

from ...core.errors import NotFoundError, PayloadTooLargeError, UnprocessableError
from ...core.permissions import Permission
from ...db.models import Prediction, User, Wafer
from ...services import wafers as wafer_svc
from ...services.prediction import Result, Served, mask_payload
from ..deps import CtxDep, SessionDep, require
from ..schemas.common import DbId, error_responses
from ..schemas.predictions import BatchOut, PredictionOut, prediction_out
from ..schemas.wafers import PASS_BINS_HELP

router = APIRouter(tags=["predictions"])
Runner = Annotated[User, Depends(require(Permission.PREDICTIONS_RUN))]
MaskFormat = Annotated[
    Literal["lists", "rle", "none"], Query(description="mask as rows of ints, run-length encoded, or left out")
]
WithEmbedding = Annotated[bool, Query(description="include the embedding vector")]


def _out(served: Served, mask: str, embedding: bool) -> PredictionOut:
    names = list(default_taxonomy().names)
    return prediction_out(served, mask, embedding, names, mask_payload(served.result.mask, mask))


def _wafers_by_id(session: SessionDep, ids: list[int]) -> list[Wafer]:
    found = {w.id: w for w in session.scalars(select(Wafer).where(Wafer.id.in_(ids)))} if ids else {}
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFoundError(
            f"wafer(s) not found: {', '.join(map(str, missing[:20]))}", code="wafer_not_found", details=missing
        )
    return [found[i] for i in ids]


def _from_files(
    session: SessionDep, ctx: CtxDep, files: list[UploadFile], user: User, pass_bins: str | None
) -> list[Wafer]:
    uploads = [wafer_svc.UploadedFile(f.filename or "", f.file) for f in files]
    parsed = wafer_svc.parse_uploads(uploads, ctx.settings, wafer_svc.parse_pass_bins(pass_bins))
    items = [(rec, p.format, p.filename) for p in parsed for rec in p.records]
    return [row for row, _ in wafer_svc.store_records(session, items, user.id)]


@router.post("/predict", response_model=PredictionOut, responses=error_responses(404, 413, 422, 503))
def predict(
    user: Runner,
    session: SessionDep,
    ctx: CtxDep,
    file: Annotated[UploadFile | None, File(description="a file holding one wafer")] = None,
    wafer_id: Annotated[DbId | None, Form(description="id of a stored wafer")] = None,
    pass_bins: Annotated[str | None, Form(description=PASS_BINS_HELP)] = None,
    mask: MaskFormat = "lists",
    embedding: WithEmbedding = False,
) -> PredictionOut:
    """Predict one wafer: an uploaded file (stored too) or a stored wafer id, not both."""
    if (file is None) == (wafer_id is None):
        raise UnprocessableError("send exactly one of: a file (form field 'file') or 'wafer_id'", code="invalid_input")
    if file is not None:
        wafers = _from_files(session, ctx, [file], user, pass_bins)
        if len(wafers) != 1:
            raise UnprocessableError(
                f"{wafer_svc.safe_name(file.filename)}: holds {len(wafers)} wafers; /predict takes one, "
                "use /predict/batch",
                code="one_wafer_expected",
            )
    else:
        wafers = _wafers_by_id(session, [int(wafer_id)])
    served = ctx.predictor.predict(session, wafers, user.id, "predict")
    return _out(served[0], mask, embedding)


@router.post("/predict/batch", response_model=BatchOut, responses=error_responses(404, 413, 422, 503))
def predict_batch(
    user: Runner,
    session: SessionDep,
    ctx: CtxDep,
    files: Annotated[list[UploadFile] | None, File(description="wafer files (each may hold several wafers)")] = None,
    wafer_ids: Annotated[list[DbId] | None, Form(description="ids of stored wafers (repeat the field)")] = None,
    pass_bins: Annotated[str | None, Form(description=PASS_BINS_HELP)] = None,
    mask: MaskFormat = "rle",
    embedding: WithEmbedding = False,
) -> BatchOut:
    """Predict up to ``max_batch`` wafers (ids first, then the files' wafers, in order)."""
    ids = list(wafer_ids or [])
    files = list(files or [])
    limit = ctx.settings.max_batch
    if not ids and not files:
        raise UnprocessableError("send 'wafer_ids' and/or 'files'", code="invalid_input")
    if len(ids) > limit:
        raise PayloadTooLargeError(
            f"batch of {len(ids)} wafers; at most {limit} per request (split it)",
            code="batch_too_large",
            details={"limit": limit, "requested": len(ids)},
        )
    wafers = _wafers_by_id(session, ids)
    if files:
        wafers += _from_files(session, ctx, files, user, pass_bins)
    if len(wafers) > limit:
        session.rollback()
        raise PayloadTooLargeError(
            f"batch of {len(wafers)} wafers; at most {limit} per request (split it)",
            code="batch_too_large",
            details={"limit": limit, "requested": len(wafers)},
        )
    served = ctx.predictor.predict(session, wafers, user.id, "batch")
    results = [_out(s, mask, embedding) for s in served]
    return BatchOut(results=results, count=len(results), cache_hits=sum(1 for s in served if s.source == "cache"))


@router.get("/predictions/{prediction_id}", response_model=PredictionOut, responses=error_responses(404))
def get_prediction(
    prediction_id: DbId,
    user: Annotated[User, Depends(require(Permission.PREDICTIONS_READ))],
    session: SessionDep,
    mask: MaskFormat = "lists",
    embedding: WithEmbedding = False,
) -> PredictionOut:
    row = session.get(Prediction, prediction_id)
    if row is None:
        raise NotFoundError(f"prediction {prediction_id} not found", code="prediction_not_found")
    wafer = session.get(Wafer, row.wafer_id)
    assert wafer is not None  # predictions are deleted with their wafer
    served = Served(wafer, row, Result.from_row(row, wafer), "db", None)
    return _out(served, mask, embedding)
