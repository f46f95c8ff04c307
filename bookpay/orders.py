"""The orders ledger (SQLite) and fulfilment, exactly once.

One order per PaymentIntent, every webhook event received by its id, one fulfilment per
PaymentIntent and one receipt (an outbox row) per fulfilment. The unique constraints are the
real guards: fulfilment inserts its row, the order's ``fulfilled_at`` and the pending receipt
in one ``BEGIN IMMEDIATE`` transaction, so however many threads or processes call
``Fulfiller.fulfil`` for the same PaymentIntent, one of them commits the effect and the others
find it done. The receipt itself is sent later, by ``bookpay.mailer``, from that outbox row.

Order status only moves forward, by ``STATUS_RANK``:

    pending < processing < failed < canceled < paid < partially_refunded < refunded < disputed

- a late ``processing`` (or ``payment_failed``) never undoes ``paid``;
- ``failed`` is below ``paid`` because a PaymentIntent whose card was declined can be confirmed
  again with another card and succeed; it is above ``processing`` because a bank debit that was
  processing can fail;
- ``canceled`` is below ``paid``: Stripe cannot cancel a succeeded PaymentIntent, so if both are
  seen the money was taken and ``paid`` is the truth;
- ``refunded`` beats ``partially_refunded`` (refunds only accumulate);
- ``disputed`` is the top: a dispute needs a person whatever happens to the payment after it,
  so neither a late ``succeeded`` nor a refund may hide it.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bookpay.errors import NotFound, UsageError
from bookpay.statuses import in_words

STATUSES = (
    "pending",
    "processing",
    "failed",
    "canceled",
    "paid",
    "partially_refunded",
    "refunded",
    "disputed",
)
STATUS_RANK = {status: rank for rank, status in enumerate(STATUSES)}
INTEGRATION = "bookpay"
DB_NAME = "bookpay.sqlite3"

# Each entry upgrades the schema by one version (PRAGMA user_version). Never edit a shipped one:
# append a new one, so a ledger written by any earlier bookpay opens with this one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE orders (
            id TEXT PRIMARY KEY,
            payment_intent TEXT NOT NULL UNIQUE,
            item_id TEXT,
            amount INTEGER,
            currency TEXT,
            email TEXT,
            shipping TEXT,
            status TEXT NOT NULL,
            failure_reason TEXT,
            amount_refunded INTEGER NOT NULL DEFAULT 0,
            charge TEXT,
            note TEXT,
            created TEXT NOT NULL,
            updated TEXT NOT NULL,
            fulfilled_at TEXT
        )""",
        "CREATE INDEX orders_status ON orders (status)",
        "CREATE INDEX orders_charge ON orders (charge)",
        """CREATE TABLE events (
            id TEXT PRIMARY KEY,
            type TEXT NOT NULL,
            payment_intent TEXT,
            created INTEGER,
            livemode INTEGER,
            received_at TEXT NOT NULL,
            processed_at TEXT,
            deliveries INTEGER NOT NULL DEFAULT 1,
            handled INTEGER,
            outcome TEXT
        )""",
        "CREATE INDEX events_intent ON events (payment_intent)",
        """CREATE TABLE fulfilments (
            payment_intent TEXT PRIMARY KEY,
            order_id TEXT NOT NULL REFERENCES orders (id),
            amount INTEGER NOT NULL,
            currency TEXT NOT NULL,
            fulfilled_at TEXT NOT NULL
        )""",
        """CREATE TABLE receipts (
            payment_intent TEXT PRIMARY KEY REFERENCES fulfilments (payment_intent),
            order_id TEXT NOT NULL,
            recipient TEXT,
            subject TEXT NOT NULL,
            body TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            created TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,
            claimed_until TEXT,
            last_error TEXT,
            sent_at TEXT,
            location TEXT
        )""",
        "CREATE INDEX receipts_due ON receipts (status, next_attempt_at)",
    ),
)


def now_iso(delta: float = 0.0) -> str:
    """UTC, millisecond precision, sortable as text."""
    moment = datetime.now(timezone.utc) + timedelta(seconds=delta)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def advance(current: str | None, new: str | None) -> str:
    """The later of two statuses by STATUS_RANK: a status never moves backwards."""
    if current is None:
        return new or "pending"
    if new is None or STATUS_RANK[new] <= STATUS_RANK[current]:
        return current
    return new


