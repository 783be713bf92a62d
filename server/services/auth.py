"""Users, passwords and token sessions: what the auth routes and the CLI do.

A login opens an :class:`AuthSession` and returns an access token (minutes) and a refresh
token (days). ``refresh`` rotates: the presented refresh token is spent and a new pair issued
in the same session; presenting a spent one again means it leaked, so the whole session is
revoked and its access tokens stop working at once. Logout revokes the session.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from functools import cached_property

from argon2 import PasswordHasher
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ..core.config import Settings
from ..core.emails import email_problem
from ..core.errors import ConflictError, NotAuthenticatedError, NotFoundError, UnprocessableError
from ..core.permissions import Role
from ..core.security import TokenCodec, TokenError, password_hasher, verify_password
from ..db.base import utcnow
from ..db.models import AuthSession, RefreshToken, User
from .login_throttle import LoginThrottler, throttle_keys

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.@-]{2,63}$")
MAX_PASSWORD_LENGTH = 1024  # argon2 takes any length; this stops megabyte "passwords"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int
    token_type: str = "bearer"


def normalize_username(username: str) -> str:
    name = username.strip().lower()
    if not USERNAME_RE.match(name):
        raise UnprocessableError(
            f"username {username!r}: 3-64 characters, letters, digits and _ . @ - , starting with a letter or digit",
            code="invalid_username",
        )
    return name


class AuthService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.hasher: PasswordHasher = password_hasher(settings)
        self.tokens = TokenCodec(settings)
        self.throttle = LoginThrottler(settings)

    @cached_property
    def _dummy_hash(self) -> str:
        return self.hasher.hash("no such user; verified anyway so both cases cost the same")

    # -- users -------------------------------------------------------------------------------
    def check_password(self, password: str) -> None:
        n = self.settings.password_min_length
        if len(password) < n:
            raise UnprocessableError(f"password: at least {n} characters, got {len(password)}", code="weak_password")
        if len(password) > MAX_PASSWORD_LENGTH:
            raise UnprocessableError(f"password: at most {MAX_PASSWORD_LENGTH} characters", code="weak_password")

    def create_user(
        self, session: Session, username: str, password: str, role: Role | str = Role.VIEWER, email: str | None = None
    ) -> User:
        name = normalize_username(username)
        if email is not None and (problem := email_problem(email)) is not None:
            raise UnprocessableError(f"email: {problem}", code="invalid_email", details={"field": "email"})
        self.check_password(password)
        role = Role(role)
        if session.scalar(select(User.id).where(User.username == name)) is not None:
            raise ConflictError(f"username {name!r} is taken", code="username_taken")
        user = User(username=name, email=email, password_hash=self.hasher.hash(password), role=role.value)
        session.add(user)
        session.flush()
        return user

    def set_password(self, session: Session, user: User, password: str) -> None:
        self.check_password(password)
        user.password_hash = self.hasher.hash(password)
        self.revoke_all(session, user.id, "password_changed")

    def get_user(self, session: Session, user_id: int) -> User:
        user = session.get(User, user_id)
        if user is None:
            raise NotFoundError(f"user {user_id} not found", code="user_not_found")
        return user

    def count_admins(self, session: Session) -> int:
        q = select(func.count()).select_from(User).where(User.role == Role.ADMIN.value, User.is_active.is_(True))
        return int(session.scalar(q) or 0)

    # -- login / tokens ------------------------------------------------------------------------
    def authenticate(self, session: Session, username: str, password: str, client_ip: str | None) -> User:
        """The user for these credentials, or 401 (wrong) / 429 (locked after repeated failures)."""
        keys = throttle_keys(username, client_ip)
        self.throttle.check(session, keys)
        name = username.strip().lower()
        user = session.scalar(select(User).where(User.username == name))
        ok = verify_password(
            self.hasher, user.password_hash if user else self._dummy_hash, password[:MAX_PASSWORD_LENGTH]
        )
        if user is None or not ok or not user.is_active:
            self.throttle.record_failure(session, keys)
            raise NotAuthenticatedError(
                "wrong username or password (or the account is disabled)", code="bad_credentials"
            )
        if self.hasher.check_needs_rehash(user.password_hash):
            user.password_hash = self.hasher.hash(password)
        self.throttle.record_success(session, name)
        user.last_login_at = utcnow()
        return user

    def open_session(
        self, session: Session, user: User, client_ip: str | None = None, user_agent: str | None = None
    ) -> TokenPair:
        auth = AuthSession(
            id=uuid.uuid4().hex, user_id=user.id, client_ip=client_ip, user_agent=(user_agent or "")[:255] or None
        )
        session.add(auth)
        session.flush()
        return self._issue(session, user.id, auth.id)

    def _issue(self, session: Session, user_id: int, session_id: str) -> TokenPair:
        access, _ = self.tokens.encode(user_id, session_id, "access")
        refresh, claims = self.tokens.encode(user_id, session_id, "refresh")
        session.add(RefreshToken(jti=claims.jti, session_id=session_id, expires_at=claims.expires_at))
        return TokenPair(
            access_token=access,
            refresh_token=refresh,
            expires_in=int(self.tokens.access_ttl.total_seconds()),
            refresh_expires_in=int(self.tokens.refresh_ttl.total_seconds()),
        )

    def refresh(self, session: Session, refresh_token: str) -> TokenPair:
        try:
            claims = self.tokens.decode(refresh_token, "refresh")
        except TokenError as exc:
            raise NotAuthenticatedError(str(exc), code=exc.code) from None
        row = session.get(RefreshToken, claims.jti)
        auth = session.get(AuthSession, claims.session_id)
        if row is None or auth is None or row.session_id != auth.id or auth.user_id != claims.user_id:
            raise NotAuthenticatedError("unknown refresh token", code="invalid_token")
        if auth.revoked_at is not None:
            raise NotAuthenticatedError("this session was revoked; log in again", code="session_revoked")
        if row.used_at is not None:
            # a spent token presented again: whoever holds it is not the rightful client (or both
            # are, and we cannot tell which): end the session for both
            self.revoke_session(session, auth.id, "refresh_token_reuse")
            session.commit()
            raise NotAuthenticatedError(
                "refresh token already used; the session is revoked as a precaution, log in again",
                code="refresh_token_reused",
            )
        user = session.get(User, claims.user_id)
        if user is None or not user.is_active:
            raise NotAuthenticatedError("the account is disabled", code="account_disabled")
        # spend it atomically: of two concurrent refreshes with the same token only one wins
        spent = session.execute(
            update(RefreshToken)
            .where(RefreshToken.jti == row.jti, RefreshToken.used_at.is_(None))
            .values(used_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if spent.rowcount != 1:
            self.revoke_session(session, auth.id, "refresh_token_reuse")
            session.commit()
            raise NotAuthenticatedError(
                "refresh token already used; the session is revoked", code="refresh_token_reused"
            )
        return self._issue(session, user.id, auth.id)

    def revoke_session(self, session: Session, session_id: str, reason: str) -> None:
        session.execute(
            update(AuthSession)
            .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=utcnow(), revoked_reason=reason)
            .execution_options(synchronize_session=False)
        )

    def revoke_all(self, session: Session, user_id: int, reason: str) -> None:
        session.execute(
            update(AuthSession)
            .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=utcnow(), revoked_reason=reason)
            .execution_options(synchronize_session=False)
        )

    def user_for_access_token(self, session: Session, token: str) -> tuple[User, str]:
        """The active user and session id behind an access token, or 401 saying why."""
        try:
            claims = self.tokens.decode(token, "access")
        except TokenError as exc:
            raise NotAuthenticatedError(str(exc), code=exc.code) from None
        row = session.execute(
            select(User, AuthSession.revoked_at)
            .join(AuthSession, AuthSession.user_id == User.id)
            .where(User.id == claims.user_id, AuthSession.id == claims.session_id)
        ).first()
        if row is None:
            raise NotAuthenticatedError("token refers to an unknown user or session", code="invalid_token")
        user, revoked_at = row
        if revoked_at is not None:
            raise NotAuthenticatedError("this session was revoked (logged out); log in again", code="session_revoked")
        if not user.is_active:
            raise NotAuthenticatedError("the account is disabled", code="account_disabled")
        return user, claims.session_id
