"""The desktop against a real server (uvicorn on loopback, SQLite): sign in, role-shaped UI,
queue mode with the pre-annotation and prefetch, skip, the outbox offline and online, the
conflict dialog, review, and model sync (a sha mismatch refused). Real widgets, offscreen."""

from __future__ import annotations

import socket
import stat
import time

import keyring
import numpy as np
import pytest
from keyring.backends import fail
from live_server import PASSWORD, LosingTransport, seed_queue, start_server
from PySide6.QtCore import Qt, QTimer
from qtdrive import drag

from waferdesk.app.browser import COL_STATUS
from waferdesk.client.api import ServerClient, ServerError, labels_from_payload
from waferdesk.client.credentials import TokenStore
from waferdesk.client.outbox import CONFLICT
from waferdesk.client.server_session import ServerSession
from waferdesk.core.taxonomy import IGNORE
from waferdesk.core.wafer import FAIL

WAIT = 15000


@pytest.fixture
def live(tmp_path, tiny_model):
    server = start_server(tmp_path, tiny_model)
    server.add_users(("eng", "engineer"), ("ann", "annotator"), ("viewer", "viewer"))
    yield server
    server.stop()


@pytest.fixture
def no_keyring():
    before = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())  # a headless Linux box: NoKeyringError
    yield
    keyring.set_keyring(before)


@pytest.fixture
def make_window(qtbot, app_home, tmp_path):
    from waferdesk.app.mainwindow import MainWindow
    from waferdesk.client.drafts import DraftStore

    made = []

    def make(**kw):
        store = DraftStore()
        win = MainWindow(store, start_engine=False, outbox_path=tmp_path / "outbox.sqlite3", **kw)
        qtbot.addWidget(win)
        win.resize(1400, 900)
        win.show()
        qtbot.waitExposed(win)
        made.append((win, store))
        return win

    yield make
    for win, store in made:
        win.close()
        store.close()


def signed_in(win, live, user: str):
    return win.connect_server(ServerClient.login(live.url, user, PASSWORD), sync_model=False)


def annotator_submits(live, tmp_path, count: int = 1) -> None:
    """A queue of 3 on 4 uploaded wafers; "ann" submits the model's pre-annotation of ``count``."""
    seed_queue(live, tmp_path, n=4, batch=3)
    with ServerClient.login(live.url, "ann", PASSWORD) as ann:
        for _ in range(count):
            item = ann.claim_next()["item"]
            pre = ann.prediction_labels(item["prediction_id"])
            ann.create_annotation(item["wafer"]["id"], pre, prediction_id=item["prediction_id"], submit=True)


def test_sign_in_dialog_keyring_fallback_and_roles(qtbot, live, make_window, no_keyring, app_home) -> None:
    win = make_window()
    assert not win.actions["claim_next"].isEnabled() and win.actions["brush"].isEnabled()  # local files
    win.actions["sign_in"].trigger()
    dlg = win.signin_dialog
    dlg.url.setText(live.url)
    dlg.username.setText("ann")
    dlg.password.setText("wrong password")
    assert not dlg.try_sign_in()
    assert dlg.error.text() == "Wrong user name or password" and dlg.isVisible()
    dlg.url.setText("http://127.0.0.1:9")  # nothing listens there
    assert not dlg.try_sign_in() and "cannot reach the server" in dlg.error.text()
    dlg.url.setText(live.url)
    dlg.password.setText(PASSWORD)
    assert dlg.try_sign_in()
    qtbot.waitUntil(lambda: isinstance(win.session, ServerSession), timeout=WAIT)
    assert win.server_label.text() == f"ann (annotator) on {live.url}"
    assert win.queue_bar.isVisible() and win.actions["claim_next"].isEnabled()
    assert not win.actions["review"].isEnabled()
    # no OS keyring: the refresh token went to a 0600 file, said in one line
    creds = app_home / "config" / "credentials.json"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert "No OS keyring" in win.statusBar().currentMessage()
    # the kept token signs in again (next start) without the password
    win.sign_out(forget=False)
    assert win.resume_last_session()  # in a worker thread: the window goes on meanwhile
    qtbot.waitUntil(lambda: isinstance(win.session, ServerSession), timeout=WAIT)
    assert win.session.username == "ann" and win.server_label.text() == f"ann (annotator) on {live.url}"
    # a viewer looks but cannot edit
    signed_in(win, live, "viewer")
    assert not win.actions["brush"].isEnabled() and not win.doc.editable
    win.set_tool("brush")
    assert win.view.tool.name == "navigate" and not win.queue_bar.isVisible()
    # an engineer reviews (and may label the queue)
    signed_in(win, live, "eng")
    assert win.actions["review"].isEnabled() and win.actions["brush"].isEnabled()
    # Sign out forgets the kept token, here and on the server
    token = win.token_store.load(live.url, "eng")
    win.actions["sign_out"].trigger()
    assert win.server_label.text() == "local files" and win.token_store.load(live.url, "eng") is None
    with pytest.raises(ServerError) as gone:
        ServerClient.resume(live.url, token)
    assert gone.value.status == 401


