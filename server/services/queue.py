"""The active-learning queue: claim-next with a lease, skip, release, renew, complete.

No item is ever handed to two annotators at once, also under concurrent claims:

- a claim is ONE ``UPDATE ... WHERE id = (SELECT ... LIMIT 1) AND <still claimable>
  RETURNING id`` statement. On Postgres the inner SELECT is ``FOR UPDATE SKIP LOCKED``, so
  concurrent claimers lock different rows instead of queueing on the same one, and the outer
  condition is re-checked on the row's latest version; on SQLite the statement runs under
  the database's single write lock, so claims simply take turns;
- "claimable" = ``queued``, or ``claimed`` with a lease that ran out: an expired lease
  returns the item to the queue without any sweeper job;
- an annotator who already holds a live claim gets that item back (its lease renewed)
  instead of a second one, so a desktop that restarts picks up where it was.

Completing an item is submitting its annotation (:func:`complete_for`, called by the
annotation service in the submit's transaction); skipping needs a reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.orm import Session

from ..core.errors import ConflictError, NotFoundError, UnprocessableError
from ..db.base import utcnow
from ..db.models import ALRound, Annotation, QueueItem, User
from ..db.session import begin_write
from . import audit

CLAIM_RETRIES = 8


def claimable(now: datetime):
    return or_(
        QueueItem.state == "queued",
        and_(QueueItem.state == "claimed", QueueItem.lease_expires_at < now),
    )


def effective_state(item: QueueItem, now: datetime | None = None) -> str:
    """``claimed`` with an expired lease reads as ``queued`` (anyone may claim it)."""
    now = now or utcnow()
    if item.state == "claimed" and item.lease_expires_at is not None and item.lease_expires_at < now:
        return "queued"
    return item.state


def _summary(item: QueueItem) -> dict:
    return {"state": item.state, "claimed_by": item.claimed_by, "wafer_id": item.wafer_id}


def get_item(session: Session, item_id: int, lock: bool = False) -> QueueItem:
    q = select(QueueItem).where(QueueItem.id == item_id)
    if lock:
        q = q.with_for_update()
    item = session.scalar(q.execution_options(populate_existing=True))
    if item is None:
        raise NotFoundError(f"queue item {item_id} not found", code="queue_item_not_found")
    return item


def _round_id(number: int | None):
    return None if number is None else select(ALRound.id).where(ALRound.number == number).scalar_subquery()


def claim_next(
    session: Session,
    user: User,
    lease_seconds: int,
    round_number: int | None = None,
    exclude: Sequence[int] = (),
) -> QueueItem | None:
    """The caller's live claim (lease renewed), else the next claimable item, else None.

    Claims listed in ``exclude`` (the wafer a desktop has on screen) do not count as held, so
    the caller gets a second item to prefetch; a user holds at most ``len(exclude) + 1`` per
    round (with ``round_number`` only that round's claims count as held)."""
    session.commit()  # end the read transaction: the first statement below writes
    postgres = session.get_bind().dialect.name == "postgresql"
    for _ in range(CLAIM_RETRIES):
        now = utcnow()
        lease = now + timedelta(seconds=lease_seconds)
        # 1. a claim the caller already holds
        mine = update(QueueItem).where(
            QueueItem.state == "claimed", QueueItem.claimed_by == user.id, QueueItem.lease_expires_at >= now
        )
        if round_number is not None:
            mine = mine.where(QueueItem.round_id == _round_id(round_number))
        if exclude:
            mine = mine.where(QueueItem.id.not_in(list(exclude)))
        held = (
            session.execute(
                mine.values(lease_expires_at=lease, updated_at=now)
                .returning(QueueItem.id)
                .execution_options(synchronize_session=False)
            )
            .scalars()
            .all()
        )
        if held:
            session.commit()
            return get_item(session, min(held))
        # 2. the next claimable item (oldest round first, then rank)
        nxt = select(QueueItem.id).where(claimable(now))
        if round_number is not None:
            nxt = nxt.where(QueueItem.round_id == _round_id(round_number))
        nxt = nxt.order_by(QueueItem.round_id, QueueItem.rank, QueueItem.id).limit(1)
        if postgres:
            nxt = nxt.with_for_update(skip_locked=True)
        got = session.execute(
            update(QueueItem)
            .where(QueueItem.id == nxt.scalar_subquery(), claimable(now))
            .values(state="claimed", claimed_by=user.id, claimed_at=now, lease_expires_at=lease, updated_at=now)
            .returning(QueueItem.id, QueueItem.wafer_id)
            .execution_options(synchronize_session=False)
        ).first()
        if got is not None:
            audit.record(
                session,
                user.id,
                "claim",
                "queue_item",
                got.id,
                None,
                {
                    "state": "claimed",
                    "claimed_by": user.id,
                    "wafer_id": got.wafer_id,
                    "lease_expires_at": lease.isoformat(),
                },
            )
            session.commit()
            return get_item(session, got.id)
        session.commit()
        # nothing claimed: empty, or every claimable row was taken by concurrent claimers
        left = select(QueueItem.id).where(claimable(utcnow()))
        if round_number is not None:
            left = left.where(QueueItem.round_id == _round_id(round_number))
        if session.scalar(select(exists(left))) is not True:
            session.commit()
            return None
    return None


def _held(session: Session, user: User, item_id: int, action: str) -> QueueItem:
    """The item, which the caller must hold (a lapsed lease still counts until someone else claims it)."""
    begin_write(session)
    item = get_item(session, item_id, lock=True)
    if item.state != "claimed" or item.claimed_by != user.id:
        raise ConflictError(
            f"queue item {item_id} is {effective_state(item)}"
            + (" by another annotator" if item.state == "claimed" else "")
            + f"; only the annotator holding its claim can {action} it",
            code="not_your_claim",
            details={"item_id": item_id, "state": effective_state(item)},
        )
    return item


def skip(session: Session, user: User, item_id: int, reason: str) -> QueueItem:
    reason = reason.strip()
    if not reason:
        raise UnprocessableError("body field reason: say why the wafer is skipped", code="invalid_input")
    item = _held(session, user, item_id, "skip")
    before = _summary(item)
    now = utcnow()
    item.state, item.skip_reason, item.completed_at, item.updated_at = "skipped", reason[:500], now, now
    item.lease_expires_at = None
    audit.record(
        session, user.id, "skip", "queue_item", item.id, before, {**_summary(item), "reason": item.skip_reason}
    )
    session.commit()
    return item


def release(session: Session, user: User, item_id: int) -> QueueItem:
    """Give a claimed item back to the queue at once."""
    item = _held(session, user, item_id, "release")
    before = _summary(item)
    item.state, item.claimed_by, item.claimed_at, item.lease_expires_at = "queued", None, None, None
    item.updated_at = utcnow()
    audit.record(session, user.id, "release", "queue_item", item.id, before, _summary(item))
    session.commit()
    return item


def renew(session: Session, user: User, item_id: int, lease_seconds: int) -> QueueItem:
    """Extend the lease of an item you hold (a desktop calls this while its annotator works)."""
    item = _held(session, user, item_id, "renew")
    now = utcnow()
    item.lease_expires_at = now + timedelta(seconds=lease_seconds)
    item.updated_at = now
    session.commit()
    return item


def complete_for(session: Session, ann: Annotation) -> QueueItem | None:
    """Mark done the item of ``ann``'s wafer that its annotator holds (part of the submit)."""
    item = session.scalar(
        select(QueueItem)
        .where(
            QueueItem.wafer_id == ann.wafer_id,
            QueueItem.state == "claimed",
            QueueItem.claimed_by == ann.annotator_id,
        )
        .order_by(QueueItem.id)
        .limit(1)
        .with_for_update()
    )
    if item is None:
        return None
    before = _summary(item)
    now = utcnow()
    item.state, item.annotation_id, item.completed_at, item.updated_at = "done", ann.id, now, now
    item.lease_expires_at = None
    audit.record(
        session,
        ann.annotator_id,
        "complete",
        "queue_item",
        item.id,
        before,
        {**_summary(item), "annotation_id": ann.id},
    )
    return item


# -- listing ---------------------------------------------------------------------------------
def list_items(
    session: Session,
    round_number: int | None,
    state: str | None,
    claimed_by: int | None,
    limit: int,
    offset: int,
) -> tuple[list[tuple[QueueItem, int]], int]:
    """Items with their round number, in claim order; ``state`` is the effective state."""
    now = utcnow()
    q = select(QueueItem, ALRound.number).join(ALRound, ALRound.id == QueueItem.round_id)
    if round_number is not None:
        q = q.where(ALRound.number == round_number)
    if state == "queued":
        q = q.where(claimable(now))
    elif state == "claimed":
        q = q.where(QueueItem.state == "claimed", QueueItem.lease_expires_at >= now)
    elif state is not None:
        q = q.where(QueueItem.state == state)
    if claimed_by is not None:
        q = q.where(QueueItem.claimed_by == claimed_by)
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = session.execute(q.order_by(QueueItem.round_id, QueueItem.rank, QueueItem.id).limit(limit).offset(offset))
    return [(item, number) for item, number in rows.all()], int(total)
