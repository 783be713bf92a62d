"""``/training/worker/{job_id}/...``: what a training job's worker calls, with its job token.

Every route needs ``Authorization: Bearer <job token>`` (``training:worker``: no person holds
it); a token for another job is 403, a job that has ended answers 409 ``job_finished`` (how a
cancelled worker learns to stop). Each call counts as a heartbeat.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Request, UploadFile
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from waferdesk.core.errors import ModelError
from waferdesk.core.modelcard import card_path_for
from waferdesk.core.taxonomy import default_taxonomy

from ...core.errors import ConflictError, NotFoundError, UnprocessableError
from ...core.permissions import Permission
from ...db.models import RegisteredModel, TrainingJob
from ...db.session import begin_write
from ...services.registry import artifact_path, get_model, register_model
from ...services.training import dataset, jobs
from ..deps import CtxDep, SessionDep, require
from ..schemas.common import DbId, error_responses
from ..schemas.training import EpochMetrics, WorkerJob, WorkerLogs, WorkerStatus

router = APIRouter(prefix="/training/worker", tags=["training worker"])


def _worker_job(
    job_id: DbId,
    request: Request,
    session: SessionDep,
    _auth: Annotated[None, Depends(require(Permission.TRAINING_WORKER))],
) -> TrainingJob:
    begin_write(session)
    session.refresh(request.state.training_job)
    job = jobs.worker_job(session, request.state.training_job, job_id)
    session.commit()  # the heartbeat; each route takes the write lock again right before it writes
    return job


JobDep = Annotated[TrainingJob, Depends(_worker_job)]
ERRORS = error_responses(401, 403, 404, 409, 422)


@router.get("/{job_id}", response_model=WorkerJob, responses=ERRORS)
def worker_spec(job: JobDep, session: SessionDep) -> WorkerJob:
    """The job's spec, the taxonomy's classes and what the dataset holds."""
    return WorkerJob(
        id=job.id,
        spec=dict(job.spec),
        classes=list(default_taxonomy().names),
        dataset=dataset.summary(session, dict(job.spec).get("data") or {}),
    )


@router.get("/{job_id}/dataset", responses={**ERRORS, 200: {"content": {"application/octet-stream": {}}}})
def worker_dataset(job: JobDep, session: SessionDep, ctx: CtxDep) -> FileResponse:
    """The approved annotations the job selected, with their wafers' die grids, as one ``.wdm`` file."""
    tmp = Path(tempfile.mkdtemp(prefix=f"dataset-{job.id}-", dir=_scratch(ctx.settings.training_dir)))
    path = tmp / f"job-{job.id}-annotations.wdm"
    n = dataset.write_dataset(session, dict(job.spec).get("data") or {}, path)
    begin_write(session)
    jobs.add_log(session, job.id, "server", [f"dataset sent: {n} annotated wafers"])
    session.commit()
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=path.name,
        headers={"X-WaferDesk-Wafers": str(n)},
        background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True),
    )


def _init_model(job: TrainingJob, session: SessionDep) -> RegisteredModel:
    ref = dict(job.spec).get("init_model")
    if ref is None:
        raise NotFoundError(f"job {job.id} starts from random weights (no init_model)", code="no_init_model")
    row = get_model(session, int(ref))
    artifact_path(row)  # 404 when the file is gone
    return row


@router.get("/{job_id}/init-model", responses={**ERRORS, 200: {"content": {"application/octet-stream": {}}}})
def worker_init_model(job: JobDep, session: SessionDep) -> FileResponse:
    """The ONNX file of the model a fine-tuning job starts from (``spec.init_model``)."""
    row = _init_model(job, session)
    return FileResponse(
        row.artifact_path,
        media_type="application/octet-stream",
        filename=f"init-{row.id}.onnx",
        headers={"X-Model-SHA256": row.sha256, "X-Model-Version": row.version},
    )


@router.get("/{job_id}/init-model/card", responses=ERRORS)
def worker_init_card(job: JobDep, session: SessionDep) -> dict[str, Any]:
    """That model's card (the worker rebuilds the network from it)."""
    return dict(_init_model(job, session).card or {})