def test_resuming_at_start_never_freezes_the_window_on_a_server_that_does_not_answer(qtbot, make_window) -> None:
    silent = socket.socket()  # accepts connections (the kernel's backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    store = TokenStore(use_keyring=False)
    store.save(url, "ann", "a-kept-refresh-token")
    win = make_window(token_store=store)
    win.settings.setValue("server/url", url)
    win.settings.setValue("server/user", "ann")
    try:
        t0 = time.monotonic()
        assert win.resume_last_session()
        assert time.monotonic() - t0 < 1.0  # was: up to 15 s in the GUI thread
        assert f"connecting to {url}" in win.statusBar().currentMessage()
        assert win.server_label.text() == f"connecting to {url}…"
        ticks: list[int] = []
        QTimer.singleShot(50, lambda: ticks.append(1))
        qtbot.waitUntil(lambda: bool(ticks), timeout=2000)  # the event loop runs meanwhile
        win.browser.search.setText("KNOWN")  # and the window takes input
        assert win.browser.search.text() == "KNOWN" and not isinstance(win.session, ServerSession)
    finally:
        silent.close()  # the kernel resets the waiting connection: the resume fails
    qtbot.waitUntil(lambda: f"not signed in to {url}" in win.statusBar().currentMessage(), timeout=WAIT)
    assert win.server_label.text() == "local files" and not isinstance(win.session, ServerSession)


def _on_screen_queue_entry(win):
    e = win.doc.current
    return e if e is not None and e.remote == "in queue" else None


