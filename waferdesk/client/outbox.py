"""The offline-first outbox: every submission is written here first, then sent when the
server answers, exactly once.

One SQLite file beside the drafts (``outbox.sqlite3`` in the per-user data folder; a path
of its own in tests). An entry carries a client-generated key (uuid4) that the server keeps
with the annotation it creates (``client_key``): a retry after a lost answer returns that
annotation instead of making a second one. An entry that edits an annotation the user already
had (a rejected one, say) names the version it is based on; when that version moved on, the
server's current annotation is fetched: equal labels mean the earlier attempt did land
(synced), different ones are a **conflict** the user settles (keep mine = re-base on the
current version and send again; take theirs = drop mine). Nothing is silently overwritten.

States: ``pending`` (not sent yet, or the server was unreachable: retried), ``synced``,
``failed`` (the server refused it: the message says why; the user may retry), ``conflict``,
``discarded`` (the user took theirs, or the annotation an earlier attempt made has been
deleted on the server since: the server answers a replay of its key with 410
``annotation_deleted``, the entry is never sent again, the message says so). Used from the
GUI thread and one sync thread: every statement runs under a lock on one connection.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import paths
from .api import ServerClient, ServerError, VersionConflictError, labels_from_payload

PENDING, SYNCED, FAILED, CONFLICT, DISCARDED = "pending", "synced", "failed", "conflict", "discarded"
STATES = (PENDING, SYNCED, FAILED, CONFLICT, DISCARDED)
DELETED_ON_SERVER = "annotation_deleted"  # the server's code for a replay of a deleted annotation
DELETED_MESSAGE = "deleted on the server"  # how the message of such a discarded entry begins

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    key           TEXT NOT NULL UNIQUE,  -- client key (idempotency), sent as client_key
    server        TEXT NOT NULL,         -- base URL
    username      TEXT NOT NULL,
    wafer_id      INTEGER NOT NULL,      -- the server's wafer id
    title         TEXT NOT NULL,         -- lot / wafer, for people
    rows          INTEGER NOT NULL,
    cols          INTEGER NOT NULL,
    labels        BLOB NOT NULL,         -- zlib of the uint8 grid, C order
    source        TEXT NOT NULL,
    prediction_id INTEGER,
    time_spent_s  REAL NOT NULL,
    base_id       INTEGER,               -- annotation edited (None: create a new one)
    base_version  INTEGER,
    state         TEXT NOT NULL,
    message       TEXT NOT NULL DEFAULT '',
    annotation_id INTEGER,
    attempts      INTEGER NOT NULL DEFAULT 0,
    theirs        TEXT,                  -- JSON of the server's annotation in a conflict
    created       REAL NOT NULL,
    updated       REAL NOT NULL
)
"""


def outbox_path() -> Path:
    return paths.data_dir() / "outbox.sqlite3"


@dataclass(frozen=True)
class Entry:
    id: int
    key: str
    server: str
    username: str
    wafer_id: int
    title: str
    labels: np.ndarray
    source: str
    prediction_id: int | None
    time_spent_s: float
    base_id: int | None
    base_version: int | None
    state: str
    message: str
    annotation_id: int | None
    attempts: int
    theirs: dict[str, Any] | None
    created: float
    updated: float

    @property
    def deleted_on_server(self) -> bool:
        """Discarded because its annotation was deleted on the server (not a conflict the user
        settled by taking theirs)."""
        return self.state == DISCARDED and self.message.startswith(DELETED_MESSAGE)

    def counts(self) -> dict[str, int]:
        """Labelled dies per class name (the conflict dialog's "mine")."""
        from ..core.taxonomy import default_taxonomy

        names = default_taxonomy().names
        values, n = np.unique(self.labels[self.labels != 255], return_counts=True)
        return {names[int(v)]: int(c) for v, c in zip(values, n, strict=True) if int(v) < len(names)}


