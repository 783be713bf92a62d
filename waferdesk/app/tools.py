"""The annotation tools. Each turns mouse positions (in die units: row, col as floats) into a
:class:`~waferdesk.core.annotation.Change` of whole failing dies and pushes it as one undo step.

- brush / eraser: paint live while dragging, one undo step per stroke;
- polygon: click vertices, close by double-click, Enter or clicking the first vertex;
- fill: the failing dies connected to the clicked one.
The maths lives in :mod:`waferdesk.core.annotation`; this module only tracks the gesture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, Signal

from ..core.annotation import BRUSH_SHAPES, Change, fail_cluster, make_change, polygon_cells, stroke_cells
from ..core.taxonomy import IGNORE, default_taxonomy
from .document import LabelDocument
from .model.workspace import WaferEntry

MAX_BRUSH = 41
CLOSE_DISTANCE_DIES = 0.75


@dataclass
class ToolSettings:
    brush_size: int = 1
    brush_shape: str = BRUSH_SHAPES[0]


class Tool(QObject):
    """Base: a navigate tool (drags pan the view)."""

    name = "navigate"
    title = "Navigate"
    captures_drag = False
    preview_changed = Signal()

    def __init__(self, doc: LabelDocument, settings: ToolSettings) -> None:
        super().__init__()
        self.doc, self.settings = doc, settings

    def press(self, pos: tuple[float, float]) -> None: ...
    def move(self, pos: tuple[float, float]) -> None: ...
    def release(self, pos: tuple[float, float]) -> None: ...
    def click(self, pos: tuple[float, float], double: bool = False) -> None: ...
    def hover(self, pos: tuple[float, float]) -> None: ...

    @property
    def held(self) -> bool:
        """True while a stroke is being painted (the mouse button still down)."""
        return False

    def cancel(self) -> bool:
        """Drop an unfinished gesture; True if there was one."""
        return False

    def finish(self) -> bool:
        """Complete an unfinished gesture (Enter); True if there was one."""
        return False

    def _can_edit(self) -> bool:
        return self.doc.current is not None and self.doc.editable


class BrushTool(Tool):
    name = "brush"
    title = "Brush"
    captures_drag = True
    erase = False

    def __init__(self, doc: LabelDocument, settings: ToolSettings) -> None:
        super().__init__(doc, settings)
        self._last: tuple[float, float] | None = None
        self._entry: WaferEntry | None = None  # the wafer the stroke paints, even if another is shown
        # dies touched by the stroke so far and their values before it: a step costs what it
        # paints, however long the stroke already is
        self._touched = np.zeros(0, dtype=bool)
        self._before = np.zeros(0, dtype=np.uint8)

    @property
    def held(self) -> bool:
        return self._last is not None

    @property
    def value(self) -> int:
        return IGNORE if self.erase else self.doc.active_class

    def press(self, pos: tuple[float, float]) -> None:
        if not self._can_edit():
            return
        self._entry = self.doc.current
        n = self._entry.labels.size
        self._touched = np.zeros(n, dtype=bool)
        self._before = np.zeros(n, dtype=np.uint8)
        self._last = pos
        self._dab(pos, pos)

    def _stroke(self) -> Change | None:
        """The whole stroke as one change: touched dies whose value differs from before it."""
        entry = self._entry
        if entry is None or not self._touched.any():
            return None
        index = np.flatnonzero(self._touched)
        old = self._before[index]
        new = entry.labels.reshape(-1)[index]
        keep = old != new
        if not keep.any():
            return None
        return Change(index[keep], old[keep].copy(), new[keep].copy())

    def move(self, pos: tuple[float, float]) -> None:
        if self._last is None:
            return
        self._dab(self._last, pos)
        self._last = pos

    def release(self, pos: tuple[float, float]) -> None:
        if self._last is None:
            return
        self._dab(self._last, pos)
        self._last = None
        stroke, entry = self._stroke(), self._entry
        self._touched, self._entry = np.zeros(0, dtype=bool), None
        if stroke is not None and entry is not None:
            what = "Erase" if self.erase else f"Brush {default_taxonomy().names[self.value]}"
            self.doc.push(entry, stroke, f"{what} ({len(stroke)} dies)", applied=True)

    def click(self, pos: tuple[float, float], double: bool = False) -> None:
        self.press(pos)
        self.release(pos)

    def cancel(self) -> bool:
        """Esc during a stroke: put the dies back as they were."""
        if self._last is None:
            return False
        stroke, entry = self._stroke(), self._entry
        if stroke is not None and entry is not None:
            stroke.revert(entry.labels)
            self.doc.notify(entry, stroke)
        self._last, self._entry = None, None
        self._touched = np.zeros(0, dtype=bool)
        return True

    def _dab(self, start: tuple[float, float], end: tuple[float, float]) -> None:
        entry = self._entry
        if entry is None:
            return
        cells = stroke_cells(entry.wafer.shape, start, end, self.settings.brush_size, self.settings.brush_shape)
        change = make_change(entry.labels, entry.wafer.dies, cells, self.value)
        if change is None:
            return
        first = ~self._touched[change.index]
        self._before[change.index[first]] = change.old[first]
        self._touched[change.index] = True
        change.apply(entry.labels)
        self.doc.notify(entry, change)


class EraserTool(BrushTool):
    name = "eraser"
    title = "Eraser"
    erase = True


class PolygonTool(Tool):
    name = "polygon"
    title = "Polygon"

    def __init__(self, doc: LabelDocument, settings: ToolSettings) -> None:
        super().__init__(doc, settings)
        self.points: list[tuple[float, float]] = []  # (x, y) = (col, row)
        self.cursor: tuple[float, float] | None = None

    def click(self, pos: tuple[float, float], double: bool = False) -> None:
        if not self._can_edit():
            return
        row, col = pos
        if double:
            self.finish()
            return
        if len(self.points) >= 3:
            x0, y0 = self.points[0]
            if (x0 - col) ** 2 + (y0 - row) ** 2 <= CLOSE_DISTANCE_DIES**2:
                self.finish()
                return
        self.points.append((col, row))
        self.preview_changed.emit()

    def hover(self, pos: tuple[float, float]) -> None:
        if self.points:
            self.cursor = (pos[1], pos[0])
            self.preview_changed.emit()

    def finish(self) -> bool:
        if not self.points:
            return False
        entry = self.doc.current
        pts, self.points, self.cursor = self.points, [], None
        self.preview_changed.emit()
        if entry is None or len(pts) < 3:
            return True
        change = make_change(
            entry.labels, entry.wafer.dies, polygon_cells(entry.wafer.shape, pts), self.doc.active_class
        )
        name = default_taxonomy().names[self.doc.active_class]
        if change is not None:
            self.doc.push(entry, change, f"Polygon {name} ({len(change)} dies)")
        return True

    def cancel(self) -> bool:
        if not self.points:
            return False
        self.points, self.cursor = [], None
        self.preview_changed.emit()
        return True


class FillTool(Tool):
    name = "fill"
    title = "Fill cluster"

    def click(self, pos: tuple[float, float], double: bool = False) -> None:
        entry = self.doc.current
        if not self._can_edit() or entry is None:
            return
        row, col = int(pos[0] // 1), int(pos[1] // 1)
        cluster = fail_cluster(entry.wafer.dies, row, col)
        change = make_change(entry.labels, entry.wafer.dies, cluster, self.doc.active_class)
        if change is not None:
            name = default_taxonomy().names[self.doc.active_class]
            self.doc.push(entry, change, f"Fill {name} ({len(change)} dies)")


TOOL_CLASSES: tuple[type[Tool], ...] = (Tool, BrushTool, EraserTool, PolygonTool, FillTool)
