"""Start the desktop app: Qt application, theme, logging to the per-user log folder (uncaught
exceptions included: an installed app often has no console), the drafts database, the main
window; open the given files or the bundled samples."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from ..client.drafts import DraftStore
from ..client.paths import log_dir
from ..core.formats import expand_paths
from ..core.resources import resource_path
from .mainwindow import MainWindow
from .theme import apply_theme


def sample_paths() -> list[Path]:
    """The sample wafers shipped under resources/samples (none when the folder is absent)."""
    folder = resource_path("samples")
    return expand_paths([folder]) if folder.is_dir() else []


def setup_logging() -> Path:
    path = log_dir() / "waferdesk.log"
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("waferdesk")
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    previous = sys.excepthook

    def log_uncaught(kind, exc, tb) -> None:  # a windowed app has no console: keep the trace in the log
        root.critical("uncaught exception", exc_info=(kind, exc, tb))
        previous(kind, exc, tb)

    sys.excepthook = log_uncaught
    return path


def make_application(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance() or QApplication(argv or [sys.argv[0]])
    app.setApplicationName("WaferDesk")
    app.setOrganizationName("WaferDesk")
    icon = resource_path("icons", "waferdesk.png")
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))
    apply_theme(app)  # type: ignore[arg-type]
    return app  # type: ignore[return-value]


def run_app(paths: list[str] | None = None, model_path: str | None = None) -> int:
    """Open the window on ``paths`` (or the samples) and run the event loop; returns the exit code."""
    setup_logging()
    app = make_application()
    window = MainWindow(DraftStore(), model_path=model_path)
    window.show()
    window.open_paths(list(paths) if paths else sample_paths())
    window.resume_last_session()  # the server signed in to last time, with the kept token
    code = app.exec()
    window.drafts.close()
    return int(code)
