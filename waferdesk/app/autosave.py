"""Autosave of label drafts: every finished stroke (each undo-stack step) is written to the
drafts database at once, and paint in progress within a fraction of a second, so killing
the app mid-work loses at most the last moment of a stroke still being drawn.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

from ..client.drafts import DRAFT, SAVED, DraftStore
from .document import LabelDocument
from .model.workspace import Status, WaferEntry

DEBOUNCE_MS = 250


class Autosaver(QObject):
    status_changed = Signal(object)  # entry whose annotation status changed
    save_failed = Signal(str)

    def __init__(self, store: DraftStore, doc: LabelDocument, parent=None) -> None:
        super().__init__(parent)
        self.store, self.doc = store, doc
        self._pending: dict[str, WaferEntry] = {}
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.flush)
        doc.labels_changed.connect(self._changed)
        doc.group.indexChanged.connect(lambda _i: self.flush())

    def _changed(self, entry: WaferEntry, _change) -> None:
        self._pending[entry.key] = entry
        self._timer.start()

    def flush(self) -> None:
        """Write every pending draft now."""
        self._timer.stop()
        pending, self._pending = self._pending, {}
        for entry in pending.values():
            self.save_entry(entry)

    def save_entry(self, entry: WaferEntry, status: str = DRAFT) -> None:
        before = entry.status
        try:
            if status == SAVED or entry.is_edited():
                self.store.save(entry.key, entry.labels, entry.title, str(entry.source), status)
                entry.status = Status.SAVED if status == SAVED else Status.DRAFT
            else:
                self.store.delete(entry.key)
                entry.status = Status.FROM_FILE if entry.given is not None else Status.UNLABELLED
        except Exception as exc:  # a full disk must not take the editor down
            self.save_failed.emit(f"autosave failed: {exc}")
            return
        if entry.status != before:
            self.status_changed.emit(entry)
