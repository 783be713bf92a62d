"""Password hashing (argon2id) and JSON Web Tokens (HS256).

Access tokens are short-lived and carry the user id and the login session (``sid``); the
role is NOT trusted from the token but read from the database on every request, so a role
change or a deactivation takes effect at once. Refresh tokens carry a ``jti`` recorded in the
database so each can be used exactly once (rotation) and a reused one revokes its session.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import jwt
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .config import Settings

ALGORITHM = "HS256"
TokenType = Literal["access", "refresh"]


class TokenError(Exception):
    """A token that cannot be accepted; ``code`` is ``token_expired`` or ``invalid_token``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def password_hasher(settings: Settings) -> PasswordHasher:
    return PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
        type=Type.ID,
    )


def verify_password(hasher: PasswordHasher, stored_hash: str, password: str) -> bool:
    try:
        return hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    session_id: str
    type: TokenType
    jti: str
    expires_at: datetime


class TokenCodec:
    """Signs and checks this server's JWTs."""

    def __init__(self, settings: Settings) -> None:
        self._secret = settings.secret()
        self._issuer = settings.jwt_issuer
        self.access_ttl = timedelta(minutes=settings.access_token_minutes)
        self.refresh_ttl = timedelta(days=settings.refresh_token_days)

    def encode(
        self, user_id: int, session_id: str, type_: TokenType, now: datetime | None = None, jti: str | None = None
    ) -> tuple[str, TokenClaims]:
        now = now or datetime.now(UTC)
        exp = now + (self.access_ttl if type_ == "access" else self.refresh_ttl)
        claims = TokenClaims(user_id, session_id, type_, jti or uuid.uuid4().hex, exp)
        payload: dict[str, Any] = {
            "iss": self._issuer,
            "sub": str(user_id),
            "sid": session_id,
            "typ": type_,
            "jti": claims.jti,
            "iat": int(now.timestamp()),
            "exp": int(exp.timestamp()),
        }
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM), claims

    def decode(self, token: str, expected: TokenType) -> TokenClaims:
        try:
            data = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                options={"require": ["exp", "iat", "sub", "sid", "typ", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token_expired", f"the {expected} token has expired") from None
        except jwt.PyJWTError as exc:
            raise TokenError("invalid_token", f"invalid {expected} token ({exc})") from None
        if data.get("typ") != expected:
            raise TokenError("invalid_token", f"expected a {expected} token, got a {data.get('typ')!r} token")
        try:
            user_id = int(data["sub"])
        except (TypeError, ValueError):
            raise TokenError("invalid_token", "token subject is not a user id") from None
        return TokenClaims(
            user_id=user_id,
            session_id=str(data["sid"]),
            type=expected,
            jti=str(data["jti"]),
            expires_at=datetime.fromtimestamp(int(data["exp"]), UTC),
        )
