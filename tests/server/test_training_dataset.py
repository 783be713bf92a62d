"""A job's training set is the approved annotations it selects (by lot, by active-learning
round), sent to its worker as one .wdm of wafer grids + ground-truth masks."""

from __future__ import annotations

import numpy as np
import pytest
from annotation_helpers import rle, seed_wafers
from server_helpers import bearer, create_user, login
from training_helpers import SYNTH_SPEC, fake_worker_command, kill_group, wait_status, worker_token

from waferdesk.core.formats import read_wdm


@pytest.fixture
def labelled(app_factory, tiny_model, wafer_file):
    """5 wafers in two lots; round 1 holds one of each lot; 4 approved, 1 only submitted."""
    client = app_factory(
        training_worker_command=fake_worker_command("wait"),
        training_server_url="http://127.0.0.1:9",
        training_poll_seconds=0.1,
        model_path=tiny_model,
    )
    create_user(client, "ann", "annotator")
    create_user(client, "eng", "engineer")
    h = {n: bearer(login(client, n)) for n in ("ann", "eng")}
    truth = seed_wafers(client, h["eng"], wafer_file(3, seed=41, lot="LOTA", name="a.wdm"))
    truth |= seed_wafers(client, h["eng"], wafer_file(2, seed=42, lot="LOTB", name="b.wdm"))
    ids = sorted(truth)
    r = client.post(
        "/active-learning/query",
        json={"strategy": "random", "batch_size": 2, "wafer_ids": [ids[0], ids[3]]},
        headers=h["eng"],
    )
    assert r.status_code in (200, 201), r.text
    for i, wid in enumerate(ids):
        ann = client.post(
            "/annotations", json={"wafer_id": wid, "labels": rle(truth[wid]), "submit": True}, headers=h["ann"]
        ).json()
        if i != 2:  # the third LOTA wafer stays submitted: not ground truth
            r = client.post(f"/annotations/{ann['id']}/approve", json={"version": 1}, headers=h["eng"])
            assert r.status_code == 200, r.text
    yield client, h, truth, ids
    for pid in client.app.state.ctx.training.backend.running_pids():
        kill_group(pid)


def _dataset(client, eng, data: dict, tmp_path) -> list:
    r = client.post("/training/jobs", json={**SYNTH_SPEC, "data": data}, headers=eng)
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    wait_status(client, eng, job_id, "running")
    worker = bearer(worker_token(client, job_id))
    spec = client.get(f"/training/worker/{job_id}", headers=worker).json()
    got = client.get(f"/training/worker/{job_id}/dataset", headers=worker)
    assert got.status_code == 200
    path = tmp_path / f"job-{job_id}.wdm"
    path.write_bytes(got.content)
    records = read_wdm(path)
    assert int(got.headers["x-waferdesk-wafers"]) == len(records) == spec["dataset"]["annotated_wafers"]
    assert client.post(f"/training/jobs/{job_id}/cancel", headers=eng).status_code == 200
    return records


def test_the_worker_gets_the_selected_ground_truth(labelled, tmp_path) -> None:
    client, h, truth, ids = labelled
    by_hash = {}
    for wid in ids:
        w = client.get(f"/wafers/{wid}", params={"grid": False}, headers=h["eng"]).json()
        by_hash[w["content_hash"]] = wid

    every = _dataset(client, h["eng"], {"annotations": True}, tmp_path)
    assert sorted(by_hash[r.wafer.content_hash()] for r in every) == [ids[0], ids[1], ids[3], ids[4]]
    for r in every:
        assert np.array_equal(r.mask.labels, truth[by_hash[r.wafer.content_hash()]])
        assert r.wafer.lot in ("LOTA", "LOTB") and r.wafer.wafer_id

    lot_a = _dataset(client, h["eng"], {"annotations": True, "lots": ["LOTA"]}, tmp_path)
    assert sorted(by_hash[r.wafer.content_hash()] for r in lot_a) == [ids[0], ids[1]]
    round_1 = _dataset(client, h["eng"], {"annotations": True, "rounds": [1]}, tmp_path)
    assert sorted(by_hash[r.wafer.content_hash()] for r in round_1) == [ids[0], ids[3]]
    mixed = _dataset(client, h["eng"], {"annotations": True, "rounds": [1], "synthetic_count": 5}, tmp_path)
    assert len(mixed) == 2  # synthetic wafers are made by the worker, never sent


def test_a_selection_with_no_ground_truth_is_refused(labelled) -> None:
    client, h, _, _ = labelled
    r = client.post(
        "/training/jobs", json={**SYNTH_SPEC, "data": {"annotations": True, "rounds": [7]}}, headers=h["eng"]
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "no_training_data"
    assert r.json()["error"]["details"]["annotated_wafers"] == 0
    ok = client.post(
        "/training/jobs", json={**SYNTH_SPEC, "data": {"annotations": True, "lots": ["LOTB"]}}, headers=h["eng"]
    )
    assert ok.status_code == 201
    log = client.get(f"/training/jobs/{ok.json()['id']}/logs", headers=h["eng"]).json()["lines"]
    assert "training set: 2 annotated wafers + 0 synthetic" in [ln["text"] for ln in log]
