"""Training jobs over HTTP with the local backend and a stand-in worker process (no torch here;
``test_training_e2e.py`` trains for real): validation, the worker's token routes, metrics,
logs, cancel, the concurrency limit, crashes, a server restart, the heartbeat timeout, and the
model registry's upload -> promote -> /predict path."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from model_fixtures import make_tiny_model
from server_helpers import bearer, create_user, login, upload
from sqlalchemy import update
from training_helpers import (
    SYNTH_SPEC,
    fake_worker_command,
    get_job,
    kill_group,
    pid_of,
    process_gone,
    wait_for,
    wait_status,
    worker_token,
)

from server.db.base import utcnow
from server.db.models import TrainingJob
from waferdesk.core.formats import read_wdm
from waferdesk.core.modelcard import sha256_file


@pytest.fixture
def training(app_factory, tiny_model):
    """``training(mode, **settings)`` -> a started app whose local backend runs the fake worker."""
    made = []

    def make(mode: str = "wait", **overrides):
        values = {
            "training_worker_command": fake_worker_command(mode),
            "training_server_url": "http://127.0.0.1:9",  # the fake worker never calls it
            "training_poll_seconds": 0.1,
            "model_path": tiny_model,
        }
        values.update(overrides)
        client = app_factory(**values)
        made.append(client)
        return client

    yield make
    for client in made:  # no worker outlives its test
        for pid in client.app.state.ctx.training.backend.running_pids():
            kill_group(pid)


def _people(client) -> tuple[dict[str, str], dict[str, str]]:
    create_user(client, "eng", "engineer")
    create_user(client, "boss", "admin")
    return bearer(login(client, "eng")), bearer(login(client, "boss"))


def _submit(client, headers, spec=None) -> dict:
    r = client.post("/training/jobs", json=spec or SYNTH_SPEC, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


BAD_SPECS = [
    ({"steps": 2, "epochs": 5}, "epochs (5) cannot exceed steps (2)"),
    ({"encoder": "vgg16"}, "body field encoder"),
    ({"learning_rate": 0}, "body field learning_rate"),
    ({"batch_size": 0}, "body field batch_size"),
    ({"device": "tpu"}, "body field device"),
    ({"bogus": 1}, "body field bogus"),
    ({"steps": 4000.0}, "body field steps"),
    ({"epochs": True}, "body field epochs"),
    ({"data": {"annotations": False, "synthetic_count": True}}, "body field data.synthetic_count"),
    ({"data": {"annotations": False, "synthetic_count": 1.5}}, "body field data.synthetic_count"),
    ({"data": {"annotations": True, "synthetic_count": 4, "rounds": [True]}}, "body field data.rounds"),
    ({"patience": 2.0}, "body field patience"),
    ({"init_model": True}, "body field init_model"),
    ({"ema": 1.0}, "body field ema"),
    ({"ema": -0.1}, "body field ema"),
    ({"freeze_bn": "yes"}, "body field freeze_bn"),
    ({"data": {"annotations": False, "synthetic_count": 4, "min_size": 50, "max_size": 20}}, "min_size (50)"),
    ({"data": {"annotations": False, "synthetic_count": 4, "rounds": []}}, "rounds must be a non-empty list"),
    ({"seed": 202}, "validation must use wafers never trained on"),
]


def test_a_bad_spec_is_refused_with_a_clear_422(training) -> None:
    client = training()
    eng, _ = _people(client)
    for change, expect in BAD_SPECS:
        r = client.post("/training/jobs", json={**SYNTH_SPEC, **change}, headers=eng)
        assert r.status_code == 422, (change, r.text)
        assert r.json()["error"]["code"] == "invalid_input", change
        assert expect in r.json()["error"]["message"], (change, r.json()["error"]["message"])
    assert client.get("/training/jobs", headers=eng).json()["total"] == 0


def test_ema_and_frozen_batchnorm_reach_the_workers_training_config(training) -> None:
    """A job spec's ``ema`` / ``freeze_bn`` are what ``waferdesk train --ema/--freeze-bn`` get:
    stored with the job, then turned into the worker's TrainConfig (off when not asked for)."""
    from waferdesk.worker.run import train_config

    client = training()
    eng, _ = _people(client)
    tuned = _submit(client, eng, {**SYNTH_SPEC, "ema": 0.999, "freeze_bn": True})
    plain = _submit(client, eng)
    assert (tuned["spec"]["ema"], tuned["spec"]["freeze_bn"]) == (0.999, True)
    cfg = train_config(tuned["spec"], Path("train.wdm"), tuned["id"])
    assert (cfg.ema, cfg.freeze_bn) == (0.999, True)
    cfg = train_config(plain["spec"], Path("train.wdm"), plain["id"])
    assert (cfg.ema, cfg.freeze_bn) == (0.0, False)


