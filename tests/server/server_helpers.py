"""Helpers of the server tests (plain functions; the fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

TEST_SECRET = "test-secret-" + "x" * 40
PASSWORD = "correct horse battery"


# -- users and tokens-----------------------------------------------------------------
def create_user(client: TestClient, username: str, role: str, password: str = PASSWORD) -> int:
    """A user made directly through the service (as the CLI does), any role."""
    ctx = client.app.state.ctx
    with ctx.sessions() as session:
        user = ctx.auth.create_user(session, username, password, role)
        session.commit()
        return user.id


def login(client: TestClient, username: str, password: str = PASSWORD) -> dict:
    r = client.post("/auth/login", data={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return r.json()


def bearer(tokens: dict | str) -> dict[str, str]:
    tok = tokens if isinstance(tokens, str) else tokens["access_token"]
    return {"Authorization": f"Bearer {tok}"}


def upload(client: TestClient, headers: dict, *paths: Path) -> dict:
    files = [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in paths]
    r = client.post("/wafers", headers=headers, files=files)
    assert r.status_code == 201, r.text
    return r.json()
