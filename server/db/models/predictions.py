"""Model outputs per wafer, and a log row for every wafer a prediction request served."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..base import Base, UTCDateTime, utcnow
from ..types import JSONType


class Prediction(Base):
    """What one model (by sha256) said about one wafer; one row per (wafer, model).

    ``mask`` is the zlib-compressed uint8 label mask (wafer shape, 255 = no label),
    ``counts`` the failing dies per class (JSON, class name -> count), ``embedding`` the
    float32 vector the active-learning queue clusters on.
    """

    __tablename__ = "predictions"
    __table_args__ = (
        UniqueConstraint("wafer_id", "model_sha256"),
        Index("ix_predictions_model_sha256_verdict", "model_sha256", "verdict"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    wafer_id: Mapped[int] = mapped_column(ForeignKey("wafers.id", ondelete="CASCADE"))
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"), index=True)
    model_version: Mapped[str] = mapped_column(String(64))
    model_sha256: Mapped[str] = mapped_column(String(64))
    mask: Mapped[bytes] = mapped_column(LargeBinary)
    counts: Mapped[dict[str, int]] = mapped_column(JSONType)
    verdict: Mapped[str] = mapped_column(String(128))
    uncertainty: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    embedding_dim: Mapped[int | None] = mapped_column(Integer)
    provider: Mapped[str] = mapped_column(String(64), default="")
    latency_ms: Mapped[float] = mapped_column(Float)  # model time for this wafer
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InferenceLog(Base):
    """One row per wafer served by ``/predict`` or ``/predict/batch`` (the source of ``/stats``).

    ``source`` says where the result came from: ``model`` (inference ran), ``cache`` (Redis
    or the in-process LRU) or ``db`` (a stored prediction of the same wafer and model).
    """

    __tablename__ = "inference_log"
    __table_args__ = (Index("ix_inference_log_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    endpoint: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    wafer_id: Mapped[int | None] = mapped_column(ForeignKey("wafers.id", ondelete="SET NULL"), index=True)
    prediction_id: Mapped[int | None] = mapped_column(ForeignKey("predictions.id", ondelete="SET NULL"))
    model_sha256: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(8))
    cache_hit: Mapped[bool] = mapped_column(Boolean)
    latency_ms: Mapped[float] = mapped_column(Float)  # server time for this wafer, lookup included
