"""Engines and sessions. No module-level engine: the app factory builds one per app.

SQLite gets foreign keys, WAL and a busy timeout (several request threads share the file),
and the driver's own transaction handling is switched off in favour of SQLAlchemy's so that
SAVEPOINTs and ``BEGIN`` behave as on Postgres.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` (already normalized: ``postgresql+psycopg://`` or ``sqlite:///``)."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        _sqlite_pragmas(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (see below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session committed on success, rolled back on error (for work outside a request)."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def begin_write(session: Session, lock_key: int | None = None) -> None:
    """Start a transaction that will write, so its reads and writes see one state.

    Whatever the session read before (e.g. the caller's user row) is committed first. On
    SQLite the new transaction then takes the database's write lock at once (a no-op
    UPDATE): a transaction that read first and wrote later could otherwise fail with
    "database is locked" when another writer committed in between (WAL snapshots cannot be
    upgraded), while one that holds the lock from its start simply waits its turn. On
    Postgres, ``lock_key`` takes a transaction-level advisory lock (serializing e.g. the
    numbering of active-learning rounds); row-level races are handled by the statements.
    """
    session.commit()
    conn = session.connection()
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = version_num WHERE 1 = 0")
    elif lock_key is not None:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key})
