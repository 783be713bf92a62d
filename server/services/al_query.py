"""``POST /active-learning/query``: pick the next wafers to label and queue them as a round.

1. Candidates: wafers with failing dies (nothing else carries a label) that have no live
   submitted/approved annotation, are in no open queue item (queued or claimed, any round)
   and were not skipped before (unless asked), narrowed by the request's filters; newest
   first, at most ``al_max_candidates``.
2. Scores: the active model's stored predictions of those wafers (uncertainty scores and
   embeddings, one row per wafer and model); wafers without one are predicted now (through
   the prediction service, so they are stored and cached like any other prediction), and so
   are labelled wafers, whose embeddings count as already covered for diversity.
   ``tta: true`` adds the disagreement across the 8 symmetries (8 model runs per candidate).
3. Selection: :func:`waferdesk.core.active.select` (random / uncertainty / diversity /
   hybrid), deterministic for a seed.
4. The round: numbered max + 1 under a lock (Postgres advisory lock, SQLite write lock), its
   items ranked in pick order with their scores; a wafer another round queued meanwhile is
   left out.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from waferdesk.core.active import STRATEGIES
from waferdesk.core.active import select as select_batch

from ..core.errors import ConflictError, UnprocessableError
from ..db.models import ALRound, Annotation, Prediction, QueueItem, User, Wafer
from ..db.session import begin_write
from ..db.types import unpack_array
from . import audit
from .tta import tta_scores
from .wafers import to_wafer_map

if TYPE_CHECKING:
    from ..context import ServerContext

log = logging.getLogger(__name__)

AL_LOCK_KEY = 0x57AFA1  # arbitrary, constant: "waferdesk active-learning rounds"
OPEN_STATES = ("queued", "claimed")
LOW_IS_UNCERTAIN = frozenset({"margin_mean", "margin_min"})  # every other score: high = unsure


@dataclass
class QueryRequest:
    strategy: str
    batch_size: int
    seed: int = 0
    score: str | None = None  # which uncertainty score ranks; default entropy_mean (tta_mutual_info with tta)
    pool_factor: float = 4.0
    tta: bool = False
    lot: str | None = None
    product: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    wafer_ids: list[int] | None = None
    include_skipped: bool = False

    @property
    def score_key(self) -> str:
        return self.score or ("tta_mutual_info" if self.tta else "entropy_mean")

    def params(self) -> dict[str, Any]:
        out = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(self).items()}
        out["score"] = self.score_key
        return out


@dataclass
class Scored:
    wafer_id: int
    prediction_id: int
    scores: dict[str, float]
    embedding: np.ndarray | None


def _labelled_wafers():
    return select(Annotation.wafer_id).where(
        Annotation.deleted_at.is_(None), Annotation.status.in_(("submitted", "approved"))
    )


def candidate_ids(session: Session, req: QueryRequest, limit: int) -> list[int]:
    q = select(Wafer.id).where(
        Wafer.n_fail > 0,
        Wafer.id.not_in(_labelled_wafers()),
        Wafer.id.not_in(select(QueueItem.wafer_id).where(QueueItem.state.in_(OPEN_STATES))),
    )
    if not req.include_skipped:
        q = q.where(Wafer.id.not_in(select(QueueItem.wafer_id).where(QueueItem.state == "skipped")))
    if req.lot is not None:
        q = q.where(Wafer.lot == req.lot)
    if req.product is not None:
        q = q.where(Wafer.product == req.product)
    if req.created_from is not None:
        q = q.where(Wafer.created_at >= req.created_from)
    if req.created_to is not None:
        q = q.where(Wafer.created_at < req.created_to)
    if req.wafer_ids:
        q = q.where(Wafer.id.in_(req.wafer_ids))
    return list(session.scalars(q.order_by(Wafer.id.desc()).limit(limit)))


def labelled_ids(session: Session, limit: int) -> list[int]:
    q = select(Wafer.id).where(Wafer.id.in_(_labelled_wafers())).order_by(Wafer.id.desc()).limit(limit)
    return list(session.scalars(q))


def scored(session: Session, ctx: ServerContext, user: User, ids: list[int], sha: str) -> dict[int, Scored]:
    """The active model's scores and embeddings of these wafers, predicting those it lacks."""
    out: dict[int, Scored] = {}
    for start in range(0, len(ids), 2000):
        chunk = ids[start : start + 2000]
        rows = session.execute(
            select(
                Prediction.id,
                Prediction.wafer_id,
                Prediction.uncertainty,
                Prediction.embedding,
                Prediction.embedding_dim,
            ).where(Prediction.wafer_id.in_(chunk), Prediction.model_sha256 == sha)
        ).all()
        for r in rows:
            emb = unpack_array(r.embedding, (r.embedding_dim,), "float32") if r.embedding is not None else None
            out[r.wafer_id] = Scored(r.wafer_id, r.id, dict(r.uncertainty or {}), emb)
    missing = [i for i in ids if i not in out]
    step = ctx.settings.max_batch
    for start in range(0, len(missing), step):
        wafers = list(session.scalars(select(Wafer).where(Wafer.id.in_(missing[start : start + step]))))
        for s in ctx.predictor.predict(session, wafers, user.id, "al_query"):
            out[s.wafer.id] = Scored(s.wafer.id, s.prediction.id, dict(s.result.uncertainty), s.result.embedding)
    if missing:
        log.info("active-learning query predicted %d wafers that had no prediction by the active model", len(missing))
    return out


