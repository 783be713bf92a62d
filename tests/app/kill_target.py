"""Run by test_app_autosave as a separate process: open a file in the real main window, draw
one finished stroke and one stroke still in progress, say EDITED, then keep running until the
test kills it (SIGKILL: no close event, no flush, like a crash or a power cut)."""

from __future__ import annotations

import sys
import time

from PySide6.QtCore import QEvent, Qt
from qtdrive import _send, die_centre, drag

from waferdesk.app.main import make_application
from waferdesk.app.mainwindow import MainWindow
from waferdesk.client.drafts import DraftStore


def main() -> None:
    app = make_application()
    win = MainWindow(DraftStore(), start_engine=False)
    win.show()
    win.open_paths([sys.argv[1]])
    view = win.view
    win.set_active_class(2)  # ring, brush
    drag(view, [die_centre(5, 2), die_centre(5, 11)])  # finished stroke
    win.set_active_class(0)  # edge
    left = Qt.MouseButton.LeftButton
    _send(view, QEvent.Type.MouseButtonPress, *die_centre(15, 3), left, left)
    _send(view, QEvent.Type.MouseMove, *die_centre(15, 3.3), Qt.MouseButton.NoButton, left)
    _send(view, QEvent.Type.MouseMove, *die_centre(15, 3.6), Qt.MouseButton.NoButton, left)
    end = time.monotonic() + 1.0  # the mouse is still down; autosave runs on its timer
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)
    print("EDITED", flush=True)
    app.exec()


if __name__ == "__main__":
    main()