def status_of_intent(intent: dict) -> str:
    """The order status a PaymentIntent's own state implies."""
    state = intent.get("status")
    if state == "succeeded":
        return "paid"
    if state in ("processing", "requires_capture"):
        return "processing"
    if state == "canceled":
        return "canceled"
    if state == "requires_payment_method" and intent.get("last_payment_error"):
        return "failed"
    return "pending"


def failure_reason(error: dict | None) -> str | None:
    """``card_declined/insufficient_funds: Your card has insufficient funds.``"""
    if not error:
        return None
    codes = "/".join(c for c in (error.get("code"), error.get("decline_code")) if c)
    message = error.get("message") or ""
    return f"{codes}: {message}" if codes and message else (codes or message or None)


def intent_fields(intent: dict) -> dict[str, Any]:
    """What the ledger keeps of a PaymentIntent (with ``latest_charge`` expanded or not)."""
    charge = intent.get("latest_charge")
    charge_id = charge.get("id") if isinstance(charge, dict) else charge
    billing = (charge.get("billing_details") or {}) if isinstance(charge, dict) else {}
    metadata = intent.get("metadata") or {}
    return {
        "payment_intent": intent["id"],
        "item_id": metadata.get("item_id"),
        "amount": intent.get("amount"),
        "currency": intent.get("currency"),
        "email": intent.get("receipt_email") or billing.get("email") or metadata.get("email"),
        "shipping": json.dumps(intent["shipping"]) if intent.get("shipping") else None,
        "charge": charge_id,
        "failure_reason": failure_reason(intent.get("last_payment_error")),
    }


def _order(row: sqlite3.Row | None) -> dict | None:
    if row is None:
        return None
    order = dict(row)
    order["shipping"] = json.loads(order["shipping"]) if order["shipping"] else None
    return order


