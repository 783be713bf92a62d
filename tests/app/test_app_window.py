"""The window's plumbing: drag and drop, display options, the command line entry point."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from conftest import known_dies  # tests/app/conftest.py: imported at collection, before other conftests
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDropEvent

from waferdesk.cli.main import main
from waferdesk.core.taxonomy import default_taxonomy

REPO = Path(__file__).resolve().parents[2]
TAX = default_taxonomy()


def test_dropping_files_opens_them(window, wafer_file) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(wafer_file))])
    ev = QDropEvent(
        QPoint(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    window.dropEvent(ev)
    assert len(window.ws) == 4 and window.doc.current is not None


def test_overlay_opacity_visibility_and_colourblind_palette(window, wafer_file) -> None:
    window.open_paths([wafer_file])
    window.browser.step(1)  # a synthetic wafer with a mask
    e = window.doc.current
    cls = int(np.bincount(e.labels[e.labels != 255]).argmax())
    r, c = np.argwhere(e.labels == cls)[0]
    shown = tuple(window.view.rgba[r, c, :3])
    fail = tuple(TAX.die_colors["fail"])
    pal = window.side.palette
    pal.shown[cls].setChecked(False)  # per-class visibility toggle
    assert tuple(window.view.rgba[r, c, :3]) == fail
    pal.shown[cls].setChecked(True)
    assert tuple(window.view.rgba[r, c, :3]) == shown
    pal.opacity.setValue(0)
    assert tuple(window.view.rgba[r, c, :3]) == fail
    pal.opacity.setValue(100)
    assert tuple(window.view.rgba[r, c, :3]) == TAX.classes[cls].color
    pal.cb.setChecked(True)
    assert tuple(window.view.rgba[r, c, :3]) == TAX.classes[cls].color_cb
    window.toggle_overlay()  # H hides the overlay, H again brings it back
    assert tuple(window.view.rgba[r, c, :3]) == fail
    window.toggle_overlay()
    assert pal.opacity.value() == 100


def test_plain_waferdesk_prints_help_when_asked_with_an_empty_list(capsys) -> None:
    assert main([]) == 0
    assert "app" in capsys.readouterr().out


def test_waferdesk_app_command_starts_the_window(tmp_path, wafer_file) -> None:
    home = tmp_path / "home"
    env = dict(os.environ, WAFERDESK_HOME=str(home), QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "waferdesk", "app", str(wafer_file), "--model", str(tmp_path / "none.onnx")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log = home / "logs" / "waferdesk.log"
    try:
        deadline = time.monotonic() + 90
        text = ""
        while time.monotonic() < deadline and "no model" not in text:
            time.sleep(0.3)
            text = log.read_text() if log.exists() else ""
            assert proc.poll() is None, proc.stdout.read()
        assert "opened 4 wafers" in text and "no model: " in text and "none.onnx" in text
    finally:
        proc.terminate()
        proc.wait(30)


def test_the_review_panels_model_picture_follows_the_colour_blind_palette(window) -> None:
    from types import SimpleNamespace

    from waferdesk.core.wafer import FAIL, WaferMap

    dies = known_dies()
    edge = TAX.classes[TAX.index("edge")]
    mask = np.where(dies == FAIL, edge.index, 255).astype(np.uint8)
    review = SimpleNamespace(wafer=WaferMap(dies=dies), labels=mask, prediction=mask, model_version="m-1")
    window.review = SimpleNamespace(current=review, close=lambda: None)  # an engineer reviewing

    def colours() -> set[tuple[int, int, int]]:
        img = window.review_panel.model_picture.pixmap().toImage()
        return {img.pixelColor(x, y).getRgb()[:3] for x in range(0, img.width(), 3) for y in range(0, img.height(), 3)}

    window.review_panel.show_model(review, window.layer_style.colorblind)
    normal = colours()
    window.side.palette.cb.setChecked(True)
    blind = colours()
    assert normal != blind
    window.side.palette.cb.setChecked(False)
    assert colours() == normal
