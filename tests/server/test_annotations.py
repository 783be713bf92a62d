"""Annotations over HTTP (SQLite and Postgres): validation, versions, ownership, review, audit."""

from __future__ import annotations

import numpy as np
import pytest
from annotation_helpers import decode, error, rle, seed_wafers
from server_helpers import bearer, create_user, login

from waferdesk.core.taxonomy import IGNORE, default_taxonomy


@pytest.fixture
def team(client, wafer_file):
    """Two annotators, an engineer, four wafers with known ground truth."""
    create_user(client, "ann1", "annotator")
    create_user(client, "ann2", "annotator")
    create_user(client, "eng", "engineer")
    h = {name: bearer(login(client, name)) for name in ("ann1", "ann2", "eng")}
    truth = seed_wafers(client, h["eng"], wafer_file(4, seed=21))
    return client, h, truth


def _create(client, h, wafer_id, labels, **kw):
    r = client.post("/annotations", json={"wafer_id": wafer_id, "labels": rle(labels), **kw}, headers=h)
    assert r.status_code == 201, r.text
    return r.json()


def test_labels_are_checked_against_the_wafer(team) -> None:
    client, h, truth = team
    wid, gt = next(iter(truth.items()))
    dies = np.array(client.get(f"/wafers/{wid}", headers=h["ann1"]).json()["dies"])
    # a class on a pass die: 422 naming the die
    bad = gt.copy()
    r0, c0 = map(int, np.argwhere(dies == 1)[0])
    bad[r0, c0] = 0
    r = client.post("/annotations", json={"wafer_id": wid, "labels": rle(bad)}, headers=h["ann1"])
    assert r.status_code == 422 and error(r)["code"] == "invalid_labels"
    assert f"pass die at row {r0}, col {c0}" in error(r)["message"]
    # a class index outside the taxonomy
    bad = gt.copy()
    f0 = tuple(np.argwhere(dies == 2)[0])
    bad[f0] = len(default_taxonomy())
    r = client.post("/annotations", json={"wafer_id": wid, "labels": rle(bad)}, headers=h["ann1"])
    assert r.status_code == 422 and "not a class index" in error(r)["message"]
    # the wrong shape (rows) and a truncated rle
    r = client.post("/annotations", json={"wafer_id": wid, "labels": gt[:-1].tolist()}, headers=h["ann1"])
    assert r.status_code == 422 and "shape" in error(r)["message"]
    short = rle(gt)
    short["rle"][-1][1] -= 1
    r = client.post("/annotations", json={"wafer_id": wid, "labels": short}, headers=h["ann1"])
    assert r.status_code == 422 and "covers" in error(r)["message"]
    # submitting demands every failing die labelled; a draft may be partial
    partial = gt.copy()
    partial[f0] = IGNORE
    r = client.post("/annotations", json={"wafer_id": wid, "labels": rle(partial), "submit": True}, headers=h["ann1"])
    assert r.status_code == 422 and "has no class" in error(r)["message"]
    draft = _create(client, h["ann1"], wid, partial)
    assert draft["status"] == "draft" and draft["n_labelled"] == int((gt != IGNORE).sum()) - 1
    r = client.post(f"/annotations/{draft['id']}/submit", json={"version": 1}, headers=h["ann1"])
    assert r.status_code == 422 and error(r)["code"] == "invalid_labels"
    # unknown wafer, unknown polygon class
    r = client.post("/annotations", json={"wafer_id": 987654, "labels": rle(gt)}, headers=h["ann1"])
    assert r.status_code == 404 and error(r)["code"] == "wafer_not_found"
    r = client.post(
        "/annotations",
        json={
            "wafer_id": wid,
            "labels": rle(gt),
            "polygons": [{"class": "blob", "vertices": [[0, 0], [1, 0], [1, 1]]}],
        },
        headers=h["ann2"],
    )
    assert r.status_code == 422 and error(r)["code"] == "invalid_polygons"


