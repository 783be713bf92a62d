"""The class palette (the taxonomy's classes with their keys, colours, die counts and
visibility toggles) and the display options of the overlay (opacity, colour-blind palette).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from ..core.taxonomy import default_taxonomy


def swatch(rgb: tuple[int, int, int], size: int = 14) -> QIcon:
    pm = QPixmap(size, size)
    pm.fill(Qt.GlobalColor.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setBrush(QColor(*rgb))
    p.setPen(QColor(0, 0, 0, 120))
    p.drawRoundedRect(1, 1, size - 2, size - 2, 3, 3)
    p.end()
    return QIcon(pm)


class ClassPalette(QWidget):
    """One row per class: [key] colour name (count) [shown]. Clicking a row makes it active."""

    class_chosen = Signal(int)
    visibility_changed = Signal(object)  # np.ndarray of bool
    opacity_changed = Signal(float)
    colorblind_changed = Signal(bool)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.tax = default_taxonomy()
        self.colorblind = False
        self.buttons: list[QPushButton] = []
        self.counts: list[QLabel] = []
        self.shown: list[QCheckBox] = []
        self.group = QButtonGroup(self)
        self.group.setExclusive(True)

        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(3)
        for c in self.tax.classes:
            btn = QPushButton(f"  {c.key}   {c.name}")
            btn.setCheckable(True)
            btn.setToolTip(f"{c.name}: {c.description}  (key {c.key})")
            btn.setStyleSheet("text-align: left; padding: 3px 8px;")
            btn.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            self.group.addButton(btn, c.index)
            count = QLabel("")
            count.setObjectName("muted")
            count.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            count.setMinimumWidth(40)
            show = QCheckBox()
            show.setChecked(True)
            show.setToolTip(f"show {c.name} in the overlay")
            show.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            show.toggled.connect(self._visibility)
            grid.addWidget(btn, c.index, 0)
            grid.addWidget(count, c.index, 1)
            grid.addWidget(show, c.index, 2)
            self.buttons.append(btn)
            self.counts.append(count)
            self.shown.append(show)
        grid.setColumnStretch(0, 1)
        self.buttons[0].setChecked(True)
        self.group.idClicked.connect(self.class_chosen.emit)
        self._paint_swatches()

        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(85)
        self.opacity.setToolTip("overlay opacity")
        self.opacity.valueChanged.connect(lambda v: self.opacity_changed.emit(v / 100.0))
        self.cb = QCheckBox("Colour-blind palette")
        self.cb.toggled.connect(self._colorblind)

        op_row = QHBoxLayout()
        lab = QLabel("Opacity")
        lab.setObjectName("muted")
        op_row.addWidget(lab)
        op_row.addWidget(self.opacity, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(6)
        lay.addLayout(grid)
        lay.addLayout(op_row)
        lay.addWidget(self.cb)

    def _paint_swatches(self) -> None:
        for c, btn in zip(self.tax.classes, self.buttons, strict=True):
            btn.setIcon(swatch(c.rgb(self.colorblind)))

    def _visibility(self) -> None:
        self.visibility_changed.emit(self.visible())

    def _colorblind(self, on: bool) -> None:
        self.colorblind = on
        self._paint_swatches()
        self.colorblind_changed.emit(on)

    def visible(self) -> np.ndarray:
        return np.array([s.isChecked() for s in self.shown], dtype=bool)

    def set_active(self, index: int) -> None:
        self.buttons[index].setChecked(True)

    def set_counts(self, counts: dict[str, int] | None) -> None:
        for c, lab in zip(self.tax.classes, self.counts, strict=True):
            n = (counts or {}).get(c.name, 0)
            lab.setText(str(n) if n else "")
