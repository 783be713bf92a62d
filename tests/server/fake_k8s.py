"""A small Kubernetes API server for the tests: the Jobs / Pods / Secrets subset the training
backend uses, over real HTTP, so the official client is exercised as it is in a cluster.

It records every request (method, path, the query keys that matter), validates every object
it is asked to create against the real Kubernetes schemas (``kubernetes-validate``, strict:
an unknown field is a 422 as a real API server with strict field validation would answer),
keeps Jobs, Pods and Secrets in memory, streams watch events and pod logs, and lets the test
play the cluster's part: start a job's pod, keep it pending (unschedulable, a container
waiting), finish it, fail it, delete it, or make its Job older.

Speaks: POST/PATCH/DELETE secrets; POST, GET .../status, GET ?watch=true, DELETE jobs;
GET pods?labelSelector=job-name=..., GET pods/{name}/log (``tailLines``, ``follow``).
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import kubernetes_validate

TOKEN = "fake-cluster-token"
K8S_VERSION = "1.33"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class FakeCluster:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.logs: dict[str, str] = {}  # pod name -> its log text
        self.forbidden: set[str] = set()  # kinds ("jobs", "secrets") whose creation is refused (403)
        self.cond = threading.Condition()
        self.version = 0
        self.events: list[tuple[int, str, dict[str, Any]]] = []  # (version, type, job)
        self.stopping = False
        cluster = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # bodies end when the connection closes (streams)

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                cluster._handle(self, "GET")

            def do_POST(self) -> None:
                cluster._handle(self, "POST")

            def do_PATCH(self) -> None:
                cluster._handle(self, "PATCH")

            def do_DELETE(self) -> None:
                cluster._handle(self, "DELETE")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    # -- life ----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> FakeCluster:
        self.thread.start()
        return self

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()

    def kubeconfig(self, path: Path, namespace: str) -> Path:
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": TOKEN}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}],
            "current-context": "fake",
        }
        path.write_text(json.dumps(cfg), encoding="utf-8")  # JSON is YAML
        return path

    # -- what the test sees ----------------------------------------------------------------------
    def calls(self, name: str | None = None) -> list[str]:
        """``"POST secrets"``-style names of the requests, optionally only those about ``name``."""
        return [r["call"] for r in self.requests if name is None or r["name"] in (None, name)]

    def job(self, name: str, ns: str) -> dict[str, Any]:
        return self.jobs[(ns, name)]

    # -- playing the cluster ---------------------------------------------------------------------
    def _event(self, kind: str, job: dict[str, Any]) -> None:
        self.version += 1
        job["metadata"]["resourceVersion"] = str(self.version)
        self.events.append((self.version, kind, json.loads(json.dumps(job))))
        self.cond.notify_all()

    def run_pod(self, name: str, ns: str, log: str = "") -> str:
        """The job's pod (its existing one, else a new one) runs and has written ``log`` so far."""
        with self.cond:
            job = self.jobs[(ns, name)]
            mine = [
                k[1] for k, p in self.pods.items() if k[0] == ns and p["metadata"]["labels"].get("job-name") == name
            ]
            pod_name = mine[0] if mine else f"{name}-{uuid.uuid4().hex[:5]}"
            template = job["spec"]["template"]
            self.pods[(ns, pod_name)] = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": pod_name,
                    "namespace": ns,
                    "creationTimestamp": _now(),
                    "labels": {**template["metadata"]["labels"], "job-name": name},
                },
                "spec": template["spec"],
                "status": {
                    "phase": "Running",
                    "containerStatuses": [self._cstatus({"running": {"startedAt": _now()}})],
                },
            }
            self.logs[pod_name] = self.logs.get(pod_name, "") + log
            job["status"] = {"active": 1, "ready": 1, "startTime": _now()}
            self._event("MODIFIED", job)
            return pod_name

    def pending_pod(self, name: str, ns: str, message: str) -> str:
        """The job's pod exists but no node can take it (e.g. no free GPU)."""
        condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}
        return self._pending(name, ns, {"phase": "Pending", "conditions": [condition]})

    def waiting_pod(self, name: str, ns: str, reason: str, message: str = "") -> str:
        """The job's pod is on a node, its container waiting (``ImagePullBackOff``, ``ContainerCreating``)."""
        waiting = {"reason": reason, **({"message": message} if message else {})}
        return self._pending(
            name,
            ns,
            {
                "phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "True"}],
                "containerStatuses": [self._cstatus({"waiting": waiting})],
            },
        )

    def _pending(self, name: str, ns: str, status: dict[str, Any]) -> str:
        pod_name = self.run_pod(name, ns)
        with self.cond:
            self.pods[(ns, pod_name)]["status"] = status
            self.jobs[(ns, name)]["status"] = {"active": 1, "ready": 0}
            self._event("MODIFIED", self.jobs[(ns, name)])
        return pod_name

    def age_job(self, name: str, ns: str, seconds: float) -> None:
        """The Job was created ``seconds`` ago (time passed, or the server was down meanwhile)."""
        with self.cond:
            job = self.jobs[(ns, name)]
            created = datetime.now(UTC) - timedelta(seconds=seconds)
            job["metadata"]["creationTimestamp"] = created.strftime("%Y-%m-%dT%H:%M:%SZ")
            self._event("MODIFIED", job)

    def _cstatus(self, state: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": "trainer",
            "image": "waferdesk-trainer",
            "imageID": "",
            "ready": "running" in state,
            "restartCount": 0,
            "state": state,
        }

    def finish(self, name: str, ns: str, ok: bool, log: str = "", reason: str = "Error", code: int = 1) -> None:
        """The pod ends: success, or a failure with this termination reason and exit code."""
        with self.cond:
            job = self.jobs[(ns, name)]
            for (pns, pname), pod in self.pods.items():
                if pns == ns and pod["metadata"]["labels"].get("job-name") == name:
                    self.logs[pname] += log
                    term = {"exitCode": 0 if ok else code, "reason": "Completed" if ok else reason}
                    pod["status"] = {
                        "phase": "Succeeded" if ok else "Failed",
                        "containerStatuses": [self._cstatus({"terminated": term})],
                    }
            if ok:
                job["status"] = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
            else:
                job["status"] = {
                    "failed": 1,
                    "conditions": [
                        {
                            "type": "Failed",
                            "status": "True",
                            "reason": "BackoffLimitExceeded",
                            "message": "Job has reached the specified backoff limit",
                        }
                    ],
                }
            self._event("MODIFIED", job)

    def delete_job(self, name: str, ns: str) -> None:
        """Someone (or the TTL controller) deletes the Job behind the server's back."""
        with self.cond:
            job = self.jobs.pop((ns, name))
            for key in [k for k, p in self.pods.items() if p["metadata"]["labels"].get("job-name") == name]:
                del self.pods[key]
            self._event("DELETED", job)

    # -- HTTP ------------------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parsed = urlparse(h.path)
        query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
        path = parsed.path
        body: Any = None
        if method in ("POST", "PATCH"):
            length = int(h.headers.get("Content-Length") or 0)
            body = json.loads(h.rfile.read(length) or b"null")
        m = re.fullmatch(r"/(?:api/v1|apis/batch/v1)/namespaces/([^/]+)/(\w+)(?:/([^/]+))?(?:/(status|log))?", path)
        call = f"{method} {m.group(2) if m else path}" + (f"/{m.group(4)}" if m and m.group(4) else "")
        if m and m.group(2) == "jobs" and method == "GET" and query.get("watch") == "true":
            call = "WATCH jobs"
        name = m.group(3) if m else None
        if body and isinstance(body, dict) and name is None:
            name = body.get("metadata", {}).get("name")
        with self.cond:
            self.requests.append(
                {
                    "call": call,
                    "name": name,
                    "query": query,
                    "body": body,
                    "content_type": h.headers.get("Content-Type"),
                }
            )
        if h.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._send(h, 401, _status(401, "Unauthorized", "Unauthorized"))
        if not m:
            return self._send(h, 404, _status(404, "NotFound", f"no route {path}"))
        ns, kind, obj = m.group(1), m.group(2), m.group(3)
        if method == "POST" and kind in self.forbidden:
            return self._send(
                h,
                403,
                _status(
                    403,
                    "Forbidden",
                    f'{kind} is forbidden: User "system:serviceaccount:{ns}:default" cannot create resource "{kind}"',
                ),
            )
        try:
            handler = getattr(self, f"_{method.lower()}_{kind}")
        except AttributeError:
            return self._send(h, 405, _status(405, "MethodNotAllowed", f"{method} {kind}"))
        return handler(h, ns, obj, query, body, m.group(4))

    def _send(self, h: BaseHTTPRequestHandler, code: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _validate(self, h: BaseHTTPRequestHandler, obj: dict[str, Any]) -> bool:
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            self._send(h, 422, _status(422, "Invalid", str(exc).splitlines()[0]))
            return False
        return True

    # secrets
    def _post_secrets(self, h, ns, _obj, _q, body, _sub) -> None:
        if not self._validate(h, body):
            return None
        key = (ns, body["metadata"]["name"])
        with self.cond:
            if key in self.secrets:
                return self._send(h, 409, _status(409, "AlreadyExists", f'secrets "{key[1]}" already exists'))
            body["metadata"]["uid"] = str(uuid.uuid4())
            self.secrets[key] = body
        return self._send(h, 201, body)

    def _patch_secrets(self, h, ns, name, _q, body, _sub) -> None:
        if h.headers.get("Content-Type") != "application/merge-patch+json":
            return self._send(h, 415, _status(415, "UnsupportedMediaType", h.headers.get("Content-Type", "")))
        with self.cond:
            secret = self.secrets.get((ns, name))
            if secret is None:
                return self._send(h, 404, _status(404, "NotFound", f'secrets "{name}" not found'))
            secret["metadata"].update(body.get("metadata", {}))
        return self._send(h, 200, secret)

    def _delete_secrets(self, h, ns, name, _q, _b, _sub) -> None:
        with self.cond:
            gone = self.secrets.pop((ns, name), None)
        if gone is None:
            return self._send(h, 404, _status(404, "NotFound", f'secrets "{name}" not found'))
        return self._send(h, 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

    # jobs
    def _post_jobs(self, h, ns, _obj, _q, body, _sub) -> None:
        if not self._validate(h, body):
            return None
        key = (ns, body["metadata"]["name"])
        with self.cond:
            if key in self.jobs:
                return self._send(h, 409, _status(409, "AlreadyExists", f'jobs.batch "{key[1]}" already exists'))
            body["metadata"].update({"uid": str(uuid.uuid4()), "creationTimestamp": _now()})
            body["status"] = {}
            self.jobs[key] = body
            self._event("ADDED", body)
        return self._send(h, 201, body)

    def _get_jobs(self, h, ns, name, q, _b, sub) -> None:
        if name is None and q.get("watch") == "true":
            return self._watch(h, ns, float(q.get("timeoutSeconds", 30)))
        with self.cond:
            job = self.jobs.get((ns, name))
        if job is None:
            return self._send(h, 404, _status(404, "NotFound", f'jobs.batch "{name}" not found'))
        return self._send(h, 200, job)

    def _watch(self, h: BaseHTTPRequestHandler, ns: str, timeout: float) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.end_headers()
        with self.cond:
            seen = self.version
            current = [j for (jns, _), j in self.jobs.items() if jns == ns]
        try:
            for job in current:
                h.wfile.write(json.dumps({"type": "ADDED", "object": job}).encode() + b"\n")
            h.wfile.flush()
            deadline = threading.Event()
            timer = threading.Timer(timeout, deadline.set)
            timer.start()
            while not deadline.is_set():
                with self.cond:
                    self.cond.wait(0.2)
                    if self.stopping:
                        break
                    new = [(v, t, j) for v, t, j in self.events if v > seen and j["metadata"]["namespace"] == ns]
                    seen = self.version
                for _, kind, job in new:
                    h.wfile.write(json.dumps({"type": kind, "object": job}).encode() + b"\n")
                h.wfile.flush()
            timer.cancel()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _delete_jobs(self, h, ns, name, q, _b, _sub) -> None:
        with self.cond:
            present = (ns, name) in self.jobs
        if not present:
            return self._send(h, 404, _status(404, "NotFound", f'jobs.batch "{name}" not found'))
        self.delete_job(name, ns)
        return self._send(
            h,
            200,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Success",
                "details": {"propagationPolicy": q.get("propagationPolicy")},
            },
        )

    # pods
    def _get_pods(self, h, ns, name, q, _b, sub) -> None:
        if name is None:
            want = dict(kv.split("=", 1) for kv in q.get("labelSelector", "").split(",") if kv)
            with self.cond:
                items = [
                    p
                    for (pns, _), p in self.pods.items()
                    if pns == ns and all(p["metadata"]["labels"].get(k) == v for k, v in want.items())
                ]
            return self._send(h, 200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})
        if sub != "log":
            return self._send(h, 404, _status(404, "NotFound", "only pods/{name}/log is served"))
        with self.cond:
            text = self.logs.get(name)
        if text is None:
            return self._send(h, 404, _status(404, "NotFound", f'pods "{name}" not found'))
        lines = text.splitlines(keepends=True)
        if "tailLines" in q:
            lines = lines[-int(q["tailLines"]) :]
        data = "".join(lines).encode()
        h.send_response(200)
        h.send_header("Content-Type", "text/plain")
        if q.get("follow") != "true":
            h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()
