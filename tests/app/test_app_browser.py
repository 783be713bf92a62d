"""The wafer browser's filters while the model's results arrive."""

from __future__ import annotations

import numpy as np

from waferdesk.app.browser import REFILTER_MS
from waferdesk.app.model.predictions import from_mask
from waferdesk.core.taxonomy import IGNORE, default_taxonomy
from waferdesk.core.wafer import FAIL

TAX = default_taxonomy()


def predict(window, entry, cls: str) -> None:
    """A model result for ``entry`` (every failing die ``cls``), through the engine's slot."""
    labels = np.where(entry.wafer.dies == FAIL, TAX.index(cls), IGNORE).astype(np.uint8)
    window._model_result(entry.key, from_mask(labels, entry.wafer, "test-1", "CPUExecutionProvider"), 1)


def test_a_filter_set_before_the_results_arrive_shows_them_when_they_do(qtbot, window, wafer_file) -> None:
    window.open_paths([wafer_file])
    browser = window.browser
    entries = window.ws.entries
    browser.search.setText("lithography")  # typed while the model runs: nothing has a verdict yet
    assert browser.proxy.rowCount() == 0
    for e, cls in zip(entries, ("lithography", "edge", "lithography", "ring"), strict=True):
        predict(window, e, cls)
    qtbot.waitUntil(lambda: browser.proxy.rowCount() == 2, timeout=3000)
    assert browser.visible_entries() == [entries[0], entries[2]]

    browser.search.setText("")
    browser.status.setCurrentText("Not predicted")
    assert browser.proxy.rowCount() == 0
    browser.status.setCurrentText("All wafers")
    browser.select(entries[1])
    browser.status.setCurrentText("Predicted")
    assert browser.current_entry() is entries[1]
    # the wafer on screen stays listed (and on screen) when its own row stops matching
    entries[1].prediction = None
    browser.refresh_entry(entries[1])
    qtbot.wait(REFILTER_MS + 200)
    assert browser.proxy.rowCount() == 4 and browser.current_entry() is entries[1]
    assert window.doc.current is entries[1]


def test_verdict_swatches_follow_the_colour_blind_palette(window, wafer_file) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QColor

    from waferdesk.app.browser import COL_VERDICT

    window.open_paths([wafer_file])
    entry = window.ws.entries[0]
    predict(window, entry, "ring")
    model = window.browser.model

    def swatch() -> QColor:
        return model.data(model.index(model.row_of(entry), COL_VERDICT), Qt.ItemDataRole.DecorationRole)

    ring = TAX.classes[TAX.index("ring")]
    assert swatch() == QColor(*ring.color)
    window.side.palette.cb.setChecked(True)
    assert swatch() == QColor(*ring.color_cb) and ring.color_cb != ring.color
    window.side.palette.cb.setChecked(False)
    assert swatch() == QColor(*ring.color)


def test_switching_models_takes_the_old_models_results_off_the_screen(qtbot, window, wafer_file, tmp_path) -> None:
    from waferdesk.app.browser import COL_VERDICT

    window.open_paths([wafer_file])
    for e in window.ws.entries:
        predict(window, e, "ring")
    window.set_mode("prediction")
    model = window.browser.model
    shown = [model.data(model.index(r, COL_VERDICT)) for r in range(len(window.ws))]
    assert shown == ["ring"] * 4
    window.switch_model(str(tmp_path / "other.onnx"))  # Server > Sync model: the old results are dropped
    shown = [model.data(model.index(r, COL_VERDICT)) for r in range(len(window.ws))]
    assert shown == [""] * 4
    # the map and the results panel no longer show the dropped mask as "Model"
    assert window.view.mode == "labels" and not window.page.modes.button(1).isEnabled()
    assert "test-1" not in window.side.results.source.text()
