"""Failed-login throttling per user name and per client address, stored in the database.

After ``login_max_failures`` failures within ``login_window_seconds`` a key is locked for
``login_lock_seconds``; while any of the attempt's keys is locked the attempt is refused with
429 and ``Retry-After`` before the password is even checked, so guessing stops paying. The
user-name key is counted for unknown names too (no hint whether an account exists). Rows
live in the database so every worker process sees the same counts.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..core.config import Settings
from ..core.errors import TooManyRequestsError
from ..db.base import utcnow
from ..db.models import LoginThrottle


def throttle_keys(username: str, client_ip: str | None) -> list[str]:
    keys = [f"user:{username.strip().lower()[:190]}"]
    if client_ip:
        keys.append(f"ip:{client_ip[:190]}")
    return keys


class LoginThrottler:
    def __init__(self, settings: Settings) -> None:
        self.max_failures = settings.login_max_failures
        self.window = timedelta(seconds=settings.login_window_seconds)
        self.lock = timedelta(seconds=settings.login_lock_seconds)

    def check(self, session: Session, keys: list[str], now: datetime | None = None) -> None:
        """Raise 429 when any key is locked."""
        now = now or utcnow()
        for key in keys:
            row = session.get(LoginThrottle, key)
            if row is not None and row.locked_until is not None and row.locked_until > now:
                wait = math.ceil((row.locked_until - now).total_seconds())
                what = "this account" if key.startswith("user:") else "this address"
                raise TooManyRequestsError(
                    f"too many failed logins for {what}; try again in {wait} s",
                    code="login_locked",
                    details={"retry_after_seconds": wait},
                    headers={"Retry-After": str(wait)},
                )

    def record_failure(self, session: Session, keys: list[str], now: datetime | None = None) -> None:
        now = now or utcnow()
        for key in keys:
            row = session.get(LoginThrottle, key)
            if row is None:
                row = LoginThrottle(key=key, failures=0, window_start=now)
                session.add(row)
                try:
                    with session.begin_nested():
                        session.flush()
                except IntegrityError:  # another worker created it meanwhile
                    row = session.get(LoginThrottle, key, populate_existing=True)
                    assert row is not None
            if now - row.window_start > self.window:
                row.failures, row.window_start = 0, now
            row.failures += 1
            if row.failures >= self.max_failures:
                row.locked_until = now + self.lock
                row.failures, row.window_start = 0, now
        session.commit()

    def record_success(self, session: Session, username: str) -> None:
        """Clear the account's counter (not the address's: one good login must not reset a sweep)."""
        row = session.get(LoginThrottle, throttle_keys(username, None)[0])
        if row is not None:
            session.delete(row)
