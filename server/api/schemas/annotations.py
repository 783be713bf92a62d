"""Annotation bodies: create / update / review requests and the annotation as answered."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from .common import DbId

LABELS_HELP = (
    "the mask: rows of class indices (255 = no class) or {'rle': [[value, run], ...]} over the row-major "
    "mask (the shapes predictions are answered in); the wafer's shape, classes only on failing dies"
)
Source = Literal["manual", "accepted_prediction", "corrected_prediction"]
Status = Literal["draft", "submitted", "approved", "rejected"]


class AnnotationCreate(BaseModel):
    wafer_id: DbId
    labels: list[list[int]] | dict[str, Any] = Field(description=LABELS_HELP)
    source: Source = "manual"
    polygons: list[dict[str, Any]] | None = Field(
        None, description="the polygons it was drawn with: [{'class': name, 'vertices': [[x, y], ...]}] in die units"
    )
    time_spent_s: float = Field(0.0, ge=0, le=7 * 24 * 3600)
    prediction_id: DbId | None = Field(None, description="the prediction it started from, if any")
    submit: bool = Field(False, description="submit for review at once (every failing die must be labelled)")
    client_key: str | None = Field(
        None,
        min_length=8,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="idempotency key made by the client: a retry with the same key returns the annotation "
        "the first request created (200) instead of creating another",
    )


class AnnotationUpdate(BaseModel):
    version: int = Field(description="the version this edit is based on; a stale one is refused with 409")
    labels: list[list[int]] | dict[str, Any] | None = Field(None, description=LABELS_HELP)
    polygons: list[dict[str, Any]] | None = None
    source: Source | None = None
    add_time_s: float = Field(0.0, ge=0, le=7 * 24 * 3600, description="labelling time spent in this edit")


class VersionBody(BaseModel):
    version: int = Field(description="the version you looked at; a stale one is refused with 409")


class SubmitBody(VersionBody):
    add_time_s: float = Field(0.0, ge=0, le=7 * 24 * 3600)


class RejectBody(VersionBody):
    reason: str = Field(min_length=1, max_length=1000)


class AnnotationOut(BaseModel):
    id: int
    wafer_id: int
    annotator_id: int | None
    annotator: str | None
    status: Status
    source: Source
    version: int
    ground_truth: bool = Field(description="the wafer's latest approved annotation")
    n_labelled: int
    counts: dict[str, int]
    polygons: list[dict[str, Any]] | None
    time_spent_s: float
    reject_reason: str | None
    reviewer_id: int | None
    reviewed_at: datetime | None
    prediction_id: int | None
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    labels: Any = Field(None, description="rows of class indices, {'rle': [[value, run], ...]} or left out")
    mask_ignore: int = 255
    classes: list[str]


class AnnotationPage(BaseModel):
    items: list[AnnotationOut]
    total: int
    limit: int
    offset: int


class AuditOut(BaseModel):
    id: int
    created_at: datetime
    user_id: int | None
    action: str
    entity: str
    entity_id: int
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None


class PairOut(BaseModel):
    annotation_ids: list[int]
    annotator_ids: list[int | None]
    miou: float | None
    per_class: dict[str, float | None]


class AgreementOut(BaseModel):
    wafer_id: int
    min_miou: float | None
    flagged: bool
    pairs: list[PairOut]


class ReviewItem(BaseModel):
    annotation: AnnotationOut
    agreement: AgreementOut | None


class ExportRequest(BaseModel):
    status: Status = "approved"
    lot: str | None = None
    date_from: str | None = Field(None, description="ISO date or datetime: annotations last changed from then on")
    date_to: str | None = Field(None, description="ISO date (inclusive day) or datetime (exclusive)")
    round: DbId | None = Field(None, description="only wafers queued in this active-learning round")


class ImportOut(BaseModel):
    created: int
    updated: int
    unchanged: int
    annotation_ids: list[int]