def test_no_matching_annotations_and_no_synthetic_wafers_is_422(training) -> None:
    client = training()
    eng, _ = _people(client)
    spec = {**SYNTH_SPEC, "data": {"annotations": True, "lots": ["LOT-NOPE"]}}
    r = client.post("/training/jobs", json=spec, headers=eng)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "no_training_data" and "lots=['LOT-NOPE']" in err["message"]
    # no annotations asked for and no synthetic wafers: the same documented code, not invalid_input
    r = client.post(
        "/training/jobs", json={**SYNTH_SPEC, "data": {"annotations": False, "synthetic_count": 0}}, headers=eng
    )
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "no_training_data" and "data.annotations is false" in err["message"]
    assert err["details"]["annotated_wafers"] == 0 and err["details"]["synthetic_wafers"] == 0
    assert client.get("/training/jobs", headers=eng).json()["total"] == 0


def test_fine_tuning_names_a_usable_model_and_the_worker_can_fetch_it(training, tmp_path) -> None:
    """``init_model``: refused unless it names a U-Net of the job's encoder; stored as an id
    ('active' may mean another model tomorrow); the worker downloads file + card with its token."""
    from waferdesk.core.modelcard import card_path_for

    client = training()
    eng, _ = _people(client)
    active = client.get("/models", headers=eng).json()[0]  # the tiny stand-in: not a U-Net
    for ref, expect in (
        (999, "model 999 not found"),
        ("active", f"model {active['id']} ({active['version']}) is a tiny-conv"),
        ("newest", "body field init_model"),
    ):
        r = client.post("/training/jobs", json={**SYNTH_SPEC, "init_model": ref}, headers=eng)
        assert r.status_code == 422, (ref, r.text)
        assert expect in r.json()["error"]["message"], (ref, r.json()["error"]["message"])

    # a resnet18 U-Net card (the registry checks cards, not the network inside the file)
    unet = make_tiny_model(tmp_path / "u", version="unet-r18-parent", seed=7)
    card = json.loads(card_path_for(unet).read_text())
    card["architecture"] = {"name": "Unet", "encoder": "resnet18"}
    card_path_for(unet).write_text(json.dumps(card))
    from server.services.registry import register_model

    ctx = client.app.state.ctx
    with ctx.sessions() as session:
        parent = register_model(session, ctx.settings, unet, "upload", None, activate_if_none=False).id
        session.commit()
    r = client.post("/training/jobs", json={**SYNTH_SPEC, "encoder": "resnet34", "init_model": parent}, headers=eng)
    assert r.status_code == 422 and "this job trains a resnet34 U-Net" in r.json()["error"]["message"]

    job = _submit(client, eng, {**SYNTH_SPEC, "init_model": parent})
    assert job["spec"]["init_model"] == parent
    lines = [ln["text"] for ln in client.get(f"/training/jobs/{job['id']}/logs", headers=eng).json()["lines"]]
    assert f"fine-tuning model {parent} (unet-r18-parent)" in lines
    worker = {"Authorization": f"Bearer {worker_token(client, job['id'])}"}
    got = client.get(f"/training/worker/{job['id']}/init-model", headers=worker)
    assert got.status_code == 200 and got.content == unet.read_bytes()
    assert got.headers["X-Model-Version"] == "unet-r18-parent"
    assert (
        client.get(f"/training/worker/{job['id']}/init-model/card", headers=worker).json()["sha256"] == card["sha256"]
    )
    assert client.get(f"/training/worker/{job['id']}/init-model", headers=eng).status_code == 403  # people cannot

    assert client.post(f"/training/jobs/{job['id']}/cancel", headers=eng).status_code == 200  # one job at a time
    scratch = _submit(client, eng)  # no init_model: nothing to fetch
    worker = {"Authorization": f"Bearer {worker_token(client, scratch['id'])}"}
    r = client.get(f"/training/worker/{scratch['id']}/init-model", headers=worker)
    assert r.status_code == 404 and r.json()["error"]["code"] == "no_init_model"


