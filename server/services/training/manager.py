"""The training manager: starts queued jobs on the backend, watches running ones, stops them.

One background thread per server process ticks every ``training_poll_seconds`` (and at once
when a job is created, cancelled or the backend's watch sees a change). Each tick:

1. looks at every job this backend holds that has not ended: a worker that is gone without
   having reported a result fails its job with the reason and its last output lines; a job
   whose worker has been silent longer than the heartbeat timeout is stopped and failed; a
   queued job the backend calls ``stuck`` (its pod cannot start) is failed and stopped too. So
   after a server restart, jobs left "running" are either found alive (the local worker runs
   in its own session and survives the restart; a pod does anyway) or marked failed with an
   honest error, never left "running" forever;
2. starts queued jobs while the backend has room (the local backend's concurrency limit).

Starting a job claims it in the database first (a conditional update; on Postgres under an
advisory lock), so several server processes never start the same job twice. Its worker token
is made at that moment and handed only to the backend (an environment variable, a Secret).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from ...core.config import Settings
from ...core.errors import ConflictError
from ...db.base import utcnow
from ...db.models import TrainingJob
from ...db.models.training import TERMINAL_STATUSES
from ...db.session import begin_write, session_scope
from . import jobs, tokens
from .backends import BackendError, Check, JobRef, TrainingBackend, make_backend

log = logging.getLogger(__name__)

DISPATCH_LOCK_KEY = 7_270_001  # pg_advisory_xact_lock key of the dispatcher
CLAIM_PREFIX = "claim:"
STALE_CLAIM = timedelta(minutes=5)


def job_ref(job: TrainingJob) -> JobRef:
    return JobRef(id=job.id, handle=job.backend_handle, spec=dict(job.spec or {}))


class TrainingManager:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], backend: TrainingBackend | None = None):
        self.settings = settings
        self.sessions = sessions
        self.backend = backend or make_backend(settings)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._tick_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pending_said: dict[int, str] = {}
        self._claimer = f"{CLAIM_PREFIX}{socket.gethostname()}:{os.getpid()}"

    # -- life ----------------------------------------------------------------------------------
    def start(self) -> None:
        self.backend.set_wake(self.wake)
        self.backend.start()
        self._thread = threading.Thread(target=self._loop, name="training-manager", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.backend.close()

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("training manager: tick failed (retrying)")
            self._wake.wait(self.settings.training_poll_seconds)
            self._wake.clear()

    def tick(self) -> None:
        """One round: watch the jobs that have not ended, then start queued ones."""
        with self._tick_lock:
            self._watch_jobs()
            self._fail_silent_elsewhere()
            if not self._stop.is_set():
                self._dispatch()

    # -- watching ------------------------------------------------------------------------------
    def _watch_jobs(self) -> None:
        with self.sessions() as s:
            rows = s.scalars(
                select(TrainingJob).where(
                    TrainingJob.status.in_(("queued", "running")),
                    TrainingJob.backend == self.backend.name,
                    TrainingJob.backend_handle.is_not(None),
                )
            ).all()
            snapshot = [(job_ref(j), j.status, j.heartbeat_at or j.started_at or j.created_at) for j in rows]
        now = utcnow()
        for ref, status, heard in snapshot:
            if self._stop.is_set():
                return
            if ref.handle and ref.handle.startswith(CLAIM_PREFIX):
                if now - heard > STALE_CLAIM:  # the server stopped while starting it: try again
                    with session_scope(self.sessions) as s:
                        begin_write(s)
                        s.execute(
                            update(TrainingJob)
                            .where(TrainingJob.id == ref.id, TrainingJob.backend_handle == ref.handle)
                            .values(backend_handle=None)
                        )
                        jobs.add_log(s, ref.id, "server", ["the server stopped while starting this job; queued again"])
                continue
            check = self.backend.check(ref)  # outside any transaction: a cluster call may be slow
            with session_scope(self.sessions) as s:
                self._apply(s, ref, status, heard, check)

    def _fail_silent_elsewhere(self) -> None:
        """The heartbeat timeout for running jobs of another backend (the server was switched, e.g.
        from ``local`` to ``kubernetes``, while they ran): no server watches them any more, so
        without this they would stay ``running`` forever. Their workers cannot be stopped from here."""
        limit = self.settings.training_heartbeat_timeout_seconds
        with self.sessions() as s:
            rows = s.execute(
                select(
                    TrainingJob.id,
                    TrainingJob.backend,
                    TrainingJob.heartbeat_at,
                    TrainingJob.started_at,
                    TrainingJob.created_at,
                ).where(TrainingJob.status == "running", TrainingJob.backend != self.backend.name)
            ).all()
        now = utcnow()
        for job_id, backend, *times in rows:
            heard = next(t for t in times if t is not None)
            silent = (now - heard).total_seconds()
            if silent <= limit or self._stop.is_set():
                continue
            why = (
                f"no word from the worker for {int(silent)} s (the limit is {limit} s, "
                "WAFERDESK_TRAINING_HEARTBEAT_TIMEOUT_SECONDS); it ran on the "
                f"{backend} backend, which this server does not use (WAFERDESK_TRAINING_BACKEND="
                f"{self.backend.name}), so its worker was not stopped from here"
            )
            with session_scope(self.sessions) as s:
                begin_write(s)
                if jobs.fail(s, job_id, why, jobs.last_log_lines(s, job_id)):
                    log.warning("training job %d failed: %s", job_id, why)

    def _apply(self, s: Session, ref: JobRef, status: str, heard: datetime, check: Check) -> None:
        """Write what ``check`` means for the job (nothing, and no lock taken, when nothing changed)."""
        silent = (utcnow() - heard).total_seconds()
        limit = self.settings.training_heartbeat_timeout_seconds
        started = check.state == "running" and status == "queued"
        news = check.state == "pending" and bool(check.reason) and self._pending_said.get(ref.id) != check.reason
        # a running job's pod did start (its retries are the heartbeat timeout's business)
        stuck = check.state == "stuck" and status == "queued"
        timed_out = status == "running" and check.state != "ended" and silent > limit
        if not (started or news or stuck or timed_out or check.state == "ended"):
            return
        begin_write(s)  # this transaction writes from here on (SQLite: hold the lock first)
        if started and jobs.transition(s, ref.id, "running"):
            jobs.add_log(s, ref.id, "server", [f"running ({self.backend.name}: {ref.handle})"])
        elif news:
            self._pending_said[ref.id] = check.reason
            jobs.add_log(s, ref.id, "server", [f"pending: {check.reason}"])
        elif check.state == "ended":
            self._pending_said.pop(ref.id, None)
            tail = check.tail or jobs.last_log_lines(s, ref.id)
            reason = check.reason
            if check.ok:
                reason += " but its worker never reported a result (no model was uploaded)"
            if jobs.fail(s, ref.id, reason, tail):
                log.warning("training job %d failed: %s", ref.id, reason)
            return
        if stuck or timed_out:
            self._pending_said.pop(ref.id, None)
            if stuck:
                why = check.reason
            else:
                why = (
                    f"no word from the worker for {int(silent)} s (the limit is {limit} s, "
                    "WAFERDESK_TRAINING_HEARTBEAT_TIMEOUT_SECONDS); it was stopped"
                )
                if check.state == "unknown" and check.reason:
                    why += f" ({check.reason})"
            if jobs.fail(s, ref.id, why, jobs.last_log_lines(s, ref.id)):
                log.warning("training job %d failed: %s", ref.id, why)
                s.commit()
                self._stop_worker(s, ref)

    def _stop_worker(self, s: Session, ref: JobRef) -> None:
        """Stop the worker (no transaction is held meanwhile: a cluster call may be slow)."""
        s.commit()
        try:
            self.backend.cancel(ref)
        except BackendError as exc:
            begin_write(s)
            jobs.add_log(s, ref.id, "server", [f"could not stop the worker: {exc}"])
            s.commit()

    # -- starting ------------------------------------------------------------------------------
    def _running_count(self, s: Session) -> int:
        q = select(func.count()).where(
            TrainingJob.backend == self.backend.name,
            or_(
                TrainingJob.status == "running",
                (TrainingJob.status == "queued") & TrainingJob.backend_handle.like(CLAIM_PREFIX + "%"),
            ),
        )
        return int(s.scalar(q) or 0)

    def _has_unclaimed(self, s: Session) -> bool:
        q = select(TrainingJob.id).where(
            TrainingJob.status == "queued",
            TrainingJob.backend == self.backend.name,
            TrainingJob.backend_handle.is_(None),
        )
        return s.scalar(q.limit(1)) is not None

    def _claim_next(self) -> tuple[JobRef, str] | None:
        """Claim the oldest queued job if the backend has room; its token is made here."""
        with session_scope(self.sessions) as s:
            if not self._has_unclaimed(s):  # the common case: a read, no lock taken
                return None
            begin_write(s, DISPATCH_LOCK_KEY)  # SQLite: the write lock; Postgres: one dispatcher at a time
            if not self.backend.has_capacity(self._running_count(s)):
                return None
            job = s.scalars(
                select(TrainingJob)
                .where(
                    TrainingJob.status == "queued",
                    TrainingJob.backend == self.backend.name,
                    TrainingJob.backend_handle.is_(None),
                )
                .order_by(TrainingJob.id)
                .limit(1)
            ).first()
            if job is None:
                return None
            token, digest = tokens.new_token(job.id)
            claimed = s.execute(
                update(TrainingJob)
                .where(TrainingJob.id == job.id, TrainingJob.backend_handle.is_(None), TrainingJob.status == "queued")
                .values(backend_handle=self._claimer, token_hash=digest, heartbeat_at=utcnow())
            ).rowcount
            if claimed != 1:
                return None
            return JobRef(id=job.id, handle=None, spec=dict(job.spec or {})), token

    def _dispatch(self) -> None:
        while not self._stop.is_set():
            claimed = self._claim_next()
            if claimed is None:
                return
            ref, token = claimed
            url = self.settings.training_server_url
            try:
                if not url:
                    raise BackendError(
                        "WAFERDESK_TRAINING_SERVER_URL is not set: the worker needs the URL it reaches this server "
                        "at (`waferdesk-server serve` sets it for the local backend; on Kubernetes it is the "
                        "server's Service URL)"
                    )
                submitted = self.backend.submit(ref, token, url)
            except BackendError as exc:
                with session_scope(self.sessions) as s:
                    begin_write(s)
                    jobs.fail(s, ref.id, f"could not start the job on the {self.backend.name} backend: {exc}")
                continue
            except Exception as exc:  # a bug must not leave the job claimed forever
                log.exception("training job %d: submit failed", ref.id)
                with session_scope(self.sessions) as s:
                    begin_write(s)
                    jobs.fail(s, ref.id, f"could not start the job on the {self.backend.name} backend: {exc!r}")
                continue
            with session_scope(self.sessions) as s:
                begin_write(s)
                s.execute(
                    update(TrainingJob)
                    .where(TrainingJob.id == ref.id, TrainingJob.backend_handle == self._claimer)
                    .values(backend_handle=submitted.handle)
                )
                jobs.add_log(s, ref.id, "server", [f"submitted to {self.backend.name}: {submitted.handle}"])
                if submitted.started:
                    jobs.transition(s, ref.id, "running")
                cancelled = s.scalar(select(TrainingJob.status).where(TrainingJob.id == ref.id)) == "cancelled"
            if cancelled:  # cancelled while it was being started: stop what was just started
                with session_scope(self.sessions) as s:
                    self._stop_worker(s, JobRef(ref.id, submitted.handle, ref.spec))

    # -- requests ------------------------------------------------------------------------------
    def cancel(self, s: Session, job: TrainingJob, who: str) -> TrainingJob:
        """Cancel a job that has not ended (409 otherwise) and stop its worker."""
        if job.status in TERMINAL_STATUSES:
            raise ConflictError(
                f"training job {job.id} already {job.status}; only queued or running jobs can be cancelled",
                code="job_finished",
                details={"status": job.status},
            )
        begin_write(s)
        if not jobs.transition(s, job.id, "cancelled"):
            s.refresh(job)
            raise ConflictError(f"training job {job.id} is {job.status} now", code="job_finished")
        # the handle as it is now (transition refreshed the row): read before, it could still be the
        # dispatcher's claim while the dispatcher had already started the worker and seen no cancel
        s.refresh(job)
        ref = job_ref(job)
        jobs.add_log(s, job.id, "server", [f"cancelled by {who}"])
        s.commit()
        if ref.handle and not ref.handle.startswith(CLAIM_PREFIX):
            self._stop_worker(s, ref)
        self.wake()  # a slot may be free for the next queued job
        s.refresh(job)
        return job