class Ledger:
    """The SQLite file under the data folder; safe to share between threads.

    Each thread gets its own connection (sqlite3 connections must not be used by two threads at
    once); writes take the database lock up front with ``BEGIN IMMEDIATE`` so two writers never
    deadlock upgrading a read lock, and ``busy_timeout`` makes the losers wait instead of fail.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def open(cls, data_dir: Path) -> Ledger:
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        ledger = cls(data_dir / DB_NAME)
        ledger._migrate()
        return ledger

    @property
    def data_dir(self) -> Path:
        return self.path.parent

    # Connections and transactions ------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise RuntimeError("the ledger is closed")
            # isolation_level=None: we issue BEGIN ourselves, so sqlite3 never opens a
            # deferred transaction behind our back.
            conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode survives a crash of the process (the case we design for);
            # only a power cut can lose the last commits.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the database's write lock from its first statement."""
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _read(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        return self._connection().execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        # The usual case, an up-to-date ledger, needs no write lock: a reader (`bookpay orders
        # list`) must not queue behind a busy server just to learn there is nothing to do.
        if self._connection().execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS):
            return
        with self.transaction() as conn:
            # Read inside the write lock: two processes opening a new ledger at once must not
            # both run the same migration.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise UsageError(
                    f"{self.path} was written by a newer bookpay (schema {version}); "
                    "upgrade bookpay to read it."
                )
            for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in statements:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")

    @property
    def schema_version(self) -> int:
        return self._read("PRAGMA user_version")[0][0]

    # Orders -----------------------------------------------------------------------------------

    def find_order(self, order_or_pi: str) -> dict | None:
        column = "payment_intent" if order_or_pi.startswith("pi_") else "id"
        rows = self._read(f"SELECT * FROM orders WHERE {column} = ?", (order_or_pi,))
        return _order(rows[0]) if rows else None

    def get_order(self, order_or_pi: str) -> dict:
        """The order with this id (ord_...) or PaymentIntent id (pi_...), or NotFound."""
        order = self.find_order(order_or_pi)
        if order is None:
            raise NotFound(
                f"No order {order_or_pi!r} in the ledger at {self.path}.",
                hint="Run `bookpay orders list` to see the orders.",
                code="unknown_order",
            )
        return order

    def find_order_by_charge(self, charge_id: str) -> dict | None:
        rows = self._read("SELECT * FROM orders WHERE charge = ?", (charge_id,))
        return _order(rows[0]) if rows else None

    def list_orders(self, status: str | None = None) -> list[dict]:
        """Every order, newest first, optionally only those with ``status``."""
        if status is not None and status not in STATUS_RANK:
            raise UsageError(f"Unknown status {status!r}: use one of {', '.join(STATUSES)}.")
        sql = "SELECT * FROM orders"
        params: tuple = ()
        if status:
            sql, params = sql + " WHERE status = ?", (status,)
        return [
            _order(row) for row in self._read(sql + " ORDER BY created DESC, rowid DESC", params)
        ]

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
        with self.transaction() as conn:
            return self._upsert(conn, fields, target, amount_refunded=amount_refunded, note=note)

    def _upsert(
        self,
        conn: sqlite3.Connection,
        fields: dict[str, Any],
        status: str,
        *,
        amount_refunded: int | None = None,
        note: str | None = None,
    ) -> dict:
        stamp = now_iso()
        row = conn.execute(
            "SELECT * FROM orders WHERE payment_intent = ?", (fields["payment_intent"],)
        ).fetchone()
        if row is None:
            conn.execute(
                """INSERT INTO orders (id, payment_intent, item_id, amount, currency, email,
                shipping, status, failure_reason, amount_refunded, charge, note, created, updated)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
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
        else:
            new_status = advance(row["status"], status)
            # Known values are never blanked by a thinner copy of the intent.
            conn.execute(
                """UPDATE orders SET item_id = COALESCE(?, item_id), amount = COALESCE(?, amount),
                currency = COALESCE(?, currency), email = COALESCE(?, email),
                shipping = COALESCE(?, shipping), charge = COALESCE(?, charge),
                failure_reason = CASE WHEN ? THEN NULL ELSE COALESCE(?, failure_reason) END,
                amount_refunded = MAX(amount_refunded, ?), note = COALESCE(?, note),
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
            conn.execute(
                "SELECT * FROM orders WHERE payment_intent = ?", (fields["payment_intent"],)
            ).fetchone()
        )

    def record_fulfilment(
        self, intent: dict, render: Callable[[dict], tuple[str | None, str, str]]
    ) -> tuple[dict, bool]:
        """Mark a succeeded PaymentIntent's order fulfilled and queue its receipt, once.

        ``render(order)`` gives the receipt's (recipient, subject, body). Returns the order and
        whether this call was the one that fulfilled it.
        """
        fields = intent_fields(intent)
        with self.transaction() as conn:
            order = self._upsert(conn, fields, "paid")
            stamp = now_iso()
            inserted = conn.execute(
                """INSERT OR IGNORE INTO fulfilments
                (payment_intent, order_id, amount, currency, fulfilled_at)
                VALUES (?, ?, ?, ?, ?)""",
                (order["payment_intent"], order["id"], intent["amount"], intent["currency"], stamp),
            ).rowcount
            if not inserted:
                return order, False
            conn.execute("UPDATE orders SET fulfilled_at = ? WHERE id = ?", (stamp, order["id"]))
            order["fulfilled_at"] = stamp
            recipient, subject, body = render(order)
            conn.execute(
                """INSERT INTO receipts (payment_intent, order_id, recipient, subject, body,
                created, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?)""",
                (order["payment_intent"], order["id"], recipient, subject, body, stamp, stamp),
            )
            return order, True

    def fulfilment_count(self, intent_id: str | None = None) -> int:
        if intent_id is None:
            return self._read("SELECT COUNT(*) FROM fulfilments")[0][0]
        return self._read(
            "SELECT COUNT(*) FROM fulfilments WHERE payment_intent = ?", (intent_id,)
        )[0][0]

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
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT processed_at FROM events WHERE id = ?", (event_id,)
            ).fetchone()
            if row is None:
                conn.execute(
                    """INSERT INTO events (id, type, payment_intent, created, livemode,
                    received_at) VALUES (?, ?, ?, ?, ?, ?)""",
                    (event_id, kind, intent_id, created, livemode, now_iso()),
                )
                return "new"
            conn.execute("UPDATE events SET deliveries = deliveries + 1 WHERE id = ?", (event_id,))
            return "duplicate" if row["processed_at"] else "retry"

    def finish_event(self, event_id: str, *, handled: bool, outcome: str) -> None:
        """Mark an event processed, after its handling committed."""
        with self.transaction() as conn:
            conn.execute(
                """UPDATE events SET processed_at = COALESCE(processed_at, ?), handled = ?,
                outcome = ? WHERE id = ?""",
                (now_iso(), int(handled), outcome, event_id),
            )

    def get_event(self, event_id: str) -> dict | None:
        rows = self._read("SELECT * FROM events WHERE id = ?", (event_id,))
        return _event(rows[0]) if rows else None

    def events_for(self, intent_id: str) -> list[dict]:
        """The webhook events received for a PaymentIntent, oldest first (its local timeline).

        Each is ``{"id", "type", "created", "received_at", "processed_at", "deliveries",
        "handled", "outcome"}``; ``bookpay intent show`` adds these to what Stripe says.
        """
        rows = self._read(
            "SELECT * FROM events WHERE payment_intent = ? ORDER BY received_at, rowid",
            (intent_id,),
        )
        return [_event(row) for row in rows]

    def event_count(self) -> int:
        return self._read("SELECT COUNT(*) FROM events")[0][0]

    # Receipts (the outbox) --------------------------------------------------------------------

    def claim_receipts(self, *, lease: float = 60.0, limit: int = 20) -> list[dict]:
        """Pending receipts that are due, leased to the caller so no other sender takes them."""
        stamp = now_iso()
        with self.transaction() as conn:
            rows = conn.execute(
                """SELECT * FROM receipts WHERE status = 'pending' AND next_attempt_at <= ?
                AND (claimed_until IS NULL OR claimed_until <= ?) ORDER BY created LIMIT ?""",
                (stamp, stamp, limit),
            ).fetchall()
            until = now_iso(lease)
            for row in rows:
                conn.execute(
                    "UPDATE receipts SET claimed_until = ? WHERE payment_intent = ?",
                    (until, row["payment_intent"]),
                )
        return [dict(row) for row in rows]

    def receipt_sent(self, intent_id: str, *, location: str | None, status: str = "sent") -> None:
        with self.transaction() as conn:
            conn.execute(
                """UPDATE receipts SET status = ?, sent_at = ?, location = ?, claimed_until = NULL,
                attempts = attempts + 1 WHERE payment_intent = ?""",
                (status, now_iso(), location, intent_id),
            )

    def receipt_failed(self, intent_id: str, error: str, *, retry_in: float) -> None:
        with self.transaction() as conn:
            conn.execute(
                """UPDATE receipts SET attempts = attempts + 1, last_error = ?,
                next_attempt_at = ?, claimed_until = NULL WHERE payment_intent = ?""",
                (error[:500], now_iso(retry_in), intent_id),
            )

    def receipts(self, status: str | None = None) -> list[dict]:
        sql, params = "SELECT * FROM receipts", ()
        if status:
            sql, params = sql + " WHERE status = ?", (status,)
        return [dict(row) for row in self._read(sql + " ORDER BY created", params)]

    def next_receipt_due(self) -> str | None:
        """When the earliest pending receipt is due (ISO time), or None when none is pending."""
        rows = self._read("SELECT MIN(next_attempt_at) FROM receipts WHERE status = 'pending'")
        return rows[0][0]


