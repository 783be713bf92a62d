"""The embedded default: the worker as a subprocess on the server's own host.

Each job gets a work folder ``<data dir>/training/job-<id>/`` holding ``worker.log`` (the
worker's stdout and stderr) and everything the worker writes (its dataset, the run directory,
the exported model). The process starts in its own session, so stopping the server (Ctrl-C,
a restart) does not kill training: a server that starts again finds the process by its id and
command line (``--job <id>``) and keeps watching it; if it is gone, the job is failed with what
its log says. The handle is ``local:<host>:<pid>``; on another host the process cannot be
seen and the worker's heartbeats decide.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from ....core.config import Settings
from .base import BackendError, Check, JobRef, Submitted, TrainingBackend

log = logging.getLogger(__name__)

# never handed to a worker: it talks to the server over HTTP with its job token, nothing else
SCRUBBED_ENV_PREFIXES = ("WAFERDESK_", "DATABASE_URL", "REDIS_URL", "PG")


def worker_env(token: str, base: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v for k, v in (base if base is not None else os.environ).items() if not k.startswith(SCRUBBED_ENV_PREFIXES)
    }
    env["WAFERDESK_JOB_TOKEN"] = token
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def tail_file(path: Path, n: int) -> list[str]:
    try:
        with path.open("r", encoding="utf-8", errors="replace") as f:
            return [ln.rstrip("\n") for ln in deque(f, maxlen=n)]
    except FileNotFoundError:
        return []


def _has_proc() -> bool:
    return Path("/proc/self").exists()


def _cmdline(pid: int) -> list[str] | None:
    """The command line of ``pid`` (Linux /proc); ``None`` when it cannot be read (no /proc: macOS)."""
    if not _has_proc():
        return None
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return []
    except OSError:
        return None
    return [p.decode("utf-8", "replace") for p in raw.split(b"\0") if p]


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def parse_handle(handle: str | None) -> tuple[str, int] | None:
    if not handle or not handle.startswith("local:"):
        return None
    _, host, pid = handle.rsplit(":", 2) if handle.count(":") >= 2 else ("", "", "")
    return (host, int(pid)) if pid.isdigit() else None


class LocalBackend(TrainingBackend):
    name = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.host = socket.gethostname()
        self._procs: dict[int, subprocess.Popen[bytes]] = {}  # job id -> the workers this process started
        self._ended_at: dict[int, float] = {}
        self._lock = threading.Lock()

    # -- helpers -------------------------------------------------------------------------------
    def work_dir(self, job_id: int) -> Path:
        return self.settings.training_dir / f"job-{job_id}"

    def log_path(self, job_id: int) -> Path:
        return self.work_dir(job_id) / "worker.log"

    def command(self, job_id: int, server_url: str) -> list[str]:
        base = list(self.settings.training_worker_command or [sys.executable, "-m", "waferdesk.worker"])
        return [*base, "--server", server_url, "--job", str(job_id), "--work-dir", str(self.work_dir(job_id))]

    def has_capacity(self, running: int) -> bool:
        return running < self.settings.training_max_concurrent

    # -- the interface -------------------------------------------------------------------------
    def _prune(self, keep_seconds: float = 3600.0) -> None:
        """Forget workers that ended long ago (their jobs were settled meanwhile)."""
        now = time.monotonic()
        with self._lock:
            for job_id in [j for j, t in self._ended_at.items() if now - t > keep_seconds]:
                self._procs.pop(job_id, None)
                self._ended_at.pop(job_id, None)

    def running_pids(self) -> list[int]:
        """Process ids of the workers this server process started that still run."""
        with self._lock:
            return [p.pid for p in self._procs.values() if p.poll() is None]

    def submit(self, job: JobRef, token: str, server_url: str) -> Submitted:
        self._prune()
        work = self.work_dir(job.id)
        work.mkdir(parents=True, exist_ok=True)
        cmd = self.command(job.id, server_url)
        out = self.log_path(job.id).open("ab")
        try:
            proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=worker_env(token),
                cwd=work,
                start_new_session=True,  # its own process group: a server restart leaves it running
            )
        except OSError as exc:
            raise BackendError(f"could not start the training worker ({cmd[0]}): {exc}") from None
        finally:
            out.close()
        with self._lock:
            self._procs[job.id] = proc
        log.info("training job %d: worker pid %d (%s)", job.id, proc.pid, " ".join(cmd[:3]))
        return Submitted(handle=f"local:{self.host}:{proc.pid}", started=True)

    def _is_our_worker(self, job_id: int, pid: int) -> bool | None:
        """Is ``pid`` this job's worker? ``None``: cannot tell on this platform."""
        cmd = _cmdline(pid)
        if cmd is None:
            return None
        if not cmd:  # no such process (or a zombie)
            return False
        return any(a == "--job" and b == str(job_id) for a, b in itertools.pairwise(cmd))

    def check(self, job: JobRef) -> Check:
        with self._lock:
            proc = self._procs.get(job.id)
        if proc is not None:  # started by this server process: its exit code is known
            code = proc.poll()
            if code is None:
                return Check("running")
            with self._lock:
                self._ended_at.setdefault(job.id, time.monotonic())
            how = f"exited with code {code}" if code >= 0 else f"was killed by signal {-code}"
            return Check("ended", ok=code == 0, reason=f"the worker process {how}", tail=self._tail(job.id))
        where = parse_handle(job.handle)
        if where is None:
            return Check("ended", reason="no worker process was recorded for this job")
        host, pid = where
        if host != self.host:
            return Check("unknown", reason=f"the worker runs on {host}, not on this host ({self.host})")
        mine = self._is_our_worker(job.id, pid)
        if mine is None:  # no /proc: does the pid exist at all?
            mine = _pid_exists(pid)
        if mine:
            return Check("running")
        return Check(
            "ended",
            reason=f"the worker process (pid {pid}) is gone; it ended while the server was not watching it "
            "(a server restart or crash) without reporting a result",
            tail=self._tail(job.id),
        )

    def _tail(self, job_id: int, n: int = 20) -> list[str]:
        return tail_file(self.log_path(job_id), n)

    def cancel(self, job: JobRef) -> None:
        with self._lock:
            proc = self._procs.pop(job.id, None)
        if proc is not None and proc.poll() is not None:
            return  # it has ended already (and its pid may belong to someone else by now)
        pid = proc.pid if proc is not None else None
        if pid is None:
            where = parse_handle(job.handle)
            if where is None or where[0] != self.host:
                return  # nothing of ours is running
            mine = self._is_our_worker(job.id, where[1])
            if not (_pid_exists(where[1]) if mine is None else mine):  # no /proc: as check() decides
                return
            pid = where[1]
        _terminate_group(pid, self.settings.training_cancel_grace_seconds, proc)

    def logs(self, job: JobRef, tail: int | None = None, follow: bool = False) -> Iterator[str]:
        path = self.log_path(job.id)
        lines = tail_file(path, tail or 10_000)
        yield from lines
        if not follow:
            return
        try:
            f = path.open("r", encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return
        with f:
            f.seek(0, os.SEEK_END)
            while True:
                line = f.readline()
                if line:
                    yield line.rstrip("\n")
                    continue
                if self.check(job).state != "running":
                    yield from (ln.rstrip("\n") for ln in f.readlines())
                    return
                time.sleep(0.5)


def _terminate_group(pid: int, grace: float, proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM the worker's process group, SIGKILL it after ``grace`` seconds (in the background)."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    except PermissionError as exc:
        raise BackendError(f"cannot stop the worker process {pid}: {exc}") from None

    def reap() -> None:
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if proc is not None:
                if proc.poll() is not None:
                    return
            elif not _pid_exists(pid):
                return
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)

    threading.Thread(target=reap, name=f"reap-{pid}", daemon=True).start()
