"""THE permission matrix: which role may do what. The only place roles meet permissions.

Every route declares exactly one :class:`Permission` through ``require(...)``
(:mod:`server.api.deps`); the app refuses to start if a route has none, and
``tests/server/test_permissions.py`` walks every route x every role (+ anonymous, expired and
tampered tokens) against :data:`ROLES_FOR`. A new route therefore needs a line here or an
existing permission, and a new permission needs its roles written below.

Permissions that no route uses yet belong to the annotation / active-learning / training
issues; they are written down now so those routes only have to name them.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    ENGINEER = "engineer"
    ANNOTATOR = "annotator"
    VIEWER = "viewer"


class Permission(StrEnum):
    # special: no token needed (health, metrics, login, register, refresh) / any signed-in user
    PUBLIC = "public"
    AUTHENTICATED = "authenticated"
    # users and roles
    USERS_MANAGE = "users:manage"
    # wafers
    WAFERS_READ = "wafers:read"
    WAFERS_UPLOAD = "wafers:upload"
    WAFERS_DELETE = "wafers:delete"
    # predictions and statistics
    PREDICTIONS_READ = "predictions:read"
    PREDICTIONS_RUN = "predictions:run"
    STATS_READ = "stats:read"
    # model registry
    MODELS_READ = "models:read"
    MODELS_MANAGE = "models:manage"  # upload / promote / retire a model
    # annotations (issue: annotations + queue)
    ANNOTATIONS_READ_ALL = "annotations:read_all"
    ANNOTATIONS_WRITE_OWN = "annotations:write_own"
    ANNOTATIONS_REVIEW = "annotations:review"
    # active-learning queue
    QUEUE_WORK = "queue:work"  # claim / skip / complete items
    QUEUE_MANAGE = "queue:manage"  # run a query, create rounds
    QUEUE_READ = "queue:read"  # queue statistics
    # exports (COCO)
    EXPORTS_RUN = "exports:run"
    # training jobs
    TRAINING_READ = "training:read"
    TRAINING_RUN = "training:run"
    # a training job's own worker: held by no role, only by that job's token (see TOKEN_ONLY)
    TRAINING_WORKER = "training:worker"


_ALL = frozenset(Role)
_ADMIN = frozenset({Role.ADMIN})
_ENG = frozenset({Role.ADMIN, Role.ENGINEER})
_LABEL = frozenset({Role.ADMIN, Role.ENGINEER, Role.ANNOTATOR})

ROLES_FOR: dict[Permission, frozenset[Role]] = {
    Permission.PUBLIC: _ALL,  # and anonymous callers
    Permission.AUTHENTICATED: _ALL,
    Permission.USERS_MANAGE: _ADMIN,
    Permission.WAFERS_READ: _ALL,
    Permission.WAFERS_UPLOAD: _ENG,
    Permission.WAFERS_DELETE: _ADMIN,
    Permission.PREDICTIONS_READ: _ALL,
    Permission.PREDICTIONS_RUN: _ENG,
    Permission.STATS_READ: _ALL,
    Permission.MODELS_READ: _ALL,
    Permission.MODELS_MANAGE: _ADMIN,
    Permission.ANNOTATIONS_READ_ALL: _ENG,
    Permission.ANNOTATIONS_WRITE_OWN: _LABEL,
    Permission.ANNOTATIONS_REVIEW: _ENG,
    Permission.QUEUE_WORK: _LABEL,
    Permission.QUEUE_MANAGE: _ENG,
    Permission.QUEUE_READ: _LABEL,
    Permission.EXPORTS_RUN: _ENG,
    Permission.TRAINING_READ: _ENG,
    Permission.TRAINING_RUN: _ENG,
    Permission.TRAINING_WORKER: frozenset(),
}

ANONYMOUS_ALLOWED = frozenset({Permission.PUBLIC})
TOKEN_ONLY = frozenset({Permission.TRAINING_WORKER})
"""Permissions no person holds, not even an admin: only a per-job worker token (a training job's
worker reports its metrics and uploads its model with it; a person's token is refused with 403)."""
DEFAULT_ROLE = Role.VIEWER  # what self-registration creates


def allows(role: Role | str | None, permission: Permission) -> bool:
    """May ``role`` (``None`` = anonymous) do ``permission``?"""
    if role is None:
        return permission in ANONYMOUS_ALLOWED
    return Role(role) in ROLES_FOR[permission]


def permissions_of(role: Role | str) -> list[str]:
    """Every permission a role holds (shown by ``/auth/me`` so clients can hide what is refused)."""
    r = Role(role)
    return sorted(
        p.value
        for p, roles in ROLES_FOR.items()
        if r in roles and p not in (Permission.PUBLIC, Permission.AUTHENTICATED)
    )


def matrix_table() -> str:
    """The matrix as a Markdown table (docs/server.md shows it; a test keeps the two equal)."""
    roles = list(Role)
    lines = ["| permission | " + " | ".join(r.value for r in roles) + " |", "|---|" + "---|" * len(roles)]
    for p in Permission:
        cells = ["yes" if r in ROLES_FOR[p] else "-" for r in roles]
        name = p.value + (" (no token)" if p in ANONYMOUS_ALLOWED else "")
        name += " (job token only)" if p in TOKEN_ONLY else ""
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


_MISSING = [p for p in Permission if p not in ROLES_FOR]
if _MISSING:  # pragma: no cover - a programming error caught at import
    raise RuntimeError(f"permissions without roles in the matrix: {_MISSING}")
