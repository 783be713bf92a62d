"""Wafer bodies: upload results, list items, one wafer with its die grid."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

PASS_BINS_HELP = "CSV die lists with only a bin column: the passing bin codes, comma-separated (default 1)"


class PredictionBrief(BaseModel):
    id: int
    verdict: str
    model_version: str
    created_at: datetime


class WaferOut(BaseModel):
    id: int
    lot: str
    wafer_id: str
    product: str
    rows: int
    cols: int
    n_dies: int
    n_fail: int
    fail_rate: float
    content_hash: str
    source_format: str
    source_name: str
    source_label: str | None
    uploaded_by: int | None
    created_at: datetime
    latest_prediction: PredictionBrief | None = None


class WaferDetail(WaferOut):
    notch: str
    die_pitch: list[float] | None
    meta: dict[str, Any]
    dies: list[list[int]] | None = Field(None, description="die grid, rows of 0 no die / 1 pass / 2 fail")


class UploadedWafer(WaferOut):
    created: bool = Field(description="false when an identical wafer (same content hash) was already stored")
    file: str


class UploadResult(BaseModel):
    wafers: list[UploadedWafer]
    created: int
    existing: int


class WaferPage(BaseModel):
    items: list[WaferOut]
    total: int
    limit: int
    offset: int


def wafer_out(row: Any, latest: Any = None) -> WaferOut:
    """A :class:`WaferOut` from a ``Wafer`` row and its latest ``Prediction`` (or None)."""
    return WaferOut(**_wafer_fields(row, latest))


def _wafer_fields(row: Any, latest: Any) -> dict[str, Any]:
    brief = None
    if latest is not None:
        brief = PredictionBrief(
            id=latest.id, verdict=latest.verdict, model_version=latest.model_version, created_at=latest.created_at
        )
    return {
        "id": row.id,
        "lot": row.lot,
        "wafer_id": row.wafer_id,
        "product": row.product,
        "rows": row.rows,
        "cols": row.cols,
        "n_dies": row.n_dies,
        "n_fail": row.n_fail,
        "fail_rate": round(row.n_fail / row.n_dies, 6) if row.n_dies else 0.0,
        "content_hash": row.content_hash,
        "source_format": row.source_format,
        "source_name": row.source_name,
        "source_label": row.source_label,
        "uploaded_by": row.uploaded_by,
        "created_at": row.created_at,
        "latest_prediction": brief,
    }


def wafer_detail(row: Any, latest: Any, dies: Any) -> WaferDetail:
    meta = dict(row.meta or {})
    return WaferDetail(
        **_wafer_fields(row, latest),
        notch=meta.get("notch") or "down",
        die_pitch=meta.get("die_pitch"),
        meta=meta,
        dies=dies.tolist() if dies is not None else None,
    )


def uploaded_wafer(row: Any, created: bool, file: str) -> UploadedWafer:
    return UploadedWafer(**_wafer_fields(row, None), created=created, file=file)