def _event(row: sqlite3.Row) -> dict:
    event = dict(row)
    event["handled"] = None if event["handled"] is None else bool(event["handled"])
    event["livemode"] = None if event["livemode"] is None else bool(event["livemode"])
    return event


# Fulfilment ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FulfilmentResult:
    """What ``Fulfiller.fulfil`` found and did.

    ``outcome`` is 'fulfilled' (this call fulfilled the order), 'already_fulfilled',
    'not_succeeded' (the PaymentIntent has not succeeded, yet or at all), 'refunded' (its charge
    was refunded in full before the order was fulfilled, so it never will be) or 'rejected' (not
    this shop's, or its amount, currency or item do not match the catalog; ``reason`` says which).
    """

    payment_intent: str
    outcome: str
    order: dict | None = None
    intent: dict | None = None
    reason: str | None = None

    @property
    def fulfilled(self) -> bool:
        return self.outcome in ("fulfilled", "already_fulfilled")

    @property
    def newly_fulfilled(self) -> bool:
        return self.outcome == "fulfilled"


def ownership_problem(intent: dict) -> str | None:
    """Why a PaymentIntent is not one of this shop's, or None when it is."""
    metadata = intent.get("metadata") or {}
    if metadata.get("integration") != INTEGRATION or not metadata.get("item_id"):
        return "not a bookpay PaymentIntent (no bookpay metadata)"
    return None


