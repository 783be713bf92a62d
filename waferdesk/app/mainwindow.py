"""The main window: wires the browser, the wafer and lot views, the side panel, the tools,
autosave and the inference thread together. The parts live in their own modules; the file
commands (open, save, export) and the model commands are mixins in :mod:`.window_files`
and :mod:`.window_model`; this module builds the window and handles the current wafer.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressDialog,
    QTabWidget,
    QToolBar,
)

from .. import __version__
from ..client.drafts import DraftStore
from ..client.paths import config_dir
from ..client.work import LocalSession, WorkClient
from ..core.buildinfo import build_info
from ..core.taxonomy import IGNORE, default_taxonomy
from .actions import MENUS, UNDO_KEYS, ShortcutsDialog, build_actions
from .autosave import Autosaver
from .browser import WaferBrowser
from .document import LabelDocument
from .lotview import LotView
from .model.layers import LayerStyle
from .model.predictions import ProbabilityCache
from .model.readout import die_readout
from .model.workspace import Status, WaferEntry, Workspace
from .side_panel import SidePanel
from .tools import TOOL_CLASSES, ToolSettings
from .view.page import WaferPage
from .view.waferview import WaferView
from .window_files import FileCommands
from .window_model import ModelCommands
from .window_server import ServerCommands
from .workers import InferenceEngine, default_segmenter_factory

log = logging.getLogger(__name__)

PAINT_TOOLS = ("brush", "eraser", "polygon", "fill")
ENGINE_START_LATEST_MS = 2000


class MainWindow(FileCommands, ModelCommands, ServerCommands, QMainWindow):
    def __init__(
        self,
        drafts: DraftStore,
        session: WorkClient | None = None,
        segmenter_factory=default_segmenter_factory,
        model_path: str | None = None,
        start_engine: bool = True,
        outbox_path: Path | None = None,
        token_store=None,
    ) -> None:
        super().__init__()
        self.setWindowTitle("WaferDesk")
        self.setAcceptDrops(True)
        self.session = session or LocalSession()
        self.drafts = drafts
        self.ws = Workspace(drafts)
        self.doc = LabelDocument(self)
        self.doc.editable = self.session.capabilities.can_edit
        self.layer_style = LayerStyle()
        self.tool_settings = ToolSettings()
        self.prob_cache = ProbabilityCache()
        self.save_path: Path | None = None
        self.settings = QSettings(str(config_dir() / "settings.ini"), QSettings.Format.IniFormat)

        self.view = WaferView(self.doc, self.layer_style)
        self.page = WaferPage(self.view)
        self.browser = WaferBrowser(self.ws)
        self.side = SidePanel(self.tool_settings)
        self.lot_view = LotView(self.ws)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.page, "Wafer")
        self.tabs.addTab(self.lot_view, "Lot")
        self.setCentralWidget(self.tabs)
        self._docks()

        self.tools = {cls.name: cls(self.doc, self.tool_settings) for cls in TOOL_CLASSES}
        self.autosaver = Autosaver(drafts, self.doc, self)
        self.actions = build_actions(self, self._handlers())
        self._undo_actions()
        auto = self.actions["auto_run"]
        auto.setChecked(self.settings.value("model/auto_run", True, type=bool))
        auto.toggled.connect(lambda on: self.settings.setValue("model/auto_run", on))
        one_view = self.actions["one_view"]
        one_view.setChecked(self.settings.value("model/one_view", False, type=bool))
        one_view.setEnabled(False)  # until a model whose card asks for several views is loaded
        one_view.toggled.connect(self.set_one_view)
        self._menus()
        self._toolbar()
        self._statusbar()
        self._connect()
        self.set_tool("navigate")
        self._set_mode_actions("labels")
        self._panel_timer = QTimer(self, singleShot=True, interval=60)
        self._panel_timer.timeout.connect(self.update_panels)

        self.segmenter_factory = segmenter_factory
        self.engine = InferenceEngine(model_path, "auto", segmenter_factory, self, views=self.preferred_views())
        self._wire_engine()
        self._server_init(outbox_path, token_store)
        self.progress: QProgressDialog | None = None
        self._progress_job = 0
        self._run_all_queued = False  # Run all asked for while the model was still loading
        self._run_current_queued: str | None = None  # the wafer Run model was asked for while loading
        self._engine_pending = start_engine
        if start_engine:
            # Loading the model takes a second or more of CPU and the GIL: start it once the
            # wafer view has painted its first frame (the picture first), or after 2 s at most.
            self.view.viewport().installEventFilter(self)
            QTimer.singleShot(ENGINE_START_LATEST_MS, self._start_engine)
        screen = QApplication.primaryScreen()
        if screen is not None:
            avail = screen.availableGeometry()
            self.resize(min(1600, int(avail.width() * 0.92)), min(1000, int(avail.height() * 0.92)))
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        self.update_panels()

    # -- construction ------------------------------------------------------------------------
    def _wire_engine(self) -> None:
        self.engine.ready.connect(self._model_ready)
        self.engine.unavailable.connect(self._model_unavailable)
        self.engine.result.connect(self._model_result)
        self.engine.failed.connect(lambda _k, msg: self.statusBar().showMessage(f"model failed: {msg}", 8000))
        self.engine.progress.connect(self._job_progress)
        self.engine.job_finished.connect(self._job_finished)

    def eventFilter(self, obj, ev) -> bool:
        if self._engine_pending and ev.type() == QEvent.Type.Paint and obj is self.view.viewport():
            QTimer.singleShot(0, self._start_engine)  # after this paint has finished
        return super().eventFilter(obj, ev)

    def _start_engine(self) -> None:
        if self._engine_pending:
            self._engine_pending = False
            self.view.viewport().removeEventFilter(self)
            self.engine.start()

    def _docks(self) -> None:
        left = QDockWidget("Wafers", self)
        left.setObjectName("wafers")
        left.setWidget(self.browser)
        left.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, left)
        right = QDockWidget("Annotate", self)
        right.setObjectName("annotate")
        right.setWidget(self.side)
        right.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, right)
        self._docks_sized = False
        self._dock_pair = (left, right)

    def _handlers(self) -> dict:
        h = {
            "open": self.open_files_dialog,
            "open_folder": self.open_folder_dialog,
            "save": self.save_labels,
            "save_as": lambda: self.save_labels(ask=True),
            "export_png": self.export_png,
            "export_csv": self.export_csv,
            "export_coco": self.export_coco,
            "quit": self.close,
            "accept": self.accept_prediction,
            "clear_labels": self.clear_labels,
            "clear_history": self.doc.clear_history,
            "brush_bigger": lambda: self.side.tool_options.grow(1),
            "brush_smaller": lambda: self.side.tool_options.grow(-1),
            "brush_shape": self.side.tool_options.toggle_shape,
            "finish": lambda: self.view.tool is not None and self.view.tool.finish(),
            "cancel": lambda: self.view.tool is not None and self.view.tool.cancel(),
            "fit": self.view.fit,
            "zoom_in": lambda: self.view.zoom(1.25),
            "zoom_out": lambda: self.view.zoom(0.8),
            "toggle_overlay": self.toggle_overlay,
            "lot_view": lambda: self.tabs.setCurrentWidget(self.lot_view),
            "next": lambda: self.browser.step(1),
            "previous": lambda: self.browser.step(-1),
            "find": lambda: (self.browser.search.setFocus(), self.browser.search.selectAll()),
            "run_current": self.run_current,
            "run_all": self.run_all,
            "shortcuts": self.show_shortcuts,
            "about": self.show_about,
            **self._server_handlers(),
        }
        for name in ("navigate", *PAINT_TOOLS):
            h[name] = lambda n=name: self.set_tool(n)
        for mode in ("labels", "prediction", "uncertainty"):
            h[f"mode_{mode}"] = lambda m=mode: self.set_mode(m)
        return h

    def _undo_actions(self) -> None:
        # the group's own undo/redo actions could not be held back during a stroke: these follow
        # the group (enabled, the step's name in the menu) and go through undo() / redo()
        group = self.doc.group
        self.undo_action, self.redo_action = QAction("Undo", self), QAction("Redo", self)
        self.undo_action.triggered.connect(self.undo)
        self.redo_action.triggered.connect(self.redo)
        for action, word, can, text in (
            (self.undo_action, "Undo", group.canUndoChanged, group.undoTextChanged),
            (self.redo_action, "Redo", group.canRedoChanged, group.redoTextChanged),
        ):
            can.connect(action.setEnabled)
            text.connect(lambda t, a=action, w=word: a.setText(f"{w} {t}" if t else w))
            action.setEnabled(False)
            action.setIconText(word)  # the menu names the step; the toolbar button keeps its width
        self.undo_action.setShortcuts([QKeySequence(k) for k in UNDO_KEYS["Undo"]])
        self.redo_action.setShortcuts([QKeySequence(k) for k in UNDO_KEYS["Redo"]])
        self.addAction(self.undo_action)
        self.addAction(self.redo_action)
        for cls in default_taxonomy().classes:
            act = self.addAction(cls.name)
            act.setShortcut(QKeySequence(cls.key))
            act.triggered.connect(lambda _c=False, i=cls.index: self.set_active_class(i))

    def _menus(self) -> None:
        menus = {name: self.menuBar().addMenu(f"&{name}") for name in MENUS}
        menus["Edit"].addAction(self.undo_action)
        menus["Edit"].addAction(self.redo_action)
        menus["Edit"].addSeparator()
        separators_before = {
            "export_png",
            "quit",
            "brush_bigger",
            "finish",
            "mode_labels",
            "toggle_overlay",
            "claim_next",
            "sync_now",
        }
        from .actions import ACTIONS

        for spec in ACTIONS:
            if spec.id in separators_before:
                menus[spec.menu].addSeparator()
            menus[spec.menu].addAction(self.actions[spec.id])

    def _toolbar(self) -> None:
        tb = QToolBar("Main", self)
        tb.setObjectName("main")
        tb.setMovable(False)
        self.addToolBar(tb)
        a = self.actions
        for ids in (
            ("open", "open_folder", "save"),
            ("navigate", "brush", "eraser", "polygon", "fill"),
            ("accept",),
            ("run_current", "run_all"),
        ):
            for i in ids:
                tb.addAction(a[i])
            tb.addSeparator()
        tb.addAction(self.undo_action)
        tb.addAction(self.redo_action)
        short = {
            "open": "Open",
            "open_folder": "Folder",
            "save": "Save",
            "run_current": "Run model",
            "run_all": "Run all",
        }
        for key, text in short.items():
            a[key].setIconText(text)

    def _statusbar(self) -> None:
        sb = self.statusBar()
        self.readout = self.page.readout  # under the map, where the eye is
        self.draft_label = QLabel("")
        self.model_label = QLabel("Model: loading…")
        info = build_info()  # which ONNX Runtime this installation carries: the CPU or the GPU variant
        self.build_label = QLabel(f"{info.variant.upper()} build")
        self.build_label.setToolTip(
            f"WaferDesk {info.version}, {info.variant} variant ({info.onnxruntime}; "
            f"{'bundle built ' + info.built_at if info.built_at else info.source})"
        )
        sb.addPermanentWidget(self.draft_label)
        sb.addPermanentWidget(self.model_label)
        sb.addPermanentWidget(self.build_label)

    def _connect(self) -> None:
        self.browser.current_entry_changed.connect(self.open_entry)
        self.doc.labels_changed.connect(self._labels_changed)
        self.view.hovered.connect(self._hovered)
        self.view.mode_changed.connect(self._mode_changed)
        self.page.mode_chosen.connect(self.set_mode)
        pal = self.side.palette
        pal.class_chosen.connect(self.set_active_class)
        pal.visibility_changed.connect(self._visibility)
        pal.opacity_changed.connect(self._opacity)
        pal.colorblind_changed.connect(self._colorblind)
        self.autosaver.status_changed.connect(self.browser.refresh_entry)
        self.autosaver.status_changed.connect(lambda _e: self._show_draft_state())
        self.autosaver.save_failed.connect(lambda msg: self.statusBar().showMessage(msg, 10000))
        self.tabs.currentChanged.connect(self._tab_changed)

    # -- current wafer -----------------------------------------------------------------------
    def open_entry(self, entry: WaferEntry | None) -> None:
        self.autosaver.flush()
        self.doc.set_current(entry)
        self.doc.editable = self.session.capabilities.can_edit and not (entry is not None and entry.read_only)
        if entry is not None:
            h, w = entry.wafer.shape
            self.page.title.setText(entry.title)
            wafer = entry.wafer
            self.page.subtitle.setText(
                f"{h}×{w} dies · yield {wafer.yield_:.1%} · {wafer.n_fail} fails · notch {wafer.notch}"
            )
            self.setWindowTitle(f"{entry.title} — WaferDesk")
            if entry.prediction is not None:
                self.prob_cache.touch(entry.prediction)
            # a server's stored prediction (a queue or review wafer) stays its model mask: it is
            # what the labels started from; Run model (Ctrl+R) replaces it when asked
            from_server = entry.prediction is not None and entry.prediction.provider == "server"
            if (
                self.engine.available
                and not from_server
                and (entry.prediction is None or entry.prediction.details is None)
            ):
                self.engine.request(entry.key, entry.wafer)
            if from_server and self.view.mode == "uncertainty":
                self.set_mode("prediction")  # its mask, not an empty uncertainty map
            if self.tabs.currentWidget() is self.lot_view:
                self.lot_view.reload(entry)
        self._show_draft_state()
        self.update_panels()

    def _labels_changed(self, entry: WaferEntry, _change) -> None:
        if entry is self.doc.current:
            self._panel_timer.start()

    def update_panels(self) -> None:
        e = self.doc.current
        model_ready = e is not None and e.prediction is not None
        self.page.set_mode_enabled("prediction", model_ready, "run the model first (Ctrl+R)")
        self.page.set_mode_enabled(
            "uncertainty", model_ready and e.prediction.details is not None, "run the model first (Ctrl+R)"
        )
        self.actions["accept"].setEnabled(model_ready and self.doc.editable)
        if e is None:
            self.side.results.show_summary(None, "no wafer open")
            self.side.palette.set_counts(None)
            return
        labels_summary = e.summary()
        self.side.palette.set_counts(labels_summary.counts)
        cb = self.layer_style.colorblind
        if self.view.mode == "labels" or not model_ready:
            if e.has_labels():
                self.side.results.show_summary(labels_summary, "from the labels", cb)
            elif model_ready:
                self.side.results.show_summary(
                    e.predicted_summary(), f"from the model {e.prediction.model_version}", cb
                )
            else:
                self.side.results.show_summary(labels_summary, "no labels yet", cb)
        else:
            self.side.results.show_summary(e.predicted_summary(), f"from the model {e.prediction.model_version}", cb)

    def _show_draft_state(self) -> None:
        e = self.doc.current
        if e is not None and e.remote and e.status is Status.FROM_FILE:
            self.draft_label.setText(
                "labels: model pre-annotation" if e.remote == "in queue" else "labels: as submitted"
            )
        else:
            self.draft_label.setText("" if e is None else f"labels: {e.status}")

    def _hovered(self, row: int, col: int) -> None:
        e = self.doc.current
        self.readout.setText(die_readout(e, row, col) if e is not None and row >= 0 else " ")

    def _tab_changed(self, _index: int) -> None:
        if self.tabs.currentWidget() is self.lot_view:
            self.lot_view.reload(self.doc.current)

    # -- tools, classes, display -------------------------------------------------------------
    def set_tool(self, name: str) -> None:
        if name in PAINT_TOOLS and not self.doc.editable:
            self.statusBar().showMessage("your role can view but not edit labels", 5000)
            name = "navigate"
        for tool_name in ("navigate", *PAINT_TOOLS):
            self.actions[tool_name].setChecked(tool_name == name)
        self.view.set_tool(self.tools[name])
        self.side.tool_options.show_tool(name)
        if name in PAINT_TOOLS and self.view.mode != "labels":
            self.set_mode("labels")

    def set_active_class(self, index: int) -> None:
        self.doc.set_active_class(index)
        self.side.palette.set_active(index)
        if self.view.tool is None or self.view.tool.name == "navigate":
            self.set_tool("brush")

    def set_mode(self, mode: str) -> None:
        e = self.doc.current
        if mode != "labels" and (e is None or e.prediction is None):
            self.statusBar().showMessage("no prediction for this wafer yet: run the model (Ctrl+R)", 5000)
            mode = "labels"
        elif mode == "uncertainty" and e.prediction.provider == "server":  # a mask without probabilities
            self.statusBar().showMessage("no per-die probabilities for this wafer: run the model (Ctrl+R)", 5000)
            mode = "prediction"
        self.view.set_mode(mode)
        self._mode_changed(self.view.mode)

    def _mode_changed(self, mode: str) -> None:
        self._set_mode_actions(mode)
        self.page.set_mode(mode)
        self.update_panels()

    def _set_mode_actions(self, mode: str) -> None:
        for m in ("labels", "prediction", "uncertainty"):
            self.actions[f"mode_{m}"].setChecked(m == mode)

    def _visibility(self, visible: np.ndarray) -> None:
        self.layer_style.visible = visible
        self.view.refresh()

    def _opacity(self, value: float) -> None:
        self.layer_style.opacity = value
        self.view.refresh()

    def _colorblind(self, on: bool) -> None:
        self.layer_style.colorblind = on
        self.view.refresh()
        self.browser.model.set_colorblind(on)
        if self.review is not None and self.review.current is not None:
            self.review_panel.show_model(self.review.current, on)
        self.update_panels()

    def toggle_overlay(self) -> None:
        slider = self.side.palette.opacity
        if slider.value() > 0:
            self._last_opacity = slider.value()
            slider.setValue(0)
        else:
            slider.setValue(getattr(self, "_last_opacity", 85))

    # -- editing -----------------------------------------------------------------------------
    def _stroke_held(self) -> bool:
        """A brush or eraser stroke is being painted: undo and redo wait for its end, or they
        would change dies under the stroke and its own undo step would record the mix."""
        if self.view.tool is not None and self.view.tool.held:
            self.statusBar().showMessage("finish the stroke first (release the button; Esc cancels it)", 5000)
            return True
        return False

    def undo(self) -> None:
        if not self._stroke_held():
            self.doc.group.undo()

    def redo(self) -> None:
        if not self._stroke_held():
            self.doc.group.redo()

    def accept_prediction(self) -> None:
        e = self.doc.current
        if e is None or e.prediction is None:
            self.statusBar().showMessage("no prediction for this wafer yet: run the model (Ctrl+R)", 5000)
            return
        if not self.doc.editable:
            return
        if self.doc.replace_labels(e, e.prediction.labels, "Accept prediction"):
            self.set_mode("labels")
            self.statusBar().showMessage("prediction accepted as labels (Ctrl+Z undoes)", 5000)

    def clear_labels(self) -> None:
        e = self.doc.current
        if e is None or not self.doc.editable:
            return
        if self.doc.replace_labels(e, np.full(e.wafer.shape, IGNORE, np.uint8), "Clear labels"):
            self.set_mode("labels")  # show what was cleared, as Accept prediction does

    # -- help and closing --------------------------------------------------------------------
    def show_shortcuts(self) -> None:
        self.shortcuts_dialog = ShortcutsDialog(self)
        self.shortcuts_dialog.show()

    def show_about(self) -> None:
        QMessageBox.about(
            self,
            "About WaferDesk",
            f"<b>WaferDesk {__version__}</b><br>Wafer-map defect patterns: view, segment, label.<br>"
            f"Session: {self.session.description}",
        )

    def showEvent(self, ev) -> None:
        super().showEvent(ev)
        if not self._docks_sized:  # dock sizes only stick once the window has its size
            self._docks_sized = True
            self.resizeDocks(list(self._dock_pair), [475, 320], Qt.Orientation.Horizontal)

    def closeEvent(self, ev: QCloseEvent) -> None:
        self._engine_pending = False
        self.autosaver.flush()
        self.sign_out(forget=False)
        self.model_net.close(wait=False)
        self._resuming = None
        self.resume_net.close(wait=False)
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.engine.stop()
        super().closeEvent(ev)
