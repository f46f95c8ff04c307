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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bookpay.errors import NotFound
from bookpay.ledger import process
from bookpay.ledger.cancels import CancelStore
from bookpay.ledger.carts import CartStore
from bookpay.ledger.disputes import DisputeStore
from bookpay.ledger.errors import LedgerConflict, LedgerUnavailable, reason_of
from bookpay.ledger.lines import (
    QuoteStore,
    SalesQueries,
    claim_order_id,
    lock_order_id,
    new_order_id,
)
from bookpay.ledger.location import Location, locate
from bookpay.ledger.model import (
    REFUSED_FOR_NOW,
    STATUS_RANK,
    advance,
    charge_refund_status,
    charge_refunded,
    fulfilled_note,
    intent_fields,
    now_iso,
    paid_at,
    refund_status,
    status_of_intent,
)
from bookpay.ledger.outbox import Outbox
from bookpay.ledger.queries import _ORDERS, OrderQueries, _order
from bookpay.ledger.taxrecords import TaxRecordStore

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
_EVENTS = ", ".join(EVENT_COLUMNS)
MAX_INT64 = 2**63 - 1


def open_ledger(settings, *, create: bool = True, migrate: bool = True) -> Ledger:
    """The ledger ``settings`` name (``BOOKPAY_DATABASE_URL``, else SQLite in the data folder).

    With ``create=False`` nothing is created: a missing ledger raises ``LedgerMissing``. With
    ``migrate=False`` an older schema is left as it is (for looking, not for use).
    """
    location = locate(settings.database_url, settings.data_dir)
    return Ledger.at(location, settings.data_dir, create=create, migrate=migrate)


