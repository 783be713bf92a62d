"""Query and body dates: an ISO date (``2026-03-01``: the whole day) or datetime; naive means UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from ..core.errors import UnprocessableError


def parse_when(value: str | None, field: str, end: bool = False) -> datetime | None:
    """``end=True``: a bare date means the end of that day (an exclusive upper bound)."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            if end and day == date.max:  # the end of the last day there is: no upper bound
                return datetime.max.replace(tzinfo=UTC)
            return datetime.combine(day + timedelta(days=1 if end else 0), time.min, UTC)
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise UnprocessableError(
            f"{field}: {value!r} is not an ISO date (2026-03-01) or datetime (2026-03-01T12:00:00Z)",
            code="invalid_input",
        ) from None
    dt = dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    try:
        dt.astimezone(UTC)  # the database compares in UTC: the moment must exist there
    except OverflowError:
        raise UnprocessableError(
            f"{field}: {value!r} is outside the dates the server handles (years 1 to 9999 in UTC)",
            code="invalid_input",
        ) from None
    return dt
