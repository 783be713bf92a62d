"""Autosave: kill the app mid-work with SIGKILL, reopen the file, find every die drawn."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from waferdesk.app.model.workspace import Status
from waferdesk.client.drafts import DraftStore
from waferdesk.core.taxonomy import IGNORE, default_taxonomy

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def test_drafts_survive_a_killed_app(qtbot, app_home, wafer_file) -> None:
    env = dict(os.environ, WAFERDESK_HOME=str(app_home), QT_QPA_PLATFORM="offscreen")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(HERE), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "kill_target.py"), str(wafer_file)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        line = ""
        while time.monotonic() < deadline and "EDITED" not in line:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
        assert "EDITED" in line, proc.stderr.read()
    finally:
        proc.kill()  # SIGKILL: no chance to save on the way out
        proc.wait(30)
    assert proc.returncode != 0

    from waferdesk.app.mainwindow import MainWindow

    store = DraftStore()
    win = MainWindow(store, start_engine=False)
    qtbot.addWidget(win)
    try:
        win.open_paths([wafer_file])
        entry = win.doc.current
        assert entry.title == "KNOWN / 01"
        assert entry.status is Status.DRAFT
        assert "1 with recovered drafts" in win.statusBar().currentMessage()
        tax = default_taxonomy()
        got = {(int(r), int(c)): tax.names[entry.labels[r, c]] for r, c in np.argwhere(entry.labels != IGNORE)}
        expected = {(5, c): "ring" for c in range(5, 9)} | {(15, 3): "edge"}  # finished + in-progress stroke
        assert got == expected
        # the other wafers of the file were not touched
        assert all(e.status is Status.FROM_FILE for e in win.ws.entries[1:])
    finally:
        win.close()
        store.close()
