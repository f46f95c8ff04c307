"""The orders ledger: one interface over SQLite or PostgreSQL, exactly-once by constraint.

One order per PaymentIntent, every webhook event received by its id, one fulfilment per
PaymentIntent and one receipt (an outbox row) per fulfilment. The unique constraints are the
real guards: fulfilment inserts its row, the order's ``fulfilled_at`` and the pending receipt in
one transaction, so however many threads or processes fulfil the same PaymentIntent, one of them
commits the effect and the others find it done. The receipt itself is sent later, by
``bookpay.mailer``, from that outbox row. Statuses move forward only (``bookpay.ledger.model``).

The SQL here is written once for both databases: ``?`` placeholders, ``ON CONFLICT DO NOTHING``
and row values, which both understand, plus three words each backend spells its own way
(``{seq}`` the insertion order, ``{greatest}``, ``{skip_locked}``). Nothing above this class
knows which backend it has.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bookpay.errors import NotFound, UsageError
from bookpay.ledger import process
from bookpay.ledger.location import Location, locate
from bookpay.ledger.model import (
    STATUS_RANK,
    STATUSES,
    advance,
    intent_fields,
    iso,
    now_iso,
    parse_iso,
    status_of_intent,
)

ORDER_COLUMNS = (
    "id",
    "payment_intent",
    "item_id",
    "amount",
    "currency",
    "email",
    "shipping",
    "status",
    "failure_reason",
    "amount_refunded",
    "charge",
    "note",
    "created",
    "updated",
    "fulfilled_at",
)
EVENT_COLUMNS = (
    "id",
    "type",
    "payment_intent",
    "created",
    "livemode",
    "received_at",
    "processed_at",
    "deliveries",
    "handled",
    "outcome",
)
RECEIPT_COLUMNS = (
    "payment_intent",
    "order_id",
    "recipient",
    "subject",
    "body",
    "status",
    "created",
    "attempts",
    "next_attempt_at",
    "claimed_until",
    "claimed_by",
    "last_error",
    "sent_at",
    "location",
)
_ORDERS = ", ".join(ORDER_COLUMNS)
_EVENTS = ", ".join(EVENT_COLUMNS)
_RECEIPTS = ", ".join(RECEIPT_COLUMNS)
# A claim marked in the row (SQLite) lasts this long even if its holder's liveness cannot be
# checked (a hung process): the last resort, not the way crashed claims come back.
CLAIM_LEASE = 600.0
MAX_INT64 = 2**63 - 1


@dataclass(frozen=True)
class OrderFilter:
    """Which orders: all of them by default. ``since`` is inclusive, ``until`` exclusive."""

    status: str | None = None
    email: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def where(self) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if self.status is not None:
            if self.status not in STATUS_RANK:
                raise UsageError(
                    f"Unknown status {self.status!r}: use one of {', '.join(STATUSES)}."
                )
            clauses.append("status = ?")
            params.append(self.status)
        if self.email:
            clauses.append("lower(email) = lower(?)")
            params.append(self.email)
        if self.since is not None:
            clauses.append("created >= ?")
            params.append(iso(self.since))
        if self.until is not None:
            clauses.append("created < ?")
            params.append(iso(self.until))
        return clauses, params


def open_ledger(settings, *, create: bool = True, migrate: bool = True) -> Ledger:
    """The ledger ``settings`` name (``BOOKPAY_DATABASE_URL``, else SQLite in the data folder).

    With ``create=False`` nothing is created: a missing ledger raises ``LedgerMissing``. With
    ``migrate=False`` an older schema is left as it is (for looking, not for use).
    """
    location = locate(settings.database_url, settings.data_dir)
    return Ledger.at(location, settings.data_dir, create=create, migrate=migrate)


def describe_ledger(settings) -> dict[str, Any]:
    """Where the ledger is, whether it answers and its schema version, changing nothing.

    ``problem`` is set when it cannot be used: a bad URL, an unreachable database, a schema
    from a newer bookpay.
    """
    from bookpay.errors import BookpayError
    from bookpay.ledger.errors import LedgerMissing
    from bookpay.ledger.migrations import SCHEMA_VERSION

    found: dict[str, Any] = {
        "backend": None,
        "where": settings.database_url or str(settings.data_dir),
        "reachable": False,
        "schema_version": None,
        "current_version": SCHEMA_VERSION,
        "problem": None,
    }
    try:
        location = locate(settings.database_url, settings.data_dir)
        found.update(backend=location.kind, where=location.masked)
        with open_ledger(settings, create=False, migrate=False) as ledger:
            found.update(reachable=True, schema_version=ledger.schema_version)
    except LedgerMissing:
        found["reachable"] = True  # reached; there is simply no ledger there yet
    except BookpayError as exc:
        found["problem"] = exc.message
    if (found["schema_version"] or 0) > SCHEMA_VERSION:
        found["problem"] = (
            f"the ledger's schema ({found['schema_version']}) is from a newer bookpay"
        )
    return found


class Ledger:
    """Orders, events, fulfilments and receipts; safe to share between threads."""

    def __init__(self, backend, data_dir: Path) -> None:
        self.backend = backend
        self.data_dir = Path(data_dir)
        self._token = process.new_token()  # names this instance's receipt claims (SQLite)
        self._has_claimed = False  # so that closing a reader takes no write lock

    @classmethod
    def at(
        cls, location: Location, data_dir: Path, *, create: bool = True, migrate: bool = True
    ) -> Ledger:
        if location.kind == "postgresql":
            from bookpay.ledger.postgres import PostgresBackend

            backend = PostgresBackend(location, create=create)
        else:
            from bookpay.ledger.sqlite import SqliteBackend

            backend = SqliteBackend(location, create=create)
        ledger = cls(backend, data_dir)
        try:
            if migrate:
                backend.migrate()
        except BaseException:
            backend.close()
            raise
        return ledger

    @classmethod
    def open(cls, data_dir: Path) -> Ledger:
        """The SQLite ledger in ``data_dir`` (created if missing)."""
        return cls.at(locate(None, data_dir), data_dir)

    @property
    def kind(self) -> str:
        return self.backend.kind

    @property
    def location(self) -> Location:
        return self.backend.location

    @property
    def path(self) -> Path | None:
        """The SQLite file (None on PostgreSQL)."""
        return self.location.path

    @property
    def where(self) -> str:
        """Where the ledger is, for people: a path, or a URL with its password masked."""
        return self.location.masked

    @property
    def schema_version(self) -> int:
        return self.backend.schema_version()

    def transaction(self):
        """A write transaction (``tx.execute(sql, params)``), for maintenance and tests."""
        return self.backend.write()

    def _read(self, sql: str, params: tuple | list = ()) -> list[dict]:
        with self.backend.read() as tx:
            return tx.all(sql, params)

    def _scalar(self, sql: str, params: tuple | list = ()) -> Any:
        with self.backend.read() as tx:
            return tx.tuples(sql, params)[0][0]

    def close(self) -> None:
        # Closing must not fail because the database went away first.
        with contextlib.suppress(Exception):
            self._release_claims()
        self.backend.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Orders -----------------------------------------------------------------------------------

    def find_order(self, order_or_pi: str) -> dict | None:
        column = "payment_intent" if order_or_pi.startswith("pi_") else "id"
        rows = self._read(f"SELECT {_ORDERS} FROM orders WHERE {column} = ?", (order_or_pi,))
        return _order(rows[0]) if rows else None

    def get_order(self, order_or_pi: str) -> dict:
        """The order with this id (ord_...) or PaymentIntent id (pi_...), or NotFound."""
        order = self.find_order(order_or_pi)
        if order is None:
            raise NotFound(
                f"No order {order_or_pi!r} in the ledger at {self.where}.",
                hint="Run `bookpay orders list` to see the orders.",
                code="unknown_order",
            )
        return order

    def find_order_by_charge(self, charge_id: str) -> dict | None:
        rows = self._read(f"SELECT {_ORDERS} FROM orders WHERE charge = ?", (charge_id,))
        return _order(rows[0]) if rows else None

    def list_orders(self, status: str | None = None) -> list[dict]:
        """Every order, newest first, optionally only those with ``status``.

        Loads them all: for anything that may be large, use ``page_orders`` or ``iter_orders``.
        """
        return list(self.iter_orders(OrderFilter(status=status), newest_first=True))

    def page_orders(
        self,
        where: OrderFilter | None = None,
        *,
        limit: int = 50,
        starting_after: str | None = None,
    ) -> list[dict]:
        """One page of orders, newest first, after the order ``starting_after`` (id or pi_)."""
        after = self._cursor_of(starting_after) if starting_after else None
        rows = self._page(where or OrderFilter(), limit, after, newest_first=True)
        return [_order(row) for row in rows]

    def iter_orders(
        self,
        where: OrderFilter | None = None,
        *,
        newest_first: bool = False,
        starting_after: str | None = None,
        batch: int = 1000,
    ) -> Iterator[dict]:
        """Every matching order, a batch at a time: memory stays flat however many there are.

        Each batch is its own short query that resumes after the last row seen (by the same
        index a page uses), so no read transaction stays open while the caller writes them out.
        """
        rows = self.iter_order_rows(
            where, newest_first=newest_first, starting_after=starting_after, batch=batch
        )
        for row in rows:
            yield _order(dict(zip(ORDER_COLUMNS, row, strict=True)))

    def iter_order_rows(
        self,
        where: OrderFilter | None = None,
        *,
        newest_first: bool = False,
        starting_after: str | None = None,
        batch: int = 1000,
    ) -> Iterator[tuple]:
        """As ``iter_orders``, as plain tuples in ``ORDER_COLUMNS`` order with ``shipping`` left
        as its stored JSON text: what an export of millions of rows needs, and no more."""
        where = where or OrderFilter()
        after = self._cursor_of(starting_after) if starting_after else None
        created = ORDER_COLUMNS.index("created")
        while True:
            rows = self._page(where, batch, after, newest_first=newest_first, tuples=True)
            for row in rows:
                yield row[:-1]  # without the seq the cursor needs
            if len(rows) < batch:
                return
            after = (rows[-1][created], rows[-1][-1])

    def _cursor_of(self, order_or_pi: str) -> tuple[str, int]:
        column = "payment_intent" if order_or_pi.startswith("pi_") else "id"
        rows = self._read(
            f"SELECT created, {{seq}} AS seq FROM orders WHERE {column} = ?", (order_or_pi,)
        )
        if not rows:
            raise NotFound(
                f"No order {order_or_pi!r} to start after, in the ledger at {self.where}.",
                code="unknown_order",
            )
        return rows[0]["created"], rows[0]["seq"]

    def _page(
        self,
        where: OrderFilter,
        limit: int,
        after: tuple[str, int] | None,
        *,
        newest_first: bool,
        tuples: bool = False,
    ) -> list:
        clauses, params = where.where()
        if after is not None:
            clauses.append(f"(created, {{seq}}) {'<' if newest_first else '>'} (?, ?)")
            params.extend(after)
        direction = "DESC" if newest_first else "ASC"
        columns = _ORDERS + (", {seq} AS seq" if tuples else "")
        sql = (
            f"SELECT {columns} FROM orders"
            + (" WHERE " + " AND ".join(clauses) if clauses else "")
            + f" ORDER BY created {direction}, {{seq}} {direction} LIMIT ?"
        )
        if tuples:
            with self.backend.read() as tx:
                return tx.tuples(sql, [*params, limit])
        return self._read(sql, [*params, limit])

    def count_orders(self, where: OrderFilter | None = None) -> int:
        clauses, params = (where or OrderFilter()).where()
        sql = "SELECT COUNT(*) FROM orders" + (" WHERE " + " AND ".join(clauses) if clauses else "")
        return self._scalar(sql, params)

    def record_intent(
        self,
        intent: dict,
        *,
        status: str | None = None,
        amount_refunded: int | None = None,
        failure: str | None = None,
        note: str | None = None,
    ) -> dict:
        """Create or update the order for a PaymentIntent, moving its status forward only.

        The status is the later of what the intent's own state implies and ``status`` (what an
        event says). The checkout server may call this when it creates a PaymentIntent, so the
        order exists (``pending``) before any webhook.
        """
        fields = intent_fields(intent)
        if failure:
            fields["failure_reason"] = failure
        target = advance(status_of_intent(intent), status)
        with self.backend.write() as tx:
            return self._upsert(tx, fields, target, amount_refunded=amount_refunded, note=note)

    def _upsert(
        self,
        tx,
        fields: dict[str, Any],
        status: str,
        *,
        amount_refunded: int | None = None,
        note: str | None = None,
    ) -> dict:
        stamp = now_iso()
        # Insert-or-nothing first: two processes creating the same order at once must not
        # collide on the unique payment_intent; the loser then updates the winner's row.
        created = tx.run(
            """INSERT INTO orders (id, payment_intent, item_id, amount, currency, email,
            shipping, status, failure_reason, amount_refunded, charge, note, created, updated)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (payment_intent) DO NOTHING""",
            (
                "ord_" + secrets.token_hex(8),
                fields["payment_intent"],
                fields["item_id"],
                fields["amount"],
                fields["currency"],
                fields["email"],
                fields["shipping"],
                status,
                fields["failure_reason"],
                amount_refunded or 0,
                fields["charge"],
                note,
                stamp,
                stamp,
            ),
        )
        if not created:
            # Locked (PostgreSQL) so the status is advanced from what is there now.
            row = tx.one(
                "SELECT id, status FROM orders WHERE payment_intent = ?{for_update}",
                (fields["payment_intent"],),
            )
            new_status = advance(row["status"], status)
            # Known values are never blanked by a thinner copy of the intent.
            tx.run(
                """UPDATE orders SET item_id = COALESCE(?, item_id), amount = COALESCE(?, amount),
                currency = COALESCE(?, currency), email = COALESCE(?, email),
                shipping = COALESCE(?, shipping), charge = COALESCE(?, charge),
                failure_reason = CASE WHEN ? THEN NULL ELSE COALESCE(?, failure_reason) END,
                amount_refunded = {greatest}(amount_refunded, ?), note = COALESCE(?, note),
                status = ?, updated = ? WHERE id = ?""",
                (
                    fields["item_id"],
                    fields["amount"],
                    fields["currency"],
                    fields["email"],
                    fields["shipping"],
                    fields["charge"],
                    # A payment that went through is not described by an earlier decline.
                    STATUS_RANK[new_status] >= STATUS_RANK["paid"],
                    fields["failure_reason"],
                    amount_refunded or 0,
                    note,
                    new_status,
                    stamp,
                    row["id"],
                ),
            )
        return _order(
            tx.one(
                f"SELECT {_ORDERS} FROM orders WHERE payment_intent = ?",
                (fields["payment_intent"],),
            )
        )

    def record_fulfilment(
        self,
        intent: dict,
        render: Callable[[dict], tuple[str | None, str, str]],
        *,
        recipient_problem: Callable[[str], str | None] | None = None,
    ) -> tuple[dict, bool]:
        """Mark a succeeded PaymentIntent's order fulfilled and queue its receipt, once.

        ``render(order)`` gives the receipt's (recipient, subject, body). A recipient that
        ``recipient_problem`` finds fault with is never queued: the receipt is recorded
        ``undeliverable`` with that reason. Returns the order and whether this call was the one
        that fulfilled it.
        """
        fields = intent_fields(intent)
        with self.backend.write() as tx:
            order = self._upsert(tx, fields, "paid")
            stamp = now_iso()
            inserted = tx.run(
                """INSERT INTO fulfilments
                (payment_intent, order_id, amount, currency, fulfilled_at)
                VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING""",
                (order["payment_intent"], order["id"], intent["amount"], intent["currency"], stamp),
            )
            if not inserted:
                return order, False
            tx.run("UPDATE orders SET fulfilled_at = ? WHERE id = ?", (stamp, order["id"]))
            order["fulfilled_at"] = stamp
            recipient, subject, body = render(order)
            problem = recipient_problem(recipient) if recipient and recipient_problem else None
            tx.run(
                """INSERT INTO receipts (payment_intent, order_id, recipient, subject, body,
                status, last_error, created, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    order["payment_intent"],
                    order["id"],
                    recipient,
                    subject,
                    body,
                    "undeliverable" if problem else "pending",
                    problem,
                    stamp,
                    stamp,
                ),
            )
            return order, True

    def fulfilment_count(self, intent_id: str | None = None) -> int:
        if intent_id is None:
            return self._scalar("SELECT COUNT(*) FROM fulfilments")
        return self._scalar(
            "SELECT COUNT(*) FROM fulfilments WHERE payment_intent = ?", (intent_id,)
        )

    # Events -----------------------------------------------------------------------------------

    def receive_event(
        self,
        event_id: str,
        kind: str,
        intent_id: str | None,
        *,
        created: int | None = None,
        livemode: bool | None = None,
    ) -> str:
        """Record a delivery of an event: 'new', 'retry' (received, never processed) or 'duplicate'.

        A 'retry' is an event whose handling did not finish (the process died, or handling
        raised), so it must be handled again; handling is idempotent, which also covers two
        deliveries of it racing each other.
        """
        if created is not None and not 0 <= created <= MAX_INT64:
            created = None  # not a time; not worth failing the delivery over
        # The usual case, a first delivery, is one statement in its own transaction.
        inserted = self.backend.write_one(
            """INSERT INTO events (id, type, payment_intent, created, livemode, received_at)
            VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING""",
            (
                event_id,
                kind,
                intent_id,
                created,
                None if livemode is None else int(livemode),
                now_iso(),
            ),
        )
        if inserted:
            return "new"
        with self.backend.write() as tx:
            tx.run("UPDATE events SET deliveries = deliveries + 1 WHERE id = ?", (event_id,))
            row = tx.one("SELECT processed_at FROM events WHERE id = ?", (event_id,))
            return "duplicate" if row["processed_at"] else "retry"

    def finish_event(self, event_id: str, *, handled: bool, outcome: str) -> None:
        """Mark an event processed, after its handling committed."""
        self.backend.write_one(
            """UPDATE events SET processed_at = COALESCE(processed_at, ?), handled = ?,
            outcome = ? WHERE id = ?""",
            (now_iso(), int(handled), outcome, event_id),
        )

    def get_event(self, event_id: str) -> dict | None:
        rows = self._read(f"SELECT {_EVENTS} FROM events WHERE id = ?", (event_id,))
        return _event(rows[0]) if rows else None

    def events_for(self, intent_id: str) -> list[dict]:
        """The webhook events received for a PaymentIntent, oldest first (its local timeline).

        Each is ``{"id", "type", "created", "received_at", "processed_at", "deliveries",
        "handled", "outcome"}``; ``bookpay intent show`` adds these to what Stripe says.
        """
        rows = self._read(
            f"SELECT {_EVENTS} FROM events WHERE payment_intent = ? ORDER BY received_at, {{seq}}",
            (intent_id,),
        )
        return [_event(row) for row in rows]

    def event_count(self) -> int:
        return self._scalar("SELECT COUNT(*) FROM events")

    # Receipts (the outbox) --------------------------------------------------------------------

    def receipts(self, status: str | None = None) -> list[dict]:
        sql, params = f"SELECT {_RECEIPTS} FROM receipts", ()
        if status:
            sql, params = sql + " WHERE status = ?", (status,)
        return self._read(sql + " ORDER BY created", params)

    def receipt_for(self, intent_id: str) -> dict | None:
        rows = self._read(
            f"SELECT {_RECEIPTS} FROM receipts WHERE payment_intent = ?", (intent_id,)
        )
        return rows[0] if rows else None

    def next_receipt_due(self) -> str | None:
        """When the earliest pending receipt is due (ISO time), or None when none is pending."""
        return self._scalar("SELECT MIN(next_attempt_at) FROM receipts WHERE status = 'pending'")

    @contextmanager
    def claim_receipts(self, *, limit: int = 20) -> Iterator[ReceiptClaims]:
        """Due receipts, held for this caller alone while it sends them.

        PostgreSQL: the rows are locked (``FOR UPDATE SKIP LOCKED``) in a transaction that lasts
        as long as the block, so other processes skip them, and a holder that dies releases them
        with its connection. SQLite: each row is marked with this instance's identity; a mark
        whose process no longer runs is taken over at once (``bookpay.ledger.process``).
        """
        if self.backend.locks_rows:
            with self.backend.write() as tx:
                rows = tx.all(
                    f"""SELECT {_RECEIPTS} FROM receipts WHERE status = 'pending'
                    AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?{{skip_locked}}""",
                    (now_iso(), limit),
                )
                yield ReceiptClaims(self, rows, tx)
            return
        claims = ReceiptClaims(self, self._mark_claims(limit), None)
        try:
            yield claims
        finally:
            if claims.unfinished:
                with self.backend.write() as tx:
                    for intent_id in claims.unfinished:
                        tx.run(
                            """UPDATE receipts SET claimed_by = NULL, claimed_until = NULL
                            WHERE payment_intent = ? AND claimed_by = ?""",
                            (intent_id, self._token),
                        )

    def _mark_claims(self, limit: int) -> list[dict]:
        stamp = now_iso()
        with self.backend.write() as tx:
            free = tx.all(
                f"""SELECT {_RECEIPTS} FROM receipts WHERE status = 'pending'
                AND next_attempt_at <= ? AND (claimed_by IS NULL OR claimed_until <= ?)
                ORDER BY next_attempt_at LIMIT ?""",
                (stamp, stamp, limit),
            )
            if len(free) < limit:  # claims whose holder died are free too, lease or not
                held = tx.all(
                    f"""SELECT {_RECEIPTS} FROM receipts WHERE status = 'pending'
                    AND next_attempt_at <= ? AND claimed_by IS NOT NULL AND claimed_until > ?
                    AND claimed_by <> ? ORDER BY next_attempt_at""",
                    (stamp, stamp, self._token),
                )
                alive: dict[str, bool] = {}
                for row in held:
                    holder = row["claimed_by"]
                    if holder not in alive:
                        alive[holder] = process.holder_alive(holder)
                    if not alive[holder]:
                        free.append(row)
                free = free[:limit]
            until = now_iso(CLAIM_LEASE)
            self._has_claimed = self._has_claimed or bool(free)
            for row in free:
                tx.run(
                    """UPDATE receipts SET claimed_by = ?, claimed_until = ?
                    WHERE payment_intent = ?""",
                    (self._token, until, row["payment_intent"]),
                )
        return free

    def _release_claims(self) -> None:
        if self._has_claimed:
            with self.backend.write() as tx:
                tx.run(
                    """UPDATE receipts SET claimed_by = NULL, claimed_until = NULL
                    WHERE claimed_by = ?""",
                    (self._token,),
                )

    def _finish_receipt(self, tx, intent_id: str, sql: str, params: tuple) -> None:
        sql += ", claimed_by = NULL, claimed_until = NULL WHERE payment_intent = ?"
        if tx is not None:
            tx.run(sql, (*params, intent_id))
            return
        with self.backend.write() as own:
            own.run(sql, (*params, intent_id))

    # Checks -----------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        from bookpay.ledger.migrations import TABLES

        return {table: self._scalar(f"SELECT COUNT(*) FROM {table}") for table in TABLES}


