"""Local inference off the GUI thread.

One worker thread owns the ONNX session (loading it takes a second or more, running it on a
300x300 map a few hundred ms on a CPU): the window never waits. Requests for the wafer on
screen jump ahead of a running folder job, which is processed in small chunks so it can be
cancelled and interleaved; a wafer of a folder job that the wafer on screen's request already
predicted (before the job or during it) is not predicted again: its result counts for the job.
Results are turned into :class:`ModelResult` in the thread too
(entropy maps included), so the GUI thread only stores them.

The model card says how many dihedral views each wafer runs in (4 for the shipped model:
more accurate, about 3x the time of one). :meth:`InferenceEngine.set_views` overrides that
for the next wafers (Model > Fast: one view per wafer); the thread swaps in an engine sharing
the same ONNX session and announces it with ``ready`` again.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import QThread, Signal

from ..core.wafer import WaferMap
from .model.predictions import ModelResult

CHUNK = 8


def default_segmenter_factory(model_path: str | None, providers: str) -> Any:
    """The product's engine; raises ImportError/WaferDeskError when unavailable."""
    from ..core.inference import Segmenter

    return Segmenter(model_path=model_path, providers=providers)


class InferenceEngine(QThread):
    ready = Signal(dict)  # provider, provider_note, model_version
    unavailable = Signal(str)  # why there is no model
    result = Signal(str, object, int)  # wafer key, ModelResult, job id (0 = single request)
    progress = Signal(int, int, int)  # job id, done, total
    job_finished = Signal(int, int, bool)  # job id, done, cancelled
    failed = Signal(str, str)  # wafer key (or ""), message

    def __init__(
        self,
        model_path: str | None = None,
        providers: str = "auto",
        factory: Callable[[str | None, str], Any] = default_segmenter_factory,
        parent=None,
        views: int | None = None,
    ) -> None:
        super().__init__(parent)
        self.model_path, self.providers, self.factory = model_path, providers, factory
        self.segmenter: Any = None
        self._loaded: Any = None  # the engine as the card made it (its views)
        self._views = views  # None: the card's
        self._views_applied: int | None = None
        self.available: bool | None = None  # None until loading finished
        self._cond = threading.Condition()
        self._priority: deque[tuple[str, WaferMap]] = deque()
        self._bulk: deque[tuple[str, WaferMap]] = deque()
        self._job = 0
        self._job_total = self._job_done = 0
        # the last wafer predicted as the on-screen request, and its result: a folder job
        # submitted before that result reached the window reuses it instead of predicting again
        self._last_priority: tuple[str, ModelResult] | None = None
        self._stop = False
        # ``available`` changes in the GUI thread, when the news arrives there (connected first,
        # so it is set before any other receiver of these signals runs)
        self.ready.connect(self._became_ready)
        self.unavailable.connect(self._became_unavailable)

    def _became_ready(self, _info: dict) -> None:
        self.available = True

    def _became_unavailable(self, _why: str) -> None:
        self.available = False

    # -- GUI-thread API ----------------------------------------------------------------------
    def request(self, key: str, wafer: WaferMap) -> None:
        """Predict one wafer as soon as possible (the one on screen). A request not started yet
        is for a wafer the user has since left: it is dropped, so skimming through a folder
        never queues every wafer passed ahead of the one landed on."""
        with self._cond:
            self._priority.clear()
            self._priority.append((key, wafer))
            self._cond.notify()

    def submit_bulk(self, items: Sequence[tuple[str, WaferMap]]) -> int:
        """Queue many wafers as one job; returns its id (a running job is replaced)."""
        if self._job_total and self._job_done < self._job_total:
            self.cancel_bulk()
        with self._cond:
            self._job += 1
            self._bulk = deque(items)
            self._job_total, self._job_done = len(items), 0
            self._cond.notify()
            return self._job

    def cancel_bulk(self) -> None:
        """Stop the folder job; the chunk in flight still delivers its results."""
        with self._cond:
            if self._job_total == 0 or self._job_done >= self._job_total:
                return
            self._bulk.clear()
            job, done = self._job, self._job_done
            self._job += 1  # progress of the chunk in flight is ignored
            self._job_total = self._job_done = 0
        self.job_finished.emit(job, done, True)

    def set_views(self, views: int | None) -> None:
        """Run the next wafers in ``views`` views (None: the model card's number)."""
        with self._cond:
            self._views = views
            self._cond.notify()

    def busy(self) -> bool:
        with self._cond:
            return bool(self._priority or self._bulk)

    def stop(self, timeout_ms: int = 10000) -> None:
        with self._cond:
            self._stop = True
            self._priority.clear()
            self._bulk.clear()
            self._cond.notify()
        self.wait(timeout_ms)

    # -- worker thread -----------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._loaded = self.segmenter = self.factory(self.model_path, self.providers)
            self._apply_views(self._views)
        except Exception as exc:  # any reason the model cannot run is shown, never fatal
            self.unavailable.emit(_why(exc))
            return
        while True:
            with self._cond:
                while not (self._stop or self._priority or self._bulk or self._views != self._views_applied):
                    self._cond.wait()
                if self._stop:
                    return
                views, change = self._views, self._views != self._views_applied
                reused: list[tuple[str, ModelResult]] = []
                if change:
                    batch, job = [], 0
                elif self._priority:
                    batch, job = [self._priority.popleft()], 0
                else:
                    n = min(CHUNK, len(self._bulk))
                    batch, job = [self._bulk.popleft() for _ in range(n)], self._job
                    last = self._last_priority
                    if last is not None and any(key == last[0] for key, _ in batch):
                        reused = [last]  # the wafer on screen, predicted just before this job
                        batch = [item for item in batch if item[0] != last[0]]
            if change:  # outside the lock, like a prediction: the GUI thread never waits for it
                self._apply_views(views)
            else:
                self._predict(batch, job, reused)

    def _apply_views(self, views: int | None) -> None:
        """Swap in the loaded engine at ``views`` views (None: its card's) and say so."""
        card_views = int(getattr(self._loaded, "views", 1) or 1)
        with_views = getattr(self._loaded, "with_views", None)
        self.segmenter = with_views(views) if views is not None and with_views is not None else self._loaded
        self._views_applied = views
        self._last_priority = None  # made with the other views
        self.ready.emit(
            {
                "provider": str(getattr(self.segmenter, "provider", "?")),
                "provider_note": str(getattr(self.segmenter, "provider_note", "") or ""),
                "model_version": str(getattr(self.segmenter, "model_version", "?")),
                "sha256": str(getattr(getattr(self.segmenter, "card", None), "sha256", "") or ""),
                "model_path": str(getattr(self.segmenter, "model_path", "") or ""),
                "views": int(getattr(self.segmenter, "views", 1) or 1),
                "card_views": card_views,
            }
        )

    def _predict(
        self, batch: list[tuple[str, WaferMap]], job: int, reused: Sequence[tuple[str, ModelResult]] = ()
    ) -> None:
        """Predict ``batch`` (``reused``: wafers of the job already predicted, sent again as they are)."""
        for key, result in reused:
            self.result.emit(key, result, job)
        wafers = [w for _, w in batch]
        try:
            preds = list(self.segmenter.predict_many(wafers, batch_size=len(wafers))) if wafers else []
        except Exception as exc:
            self.failed.emit(batch[0][0] if len(batch) == 1 else "", _why(exc))
            preds = [None] * len(batch)
        for (key, wafer), pred in zip(batch, preds, strict=True):
            if pred is not None:
                result = ModelResult.from_prediction(pred, wafer)
                self.result.emit(key, result, job)
                if not job:
                    self._last_priority = (key, result)
        if job:
            self._count_done(job, len(batch) + len(reused))
        elif batch and preds[0] is not None:
            # the wafer on screen is also waiting in the folder job: it is done, not predicted again
            key = batch[0][0]
            with self._cond:
                job = self._job if self._job_total and self._job_done < self._job_total else 0
                waiting = [item for item in self._bulk if item[0] == key]
                for item in waiting:
                    self._bulk.remove(item)
            if job and waiting:
                self._count_done(job, len(waiting))

    def _count_done(self, job: int, n: int) -> None:
        """``n`` more wafers of folder job ``job`` are done: progress, and the end of the job."""
        with self._cond:
            if job != self._job:
                return
            self._job_done += n
            done, total, left = self._job_done, self._job_total, len(self._bulk)
        self.progress.emit(job, done, total)
        if not left:
            self.job_finished.emit(job, done, done < total)


def _why(exc: BaseException) -> str:
    if isinstance(exc, ImportError):
        return f"the inference engine is not available in this installation ({exc})"
    return str(exc) or type(exc).__name__


__all__ = ["InferenceEngine"]
