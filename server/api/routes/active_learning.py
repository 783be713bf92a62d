"""``/active-learning``: run a query (engineers), the queue (claim-next, skip, release, renew), statistics.

A claim holds an item for ``queue_lease_seconds`` (renew to keep it); when the lease runs
out the item is claimable again. Completing an item is submitting your annotation of its
wafer (``POST /annotations/{id}/submit`` or ``POST /annotations`` with ``submit: true``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, status
from sqlalchemy import select

from ...core.permissions import Permission
from ...db.models import ALRound, QueueItem, User, Wafer
from ...services import al_query, al_stats
from ...services import annotations as ann_svc
from ...services import queue as svc
from ..dates import parse_when
from ..deps import CtxDep, SessionDep, require
from ..schemas.active_learning import (
    ClaimIn,
    ClaimOut,
    MyAnnotation,
    QueryIn,
    QueueItemOut,
    QueuePage,
    RoundOut,
    SkipIn,
    WaferBrief,
)
from ..schemas.common import DbId, DbOffset, error_responses

router = APIRouter(prefix="/active-learning", tags=["active-learning"])
Manager = Annotated[User, Depends(require(Permission.QUEUE_MANAGE))]
Worker = Annotated[User, Depends(require(Permission.QUEUE_WORK))]
Reader = Annotated[User, Depends(require(Permission.QUEUE_READ))]


def item_outs(session: SessionDep, items: list[QueueItem], numbers: dict[int, int] | None = None) -> list[QueueItemOut]:
    if not items:
        return []
    wafers = {w.id: w for w in session.scalars(select(Wafer).where(Wafer.id.in_({i.wafer_id for i in items})))}
    if numbers is None:
        rids = {i.round_id for i in items}
        numbers = dict(session.execute(select(ALRound.id, ALRound.number).where(ALRound.id.in_(rids))).all())
    out = []
    for i in items:
        w = wafers[i.wafer_id]
        out.append(
            QueueItemOut(
                id=i.id,
                round=numbers[i.round_id],
                wafer=WaferBrief(id=w.id, lot=w.lot, wafer_id=w.wafer_id, rows=w.rows, cols=w.cols, n_fail=w.n_fail),
                prediction_id=i.prediction_id,
                rank=i.rank,
                score=i.score,
                scores=i.scores or {},
                state=svc.effective_state(i),
                claimed_by=i.claimed_by,
                claimed_at=i.claimed_at,
                lease_expires_at=i.lease_expires_at,
                skip_reason=i.skip_reason,
                annotation_id=i.annotation_id,
                completed_at=i.completed_at,
            )
        )
    return out


def round_out(rnd: ALRound, items: list[QueueItemOut] | None = None) -> RoundOut:
    return RoundOut(
        id=rnd.id,
        number=rnd.number,
        strategy=rnd.strategy,
        params=rnd.params,
        model_id=rnd.model_id,
        model_version=rnd.model_version,
        model_sha256=rnd.model_sha256,
        metrics=rnd.metrics,
        candidates=rnd.n_candidates,
        created_by=rnd.created_by,
        created_at=rnd.created_at,
        items=items,
    )


@router.post(
    "/query", status_code=status.HTTP_201_CREATED, response_model=RoundOut, responses=error_responses(409, 422, 503)
)
def run_query(body: QueryIn, user: Manager, session: SessionDep, ctx: CtxDep) -> RoundOut:
    """Pick ``batch_size`` unlabelled wafers with a strategy and queue them as the next round."""
    req = al_query.QueryRequest(
        strategy=body.strategy,
        batch_size=body.batch_size,
        seed=body.seed,
        score=body.score,
        pool_factor=body.pool_factor,
        tta=body.tta,
        lot=body.lot,
        product=body.product,
        created_from=parse_when(body.created_from, "body field created_from"),
        created_to=parse_when(body.created_to, "body field created_to", end=True),
        wafer_ids=body.wafer_ids,
        include_skipped=body.include_skipped,
    )
    rnd, items = al_query.run_query(session, ctx, user, req)
    return round_out(rnd, item_outs(session, items, {rnd.id: rnd.number}))


@router.get("/rounds", response_model=list[RoundOut])
def list_rounds(user: Reader, session: SessionDep) -> list[RoundOut]:
    return [round_out(r) for r in session.scalars(select(ALRound).order_by(ALRound.number))]


@router.get("/queue", response_model=QueuePage, responses=error_responses(422))
def list_queue(
    user: Reader,
    session: SessionDep,
    round: DbId | None = None,
    state: Literal["queued", "claimed", "done", "skipped"] | None = None,
    mine: Annotated[bool, Query(description="only items you hold or held")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[DbOffset, Query()] = 0,
) -> QueuePage:
    """Queue items in claim order (oldest round first, then rank)."""
    rows, total = svc.list_items(session, round, state, user.id if mine else None, limit, offset)
    items = item_outs(session, [i for i, _ in rows], {i.round_id: n for i, n in rows})
    return QueuePage(items=items, total=total, limit=limit, offset=offset)


def _claim_out(session: SessionDep, item: QueueItem | None, user: User, lease: int) -> ClaimOut:
    if item is None:
        return ClaimOut(item=None, lease_seconds=lease)
    mine = ann_svc.existing_of(session, item.wafer_id, user.id)
    return ClaimOut(
        item=item_outs(session, [item])[0],
        my_annotation=MyAnnotation(id=mine.id, version=mine.version, status=mine.status) if mine else None,
        lease_seconds=lease,
    )


@router.post("/queue/claim", response_model=ClaimOut, responses=error_responses(422))
def claim_next(user: Worker, session: SessionDep, ctx: CtxDep, body: ClaimIn | None = None) -> ClaimOut:
    """The next wafer to label, held for you for ``lease_seconds`` (your current claim if you hold one)."""
    lease = ctx.settings.queue_lease_seconds
    item = svc.claim_next(session, user, lease, body.round if body else None, exclude=body.exclude if body else ())
    return _claim_out(session, item, user, lease)


@router.post("/queue/{item_id}/skip", response_model=QueueItemOut, responses=error_responses(404, 409, 422))
def skip_item(item_id: DbId, body: SkipIn, user: Worker, session: SessionDep) -> QueueItemOut:
    """Skip the item you hold, saying why (it is not handed out again)."""
    return item_outs(session, [svc.skip(session, user, item_id, body.reason)])[0]


@router.post("/queue/{item_id}/release", response_model=QueueItemOut, responses=error_responses(404, 409))
def release_item(item_id: DbId, user: Worker, session: SessionDep) -> QueueItemOut:
    """Give the item you hold back to the queue now."""
    return item_outs(session, [svc.release(session, user, item_id)])[0]


@router.post("/queue/{item_id}/renew", response_model=ClaimOut, responses=error_responses(404, 409))
def renew_item(item_id: DbId, user: Worker, session: SessionDep, ctx: CtxDep) -> ClaimOut:
    """Extend the lease of the item you hold."""
    lease = ctx.settings.queue_lease_seconds
    return _claim_out(session, svc.renew(session, user, item_id, lease), user, lease)


@router.get("/stats")
def stats(user: Reader, session: SessionDep, ctx: CtxDep) -> dict[str, Any]:
    """Per round: labelled / queued / in progress / skipped / approved and the model's metrics;
    per annotator: throughput; totals; inter-annotator agreement."""
    return al_stats.stats(session, ctx.settings.agreement_threshold)
