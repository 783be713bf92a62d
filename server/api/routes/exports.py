"""``POST /annotations/export`` and ``/annotations/import``: annotations as COCO JSON (engineers, admins)."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, UploadFile

from ...core.errors import PayloadTooLargeError, UnprocessableError
from ...core.permissions import Permission
from ...db.models import User
from ...services import coco as svc
from ...services.wafers import safe_name
from ..dates import parse_when
from ..deps import CtxDep, SessionDep, require
from ..schemas.annotations import ExportRequest, ImportOut
from ..schemas.common import error_responses

router = APIRouter(prefix="/annotations", tags=["coco"])
Exporter = Annotated[User, Depends(require(Permission.EXPORTS_RUN))]


@router.post("/export", responses=error_responses(422))
def export_coco(user: Exporter, session: SessionDep, body: ExportRequest | None = None) -> dict:
    """A COCO instances document (loads with pycocotools): approved annotations unless ``status`` says otherwise."""
    body = body or ExportRequest()
    flt = svc.ExportFilter(
        status=body.status,
        lot=body.lot,
        updated_from=parse_when(body.date_from, "body field date_from"),
        updated_to=parse_when(body.date_to, "body field date_to", end=True),
        round_number=body.round,
    )
    return svc.export_document(session, flt)


@router.post("/import", response_model=ImportOut, responses=error_responses(413, 422))
def import_coco(
    user: Exporter,
    session: SessionDep,
    ctx: CtxDep,
    file: Annotated[UploadFile, File(description="a COCO JSON file (e.g. one exported here)")],
    status: Annotated[
        Literal["draft", "submitted", "approved"], Form(description="status of the imported annotations")
    ] = "submitted",
) -> ImportOut:
    """Masks of a COCO file become your annotations of the matching wafers; all or nothing.

    An import below ``approved`` never takes an approval away: where your annotation of a wafer
    is approved, an equal mask leaves it unchanged and a different one refuses the file (422)."""
    name = safe_name(file.filename)
    raw = file.file.read(ctx.settings.max_file_bytes + 1)
    if len(raw) > ctx.settings.max_file_bytes:
        raise PayloadTooLargeError(
            f"{name}: larger than the {ctx.settings.max_file_bytes}-byte limit per file", code="file_too_large"
        )
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise UnprocessableError(f"{name}: not a JSON file ({exc})", code="bad_file") from None
    except RecursionError:
        raise UnprocessableError(f"{name}: not a COCO file (JSON nested too deeply)", code="bad_file") from None
    result = svc.import_document(session, user, doc, status, name)
    return ImportOut(
        created=result.created, updated=result.updated, unchanged=result.unchanged, annotation_ids=result.annotation_ids
    )
