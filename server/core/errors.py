"""Errors the server raises on purpose, each with an HTTP status and a stable ``code``.

Services raise these; :mod:`server.api.errors` turns every one of them (and FastAPI's own
validation and HTTP errors, and anything unexpected) into the one JSON error shape::

    {"error": {"code": "wafer_not_found", "message": "...", "details": ..., "request_id": "..."}}

``code`` is for programs (stable), ``message`` for people (names the file / field / value).
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details = details
        self.headers = headers or {}


class NotAuthenticatedError(ApiError):
    status = 401
    code = "not_authenticated"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message, code=code, details=details, headers={"WWW-Authenticate": "Bearer"})


class PermissionDeniedError(ApiError):
    status = 403
    code = "permission_denied"


class ForbiddenError(ApiError):
    """Refused for a business reason (not the permission matrix): e.g. registration is off."""

    status = 403
    code = "forbidden"


class NotFoundError(ApiError):
    status = 404
    code = "not_found"


class ConflictError(ApiError):
    status = 409
    code = "conflict"


class GoneError(ApiError):
    """The thing existed and was deleted since (e.g. a replayed create of a deleted annotation)."""

    status = 410
    code = "gone"


class PayloadTooLargeError(ApiError):
    status = 413
    code = "payload_too_large"


class UnprocessableError(ApiError):
    status = 422
    code = "invalid_input"


class TooManyRequestsError(ApiError):
    status = 429
    code = "too_many_requests"


class ServiceUnavailableError(ApiError):
    status = 503
    code = "service_unavailable"
