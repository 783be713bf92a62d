"""Prediction: stored wafers -> the active model's masks, verdicts, uncertainty, embeddings.

Inference itself is :class:`waferdesk.core.inference.Segmenter` (the one engine the app and
the CLI use too); this module decides where each result comes from, in this order:

1. the cache (Redis or in-process LRU), keyed by wafer content hash + model sha256;
2. the database (a stored prediction of the same wafer by the same model);
3. the model (``predict_many``: wafers of equal canvas size run as one batch).

Every result is stored (one row per wafer and model), logged in ``inference_log`` (the source
of ``/stats``) and counted in the Prometheus metrics. The served model is the registry's
active one; when another model is promoted the next request loads it.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, load_only

from waferdesk.core.errors import ModelError
from waferdesk.core.inference import Segmenter
from waferdesk.core.inference.prediction import rle

from ..core.config import Settings
from ..core.errors import ServiceUnavailableError
from ..core.logging import request_id_var
from ..db.models import InferenceLog, Prediction, RegisteredModel, Wafer
from ..db.types import pack_array, unpack_array
from .cache import ResultCache, cache_key
from .metrics import Metrics
from .registry import active_model
from .wafers import to_wafer_map

log = logging.getLogger(__name__)

CACHE_FORMAT = 1


@dataclass
class Result:
    """One wafer's prediction as the server keeps it (from the model, the cache or a row)."""

    shape: tuple[int, int]
    mask: np.ndarray  # uint8 (H, W), IGNORE = no class
    counts: dict[str, int]
    verdict: str
    uncertainty: dict[str, float]
    embedding: np.ndarray | None  # float32 (E,)
    model_version: str
    model_sha256: str
    provider: str
    latency_ms: float

    @classmethod
    def from_engine(cls, pred: Any) -> Result:
        """From a :class:`waferdesk.core.inference.Prediction`."""
        return cls(
            shape=tuple(pred.mask.shape),
            mask=np.array(pred.mask.labels, dtype=np.uint8),
            counts={k: int(v) for k, v in pred.summary.counts.items()},
            verdict=str(pred.summary.verdict),
            uncertainty={k: float(v) for k, v in pred.uncertainty.items()},
            embedding=np.asarray(pred.embedding, dtype=np.float32).ravel(),
            model_version=pred.model_version,
            model_sha256=pred.model_sha256,
            provider=pred.provider,
            latency_ms=float(pred.latency_ms),
        )

    @classmethod
    def from_row(cls, row: Prediction, wafer: Wafer) -> Result:
        shape = (wafer.rows, wafer.cols)
        emb = None
        if row.embedding is not None and row.embedding_dim:
            emb = unpack_array(row.embedding, (row.embedding_dim,), "float32")
        return cls(
            shape=shape,
            mask=unpack_array(row.mask, shape, "uint8"),
            counts=dict(row.counts),
            verdict=row.verdict,
            uncertainty=dict(row.uncertainty or {}),
            embedding=emb,
            model_version=row.model_version,
            model_sha256=row.model_sha256,
            provider=row.provider,
            latency_ms=row.latency_ms,
        )

    def to_row(self, wafer_id: int, model_id: int | None, user_id: int | None) -> Prediction:
        return Prediction(
            wafer_id=wafer_id,
            model_id=model_id,
            model_version=self.model_version,
            model_sha256=self.model_sha256,
            mask=pack_array(self.mask, "uint8"),
            counts=self.counts,
            verdict=self.verdict,
            uncertainty=self.uncertainty,
            embedding=pack_array(self.embedding, "float32") if self.embedding is not None else None,
            embedding_dim=int(self.embedding.size) if self.embedding is not None else None,
            provider=self.provider,
            latency_ms=self.latency_ms,
            created_by=user_id,
        )


def encode_result(r: Result) -> bytes:
    """Cache value: JSON with the arrays as base64 of their zlib-packed bytes."""
    data = {
        "v": CACHE_FORMAT,
        "shape": list(r.shape),
        "mask": base64.b64encode(pack_array(r.mask, "uint8")).decode(),
        "counts": r.counts,
        "verdict": r.verdict,
        "uncertainty": r.uncertainty,
        "embedding": base64.b64encode(pack_array(r.embedding, "float32")).decode() if r.embedding is not None else None,
        "embedding_dim": int(r.embedding.size) if r.embedding is not None else None,
        "model_version": r.model_version,
        "model_sha256": r.model_sha256,
        "provider": r.provider,
        "latency_ms": r.latency_ms,
    }
    return json.dumps(data, separators=(",", ":")).encode()


