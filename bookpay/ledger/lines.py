"""Quotes and order lines: what each PaymentIntent was priced at, book by book.

The checkout records a quote (its lines, subtotal, shipping, tax and total) each time it creates
or updates a PaymentIntent, in one transaction with the order's lines, so that fulfilment checks
the amount paid against what the shop asked for, and the success page, the receipt, the CLI and
the sales report show the same lines. Lines are keyed by the order id, which the checkout picks
before the PaymentIntent exists and writes into its metadata. Earlier orders got one line each
in migration 3.

A quote priced for an address keeps it (JSON, Stripe's shape), with Stripe Tax's calculation and
the version the checkout page gave it: a quote is recorded only over an older version, so a
page's quotes are applied in the order it asked for them (``QuoteStale`` otherwise).

The order row itself is written with the PaymentIntent's first quote, in the same transaction,
as ``pending`` (``_write_order``): from the moment the PaymentIntent exists and the shop has said
its order id (the checkout's answer, `bookpay intent create`'s output), `orders show` finds it,
whether or not any webhook event ever comes. Events then move its status forward
(``Ledger.record_intent``).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Iterator

from bookpay.ledger.errors import LedgerConflict
from bookpay.ledger.model import now_iso

LINE_COLUMNS = (
    "order_id",
    "position",
    "item_id",
    "title",
    "quantity",
    "unit_amount",
    "line_amount",
)
QUOTE_COLUMNS = (
    "payment_intent",
    "order_id",
    "attempt_id",
    "cart_id",
    "currency",
    "subtotal",
    "shipping",
    "tax",
    "total",
    "shipping_rate",
    "created",
    "updated",
    "settled_at",
    "address",
    "tax_calculation",
    "version",
    "generation",
    "canceled_at",
)
_LINES = ", ".join(LINE_COLUMNS)
_QUOTES = ", ".join(QUOTE_COLUMNS)
MAX_IN = 500  # ids per IN (...) list
# A page of the attempts beside one (tabs of one payment of a cart: a few, or many reloads).
MAX_BESIDE = 20
# The statuses of an order whose PaymentIntent the checkout may still re-price (not confirmed, or
# confirmed and declined): its amount and book follow its latest quote. From any other status
# they are the retrieved PaymentIntent's, as the events recorded them.
REPRICED = ("pending", "failed")


class QuoteFrozen(Exception):
    """The order is fulfilled: its quote and lines are what was paid, and stay so."""


class QuoteStale(Exception):
    """A quote of this version (or a later one) is already recorded for the PaymentIntent."""

    def __init__(self, recorded: int) -> None:
        super().__init__(f"version {recorded} is already recorded")
        self.recorded = recorded


class QuoteStore:
    """The quote and line methods of ``Ledger`` (which provides ``backend`` and ``_read``)."""

    def record_quote(
        self,
        payment_intent: str,
        order_id: str,
        quote,
        *,
        attempt_id: str | None = None,
        cart_id: str | None = None,
        version: int | None = None,
        email: str | None = None,
    ) -> dict:
        """Record ``quote`` (a ``bookpay.quote.Quote``) as what ``payment_intent`` holds, and its
        lines as the order's, replacing an earlier quote of the same PaymentIntent; and the
        order, ``pending`` if the ledger has none yet for ``payment_intent`` (``_write_order``:
        ``email`` is the receipt address the PaymentIntent was created with, if any).

        With a ``version``, only over an older version (QuoteStale otherwise), and the quote
        takes that version; without one, the recorded version stays. Raises QuoteFrozen when
        the order is already fulfilled.
        """
        stamp = now_iso()
        address = json.dumps(quote.address.to_dict()) if quote.address is not None else None
        with self.backend.write() as tx:
            lock_order_id(tx, order_id)
            # The orders first, then the quote: as an event's handler locks them (its order,
            # then ``mark_canceled`` or ``settle_cart``), so the two never deadlock.
            _lock_orders(tx, payment_intent, order_id)
            refusal = _quote_refusal(tx, order_id, payment_intent, version)
            if refusal is None:
                claim_order_id(tx, order_id, payment_intent, stamp)
                return self._write_quote(
                    tx,
                    payment_intent,
                    order_id,
                    quote,
                    attempt_id,
                    cart_id,
                    version,
                    stamp,
                    address,
                    email,
                )
        # Raised once the block has ended well: inside a webhook's one transaction, a refusal
        # found by reading is an answer, not a failed write, and must not roll back the rest.
        raise refusal

    def _write_quote(
        self,
        tx,
        payment_intent,
        order_id,
        quote,
        attempt_id,
        cart_id,
        version,
        stamp,
        address,
        email=None,
    ) -> dict:
        # Insert-or-nothing, then update: several writers of one quote at once (fulfilments
        # racing) must neither fail on a unique key nor interleave their lines; the update
        # holds the quote's row until the lines are written.
        amounts = (
            quote.currency,
            quote.subtotal,
            quote.shipping,
            quote.tax,
            quote.total,
            quote.shipping_rate,
            address,
            quote.tax_calculation,
        )
        inserted = tx.run(
            f"""INSERT INTO quotes ({_QUOTES})
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
                (SELECT generation FROM carts WHERE id = ?), NULL)
            ON CONFLICT DO NOTHING""",
            (
                payment_intent,
                order_id,
                attempt_id,
                cart_id,
                *amounts[:6],
                stamp,
                stamp,
                None,
                *amounts[6:],
                version or 0,
                cart_id,
            ),
        )
        if not inserted:
            # Its order may have been made since this transaction's first lock found none (by
            # the writer whose insert won): locked now, before the quote's row, as the writers
            # that came later lock them, or two of them would each hold what the other waits for.
            _lock_orders(tx, payment_intent, order_id)
        if not inserted and not tx.run(
            """UPDATE quotes SET currency = ?, subtotal = ?, shipping = ?, tax = ?,
            total = ?, shipping_rate = ?, address = ?, tax_calculation = ?,
            cart_id = COALESCE(?, cart_id), version = COALESCE(?, version), updated = ?
            WHERE payment_intent = ? AND order_id = ?""",
            (*amounts, cart_id, version, stamp, payment_intent, order_id),
        ):
            raise LedgerConflict(
                f"The ledger at {self.where} already has a quote for another payment of "
                f"order {order_id} (or for {payment_intent} of another order)."
            )
        tx.run("DELETE FROM order_lines WHERE order_id = ?", (order_id,))
        tx.many(
            f"INSERT INTO order_lines ({_LINES}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    order_id,
                    position,
                    line.item_id,
                    line.title,
                    line.quantity,
                    line.unit_amount,
                    line.line_amount,
                )
                for position, line in enumerate(quote.lines)
            ],
        )
        _write_order(tx, payment_intent, order_id, quote, email, stamp)
        return _quote(
            tx.one(f"SELECT {_QUOTES} FROM quotes WHERE payment_intent = ?", (payment_intent,))
        )

    def quote_for(self, payment_intent: str) -> dict | None:
        """The quote recorded for a PaymentIntent, with its ``lines``, or None."""
        rows = self._read(
            f"SELECT {_QUOTES} FROM quotes WHERE payment_intent = ?", (payment_intent,)
        )
        return self._with_lines(rows[0]) if rows else None

    def quote_for_attempt(self, attempt_id: str) -> dict | None:
        """The quote of a checkout attempt (and so its PaymentIntent), or None."""
        rows = self._read(f"SELECT {_QUOTES} FROM quotes WHERE attempt_id = ?", (attempt_id,))
        return self._with_lines(rows[0]) if rows else None

    def attempts_beside(
        self,
        payment_intent: str,
        *,
        limit: int = MAX_BESIDE,
        before: tuple[str, str] | None = None,
    ) -> list[dict]:
        """The other checkout attempts of the cart whose attempt ``payment_intent`` pays, in the
        same payment of that cart, not settled and not known canceled: ``payment_intent``,
        ``attempt_id`` and ``created``, newest first (by ``created``, then ``payment_intent``),
        ``limit`` at most; with ``before`` (a ``(created, payment_intent)`` of an earlier page's
        last row), only those after it in that order. All of them: ``each_attempt_beside``.

        The same payment of the cart: the same ``generation`` of it (the cart's when each
        attempt's first quote was recorded, which only ``settle_cart`` moves on), whatever the
        clocks of the processes that wrote them say. A quote recorded before the ledger kept
        generations (NULL) falls back to the times: no quote of the cart was settled between
        the two attempts' first quotes.
        """
        after, params = "", ()
        if before is not None:
            after = " AND (q.created < ? OR (q.created = ? AND q.payment_intent < ?))"
            params = (before[0], before[0], before[1])
        return self._read(
            f"""SELECT q.payment_intent, q.attempt_id, q.created FROM quotes q
            JOIN quotes me ON q.cart_id = me.cart_id
            WHERE me.payment_intent = ? AND q.payment_intent <> me.payment_intent
            AND q.attempt_id IS NOT NULL AND q.settled_at IS NULL AND q.canceled_at IS NULL
            AND (q.generation = me.generation
                OR ((q.generation IS NULL OR me.generation IS NULL)
                AND NOT EXISTS (SELECT 1 FROM quotes s WHERE s.cart_id = me.cart_id
                    AND s.settled_at IS NOT NULL
                    AND s.settled_at > CASE WHEN q.created < me.created
                        THEN q.created ELSE me.created END
                    AND s.settled_at <= CASE WHEN q.created < me.created
                        THEN me.created ELSE q.created END))){after}
            ORDER BY q.created DESC, q.payment_intent DESC LIMIT ?""",
            (payment_intent, *params, limit),
        )

    def each_attempt_beside(self, payment_intent: str) -> Iterator[dict]:
        """Every attempt ``attempts_beside`` has for ``payment_intent``, however many, newest
        first, read a page (``MAX_BESIDE``) at a time: those the caller marks canceled
        meanwhile (or that stay open, authorized or processing) neither repeat nor end it."""
        before = None
        while True:
            page = self.attempts_beside(payment_intent, before=before)
            yield from page
            if len(page) < MAX_BESIDE:
                return
            before = (page[-1]["created"], page[-1]["payment_intent"])

    def mark_canceled(self, payment_intent: str) -> None:
        """Note that Stripe has ``payment_intent`` canceled (it stays so): the attempts beside
        a paid one leave it out, and it is not retrieved again for them."""
        self.backend.write_one(
            "UPDATE quotes SET canceled_at = ? WHERE payment_intent = ? AND canceled_at IS NULL",
            (now_iso(), payment_intent),
        )

    def _with_lines(self, quote: dict) -> dict:
        return {**_quote(quote), "lines": self.order_lines(quote["order_id"])}

    def quotes_for_intents(self, intent_ids: Iterable[str]) -> dict[str, dict]:
        """The quotes of several PaymentIntents at once (without lines), by PaymentIntent id:
        one query per few hundred, for a page of a list or a batch of an export."""
        found: dict[str, dict] = {}
        ids = list(dict.fromkeys(intent_ids))
        for start in range(0, len(ids), MAX_IN):
            chunk = ids[start : start + MAX_IN]
            marks = ", ".join("?" * len(chunk))
            rows = self._read(
                f"SELECT {_QUOTES} FROM quotes WHERE payment_intent IN ({marks})", chunk
            )
            found.update((row["payment_intent"], _quote(row)) for row in rows)
        return found

    def order_lines(self, order_id: str) -> list[dict]:
        """An order's lines in their order (empty for an order that has none recorded)."""
        return self._read(
            f"SELECT {_LINES} FROM order_lines WHERE order_id = ? ORDER BY position", (order_id,)
        )

    def lines_for_orders(self, order_ids: Iterable[str]) -> dict[str, list[dict]]:
        """The lines of several orders at once, by order id (a page of a list, a batch of an
        export): one query per few hundred orders, not one per order."""
        found: dict[str, list[dict]] = {}
        ids = list(dict.fromkeys(order_ids))
        for start in range(0, len(ids), MAX_IN):
            chunk = ids[start : start + MAX_IN]
            marks = ", ".join("?" * len(chunk))
            rows = self._read(
                f"SELECT {_LINES} FROM order_lines WHERE order_id IN ({marks}) "
                "ORDER BY order_id, position",
                chunk,
            )
            for row in rows:
                found.setdefault(row["order_id"], []).append(row)
        return found


def new_order_id() -> str:
    """An order id for a PaymentIntent whose metadata names none (or another's order)."""
    return "ord_" + secrets.token_hex(8)


def lock_order_id(tx, order_id: str) -> None:
    """Take, for the rest of the transaction, the turn of ``order_id``'s writers (PostgreSQL;
    SQLite's writers take turns anyway): recording a quote under it, and an event's order that
    its quote or its metadata names, before either touches a row. Without it, a stray
    PaymentIntent's first event (its order under the id, from its metadata) and the answered
    PaymentIntent's quote could each find no order under the id and both write one, or lock the
    order and the quote in turn each in its own order (a deadlock)."""
    tx.one("SELECT {lock_key} AS locked", (order_id,))


def _lock_orders(tx, payment_intent: str, order_id: str) -> None:
    """Lock (PostgreSQL) the orders of ``payment_intent`` and of ``order_id``, in id order."""
    tx.all(
        "SELECT id FROM orders WHERE payment_intent = ? OR id = ? ORDER BY id{for_update}",
        (payment_intent, order_id),
    )


def claim_order_id(tx, order_id: str, payment_intent: str, stamp: str) -> str | None:
    """Make ``order_id`` free for ``payment_intent``'s order, whose quote (answered to the
    shopper) names it: the quote owns the id. An order under that id of another PaymentIntent
    that has no quote and is not fulfilled (a stray: an attempt's PaymentIntent whose creation
    lost its answer, never recorded, then canceled, say, whose event wrote it under the id its
    metadata names) moves to an id of its own, with what is keyed by it (its lines, when no
    quote names them, its disputes and tax records). The stray's new id, or None.

    An order that is fulfilled, or has a quote of its own, keeps its id (its quote is refused,
    ``QuoteFrozen``, or conflicts, before this). Its row is locked (PostgreSQL) and moved in
    the caller's transaction."""
    stray = tx.one(
        """SELECT payment_intent FROM orders o WHERE o.id = ? AND o.payment_intent <> ?
        AND o.fulfilled_at IS NULL
        AND NOT EXISTS (SELECT 1 FROM quotes q WHERE q.payment_intent = o.payment_intent)
        AND NOT EXISTS (SELECT 1 FROM fulfilments f WHERE f.order_id = o.id){for_update}""",
        (order_id, payment_intent),
    )
    if stray is None:
        return None
    fresh = new_order_id()
    tx.run("UPDATE orders SET id = ?, updated = ? WHERE id = ?", (fresh, stamp, order_id))
    if not tx.one("SELECT 1 AS found FROM quotes WHERE order_id = ?", (order_id,)):
        tx.run("UPDATE order_lines SET order_id = ? WHERE order_id = ?", (fresh, order_id))
    for table in ("disputes", "tax_records"):
        tx.run(
            f"UPDATE {table} SET order_id = ? WHERE order_id = ? AND payment_intent = ?",
            (fresh, order_id, stray["payment_intent"]),
        )
    return fresh


def _write_order(tx, payment_intent: str, order_id: str, quote, email, stamp: str) -> None:
    """The order ``quote`` is for, in the quote's transaction: made ``pending`` when the ledger
    has none for ``payment_intent``, with the quote's total, currency and book (one copy of one
    book, as the PaymentIntent's ``item_id`` names it; none for more); and while it is still
    ``REPRICED``, brought to the quote again (a cart changed before the payment was confirmed).
    Its status is left as it is: only events move it, forward. An order further on keeps what
    the retrieved PaymentIntent said.

    Insert-or-nothing, as ``Ledger._upsert``: a webhook event recording the same order at once
    must not fail on a unique key. The id is the quote's: a stray order of another
    PaymentIntent under it was moved off it first (``claim_order_id``).
    """
    single = quote.lines[0] if len(quote.lines) == 1 and quote.lines[0].quantity == 1 else None
    item = single.item_id if single is not None else None
    inserted = tx.run(
        """INSERT INTO orders (id, payment_intent, item_id, amount, currency, email, status,
        amount_refunded, created, updated) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)
        ON CONFLICT DO NOTHING""",
        (order_id, payment_intent, item, quote.total, quote.currency, email, stamp, stamp),
    )
    if inserted:
        return
    marks = ", ".join("?" * len(REPRICED))
    tx.run(
        f"""UPDATE orders SET item_id = ?, amount = ?, currency = ?,
        email = COALESCE(?, email), updated = ?
        WHERE payment_intent = ? AND id = ? AND status IN ({marks})""",
        (item, quote.total, quote.currency, email, stamp, payment_intent, order_id, *REPRICED),
    )


def _quote_refusal(tx, order_id: str, payment_intent: str, version: int | None) -> Exception | None:
    """QuoteFrozen when the order is fulfilled, QuoteStale when ``version`` is not newer than
    the recorded one (read under a lock on PostgreSQL, so versions recorded at once are compared
    in turn), else None."""
    fulfilled = tx.one(
        "SELECT fulfilled_at FROM orders WHERE id = ? AND fulfilled_at IS NOT NULL", (order_id,)
    )
    if fulfilled:
        return QuoteFrozen(f"order {order_id} is fulfilled")
    if version is not None:
        held = tx.one(
            "SELECT version FROM quotes WHERE payment_intent = ?{for_update}", (payment_intent,)
        )
        if held is not None and held["version"] >= version:
            return QuoteStale(held["version"])
    return None


def _quote(row: dict) -> dict:
    """A quote row with its address as Stripe's shape (a dict), or None."""
    address = row.get("address")
    return {**row, "address": json.loads(address) if address else None}


class SalesQueries:
    """What ``bookpay.report`` reads: fulfilled orders of a period with their lines, and the
    shipping and tax of their quotes."""

    def iter_fulfilled(self, since: str | None = None, until: str | None = None, *, batch=1000):
        """Fulfilled orders (``fulfilled_at`` in [since, until), ISO times), oldest first, each
        with its ``lines`` (and, disputed or lost, its ``disputes``): a batch of orders and
        their lines at a time, each batch read through the ``orders_fulfilled`` index, so a
        period costs what its orders cost."""
        clauses, params = ["fulfilled_at IS NOT NULL"], []
        if since is not None:
            clauses.append("fulfilled_at >= ?")
            params.append(since)
        if until is not None:
            clauses.append("fulfilled_at < ?")
            params.append(until)
        after: tuple | None = None
        while True:
            where = list(clauses)
            args = list(params)
            if after is not None:
                where.append("(fulfilled_at, {seq}) > (?, ?)")
                args.extend(after)
            rows = self._read(
                "SELECT id, payment_intent, fulfilled_at, currency, amount, amount_captured, "
                "amount_refunded, status, {seq} AS seq FROM orders WHERE " + " AND ".join(where)
                + " ORDER BY fulfilled_at, {seq} LIMIT ?",
                [*args, batch],
            )  # fmt: skip
            if not rows:
                return
            lines = self.lines_for_orders(row["id"] for row in rows)
            quotes = self.quotes_for_intents(row["payment_intent"] for row in rows)
            failed = self.failed_reversals_for_orders(row["id"] for row in rows)
            disputes = self.disputes_for_orders(
                row["id"] for row in rows if row["status"] in ("disputed", "dispute_lost")
            )
            for row in rows:
                quote = quotes.get(row["payment_intent"]) or {}
                yield {
                    **row,
                    "lines": lines.get(row["id"], []),
                    "shipping": quote.get("shipping", 0),
                    "tax": quote.get("tax", 0),
                    "failed_reversals": failed.get(row["id"], []),
                    "disputes": disputes.get(row["id"], []),
                }
            if len(rows) < batch:
                return
            after = (rows[-1]["fulfilled_at"], rows[-1]["seq"])
