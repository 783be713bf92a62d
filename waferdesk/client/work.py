"""What the desktop asks of a WaferDesk server, as an interface the UI is written against.

The server's routes are being built separately; until they exist the app runs in local mode
(:class:`LocalSession`): files from disk, editing allowed, no queue. A real client (httpx,
token in keyring, SQLite outbox beside the drafts) will implement :class:`WorkClient` and the
UI will switch on :class:`Capabilities` only, never on how the work arrives.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import numpy as np


class Role(StrEnum):
    VIEWER = "viewer"
    ANNOTATOR = "annotator"
    ENGINEER = "engineer"
    ADMIN = "admin"


@dataclass(frozen=True)
class Capabilities:
    """What the UI offers: editing, the annotation queue, the review queue."""

    can_edit: bool
    sees_queue: bool
    sees_review: bool

    @classmethod
    def for_role(cls, role: Role) -> Capabilities:
        return cls(
            can_edit=role is not Role.VIEWER,
            sees_queue=role in (Role.ANNOTATOR, Role.ENGINEER, Role.ADMIN),
            sees_review=role in (Role.ENGINEER, Role.ADMIN),
        )


@dataclass(frozen=True)
class Task:
    """One wafer handed out by the queue, with the model's pre-annotation."""

    task_id: str
    wafer_key: str
    labels: np.ndarray | None
    base_version: int


class WorkClient(Protocol):
    """The server side of the work loop (claim, submit, skip); implemented once the routes exist."""

    @property
    def capabilities(self) -> Capabilities: ...

    @property
    def description(self) -> str:
        """One line for the status bar: server and user, or 'local files'."""
        ...

    def claim_next(self) -> Task | None: ...

    def submit(self, task: Task, labels: np.ndarray) -> None: ...

    def skip(self, task: Task, reason: str) -> None: ...


class LocalSession:
    """No server: local files only; labels go to drafts and files the user saves."""

    capabilities = Capabilities(can_edit=True, sees_queue=False, sees_review=False)
    description = "local files (no server)"

    def claim_next(self) -> Task | None:
        return None

    def submit(self, task: Task, labels: np.ndarray) -> None:
        raise NotImplementedError("local mode has no server to submit to")

    def skip(self, task: Task, reason: str) -> None:
        raise NotImplementedError("local mode has no queue")
