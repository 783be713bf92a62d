"""The issue's "done means", for real: a live server (uvicorn) with the local backend starts
the real worker (``python -m waferdesk.worker``) on a tiny config; the job goes queued ->
running -> succeeded with metrics per epoch, the new model is in the registry, an admin
promotes it, /predict reports the new model, and a second job fine-tunes it (``init_model``).
Also: a real worker's failure on the job.

Needs the ``ml`` extra (torch, segmentation-models-pytorch, onnx); seconds on a CPU.
"""

from __future__ import annotations

import hashlib
import re
import time

import pytest

pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")
pytest.importorskip("onnx")
pytest.importorskip("waferdesk.ml.train")

import httpx
from live_server import free_port, serve_in_thread
from server_helpers import bearer, create_user, login, upload
from training_helpers import kill_group

TINY = {
    "name": "tiny-e2e",
    "encoder": "resnet18",
    "steps": 4,
    "epochs": 2,
    "batch_size": 2,
    "val_count": 4,
    "threads": 2,
    "data": {"annotations": True, "synthetic_count": 8, "min_size": 15, "max_size": 30},
}


@pytest.fixture
def live(app_factory, tiny_model, database):
    """The app served over HTTP (the worker is a separate process that must reach it)."""
    if database.backend != "sqlite":
        pytest.skip("real training runs once, on SQLite (test_training_api runs every job route on both databases)")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    client = app_factory(training_server_url=url, training_poll_seconds=0.2, model_path=tiny_model)
    server, thread = serve_in_thread(client.app, port, lifespan="off")
    http = httpx.Client(base_url=url, timeout=60)
    try:
        yield client, http
    finally:
        for pid in client.app.state.ctx.training.backend.running_pids():
            kill_group(pid)
        http.close()
        server.should_exit = True
        thread.join(timeout=30)


def _statuses_until_done(http: httpx.Client, headers: dict, job_id: int, timeout: float = 600) -> list[str]:
    """Every status the job showed, in order, until it ended."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = http.get(f"/training/jobs/{job_id}", headers=headers).json()["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        if status in ("succeeded", "failed", "cancelled"):
            return seen
        time.sleep(0.2)
    pytest.fail(f"job {job_id} did not end within {timeout} s; statuses so far {seen}")


@pytest.mark.slow
def test_local_training_job_end_to_end(live, wafer_file) -> None:
    client, http = live
    create_user(client, "eng", "engineer")
    create_user(client, "boss", "admin")
    eng, admin = bearer(login(client, "eng")), bearer(login(client, "boss"))
    wafer = upload(client, eng, wafer_file(1, seed=11))["wafers"][0]["id"]
    assert http.post("/predict", data={"wafer_id": wafer}, headers=eng).json()["model"]["version"] == "tiny-1"

    r = http.post("/training/jobs", json=TINY, headers=eng)
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    seen = [r.json()["status"], *_statuses_until_done(http, eng, job_id)]
    job = http.get(f"/training/jobs/{job_id}", headers=eng).json()
    log = [ln["text"] for ln in http.get(f"/training/jobs/{job_id}/logs", headers=eng).json()["lines"]]
    assert job["status"] == "succeeded", f"{job['error']}\n" + "\n".join(log[-30:])
    assert list(dict.fromkeys(seen)) == ["queued", "running", "succeeded"], seen
    assert job["started_at"] <= job["finished_at"] and job["backend_handle"].startswith("local:")

    # metrics per epoch: losses, learning rate, per-class IoU, mIoU
    metrics = http.get(f"/training/metrics/{job_id}", headers=eng).json()
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    assert [e["step"] for e in metrics["epochs"]] == [2, 4]
    for e in metrics["epochs"]:
        assert set(e["class_iou"]) == set(metrics["classes"]) and 0 <= e["miou"] <= 1
        assert e["lr"] > 0 and e["train_loss"] > 0 and e["val_loss"] > 0 and e["extra"]["wafers_seen"] > 0
    assert any("training set: 0 annotated wafers + 8 synthetic" in ln for ln in log), log

    # the registry holds the new model, made by this job, not yet served
    model_id = job["model_id"]
    card = http.get(f"/models/{model_id}", headers=eng).json()
    assert card["source"] == "training" and not card["is_active"] and card["name"] == "tiny-e2e"
    assert re.fullmatch(rf"unet-resnet18-job-{job_id}-s[24]", card["version"]), card["version"]  # the best epoch
    assert card["card"]["training"]["job"]["id"] == job_id
    assert card["card"]["architecture"]["encoder"] == "resnet18"
    blob = http.get(f"/models/{model_id}/download", headers=eng).content
    assert hashlib.sha256(blob).hexdigest() == card["sha256"]

    # promoted by an admin, it serves /predict
    promo = http.post(f"/models/{model_id}/promote", headers=admin)
    assert promo.status_code == 200, promo.text
    assert promo.json()["previous"]["version"] == "tiny-1"
    assert any(row["metric"].endswith("miou") for row in promo.json()["comparison"])
    pred = http.post("/predict", data={"wafer_id": wafer}, headers=eng).json()
    assert pred["model"]["version"] == card["version"] and pred["model"]["id"] == model_id
    assert pred["source"] == "model"

    # and the next job fine-tunes the promoted model instead of starting from random weights
    r = http.post("/training/jobs", json={**TINY, "steps": 2, "epochs": 1, "init_model": "active"}, headers=eng)
    assert r.status_code == 201, r.text
    child_id = r.json()["id"]
    assert r.json()["spec"]["init_model"] == model_id
    _statuses_until_done(http, eng, child_id)
    child = http.get(f"/training/jobs/{child_id}", headers=eng).json()
    log = [ln["text"] for ln in http.get(f"/training/jobs/{child_id}/logs", headers=eng).json()["lines"]]
    assert child["status"] == "succeeded", f"{child['error']}\n" + "\n".join(log[-30:])
    assert any(f"fine-tuning model {model_id}" in ln for ln in log), log
    lineage = http.get(f"/models/{child['model_id']}", headers=eng).json()["card"]["training"]["init"]
    assert lineage["model_version"] == card["version"] and lineage["sha256"] == card["sha256"]


def test_a_real_worker_failure_is_readable_on_the_job(live) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this failure needs a machine without CUDA")
    client, http = live
    create_user(client, "eng", "engineer")
    eng = bearer(login(client, "eng"))
    spec = {**TINY, "device": "cuda", "data": {**TINY["data"], "annotations": False}}
    job_id = http.post("/training/jobs", json=spec, headers=eng).json()["id"]
    assert _statuses_until_done(http, eng, job_id)[-1] == "failed"
    err = http.get(f"/training/jobs/{job_id}", headers=eng).json()["error"]
    first = err.split("\n")[0]
    # the worker's own check names the setting and the way out, in one line
    assert first == "training failed: --device 'cuda': no CUDA GPU is available here; use --device cpu (or auto)", err
    assert "last log lines:" in err
    assert "Traceback" not in err  # the stack trace stays in the worker's raw output
    raw = http.get(f"/training/jobs/{job_id}/logs", params={"source": "backend"}, headers=eng).text
    assert "Traceback (most recent call last)" in raw