def test_versions_conflict_instead_of_overwriting(team) -> None:
    client, h, truth = team
    wid, gt = next(iter(truth.items()))
    ann = _create(client, h["ann1"], wid, gt, source="accepted_prediction", time_spent_s=3)
    assert ann["version"] == 1 and ann["annotator"] == "ann1" and ann["source"] == "accepted_prediction"
    assert np.array_equal(decode(ann["labels"], gt.shape), gt)
    changed = gt.copy()
    fails = np.argwhere(gt != IGNORE)
    changed[tuple(fails[0])] = (gt[tuple(fails[0])] + 1) % len(default_taxonomy())
    # two editors both start from version 1: the first wins, the second gets 409 + the current version
    first = client.put(
        f"/annotations/{ann['id']}", json={"version": 1, "labels": rle(changed), "add_time_s": 2}, headers=h["ann1"]
    )
    assert first.status_code == 200 and first.json()["version"] == 2 and first.json()["time_spent_s"] == 5
    second = client.put(f"/annotations/{ann['id']}", json={"version": 1, "labels": rle(gt)}, headers=h["ann1"])
    assert second.status_code == 409 and error(second)["code"] == "version_conflict"
    assert error(second)["details"]["current_version"] == 2
    now = client.get(f"/annotations/{ann['id']}", headers=h["ann1"]).json()
    assert now["version"] == 2 and np.array_equal(decode(now["labels"], gt.shape), changed)
    # review actions name the version too
    assert client.post(f"/annotations/{ann['id']}/submit", json={"version": 1}, headers=h["ann1"]).status_code == 409
    # a second live annotation of the same wafer by the same annotator is refused, naming the first
    r = client.post("/annotations", json={"wafer_id": wid, "labels": rle(gt)}, headers=h["ann1"])
    assert r.status_code == 409 and error(r)["details"]["annotation_id"] == ann["id"]


def test_annotators_touch_only_their_own(team) -> None:
    client, h, truth = team
    wid, gt = next(iter(truth.items()))
    mine = _create(client, h["ann1"], wid, gt)
    r = client.put(f"/annotations/{mine['id']}", json={"version": 1, "labels": rle(gt)}, headers=h["ann2"])
    assert r.status_code == 403 and error(r)["code"] == "not_your_annotation"
    assert client.get(f"/annotations/{mine['id']}", headers=h["ann2"]).status_code == 403
    r = client.delete(f"/annotations/{mine['id']}", params={"version": 1}, headers=h["ann2"])
    assert r.status_code == 403
    theirs = _create(client, h["ann2"], wid, gt)
    # annotators see their own on the wafer; engineers see both
    assert [a["id"] for a in client.get(f"/annotations/wafer/{wid}", headers=h["ann2"]).json()] == [theirs["id"]]
    assert {a["id"] for a in client.get(f"/annotations/wafer/{wid}", headers=h["eng"]).json()} == {
        mine["id"],
        theirs["id"],
    }
    assert client.get("/annotations", headers=h["ann1"]).status_code == 403  # listing everyone's: read_all
    assert client.get("/annotations", headers=h["eng"]).json()["total"] == 2


def test_review_flow_ground_truth_and_audit(team) -> None:
    client, h, truth = team
    wid, gt = next(iter(truth.items()))
    ann = _create(client, h["ann1"], wid, gt, submit=True)
    assert ann["status"] == "submitted" and not ann["ground_truth"]
    assert client.post(f"/annotations/{ann['id']}/approve", json={"version": 1}, headers=h["ann1"]).status_code == 403
    r = client.post(f"/annotations/{ann['id']}/reject", json={"version": 1, "reason": "  "}, headers=h["eng"])
    assert r.status_code == 422
    r = client.post(
        f"/annotations/{ann['id']}/reject", json={"version": 1, "reason": "scratch is a ring"}, headers=h["eng"]
    )
    assert (
        r.status_code == 200 and r.json()["status"] == "rejected" and r.json()["reject_reason"] == "scratch is a ring"
    )
    # the annotator edits it (back to draft) and submits again; the reviewer approves
    r = client.put(f"/annotations/{ann['id']}", json={"version": 2, "add_time_s": 4}, headers=h["ann1"])
    assert r.json()["status"] == "draft" and r.json()["version"] == 3
    r = client.post(f"/annotations/{ann['id']}/submit", json={"version": 3}, headers=h["ann1"])
    assert r.json()["status"] == "submitted"
    assert client.post(f"/annotations/{ann['id']}/submit", json={"version": 4}, headers=h["ann1"]).status_code == 409
    r = client.post(f"/annotations/{ann['id']}/approve", json={"version": 4}, headers=h["eng"])
    assert r.status_code == 200 and r.json()["status"] == "approved" and r.json()["ground_truth"] is True
    # approved is ground truth: its annotator can neither edit nor delete it
    r = client.put(f"/annotations/{ann['id']}", json={"version": 5, "labels": rle(gt)}, headers=h["ann1"])
    assert r.status_code == 409 and error(r)["code"] == "annotation_approved"
    assert client.delete(f"/annotations/{ann['id']}", params={"version": 5}, headers=h["ann1"]).status_code == 409
    # every change has its audit row: who, what, before/after
    hist = client.get(f"/annotations/{ann['id']}/history", headers=h["ann1"]).json()
    assert [(e["action"], e["user_id"] is not None) for e in hist] == [
        ("create", True),
        ("reject", True),
        ("update", True),
        ("submit", True),
        ("approve", True),
    ]
    assert hist[1]["before"]["status"] == "submitted" and hist[1]["after"]["reason"] == "scratch is a ring"
    assert [e["after"]["version"] for e in hist] == [1, 2, 3, 4, 5]
    assert all(e["request_id"] for e in hist)


