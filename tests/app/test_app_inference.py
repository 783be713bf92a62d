"""Local inference from the window: the worker thread, the status bar, the verdict column."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from waferdesk.app.browser import COL_UNCERTAINTY, COL_VERDICT
from waferdesk.core.inference import Segmenter


def make_window(qtbot, model_path):
    from waferdesk.app.mainwindow import MainWindow
    from waferdesk.client.drafts import DraftStore

    store = DraftStore()
    win = MainWindow(store, model_path=str(model_path))
    qtbot.addWidget(win)
    win.show()
    return win, store


@pytest.fixture
def loading_window(qtbot, app_home, wafer_file, tiny_model):
    """A window on ``wafer_file`` with auto-run off, whose model loads only once the yielded
    event is set: what a click before the model is ready meets."""
    from waferdesk.app.mainwindow import MainWindow
    from waferdesk.app.workers import default_segmenter_factory
    from waferdesk.client.drafts import DraftStore

    loaded = threading.Event()

    def slow_factory(path, providers):
        loaded.wait(30)
        return default_segmenter_factory(path, providers)

    store = DraftStore()
    win = MainWindow(store, segmenter_factory=slow_factory, model_path=str(tiny_model), start_engine=False)
    qtbot.addWidget(win)
    win.show()
    win.actions["auto_run"].setChecked(False)
    win.open_paths([wafer_file])
    try:
        yield win, loaded
    finally:
        loaded.set()
        win.close()
        store.close()


def test_worker_fills_the_verdict_column(qtbot, app_home, wafer_file, tiny_model) -> None:
    win, store = make_window(qtbot, tiny_model)
    try:
        # the engine's flag and the status bar are two queued slots of one signal: wait for both
        qtbot.waitUntil(
            lambda: win.engine.available is not None and not win.model_label.text().endswith("loading…"),
            timeout=60000,
        )
        assert win.engine.available, win.model_label.toolTip()
        assert win.model_label.text().startswith("Model ") and "CPU" in win.model_label.text()
        assert "CPUExecutionProvider" in win.model_label.toolTip()
        # opening a file runs the model on all its wafers in the worker, with a progress dialog
        with qtbot.waitSignal(win.engine.job_finished, timeout=60000) as finished:
            win.open_paths([wafer_file])
            assert win.progress is not None and win.progress.isVisible()
        assert finished.args[1] == 4 and finished.args[2] is False  # 4 wafers, not cancelled
        assert win.progress is None
        current = win.doc.current
        qtbot.waitUntil(lambda: current.prediction is not None, timeout=30000)
        win.set_mode("uncertainty")
        assert win.view.mode == "uncertainty"
        assert win.run_all() == 0  # nothing left to do
        reference = Segmenter(tiny_model, providers="cpu", cache=False)
        model = win.browser.model
        for row, entry in enumerate(win.ws.entries):
            expected = reference.predict(entry.wafer)
            assert model.data(model.index(row, COL_VERDICT)) == str(expected.summary.verdict)
            assert model.data(model.index(row, COL_UNCERTAINTY)) == f"{expected.uncertainty['entropy_mean']:.3f}"
            assert (entry.prediction.labels == expected.mask.labels).all()
    finally:
        win.close()
        store.close()


def test_without_a_model_the_app_still_opens_and_says_so(qtbot, app_home, wafer_file, tmp_path: Path) -> None:
    win, store = make_window(qtbot, tmp_path / "missing.onnx")
    assert win.actions["auto_run"].isChecked()
    try:
        # the engine's flag and the status bar are two queued slots of one signal: wait for both
        qtbot.waitUntil(
            lambda: win.engine.available is not None and "No model" in win.model_label.text(), timeout=30000
        )
        assert win.engine.available is False
        assert "No model available" in win.model_label.text()
        assert "missing.onnx" in win.model_label.toolTip()
        assert not win.actions["run_all"].isEnabled()
        win.open_paths([wafer_file])
        assert win.view.rgba is not None and len(win.ws) == 4
    finally:
        win.close()
        store.close()


def test_a_model_whose_card_asks_for_views_runs_them_in_the_app(qtbot, app_home, wafer_file, tmp_path: Path) -> None:
    from model_fixtures import make_tiny_model

    model_path = make_tiny_model(tmp_path, name="tta", inference={"views": 4})
    win, store = make_window(qtbot, model_path)
    try:
        qtbot.waitUntil(
            lambda: win.engine.available is not None and not win.model_label.text().endswith("loading…"),
            timeout=60000,
        )
        assert "4 rotated views" in win.model_label.toolTip() and win.model_label.text().endswith("· 4 views")
        with qtbot.waitSignal(win.engine.job_finished, timeout=60000):
            win.open_paths([wafer_file])
        current = win.doc.current
        qtbot.waitUntil(lambda: current.prediction is not None, timeout=30000)
        four = Segmenter(model_path, providers="cpu", cache=False).predict(current.wafer)
        one = Segmenter(model_path, providers="cpu", cache=False, views=1).predict(current.wafer)
        assert four.views == 4 and (current.prediction.labels == four.mask.labels).all()
        assert not (four.probs == one.probs).all()  # the views changed the answer the app shows
    finally:
        win.close()
        store.close()


def test_model_fast_runs_one_view_and_is_remembered(qtbot, app_home, wafer_file, tmp_path: Path) -> None:
    from model_fixtures import make_tiny_model

    model_path = make_tiny_model(tmp_path, name="tta", inference={"views": 4})
    four = Segmenter(model_path, providers="cpu", cache=False)
    one = Segmenter(model_path, providers="cpu", cache=False, views=1)

    def loaded(win) -> bool:
        return win.engine.available is not None and not win.model_label.text().endswith("loading…")

    win, store = make_window(qtbot, model_path)
    try:
        qtbot.waitUntil(lambda: loaded(win), timeout=60000)
        fast = win.actions["one_view"]
        assert fast.isEnabled() and not fast.isChecked()
        with qtbot.waitSignal(win.engine.job_finished, timeout=60000):
            win.open_paths([wafer_file])
        current = win.doc.current
        qtbot.waitUntil(lambda: current.prediction is not None, timeout=30000)
        assert current.prediction.views == 4
        fast.trigger()  # Model > Fast: the wafer on screen runs again, in one view
        qtbot.waitUntil(lambda: current.prediction.views == 1, timeout=30000)
        assert (current.prediction.labels == one.predict(current.wafer).mask.labels).all()
        assert not win.model_label.text().endswith("views") and "Model > Fast" in win.model_label.toolTip()
        assert win.engine.segmenter.session is win.engine._loaded.session  # no second model load
    finally:
        win.close()
        store.close()

    win, store = make_window(qtbot, model_path)  # the choice is remembered
    try:
        qtbot.waitUntil(lambda: loaded(win), timeout=60000)
        assert win.actions["one_view"].isChecked() and win.engine.segmenter.views == 1
        win.actions["one_view"].trigger()  # back to the card's 4 views
        qtbot.waitUntil(lambda: win.model_label.text().endswith("· 4 views"), timeout=30000)
        win.open_paths([wafer_file])
        current = win.doc.current
        qtbot.waitUntil(lambda: current.prediction is not None, timeout=30000)
        assert current.prediction.views == 4
        assert (current.prediction.labels == four.predict(current.wafer).mask.labels).all()
    finally:
        win.close()
        store.close()


def test_model_fast_is_disabled_for_a_one_view_model(qtbot, app_home, tiny_model) -> None:
    win, store = make_window(qtbot, tiny_model)
    try:
        qtbot.waitUntil(lambda: win.engine.available is not None, timeout=60000)
        qtbot.waitUntil(lambda: not win.model_label.text().endswith("loading…"), timeout=30000)
        assert not win.actions["one_view"].isEnabled()
    finally:
        win.close()
        store.close()


class _SlowSegmenter:
    """Writes down which wafers it ran, in order; holds on to the first until ``go`` is set."""

    views, provider, model_version = 1, "CPUExecutionProvider", "slow-1"

    def __init__(self) -> None:
        import threading

        self.ran: list[str] = []
        self.started, self.go = threading.Event(), threading.Event()

    def predict_many(self, wafers, batch_size=1):
        from types import SimpleNamespace

        import numpy as np

        from waferdesk.core.wafer import LabelMask

        out = []
        self.started.set()
        for w in wafers:
            self.go.wait(30)
            self.ran.append(w.wafer_id)
            probs = np.full((8, *w.shape), 1 / 8, np.float32)
            out.append(
                SimpleNamespace(
                    mask=LabelMask(np.zeros(w.shape, np.uint8)),
                    probs=probs,
                    uncertainty={"entropy_mean": 1.0},
                    model_version=self.model_version,
                    provider=self.provider,
                    latency_ms=100.0,
                    views=1,
                )
            )
        return out


def _twelve_wafers(tmp_path: Path) -> Path:
    """A .wdm of twelve synthetic wafers named w00..w11, in that order."""
    import dataclasses

    from waferdesk.core.formats import write_wdm
    from waferdesk.core.synth import generate_record

    records = [generate_record(5, i) for i in range(12)]
    records = [
        dataclasses.replace(r, wafer=dataclasses.replace(r.wafer, wafer_id=f"w{i:02d}")) for i, r in enumerate(records)
    ]
    return write_wdm(tmp_path / "twelve.wdm", records)


@pytest.fixture
def slow_window(qtbot, app_home):
    """A window whose model is a :class:`_SlowSegmenter`, shown and ready: (window, segmenter)."""
    from waferdesk.app.mainwindow import MainWindow
    from waferdesk.client.drafts import DraftStore

    fake = _SlowSegmenter()
    store = DraftStore()
    win = MainWindow(store, segmenter_factory=lambda *_a: fake)
    qtbot.addWidget(win)
    try:
        win.show()
        # the window's own handler of ``ready`` has run too (a separate event from ``available``)
        qtbot.waitUntil(lambda: win.engine.available is not None and bool(win.model_info), timeout=30000)
        yield win, fake
    finally:
        fake.go.set()  # a failed test must not leave the inference thread held while the window closes
        win.close()
        store.close()


def test_skimming_through_wafers_predicts_the_one_landed_on_next(qtbot, tmp_path: Path, slow_window) -> None:

    path = _twelve_wafers(tmp_path)
    win, fake = slow_window
    win.actions["auto_run"].setChecked(False)  # only the wafer on screen is predicted
    win.open_paths([path])
    qtbot.waitUntil(fake.started.is_set, timeout=10000)  # the first wafer is running
    for _ in range(11):  # N held down: every wafer is on screen for a moment
        win.browser.step(1)
    last = win.doc.current
    assert last.wafer.wafer_id == "w11"
    fake.go.set()  # the first wafer's run ends: the thread is free again
    qtbot.waitUntil(lambda: last.prediction is not None, timeout=30000)
    # none of the wafers passed by runs before the one landed on
    assert fake.ran == ["w00", "w11"]


def test_a_queue_wafer_keeps_the_servers_pre_annotation_as_its_model_mask(qtbot, wafer_file, slow_window) -> None:
    import numpy as np

    from waferdesk.app.model.predictions import from_mask
    from waferdesk.app.model.workspace import WaferEntry
    from waferdesk.core.formats import read_wdm
    from waferdesk.core.wafer import FAIL, LabelMask

    win, fake = slow_window
    fake.go.set()
    win.actions["auto_run"].setChecked(False)
    # a wafer as queue mode shows it: the server's stored prediction is its starting labels
    rec = read_wdm(wafer_file)[1]
    pre = np.where(rec.wafer.dies == FAIL, 3, 255).astype(np.uint8)
    entry = WaferEntry(rec.wafer, wafer_file, 0, given=LabelMask(pre.copy()))
    entry.prediction = from_mask(pre, rec.wafer, "server-model-7")
    entry.remote = "in queue"
    win.ws.add(entry)
    win.browser.model.append([entry])
    win.browser.select(entry)
    assert win.doc.current is entry
    win.open_paths([wafer_file])  # and a local file, which the local model does run on
    local = win.ws.entries[1]
    win.browser.select(local)
    qtbot.waitUntil(lambda: local.prediction is not None, timeout=10000)
    win.set_mode("uncertainty")  # the local wafer has per-die probabilities
    assert win.view.mode == "uncertainty"
    win.browser.select(entry)
    qtbot.wait(300)
    # M shows the mask the annotation started from, as the docs say, not the local model's
    assert entry.prediction.model_version == "server-model-7"
    assert np.array_equal(entry.prediction.labels, pre)
    # the server's mask has no probabilities: its model mask is shown, not an empty map
    assert win.view.mode == "prediction"
    win.set_mode("uncertainty")  # U
    assert win.view.mode == "prediction" and "no per-die probabilities" in win.statusBar().currentMessage()
    win.run_current()  # Run model (Ctrl+R) still replaces it on request
    qtbot.waitUntil(lambda: entry.prediction.model_version == "slow-1", timeout=10000)


def test_a_model_that_arrives_after_none_was_available_can_be_run(qtbot, app_home, wafer_file, tiny_model) -> None:
    win, store = make_window(qtbot, tiny_model.with_name("missing.onnx"))
    try:
        qtbot.waitUntil(lambda: "No model" in win.model_label.text(), timeout=30000)
        assert not win.actions["run_current"].isEnabled()
        win.open_paths([wafer_file])
        win.switch_model(str(tiny_model))  # as Server > Sync model from server does
        qtbot.waitUntil(lambda: win.model_label.text().startswith("Model "), timeout=60000)
        assert win.actions["run_current"].isEnabled() and win.actions["run_all"].isEnabled()
        assert win.model_label.objectName() != "modelWarn" and win.model_label.styleSheet() == ""
        current = win.doc.current
        qtbot.waitUntil(lambda: current.prediction is not None, timeout=30000)
        assert win.actions["accept"].isEnabled()
    finally:
        win.close()
        store.close()


def test_run_all_while_the_model_is_still_loading_runs_once_it_is_ready(qtbot, loading_window) -> None:
    win, loaded = loading_window
    win.engine.start()
    assert win.engine.available is None and win.actions["run_all"].isEnabled()
    win.actions["run_all"].trigger()  # Ctrl+Shift+R before the model has loaded
    assert "still loading" in win.statusBar().currentMessage()
    loaded.set()
    qtbot.waitUntil(lambda: all(e.prediction is not None for e in win.ws.entries), timeout=60000)
    qtbot.waitUntil(lambda: win.progress is None, timeout=30000)
    assert "model run finished" in win.statusBar().currentMessage()


def test_run_model_while_the_model_is_still_loading_runs_once_it_is_ready(qtbot, loading_window) -> None:
    import numpy as np

    from waferdesk.app.model.predictions import ModelResult
    from waferdesk.core.results import summarize
    from waferdesk.core.taxonomy import IGNORE
    from waferdesk.core.wafer import LabelMask

    win, loaded = loading_window
    current = win.doc.current
    # a server's stored mask: the model replaces it only when asked (Ctrl+R)
    labels = np.full(current.wafer.shape, IGNORE, np.uint8)
    stored = ModelResult(labels, summarize(current.wafer, LabelMask(labels)), {}, "old", "server", 0.0)
    current.prediction = stored
    win.engine.start()
    assert win.engine.available is None and win.actions["run_current"].isEnabled()
    win.actions["run_current"].trigger()  # Ctrl+R before the model has loaded
    assert "still loading" in win.statusBar().currentMessage()
    loaded.set()
    qtbot.waitUntil(lambda: current.prediction is not stored, timeout=60000)
    assert current.prediction.provider != "server"  # the local model ran it
    assert all(e.prediction is None for e in win.ws.entries if e is not current)  # this wafer only


def test_run_all_does_not_predict_the_wafer_on_screen_twice(qtbot, tmp_path: Path, slow_window) -> None:
    from collections import Counter

    path = _twelve_wafers(tmp_path)
    win, fake = slow_window
    win.actions["auto_run"].setChecked(False)
    win.open_paths([path])
    qtbot.waitUntil(fake.started.is_set, timeout=10000)  # w00 is running as the on-screen request
    with qtbot.waitSignal(win.engine.job_finished, timeout=60000) as finished:
        assert win.run_all() > 0  # Ctrl+Shift+R queues all twelve, w00 too
        win.browser.step(5)  # w05 goes on screen while it is waiting in the folder job
        fake.go.set()
    assert finished.args[1:] == [12, False]  # all twelve count as done
    assert all(e.prediction is not None for e in win.ws.entries)  # no result lost
    assert Counter(fake.ran) == Counter(f"w{i:02d}" for i in range(12))  # each predicted once
    assert fake.ran[:2] == ["w00", "w05"]


def test_run_all_reuses_the_on_screen_result_that_has_not_reached_the_window_yet(
    qtbot, wafer_file, slow_window
) -> None:
    import time
    from collections import Counter

    win, fake = slow_window
    fake.go.set()
    win.actions["auto_run"].setChecked(False)
    win.open_paths([wafer_file])  # the wafer on screen is predicted...
    current = win.doc.current
    deadline = time.monotonic() + 30
    while (len(fake.ran) < 1 or win.engine.busy()) and time.monotonic() < deadline:
        time.sleep(0.01)  # ...and done, its result still queued for the window (no events processed)
    assert fake.ran == [current.wafer.wafer_id] and current.prediction is None
    with qtbot.waitSignal(win.engine.job_finished, timeout=60000) as finished:
        assert win.run_all() > 0  # Ctrl+Shift+R: the four wafers, the one on screen too
    assert finished.args[1:] == [4, False]
    assert all(e.prediction is not None for e in win.ws.entries)
    assert Counter(fake.ran) == Counter(e.wafer.wafer_id for e in win.ws.entries)  # each predicted once


def test_the_windows_late_model_ready_does_not_replace_a_running_folder_job(qtbot, tmp_path: Path, slow_window) -> None:
    """The engine's ``ready`` reaches its receivers as separate queued events: ``available`` can
    be True, and a folder job started by Run automatically, before the window's own handler runs
    (under load, seen as a flaky 'cancelled' job). That late handler must leave the job running."""
    path = _twelve_wafers(tmp_path)
    win, fake = slow_window
    win.actions["auto_run"].setChecked(True)
    win.open_paths([path])
    qtbot.waitUntil(fake.started.is_set, timeout=10000)
    job = win._progress_job
    cancelled: list[int] = []
    win.engine.job_finished.connect(lambda j, _done, c: cancelled.append(j) if c else None)
    win._model_ready(win.model_info)  # the window's handler of the same ready, arriving late
    assert win._progress_job == job and win.progress is not None
    with qtbot.waitSignal(win.engine.job_finished, timeout=60000, check_params_cb=lambda j, *_: j == job) as finished:
        fake.go.set()
    assert finished.args[2] is False and cancelled == []
    assert all(e.prediction is not None for e in win.ws.entries)


def test_run_all_during_a_folder_run_replaces_it_without_reporting_a_cancel(qtbot, tmp_path: Path, slow_window) -> None:
    """Opening a folder with Run automatically on starts a folder job; Run all (or another file)
    while it runs replaces it with one holding every wafer still unpredicted. The user cancelled
    nothing, so the status bar must not say so, and the new job's progress dialog stays up."""
    path = _twelve_wafers(tmp_path)
    win, fake = slow_window
    win.actions["auto_run"].setChecked(True)
    win.open_paths([path])  # the folder job starts by itself
    qtbot.waitUntil(fake.started.is_set, timeout=10000)
    first = win._progress_job
    assert first > 0 and win.progress is not None
    with qtbot.waitSignal(
        win.engine.job_finished, timeout=60000, check_params_cb=lambda job, *_: job != first
    ) as finished:
        second = win.run_all()  # Ctrl+Shift+R while the first job runs
        assert second > first and win._progress_job == second and win.progress is not None
        assert "cancelled" not in win.statusBar().currentMessage()
        fake.go.set()
    assert finished.args[0] == second and finished.args[2] is False
    assert all(e.prediction is not None for e in win.ws.entries)
    assert win.statusBar().currentMessage().startswith("model run finished:")
