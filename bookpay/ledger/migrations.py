"""The ledger's schema, as numbered migrations run in order on either database.

Each migration upgrades the schema by one version. Never edit a shipped one: append a new one, so
a ledger written by any earlier bookpay opens with this one. A migration is one tuple of
statements per backend; most are the same text, and where the databases differ (SQLite's
implicit ``rowid`` against PostgreSQL's identity column ``seq``, which order rows the same way)
each has its own. The backends record the version (SQLite: ``PRAGMA user_version``;
PostgreSQL: the ``bookpay_schema`` table) in the same transaction as the statements.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    summary: str
    sqlite: tuple[str, ...]
    postgresql: tuple[str, ...]

    def statements(self, kind: str) -> tuple[str, ...]:
        return self.sqlite if kind == "sqlite" else self.postgresql


def _tables(seq_column: str, bigint: str) -> tuple[str, ...]:
    """Version 1, as shipped for SQLite; PostgreSQL adds an explicit ``seq`` to order by."""
    return (
        f"""CREATE TABLE orders (
            {seq_column}id TEXT PRIMARY KEY,
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
        f"""CREATE TABLE events (
            {seq_column}id TEXT PRIMARY KEY,
            type TEXT NOT NULL,
            payment_intent TEXT,
            created {bigint},
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
    )


def _carts_and_lines(fulfilled_index: str) -> tuple[str, ...]:
    """Version 3: order lines (one per book of an order; each earlier order, which was one copy
    of one book, becomes one line), the quote each PaymentIntent holds, and carts."""
    return (
        """CREATE TABLE order_lines (
            order_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            item_id TEXT NOT NULL,
            title TEXT,
            quantity INTEGER NOT NULL,
            unit_amount INTEGER NOT NULL,
            line_amount INTEGER NOT NULL,
            PRIMARY KEY (order_id, position)
        )""",
        # The title was not kept before: shown from the catalog while it still sells the book.
        """INSERT INTO order_lines
            (order_id, position, item_id, title, quantity, unit_amount, line_amount)
            SELECT id, 0, item_id, NULL, 1, amount, amount FROM orders
            WHERE item_id IS NOT NULL AND amount IS NOT NULL""",
        """CREATE TABLE quotes (
            payment_intent TEXT PRIMARY KEY,
            order_id TEXT NOT NULL UNIQUE,
            attempt_id TEXT UNIQUE,
            cart_id TEXT,
            currency TEXT NOT NULL,
            subtotal INTEGER NOT NULL,
            shipping INTEGER NOT NULL DEFAULT 0,
            tax INTEGER NOT NULL DEFAULT 0,
            total INTEGER NOT NULL,
            shipping_rate TEXT,
            created TEXT NOT NULL,
            updated TEXT NOT NULL,
            settled_at TEXT
        )""",
        """CREATE TABLE carts (
            id TEXT PRIMARY KEY,
            token_hash TEXT NOT NULL UNIQUE,
            generation INTEGER NOT NULL DEFAULT 0,
            created TEXT NOT NULL,
            updated TEXT NOT NULL
        )""",
        "CREATE INDEX carts_updated ON carts (updated)",
        """CREATE TABLE cart_items (
            cart_id TEXT NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
            item_id TEXT NOT NULL,
            title TEXT NOT NULL,
            currency TEXT NOT NULL,
            quantity INTEGER NOT NULL CHECK (quantity > 0),
            position INTEGER NOT NULL,
            PRIMARY KEY (cart_id, item_id)
        )""",
        # `bookpay report sales --since/--until` reads the fulfilments of a period through this.
        fulfilled_index,
    )


def _shipping_and_tax() -> tuple[str, ...]:
    """Version 4: what a quote was priced for (the address, the quote's version, Stripe Tax's
    calculation), and the tax records owed to Stripe Tax (a transaction per paid order with a
    calculation, a reversal per refund), kept until Stripe has them."""
    return (
        "ALTER TABLE quotes ADD COLUMN address TEXT",
        "ALTER TABLE quotes ADD COLUMN tax_calculation TEXT",
        "ALTER TABLE quotes ADD COLUMN version INTEGER NOT NULL DEFAULT 0",
        """CREATE TABLE tax_records (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            order_id TEXT NOT NULL,
            payment_intent TEXT NOT NULL,
            calculation TEXT,
            refund TEXT,
            amount INTEGER,
            status TEXT NOT NULL DEFAULT 'pending',
            stripe_id TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,
            last_error TEXT,
            created TEXT NOT NULL,
            recorded_at TEXT
        )""",
        "CREATE INDEX tax_records_due ON tax_records (status, next_attempt_at)",
        "CREATE INDEX tax_records_order ON tax_records (order_id)",
    )


def _disputes_and_failed_refunds() -> tuple[str, ...]:
    """Version 5: an order's disputes, each at the status Stripe last gave it (so a closed one
    never reopens, and the order says open, won or lost), the one the order shows on the order
    itself; and, on a reversal, when the refund it reversed tax for failed afterwards."""
    return (
        """CREATE TABLE disputes (
            id TEXT PRIMARY KEY,
            order_id TEXT NOT NULL,
            payment_intent TEXT NOT NULL,
            status TEXT NOT NULL,
            reason TEXT,
            amount INTEGER,
            currency TEXT,
            created TEXT NOT NULL,
            updated TEXT NOT NULL
        )""",
        "CREATE INDEX disputes_order ON disputes (order_id)",
        "ALTER TABLE orders ADD COLUMN dispute_status TEXT",
        "ALTER TABLE tax_records ADD COLUMN refund_failed_at TEXT",
    )


def _captured() -> tuple[str, ...]:
    """Version 6: what a partial capture took of an order's amount (NULL: all of it, or
    nothing taken yet), so the money a Charge took, and refunds of it, are the order's own."""
    return ("ALTER TABLE orders ADD COLUMN amount_captured INTEGER",)


