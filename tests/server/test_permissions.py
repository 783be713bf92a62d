"""Every route x every role (+ anonymous, expired and tampered tokens) against THE matrix.

The routes come from ``app.routes`` (introspection), each route's permission from its own
``require(...)`` declaration, the expected answer from ``server.core.permissions.ROLES_FOR``.
A route added without a permission cannot even be mounted (create_app refuses), and one whose
permission is wrongly enforced fails here.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from server_helpers import bearer, create_user, login
from starlette.routing import Route

from server.api.deps import check_routes_declare_permissions, require, route_permission
from server.core.permissions import (
    ANONYMOUS_ALLOWED,
    ROLES_FOR,
    TOKEN_ONLY,
    Permission,
    Role,
    allows,
    matrix_table,
)

DOCS_ROUTES = {"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
AUTH_CODES = {"not_authenticated", "invalid_token", "token_expired", "session_revoked", "account_disabled"}
IDENTITIES = ("anonymous", "expired", "tampered", *[r.value for r in Role])


def _fill(path: str) -> str:
    """Concrete path for a template: every parameter an id that does not exist."""
    return re.sub(r"\{[^}]+\}", "987654", path)


def _tamper(token: str) -> str:
    """Same signature, payload changed (another user id): must be refused."""
    head, payload, sig = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["sub"] = str(int(data["sub"]) + 1)
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{sig}"


def test_every_route_is_walked_against_the_matrix(client) -> None:
    app = client.app
    ctx = app.state.ctx
    users = {role.value: create_user(client, f"walk-{role.value}", role.value) for role in Role}
    # keep one login for the expired/tampered tokens
    base_tokens = login(client, "walk-viewer")
    viewer_sid = ctx.auth.tokens.decode(base_tokens["access_token"], "access").session_id

    def headers_for(identity: str) -> dict[str, str]:
        if identity == "anonymous":
            return {}
        if identity == "expired":
            past = datetime.now(UTC) - timedelta(hours=2)
            tok, _ = ctx.auth.tokens.encode(users["viewer"], viewer_sid, "access", now=past)
            return bearer(tok)
        if identity == "tampered":
            return bearer(_tamper(base_tokens["access_token"]))
        # a fresh session per request: /auth/logout must not spoil the next call
        with ctx.sessions() as session:
            from server.db.models import User

            pair = ctx.auth.open_session(session, session.get(User, users[identity]))
            session.commit()
        return bearer(pair.access_token)

    walked: list[str] = []
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute):
            assert isinstance(route.original_route, Route) and route.path in DOCS_ROUTES, (
                f"unexpected non-API route {route.path}"
            )
            r = client.get(route.path)
            assert r.status_code == 200, f"docs route {route.path}: {r.status_code}"
            walked.append(f"GET {route.path}")
            continue
        perm = route_permission(route)
        assert perm is not None, f"{route.path} declares no permission"
        for method in sorted(route.methods):
            url = _fill(route.path)
            for identity in IDENTITIES:
                r = client.request(method, url, headers=headers_for(identity))
                where = f"{method} {route.path} as {identity} (permission {perm.value})"
                body = (
                    r.json() if r.content and r.headers.get("content-type", "").startswith("application/json") else {}
                )
                code = body.get("error", {}).get("code") if isinstance(body, dict) else None
                if identity in ("anonymous", "expired", "tampered"):
                    if perm in ANONYMOUS_ALLOWED:
                        assert r.status_code not in (401, 403), f"{where}: public route refused: {r.text}"
                    else:
                        assert r.status_code == 401, f"{where}: expected 401, got {r.status_code} {r.text}"
                        expect = {"anonymous": "not_authenticated", "expired": "token_expired"}.get(
                            identity, "invalid_token"
                        )
                        assert code == expect, f"{where}: code {code}"
                        assert r.headers.get("www-authenticate") == "Bearer"
                elif allows(identity, perm):
                    assert r.status_code != 401 and code not in AUTH_CODES, f"{where}: refused auth: {r.text}"
                    assert code != "permission_denied", f"{where}: allowed role refused: {r.text}"
                else:
                    assert r.status_code == 403 and code == "permission_denied", (
                        f"{where}: expected 403 permission_denied, got {r.status_code} {r.text}"
                    )
                assert r.headers.get("x-request-id"), f"{where}: no request id"
            walked.append(f"{method} {route.path}")
    # the walk really covered the API (guards against a test that silently walks nothing)
    for must in (
        "POST /wafers",
        "GET /wafers",
        "DELETE /wafers/{wafer_id}",
        "POST /predict",
        "POST /predict/batch",
        "POST /annotations",
        "GET /annotations/wafer/{wafer_id}",
        "PUT /annotations/{annotation_id}",
        "DELETE /annotations/{annotation_id}",
        "POST /annotations/{annotation_id}/approve",
        "POST /annotations/export",
        "POST /annotations/import",
        "POST /active-learning/query",
        "GET /active-learning/queue",
        "POST /active-learning/queue/claim",
        "POST /active-learning/queue/{item_id}/skip",
        "GET /active-learning/stats",
        "POST /training/jobs",
        "POST /training/worker/{job_id}/model",
        "POST /models/{model_id}/promote",
    ):
        assert must in walked
    assert len(walked) >= 45, walked


def test_a_route_without_a_permission_cannot_be_mounted() -> None:
    app = FastAPI()
    router = APIRouter()

    @router.get("/sneaky")
    def sneaky() -> dict:
        return {}

    @router.get("/fine", dependencies=[Depends(require(Permission.PUBLIC))])
    def fine() -> dict:
        return {}

    app.include_router(router)
    with pytest.raises(RuntimeError, match=r"/sneaky"):
        check_routes_declare_permissions(app.routes)


def test_matrix_rules() -> None:
    # admin holds everything a person can hold; job-token permissions no person holds;
    # anonymous only PUBLIC; self-registered role is the least
    assert all(Role.ADMIN in roles for p, roles in ROLES_FOR.items() if p not in TOKEN_ONLY)
    assert {Permission.TRAINING_WORKER} == TOKEN_ONLY and all(not ROLES_FOR[p] for p in TOKEN_ONLY)
    assert {Permission.PUBLIC} == ANONYMOUS_ALLOWED
    assert not allows(Role.VIEWER, Permission.WAFERS_UPLOAD)
    assert not allows(Role.ANNOTATOR, Permission.PREDICTIONS_RUN)
    assert allows(Role.ANNOTATOR, Permission.ANNOTATIONS_WRITE_OWN)
    assert allows(Role.ENGINEER, Permission.TRAINING_RUN) and not allows(Role.ENGINEER, Permission.USERS_MANAGE)
    assert not allows(Role.ENGINEER, Permission.WAFERS_DELETE) and not allows(Role.ENGINEER, Permission.MODELS_MANAGE)


def test_docs_show_the_matrix_as_written(repo_root: Path) -> None:
    """docs/server.md carries the generated table; regenerate it with matrix_table() when it changes."""
    text = (repo_root / "docs" / "server.md").read_text(encoding="utf-8")
    assert matrix_table() in text, "docs/server.md's permission table differs from server/core/permissions.py"
