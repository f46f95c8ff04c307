"""Fulfilment, exactly once: from a PaymentIntent Stripe says succeeded to a queued receipt.

The Fulfiller never trusts anyone's copy of a PaymentIntent but Stripe's: it retrieves the
intent, checks that it is this shop's and pays the quote the checkout recorded (its total, and the
address its shipping and tax were priced for), and asks the ledger to record the fulfilment,
which its unique constraints make happen once however many callers race. The order's Stripe Tax
transaction is recorded as owed in the same transaction, and refunds owe reversals; the
Fulfiller's ``TaxRecorder`` tells Stripe Tax (``bookpay.taxrecords``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass

from bookpay.address import ShippingAddress
from bookpay.ledger import INTEGRATION, Ledger
from bookpay.ledger.lines import QuoteFrozen
from bookpay.ledger.model import (
    NOT_FULFILLED,
    REFUND_STATUSES,
    REFUNDED_FIRST,
    REFUSED_DISPUTED_FIRST,
    REFUSED_FOR_NOW,
    REFUSED_MISMATCH,
    REFUSED_REFUNDED_FIRST,
    charge_refund_status,
    charge_refunded,
)
from bookpay.orderlines import lines_of_intent, named_quote, quote_from_metadata, titled
from bookpay.statuses import in_words

# Why ``Fulfiller.kept`` fulfilled an order after all (its result's reason; a refund or dispute
# event's outcome adds "fulfilled: " and it).
FULFILLED_KEPT = "its refund in full failed"
FULFILLED_WON = "its dispute was won"


@dataclass(frozen=True)
class FulfilmentResult:
    """What ``Fulfiller.fulfil`` found and did.

    ``outcome`` is 'fulfilled' (this call fulfilled the order), 'already_fulfilled',
    'not_succeeded' (the PaymentIntent has not succeeded, yet or at all), 'refunded' (its charge
    was refunded in full before the order was fulfilled, so it will not be unless that refund
    fails: ``Fulfiller.kept``), 'disputed' (disputed before it was fulfilled: it will be once
    the dispute is won, never if it is lost) or 'rejected' (not
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


def price_problem(intent: dict, catalog, quote: dict | None = None) -> str | None:
    """Why a PaymentIntent does not pay what the shop asked for, or None.

    What the shop asked for is the quote the checkout recorded when it created or last updated
    the intent (``quote``, from the ledger), never today's catalog price. A PaymentIntent with
    no recorded quote (an earlier version's, or one the CLI made against another ledger) is
    checked against what its metadata says it buys, priced from the catalog.
    """
    amount, currency = intent.get("amount"), intent.get("currency")
    if quote is not None:
        order_id = (intent.get("metadata") or {}).get("order_id")
        if order_id and order_id != quote["order_id"]:
            return f"metadata.order_id {order_id!r} is not the order {quote['order_id']} quoted"
        if amount != quote["total"] or currency != quote["currency"]:
            return (
                f"amount {amount} {currency} does not match the recorded quote "
                f"{quote['total']} {quote['currency']} of order {quote['order_id']}"
            )
        return _address_problem(intent, quote)
    asked = quote_from_metadata(intent, catalog)
    if asked is None:
        metadata = intent.get("metadata") or {}
        item_id = metadata.get("item_id")
        if item_id and not metadata.get("lines") and item_id not in catalog:
            return f"metadata.item_id {item_id!r} is not in the catalog"
        return "no recorded quote, and its metadata does not name books the catalog sells"
    if amount != asked.total or currency != asked.currency:
        return (
            f"amount {amount} {currency} does not match the catalog price {asked.total} "
            f"{asked.currency} of {asked.line_summary()}"
        )
    return None


def _address_problem(intent: dict, quote: dict) -> str | None:
    """Why the PaymentIntent ships somewhere its quote's shipping and tax were not priced for."""
    if not quote.get("address"):
        return None
    priced = ShippingAddress.parse(quote["address"])
    ships = ((intent.get("shipping") or {}).get("address")) or None
    if priced.same_place(ships):
        return None
    where = ", ".join(p for p in (priced.postal_code, priced.state, priced.country) if p)
    return f"it ships to another place than the one its shipping and tax were priced for ({where})"


def reversals_owed(charge: dict, quote: dict | None) -> list[tuple[str, int | None]]:
    """The refunds of ``charge`` (retrieved, its refunds expanded) that owe a tax reversal:
    the succeeded ones, each all of the order (None) or the amount it gave back."""
    if not quote or not quote.get("tax_calculation"):
        return []
    refunds = (charge.get("refunds") or {}).get("data") or []
    return [
        (refund["id"], None if refund.get("amount", 0) >= quote["total"] else refund["amount"])
        for refund in refunds
        if refund.get("status") == "succeeded" and isinstance(refund.get("id"), str)
    ]


def refunds_failed(charge: dict) -> list[str]:
    """The refunds of ``charge`` (retrieved, its refunds expanded) that failed or were canceled:
    whatever tax was reversed for them the shop kept after all."""
    refunds = (charge.get("refunds") or {}).get("data") or []
    return [
        refund["id"]
        for refund in refunds
        if refund.get("status") in ("failed", "canceled") and isinstance(refund.get("id"), str)
    ]


def _refusal(order: dict) -> str | None:
    """Why an order (as the ledger has it, locked) is not to be fulfilled now: refunded in
    full (``REFUSED_REFUNDED_FIRST``: fulfilled if that refund fails), or with a dispute open or
    lost (``REFUSED_DISPUTED_FIRST``: fulfilled once it is won, never if lost); else None."""
    if order["status"] == "refunded":
        return REFUSED_REFUNDED_FIRST
    if order["status"] in ("disputed", "dispute_lost"):
        return REFUSED_DISPUTED_FIRST
    return None


class Fulfiller:
    """Fulfils paid orders exactly once; owns the receipt mailer and its worker thread.

    With ``workers=False`` the receipts and tax records it queues are left in the ledger for a
    worker in another process (`bookpay worker`, next to `bookpay serve --no-worker`).
    """

    def __init__(
        self, ledger: Ledger, gateway, catalog, settings, *, mailer=None, workers: bool = True
    ) -> None:
        from bookpay.mailer import ReceiptMailer
        from bookpay.siblings import SiblingCanceler
        from bookpay.taxrecords import TaxRecorder

        self.ledger = ledger
        self.gateway = gateway
        self.catalog = catalog
        self.shop_id = settings.shop_id
        self.mailer = (
            mailer if mailer is not None else ReceiptMailer.from_settings(settings, ledger)
        )
        self.taxes = TaxRecorder(ledger, gateway)
        # What it cancels is owed in the ledger (settle_cart): a cart settled here wakes it
        # (started then, with or without workers), and with workers it starts now too.
        self.siblings = SiblingCanceler(ledger, gateway)
        if workers:
            self.mailer.start()  # also sends what an earlier run left pending
            self.taxes.start()  # also sends what an earlier run left owed
            self.siblings.start()  # also cancels what an earlier run left owed

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
        return self.fulfil_retrieved(self.retrieve(intent_id))

    def fulfil_retrieved(self, intent: dict) -> FulfilmentResult:
        """``fulfil`` of a PaymentIntent just retrieved from Stripe (its latest_charge expanded),
        making no Stripe call: for a handler that has retrieved it already."""
        from bookpay.mailer import address_problem

        intent_id = intent["id"]
        problem = self.ownership_problem(intent)
        if problem:
            return FulfilmentResult(intent_id, "rejected", intent=intent, reason=problem)
        if intent.get("status") != "succeeded":
            order = self.ledger.record_intent(intent)
            reason = f"the PaymentIntent is {in_words(intent.get('status'))}"
            return FulfilmentResult(intent_id, "not_succeeded", order, intent, reason)
        quote = self.ledger.quote_for(intent_id)
        problem = price_problem(intent, self.catalog, quote)
        if problem:
            order = self.ledger.record_intent(
                intent, note=f"{NOT_FULFILLED} {problem}", refused=REFUSED_MISMATCH
            )
            self._settle_paid(intent_id, quote)
            return FulfilmentResult(intent_id, "rejected", order, intent, problem)
        charge = intent.get("latest_charge")
        if isinstance(charge, dict) and charge.get("refunded") is True:
            # Refunded in full before we got to it: nothing to ship, no "thank you" receipt.
            order = self.ledger.find_order(intent_id)
            if order is not None and order["fulfilled_at"]:
                return FulfilmentResult(intent_id, "already_fulfilled", order, intent)
            reason = REFUNDED_FIRST.removeprefix(NOT_FULFILLED).strip()
            order = self.ledger.record_intent(
                intent,
                status="refunded",
                amount_refunded=charge_refunded(charge),
                note=REFUNDED_FIRST,
                refused=REFUSED_REFUNDED_FIRST,
            )
            self._settle_paid(intent_id, quote)
            return FulfilmentResult(intent_id, "refunded", order, intent, reason)
        lines = self._lines(intent, quote)
        calculation = quote.get("tax_calculation") if quote else None
        priced = named_quote(quote, self.catalog)
        order, done_now = self.ledger.record_fulfilment(
            intent,
            lambda order: self.mailer.render({**order, "quote": priced}, lines),
            recipient_problem=address_problem,
            tax_calculation=calculation,
            refusal=_refusal,
        )
        if not done_now and not order["fulfilled_at"]:
            # Refunded in full or disputed since the PaymentIntent was retrieved (a refund or
            # dispute event committed first, or a succeeded event came days late).
            refused = order["fulfilment_refused"]
            outcome = "refunded" if refused == REFUSED_REFUNDED_FIRST else "disputed"
            reason = REFUSED_FOR_NOW[refused].removeprefix(NOT_FULFILLED).strip()
            self._settle_paid(intent_id, quote)
            return FulfilmentResult(intent_id, outcome, order, intent, reason)
        self._settle_paid(intent_id, quote)
        if done_now:
            # Once committed: inside a webhook's transaction the receipt is not there before.
            self.ledger.after_commit(self.mailer.wake)
            if calculation:
                self.ledger.after_commit(self.taxes.wake)
            return FulfilmentResult(intent_id, "fulfilled", order, intent)
        return FulfilmentResult(intent_id, "already_fulfilled", order, intent)

    def _settle_paid(self, intent_id: str, quote: dict | None) -> None:
        """What a succeeded PaymentIntent paid leaves its cart now, whether or not the shopper's
        browser ever reaches /success (it may have lost the confirm's answer), and whether or
        not the order is fulfilled (a refused one was paid all the same): a cart still holding
        paid books could be paid for again, and its other tabs would wait on it for good. Once
        only (settled_at); inside a webhook's handling it joins the event's one transaction."""
        if quote and quote.get("cart_id") and not quote.get("settled_at"):
            self.settle_cart(intent_id)

    def settle_cart(self, intent_id: str) -> bool:
        """Take what ``intent_id`` paid out of its cart (``Ledger.settle_cart``), once; whether
        this call did. Once that is committed (with the canceling it owes, in the ledger), the
        PaymentIntents of the cart's other attempts still cancelable are canceled, from a
        thread of their own (``bookpay.siblings``): a second tab waiting for 3-D Secure must
        not charge for the cart again."""
        done = self.ledger.settle_cart(intent_id)
        if done:
            self.ledger.after_commit(lambda: self.siblings.settled(intent_id))
        return done

    def _lines(self, intent: dict, quote: dict | None) -> list[dict]:
        """The lines the receipt lists. A paid intent with no recorded quote gets one now, from
        what its metadata buys (priced as checked above), so its order has lines too."""
        if quote is not None:
            return titled(quote["lines"], self.catalog)
        asked = quote_from_metadata(intent, self.catalog)
        order = self.ledger.find_order(intent["id"]) or self.ledger.record_intent(intent)
        if asked is not None and not order["fulfilled_at"]:
            with contextlib.suppress(QuoteFrozen):  # fulfilled meanwhile: its lines are kept
                self.ledger.record_quote(intent["id"], order["id"], asked)
        return lines_of_intent(intent, self.ledger, self.catalog)

    def refunded(self, intent: dict, charge: dict) -> int:
        """Record the tax reversals the charge's succeeded refunds owe (once per refund), to be
        sent once committed, and which of the reversals' refunds failed since (once each); how
        many reversals were new. Makes no Stripe call."""
        quote = self.ledger.quote_for(intent["id"])
        owed = reversals_owed(charge, quote)
        failed = refunds_failed(charge)
        if quote and failed:
            self.ledger.refunds_failed(quote["order_id"], failed)
        if not owed:
            return 0
        new = self.ledger.owe_tax_reversals(quote["order_id"], intent["id"], owed)
        if new:
            self.ledger.after_commit(self.taxes.wake)
        return new

    def kept(self, intent: dict, charge: dict) -> FulfilmentResult | None:
        """Fulfil after all the order of ``intent`` that was not fulfilled only because its
        charge was refunded in full first (``REFUSED_REFUNDED_FIRST``), now that ``charge``, just
        retrieved and recorded by a refund event, is not refunded in full any more: a refund
        failed and the shop keeps the money. So too one disputed before it was fulfilled
        (``REFUSED_DISPUTED_FIRST``) once the dispute is won: the order is back among the refund
        statuses, and the dispute event that recorded it comes here. Through
        ``fulfil_retrieved`` (the quote checked again; once only, one receipt and one tax
        transaction owed, however many events ask).

        None when there is nothing to fulfil: the charge still refunded in full, the order
        fulfilled already or never refused, refused for another reason (``fulfilment_refused``
        says which, or its price or shop does not pass the checks again: such a refusal is for
        good), or disputed (a person decides; a dispute won re-reads the charge, and comes back
        here).
        Makes no Stripe call.
        """
        if intent.get("status") != "succeeded" or charge_refund_status(charge) == "refunded":
            return None
        latest = intent.get("latest_charge")
        if (latest.get("id") if isinstance(latest, dict) else latest) != charge.get("id"):
            return None
        order = self.ledger.find_order(intent["id"])
        if order is None or order["fulfilled_at"] or not order["not_fulfilled_at"]:
            return None
        # No reason: refused by a version before the ledger kept it, its note since rewritten
        # by a dispute (schema 9's backfill could not tell why): the checks below decide.
        refused = order["fulfilment_refused"]
        if order["status"] not in REFUND_STATUSES or refused not in (*REFUSED_FOR_NOW, None):
            return None
        if self.ownership_problem(intent) or price_problem(
            intent, self.catalog, self.ledger.quote_for(intent["id"])
        ):
            return None
        result = self.fulfil_retrieved({**intent, "latest_charge": charge})
        if not result.newly_fulfilled:
            return result
        why = FULFILLED_KEPT if refunds_failed(charge) else FULFILLED_WON
        return dataclasses.replace(result, reason=why)

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every due receipt is sent; False if some are still pending at timeout."""
        return self.mailer.drain(timeout)

    def close(self) -> None:
        """Stop both workers; a second interrupt while the receipts' one stops (re-raised by
        its close) still stops the tax records' one."""
        try:
            self.mailer.close()
        finally:
            try:
                self.taxes.close()
            finally:
                self.siblings.close()

    @property
    def at_work(self) -> bool:
        """Whether a worker's thread still runs after ``close`` (left unfinished): the ledger it
        uses must not be closed under it."""
        workers = (self.mailer, self.taxes, self.siblings)
        return any(getattr(worker, "at_work", False) for worker in workers)