def _reversed() -> tuple[str, ...]:
    """Version 7: what a reversal took back in Stripe Tax (its refund's amount less what
    reversals of refunds that failed had taken back already), so none takes back too much."""
    return ("ALTER TABLE tax_records ADD COLUMN reversed INTEGER",)


def _not_fulfilled_and_planned_reversals() -> tuple[str, ...]:
    """Version 8: when an order's fulfilment was refused for good (it will never be fulfilled),
    kept apart from its note, which a later event rewrites (the orders of earlier versions
    whose note still says so get it now); and what a reversal sends Stripe Tax (NULL: a full
    reversal), fixed with what it takes back (``reversed``) at its first try, so that every try
    sends the same body under its one idempotency key."""
    return (
        "ALTER TABLE orders ADD COLUMN not_fulfilled_at TEXT",
        """UPDATE orders SET not_fulfilled_at = updated
        WHERE fulfilled_at IS NULL AND note LIKE 'not fulfilled:%'""",
        "ALTER TABLE tax_records ADD COLUMN send_amount INTEGER",
    )


def _refusal_reasons() -> tuple[str, ...]:
    """Version 9: why an order's fulfilment was refused (``fulfilment_refused``:
    ``refunded_first``, ``disputed_first`` or ``mismatch``, ``model.REFUSED_*``), kept apart
    from its note, which a later dispute rewrites. An order of an earlier version refused and
    not fulfilled whose note still says why gets it from the note; one whose note a dispute
    rewrote since keeps ``not_fulfilled_at`` with no reason (it cannot be told any more). And
    the reversals whose refund failed afterwards, a few among many, get an index of their own:
    the default `bookpay report tax` lists them beside the refused and owed records (an OR
    that each database answers from two indexes, ``tax_records_due`` and this one)."""
    return (
        "ALTER TABLE orders ADD COLUMN fulfilment_refused TEXT",
        # The notes as bookpay wrote them (model.REFUNDED_FIRST, DISPUTED_FIRST); any other
        # "not fulfilled: ..." note was a PaymentIntent not paying what its quote asked.
        """UPDATE orders SET fulfilment_refused = CASE note
            WHEN 'not fulfilled: refunded in full before it was fulfilled' THEN 'refunded_first'
            WHEN 'not fulfilled: disputed before it was fulfilled' THEN 'disputed_first'
            ELSE 'mismatch' END
        WHERE fulfilled_at IS NULL AND not_fulfilled_at IS NOT NULL
        AND note LIKE 'not fulfilled:%'""",
        """CREATE INDEX tax_records_refund_failed ON tax_records (status)
        WHERE refund_failed_at IS NOT NULL""",
    )


