"""SQLite state: objects as JSON, idempotency records, webhook deliveries and their attempts.

One connection guarded by a re-entrant lock: every operation is a few milliseconds, and a
single writer is what SQLite wants anyway. API handlers run inside `transaction()` so a request
sees and leaves a consistent state; nothing slow (sleeping, HTTP) ever happens under the lock.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .wire import ApiError

IDEMPOTENCY_TTL = 24 * 3600

# Top-level references kept in columns of their own (indexed) as well as in the JSON, so that
# "the refunds of this charge" and "the charges of this PaymentIntent" need no scan. Files from
# before these columns get them, filled in, when they are opened (`_migrate`).
REF_COLUMNS = ("payment_intent", "charge")
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    type TEXT NOT NULL,
    created INTEGER NOT NULL,
    data TEXT NOT NULL,
    payment_intent TEXT,
    charge TEXT
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
CREATE INDEX IF NOT EXISTS deliveries_event ON deliveries (state, event_id);
CREATE TABLE IF NOT EXISTS timers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    due REAL NOT NULL,
    kind TEXT NOT NULL,
    object_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS emulator_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
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
# After `_migrate`: an old file has these columns only once it has run.
_REF_INDEXES = """
CREATE INDEX IF NOT EXISTS objects_payment_intent ON objects (type, payment_intent, seq)
    WHERE payment_intent IS NOT NULL;
CREATE INDEX IF NOT EXISTS objects_charge ON objects (type, charge, seq)
    WHERE charge IS NOT NULL;
