"""The Kubernetes backend through the official client against a fake API server speaking the
Jobs / Pods / Secrets subset (``fake_k8s.py``): the request sequence (create, watch, status,
logs, delete), the manifests it sends (schema-validated by the fake on receipt), the token
Secret that opens the worker routes, how running / failed / vanished pods show on the job, and
the start timeout: a pod that cannot start fails its job and frees the cluster."""

from __future__ import annotations

import pytest
from fake_k8s import FakeCluster
from server_helpers import bearer, create_user, login
from training_helpers import SYNTH_SPEC, get_job, wait_for, wait_status

from server import cli

NS = "wd-test"
SERVER_URL = "http://waferdesk-server.wd-test.svc:8000"


@pytest.fixture
def cluster():
    fake = FakeCluster().start()
    yield fake
    fake.stop()


@pytest.fixture
def k8s_client(app_factory, cluster, tmp_path, request):
    """An engineer's client of a server on the fake cluster (``request.param``: more settings)."""
    client = app_factory(
        training_backend="kubernetes",
        k8s_config="kubeconfig",
        k8s_kubeconfig=cluster.kubeconfig(tmp_path / "kubeconfig", NS),
        k8s_namespace=NS,
        k8s_image="registry.example.com/waferdesk-trainer:1.2.3",
        k8s_node_selector={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        k8s_gpus=2,
        k8s_backoff_limit=1,
        k8s_ttl_seconds_after_finished=3600,
        training_server_url=SERVER_URL,
        training_poll_seconds=0.1,
        **getattr(request, "param", {}),
    )
    create_user(client, "eng", "engineer")
    return client, bearer(login(client, "eng"))


def _submit(client, eng) -> int:
    r = client.post("/training/jobs", json=SYNTH_SPEC, headers=eng)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _first_occurrences(calls: list[str]) -> list[str]:
    return list(dict.fromkeys(calls))


def test_job_lifecycle_on_kubernetes_create_watch_logs_cancel(k8s_client, cluster) -> None:
    client, eng = k8s_client
    job_id = _submit(client, eng)
    name = f"waferdesk-train-{job_id}"
    job = wait_for(
        lambda: (j := get_job(client, eng, job_id))["backend_handle"] == f"k8s:{NS}/{name}" and j,
        "the Job to be created",
    )
    assert job["status"] == "queued"  # created, no pod running yet

    # what was created: a Secret with the token, then the Job, then the Secret owned by the Job
    secret = cluster.secrets[(NS, f"{name}-token")]
    k8s_job = cluster.job(name, NS)
    assert secret["metadata"]["ownerReferences"] == [
        {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": k8s_job["metadata"]["uid"]}
    ]
    spec = k8s_job["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert spec["backoffLimit"] == 1 and spec["ttlSecondsAfterFinished"] == 3600
    assert k8s_job["metadata"]["labels"]["waferdesk.io/training-job-id"] == str(job_id)
    assert container["image"] == "registry.example.com/waferdesk-trainer:1.2.3"
    assert container["command"] == ["python", "-m", "waferdesk.worker"]
    assert container["args"] == ["--server", SERVER_URL, "--job", str(job_id), "--work-dir", "/work"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    token_env = next(e for e in container["env"] if e["name"] == "WAFERDESK_JOB_TOKEN")
    assert token_env["valueFrom"]["secretKeyRef"] == {"name": f"{name}-token", "key": "token"}
    assert not any("value" in e and "wdj1." in e["value"] for e in container["env"])  # never inline

    # the Secret's token is this job's worker token: the pod could use it
    worker = bearer(secret["stringData"]["token"])
    r = client.get(f"/training/worker/{job_id}", headers=worker)
    assert r.status_code == 200 and r.json()["id"] == job_id

    # the pod runs: the watch wakes the manager, which reads the Job and its pod
    cluster.run_pod(name, NS, log="worker started\nepoch 1: loss 1.2\n")
    wait_status(client, eng, job_id, "running")
    logs = client.get(f"/training/jobs/{job_id}/logs", params={"source": "backend"}, headers=eng)
    assert logs.status_code == 200 and logs.text == "worker started\nepoch 1: loss 1.2\n"
    tail = client.get(f"/training/jobs/{job_id}/logs", params={"source": "backend", "tail": 1}, headers=eng)
    assert tail.text == "epoch 1: loss 1.2\n"
    followed = client.get(f"/training/jobs/{job_id}/logs", params={"source": "backend", "follow": True}, headers=eng)
    assert followed.text == "worker started\nepoch 1: loss 1.2\n"

    # cancel: the Job (and its pods) and the Secret are deleted
    r = client.post(f"/training/jobs/{job_id}/cancel", headers=eng)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert (NS, name) not in cluster.jobs and (NS, f"{name}-token") not in cluster.secrets
    delete = next(q for q in cluster.requests if q["call"] == "DELETE jobs")
    assert delete["query"].get("propagationPolicy") == "Background"
    patch = next(q for q in cluster.requests if q["call"] == "PATCH secrets")
    assert patch["content_type"] == "application/merge-patch+json"

    calls = _first_occurrences(cluster.calls(name) + cluster.calls(f"{name}-token"))
    order = [c for c in cluster.calls() if c in ("POST secrets", "POST jobs", "PATCH secrets")][:3]
    assert order == ["POST secrets", "POST jobs", "PATCH secrets"]
    sequence = _first_occurrences(
        [
            c
            for c in cluster.calls()
            if c
            in (
                "POST secrets",
                "POST jobs",
                "PATCH secrets",
                "WATCH jobs",
                "GET jobs/status",
                "GET pods",
                "GET pods/log",
                "DELETE jobs",
                "DELETE secrets",
            )
        ]
    )
    assert sequence.index("POST jobs") < sequence.index("GET jobs/status") < sequence.index("GET pods/log")
    assert sequence.index("GET pods/log") < sequence.index("DELETE jobs") < sequence.index("DELETE secrets")
    assert "WATCH jobs" in sequence and "GET pods" in sequence, sequence
    watch = next(q for q in cluster.requests if q["call"] == "WATCH jobs")
    assert (
        watch["query"]["labelSelector"]
        == "app.kubernetes.io/managed-by=waferdesk-server,app.kubernetes.io/component=training"
    )
    assert calls  # the job's own calls were recorded under its name


def test_a_failed_pod_fails_the_job_with_its_reason_and_last_lines(k8s_client, cluster) -> None:
    client, eng = k8s_client
    job_id = _submit(client, eng)
    name = f"waferdesk-train-{job_id}"
    wait_for(lambda: (NS, name) in cluster.jobs, "the Job to be created")
    cluster.run_pod(name, NS, log="loading data\n")
    wait_status(client, eng, job_id, "running")
    cluster.finish(name, NS, ok=False, log="epoch 1 ...\nKilled\n", reason="OOMKilled", code=137)
    job = wait_status(client, eng, job_id, "failed")
    err = job["error"]
    assert err.startswith("the Kubernetes Job failed (BackoffLimitExceeded: Job has reached the specified backoff")
    assert "container trainer terminated: OOMKilled (exit code 137)" in err
    assert err.endswith("last log lines:\nloading data\nepoch 1 ...\nKilled")


def test_a_pod_waiting_for_a_gpu_stays_queued_and_says_why(k8s_client, cluster) -> None:
    client, eng = k8s_client
    job_id = _submit(client, eng)
    name = f"waferdesk-train-{job_id}"
    wait_for(lambda: (NS, name) in cluster.jobs, "the Job to be created")
    cluster.pending_pod(name, NS, "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.")
    want = "pending: not scheduled: Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu."

    def said() -> bool:
        lines = client.get(f"/training/jobs/{job_id}/logs", headers=eng).json()["lines"]
        return want in [ln["text"] for ln in lines]

    wait_for(said, "the job log to say why the pod waits")
    assert get_job(client, eng, job_id)["status"] == "queued"
    cluster.run_pod(name, NS)  # a GPU frees up
    wait_status(client, eng, job_id, "running")


def test_a_job_deleted_behind_the_servers_back_fails_honestly(k8s_client, cluster) -> None:
    client, eng = k8s_client
    job_id = _submit(client, eng)
    name = f"waferdesk-train-{job_id}"
    wait_for(lambda: (NS, name) in cluster.jobs, "the Job to be created")
    cluster.run_pod(name, NS)
    wait_status(client, eng, job_id, "running")
    cluster.delete_job(name, NS)
    job = wait_status(client, eng, job_id, "failed")
    assert f"the Kubernetes Job {NS}/{name} no longer exists" in job["error"]


def test_a_refused_job_fails_with_the_api_message_and_leaves_no_secret(k8s_client, cluster) -> None:
    client, eng = k8s_client
    cluster.forbidden.add("jobs")
    job = wait_status(client, eng, _submit(client, eng), "failed")
    assert job["error"].startswith("could not start the job on the kubernetes backend: Kubernetes refused the Job: 403")
    assert 'cannot create resource "jobs"' in job["error"]
    assert [c for c in cluster.calls() if c != "WATCH jobs"] == ["POST secrets", "POST jobs", "DELETE secrets"]
    assert not cluster.secrets and not cluster.jobs


IMAGE_PULL = 'Back-off pulling image "waferdesk-trainer:9.9"'
NO_GPU = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."


def _status_reads(cluster, name: str) -> int:
    return cluster.calls(name).count("GET jobs/status")


@pytest.mark.parametrize(
    ("pod", "why"),
    [
        ("ImagePullBackOff", f"ImagePullBackOff: {IMAGE_PULL}"),
        ("Unschedulable", f"Unschedulable: {NO_GPU}"),
        (None, "no pod was created for the Job"),  # a quota or an admission webhook refused it
    ],
    ids=["image-pull", "unschedulable", "no-pod"],
)
def test_a_pod_that_cannot_start_fails_the_job_after_the_start_timeout_and_is_deleted(
    k8s_client, cluster, pod, why
) -> None:
    client, eng = k8s_client
    job_id = _submit(client, eng)
    name = f"waferdesk-train-{job_id}"
    wait_for(lambda: (NS, name) in cluster.jobs, "the Job to be created")
    if pod == "ImagePullBackOff":
        cluster.waiting_pod(name, NS, "ImagePullBackOff", IMAGE_PULL)
    elif pod == "Unschedulable":
        cluster.pending_pod(name, NS, NO_GPU)
    # the clock is the Job's creationTimestamp, not this server's memory (it saw the Job a moment ago)
    cluster.age_job(name, NS, 1801)
    job = wait_status(client, eng, job_id, "failed")
    assert job["error"].startswith(f"the pod did not start within 1800 s: {why}"), job["error"]
    # deleted as cancel deletes them: no GPU request stays pending in the cluster
    wait_for(
        lambda: (NS, name) not in cluster.jobs and (NS, f"{name}-token") not in cluster.secrets,
        "the Job and its Secret to be deleted",
    )
    delete = next(q for q in cluster.requests if q["call"] == "DELETE jobs")
    assert delete["name"] == name and delete["query"].get("propagationPolicy") == "Background"


@pytest.mark.parametrize(
    ("k8s_client", "reason", "age"),
    [
        ({}, "ImagePullBackOff", 1700),  # within the timeout: the registry may come back
        ({}, "ContainerCreating", 7200),  # merely slow (a large image being pulled): never failed for it
        ({"k8s_start_timeout_seconds": 0}, "ImagePullBackOff", 10 * 86400),  # the timeout is off
    ],
    ids=["within-timeout", "slow", "timeout-off"],
    indirect=["k8s_client"],
)
def test_a_pod_not_past_the_start_timeout_stays_queued(k8s_client, cluster, reason, age) -> None:
    client, eng = k8s_client
    job_id = _submit(client, eng)
    name = f"waferdesk-train-{job_id}"
    wait_for(lambda: (NS, name) in cluster.jobs, "the Job to be created")
    cluster.waiting_pod(name, NS, reason, IMAGE_PULL if reason == "ImagePullBackOff" else "")
    cluster.age_job(name, NS, age)

    def said() -> bool:
        lines = client.get(f"/training/jobs/{job_id}/logs", headers=eng).json()["lines"]
        return any(ln["text"].startswith(f"pending: container trainer waiting: {reason}") for ln in lines)

    wait_for(said, "the job log to say why the pod waits")
    seen = _status_reads(cluster, name)
    wait_for(
        lambda: _status_reads(cluster, name) >= seen + 5 or get_job(client, eng, job_id)["status"] != "queued",
        "the manager to look at the Job 5 more times",
    )
    assert get_job(client, eng, job_id)["status"] == "queued"
    assert (NS, name) in cluster.jobs and "DELETE jobs" not in cluster.calls()


@pytest.mark.parametrize(
    ("value", "problem"),
    [("-1", "greater than or equal to 0"), ("half an hour", "a valid integer")],
)
def test_a_bad_start_timeout_stops_the_server_naming_the_setting(monkeypatch, capsys, tmp_path, value, problem) -> None:
    for var in ("DATABASE_URL", "WAFERDESK_DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WAFERDESK_DATA_DIR", str(tmp_path))  # were the value accepted: a throwaway database
    monkeypatch.setenv("WAFERDESK_K8S_START_TIMEOUT_SECONDS", value)
    assert cli.main(["migrate"]) == 2
    err = capsys.readouterr().err
    assert "waferdesk-server: invalid server settings: k8s_start_timeout_seconds: " in err and problem in err, err