def _cart_payments() -> tuple[str, ...]:
    """Version 10: which payment of its cart a quote is for (``generation``: the cart's
    generation when the attempt's first quote was recorded; NULL for the quotes of earlier
    versions, which were not told), and when the shop saw a quote's PaymentIntent canceled
    (``canceled_at``): the attempts beside a paid one are read through the cart and its
    payment, and those known canceled are not asked of Stripe again."""
    return (
        "ALTER TABLE quotes ADD COLUMN generation INTEGER",
        "ALTER TABLE quotes ADD COLUMN canceled_at TEXT",
        "CREATE INDEX quotes_cart_generation ON quotes (cart_id, generation)",
    )


def _sibling_cancels() -> tuple[str, ...]:
    """Version 11: the canceling owed once a cart is paid, of its other attempts' PaymentIntents
    (one row per settled PaymentIntent, written in the transaction that settles its cart), so
    that it outlives the process that settled the cart: whichever process runs the workers next
    claims it (``claimed_by``, ``claimed_until``, as receipts are claimed, on both databases),
    makes the Stripe calls, and marks it ``done``, or due again later (``attempts``,
    ``next_attempt_at``, ``last_error``), or (until version 12) ``given_up``."""
    return (
        """CREATE TABLE sibling_cancels (
            payment_intent TEXT PRIMARY KEY,
            cart_id TEXT,
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,
            claimed_by TEXT,
            claimed_until TEXT,
            last_error TEXT,
            created TEXT NOT NULL,
            done_at TEXT
        )""",
        "CREATE INDEX sibling_cancels_due ON sibling_cancels (status, next_attempt_at)",
    )


# The time now, and a week ago, in the ledger's format (``2026-01-31T09:30:00.000Z``).
_SQLITE_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now'{})"
_PG_NOW = """to_char((now(){}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"""


def _siblings_owed(now: str, week_ago: str) -> tuple[str, ...]:
    """Version 12: what versions before 11 never owed, and what 11 gave up. A cart paid in the
    last 7 days by a ledger before version 11 whose other attempts of that payment are still
    open owes their canceling (the canceler retrieves each from Stripe and decides: a quote
    from before generations is owed when in doubt, ``attempts_beside`` then goes by the times).
    And a row version 11 gave up after a few tries while Stripe was unavailable is owed again,
    due at once: a sibling on its 3-D Secure page can be charged for as long as it is open, and
    rows are no longer given up."""
    return (
        f"""INSERT INTO sibling_cancels (payment_intent, cart_id, created, next_attempt_at)
        SELECT q.payment_intent, q.cart_id, {now}, {now} FROM quotes q
        WHERE q.settled_at IS NOT NULL AND q.cart_id IS NOT NULL AND q.settled_at >= {week_ago}
        AND NOT EXISTS (SELECT 1 FROM sibling_cancels c WHERE c.payment_intent = q.payment_intent)
        AND EXISTS (SELECT 1 FROM quotes s WHERE s.cart_id = q.cart_id
            AND s.payment_intent <> q.payment_intent AND s.attempt_id IS NOT NULL
            AND s.settled_at IS NULL AND s.canceled_at IS NULL
            AND (s.generation = q.generation OR s.generation IS NULL OR q.generation IS NULL))""",
        f"""UPDATE sibling_cancels SET status = 'pending', next_attempt_at = {now},
        done_at = NULL, claimed_by = NULL, claimed_until = NULL WHERE status = 'given_up'""",
    )


def _paid_at() -> tuple[str, ...]:
    """Version 14: when an order was paid (its Charge's ``created``, from the PaymentIntent
    retrieved at fulfilment), which its receipt says: not its fulfilment, which may come hours
    later (a stopped server catching up, an event redelivered late). NULL for the orders of
    earlier versions, whose receipts said their fulfilment's time."""
    return ("ALTER TABLE orders ADD COLUMN paid_at TEXT",)


