"""Every table, imported here so ``Base.metadata`` is complete (Alembic compares against it).

One module per resource; a later issue adds its own module (annotations, queue, training)
and one line below, then an Alembic revision (``docs/server.md`` says how).
"""

from ..base import Base
from .active_learning import ALRound, QueueItem
from .annotations import Annotation, AuditLog
from .predictions import InferenceLog, Prediction
from .registry import RegisteredModel
from .training import TrainingJob, TrainingLogLine, TrainingMetric
from .users import AuthSession, LoginThrottle, RefreshToken, User
from .wafers import Wafer

__all__ = [
    "ALRound",
    "Annotation",
    "AuditLog",
    "AuthSession",
    "Base",
    "InferenceLog",
    "LoginThrottle",
    "Prediction",
    "QueueItem",
    "RefreshToken",
    "RegisteredModel",
    "TrainingJob",
    "TrainingLogLine",
    "TrainingMetric",
    "User",
    "Wafer",
]
