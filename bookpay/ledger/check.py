"""`bookpay ledger check`: the database's own integrity checks, then the ledger's invariants;
and ``describe_ledger``, what `bookpay config check` says of the ledger.

Each invariant is one query that counts the rows breaking it and shows a few of them, so a
check of a large ledger reads it through its indexes and never loads it whole:

- one fulfilment per fulfilled order, and none for an order that is not marked fulfilled;
- a fulfilled order is at least ``paid``, and was fulfilled for its own amount and currency;
- one receipt per fulfilment;
- a fulfilled order whose quote was taxed by Stripe Tax owes (or has recorded) its tax
  transaction;
- every status is one the ledger knows, and no order's status is behind an event it handled
  (``EVENT_FLOOR``). A floor is what the object handling retrieved from Stripe proves, never
  the event's type alone: a validly signed event can name a PaymentIntent that is not what its
  type says (forged, or meant for one since gone), and handling records Stripe's state, not the
  type's. So the handler marks an event with a floor *handled* only when what it retrieved
  bears the floor out (``bears_out``): a ``payment_intent.succeeded`` once it has fulfilled a
  succeeded PaymentIntent, a ``canceled`` or ``amount_capturable_updated`` when the
  PaymentIntent is at least canceled or authorized (otherwise the order still follows Stripe,
  and the event's outcome says why it was not handled); a refund or dispute event always leaves
  the order at least ``paid``, since a Charge with refunds or disputes was paid (a refund event
  for a Charge never captured, a released hold, is not handled). And a floor
  must keep holding whatever Stripe's state becomes: canceled and succeeded PaymentIntents stay
  so, a requires_capture one is only ever captured or canceled, statuses move forward, and a
  refund that fails or a dispute that is won takes an order back to ``paid`` at the lowest.
  ``processing`` and ``payment_failed`` set none: the PaymentIntent can be confirmed again and
  be back at ``requires_action`` (``pending``) by the time the event is handled. (Earlier
  versions marked a ``canceled`` or ``amount_capturable_updated`` event handled whatever the
  PaymentIntent was, so an event they handled may still be reported: `bookpay intent show`
  says what Stripe has.);
- an order not fulfilled because it was refunded in full or disputed first
  (``fulfilment_refused``, never its note, which a later dispute rewrites) is refunded in full
  or disputed still: once the refund fails or the dispute is won and the shop keeps the money,
  the refund or dispute event fulfils it;
- every dispute's status is one Stripe has, and an order with a dispute shows one;
- no quote is for a later payment of its cart (``generation``) than the cart has had;
- every receipt, tax record and dispute is for an order the ledger knows, every paid cart's
  canceling owed (``sibling_cancels``) is for a settled quote and has a known status, and no row
  is dated in the future (beyond ``CLOCK_SKEW``).

A paid order that is not fulfilled is only a warning: its ``succeeded`` event may still be on
its way, or the shop refused it (its ``fulfilment_refused`` and note then say why). So is a tax
record Stripe Tax has not been told of yet: the shop retries it (`bookpay orders show` says why
it failed). And a paid cart whose other attempts' PaymentIntents are still owed their canceling
an hour after its payment (Stripe down or refusing for that long, the shop trying again every
ten minutes; or no worker running), or were given up by an earlier version (``given_up``):
those still open may be for a person to cancel. A cart paid twice (two settled quotes of one of
its payments: ``generation``) is a problem, both PaymentIntents named: one is to be refunded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bookpay.ledger.cancels import CANCEL_STATUSES
from bookpay.ledger.ledger import Ledger, open_ledger
from bookpay.ledger.location import locate, mask_url
from bookpay.ledger.model import (
    DISPUTE_RANK,
    RECEIPT_STATUSES,
    REFUND_STATUSES,
    REFUSED_FOR_NOW,
    STATUS_RANK,
    STATUSES,
    now_iso,
)
from bookpay.ledger.taxrecords import TAX_STATUSES

# The status a handled event proves its order is at, at least, for good (see above): handling
# marks such an event handled only when the object it retrieved bears it out (``bears_out``).
# Not processing nor payment_failed: the PaymentIntent may have been confirmed again since.
EVENT_FLOOR = {
    "payment_intent.amount_capturable_updated": "authorized",
    "payment_intent.canceled": "canceled",
    "payment_intent.succeeded": "paid",
    "charge.refunded": "paid",
    "charge.dispute.created": "paid",
    "charge.dispute.closed": "paid",
}
EXAMPLES = 5


def bears_out(kind: str, status: str) -> bool:
    """Whether an order ``status`` (the one the retrieved PaymentIntent implies, for the webhook
    handler) is at or above the floor of an event of type ``kind``, if it has one."""
    floor = EVENT_FLOOR.get(kind)
    return floor is None or STATUS_RANK.get(status, -1) >= STATUS_RANK[floor]


@dataclass
class Finding:
    name: str
    count: int = 0
    examples: list[str] = field(default_factory=list)


@dataclass
class CheckReport:
    integrity: list[str]
    problems: list[Finding]
    warnings: list[Finding]

    @property
    def ok(self) -> bool:
        return not self.integrity and not any(f.count for f in self.problems)


def _rank(column: str) -> str:
    cases = " ".join(f"WHEN '{status}' THEN {rank}" for status, rank in STATUS_RANK.items())
    return f"(CASE {column} {cases} ELSE -1 END)"


def _floor(column: str) -> str:
    cases = " ".join(
        f"WHEN '{kind}' THEN {STATUS_RANK[status]}" for kind, status in EVENT_FLOOR.items()
    )
    return f"(CASE {column} {cases} ELSE -1 END)"


def _quoted(values) -> str:
    return ", ".join(f"'{value}'" for value in values)


PAID = STATUS_RANK["paid"]
INVARIANTS = (
    (
        "fulfilled orders without a fulfilment",
        """SELECT o.id AS example FROM orders o LEFT JOIN fulfilments f
        ON f.payment_intent = o.payment_intent
        WHERE o.fulfilled_at IS NOT NULL AND f.payment_intent IS NULL""",
    ),
    (
        "fulfilments of orders not marked fulfilled",
        """SELECT f.order_id AS example FROM fulfilments f LEFT JOIN orders o
        ON o.id = f.order_id WHERE o.id IS NULL OR o.fulfilled_at IS NULL
        OR o.payment_intent <> f.payment_intent""",
    ),
    (
        "fulfilled orders below paid",
        f"""SELECT id AS example FROM orders
        WHERE fulfilled_at IS NOT NULL AND {_rank("status")} < {PAID}""",
    ),
    (
        "fulfilments for another amount or currency than the order's",
        """SELECT o.id AS example FROM fulfilments f JOIN orders o ON o.id = f.order_id
        WHERE o.amount <> f.amount OR o.currency <> f.currency""",
    ),
    (
        "fulfilments without a receipt",
        """SELECT f.order_id AS example FROM fulfilments f LEFT JOIN receipts r
        ON r.payment_intent = f.payment_intent WHERE r.payment_intent IS NULL""",
    ),
    (
        "receipts without a fulfilment",
        # Of a known order: a receipt for an unknown one is reported as that, once.
        """SELECT r.order_id AS example FROM receipts r LEFT JOIN fulfilments f
        ON f.payment_intent = r.payment_intent WHERE f.payment_intent IS NULL
        AND r.order_id IN (SELECT id FROM orders)""",
    ),
    (
        "receipts for an unknown order",
        """SELECT r.payment_intent AS example FROM receipts r LEFT JOIN orders o
        ON o.id = r.order_id WHERE o.id IS NULL""",
    ),
    (
        # Known: an order, or the quote a PaymentIntent was created with (recorded first).
        "tax records for an unknown order",
        """SELECT t.id AS example FROM tax_records t WHERE t.order_id NOT IN
        (SELECT id FROM orders) AND t.order_id NOT IN (SELECT order_id FROM quotes)""",
    ),
    (
        # The quote answered to the shopper owns its order id (``lines.claim_order_id``): an
        # order of its PaymentIntent under another id has no lines, and the lines under the
        # quote's id are shown for another order, or none.
        "orders whose payment's quote (and lines) are another order's",
        """SELECT o.id AS example FROM orders o JOIN quotes q
        ON q.payment_intent = o.payment_intent WHERE q.order_id <> o.id""",
    ),
    (
        "orders with an unknown status",
        f"SELECT id AS example FROM orders WHERE status NOT IN ({_quoted(STATUSES)})",
    ),
    (
        "receipts with an unknown status",
        "SELECT order_id AS example FROM receipts "
        f"WHERE status NOT IN ({_quoted(RECEIPT_STATUSES)})",
    ),
    (
        "taxed fulfilments without their tax transaction",
        """SELECT f.order_id AS example FROM fulfilments f
        JOIN quotes q ON q.payment_intent = f.payment_intent
        LEFT JOIN tax_records t ON t.order_id = f.order_id AND t.kind = 'transaction'
        WHERE q.tax_calculation IS NOT NULL AND t.id IS NULL""",
    ),
    (
        "tax records with an unknown status",
        f"SELECT id AS example FROM tax_records WHERE status NOT IN ({_quoted(TAX_STATUSES)})",
    ),
    (
        "disputes with an unknown status",
        f"SELECT id AS example FROM disputes WHERE status NOT IN ({_quoted(DISPUTE_RANK)})",
    ),
    (
        "disputes for an unknown order",
        """SELECT d.id AS example FROM disputes d LEFT JOIN orders o ON o.id = d.order_id
        WHERE o.id IS NULL""",
    ),
    (
        "orders with a dispute that do not show it",
        """SELECT DISTINCT o.id AS example FROM disputes d JOIN orders o ON o.id = d.order_id
        WHERE o.dispute_status IS NULL""",
    ),
    (
        # Not fulfilled because refunded in full (or disputed) first, then the refund failed
        # (or the dispute was won) and the shop kept the money: the refund or dispute event
        # that recorded it fulfils such an order (earlier versions did not). Their
        # payment_intent.succeeded sent again fulfils it. Why it was refused is the order's
        # fulfilment_refused, which no later event rewrites as a dispute does its note.
        "orders refunded in full or disputed before they were fulfilled whose refund failed or "
        "dispute was won (the money kept; send their payment_intent.succeeded event again)",
        f"""SELECT id AS example FROM orders WHERE fulfilled_at IS NULL
        AND fulfilment_refused IN ({_quoted(REFUSED_FOR_NOW)})
        AND status IN ({_quoted(REFUND_STATUSES[:2])})""",
    ),
    (
        # A quote takes its cart's generation, which only goes up: a later one was written
        # by hand, or the cart was copied back over from an older ledger.
        "quotes for a later payment of their cart than the cart has had",
        """SELECT q.order_id AS example FROM quotes q JOIN carts c ON c.id = q.cart_id
        WHERE q.generation > c.generation""",
    ),
    (
        "paid carts' cancelings with an unknown status",
        "SELECT payment_intent AS example FROM sibling_cancels "
        f"WHERE status NOT IN ({_quoted(CANCEL_STATUSES)})",
    ),
    (
        # Owed by settle_cart, in the transaction that settles the quote.
        "paid carts' cancelings for a PaymentIntent with no settled quote",
        """SELECT c.payment_intent AS example FROM sibling_cancels c LEFT JOIN quotes q
        ON q.payment_intent = c.payment_intent WHERE q.settled_at IS NULL""",
    ),
    (
        # Each payment of a cart (its generation) is paid by one of its attempts; the canceler
        # cancels the others. Two settled: a tab left open (on its 3-D Secure page, say) was
        # paid beside the first, and the shopper charged twice. Both named, one to refund.
        "carts paid twice (two payments of one checkout of the cart: refund one)",
        """SELECT a.payment_intent || ' and ' || b.payment_intent AS example
        FROM quotes a JOIN quotes b ON b.cart_id = a.cart_id AND b.generation = a.generation
        AND b.payment_intent > a.payment_intent
        WHERE a.settled_at IS NOT NULL AND b.settled_at IS NOT NULL""",
    ),
    (
        "orders behind an event they handled",
        f"""SELECT o.id AS example FROM events e JOIN orders o
        ON o.payment_intent = e.payment_intent
        WHERE e.handled = 1 AND {_rank("o.status")} < {_floor("e.type")}""",
    ),
)
WARNINGS = (
    (
        # Every quote's PaymentIntent has its order, written with the quote; none when its id
        # is another PaymentIntent's order, one further on than a stray's (never moved), or
        # one an older version wrote (schema 13 gave such quotes no order). Its first event
        # writes it under an id of its own.
        "quotes whose payment has no order yet (its order id is another payment's)",
        """SELECT q.payment_intent AS example FROM quotes q LEFT JOIN orders o
        ON o.payment_intent = q.payment_intent WHERE o.payment_intent IS NULL""",
    ),
    (
        # A fulfilment records the lines (the quote's, else what the metadata names, priced
        # from the catalog): none when the book is no longer sold, or the order lost them.
        "fulfilled orders with no lines (their receipt lists no book; the sales report counts "
        "them as an unknown book)",
        """SELECT o.id AS example FROM orders o WHERE o.fulfilled_at IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = o.id)""",
    ),
    (
        "paid orders not fulfilled (waiting for payment_intent.succeeded, or refused)",
        f"""SELECT id AS example FROM orders WHERE fulfilled_at IS NULL
        AND {_rank("status")} >= {PAID} AND not_fulfilled_at IS NULL""",
    ),
    (
        "tax records not yet told to Stripe Tax (retried; `bookpay orders show` says why)",
        "SELECT order_id AS example FROM tax_records WHERE status = 'pending'",
    ),
    (
        "tax records Stripe Tax refused (record them by hand; `bookpay orders show` says why)",
        "SELECT order_id AS example FROM tax_records WHERE status = 'refused'",
    ),
)
# A paid cart's canceling owed this long after the payment is worth a person's look.
LONG_OWED = 3600  # seconds
OWED_LONG = (
    "paid carts whose other payments are still not all canceled an hour after the payment "
    "(tried again every 10 minutes: the log says why; is a worker running? Cancel those still "
    "open in the Dashboard)"
)


def _owed_long(since: str) -> str:
    """Rows still owed since before ``since`` (Stripe down or refusing for long, or no worker
    running), and those an earlier version gave up (``given_up``)."""
    return f"""SELECT payment_intent AS example FROM sibling_cancels WHERE status = 'given_up'
    OR (status = 'pending' AND created <= '{since}')"""


# When each row says it happened (not when it is next due: a receipt's next attempt, a claim).
DATED = {
    "orders": ("id", ("created", "updated", "fulfilled_at", "not_fulfilled_at")),
    "events": ("id", ("received_at", "processed_at")),
    "fulfilments": ("order_id", ("fulfilled_at",)),
    "receipts": ("order_id", ("created", "sent_at")),
    "quotes": ("order_id", ("created", "updated", "settled_at", "canceled_at")),
    "carts": ("id", ("created", "updated")),
    "tax_records": ("id", ("created", "recorded_at")),
    "disputes": ("id", ("created", "updated")),
    "sibling_cancels": ("payment_intent", ("created", "done_at")),
}
# Clocks of the machines sharing a ledger may differ by this much.
CLOCK_SKEW = 300  # seconds


def _future(now: str) -> str:
    """The rows dated after ``now`` (a clock set wrong, rows written by hand), each once."""
    return " UNION ALL ".join(
        f"SELECT '{table} ' || {key} AS example FROM {table} WHERE "
        + " OR ".join(f"{column} > '{now}'" for column in columns)
        for table, (key, columns) in DATED.items()
    )


def check_ledger(ledger: Ledger) -> CheckReport:
    future = ("rows dated in the future", _future(now_iso(CLOCK_SKEW)))
    return CheckReport(
        integrity=ledger.backend.integrity_problems(),
        problems=[_find(ledger, name, sql) for name, sql in (*INVARIANTS, future)],
        warnings=[
            _find(ledger, name, sql)
            for name, sql in (*WARNINGS, (OWED_LONG, _owed_long(now_iso(-LONG_OWED))))
        ],
    )


def _find(ledger: Ledger, name: str, sql: str) -> Finding:
    count = ledger._scalar(f"SELECT COUNT(*) FROM ({sql}) found")
    examples = [row["example"] for row in ledger._read(f"{sql} LIMIT {EXAMPLES}")] if count else []
    return Finding(name, count, examples)


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
        # Masked before anything is tried: a URL that cannot be read still shows no password.
        "where": mask_url(settings.database_url)
        if settings.database_url
        else str(settings.data_dir),
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