class Outbox:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else outbox_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _exec(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- writing --------------------------------------------------------------------------------
    def add(
        self,
        server: str,
        username: str,
        wafer_id: int,
        title: str,
        labels: np.ndarray,
        *,
        source: str = "manual",
        prediction_id: int | None = None,
        time_spent_s: float = 0.0,
        base_id: int | None = None,
        base_version: int | None = None,
    ) -> Entry:
        """Queue a submission (one transaction); it is sent by :meth:`sync`."""
        grid = np.ascontiguousarray(labels, dtype=np.uint8)
        key = f"wd-{uuid.uuid4().hex}"
        now = time.time()
        server = server.rstrip("/")
        values = (
            key,
            server,
            username,
            int(wafer_id),
            title,
            grid.shape[0],
            grid.shape[1],
            zlib.compress(grid.tobytes(), 1),  # level 1: a mask shrinks just as well, 10x faster
            source,
            prediction_id,
            float(time_spent_s),
            base_id,
            base_version,
            PENDING,
            now,
            now,
        )
        self._exec(
            "INSERT INTO outbox (key, server, username, wafer_id, title, rows, cols, labels, source,"
            " prediction_id, time_spent_s, base_id, base_version, state, created, updated)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            values,
        )
        entry = self.get(key)  # read back: the entry is exactly what a later get() returns
        assert entry is not None
        return entry

    def _set(self, key: str, **values: Any) -> None:
        values["updated"] = time.time()
        cols = ", ".join(f"{k} = ?" for k in values)
        self._exec(f"UPDATE outbox SET {cols} WHERE key = ?", (*values.values(), key))

    def retry(self, key: str) -> None:
        """A failed entry goes back to pending (the user asked to send it again)."""
        self._set(key, state=PENDING, message="")

    def keep_mine(self, key: str) -> None:
        """Settle a conflict by re-basing on the server's current version; sent again by sync."""
        e = self.get(key)
        if e is None or e.theirs is None:
            return
        self._set(
            key, state=PENDING, base_id=int(e.theirs["id"]), base_version=int(e.theirs["version"]), message="re-based"
        )

    def take_theirs(self, key: str) -> None:
        self._set(key, state=DISCARDED, message="took the server's version")

    # -- reading --------------------------------------------------------------------------------
    def get(self, key: str) -> Entry | None:
        rows = self._exec("SELECT * FROM outbox WHERE key = ?", (key,))
        return _entry(rows[0]) if rows else None

    def entries(self, state: str | None = None, server: str | None = None) -> list[Entry]:
        sql, args = "SELECT * FROM outbox WHERE 1 = 1", []
        if state is not None:
            sql, args = sql + " AND state = ?", [*args, state]
        if server is not None:
            sql, args = sql + " AND server = ?", [*args, server.rstrip("/")]
        return [_entry(r) for r in self._exec(sql + " ORDER BY id", tuple(args))]

    def latest_for(self, server: str, wafer_id: int) -> Entry | None:
        rows = self._exec(
            "SELECT * FROM outbox WHERE server = ? AND wafer_id = ? ORDER BY id DESC LIMIT 1",
            (server.rstrip("/"), int(wafer_id)),
        )
        return _entry(rows[0]) if rows else None

    def counts(self, server: str | None = None) -> dict[str, int]:
        sql, args = "SELECT state, COUNT(*) FROM outbox", ()
        if server is not None:
            sql, args = sql + " WHERE server = ?", (server.rstrip("/"),)
        out = dict.fromkeys(STATES, 0)
        out.update({s: int(n) for s, n in self._exec(sql + " GROUP BY state", args)})
        return out

    # -- sending --------------------------------------------------------------------------------
    def sync(self, api: ServerClient, username: str, on_entry: Callable[[Entry], None] | None = None) -> dict[str, int]:
        """Send every pending entry of this server and user, oldest first. Stops at the first
        "unreachable" (the rest wait for the next attempt). Returns the counts afterwards."""
        for entry in self.entries(PENDING, api.base_url):
            if entry.username != username:
                continue
            reachable = self.send(api, entry)
            if on_entry is not None:
                got = self.get(entry.key)
                if got is not None:
                    on_entry(got)
            if not reachable:
                break
        return self.counts(api.base_url)

    def send(self, api: ServerClient, entry: Entry) -> bool:
        """Send one entry; False when the server could not be reached (the entry stays pending)."""
        self._set(entry.key, attempts=entry.attempts + 1)
        try:
            if entry.base_id is None:
                ann = self._create(api, entry)
            else:
                ann = self._edit(api, entry)
        except ServerError as exc:
            if exc.status == 0 or exc.status >= 500:
                self._set(entry.key, state=PENDING, message=exc.message)
                return exc.status != 0
            if exc.code == DELETED_ON_SERVER:  # an earlier attempt landed, someone deleted it since
                gone = exc.details.get("annotation_id") if isinstance(exc.details, dict) else None
                self._set(
                    entry.key,
                    state=DISCARDED,
                    annotation_id=gone,
                    message=f"{DELETED_MESSAGE}: annotation {gone if gone is not None else '?'} that this "
                    "submission made was deleted there since; not sent again",
                )
                return True
            self._set(entry.key, state=FAILED, message=str(exc))
            return True
        if ann is not None:
            self._set(entry.key, state=SYNCED, annotation_id=int(ann["id"]), message="", theirs=None)
        return True

    def _create(self, api: ServerClient, e: Entry) -> dict[str, Any] | None:
        try:
            return api.create_annotation(
                e.wafer_id,
                e.labels,
                source=e.source,
                prediction_id=e.prediction_id,
                time_spent_s=e.time_spent_s,
                submit=True,
                client_key=e.key,
            )
        except ServerError as exc:
            if exc.code != "already_annotated" or not isinstance(exc.details, dict):
                raise
            # this user already has an annotation of the wafer (made elsewhere): edit it, or ask
            theirs = api.get_annotation(int(exc.details["annotation_id"]))
            return self._reconcile(api, e, theirs)

    def _edit(self, api: ServerClient, e: Entry) -> dict[str, Any] | None:
        assert e.base_id is not None and e.base_version is not None
        try:
            ann = api.update_annotation(e.base_id, e.base_version, e.labels, source=e.source, add_time_s=e.time_spent_s)
        except VersionConflictError:
            return self._reconcile(api, e, api.get_annotation(e.base_id))
        return self._finish(api, ann)

    def _reconcile(self, api: ServerClient, e: Entry, theirs: dict[str, Any]) -> dict[str, Any] | None:
        """The server's annotation moved on: the same labels mean an earlier attempt landed."""
        rows, cols = e.labels.shape
        same = np.array_equal(labels_from_payload(theirs["labels"], (rows, cols)), e.labels)
        if same and theirs["status"] in ("submitted", "approved"):
            return theirs
        if same:
            return self._finish(api, theirs)
        self._set(
            e.key,
            state=CONFLICT,
            theirs=json.dumps(theirs),
            message=f"the server's annotation {theirs['id']} is at version {theirs['version']} "
            f"({theirs['status']}, by {theirs.get('annotator') or '?'})",
        )
        return None

    @staticmethod
    def _finish(api: ServerClient, ann: dict[str, Any]) -> dict[str, Any]:
        if ann["status"] in ("draft", "rejected"):
            return api.submit_annotation(int(ann["id"]), int(ann["version"]))
        return ann


def _entry(row: tuple) -> Entry:
    """An outbox row (``SELECT *``, columns in table order) as an :class:`Entry`.

    The table stores the labels as ``rows, cols, blob`` (zlib) where the entry has one array,
    and ``theirs`` as JSON text."""
    head, (rows, cols, blob), tail = row[:6], row[6:9], list(row[9:])
    labels = np.frombuffer(zlib.decompress(blob), dtype=np.uint8).reshape(rows, cols).copy()
    theirs = 9  # tail: source, prediction_id, time_spent_s, base_id, base_version, state, message,
    #               annotation_id, attempts, theirs, created, updated
    tail[theirs] = json.loads(tail[theirs]) if tail[theirs] else None
    return Entry(*head, labels, *tail)


__all__ = ["CONFLICT", "DISCARDED", "FAILED", "PENDING", "STATES", "SYNCED", "Entry", "Outbox", "outbox_path"]
