"""The audit log: one row per change (who, when, what), written in the change's transaction.

``before`` / ``after`` are summaries (status, version, labelled dies per class...), small
enough to keep forever; the request id ties a row to the server's log lines.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..core.logging import request_id_var
from ..db.models import Annotation, AuditLog


def record(
    session: Session,
    user_id: int | None,
    action: str,
    entity: str,
    entity_id: int,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    rid = request_id_var.get()
    session.add(
        AuditLog(
            user_id=user_id,
            action=action,
            entity=entity,
            entity_id=entity_id,
            before=before,
            after=after,
            request_id=rid if rid and rid != "-" else None,
        )
    )


def annotation_summary(ann: Annotation) -> dict[str, Any]:
    return {
        "status": ann.status,
        "version": ann.version,
        "source": ann.source,
        "n_labelled": ann.n_labelled,
        "counts": {k: v for k, v in (ann.counts or {}).items() if v},
        "deleted": ann.deleted_at is not None,
    }


def history(session: Session, entity: str, entity_id: int) -> list[AuditLog]:
    return list(
        session.scalars(
            select(AuditLog).where(AuditLog.entity == entity, AuditLog.entity_id == entity_id).order_by(AuditLog.id)
        )
    )
