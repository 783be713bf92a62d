"""Where the desktop keeps per-user state: settings, drafts, logs, downloaded models.

Always the platform's per-user folders (platformdirs), never beside the program, which may be
read-only or shared. ``WAFERDESK_HOME`` moves all of them under one folder (tests, portable
installs).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "WaferDesk"
ENV_HOME = "WAFERDESK_HOME"


def _home() -> Path | None:
    value = os.environ.get(ENV_HOME)
    return Path(value) if value else None


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """Drafts, the outbox, downloaded models."""
    home = _home()
    return _ensure(home / "data" if home else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)))


def config_dir() -> Path:
    """Settings (window layout, last folders, server URL)."""
    home = _home()
    return _ensure(home / "config" if home else Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)))


def log_dir() -> Path:
    home = _home()
    return _ensure(home / "logs" if home else Path(platformdirs.user_log_dir(APP_NAME, appauthor=False)))


def drafts_path() -> Path:
    return data_dir() / "drafts.sqlite3"
