"""Server settings, read from the environment and a ``.env`` file (pydantic-settings).

Every variable is ``WAFERDESK_<FIELD>`` except the two conventional ones, ``DATABASE_URL``
and ``REDIS_URL``. Settings are validated once at start-up: outside development a default,
short or missing JWT secret stops the server with a message saying what to set, because a
guessable secret lets anyone mint admin tokens. In development a missing secret is generated
once and kept in the data folder (never a well-known default), so ``waferdesk-server serve``
works with no set-up and tokens survive a restart.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_SECRET_LENGTH = 32
KNOWN_DEFAULT_SECRETS = frozenset(
    {"", "change-me", "changeme", "changethis", "secret", "jwt-secret", "replace-me-with-64-random-characters"}
)
SECRET_FILE = "jwt-secret"


class ConfigError(Exception):
    """Settings that cannot run the server; the message says what to change."""


def _version() -> str:
    from waferdesk import __version__

    return __version__


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("waferdesk-server", appauthor=False))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="WAFERDESK_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_by_name=True,
        validate_by_alias=True,
    )

    environment: Literal["development", "staging", "production"] = Field(
        "development", validation_alias=AliasChoices("WAFERDESK_ENV", "WAFERDESK_ENVIRONMENT")
    )
    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = Field(None, validation_alias=AliasChoices("DATABASE_URL", "WAFERDESK_DATABASE_URL"))
    redis_url: str | None = Field(None, validation_alias=AliasChoices("REDIS_URL", "WAFERDESK_REDIS_URL"))

    # -- auth ----------------------------------------------------------------------------
    jwt_secret: SecretStr | None = None
    jwt_issuer: str = "waferdesk"
    access_token_minutes: int = Field(15, ge=1, le=24 * 60)
    refresh_token_days: int = Field(14, ge=1, le=365)
    allow_registration: bool = True
    password_min_length: int = Field(10, ge=8, le=128)
    # argon2id cost (RFC 9106 "second recommended" profile by default; tests lower it)
    argon2_time_cost: int = Field(3, ge=1)
    argon2_memory_kib: int = Field(64 * 1024, ge=8)
    argon2_parallelism: int = Field(4, ge=1)
    # failed logins: after `login_max_failures` within `login_window_seconds` (per user name and
    # per client address) further attempts are refused for `login_lock_seconds`
    login_max_failures: int = Field(5, ge=1)
    login_window_seconds: int = Field(15 * 60, ge=1)
    login_lock_seconds: int = Field(15 * 60, ge=1)

    # -- uploads and prediction ----------------------------------------------------------
    max_file_bytes: int = Field(64 * 1024**2, ge=1024)
    max_request_bytes: int = Field(256 * 1024**2, ge=1024)
    max_files_per_upload: int = Field(100, ge=1)
    max_wafers_per_upload: int = Field(20_000, ge=1)
    max_batch: int = Field(100, ge=1, le=10_000)
    # WM-811K .pkl uploads go through the core's restricted unpickler; turn them off to accept
    # no pickle at all from clients
    accept_pickle: bool = True
    cache_size: int = Field(2048, ge=0)
    cache_ttl_seconds: int = Field(7 * 24 * 3600, ge=1)
    cache_prefix: str = "waferdesk:pred:"
    onnx_providers: str = "auto"
    register_default_model: bool = True
    model_path: Path | None = None  # an extra model to register (and activate when none is)

    # -- annotations and the active-learning queue ----------------------------------------
    # a claimed queue item goes back to the queue when its lease runs out (renew to keep it)
    queue_lease_seconds: int = Field(30 * 60, ge=5, le=7 * 24 * 3600)
    # two annotators of one wafer whose mean per-class IoU is below this are flagged for review
    agreement_threshold: float = Field(0.8, ge=0.0, le=1.0)
    # an active-learning query scores at most this many unlabelled wafers (newest first)
    al_max_candidates: int = Field(20_000, ge=1)
    al_max_batch: int = Field(1000, ge=1)

    # -- training jobs (docs/training.md) ------------------------------------------------
    training_backend: Literal["local", "kubernetes"] = "local"
    # the URL a training worker uses to reach this server (``serve`` fills it in for the local
    # backend from its host and port; on Kubernetes: the server's Service URL)
    training_server_url: str | None = None
    training_max_concurrent: int = Field(1, ge=1, le=256)  # jobs running at once (local backend)
    training_poll_seconds: float = Field(2.0, gt=0, le=300)  # how often jobs are dispatched and checked
    # a running job whose worker has not been heard of for this long is failed (never "running" forever)
    training_heartbeat_timeout_seconds: int = Field(30 * 60, ge=10)
    training_cancel_grace_seconds: float = Field(10.0, ge=0)  # SIGTERM, then SIGKILL after this
    # local backend: the worker command; default ``<this python> -m waferdesk.worker``
    training_worker_command: list[str] | None = None
    # Kubernetes backend (the official client; in-cluster config or a kubeconfig)
    k8s_config: Literal["auto", "incluster", "kubeconfig"] = "auto"
    k8s_kubeconfig: Path | None = None
    k8s_context: str | None = None
    k8s_namespace: str = "waferdesk"
    k8s_image: str = Field(default_factory=lambda: f"waferdesk-trainer:{_version()}")  # same version as the server
    k8s_image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    k8s_service_account: str | None = None
    k8s_gpus: int = Field(1, ge=0, le=64)  # nvidia.com/gpu limit per job (0: a CPU job)
    k8s_gpu_resource: str = "nvidia.com/gpu"
    k8s_cpu: str = "4"  # request
    k8s_memory: str = "16Gi"  # request and limit
    k8s_node_selector: dict[str, str] = Field(default_factory=dict)
    k8s_tolerations: list[dict[str, Any]] = Field(
        default_factory=lambda: [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    )
    k8s_backoff_limit: int = Field(0, ge=0, le=20)  # pod retries; training failures are rarely transient
    k8s_ttl_seconds_after_finished: int = Field(24 * 3600, ge=0)
    k8s_active_deadline_seconds: int | None = Field(None, ge=60)
    # a queued job whose pod shows no sign of ever starting (an image that cannot be pulled, no node
    # for it, or no pod) this long after its Job was created is failed and its Job deleted (0: never)
    k8s_start_timeout_seconds: int = Field(30 * 60, ge=0)
    k8s_image_pull_secrets: list[str] = Field(default_factory=list)

    # -- operation -----------------------------------------------------------------------
    auto_migrate: bool = True
    docs_enabled: bool = True
    cors_origins: list[str] = Field(default_factory=list)
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _check_secret(self) -> Settings:
        if self.environment == "development":
            return self
        value = self.jwt_secret.get_secret_value() if self.jwt_secret else ""
        if value.strip().lower() in KNOWN_DEFAULT_SECRETS:
            raise ValueError(
                f"WAFERDESK_JWT_SECRET is missing or a well-known default; in {self.environment} set it to at "
                f"least {MIN_SECRET_LENGTH} random characters, e.g. "
                "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        if len(value) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"WAFERDESK_JWT_SECRET is {len(value)} characters; in {self.environment} it must be at least "
                f"{MIN_SECRET_LENGTH} (python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        return self

    # -- derived -------------------------------------------------------------------------
    @property
    def is_development(self) -> bool:
        return self.environment == "development"

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL with the driver SQLAlchemy needs (psycopg 3 for Postgres)."""
        return normalize_database_url(self.database_url or f"sqlite:///{self.data_dir / 'waferdesk.db'}")

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def training_dir(self) -> Path:
        """Work folders of local training jobs (worker output, datasets, run directories)."""
        return self.data_dir / "training"

    def secret(self) -> str:
        """The JWT signing secret; in development a generated one kept in the data folder."""
        if self.jwt_secret is not None and self.jwt_secret.get_secret_value():
            return self.jwt_secret.get_secret_value()
        if not self.is_development:  # the validator already refused this; keep the guard
            raise ConfigError("WAFERDESK_JWT_SECRET is required outside development")
        path = self.data_dir / SECRET_FILE
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48), encoding="utf-8")
            path.chmod(0o600)
        return path.read_text(encoding="utf-8").strip()


def normalize_database_url(url: str) -> str:
    """``postgres://`` / ``postgresql://`` -> ``postgresql+psycopg://`` (psycopg 3 is the driver we ship)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, ``.env`` and ``overrides``; a :class:`ConfigError` names what is wrong."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid server settings: {problems}") from None
