"""Undo commands: one per stroke / polygon / fill / accept, holding only the dies it changed.

Brush strokes paint live while the mouse moves and are pushed when the stroke ends, so the
command's first ``redo`` (which QUndoStack calls on push) must not apply the change again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtGui import QUndoCommand

from ..core.annotation import Change

if TYPE_CHECKING:
    from .document import LabelDocument
    from .model.workspace import WaferEntry


class LabelCommand(QUndoCommand):
    def __init__(self, doc: LabelDocument, entry: WaferEntry, change: Change, text: str, applied: bool) -> None:
        super().__init__(text)
        self.doc, self.entry, self.change = doc, entry, change
        self._skip_redo = applied

    def redo(self) -> None:
        if self._skip_redo:
            self._skip_redo = False
            return
        self.change.apply(self.entry.labels)
        self.doc.notify(self.entry, self.change)

    def undo(self) -> None:
        self.change.revert(self.entry.labels)
        self.doc.notify(self.entry, self.change)
