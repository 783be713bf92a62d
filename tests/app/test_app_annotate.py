"""Opening wafers and labelling them with the tools, driven by real mouse and key events."""

from __future__ import annotations

import numpy as np
from conftest import known_dies
from PySide6.QtCore import Qt
from qtdrive import click, die_centre, drag, hover

from waferdesk.app.model.predictions import ModelResult
from waferdesk.app.model.workspace import Status
from waferdesk.core.results import summarize
from waferdesk.core.taxonomy import IGNORE, default_taxonomy
from waferdesk.core.wafer import FAIL, LabelMask

TAX = default_taxonomy()


def key(qtbot, window, text: str, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    """Press a key on the wafer view: one character, or a Qt.Key name such as "PageDown"."""
    qtbot.keyClick(window.view, text if len(text) == 1 else getattr(Qt.Key, f"Key_{text}"), modifier)


def labelled(window) -> dict[tuple[int, int], str]:
    lab = window.doc.current.labels
    return {(int(r), int(c)): TAX.names[lab[r, c]] for r, c in np.argwhere(lab != IGNORE)}


def open_known(window, wafer_file):
    window.open_paths([wafer_file])
    entry = window.doc.current
    assert entry is not None and entry.title == "KNOWN / 01"
    window.view.setFocus()
    return entry


def test_opening_a_file_fills_browser_and_draws_the_dies(window, wafer_file) -> None:
    window.open_paths([wafer_file])
    assert window.browser.proxy.rowCount() == 4
    assert window.browser.current_entry().title == "KNOWN / 01"
    rgba = window.view.rgba
    dies = known_dies()
    assert rgba.shape == (20, 20, 4)
    # no-die transparent, pass and fail in the taxonomy's die colours
    assert (rgba[dies == 0, 3] == 0).all()
    assert (rgba[dies == 1, :3] == TAX.die_colors["pass"]).all()
    assert (rgba[dies == 2, :3] == TAX.die_colors["fail"]).all()
    # wafers with masks in the file open with them
    entries = window.ws.entries
    assert [e.status for e in entries] == [Status.UNLABELLED] + [Status.FROM_FILE] * 3
    assert "opened 4 wafers" in window.statusBar().currentMessage()
    # the same file again adds nothing; a broken file is reported, not fatal
    bad = wafer_file.with_name("broken.wdm")
    bad.write_bytes(b"not a zip")
    window.open_paths([wafer_file, bad])
    assert len(window.ws) == 4
    assert "could not be read" in window.statusBar().currentMessage()
    assert "broken.wdm" in window.error_box.text()


def test_a_file_whose_reader_fails_unexpectedly_is_listed_and_the_others_open(window, wafer_file, monkeypatch) -> None:
    import waferdesk.app.model.workspace as workspace
    from waferdesk.core.formats import write_wdm
    from waferdesk.core.synth import generate

    window.open_paths([wafer_file])
    opened = window.doc.current
    later = write_wdm(wafer_file.with_name("later.wdm"), list(generate(2, seed=8)))
    odd = wafer_file.with_name("odd.wdm")
    odd.write_bytes(b"x")
    real = workspace.read_any

    def read_any(path):
        if path.name == "odd.wdm":
            raise RuntimeError("a reader bug")
        return real(path)

    monkeypatch.setattr(workspace, "read_any", read_any)
    window.open_paths([later, odd, wafer_file.with_name("last.wdm")])
    assert "odd.wdm: cannot be read (RuntimeError: a reader bug)" in window.error_box.text()
    assert "last.wdm" in window.error_box.text()
    # the good file opened, nothing open was lost, and every wafer has its own row
    assert len(window.ws) == 6 and window.doc.current is opened
    assert window.browser.visible_entries() == window.ws.entries


def test_brush_strokes_then_undo_redo_change_exact_dies(qtbot, window, wafer_file) -> None:
    open_known(window, wafer_file)
    key(qtbot, window, "3")  # ring, and the brush tool comes up
    assert window.doc.active_class == TAX.index("ring") and window.view.tool.name == "brush"
    # size 1 along row 5 from col 2 to col 11: the fail dies (5, 5..8) only, pass dies untouched
    drag(window.view, [die_centre(5, 2), die_centre(5, 4), die_centre(5, 7), die_centre(5, 11)])
    assert labelled(window) == {(5, c): "ring" for c in range(5, 9)}
    # size 3 square centred on (13, 13) with edge: covers the diagonal pair
    key(qtbot, window, "1")
    key(qtbot, window, "]")
    key(qtbot, window, "]")
    key(qtbot, window, "O")  # circle -> square
    assert window.tool_settings.brush_size == 3 and window.tool_settings.brush_shape == "square"
    drag(window.view, [die_centre(13, 13), die_centre(13, 13.4)])
    after_two = {(5, c): "ring" for c in range(5, 9)} | {(12, 12): "edge", (13, 13): "edge"}
    assert labelled(window) == after_two
    stack = window.doc.stack(window.doc.current)
    assert stack.count() == 2  # one step per stroke
    assert [len(stack.command(i).change) for i in range(2)] == [4, 2]  # only the changed dies
    key(qtbot, window, "Z", Qt.KeyboardModifier.ControlModifier)
    assert labelled(window) == {(5, c): "ring" for c in range(5, 9)}
    key(qtbot, window, "Z", Qt.KeyboardModifier.ControlModifier)
    assert labelled(window) == {}
    key(qtbot, window, "Y", Qt.KeyboardModifier.ControlModifier)
    key(qtbot, window, "Z", Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert labelled(window) == after_two
    # the picture follows: labelled dies blended towards the class colour
    rgba = window.view.rgba
    assert tuple(rgba[13, 13, :3]) != tuple(TAX.die_colors["fail"])
    assert tuple(rgba[15, 3, :3]) == tuple(TAX.die_colors["fail"])


def test_eraser_and_overpainting_only_touch_failing_dies(qtbot, window, wafer_file) -> None:
    open_known(window, wafer_file)
    key(qtbot, window, "5")  # particle
    for _ in range(4):
        key(qtbot, window, "]")  # size 5 circle
    click(window.view, *die_centre(5, 6))
    assert set(labelled(window)) == {(r, c) for r in range(4, 7) for c in range(5, 9)}
    key(qtbot, window, "E")
    key(qtbot, window, "[")
    key(qtbot, window, "[")
    key(qtbot, window, "[")
    key(qtbot, window, "[")  # size 1
    drag(window.view, [die_centre(4, 5), die_centre(4, 8)])
    assert set(labelled(window)) == {(r, c) for r in range(5, 7) for c in range(5, 9)}
    assert window.doc.stack(window.doc.current).count() == 2


def test_polygon_rasterises_to_whole_dies(qtbot, window, wafer_file) -> None:
    open_known(window, wafer_file)
    key(qtbot, window, "2")  # center
    key(qtbot, window, "P")
    # a rectangle whose corners sit on die boundaries around rows 3..7, cols 4..9, closed by double-click
    for r, c in [(3.0, 4.0), (3.0, 9.0), (8.0, 9.0)]:
        click(window.view, r, c)
    hover(window.view, 6, 6)
    assert len(window.view.tool.points) == 3 and window.view.polygon.path.isVisible()
    click(window.view, 8.0, 4.0, double=True)
    assert labelled(window) == {(r, c): "center" for r in range(4, 7) for c in range(5, 9)}
    assert not window.view.polygon.path.isVisible()
    # a triangle closed with Enter takes the fails whose centres lie inside it
    key(qtbot, window, "Z", Qt.KeyboardModifier.ControlModifier)
    for r, c in [(4.0, 5.0), (4.0, 9.0), (7.0, 9.0)]:
        click(window.view, r, c)
    key(qtbot, window, "Return")
    inside = {(r, c) for r in range(4, 7) for c in range(5, 9) if (c + 0.5) - 5 > (r + 0.5 - 4) * 4 / 3}
    assert set(labelled(window)) == inside
    # Esc drops an unfinished polygon
    click(window.view, 10.0, 10.0)
    key(qtbot, window, "Escape")
    assert window.view.tool.points == []


def test_flood_fill_takes_the_connected_fail_cluster(qtbot, window, wafer_file) -> None:
    open_known(window, wafer_file)
    key(qtbot, window, "4")  # scratch
    key(qtbot, window, "G")
    click(window.view, *die_centre(12, 12))
    assert labelled(window) == {(12, 12): "scratch", (13, 13): "scratch"}  # diagonal neighbours connect
    key(qtbot, window, "6")
    key(qtbot, window, "G")
    click(window.view, *die_centre(6, 8))
    assert sum(v == "lithography" for v in labelled(window).values()) == 12
    click(window.view, *die_centre(10, 10))  # a pass die: nothing happens
    assert window.doc.stack(window.doc.current).count() == 2


def test_accept_prediction_replaces_labels_in_one_undoable_step(qtbot, window, wafer_file) -> None:
    entry = open_known(window, wafer_file)
    predicted = np.where(entry.wafer.dies == FAIL, TAX.index("edge"), IGNORE).astype(np.uint8)
    predicted[12:14, 12:14] = np.where(entry.wafer.dies[12:14, 12:14] == FAIL, TAX.index("scratch"), IGNORE)
    probs = np.full((len(TAX), 20, 20), 0.02, np.float32)
    probs[TAX.index("edge")] = 0.86
    from waferdesk.app.model.layers import die_entropy
    from waferdesk.app.model.predictions import DieDetails

    entry.prediction = ModelResult(
        labels=predicted,
        summary=summarize(entry.wafer, LabelMask(predicted)),
        uncertainty={"entropy_mean": 0.3},
        model_version="test-1",
        provider="CPUExecutionProvider",
        latency_ms=1.0,
        details=DieDetails(probs, die_entropy(probs)),
    )
    window.update_panels()
    key(qtbot, window, "1")
    click(window.view, *die_centre(15, 3))  # a label of our own first
    key(qtbot, window, "A")
    assert np.array_equal(entry.labels, predicted)
    assert window.side.results.verdict.text() == f"Verdict: {summarize(entry.wafer, LabelMask(predicted)).verdict}"
    key(qtbot, window, "Z", Qt.KeyboardModifier.ControlModifier)
    assert labelled(window) == {(15, 3): "edge"}
    # the model modes and the hover readout use the prediction
    key(qtbot, window, "U")
    assert window.view.mode == "uncertainty"
    hover(window.view, *die_centre(15, 3))
    assert "fail" in window.readout.text() and "model edge 86%" in window.readout.text()
    key(qtbot, window, "M")
    assert window.view.mode == "prediction"
    assert tuple(window.view.rgba[12, 12, :3]) != tuple(window.view.rgba[15, 3, :3])


def test_wafer_navigation_keeps_separate_undo_histories(qtbot, window, wafer_file) -> None:
    first = open_known(window, wafer_file)
    key(qtbot, window, "1")
    click(window.view, *die_centre(15, 3))
    key(qtbot, window, "PageDown")
    second = window.doc.current
    assert second is not first and window.browser.current_entry() is second
    before = second.labels.copy()
    key(qtbot, window, "Z", Qt.KeyboardModifier.ControlModifier)  # nothing to undo here
    assert np.array_equal(second.labels, before) and first.labels[15, 3] == 0
    key(qtbot, window, "PageUp")
    assert window.doc.current is first
    key(qtbot, window, "Z", Qt.KeyboardModifier.ControlModifier)
    assert first.labels[15, 3] == IGNORE
    # filtering the browser by text narrows the rows
    window.browser.search.setText("KNOWN")
    assert window.browser.proxy.rowCount() == 1
    window.browser.search.setText("")
    window.browser.table.sortByColumn(2, Qt.SortOrder.DescendingOrder)  # yield
    yields = [e.wafer.yield_ for e in window.browser.visible_entries()]
    assert yields == sorted(yields, reverse=True)
    assert window.browser.current_entry() is first  # the selection follows its wafer
    key(qtbot, window, "PageDown")  # and next-wafer follows the sorted order
    assert window.doc.current is window.browser.visible_entries()[yields.index(first.wafer.yield_) + 1]


def test_next_wafer_in_the_middle_of_a_stroke_leaves_the_next_wafer_alone(qtbot, window, tmp_path) -> None:
    from PySide6.QtCore import QEvent
    from qtdrive import _send

    from waferdesk.core.formats import write_wdm
    from waferdesk.core.records import WaferRecord
    from waferdesk.core.wafer import WaferMap

    dies = known_dies()  # two wafers of one size; the second comes with every fail labelled edge
    edge = np.where(dies == FAIL, TAX.index("edge"), IGNORE).astype(np.uint8)
    recs = [
        WaferRecord(WaferMap(dies=dies, lot="KNOWN", wafer_id="01")),
        WaferRecord(WaferMap(dies=dies, lot="KNOWN", wafer_id="02"), LabelMask(edge)),
    ]
    first = open_known(window, write_wdm(tmp_path / "pair.wdm", recs))
    key(qtbot, window, "3")  # ring brush
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    _send(window.view, QEvent.Type.MouseButtonPress, *die_centre(5, 4), left, left)
    _send(window.view, QEvent.Type.MouseMove, *die_centre(5, 9), none, left)
    assert labelled(window) == {(5, c): "ring" for c in range(5, 9)}  # painted live
    key(qtbot, window, "PageDown")  # the button still held
    second = window.doc.current
    assert second is not first
    _send(window.view, QEvent.Type.MouseButtonRelease, *die_centre(5, 9), left, none)
    # the unfinished stroke is dropped from the wafer it was painted on, and only there
    assert np.array_equal(second.labels, edge)
    assert (first.labels == IGNORE).all()
    assert window.doc.stack(first).count() == 0 and window.doc.stack(second).count() == 0


def test_painting_over_the_model_mask_shows_the_labels_it_paints(qtbot, window, wafer_file) -> None:
    from waferdesk.app.model.predictions import from_mask

    entry = open_known(window, wafer_file)
    predicted = np.where(entry.wafer.dies == FAIL, TAX.index("edge"), IGNORE).astype(np.uint8)
    entry.prediction = from_mask(predicted, entry.wafer, "test-1", "CPUExecutionProvider")
    window.update_panels()
    key(qtbot, window, "3")  # ring brush
    key(qtbot, window, "M")  # compare with the model, the brush still in hand
    assert window.view.mode == "prediction"
    model_colour = tuple(window.view.rgba[15, 3, :3])
    click(window.view, *die_centre(15, 3))
    # the edit is made where it can be seen: the map switched to the labels
    assert labelled(window) == {(15, 3): "ring"}
    assert window.view.mode == "labels" and window.actions["mode_labels"].isChecked()
    assert window.page.modes.checkedButton().text() == "Labels"
    assert tuple(window.view.rgba[15, 3, :3]) != model_colour
    key(qtbot, window, "M")
    drag(window.view, [die_centre(5, 4), die_centre(5, 9)])
    assert window.view.mode == "labels"
    assert labelled(window) == {(15, 3): "ring"} | {(5, c): "ring" for c in range(5, 9)}
    key(qtbot, window, "M")
    key(qtbot, window, "Delete", Qt.KeyboardModifier.ShiftModifier)  # Clear labels, seen too
    assert labelled(window) == {} and window.view.mode == "labels"


def test_shortcut_sheet_lists_class_tool_and_navigation_keys(window) -> None:
    from waferdesk.app.actions import shortcut_rows

    rows = shortcut_rows()
    keys = {(k, what) for _, k, what in rows}
    for c in TAX.classes:
        assert (c.key, f"active class: {c.name}") in keys
    texts = " ".join(f"{k} {what}" for _, k, what in rows)
    for needle in ("B Brush", "E Eraser", "P Polygon", "G Fill cluster", "Ctrl+S Save labels", "PgDown / N Next wafer"):
        assert needle in texts
    window.show_shortcuts()
    assert window.shortcuts_dialog.isVisible()


def test_undo_while_a_stroke_is_held_is_ignored(qtbot, window, wafer_file) -> None:
    from PySide6.QtCore import QEvent
    from qtdrive import _send

    open_known(window, wafer_file)
    key(qtbot, window, "3")  # ring brush
    drag(window.view, [die_centre(5, 4), die_centre(5, 9)])  # a first stroke: one undo step
    first = {(5, c): "ring" for c in range(5, 9)}
    assert labelled(window) == first
    key(qtbot, window, "1")  # edge
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    _send(window.view, QEvent.Type.MouseButtonPress, *die_centre(5, 7), left, left)
    _send(window.view, QEvent.Type.MouseMove, *die_centre(6, 7), none, left)
    painting = first | {(5, 7): "edge", (6, 7): "edge"}
    assert labelled(window) == painting  # painted live, the button still held
    key(qtbot, window, "Z", Qt.KeyboardModifier.ControlModifier)  # undo in the middle of the stroke
    key(qtbot, window, "Y", Qt.KeyboardModifier.ControlModifier)  # and redo
    assert labelled(window) == painting  # neither touched the labels nor the history
    assert "stroke" in window.statusBar().currentMessage()
    _send(window.view, QEvent.Type.MouseMove, *die_centre(6, 8), none, left)
    _send(window.view, QEvent.Type.MouseButtonRelease, *die_centre(6, 8), left, none)
    after = painting | {(6, 8): "edge"}
    assert labelled(window) == after
    stack = window.doc.stack(window.doc.current)
    assert [stack.command(i).text() for i in range(stack.count())] == ["Brush ring (4 dies)", "Brush edge (3 dies)"]
    assert window.undo_action.isEnabled() and window.undo_action.text() == "Undo Brush edge (3 dies)"
    assert not window.redo_action.isEnabled()
    key(qtbot, window, "Z", Qt.KeyboardModifier.ControlModifier)  # now undo takes back the second stroke
    assert labelled(window) == first
    key(qtbot, window, "Z", Qt.KeyboardModifier.ControlModifier)
    assert labelled(window) == {}
