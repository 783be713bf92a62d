"""The self-test's proof that a wafer is on screen, checked against a view that shows nothing;
and the status bar's variant label."""

from __future__ import annotations

import pytest

from waferdesk.app.selftest import SelfTestError, check_drawn


def test_check_drawn_sees_the_wafer_and_not_an_empty_view(qtbot, window, wafer_file) -> None:
    window.open_paths([wafer_file])
    found = {}

    def drawn() -> bool:  # the view's range settles over a few event-loop turns
        try:
            found.update(check_drawn(window))
        except SelfTestError:
            return False
        return True

    qtbot.waitUntil(drawn, timeout=10000)
    assert found["pass"]["pixels"] > 100 and found["fail"]["pixels"] > 0
    window.view.image.setVisible(False)  # the picture is there, but nothing draws it
    with pytest.raises(SelfTestError, match="not on screen"):
        check_drawn(window)


def test_status_bar_names_the_build_variant(window) -> None:
    assert window.build_label.text() == "CPU build"
    assert "onnxruntime" in window.build_label.toolTip()


def test_logs_go_to_the_per_user_folder_with_uncaught_exceptions(app_home, monkeypatch) -> None:
    import logging
    import sys

    from waferdesk.app.main import setup_logging

    monkeypatch.setattr(sys, "excepthook", lambda *a: None)  # restored after the test
    path = setup_logging()
    logger = logging.getLogger("waferdesk")
    handler = logger.handlers[-1]
    try:
        assert path.resolve().is_relative_to(app_home.resolve())
        try:
            raise RuntimeError("boom in a slot")
        except RuntimeError as exc:
            sys.excepthook(type(exc), exc, exc.__traceback__)
        handler.flush()
        text = path.read_text(encoding="utf-8")
        assert "uncaught exception" in text and "RuntimeError: boom in a slot" in text
    finally:
        logger.removeHandler(handler)
        handler.close()


def test_the_model_loads_after_the_first_picture(qtbot, app_home, wafer_file, tiny_model) -> None:
    """Cold start: the wafer is painted before the model's loading competes for the CPU."""
    from waferdesk.app.mainwindow import MainWindow
    from waferdesk.client.drafts import DraftStore

    store = DraftStore()
    win = MainWindow(store, model_path=str(tiny_model))
    qtbot.addWidget(win)
    try:
        assert not win.engine.isRunning() and win.engine.available is None  # nothing painted yet
        win.show()
        win.open_paths([wafer_file])
        qtbot.waitUntil(lambda: win.engine.available is not None, timeout=60000)
        assert win.engine.available, win.model_label.toolTip()
        qtbot.waitUntil(lambda: win.doc.current.prediction is not None, timeout=60000)
    finally:
        win.close()
        store.close()
