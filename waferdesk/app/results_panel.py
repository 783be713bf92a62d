"""The results panel: the wafer-level verdict, the yield-loss Pareto by class as a bar chart,
and the per-class die counts, for either the labels or the model's mask."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.results import WaferSummary
from ..core.taxonomy import default_taxonomy
from . import theme


class ParetoChart(pg.PlotWidget):
    """Horizontal bars, largest class on top, in the class colours; x = share of dies lost."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent, background=theme.BASE)
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.getPlotItem().showGrid(x=True, y=False, alpha=0.15)
        self.getAxis("bottom").setLabel("yield loss", units="%")
        for ax in ("left", "bottom"):
            self.getAxis(ax).setTextPen(theme.MUTED)
            self.getAxis(ax).setPen(theme.OUTLINE)
        self.setMinimumHeight(170)
        self.bars: pg.BarGraphItem | None = None
        self.values: list[tuple[str, float]] = []
        self.empty = pg.TextItem("no labelled fails", color=theme.MUTED, anchor=(0.5, 0.5))
        self.addItem(self.empty)
        self.empty.setPos(0.5, 0.5)

    def show_summary(self, summary: WaferSummary | None, colorblind: bool = False) -> None:
        tax = default_taxonomy()
        pareto = summary.pareto() if summary else []
        n = summary.n_dies if summary else 0
        self.values = [(name, 100.0 * count / n if n else 0.0) for name, count in pareto]
        left = self.getAxis("left")
        self.empty.setVisible(not self.values)
        self.getAxis("bottom").setStyle(showValues=bool(self.values))
        if not self.values:
            if self.bars is not None:
                self.bars.setVisible(False)
            left.setTicks([[]])
            self.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
            return
        ys = list(range(len(self.values)))[::-1]  # largest at the top
        colours = {c.name: QColor(*c.rgb(colorblind)) for c in tax.classes}
        bars = {
            "x0": 0,
            "y": ys,
            "height": 0.7,
            "width": [v for _, v in self.values],
            "brushes": [colours[name] for name, _ in self.values],
            "pen": pg.mkPen(None),
        }
        if self.bars is None:
            self.bars = pg.BarGraphItem(**bars)
            self.addItem(self.bars)
        else:  # one item, updated: cheaper than replacing it on every wafer
            self.bars.setOpts(**bars)
            self.bars.setVisible(True)
        left.setTicks([[(y, name) for y, (name, _) in zip(ys, self.values, strict=True)]])
        top = max(v for _, v in self.values) * 1.08
        self.setRange(xRange=(0, top), yRange=(-0.6, len(self.values) - 0.4), padding=0)


class ResultsPanel(QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.verdict = QLabel("—")
        self.verdict.setObjectName("verdict")
        self.verdict.setWordWrap(True)
        self.source = QLabel("")
        self.source.setObjectName("muted")
        self.source.setWordWrap(True)
        self.chart = ParetoChart()
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Class", "Dies", "Yield loss"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.table.setShowGrid(False)
        self.table.verticalHeader().setDefaultSectionSize(22)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setMinimumHeight(120)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(6)
        lay.addWidget(self.verdict)
        lay.addWidget(self.source)
        lay.addWidget(self.chart, 3)
        lay.addWidget(self.table, 2)
        self.summary: WaferSummary | None = None

    def show_summary(self, summary: WaferSummary | None, source: str, colorblind: bool = False) -> None:
        self.summary = summary
        if summary is None:
            self.verdict.setText("—")
            self.source.setText(source)
            self.chart.show_summary(None)
            self.table.setRowCount(0)
            return
        self.verdict.setText(f"Verdict: {summary.verdict}")
        labelled = sum(summary.counts.values())
        yield_ = 1 - summary.n_fail / summary.n_dies if summary.n_dies else 0.0
        self.source.setText(
            f"{source} · yield {yield_:.1%} · {summary.n_fail} fails of {summary.n_dies} dies"
            + (f" · {summary.n_fail - labelled} unlabelled" if labelled < summary.n_fail else "")
        )
        self.chart.show_summary(summary, colorblind)
        pareto = summary.pareto()
        self.table.setRowCount(len(pareto))
        for row, (name, count) in enumerate(pareto):
            loss = count / summary.n_dies if summary.n_dies else 0.0
            for col, text in enumerate((name, str(count), f"{loss:.2%}")):
                item = QTableWidgetItem(text)
                if col:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, col, item)
