"""Helpers of the training tests: specs, waiting for a job's state, the fake worker's token."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

FAKE_WORKER = Path(__file__).with_name("fake_worker.py")

# a spec the server accepts that trains on synthetic wafers only (annotations off)
SYNTH_SPEC: dict[str, Any] = {
    "encoder": "resnet18",
    "steps": 4,
    "epochs": 2,
    "batch_size": 2,
    "val_count": 4,
    "threads": 1,
    "data": {"annotations": False, "synthetic_count": 8, "min_size": 15, "max_size": 30},
}


def fake_worker_command(mode: str) -> list[str]:
    return [sys.executable, str(FAKE_WORKER), mode]


def wait_for(fn: Callable[[], Any], what: str, timeout: float = 60.0, interval: float = 0.05) -> Any:
    """``fn()`` once it is truthy; fails the test naming ``what`` (and the last value) otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {what}; last seen: {last!r}")


def get_job(client: Any, headers: dict[str, str], job_id: int) -> dict[str, Any]:
    r = client.get(f"/training/jobs/{job_id}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def wait_status(
    client: Any, headers: dict[str, str], job_id: int, *statuses: str, timeout: float = 60.0
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        job = get_job(client, headers, job_id)
        return job if job["status"] in statuses else None

    return wait_for(probe, f"job {job_id} to be {'/'.join(statuses)}", timeout)


def worker_token(client: TestClient, job_id: int, timeout: float = 30.0) -> str:
    """The token the local backend handed to the fake worker (it writes it into its work folder)."""
    path = client.app.state.ctx.settings.training_dir / f"job-{job_id}" / "token"
    return wait_for(lambda: path.is_file() and path.read_text(), f"job {job_id}'s worker to start", timeout)


def pid_of(job: dict[str, Any]) -> int:
    handle = job["backend_handle"]
    assert handle and handle.startswith("local:"), handle
    return int(handle.rsplit(":", 1)[1])


def process_gone(pid: int) -> bool:
    """The process ended (a zombie left by a dropped Popen counts as ended; it is reaped here)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes() == b""
    except FileNotFoundError:
        return True


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
