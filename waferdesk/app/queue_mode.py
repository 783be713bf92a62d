"""Queue mode: claim a wafer, correct the model's pre-annotation, submit (Ctrl+Enter), and
the next wafer is already there.

While the annotator works on one wafer, a worker thread claims the next one (``exclude`` =
the items in hand) and fetches its grid and pre-annotation, so *Submit* shows it at once.
Submissions go to the :class:`~waferdesk.client.outbox.Outbox` first and a second thread
sends them whenever the server answers (every few seconds while any is pending); the browser's
status column and the status bar show pending / synced / failed / conflict. A conflict opens
:class:`~.conflict.ConflictDialog`; nothing is overwritten without the user's choice. A
discarded entry is either a conflict settled by *Take theirs* ("took theirs") or one whose
annotation was deleted on the server since an earlier attempt made it ("deleted", with the
outbox's message): never sent again, and said so.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QComboBox, QDialog, QDialogButtonBox, QLabel, QVBoxLayout

from ..client.api import ServerError, labels_from_payload
from ..client.outbox import CONFLICT, DISCARDED, FAILED, PENDING, SYNCED, Entry, Outbox
from ..client.server_session import QueueTask, ServerSession
from ..core.taxonomy import IGNORE
from ..core.wafer import FAIL, LabelMask
from .conflict import KEEP_MINE, ConflictDialog
from .model.predictions import from_mask
from .model.workspace import WaferEntry
from .net import NetRunner

log = logging.getLogger(__name__)

SYNC_INTERVAL_MS = 4000
# after Submit, background work (send, prefetch the one after) starts once the next wafer is
# drawn: JSON decoding in those threads holds the GIL and would slow the wafer's first paint
BACKGROUND_DELAY_MS = 250
NET_TIMEOUT_S = 20.0  # a hung network fails a background call (retried later) rather than holding it
MAX_HELD = 4  # items in hand at once (the server's ``exclude`` limit)
# how the browser shows a discarded outbox entry (WaferEntry.sync); other states are shown as they are
TOOK_THEIRS, DELETED = "took theirs", "deleted"


def shown_state(out: Entry) -> tuple[str, str]:
    """(WaferEntry.sync, WaferEntry.sync_note) of an outbox entry."""
    if out.state == DISCARDED:
        return (DELETED, out.message) if out.deleted_on_server else (TOOK_THEIRS, "")
    return out.state, out.message if out.state == FAILED else ""


SKIP_REASONS = (
    "map is unreadable or corrupt",
    "no failing dies worth labelling",
    "pattern is ambiguous: needs an engineer",
    "duplicate of another wafer",
)


class SkipDialog(QDialog):
    """Skip a wafer: pick or type the reason (the server keeps it)."""

    def __init__(self, title: str, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Skip {title}")
        self.reason = QComboBox()
        self.reason.setEditable(True)
        self.reason.addItems(SKIP_REASONS)
        self.reason.setCurrentText("")
        self.reason.lineEdit().setPlaceholderText("why is this wafer skipped?")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Skip")
        buttons.accepted.connect(lambda: self.text() and self.accept())
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel(f"Skip <b>{title}</b> and go to the next wafer. Reason:"))
        lay.addWidget(self.reason)
        lay.addWidget(buttons)
        self.resize(420, self.sizeHint().height())

    def text(self) -> str:
        return self.reason.currentText().strip()


class QueueController(QObject):
    changed = Signal()  # current / prefetch / outbox state (the queue bar's text)
    task_shown = Signal(object)  # WaferEntry on screen

    def __init__(self, window, session: ServerSession, outbox: Outbox, prefetch: bool = True) -> None:
        super().__init__(window)
        self.win, self.session, self.outbox = window, session, outbox
        self.prefetch_enabled = prefetch
        self.fetcher = NetRunner("wd-queue", self)
        self.sender = NetRunner("wd-outbox", self)
        self.fetch_api = session.api.clone(timeout=NET_TIMEOUT_S)
        self.send_api = session.api.clone(timeout=NET_TIMEOUT_S)
        self.tasks: dict[str, QueueTask] = {}  # workspace key -> its task
        self.entry_of_outbox: dict[str, WaferEntry] = {}  # outbox key -> the wafer it submits
        self.item_of_outbox: dict[str, int] = {}
        self.held: set[int] = set()  # claimed items in hand (on screen, prefetched, or submitted unsynced)
        self.current: QueueTask | None = None
        self.prefetched: QueueTask | None = None
        self.fetching = False
        self._want_show = False
        self.empty = False
        self.syncing = False
        self._sync_again = False
        self.conflict_dialog: ConflictDialog | None = None
        self.skip_dialog: SkipDialog | None = None
        self.last_error = ""
        self.sync_timer = QTimer(self, interval=SYNC_INTERVAL_MS)
        self.sync_timer.timeout.connect(self.sync_now)
        self.sync_timer.start()
        self.renew_timer = QTimer(self, interval=5 * 60 * 1000)
        self.renew_timer.timeout.connect(self._renew)
        self.renew_timer.start()

    # -- claiming and showing ---------------------------------------------------------------------
    def claim_next(self) -> None:
        """Show the next wafer: the prefetched one at once, else claim it now (in the background)."""
        if self.current is not None:
            entry = self.win.ws.get(self._key_of(self.current))
            if entry is not None and entry.remote == "in queue":
                self.win.browser.select(entry)  # finish (or skip) this one first
                return
        if self.prefetched is not None:
            task, self.prefetched = self.prefetched, None
            self._show(task)
            QTimer.singleShot(BACKGROUND_DELAY_MS, self._prefetch)
            return
        self._want_show = True
        if not self.fetching:
            self._fetch()
        self.win.statusBar().showMessage("claiming the next wafer…", 3000)

    def _key_of(self, task: QueueTask) -> str:
        return task.wafer.content_hash()

    def _fetch(self) -> None:
        if len(self.held) >= MAX_HELD:
            self.last_error = "waiting for the outbox to send earlier submissions"
            self.changed.emit()
            return
        exclude = sorted(self.held)
        self.fetching = True
        self.fetcher.run(
            lambda: self._prepared(self.session.fetch_task(self.fetch_api, exclude)), self._fetched, self._fetch_failed
        )
        self.changed.emit()

    def _prepared(self, task: QueueTask | None) -> QueueTask | None:
        """In the worker thread: the wafer entry as the browser will show it (content hash,
        labels, the pre-annotation's summary), so showing it costs only the drawing."""
        if task is not None:
            entry = WaferEntry(
                task.wafer,
                Path(f"{self.session.server}/wafers/{task.wafer_db_id}"),
                task.item_id,
                given=LabelMask(task.labels.copy()),
            )
            if task.prediction is not None:
                entry.prediction = from_mask(task.prediction, task.wafer, task.model_version)
            task.entry = entry
        return task

    def _prefetch(self) -> None:
        if self.prefetch_enabled and self.prefetched is None and not self.fetching and not self.empty:
            self._fetch()

    def _fetched(self, task: QueueTask | None) -> None:
        self.fetching = False
        self.last_error = ""
        if task is None:
            self.empty = True
            if self._want_show:
                self._want_show = False
                self.win.statusBar().showMessage("the queue is empty: nothing left to label", 8000)
            self.changed.emit()
            return
        self.empty = False
        self.held.add(task.item_id)
        if self._want_show:
            self._want_show = False
            self._show(task)
            self._prefetch()
        else:
            self.prefetched = task
        self.changed.emit()

    def _fetch_failed(self, exc: BaseException) -> None:
        self.fetching = False
        self.last_error = str(exc)
        if self._want_show:
            self._want_show = False
            self.win.statusBar().showMessage(f"could not claim a wafer: {exc}", 10000)
        self.changed.emit()

    def _show(self, task: QueueTask) -> WaferEntry:
        fresh = task.entry if task.entry is not None else self._prepared(task).entry
        entry = self.win.ws.add(fresh)
        if entry is not fresh and entry.remote == "":
            self.win.statusBar().showMessage(
                f"{entry.title} was already open from {entry.source.name}: its labels are kept "
                "(Accept prediction, A, takes the model's)",
                8000,
            )
        if entry.remote != "in queue":
            entry.remote, entry.sync, entry.sync_note = "in queue", "", ""
        if entry is not fresh and fresh.prediction is not None:
            entry.prediction = fresh.prediction
        self.tasks[entry.key] = task
        self.current = task
        task.opened_at = time.monotonic()
        if self.win.browser.model.row_of(entry) < 0:
            self.win.browser.model.append([entry])
        self.win.page.set_has_content(True)
        self.win.browser.select(entry)
        self.win.browser.refresh_entry(entry)
        self.task_shown.emit(entry)
        self.changed.emit()
        return entry

    # -- submit and skip ----------------------------------------------------------------------
    def current_entry(self) -> tuple[WaferEntry, QueueTask] | None:
        e = self.win.doc.current
        task = self.tasks.get(e.key) if e is not None else None
        if e is None or task is None or e.remote != "in queue":
            return None
        return e, task

    def submit_current(self) -> bool:
        """Ctrl+Enter: into the outbox, the next wafer on screen, the outbox sent in the background."""
        got = self.current_entry()
        if got is None:
            self.win.statusBar().showMessage("no queue wafer on screen: Claim next first", 5000)
            return False
        e, task = got
        missing = int(((e.wafer.dies == FAIL) & (e.labels == IGNORE)).sum())
        if missing:
            self.win.statusBar().showMessage(
                f"{missing} failing die{'s' if missing != 1 else ''} still without a class: "
                "every failing die needs one before submitting",
                8000,
            )
            return False
        self.win.autosaver.flush()
        if task.prediction is None:
            source = "manual"
        elif np.array_equal(e.labels, task.prediction):
            source = "accepted_prediction"
        else:
            source = "corrected_prediction"
        spent = max(0.0, time.monotonic() - task.opened_at) if task.opened_at else 0.0
        out = self.outbox.add(
            self.session.server,
            self.session.username,
            task.wafer_db_id,
            task.title,
            e.labels,
            source=source,
            prediction_id=task.prediction_id,
            time_spent_s=round(spent, 1),
            base_id=task.base_id,
            base_version=task.base_version,
        )
        self.entry_of_outbox[out.key] = e
        self.item_of_outbox[out.key] = task.item_id
        e.remote, e.sync, e.sync_note = "submitted", PENDING, ""
        self.win.browser.refresh_entry(e)
        self.current = None
        self.claim_next()
        QTimer.singleShot(BACKGROUND_DELAY_MS, self.sync_now)
        return True

    def skip_current(self, reason: str | None = None) -> bool:
        got = self.current_entry()
        if got is None:
            self.win.statusBar().showMessage("no queue wafer on screen", 5000)
            return False
        e, task = got
        if reason is None:
            self.skip_dialog = SkipDialog(e.title, self.win)
            self.skip_dialog.accepted.connect(lambda: self.skip_current(self.skip_dialog.text()))
            self.skip_dialog.open()
            return False
        e.remote = "skipped"
        self.win.browser.refresh_entry(e)
        self.current = None

        def done(_item) -> None:
            self.held.discard(task.item_id)
            self.win.statusBar().showMessage(f"skipped {e.title}: {reason}", 5000)
            self.changed.emit()

        def failed(exc: BaseException) -> None:
            e.remote = "in queue"
            self.win.browser.refresh_entry(e)
            self.win.statusBar().showMessage(f"skip not sent ({exc}); the wafer stays yours", 10000)

        self.sender.run(lambda: self.send_api.skip(task.item_id, reason), done, failed)
        self.claim_next()
        return True

    # -- the outbox ---------------------------------------------------------------------------
    def sync_now(self) -> None:
        if self.syncing:
            self._sync_again = True
            return
        if not self.outbox.counts(self.session.server)[PENDING]:
            self._after_sync()
            return
        self.syncing = True
        self.sender.run(lambda: self.outbox.sync(self.send_api, self.session.username), self._synced, self._sync_failed)

    def _synced(self, _counts) -> None:
        self.syncing = False
        self._after_sync()
        if self._sync_again:
            self._sync_again = False
            self.sync_now()

    def _sync_failed(self, exc: BaseException) -> None:
        self.syncing = False
        log.warning("outbox sync failed: %s", exc)
        self._after_sync()

    def _after_sync(self) -> None:
        for key, entry in list(self.entry_of_outbox.items()):
            out = self.outbox.get(key)
            if out is None:
                continue
            shown = shown_state(out)
            if shown != (entry.sync, entry.sync_note):
                entry.sync, entry.sync_note = shown
                self.win.browser.refresh_entry(entry)
            if out.state in (SYNCED, DISCARDED):  # failed / conflict: the claim stays in hand until settled
                self.held.discard(self.item_of_outbox.get(key, -1))
        self.win.update_outbox_label()
        self.changed.emit()
        self._ask_conflicts()

    def _ask_conflicts(self) -> None:
        if self.conflict_dialog is not None:
            return
        for out in self.outbox.entries(CONFLICT, self.session.server):
            if out.username != self.session.username or out.theirs is None:
                continue
            dlg = ConflictDialog(out.title, out.theirs, out.counts(), out.created, self.session.username, self.win)
            self.conflict_dialog = dlg
            dlg.finished.connect(lambda _r, key=out.key, d=dlg: self._settled(key, d.choice))
            dlg.open()
            return

    def _settled(self, key: str, choice: str | None) -> None:
        self.conflict_dialog = None
        out = self.outbox.get(key)
        if out is None or choice is None:
            return  # closed without a choice: asked again at the next sync
        entry = self.entry_of_outbox.get(key)
        if choice == KEEP_MINE:
            self.outbox.keep_mine(key)
            if entry is not None:
                entry.sync, entry.sync_note = PENDING, ""
            self.sync_now()
        else:
            self.outbox.take_theirs(key)
            if entry is not None and out.theirs is not None:
                theirs = labels_from_payload(out.theirs["labels"], entry.wafer.shape)
                self.win.doc.replace_labels(entry, theirs, "Take the server's version")
                entry.sync, entry.sync_note = TOOK_THEIRS, ""
                if entry is self.win.doc.current:
                    self.win.view.refresh()
            self._after_sync()
        if entry is not None:
            self.win.browser.refresh_entry(entry)

    def retry_failed(self) -> None:
        for out in self.outbox.entries(FAILED, self.session.server):
            self.outbox.retry(out.key)
        self.sync_now()

    # -- leases -------------------------------------------------------------------------------------
    def _renew(self) -> None:
        held = [t.item_id for t in (self.current, self.prefetched) if t is not None]
        if held:
            self.sender.run(lambda: [self.send_api.renew(i) for i in held], None, None)

    def status_text(self) -> str:
        parts = []
        if self.current is not None:
            parts.append(f"item {self.current.item_id}: {self.current.title}")
        if self.prefetched is not None:
            parts.append("next wafer ready")
        elif self.fetching:
            parts.append("fetching the next wafer…")
        elif self.empty:
            parts.append("queue empty")
        if self.last_error:
            parts.append(self.last_error)
        return " · ".join(parts) or "Claim next (Ctrl+Shift+N) to start"

    def close(self) -> None:
        """Stop the threads; give the prefetched (never shown) item back to the queue."""
        self.sync_timer.stop()
        self.renew_timer.stop()
        self.fetcher.close(wait=False)
        self.sender.close(wait=False)
        if self.prefetched is not None:
            with contextlib.suppress(ServerError), self.session.api.clone(timeout=3.0) as api:
                api.release(self.prefetched.item_id)  # else its lease runs out on its own


__all__ = ["QueueController", "SkipDialog"]