def test_a_job_that_cannot_start_fails_with_a_readable_error(training) -> None:
    client = training(training_server_url=None)
    eng, _ = _people(client)
    job = wait_status(client, eng, _submit(client, eng)["id"], "failed")
    assert job["error"].startswith("could not start the job on the local backend: WAFERDESK_TRAINING_SERVER_URL")
    assert "Traceback" not in job["error"]
    lines = [ln["text"] for ln in client.get(f"/training/jobs/{job['id']}/logs", headers=eng).json()["lines"]]
    assert lines[0] == "queued for the local backend" and lines[-1].startswith("failed: could not start")


def test_worker_reports_metrics_uploads_a_model_and_an_admin_promotes_it(training, tmp_path, wafer_file) -> None:
    client = training()
    eng, admin = _people(client)
    wafer = upload(client, eng, wafer_file(1, seed=3))["wafers"][0]["id"]
    before = client.post("/predict", data={"wafer_id": wafer}, headers=eng).json()["model"]
    assert before["version"] == "tiny-1"

    created = _submit(client, eng, {**SYNTH_SPEC, "name": "eng-test"})
    assert created["status"] == "queued" and created["backend"] == "local"
    job_id = created["id"]
    job = wait_status(client, eng, job_id, "running")
    assert job["started_at"] and job["backend_handle"].startswith("local:")
    token = worker_token(client, job_id)
    worker = bearer(token)

    # what the worker got: its arguments, its token, and none of the server's secrets
    seen = json.loads((client.app.state.ctx.settings.training_dir / f"job-{job_id}" / "argv.json").read_text())
    assert seen["argv"][:4] == ["--server", "http://127.0.0.1:9", "--job", str(job_id)]
    assert "WAFERDESK_JOB_TOKEN" in seen["env_keys"]
    assert not [k for k in seen["env_keys"] if k.startswith("WAFERDESK_") and k != "WAFERDESK_JOB_TOKEN"]
    assert "DATABASE_URL" not in seen["env_keys"]

    # only this job's token opens the worker routes
    assert client.get(f"/training/worker/{job_id}", headers=eng).status_code == 403
    forged = client.get(f"/training/worker/{job_id}", headers=bearer(f"wdj1.{job_id}.forged"))
    assert forged.status_code == 401 and forged.json()["error"]["code"] == "invalid_token"
    assert client.get(f"/training/worker/{job_id + 1}", headers=worker).status_code == 403

    spec = client.get(f"/training/worker/{job_id}", headers=worker).json()
    assert spec["spec"]["encoder"] == "resnet18" and spec["spec"]["learning_rate"] == 2e-3
    assert spec["classes"][0] == "edge" and spec["dataset"]["synthetic_wafers"] == 8
    r = client.get(f"/training/worker/{job_id}/dataset", headers=worker)
    assert r.status_code == 200 and r.headers["x-waferdesk-wafers"] == "0"
    (tmp_path / "ds.wdm").write_bytes(r.content)
    assert read_wdm(tmp_path / "ds.wdm") == []

    assert (
        client.post(f"/training/worker/{job_id}/status", json={"status": "running"}, headers=worker).status_code == 200
    )
    r = client.post(f"/training/worker/{job_id}/logs", json={"lines": ["epoch 1 ...", "epoch 2 ..."]}, headers=worker)
    assert r.json() == {"stored": 2}
    iou = {"edge": 0.5, "center": 0.7, "ring": None}
    for epoch, miou in ((1, 0.31), (2, 0.42)):
        body = {
            "epoch": epoch,
            "step": 2 * epoch,
            "train_loss": 1.5 / epoch,
            "val_loss": 1.2,
            "lr": 1e-3,
            "miou": miou,
            "class_iou": iou,
            "extra": {"wafers_seen": 4 * epoch},
        }
        assert client.post(f"/training/worker/{job_id}/metrics", json=body, headers=worker).status_code == 200
    bad = client.post(
        f"/training/worker/{job_id}/metrics", json={"epoch": 3, "step": 6, "class_iou": {"blob": 1}}, headers=worker
    )
    assert bad.status_code == 422 and "blob" in bad.json()["error"]["message"]

    m = client.get(f"/training/metrics/{job_id}", headers=eng).json()
    assert [e["epoch"] for e in m["epochs"]] == [1, 2] and m["best"]["epoch"] == 2
    assert m["epochs"][0]["class_iou"] == iou and m["epochs"][1]["train_loss"] == 0.75
    assert get_job(client, eng, job_id)["latest"]["miou"] == 0.42

    early = client.post(f"/training/worker/{job_id}/status", json={"status": "succeeded"}, headers=worker)
    assert early.status_code == 409 and early.json()["error"]["code"] == "model_missing"
    new_model = make_tiny_model(tmp_path / "new", version="tiny-2", seed=1)
    with new_model.open("rb") as f, new_model.with_name("tiny.card.json").open("rb") as c:
        r = client.post(f"/training/worker/{job_id}/model", files={"model": f, "card": c}, headers=worker)
    assert r.status_code == 201, r.text
    model_id = r.json()["model_id"]
    card = client.get(f"/models/{model_id}", headers=eng).json()
    assert card["source"] == "training" and card["version"] == "tiny-2" and not card["is_active"]
    done = client.post(f"/training/worker/{job_id}/status", json={"status": "succeeded"}, headers=worker)
    assert done.json() == {"id": job_id, "status": "succeeded"}
    job = get_job(client, eng, job_id)
    assert job["status"] == "succeeded" and job["model_id"] == model_id and job["finished_at"]
    late = client.post(f"/training/worker/{job_id}/heartbeat", headers=worker)
    assert late.status_code == 409 and late.json()["error"]["code"] == "job_finished"

    log = client.get(f"/training/jobs/{job_id}/logs", headers=eng).json()
    texts = [(ln["source"], ln["text"]) for ln in log["lines"]]
    assert ("worker", "epoch 1 ...") in texts and texts[-1] == ("server", f"succeeded: model {model_id} registered")
    newer = client.get(f"/training/jobs/{job_id}/logs", params={"after": log["lines"][-2]["seq"]}, headers=eng)
    assert [ln["text"] for ln in newer.json()["lines"]] == [texts[-1][1]]

    # the registry: download, promote (admin), and /predict serves the new model
    got = client.get(f"/models/{model_id}/download", headers=eng)
    assert got.content == new_model.read_bytes() and got.headers["x-model-sha256"] == sha256_file(new_model)
    assert client.post(f"/models/{model_id}/promote", headers=eng).status_code == 403
    promo = client.post(f"/models/{model_id}/promote", headers=admin)
    assert promo.status_code == 200, promo.text
    body = promo.json()
    assert body["model"]["id"] == model_id and body["model"]["is_active"] and body["previous"]["version"] == "tiny-1"
    assert isinstance(body["comparison"], list)
    after = client.post("/predict", data={"wafer_id": wafer}, headers=eng).json()
    assert after["model"]["version"] == "tiny-2" and after["model"]["id"] == model_id and after["source"] == "model"
    assert client.get(f"/wafers/{wafer}/predictions", headers=eng).json()[0]["model_version"] == "tiny-2"


