"""The one error shape, for every 4xx and 5xx the server answers::

    {"error": {"code": "...", "message": "...", "details": ..., "request_id": "..."}}

Handlers cover our :class:`~server.core.errors.ApiError`, FastAPI's request validation
(422, with the fields that failed in ``details``), Starlette's HTTP errors (404 for an
unknown path, 405...) and values the database refuses (422: text with a NUL character, which
Postgres cannot store or compare, or a number past its integer columns). Anything unexpected
is caught by the request middleware, logged with its stack trace, and answered as a 500 in
this shape without one.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..core.errors import ApiError
from ..core.logging import request_id_var

log = logging.getLogger(__name__)


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details, "request_id": request_id_var.get()}}


def error_response(status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None):
    return JSONResponse(jsonable_encoder(error_body(code, message, details)), status_code=status, headers=headers)


def _status_code_name(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "http_error"


async def api_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    if exc.status >= 500:
        log.warning("%s %s -> %s %s: %s", request.method, request.url.path, exc.status, exc.code, exc.message)
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        where, rest = parts[0], parts[1:]
        return f"{where} field {'.'.join(rest) or '(whole)'}"
    return ".".join(parts)


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"field": _field(e.get("loc", ())), "message": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    first = details[0] if details else {"field": "request", "message": "invalid"}
    more = f" (and {len(details) - 1} more problem(s))" if len(details) > 1 else ""
    return error_response(422, "invalid_input", f"{first['field']}: {first['message']}{more}", details)


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else _status_code_name(exc.status_code)
    if exc.status_code == 404 and message == "Not Found":
        message = f"no such endpoint: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} not allowed on {request.url.path}"
    return error_response(exc.status_code, _status_code_name(exc.status_code), message, None, exc.headers)


def _refused_values(params: Any) -> list[str]:
    """The request's values among a statement's parameters that a database cannot take."""
    found: list[str] = []
    stack = [params]
    while stack and len(found) < 5:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
        elif hasattr(value, "obj"):  # psycopg's Json / Jsonb wrapper of a JSON column's value
            stack.append(value.obj)
        elif isinstance(value, str) and "\x00" in value:
            found.append(f"text {value[:80]!r} contains a NUL (0x00) character")
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**31 - 1:
            found.append(f"number {value} is out of range")
    return list(dict.fromkeys(found))


async def data_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """A value the database refuses (Postgres: NUL in text, a number past its integer type) is the client's."""
    assert isinstance(exc, DataError)
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else "invalid value"
    values = _refused_values(exc.params)
    what = "; ".join(values) if values else "a value in the request"
    log.warning("%s %s -> 422: the database refused %s (%s)", request.method, request.url.path, what, reason)
    return error_response(422, "invalid_input", f"{what}: the database refuses it ({reason})")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(DataError, data_error_handler)
