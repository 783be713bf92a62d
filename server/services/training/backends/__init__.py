"""Training backends: ``local`` (a subprocess on this host) and ``kubernetes`` (a batch/v1 Job)."""

from __future__ import annotations

from ....core.config import Settings
from .base import BackendError, Check, JobRef, Submitted, TrainingBackend

__all__ = ["BackendError", "Check", "JobRef", "Submitted", "TrainingBackend", "make_backend"]


def make_backend(settings: Settings, name: str | None = None) -> TrainingBackend:
    which = name or settings.training_backend
    if which == "local":
        from .local import LocalBackend

        return LocalBackend(settings)
    if which == "kubernetes":
        from .kubernetes import KubernetesBackend

        return KubernetesBackend(settings)
    raise ValueError(f"unknown training backend {which!r} (local or kubernetes)")
