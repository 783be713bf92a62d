"""The wafer browser: one row per open wafer (lot, wafer, size, yield, model verdict,
uncertainty, annotation status); sortable by any column, filtered by text and status,
driven by the keyboard (arrows, PageUp/PageDown, Home/End, type-to-filter with Ctrl+F).
"""

from __future__ import annotations

from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelectionModel,
    QModelIndex,
    QSize,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ..core.taxonomy import default_taxonomy
from . import theme
from .model.workspace import Status, WaferEntry, Workspace

COLUMNS = ("Lot", "Wafer", "Yield", "Verdict", "Uncert.", "Status")
COL_YIELD, COL_VERDICT, COL_UNCERTAINTY, COL_STATUS = 2, 3, 4, 5
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
REFILTER_MS = 1000  # rows re-checked against the filter at most once a second while results arrive
# (one pass over 12,450 rows takes about 0.1 s here)
STATUS_FILTERS = ("All wafers", "Unlabelled", "Labelled", "Draft", "Saved", "Predicted", "Not predicted")
STATUS_COLOURS = {Status.DRAFT: theme.WARN, Status.SAVED: "#6cc070", Status.FROM_FILE: "#8fb3e0"}
# outbox state of a submitted queue wafer
# ("took theirs": a conflict settled with the server's version; "deleted": the annotation it made
# was deleted on the server since, so it is not sent again; queue_mode.shown_state)
SYNC_COLOURS = {
    "pending": theme.WARN,
    "synced": "#6cc070",
    "failed": "#e06c6c",
    "conflict": "#e06c6c",
    "deleted": "#e06c6c",
}
SYNC_TEXT = {
    "pending": "sending ↑",
    "synced": "submitted ✓",
    "failed": "failed ✗",
    "conflict": "conflict ⚠",
    "deleted": "deleted on server ✗",
}


