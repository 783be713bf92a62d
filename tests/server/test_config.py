"""Settings: environment and .env, the JWT-secret rule, database URLs."""

from __future__ import annotations

import pytest

from server.app import create_app
from server.core.config import ConfigError, load_settings, normalize_database_url

ENV_VARS = ("WAFERDESK_ENV", "WAFERDESK_JWT_SECRET", "DATABASE_URL", "WAFERDESK_DATA_DIR", "REDIS_URL")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


@pytest.mark.parametrize("secret", [None, "change-me", "replace-me-with-64-random-characters", "short-secret"])
def test_production_refuses_a_default_or_short_secret(monkeypatch, secret) -> None:
    monkeypatch.setenv("WAFERDESK_ENV", "production")
    if secret is not None:
        monkeypatch.setenv("WAFERDESK_JWT_SECRET", secret)
    with pytest.raises(ConfigError, match=r"WAFERDESK_JWT_SECRET .*(missing|well-known|at least 32)"):
        load_settings()
    with pytest.raises(ConfigError):
        create_app()


def test_production_accepts_a_long_secret(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("WAFERDESK_ENV", "production")
    monkeypatch.setenv("WAFERDESK_JWT_SECRET", "k" * 48)
    monkeypatch.setenv("WAFERDESK_DATA_DIR", str(tmp_path / "d"))
    s = load_settings()
    assert s.environment == "production" and s.secret() == "k" * 48


def test_development_generates_and_keeps_a_secret(tmp_path) -> None:
    s = load_settings(data_dir=tmp_path / "d")
    first = s.secret()
    assert len(first) >= 48 and (tmp_path / "d" / "jwt-secret").stat().st_mode & 0o777 == 0o600
    assert load_settings(data_dir=tmp_path / "d").secret() == first  # tokens survive a restart


def test_dotenv_and_database_urls(tmp_path) -> None:
    (tmp_path / ".env").write_text(
        "DATABASE_URL=postgresql://u:p@db.example:5432/wd\nWAFERDESK_MAX_BATCH=7\nREDIS_URL=redis://r:6379/2\n"
    )
    s = load_settings()
    assert s.sqlalchemy_url == "postgresql+psycopg://u:p@db.example:5432/wd"
    assert s.max_batch == 7 and s.redis_url == "redis://r:6379/2"
    assert normalize_database_url("postgres://h/db") == "postgresql+psycopg://h/db"
    assert normalize_database_url("postgresql+psycopg://h/db") == "postgresql+psycopg://h/db"
    default = load_settings(data_dir=tmp_path / "x", database_url=None)
    assert default.sqlalchemy_url == f"sqlite:///{tmp_path / 'x' / 'waferdesk.db'}"


def test_bad_values_are_named(tmp_path) -> None:
    with pytest.raises(ConfigError, match="max_batch"):
        load_settings(max_batch=0)
    with pytest.raises(ConfigError, match="environment"):
        load_settings(environment="prod")
