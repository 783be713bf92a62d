"""One error shape for every 4xx/5xx, no stack traces, a request id in every response and log line."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends

from server.api.deps import require
from server.core.permissions import Permission


def _shape(r) -> dict:
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"code", "message", "details", "request_id"}, err
    assert err["request_id"] == r.headers["x-request-id"]
    assert isinstance(err["code"], str) and err["message"]
    return err


def test_every_kind_of_error_has_the_same_shape(client, as_role) -> None:
    assert _shape(client.get("/no/such/path"))["code"] == "not_found"
    assert _shape(client.put("/health"))["code"] == "method_not_allowed"
    assert _shape(client.get("/wafers"))["code"] == "not_authenticated"
    assert _shape(client.get("/users", headers=as_role("viewer")))["code"] == "permission_denied"
    assert _shape(client.get("/wafers/1", headers=as_role("viewer")))["code"] == "wafer_not_found"
    err = _shape(client.get("/wafers", params={"limit": "many"}, headers=as_role("viewer")))
    assert err["code"] == "invalid_input" and err["details"][0]["field"] == "query field limit"
    err = _shape(client.post("/auth/refresh", content=b"{not json", headers={"content-type": "application/json"}))
    assert err["code"] == "invalid_input"


def test_an_unexpected_error_is_a_500_without_a_trace_and_logged_with_the_request_id(client, caplog) -> None:
    router = APIRouter()

    @router.get("/boom", dependencies=[Depends(require(Permission.PUBLIC))])
    def boom() -> dict:
        raise RuntimeError("secret internal detail")

    client.app.include_router(router)
    with caplog.at_level(logging.INFO):
        r = client.get("/boom", headers={"X-Request-ID": "trace-me-42"})
    assert r.status_code == 500
    err = _shape(r)
    assert err["code"] == "internal_error" and err["request_id"] == "trace-me-42"
    assert "secret internal detail" not in r.text and "Traceback" not in r.text
    logged = [rec for rec in caplog.records if getattr(rec, "request_id", None) == "trace-me-42"]
    assert any(rec.exc_info and "secret internal detail" in str(rec.exc_info[1]) for rec in logged)
    assert any("/boom -> 500" in rec.getMessage() for rec in logged)


def test_request_ids_are_echoed_or_made(client) -> None:
    r = client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    made = {client.get("/health").headers["x-request-id"] for _ in range(3)}
    assert len(made) == 3 and all(len(m) == 32 for m in made)
    r = client.get("/health", headers={"X-Request-ID": "bad id with spaces"})
    assert r.headers["x-request-id"] != "bad id with spaces"


def test_a_streamed_body_over_the_limit_is_cut_off(app_factory) -> None:
    client = app_factory(max_request_bytes=10_000)

    def chunks():
        for _ in range(20):
            yield b"x" * 1000

    r = client.post("/auth/refresh", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and _shape(r)["code"] == "request_too_large"


def test_health_is_503_when_the_database_is_down(client) -> None:
    from server.db.session import make_engine, make_sessionmaker

    ctx = client.app.state.ctx
    good = ctx.sessions
    dead = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 2})
    ctx.sessions = make_sessionmaker(dead)
    try:
        r = client.get("/health")
    finally:
        ctx.sessions = good
        dead.dispose()
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "down" and body["checks"]["database"]["ok"] is False
    assert "nobody" not in r.text  # no connection details leak
    assert client.get("/health").status_code == 200


def test_ids_too_big_for_the_database_are_a_422_naming_the_field(client, as_role) -> None:
    """2**31 is past Postgres' 32-bit id columns (and 2**63 past SQLite's): a 422, never a 500."""
    admin = as_role("admin")
    for big in (2**31, 2**63):
        calls = [
            ("GET", f"/wafers/{big}", None, "path field wafer_id"),
            ("GET", f"/predictions/{big}", None, "path field prediction_id"),
            ("GET", f"/annotations/{big}", None, "path field annotation_id"),
            ("GET", f"/users/{big}", None, "path field user_id"),
            ("GET", f"/models/{big}", None, "path field model_id"),
            ("GET", f"/training/jobs/{big}", None, "path field job_id"),
            ("POST", f"/active-learning/queue/{big}/release", None, "path field item_id"),
            ("GET", f"/wafers?offset={big}", None, "query field offset"),
            ("GET", f"/annotations?wafer_id={big}", None, "query field wafer_id"),
            ("GET", f"/active-learning/queue?round={big}", None, "query field round"),
            ("POST", "/annotations", {"wafer_id": big, "labels": [[255]]}, "body field wafer_id"),
            ("POST", "/annotations/export", {"round": big}, "body field round"),
            ("POST", "/active-learning/queue/claim", {"round": big}, "body field round"),
            ("POST", "/active-learning/query", {"strategy": "random", "wafer_ids": [big]}, "body field wafer_ids.0"),
            ("POST", "/training/jobs", {"data": {"rounds": [big]}}, "body field data.rounds.0"),
        ]
        for method, path, body, field in calls:
            r = client.request(method, path, json=body, headers=admin)
            assert r.status_code == 422, (path, body, r.status_code, r.text)
            err = _shape(r)
            assert err["code"] == "invalid_input" and err["message"].startswith(field), (path, err)
        r = client.post("/predict", data={"wafer_id": str(big)}, headers=admin)
        assert r.status_code == 422 and _shape(r)["message"].startswith("body field wafer_id"), r.text
        r = client.post("/predict/batch", data={"wafer_ids": ["1", str(big)]}, headers=admin)
        assert r.status_code == 422 and _shape(r)["message"].startswith("body field wafer_ids.1"), r.text
    # the largest id the database holds is still an honest 404
    assert _shape(client.get(f"/wafers/{2**31 - 1}", headers=admin))["code"] == "wafer_not_found"


def test_text_with_a_nul_character_is_a_422_not_a_500(client, as_role, database) -> None:
    """Postgres cannot store or compare text holding NUL (0x00); SQLite can. Neither answers 500."""
    admin = as_role("admin")
    calls = [
        lambda: client.post("/auth/login", data={"username": "ad\x00min", "password": "whatever-password"}),
        lambda: client.get("/wafers", params={"lot": "A\x00B"}, headers=admin),
        lambda: client.post("/annotations/export", json={"lot": "A\x00B"}, headers=admin),
        lambda: client.post("/training/jobs", json={"data": {"lots": ["A\x00B"]}}, headers=admin),
    ]
    if database.backend == "postgres":  # a JSONB column: the job spec (on SQLite this job would start a worker)
        spec = {"name": "A\x00B", "data": {"synthetic_count": 4}}
        calls.append(lambda: client.post("/training/jobs", json=spec, headers=admin))
    for call in calls:
        r = call()
        assert r.status_code < 500, r.text
        if database.backend == "postgres":
            assert r.status_code == 422, r.text
            err = _shape(r)
            assert err["code"] == "invalid_input" and "x00" in err["message"], err
            assert "contains a NUL (0x00) character: the database refuses it" in err["message"], err
    assert client.get("/training/jobs", headers=admin).json()["total"] == 0
