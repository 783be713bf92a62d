"""The wafer view: the die picture (one image pixel per die, scaled without smoothing), the
overlays of :mod:`.items`, wheel zoom, pan and fit, and mouse input for the active tool.

Left-drag paints with brush/eraser and pans with the navigate tool; middle-drag always pans;
right-drag zooms (pyqtgraph's ViewBox). Positions handed to tools are (row, col) in die
units, so die (r, c) is every position with ``floor`` equal to (r, c).
"""

from __future__ import annotations

import contextlib

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal

from ...core.annotation import Change
from ..document import LabelDocument
from ..model.layers import LayerStyle, compose, recompose_cells
from ..model.workspace import WaferEntry
from ..theme import VIEW_BACKGROUND
from ..tools import BrushTool, Tool
from .items import BrushCursor, DieGridItem, PolygonPreview, WaferOutlineItem


class DieViewBox(pg.ViewBox):
    """A ViewBox that hands left-button gestures to the active tool."""

    def __init__(self, view: WaferView) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False, defaultPadding=0.04)
        self._view = view

    def mouseDragEvent(self, ev, axis=None) -> None:
        tool = self._view.tool
        if tool is not None and tool.captures_drag and ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            pos = self._view.die_pos(ev.scenePos())
            if ev.isStart():
                self._show_labels_to_paint()
                tool.press(self._view.die_pos(ev.buttonDownScenePos()))
                tool.move(pos)
            elif ev.isFinish():
                tool.release(pos)
            else:
                tool.move(pos)
            return
        super().mouseDragEvent(ev, axis)

    def mouseClickEvent(self, ev) -> None:
        tool = self._view.tool
        if ev.button() == Qt.MouseButton.LeftButton and tool is not None and tool.name != "navigate":
            ev.accept()
            self._show_labels_to_paint()
            tool.click(self._view.die_pos(ev.scenePos()), ev.double())
            return
        if ev.button() == Qt.MouseButton.RightButton and tool is not None and tool.cancel():
            ev.accept()
            return
        if ev.button() == Qt.MouseButton.LeftButton and ev.double():
            ev.accept()
            self._view.fit()
            return
        super().mouseClickEvent(ev)

    def _show_labels_to_paint(self) -> None:
        """The tools edit the labels: a gesture started over the model's mask or the
        uncertainty map switches the map to the labels first, so no edit is made unseen."""
        view = self._view
        if view.mode != "labels" and view.doc.editable and view.doc.current is not None:
            view.set_mode("labels")


