"""``/stats``: what the prediction service has done and what it found, from the database.

Request counts, latency percentiles and the cache hit rate come from ``inference_log`` (one
row per wafer served), so they hold across restarts and across worker processes. Per-class
totals and the verdict distribution are over the stored predictions of the active model (one
per wafer), i.e. what the current model says about every wafer it has seen.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from waferdesk.core.results import Verdict
from waferdesk.core.taxonomy import default_taxonomy

from ..db.models import InferenceLog, Prediction, Wafer
from .registry import active_model

LATENCY_WINDOW = 10_000  # percentiles over the most recent wafers served
PERCENTILES = (50, 90, 95, 99)


def _latency(session: Session) -> dict[str, Any]:
    recent = session.scalars(
        select(InferenceLog.latency_ms).order_by(InferenceLog.id.desc()).limit(LATENCY_WINDOW)
    ).all()
    if not recent:
        return {"window": 0, "mean_ms": None, **{f"p{p}_ms": None for p in PERCENTILES}}
    arr = np.asarray(recent, dtype=np.float64)
    pct = np.percentile(arr, PERCENTILES)
    return {
        "window": len(recent),
        "mean_ms": round(float(arr.mean()), 3),
        **{f"p{p}_ms": round(float(v), 3) for p, v in zip(PERCENTILES, pct, strict=True)},
    }


def prediction_stats(session: Session) -> dict[str, Any]:
    tax = default_taxonomy()
    by_source = dict(session.execute(select(InferenceLog.source, func.count()).group_by(InferenceLog.source)).all())
    served = int(sum(by_source.values()))
    requests = int(session.scalar(select(func.count(func.distinct(InferenceLog.request_id)))) or 0)
    by_endpoint = dict(
        session.execute(
            select(InferenceLog.endpoint, func.count(func.distinct(InferenceLog.request_id))).group_by(
                InferenceLog.endpoint
            )
        ).all()
    )
    hits = int(by_source.get("cache", 0))

    model = active_model(session)
    scope = select(Prediction)
    if model is not None:
        scope = scope.where(Prediction.model_sha256 == model.sha256)
    scope_sub = scope.subquery()
    verdicts = dict(session.execute(select(scope_sub.c.verdict, func.count()).group_by(scope_sub.c.verdict)).all())
    totals = dict.fromkeys(tax.names, 0)
    for counts in session.scalars(select(scope_sub.c.counts)).yield_per(2000):
        for name, n in (counts or {}).items():
            if name in totals:
                totals[name] += int(n)
    with_class: Counter[str] = Counter()
    for text, n in verdicts.items():
        for name in Verdict.parse(text).classes:
            with_class[name] += int(n)
    predicted = int(sum(verdicts.values()))
    return {
        "requests": {"total": requests, "by_endpoint": {k: int(v) for k, v in sorted(by_endpoint.items())}},
        "wafers_served": {
            "total": served,
            "by_source": {k: int(by_source.get(k, 0)) for k in ("model", "cache", "db")},
        },
        "latency": _latency(session),
        "cache": {
            "lookups": served,
            "hits": hits,
            "hit_rate": round(hits / served, 4) if served else None,
        },
        "model": None if model is None else {"id": model.id, "version": model.version, "sha256": model.sha256},
        "wafers": {
            "stored": int(session.scalar(select(func.count()).select_from(Wafer)) or 0),
            "predicted": predicted,
        },
        "per_class_fail_dies": totals,
        "verdicts": {k: int(v) for k, v in sorted(verdicts.items(), key=lambda kv: (-kv[1], kv[0]))},
        "wafers_with_class": {name: int(with_class.get(name, 0)) for name in tax.names},
    }
