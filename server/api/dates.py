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
            day = date.fromisoformat(value) + timedelta(days=1 if end else 0)
            return datetime.combine(day, time.min, UTC)
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise UnprocessableError(
            f"{field}: {value!r} is not an ISO date (2026-03-01) or datetime (2026-03-01T12:00:00Z)",
            code="invalid_input",
        ) from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