class WaferView(pg.GraphicsView):
    """Shows the document's current wafer in one of the layer modes."""

    hovered = Signal(int, int)  # row, col; (-1, -1) when off the grid
    mode_changed = Signal(str)

    def __init__(self, doc: LabelDocument, style: LayerStyle | None = None, parent=None) -> None:
        super().__init__(parent, background=pg.mkColor(*VIEW_BACKGROUND))
        self.doc = doc
        self.style = style or LayerStyle()
        self.mode = "labels"
        self.entry: WaferEntry | None = None
        self.tool: Tool | None = None
        self.rgba: np.ndarray | None = None
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

        self.vb = DieViewBox(self)
        self.setCentralItem(self.vb)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setZValue(0)
        self.vb.addItem(self.image)
        self.grid = DieGridItem()
        self.grid.setZValue(10)
        self.vb.addItem(self.grid, ignoreBounds=True)
        self.outline = WaferOutlineItem()
        self.outline.setZValue(5)
        self.vb.addItem(self.outline)
        self.cursor_item = BrushCursor(self.vb)
        self.polygon = PolygonPreview(self.vb)

        self.scene().sigMouseMoved.connect(self._mouse_moved)
        doc.labels_changed.connect(self._labels_changed)
        doc.current_changed.connect(self.show_entry)

    # -- coordinates -------------------------------------------------------------------------
    def die_pos(self, scene_pos: QPointF) -> tuple[float, float]:
        p = self.vb.mapSceneToView(scene_pos)
        return (float(p.y()), float(p.x()))

    def die_at(self, scene_pos: QPointF) -> tuple[int, int] | None:
        if self.entry is None:
            return None
        r, c = self.die_pos(scene_pos)
        ri, ci = int(np.floor(r)), int(np.floor(c))
        h, w = self.entry.wafer.shape
        return (ri, ci) if 0 <= ri < h and 0 <= ci < w else None

    def scene_pos_of(self, row: float, col: float) -> QPointF:
        """Scene position of a point in die units (tests drive tools through real mouse events)."""
        return self.vb.mapViewToScene(QPointF(col, row))

    def widget_pos_of(self, row: float, col: float):
        return self.mapFromScene(self.scene_pos_of(row, col))

    # -- content -----------------------------------------------------------------------------
    def show_entry(self, entry: WaferEntry | None, fit: bool = True) -> None:
        same_shape = self.entry is not None and entry is not None and self.entry.wafer.shape == entry.wafer.shape
        self.entry = entry
        if self.tool is not None:
            self.tool.cancel()
        if entry is None:
            self.image.clear()
            self.rgba = None
            self.grid.set_dies(None)
            return
        h, w = entry.wafer.shape
        self.grid.set_dies(entry.wafer.dies)
        self.outline.set_wafer(entry.wafer.dies, entry.wafer.notch)
        self.vb.setLimits(minXRange=3, minYRange=3, maxXRange=max(h, w) * 4, maxYRange=max(h, w) * 4)
        self.refresh()
        if fit and not same_shape:
            self.fit()

    def labels_shown(self) -> np.ndarray | None:
        e = self.entry
        if e is None:
            return None
        if self.mode == "labels":
            return e.labels
        if self.mode == "prediction":
            return e.predicted_labels()
        return None

    def entropy_shown(self) -> np.ndarray | None:
        e = self.entry
        if e is None or e.prediction is None or e.prediction.details is None:
            return None
        return e.prediction.details.entropy

    def refresh(self) -> None:
        """Recompose the whole picture (mode, style or wafer changed)."""
        e = self.entry
        if e is None:
            return
        self.rgba = compose(e.wafer.dies, self.labels_shown(), self.style, self.mode, self.entropy_shown())
        self.image.setImage(self.rgba, autoLevels=False)

    def _labels_changed(self, entry: WaferEntry, change: Change | None) -> None:
        if entry is not self.entry or self.mode != "labels":
            return
        if change is None or self.rgba is None:
            self.refresh()
            return
        rows, cols = change.cells(entry.wafer.shape)
        recompose_cells(self.rgba, entry.wafer.dies, entry.labels, self.style, rows, cols)
        self.image.setImage(self.rgba, autoLevels=False)

    def set_mode(self, mode: str) -> None:
        if mode != self.mode:
            self.mode = mode
            self.refresh()
            self.mode_changed.emit(mode)

    def fit(self) -> None:
        if self.entry is not None:
            h, w = self.entry.wafer.shape
            self.vb.setRange(xRange=(-1, w + 1), yRange=(-1, h + 1), padding=0.02)

    def zoom(self, factor: float) -> None:
        self.vb.scaleBy((1 / factor, 1 / factor))

    # -- tools -------------------------------------------------------------------------------
    def set_tool(self, tool: Tool | None) -> None:
        if self.tool is not None:
            self.tool.cancel()
            with contextlib.suppress(RuntimeError, TypeError):
                self.tool.preview_changed.disconnect(self._tool_preview)
        self.tool = tool
        if tool is not None:
            tool.preview_changed.connect(self._tool_preview)
        self.cursor_item.hide()
        self._tool_preview()
        navigate = tool is None or tool.name == "navigate"
        self.setCursor(Qt.CursorShape.OpenHandCursor if navigate else Qt.CursorShape.CrossCursor)

    def _tool_preview(self) -> None:
        tool = self.tool
        points = getattr(tool, "points", [])
        self.polygon.show(points, getattr(tool, "cursor", None))

    def _mouse_moved(self, scene_pos: QPointF) -> None:
        pos = self.die_pos(scene_pos)
        die = self.die_at(scene_pos)
        self.hovered.emit(*(die if die is not None else (-1, -1)))
        tool = self.tool
        if isinstance(tool, BrushTool) and self.entry is not None:
            s = tool.settings
            self.cursor_item.show_at(pos[0], pos[1], s.brush_size, s.brush_shape)
        if tool is not None:
            tool.hover(pos)

    def leaveEvent(self, ev) -> None:
        self.cursor_item.hide()
        self.hovered.emit(-1, -1)
        super().leaveEvent(ev)
