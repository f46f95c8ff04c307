"""Fulfilment, exactly once: from a PaymentIntent Stripe says succeeded to a queued receipt.

The Fulfiller never trusts anyone's copy of a PaymentIntent but Stripe's: it retrieves the
intent, checks that it is this shop's and pays the catalog's price, and asks the ledger to record
the fulfilment, which its unique constraints make happen once however many callers race.
"""

from __future__ import annotations

from dataclasses import dataclass

from bookpay.ledger import INTEGRATION, Ledger
from bookpay.statuses import in_words


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


def ownership_problem(intent: dict, shop_id: str | None = None) -> str | None:
    """Why a PaymentIntent is not one of this shop's, or None when it is.

    Every PaymentIntent bookpay creates carries ``integration=bookpay``, its order id (earlier
    versions: its item) and the id of the shop that created it; with ``shop_id`` given, only
    that shop's intents are ours, so shops sharing one Stripe account (or one emulator) never
    fulfil each other's orders.
    """
    metadata = intent.get("metadata") or {}
    named = metadata.get("order_id") or metadata.get("item_id")  # item_id: earlier versions
    if metadata.get("integration") != INTEGRATION or not named:
        return "not a bookpay PaymentIntent (no bookpay metadata)"
    if shop_id is not None and metadata.get("shop_id") != shop_id:
        owner = metadata.get("shop_id")
        if owner:
            return f"not ours: created by shop {owner}, this is shop {shop_id}"
        return f"not ours: it names no shop (this is shop {shop_id})"
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
        self.shop_id = settings.shop_id
        self.mailer = (
            mailer if mailer is not None else ReceiptMailer.from_settings(settings, ledger)
        )
        self.mailer.start()  # also sends what an earlier run left pending

    def retrieve(self, intent_id: str) -> dict:
        """The PaymentIntent as Stripe has it now (NotFound when Stripe does not know it)."""
        return self.gateway.retrieve_intent(intent_id, expand=("latest_charge",))

    def ownership_problem(self, intent: dict) -> str | None:
        return ownership_problem(intent, self.shop_id)

    def fulfil(self, intent_id: str) -> FulfilmentResult:
        """Fulfil the order paid by ``intent_id`` if Stripe says it succeeded; safe to repeat.

        Raises NotFound for a PaymentIntent Stripe does not know and StripeUnavailable when it
        cannot be asked; never trusts anyone's copy of the intent but Stripe's.
        """
        from bookpay.mailer import address_problem

        intent = self.retrieve(intent_id)
        problem = self.ownership_problem(intent)
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
            intent,
            lambda order: self.mailer.render(order, book),
            recipient_problem=address_problem,
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
