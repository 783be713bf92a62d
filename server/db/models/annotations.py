"""Per-die annotations of wafers, and the audit log of every change made to them.

An annotation is one annotator's label mask for one wafer. It moves through
``draft -> submitted -> approved | rejected`` (a rejected one is edited back to a draft);
the latest approved annotation of a wafer is its ground truth. ``version`` grows by one on
every change and an update must name the version it edits (optimistic concurrency: two
people never silently overwrite each other). Deleting sets ``deleted_at`` (the row and its
audit history stay).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Float, ForeignKey, Index, Integer, LargeBinary, String, text
from sqlalchemy.orm import Mapped, mapped_column

from ..base import Base, UTCDateTime, utcnow
from ..types import JSONType

ANNOTATION_STATUSES = ("draft", "submitted", "approved", "rejected")
ANNOTATION_SOURCES = ("manual", "accepted_prediction", "corrected_prediction")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Annotation(Base):
    """``labels`` is the zlib-packed uint8 mask (the wafer's shape, 255 = no class);
    ``counts`` (class name -> dies) and ``n_labelled`` are kept beside it for listings and
    statistics that should not unpack every mask."""

    __tablename__ = "annotations"
    __table_args__ = (
        CheckConstraint(_in("status", ANNOTATION_STATUSES), name="status_known"),
        CheckConstraint(_in("source", ANNOTATION_SOURCES), name="source_known"),
        # one live annotation per (wafer, annotator): a second POST is a 409 naming the first
        Index(
            "uq_annotations_one_live",
            "wafer_id",
            "annotator_id",
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
            sqlite_where=text("deleted_at IS NULL"),
        ),
        Index("ix_annotations_status_updated_at", "status", "updated_at"),
        # a desktop's idempotency key: a retried create returns the annotation the first made
        Index("uq_annotations_client_key", "annotator_id", "client_key", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    wafer_id: Mapped[int] = mapped_column(ForeignKey("wafers.id", ondelete="CASCADE"), index=True)
    annotator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    labels: Mapped[bytes] = mapped_column(LargeBinary)
    n_labelled: Mapped[int] = mapped_column(Integer)
    counts: Mapped[dict[str, int]] = mapped_column(JSONType)
    polygons: Mapped[list[Any] | None] = mapped_column(JSONType)
    source: Mapped[str] = mapped_column(String(32), default="manual")
    status: Mapped[str] = mapped_column(String(16), default="draft")
    reject_reason: Mapped[str | None] = mapped_column(String(1000))
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    prediction_id: Mapped[int | None] = mapped_column(ForeignKey("predictions.id", ondelete="SET NULL"))
    time_spent_s: Mapped[float] = mapped_column(Float, default=0.0)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    client_key: Mapped[str | None] = mapped_column(String(64))


class AuditLog(Base):
    """Who did what to which entity, when: one row per change (annotations, queue items, rounds).

    ``before`` / ``after`` are small summaries (status, version, labelled dies per class...),
    not the masks themselves.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_entity_entity_id", "entity", "entity_id"),
        Index("ix_audit_log_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[int] = mapped_column(Integer)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    request_id: Mapped[str | None] = mapped_column(String(64))
