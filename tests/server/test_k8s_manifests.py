"""Every Kubernetes manifest we produce or ship validates against the real Kubernetes schemas
(``kubernetes-validate``, offline, strict: unknown fields fail), and the shipped Job template
is exactly what the server creates.

Regenerate ``packaging/k8s/training-job.yaml`` after changing the Job:
``PYTHONPATH=. python tests/server/test_k8s_manifests.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from server.api.schemas.training import JobSpec
from server.core.config import load_settings
from server.services.training.backends import k8s_manifests as m

REPO = Path(__file__).resolve().parents[2]
K8S_DIR = REPO / "packaging" / "k8s"
TEMPLATE = K8S_DIR / "training-job.yaml"
VERSIONS = ("1.29", "1.33", "1.37")  # oldest supported ... newest schemas shipped
HEADER = """\
# The batch/v1 Job the server creates for training job 1 (WAFERDESK_TRAINING_BACKEND=kubernetes),
# written out for reading and for `kubectl apply` by hand; server/services/training/backends/
# k8s_manifests.py makes it. The server also creates the Secret waferdesk-train-<id>-token
# holding the job's token (one per job, owned by the Job). Regenerate this file with
#   PYTHONPATH=. python tests/server/test_k8s_manifests.py
# (tests/server/test_k8s_manifests.py fails while the two differ).
"""
SERVER_URL = "http://waferdesk-server.waferdesk.svc.cluster.local:8000"


def _validate(obj: dict[str, Any], version: str) -> None:
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{obj.get('kind')} {obj.get('metadata', {}).get('name')} invalid for {version}: {exc.message}")


def template_settings():
    return load_settings(
        environment="development",
        data_dir="/tmp/unused",
        k8s_image="waferdesk-trainer:0.1.0",
        training_server_url=SERVER_URL,
    )


def template_job() -> dict[str, Any]:
    settings = template_settings()
    return m.job_manifest(1, settings, SERVER_URL, JobSpec().model_dump())


def write_template() -> None:
    TEMPLATE.write_text(HEADER + yaml.safe_dump(template_job(), sort_keys=False), encoding="utf-8")


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"k8s_gpus": 0, "k8s_tolerations": []},  # a CPU job
        {
            "k8s_gpus": 8,
            "k8s_gpu_resource": "nvidia.com/mig-3g.40gb",
            "k8s_node_selector": {"nvidia.com/gpu.product": "NVIDIA-H200"},
            "k8s_tolerations": [{"key": "dedicated", "operator": "Equal", "value": "training", "effect": "NoSchedule"}],
            "k8s_service_account": "trainer",
            "k8s_image_pull_secrets": ["regcred"],
            "k8s_active_deadline_seconds": 86400,
            "k8s_backoff_limit": 2,
            "k8s_ttl_seconds_after_finished": 0,
        },
    ],
    ids=["defaults", "cpu", "everything"],
)
def test_generated_job_and_secret_validate(overrides: dict[str, Any], version: str) -> None:
    settings = load_settings(environment="development", data_dir="/tmp/unused", **overrides)
    job = m.job_manifest(42, settings, SERVER_URL, JobSpec().model_dump())
    _validate(job, version)
    _validate(m.secret_manifest(42, "wdj1.42.secret", settings), version)
    limits = job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    gpus = overrides.get("k8s_gpus", 1)
    assert limits.get(overrides.get("k8s_gpu_resource", "nvidia.com/gpu")) == (str(gpus) if gpus else None)
    assert job["spec"]["backoffLimit"] == overrides.get("k8s_backoff_limit", 0)


def test_a_wrong_field_would_be_caught() -> None:
    """The check has teeth: a misspelt field fails strict validation."""
    job = template_job()
    job["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError, match="imagePullPolicyy"):
        kubernetes_validate.validate(job, "1.33", strict=True)


def _documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                docs.append((path.name, doc))
    return docs


def test_shipped_manifests_validate() -> None:
    docs = _documents()
    kinds = {(name, d["kind"]) for name, d in docs}
    for want in (
        "Deployment",
        "Service",
        "PersistentVolumeClaim",
        "Secret",
        "Job",
        "Role",
        "RoleBinding",
        "ServiceAccount",
        "Namespace",
    ):
        assert any(k == want for _, k in kinds), f"no {want} in packaging/k8s"
    for version in VERSIONS:
        for _name, doc in docs:
            _validate(doc, version)


def test_shipped_job_template_is_what_the_server_creates() -> None:
    shipped = yaml.safe_load(TEMPLATE.read_text(encoding="utf-8"))
    assert shipped == template_job(), "packaging/k8s/training-job.yaml is stale: regenerate it (see module doc)"


def test_server_deployment_matches_the_backend_it_configures(monkeypatch) -> None:
    docs = dict((d["kind"], d) for _, d in _documents())
    dep = docs["Deployment"]["spec"]["template"]["spec"]
    env = {e["name"]: e for e in dep["containers"][0]["env"]}
    assert env["WAFERDESK_TRAINING_BACKEND"]["value"] == "kubernetes"
    assert env["WAFERDESK_TRAINING_SERVER_URL"]["value"] == SERVER_URL
    assert env["WAFERDESK_K8S_IMAGE"]["value"] == template_job()["spec"]["template"]["spec"]["containers"][0]["image"]
    assert dep["serviceAccountName"] == docs["ServiceAccount"]["metadata"]["name"]
    service = docs["Service"]
    assert f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc" in SERVER_URL
    # the Role allows every call the backend makes
    rules = {
        (g, r): set(rule["verbs"])
        for rule in docs["Role"]["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
    }
    assert {"create", "get", "list", "watch", "delete"} <= rules[("batch", "jobs")]
    assert {"create", "delete", "patch"} <= rules[("", "secrets")]
    assert {"get", "list"} <= rules[("", "pods")] and "get" in rules[("", "pods/log")]
    # the settings the Deployment sets are real settings, read as the server reads them
    for k, e in env.items():
        if "value" in e and k.startswith("WAFERDESK_") and k != "WAFERDESK_ENV":
            monkeypatch.setenv(k, e["value"])
    got = load_settings()
    assert got.training_backend == "kubernetes" and got.k8s_config == "incluster" and got.k8s_node_selector == {}


if __name__ == "__main__":
    write_template()
    print(f"wrote {TEMPLATE}")