def price_problem(intent: dict, catalog) -> str | None:
    """Why a PaymentIntent does not pay the catalog's price for its item, or None."""
    item_id = (intent.get("metadata") or {}).get("item_id")
    if item_id not in catalog:
        return f"metadata.item_id {item_id!r} is not in the catalog"
    book = catalog.get(item_id)
    if intent.get("amount") != book.amount or intent.get("currency") != book.currency:
        return (
            f"amount {intent.get('amount')} {intent.get('currency')} does not match the "
            f"catalog price {book.amount} {book.currency} of item {item_id}"
        )
    return None


class Fulfiller:
    """Fulfils paid orders exactly once; owns the receipt mailer and its worker thread."""

    def __init__(self, ledger: Ledger, gateway, catalog, settings, *, mailer=None) -> None:
        from bookpay.mailer import ReceiptMailer

        self.ledger = ledger
        self.gateway = gateway
        self.catalog = catalog
        self.mailer = (
            mailer if mailer is not None else ReceiptMailer.from_settings(settings, ledger)
        )
        self.mailer.start()  # also sends what an earlier run left pending

    def retrieve(self, intent_id: str) -> dict:
        """The PaymentIntent as Stripe has it now (NotFound when Stripe does not know it)."""
        return self.gateway.retrieve_intent(intent_id, expand=("latest_charge",))

    def fulfil(self, intent_id: str) -> FulfilmentResult:
        """Fulfil the order paid by ``intent_id`` if Stripe says it succeeded; safe to repeat.

        Raises NotFound for a PaymentIntent Stripe does not know and StripeUnavailable when it
        cannot be asked; never trusts anyone's copy of the intent but Stripe's.
        """
        intent = self.retrieve(intent_id)
        problem = ownership_problem(intent)
        if problem:
            return FulfilmentResult(intent_id, "rejected", intent=intent, reason=problem)
        if intent.get("status") != "succeeded":
            order = self.ledger.record_intent(intent)
            reason = f"the PaymentIntent is {in_words(intent.get('status'))}"
            return FulfilmentResult(intent_id, "not_succeeded", order, intent, reason)
        problem = price_problem(intent, self.catalog)
        if problem:
            order = self.ledger.record_intent(intent, note=f"not fulfilled: {problem}")
            return FulfilmentResult(intent_id, "rejected", order, intent, problem)
        charge = intent.get("latest_charge")
        if isinstance(charge, dict) and charge.get("refunded") is True:
            # Refunded in full before we got to it: nothing to ship, no "thank you" receipt.
            order = self.ledger.find_order(intent_id)
            if order is not None and order["fulfilled_at"]:
                return FulfilmentResult(intent_id, "already_fulfilled", order, intent)
            reason = "refunded in full before it was fulfilled"
            order = self.ledger.record_intent(
                intent,
                status="refunded",
                amount_refunded=charge.get("amount_refunded"),
                note=f"not fulfilled: {reason}",
            )
            return FulfilmentResult(intent_id, "refunded", order, intent, reason)
        book = self.catalog.get(intent["metadata"]["item_id"])
        order, done_now = self.ledger.record_fulfilment(
            intent, lambda order: self.mailer.render(order, book)
        )
        if done_now:
            self.mailer.wake()
            return FulfilmentResult(intent_id, "fulfilled", order, intent)
        return FulfilmentResult(intent_id, "already_fulfilled", order, intent)

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every due receipt is sent; False if some are still pending at timeout."""
        return self.mailer.drain(timeout)

    def close(self) -> None:
        self.mailer.close()