def _scratch(root: Path) -> Path:
    d = root / "scratch"
    d.mkdir(parents=True, exist_ok=True)
    return d


@router.post("/{job_id}/status", responses=ERRORS)
def worker_status(body: WorkerStatus, job: JobDep, session: SessionDep, ctx: CtxDep) -> dict[str, Any]:
    """``running`` when it starts; ``succeeded`` after its model is uploaded; ``failed`` with the error."""
    begin_write(session)
    session.refresh(job)
    if body.message:
        jobs.add_log(session, job.id, "worker", [body.message])
    if body.status == "running":
        if job.status == "queued":
            jobs.transition(session, job.id, "running")
            jobs.add_log(session, job.id, "server", ["running (the worker reported in)"])
    elif body.status == "succeeded":
        if job.model_id is None:
            raise ConflictError(
                f"training job {job.id}: upload the model (POST .../model) before reporting success",
                code="model_missing",
            )
        if not jobs.transition(session, job.id, "succeeded"):
            raise ConflictError(f"training job {job.id} is {job.status}; it cannot succeed from there")
        jobs.add_log(session, job.id, "server", [f"succeeded: model {job.model_id} registered"])
    else:
        jobs.fail(session, job.id, body.error or "the worker reported a failure without saying why")
    session.commit()
    ctx.training.wake()
    session.refresh(job)
    return {"id": job.id, "status": job.status}


@router.post("/{job_id}/heartbeat", responses=ERRORS)
def worker_heartbeat(job: JobDep) -> dict[str, Any]:
    """Nothing but "I am alive" (every worker call counts as one; this one is for long epochs)."""
    return {"id": job.id, "status": job.status}


@router.post("/{job_id}/logs", responses=ERRORS)
def worker_logs(body: WorkerLogs, job: JobDep, session: SessionDep) -> dict[str, int]:
    begin_write(session)
    n = jobs.add_log(session, job.id, "worker", body.lines)
    session.commit()
    return {"stored": n}


@router.post("/{job_id}/metrics", responses=ERRORS)
def worker_metrics(body: EpochMetrics, job: JobDep, session: SessionDep) -> dict[str, int]:
    """One epoch's metrics (sending the same epoch again replaces it)."""
    names = set(default_taxonomy().names)
    unknown = sorted(set(body.class_iou) - names)
    if unknown:
        raise UnprocessableError(
            f"body field class_iou: unknown classes {unknown}; the taxonomy's are {sorted(names)}",
            code="invalid_input",
        )
    begin_write(session)
    jobs.record_metric(session, job.id, body.model_dump())
    session.commit()
    return {"epoch": body.epoch}


def _safe_stem(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:80] or "model"


@router.post("/{job_id}/model", status_code=201, responses=ERRORS)
def worker_model(
    job: JobDep,
    session: SessionDep,
    ctx: CtxDep,
    model: Annotated[UploadFile, File(description="the exported ONNX model")],
    card: Annotated[UploadFile, File(description="its model card (.card.json)")],
) -> dict[str, Any]:
    """Register the job's ONNX model and card (checked: format, encoding, classes, sha256)."""
    tmp = Path(tempfile.mkdtemp(prefix=f"model-{job.id}-", dir=_scratch(ctx.settings.training_dir)))
    try:
        path = tmp / f"{_safe_stem(f'training-job-{job.id}')}.onnx"
        with path.open("wb") as f:
            shutil.copyfileobj(model.file, f, 1 << 20)
        with card_path_for(path).open("wb") as f:
            shutil.copyfileobj(card.file, f, 1 << 20)
        begin_write(session)
        try:
            row = register_model(session, ctx.settings, path, "training", job.created_by, activate_if_none=False)
        except ModelError as exc:
            raise UnprocessableError(f"the uploaded model was refused: {exc}", code="model_unusable") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    job.model_id = row.id
    jobs.add_log(session, job.id, "server", [f"model registered: id {row.id}, version {row.version}"])
    session.commit()
    return {"model_id": row.id, "version": row.version, "sha256": row.sha256}
