"""What the ledger knows about orders, whatever the database: statuses and PaymentIntent fields.

Order status moves forward, by ``STATUS_RANK``, with one exception (refunds, below):

    pending < processing < failed < authorized < canceled < paid
            < partially_refunded < refunded < disputed < dispute_lost

- a late ``processing`` (or ``payment_failed``) never undoes ``paid``;
- ``failed`` is above ``processing`` because a bank debit that was processing can fail, and below
  ``authorized`` and ``paid`` because a PaymentIntent whose card was declined can be confirmed
  again with another card and then be authorized or succeed (a late ``payment_failed`` for the
  declined attempt must not undo them);
- ``authorized`` is a PaymentIntent in ``requires_capture`` (manual capture): the money is held,
  not taken. It is below ``canceled``, because canceling a held payment releases it, and below
  ``paid``, which a capture leads to. Fulfilment still waits for ``succeeded``;
- ``canceled`` is below ``paid``: Stripe cannot cancel a succeeded PaymentIntent, so if both are
  seen the money was taken and ``paid`` is the truth;
- ``paid``, ``partially_refunded`` and ``refunded`` follow the retrieved Charge in both
  directions (``refund_status``): a card refund can fail after it succeeded, and the Charge's
  ``amount_refunded`` then goes down again. They count only money the Charge took
  (``charge_refunded``): what a partial capture released, which Stripe also shows as refunded,
  was never the customer's payment, nor is a Charge never captured (a released hold). Only the
  refund events move them back, and only between these three: a stale event re-reads the
  Charge, so it re-states the current truth;
- ``disputed`` is an open dispute: it needs a person whatever happens to the payment after it,
  so neither a late ``succeeded`` nor a refund may hide it. Its outcome comes from the retrieved
  Disputes (``dispute_status``): won (or an inquiry closed, or prevented) goes back to what the
  Charge says (paid, partially or fully refunded), lost goes to ``dispute_lost``, the top: the
  money is gone (until an appeal of it opens: ``disputed`` again).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

STATUSES = (
    "pending",
    "processing",
    "failed",
    "authorized",
    "canceled",
    "paid",
    "partially_refunded",
    "refunded",
    "disputed",
    "dispute_lost",
)
# What the Charge's refunds decide, in both directions (see above).
REFUND_STATUSES = ("paid", "partially_refunded", "refunded")
# Stripe's Dispute statuses, every one stripe-python's ``Dispute.status`` lists: open (or under
# review), then closed. An inquiry (warning_*) can escalate to a chargeback, never back. A dispute
# closes won, lost, an inquiry closed (warning_closed) or prevented (stopped before it became a
# chargeback, as Visa's Rapid Dispute Resolution does: no money is lost). A chargeback decided
# (won or lost) may be appealed (appeal_*: open again), and an appeal is decided won or lost
# (``dispute_moves``).
DISPUTE_RANK = {
    "warning_needs_response": 0,
    "warning_under_review": 1,
    "needs_response": 2,
    "under_review": 3,
    "appeal_needs_response": 4,
    "appeal_under_review": 5,
    "won": 6,
    "lost": 6,
    "warning_closed": 6,
    "prevented": 6,
}
DISPUTE_APPEALS = ("appeal_needs_response", "appeal_under_review")
DISPUTE_OPEN = (
    "warning_needs_response",
    "warning_under_review",
    "needs_response",
    "under_review",
    *DISPUTE_APPEALS,
)
# A chargeback's decisions: an appeal may follow either, and decides it again.
DISPUTE_DECIDED = ("won", "lost")
STATUS_RANK = {status: rank for rank, status in enumerate(STATUSES)}
INTEGRATION = "bookpay"
ORDER_ID = re.compile(r"ord_[0-9a-f]{16}")

# A receipt row's life: pending (due at next_attempt_at) -> sent, skipped (SMTP and no address)
# or undeliverable (an address no mail header can carry; never retried).
# An order note starting so: its fulfilment was refused for good (or it was refunded first).
NOT_FULFILLED = "not fulfilled:"
# The one such note that may not be for good: a refund in full before the fulfilment, which can
# fail afterwards (the shop keeps the money, and the order is fulfilled after all).
REFUNDED_FIRST = f"{NOT_FULFILLED} refunded in full before it was fulfilled"
# Nor this one: disputed before the fulfilment; a dispute won fulfils the order, a lost one never.
DISPUTED_FIRST = f"{NOT_FULFILLED} disputed before it was fulfilled"
FULFILLED_AFTER_REFUND = "fulfilled after its refund in full failed: the shop kept the money"
# Why an order's fulfilment was refused, kept in ``orders.fulfilment_refused`` (with
# ``not_fulfilled_at``; both cleared when it is fulfilled after all) and never read from its
# note, which a later dispute rewrites: refunded in full first, disputed first (neither for good:
# ``Fulfiller.kept`` fulfils such an order once the shop keeps the money), or the PaymentIntent
# does not pay what the shop asked for (its amount or address against the quote: for good).
REFUSED_REFUNDED_FIRST = "refunded_first"
REFUSED_DISPUTED_FIRST = "disputed_first"
REFUSED_MISMATCH = "mismatch"
# The refusals that last only while the money is not the shop's, and each one's note.
REFUSED_FOR_NOW = {REFUSED_REFUNDED_FIRST: REFUNDED_FIRST, REFUSED_DISPUTED_FIRST: DISPUTED_FIRST}
RECEIPT_STATUSES = ("pending", "sent", "skipped", "undeliverable")


def fulfilled_note(note: str | None) -> str | None:
    """The note of an order fulfilled after all: one saying it would not be is no longer true
    (its refund in full failed: ``FULFILLED_AFTER_REFUND``); any other is kept."""
    if note == REFUNDED_FIRST:
        return FULFILLED_AFTER_REFUND
    if note and note.startswith(NOT_FULFILLED):
        return None
    return note


def now_iso(delta: float = 0.0) -> str:
    """UTC, millisecond precision, sortable as text."""
    return iso(datetime.now(timezone.utc) + timedelta(seconds=delta))


def iso(moment: datetime) -> str:
    """The ledger's one time format: ``2026-01-31T09:30:00.000Z`` (sorts as text)."""
    moment = moment.astimezone(timezone.utc) if moment.tzinfo else moment
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def advance(current: str | None, new: str | None) -> str:
    """The later of two statuses by STATUS_RANK: a status never moves backwards."""
    if current is None:
        return new or "pending"
    if new is None or STATUS_RANK[new] <= STATUS_RANK[current]:
        return current
    return new


