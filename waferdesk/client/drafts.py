"""Local autosave of label drafts: nothing drawn is lost when the app is killed.

One SQLite file (WAL journal, ``synchronous=FULL``) keyed by the wafer's content hash, so a
draft finds its wafer again whichever file or format it is reopened from. Each save is one
transaction: a crash leaves the previous draft or the new one, never half of either. Labels
are stored zlib-compressed (a 300x300 draft is a few kB). Later the outbox of server
submissions lives beside it.
"""

from __future__ import annotations

import sqlite3
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import paths

SCHEMA = """
CREATE TABLE IF NOT EXISTS drafts (
    key     TEXT PRIMARY KEY,   -- WaferMap.content_hash()
    name    TEXT NOT NULL,      -- lot/wafer, for people looking at the file
    source  TEXT NOT NULL,      -- file the wafer was opened from
    rows    INTEGER NOT NULL,
    cols    INTEGER NOT NULL,
    labels  BLOB NOT NULL,      -- zlib of the uint8 label grid, C order
    status  TEXT NOT NULL,      -- 'draft' (unsaved edits) or 'saved'
    updated REAL NOT NULL       -- unix time
)
"""

DRAFT, SAVED = "draft", "saved"


@dataclass(frozen=True)
class Draft:
    key: str
    name: str
    source: str
    labels: np.ndarray
    status: str
    updated: float


class DraftStore:
    """The drafts database; open one per process (it is used from the GUI thread only)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else paths.drafts_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def save(self, key: str, labels: np.ndarray, name: str = "", source: str = "", status: str = DRAFT) -> None:
        grid = np.ascontiguousarray(labels, dtype=np.uint8)
        rows, cols = grid.shape
        blob = zlib.compress(grid.tobytes(), 1)
        with self._db:
            self._db.execute(
                "INSERT INTO drafts (key, name, source, rows, cols, labels, status, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET name=excluded.name, "
                "source=excluded.source, rows=excluded.rows, cols=excluded.cols, labels=excluded.labels, "
                "status=excluded.status, updated=excluded.updated",
                (key, name, source, rows, cols, blob, status, time.time()),
            )

    def set_status(self, key: str, status: str) -> None:
        with self._db:
            self._db.execute("UPDATE drafts SET status=?, updated=? WHERE key=?", (status, time.time(), key))

    def load(self, key: str) -> Draft | None:
        """The draft of one wafer, or None (also for a damaged row, which is then dropped)."""
        row = self._db.execute(
            "SELECT key, name, source, rows, cols, labels, status, updated FROM drafts WHERE key=?", (key,)
        ).fetchone()
        if row is None:
            return None
        k, name, source, rows, cols, blob, status, updated = row
        try:
            data = zlib.decompress(blob)
            labels = np.frombuffer(data, dtype=np.uint8).reshape(rows, cols).copy()
        except (zlib.error, ValueError):
            self.delete(k)
            return None
        return Draft(k, name, source, labels, status, updated)

    def delete(self, key: str) -> None:
        with self._db:
            self._db.execute("DELETE FROM drafts WHERE key=?", (key,))

    def keys(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT key FROM drafts")}
