"""Training on a Kubernetes cluster: one ``batch/v1`` Job per training job, through the
official ``kubernetes`` client.

Submitting creates the token Secret, the Job, then makes the Job the Secret's owner (so the
Job's ``ttlSecondsAfterFinished`` or a cancel also removes the token). A watch on the Jobs
this server manages wakes the manager on every change; :meth:`check` reads the Job's status
and, when it failed, the pod's termination reason and last log lines, so the error on the job
says what happened (``OOMKilled``, an image that cannot be pulled, a traceback). A Job whose
pod still cannot start (unschedulable, an image that cannot be pulled, or no pod at all)
``WAFERDESK_K8S_START_TIMEOUT_SECONDS`` after the cluster created it is reported ``stuck``: the
manager fails the job and deletes the Job as on cancel, so no GPU request stays pending.
Cancelling deletes the Job (its pods with it) and the Secret. Logs are read from the job's
newest pod.

Configuration: in-cluster (the server runs in the cluster with a service account allowed to
manage Jobs, Secrets and read pods/log: ``packaging/k8s/server.yaml``) or a kubeconfig
(``WAFERDESK_K8S_KUBECONFIG``, else ``KUBECONFIG`` / ``~/.kube/config``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from ....core.config import Settings
from . import k8s_manifests as m
from .base import BackendError, Check, JobRef, Submitted, TrainingBackend

log = logging.getLogger(__name__)
WATCH_SECONDS = 60
ERROR_TAIL = 20
# container waiting reasons that do not go away by themselves (unlike ContainerCreating): a pod
# showing one past WAFERDESK_K8S_START_TIMEOUT_SECONDS fails its job
WAITING_PROBLEMS = (
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
)


def load_api_client(settings: Settings) -> Any:
    """An ``ApiClient`` from in-cluster config or a kubeconfig, as the settings say."""
    from kubernetes import client, config

    cfg = client.Configuration()
    mode = settings.k8s_config
    try:
        if mode == "incluster" or (mode == "auto" and os.environ.get("KUBERNETES_SERVICE_HOST")):
            config.load_incluster_config(client_configuration=cfg)
        else:
            config.load_kube_config(
                config_file=str(settings.k8s_kubeconfig) if settings.k8s_kubeconfig else None,
                context=settings.k8s_context,
                client_configuration=cfg,
            )
    except Exception as exc:  # ConfigException, a missing file, bad YAML
        raise BackendError(f"no usable Kubernetes configuration ({mode}): {exc}") from None
    return client.ApiClient(cfg)


def _age_seconds(k8s_job: Any) -> float:
    """How long ago the cluster created the Job: the start timeout's clock, kept by the cluster,
    so a server restart does not reset it (0 when the Job does not say)."""
    created = getattr(getattr(k8s_job, "metadata", None), "creation_timestamp", None)
    return (datetime.now(UTC) - created).total_seconds() if created else 0.0


def _api_error(exc: Exception) -> str:
    """A one-line description of a client error (status, reason and the API's own message)."""
    status = getattr(exc, "status", None)
    body = getattr(exc, "body", None)
    message = ""
    if body:
        try:
            import json

            message = json.loads(body).get("message", "")
        except (ValueError, AttributeError, TypeError):
            message = str(body)[:300]
    if status is not None:
        return f"{status} {getattr(exc, 'reason', '')}".strip() + (f": {message}" if message else "")
    return f"{type(exc).__name__}: {exc}"


class KubernetesBackend(TrainingBackend):
    name = "kubernetes"

    def __init__(self, settings: Settings, api_client: Any | None = None) -> None:
        self.settings = settings
        self.ns = settings.k8s_namespace
        self._api_client = api_client
        self._wake: Callable[[], None] | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._watch: Any = None

    # -- clients -----------------------------------------------------------------------------
    def api_client(self) -> Any:
        if self._api_client is None:
            self._api_client = load_api_client(self.settings)
        return self._api_client

    @property
    def batch(self) -> Any:
        from kubernetes import client

        return client.BatchV1Api(self.api_client())

    @property
    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api_client())

    # -- life ----------------------------------------------------------------------------------
    def set_wake(self, wake: Callable[[], None]) -> None:
        self._wake = wake

    def start(self) -> None:
        try:
            self.api_client()
        except BackendError as exc:
            log.error("training backend kubernetes: %s; jobs will fail until it is fixed", exc)
            return
        self._watcher = threading.Thread(target=self._watch_loop, name="k8s-job-watch", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()

    def _watch_loop(self) -> None:
        """Watch the Jobs this server manages; every event wakes the manager (which reads them)."""
        from kubernetes import watch

        while not self._stop.is_set():
            self._watch = watch.Watch()
            try:
                for _event in self._watch.stream(
                    self.batch.list_namespaced_job, self.ns, label_selector=m.SELECTOR, timeout_seconds=WATCH_SECONDS
                ):
                    if self._wake is not None:
                        self._wake()
                    if self._stop.is_set():
                        break
            except Exception as exc:
                if self._stop.is_set():
                    break
                log.warning("watching Kubernetes Jobs in %s: %s (retrying)", self.ns, _api_error(exc))
                self._stop.wait(5)

    # -- the interface -------------------------------------------------------------------------
    def submit(self, job: JobRef, token: str, server_url: str) -> Submitted:
        from kubernetes.client.exceptions import ApiException

        secret = m.secret_manifest(job.id, token, self.settings)
        manifest = m.job_manifest(job.id, self.settings, server_url, job.spec)
        try:
            self.core.create_namespaced_secret(self.ns, secret)
        except ApiException as exc:
            if exc.status != 409:  # 409: left over from an earlier attempt; replaced below
                raise BackendError(f"Kubernetes refused the token Secret: {_api_error(exc)}") from None
            self.core.delete_namespaced_secret(m.secret_name(job.id), self.ns)
            self.core.create_namespaced_secret(self.ns, secret)
        except Exception as exc:
            raise BackendError(f"cannot reach the Kubernetes API: {_api_error(exc)}") from None
        try:
            created = self.batch.create_namespaced_job(self.ns, manifest)
        except Exception as exc:
            self._delete_secret(job.id)
            raise BackendError(f"Kubernetes refused the Job: {_api_error(exc)}") from None
        uid = getattr(getattr(created, "metadata", None), "uid", None)
        if uid:
            try:
                self.core.patch_namespaced_secret(
                    m.secret_name(job.id),
                    self.ns,
                    m.owner_patch(job.id, uid),
                    _content_type="application/merge-patch+json",
                )
            except Exception as exc:  # the Secret is also deleted on cancel; log and go on
                log.warning("training job %d: Secret owner not set: %s", job.id, _api_error(exc))
        return Submitted(handle=f"k8s:{self.ns}/{m.job_name(job.id)}", started=False)

    def _delete_secret(self, job_id: int) -> None:
        try:
            self.core.delete_namespaced_secret(m.secret_name(job_id), self.ns)
        except Exception as exc:
            if getattr(exc, "status", None) != 404:
                log.warning("training job %d: Secret not deleted: %s", job_id, _api_error(exc))

    def _newest_pod(self, job_id: int) -> Any | None:
        pods = self.core.list_namespaced_pod(self.ns, label_selector=f"job-name={m.job_name(job_id)}").items or []
        if not pods:
            return None
        return max(pods, key=lambda p: (p.metadata.creation_timestamp or 0, p.metadata.name or ""))

    def _pod_problem(self, pod: Any) -> str | None:
        """Why a pod is not running / ended, in words (unschedulable, waiting reason, exit code)."""
        for cond in (pod.status.conditions if pod and pod.status else None) or []:
            if cond.type == "PodScheduled" and cond.status == "False":
                return f"not scheduled: {cond.reason or 'Unschedulable'}" + (
                    f": {cond.message}" if cond.message else ""
                )
        for cs in (pod.status.container_statuses if pod and pod.status else None) or []:
            state = cs.state
            if state is None:
                continue
            if state.terminated is not None:
                t = state.terminated
                return f"container {cs.name} terminated: {t.reason or 'unknown reason'} (exit code {t.exit_code})" + (
                    f": {t.message.strip()}" if t.message else ""
                )
            if state.waiting is not None and state.waiting.reason:
                w = state.waiting
                return f"container {cs.name} waiting: {w.reason}" + (f": {w.message}" if w.message else "")
        return None

    def _pod_tail(self, pod: Any, n: int = ERROR_TAIL) -> list[str]:
        if pod is None:
            return []
        try:
            text = self.core.read_namespaced_pod_log(pod.metadata.name, self.ns, container=m.CONTAINER, tail_lines=n)
        except Exception as exc:
            return [f"(pod log unavailable: {_api_error(exc)})"]
        return str(text or "").splitlines()[-n:]

    def check(self, job: JobRef) -> Check:
        from kubernetes.client.exceptions import ApiException

        try:
            k8s_job = self.batch.read_namespaced_job_status(m.job_name(job.id), self.ns)
        except ApiException as exc:
            if exc.status == 404:
                return Check(
                    "ended",
                    reason=f"the Kubernetes Job {self.ns}/{m.job_name(job.id)} no longer exists "
                    "(deleted by someone, or removed by its ttlSecondsAfterFinished)",
                )
            return Check("unknown", reason=f"Kubernetes API: {_api_error(exc)}")
        except Exception as exc:
            return Check("unknown", reason=f"Kubernetes API unreachable: {_api_error(exc)}")
        st = k8s_job.status
        conditions = (st.conditions if st else None) or []
        failed = next((c for c in conditions if c.type == "Failed" and c.status == "True"), None)
        if st is not None and (st.succeeded or 0) > 0:
            return Check("ended", ok=True, reason="the Kubernetes Job completed")
        if failed is not None:
            pod = self._safe_pod(job.id)
            why = f"the Kubernetes Job failed ({failed.reason or 'Failed'}: {failed.message or 'no message'})"
            problem = self._pod_problem(pod) if pod is not None else None
            if problem:
                why += f"; {problem}"
            return Check("ended", reason=why, tail=self._pod_tail(pod))
        active = st is not None and (st.active or 0) > 0
        pod = self._safe_pod(job.id) if active else None
        if pod is not None and pod.status and pod.status.phase == "Running":
            return Check("running")
        blocker = self._start_blocker(pod) if active else "no pod was created for the Job"
        limit = self.settings.k8s_start_timeout_seconds
        if blocker and limit and _age_seconds(k8s_job) > limit:
            return Check("stuck", reason=f"the pod did not start within {limit} s: {blocker}")
        if active:
            return Check("pending", reason=self._pod_problem(pod) or "pod scheduled, starting")
        return Check("pending", reason="waiting for the cluster to start the pod")

    def _start_blocker(self, pod: Any) -> str | None:
        """``Reason: message`` when the pod waits for something that will not come by itself (no
        node can take it, its image cannot be pulled, its config is broken); None while it is only
        slow (being scheduled, ContainerCreating while a large image is pulled)."""
        status = pod.status if pod is not None else None
        for cond in (status.conditions if status else None) or []:
            if cond.type == "PodScheduled" and cond.status == "False" and cond.reason == "Unschedulable":
                return cond.reason + (f": {cond.message}" if cond.message else "")
        for cs in (status.container_statuses if status else None) or []:
            waiting = cs.state.waiting if cs.state else None
            if waiting is not None and waiting.reason in WAITING_PROBLEMS:
                return waiting.reason + (f": {waiting.message}" if waiting.message else "")
        return None

    def _safe_pod(self, job_id: int) -> Any | None:
        try:
            return self._newest_pod(job_id)
        except Exception as exc:
            log.warning("training job %d: pods not listed: %s", job_id, _api_error(exc))
            return None

    def cancel(self, job: JobRef) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.batch.delete_namespaced_job(m.job_name(job.id), self.ns, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise BackendError(f"Kubernetes refused to delete the Job: {_api_error(exc)}") from None
        except Exception as exc:
            raise BackendError(f"cannot reach the Kubernetes API: {_api_error(exc)}") from None
        finally:
            self._delete_secret(job.id)

    def logs(self, job: JobRef, tail: int | None = None, follow: bool = False) -> Iterator[str]:
        try:
            pod = self._newest_pod(job.id)
        except Exception as exc:
            raise BackendError(f"cannot list the job's pods: {_api_error(exc)}") from None
        if pod is None:
            return
        kwargs: dict[str, Any] = {"container": m.CONTAINER}
        if tail:
            kwargs["tail_lines"] = tail
        if not follow:
            try:
                text = self.core.read_namespaced_pod_log(pod.metadata.name, self.ns, **kwargs)
            except Exception as exc:
                raise BackendError(f"cannot read the pod's log: {_api_error(exc)}") from None
            yield from str(text or "").splitlines()
            return
        try:
            resp = self.core.read_namespaced_pod_log(
                pod.metadata.name, self.ns, follow=True, _preload_content=False, **kwargs
            )
        except Exception as exc:
            raise BackendError(f"cannot follow the pod's log: {_api_error(exc)}") from None
        buf = b""
        try:
            for chunk in resp.stream(4096):
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for ln in lines:
                    yield ln.decode("utf-8", "replace")
            if buf:
                yield buf.decode("utf-8", "replace")
        finally:
            resp.release_conn()
