"""``/health``, ``/metrics`` (no token: probes and scrapers) and ``/stats`` (signed-in users)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from sqlalchemy import func, select, text

from ...core.permissions import Permission
from ...db.models import Prediction, User, Wafer
from ...services.registry import active_model
from ...services.stats import prediction_stats
from ..deps import CtxDep, SessionDep, require

router = APIRouter(tags=["system"])
PUBLIC = [Depends(require(Permission.PUBLIC))]


@router.get("/health", dependencies=PUBLIC)
def health(session: SessionDep, ctx: CtxDep) -> JSONResponse:
    """Database, model and cache. 200 while the database answers (``status`` says ``degraded``
    when the model or the cache is not right), 503 when it does not."""
    checks: dict[str, Any] = {}
    t0 = time.perf_counter()
    try:
        session.execute(text("SELECT 1"))
        checks["database"] = {
            "ok": True,
            "backend": ctx.engine.dialect.name,
            "latency_ms": round((time.perf_counter() - t0) * 1000.0, 2),
        }
        checks["model"] = ctx.predictor.model_health(session)
    except Exception as exc:
        checks["database"] = {"ok": False, "backend": ctx.engine.dialect.name, "detail": type(exc).__name__}
        checks["model"] = {"ok": False, "detail": "unknown: the database is unreachable"}
    c = ctx.cache.health()
    checks["cache"] = {"ok": c.ok, "backend": c.backend, "detail": c.detail}
    if c.entries is not None:
        checks["cache"]["entries"] = c.entries
    db_ok = checks["database"]["ok"]
    state = "ok" if all(v["ok"] for v in checks.values()) else ("degraded" if db_ok else "down")
    return JSONResponse({"status": state, "checks": checks}, status_code=200 if db_ok else 503)


@router.get("/metrics", dependencies=PUBLIC, response_class=Response)
def metrics(session: SessionDep, ctx: CtxDep) -> Response:
    """Prometheus text format."""
    m = ctx.metrics
    m.wafers_stored.set(session.scalar(select(func.count()).select_from(Wafer)) or 0)
    m.predictions_stored.set(session.scalar(select(func.count()).select_from(Prediction)) or 0)
    m.model_active.clear()
    model = active_model(session)
    if model is not None:
        m.model_active.labels(version=model.version, sha256=model.sha256).set(1)
    return Response(m.render(), media_type=m.content_type)


@router.get("/stats")
def stats(user: Annotated[User, Depends(require(Permission.STATS_READ))], session: SessionDep) -> dict[str, Any]:
    """Requests, latency percentiles, cache hit rate, per-class totals and verdicts."""
    return prediction_stats(session)