class Ledger(
    OrderQueries,
    Outbox,
    QuoteStore,
    CartStore,
    SalesQueries,
    TaxRecordStore,
    DisputeStore,
    CancelStore,
):
    """Orders, events, fulfilments, receipts, quotes and lines, carts, tax records owed,
    disputes, the canceling owed of a paid cart's other payments; safe to share between
    threads."""

    def __init__(self, backend, data_dir: Path) -> None:
        self.backend = backend
        self.data_dir = Path(data_dir)
        self._token = process.new_token()  # names this instance's claims (receipts, cancels)
        self._has_claimed = False  # so that closing a reader takes no write lock
        self._unwritten_fates: list = []  # receipts' fates the ledger failed to write (outbox)

    @classmethod
    def at(
        cls, location: Location, data_dir: Path, *, create: bool = True, migrate: bool = True
    ) -> Ledger:
        """The ledger at ``location``, migrated unless ``migrate=False``. A SQLite file or folder
        that cannot be one (a folder where the file should be, a file where the folder should
        be, no permission, not a database) is LedgerUnavailable, said in one line (exit 5),
        before anything else is done, as is one that fails while it is opened (the backend's
        "Cannot read ..." said as "cannot be opened"); PostgreSQL's backend says its own."""
        backend = None
        try:
            if location.kind == "postgresql":
                from bookpay.ledger.postgres import PostgresBackend

                backend = PostgresBackend(location, create=create)
            else:
                from bookpay.ledger.sqlite import SqliteBackend

                backend = SqliteBackend(location, create=create)
            if migrate:
                backend.migrate()
        except BaseException as exc:
            if backend is not None:
                backend.close()
            failure = exc
            if isinstance(exc, LedgerUnavailable) and exc.__cause__ is not None:
                failure = exc.__cause__  # the SQLite backend's "Cannot read ...", said as below
            if location.kind == "sqlite" and _unopenable(failure):
                raise LedgerUnavailable(
                    f"The orders ledger {location.path} cannot be opened: {reason_of(failure)}."
                ) from None
            raise
        return cls(backend, data_dir)

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

    @property
    def writing(self) -> bool:
        """Whether this thread holds a write transaction open (no Stripe call may be made then)."""
        return self.backend.writing

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once this thread's writes so far are committed (see ``handling``)."""
        self.backend.after_commit(callback)

    def snapshot(self):
        """A block whose reads on this thread all see the ledger as it was when it began,
        however others write meanwhile (`ledger copy`)."""
        return self.backend.snapshot()

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
        with contextlib.suppress(Exception):
            self.release_sibling_cancels()
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

    def record_intent(
        self,
        intent: dict,
        *,
        status: str | None = None,
        amount_refunded: int | None = None,
        failure: str | None = None,
        note: str | None = None,
        refused: str | None = None,
    ) -> dict:
        """Create or update the order for a PaymentIntent, moving its status forward only.

        The status is the later of what the intent's own state implies and ``status`` (what an
        event says). The order usually exists already, ``pending``: it is written with the
        PaymentIntent's first quote (``QuoteStore.record_quote``). ``refused``: its fulfilment
        was refused, and why (``model.REFUSED_*``), kept (``fulfilment_refused``, since
        ``not_fulfilled_at``) whatever later events write in its note.
        """
        fields = intent_fields(intent)
        if failure:
            fields["failure_reason"] = failure
        target = advance(status_of_intent(intent), status)
        with self.backend.write() as tx:
            return self._upsert(
                tx,
                fields,
                target,
                amount_refunded=amount_refunded,
                note=note,
                refused=refused,
            )

    def record_refunds(self, intent: dict, charge: dict) -> dict:
        """The order as refunded as the retrieved Charge says, in both directions: the money
        it took that went back (``model.charge_refunded``: its ``amount_refunded`` less what a
        partial capture released) exactly, and paid / partially_refunded / refunded from it (a
        refund that failed gives the money back to the shop). Other statuses only move forward:
        a refund does not hide a dispute (``model.refund_status``)."""
        fields = intent_fields(intent)
        charged = charge_refund_status(charge)
        refunded = charge_refunded(charge)
        with self.backend.write() as tx:
            return self._upsert(
                tx,
                fields,
                advance(status_of_intent(intent), charged),
                amount_refunded=refunded,
                rule=lambda current: refund_status(current, charged),
            )

    def _upsert(
        self,
        tx,
        fields: dict[str, Any],
        status: str,
        *,
        amount_refunded: int | None = None,
        note: str | None = None,
        rule: Callable[[str], str] | None = None,
        dispute_status: str | None = None,
        refused: str | None = None,
    ) -> dict:
        """Insert the order at ``status``, or update it. An update moves the status forward
        to ``status``, unless ``rule`` (the refund and dispute handlers') says what the current
        status becomes; with a ``rule``, ``amount_refunded`` is the Charge's, exactly (it can
        go down), otherwise the greater of it and what is recorded. ``refused``: why its
        fulfilment was refused (the latest refusal's reason replaces an earlier one; its first
        moment is kept)."""
        stamp = now_iso()
        refused_at = stamp if refused else None
        # Insert-or-nothing first: two processes creating the same order at once must not
        # collide on a unique key (its payment_intent, its id); the loser then updates the
        # winner's row.
        # The order id is its quote's, the one answered to the shopper (usually what the
        # checkout wrote into the PaymentIntent's metadata, and the order is there already,
        # written with the quote); a stray order of another PaymentIntent under it moves off
        # it. Without a quote, the metadata's.
        intent_id = fields["payment_intent"]
        quoted = tx.one("SELECT order_id FROM quotes WHERE payment_intent = ?", (intent_id,))
        named = quoted["order_id"] if quoted else fields.get("order_id")
        if named:
            lock_order_id(tx, named)
            # Read again under the turn: a quote recorded meanwhile names the id now.
            quoted = tx.one("SELECT order_id FROM quotes WHERE payment_intent = ?", (intent_id,))
        if quoted is not None:
            claim_order_id(tx, quoted["order_id"], intent_id, stamp)
        insert = """INSERT INTO orders (id, payment_intent, item_id, amount, currency, email,
            shipping, status, failure_reason, amount_refunded, charge, note, created, updated,
            dispute_status, amount_captured, not_fulfilled_at, fulfilment_refused)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT DO NOTHING"""
        values = [
            quoted["order_id"] if quoted else fields.get("order_id") or new_order_id(),
            intent_id,
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
            dispute_status,
            fields.get("amount_captured"),
            refused_at,
            refused,
        ]
        # Locked (PostgreSQL) so the status is advanced from what is there now.
        mine = "SELECT id, status FROM orders WHERE payment_intent = ?{for_update}"
        row = None
        if not tx.run(insert, values):
            row = tx.one(mine, (intent_id,))
            # None: the order id is another PaymentIntent's order (two PaymentIntents of one
            # checkout attempt, one never answered to the page, whose order the other has had
            # since its quote): this one's order gets an id of its own. That insert does
            # nothing when another transaction wrote this PaymentIntent's order meanwhile (two
            # events about it at once, on PostgreSQL): committed now, it is read and updated.
            if row is None and not tx.run(insert, [new_order_id(), *values[1:]]):
                row = tx.one(mine, (intent_id,))
                if row is None:
                    raise LedgerConflict(
                        f"The ledger at {self.where} could not write the order of "
                        f"{intent_id}: another order has its id."
                    )
        if row is not None:
            new_status = rule(row["status"]) if rule else advance(row["status"], status)
            # Known values are never blanked by a thinner copy of the intent.
            tx.run(
                """UPDATE orders SET item_id = COALESCE(?, item_id), amount = COALESCE(?, amount),
                currency = COALESCE(?, currency), email = COALESCE(?, email),
                shipping = COALESCE(?, shipping), charge = COALESCE(?, charge),
                failure_reason = CASE WHEN ? THEN NULL ELSE COALESCE(?, failure_reason) END,
                amount_refunded = CASE WHEN ? THEN ? ELSE {greatest}(amount_refunded, ?) END,
                note = COALESCE(?, note), dispute_status = COALESCE(?, dispute_status),
                amount_captured = COALESCE(?, amount_captured),
                not_fulfilled_at = COALESCE(not_fulfilled_at, ?),
                fulfilment_refused = COALESCE(?, fulfilment_refused), status = ?, updated = ?
                WHERE id = ?""",
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
                    rule is not None and amount_refunded is not None,
                    amount_refunded or 0,
                    amount_refunded or 0,
                    note,
                    dispute_status,
                    fields.get("amount_captured"),
                    refused_at,
                    refused,
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
        tax_calculation: str | None = None,
        refusal: Callable[[dict], str | None] | None = None,
    ) -> tuple[dict, bool]:
        """Mark a succeeded PaymentIntent's order fulfilled and queue its receipt, once.

        ``render(order)`` gives the receipt's (recipient, subject, body). A recipient that
        ``recipient_problem`` finds fault with is never queued: the receipt is recorded
        ``undeliverable`` with that reason. With a ``tax_calculation`` (the quote's), the
        order's Stripe Tax transaction is recorded as owed in the same transaction. Returns the
        order and whether this call was the one that fulfilled it.

        An order that was not to be fulfilled (``not_fulfilled_at``: refunded in full first, a
        refund that then failed) no longer says so once it is: ``not_fulfilled_at`` and
        ``fulfilment_refused`` are cleared, and its note says why it was fulfilled after all
        (``model.fulfilled_note``).

        ``refusal(order)``, asked of the order as it is now (its row locked, in the same
        transaction, so no refund or dispute event commits in between), gives why an order is
        not to be fulfilled after all (``model.REFUSED_FOR_NOW``: refunded in full, or disputed,
        since the caller retrieved the PaymentIntent): it is recorded so (``fulfilment_refused``,
        ``not_fulfilled_at`` and the reason's note), and returned unfulfilled.
        """
        fields = intent_fields(intent)
        with self.backend.write() as tx:
            order = self._upsert(tx, fields, "paid")
            refused = refusal(order) if refusal and not order["fulfilled_at"] else None
            if refused:
                note = REFUSED_FOR_NOW[refused]
                return self._upsert(tx, fields, order["status"], note=note, refused=refused), False
            stamp = now_iso()
            inserted = tx.run(
                """INSERT INTO fulfilments
                (payment_intent, order_id, amount, currency, fulfilled_at)
                VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING""",
                (order["payment_intent"], order["id"], intent["amount"], intent["currency"], stamp),
            )
            if not inserted:
                return order, False
            paid = paid_at(intent)  # the receipt's "Paid on": its fulfilment may come later
            if order["not_fulfilled_at"] or order["fulfilment_refused"]:
                note = fulfilled_note(order["note"])
                tx.run(
                    """UPDATE orders SET fulfilled_at = ?, paid_at = ?, not_fulfilled_at = NULL,
                    fulfilment_refused = NULL, note = ? WHERE id = ?""",
                    (stamp, paid, note, order["id"]),
                )
                order.update(not_fulfilled_at=None, fulfilment_refused=None, note=note)
            else:
                tx.run(
                    "UPDATE orders SET fulfilled_at = ?, paid_at = ? WHERE id = ?",
                    (stamp, paid, order["id"]),
                )
            order.update(fulfilled_at=stamp, paid_at=paid)
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
            if tax_calculation:
                self.owe_tax_transaction(tx, order["id"], order["payment_intent"], tax_calculation)
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

        A 'retry' is an event whose handling did not finish (handling raised), so it must be
        handled again; handling is idempotent, which also covers two deliveries of it racing
        each other. (The webhook receiver records and handles a delivery in one transaction
        instead: ``handling``.)
        """
        # The usual case, a first delivery, is one statement in its own transaction.
        inserted = self.backend.write_one(
            """INSERT INTO events (id, type, payment_intent, created, livemode, received_at)
            VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING""",
            _event_row(event_id, kind, intent_id, created, livemode),
        )
        if inserted:
            return "new"
        with self.backend.write() as tx:
            tx.run("UPDATE events SET deliveries = deliveries + 1 WHERE id = ?", (event_id,))
            row = tx.one("SELECT processed_at FROM events WHERE id = ?", (event_id,))
            return "duplicate" if row["processed_at"] else "retry"

    def handling(
        self,
        event_id: str,
        kind: str,
        intent_id: str | None,
        *,
        created: int | None = None,
        livemode: bool | None = None,
    ):
        """A block that records a delivery of an event and handles it, in one transaction.

        Every ledger write this thread makes in the block (the order, the fulfilment and its
        receipt, ``finish_event``) joins one transaction that first records the delivery (or
        counts it, for an event seen before), opened at the block's first write: whatever comes
        before it, such as retrieving the object from Stripe, holds no lock. What a failure
        keeps (``bookpay.ledger.units``): the delivery's record always, so an event whose
        handling did not finish stays received but not processed, and is handled again when
        Stripe delivers it again; writes completed before a failure between writes; nothing of
        a write that failed, nor of the unit around it. Callbacks given to ``after_commit`` in
        the block run once it is committed.

        ``intent_id`` is where the event is filed until the handler says which PaymentIntent
        it retrieved from Stripe (``EventUnit.file_under``).
        """
        record = (
            """INSERT INTO events (id, type, payment_intent, created, livemode, received_at)
            VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (id) DO UPDATE SET deliveries = events.deliveries + 1,
            payment_intent = excluded.payment_intent""",
            _event_row(event_id, kind, intent_id, created, livemode),
        )
        return EventUnit(self, record)

    def together(self):
        """A block whose writes join one transaction, with no delivery to record (see
        ``handling``): for the writes a handler makes again after its event is committed."""
        return self.backend.unit()

    def reopen_event(self, event_id: str) -> None:
        """Mark a processed event received but not processed, so that Stripe's next delivery
        of it is handled again (its handling could not be confirmed after the commit)."""
        self.backend.write_one(
            "UPDATE events SET processed_at = NULL, handled = NULL WHERE id = ?", (event_id,)
        )

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

    # Checks -----------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        from bookpay.ledger.migrations import TABLES

        return {table: self._scalar(f"SELECT COUNT(*) FROM {table}") for table in TABLES}


class EventUnit:
    """The block ``Ledger.handling`` returns: a unit whose first statement records the delivery,
    filed under the PaymentIntent the handler names with ``file_under``."""

    def __init__(self, ledger: Ledger, record: tuple[str, tuple]) -> None:
        self.ledger = ledger
        # The unit reads its first statements when it opens its transaction (or, if it never
        # does, when it ends), so a change made here before the first write is what it records.
        self._first = [record]
        self._unit = ledger.backend.unit(first=self._first)

    def __enter__(self) -> EventUnit:
        self._unit.__enter__()
        return self

    def __exit__(self, *exc: Any) -> bool | None:
        return self._unit.__exit__(*exc)

    @property
    def intent_id(self) -> str | None:
        """The PaymentIntent the event is filed under: the retrieved one, once ``file_under``
        has named it, else the one the event's copy names."""
        return self._first[0][1][2]

    def file_under(self, intent_id: str | None) -> None:
        """File the event under ``intent_id``, the PaymentIntent retrieved from Stripe, rather
        than the one the event's own copy names (which a signed but edited body can change)."""
        sql, row = self._first[0]
        if row[2] == intent_id:
            return
        self._first[0] = (sql, (*row[:2], intent_id, *row[3:]))
        if self.ledger.writing:  # already recorded: correct it in the same transaction
            self.ledger.backend.write_one(
                "UPDATE events SET payment_intent = ? WHERE id = ?", (intent_id, row[0])
            )


def _event_row(
    event_id: str, kind: str, intent_id: str | None, created: int | None, livemode: bool | None
) -> tuple:
    if created is not None and not 0 <= created <= MAX_INT64:
        created = None  # not a time; not worth failing the delivery over
    livemode = None if livemode is None else int(livemode)
    return (event_id, kind, intent_id, created, livemode, now_iso())


def _event(row: dict) -> dict:
    event = dict(row)
    event["handled"] = None if event["handled"] is None else bool(event["handled"])
    event["livemode"] = None if event["livemode"] is None else bool(event["livemode"])
    return event


def _unopenable(exc: BaseException) -> bool:
    """Whether opening a SQLite ledger failed on its file or folder (not on bookpay's code)."""
    import sqlite3

    return isinstance(exc, (OSError, sqlite3.DatabaseError))
