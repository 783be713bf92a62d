"""Graphics drawn over the die picture, in die units (x = column, y = row): die boundaries
when zoomed in, the wafer rim with its notch, the brush footprint and the polygon in progress.
Pens are cosmetic so lines stay one pixel wide at any zoom.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QLineF, QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsEllipseItem, QGraphicsPathItem, QGraphicsRectItem

from ...core.wafer import NO_DIE
from .. import theme

GRID_MIN_PIXELS = 8  # draw die boundaries once a die is at least this many pixels wide


def cosmetic_pen(color: QColor | str, width: float = 1.0, style: Qt.PenStyle = Qt.PenStyle.SolidLine) -> QPen:
    pen = QPen(QColor(color), width, style)
    pen.setCosmetic(True)
    return pen


class DieGridItem(pg.GraphicsObject):
    """Thin dark lines between dies, drawn only when dies are large enough to tell apart and
    only across the wafer (each line spans the dies on either side of it, not the empty corners).
    """

    def __init__(self) -> None:
        super().__init__()
        self.rows = self.cols = 0
        self.pen = cosmetic_pen(QColor(0, 0, 0, 120))
        self._row_span = self._col_span = np.zeros((0, 2), dtype=np.int64)

    @staticmethod
    def _spans(on: np.ndarray) -> np.ndarray:
        """(n + 1, 2) first and last+1 on-wafer index along each boundary line of ``on``'s rows."""
        n, m = on.shape
        pad = np.zeros((n + 2, m), dtype=bool)
        pad[1:-1] = on
        both = pad[:-1] | pad[1:]  # boundary k lies between rows k-1 and k
        any_ = both.any(axis=1)
        first = np.where(any_, both.argmax(axis=1), 0)
        last = np.where(any_, m - both[:, ::-1].argmax(axis=1), 0)
        return np.stack([first, last], axis=1)

    def set_dies(self, dies: np.ndarray | None) -> None:
        self.prepareGeometryChange()
        if dies is None:
            self.rows = self.cols = 0
        else:
            on = dies != NO_DIE
            self.rows, self.cols = on.shape
            self._row_span = self._spans(on)
            self._col_span = self._spans(on.T)
        self.update()

    def boundingRect(self) -> QRectF:
        return QRectF(0, 0, self.cols, self.rows)

    def paint(self, painter, *args) -> None:
        if not self.rows:
            return
        scale = abs(painter.transform().m11())
        if scale < GRID_MIN_PIXELS:
            return
        vb = self.getViewBox()
        (x0, x1), (y0, y1) = vb.viewRange() if vb is not None else ((0, self.cols), (0, self.rows))
        c0, c1 = max(0, int(np.floor(x0))), min(self.cols, int(np.ceil(x1)))
        r0, r1 = max(0, int(np.floor(y0))), min(self.rows, int(np.ceil(y1)))
        lines = []
        for r in range(r0, r1 + 1):
            a, b = self._row_span[r]
            a, b = max(a, c0), min(b, c1)
            if a < b:
                lines.append(QLineF(a, r, b, r))
        for c in range(c0, c1 + 1):
            a, b = self._col_span[c]
            a, b = max(a, r0), min(b, r1)
            if a < b:
                lines.append(QLineF(c, a, c, b))
        painter.setPen(self.pen)
        painter.drawLines(lines)


def notch_polygon(bounds: tuple[float, float, float, float], notch: str, size: float) -> QPolygonF:
    """A small triangle on the rim at the notch side, pointing into the wafer."""
    top, bottom, left, right = bounds
    cx, cy = (left + right) / 2, (top + bottom) / 2
    s = size
    if notch == "down":
        pts = [(cx - s, bottom + s * 0.9), (cx + s, bottom + s * 0.9), (cx, bottom - s * 0.3)]
    elif notch == "up":
        pts = [(cx - s, top - s * 0.9), (cx + s, top - s * 0.9), (cx, top + s * 0.3)]
    elif notch == "left":
        pts = [(left - s * 0.9, cy - s), (left - s * 0.9, cy + s), (left + s * 0.3, cy)]
    else:
        pts = [(right + s * 0.9, cy - s), (right + s * 0.9, cy + s), (right - s * 0.3, cy)]
    return QPolygonF([QPointF(x, y) for x, y in pts])


