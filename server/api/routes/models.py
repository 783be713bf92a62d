"""``/models``: the model registry as read-only lists (promotion and uploads: the training issue)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy import select

from ...core.permissions import Permission
from ...db.models import RegisteredModel, User
from ...services.registry import get_model
from ..deps import SessionDep, require
from ..schemas.common import error_responses
from ..schemas.models import ModelDetail, ModelOut

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
def get_model_card(model_id: int, user: Reader, session: SessionDep) -> ModelOut:
    return _out(get_model(session, model_id), ModelDetail)
