"""Review mode (engineers, admins): the submitted annotations awaiting review, each opened
with the model's mask beside it (View > Show labels / Show model mask, L / M, toggles
annotation and prediction on the same map), approved or rejected with a reason.

The list and every wafer load in a worker thread; the wafers open read-only (a review does
not edit the annotator's labels)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..client.server_session import ReviewEntry, ServerSession
from ..core.render import wafer_picture
from ..core.wafer import FAIL, LabelMask
from .conflict import _when
from .model.predictions import from_mask
from .model.workspace import WaferEntry
from .net import NetRunner

COLUMNS = ("Wafer", "Annotator", "Submitted", "Dies", "Main class")
MODEL_PICTURE = 260  # px


class ReviewPanel(QWidget):
    """The list (dock) with Refresh / Approve / Reject buttons."""

    open_requested = Signal(int)  # annotation id

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.rows: list[dict[str, Any]] = []
        self.title = QLabel("Submitted annotations awaiting review")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        for col, width in enumerate((146, 76, 88, 44)):
            self.table.setColumnWidth(col, width)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.currentCellChanged.connect(self._row_changed)
        self.refresh_button = QPushButton("Refresh")
        self.approve_button = QPushButton("Approve")
        self.reject_button = QPushButton("Reject…")
        self.approve_button.setToolTip("approve: the annotation becomes the wafer's ground truth")
        self.reject_button.setToolTip("reject with a reason: it goes back to its annotator")
        buttons = QHBoxLayout()
        for b in (self.refresh_button, self.approve_button, self.reject_button):
            buttons.addWidget(b)
        self.info = QLabel("")
        self.info.setWordWrap(True)
        # side by side: the map shows the annotation, this picture the model's mask
        self.model_title = QLabel("")
        self.model_title.setWordWrap(True)
        self.model_picture = QLabel()
        self.model_picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.model_picture.setMinimumHeight(MODEL_PICTURE)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(self.title)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.model_title)
        lay.addWidget(self.model_picture)
        lay.addWidget(self.info)
        lay.addLayout(buttons)

    def show_model(self, review: ReviewEntry | None, colorblind: bool = False) -> None:
        """The model's mask of the wafer under review, beside the annotation on the map (in the
        map's palette)."""
        if review is None or review.prediction is None:
            self.model_title.setText("")
            self.model_picture.clear()
            return
        rgb = np.ascontiguousarray(
            wafer_picture(review.wafer, LabelMask(review.prediction), target=MODEL_PICTURE, colorblind=colorblind)
        )
        h, w = rgb.shape[:2]
        image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
        self.model_picture.setPixmap(QPixmap.fromImage(image))
        fails = review.wafer.dies == FAIL
        differ = int((fails & (review.labels != review.prediction)).sum())
        self.model_title.setText(
            f"<b>Model {review.model_version}</b> (M shows it on the map): differs from the annotation on "
            f"<b>{differ}</b> of {int(fails.sum())} failing dies"
        )

    def set_rows(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            a = row["annotation"]
            counts = a.get("counts") or {}
            main = max(counts, key=counts.get) if counts else ""
            flag = " ⚑" if (row.get("agreement") or {}).get("flagged") else ""
            cells = (
                row.get("wafer_title", f"wafer {a['wafer_id']}") + flag,
                a.get("annotator") or "?",
                _when(a.get("submitted_at") or a.get("updated_at"))[5:16],  # MM-DD HH:MM
                str(a.get("n_labelled", "")),
                main,
            )
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c == 0 and flag:
                    item.setToolTip("annotators of this wafer disagree")
                self.table.setItem(r, c, item)
        self.title.setText(f"Submitted annotations awaiting review: {len(rows)}")
        self.set_enabled(False)

    def set_enabled(self, on: bool) -> None:
        self.approve_button.setEnabled(on)
        self.reject_button.setEnabled(on)

    def _row_changed(self, row: int, *_args) -> None:
        if 0 <= row < len(self.rows):
            self.open_requested.emit(int(self.rows[row]["annotation"]["id"]))

    def remove(self, annotation_id: int) -> None:
        """Drop a reviewed row and open the next one (reviews go one after another)."""
        keep = [r for r in self.rows if r["annotation"]["id"] != annotation_id]
        self.table.blockSignals(True)
        self.set_rows(keep)
        self.table.setCurrentCell(-1, -1)
        self.table.blockSignals(False)
        if keep:
            self.table.setCurrentCell(0, 0)


class ReviewController(QObject):
    def __init__(self, window, session: ServerSession, panel: ReviewPanel) -> None:
        super().__init__(window)
        self.win, self.session, self.panel = window, session, panel
        self.api = session.api.clone()
        self.net = NetRunner("wd-review", self)
        self.open: dict[str, ReviewEntry] = {}  # workspace key -> review
        self.current: ReviewEntry | None = None
        panel.refresh_button.clicked.connect(self.refresh)
        panel.approve_button.clicked.connect(self.approve)
        panel.reject_button.clicked.connect(self.reject)
        panel.open_requested.connect(self.open_annotation)

    def refresh(self) -> None:
        def load() -> list[dict[str, Any]]:
            rows = self.session.review_list(self.api)
            titles: dict[int, str] = {}
            for row in rows:
                wid = int(row["annotation"]["wafer_id"])
                if wid not in titles:
                    w = self.api.get_wafer(wid, grid=False)
                    titles[wid] = f"{w['lot']} / {w['wafer_id']}"
                row["wafer_title"] = titles[wid]
            return rows

        self.panel.info.setText("loading…")
        self.net.run(load, self._listed, self._failed)

    def _listed(self, rows: list[dict[str, Any]]) -> None:
        self.panel.info.setText("" if rows else "nothing to review")
        self.panel.set_rows(rows)

    def _failed(self, exc: BaseException) -> None:
        self.panel.info.setText(str(exc))
        self.win.statusBar().showMessage(str(exc), 8000)

    def open_annotation(self, annotation_id: int) -> None:
        self.panel.set_enabled(False)
        self.net.run(lambda: self.session.fetch_review(annotation_id, self.api), self._show, self._failed)

    def _show(self, review: ReviewEntry) -> WaferEntry:
        a = review.annotation
        entry = WaferEntry(
            review.wafer,
            Path(f"{self.session.server}/annotations/{a['id']}"),
            int(a["id"]),
            given=LabelMask(review.labels),
            # a key of its own: the same wafer open from a local file (or claimed from the
            # queue) keeps its labels, drafts and editing; the review is a read-only row
            key="review:" + review.wafer.content_hash(),
        )
        entry = self.win.ws.add(entry)
        entry.labels = review.labels.copy()
        entry.remote, entry.read_only = f"review · {a.get('annotator') or '?'}", True
        if review.prediction is not None:
            entry.prediction = from_mask(review.prediction, review.wafer, review.model_version)
        self.open[entry.key] = review
        self.current = review
        if self.win.browser.model.row_of(entry) < 0:
            self.win.browser.model.append([entry])
        self.win.page.set_has_content(True)
        self.win.browser.select(entry)
        self.win.open_entry(entry)
        self.win.view.refresh()
        self.panel.show_model(review, self.win.layer_style.colorblind)
        self.panel.info.setText(
            f"On the map: annotation {a['id']} (version {a['version']}) by {a.get('annotator') or '?'}, "
            f"{a.get('source', '').replace('_', ' ')}, {a.get('time_spent_s', 0):.0f} s · L / M toggle the map"
        )
        self.panel.set_enabled(True)
        return entry

    def approve(self) -> None:
        r = self.current
        if r is None:
            return
        a = r.annotation
        self.net.run(lambda: self.api.approve(int(a["id"]), int(a["version"])), self._reviewed, self._failed)

    def reject(self, reason: str | None = None) -> None:
        r = self.current
        if r is None:
            return
        if reason is None:
            reason, ok = QInputDialog.getText(
                self.win, "Reject annotation", "Why is it rejected? (the annotator sees this)"
            )
            if not ok or not reason.strip():
                return
        a = r.annotation
        self.net.run(
            lambda: self.api.reject(int(a["id"]), int(a["version"]), reason.strip()), self._reviewed, self._failed
        )

    def _reviewed(self, ann: dict[str, Any]) -> None:
        self.current = None
        self.panel.show_model(None)
        self.panel.remove(int(ann["id"]))
        self.panel.info.setText(f"annotation {ann['id']} {ann['status']}")
        for key, rev in self.open.items():
            if rev.annotation["id"] == ann["id"]:
                e = self.win.ws.get(key)
                if e is not None:
                    e.remote = ann["status"]
                    self.win.browser.refresh_entry(e)
        self.win.statusBar().showMessage(f"annotation {ann['id']} {ann['status']}", 5000)

    def close(self) -> None:
        self.net.close()


__all__ = ["ReviewController", "ReviewPanel"]
