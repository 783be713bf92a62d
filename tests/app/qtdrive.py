"""Drive the wafer view with real mouse events at die positions (offscreen Qt)."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication


def _send(view, kind: QEvent.Type, row: float, col: float, button, buttons) -> None:
    local = QPointF(view.widget_pos_of(row, col))
    glob = QPointF(view.viewport().mapToGlobal(local.toPoint()))
    ev = QMouseEvent(kind, local, glob, button, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(view.viewport(), ev)


def die_centre(row: int, col: int) -> tuple[float, float]:
    return (row + 0.5, col + 0.5)


def drag(view, points: list[tuple[float, float]], button=Qt.MouseButton.LeftButton) -> None:
    """Press at the first (row, col), move through the others, release at the last."""
    none = Qt.MouseButton.NoButton
    _send(view, QEvent.Type.MouseButtonPress, *points[0], button, button)
    for p in points[1:]:
        _send(view, QEvent.Type.MouseMove, *p, none, button)
    _send(view, QEvent.Type.MouseButtonRelease, *points[-1], button, none)
    QApplication.processEvents()


def click(view, row: float, col: float, double: bool = False) -> None:
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    _send(view, QEvent.Type.MouseButtonPress, row, col, left, left)
    _send(view, QEvent.Type.MouseButtonRelease, row, col, left, none)
    if double:
        _send(view, QEvent.Type.MouseButtonDblClick, row, col, left, left)
        _send(view, QEvent.Type.MouseButtonRelease, row, col, left, none)
    QApplication.processEvents()


def hover(view, row: float, col: float) -> None:
    _send(view, QEvent.Type.MouseMove, row, col, Qt.MouseButton.NoButton, Qt.MouseButton.NoButton)
    QApplication.processEvents()


__all__ = ["click", "die_centre", "drag", "hover"]