def refund_status(current: str | None, charged: str) -> str:
    """The status after a refund event, ``charged`` being what the retrieved Charge says
    (paid, partially_refunded or refunded): it replaces a refund status either way, and
    otherwise only moves the status forward (a dispute is not hidden by a refund)."""
    if current in REFUND_STATUSES:
        return charged
    return advance(current, charged)


def released(charge: dict) -> int:
    """What of a retrieved Charge's amount was held and let go, never taken: all of it for a
    Charge not captured (an authorization released, or still held), else what a partial capture
    did not take (``amount - amount_captured``). Stripe counts either in ``amount_refunded``."""
    amount, taken = charge.get("amount"), charge.get("amount_captured")
    if not isinstance(amount, int) or amount <= 0:
        return 0
    if charge.get("captured") is False:
        return amount
    return amount - taken if isinstance(taken, int) and 0 <= taken < amount else 0


def charge_refunded(charge: dict) -> int:
    """How much of the money a retrieved Charge took went back to the customer: its
    ``amount_refunded`` less what was only released (``released``)."""
    refunded = charge.get("amount_refunded")
    if not isinstance(refunded, int) or refunded <= 0:
        return 0
    return max(refunded - released(charge), 0)


def charge_refund_status(charge: dict) -> str:
    """paid, partially_refunded or refunded, as a retrieved Charge's refunds leave the money it
    took (``charge_refunded``): a partial capture's released rest is not a refund."""
    if charge.get("refunded") is True and charge.get("captured") is not False:
        return "refunded"
    return "partially_refunded" if charge_refunded(charge) > 0 else "paid"


