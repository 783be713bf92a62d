"""The HTTP client's contract with the server's error shape (httpx MockTransport; the real
server is exercised by tests/server/test_annotation_flow.py)."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from waferdesk.client.api import ServerClient, ServerError, VersionConflictError, labels_from_payload, labels_payload


def _client(handler) -> ServerClient:
    return ServerClient("http://wd.test", "tok", transport=httpx.MockTransport(handler))


def test_a_stale_version_is_a_version_conflict_with_the_current_version() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer tok"
        body = json.loads(request.content)
        assert body["version"] == 3 and body["labels"] == {"rle": [[255, 2], [1, 2]]}
        return httpx.Response(
            409,
            json={
                "error": {
                    "code": "version_conflict",
                    "message": "annotation 5 is at version 4",
                    "details": {"current_version": 4},
                    "request_id": "r1",
                }
            },
        )

    with _client(handler) as api, pytest.raises(VersionConflictError) as exc:
        api.update_annotation(5, 3, np.array([[255, 255], [1, 1]], np.uint8))
    assert exc.value.current_version == 4 and exc.value.code == "version_conflict" and exc.value.request_id == "r1"
    assert str(exc.value) == "annotation 5 is at version 4 (HTTP 409 version_conflict)"


def test_other_errors_and_an_unreachable_server() -> None:
    with _client(lambda r: httpx.Response(403, json={"error": {"code": "permission_denied", "message": "no"}})) as api:
        with pytest.raises(ServerError) as exc:
            api.stats()
        assert exc.value.status == 403 and not isinstance(exc.value, VersionConflictError)

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with _client(down) as api, pytest.raises(ServerError, match=r"cannot reach the server at http://wd\.test"):
        api.claim_next()


def test_claim_next_is_none_on_an_empty_queue_and_labels_round_trip() -> None:
    with _client(lambda r: httpx.Response(200, json={"item": None, "lease_seconds": 60})) as api:
        assert api.claim_next() is None
    grid = np.random.default_rng(0).integers(0, 9, (7, 5)).astype(np.uint8)
    grid[grid == 8] = 255
    assert np.array_equal(labels_from_payload(labels_payload(grid), grid.shape), grid)
    assert np.array_equal(labels_from_payload(grid.tolist(), grid.shape), grid)


def test_an_expired_access_token_is_refreshed_once_and_shared_with_clones() -> None:
    seen: list[tuple[str, str]] = []
    refreshes: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("authorization", "")
        seen.append((request.url.path, auth))
        if request.url.path == "/auth/refresh":
            refreshes.append(json.loads(request.content)["refresh_token"])
            n = len(refreshes)
            return httpx.Response(200, json={"access_token": f"access-{n + 1}", "refresh_token": f"refresh-{n + 1}"})
        if auth != "Bearer access-2":
            return httpx.Response(401, json={"error": {"code": "token_expired", "message": "expired"}})
        return httpx.Response(200, json={"username": "ann"})

    api = ServerClient("http://wd.test", "access-1", transport=httpx.MockTransport(handler))
    api.tokens.refresh = "refresh-1"
    kept: list[str] = []
    api.tokens.on_refresh = kept.append
    other = api.clone()
    assert api.me() == {"username": "ann"}
    assert other.me() == {"username": "ann"}  # the clone uses the new pair: no second refresh
    assert refreshes == ["refresh-1"] and kept == ["refresh-2"] and api.refresh_token == "refresh-2"
    assert [p for p, _ in seen] == ["/auth/me", "/auth/refresh", "/auth/me", "/auth/me"]
