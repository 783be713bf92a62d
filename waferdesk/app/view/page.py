"""The "Wafer" tab: a bar with the wafer's name and the layer mode above the view, and a
friendly empty state until something is open."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QButtonGroup, QHBoxLayout, QLabel, QPushButton, QStackedWidget, QVBoxLayout, QWidget

from ..model.layers import MODES
from .waferview import WaferView

MODE_TITLES = {"labels": "Labels", "prediction": "Model", "uncertainty": "Uncertainty"}
EMPTY_TEXT = (
    "<div style='font-size:15px'>No wafers open</div><br>"
    "<div>Open files or a folder (Ctrl+O, Ctrl+Shift+O) or drop them here.</div>"
)


class WaferPage(QWidget):
    mode_chosen = Signal(str)

    def __init__(self, view: WaferView, parent=None) -> None:
        super().__init__(parent)
        self.view = view
        self.title = QLabel("")
        self.title.setStyleSheet("font-size: 15px; font-weight: 600;")
        self.subtitle = QLabel("")
        self.subtitle.setObjectName("muted")
        self.modes = QButtonGroup(self)
        bar = QHBoxLayout()
        bar.setContentsMargins(8, 6, 8, 6)
        bar.addWidget(self.title)
        bar.addSpacing(10)
        bar.addWidget(self.subtitle, 1)
        for i, mode in enumerate(MODES):
            b = QPushButton(MODE_TITLES[mode])
            b.setCheckable(True)
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            self.modes.addButton(b, i)
            bar.addWidget(b)
        self.modes.button(0).setChecked(True)
        self.modes.idClicked.connect(lambda i: self.mode_chosen.emit(MODES[i]))
        bar.addSpacing(10)
        self.fit_button = QPushButton("Fit")
        self.fit_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.fit_button.setToolTip("fit the wafer in the view (F)")
        self.fit_button.clicked.connect(view.fit)
        bar.addWidget(self.fit_button)

        self.empty = QLabel(EMPTY_TEXT)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setObjectName("muted")
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        self.stack.addWidget(view)
        self.readout = QLabel(" ")
        self.readout.setObjectName("readout")
        self.readout.setContentsMargins(10, 4, 10, 4)
        self.readout.setToolTip("the die under the mouse: position, state, label, the model's top classes")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addLayout(bar)
        lay.addWidget(self.stack, 1)
        lay.addWidget(self.readout)

    def set_has_content(self, on: bool) -> None:
        self.stack.setCurrentIndex(1 if on else 0)

    def set_mode(self, mode: str) -> None:
        self.modes.button(MODES.index(mode)).setChecked(True)

    def set_mode_enabled(self, mode: str, on: bool, why: str = "") -> None:
        b = self.modes.button(MODES.index(mode))
        b.setEnabled(on)
        b.setToolTip("" if on else why)
