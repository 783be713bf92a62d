"""Shapes shared by every resource: the error body and pagination."""

from __future__ import annotations

from typing import Annotated, Any

from annotated_types import Interval
from pydantic import BaseModel

# Ids, round numbers and offsets are 32-bit integer columns on Postgres: a bigger number sent by
# a client must be a 422 naming the field, not a database error (500) when it reaches a query.
DB_INT_MAX = 2**31 - 1
DbId = Annotated[int, Interval(ge=1, le=DB_INT_MAX)]
DbOffset = Annotated[int, Interval(ge=0, le=DB_INT_MAX)]


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None
    request_id: str


class ErrorBody(BaseModel):
    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting the error shape for these statuses."""
    return {s: {"model": ErrorBody} for s in statuses}