def _add_tta(session: Session, ctx: ServerContext, model: Any, pool: list[Scored]) -> None:
    seg = ctx.predictor.segmenter(model)
    wafers = {w.id: w for w in session.scalars(select(Wafer).where(Wafer.id.in_([s.wafer_id for s in pool])))}
    maps = [to_wafer_map(wafers[s.wafer_id]) for s in pool]
    for s, extra in zip(pool, tta_scores(seg, maps), strict=True):
        s.scores.update(extra)


def run_query(session: Session, ctx: ServerContext, user: User, req: QueryRequest) -> tuple[ALRound, list[QueueItem]]:
    if req.strategy not in STRATEGIES:
        raise UnprocessableError(f"body field strategy: {req.strategy!r} is not one of {', '.join(STRATEGIES)}")
    if not 1 <= req.batch_size <= ctx.settings.al_max_batch:
        raise UnprocessableError(f"body field batch_size: {req.batch_size} is outside 1..{ctx.settings.al_max_batch}")
    model = ctx.predictor.require_model(session)
    sha = model.sha256
    cand = candidate_ids(session, req, ctx.settings.al_max_candidates)
    if not cand:
        raise ConflictError(
            "no unlabelled wafers match (wafers with failing dies, not annotated, not queued"
            + ("" if req.include_skipped else ", not skipped before")
            + ")",
            code="no_candidates",
        )
    needs_embeddings = req.strategy in ("diversity", "hybrid")
    known = labelled_ids(session, ctx.settings.al_max_candidates) if needs_embeddings else []
    scores = scored(session, ctx, user, cand + known, sha)
    pool = [scores[i] for i in cand]
    if req.tta:
        _add_tta(session, ctx, model, pool)
    key = req.score_key
    lacking = [s.wafer_id for s in pool if key not in s.scores]
    if lacking:
        have = sorted(set.intersection(*(set(s.scores) for s in pool)))
        raise UnprocessableError(
            f"body field score: {key!r} is not a score of every candidate (wafer {lacking[0]} lacks it); "
            f"available: {', '.join(have)}" + ("" if req.tta else " (tta: true adds tta_mutual_info)"),
            code="invalid_input",
        )
    u = np.array([s.scores[key] for s in pool], dtype=np.float64)
    if key in LOW_IS_UNCERTAIN:  # a small margin is an unsure model: rank by 1 - margin
        u = 1.0 - u
    emb = lab = None
    if needs_embeddings:
        if any(s.embedding is None for s in pool):
            raise UnprocessableError(
                f"strategy {req.strategy!r} needs embeddings; the active model {model.version} gives none",
                code="no_embeddings",
            )
        emb = np.stack([s.embedding for s in pool])
        lab_list = [scores[i].embedding for i in known if scores[i].embedding is not None]
        lab = np.stack(lab_list) if lab_list else None
    picked = select_batch(req.strategy, req.batch_size, u, emb, lab, seed=req.seed, pool_factor=req.pool_factor)
    return _create_round(session, user, model, req, pool, picked.indices, len(cand))


def _create_round(
    session: Session, user: User, model: Any, req: QueryRequest, pool: list[Scored], picks: list[int], n_cand: int
) -> tuple[ALRound, list[QueueItem]]:
    begin_write(session, lock_key=AL_LOCK_KEY)
    wafer_ids = [pool[i].wafer_id for i in picks]
    taken = set(
        session.scalars(
            select(QueueItem.wafer_id).where(QueueItem.wafer_id.in_(wafer_ids), QueueItem.state.in_(OPEN_STATES))
        )
    )
    number = (session.scalar(select(func.max(ALRound.number))) or 0) + 1
    card = model.card or {}
    rnd = ALRound(
        number=number,
        strategy=req.strategy,
        params=req.params(),
        model_id=model.id,
        model_version=model.version,
        model_sha256=model.sha256,
        metrics=card.get("metrics") or None,
        n_candidates=n_cand,
        created_by=user.id,
    )
    session.add(rnd)
    session.flush()
    items = []
    for i in picks:
        s = pool[i]
        if s.wafer_id in taken:
            continue
        value = s.scores.get(req.score_key)
        items.append(
            QueueItem(
                round_id=rnd.id,
                wafer_id=s.wafer_id,
                prediction_id=s.prediction_id,
                rank=len(items) + 1,
                score=None if value is None or not np.isfinite(value) else float(value),
                scores={k: float(v) for k, v in s.scores.items()},
                state="queued",
            )
        )
    session.add_all(items)
    session.flush()
    audit.record(
        session,
        user.id,
        "query",
        "al_round",
        rnd.id,
        None,
        {"number": number, "strategy": req.strategy, "items": len(items), "candidates": n_cand},
    )
    session.commit()
    return rnd, items
