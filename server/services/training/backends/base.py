"""What a training backend does, and nothing more: start a worker, look at it, stop it, read it.

Both backends run the SAME worker (``python -m waferdesk.worker``), which talks to the server
over HTTP with its job's token: it fetches the spec and the data, reports metrics and log
lines, and uploads the model. The backend only owns the process (or pod) around it, so the
server learns about crashes the worker could not report itself (an import error, an
out-of-memory kill, a deleted pod) from :meth:`TrainingBackend.check`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal


class BackendError(Exception):
    """The backend could not do what was asked (the message is shown on the job)."""


@dataclass(frozen=True)
class JobRef:
    """The part of a job row a backend needs (a plain value: backends never hold sessions)."""

    id: int
    handle: str | None
    spec: dict[str, Any]


@dataclass(frozen=True)
class Submitted:
    handle: str
    started: bool  # True: the worker process runs now (local); False: the cluster schedules it


@dataclass(frozen=True)
class Check:
    """What a backend sees of a submitted job.

    - ``pending``: submitted, not running yet (a pod waiting for a GPU node);
    - ``running``: the process / pod runs;
    - ``ended``: it is gone; ``ok`` says whether it exited cleanly; ``reason`` says how it
      ended in words and ``tail`` holds the last lines it wrote (for the job's error);
    - ``unknown``: this server cannot tell (another host's process); heartbeats decide;
    - ``stuck``: submitted long ago and it shows no sign of ever starting (an image that cannot
      be pulled, no node that can take it); ``reason`` says why. A queued job is then failed and
      its worker stopped as on cancel, so it holds no cluster resources (a GPU request) forever.
    """

    state: Literal["pending", "running", "ended", "unknown", "stuck"]
    ok: bool = False
    reason: str = ""
    tail: list[str] = field(default_factory=list)


class TrainingBackend(ABC):
    name: str = "?"

    def start(self) -> None:  # noqa: B027 - optional hook
        """Called once when the server starts (connect, start watching)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Called when the server stops. Running workers are left running (they survive a restart)."""

    def has_capacity(self, running: int) -> bool:
        """May another job be started while ``running`` jobs of this backend are running?"""
        return True

    @abstractmethod
    def submit(self, job: JobRef, token: str, server_url: str) -> Submitted: ...

    @abstractmethod
    def check(self, job: JobRef) -> Check: ...

    @abstractmethod
    def cancel(self, job: JobRef) -> None:
        """Stop the worker and free what it holds (kill the process group, delete the Job)."""

    @abstractmethod
    def logs(self, job: JobRef, tail: int | None = None, follow: bool = False) -> Iterator[str]:
        """The worker's raw output (stdout and stderr), newest ``tail`` lines; ``follow`` streams."""

    def set_wake(self, wake: Any) -> None:  # noqa: B027 - optional hook
        """Give the backend a function to call when it sees a change (a watch event)."""
