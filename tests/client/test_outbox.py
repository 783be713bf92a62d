"""The outbox against a real server (uvicorn on loopback, SQLite): a submission whose answer is
lost is retried without ever making a second annotation; an unreachable server leaves entries
pending; a changed server version is a conflict, settled by keep mine / take theirs."""

from __future__ import annotations

import numpy as np
import pytest
from live_server import PASSWORD, LosingTransport, seed_queue, start_server

from waferdesk.client.api import ServerClient, labels_from_payload
from waferdesk.client.outbox import CONFLICT, DISCARDED, FAILED, PENDING, SYNCED, Outbox


@pytest.fixture
def lab(tmp_path, tiny_model):
    live = start_server(tmp_path, tiny_model)
    live.add_users(("eng", "engineer"), ("ann", "annotator"))
    seed_queue(live, tmp_path, n=4, batch=3)
    wire = LosingTransport()
    api = ServerClient.login(live.url, "ann", PASSWORD, transport=wire)
    box = Outbox(tmp_path / "outbox.sqlite3")
    yield live, api, wire, box
    box.close()
    api.close()
    live.stop()


def _claimed(api):
    claim = api.claim_next()
    item = claim["item"]
    return item, api.prediction_labels(item["prediction_id"])


def _mine(api, wafer_id):
    return [a for a in api.annotations_for_wafer(wafer_id)]


def test_a_lost_answer_is_retried_without_a_duplicate(lab) -> None:
    _live, api, wire, box = lab
    item, labels = _claimed(api)
    wid = item["wafer"]["id"]
    entry = box.add(
        api.base_url, "ann", wid, "w", labels, source="accepted_prediction", prediction_id=item["prediction_id"]
    )
    wire.lose.add(("POST", "/annotations"))
    assert box.sync(api, "ann")[PENDING] == 1  # the server made it, the answer never came
    assert len(_mine(api, wid)) == 1
    assert box.get(entry.key).state == PENDING and box.get(entry.key).attempts == 1
    counts = box.sync(api, "ann")  # the retry carries the same client key
    assert counts[SYNCED] == 1 and counts[PENDING] == 0
    (ann,) = _mine(api, wid)
    assert box.get(entry.key).annotation_id == ann["id"] and ann["status"] == "submitted"
    assert np.array_equal(labels_from_payload(ann["labels"], labels.shape), labels)
    assert api.queue(state="done")["total"] == 1  # the claim is complete


def test_a_lost_answer_of_an_edit_is_recognised_on_retry(lab) -> None:
    _live, api, wire, box = lab
    item, labels = _claimed(api)
    wid = item["wafer"]["id"]
    draft = api.create_annotation(wid, labels)  # the user's earlier draft of this wafer
    edited = labels.copy()
    edited[edited != 255] = 3
    entry = box.add(api.base_url, "ann", wid, "w", edited, base_id=draft["id"], base_version=draft["version"])
    wire.lose.add(("POST", f"/annotations/{draft['id']}/submit"))
    box.sync(api, "ann")  # update landed, submit landed, its answer lost
    assert box.get(entry.key).state == PENDING
    box.sync(api, "ann")  # 409 on the retried update; the server already has exactly these labels
    (ann,) = _mine(api, wid)
    assert box.get(entry.key).state == SYNCED and ann["status"] == "submitted" and ann["version"] == 3


def test_offline_entries_wait_then_go(lab) -> None:
    _live, api, wire, box = lab
    item, labels = _claimed(api)
    wire.offline = True
    box.add(api.base_url, "ann", item["wafer"]["id"], "w", labels)
    box.add(api.base_url, "ann", item["wafer"]["id"], "w", labels)  # a second one never jumps the queue
    assert box.sync(api, "ann")[PENDING] == 2
    (first, second) = box.entries()
    assert first.attempts == 1 and second.attempts == 0 and "cannot reach the server" in first.message
    wire.offline = False
    counts = box.sync(api, "ann")
    # the second entry of the same wafer re-uses the annotation (same labels: nothing to do)
    assert counts[SYNCED] == 2 and len(_mine(api, item["wafer"]["id"])) == 1
    # a submission the server refuses is failed, with its reason, until the user retries it
    gone = box.add(api.base_url, "ann", 99999, "deleted wafer", labels)
    assert box.sync(api, "ann")[FAILED] == 1
    assert box.get(gone.key).state == FAILED and "99999" in box.get(gone.key).message
    box.retry(gone.key)
    assert box.get(gone.key).state == PENDING


def test_a_changed_server_version_is_a_conflict_settled_by_the_user(lab) -> None:
    live, api, _wire, box = lab
    item, labels = _claimed(api)
    wid = item["wafer"]["id"]
    theirs_labels = labels.copy()
    theirs_labels[theirs_labels != 255] = 0
    with ServerClient.login(live.url, "ann", PASSWORD) as other_machine:
        theirs = other_machine.create_annotation(wid, theirs_labels)  # a draft saved elsewhere
    mine = box.add(api.base_url, "ann", wid, "w", labels)
    box.sync(api, "ann")
    got = box.get(mine.key)
    assert got.state == CONFLICT and got.theirs["id"] == theirs["id"] and got.theirs["version"] == 1
    their_counts = {k: v for k, v in got.theirs["counts"].items() if v}
    assert "version 1" in got.message and their_counts == {"edge": int((labels != 255).sum())}
    assert got.counts() != their_counts and sum(got.counts().values()) == sum(their_counts.values())
    box.keep_mine(mine.key)
    box.sync(api, "ann")
    (ann,) = _mine(api, wid)
    assert box.get(mine.key).state == SYNCED and ann["status"] == "submitted"
    assert np.array_equal(labels_from_payload(ann["labels"], labels.shape), labels)
    # take theirs: the entry is dropped, the server keeps its version
    item2, labels2 = _claimed(api)
    with ServerClient.login(live.url, "ann", PASSWORD) as other_machine:
        other_machine.create_annotation(item2["wafer"]["id"], np.where(labels2 != 255, 1, 255).astype(np.uint8))
    e2 = box.add(api.base_url, "ann", item2["wafer"]["id"], "w2", labels2)
    box.sync(api, "ann")
    assert box.get(e2.key).state == CONFLICT
    box.take_theirs(e2.key)
    assert box.sync(api, "ann")[DISCARDED] == 1
    (kept,) = _mine(api, item2["wafer"]["id"])
    assert kept["version"] == 1 and kept["status"] == "draft"


def test_a_replay_of_a_deleted_annotation_is_dropped_with_a_visible_reason(lab) -> None:
    _live, api, wire, box = lab
    item, labels = _claimed(api)
    wid = item["wafer"]["id"]
    entry = box.add(api.base_url, "ann", wid, "w", labels)
    wire.lose.add(("POST", "/annotations"))
    assert box.sync(api, "ann")[PENDING] == 1  # the server made it, the answer never came
    (made,) = _mine(api, wid)
    api.delete_annotation(made["id"], made["version"])  # deleted (on another machine, say) meanwhile
    counts = box.sync(api, "ann")  # the replay of the key: 410 annotation_deleted
    got = box.get(entry.key)
    assert counts[PENDING] == 0 and counts[FAILED] == 0 and counts[DISCARDED] == 1
    assert got.state == DISCARDED and got.annotation_id == made["id"] and got.attempts == 2
    assert "deleted on the server" in got.message and str(made["id"]) in got.message
    assert _mine(api, wid) == []  # not made again
    box.sync(api, "ann")  # never sent again
    assert box.get(entry.key).attempts == 2 and _mine(api, wid) == []
