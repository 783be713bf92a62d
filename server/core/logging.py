"""Logging with the request id on every line.

The request middleware puts the id in a context variable; a log-record factory (installed by
the app factory) copies it onto EVERY record, whichever logger or handler (``-`` outside a
request), so ``%(request_id)s`` works in any format and one id ties a client's error report
to the server's log lines.
"""

from __future__ import annotations

import logging
import logging.config
from contextvars import ContextVar
from typing import Any

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

LOG_FORMAT = "%(asctime)s %(levelname)-7s [%(request_id)s] %(name)s: %(message)s"


class RequestIdFilter(logging.Filter):
    """For handlers of records made before the factory was installed."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


def install_request_id_factory() -> None:
    """Make every log record carry ``request_id`` (idempotent)."""
    current = logging.getLogRecordFactory()
    if getattr(current, "_waferdesk_request_id", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        record.request_id = request_id_var.get()
        return record

    factory._waferdesk_request_id = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """A dictConfig for the server and uvicorn alike (uvicorn's access log is replaced by ours)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"plain": {"format": LOG_FORMAT}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "filters": ["request_id"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["console"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "WARNING"},
            "alembic.runtime.plugins": {"level": "WARNING"},
        },
    }


def configure_logging(level: str = "INFO") -> None:
    install_request_id_factory()
    logging.config.dictConfig(logging_config(level))