class ReceiptClaims:
    """Receipts claimed by ``Ledger.claim_receipts``; report each one's fate here."""

    def __init__(self, ledger: Ledger, receipts: list[dict], tx) -> None:
        self.ledger = ledger
        self.receipts = receipts
        self.unfinished = {r["payment_intent"] for r in receipts}
        self._tx = tx

    def __iter__(self):
        return iter(self.receipts)

    def __len__(self) -> int:
        return len(self.receipts)

    def _finish(self, receipt: dict, sql: str, params: tuple) -> None:
        intent_id = receipt["payment_intent"]
        self.ledger._finish_receipt(self._tx, intent_id, sql, params)
        self.unfinished.discard(intent_id)

    def sent(self, receipt: dict, *, location: str | None, status: str = "sent") -> None:
        self._finish(
            receipt,
            "UPDATE receipts SET status = ?, sent_at = ?, location = ?, attempts = attempts + 1",
            (status, now_iso(), location),
        )

    def failed(self, receipt: dict, error: str, *, retry_in: float) -> None:
        self._finish(
            receipt,
            "UPDATE receipts SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?",
            (error[:500], now_iso(retry_in)),
        )

    def undeliverable(self, receipt: dict, reason: str) -> None:
        """An address no mail header can carry: recorded with the reason, never retried."""
        self._finish(
            receipt,
            "UPDATE receipts SET status = 'undeliverable', last_error = ?",
            (reason[:500],),
        )


def _order(row: dict | None) -> dict | None:
    if row is None:
        return None
    order = dict(row)
    order["shipping"] = json.loads(order["shipping"]) if order["shipping"] else None
    return order


def _event(row: dict) -> dict:
    event = dict(row)
    event["handled"] = None if event["handled"] is None else bool(event["handled"])
    event["livemode"] = None if event["livemode"] is None else bool(event["livemode"])
    return event


def due_in(due: str | None) -> float | None:
    """Seconds until an ISO time from the ledger (negative when past), or None."""
    if due is None:
        return None
    return (parse_iso(due) - parse_iso(now_iso())).total_seconds()
