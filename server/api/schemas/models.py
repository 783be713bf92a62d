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


class MetricPair(BaseModel):
    metric: str
    promoted: float | None
    previous: float | None
    delta: float | None


class Promotion(BaseModel):
    """A promotion: the model now served, the one it replaced, and their card metrics side by side."""

    model_config = ConfigDict(protected_namespaces=())

    model: ModelDetail
    previous: ModelOut | None
    already_active: bool = False
    comparison: list[MetricPair]