class WaferTableModel(QAbstractTableModel):
    def __init__(self, workspace: Workspace, parent=None) -> None:
        super().__init__(parent)
        self.ws = workspace
        self._order: list[int] = []  # row -> index into ws.entries (the sort order)
        self._rows: dict[str, int] = {}  # entry key -> row
        self.set_colorblind(False)

    def set_colorblind(self, on: bool) -> None:
        """Verdict swatches in the taxonomy's colours or its colour-blind palette."""
        self._colours = {c.name: QColor(*c.rgb(on)) for c in default_taxonomy().classes}
        self.all_changed()

    def reset(self) -> None:
        self.beginResetModel()
        self._order = list(range(len(self.ws.entries)))
        self._rows = {e.key: i for i, e in enumerate(self.ws.entries)}
        self.endResetModel()

    def append(self, entries: list[WaferEntry]) -> None:
        """Rows for entries just added at the end of the workspace."""
        if not entries:
            return
        first = len(self._order)
        self.beginInsertRows(QModelIndex(), first, first + len(entries) - 1)
        start = len(self.ws.entries) - len(entries)
        for i, e in enumerate(entries):
            self._order.append(start + i)
            self._rows[e.key] = first + i
        self.endInsertRows()

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort in Python once per click (keys computed once per row), not per comparison:
        12,000 wafers sort in a fraction of a second."""
        if column < 0 or not self._order:
            return
        self.layoutAboutToBeChanged.emit()
        persistent = self.persistentIndexList()
        held = [(self._order[i.row()], i.column()) for i in persistent]
        entries = self.ws.entries
        keys = [self._sort_key(entries[j], column) for j in self._order]
        ranked = sorted(range(len(keys)), key=keys.__getitem__, reverse=order == Qt.SortOrder.DescendingOrder)
        self._order = [self._order[k] for k in ranked]
        pos = {j: r for r, j in enumerate(self._order)}
        self.changePersistentIndexList(persistent, [self.index(pos[j], c) for j, c in held])
        self._rows = {entries[j].key: r for r, j in enumerate(self._order)}
        self.layoutChanged.emit()

    def entry_changed(self, entry: WaferEntry) -> None:
        row = self._rows.get(entry.key)
        if row is not None:
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))

    def all_changed(self) -> None:
        if self._order:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._rows) - 1, len(COLUMNS) - 1))

    def row_of(self, entry: WaferEntry) -> int:
        return self._rows.get(entry.key, -1)

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._order)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal:
            if role == Qt.ItemDataRole.DisplayRole:
                return COLUMNS[section]
            if role == Qt.ItemDataRole.ToolTipRole:
                return {
                    COL_VERDICT: "the model's wafer-level verdict (run the model to fill it)",
                    COL_UNCERTAINTY: "mean per-die entropy of the model's prediction (high = worth a look)",
                    COL_STATUS: "annotation status of the labels; for server work, the queue state and whether "
                    "the submission is pending, synced, failed, in conflict or deleted on the server since",
                }.get(section)
        return None

    def entry(self, row: int) -> WaferEntry:
        return self.ws.entries[self._order[row]]

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        e = self.ws.entries[self._order[index.row()]]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(e, col)
        if role == SORT_ROLE:
            return self._sort_key(e, col)
        if role == Qt.ItemDataRole.DecorationRole and col == COL_VERDICT and e.prediction is not None:
            primary = e.prediction.summary.verdict.primary
            return self._colours.get(primary)
        if role == Qt.ItemDataRole.ForegroundRole and col == COL_STATUS:
            colour = SYNC_COLOURS.get(e.sync) if e.sync else STATUS_COLOURS.get(e.status)
            return QColor(colour) if colour else QColor(theme.MUTED)
        if role == Qt.ItemDataRole.ToolTipRole and col == COL_STATUS and e.remote:
            return self._sync_tip(e)
        if role == Qt.ItemDataRole.ToolTipRole:
            h, w = e.wafer.shape
            return f"{e.title} · {h}×{w} dies · {e.source.name} (wafer {e.index + 1} in the file)"
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (COL_YIELD, COL_UNCERTAINTY):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    @staticmethod
    def _display(e: WaferEntry, col: int) -> str:
        if col == 0:
            return e.lot
        if col == 1:
            return e.wafer_id
        if col == COL_YIELD:
            return f"{e.wafer.yield_:.1%}"
        if col == COL_VERDICT:
            return str(e.prediction.summary.verdict) if e.prediction is not None else ""
        if col == COL_UNCERTAINTY:
            u = e.uncertainty()
            return "" if u is None else f"{u:.3f}"
        if e.remote:
            return SYNC_TEXT.get(e.sync, e.sync) if e.sync else e.remote
        return str(e.status)

    @staticmethod
    def _sync_tip(e: WaferEntry) -> str:
        """The status cell's tooltip: the queue state, the outbox's, and why it was not sent."""
        if not e.sync:
            return e.remote
        if e.sync == "deleted":  # the outbox's message says it all ("deleted on the server: …")
            return f"{e.remote}, outbox: {e.sync_note or 'deleted on the server; not sent again'}"
        return f"{e.remote}, outbox: {e.sync}" + (f": {e.sync_note}" if e.sync_note else "")

    @staticmethod
    def _sort_key(e: WaferEntry, col: int):
        if col == COL_YIELD:
            return e.wafer.yield_
        if col == COL_UNCERTAINTY:
            u = e.uncertainty()
            return -1.0 if u is None else u
        if col == 1 and e.wafer_id.isdigit():
            return f"{int(e.wafer_id):012d}"
        return WaferTableModel._display(e, col).lower()


class WaferFilter(QSortFilterProxyModel):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.text = ""
        self.status = STATUS_FILTERS[0]
        self.keep: str | None = None  # key of a wafer shown whatever the filter (the one on screen)
        self.setDynamicSortFilter(False)

    def active(self) -> bool:
        return bool(self.text) or self.status != STATUS_FILTERS[0]

    def set_text(self, text: str) -> None:
        self.beginFilterChange()
        self.text, self.keep = text.strip().lower(), None
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def set_status(self, status: str) -> None:
        self.beginFilterChange()
        self.status, self.keep = status, None
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def refilter(self, keep: str | None) -> None:
        """Check the rows again (verdicts and statuses change), keeping the wafer ``keep``."""
        self.beginFilterChange()
        self.keep = keep
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, row: int, parent) -> bool:
        e = self.sourceModel().entry(row)
        if self.keep is not None and e.key == self.keep:
            return True
        if self.status != STATUS_FILTERS[0] and not _status_matches(e, self.status):
            return False
        if not self.text:
            return True
        verdict = str(e.prediction.summary.verdict) if e.prediction is not None else ""
        hay = f"{e.lot} {e.wafer_id} {verdict} {e.status} {e.source.name}".lower()
        return all(word in hay for word in self.text.split())

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """The source model sorts itself (fast); this proxy only filters."""
        self.sourceModel().sort(column, order)


def _status_matches(e: WaferEntry, wanted: str) -> bool:
    return {
        "Unlabelled": not e.has_labels(),
        "Labelled": e.has_labels(),
        "Draft": e.status is Status.DRAFT,
        "Saved": e.status is Status.SAVED,
        "Predicted": e.prediction is not None,
        "Not predicted": e.prediction is None,
    }.get(wanted, True)


class WaferBrowser(QWidget):
    """Filter box, status filter and the table; emits the entry the user moves to."""

    current_entry_changed = Signal(object)

    def __init__(self, workspace: Workspace, parent=None) -> None:
        super().__init__(parent)
        self.model = WaferTableModel(workspace, self)
        self.proxy = WaferFilter(self)
        self.proxy.setSourceModel(self.model)

        self.search = QLineEdit(placeholderText="Filter: lot, wafer, verdict…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.proxy.set_text)
        self.status = QComboBox()
        self.status.addItems(STATUS_FILTERS)
        self.status.currentTextChanged.connect(self.proxy.set_status)

        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(24)
        hh = self.table.horizontalHeader()
        hh.setHighlightSections(False)
        hh.setStretchLastSection(True)
        hh.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        for col, width in enumerate((106, 48, 54, 82, 58)):
            self.table.setColumnWidth(col, width)
        self.table.selectionModel().currentRowChanged.connect(self._row_changed)
        # a verdict or status that changes after the filter was set (a model run in progress)
        # moves its wafer in or out of the filtered list, a moment later, in one pass
        self._refilter_timer = QTimer(self, singleShot=True, interval=REFILTER_MS)
        self._refilter_timer.timeout.connect(self._refilter)

        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.search, 3)
        top.addWidget(self.status, 2)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(6)
        lay.addLayout(top)
        lay.addWidget(self.table)

    def sizeHint(self) -> QSize:
        return QSize(470, 600)

    # -- navigation --------------------------------------------------------------------------
    def _row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            src = self.proxy.mapToSource(current)
            self.current_entry_changed.emit(self.model.entry(src.row()))

    def current_entry(self) -> WaferEntry | None:
        idx = self.table.currentIndex()
        return self.model.entry(self.proxy.mapToSource(idx).row()) if idx.isValid() else None

    def select(self, entry: WaferEntry) -> None:
        row = self.model.row_of(entry)
        if row < 0:
            return
        idx = self.proxy.mapFromSource(self.model.index(row, 0))
        if idx.isValid():
            self.table.selectionModel().setCurrentIndex(
                idx, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
            )
            self.table.scrollTo(idx)

    def step(self, delta: int) -> bool:
        """Move to the next (+1) or previous (-1) visible wafer; False at either end."""
        n = self.proxy.rowCount()
        if n == 0:
            return False
        cur = self.table.currentIndex()
        row = cur.row() + delta if cur.isValid() else 0
        if not 0 <= row < n:
            return False
        idx = self.proxy.index(row, 0)
        self.table.selectionModel().setCurrentIndex(
            idx, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        )
        self.table.scrollTo(idx)
        return True

    def visible_entries(self) -> list[WaferEntry]:
        return [
            self.model.entry(self.proxy.mapToSource(self.proxy.index(r, 0)).row()) for r in range(self.proxy.rowCount())
        ]

    def refresh_entry(self, entry: WaferEntry) -> None:
        self.model.entry_changed(entry)
        if self.proxy.active() and not self._refilter_timer.isActive():
            self._refilter_timer.start()

    def _refilter(self) -> None:
        if self.proxy.active():
            current = self.current_entry()  # the wafer on screen stays listed while it is
            self.proxy.refilter(current.key if current is not None else None)


__all__ = ["WaferBrowser", "WaferTableModel"]
