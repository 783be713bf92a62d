"""Active-learning bodies: the query request, rounds, queue items, claims, statistics."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .common import DbId

Strategy = Literal["random", "uncertainty", "diversity", "hybrid"]


class QueryIn(BaseModel):
    # a misspelt filter (``lots``, ``wafer_id``) must not silently queue a round over every wafer
    model_config = ConfigDict(extra="forbid")

    strategy: Strategy = "hybrid"
    batch_size: int = Field(20, ge=1)
    seed: int = Field(0, ge=0, description="the selection's seed (numpy's generators take no negative seed)")
    score: str | None = Field(
        None, description="uncertainty score that ranks (default entropy_mean; tta_mutual_info with tta)"
    )
    pool_factor: float = Field(4.0, ge=1.0, le=100.0, description="hybrid: diversity among pool_factor x batch")
    tta: bool = Field(False, description="add disagreement across the 8 symmetries (8 model runs per candidate)")
    lot: str | None = None
    product: str | None = None
    created_from: str | None = Field(None, description="wafers uploaded from (ISO date or datetime)")
    created_to: str | None = Field(None, description="wafers uploaded until (ISO date: inclusive day)")
    wafer_ids: list[DbId] | None = Field(None, description="only these wafers")
    include_skipped: bool = Field(False, description="also wafers skipped in earlier rounds")


class WaferBrief(BaseModel):
    id: int
    lot: str
    wafer_id: str
    rows: int
    cols: int
    n_fail: int


class QueueItemOut(BaseModel):
    id: int
    round: int
    wafer: WaferBrief
    prediction_id: int | None
    rank: int
    score: float | None
    scores: dict[str, float]
    state: Literal["queued", "claimed", "done", "skipped"] = Field(
        description="claims with an expired lease read as queued"
    )
    claimed_by: int | None
    claimed_at: datetime | None
    lease_expires_at: datetime | None
    skip_reason: str | None
    annotation_id: int | None
    completed_at: datetime | None


class MyAnnotation(BaseModel):
    id: int
    version: int
    status: str


class ClaimIn(BaseModel):
    round: DbId | None = Field(None, description="claim only from this round")
    exclude: list[DbId] = Field(
        default_factory=list,
        max_length=4,
        description="item ids you already hold and have in hand (the wafer on screen): another claim is "
        "answered, so a desktop can prefetch the next wafer while its annotator works on this one",
    )


class ClaimOut(BaseModel):
    item: QueueItemOut | None = Field(description="null when nothing is left to claim")
    my_annotation: MyAnnotation | None = Field(None, description="your live annotation of the item's wafer, if any")
    lease_seconds: int


class SkipIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class RoundOut(BaseModel):
    id: int
    number: int
    strategy: str
    params: dict[str, Any]
    model_id: int | None
    model_version: str
    model_sha256: str
    metrics: dict[str, Any] | None
    candidates: int
    created_by: int | None
    created_at: datetime
    items: list[QueueItemOut] | None = None


class QueuePage(BaseModel):
    items: list[QueueItemOut]
    total: int
    limit: int
    offset: int
