"""Prediction bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ModelRef(BaseModel):
    id: int | None
    version: str
    sha256: str
    provider: str


class WaferRef(BaseModel):
    id: int
    lot: str
    wafer_id: str
    content_hash: str
    shape: list[int]


class PredictionOut(BaseModel):
    prediction_id: int
    wafer: WaferRef
    model: ModelRef
    verdict: str
    counts: dict[str, int]
    n_fail: int
    n_dies: int
    uncertainty: dict[str, float]
    source: str = Field(description="model (inference ran), cache, or db (a stored result of this wafer and model)")
    cached: bool
    latency_ms: float = Field(description="model time for this wafer when it ran")
    served_ms: float | None = Field(None, description="server time for this wafer in this request")
    created_at: datetime
    mask: Any = Field(None, description="rows of class indices (255 = no class), or {'rle': [[value, run]...]}")
    mask_ignore: int = 255
    classes: list[str]
    embedding: list[float] | None = None


class PredictionSummary(BaseModel):
    """A stored prediction without its mask (lists of them)."""

    model_config = ConfigDict(from_attributes=True, protected_namespaces=())

    id: int
    wafer_id: int
    model_id: int | None
    model_version: str
    model_sha256: str
    verdict: str
    counts: dict[str, int]
    uncertainty: dict[str, float]
    latency_ms: float
    created_at: datetime


class BatchOut(BaseModel):
    results: list[PredictionOut]
    count: int
    cache_hits: int


def prediction_out(
    served: Any, mask_format: str, include_embedding: bool, classes: list[str], mask_json: Any
) -> PredictionOut:
    """From a :class:`server.services.prediction.Served`; ``mask_json`` already rendered."""
    w, row, r = served.wafer, served.prediction, served.result
    return PredictionOut(
        prediction_id=row.id,
        wafer=WaferRef(id=w.id, lot=w.lot, wafer_id=w.wafer_id, content_hash=w.content_hash, shape=[w.rows, w.cols]),
        model=ModelRef(id=row.model_id, version=r.model_version, sha256=r.model_sha256, provider=r.provider),
        verdict=r.verdict,
        counts=r.counts,
        n_fail=w.n_fail,
        n_dies=w.n_dies,
        uncertainty=r.uncertainty,
        source=served.source,
        cached=served.cached,
        latency_ms=round(r.latency_ms, 3),
        served_ms=round(served.served_ms, 3) if served.served_ms is not None else None,
        created_at=row.created_at,
        mask=mask_json,
        classes=classes,
        embedding=[round(float(v), 6) for v in r.embedding] if include_embedding and r.embedding is not None else None,
    )
