"""The dialog of a 409: the server's annotation changed since mine was based on it.

Both versions side by side (who, when, status, failing dies per class, the classes that
differ highlighted) and two choices: *Keep mine* (send mine again, re-based on the server's
current version) or *Take theirs* (drop mine; the wafer shows theirs). Nothing is overwritten
without this choice."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from ..core.taxonomy import default_taxonomy
from . import theme

KEEP_MINE, TAKE_THEIRS = "keep mine", "take theirs"


def _when(value: Any) -> str:
    if isinstance(value, int | float):
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))
    try:
        return datetime.fromisoformat(str(value)).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return str(value)


class ConflictDialog(QDialog):
    def __init__(
        self, title: str, theirs: dict[str, Any], mine_counts: dict[str, int], mine_when: float, me: str, parent=None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Conflict: {title}")
        self.choice: str | None = None
        self.head = head = QLabel(
            f"<b>{title}</b>: the server's annotation changed after yours was based on it.<br>"
            f"<b>Theirs</b>: version {theirs.get('version')}, {theirs.get('status')}, "
            f"by {theirs.get('annotator') or '?'}, {_when(theirs.get('updated_at'))}<br>"
            f"<b>Mine</b>: by {me}, {_when(mine_when)} (not sent)"
        )
        head.setWordWrap(True)
        classes = default_taxonomy().names
        their_counts = {k: int(v) for k, v in (theirs.get("counts") or {}).items()}
        self.table = QTableWidget(len(classes) + 1, 3)
        self.table.setHorizontalHeaderLabels(["class", "theirs (dies)", "mine (dies)"])
        self.table.verticalHeader().setVisible(False)
        for row, name in enumerate([*classes, "total"]):
            a = sum(their_counts.values()) if name == "total" else their_counts.get(name, 0)
            b = sum(mine_counts.values()) if name == "total" else mine_counts.get(name, 0)
            for col, text in enumerate((name, str(a), str(b))):
                item = QTableWidgetItem(text)
                if a != b and name != "total":
                    item.setForeground(QColor(theme.WARN))
                self.table.setItem(row, col, item)
        self.table.resizeColumnsToContents()
        buttons = QDialogButtonBox()
        self.keep = QPushButton("Keep mine (send it on top of theirs)")
        self.take = QPushButton("Take theirs (drop mine)")
        buttons.addButton(self.keep, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(self.take, QDialogButtonBox.ButtonRole.RejectRole)
        self.keep.clicked.connect(lambda: self._choose(KEEP_MINE))
        self.take.clicked.connect(lambda: self._choose(TAKE_THEIRS))
        lay = QVBoxLayout(self)
        lay.addWidget(head)
        lay.addWidget(self.table)
        lay.addWidget(buttons)
        self.resize(520, 420)

    def _choose(self, choice: str) -> None:
        self.choice = choice
        self.accept()


__all__ = ["KEEP_MINE", "TAKE_THEIRS", "ConflictDialog"]
