"""Model registry bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class ModelOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, protected_namespaces=())

    id: int
    name: str
    version: str
    sha256: str
    source: str
    is_active: bool
    created_at: datetime
    activated_at: datetime | None
    metrics: dict[str, Any] = {}


class ModelDetail(ModelOut):
    card: dict[str, Any]
