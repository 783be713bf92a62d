"""The right-hand panel: classes, tool options and results, stacked in group boxes."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QGroupBox, QHBoxLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from ..core.annotation import BRUSH_SHAPES
from .palette import ClassPalette
from .results_panel import ResultsPanel
from .tools import MAX_BRUSH, ToolSettings

TOOL_HINTS = {
    "navigate": "Drag to pan · wheel to zoom · double-click to fit",
    "brush": "Paint failing dies with the active class",
    "eraser": "Remove labels from dies",
    "polygon": "Click vertices · double-click, Enter or first vertex closes · Esc cancels",
    "fill": "Click a failing die: its connected fail cluster takes the active class",
}


class ToolOptions(QWidget):
    changed = Signal()

    def __init__(self, settings: ToolSettings, parent=None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.size = QSpinBox()
        self.size.setRange(1, MAX_BRUSH)
        self.size.setValue(settings.brush_size)
        self.size.setToolTip("brush size in dies ([ and ])")
        self.size.valueChanged.connect(self._size)
        self.shape = QComboBox()
        self.shape.addItems(list(BRUSH_SHAPES))
        self.shape.setToolTip("brush shape (O)")
        self.shape.currentTextChanged.connect(self._shape)
        self.hint = QLabel(TOOL_HINTS["navigate"])
        self.hint.setObjectName("muted")
        self.hint.setWordWrap(True)
        row = QHBoxLayout()
        lab = QLabel("Brush size")
        lab.setObjectName("muted")
        unit = QLabel("dies")
        unit.setObjectName("muted")
        row.addWidget(lab)
        row.addWidget(self.size)
        row.addWidget(unit)
        row.addStretch(1)
        row.addWidget(self.shape)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(row)
        lay.addWidget(self.hint)

    def _size(self, value: int) -> None:
        self.settings.brush_size = int(value)
        self.changed.emit()

    def _shape(self, text: str) -> None:
        self.settings.brush_shape = text
        self.changed.emit()

    def grow(self, step: int) -> None:
        self.size.setValue(max(1, min(MAX_BRUSH, self.settings.brush_size + step)))

    def toggle_shape(self) -> None:
        i = BRUSH_SHAPES.index(self.settings.brush_shape)
        self.shape.setCurrentText(BRUSH_SHAPES[(i + 1) % len(BRUSH_SHAPES)])

    def show_tool(self, name: str) -> None:
        self.hint.setText(TOOL_HINTS.get(name, ""))


class SidePanel(QWidget):
    def __init__(self, settings: ToolSettings, parent=None) -> None:
        super().__init__(parent)
        self.palette = ClassPalette()
        self.tool_options = ToolOptions(settings)
        self.results = ResultsPanel()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 4, 8, 8)
        lay.setSpacing(4)
        for title, widget, stretch in (
            ("Classes", self.palette, 0),
            ("Tool", self.tool_options, 0),
            ("Results", self.results, 1),
        ):
            box = QGroupBox(title)
            inner = QVBoxLayout(box)
            inner.setContentsMargins(8, 10, 8, 8)
            inner.addWidget(widget)
            lay.addWidget(box, stretch)
