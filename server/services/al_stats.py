"""``GET /active-learning/stats``: how labelling is going, per round and per annotator.

- per round: items labelled (done), queued (lease-expired claims included), in progress
  (live claims), skipped, and how many of the round's wafers have approved ground truth;
  with the model the round was queried with and that model's card metrics (when known);
- per annotator: annotations submitted / approved / rejected / drafts, labelling time, and
  throughput (submitted annotations per hour of labelling time, and in the last 24 hours);
- totals and inter-annotator agreement (:mod:`server.services.agreement`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from ..db.base import utcnow
from ..db.models import ALRound, Annotation, QueueItem, User, Wafer
from . import agreement

LIVE = Annotation.deleted_at.is_(None)


def round_stats(session: Session) -> list[dict[str, Any]]:
    now = utcnow()
    eff = case(
        (and_(QueueItem.state == "claimed", QueueItem.lease_expires_at < now), "queued"),
        else_=QueueItem.state,
    )
    counts: dict[int, dict[str, int]] = {}
    for rid, state, n in session.execute(
        select(QueueItem.round_id, eff, func.count()).group_by(QueueItem.round_id, eff)
    ):
        counts.setdefault(rid, {})[state] = int(n)
    approved = dict(
        session.execute(
            select(QueueItem.round_id, func.count(func.distinct(QueueItem.wafer_id)))
            .join(Annotation, and_(Annotation.wafer_id == QueueItem.wafer_id, LIVE, Annotation.status == "approved"))
            .group_by(QueueItem.round_id)
        ).all()
    )
    out = []
    for r in session.scalars(select(ALRound).order_by(ALRound.number)):
        c = counts.get(r.id, {})
        out.append(
            {
                "number": r.number,
                "strategy": r.strategy,
                "created_at": r.created_at,
                "created_by": r.created_by,
                "model": {"id": r.model_id, "version": r.model_version, "sha256": r.model_sha256},
                "model_metrics": r.metrics,
                "candidates": r.n_candidates,
                "items": sum(c.values()),
                "labelled": c.get("done", 0),
                "queued": c.get("queued", 0),
                "in_progress": c.get("claimed", 0),
                "skipped": c.get("skipped", 0),
                "approved": int(approved.get(r.id, 0)),
            }
        )
    return out


def annotator_stats(session: Session) -> list[dict[str, Any]]:
    since = utcnow() - timedelta(hours=24)
    sub = Annotation.submitted_at.is_not(None)
    rows = session.execute(
        select(
            Annotation.annotator_id,
            User.username,
            func.count().filter(sub),
            func.count().filter(Annotation.status == "approved"),
            func.count().filter(Annotation.status == "rejected"),
            func.count().filter(Annotation.status == "draft"),
            func.coalesce(func.sum(Annotation.time_spent_s), 0.0),
            func.coalesce(func.sum(Annotation.time_spent_s).filter(sub), 0.0),
            func.count().filter(Annotation.submitted_at >= since),
        )
        .join(User, User.id == Annotation.annotator_id, isouter=True)
        .where(LIVE)
        .group_by(Annotation.annotator_id, User.username)
        .order_by(User.username)
    ).all()
    out = []
    for uid, name, submitted, approved, rejected, drafts, seconds, seconds_sub, last24 in rows:
        hours = float(seconds_sub) / 3600.0
        out.append(
            {
                "user_id": uid,
                "username": name,
                "submitted": int(submitted),
                "approved": int(approved),
                "rejected": int(rejected),
                "drafts": int(drafts),
                "time_spent_s": round(float(seconds), 1),
                "mean_seconds_per_annotation": round(float(seconds_sub) / submitted, 1) if submitted else None,
                "per_hour": round(submitted / hours, 2) if hours > 0 else None,
                "submitted_24h": int(last24),
            }
        )
    return out


def totals(session: Session) -> dict[str, int]:
    now = utcnow()
    by_status = dict(
        session.execute(select(Annotation.status, func.count()).where(LIVE).group_by(Annotation.status)).all()
    )
    gt = session.scalar(
        select(func.count(func.distinct(Annotation.wafer_id))).where(LIVE, Annotation.status == "approved")
    )
    queued = session.scalar(
        select(func.count()).where(
            (QueueItem.state == "queued") | and_(QueueItem.state == "claimed", QueueItem.lease_expires_at < now)
        )
    )
    claimed = session.scalar(
        select(func.count()).where(QueueItem.state == "claimed", QueueItem.lease_expires_at >= now)
    )
    return {
        "wafers": int(session.scalar(select(func.count()).select_from(Wafer)) or 0),
        "ground_truth_wafers": int(gt or 0),
        "annotations": {s: int(by_status.get(s, 0)) for s in ("draft", "submitted", "approved", "rejected")},
        "queued": int(queued or 0),
        "in_progress": int(claimed or 0),
    }


def stats(session: Session, threshold: float) -> dict[str, Any]:
    return {
        "totals": totals(session),
        "rounds": round_stats(session),
        "annotators": annotator_stats(session),
        "agreement": agreement.summary(agreement.agreement(session, threshold), threshold),
    }
