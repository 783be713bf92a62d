"""``/wafers``: upload (one or many files, any format the core reads), list, get, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile, status
from sqlalchemy import select

from ...core.permissions import Permission
from ...db.models import Prediction, User
from ...services import wafers as svc
from ..dates import parse_when
from ..deps import CtxDep, SessionDep, require
from ..schemas.common import DbId, DbOffset, error_responses
from ..schemas.predictions import PredictionSummary
from ..schemas.wafers import (
    PASS_BINS_HELP,
    UploadResult,
    WaferDetail,
    WaferPage,
    uploaded_wafer,
    wafer_detail,
    wafer_out,
)

router = APIRouter(prefix="/wafers", tags=["wafers"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=UploadResult,
    responses=error_responses(413, 422),
)
def upload_wafers(
    files: Annotated[
        list[UploadFile], File(description="one or more wafer files (.wdm and every format the core reads)")
    ],
    user: Annotated[User, Depends(require(Permission.WAFERS_UPLOAD))],
    session: SessionDep,
    ctx: CtxDep,
    pass_bins: Annotated[str | None, Form(description=PASS_BINS_HELP)] = None,
) -> UploadResult:
    """Store every wafer in the files. All-or-nothing: one bad file fails the upload, naming it."""
    uploads = [svc.UploadedFile(f.filename or "", f.file) for f in files]
    result = svc.ingest(session, uploads, ctx.settings, user.id, svc.parse_pass_bins(pass_bins))
    out = [uploaded_wafer(row, created, name) for row, created, name in result.wafers]
    created = sum(1 for w in out if w.created)
    ctx.metrics.wafers_uploaded.labels(stored="new").inc(created)
    ctx.metrics.wafers_uploaded.labels(stored="existing").inc(len(out) - created)
    return UploadResult(wafers=out, created=created, existing=len(out) - created)


@router.get("", response_model=WaferPage, responses=error_responses(422))
def list_wafers(
    user: Annotated[User, Depends(require(Permission.WAFERS_READ))],
    session: SessionDep,
    lot: str | None = None,
    product: str | None = None,
    verdict: Annotated[
        str | None,
        Query(description="class name in the latest prediction's verdict, 'none', or 'unpredicted'"),
    ] = None,
    created_from: Annotated[str | None, Query(description="ISO date or datetime, inclusive")] = None,
    created_to: Annotated[str | None, Query(description="ISO date (inclusive day) or datetime (exclusive)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[DbOffset, Query()] = 0,
) -> WaferPage:
    """Newest first, with each wafer's latest verdict."""
    flt = svc.WaferFilter(
        lot=lot,
        product=product,
        verdict=verdict,
        created_from=parse_when(created_from, "created_from"),
        created_to=parse_when(created_to, "created_to", end=True),
    )
    rows, total = svc.list_wafers(session, flt, limit, offset)
    return WaferPage(items=[wafer_out(w, p) for w, p in rows], total=total, limit=limit, offset=offset)


@router.get("/{wafer_id}", response_model=WaferDetail, responses=error_responses(404))
def get_wafer(
    wafer_id: DbId,
    user: Annotated[User, Depends(require(Permission.WAFERS_READ))],
    session: SessionDep,
    grid: Annotated[bool, Query(description="include the die grid")] = True,
) -> WaferDetail:
    row = svc.get_wafer(session, wafer_id)
    return wafer_detail(row, svc.latest_prediction(session, wafer_id), svc.die_grid(row) if grid else None)


@router.delete("/{wafer_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404))
def delete_wafer(
    wafer_id: DbId, user: Annotated[User, Depends(require(Permission.WAFERS_DELETE))], session: SessionDep
) -> None:
    """Delete a wafer with its predictions, annotations (ground truth too) and queue items (admin)."""
    svc.delete_wafer(session, wafer_id)


@router.get("/{wafer_id}/predictions", response_model=list[PredictionSummary], responses=error_responses(404))
def wafer_predictions(
    wafer_id: DbId, user: Annotated[User, Depends(require(Permission.PREDICTIONS_READ))], session: SessionDep
) -> list[Prediction]:
    """Every stored prediction of a wafer (newest first), without masks: ``GET /predictions/{id}`` has those."""
    svc.get_wafer(session, wafer_id)
    rows = session.scalars(
        select(Prediction).where(Prediction.wafer_id == wafer_id).order_by(Prediction.id.desc())
    ).all()
    return list(rows)