class WaferOutlineItem(pg.GraphicsObject):
    """The wafer rim (an ellipse around the dies) and the notch that orients it."""

    def __init__(self) -> None:
        super().__init__()
        self.bounds: tuple[float, float, float, float] | None = None  # top, bottom, left, right
        self.notch = "down"
        self.pen = cosmetic_pen(theme.OUTLINE, 1.2)
        self.notch_brush = QBrush(QColor(theme.WARN))

    def set_wafer(self, dies: np.ndarray, notch: str) -> None:
        self.prepareGeometryChange()
        rows = np.flatnonzero((dies != NO_DIE).any(axis=1))
        cols = np.flatnonzero((dies != NO_DIE).any(axis=0))
        if rows.size == 0:
            self.bounds = None
        else:
            pad = 0.6
            self.bounds = (rows[0] - pad, rows[-1] + 1 + pad, cols[0] - pad, cols[-1] + 1 + pad)
        self.notch = notch
        self.update()

    def _notch_size(self) -> float:
        top, bottom, left, right = self.bounds  # type: ignore[misc]
        return max(0.9, 0.03 * max(bottom - top, right - left))

    def boundingRect(self) -> QRectF:
        if self.bounds is None:
            return QRectF()
        top, bottom, left, right = self.bounds
        m = 2 * self._notch_size()
        return QRectF(left - m, top - m, right - left + 2 * m, bottom - top + 2 * m)

    def paint(self, painter, *args) -> None:
        if self.bounds is None:
            return
        top, bottom, left, right = self.bounds
        painter.setRenderHint(painter.RenderHint.Antialiasing, True)
        painter.setPen(self.pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawEllipse(QRectF(left, top, right - left, bottom - top))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(self.notch_brush)
        painter.drawPolygon(notch_polygon(self.bounds, self.notch, self._notch_size()))


class BrushCursor:
    """Outline of the dies the brush will cover, following the mouse."""

    def __init__(self, vb: pg.ViewBox) -> None:
        pen = cosmetic_pen("#ffffff", 1.2)
        self.rect = QGraphicsRectItem()
        self.ellipse = QGraphicsEllipseItem()
        for item in (self.rect, self.ellipse):
            item.setPen(pen)
            item.setZValue(30)
            item.setVisible(False)
            vb.addItem(item, ignoreBounds=True)

    def show_at(self, row: float, col: float, size: int, shape: str) -> None:
        r0, c0 = int(np.floor(row)), int(np.floor(col))
        lo = -((size - 1) // 2)
        rect = QRectF(c0 + lo, r0 + lo, size, size)
        use_ellipse = shape == "circle" and size > 2
        self.rect.setVisible(not use_ellipse)
        self.ellipse.setVisible(use_ellipse)
        (self.ellipse if use_ellipse else self.rect).setRect(rect)

    def hide(self) -> None:
        self.rect.setVisible(False)
        self.ellipse.setVisible(False)


class PolygonPreview:
    """The polygon being drawn: its edges so far, the rubber band to the mouse, the first vertex."""

    def __init__(self, vb: pg.ViewBox) -> None:
        self.path = QGraphicsPathItem()
        self.path.setPen(cosmetic_pen("#ffffff", 1.5))
        self.path.setZValue(31)
        self.start = QGraphicsEllipseItem()
        self.start.setPen(cosmetic_pen("#ffffff", 1.5))
        self.start.setBrush(QBrush(QColor(theme.ACCENT)))
        self.start.setZValue(32)
        for item in (self.path, self.start):
            item.setVisible(False)
            vb.addItem(item, ignoreBounds=True)

    def show(self, points: list[tuple[float, float]], cursor: tuple[float, float] | None) -> None:
        if not points:
            self.path.setVisible(False)
            self.start.setVisible(False)
            return
        path = QPainterPath(QPointF(*points[0]))
        for p in [*points[1:], *([cursor] if cursor else [])]:
            path.lineTo(QPointF(*p))
        self.path.setPath(path)
        self.path.setVisible(True)
        r = 0.35
        self.start.setRect(QRectF(points[0][0] - r, points[0][1] - r, 2 * r, 2 * r))
        self.start.setVisible(True)