def dispute_overlay(statuses: list[str]) -> str | None:
    """What an order's disputes (Stripe's statuses) make of it: ``disputed`` while one is open,
    else ``dispute_lost`` if one was lost, else None (all won or closed: the Charge decides)."""
    if any(status in DISPUTE_OPEN for status in statuses):
        return "disputed"
    if "lost" in statuses:
        return "dispute_lost"
    return None


def dispute_moves(known: str | None, new: str) -> bool:
    """Whether a dispute the ledger has at ``known`` takes Stripe's ``new`` status: a status
    later by ``DISPUTE_RANK``, or, once a chargeback was decided, an appeal of it or another
    decision (an appeal's own events may be missed: lost, then won, is won). A stale read never
    takes a dispute back otherwise: a closed one does not reopen but by an appeal."""
    if known not in DISPUTE_RANK:
        return True
    if DISPUTE_RANK[new] > DISPUTE_RANK[known]:
        return True
    return (
        known in DISPUTE_DECIDED
        and new != known
        and (new in DISPUTE_APPEALS or new in DISPUTE_DECIDED)
    )


def deciding_dispute(disputes: list[dict]) -> dict | None:
    """The one dispute (a ``disputes`` row, oldest first) that decides what the order shows
    (``orders.dispute_status`` and its note): an open one, else a lost one, else the last
    closed one."""
    for wanted in (lambda s: s in DISPUTE_OPEN, lambda s: s == "lost", lambda s: True):
        found = [row for row in disputes if wanted(row["status"])]
        if found:
            return found[-1]
    return None


def status_of_intent(intent: dict) -> str:
    """The order status a PaymentIntent's own state implies."""
    state = intent.get("status")
    if state == "succeeded":
        return "paid"
    if state == "requires_capture":
        return "authorized"
    if state == "processing":
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
    from bookpay.errors import stripe_codes

    codes = stripe_codes(error.get("code"), error.get("decline_code"))
    message = error.get("message") or ""
    return f"{codes}: {message}" if codes and message else (codes or message or None)


def intent_fields(intent: dict) -> dict[str, Any]:
    """What the ledger keeps of a PaymentIntent (with ``latest_charge`` expanded or not)."""
    charge = intent.get("latest_charge")
    charge_id = charge.get("id") if isinstance(charge, dict) else charge
    billing = (charge.get("billing_details") or {}) if isinstance(charge, dict) else {}
    metadata = intent.get("metadata") or {}
    order_id = metadata.get("order_id")
    return {
        "payment_intent": intent["id"],
        # The checkout picks the order id before the PaymentIntent exists (so its metadata can
        # name it); PaymentIntents of earlier versions name none, and get a new one.
        "order_id": order_id
        if isinstance(order_id, str) and ORDER_ID.fullmatch(order_id)
        else None,
        "item_id": metadata.get("item_id"),
        "amount": intent.get("amount"),
        "currency": intent.get("currency"),
        "email": intent.get("receipt_email") or billing.get("email") or metadata.get("email"),
        "shipping": json.dumps(intent["shipping"]) if intent.get("shipping") else None,
        "charge": charge_id,
        "failure_reason": failure_reason(intent.get("last_payment_error")),
        "amount_captured": amount_captured(intent),
    }


def paid_at(intent: dict) -> str | None:
    """When a succeeded PaymentIntent was paid, in the ledger's format: its Charge's
    ``created`` (``latest_charge`` expanded), or None when it has no Charge to read."""
    charge = intent.get("latest_charge")
    created = charge.get("created") if isinstance(charge, dict) else None
    if not isinstance(created, int) or isinstance(created, bool) or created <= 0:
        return None
    try:
        return iso(datetime.fromtimestamp(created, timezone.utc))
    except (OverflowError, OSError, ValueError):  # no time a calendar has
        return None


def amount_captured(intent: dict) -> int | None:
    """What a succeeded PaymentIntent captured, when a partial capture took less than its
    ``amount`` (its ``amount_received``); None when it took all of it, or has taken nothing."""
    amount, received = intent.get("amount"), intent.get("amount_received")
    if intent.get("status") != "succeeded" or not isinstance(amount, int):
        return None
    if isinstance(received, int) and not isinstance(received, bool) and 0 < received < amount:
        return received
    return None
