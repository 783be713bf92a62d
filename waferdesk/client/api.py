"""HTTP client of the WaferDesk server (httpx): sign-in, wafers, annotations, the queue, COCO.

One :class:`ServerClient` per thread (each holds its own connection pool). Every error the
server answers becomes a :class:`ServerError` carrying the server's ``code``, ``message``,
``details`` and request id (a :class:`VersionConflictError` for a stale annotation version, with
``current_version``), so callers show ``str(exc)`` as one line and programs branch on
``code``. Masks travel as ``{"rle": [[value, run], ...]}`` (:func:`labels_payload`) and come
back as numpy grids (:func:`labels_from_payload`).

>>> api = ServerClient.login("http://127.0.0.1:8000", "ann", "password")
>>> claim = api.claim_next()                       # None when the queue is empty
>>> dies = api.wafer_grid(claim["item"]["wafer"]["id"])
>>> ann = api.create_annotation(wafer_id, labels, source="corrected_prediction", submit=True)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from ..core.errors import WaferDeskError
from ..core.inference.prediction import rle

DEFAULT_TIMEOUT = 60.0


class ServerError(WaferDeskError):
    """The server refused or failed a request (or could not be reached: ``status`` 0)."""

    def __init__(
        self, status: int, code: str, message: str, details: Any = None, request_id: str | None = None
    ) -> None:
        self.status, self.code, self.message, self.details, self.request_id = status, code, message, details, request_id
        super().__init__(f"{message} (HTTP {status} {code})" if status else message)


class VersionConflictError(ServerError):
    """409: the annotation changed since the version you named; reload and apply your change again."""

    @property
    def current_version(self) -> int | None:
        return (self.details or {}).get("current_version") if isinstance(self.details, dict) else None


def labels_payload(labels: np.ndarray) -> dict[str, Any]:
    """A label grid as the server takes it: ``{"rle": [[value, run], ...]}`` (row-major)."""
    return {"rle": rle(np.asarray(labels, dtype=np.uint8))}


def labels_from_payload(payload: Any, shape: tuple[int, int]) -> np.ndarray:
    """The uint8 grid of a mask the server sent (rows, or ``{"rle": ...}``)."""
    if isinstance(payload, dict):
        runs = np.asarray(payload["rle"], dtype=np.int64).reshape(-1, 2)
        return np.repeat(runs[:, 0], runs[:, 1]).astype(np.uint8).reshape(shape)
    return np.asarray(payload, dtype=np.uint8).reshape(shape)


class Tokens:
    """The access and refresh token of one sign-in, shared by the clients of several threads
    (:meth:`ServerClient.clone`): refresh tokens are single-use, so exactly one thread spends
    one (under the lock) and the others pick up the new pair."""

    def __init__(self, access: str | None = None, refresh: str | None = None) -> None:
        self.access, self.refresh = access, refresh
        self.lock = threading.Lock()
        self.on_refresh: Callable[[str], None] | None = None  # e.g. keep the new refresh token in the keyring


class ServerClient:
    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        tokens: Tokens | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout, self.transport = timeout, transport
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)
        self.tokens = tokens or Tokens(token)
        if self.tokens.access:
            self.http.headers["Authorization"] = f"Bearer {self.tokens.access}"

    @property
    def refresh_token(self) -> str | None:
        return self.tokens.refresh

    def clone(self, timeout: float | None = None) -> ServerClient:
        """A client for another thread: its own connection pool, the same sign-in."""
        return ServerClient(
            self.base_url, timeout=timeout or self.timeout, transport=self.transport, tokens=self.tokens
        )

    # -- session ---------------------------------------------------------------------------
    @classmethod
    def login(cls, base_url: str, username: str, password: str, **kw: Any) -> ServerClient:
        client = cls(base_url, **kw)
        client.sign_in(username, password)
        return client

    @classmethod
    def resume(cls, base_url: str, refresh_token: str, **kw: Any) -> ServerClient:
        """Sign in again with a kept refresh token (raises :class:`ServerError` 401 when it expired)."""
        client = cls(base_url, **kw)
        client.tokens.refresh = refresh_token
        client._refresh(None)
        return client

    def sign_in(self, username: str, password: str) -> dict[str, Any]:
        tokens = self._call("POST", "/auth/login", data={"username": username, "password": password})
        self._use(tokens)
        return tokens

    def _use(self, tokens: dict[str, Any]) -> None:
        self.tokens.access, self.tokens.refresh = tokens["access_token"], tokens.get("refresh_token")
        self.http.headers["Authorization"] = f"Bearer {self.tokens.access}"
        if self.tokens.on_refresh is not None and self.tokens.refresh:
            self.tokens.on_refresh(self.tokens.refresh)

    def _refresh(self, stale_access: str | None) -> None:
        """Spend the refresh token for a new pair, unless another thread already did."""
        with self.tokens.lock:
            if stale_access is not None and self.tokens.access != stale_access:
                self.http.headers["Authorization"] = f"Bearer {self.tokens.access}"
                return
            if not self.tokens.refresh:
                raise ServerError(401, "not_signed_in", "the sign-in has expired: sign in again")
            self._use(self._raw("POST", "/auth/refresh", json={"refresh_token": self.tokens.refresh}))

    def logout(self) -> None:
        """End this sign-in on the server: its refresh token stops working at once."""
        self._call("POST", "/auth/logout")

    def me(self) -> dict[str, Any]:
        return self._call("GET", "/auth/me")

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ServerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -------------------------------------------------------------------------
    def _call(self, method: str, path: str, **kw: Any) -> Any:
        """One request; an expired access token is refreshed once (when a refresh token is held)."""
        used = self.tokens.access
        if used and self.http.headers.get("Authorization") != f"Bearer {used}":
            self.http.headers["Authorization"] = f"Bearer {used}"  # another thread refreshed
        try:
            return self._raw(method, path, **kw)
        except ServerError as exc:
            if exc.status != 401 or not self.tokens.refresh or path in ("/auth/login", "/auth/refresh"):
                raise
        self._refresh(used)
        return self._raw(method, path, **kw)

    def _raw(self, method: str, path: str, **kw: Any) -> Any:
        r = self._send(method, path, **kw)
        if r.status_code >= 400:
            raise _error(r)
        if r.status_code == 204 or not r.content:
            return None
        return r.json()

    def _send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            return self.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise ServerError(0, "unreachable", f"cannot reach the server at {self.base_url}: {exc}") from None

    # -- wafers and predictions ------------------------------------------------------------
    def upload(self, *paths: str | Path) -> dict[str, Any]:
        """Upload wafer files (any format the server reads); ``{"wafers": [...], "created", "existing"}``."""
        handles = [open(p, "rb") for p in paths]  # noqa: SIM115 - closed below
        try:
            files = [
                ("files", (Path(p).name, h, "application/octet-stream")) for p, h in zip(paths, handles, strict=True)
            ]
            return self._call("POST", "/wafers", files=files)
        finally:
            for h in handles:
                h.close()

    def get_wafer(self, wafer_id: int, grid: bool = True) -> dict[str, Any]:
        return self._call("GET", f"/wafers/{wafer_id}", params={"grid": grid})

    def wafer_grid(self, wafer_id: int) -> np.ndarray:
        """The die grid (0 no die, 1 pass, 2 fail) of a stored wafer."""
        return np.asarray(self.get_wafer(wafer_id)["dies"], dtype=np.uint8)

    def wafer_predictions(self, wafer_id: int) -> list[dict[str, Any]]:
        """Stored predictions of a wafer (no masks), newest first."""
        return self._call("GET", f"/wafers/{wafer_id}/predictions")

    def get_prediction(self, prediction_id: int) -> dict[str, Any]:
        return self._call("GET", f"/predictions/{prediction_id}", params={"mask": "rle"})

    def prediction_labels(self, prediction_id: int) -> np.ndarray:
        """The model's mask of a stored prediction (the pre-annotation of a queue item)."""
        p = self.get_prediction(prediction_id)
        return labels_from_payload(p["mask"], tuple(p["wafer"]["shape"]))

    # -- annotations -------------------------------------------------------------------------
    def create_annotation(
        self,
        wafer_id: int,
        labels: np.ndarray,
        *,
        source: str = "manual",
        polygons: list[dict[str, Any]] | None = None,
        time_spent_s: float = 0.0,
        prediction_id: int | None = None,
        submit: bool = False,
        client_key: str | None = None,
    ) -> dict[str, Any]:
        """``client_key`` makes the create idempotent: a retry returns the annotation the first made."""
        body = {
            "wafer_id": wafer_id,
            "labels": labels_payload(labels),
            "source": source,
            "polygons": polygons,
            "time_spent_s": time_spent_s,
            "prediction_id": prediction_id,
            "submit": submit,
        }
        if client_key is not None:
            body["client_key"] = client_key
        return self._call("POST", "/annotations", json=body)

    def update_annotation(
        self,
        annotation_id: int,
        version: int,
        labels: np.ndarray | None = None,
        *,
        source: str | None = None,
        polygons: list[dict[str, Any]] | None = None,
        add_time_s: float = 0.0,
    ) -> dict[str, Any]:
        """Raises :class:`VersionConflictError` when ``version`` is no longer the current one."""
        body: dict[str, Any] = {"version": version, "add_time_s": add_time_s}
        if labels is not None:
            body["labels"] = labels_payload(labels)
        if source is not None:
            body["source"] = source
        if polygons is not None:
            body["polygons"] = polygons
        return self._call("PUT", f"/annotations/{annotation_id}", json=body)

    def submit_annotation(self, annotation_id: int, version: int, add_time_s: float = 0.0) -> dict[str, Any]:
        return self._call(
            "POST", f"/annotations/{annotation_id}/submit", json={"version": version, "add_time_s": add_time_s}
        )

    def approve(self, annotation_id: int, version: int) -> dict[str, Any]:
        return self._call("POST", f"/annotations/{annotation_id}/approve", json={"version": version})

    def reject(self, annotation_id: int, version: int, reason: str) -> dict[str, Any]:
        return self._call("POST", f"/annotations/{annotation_id}/reject", json={"version": version, "reason": reason})

    def delete_annotation(self, annotation_id: int, version: int) -> dict[str, Any]:
        return self._call("DELETE", f"/annotations/{annotation_id}", params={"version": version})

    def get_annotation(self, annotation_id: int) -> dict[str, Any]:
        return self._call("GET", f"/annotations/{annotation_id}", params={"mask": "rle"})

    def annotations_for_wafer(self, wafer_id: int) -> list[dict[str, Any]]:
        return self._call("GET", f"/annotations/wafer/{wafer_id}", params={"mask": "rle"})

    def review_list(self, limit: int = 100) -> list[dict[str, Any]]:
        """Submitted annotations awaiting review (disagreeing wafers first)."""
        return self._call("GET", "/annotations/review", params={"limit": limit})

    @staticmethod
    def annotation_labels(annotation: Mapping[str, Any], shape: tuple[int, int]) -> np.ndarray:
        return labels_from_payload(annotation["labels"], shape)

    # -- the active-learning queue -----------------------------------------------------------
    def query(self, strategy: str = "hybrid", batch_size: int = 20, seed: int = 0, **options: Any) -> dict[str, Any]:
        """Run a query (engineers): ``options`` are the other fields of ``POST /active-learning/query``."""
        body = {"strategy": strategy, "batch_size": batch_size, "seed": seed, **options}
        return self._call("POST", "/active-learning/query", json=body)

    def claim_next(self, round_number: int | None = None, exclude: list[int] | None = None) -> dict[str, Any] | None:
        """``{"item", "my_annotation", "lease_seconds"}`` for the next wafer, or None when the queue is empty.

        ``exclude``: item ids already in hand (the wafer on screen), so another one is claimed
        (prefetch)."""
        body: dict[str, Any] = {"round": round_number}
        if exclude:
            body["exclude"] = list(exclude)
        out = self._call("POST", "/active-learning/queue/claim", json=body)
        return out if out.get("item") else None

    def skip(self, item_id: int, reason: str) -> dict[str, Any]:
        return self._call("POST", f"/active-learning/queue/{item_id}/skip", json={"reason": reason})

    def release(self, item_id: int) -> dict[str, Any]:
        return self._call("POST", f"/active-learning/queue/{item_id}/release")

    def renew(self, item_id: int) -> dict[str, Any]:
        return self._call("POST", f"/active-learning/queue/{item_id}/renew")

    def queue(self, **filters: Any) -> dict[str, Any]:
        """``GET /active-learning/queue`` (round, state, mine, limit, offset)."""
        return self._call("GET", "/active-learning/queue", params={k: v for k, v in filters.items() if v is not None})

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/active-learning/stats")

    # -- models ------------------------------------------------------------------------------
    def models(self) -> list[dict[str, Any]]:
        """The registry, the active model first."""
        return self._call("GET", "/models")

    def model_card(self, model_id: int) -> dict[str, Any]:
        return self._call("GET", f"/models/{model_id}")

    def download_model(self, model_id: int, dest: str | Path, chunk: int = 1 << 20) -> None:
        """Stream the ONNX file of a registered model to ``dest``."""
        for attempt in (0, 1):
            try:
                with self.http.stream("GET", f"/models/{model_id}/download") as r:
                    if r.status_code == 401 and attempt == 0 and self.tokens.refresh:
                        self._refresh(self.tokens.access)
                        continue
                    if r.status_code >= 400:
                        r.read()
                        raise _error(r)
                    with open(dest, "wb") as out:
                        for part in r.iter_bytes(chunk):
                            out.write(part)
                    return
            except httpx.HTTPError as exc:
                raise ServerError(0, "unreachable", f"cannot reach the server at {self.base_url}: {exc}") from None

    # -- COCO --------------------------------------------------------------------------------
    def export_coco(self, **filters: Any) -> dict[str, Any]:
        """``status`` (default approved), ``lot``, ``date_from``, ``date_to``, ``round``."""
        return self._call("POST", "/annotations/export", json={k: v for k, v in filters.items() if v is not None})

    def import_coco(
        self, document: Mapping[str, Any] | bytes, status: str = "submitted", name: str = "coco.json"
    ) -> dict:
        raw = document if isinstance(document, bytes) else json.dumps(document).encode()
        return self._call(
            "POST", "/annotations/import", files={"file": (name, raw, "application/json")}, data={"status": status}
        )


def _error(r: httpx.Response) -> ServerError:
    try:
        err = r.json()["error"]
        code, message, details, rid = err["code"], err["message"], err.get("details"), err.get("request_id")
    except (ValueError, KeyError, TypeError):
        code, message, details, rid = "http_error", " ".join(r.text.split())[:200] or r.reason_phrase, None, None
    cls = VersionConflictError if r.status_code == 409 and code == "version_conflict" else ServerError
    return cls(r.status_code, code, message, details, rid)
