"""Stored wafer maps: the die grid (compact), its shape, identity and provenance."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from ..base import Base, UTCDateTime, utcnow
from ..types import JSONType


class Wafer(Base):
    """One wafer map. ``content_hash`` (:meth:`WaferMap.content_hash`) makes uploads idempotent.

    ``dies`` is the zlib-compressed uint8 grid (0 no die, 1 pass, 2 fail), ``bins`` the
    optional int32 bin codes; ``meta`` keeps notch, die pitch, bin_pass and extra fields so
    the stored wafer rebuilds to exactly the uploaded :class:`WaferMap` (same content hash).
    """

    __tablename__ = "wafers"
    __table_args__ = (
        Index("ix_wafers_lot_wafer_id", "lot", "wafer_id"),
        Index("ix_wafers_created_at", "created_at"),
        Index("ix_wafers_product", "product"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lot: Mapped[str] = mapped_column(String(128), default="")
    wafer_id: Mapped[str] = mapped_column(String(128), default="")
    product: Mapped[str] = mapped_column(String(128), default="")
    rows: Mapped[int] = mapped_column(Integer)
    cols: Mapped[int] = mapped_column(Integer)
    n_dies: Mapped[int] = mapped_column(Integer)
    n_fail: Mapped[int] = mapped_column(Integer)
    dies: Mapped[bytes] = mapped_column(LargeBinary)
    bins: Mapped[bytes | None] = mapped_column(LargeBinary)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    source_format: Mapped[str] = mapped_column(String(32))
    source_name: Mapped[str] = mapped_column(String(255), default="")
    source_label: Mapped[str | None] = mapped_column(String(64))  # e.g. WM-811K failureType
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
