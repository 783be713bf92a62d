"""``waferdesk-server`` as a user runs it: serve on a fresh data folder, create-user, migrate,
and the walk-throughs of docs/server.md run as written against the live server."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from live_server import free_port

REPO = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "change-this-admin-password"


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WAFERDESK_", "DATABASE_URL", "REDIS_URL"))}
    # argon2 at a test cost (the default cost is checked in test_auth)
    env.update(
        PYTHONPATH=str(REPO),
        WAFERDESK_DATA_DIR=str(data_dir),
        WAFERDESK_ARGON2_TIME_COST="1",
        WAFERDESK_ARGON2_MEMORY_KIB="8192",
        **extra,
    )
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _cli(*args: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "server", *args], env=env, input=stdin, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def live(tmp_path_factory, tiny_model) -> Iterator[tuple[str, dict[str, str]]]:
    """``waferdesk-server serve`` on a fresh data folder (embedded SQLite), nothing else set up."""
    data = tmp_path_factory.mktemp("live-data")
    env = _env(data, WAFERDESK_MODEL_PATH=str(tiny_model))
    port = free_port()
    log = (data / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=data,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("server did not start:\n" + (data / "serve.log").read_text())
            time.sleep(0.2)
        yield url, env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_serve_answers_docs_on_a_fresh_machine(live) -> None:
    url, env = live
    r = httpx.get(f"{url}/docs")
    assert r.status_code == 200 and "swagger" in r.text.lower()
    spec = httpx.get(f"{url}/openapi.json").json()
    assert "/predict/batch" in spec["paths"] and "/wafers" in spec["paths"]
    health = httpx.get(f"{url}/health").json()
    assert health["checks"]["database"]["backend"] == "sqlite" and health["checks"]["model"]["version"] == "tiny-1"
    data_dir = Path(env["WAFERDESK_DATA_DIR"])
    assert (data_dir / "waferdesk.db").is_file() and (data_dir / "jwt-secret").is_file()
    log = (data_dir / "serve.log").read_text()
    assert re.search(r"\[[0-9a-f]{32}\] server\.access: GET /health -> 200", log), log[-2000:]


def _block(name: str) -> str:
    text = (REPO / "docs" / "server.md").read_text(encoding="utf-8")
    m = re.search(rf"<!-- walkthrough:{name} -->\s*```\w+\n(.*?)```\s*<!-- /walkthrough:{name} -->", text, re.S)
    assert m, f"walk-through {name} not found in docs/server.md"
    return m.group(1)


@pytest.fixture(scope="module")
def admin(live) -> None:
    _url, env = live
    res = _cli("create-user", "admin", "--role", "admin", "--password-stdin", env=env, stdin=ADMIN_PASSWORD + "\n")
    assert res.returncode == 0, res.stderr
    assert "created admin 'admin'" in res.stdout
    again = _cli("create-user", "admin", "--password-stdin", env=env, stdin=ADMIN_PASSWORD + "\n")
    assert again.returncode == 2 and again.stderr.strip() == "waferdesk-server: username 'admin' is taken"


def test_curl_walkthrough_runs_as_written(live, admin, tmp_path) -> None:
    if not (shutil.which("curl") and shutil.which("jq")):
        pytest.skip("curl and jq are needed for the shell walk-through")
    url, env = live
    res = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", _block("curl")],
        env={**env, "WD": url},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    assert '{"username":"admin","role":"admin"}' in out
    assert '{"created":5,"existing":0}' in out
    assert '"source":"model"' in out and '"source":"cache"' in out
    assert '{"count":5,"cache_hits":1}' in out
    assert '"status":"ok"' in out and 'waferdesk_predictions_total{source="model"}' in out
    assert out.rstrip().endswith("204")


def test_python_walkthrough_runs_as_written(live, admin, tmp_path) -> None:
    url, env = live
    script = tmp_path / "walk.py"
    script.write_text(_block("python"))
    res = subprocess.run(
        [sys.executable, str(script)], env={**env, "WD": url}, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "uploaded [" in res.stdout and "413 batch of 101 wafers; at most 100" in res.stdout
    assert "p50_ms" in res.stdout


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_migrate_and_create_user_on_postgres(database, tmp_path) -> None:
    """The CLI with DATABASE_URL=postgresql://... (the SQLite path is the live server's): migrate, create-user."""
    env = _env(tmp_path / "d", DATABASE_URL=database.url)
    res = _cli("migrate", env=env)
    assert res.returncode == 0 and "already at revision" in res.stdout, res.stderr
    res = _cli("create-user", "cli-eng", "--role", "engineer", "--password-stdin", env=env, stdin="a long password\n")
    assert res.returncode == 0 and "created engineer 'cli-eng'" in res.stdout, res.stderr
    res = _cli("create-user", "cli-bad", "--email", "nope", "--password-stdin", env=env, stdin="a long password\n")
    assert (
        res.returncode == 2
        and res.stderr == "waferdesk-server: email: 'nope' is not an e-mail address (name@example.com)\n"
    )
    from sqlalchemy import text

    with database.engine.begin() as conn:
        assert conn.execute(text("SELECT role FROM users WHERE username = 'cli-eng'")).scalar() == "engineer"
        assert conn.execute(text("SELECT COUNT(*) FROM users WHERE username = 'cli-bad'")).scalar() == 0
        conn.execute(text("DELETE FROM users"))


def test_bad_settings_stop_serve_with_one_line(tmp_path) -> None:
    env = _env(tmp_path / "d", WAFERDESK_ENV="production", WAFERDESK_JWT_SECRET="too-short")
    res = _cli("serve", "--port", str(free_port()), env=env)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "WAFERDESK_JWT_SECRET is 9 characters" in res.stderr
    env = _env(tmp_path / "d", DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    res = _cli("create-user", "someone", "--password-stdin", env=env, stdin="a long password\n")
    assert res.returncode == 2 and res.stderr.startswith("waferdesk-server: cannot use the database:")
    assert "Traceback" not in res.stderr


def test_console_script_is_declared() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["waferdesk-server"] == "server.cli:main"
    from server.cli import main

    assert callable(main)
