"""The segmenter: an ONNX model + its card, run on batches of wafers of any size.

Wafers are encoded with the one shared encoding (:mod:`waferdesk.core.encoding`), so the
network sees exactly what it was trained on. A wafer's canvas (its size rounded up to a
multiple of 32, see :func:`~waferdesk.core.encoding.canvas_for`) decides its batch: wafers
sharing a canvas run together and every wafer is always encoded on its own canvas, so a
prediction never depends on which other wafers happened to share its batch.

With ``views`` > 1 (test-time augmentation, :mod:`.views`) each batch also runs on the dihedral
views of its grids (views that share a canvas in one run) and the per-die logits, rotated
back, are averaged before the softmax; the
model card's ``inference.views`` is the default, so what a user runs is what the card measured.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..encoding import CHANNELS, canvas_for, decode, encode_batch
from ..errors import ModelError
from ..modelcard import INPUT_NAME, OUTPUT_EMBEDDING, OUTPUT_SCORES, default_model_path, load_model_card
from ..results import VerdictPolicy, WaferSummary, verdict_from_counts
from ..taxonomy import Taxonomy, default_taxonomy
from ..wafer import FAIL, LabelMask, WaferMap
from .cache import PredictionCache
from .prediction import Prediction, model_key, postprocess_group
from .providers import SessionFactory, make_session, short_name
from .views import VIEW_SETS, check_views, dihedral, dihedral_inverse

ProgressFn = Callable[[int, int | None], None]
"""``on_progress(done, total)``: wafers returned so far, and the total when the input has a length."""

BATCH_PIXELS = 32 * 128 * 128
"""Largest batch in canvas pixels: 32 wafers at 128x128, 8 at 256x256 (memory stays bounded);
with several views, the views of a wafer count as that many wafers."""


def _onnx_dtype(type_str: str) -> type[np.floating]:
    if type_str == "tensor(float16)":
        return np.float16
    if type_str == "tensor(float)":
        return np.float32
    raise ModelError(f"model input has type {type_str}; expected float or float16")


class Segmenter:
    """Per-die defect classes, probabilities, verdict, uncertainty and embedding of wafers.

    ``model_path`` None means the shipped default model. ``providers``: ``"auto"`` (TensorRT,
    CUDA, DirectML, CPU: the first that really starts), ``"cpu"``, ``"cuda"``... or explicit
    provider names; :attr:`provider` and :attr:`provider_note` say what runs and why.
    ``cache``: True for a private in-memory cache, a :class:`PredictionCache` to share one,
    False for none. ``views``: dihedral views averaged per wafer (1, 2, 4 or 8; None: the
    card's ``inference.views``). Thread-safe: ``predict`` may be called from several threads.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        providers: str | Sequence[str] = "auto",
        threads: int | None = None,
        cache: PredictionCache | bool = True,
        verify_sha: bool = True,
        taxonomy: Taxonomy | None = None,
        policy: VerdictPolicy | None = None,
        warmup: bool = True,
        available_providers: Sequence[str] | None = None,
        session_factory: SessionFactory | None = None,
        views: int | None = None,
    ) -> None:
        if model_path is None:
            path = default_model_path()
            if not path.is_file():
                raise ModelError(
                    f"{path}: the default model is not installed; pass a model file (e.g. --model M.onnx "
                    "with its M.card.json beside it), or train and export one with the 'ml' extra and "
                    "place it there"
                )
        else:
            path = Path(model_path)
        self.model_path = path
        self.card = load_model_card(path, verify=verify_sha)
        self.model_version = self.card.version
        self.model_sha256 = self.card.sha256
        if views is None:
            try:
                views = check_views(self.card.default_views, "inference.views")
            except ValueError as exc:
                raise ModelError(f"{path}: its card's {exc}") from None
        self.views = check_views(views)
        self.model_key = model_key(self.model_sha256, self.views)
        self.taxonomy = taxonomy or default_taxonomy()
        self.policy = policy or VerdictPolicy.default(self.taxonomy)
        self.session, info = make_session(
            path, providers, threads, available=available_providers, factory=session_factory
        )
        self.session_info = info
        self.provider = info.provider
        self.provider_note = info.note
        self.threads = info.threads
        self._check_io()
        if cache is True:
            self.cache: PredictionCache | None = PredictionCache()
        elif cache is False or cache is None:
            self.cache = None
        else:
            self.cache = cache
        self.runs = 0  # session runs so far (tests and stats)
        self._lock = threading.Lock()
        if warmup:
            self.warmup()

    def with_views(self, views: int) -> Segmenter:
        """This engine averaging ``views`` views instead, sharing its ONNX session and cache.

        For callers that need single-view answers from a model whose card asks for several:
        the server's test-time-augmentation disagreement compares the 8 symmetries one by one,
        which a 4-rotation average would make identical (it is exactly rotation-invariant).
        Costs no second session (ONNX Runtime sessions are thread-safe); the cache is keyed by
        :attr:`model_key`, so the two engines never read each other's answers."""
        views = check_views(views)
        if views == self.views:
            return self
        other = copy.copy(self)
        other.views = views
        other.model_key = model_key(self.model_sha256, views)
        other._lock = threading.Lock()
        return other

    def describe(self) -> dict[str, Any]:
        """What runs, for logs, health endpoints and "about" boxes (JSON-able)."""
        return {
            "model_path": str(self.model_path),
            "model_version": self.model_version,
            "model_sha256": self.model_sha256,
            "precision": self.card.onnx.get("precision", "fp32"),
            "provider": short_name(self.provider),
            "provider_note": self.provider_note,
            "providers": list(self.session_info.providers),
            "threads": self.threads,
            "views": self.views,
            "classes": list(self.card.classes),
        }

    def __repr__(self) -> str:
        views = f", {self.views} views" if self.views > 1 else ""
        return f"Segmenter({self.model_version!r} on {short_name(self.provider)}, {self.threads} threads{views})"

    # -- model I/O ------------------------------------------------------------------------
    def _check_io(self) -> None:
        inputs = self.session.get_inputs()
        outputs = {o.name for o in self.session.get_outputs()}
        where = str(self.model_path)
        if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
            raise ModelError(f"{where}: expected one input named {INPUT_NAME!r}, got {[i.name for i in inputs]}")
        shape = inputs[0].shape
        if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != len(CHANNELS)):
            raise ModelError(f"{where}: input shape {shape}; expected (N, {len(CHANNELS)}, H, W)")
        missing = {OUTPUT_SCORES, OUTPUT_EMBEDDING} - outputs
        if missing:
            raise ModelError(f"{where}: missing output(s) {sorted(missing)}; has {sorted(outputs)}")
        self.input_dtype = _onnx_dtype(inputs[0].type)

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw network: encoded (N, C, H, W) -> logits (N, K, H, W) and embedding (N, E), float32."""
        out = self.session.run([OUTPUT_SCORES, OUTPUT_EMBEDDING], {INPUT_NAME: x.astype(self.input_dtype, copy=False)})
        with self._lock:
            self.runs += 1
        logits, emb = out
        k = len(self.taxonomy)
        if logits.ndim != 4 or logits.shape[1] != k:
            raise ModelError(f"{self.model_path}: logits shape {logits.shape}; expected (N, {k}, H, W)")
        return np.asarray(logits, dtype=np.float32), np.asarray(emb, dtype=np.float32).reshape(len(x), -1)

    def warmup(self, sizes: Sequence[int] = (64,)) -> None:
        """One run per canvas size so the first real wafer does not pay for initialisation."""
        for s in sizes:
            self.run(np.zeros((1, len(CHANNELS), s, s), dtype=np.float32))

    # -- prediction -----------------------------------------------------------------------
    def _die_logits(
        self, wafers: Sequence[WaferMap], groups: dict[tuple[int, int], list[int]]
    ) -> tuple[dict[tuple[int, int], np.ndarray], np.ndarray]:
        """Per-die logits (n, K, rows, cols) of each group of equal-shape wafers, averaged
        over the views, and the embeddings (N, E) averaged the same way.

        Views that share a canvas (all four rotations of a square one) run as one batch:
        measured 1.28x faster than one run per view for a single wafer on 2 CPU cores."""
        k, n_wafers = len(self.taxonomy), len(wafers)
        by_canvas: dict[tuple[int, ...], list[tuple[int, np.ndarray, list]]] = {}
        for view in VIEW_SETS[self.views]:
            x, places = encode_batch([dihedral(w.dies, view) for w in wafers])
            by_canvas.setdefault(x.shape[2:], []).append((view, x, places))
        acc: dict[tuple[int, int], np.ndarray] = {}
        embs: list[np.ndarray] = []
        for items in by_canvas.values():
            stacked = items[0][1] if len(items) == 1 else np.concatenate([x for _, x, _ in items])
            all_logits, all_emb = self.run(stacked)
            for j, (view, _, places) in enumerate(items):
                logits = all_logits[j * n_wafers : (j + 1) * n_wafers]
                embs.append(all_emb[j * n_wafers : (j + 1) * n_wafers])
                for shape, idx in groups.items():
                    place = places[idx[0]]  # equal shapes on one canvas: one placement
                    n = len(idx)
                    z = decode(logits[np.asarray(idx)].reshape(n * k, *logits.shape[2:]), place)
                    z = dihedral_inverse(z.reshape(n, k, *place.shape), view)
                    if shape in acc:
                        acc[shape] += z
                    else:  # own C-contiguous float32 copy: summed into, then overwritten by the softmax
                        acc[shape] = np.array(z, dtype=np.float32, order="C")
        if self.views == 1:
            return acc, embs[0]
        for total in acc.values():
            np.multiply(total, 1.0 / self.views, out=total)
        return acc, np.mean(embs, axis=0)

    def _postprocess(self, wafers: Sequence[WaferMap], z: np.ndarray, emb: np.ndarray) -> list[Prediction]:
        """Predictions of wafers that share one grid shape from their per-die logits, vectorised."""
        fail = np.stack([w.dies == FAIL for w in wafers])
        out = postprocess_group(z, fail)
        names = self.taxonomy.names
        preds = []
        for i, w in enumerate(wafers):
            counts = out.counts[i]
            summary = WaferSummary(
                counts={name: int(counts[j]) for j, name in enumerate(names)},
                n_fail=int(fail[i].sum()),
                n_dies=w.n_dies,
                verdict=verdict_from_counts(counts, w.n_dies, self.policy, self.taxonomy),
            )  # = results.summarize(w, mask), from counts already at hand
            preds.append(
                Prediction(
                    mask=LabelMask(out.labels[i].copy()),
                    probs=out.probs[i].copy(),
                    summary=summary,
                    uncertainty=out.uncertainty[i],
                    embedding=np.array(emb[i], dtype=np.float32),
                    model_version=self.model_version,
                    model_sha256=self.model_sha256,
                    provider=short_name(self.provider),
                    latency_ms=0.0,
                    wafer_hash=w.content_hash(),
                    views=self.views,
                )
            )
        return preds

    def predict_batch(self, wafers: Sequence[WaferMap]) -> list[Prediction]:
        """Predict wafers that share one canvas: one run per canvas their views need (no cache)."""
        if not wafers:
            return []
        canvases = {canvas_for(w.shape) for w in wafers}
        if len(canvases) != 1:
            raise ValueError(f"predict_batch needs wafers of one canvas size, got {sorted(canvases)}")
        t0 = time.perf_counter()
        groups: dict[tuple[int, int], list[int]] = {}
        for i, w in enumerate(wafers):
            groups.setdefault(w.shape, []).append(i)
        logits, emb = self._die_logits(wafers, groups)
        preds: list[Prediction | None] = [None] * len(wafers)
        for shape, idx in groups.items():
            group = [wafers[i] for i in idx]
            for i, p in zip(idx, self._postprocess(group, logits[shape], emb[np.asarray(idx)]), strict=True):
                preds[i] = p
        ms = (time.perf_counter() - t0) * 1000.0 / len(wafers)
        return [_with_latency(p, ms) for p in preds if p is not None]

    def predict(self, wafer: WaferMap) -> Prediction:
        """One wafer (answered from the cache when this model already saw this die grid)."""
        grid = wafer.grid_hash()
        if self.cache is not None:
            hit = self.cache.get(wafer, self.model_key, grid)
            if hit is not None:
                return hit
        pred = self.predict_batch([wafer])[0]
        if self.cache is not None:
            self.cache.put(grid, pred)
        return pred

    def predict_many(
        self,
        wafers: Iterable[WaferMap],
        batch_size: int = 32,
        on_progress: ProgressFn | None = None,
        max_pending: int | None = None,
    ) -> Iterator[Prediction]:
        """Stream predictions in input order, running wafers of equal canvas size together.

        Wafers wait in one bucket per canvas size; a bucket runs when it holds ``batch_size``
        wafers (fewer for big canvases, see :data:`BATCH_PIXELS`), or when more than
        ``max_pending`` wafers wait (then the bucket holding the oldest waiting wafer runs,
        so results keep flowing in order and memory stays bounded). Identical grids in the
        stream or in the cache are predicted once.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        limit = max_pending or max(4 * batch_size, 64)
        total = len(wafers) if isinstance(wafers, Sized) else None
        done: dict[int, Prediction] = {}
        buckets: dict[tuple[int, int], list[tuple[int, WaferMap, str]]] = {}
        bucket_of: dict[int, tuple[int, int]] = {}  # waiting input index -> its bucket
        repeats: dict[str, list[tuple[int, WaferMap]]] = {}  # grid waiting in a bucket -> later copies
        order: deque[int] = deque()  # input indices not yet yielded, ascending
        n_out = 0

        def cap(canvas: tuple[int, int]) -> int:
            return max(1, min(batch_size, BATCH_PIXELS // (canvas[0] * canvas[1] * self.views)))

        def flush(canvas: tuple[int, int]) -> None:
            items = buckets.pop(canvas)
            preds = self.predict_batch([w for _, w, _ in items])
            for (i, _, grid), p in zip(items, preds, strict=True):
                if self.cache is not None:
                    self.cache.put(grid, p)
                done[i] = p
                del bucket_of[i]
                for j, w in repeats.pop(grid, []):
                    done[j] = replace(p, wafer_hash=w.content_hash(), cached=True)
                    del bucket_of[j]

        def ready() -> Iterator[Prediction]:
            nonlocal n_out
            while order and order[0] in done:
                n_out += 1
                if on_progress:
                    on_progress(n_out, total)
                yield done.pop(order.popleft())

        for i, wafer in enumerate(wafers):
            order.append(i)
            grid = wafer.grid_hash()
            if grid in repeats:  # the same grid already waits in a bucket: predict it once
                repeats[grid].append((i, wafer))
                bucket_of[i] = canvas_for(wafer.shape)
                continue
            hit = self.cache.get(wafer, self.model_key, grid) if self.cache is not None else None
            if hit is not None:
                done[i] = hit
            else:
                canvas = canvas_for(wafer.shape)
                bucket = buckets.setdefault(canvas, [])
                bucket.append((i, wafer, grid))
                bucket_of[i] = canvas
                repeats[grid] = []
                if len(bucket) >= cap(canvas):
                    flush(canvas)
                while len(bucket_of) > limit:  # the oldest waiting wafer's bucket goes now
                    flush(bucket_of[order[0]])
                    yield from ready()
            yield from ready()
        while order:
            flush(bucket_of[order[0]])
            yield from ready()


def _with_latency(p: Prediction, ms: float) -> Prediction:
    return replace(p, latency_ms=ms)
