"""SQLite state: objects as JSON, idempotency records, webhook deliveries and their attempts.

One connection guarded by a re-entrant lock: every operation is a few milliseconds, and a
single writer is what SQLite wants anyway. API handlers run inside `transaction()` so a request
sees and leaves a consistent state; nothing slow (sleeping, HTTP) ever happens under the lock.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .wire import ApiError

IDEMPOTENCY_TTL = 24 * 3600

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    type TEXT NOT NULL,
    created INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS objects_type ON objects (type, seq);
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    body BLOB NOT NULL,
    request_id TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state, next_at);
CREATE TABLE IF NOT EXISTS delivery_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    url TEXT NOT NULL,
    attempted_at REAL NOT NULL,
    status INTEGER,
    error TEXT
);
"""


class Store:
    def __init__(self, path: Path | None) -> None:
        self.lock = threading.RLock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        target = str(path) if path is not None else ":memory:"
        self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        if path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._depth = 0
        self._last_purge = 0.0
        # What idempotency keys expire by; replaceable so a test can pass 24 hours at once.
        self.clock: Callable[[], float] = time.time
        self.closed = False

    def close(self) -> None:
        with self.lock:
            if not self.closed:
                self.closed = True
                self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the state lock and commit at the end. Nested uses join the outer transaction."""
        with self.lock:
            if self.closed:
                raise RuntimeError("the emulator's store is closed")
            outer = self._depth == 0
            if outer:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
            except BaseException as exc:
                self._depth -= 1
                if outer:
                    # An ApiError (a decline) is an answer, not a failure: keep what it recorded.
                    self._db.execute("COMMIT" if isinstance(exc, ApiError) else "ROLLBACK")
                raise
            else:
                self._depth -= 1
                if outer:
                    self._db.execute("COMMIT")

    # --- objects ----------------------------------------------------------------------------

    def save(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Insert or replace by id; a replaced object keeps its place in list order."""
        data = json.dumps(obj)
        with self.transaction():
            updated = self._db.execute(
                "UPDATE objects SET data = ? WHERE id = ?", (data, obj["id"])
            ).rowcount
            if not updated:
                self._db.execute(
                    "INSERT INTO objects (id, type, created, data) VALUES (?, ?, ?, ?)",
                    (obj["id"], obj["object"], obj.get("created") or 0, data),
                )
        return obj

    def get(self, obj_id: str, kind: str | None = None) -> dict[str, Any] | None:
        with self.lock:
            row = self._db.execute(
                "SELECT type, data FROM objects WHERE id = ?", (obj_id,)
            ).fetchone()
        if row is None or (kind is not None and row["type"] != kind):
            return None
        return json.loads(row["data"])

    def delete(self, obj_id: str) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM objects WHERE id = ?", (obj_id,))

    def all(
        self, kind: str, where: Callable[[dict[str, Any]], bool] | None = None
    ) -> list[dict[str, Any]]:
        """Every object of a kind, newest first."""
        with self.lock:
            rows = self._db.execute(
                "SELECT data FROM objects WHERE type = ? ORDER BY seq DESC", (kind,)
            ).fetchall()
        objs = [json.loads(r["data"]) for r in rows]
        return [o for o in objs if where is None or where(o)]

    # --- idempotency ------------------------------------------------------------------------

    def idempotent_get(self, scope: str, key: str) -> sqlite3.Row | None:
        with self.transaction():
            now = self.clock()
            if now - self._last_purge > 60:  # expiring keys is housekeeping, not per request
                self._last_purge = now
                self._db.execute(
                    "DELETE FROM idempotency WHERE created < ?", (now - IDEMPOTENCY_TTL,)
                )
            return self._db.execute(
                "SELECT * FROM idempotency WHERE scope = ? AND key = ? AND created >= ?",
                (scope, key, now - IDEMPOTENCY_TTL),
            ).fetchone()

    def idempotent_put(
        self, scope: str, key: str, fingerprint: str, status: int, body: bytes, request_id: str
    ) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?, ?, ?, ?)",
                (scope, key, fingerprint, status, body, request_id, self.clock()),
            )

    # --- deliveries -------------------------------------------------------------------------

    def add_delivery(self, event_id: str, endpoint_id: str) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT INTO deliveries (event_id, endpoint_id, next_at) VALUES (?, ?, ?)",
                (event_id, endpoint_id, time.time()),
            )

    def pending_deliveries(self) -> list[sqlite3.Row]:
        """Pending deliveries, oldest first (so per-endpoint order follows event order)."""
        with self.lock:
            if self.closed:
                return []
            return self._db.execute(
                "SELECT * FROM deliveries WHERE state = 'pending' ORDER BY id"
            ).fetchall()

    def finish_attempt(
        self,
        delivery: sqlite3.Row,
        url: str,
        status: int | None,
        error: str | None,
        state: str,
        next_at: float,
    ) -> None:
        """Record one attempt and move the delivery on (pending again, succeeded or failed)."""
        with self.transaction():
            self._db.execute(
                "INSERT INTO delivery_attempts"
                " (delivery_id, event_id, endpoint_id, url, attempted_at, status, error)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    delivery["id"],
                    delivery["event_id"],
                    delivery["endpoint_id"],
                    url,
                    time.time(),
                    status,
                    error,
                ),
            )
            self._db.execute(
                "UPDATE deliveries SET state = ?, attempts = attempts + 1, next_at = ?"
                " WHERE id = ?",
                (state, next_at, delivery["id"]),
            )
            if state != "pending":
                self._owe_one_less(delivery["event_id"])

    def abandon_deliveries(self, endpoint_id: str) -> None:
        """A deleted endpoint is owed nothing more."""
        with self.transaction():
            rows = self._db.execute(
                "SELECT id, event_id FROM deliveries WHERE endpoint_id = ? AND state = 'pending'",
                (endpoint_id,),
            ).fetchall()
            for row in rows:
                self._db.execute(
                    "UPDATE deliveries SET state = 'abandoned' WHERE id = ?", (row[0],)
                )
                self._owe_one_less(row[1])

    def _owe_one_less(self, event_id: str) -> None:
        event = self.get(event_id, "event")
        if event is not None:
            event["pending_webhooks"] = max(0, event["pending_webhooks"] - 1)
            self.save(event)

    def attempts(self, event_id: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM delivery_attempts"
        args: tuple[Any, ...] = ()
        if event_id:
            sql += " WHERE event_id = ?"
            args = (event_id,)
        with self.lock:
            rows = self._db.execute(sql + " ORDER BY id", args).fetchall()
        return [dict(r) for r in rows]