def test_queue_claim_edit_submit_next_and_skip(qtbot, live, make_window, tmp_path) -> None:
    seed_queue(live, tmp_path, n=5, batch=4)
    win = make_window()
    signed_in(win, live, "ann")
    api = ServerClient.login(live.url, "eng", PASSWORD)
    win.actions["claim_next"].trigger()
    qtbot.waitUntil(lambda: _on_screen_queue_entry(win) is not None, timeout=WAIT)
    first = win.doc.current
    task = win.queue.tasks[first.key]
    # the pre-annotation is the server's prediction, on every failing die
    pre = api.prediction_labels(task.prediction_id)
    assert np.array_equal(first.labels, pre) and ((pre != IGNORE) == (first.wafer.dies == FAIL)).all()
    assert first.prediction is not None and np.array_equal(first.prediction.labels, pre)
    assert "in queue" in win.browser.model.data(win.browser.model.index(win.browser.model.row_of(first), 5))
    qtbot.waitUntil(lambda: win.queue.prefetched is not None, timeout=WAIT)  # the next one is ready
    assert "next wafer ready" in win.queue_text.text()
    # correct it with the brush: a failing die becomes 'ring' (class 3)
    r, c = map(int, np.argwhere(first.wafer.dies == FAIL)[0])
    win.set_active_class(2)
    win.side.tool_options.size.setValue(1)
    drag(win.view, [(r + 0.5, c + 0.5), (r + 0.5, c + 0.5)])
    assert first.labels[r, c] == 2
    mine = first.labels.copy()
    # Ctrl+Enter: submitted, and the next wafer is on screen at once (it was prefetched)
    win.view.setFocus()
    qtbot.keyClick(win.view, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    second = _on_screen_queue_entry(win)
    assert second is not None and second is not first
    assert first.remote == "submitted"
    qtbot.waitUntil(lambda: first.sync == "synced", timeout=WAIT)
    assert "0 pending · 1 synced" in win.outbox_label.text()
    m = win.browser.model
    assert m.data(m.index(m.row_of(first), 5)) == "submitted ✓"
    (ann,) = api.annotations_for_wafer(task.wafer_db_id)
    assert ann["status"] == "submitted" and ann["source"] == "corrected_prediction"
    assert ann["prediction_id"] == task.prediction_id
    assert np.array_equal(labels_from_payload(ann["labels"], mine.shape), mine)
    # skip with a reason (the dialog), and the next opens
    second_item = win.queue.tasks[second.key].item_id
    win.actions["skip"].trigger()
    win.queue.skip_dialog.reason.setCurrentText("map is unreadable or corrupt")
    win.queue.skip_dialog.accept()
    qtbot.waitUntil(lambda: _on_screen_queue_entry(win) not in (None, second), timeout=WAIT)
    assert second.remote == "skipped"
    qtbot.waitUntil(lambda: api.queue(state="skipped")["total"] == 1, timeout=WAIT)
    (skipped,) = api.queue(state="skipped")["items"]
    assert skipped["id"] == second_item and skipped["skip_reason"] == "map is unreadable or corrupt"
    api.close()


def test_offline_submission_waits_in_the_outbox_and_goes_when_the_server_is_back(
    qtbot, live, make_window, tmp_path, tiny_model
) -> None:
    seed_queue(live, tmp_path, n=4, batch=3)
    win = make_window()
    signed_in(win, live, "ann")
    win.queue.sync_timer.setInterval(200)
    win.actions["claim_next"].trigger()
    qtbot.waitUntil(lambda: _on_screen_queue_entry(win) is not None and win.queue.prefetched is not None, timeout=WAIT)
    first = win.doc.current
    port = int(live.url.rsplit(":", 1)[1])
    live.stop()  # the server goes away
    assert win.queue.submit_current()
    assert _on_screen_queue_entry(win) is not None  # prefetched: work goes on offline
    qtbot.wait(600)
    assert first.sync == "pending" and "1 pending" in win.outbox_label.text()
    m = win.browser.model
    assert m.data(m.index(m.row_of(first), 5)) == "sending ↑"
    back = start_server(tmp_path, tiny_model, port=port)  # same database, same address
    try:
        qtbot.waitUntil(lambda: first.sync == "synced", timeout=WAIT)
        assert "0 pending · 1 synced" in win.outbox_label.text()
        with ServerClient.login(back.url, "ann", PASSWORD) as api:
            (ann,) = api.annotations_for_wafer(win.queue.tasks[first.key].wafer_db_id)
            assert ann["status"] == "submitted"
    finally:
        back.stop()


def test_a_conflict_shows_both_versions_and_keep_mine_or_take_theirs(qtbot, live, make_window, tmp_path) -> None:
    seed_queue(live, tmp_path, n=4, batch=3)
    win = make_window()
    signed_in(win, live, "ann")
    win.queue.prefetch_enabled = False
    other = ServerClient.login(live.url, "ann", PASSWORD)  # the same user on another machine

    def claim_and_collide(fill: int):
        win.actions["claim_next"].trigger()
        qtbot.waitUntil(lambda: _on_screen_queue_entry(win) is not None, timeout=WAIT)
        e = win.doc.current
        theirs = np.where(e.labels != IGNORE, fill, IGNORE).astype(np.uint8)
        other.create_annotation(win.queue.tasks[e.key].wafer_db_id, theirs)
        assert win.queue.submit_current()
        qtbot.waitUntil(lambda: win.queue.conflict_dialog is not None, timeout=WAIT)
        return e, theirs

    e1, _ = claim_and_collide(fill=4)
    dlg = win.queue.conflict_dialog
    assert e1.sync == CONFLICT and "conflict" in win.outbox_label.text()
    table = {dlg.table.item(r, 0).text(): (dlg.table.item(r, 1).text(), dlg.table.item(r, 2).text()) for r in range(9)}
    n = int((e1.labels != IGNORE).sum())
    assert table["particle"] == (str(n), str(int((e1.labels == 4).sum()))) and table["total"] == (str(n), str(n))
    assert "version 1, draft, by ann" in dlg.head.text() and "Mine</b>: by ann" in dlg.head.text()
    dlg.keep.click()  # keep mine: re-based on their version and sent
    qtbot.waitUntil(lambda: e1.sync == "synced", timeout=WAIT)
    (ann,) = other.annotations_for_wafer(win.queue.tasks[e1.key].wafer_db_id)
    assert ann["version"] == 3 and ann["status"] == "submitted"
    assert np.array_equal(labels_from_payload(ann["labels"], e1.labels.shape), e1.labels)

    e2, theirs = claim_and_collide(fill=5)
    win.queue.conflict_dialog.take.click()  # take theirs: my labels give way, the server keeps its draft
    assert np.array_equal(e2.labels, theirs) and e2.sync == "took theirs"
    m = win.browser.model
    assert m.data(m.index(m.row_of(e2), COL_STATUS)) == "took theirs"  # the user's choice, not a loss
    assert "deleted" not in win.outbox_label.text()
    (kept,) = other.annotations_for_wafer(win.queue.tasks[e2.key].wafer_db_id)
    assert kept["version"] == 1 and kept["status"] == "draft"
    win.doc.stack(e2).undo()  # taking theirs is one undo step like any edit
    assert not np.array_equal(e2.labels, theirs)
    other.close()


def test_a_submission_deleted_on_the_server_shows_so_not_as_took_theirs(qtbot, live, make_window, tmp_path) -> None:
    seed_queue(live, tmp_path, n=4, batch=3)
    wire = LosingTransport()
    win = make_window()
    win.connect_server(ServerClient.login(live.url, "ann", PASSWORD, transport=wire), sync_model=False)
    win.queue.prefetch_enabled = False
    win.queue.sync_timer.stop()  # sent right after Submit and when asked, not in between
    win.actions["claim_next"].trigger()
    qtbot.waitUntil(lambda: _on_screen_queue_entry(win) is not None, timeout=WAIT)
    first = win.doc.current
    wire.lose.add(("POST", "/annotations"))
    assert win.queue.submit_current()  # the server makes it, the answer never comes
    qtbot.waitUntil(lambda: not wire.lose and not win.queue.syncing, timeout=WAIT)
    assert first.sync == "pending"
    with ServerClient.login(live.url, "ann", PASSWORD) as other:  # deleted meanwhile (another machine)
        (made,) = other.annotations_for_wafer(win.queue.tasks[first.key].wafer_db_id)
        other.delete_annotation(made["id"], made["version"])
    win.queue.sync_now()  # the replay of its key: 410 annotation_deleted
    qtbot.waitUntil(lambda: first.sync not in ("pending", ""), timeout=WAIT)
    m = win.browser.model
    cell = m.index(m.row_of(first), COL_STATUS)
    assert m.data(cell) == "deleted on server ✗"
    tip = m.data(cell, Qt.ItemDataRole.ToolTipRole)
    assert f"deleted on the server: annotation {made['id']}" in tip and "not sent again" in tip
    assert "took theirs" not in tip
    # the counter says something submitted was not sent, and its tooltip names it
    assert win.outbox_label.text() == "outbox: 0 pending · 0 synced · 1 deleted on server"
    assert first.title in win.outbox_label.toolTip() and f"annotation {made['id']}" in win.outbox_label.toolTip()


def test_review_mode_annotation_beside_prediction_approve_and_reject(qtbot, live, make_window, tmp_path) -> None:
    annotator_submits(live, tmp_path, count=2)
    win = make_window()
    signed_in(win, live, "eng")
    win.actions["review"].trigger()
    panel = win.review_panel
    qtbot.waitUntil(lambda: panel.table.rowCount() == 2, timeout=WAIT)
    assert win.review_dock.isVisible() and panel.table.item(0, 1).text() == "ann"
    panel.table.setCurrentCell(0, 0)
    qtbot.waitUntil(lambda: win.doc.current is not None and win.doc.current.read_only, timeout=WAIT)
    e = win.doc.current
    assert e.prediction is not None and not win.doc.editable and e.remote == "review · ann"
    assert (
        not panel.model_picture.pixmap().isNull()
        and "differs from the annotation on <b>0</b>" in panel.model_title.text()
    )
    win.set_mode("prediction")
    assert win.view.mode == "prediction"
    win.set_mode("labels")
    first_id = panel.rows[0]["annotation"]["id"]
    panel.approve_button.click()
    qtbot.waitUntil(lambda: panel.table.rowCount() == 1, timeout=WAIT)
    qtbot.waitUntil(panel.approve_button.isEnabled, timeout=WAIT)  # the next one opened by itself
    assert win.doc.current.remote == "review · ann" and win.doc.current is not e
    second_id = panel.rows[0]["annotation"]["id"]
    win.review.reject("the scratch is a ring")
    qtbot.waitUntil(lambda: panel.table.rowCount() == 0, timeout=WAIT)
    with ServerClient.login(live.url, "eng", PASSWORD) as eng:
        assert eng.get_annotation(first_id)["status"] == "approved"
        rejected = eng.get_annotation(second_id)
        assert rejected["status"] == "rejected" and rejected["reject_reason"] == "the scratch is a ring"


def test_model_sync_downloads_verifies_and_switches_and_refuses_a_sha_mismatch(
    qtbot, live, make_window, app_home
) -> None:
    from server.db.models import RegisteredModel

    win = make_window()
    signed_in(win, live, "ann")
    win.sync_model()
    qtbot.waitUntil(lambda: getattr(win, "last_model_sync", None) is not None, timeout=WAIT)
    result = win.last_model_sync
    assert result.status == "downloaded" and result.path.parent == app_home / "data" / "models"
    assert win.engine.model_path == str(result.path)
    qtbot.waitUntil(lambda: win.model_label.text().startswith("Model tiny-1"), timeout=WAIT)
    # asked again: the same sha, nothing downloaded
    win.last_model_sync = None
    win.sync_model()
    qtbot.waitUntil(lambda: win.last_model_sync is not None, timeout=WAIT)
    assert win.last_model_sync.status == "up to date"
    # the server's file no longer matches its card: refused, the model in use stays
    with live.ctx.sessions() as s:
        row = s.query(RegisteredModel).filter_by(is_active=True).one()
        with open(row.artifact_path, "ab") as fh:
            fh.write(b"tampered")
    win.model_info = {}
    win.engine.model_path = None  # as if this installation had another model and never fetched this one
    for f in (app_home / "data" / "models").iterdir():
        f.unlink()
    win.last_model_sync = None
    win.sync_model()
    qtbot.waitUntil(lambda: win.last_model_sync is not None, timeout=WAIT)
    assert "does not match its card" in str(win.last_model_sync)
    assert "refused" in win.statusBar().currentMessage()
    assert list((app_home / "data" / "models").iterdir()) == []  # no partial file left


def test_reviewing_a_wafer_also_open_from_a_local_file_leaves_the_local_one_alone(
    qtbot, live, make_window, tmp_path
) -> None:
    annotator_submits(live, tmp_path)
    win = make_window()
    win.open_paths([tmp_path / "queue-5.wdm"])  # the engineer has the uploaded file open too
    local = [(e, e.labels.copy()) for e in win.ws.entries]
    signed_in(win, live, "eng")
    win.actions["review"].trigger()
    panel = win.review_panel
    qtbot.waitUntil(lambda: panel.table.rowCount() == 1, timeout=WAIT)
    panel.table.setCurrentCell(0, 0)
    qtbot.waitUntil(lambda: win.doc.current is not None and win.doc.current.read_only, timeout=WAIT)
    reviewed = win.doc.current
    assert reviewed.remote == "review · ann" and len(win.ws) == len(local) + 1
    # the local wafers keep their own labels and stay editable: the review is a row of its own
    for e, labels in local:
        assert e is not reviewed and not e.read_only and e.remote == ""
        assert np.array_equal(e.labels, labels)
    same = next(e for e, _ in local if e.wafer.content_hash() == reviewed.wafer.content_hash())
    win.browser.select(same)
    assert win.doc.current is same and win.doc.editable


def test_save_and_exports_write_the_opened_files_wafers_not_the_servers_rows(
    qtbot, live, make_window, tmp_path, wafer_file
) -> None:
    import csv

    from pycocotools.coco import COCO

    from waferdesk.app.model.workspace import Workspace
    from waferdesk.core.formats import read_wdm, write_wdm
    from waferdesk.core.records import WaferRecord

    annotator_submits(live, tmp_path)
    win = make_window()
    win.open_paths([wafer_file])
    signed_in(win, live, "eng")
    win.queue.prefetch_enabled = False
    # a review row (read-only, the annotator's labels) ...
    win.actions["review"].trigger()
    qtbot.waitUntil(lambda: win.review_panel.table.rowCount() == 1, timeout=WAIT)
    win.review_panel.table.setCurrentCell(0, 0)
    qtbot.waitUntil(lambda: win.doc.current is not None and win.doc.current.read_only, timeout=WAIT)
    reviewed = win.doc.current
    # ... and the same wafer from a local file, relabelled here
    twin_file = write_wdm(tmp_path / "twin.wdm", [WaferRecord(reviewed.wafer, None)])
    win.open_paths([twin_file])
    twin = win.ws.entries[-1]
    assert twin is not reviewed and twin.wafer.content_hash() == reviewed.wafer.content_hash()
    win.browser.select(twin)
    mine = np.where(twin.wafer.dies == FAIL, 7, IGNORE).astype(np.uint8)
    assert not np.array_equal(mine, reviewed.labels)
    win.doc.replace_labels(twin, mine, "test labels")
    # ... and a queue row
    win.actions["claim_next"].trigger()
    qtbot.waitUntil(lambda: _on_screen_queue_entry(win) is not None, timeout=WAIT)
    local = [e for e in win.ws.entries if e.source in (wafer_file, twin_file)]
    assert len(local) == 5 and len(win.ws) == 7

    saved = win.save_labels(tmp_path / "out.wdm")
    assert "2 queue or review wafers from the server left out" in win.statusBar().currentMessage()
    recs = read_wdm(saved)
    assert [r.wafer.content_hash() for r in recs] == [e.wafer.content_hash() for e in local]  # each once
    assert np.array_equal(recs[-1].mask.labels, mine)
    reopened = Workspace()
    reopened.load([saved])
    assert np.array_equal(reopened.entries[-1].labels, mine)  # my labels, not the review's

    out = win.export_csv(tmp_path / "results.csv")
    assert "left out" in win.statusBar().currentMessage()
    rows = list(csv.DictReader(out.open()))
    assert [r["source"] for r in rows] == [str(e.source) for e in local]
    coco_path = win.export_coco(tmp_path / "labels.json")
    assert "left out" in win.statusBar().currentMessage()
    assert len(COCO(str(coco_path)).getImgIds()) == sum(e.has_labels() for e in local)
    # with only server rows open there is nothing to write, and it says so
    only_server = make_window()
    signed_in(only_server, live, "eng")
    only_server.actions["claim_next"].trigger()
    qtbot.waitUntil(lambda: _on_screen_queue_entry(only_server) is not None, timeout=WAIT)
    assert only_server.save_labels(tmp_path / "nothing.wdm") is None
    assert "nothing to save" in only_server.statusBar().currentMessage()
    assert only_server.export_csv(tmp_path / "nothing.csv") is None
    assert not (tmp_path / "nothing.wdm").exists() and not (tmp_path / "nothing.csv").exists()