def test_promotion_needs_a_model_whose_card_the_server_can_load(training, tmp_path) -> None:
    client = training()
    _, admin = _people(client)
    ctx = client.app.state.ctx
    from server.services.registry import register_model

    with ctx.sessions() as s:
        row = register_model(
            s, ctx.settings, make_tiny_model(tmp_path / "m", version="tiny-3", seed=2), "upload", activate_if_none=False
        )
        s.commit()
        model_id, path = row.id, Path(row.artifact_path)
    with path.open("ab") as f:  # the file changed on disk since it was registered
        f.write(b"tampered")
    r = client.post(f"/models/{model_id}/promote", headers=admin)
    assert r.status_code == 422 and r.json()["error"]["code"] == "model_unusable"
    assert "does not match its card" in r.json()["error"]["message"]
    active = [m for m in client.get("/models", headers=admin).json() if m["is_active"]]
    assert [m["version"] for m in active] == ["tiny-1"]


def test_cancel_stops_the_worker_and_the_concurrency_limit_holds(training) -> None:
    client = training(training_max_concurrent=1)
    eng, _ = _people(client)
    first, second = _submit(client, eng)["id"], _submit(client, eng)["id"]
    job1 = wait_status(client, eng, first, "running")
    pid = pid_of(job1)
    for _ in range(3):  # the manager has looked again: the second job still waits for a slot
        client.app.state.ctx.training.tick()
    job2 = get_job(client, eng, second)
    assert job2["status"] == "queued" and job2["backend_handle"] is None

    r = client.post(f"/training/jobs/{first}/cancel", headers=eng)
    assert r.status_code == 200 and r.json()["status"] == "cancelled" and r.json()["finished_at"]
    wait_for(lambda: process_gone(pid), f"worker pid {pid} to be stopped")
    wait_status(client, eng, second, "running")
    again = client.post(f"/training/jobs/{first}/cancel", headers=eng)
    assert again.status_code == 409 and again.json()["error"]["code"] == "job_finished"
    queued = client.get("/training/jobs", params={"status": "running"}, headers=eng).json()
    assert [j["id"] for j in queued["items"]] == [second]
    assert client.post(f"/training/jobs/{second}/cancel", headers=eng).json()["status"] == "cancelled"


