"""The active-learning query and queue over HTTP (SQLite and Postgres), and concurrent claims."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import numpy as np
import pytest
from annotation_helpers import error, rle, seed_wafers
from model_fixtures import make_tiny_model
from server_helpers import bearer, create_user, login
from sqlalchemy import update

from server.db.base import utcnow
from server.db.models import QueueItem, RegisteredModel, User
from server.services import queue as queue_svc
from server.services.tta import tta_scores
from waferdesk.core.active import select as select_batch
from waferdesk.core.inference import Segmenter
from waferdesk.core.synth import SynthConfig, generate


@pytest.fixture
def lab(app_factory, tiny_model, wafer_file):
    """A server with the tiny model, an engineer, three annotators and 12 wafers with ground truth."""
    client = app_factory(model_path=tiny_model)
    names = ("eng", "ann1", "ann2", "ann3")
    for n in names:
        create_user(client, n, "engineer" if n == "eng" else "annotator")
    h = {n: bearer(login(client, n)) for n in names}
    truth = seed_wafers(client, h["eng"], wafer_file(12, seed=31))
    return client, h, truth


def _query(client, h, **body):
    r = client.post("/active-learning/query", json=body, headers=h)
    assert r.status_code == 201, r.text
    return r.json()


def _stored_uncertainty(client, h, wafer_ids):
    out = {}
    for wid in wafer_ids:
        preds = client.get(f"/wafers/{wid}/predictions", headers=h).json()
        assert len(preds) == 1, f"wafer {wid} has {len(preds)} predictions"
        out[wid] = preds[0]["uncertainty"]
    return out


def test_query_scores_stored_predictions_and_predicts_the_rest(lab) -> None:
    client, h, truth = lab
    ids = sorted(truth)
    # four wafers already predicted; the query predicts the other eight and stores them too
    client.post("/predict/batch", data={"wafer_ids": ids[:4]}, headers=h["eng"])
    rnd = _query(client, h["eng"], strategy="uncertainty", batch_size=5, score="entropy_max")
    assert rnd["number"] == 1 and rnd["candidates"] == 12 and rnd["params"]["score"] == "entropy_max"
    unc = _stored_uncertainty(client, h["eng"], ids)
    expect = sorted(ids, key=lambda w: (-unc[w]["entropy_max"], ids[::-1].index(w)))[:5]
    assert [it["wafer"]["id"] for it in rnd["items"]] == expect
    assert [it["rank"] for it in rnd["items"]] == [1, 2, 3, 4, 5]
    assert all(it["score"] == pytest.approx(unc[it["wafer"]["id"]]["entropy_max"]) for it in rnd["items"])
    assert all(it["state"] == "queued" and it["prediction_id"] for it in rnd["items"])
    # the next round skips queued wafers; random is the core's seeded pick over the rest (newest first)
    rest = [w for w in sorted(ids, reverse=True) if w not in expect]
    rnd2 = _query(client, h["eng"], strategy="random", batch_size=3, seed=5)
    u = np.array([unc[w]["entropy_mean"] for w in rest])
    want = [rest[i] for i in select_batch("random", 3, u, seed=5).indices]
    assert rnd2["number"] == 2 and [it["wafer"]["id"] for it in rnd2["items"]] == want
    # hybrid: diverse picks among the most uncertain pool_factor x batch
    rest = [w for w in rest if w not in want]
    rnd3 = _query(client, h["eng"], strategy="hybrid", batch_size=2, pool_factor=2)
    pool = sorted(rest, key=lambda w: -unc[w]["entropy_mean"])[:4]
    got = [it["wafer"]["id"] for it in rnd3["items"]]
    assert len(set(got)) == 2 and set(got) <= set(pool)
    # margins rank smallest first (an unsure model), the item keeps the raw margin
    rest = [w for w in rest if w not in got]
    rnd4 = _query(client, h["eng"], strategy="uncertainty", batch_size=2, score="margin_mean")
    assert [it["wafer"]["id"] for it in rnd4["items"]] == sorted(rest, key=lambda w: unc[w]["margin_mean"])[:2]
    assert rnd4["items"][0]["score"] == pytest.approx(min(unc[w]["margin_mean"] for w in rest))
    rounds = client.get("/active-learning/rounds", headers=h["ann1"]).json()
    assert [(r["number"], r["strategy"]) for r in rounds] == [
        (1, "uncertainty"),
        (2, "random"),
        (3, "hybrid"),
        (4, "uncertainty"),
    ]


def test_query_errors(lab, app_factory) -> None:
    client, h, _ = lab
    r = client.post("/active-learning/query", json={"strategy": "uncertainty", "score": "nope"}, headers=h["eng"])
    assert r.status_code == 422 and "available:" in error(r)["message"] and "entropy_mean" in error(r)["message"]
    r = client.post("/active-learning/query", json={"strategy": "clever"}, headers=h["eng"])
    assert r.status_code == 422
    r = client.post("/active-learning/query", json={"batch_size": 0}, headers=h["eng"])
    assert r.status_code == 422
    _query(client, h["eng"], strategy="diversity", batch_size=12)
    r = client.post("/active-learning/query", json={"strategy": "random"}, headers=h["eng"])
    assert r.status_code == 409 and error(r)["code"] == "no_candidates"
    assert client.post("/active-learning/query", json={}, headers=h["ann1"]).status_code == 403


def test_tta_disagreement_query(lab) -> None:
    client, h, _truth = lab
    rnd = _query(client, h["eng"], strategy="uncertainty", batch_size=3, tta=True, lot=None)
    assert rnd["params"]["score"] == "tta_mutual_info" and rnd["params"]["tta"] is True
    for it in rnd["items"]:
        assert {"tta_mutual_info", "tta_vote_disagreement", "entropy_mean"} <= set(it["scores"])
        assert it["score"] == it["scores"]["tta_mutual_info"] >= 0
    scores = [it["score"] for it in rnd["items"]]
    assert scores == sorted(scores, reverse=True)


def test_tta_disagreement_compares_single_views_whatever_the_card_averages(tmp_path) -> None:
    """A served model averaging 4 rotations answers every rotation alike; the disagreement
    must still compare the 8 symmetries one view at a time."""
    four = Segmenter(make_tiny_model(tmp_path, name="tta4", inference={"views": 4}), providers="cpu", cache=False)
    one = Segmenter(four.model_path, providers="cpu", cache=False, views=1)
    maps = [r.wafer for r in generate(3, seed=41, cfg=SynthConfig(size_range=(14, 30)))]
    got, expected = tta_scores(four, maps), tta_scores(one, maps)
    assert four.views == 4 and four.runs == 1  # only its warm-up: the symmetries ran at one view
    for g, e in zip(got, expected, strict=True):
        assert g == pytest.approx(e, abs=1e-6) and g["tta_mutual_info"] > 0


def test_claim_lease_skip_release_complete(lab) -> None:
    client, h, truth = lab
    ctx = client.app.state.ctx
    _query(client, h["eng"], strategy="uncertainty", batch_size=5)

    def claim(who):
        r = client.post("/active-learning/queue/claim", headers=h[who])
        assert r.status_code == 200, r.text
        return r.json()

    a = claim("ann1")
    assert a["item"]["state"] == "claimed" and a["lease_seconds"] == ctx.settings.queue_lease_seconds
    assert a["item"]["rank"] == 1 and a["my_annotation"] is None
    again = claim("ann1")  # the claim you hold comes back, not a second item
    assert again["item"]["id"] == a["item"]["id"] and again["item"]["lease_expires_at"] >= a["item"]["lease_expires_at"]
    b = claim("ann2")
    assert b["item"]["id"] != a["item"]["id"]
    # ann1's lease runs out: the item is claimable again and ann3 gets it
    with ctx.sessions() as s:
        s.execute(
            update(QueueItem)
            .where(QueueItem.id == a["item"]["id"])
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
        s.commit()
    listed = client.get("/active-learning/queue", params={"state": "queued"}, headers=h["ann1"]).json()
    assert a["item"]["id"] in [i["id"] for i in listed["items"]]
    c = claim("ann3")
    assert c["item"]["id"] == a["item"]["id"]
    r = client.post(f"/active-learning/queue/{a['item']['id']}/skip", json={"reason": "x"}, headers=h["ann1"])
    assert r.status_code == 409 and error(r)["code"] == "not_your_claim"
    # ann1 gets a fresh item; skipping needs a reason; a skipped item is not handed out again
    d = claim("ann1")
    assert d["item"]["id"] not in (a["item"]["id"], b["item"]["id"])
    assert (
        client.post(
            f"/active-learning/queue/{d['item']['id']}/skip", json={"reason": ""}, headers=h["ann1"]
        ).status_code
        == 422
    )
    r = client.post(
        f"/active-learning/queue/{d['item']['id']}/skip", json={"reason": "map is unreadable"}, headers=h["ann1"]
    )
    assert r.json()["state"] == "skipped" and r.json()["skip_reason"] == "map is unreadable"
    e = claim("ann1")
    assert e["item"]["id"] not in (a["item"]["id"], b["item"]["id"], d["item"]["id"])
    r = client.post(f"/active-learning/queue/{e['item']['id']}/release", headers=h["ann1"])
    assert r.json()["state"] == "queued" and r.json()["claimed_by"] is None
    assert client.post(f"/active-learning/queue/{e['item']['id']}/renew", headers=h["ann1"]).status_code == 409
    assert claim("ann1")["item"]["id"] == e["item"]["id"]  # released: first in line again
    # completing = submitting the annotation of the claimed wafer
    wid = b["item"]["wafer"]["id"]
    r = client.post(
        "/annotations",
        json={"wafer_id": wid, "labels": rle(truth[wid]), "submit": True, "time_spent_s": 30},
        headers=h["ann2"],
    )
    assert r.status_code == 201
    done = client.get("/active-learning/queue", params={"state": "done"}, headers=h["ann2"]).json()["items"]
    assert [(i["id"], i["annotation_id"]) for i in done] == [(b["item"]["id"], r.json()["id"])]
    stats = client.get("/active-learning/stats", headers=h["ann2"]).json()
    (rs,) = stats["rounds"]
    assert (rs["items"], rs["labelled"], rs["skipped"], rs["in_progress"], rs["queued"]) == (5, 1, 1, 2, 1)
    ann2 = next(a for a in stats["annotators"] if a["username"] == "ann2")
    assert ann2["submitted"] == 1 and ann2["mean_seconds_per_annotation"] == 30 and ann2["per_hour"] == 120
    assert stats["totals"]["in_progress"] == 2 and stats["totals"]["annotations"]["submitted"] == 1
    # the claim, skip, release and completion are in the audit log
    from server.db.models import AuditLog

    with ctx.sessions() as s:
        actions = Counter(a.action for a in s.query(AuditLog).filter_by(entity="queue_item"))
    assert actions == {"claim": 6, "skip": 1, "release": 1, "complete": 1}


def test_round_stats_carry_the_models_metrics(lab) -> None:
    client, h, _ = lab
    with client.app.state.ctx.sessions() as s:
        m = s.query(RegisteredModel).one()
        m.card = {**m.card, "metrics": {"miou": 0.61}}
        s.commit()
    _query(client, h["eng"], strategy="random", batch_size=2)
    (rs,) = client.get("/active-learning/stats", headers=h["eng"]).json()["rounds"]
    assert rs["model_metrics"] == {"miou": 0.61} and rs["model"]["version"] == "tiny-1"


def test_concurrent_claims_never_share_an_item(lab) -> None:
    """Many annotators claim at once, each through its own database connection: every item is
    handed out exactly once (Postgres: FOR UPDATE SKIP LOCKED; SQLite: one writer at a time)."""
    client, h, _truth = lab
    ctx = client.app.state.ctx
    _query(client, h["eng"], strategy="random", batch_size=12)
    workers = 8
    user_ids = [create_user(client, f"worker{i}", "annotator") for i in range(workers)]
    start = threading.Barrier(workers)
    got: dict[int, list[int]] = {u: [] for u in user_ids}
    failures: list[BaseException] = []

    def work(uid: int) -> None:
        try:
            with ctx.sessions() as s:
                user = s.get(User, uid)
                start.wait()
                while (item := queue_svc.claim_next(s, user, 600)) is not None:
                    got[uid].append(item.id)
                    queue_svc.skip(s, user, item.id, "concurrency test")
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(u,)) for u in user_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not failures, failures
    handed = [i for ids in got.values() for i in ids]
    assert len(handed) == 12 and len(set(handed)) == 12, got
    with ctx.sessions() as s:
        assert {i.state for i in s.query(QueueItem)} == {"skipped"}


def test_a_negative_seed_is_a_422_naming_it_and_makes_no_round(lab) -> None:
    client, h, _ = lab
    for strategy in ("random", "hybrid"):
        r = client.post("/active-learning/query", json={"strategy": strategy, "seed": -1}, headers=h["eng"])
        assert r.status_code == 422, r.text
        assert error(r)["code"] == "invalid_input" and error(r)["message"].startswith("body field seed:")
    assert client.get("/active-learning/rounds", headers=h["eng"]).json() == []


def test_an_unknown_query_field_is_refused_instead_of_widening_the_round(lab) -> None:
    client, h, truth = lab
    some = sorted(truth)[:2]
    for body in ({"strategy": "random", "lots": ["NO-SUCH-LOT"]}, {"strategy": "random", "wafer_id": some}):
        r = client.post("/active-learning/query", json=body, headers=h["eng"])
        assert r.status_code == 422, r.text
        assert error(r)["message"].startswith("body field "), error(r)
    assert client.get("/active-learning/rounds", headers=h["eng"]).json() == []


def test_a_claim_for_a_round_counts_only_that_rounds_claims_as_held(lab) -> None:
    """docs/annotations.md: at most len(exclude) + 1 claims per round; `round` looks only at that round."""
    client, h, _ = lab
    _query(client, h["eng"], strategy="uncertainty", batch_size=2)
    _query(client, h["eng"], strategy="uncertainty", batch_size=2)

    def claim(body=None):
        r = client.post("/active-learning/queue/claim", json=body, headers=h["ann1"])
        assert r.status_code == 200, r.text
        return r.json()["item"]

    first = claim()
    assert first["round"] == 1
    second = claim({"round": 2})
    assert second["round"] == 2 and second["id"] != first["id"]
    assert claim()["id"] == first["id"] and claim({"round": 2})["id"] == second["id"]
    mine = client.get("/active-learning/queue", params={"mine": True, "state": "claimed"}, headers=h["ann1"]).json()
    assert sorted(i["id"] for i in mine["items"]) == sorted([first["id"], second["id"]])
