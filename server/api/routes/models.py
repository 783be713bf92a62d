"""``/models``: the model registry: list, cards, download, and promotion (admin).

Training jobs add models (``source: training``) through their worker's upload; a model
serves predictions only once an admin promotes it, and only if this server can load its card
(format, input encoding, classes, the file's sha256). The promotion answer shows the new
model's metrics beside those of the model it replaces.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse
from sqlalchemy import select

from waferdesk.core.errors import ModelError
from waferdesk.core.modelcard import load_model_card

from ...core.errors import UnprocessableError
from ...core.permissions import Permission
from ...db.models import RegisteredModel, User
from ...services.registry import activate, active_model, artifact_path, compare_metrics, get_model
from ..deps import SessionDep, require
from ..schemas.common import DbId, error_responses
from ..schemas.models import ModelDetail, ModelOut, Promotion

router = APIRouter(prefix="/models", tags=["models"])
Reader = Annotated[User, Depends(require(Permission.MODELS_READ))]


def _out(row: RegisteredModel, cls: type[ModelOut] = ModelOut) -> ModelOut:
    extra = {"card": row.card} if cls is ModelDetail else {}
    return cls(
        id=row.id,
        name=row.name,
        version=row.version,
        sha256=row.sha256,
        source=row.source,
        is_active=row.is_active,
        created_at=row.created_at,
        activated_at=row.activated_at,
        metrics=dict((row.card or {}).get("metrics") or {}),
        **extra,
    )


@router.get("", response_model=list[ModelOut])
def list_models(user: Reader, session: SessionDep) -> list[ModelOut]:
    """Every registered model, the active one first."""
    rows = session.scalars(select(RegisteredModel).order_by(RegisteredModel.is_active.desc(), RegisteredModel.id))
    return [_out(r) for r in rows]


@router.get("/{model_id}", response_model=ModelDetail, responses=error_responses(404))
def get_model_card(model_id: DbId, user: Reader, session: SessionDep) -> ModelOut:
    return _out(get_model(session, model_id), ModelDetail)


@router.get(
    "/{model_id}/download",
    responses={**error_responses(404), 200: {"content": {"application/octet-stream": {}}}},
)
def download_model(model_id: DbId, user: Reader, session: SessionDep) -> FileResponse:
    """The ONNX file itself (streamed); its card is ``GET /models/{id}``, its sha256 in ``X-Model-SHA256``."""
    row = get_model(session, model_id)
    path = artifact_path(row)
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=f"{row.name}-{row.version}.onnx".replace("/", "-"),
        headers={"X-Model-SHA256": row.sha256, "X-Model-Version": row.version},
    )


@router.post("/{model_id}/promote", response_model=Promotion, responses=error_responses(404, 422))
def promote_model(
    model_id: DbId,
    user: Annotated[User, Depends(require(Permission.MODELS_MANAGE))],
    session: SessionDep,
) -> Promotion:
    """Make this model the served one (admin). Refused (422) unless the server can load its card."""
    row = get_model(session, model_id)
    try:
        card = load_model_card(artifact_path(row), verify=True)  # format, encoding, classes, sha256
    except ModelError as exc:
        raise UnprocessableError(
            f"model {row.id} ({row.version}) cannot be promoted: {exc}", code="model_unusable"
        ) from None
    previous = active_model(session)
    before = _out(previous) if previous is not None else None
    already = previous is not None and previous.id == row.id
    previous_metrics = (previous.card or {}).get("metrics") if previous is not None and not already else None
    if not already:
        activate(session, row.id)
        session.commit()
    session.refresh(row)
    return Promotion(
        model=_out(row, ModelDetail),
        previous=before if not already else None,
        already_active=already,
        comparison=compare_metrics(card.metrics, previous_metrics),
    )
