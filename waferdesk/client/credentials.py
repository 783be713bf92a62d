"""Where the desktop keeps the refresh token of a sign-in: the OS keyring, or a private file.

The OS keyring (Windows Credential Manager, macOS Keychain, Secret Service on Linux) is the
right place. A headless Linux box often has none (``keyring`` raises ``NoKeyringError``) and
a locked or broken one raises other errors: then the token goes to ``credentials.json`` in
the per-user config folder, created with mode 0600, and :attr:`TokenStore.notice` says so in
one line for the status bar. Signing in never fails because of where the token is kept.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from .paths import config_dir

log = logging.getLogger(__name__)

SERVICE = "WaferDesk"
FALLBACK_NAME = "credentials.json"


def _account(server_url: str, username: str) -> str:
    return f"{username}@{server_url.rstrip('/')}"


class TokenStore:
    """``save`` / ``load`` / ``delete`` a refresh token per (server, user)."""

    def __init__(self, fallback_path: Path | None = None, use_keyring: bool = True) -> None:
        self.fallback_path = fallback_path
        self.use_keyring = use_keyring
        self.notice: str | None = None  # set once the file fallback is in use
        self.where = "OS keyring"

    # -- the keyring, guarded -----------------------------------------------------------------
    def _keyring(self, op: str, *args: str) -> tuple[bool, str | None]:
        """(worked, value); any keyring error switches to the file."""
        if not self.use_keyring:
            return False, None
        try:
            import keyring

            fn = {"set": keyring.set_password, "get": keyring.get_password, "delete": keyring.delete_password}[op]
            return True, fn(SERVICE, *args)
        except Exception as exc:  # NoKeyringError, a locked keyring, D-Bus errors, a missing package...
            if op == "delete" and type(exc).__name__ == "PasswordDeleteError":
                return True, None
            self._fall_back(exc)
            return False, None

    def _fall_back(self, exc: BaseException) -> None:
        if self.notice is None:
            first = str(exc).split(". ")[0].splitlines()[0] if str(exc) else ""
            why = type(exc).__name__ + (f": {first[:60]}" if first else "")
            self.notice = f"No OS keyring ({why}): sign-in kept in {self._path()} (only you can read it)"
            log.warning(self.notice)
        self.where = str(self._path())

    # -- the file -----------------------------------------------------------------------------
    def _path(self) -> Path:
        return self.fallback_path or config_dir() / FALLBACK_NAME

    def _read_file(self) -> dict[str, str]:
        try:
            data = json.loads(self._path().read_text(encoding="utf-8"))
            return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _write_file(self, data: dict[str, str]) -> None:
        path = self._path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.chmod(tmp, 0o600)  # the umask may have narrowed it further, never widened it
        os.replace(tmp, path)

    # -- API ----------------------------------------------------------------------------------
    def save(self, server_url: str, username: str, token: str) -> None:
        account = _account(server_url, username)
        ok, _ = self._keyring("set", account, token)
        if not ok:
            data = self._read_file()
            data[account] = token
            self._write_file(data)

    def load(self, server_url: str, username: str) -> str | None:
        account = _account(server_url, username)
        ok, value = self._keyring("get", account)
        if ok and value:
            return value
        return self._read_file().get(account)

    def delete(self, server_url: str, username: str) -> None:
        account = _account(server_url, username)
        self._keyring("delete", account)
        data = self._read_file()
        if data.pop(account, None) is not None:
            self._write_file(data)


__all__ = ["TokenStore"]
