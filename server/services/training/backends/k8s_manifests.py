"""The Kubernetes objects of one training job, as plain dicts (validated in the tests against the
real Kubernetes schemas with ``kubernetes-validate``, and sent as they are by the client).

- a ``Secret`` ``waferdesk-train-<id>-token`` holding the job's worker token (the only
  credential the pod gets: it never sees the database or the server's JWT secret, and
  ``automountServiceAccountToken`` is off because the worker needs no Kubernetes API);
- a ``batch/v1 Job`` ``waferdesk-train-<id>`` running the worker image with
  ``python -m waferdesk.worker``, GPU limits, node selector, tolerations, ``backoffLimit``
  and ``ttlSecondsAfterFinished``, labelled with the server's job id.

``packaging/k8s/training-job.yaml`` is this Job written out for reading (a test keeps the two
alike).
"""

from __future__ import annotations

from typing import Any

from ....core.config import Settings

CONTAINER = "trainer"
WORK_DIR = "/work"
LABEL_JOB_ID = "waferdesk.io/training-job-id"
MANAGED_BY = "waferdesk-server"
SELECTOR = f"app.kubernetes.io/managed-by={MANAGED_BY},app.kubernetes.io/component=training"
WORKER_COMMAND = ["python", "-m", "waferdesk.worker"]


def job_name(job_id: int) -> str:
    return f"waferdesk-train-{job_id}"


def secret_name(job_id: int) -> str:
    return f"waferdesk-train-{job_id}-token"


def labels(job_id: int) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "waferdesk-trainer",
        "app.kubernetes.io/component": "training",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        LABEL_JOB_ID: str(job_id),
    }


def secret_manifest(job_id: int, token: str, settings: Settings) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name(job_id), "namespace": settings.k8s_namespace, "labels": labels(job_id)},
        "type": "Opaque",
        "stringData": {"token": token},
    }


def owner_patch(job_id: int, job_uid: str) -> dict[str, Any]:
    """Make the Secret belong to the Job: deleting the Job (its TTL, a cancel) deletes the Secret."""
    return {
        "metadata": {
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job_name(job_id), "uid": job_uid}]
        }
    }


def job_manifest(job_id: int, settings: Settings, server_url: str, spec: dict[str, Any]) -> dict[str, Any]:
    requests: dict[str, str] = {"cpu": settings.k8s_cpu, "memory": settings.k8s_memory}
    limits: dict[str, str] = {"memory": settings.k8s_memory}
    if settings.k8s_gpus > 0:
        limits[settings.k8s_gpu_resource] = str(settings.k8s_gpus)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": settings.k8s_image,
        "imagePullPolicy": settings.k8s_image_pull_policy,
        "command": list(WORKER_COMMAND),
        "args": ["--server", server_url, "--job", str(job_id), "--work-dir", WORK_DIR],
        "env": [
            {
                "name": "WAFERDESK_JOB_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": secret_name(job_id), "key": "token"}},
            },
            {"name": "PYTHONUNBUFFERED", "value": "1"},
        ],
        "resources": {"requests": requests, "limits": limits},
        "volumeMounts": [{"name": "work", "mountPath": WORK_DIR}, {"name": "dshm", "mountPath": "/dev/shm"}],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001},
        "containers": [container],
        "volumes": [
            {"name": "work", "emptyDir": {}},
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}},
        ],
    }
    if settings.k8s_node_selector:
        pod_spec["nodeSelector"] = dict(settings.k8s_node_selector)
    if settings.k8s_tolerations:
        pod_spec["tolerations"] = [dict(t) for t in settings.k8s_tolerations]
    if settings.k8s_service_account:
        pod_spec["serviceAccountName"] = settings.k8s_service_account
    if settings.k8s_image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": n} for n in settings.k8s_image_pull_secrets]
    job_spec: dict[str, Any] = {
        "backoffLimit": settings.k8s_backoff_limit,
        "ttlSecondsAfterFinished": settings.k8s_ttl_seconds_after_finished,
        "template": {"metadata": {"labels": labels(job_id)}, "spec": pod_spec},
    }
    if settings.k8s_active_deadline_seconds:
        job_spec["activeDeadlineSeconds"] = settings.k8s_active_deadline_seconds
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(job_id),
            "namespace": settings.k8s_namespace,
            "labels": labels(job_id),
            "annotations": {
                "waferdesk.io/encoder": str(spec.get("encoder", "")),
                "waferdesk.io/steps": str(spec.get("steps", "")),
            },
        },
        "spec": job_spec,
    }