def test_a_crashed_worker_fails_its_job_with_its_last_output(training) -> None:
    client = training("crash")
    eng, _ = _people(client)
    job = wait_status(client, eng, _submit(client, eng)["id"], "failed")
    assert job["error"].startswith("the worker process exited with code 1"), job["error"]
    assert "ImportError: libcudnn.so.9: cannot open shared object file" in job["error"]
    raw = client.get(f"/training/jobs/{job['id']}/logs", params={"source": "backend"}, headers=eng)
    assert raw.status_code == 200 and raw.text.startswith("fake worker crash for job")
    followed = client.get(f"/training/jobs/{job['id']}/logs", params={"source": "backend", "follow": True}, headers=eng)
    assert followed.text == raw.text  # the process has ended, so the stream ends too


def test_a_worker_that_exits_without_a_result_fails_its_job(training) -> None:
    client = training("exit0")
    eng, _ = _people(client)
    job = wait_status(client, eng, _submit(client, eng)["id"], "failed")
    assert "exited with code 0 but its worker never reported a result" in job["error"]


def test_after_a_restart_a_vanished_worker_fails_its_job_honestly(training) -> None:
    first = training()
    eng, _ = _people(first)
    job_id = _submit(first, eng)["id"]
    pid = pid_of(wait_status(first, eng, job_id, "running"))
    worker_token(first, job_id)
    first.app.state.ctx.training.close()  # the server goes down; its worker runs on...
    kill_group(pid)  # ...until it dies while nobody watches
    second = training()  # the server starts again on the same database and data folder
    job = wait_status(second, eng, job_id, "failed")
    assert f"the worker process (pid {pid}) is gone" in job["error"]
    assert "fake worker wait for job" in job["error"]  # its last output


