"""The worker's HTTP client for ``/training/worker/{job}/...`` (httpx), with its job token.

Transient trouble (the server restarting, a proxy's 502/503/504, a dropped connection) is
retried with backoff for ``retry_seconds``, so a server restart does not kill a training run
that is hours in. A 409 ``job_finished`` means the job ended on the server's side (cancelled,
or failed by it): :class:`JobEndedError`, and the worker stops.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from waferdesk.core.errors import WaferDeskError

RETRY_STATUSES = frozenset({502, 503, 504})


class WorkerApiError(WaferDeskError):
    """The server refused a worker call (the message is the server's own)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code = status, code
        super().__init__(f"server answered {status} {code}: {message}")


class JobEndedError(WaferDeskError):
    """The job ended on the server (cancelled, or failed there): stop working on it."""


class WorkerClient:
    def __init__(
        self,
        server: str,
        job_id: int,
        token: str,
        retry_seconds: float = 300.0,
        timeout: float = 120.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.job_id = job_id
        self.retry_seconds = retry_seconds
        self._sleep = sleep
        self.http = httpx.Client(
            base_url=server.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "User-Agent": "waferdesk-worker"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self.http.close()

    def _url(self, tail: str = "") -> str:
        return f"/training/worker/{self.job_id}{tail}"

    def request(self, method: str, tail: str = "", **kwargs: Any) -> httpx.Response:
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.5
        while True:
            try:
                r = self.http.request(method, self._url(tail), **kwargs)
            except httpx.TransportError as exc:
                if time.monotonic() + delay > deadline:
                    raise WaferDeskError(
                        f"the server at {self.http.base_url} is unreachable ({type(exc).__name__}: {exc}); "
                        f"gave up after {self.retry_seconds:.0f} s"
                    ) from None
            else:
                if r.status_code not in RETRY_STATUSES or time.monotonic() + delay > deadline:
                    return self._checked(r)
            self._sleep(delay)
            delay = min(delay * 2, 10.0)
            for f in (kwargs.get("files") or {}).values():  # uploads are re-read from the start
                if hasattr(f[1], "seek"):
                    f[1].seek(0)

    @staticmethod
    def _checked(r: httpx.Response) -> httpx.Response:
        if r.status_code < 400:
            return r
        try:
            err = r.json().get("error", {})
        except (ValueError, json.JSONDecodeError, AttributeError):
            err = {}
        code, message = str(err.get("code") or r.reason_phrase), str(err.get("message") or r.text[:300])
        if r.status_code == 409 and code == "job_finished":
            raise JobEndedError(message)
        raise WorkerApiError(r.status_code, code, message)

    # -- the calls -----------------------------------------------------------------------------
    def job(self) -> dict[str, Any]:
        return self.request("GET").json()

    def dataset(self, dest: Path) -> int:
        """Download the job's annotated wafers (.wdm) to ``dest``; returns how many it holds."""
        r = self.request("GET", "/dataset")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        tmp.write_bytes(r.content)
        tmp.replace(dest)
        return int(r.headers.get("X-WaferDesk-Wafers", "-1"))

    def init_model(self, dest_dir: Path) -> Path:
        """Download the model a fine-tuning job starts from (ONNX + card) into ``dest_dir``;
        the file is checked against the card's sha256."""
        import hashlib

        dest_dir.mkdir(parents=True, exist_ok=True)
        card = self.request("GET", "/init-model/card").json()
        blob = self.request("GET", "/init-model").content
        got = hashlib.sha256(blob).hexdigest()
        if got != card.get("sha256"):
            raise WaferDeskError(
                f"the initial model arrived damaged: sha256 {got[:12]}, its card says {str(card.get('sha256'))[:12]}"
            )
        path = dest_dir / "init.onnx"
        path.write_bytes(blob)
        path.with_name("init.card.json").write_text(json.dumps(card), encoding="utf-8")
        return path

    def status(self, status: str, error: str | None = None, message: str | None = None) -> dict[str, Any]:
        body = {"status": status, "error": error, "message": message}
        return self.request("POST", "/status", json={k: v for k, v in body.items() if v is not None}).json()

    def heartbeat(self) -> dict[str, Any]:
        return self.request("POST", "/heartbeat").json()

    def logs(self, lines: list[str]) -> None:
        for i in range(0, len(lines), 500):
            self.request("POST", "/logs", json={"lines": lines[i : i + 500]})

    def metrics(self, epoch: dict[str, Any]) -> None:
        self.request("POST", "/metrics", json=epoch)

    def upload_model(self, model_path: Path, card_path: Path) -> dict[str, Any]:
        with model_path.open("rb") as m, card_path.open("rb") as c:
            files = {
                "model": (model_path.name, m, "application/octet-stream"),
                "card": (card_path.name, c, "application/json"),
            }
            return self.request("POST", "/model", files=files).json()