def decode_result(blob: bytes) -> Result | None:
    """A cached value back; ``None`` for anything unreadable (then it is simply a miss)."""
    try:
        d = json.loads(blob)
        if d.get("v") != CACHE_FORMAT:
            return None
        shape = (int(d["shape"][0]), int(d["shape"][1]))
        emb = None
        if d.get("embedding") is not None:
            emb = unpack_array(base64.b64decode(d["embedding"]), (int(d["embedding_dim"]),), "float32")
        return Result(
            shape=shape,
            mask=unpack_array(base64.b64decode(d["mask"]), shape, "uint8"),
            counts={str(k): int(v) for k, v in d["counts"].items()},
            verdict=str(d["verdict"]),
            uncertainty={str(k): float(v) for k, v in d["uncertainty"].items()},
            embedding=emb,
            model_version=str(d["model_version"]),
            model_sha256=str(d["model_sha256"]),
            provider=str(d["provider"]),
            latency_ms=float(d["latency_ms"]),
        )
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        log.warning("unreadable cache entry ignored (%s)", exc)
        return None


@dataclass
class Served:
    """What a prediction request returns for one wafer."""

    wafer: Wafer
    prediction: Prediction
    result: Result
    source: str  # model | cache | db
    served_ms: float | None

    @property
    def cached(self) -> bool:
        return self.source != "model"


