"""The main window's file commands: open (menu, folder, drag and drop), save labels, exports.

A mixin of :class:`~waferdesk.app.mainwindow.MainWindow`, kept apart so the window module
stays about wiring; it uses the window's workspace, browser, autosaver and status bar.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

from ..client.drafts import SAVED
from ..core.errors import WaferDeskError
from ..core.formats import READABLE_SUFFIXES
from .model import exporting
from .theme import VIEW_BACKGROUND

log = logging.getLogger(__name__)


class FileCommands:
    # -- opening -----------------------------------------------------------------------------
    def open_paths(self, paths: list[str | Path]) -> None:
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            report = self.ws.load(paths)
        finally:
            QApplication.restoreOverrideCursor()
        self.browser.model.append(report.added)
        if report.added and self.doc.current is None:
            self.browser.select(report.added[0])
        self.page.set_has_content(len(self.ws) > 0)
        self.statusBar().showMessage(report.message(), 8000)
        log.info("%s (%s)", report.message(), ", ".join(str(p) for p in paths))
        if report.added and self.actions["auto_run"].isChecked() and self.engine.available:
            self.run_all()
        if report.errors:
            shown = "\n".join(report.errors[:20]) + (
                f"\n… and {len(report.errors) - 20} more" if len(report.errors) > 20 else ""
            )
            box = QMessageBox(QMessageBox.Icon.Warning, "Some files could not be opened", shown, parent=self)
            box.setModal(False)
            box.show()
            self.error_box = box
        if self.tabs.currentWidget() is self.lot_view:
            self.lot_view.reload(self.doc.current)

    def open_files_dialog(self) -> None:
        patterns = " ".join(f"*{suffix}" for suffix in READABLE_SUFFIXES)
        files, _ = QFileDialog.getOpenFileNames(
            self, "Open wafer files", self._last_dir(), f"Wafer maps ({patterns});;All files (*)"
        )
        if files:
            self._remember_dir(Path(files[0]).parent)
            self.open_paths(files)

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of wafer files", self._last_dir())
        if folder:
            self._remember_dir(Path(folder))
            self.open_paths([folder])

    def _last_dir(self) -> str:
        return str(self.settings.value("paths/last_dir", str(Path.home())))

    def _remember_dir(self, path: Path) -> None:
        self.settings.setValue("paths/last_dir", str(path))

    def dragEnterEvent(self, ev) -> None:
        if ev.mimeData().hasUrls() and any(u.isLocalFile() for u in ev.mimeData().urls()):
            ev.acceptProposedAction()

    def dropEvent(self, ev) -> None:
        paths = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        if paths:
            ev.acceptProposedAction()
            self.open_paths(paths)

    # -- saving and export -------------------------------------------------------------------
    def _file_entries(self, what: str) -> tuple[list, str] | None:
        """The opened files' wafers that Save and the exports write, and the note on the server
        rows (queue, review) left out: their labels go to the server, and a review row is a
        second copy of a wafer that may be open from a file too. None (said) when only server
        rows are open."""
        entries = self.ws.file_entries()
        left = len(self.ws) - len(entries)
        if left and not entries:
            self.statusBar().showMessage(
                f"nothing to {what}: the open wafers are queue or review wafers, whose labels go to the server",
                8000,
            )
            return None
        note = f" ({left} queue or review wafer{'s' if left != 1 else ''} from the server left out)" if left else ""
        return entries, note

    def save_labels(self, path: str | Path | None = None, ask: bool = False) -> Path | None:
        """Write the opened files' wafers (labelled ones with their masks) to a .wdm labels file;
        queue and review wafers are left out (their labels go to the server)."""
        self.autosaver.flush()
        chosen_entries = self._file_entries("save")
        if chosen_entries is None:
            return None
        entries, note = chosen_entries
        if path is None:
            if self.save_path is None or ask:
                default = self.save_path or self._default_save_path()
                chosen, _ = QFileDialog.getSaveFileName(self, "Save labels", str(default), "WaferDesk maps (*.wdm)")
                if not chosen:
                    return None
                path = chosen
            else:
                path = self.save_path
        target = Path(path)
        if target.suffix.lower() != ".wdm":
            target = target.with_suffix(".wdm")
        if any(target.resolve() == e.source.resolve() for e in self.ws.entries):
            self.statusBar().showMessage(f"{target.name} is an opened source file; choose another name", 8000)
            return None
        try:
            exporting.write_labels_wdm(target, entries)
        except (WaferDeskError, OSError) as exc:
            QMessageBox.warning(self, "Save failed", str(exc))
            return None
        self.save_path = target
        for e in entries:
            if e.is_edited():
                self.autosaver.save_entry(e, SAVED)
        self._show_draft_state()
        self.statusBar().showMessage(f"saved labels of {len(entries)} wafers to {target}{note}", 8000)
        return target

    def _default_save_path(self) -> Path:
        entries = self.ws.file_entries()
        if entries:
            src = entries[0].source
            return src.with_name(src.stem + "-labels.wdm")
        return Path.home() / "labels.wdm"

    def _ask_path(self, title: str, suffix: str, filt: str) -> Path | None:
        e = self.doc.current
        stem = e.title.replace(" / ", "_").replace("/", "_") if e is not None else "wafers"
        chosen, _ = QFileDialog.getSaveFileName(self, title, str(Path(self._last_dir()) / f"{stem}{suffix}"), filt)
        return Path(chosen) if chosen else None

    def export_png(self, path: str | Path | None = None) -> Path | None:
        if self.view.rgba is None:
            return None
        path = path or self._ask_path("Export view as PNG", ".png", "PNG images (*.png)")
        if path is None:
            return None
        try:
            out = exporting.write_picture_png(path, self.view.rgba, VIEW_BACKGROUND)
        except (WaferDeskError, OSError) as exc:
            return self._export_failed(exc)
        self.statusBar().showMessage(f"wrote {out}", 6000)
        return out

    def export_csv(self, path: str | Path | None = None) -> Path | None:
        chosen_entries = self._file_entries("export")
        if chosen_entries is None:
            return None
        entries, note = chosen_entries
        path = path or self._ask_path("Export results as CSV", "-results.csv", "CSV (*.csv)")
        if path is None:
            return None
        try:
            out = exporting.write_results_csv(path, entries)
        except (WaferDeskError, OSError) as exc:
            return self._export_failed(exc)
        self.statusBar().showMessage(f"wrote results of {len(entries)} wafers to {out}{note}", 6000)
        return out

    def export_coco(self, path: str | Path | None = None) -> Path | None:
        chosen_entries = self._file_entries("export")
        if chosen_entries is None:
            return None
        entries, note = chosen_entries
        path = path or self._ask_path("Export labels as COCO", "-coco.json", "COCO JSON (*.json)")
        if path is None:
            return None
        try:
            out, n = exporting.write_labels_coco(path, entries)
        except (WaferDeskError, OSError) as exc:
            return self._export_failed(exc)
        self.statusBar().showMessage(f"wrote COCO labels of {n} wafers to {out}{note}", 6000)
        return out

    def _export_failed(self, exc: Exception) -> None:
        """A file that cannot be written (a folder chosen, no permission, disk full): say so."""
        log.warning("export failed: %s", exc)
        QMessageBox.warning(self, "Export failed", str(exc))