def _pending_orders() -> tuple[str, ...]:
    """Version 13: an order for every quote that has none, ``pending`` (``canceled`` when the
    shop saw its PaymentIntent canceled), with the quote's total, currency and times, and its
    book when it is one copy of one book: versions before 13 wrote an order only when a webhook
    event about its payment came, so a checkout abandoned (or whose events were late) had an
    order id in its PaymentIntent, its answer and its quote, and no order. The quote's order id
    is kept unless another PaymentIntent's order has it (that quote keeps none). The events
    still to come move these orders forward, as any other."""
    return (
        """INSERT INTO orders (id, payment_intent, item_id, amount, currency, status,
            amount_refunded, created, updated)
        SELECT q.order_id, q.payment_intent,
            (SELECT l.item_id FROM order_lines l WHERE l.order_id = q.order_id
                AND l.quantity = 1
                AND NOT EXISTS (SELECT 1 FROM order_lines m
                    WHERE m.order_id = q.order_id AND m.position <> l.position)),
            q.total, q.currency,
            CASE WHEN q.canceled_at IS NULL THEN 'pending' ELSE 'canceled' END,
            0, q.created, q.updated
        FROM quotes q
        WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.payment_intent = q.payment_intent)
        AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = q.order_id)""",
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "orders, events, fulfilments and receipts",
        sqlite=_tables("", "INTEGER"),  # exactly as shipped
        postgresql=_tables(
            "seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,\n            ", "BIGINT"
        ),
    ),
    Migration(
        "indexes for paging and filters; receipt claims carry the claiming process",
        # Newest-first paging reads (created, seq) backwards; each filter has an index that
        # starts with its column and ends in that order, so a page costs the same at any size.
        # In SQLite every index ends in the rowid already.
        sqlite=(
            "DROP INDEX orders_status",
            "CREATE INDEX orders_created ON orders (created)",
            "CREATE INDEX orders_status_created ON orders (status, created)",
            "CREATE INDEX orders_email_created ON orders (lower(email), created)",
            "ALTER TABLE receipts ADD COLUMN claimed_by TEXT",
        ),
        postgresql=(
            "DROP INDEX orders_status",
            "CREATE INDEX orders_created ON orders (created, seq)",
            "CREATE INDEX orders_status_created ON orders (status, created, seq)",
            "CREATE INDEX orders_email_created ON orders (lower(email), created, seq)",
            "CREATE INDEX events_intent_seq ON events (payment_intent, received_at, seq)",
            "DROP INDEX events_intent",
            "ALTER TABLE receipts ADD COLUMN claimed_by TEXT",
        ),
    ),
    Migration(
        "order lines (earlier orders become one line each), quotes and carts",
        sqlite=_carts_and_lines("CREATE INDEX orders_fulfilled ON orders (fulfilled_at)"),
        postgresql=_carts_and_lines("CREATE INDEX orders_fulfilled ON orders (fulfilled_at, seq)"),
    ),
    Migration(
        "quotes keep their address, version and tax calculation; tax records owed to Stripe Tax",
        sqlite=_shipping_and_tax(),
        postgresql=_shipping_and_tax(),
    ),
    Migration(
        "disputes and their outcome; reversals whose refund failed afterwards",
        sqlite=_disputes_and_failed_refunds(),
        postgresql=_disputes_and_failed_refunds(),
    ),
    Migration(
        "orders keep what a partial capture took",
        sqlite=_captured(),
        postgresql=_captured(),
    ),
    Migration(
        "reversals keep what they took back in Stripe Tax",
        sqlite=_reversed(),
        postgresql=_reversed(),
    ),
    Migration(
        "orders keep that they will never be fulfilled; reversals keep what they send",
        sqlite=_not_fulfilled_and_planned_reversals(),
        postgresql=_not_fulfilled_and_planned_reversals(),
    ),
    Migration(
        "orders keep why their fulfilment was refused; reversals whose refund failed indexed",
        sqlite=_refusal_reasons(),
        postgresql=_refusal_reasons(),
    ),
    Migration(
        "quotes keep the payment of their cart they are for, and when they were canceled",
        sqlite=_cart_payments(),
        postgresql=_cart_payments(),
    ),
    Migration(
        "the canceling of a paid cart's other payments is owed in the ledger",
        sqlite=_sibling_cancels(),
        postgresql=_sibling_cancels(),
    ),
    Migration(
        "carts paid in the last week owe their other payments' canceling; none is given up",
        sqlite=_siblings_owed(_SQLITE_NOW.format(""), _SQLITE_NOW.format(", '-7 days'")),
        postgresql=_siblings_owed(_PG_NOW.format(""), _PG_NOW.format(" - interval '7 days'")),
    ),
    Migration(
        "an order, pending, for every quote that has none",
        sqlite=_pending_orders(),
        postgresql=_pending_orders(),
    ),
    Migration(
        "orders keep when they were paid",
        sqlite=_paid_at(),
        postgresql=_paid_at(),
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
# In foreign-key order.
TABLES = (
    "orders",
    "events",
    "fulfilments",
    "receipts",
    "order_lines",
    "quotes",
    "carts",
    "cart_items",
    "tax_records",
    "disputes",
    "sibling_cancels",
)
