"""Statuses in words, for sentences: "order ord_1 is partially refunded", not "partially_refunded".

Tables, JSON, CSV and `--status` options keep Stripe's and the ledger's own values (they are
what people filter and grep by); a sentence says what the value means.
"""

from __future__ import annotations

# A PaymentIntent's statuses, as they read after "is" ("the payment is ...").
_WORDS = {
    "requires_payment_method": "waiting for a payment method",
    "requires_confirmation": "waiting to be confirmed",
    "requires_action": "waiting for the customer to authenticate",
    "requires_capture": "authorized, waiting to be captured",
    "succeeded": "paid",
    # The ledger's order status after a lost dispute, and Stripe's Dispute statuses.
    "dispute_lost": "lost to a dispute",
    "warning_needs_response": "an inquiry waiting for a response",
    "warning_under_review": "an inquiry under review",
    "warning_closed": "closed without a chargeback",
    "needs_response": "waiting for a response",
    "appeal_needs_response": "appealed, waiting for a response",
    "appeal_under_review": "appealed, under review",
    "prevented": "prevented before it became a chargeback",
}


def in_words(status: str | None) -> str:
    """``status`` as it reads in a sentence after "is": "partially refunded", "paid", ..."""
    if not status:
        return "unknown"
    return _WORDS.get(status, status.replace("_", " "))
