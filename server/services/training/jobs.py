"""Training jobs in the database: create, read, move between states, metrics, log lines.

Status changes are conditional updates (``... WHERE status IN (allowed)``), so the request
threads, the manager's thread and other server processes never overwrite each other: a job
cancelled by a person stays cancelled even if its worker reports success a moment later, and
the loser of such a race learns it from the return value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ...core.errors import ConflictError, NotAuthenticatedError, NotFoundError, PermissionDeniedError
from ...db.base import utcnow
from ...db.models import TrainingJob, TrainingLogLine, TrainingMetric
from ...db.models.training import TERMINAL_STATUSES
from . import tokens

MAX_LINE_CHARS = 4000
MAX_ERROR_CHARS = 8000
ERROR_TAIL_LINES = 20

# who may move a job from which states to which (None: any non-terminal state)
ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    "running": ("queued",),
    "succeeded": ("running",),
    "failed": ("queued", "running"),
    "cancelled": ("queued", "running"),
}


def create_job(session: Session, spec: dict[str, Any], backend: str, user_id: int | None) -> tuple[TrainingJob, str]:
    """Insert a queued job; returns it with its worker token (shown to nobody but the worker)."""
    job = TrainingJob(status="queued", backend=backend, spec=spec, token_hash="-" * 64, created_by=user_id)
    session.add(job)
    session.flush()
    token, digest = tokens.new_token(job.id)
    job.token_hash = digest
    add_log(session, job.id, "server", [f"queued for the {backend} backend"])
    session.flush()
    return job, token


def get_job(session: Session, job_id: int) -> TrainingJob:
    job = session.get(TrainingJob, job_id)
    if job is None:
        raise NotFoundError(f"training job {job_id} not found", code="training_job_not_found")
    return job


def list_jobs(
    session: Session, status: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[int, list[TrainingJob]]:
    q = select(TrainingJob)
    count = select(func.count()).select_from(TrainingJob)
    if status:
        q, count = q.where(TrainingJob.status == status), count.where(TrainingJob.status == status)
    total = int(session.scalar(count) or 0)
    rows = session.scalars(q.order_by(TrainingJob.id.desc()).limit(limit).offset(offset)).all()
    return total, list(rows)


def transition(session: Session, job_id: int, new: str, **values: Any) -> bool:
    """Move ``job_id`` to ``new`` if its current state allows it; ``True`` when it moved.

    Sets ``started_at`` / ``finished_at`` as the state implies. Flushes, does not commit.
    """
    now = utcnow()
    values = dict(values)
    if new == "running":
        values.setdefault("started_at", now)
        values.setdefault("heartbeat_at", now)
    if new in TERMINAL_STATUSES:
        values.setdefault("finished_at", now)
    stmt = (
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.status.in_(ALLOWED_FROM[new]))
        .values(status=new, **values)
        .execution_options(synchronize_session=False)
    )
    moved = session.execute(stmt).rowcount == 1
    if moved:
        job = session.get(TrainingJob, job_id)
        if job is not None:
            session.refresh(job)
    return moved


def error_text(reason: str, tail: Sequence[str] = ()) -> str:
    """What a person reads on a failed job: the reason first, then the last log lines."""
    text = reason.strip()
    lines = [ln.rstrip() for ln in tail if ln and ln.strip()][-ERROR_TAIL_LINES:]
    if lines:
        text += "\nlast log lines:\n" + "\n".join(lines)
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 20] + "\n... (truncated)"
    return text


def fail(session: Session, job_id: int, reason: str, tail: Sequence[str] = ()) -> bool:
    """Fail a job that has not ended yet, with a readable error (and a log line saying so)."""
    moved = transition(session, job_id, "failed", error=error_text(reason, tail))
    if moved:
        add_log(session, job_id, "server", [f"failed: {reason.strip().splitlines()[0] if reason.strip() else ''}"])
    return moved


# -- log lines ----------------------------------------------------------------------------------
def add_log(session: Session, job_id: int, source: str, lines: Iterable[str]) -> int:
    now = utcnow()
    rows = [
        TrainingLogLine(job_id=job_id, at=now, source=source, text=str(line).rstrip("\n")[:MAX_LINE_CHARS])
        for line in lines
    ]
    session.add_all(rows)
    session.flush()
    return len(rows)


def log_lines(session: Session, job_id: int, after: int = 0, limit: int = 1000) -> list[TrainingLogLine]:
    q = (
        select(TrainingLogLine)
        .where(TrainingLogLine.job_id == job_id, TrainingLogLine.id > after)
        .order_by(TrainingLogLine.id)
        .limit(limit)
    )
    return list(session.scalars(q))


def last_log_lines(session: Session, job_id: int, n: int = ERROR_TAIL_LINES, source: str | None = None) -> list[str]:
    q = select(TrainingLogLine.text).where(TrainingLogLine.job_id == job_id)
    if source:
        q = q.where(TrainingLogLine.source == source)
    rows = session.scalars(q.order_by(TrainingLogLine.id.desc()).limit(n)).all()
    return list(reversed(rows))


# -- metrics ------------------------------------------------------------------------------------
def _num(value: Any) -> float | None:
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def record_metric(session: Session, job_id: int, m: dict[str, Any]) -> TrainingMetric:
    """Store one epoch's metrics (a worker retrying the same epoch replaces it)."""
    row = session.scalar(
        select(TrainingMetric).where(TrainingMetric.job_id == job_id, TrainingMetric.epoch == m["epoch"])
    )
    if row is None:
        row = TrainingMetric(job_id=job_id, epoch=m["epoch"])
        session.add(row)
    row.step = int(m["step"])
    row.train_loss, row.val_loss = _num(m.get("train_loss")), _num(m.get("val_loss"))
    row.lr, row.miou = _num(m.get("lr")), _num(m.get("miou"))
    row.class_iou = {str(k): _num(v) for k, v in (m.get("class_iou") or {}).items()}
    row.extra = dict(m.get("extra") or {})
    row.created_at = utcnow()
    session.flush()
    return row


def metrics_of(session: Session, job_id: int) -> list[TrainingMetric]:
    q = select(TrainingMetric).where(TrainingMetric.job_id == job_id).order_by(TrainingMetric.epoch)
    return list(session.scalars(q))


# -- the worker's side ----------------------------------------------------------------------------
def authenticate_worker(session: Session, token: str) -> TrainingJob:
    """The job a worker token belongs to (401 when it is not one of ours)."""
    job_id = tokens.job_id_of(token)
    job = session.get(TrainingJob, job_id) if job_id is not None else None
    if job is None or not tokens.matches(token, job.token_hash):
        raise NotAuthenticatedError("invalid training job token", code="invalid_token")
    return job


def worker_job(session: Session, token_job: TrainingJob, path_job_id: int) -> TrainingJob:
    """The job a worker route acts on: the token's own, still going; refreshes its heartbeat."""
    if token_job.id != path_job_id:
        raise PermissionDeniedError(
            f"this token belongs to training job {token_job.id}, not {path_job_id}",
            details={"permission": "training:worker"},
        )
    if token_job.status in TERMINAL_STATUSES:
        raise ConflictError(
            f"training job {token_job.id} is {token_job.status}; its worker should stop",
            code="job_finished",
            details={"status": token_job.status},
        )
    token_job.heartbeat_at = utcnow()
    session.flush()
    return token_job


def seconds_since(when: datetime | None, now: datetime | None = None) -> float | None:
    if when is None:
        return None
    return ((now or utcnow()) - when).total_seconds()
