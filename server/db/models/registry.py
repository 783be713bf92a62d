"""The model registry: every ONNX model the server knows, with its card; one is active."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from ..base import Base, UTCDateTime, utcnow
from ..types import JSONType


class RegisteredModel(Base):
    """A model artifact (copied under the data folder) and its card.

    At most one row has ``is_active`` (a partial unique index enforces it on both backends);
    ``/predict`` serves that one. ``source`` says how it arrived: ``default`` (shipped),
    ``path`` (WAFERDESK_MODEL_PATH), ``upload`` or ``training``.
    """

    __tablename__ = "models"
    __table_args__ = (
        Index(
            "uq_models_one_active",
            "is_active",
            unique=True,
            postgresql_where=text("is_active"),
            sqlite_where=text("is_active"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    card: Mapped[dict[str, Any]] = mapped_column(JSONType)
    artifact_path: Mapped[str] = mapped_column(String(1024))
    source: Mapped[str] = mapped_column(String(32))
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
