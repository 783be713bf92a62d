"""The editing state shared by tools, views and panels: the current wafer, its undo stack,
the active class, and a signal whenever labels change.

Each wafer has its own QUndoStack (inside one QUndoGroup, so Edit > Undo always means the
wafer on screen); stacks live as long as the wafer is open and are emptied only by the user
(Edit > Clear undo history). Nothing here draws.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoGroup, QUndoStack

from ..core.annotation import Change, replace_all
from .commands import LabelCommand
from .model.workspace import WaferEntry


class LabelDocument(QObject):
    labels_changed = Signal(object, object)  # entry, Change (None = everything)
    current_changed = Signal(object)  # entry or None
    active_class_changed = Signal(int)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.group = QUndoGroup(self)
        self._stacks: dict[str, QUndoStack] = {}
        self.current: WaferEntry | None = None
        self.active_class = 0
        self.editable = True

    # -- current wafer ----------------------------------------------------------------------
    def set_current(self, entry: WaferEntry | None) -> None:
        if entry is self.current:
            return
        self.current = entry
        self.group.setActiveStack(self.stack(entry) if entry is not None else None)
        self.current_changed.emit(entry)

    def stack(self, entry: WaferEntry) -> QUndoStack:
        st = self._stacks.get(entry.key)
        if st is None:
            st = QUndoStack(self.group)
            st.setUndoLimit(0)  # unlimited
            self.group.addStack(st)
            self._stacks[entry.key] = st
        return st

    def has_stack(self, entry: WaferEntry) -> bool:
        return entry.key in self._stacks

    def set_active_class(self, index: int) -> None:
        self.active_class = int(index)
        self.active_class_changed.emit(self.active_class)

    # -- edits -----------------------------------------------------------------------------
    def notify(self, entry: WaferEntry, change: Change | None) -> None:
        self.labels_changed.emit(entry, change)

    def push(self, entry: WaferEntry, change: Change | None, text: str, applied: bool = False) -> bool:
        """Record ``change`` as one undo step (``applied``: the dies already hold the new values)."""
        if change is None or len(change) == 0:
            return False
        self.stack(entry).push(LabelCommand(self, entry, change, text, applied))
        return True

    def replace_labels(self, entry: WaferEntry, new_labels, text: str) -> bool:
        return self.push(entry, replace_all(entry.labels, new_labels), text)

    def clear_history(self, entry: WaferEntry | None = None) -> None:
        target = entry or self.current
        if target is not None and target.key in self._stacks:
            self._stacks[target.key].clear()
