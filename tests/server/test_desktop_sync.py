"""What the desktop's queue mode needs from the server (SQLite and Postgres): an idempotent
create (a client key makes a retried POST return the first annotation) and a second claim
(``exclude``) so the next wafer can be prefetched while the annotator works on this one."""

from __future__ import annotations

import pytest
from annotation_helpers import error, rle, seed_wafers
from server_helpers import bearer, create_user, login

from server.db.models import Annotation


@pytest.fixture
def team(app_factory, tiny_model, wafer_file):
    client = app_factory(model_path=tiny_model)
    create_user(client, "ann", "annotator")
    create_user(client, "ann2", "annotator")
    create_user(client, "eng", "engineer")
    h = {n: bearer(login(client, n)) for n in ("ann", "ann2", "eng")}
    truth = seed_wafers(client, h["eng"], wafer_file(6, seed=41))
    return client, h, truth


def _count(client) -> int:
    with client.app.state.ctx.sessions() as s:
        return s.query(Annotation).count()


def test_a_retried_create_with_the_same_client_key_returns_the_first_annotation(team) -> None:
    client, h, truth = team
    wid, gt = next(iter(truth.items()))
    body = {"wafer_id": wid, "labels": rle(gt), "submit": True, "client_key": "outbox-0001-abcdef"}
    first = client.post("/annotations", json=body, headers=h["ann"])
    assert first.status_code == 201 and "idempotent-replay" not in first.headers
    again = client.post("/annotations", json=body, headers=h["ann"])  # the answer of the first was "lost"
    assert again.status_code == 200 and again.headers["idempotent-replay"] == "true"
    assert again.json()["id"] == first.json()["id"] and again.json()["version"] == first.json()["version"]
    assert _count(client) == 1
    # the key belongs to its user: another annotator with the same key creates their own
    other = client.post("/annotations", json=body, headers=h["ann2"])
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    # without a key a second create is still the 409 naming the first
    no_key = {k: v for k, v in body.items() if k != "client_key"}
    r = client.post("/annotations", json=no_key, headers=h["ann"])
    assert r.status_code == 409 and error(r)["code"] == "already_annotated"
    assert error(r)["details"]["annotation_id"] == first.json()["id"]
    # a malformed key is a 422 naming the field
    r = client.post("/annotations", json={**body, "client_key": "bad key!"}, headers=h["ann"])
    assert r.status_code == 422 and "client_key" in r.text


def test_claim_with_exclude_hands_out_a_second_item_to_prefetch(team) -> None:
    client, h, _truth = team
    r = client.post("/active-learning/query", json={"strategy": "uncertainty", "batch_size": 4}, headers=h["eng"])
    assert r.status_code == 201, r.text

    def claim(who, exclude=()):
        r = client.post("/active-learning/queue/claim", json={"exclude": list(exclude)}, headers=h[who])
        assert r.status_code == 200, r.text
        return r.json()["item"]

    a = claim("ann")
    assert claim("ann")["id"] == a["id"]  # without exclude: the claim you hold
    b = claim("ann", [a["id"]])
    assert b["id"] != a["id"] and b["state"] == "claimed"
    assert claim("ann", [a["id"]])["id"] == b["id"]  # asked again: the same prefetched item
    c = claim("ann2")
    assert c["id"] not in (a["id"], b["id"])
    r = client.post("/active-learning/queue/claim", json={"exclude": [1, 2, 3, 4, 5]}, headers=h["ann"])
    assert r.status_code == 422


def test_a_replayed_create_of_a_deleted_annotation_is_gone_not_answered(team) -> None:
    client, h, truth = team
    wid, gt = next(iter(truth.items()))
    body = {"wafer_id": wid, "labels": rle(gt), "submit": True, "client_key": "outbox-0002-deleted"}
    first = client.post("/annotations", json=body, headers=h["ann"])
    assert first.status_code == 201
    ann = first.json()
    r = client.delete(f"/annotations/{ann['id']}", params={"version": ann["version"]}, headers=h["ann"])
    assert r.status_code in (200, 204), r.text
    again = client.post("/annotations", json=body, headers=h["ann"])  # the outbox's late retry
    assert again.status_code == 410 and "idempotent-replay" not in again.headers
    err = error(again)
    assert err["code"] == "annotation_deleted" and str(ann["id"]) in err["message"]
    assert err["details"]["annotation_id"] == ann["id"] and err["details"]["deleted_at"]
    assert _count(client) == 1  # nothing made again
    assert client.get(f"/annotations/wafer/{wid}", headers=h["ann"]).json() == []
    # a new annotation of the wafer (a new key) is made as usual
    fresh = client.post("/annotations", json={**body, "client_key": "outbox-0003-fresh"}, headers=h["ann"])
    assert fresh.status_code == 201 and fresh.json()["id"] != ann["id"]
