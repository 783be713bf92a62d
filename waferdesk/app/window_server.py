"""The main window's server commands: sign in / out, role-shaped UI, queue mode, review mode,
the outbox counter and model sync.

A mixin of :class:`~waferdesk.app.mainwindow.MainWindow` (see :mod:`.window_files`). The
server work itself lives in :mod:`.queue_mode`, :mod:`.review` and the Qt-free
``waferdesk.client`` modules (session, outbox, credentials, model sync).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QLabel, QToolBar

from ..client.api import ServerClient, ServerError
from ..client.credentials import TokenStore
from ..client.modelsync import DOWNLOADED, ModelSyncError, sync_active_model
from ..client.outbox import DISCARDED, Outbox
from ..client.server_session import ServerSession
from ..client.work import LocalSession
from ..core.errors import WaferDeskError
from ..core.modelcard import card_path_for, default_model_path, load_card
from . import theme
from .net import NetRunner
from .queue_mode import QueueController
from .review import ReviewController, ReviewPanel
from .signin import SignInDialog
from .workers import InferenceEngine

log = logging.getLogger(__name__)

EDIT_ACTIONS = ("brush", "eraser", "polygon", "fill", "accept", "clear_labels")
QUEUE_ACTIONS = ("claim_next", "submit", "skip")
DELETED_LISTED = 5  # the outbox counter's tooltip names the latest few submissions deleted on the server


class ServerCommands:
    # -- construction (called from MainWindow.__init__) --------------------------------------
    def _server_init(self, outbox_path: Path | None, token_store: TokenStore | None) -> None:
        self.outbox_path = outbox_path
        self.token_store = token_store or TokenStore()
        self.outbox: Outbox | None = None
        self.queue: QueueController | None = None
        self.review: ReviewController | None = None
        self.model_net = NetRunner("wd-model", self)
        self.resume_net = NetRunner("wd-resume", self)  # start-up sign-in with the kept token
        self._resuming: object | None = None  # the resume in flight (a sign-in meanwhile wins)
        self.model_info: dict = {}
        self.signin_dialog: SignInDialog | None = None
        # the queue bar: shown in queue mode, above the map
        self.queue_bar = QToolBar("Queue", self)
        self.queue_bar.setObjectName("queue")
        self.queue_bar.setMovable(False)
        for key in QUEUE_ACTIONS:
            self.queue_bar.addAction(self.actions[key])
        self.actions["claim_next"].setIconText("Claim next")
        self.actions["submit"].setIconText("Submit ⏎")
        self.actions["skip"].setIconText("Skip…")
        self.queue_text = QLabel("")
        self.queue_text.setContentsMargins(12, 0, 0, 0)
        self.queue_bar.addWidget(self.queue_text)
        self.addToolBarBreak()
        self.addToolBar(self.queue_bar)
        self.queue_bar.hide()
        # the review list: a dock beside the wafer browser
        self.review_panel = ReviewPanel()
        self.review_dock = QDockWidget("Review", self)
        self.review_dock.setObjectName("review")
        self.review_dock.setWidget(self.review_panel)
        self.review_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.review_dock)
        self.review_dock.hide()
        self.server_label = QLabel("local files")
        self.outbox_label = QLabel("")
        self.statusBar().insertPermanentWidget(0, self.outbox_label)
        self.statusBar().insertPermanentWidget(0, self.server_label)
        self.apply_capabilities()

    def _server_handlers(self) -> dict:
        return {
            "sign_in": self.sign_in_dialog,
            "sign_out": self.sign_out,
            "claim_next": lambda: self.queue is not None and self.queue.claim_next(),
            "submit": lambda: self.queue is not None and self.queue.submit_current(),
            "skip": lambda: self.queue is not None and self.queue.skip_current(),
            "review": self.show_review,
            "sync_now": lambda: self.queue is not None and self.queue.sync_now(),
            "retry_failed": lambda: self.queue is not None and self.queue.retry_failed(),
            "sync_model": self.sync_model,
        }

    # -- signing in -------------------------------------------------------------------------------
    def sign_in_dialog(self) -> SignInDialog:
        url = str(self.settings.value("server/url", ""))
        user = str(self.settings.value("server/user", ""))
        dlg = SignInDialog(url, user, self)
        dlg.accepted.connect(
            lambda: dlg.client is not None and self.connect_server(dlg.client, dlg.remember.isChecked())
        )
        self.signin_dialog = dlg
        dlg.open()
        return dlg

    def connect_server(
        self, api: ServerClient, remember: bool = True, sync_model: bool = True, me: dict | None = None
    ) -> ServerSession:
        """Use this signed-in client: role-shaped UI, queue or review, outbox, model sync."""
        self._resuming = None  # this sign-in wins over a start-up resume still in flight
        self.sign_out(forget=False)
        session = ServerSession(api, me)
        self.settings.setValue("server/url", api.base_url)
        self.settings.setValue("server/user", session.username)
        if remember and api.refresh_token:
            store = self.token_store
            store.save(api.base_url, session.username, api.refresh_token)
            api.tokens.on_refresh = lambda tok: store.save(api.base_url, session.username, tok)
        self.session = session
        self.outbox = Outbox(self.outbox_path)
        if session.capabilities.sees_queue:
            self.queue = QueueController(self, session, self.outbox)
            self.queue.changed.connect(self._queue_changed)
        if session.capabilities.sees_review:
            self.review = ReviewController(self, session, self.review_panel)
        self.apply_capabilities()
        self.update_outbox_label()
        if self.queue is not None:
            self.queue.sync_now()  # anything left from an offline session
        if sync_model:
            self.sync_model()
        if self.token_store.notice:  # after the model check's message, so it stays readable
            self.statusBar().showMessage(self.token_store.notice, 15000)
            self.server_label.setToolTip(self.token_store.notice)
        log.info("signed in: %s", session.description)
        return session

    def resume_server(self, url: str, username: str) -> bool:
        """Sign in again with the kept refresh token (start-up), in a worker thread: the window
        stays responsive while the server is contacted. False when there is no kept token."""
        token = self.token_store.load(url, username)
        if not token:
            return False
        attempt = self._resuming = object()

        def resume() -> tuple[ServerClient, dict]:
            api = ServerClient.resume(url, token, timeout=15.0)
            try:
                return api, api.me()
            except BaseException:
                api.close()
                raise

        def resumed(got: tuple[ServerClient, dict]) -> None:
            api, me = got
            if self._resuming is not attempt:  # signed in otherwise meanwhile, or the window closed
                api.close()
                return
            self.statusBar().clearMessage()
            self.connect_server(api, me=me)

        def failed(exc: BaseException) -> None:
            if self._resuming is not attempt:
                return
            self._resuming = None
            self.apply_capabilities()
            self.statusBar().showMessage(f"not signed in to {url}: {exc}", 10000)
            log.warning("resuming %s as %s: %s", url, username, exc)

        self.statusBar().showMessage(f"connecting to {url} as {username}…")
        self.server_label.setText(f"connecting to {url}…")
        self.resume_net.run(resume, resumed, failed)
        return True

    def resume_last_session(self) -> bool:
        """At start-up: sign in again to the last server with its kept token, if there is one
        (in the background; True when a resume was started)."""
        url, user = str(self.settings.value("server/url", "")), str(self.settings.value("server/user", ""))
        return self.resume_server(url, user) if url and user else False

    def sign_out(self, forget: bool = True) -> None:
        if isinstance(self.session, ServerSession) and forget:
            self.token_store.delete(self.session.server, self.session.username)
            with contextlib.suppress(ServerError), self.session.api.clone(timeout=3.0) as api:
                api.logout()  # the kept refresh token is dead on the server too
        if self.queue is not None:
            self.queue.close()
            self.queue = None
        if self.review is not None:
            self.review.close()
            self.review = None
        if self.outbox is not None:
            self.outbox.close()
            self.outbox = None
        self.session = LocalSession()
        self.apply_capabilities()

    def apply_capabilities(self) -> None:
        """Role shapes the UI: viewers cannot edit, annotators get the queue, engineers review."""
        caps = self.session.capabilities
        e = self.doc.current
        self.doc.editable = caps.can_edit and not (e is not None and e.read_only)
        for key in EDIT_ACTIONS:
            self.actions[key].setEnabled(caps.can_edit)
        if not caps.can_edit and self.view.tool is not None and self.view.tool.name != "navigate":
            self.set_tool("navigate")
        for key in QUEUE_ACTIONS:
            self.actions[key].setEnabled(caps.sees_queue)
        self.actions["review"].setEnabled(caps.sees_review)
        signed_in = isinstance(self.session, ServerSession)
        for key in ("sign_out", "sync_now", "retry_failed", "sync_model"):
            self.actions[key].setEnabled(signed_in)
        self.queue_bar.setVisible(caps.sees_queue)
        if not caps.sees_review:
            self.review_dock.hide()
        self.server_label.setText(self.session.description if signed_in else "local files")
        self.server_label.setToolTip("the server and your role" if signed_in else "not signed in (Server > Sign in)")
        self._queue_changed()

    # -- queue and review ---------------------------------------------------------------------------
    def _queue_changed(self) -> None:
        self.queue_text.setText(self.queue.status_text() if self.queue is not None else "")

    def update_outbox_label(self) -> None:
        if self.outbox is None or not isinstance(self.session, ServerSession):
            self.outbox_label.setText("")
            return
        c = self.outbox.counts(self.session.server)
        # a discarded entry is counted only when the user did not choose it: its annotation was
        # deleted on the server, so the submission is not there and is never sent again
        deleted = [e for e in self.outbox.entries(DISCARDED, self.session.server) if e.deleted_on_server]
        text = f"outbox: {c['pending']} pending · {c['synced']} synced"
        if c["failed"]:
            text += f" · {c['failed']} failed"
        if c["conflict"]:
            text += f" · {c['conflict']} conflict"
        if deleted:
            text += f" · {len(deleted)} deleted on server"
        self.outbox_label.setText(text)
        # red: something to do (retry, settle); amber: nothing to do, but it was not sent
        colour = "#e06c6c" if c["failed"] or c["conflict"] else theme.WARN if deleted else ""
        self.outbox_label.setStyleSheet(f"color: {colour};" if colour else "")
        tip = "submissions wait in the local outbox until the server has them (sent every few seconds)"
        if deleted:
            tip += "\nnot sent, the annotation was deleted on the server since:"
            tip += "".join(f"\n{e.title}: {e.message}" for e in deleted[-DELETED_LISTED:])
            if len(deleted) > DELETED_LISTED:
                tip += f"\n(and {len(deleted) - DELETED_LISTED} earlier)"
        self.outbox_label.setToolTip(tip)

    def show_review(self) -> None:
        if self.review is None:
            self.statusBar().showMessage("review is for engineers and admins signed in to a server", 5000)
            return
        self.tabifyDockWidget(self._dock_pair[0], self.review_dock)
        self.review_dock.show()
        self.review_dock.raise_()
        self.resizeDocks([self.review_dock, self._dock_pair[1]], [475, 320], Qt.Orientation.Horizontal)
        self.review.refresh()

    # -- model sync ------------------------------------------------------------------------------
    def sync_model(self) -> None:
        if not isinstance(self.session, ServerSession):
            return
        api = self.session.api.clone()
        local = str(self.model_info.get("sha256") or "") or self._local_model_sha()
        self.statusBar().showMessage("checking the server's model…", 3000)
        self.model_net.run(lambda: sync_active_model(api, local), self._model_synced, self._model_sync_failed)

    def _local_model_sha(self) -> str | None:
        """The sha256 on the card of the model the engine uses (before the engine has loaded it)."""
        try:
            path = self.engine.model_path or default_model_path()
            return load_card(card_path_for(path)).sha256
        except (WaferDeskError, OSError):
            return None

    def _model_synced(self, result) -> None:
        self.statusBar().showMessage(result.message(), 8000)
        self.last_model_sync = result
        if result.status == DOWNLOADED and result.path is not None:
            self.switch_model(str(result.path))

    def _model_sync_failed(self, exc: BaseException) -> None:
        self.last_model_sync = exc
        msg = str(exc) if isinstance(exc, ModelSyncError | ServerError) else f"model sync failed: {exc}"
        self.statusBar().showMessage(msg, 15000)
        log.warning("model sync: %s", msg)

    def switch_model(self, path: str) -> None:
        """Local inference continues with another model file (a new engine thread)."""
        old = self.engine
        for signal, slot in (
            (old.ready, self._model_ready),
            (old.unavailable, self._model_unavailable),
            (old.result, self._model_result),
            (old.progress, self._job_progress),
            (old.job_finished, self._job_finished),
        ):
            with contextlib.suppress(RuntimeError, TypeError):
                signal.disconnect(slot)
        self._engine_pending = False
        old.stop()
        self.model_label.setText("Model: loading…")
        self.engine = InferenceEngine(path, "auto", self.segmenter_factory, self, views=self.preferred_views())
        self._wire_engine()
        for e in self.ws.entries:
            if e.prediction is not None and e.prediction.provider != "server":
                self.prob_cache.forget(e.prediction)
                e.prediction = None
        # the old model's mask and verdicts leave the screen with its results
        e = self.doc.current
        if self.view.mode != "labels" and (e is None or e.prediction is None):
            self.view.set_mode("labels")
        self.browser.model.all_changed()
        self.update_panels()
        self.engine.start()
        old.deleteLater()
