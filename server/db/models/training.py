"""Training jobs, their per-epoch metrics and their log lines.

A job is a row the server owns from submission to its end: the spec it was asked for, the
backend that runs it and that backend's handle (a process id on this host, a Kubernetes Job
name), its status and timestamps, the error people read when it failed, and the model it
produced. Its worker authenticates with a per-job token of which only a hash is stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..base import Base, UTCDateTime, utcnow
from ..types import JSONType

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


class TrainingJob(Base):
    """One training run, from ``queued`` to ``succeeded`` / ``failed`` / ``cancelled``.

    ``heartbeat_at`` is the last time the worker was heard of (any worker call); a running
    job silent for longer than the heartbeat timeout is failed by the manager, so no job
    stays "running" forever when its worker vanished without a word.
    """

    __tablename__ = "training_jobs"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name="status_known"),
        Index("ix_training_jobs_status", "status"),
        Index("ix_training_jobs_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    backend: Mapped[str] = mapped_column(String(16))
    backend_handle: Mapped[str | None] = mapped_column(String(255))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    token_hash: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"))


class TrainingMetric(Base):
    """One evaluation ("epoch") of a job: losses, learning rate, per-class IoU and mIoU."""

    __tablename__ = "training_metrics"
    __table_args__ = (UniqueConstraint("job_id", "epoch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("training_jobs.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer)
    train_loss: Mapped[float | None] = mapped_column(Float)
    val_loss: Mapped[float | None] = mapped_column(Float)
    lr: Mapped[float | None] = mapped_column(Float)
    miou: Mapped[float | None] = mapped_column(Float)
    class_iou: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    extra: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TrainingLogLine(Base):
    """A line of a job's log: from its worker, or written by the server (``source`` says which)."""

    __tablename__ = "training_log_lines"
    __table_args__ = (Index("ix_training_log_lines_job_id_id", "job_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("training_jobs.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    source: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
