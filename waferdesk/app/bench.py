"""``waferdesk bench-app``: the desktop's hot paths, timed through the real window.

Each measurement drives the main window the way a user does (select a wafer, drag the brush
with real mouse events) and then repaints synchronously the widgets that show the result
(Qt would paint them on its next update tick; between runs, untimed, Qt catches up): the
map, its title bar and the side panel (classes, results chart and table) after opening a
wafer, plus the browser table for next-wafer; the map alone during a brush stroke (the
panels follow on a 60 ms timer, not every frame). So the numbers are what a person waits
for, painted in software at 1600x1000. Printed: the median and 90th percentile of ``runs``
runs, the target from the issue, and a baseline (a simpler way to do the same thing).
Runs on whatever Qt platform is active (offscreen when no display).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..core.records import WaferRecord
from ..core.synth import SynthConfig, generate_record
from ..core.wafer import LabelMask, WaferMap


def _wafers(size: int, n: int) -> list[WaferRecord]:
    """``n`` synthetic wafers of exactly ``size`` x ``size`` dies with masks (the largest real maps)."""
    cfg = SynthConfig(size_range=(size, size + 1))
    out = []
    i = 0
    while len(out) < n:
        rec = generate_record(99, i, cfg)
        i += 1
        dies = np.zeros((size, size), np.uint8)
        labels = np.full((size, size), 255, np.uint8)
        h, w = min(size, rec.wafer.shape[0]), min(size, rec.wafer.shape[1])
        dies[:h, :w] = rec.wafer.dies[:h, :w]
        labels[:h, :w] = rec.mask.labels[:h, :w]
        wafer = WaferMap(dies=dies, lot="BENCH", wafer_id=f"{len(out) + 1:02d}", notch=rec.wafer.notch)
        out.append(WaferRecord(wafer, LabelMask(labels)))
    return out


def _timeit(fn: Callable[[], None], runs: int, between: Callable[[], None], warmup: int = 3) -> list[float]:
    """Times of ``fn``; ``between`` (untimed) lets Qt finish whatever the last run queued."""
    for _ in range(warmup):
        fn()
        between()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
        between()
    return times


def _stats(ms: list[float]) -> tuple[float, float]:
    return statistics.median(ms), float(np.percentile(ms, 90))


def _queue_rows(app, tmp: Path, server: str, user: str, password: str, runs: int, settle) -> list:
    """Next wafer in the queue: Ctrl+Enter on a wafer -> the next one drawn, with the next
    claimed and fetched in the background (prefetch) and without (claim + fetch after submit)."""
    from ..client.api import ServerClient
    from ..client.drafts import DraftStore
    from .mainwindow import MainWindow

    win = MainWindow(DraftStore(tmp / "queue-drafts.sqlite3"), start_engine=False, outbox_path=tmp / "outbox.sqlite3")
    win.setGeometry(0, 0, 1600, 1000)
    win.show()
    win.connect_server(ServerClient.login(server, user, password), remember=False, sync_model=False)
    queue = win.queue
    assert queue is not None, f"{user} does not see the queue (role?)"

    def wait(cond: Callable[[], bool], limit_s: float = 60.0) -> None:
        end = time.perf_counter() + limit_s
        while not cond():
            if time.perf_counter() > end:
                raise RuntimeError("the queue did not answer in time (empty? see the status bar)")
            app.processEvents()
            time.sleep(0.001)

    def on_screen():
        e = win.doc.current
        return e if e is not None and e.remote == "in queue" else None

    queue.claim_next()
    wait(lambda: on_screen() is not None)

    def submit_and_show() -> None:
        before = on_screen()
        queue.submit_current()
        wait(lambda: on_screen() not in (None, before))  # without prefetch: the claim and fetch
        win.view.viewport().repaint()
        win.page.repaint()
        win.side.repaint()
        win.browser.table.viewport().repaint()

    def ready() -> None:
        """Untimed: what follows a submit in the background (send, prefetch) has finished, as
        it has when a person submits the next wafer seconds later."""
        end = time.perf_counter() + 0.4
        while time.perf_counter() < end:
            app.processEvents()
        if queue.prefetch_enabled:
            wait(lambda: queue.prefetched is not None or queue.empty)
        wait(lambda: not queue.syncing)

    ready()
    with_prefetch = _timeit(submit_and_show, runs, ready)
    queue.prefetch_enabled = False
    # hand back the item fetched ahead, so the baseline claims afresh after each submit
    wait(lambda: queue.prefetched is not None or queue.empty)
    if queue.prefetched is not None:
        queue.send_api.release(queue.prefetched.item_id)
        queue.held.discard(queue.prefetched.item_id)
        queue.prefetched = None
    without = _timeit(submit_and_show, runs, ready)
    win.close()
    win.drafts.close()
    return [
        (
            "next wafer in the queue (prefetch)",
            with_prefetch,
            100.0,
            "no prefetch: claim + fetch after submit",
            without,
        )
    ]


def run_benchmark(
    runs: int = 30, size: int = 300, queue_server: tuple[str, str, str] | None = None, queue_runs: int = 10
) -> str:
    """``queue_server``: (URL, user, password) of a server with a queue of at least
    ``2 * queue_runs + 8`` wafers for that annotator (``scripts/serve_queue.py`` makes one)."""
    os.environ.setdefault("WAFERDESK_HOME", tempfile.mkdtemp(prefix="waferdesk-bench-"))
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QImage, QMouseEvent, QPixmap
    from PySide6.QtWidgets import QApplication, QLabel

    from ..client.drafts import DraftStore
    from ..core.formats import write_wdm
    from ..core.render import wafer_picture
    from .main import make_application
    from .mainwindow import MainWindow
    from .model.layers import compose

    app = make_application()
    tmp = Path(tempfile.mkdtemp(prefix="waferdesk-bench-data-"))
    path = write_wdm(tmp / "bench.wdm", _wafers(size, 8))
    win = MainWindow(DraftStore(tmp / "drafts.sqlite3"), start_engine=False)
    win.setGeometry(0, 0, 1600, 1000)
    win.show()
    win.open_paths([path])
    for _ in range(10):
        app.processEvents()
    entries = win.ws.entries
    view = win.view
    rows: list[tuple[str, list[float], float, str, list[float]]] = []

    def settle() -> None:
        """Untimed: let Qt deliver what the last run posted (its own throttled repaints too)."""
        end = time.perf_counter() + 0.03
        while time.perf_counter() < end:
            app.processEvents()

    def shows_wafer() -> None:
        """Repaint, synchronously, every widget that shows the wafer: map, title bar, side panel."""
        view.viewport().repaint()
        win.page.repaint()
        win.side.repaint()

    # 1. open and draw a map with its overlay: select it, compose, upload, fit, repaint
    state = {"i": 0}

    def open_next() -> None:
        state["i"] = (state["i"] + 1) % len(entries)
        win.open_entry(entries[state["i"]])
        shows_wafer()

    label = QLabel()
    label.resize(900, 900)
    label.show()

    def baseline_open() -> None:
        state["i"] = (state["i"] + 1) % len(entries)
        e = entries[state["i"]]
        img = np.ascontiguousarray(wafer_picture(e.wafer, LabelMask(e.labels), target=900))
        qimg = QImage(img.data, img.shape[1], img.shape[0], 3 * img.shape[1], QImage.Format.Format_RGB888)
        label.setPixmap(QPixmap.fromImage(qimg))
        label.repaint()

    rows.append(
        (
            f"open + draw {size}x{size} map with overlay",
            _timeit(open_next, runs, settle),
            50.0,
            "pre-scaled picture (core.render) in a QLabel",
            _timeit(baseline_open, runs, settle),
        )
    )
    label.hide()

    # 2. one brush-stroke step: a mouse move with the button down paints dies and repaints the view
    win.open_entry(entries[0])
    win.set_active_class(2)
    win.side.tool_options.size.setValue(5)
    vp = view.viewport()
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton

    def send(kind: QEvent.Type, row: float, col: float, button, buttons) -> None:
        local = QPointF(view.widget_pos_of(row, col))
        ev = QMouseEvent(
            kind, local, QPointF(vp.mapToGlobal(local.toPoint())), button, buttons, Qt.KeyboardModifier.NoModifier
        )
        QApplication.sendEvent(vp, ev)

    centre = size / 2
    send(QEvent.Type.MouseButtonPress, centre, 10, left, left)
    pos = {"c": 10.0, "r": centre}

    def brush_step() -> None:
        pos["c"] += 1.5
        if pos["c"] > size - 10:
            pos["c"], pos["r"] = 10.0, pos["r"] + 6
        send(QEvent.Type.MouseMove, pos["r"], pos["c"], none, left)
        vp.repaint()  # during a stroke only the map changes (the panels follow on a timer)

    def baseline_brush() -> None:
        pos["c"] += 1.5
        if pos["c"] > size - 10:
            pos["c"], pos["r"] = 10.0, pos["r"] + 6
        send(QEvent.Type.MouseMove, pos["r"], pos["c"], none, left)
        e = win.doc.current
        view.image.setImage(compose(e.wafer.dies, e.labels, view.style), autoLevels=False)
        vp.repaint()

    rows.append(
        (
            "brush stroke step (paint + repaint)",
            _timeit(brush_step, runs * 3, settle),
            16.0,
            "recompose the whole map each step",
            _timeit(baseline_brush, runs * 3, settle),
        )
    )
    send(QEvent.Type.MouseButtonRelease, pos["r"], pos["c"], left, none)

    # 3. next wafer in the browser (keyboard): move the selection, update every panel, repaint
    win.set_tool("navigate")
    win.browser.select(entries[0])

    def next_wafer() -> None:
        if not win.browser.step(1):
            win.browser.select(entries[0])
        shows_wafer()
        win.browser.table.viewport().repaint()

    rows.append(
        (
            f"next wafer ({size}x{size}, all panels)",
            _timeit(next_wafer, runs, settle),
            100.0,
            "",
            [],
        )
    )
    platform = QApplication.platformName()
    win.close()
    win.drafts.close()
    if queue_server is not None:
        rows += _queue_rows(app, tmp, *queue_server, runs=queue_runs, settle=settle)

    queue_note = f", queue: {queue_runs} runs against {queue_server[0]}" if queue_server else ""
    lines = [
        f"waferdesk bench-app: Qt platform '{platform}', window 1600x1000, {runs} runs (brush: {runs * 3} steps)"
        + queue_note,
        f"{'measurement':<42} {'median ms':>10} {'p90 ms':>8} {'target':>8}   {'baseline':<44} {'median ms':>10}",
    ]
    for name, ms, target, base_name, base_ms in rows:
        med, p90 = _stats(ms)
        base = f"{_stats(base_ms)[0]:>10.2f}" if base_ms else f"{'-':>10}"
        ok = "ok" if med <= target else "SLOW"
        lines.append(
            f"{name:<42} {med:>10.2f} {p90:>8.2f} {'<=' + format(target, 'g'):>8} {ok:<2} {base_name or '-':<44} {base}"
        )
    return "\n".join(lines)