"""

# A condition on objects: SQL for a WHERE clause and its arguments.
Cond = tuple[str, tuple[Any, ...]]
MATCH_ALL: Cond = ("1", ())
MATCH_NONE: Cond = ("0", ())


def field_is(field: str, value: Any) -> Cond:
    """A top-level field equals a string (a non-string matches nothing: no stored id is one)."""
    if not isinstance(value, str):
        return MATCH_NONE
    if field in REF_COLUMNS:
        return f"{field} = ?", (value,)
    return "json_extract(data, '$.' || ?) = ?", (field, value)


def field_starts(field: str, prefix: str) -> Cond:
    """A top-level string field starts with `prefix` (no LIKE: `_` and `%` stay literal)."""
    return "substr(json_extract(data, '$.' || ?), 1, ?) = ?", (field, len(prefix), prefix)


def created_is(op: str, bound: int) -> Cond:
    if op not in ("=", ">", ">=", "<", "<="):
        raise ValueError(op)
    return f"created {op} ?", (bound,)


def delivery_success(success: bool) -> Cond:
    """Stripe's ``delivery_success`` on events. False: an event "unsuccessfully delivered to at
    least one of your webhook endpoints", a delivery still pending (to a disabled endpoint too),
    failed for good, or abandoned when its endpoint was deleted. True: an event delivered, every
    one of its deliveries a success. An event sent to no endpoint is in neither."""
    owed = "id IN (SELECT event_id FROM deliveries WHERE state != 'succeeded')"
    if not success:
        return owed, ()
    done = "id IN (SELECT event_id FROM deliveries WHERE state = 'succeeded')"
    return f"({done} AND NOT {owed})", ()


def any_of(conds: list[Cond]) -> Cond:
    if not conds:
        return MATCH_NONE
    return "(" + " OR ".join(c[0] for c in conds) + ")", tuple(a for c in conds for a in c[1])


def _where(kind: str, conds: Iterable[Cond]) -> Cond:
    sql, args = "type = ?", [kind]
    for cond_sql, cond_args in conds:
        sql += f" AND {cond_sql}"
        args.extend(cond_args)
    return sql, tuple(args)


def _refs(obj: dict[str, Any]) -> tuple[str | None, ...]:
    return tuple(obj[name] if isinstance(obj.get(name), str) else None for name in REF_COLUMNS)


def buried(kind: str) -> str:
    """The kind a deleted object of ``kind`` is kept as (see Store.bury)."""
    return f"deleted {kind}"


class Stored(dict):
    """An object as read from the store, with the JSON text it was read from (``text``): a
    read-only request answers with that text's cached rendering (render.rendered)."""

    __slots__ = ("text",)


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
        self._migrate()
        self._db.executescript(_REF_INDEXES)
        # Names this state (a file's, or one run's in memory) for as long as it lasts, a reset
        # included: a shop tells by it whether this is the emulator that kept its endpoint.
        self._db.execute(
            "INSERT OR IGNORE INTO emulator_state (key, value) VALUES ('id', ?)",
            (f"state_{secrets.token_hex(8)}",),
        )
        self.state_id: str = self._db.execute(
            "SELECT value FROM emulator_state WHERE key = 'id'"
        ).fetchone()[0]
        self._depth = 0
        self._last_purge = 0.0
        # What idempotency keys expire by; replaceable so a test can pass 24 hours at once.
        self.clock: Callable[[], float] = time.time
        self.closed = False

    def _migrate(self) -> None:
        """Bring a file written by an older emulator up to SCHEMA_VERSION, keeping its data."""
        if self._db.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
            return
        self._db.execute("BEGIN IMMEDIATE")  # another process may be opening the same file
        try:
            have = {row[1] for row in self._db.execute("PRAGMA table_info(objects)")}
            for name in REF_COLUMNS:
                if name not in have:
                    self._db.execute(f"ALTER TABLE objects ADD COLUMN {name} TEXT")
                    self._db.execute(
                        f"UPDATE objects SET {name} = json_extract(data, '$.{name}')"
                        f" WHERE json_type(data, '$.{name}') = 'text'"
                    )
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        with self.lock:
            if not self.closed:
                self.closed = True
                self._db.close()

    def reset(self) -> None:
        """Forget everything: every row of every table (objects, keys, deliveries, timers), but
        the state's name."""
        with self.transaction():
            tables = self._db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                " AND name != 'emulator_state'"
            ).fetchall()
            for (name,) in tables:
                self._db.execute(f'DELETE FROM "{name}"')
            self._last_purge = 0.0

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

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Hold the state lock without a transaction: what a read-only request needs. Every
        write goes through this connection under the same lock, so what it reads is consistent;
        no BEGIN or COMMIT is paid for a retrieve or a list."""
        with self.lock:
            if self.closed:
                raise RuntimeError("the emulator's store is closed")
            yield

    # --- objects ----------------------------------------------------------------------------

    def save(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Insert or replace by id; a replaced object keeps its place in list order."""
        data = json.dumps(obj)
        refs = _refs(obj)
        with self.transaction():
            self._db.execute(
                "INSERT INTO objects (id, type, created, data, payment_intent, charge)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET data = excluded.data,"
                " payment_intent = excluded.payment_intent, charge = excluded.charge",
                (obj["id"], obj["object"], obj.get("created") or 0, data, *refs),
            )
        return obj

    def get(self, obj_id: str, kind: str | None = None) -> Stored | None:
        with self.lock:
            row = self._db.execute(
                "SELECT type, data FROM objects WHERE id = ?", (obj_id,)
            ).fetchone()
        if row is None or (kind is not None and row["type"] != kind):
            return None
        obj = Stored(json.loads(row["data"]))
        obj.text = row["data"]
        return obj

    def delete(self, obj_id: str) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM objects WHERE id = ?", (obj_id,))

    def bury(self, stub: dict[str, Any]) -> None:
        """Put what Stripe answers for a deleted object (``stub``: its id, its object and
        ``deleted: true``) in the object's place, as a kind of its own (``buried(kind)``): found
        by its id as that kind only, never as what it was (listed, taken as a reference)."""
        with self.transaction():
            self._db.execute(
                "UPDATE objects SET type = ?, data = ?, payment_intent = NULL, charge = NULL"
                " WHERE id = ?",
                (buried(stub["object"]), json.dumps(stub), stub["id"]),
            )

    def all(self, kind: str) -> list[dict[str, Any]]:
        """Every object of a kind, newest first."""
        return self.select(kind)

    def find(
        self, kind: str, field: str, value: str, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The objects of a kind whose top-level `field` is `value`, newest first."""
        return self.select(kind, [field_is(field, value)], limit)

    def select(
        self, kind: str, where: Iterable[Cond] = (), limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The objects of a kind meeting every condition, newest first (at most `limit`)."""
        sql, args = _where(kind, where)
        sql = f"SELECT data FROM objects WHERE {sql} ORDER BY seq DESC"
        if limit is not None:
            sql, args = sql + " LIMIT ?", (*args, limit)
        with self.lock:
            rows = self._db.execute(sql, args).fetchall()
        return [json.loads(r[0]) for r in rows]

    def seq_of(self, obj_id: str, kind: str, where: Iterable[Cond] = ()) -> int | None:
        """An object's place in list order, if it is of `kind` and meets the conditions."""
        sql, args = _where(kind, where)
        with self.lock:
            row = self._db.execute(
                f"SELECT seq FROM objects WHERE id = ? AND {sql}", (obj_id, *args)
            ).fetchone()
        return None if row is None else row[0]

    def page(
        self,
        kind: str,
        where: Iterable[Cond],
        limit: int,
        after: int | None = None,
        before: int | None = None,
        *,
        decode: bool = True,
    ) -> tuple[list[Any], bool]:
        """Up to `limit` objects, newest first, older than seq `after` or newer than `before`;
        and whether more lie beyond them in that direction. Decodes only what it returns, and
        nothing with `decode=False` (their JSON text, for a renderer that caches by it)."""
        conds = list(where)
        if after is not None:
            conds.append(("seq < ?", (after,)))
        if before is not None:
            conds.append(("seq > ?", (before,)))
        sql, args = _where(kind, conds)
        # Walking away from an ending_before cursor means walking up, then turning the page over.
        order = "ASC" if before is not None else "DESC"
        with self.lock:
            rows = self._db.execute(
                f"SELECT data FROM objects WHERE {sql} ORDER BY seq {order} LIMIT ?",
                (*args, limit + 1),
            ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        if before is not None:
            rows.reverse()
        if not decode:
            return [r[0] for r in rows], more
        return [json.loads(r[0]) for r in rows], more

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

    # --- timers: what happens "some time later" ----------------------------------------------

    def add_timer(self, due: float, kind: str, object_id: str) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT INTO timers (due, kind, object_id) VALUES (?, ?, ?)", (due, kind, object_id)
            )

    def due_timers(self, now: float) -> tuple[list[sqlite3.Row], float | None]:
        """The timers due by `now`, oldest first, and when the next one after them is due."""
        with self.lock:
            if self.closed:
                return [], None
            due = self._db.execute(
                "SELECT * FROM timers WHERE due <= ? ORDER BY due, id", (now,)
            ).fetchall()
            nxt = self._db.execute("SELECT min(due) FROM timers WHERE due > ?", (now,)).fetchone()
        return due, nxt[0]

    def drop_timer(self, timer_id: int) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM timers WHERE id = ?", (timer_id,))

    # --- deliveries -------------------------------------------------------------------------

    def add_delivery(self, event_id: str, endpoint_id: str) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT INTO deliveries (event_id, endpoint_id, next_at) VALUES (?, ?, ?)",
                (event_id, endpoint_id, self.clock()),
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
        at: float | None = None,
    ) -> None:
        """Record one attempt (made `at`, on the emulator's clock) and move the delivery on
        (pending again, succeeded or failed), if it is still pending: one abandoned while the
        attempt was under way (its endpoint deleted) was taken off the event's
        ``pending_webhooks`` then, and stays abandoned."""
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
                    self.clock() if at is None else at,
                    status,
                    error,
                ),
            )
            moved = self._db.execute(
                "UPDATE deliveries SET state = ?, attempts = attempts + 1, next_at = ?"
                " WHERE id = ? AND state = 'pending'",
                (state, next_at, delivery["id"]),
            ).rowcount
            if moved and state != "pending":
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