@pytest.mark.parametrize("proc", [True, False], ids=["linux", "no-proc"])
def test_after_a_restart_a_live_worker_is_adopted_and_can_be_cancelled(training, monkeypatch, proc) -> None:
    """Also on a host without /proc (macOS), where the worker is found by its pid alone."""
    from server.services.training.backends import local

    first = training()
    eng, _ = _people(first)
    job_id = _submit(first, eng)["id"]
    pid = pid_of(wait_status(first, eng, job_id, "running"))
    worker_token(first, job_id)
    first.app.state.ctx.training.close()
    if not proc:
        monkeypatch.setattr(local, "_has_proc", lambda: False)
        assert local._cmdline(pid) is None
    second = training()
    for _ in range(3):
        second.app.state.ctx.training.tick()
    assert get_job(second, eng, job_id)["status"] == "running"
    assert second.post(f"/training/jobs/{job_id}/cancel", headers=eng).json()["status"] == "cancelled"
    wait_for(lambda: process_gone(pid), f"adopted worker pid {pid} to be stopped", timeout=20)


def test_a_silent_worker_is_stopped_and_its_job_failed(training) -> None:
    client = training(training_heartbeat_timeout_seconds=60)
    eng, _ = _people(client)
    job_id = _submit(client, eng)["id"]
    pid = pid_of(wait_status(client, eng, job_id, "running"))
    ctx = client.app.state.ctx
    with ctx.sessions() as s:  # last heard of an hour ago
        s.execute(
            update(TrainingJob).where(TrainingJob.id == job_id).values(heartbeat_at=utcnow() - timedelta(hours=1))
        )
        s.commit()
    job = wait_status(client, eng, job_id, "failed")
    assert job["error"].startswith("no word from the worker for ") and "the limit is 60 s" in job["error"]
    wait_for(lambda: process_gone(pid), f"silent worker pid {pid} to be stopped")


def test_a_cancel_that_read_the_dispatchers_claim_still_stops_the_started_worker(training) -> None:
    client = training()
    eng, _ = _people(client)
    job_id = _submit(client, eng)["id"]
    job = wait_status(client, eng, job_id, "running")
    pid, handle = pid_of(job), job["backend_handle"]
    ctx = client.app.state.ctx
    with ctx.sessions() as s:  # the cancel request reads the job while the dispatcher still holds its claim...
        s.execute(update(TrainingJob).where(TrainingJob.id == job_id).values(backend_handle="claim:elsewhere:1"))
        s.commit()
        stale = s.get(TrainingJob, job_id)
        assert stale is not None and stale.backend_handle == "claim:elsewhere:1"
        with ctx.sessions() as other:  # ...which then records the started worker, before the cancel writes
            other.execute(update(TrainingJob).where(TrainingJob.id == job_id).values(backend_handle=handle))
            other.commit()
        assert ctx.training.cancel(s, stale, "eng").status == "cancelled"
    wait_for(lambda: process_gone(pid), f"worker pid {pid} to be stopped", timeout=20)


def test_a_silent_job_of_another_backend_does_not_stay_running_forever(training) -> None:
    client = training(training_heartbeat_timeout_seconds=60)
    eng, _ = _people(client)
    ctx = client.app.state.ctx
    with ctx.sessions() as s:  # left running on Kubernetes before this server was switched to local
        row = TrainingJob(
            status="running",
            backend="kubernetes",
            backend_handle="k8s:waferdesk/waferdesk-train-1",
            spec={},
            token_hash="-" * 64,
            started_at=utcnow() - timedelta(hours=2),
            heartbeat_at=utcnow() - timedelta(hours=1),
        )
        s.add(row)
        s.commit()
        job_id = row.id
    job = wait_status(client, eng, job_id, "failed")
    assert job["error"].startswith("no word from the worker for ") and "the limit is 60 s" in job["error"]
    assert "ran on the kubernetes backend, which this server does not use" in job["error"]