class PredictionService:
    def __init__(self, settings: Settings, cache: ResultCache, metrics: Metrics) -> None:
        self.settings = settings
        self.cache = cache
        self.metrics = metrics
        self._segmenter: Segmenter | None = None
        self._segmenter_sha: str | None = None
        self._load_lock = threading.Lock()

    # -- the engine ----------------------------------------------------------------------------
    def segmenter(self, model: RegisteredModel) -> Segmenter:
        """The engine for ``model``, loaded once and replaced when another model becomes active."""
        with self._load_lock:
            if self._segmenter is None or self._segmenter_sha != model.sha256:
                try:
                    seg = Segmenter(model.artifact_path, providers=self.settings.onnx_providers, cache=False)
                except ModelError as exc:
                    raise ServiceUnavailableError(
                        f"the active model {model.version} cannot be loaded: {exc}", code="model_unavailable"
                    ) from None
                log.info("serving model %s (%s) on %s", model.version, model.sha256[:12], seg.provider)
                self._segmenter, self._segmenter_sha = seg, model.sha256
            return self._segmenter

    def model_health(self, session: Session) -> dict[str, Any]:
        model = active_model(session)
        if model is None:
            return {"ok": False, "detail": "no active model registered"}
        out: dict[str, Any] = {"ok": True, "id": model.id, "version": model.version, "sha256": model.sha256}
        if self._segmenter is not None and self._segmenter_sha == model.sha256:
            out["loaded"] = True
            out["provider"] = self._segmenter.provider
        else:
            out["loaded"] = False
        return out

    def require_model(self, session: Session) -> RegisteredModel:
        model = active_model(session)
        if model is None:
            raise ServiceUnavailableError(
                "no active model: register one (the shipped default model, WAFERDESK_MODEL_PATH, or a trained one)",
                code="no_active_model",
            )
        return model

    # -- serving -------------------------------------------------------------------------------
    def predict(self, session: Session, wafers: list[Wafer], user_id: int | None, endpoint: str) -> list[Served]:
        """Predictions of ``wafers`` (in order) by the active model; stores, logs, commits.

        Each wafer's logged latency is its share of every phase it went through (cache lookup,
        database lookup, model run, storing), so cache hits show as the fast answers they are.
        """
        model = self.require_model(session)
        results: dict[int, tuple[Result, str]] = {}
        keys = {w.id: cache_key(self.settings.cache_prefix, w.content_hash, model.sha256) for w in wafers}
        unique = list({w.id: w for w in wafers}.values())
        # 1. cache
        t0 = time.perf_counter()
        for w in unique:
            blob = self.cache.get(keys[w.id])
            hit = decode_result(blob) if blob is not None else None
            if hit is not None and hit.shape == (w.rows, w.cols):
                results[w.id] = (hit, "cache")
            self.metrics.cache_lookups.labels(result="hit" if w.id in results else "miss").inc()
        cost = dict.fromkeys((w.id for w in unique), (time.perf_counter() - t0) / len(unique) if unique else 0.0)
        # 2. stored rows: the results of cache misses, the row ids of cache hits
        t0 = time.perf_counter()
        rows = self._stored_rows(session, unique, set(results), model.sha256)
        missing = [w for w in unique if w.id not in results]
        for w in missing:
            if w.id in rows:
                r = Result.from_row(rows[w.id], w)
                results[w.id] = (r, "db")
                self.cache.set(keys[w.id], encode_result(r))
        share = (time.perf_counter() - t0) / len(unique) if unique else 0.0
        for w in unique:
            cost[w.id] += share
        # 3. the model
        to_run = [w for w in unique if w.id not in results]
        if to_run:
            seg = self.segmenter(model)
            t0 = time.perf_counter()
            maps = [to_wafer_map(w) for w in to_run]
            for w, pred in zip(to_run, seg.predict_many(maps), strict=True):
                r = Result.from_engine(pred)
                if r.model_sha256 != model.sha256:  # the engine must be the active model
                    raise ServiceUnavailableError(
                        "the served model changed during the request; retry", code="model_changed"
                    )
                results[w.id] = (r, "model")
                self.metrics.inference_seconds.observe(r.latency_ms / 1000.0)
                self.cache.set(keys[w.id], encode_result(r))
            share = (time.perf_counter() - t0) / len(to_run)
            for w in to_run:
                cost[w.id] += share
        # 4. store + log
        t0 = time.perf_counter()
        rows.update(self._store_new(session, [w for w in unique if w.id not in rows], results, model, user_id))
        share = (time.perf_counter() - t0) / len(unique) if unique else 0.0
        request_id = request_id_var.get()
        out: list[Served] = []
        for w in wafers:
            r, source = results[w.id]
            ms = (cost[w.id] + share) * 1000.0
            session.add(
                InferenceLog(
                    request_id=request_id,
                    endpoint=endpoint,
                    user_id=user_id,
                    wafer_id=w.id,
                    prediction_id=rows[w.id].id,
                    model_sha256=model.sha256,
                    source=source,
                    cache_hit=source == "cache",
                    latency_ms=ms,
                )
            )
            self.metrics.predictions.labels(source=source).inc()
            out.append(Served(w, rows[w.id], r, source, ms))
        session.commit()
        return out

    @staticmethod
    def _stored_rows(
        session: Session, wafers: list[Wafer], cached: set[int], model_sha256: str
    ) -> dict[int, Prediction]:
        """Stored predictions of these wafers by this model (only the row ids for cache hits)."""
        rows: dict[int, Prediction] = {}
        hits = [w.id for w in wafers if w.id in cached]
        misses = [w.id for w in wafers if w.id not in cached]
        for ids, light in ((hits, True), (misses, False)):
            if not ids:
                continue
            q = select(Prediction).where(Prediction.wafer_id.in_(ids), Prediction.model_sha256 == model_sha256)
            if light:
                q = q.options(load_only(Prediction.id, Prediction.wafer_id, Prediction.model_id, Prediction.created_at))
            rows.update({p.wafer_id: p for p in session.scalars(q)})
        return rows

    @staticmethod
    def _store_new(
        session: Session,
        wafers: list[Wafer],
        results: dict[int, tuple[Result, str]],
        model: RegisteredModel,
        user_id: int | None,
    ) -> dict[int, Prediction]:
        """Insert the predictions not stored yet: in one go, or one by one if a concurrent
        request stored some of them meanwhile (then its row is used)."""
        if not wafers:
            return {}
        new = {w.id: results[w.id][0].to_row(w.id, model.id, user_id) for w in wafers}
        try:
            with session.begin_nested():
                session.add_all(new.values())
                session.flush()
            return new
        except IntegrityError:
            pass
        out: dict[int, Prediction] = {}
        for w in wafers:
            row = results[w.id][0].to_row(w.id, model.id, user_id)
            try:
                with session.begin_nested():
                    session.add(row)
                    session.flush()
            except IntegrityError:
                row = session.scalar(
                    select(Prediction).where(Prediction.wafer_id == w.id, Prediction.model_sha256 == model.sha256)
                )
                if row is None:
                    raise
            out[w.id] = row
        return out


def mask_payload(mask: np.ndarray, fmt: str) -> Any:
    """The mask as the client asked: ``lists`` (rows of ints), ``rle`` (the core's run-length form) or ``none``."""
    if fmt == "none":
        return None
    if fmt == "rle":
        return {"rle": rle(mask), "order": "C"}
    return mask.tolist()
