"""Server test fixtures: every test runs against SQLite AND a real Postgres.

- Postgres: ``WAFERDESK_TEST_POSTGRES_URL`` (an admin connection, default
  ``postgresql://postgres@127.0.0.1:5432/postgres``); when nothing answers there, a throw-away
  cluster is started with ``initdb`` + ``pg_ctl`` in a temp folder; when that fails too, the
  Postgres half is skipped and the terminal summary says so in capitals. A fresh database is
  created for the run and dropped at the end.
- Each test gets its own app (``create_app``) on that database; afterwards every table is
  emptied (truncation), so tests never see each other's rows.
- Redis: ``WAFERDESK_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/13``), keys under a
  per-run prefix that is deleted at the end; tests needing it skip when it is unreachable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from live_server import free_port
from server_helpers import TEST_SECRET, bearer, create_user, login
from sqlalchemy import Engine, text

from server.app import create_app
from server.core.config import Settings, load_settings
from server.db.migrate import upgrade
from server.db.models import Base
from server.db.session import make_engine
from waferdesk.core.formats import write_wdm
from waferdesk.core.records import WaferRecord
from waferdesk.core.synth import generate

PG_URL = os.environ.get("WAFERDESK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("WAFERDESK_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")

_LOUD: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in dict.fromkeys(_LOUD):  # once each, in order
        title, _, why = line.partition(": ")
        terminalreporter.write_sep("!", title, red=True, bold=True)
        terminalreporter.write_line(why, red=True)


# -- Postgres ---------------------------------------------------------------------------------
def _pg_connect(url: str):
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=3)


def _start_temp_cluster() -> tuple[str, Callable[[], None]]:
    """initdb + pg_ctl in a temp folder (as user ``postgres`` when we are root)."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not (initdb and pg_ctl):
        raise RuntimeError("initdb/pg_ctl not on PATH")
    root = Path(tempfile.mkdtemp(prefix="waferdesk-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        prefix = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    data, port = root / "data", free_port()
    subprocess.run(
        [*prefix, initdb, "-D", str(data), "-U", "postgres", "--auth=trust"], check=True, capture_output=True
    )
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    subprocess.run([*prefix, pg_ctl, "-D", str(data), "-o", opts, "-w", "-l", str(root / "log"), "start"], check=True)

    def stop() -> None:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)

    return f"postgresql://postgres@127.0.0.1:{port}/postgres", stop


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    stop: Callable[[], None] | None = None
    url = PG_URL
    try:
        _pg_connect(url).close()
    except Exception as first:
        try:
            url, stop = _start_temp_cluster()
            _pg_connect(url).close()
        except Exception as second:
            msg = f"POSTGRES TESTS SKIPPED: no server at {PG_URL} ({first}); starting one failed ({second})"
            _LOUD.append(msg)
            pytest.skip(msg)
    yield url
    if stop:
        stop()


def _database_url(admin_url: str, name: str) -> str:
    base = admin_url.rsplit("/", 1)[0]
    return f"{base}/{name}"


def create_pg_database(admin: str) -> tuple[str, Callable[[], None]]:
    """A fresh, empty Postgres database: its URL and a function that drops it."""
    name = f"waferdesk_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with _pg_connect(admin) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with _pg_connect(admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return _database_url(admin, name), drop


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh Postgres database of its own (migrated by whichever app starts on it), dropped after."""
    url, drop = create_pg_database(postgres_admin_url)
    try:
        yield url
    finally:
        drop()


# -- databases: one per backend per run ----------------------------------------------------
@dataclass
class Database:
    backend: str
    url: str  # as a user would write it (postgresql://, sqlite:///)
    engine: Engine  # for truncation and direct checks


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'waferdesk.db'}"
        drop = None
    else:
        url, drop = create_pg_database(request.getfixturevalue("postgres_admin_url"))
    engine = make_engine(load_settings(database_url=url, jwt_secret=TEST_SECRET).sqlalchemy_url)
    upgrade(engine)
    try:
        yield Database(request.param, url, engine)
    finally:
        engine.dispose()
        if drop:
            drop()


def truncate_all(engine: Engine) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for t in tables:
                conn.execute(text(f"DELETE FROM {t}"))


# -- settings, app, client ------------------------------------------------------------------
@pytest.fixture
def settings_factory(database: Database, tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "environment": "development",
            "database_url": database.url,
            "data_dir": tmp_path / "data",
            "jwt_secret": TEST_SECRET,
            "redis_url": None,
            "register_default_model": False,
            # argon2 at test cost: the production cost is a setting, tested in test_auth
            "argon2_time_cost": 1,
            "argon2_memory_kib": 1024,
            "argon2_parallelism": 1,
            "onnx_providers": "cpu",
        }
        values.update(overrides)
        return load_settings(**values)

    return make


@pytest.fixture
def app_factory(settings_factory: Callable[..., Settings], database: Database) -> Iterator[Callable[..., TestClient]]:
    """Make a started app (lifespan run) for these settings; emptied tables afterwards."""
    clients: list[TestClient] = []

    def make(**overrides: object) -> TestClient:
        client = TestClient(create_app(settings_factory(**overrides)), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    try:
        yield make
    finally:
        for c in clients:
            c.__exit__(None, None, None)
        truncate_all(database.engine)


@pytest.fixture
def client(app_factory: Callable[..., TestClient]) -> TestClient:
    return app_factory()


@pytest.fixture
def as_role(client: TestClient) -> Callable[[str], dict[str, str]]:
    """``as_role("engineer")`` -> Authorization headers of a (cached) user with that role."""
    cache: dict[str, dict[str, str]] = {}

    def headers(role: str) -> dict[str, str]:
        if role not in cache:
            create_user(client, f"{role}-user", role)
            cache[role] = bearer(login(client, f"{role}-user"))
        return cache[role]

    return headers


# -- wafer files ---------------------------------------------------------------------------
@pytest.fixture
def wafer_file(tmp_path: Path) -> Callable[..., Path]:
    """``wafer_file(n, seed, name=..., lot=...)`` -> a .wdm file of synthetic wafers."""

    def make(count: int = 1, seed: int = 0, name: str | None = None, lot: str | None = None) -> Path:
        recs = list(generate(count, seed=seed))
        if lot is not None:
            recs = [WaferRecord(r.wafer.with_(lot=lot, wafer_id=f"{lot}-{i:02d}"), r.mask) for i, r in enumerate(recs)]
        path = tmp_path / (name or f"wafers-{count}-{seed}.wdm")
        return write_wdm(path, recs)

    return make


# -- redis ----------------------------------------------------------------------------------
@pytest.fixture
def redis_url() -> Iterator[str]:
    """The test Redis (skips when unreachable); keys of this test's prefix are deleted after."""
    redis = pytest.importorskip("redis")
    r = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        r.ping()
    except Exception as exc:
        _LOUD.append(f"REDIS TESTS SKIPPED: no Redis at {REDIS_URL} ({exc})")
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    yield REDIS_URL
    r.close()


@pytest.fixture
def cache_prefix(redis_url: str) -> Iterator[str]:
    import redis

    prefix = f"waferdesk-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    r = redis.Redis.from_url(redis_url)
    keys = list(r.scan_iter(match=prefix + "*"))
    if keys:
        r.delete(*keys)
    r.close()
