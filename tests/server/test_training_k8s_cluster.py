"""The Kubernetes backend against a REAL cluster (marked ``k8s``; skipped unless KUBECONFIG is
set): a tiny training job runs as a batch/v1 Job in the trainer image, reports back to this
test's server, and its model is promoted; a second job is cancelled and its Job deleted.

How to run it with kind (docs/training.md has the details):

    kind create cluster --name waferdesk
    docker build -f packaging/trainer/Dockerfile \\
        --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu -t waferdesk-trainer:test .
    kind load docker-image waferdesk-trainer:test --name waferdesk
    export KUBECONFIG=$(mktemp) && kind get kubeconfig --name waferdesk > $KUBECONFIG
    # the address pods reach this machine at (kind's docker network gateway):
    export WAFERDESK_TEST_K8S_HOST=$(docker network inspect kind -f '{{(index .IPAM.Config 0).Gateway}}')
    WAFERDESK_TEST_K8S_IMAGE=waferdesk-trainer:test pytest -m k8s tests/server/test_training_k8s_cluster.py

Settings: WAFERDESK_TEST_K8S_IMAGE (default waferdesk-trainer:test), WAFERDESK_TEST_K8S_HOST
(required: where pods reach the test server), WAFERDESK_TEST_K8S_NAMESPACE (default
waferdesk-test; created when missing). The jobs ask for no GPU (kind has none).
"""

from __future__ import annotations

import os
import time

import pytest

pytestmark = pytest.mark.k8s

if not os.environ.get("KUBECONFIG"):
    pytest.skip("KUBECONFIG is not set: no real cluster to run the k8s test against", allow_module_level=True)

import httpx  # noqa: E402
from live_server import free_port, serve_in_thread  # noqa: E402
from server_helpers import bearer, create_user, login, upload  # noqa: E402
from training_helpers import wait_for  # noqa: E402

IMAGE = os.environ.get("WAFERDESK_TEST_K8S_IMAGE", "waferdesk-trainer:test")
NAMESPACE = os.environ.get("WAFERDESK_TEST_K8S_NAMESPACE", "waferdesk-test")
TINY = {
    "encoder": "resnet18",
    "steps": 4,
    "epochs": 2,
    "batch_size": 2,
    "val_count": 4,
    "device": "cpu",
    "data": {"annotations": False, "synthetic_count": 8, "min_size": 15, "max_size": 30},
}


@pytest.fixture
def cluster_server(app_factory, tiny_model, database):
    if database.backend != "sqlite":
        pytest.skip("the cluster run happens once, on SQLite")
    host = os.environ.get("WAFERDESK_TEST_K8S_HOST")
    if not host:
        pytest.skip("set WAFERDESK_TEST_K8S_HOST to the address pods reach this machine at")
    from kubernetes import client as k8s
    from kubernetes import config

    config.load_kube_config()
    core = k8s.CoreV1Api()
    try:
        core.read_namespace(NAMESPACE)
    except k8s.exceptions.ApiException:
        core.create_namespace({"metadata": {"name": NAMESPACE}})
    port = free_port("0.0.0.0")
    client = app_factory(
        training_backend="kubernetes",
        k8s_config="kubeconfig",
        k8s_namespace=NAMESPACE,
        k8s_image=IMAGE,
        k8s_image_pull_policy="IfNotPresent",
        k8s_gpus=0,
        k8s_tolerations=[],
        k8s_cpu="1",
        k8s_memory="4Gi",
        training_server_url=f"http://{host}:{port}",
        training_poll_seconds=1.0,
        model_path=tiny_model,
    )
    server, thread = serve_in_thread(client.app, port, host="0.0.0.0", lifespan="off")
    try:
        yield client, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60), k8s.BatchV1Api()
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _wait(http, headers, job_id, *statuses, timeout=900.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = http.get(f"/training/jobs/{job_id}", headers=headers).json()
        if job["status"] in statuses:
            return job
        time.sleep(2)
    pytest.fail(f"job {job_id} not {statuses} after {timeout} s: {job}")


def test_a_training_job_runs_on_the_cluster_and_its_model_is_promoted(cluster_server, wafer_file) -> None:
    client, http, batch = cluster_server
    create_user(client, "eng", "engineer")
    create_user(client, "boss", "admin")
    eng, admin = bearer(login(client, "eng")), bearer(login(client, "boss"))
    wafer = upload(client, eng, wafer_file(1, seed=5))["wafers"][0]["id"]
    job_id = http.post("/training/jobs", json=TINY, headers=eng).json()["id"]
    job = _wait(http, eng, job_id, "succeeded", "failed")
    assert job["status"] == "succeeded", job["error"]
    assert job["backend_handle"] == f"k8s:{NAMESPACE}/waferdesk-train-{job_id}"
    k8s_job = batch.read_namespaced_job(f"waferdesk-train-{job_id}", NAMESPACE)
    assert k8s_job.metadata.labels["waferdesk.io/training-job-id"] == str(job_id)
    metrics = http.get(f"/training/metrics/{job_id}", headers=eng).json()
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    raw = http.get(f"/training/jobs/{job_id}/logs", params={"source": "backend"}, headers=eng).text
    assert "training set: 0 annotated wafers + 8 synthetic" in raw
    assert http.post(f"/models/{job['model_id']}/promote", headers=admin).status_code == 200
    pred = http.post("/predict", data={"wafer_id": wafer}, headers=eng).json()
    assert pred["model"]["id"] == job["model_id"]


def test_cancelling_deletes_the_kubernetes_job(cluster_server) -> None:
    client, http, batch = cluster_server
    from kubernetes.client.exceptions import ApiException

    create_user(client, "eng", "engineer")
    eng = bearer(login(client, "eng"))
    job_id = http.post("/training/jobs", json={**TINY, "steps": 2000, "epochs": 2}, headers=eng).json()["id"]
    _wait(http, eng, job_id, "running", timeout=600)
    assert http.post(f"/training/jobs/{job_id}/cancel", headers=eng).json()["status"] == "cancelled"

    def gone() -> bool:
        try:
            batch.read_namespaced_job(f"waferdesk-train-{job_id}", NAMESPACE)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, "the Kubernetes Job to be deleted", timeout=120, interval=1)
