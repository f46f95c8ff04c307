"""One PaymentIntent per checkout attempt, holding the attempt's latest quote.

The checkout page asks for its attempt's PaymentIntent when it loads, when the shopper changes
the cart on it, and once more just before confirming. Each time the cart (or the one book of
"Buy now") is priced again from the catalog, and:

- the attempt's first request creates the PaymentIntent (idempotently, keyed by the attempt) and
  records the quote in the ledger, with the order id the metadata names;
- a later request with the same quote changes nothing (no Stripe write);
- a later request with another quote updates the PaymentIntent's amount and metadata, then
  records the new quote; Stripe allows that until the intent is confirmed, and after that the
  change is refused (``PaymentInProgress``), so the amount paid is always the quote the page
  last showed, which is the quote fulfilment checks and the receipt lists.

The page keeps Pay disabled while any of these requests is in flight (``checkout.js``).
"""

from __future__ import annotations

from dataclasses import dataclass

from bookpay.errors import UsageError
from bookpay.quote import Quote, order_id_for
from bookpay.statuses import in_words

# An attempt whose PaymentIntent reached one of these can never be paid again.
FINISHED = frozenset({"succeeded", "canceled"})
# Stripe changes a PaymentIntent's amount only before it is confirmed.
UPDATABLE = frozenset({"requires_payment_method", "requires_confirmation", "requires_action"})


class AttemptFinished(UsageError):
    """The attempt's PaymentIntent is already paid or canceled: the page must start a new one."""

    http_status = 409
    code = "attempt_finished"

    def __init__(
        self, message: str, *, intent_id: str, status: str, order_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.intent_id = intent_id
        self.status = status
        self.order_id = order_id

    def to_dict(self) -> dict:
        # The page tells the shopper which order they already paid for, instead of silently
        # starting a new payment.
        found = {"paymentIntentId": self.intent_id, "status": self.status}
        if self.order_id:
            found["orderId"] = self.order_id
        return {**super().to_dict(), **found}


class PaymentInProgress(UsageError):
    """The quote changed after the payment was confirmed: too late to change its amount."""

    http_status = 409
    code = "payment_in_progress"


@dataclass(frozen=True)
class AttemptIntent:
    intent: dict
    order_id: str
    quote: Quote
    changed: bool  # the PaymentIntent's amount or lines changed in this call


class Checkout:
    def __init__(self, ledger, gateway, shop_id: str | None) -> None:
        self.ledger = ledger
        self.gateway = gateway
        self.shop_id = shop_id

    def intent_for(self, attempt_id: str, quote: Quote, *, cart_id: str | None) -> AttemptIntent:
        """The attempt's PaymentIntent, holding ``quote`` (created or updated as needed)."""
        recorded = self.ledger.quote_for_attempt(attempt_id)
        if recorded is None:
            order_id = order_id_for(attempt_id, self.shop_id)
            intent = self.gateway.create_intent(
                quote, attempt_id=attempt_id, order_id=order_id, cart_id=cart_id
            )
            _check_open(intent)
            changed = True
            if not _holds(intent, quote):
                # A replayed creation (the ledger lost its record): bring it up to date.
                intent = self._update(intent, quote, order_id, cart_id)
        else:
            order_id = recorded["order_id"]
            intent = self.gateway.retrieve_intent(recorded["payment_intent"], expand=())
            _check_open(intent)
            changed = not _same(recorded, quote) or not _holds(intent, quote)
            if changed:
                intent = self._update(intent, quote, order_id, cart_id)
            elif recorded["cart_id"] == cart_id:
                return AttemptIntent(intent, order_id, quote, changed=False)
        self.ledger.record_quote(
            intent["id"], order_id, quote, attempt_id=attempt_id, cart_id=cart_id
        )
        return AttemptIntent(intent, order_id, quote, changed)

    def _update(self, intent: dict, quote: Quote, order_id: str, cart_id: str | None) -> dict:
        if intent.get("status") not in UPDATABLE:
            raise PaymentInProgress(
                f"This payment is already {in_words(intent.get('status'))}: its amount can no "
                "longer change. Wait for it to finish, then start a new checkout."
            )
        return self.gateway.update_intent(intent["id"], quote, order_id=order_id, cart_id=cart_id)


def _check_open(intent: dict) -> None:
    if intent.get("status") in FINISHED:
        raise AttemptFinished(
            f"This checkout has already been {in_words(intent['status'])}: start a new attempt.",
            intent_id=intent["id"],
            status=intent["status"],
            order_id=(intent.get("metadata") or {}).get("order_id"),
        )


def _holds(intent: dict, quote: Quote) -> bool:
    """Whether the PaymentIntent holds this quote's amount and lines."""
    metadata = intent.get("metadata") or {}
    return (
        intent.get("amount") == quote.total
        and intent.get("currency") == quote.currency
        and metadata.get("lines") == quote.line_summary()
    )


def _same(recorded: dict, quote: Quote) -> bool:
    lines = [(row["item_id"], row["quantity"], row["unit_amount"]) for row in recorded["lines"]]
    return (
        recorded["total"] == quote.total
        and recorded["currency"] == quote.currency
        and lines == [(line.item_id, line.quantity, line.unit_amount) for line in quote.lines]
    )
