"""The main window's model commands: the inference thread's news (ready, unavailable,
results, progress) and the Run model actions with their progress dialog.

A mixin of :class:`~waferdesk.app.mainwindow.MainWindow` (see :mod:`.window_files`).
"""

from __future__ import annotations

import logging

from PySide6.QtWidgets import QProgressDialog

from .model.predictions import ModelResult

log = logging.getLogger(__name__)

PROVIDER_NAMES = {
    "CUDAExecutionProvider": "GPU (CUDA)",
    "TensorrtExecutionProvider": "GPU (TensorRT)",
    "DmlExecutionProvider": "GPU (DirectML)",
    "ROCMExecutionProvider": "GPU (ROCm)",
    "CoreMLExecutionProvider": "Apple (CoreML)",
    "CPUExecutionProvider": "CPU",
}


class ModelCommands:
    # -- model -------------------------------------------------------------------------------
    def _model_ready(self, info: dict) -> None:
        provider = PROVIDER_NAMES.get(info["provider"], info["provider"])
        self.model_label.setObjectName("")
        self.model_label.setStyleSheet("")  # re-styled: no warning colour left from "No model available"
        for key in ("run_current", "run_all"):  # a model that arrived later (model sync) can be run
            self.actions[key].setEnabled(True)
        views = f" · {info['views']} views" if info.get("views", 1) > 1 else ""
        self.model_label.setText(f"Model {info['model_version']} · {provider}{views}")
        tip = f"execution provider in use: {info['provider']}"
        if info.get("provider_note"):
            tip += f"\n{info['provider_note']}"
        if info.get("views", 1) > 1:
            tip += f"\ntest-time augmentation: each wafer runs in {info['views']} rotated views, averaged"
        if info.get("card_views", 1) > 1 and info.get("views", 1) == 1:
            tip += f"\none view per wafer (Model > Fast); the model card asks for {info['card_views']}"
        self.model_label.setToolTip(tip)
        self.actions["one_view"].setEnabled(info.get("card_views", 1) > 1)
        self.model_info = info
        e = self.doc.current
        stale = e is not None and e.prediction is not None and e.prediction.provider != "server"
        # Run model asked for while the model was loading, still on that wafer: run it now
        asked, self._run_current_queued = self._run_current_queued, None
        if e is not None and asked == e.key:
            self.run_current()
        elif e is not None and (e.prediction is None or (stale and e.prediction.views != info.get("views", 1))):
            self.engine.request(e.key, e.wafer)  # the wafer on screen follows a change of views
        queued, self._run_all_queued = self._run_all_queued, False
        # Run all asked for while the model was loading, or Run automatically. Not over a folder
        # job already running: ``ready`` reaches the engine's ``available`` and this handler as
        # separate events, so a job may have started in between (its remaining wafers run in
        # the new views anyway); replacing it would only re-queue them.
        running = self.progress is not None
        if queued or (self.actions["auto_run"].isChecked() and not running):
            self.run_all(quiet=not queued)

    def preferred_views(self) -> int | None:
        """1 when the user asked for speed (Model > Fast), else None: the model card decides."""
        return 1 if self.actions["one_view"].isChecked() else None

    def set_one_view(self, on: bool) -> None:
        """Model > Fast: the next wafers run in one view (or the card's number again)."""
        self.settings.setValue("model/one_view", bool(on))
        self.engine.set_views(self.preferred_views())

    def _model_unavailable(self, why: str) -> None:
        self.model_label.setObjectName("modelWarn")
        self.model_label.setStyleSheet("color: #f0a848;")
        self.model_label.setText("No model available — viewing and labelling still work")
        self.model_label.setToolTip(why)
        for key in ("run_current", "run_all", "accept"):
            self.actions[key].setEnabled(False)
        if self._run_all_queued or self._run_current_queued:
            what = "Run all" if self._run_all_queued else "Run model"
            self._run_all_queued, self._run_current_queued = False, None
            self.statusBar().showMessage(f"{what}: no model available", 8000)
        log.warning("no model: %s", why)

    def _model_result(self, key: str, result: ModelResult, _job: int) -> None:
        e = self.ws.get(key)
        if e is None:
            return
        if e.prediction is not None:
            self.prob_cache.forget(e.prediction)
        e.prediction = result
        if e is self.doc.current:
            self.prob_cache.touch(result)
            if self.view.mode != "labels":
                self.view.refresh()
            self.update_panels()
        else:
            self.prob_cache.touch(result)
        self.browser.refresh_entry(e)

    def run_current(self) -> None:
        e = self.doc.current
        if e is not None and self.engine.available is None:  # still loading: run once it is ready
            self._run_current_queued = e.key
            self.statusBar().showMessage("the model is still loading: Run model starts as soon as it is ready", 8000)
            return
        if e is not None and self.engine.available:
            self.engine.request(e.key, e.wafer)
            self.statusBar().showMessage("running the model…", 3000)

    def run_all(self, quiet: bool = False) -> int:
        """Run the model on every open wafer without a prediction (a folder job with progress)."""
        todo = [(e.key, e.wafer) for e in self.ws.entries if e.prediction is None]
        if self.engine.available is None and not quiet:  # still loading: run once it is ready
            self._run_all_queued = True
            self.statusBar().showMessage("the model is still loading: Run all starts as soon as it is ready", 8000)
            return 0
        if not todo or not self.engine.available:
            if not todo and not quiet:
                self.statusBar().showMessage("every open wafer already has a prediction", 5000)
            return 0
        if self.progress is not None:
            self.progress.hide()
            self.progress = None
        # A folder job still running (Run automatically, another file opened, Run all again) is
        # replaced by this one, which holds its remaining wafers: submit_bulk cancels it, and that
        # is no cancel the user asked for, so its end is not reported ("cancelled after 0 wafers").
        self._progress_job = 0
        job = self.engine.submit_bulk(todo)
        self.progress = QProgressDialog(f"Running the model on {len(todo)} wafers…", "Cancel", 0, len(todo), self)
        self.progress.setWindowTitle("Model")
        self.progress.setModal(False)
        self.progress.setMinimumDuration(0)
        self.progress.setValue(0)
        self.progress.canceled.connect(self.engine.cancel_bulk)
        self._progress_job = job
        self.progress.show()
        return job

    def _job_progress(self, job: int, done: int, total: int) -> None:
        if self.progress is not None and job == self._progress_job:
            self.progress.setMaximum(total)
            self.progress.setValue(done)

    def _job_finished(self, job: int, done: int, cancelled: bool) -> None:
        if job != self._progress_job:
            return
        if self.progress is not None:
            self.progress.reset()
            self.progress.hide()
            self.progress = None
        what = "cancelled after" if cancelled else "finished:"
        self.statusBar().showMessage(f"model run {what} {done} wafers", 8000)
