"""``/training``: training jobs for people (submit, list, read, metrics, logs, cancel).

The routes a job's worker calls with its token live in :mod:`.training_worker`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, status
from fastapi.responses import StreamingResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from waferdesk.core.taxonomy import default_taxonomy

from ...core.errors import ServiceUnavailableError, UnprocessableError
from ...core.permissions import Permission
from ...db.models import TrainingJob, TrainingMetric, User
from ...db.session import begin_write
from ...services.registry import starting_model
from ...services.training import dataset, jobs
from ...services.training.backends import BackendError
from ...services.training.manager import job_ref
from ..deps import CtxDep, SessionDep, require
from ..schemas.common import DbId, DbOffset, error_responses
from ..schemas.training import EpochMetrics, JobOut, JobPage, JobSpec, LogLine, LogPage, MetricsOut

router = APIRouter(prefix="/training", tags=["training"])
Reader = Annotated[User, Depends(require(Permission.TRAINING_READ))]
Runner = Annotated[User, Depends(require(Permission.TRAINING_RUN))]


def epoch_out(row: TrainingMetric) -> EpochMetrics:
    return EpochMetrics(
        epoch=row.epoch,
        step=row.step,
        train_loss=row.train_loss,
        val_loss=row.val_loss,
        lr=row.lr,
        miou=row.miou,
        class_iou=dict(row.class_iou or {}),
        extra=dict(row.extra or {}),
    )


def job_out(session: Session, job: TrainingJob) -> JobOut:
    count = session.scalar(select(func.count()).where(TrainingMetric.job_id == job.id)) or 0
    last = session.scalars(
        select(TrainingMetric).where(TrainingMetric.job_id == job.id).order_by(TrainingMetric.epoch.desc()).limit(1)
    ).first()
    return JobOut(
        id=job.id,
        status=job.status,  # type: ignore[arg-type]
        backend=job.backend,
        backend_handle=job.backend_handle,
        spec=dict(job.spec or {}),
        created_by=job.created_by,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        heartbeat_at=job.heartbeat_at,
        error=job.error,
        model_id=job.model_id,
        epochs_reported=int(count),
        latest=epoch_out(last).model_dump() if last is not None else None,
    )


@router.post("/jobs", status_code=status.HTTP_201_CREATED, response_model=JobOut, responses=error_responses(422))
def create_job(spec: JobSpec, user: Runner, session: SessionDep, ctx: CtxDep) -> JobOut:
    """Queue a training job. The data must hold something to train on (422 otherwise)."""
    begin_write(session)
    data = spec.data.model_dump()
    found = dataset.summary(session, data)
    if found["annotated_wafers"] == 0 and found["synthetic_wafers"] == 0:
        where = ", ".join(f"{k}={data[k]}" for k in ("rounds", "lots") if data.get(k)) or "any round or lot"
        none = f"no approved annotations match ({where})" if data["annotations"] else "data.annotations is false"
        raise UnprocessableError(
            f"body field data: {none} and data.synthetic_count is 0: nothing to train on",
            code="no_training_data",
            details=found,
        )
    stored = spec.model_dump()
    lines = [f"training set: {found['annotated_wafers']} annotated wafers + {found['synthetic_wafers']} synthetic"]
    if spec.init_model is not None:  # stored as an id: "active" may name another model tomorrow
        start = starting_model(session, spec.init_model, spec.encoder)
        stored["init_model"] = start.id
        lines.append(f"fine-tuning model {start.id} ({start.version})")
    job, _ = jobs.create_job(session, stored, ctx.settings.training_backend, user.id)
    jobs.add_log(session, job.id, "server", lines)
    session.commit()
    ctx.training.wake()
    return job_out(session, job)


@router.get("/jobs", response_model=JobPage, responses=error_responses(422))
def list_jobs(
    user: Reader,
    session: SessionDep,
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"] | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[DbOffset, Query()] = 0,
) -> JobPage:
    """Newest first."""
    total, rows = jobs.list_jobs(session, status, limit, offset)
    return JobPage(total=total, items=[job_out(session, j) for j in rows])


@router.get("/jobs/{job_id}", response_model=JobOut, responses=error_responses(404))
def get_job(job_id: DbId, user: Reader, session: SessionDep) -> JobOut:
    return job_out(session, jobs.get_job(session, job_id))


@router.post("/jobs/{job_id}/cancel", response_model=JobOut, responses=error_responses(404, 409))
def cancel_job(job_id: DbId, user: Runner, session: SessionDep, ctx: CtxDep) -> JobOut:
    """Cancel a queued or running job: its worker is stopped (process killed, Kubernetes Job deleted)."""
    job = ctx.training.cancel(session, jobs.get_job(session, job_id), user.username)
    return job_out(session, job)


@router.get("/metrics/{job_id}", response_model=MetricsOut, responses=error_responses(404))
def job_metrics(job_id: DbId, user: Reader, session: SessionDep) -> MetricsOut:
    """Per-epoch losses, learning rate, per-class IoU and mIoU (validation wafers, failing dies only)."""
    job = jobs.get_job(session, job_id)
    epochs = [epoch_out(r) for r in jobs.metrics_of(session, job_id)]
    scored = [e for e in epochs if e.miou is not None]
    best = max(scored, key=lambda e: e.miou or 0.0) if scored else None
    return MetricsOut(
        job_id=job.id, status=job.status, classes=list(default_taxonomy().names), epochs=epochs, best=best
    )


@router.get(
    "/jobs/{job_id}/logs",
    response_model=LogPage,
    responses={**error_responses(404, 503), 200: {"content": {"text/plain": {}}}},
)
def job_logs(
    job_id: DbId,
    user: Reader,
    session: SessionDep,
    ctx: CtxDep,
    source: Annotated[
        Literal["job", "backend"],
        Query(description="job: the job's log (worker + server lines); backend: the raw process / pod output"),
    ] = "job",
    after: Annotated[DbOffset, Query(description="job log: only lines after this seq")] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    tail: Annotated[int | None, Query(ge=1, le=100_000, description="backend output: the last lines only")] = None,
    follow: Annotated[bool, Query(description="backend output: stream it as it is written (text/plain)")] = False,
):
    """The job's log lines (JSON pages), or its worker's raw output from the backend (text)."""
    job = jobs.get_job(session, job_id)
    if source == "job":
        rows = jobs.log_lines(session, job_id, after, limit)
        lines = [LogLine(seq=r.id, at=r.at, source=r.source, text=r.text) for r in rows]
        return LogPage(job_id=job.id, status=job.status, lines=lines, next_after=lines[-1].seq if lines else after)
    if job.backend != ctx.training.backend.name:
        raise ServiceUnavailableError(
            f"job {job.id} ran on the {job.backend} backend; this server uses {ctx.training.backend.name}",
            code="backend_unavailable",
        )
    ref = job_ref(job)
    session.close()  # a followed log can stream for hours: hold no connection meanwhile
    backend = ctx.training.backend
    if not follow:
        try:
            text = "".join(line + "\n" for line in backend.logs(ref, tail=tail))
        except BackendError as exc:
            raise ServiceUnavailableError(str(exc), code="backend_unavailable") from None
        return StreamingResponse(iter([text]), media_type="text/plain; charset=utf-8")

    def stream() -> Iterator[str]:
        try:
            for line in backend.logs(ref, tail=tail, follow=True):
                yield line + "\n"
        except BackendError as exc:
            yield f"[waferdesk-server] log stream ended: {exc}\n"

    return StreamingResponse(stream(), media_type="text/plain; charset=utf-8")