def test_soft_delete_keeps_the_history(team) -> None:
    client, h, truth = team
    wid, gt = next(iter(truth.items()))
    ann = _create(client, h["ann1"], wid, gt)
    assert client.delete(f"/annotations/{ann['id']}", params={"version": 7}, headers=h["ann1"]).status_code == 409
    r = client.delete(f"/annotations/{ann['id']}", params={"version": 1}, headers=h["ann1"])
    assert r.status_code == 200
    assert client.get(f"/annotations/{ann['id']}", headers=h["ann1"]).status_code == 404
    assert client.get(f"/annotations/wafer/{wid}", headers=h["eng"]).json() == []
    # the row is still there (soft), with its audit trail; the annotator may start again
    with client.app.state.ctx.sessions() as s:
        from server.db.models import Annotation, AuditLog

        row = s.get(Annotation, ann["id"])
        assert row is not None and row.deleted_at is not None and row.version == 2
        assert [a.action for a in s.query(AuditLog).filter_by(entity_id=ann["id"]).order_by(AuditLog.id)] == [
            "create",
            "delete",
        ]
    assert _create(client, h["ann1"], wid, gt)["id"] != ann["id"]


def test_agreement_between_two_annotators_flags_the_wafer(team) -> None:
    client, h, truth = team
    (w1, gt1), (w2, gt2) = list(truth.items())[:2]
    tax = default_taxonomy()
    # wafer 1: both agree; wafer 2: ann2 moves every failing die to another class
    for wid, gt in ((w1, gt1), (w2, gt2)):
        _create(client, h["ann1"], wid, gt, submit=True)
    _create(client, h["ann2"], w1, gt1, submit=True)
    other = np.where(gt2 != IGNORE, (gt2.astype(np.int64) + 1) % len(tax), IGNORE)
    _create(client, h["ann2"], w2, other.astype(np.uint8), submit=True)
    agree = {a["wafer_id"]: a for a in client.get("/annotations/agreement", headers=h["eng"]).json()}
    assert agree[w1]["min_miou"] == 1.0 and not agree[w1]["flagged"]
    assert agree[w2]["min_miou"] == 0.0 and agree[w2]["flagged"]
    per = agree[w1]["pairs"][0]["per_class"]
    assert all(per[n] in (None, 1.0) for n in tax.names) and any(per[n] == 1.0 for n in tax.names)
    stats = client.get("/active-learning/stats", headers=h["ann1"]).json()["agreement"]
    assert stats["wafers_compared"] == 2 and stats["flagged_wafers"] == [w2] and stats["threshold"] == 0.8
    # the review list shows the disagreeing wafer's annotations first
    review = client.get("/annotations/review", headers=h["eng"]).json()
    assert {r["annotation"]["wafer_id"] for r in review[:2]} == {w2}
    assert review[0]["agreement"]["flagged"] is True and len(review) == 4


def test_rle_runs_too_long_for_the_wafer_are_a_422_not_a_500(team) -> None:
    client, h, truth = team
    wid, gt = next(iter(truth.items()))
    cells = gt.size
    for runs in (
        [[255, 10**19]],  # past int64
        [[255, 2**62]] * 4 + [[255, cells]],  # sums to `cells` once int64 wraps around
        [[255, cells + 1], [255, 0]],
    ):
        r = client.post("/annotations", json={"wafer_id": wid, "labels": {"rle": runs}}, headers=h["ann1"])
        assert r.status_code == 422, (runs, r.status_code, r.text)
        assert error(r)["code"] == "invalid_labels" and error(r)["message"].startswith("body field labels: ")
    assert client.get(f"/annotations/wafer/{wid}", headers=h["ann1"]).json() == []


def test_editing_a_submitted_annotation_keeps_it_submitted_and_complete(team) -> None:
    """docs/annotations.md: submitted annotations are edited in place; only a rejected one returns to draft."""
    client, h, truth = team
    wid, gt = next(iter(truth.items()))
    ann = _create(client, h["ann1"], wid, gt, submit=True)
    partial = gt.copy()
    partial[tuple(np.argwhere(gt != IGNORE)[0])] = IGNORE
    r = client.put(f"/annotations/{ann['id']}", json={"version": 1, "labels": rle(partial)}, headers=h["ann1"])
    assert r.status_code == 422 and error(r)["code"] == "invalid_labels"
    r = client.put(f"/annotations/{ann['id']}", json={"version": 1, "add_time_s": 2}, headers=h["ann1"])
    assert r.status_code == 200 and r.json()["status"] == "submitted" and r.json()["version"] == 2
    r = client.post(f"/annotations/{ann['id']}/approve", json={"version": 1}, headers=h["eng"])
    assert r.status_code == 409 and error(r)["code"] == "version_conflict"
