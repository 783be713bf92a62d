"""The lot view, the results panel, the view's zoom and the empty state."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, Qt
from qtdrive import click, die_centre, hover

from waferdesk.core.formats import write_wdm
from waferdesk.core.records import WaferRecord
from waferdesk.core.wafer import FAIL, NO_DIE, PASS, WaferMap


def make_lot(tmp_path):
    yy, xx = np.mgrid[0:16, 0:16]
    on = (yy - 7.5) ** 2 + (xx - 7.5) ** 2 <= 7.9**2
    recs = []
    rng = np.random.default_rng(0)
    for i in range(10):
        dies = np.where(on, PASS, NO_DIE).astype(np.uint8)
        dies[(rng.random(dies.shape) < 0.05) & on] = FAIL
        if i < 8:
            dies[3, 4] = FAIL  # the same die fails on 8 of 10 wafers
        recs.append(WaferRecord(WaferMap(dies=dies, lot="L1", wafer_id=str(i + 1))))
    recs.append(WaferRecord(WaferMap(dies=np.ones((5, 5), np.uint8), lot="L1", wafer_id="odd")))
    return write_wdm(tmp_path / "lot.wdm", recs)


def test_lot_view_stacks_fail_rate_per_die(window, tmp_path, qtbot) -> None:
    window.open_paths([make_lot(tmp_path)])
    qtbot.keyClick(window.view, "L", Qt.KeyboardModifier.ControlModifier)
    assert window.tabs.currentWidget() is window.lot_view
    lv = window.lot_view
    assert lv.combo.currentText() == "L1"
    assert lv.stack.n_wafers == 10 and lv.stack.skipped == 1
    assert "10 wafers stacked" in lv.info.text() and "1 of another size" in lv.info.text()
    assert lv.stack.rate[3, 4] >= 0.8
    assert np.isnan(lv.stack.rate[0, 0])
    pos = lv.vb.mapViewToScene(QPointF(4.5, 3.5))
    lv._moved(pos)
    assert "over 10 wafers" in lv.readout.text()


def test_results_panel_and_palette_follow_the_labels(window, wafer_file, qtbot) -> None:
    window.open_paths([wafer_file])
    window.set_active_class(1)  # center
    window.set_tool("fill")
    click(window.view, *die_centre(5, 6))
    qtbot.waitUntil(
        lambda: window.side.results.summary is not None and window.side.results.summary.counts["center"] == 12
    )
    assert window.side.results.verdict.text() == "Verdict: center"
    assert window.side.results.chart.values[0][0] == "center"
    assert window.side.palette.counts[1].text() == "12"
    assert window.side.results.table.item(0, 1).text() == "12"
    hover(window.view, *die_centre(5, 6))
    assert window.readout.text().startswith("x   6  y   5") and "label center" in window.readout.text()


def test_empty_window_and_zoom(window) -> None:
    assert window.page.stack.currentIndex() == 0  # "No wafers open"
    window.view.zoom(2.0)  # no wafer: harmless


def test_view_zoom_and_fit(window, wafer_file) -> None:
    window.open_paths([wafer_file])
    window.view.fit()
    (x0, x1), _ = window.view.vb.viewRange()
    window.view.zoom(2.0)
    (z0, z1), _ = window.view.vb.viewRange()
    assert (z1 - z0) < (x1 - x0) * 0.6
    window.view.fit()
    (f0, f1), _ = window.view.vb.viewRange()
    assert abs((f1 - f0) - (x1 - x0)) < 1e-6


def test_lot_view_stacks_the_size_of_the_wafer_on_screen(window, tmp_path, qtbot) -> None:
    window.open_paths([make_lot(tmp_path)])
    odd = next(e for e in window.ws.entries if e.wafer.wafer_id == "odd")  # the lot's only 5x5 wafer
    window.browser.select(odd)
    assert window.doc.current is odd
    qtbot.keyClick(window.view, "L", Qt.KeyboardModifier.ControlModifier)
    lv = window.lot_view
    assert lv.combo.currentText() == "L1"
    assert lv.stack.shape == (5, 5) and lv.stack.n_wafers == 1 and lv.stack.skipped == 10
    assert "1 wafers stacked · 5×5 dies" in lv.info.text() and "10 of another size" in lv.info.text()
    # back to a 16x16 wafer: the lot view follows it
    window.tabs.setCurrentWidget(window.page)
    window.browser.select(next(e for e in window.ws.entries if e.wafer.wafer_id == "3"))
    window.tabs.setCurrentWidget(window.lot_view)
    assert lv.stack.shape == (16, 16) and lv.stack.n_wafers == 10 and lv.stack.skipped == 1
