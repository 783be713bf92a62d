"""The lot view: every wafer of a lot stacked die by die, coloured by fail rate, so patterns
that repeat across wafers (a reticle, an edge ring, a chuck mark) stand out."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from .model.layers import HEAT
from .model.lots import LotStack, stack_lot
from .model.workspace import WaferEntry, Workspace
from .theme import VIEW_BACKGROUND
from .view.items import WaferOutlineItem


def rate_rgba(stack: LotStack, vmax: float) -> np.ndarray:
    rgba = np.zeros((*stack.shape, 4), dtype=np.uint8)
    on = ~np.isnan(stack.rate)
    scaled = np.clip(stack.rate[on] / max(vmax, 1e-6), 0, 1)
    rgba[on, :3] = HEAT[(scaled * 255).round().astype(np.int64)]
    rgba[on, 3] = 255
    return rgba


def legend_pixmap(width: int = 160, height: int = 12) -> QPixmap:
    ramp = np.repeat(HEAT[np.linspace(0, 255, width).astype(int)][None, :, :], height, axis=0)
    ramp = np.ascontiguousarray(ramp)
    img = QImage(ramp.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return QPixmap.fromImage(img.copy())


class LotView(QWidget):
    lot_shown = Signal(str)

    def __init__(self, workspace: Workspace, parent=None) -> None:
        super().__init__(parent)
        self.ws = workspace
        self.stack: LotStack | None = None
        self.current: WaferEntry | None = None  # the wafer on screen: its size is the one stacked
        self.combo = QComboBox()
        self.combo.setMinimumWidth(220)
        self.combo.currentTextChanged.connect(self.show_lot)
        self.info = QLabel("")
        self.info.setObjectName("muted")
        self.info.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.legend_lo = QLabel("0%")
        self.legend_hi = QLabel("")
        legend = QLabel()
        legend.setPixmap(legend_pixmap())
        self.readout = QLabel(" ")
        self.readout.setObjectName("readout")

        self.view = pg.GraphicsLayoutWidget()
        self.view.setBackground(pg.mkColor(*VIEW_BACKGROUND))
        self.vb = self.view.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.vb.addItem(self.image)
        self.outline = WaferOutlineItem()
        self.vb.addItem(self.outline)
        self.view.scene().sigMouseMoved.connect(self._moved)

        top = QHBoxLayout()
        lab = QLabel("Lot")
        lab.setObjectName("muted")
        top.addWidget(lab)
        top.addWidget(self.combo)
        top.addStretch(1)
        top.addWidget(QLabel("fail rate"))
        top.addWidget(self.legend_lo)
        top.addWidget(legend)
        top.addWidget(self.legend_hi)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addLayout(top)
        lay.addWidget(self.info)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.readout)

    def reload(self, current: WaferEntry | None = None) -> None:
        lots = list(self.ws.lots())
        self.current = current
        want = current.lot if current is not None else self.combo.currentText()
        self.combo.blockSignals(True)
        self.combo.clear()
        self.combo.addItems(lots)
        self.combo.blockSignals(False)
        if want in lots:
            self.combo.setCurrentText(want)
        self.show_lot(self.combo.currentText())

    def show_lot(self, lot: str) -> None:
        entries = self.ws.lots().get(lot, [])
        # the wafer on screen is in the stack: its size, not the lot's most common one, if they differ
        mine = self.current is not None and any(e is self.current for e in entries)
        self.stack = stack_lot([e.wafer for e in entries], self.current.wafer.shape if mine else None)
        if self.stack is None:
            self.image.clear()
            self.info.setText("no wafers")
            return
        finite = self.stack.rate[~np.isnan(self.stack.rate)]
        vmax = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        self.image.setImage(rate_rgba(self.stack, vmax), autoLevels=False)
        self.legend_hi.setText(f"{vmax:.0%}")
        first = next(e for e in entries if e.wafer.shape == self.stack.shape)
        self.outline.set_wafer(first.wafer.dies, first.wafer.notch)
        h, w = self.stack.shape
        self.vb.setRange(xRange=(-1, w + 1), yRange=(-1, h + 1), padding=0.02)
        skipped = f" · {self.stack.skipped} of another size not stacked" if self.stack.skipped else ""
        self.info.setText(
            f"{self.stack.n_wafers} wafers stacked · {h}×{w} dies · mean yield {self.stack.mean_yield:.1%}{skipped}"
        )
        self.lot_shown.emit(lot)

    def _moved(self, pos: QPointF) -> None:
        if self.stack is None:
            return
        p = self.vb.mapSceneToView(pos)
        r, c = int(np.floor(p.y())), int(np.floor(p.x()))
        h, w = self.stack.shape
        if 0 <= r < h and 0 <= c < w and not np.isnan(self.stack.rate[r, c]):
            self.readout.setText(
                f"x {c:>3}  y {r:>3}   fail rate {self.stack.rate[r, c]:.0%} "
                f"over {int(self.stack.present[r, c])} wafers"
            )
        else:
            self.readout.setText(" ")


__all__ = ["LotView"]
