"""One PaymentIntent per checkout attempt, holding the attempt's latest quote.

The checkout page asks for its attempt's PaymentIntent when it loads, when the shopper changes
the cart on it, and once more just before confirming. Each time the cart (or the one book of
"Buy now") is priced again from the catalog, and:

- the attempt's first request creates the PaymentIntent (idempotently, keyed by the attempt) and
  records the quote in the ledger, with the order id the metadata names, and in the same
  transaction the order, ``pending`` until the payment's events move it on (a creation whose
  answer was lost, asked again for another cart, is keyed by the cart as well:
  ``Checkout._create``);
- a later request with the same quote changes nothing (no Stripe write);
- a later request with another quote updates the PaymentIntent's amount and metadata, then
  records the new quote (the order, not yet confirmed, takes its amount and book); the shop
  does that only until the intent is confirmed (Stripe would take a new amount while 3-D Secure
  is pending too), and after that the change is refused (``PaymentInProgress``), so the amount
  paid is always the quote the page last showed, which is the quote fulfilment checks and the
  receipt lists. A PaymentIntent waiting for 3-D Secure
  (a challenge maybe abandoned: its tab closed, or Back) is canceled instead of re-priced, and
  the answer (``AttemptFinished``, canceled) makes the page start a new attempt.

Once the shopper's address is complete the page asks for a quote for it (``Checkout.quote``):
shipping and tax are priced for the address (``bookpay.pricing``), the PaymentIntent updated to
the new total (and its ``shipping`` to the address), and the quote recorded with its address and
the version the page numbered it with. Versions only go up: a quote older than the recorded one
is refused (``StaleQuote``), so answers that cross on the way never leave an older quote in the
PaymentIntent. Later requests for the attempt keep its address: a changed cart is priced for it.

Requests for one attempt take turns in this process (``AttemptLocks``), so a quote and a cart
change never interleave their Stripe calls and ledger writes. The page keeps Pay disabled while
any of these requests is in flight (``checkout.js``).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bookpay.address import ShippingAddress
from bookpay.errors import NotFound, PaymentError, UsageError
from bookpay.ledger.errors import LedgerConflict
from bookpay.ledger.lines import QuoteStale
from bookpay.pricing import Priced, price
from bookpay.quote import Quote, check_chargeable, order_id_for
from bookpay.statuses import in_words

# An attempt whose PaymentIntent reached one of these can never be paid again.
FINISHED = frozenset({"succeeded", "canceled"})
# The shop changes a PaymentIntent's amount only before it is confirmed. Stripe itself also
# accepts an update in requires_action (3-D Secure pending) without a new authentication: the
# shopper would then authenticate one amount, shown on the challenge, and be charged another.
UPDATABLE = frozenset({"requires_payment_method", "requires_confirmation"})
# Confirmed: the amount is the shopper's, whatever the cart does meanwhile.
CONFIRMED = frozenset({"requires_action", "processing", "requires_capture", "succeeded"})


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


class CartPaidElsewhere(UsageError):
    """Another attempt of the same cart (another tab or window, each its own attempt) has a
    confirmed payment: this one is not paid as well."""

    http_status = 409
    code = "cart_payment_in_progress"

    def __init__(self, message: str, *, paid_by: str | None = None) -> None:
        super().__init__(message)
        self.paid_by = paid_by  # the sibling's PaymentIntent, when Stripe has it succeeded


class AttemptNotFound(NotFound):
    """A quote asked for an attempt that has no PaymentIntent (yet, or in this shop), or a
    request for an attempt of another cart or book (``check_owner``)."""

    code = "attempt_not_found"


NO_PAYMENT_TO_QUOTE = "This checkout has no payment to quote: reload the page."
NOT_THIS_ORDER = "This checkout has no payment for this order: reload the page."


class StaleQuote(UsageError):
    """A quote older than (or as old as) the attempt's recorded one: it is not applied."""

    http_status = 409
    code = "stale_quote"

    def __init__(self, message: str, *, version: int) -> None:
        super().__init__(message)
        self.version = version

    def to_dict(self) -> dict:
        return {**super().to_dict(), "version": self.version}


@dataclass(frozen=True)
class AttemptIntent:
    intent: dict
    order_id: str
    quote: Quote
    changed: bool  # the PaymentIntent's amount or lines changed in this call
    version: int = 0  # the version of the attempt's recorded quote


@dataclass(frozen=True)
class Destination:
    """Where a quote ships: the address, the rate asked for, the name to ship to."""

    address: ShippingAddress
    rate_id: str | None = None
    name: str | None = None


class AttemptLocks:
    """One lock per checkout attempt, held while its requests run, dropped when none waits."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._locks: dict[str, list] = {}  # attempt -> [lock, holders and waiters]

    @contextmanager
    def hold(self, attempt_id: str) -> Iterator[None]:
        with self._mutex:
            entry = self._locks.setdefault(attempt_id, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._mutex:
                entry[1] -= 1
                if not entry[1]:
                    del self._locks[attempt_id]


class Checkout:
    def __init__(
        self, ledger, gateway, shop_id: str | None, *, catalog=None, tax_enabled: bool = True
    ) -> None:
        self.ledger = ledger
        self.gateway = gateway
        self.shop_id = shop_id
        self.catalog = catalog
        self.tax_enabled = tax_enabled
        self.locks = AttemptLocks()

    def intent_for(self, attempt_id: str, quote: Quote, *, cart_id: str | None) -> AttemptIntent:
        """The attempt's PaymentIntent, holding ``quote`` (created or updated as needed), with
        shipping and tax for the attempt's address once the page has quoted one."""
        with self.locks.hold(attempt_id):
            return self._intent_for(attempt_id, quote, cart_id)

    def _intent_for(self, attempt_id: str, quote: Quote, cart_id: str | None) -> AttemptIntent:
        check_chargeable(quote, minimum=False)  # before Stripe Tax is asked about the lines
        recorded = self.ledger.quote_for_attempt(attempt_id)
        if recorded is None:
            check_chargeable(quote)  # the shop says so before Stripe refuses the amount
            order_id = order_id_for(attempt_id, self.shop_id)
            intent = self._create(attempt_id, quote, order_id, cart_id)
            if intent is None:  # another process recorded the attempt's PaymentIntent meanwhile
                return self._intent_for(attempt_id, quote, cart_id)
            _check_open(intent)
            changed = True
            if not _holds(intent, quote):
                # A replayed creation (the ledger lost its record): bring it up to date, from
                # the PaymentIntent as it is now (the replay says how it was first created).
                intent = self.gateway.retrieve_intent(intent["id"], expand=())
                _check_open(intent)
                intent = self._update(intent, quote, order_id, cart_id)
        else:
            check_owner(recorded, cart_id, quote, NOT_THIS_ORDER)
            self.check_same_payment(recorded)
            order_id = recorded["order_id"]
            quote = self._shipped_as_recorded(quote, recorded, attempt_id)
            intent = self.gateway.retrieve_intent(recorded["payment_intent"], expand=())
            _check_open(intent)
            if cart_id is not None and intent.get("status") in UPDATABLE:
                self.check_paid_beside(intent["id"])
            check_chargeable(quote)
            changed = not _same(recorded, quote) or not _holds(intent, quote)
            if not changed:
                return AttemptIntent(intent, order_id, quote, False, recorded["version"])
            intent = self._update(intent, quote, order_id, cart_id)
        try:
            saved = self.ledger.record_quote(
                intent["id"], order_id, quote, attempt_id=attempt_id, cart_id=cart_id
            )
        except LedgerConflict:
            # Another process recorded another PaymentIntent for the attempt after this one
            # looked (each created its own, under a cart-keyed key): the recorded one is the
            # attempt's, and is brought up to this quote. This one's client secret never left
            # the shop, so it can never be paid.
            other = self.ledger.quote_for_attempt(attempt_id) if recorded is None else None
            if other is None or other["payment_intent"] == intent["id"]:
                raise
            return self._intent_for(attempt_id, quote, cart_id)
        return AttemptIntent(intent, order_id, quote, changed, saved["version"])

    def _create(
        self, attempt_id: str, quote: Quote, order_id: str, cart_id: str | None
    ) -> dict | None:
        """The attempt's PaymentIntent, created under the attempt's key (or that creation
        replayed), or None when another process has recorded one for it meanwhile.

        Stripe refuses the attempt's key with another quote than the one it first created for
        (``idempotency_error``): that creation's answer was lost, then the cart changed. That
        PaymentIntent's client secret never left the shop (only a recorded PaymentIntent's is
        answered), so it can never be paid: unless the ledger now has the attempt's (another
        process answered it, and that one must be updated), the attempt gets a PaymentIntent
        keyed by its quote as well, which a retry with the same cart finds again.
        """
        try:
            return self.gateway.create_intent(
                quote, attempt_id=attempt_id, order_id=order_id, cart_id=cart_id
            )
        except PaymentError as exc:
            if exc.error_type != "idempotency_error":
                raise
        if self.ledger.quote_for_attempt(attempt_id) is not None:
            return None
        return self.gateway.create_intent(
            quote, attempt_id=attempt_id, order_id=order_id, cart_id=cart_id, keyed_by_cart=True
        )

    def check_paid_beside(self, intent_id: str) -> None:
        """Raise ``CartPaidElsewhere`` when another attempt of the cart that ``intent_id``'s
        attempt pays, in the same payment of it, has a confirmed PaymentIntent (as Stripe has
        it now): two tabs of one cart, each its own attempt, would both be charged for it.

        Asked of every request for a recorded cart attempt, Pay's last look among them (the
        attempt's first request, which creates its PaymentIntent, is not: a new tab still
        opens). A sibling waiting for 3-D Secure never blocks: it is canceled (a challenge
        abandoned in a closed tab would block the cart for good), unless it was passed
        meanwhile. A tab that confirms after this look is not seen: the cancel of the cart's other
        attempts once one is paid (``bookpay.siblings``) covers what 3-D Secure leaves open.
        """
        for beside in self.ledger.each_attempt_beside(intent_id):
            try:
                other = self.gateway.retrieve_intent(beside["payment_intent"], expand=())
            except NotFound:  # unknown to Stripe (an emulator reset, another account's): no
                continue  # payment to wait for, nor to charge the cart
            if other.get("status") == "canceled":
                self.ledger.mark_canceled(other["id"])  # not asked of Stripe again
                continue
            if other.get("status") == "requires_action":
                # A challenge never finished (its tab closed) would block the cart for good:
                # canceled, unless it was passed meanwhile (Stripe refuses the cancel then).
                other = self.cancel_unpaid(other)
            status = other.get("status")
            if status not in CONFIRMED:
                continue
            raise CartPaidElsewhere(
                f"This cart has been paid in another tab or window (the payment is "
                f"{in_words(status)}): nothing was charged here. Reload the page to see what "
                "is left in the cart.",
                paid_by=other["id"] if status == "succeeded" else None,
            )

    def check_same_payment(self, recorded: dict, intent: dict | None = None) -> None:
        """Refuse (``AttemptFinished``) a request for a cart attempt of an earlier payment of
        its cart: its quote's ``generation`` is behind the cart's, which a payment of the cart
        moved on since. The cart is refilled, maybe, but that tab is no attempt of its next
        payment (whose attempts see it as no sibling, and the cart's canceler may have lost
        it): were it paid, the books still in the cart would be paid twice over.

        Its PaymentIntent, still open, is canceled first (``intent``, just retrieved, or
        retrieved here), so the page's answer says canceled and the page starts a new attempt;
        a paid one says so (this attempt paid the cart then). A quote from before the ledger
        kept generations (NULL) is not refused: nothing says which payment it was for.
        """
        generation = recorded.get("generation")
        if recorded["cart_id"] is None or generation is None:
            return
        cart = self.ledger.get_cart(recorded["cart_id"])
        if cart is None or cart["generation"] <= generation:
            return
        if intent is None:
            intent = self.gateway.retrieve_intent(recorded["payment_intent"], expand=())
        _check_open(intent)
        if intent.get("status") in UPDATABLE or intent.get("status") == "requires_action":
            intent = self.cancel_unpaid(intent, reason="duplicate")
            _check_open(intent)
        raise _in_progress(intent)  # confirmed meanwhile: Stripe refused the cancel

    def cancel_unpaid(self, intent: dict, *, reason: str = "abandoned") -> dict:
        """Cancel ``intent`` (just retrieved, not paid); the PaymentIntent afterwards: canceled
        (and so noted in the ledger), or as Stripe has it when it refused (a challenge passed
        meanwhile: Stripe's cancel is atomic against it, so the payment is then succeeded or
        under way, never both)."""
        try:
            canceled = self.gateway.cancel_intent(intent["id"], reason=reason)
        except PaymentError as exc:
            if exc.stripe_code != "payment_intent_unexpected_state":
                raise
            return exc.payment_intent or self.gateway.retrieve_intent(intent["id"], expand=())
        if canceled.get("status") == "canceled":
            self.ledger.mark_canceled(intent["id"])
        return canceled

    def check_cart_attempt(self, attempt_id: str, cart_id: str) -> None:
        """Raise what the attempt's payment makes of a cart with nothing to pay for.

        A cart is emptied by the payment of its attempt (fulfilment settles it), so a second
        tab on that attempt finds it empty: what it must hear is that the attempt is finished
        (``AttemptFinished``), or its payment under way (``PaymentInProgress``), as it would
        with the cart still full. Only an attempt recorded for ``cart_id`` is looked at (the
        cart the shopper's cookie finds), so no one learns about another shopper's attempt;
        for any other attempt, or one still open, this returns and the cart's own reason
        stands.
        """
        recorded = self.ledger.quote_for_attempt(attempt_id)
        if recorded is None or recorded["cart_id"] != cart_id:
            return
        intent = self.gateway.retrieve_intent(recorded["payment_intent"], expand=())
        _check_open(intent)
        self.check_same_payment(recorded, intent)
        if intent.get("status") not in UPDATABLE:
            raise _in_progress(intent)

    def _shipped_as_recorded(self, quote: Quote, recorded: dict, attempt_id: str) -> Quote:
        """``quote``'s lines, shipped and taxed for the address the attempt last quoted: as
        recorded when the lines are the same, else priced again (the free-shipping threshold
        and the tax follow the lines)."""
        if not recorded.get("address"):
            return quote
        address = ShippingAddress.parse(recorded["address"])
        if _same_lines(recorded, quote):
            return dataclasses.replace(
                quote,
                shipping=recorded["shipping"],
                tax=recorded["tax"],
                shipping_rate=recorded["shipping_rate"],
                tax_calculation=recorded["tax_calculation"],
                address=address,
            )
        return self._price(quote, Destination(address, recorded["shipping_rate"]), attempt_id)

    def quote(
        self,
        attempt_id: str,
        lines: Quote,
        destination: Destination,
        *,
        version: int,
        cart_id: str | None,
    ) -> tuple[AttemptIntent, Priced]:
        """Price ``lines`` for ``destination`` and make the attempt's PaymentIntent hold it.

        Raises AttemptNotFound for an attempt with no PaymentIntent, StaleQuote when the
        attempt's recorded quote is as new as ``version`` or newer, PaymentInProgress or
        AttemptFinished when the PaymentIntent can no longer change, and pricing's errors
        (no rate serves the address, Stripe Tax cannot place it, an unknown rate); a
        UsageError (``invalid_name``) for a destination without the name to ship to.
        """
        if not destination.name:
            # Stripe's shipping needs a name: without it the PaymentIntent would keep no (or an
            # older) address, be charged this one's tax and then be refused at fulfilment.
            raise UsageError(
                "A quote for an address needs the name to ship to.", code="invalid_name"
            )
        with self.locks.hold(attempt_id):
            recorded = self.ledger.quote_for_attempt(attempt_id)
            if recorded is None:
                raise AttemptNotFound(NO_PAYMENT_TO_QUOTE)
            check_owner(recorded, cart_id, lines, NO_PAYMENT_TO_QUOTE)
            self.check_same_payment(recorded)
            if version <= recorded["version"]:
                raise _stale(recorded["version"])
            check_chargeable(lines, minimum=False)
            priced = self._priced(lines, destination, attempt_id)
            quote, order_id = check_chargeable(priced.quote), recorded["order_id"]
            intent = self.gateway.retrieve_intent(recorded["payment_intent"], expand=())
            _check_open(intent)
            intent = self._update(intent, quote, order_id, cart_id, destination.name)
            try:
                saved = self.ledger.record_quote(
                    intent["id"],
                    order_id,
                    quote,
                    attempt_id=attempt_id,
                    cart_id=cart_id,
                    version=version,
                )
            except QuoteStale as stale:  # another process recorded a later one meanwhile
                raise _stale(stale.recorded) from None
            held = AttemptIntent(intent, order_id, quote, True, saved["version"])
            return held, priced

    def _priced(self, lines: Quote, destination: Destination, attempt_id: str) -> Priced:
        return price(
            lines,
            destination.address,
            destination.rate_id,
            catalog=self.catalog,
            gateway=self.gateway,
            tax_enabled=self.tax_enabled,
            attempt_id=attempt_id,
        )

    def _price(self, lines: Quote, destination: Destination, attempt_id: str) -> Quote:
        return self._priced(lines, destination, attempt_id).quote

    def _update(
        self,
        intent: dict,
        quote: Quote,
        order_id: str,
        cart_id: str | None,
        name: str | None = None,
    ) -> dict:
        """Update ``intent``, just retrieved from Stripe, to ``quote``, unless it is confirmed
        (``PaymentInProgress``): Stripe would take a new amount while 3-D Secure is pending.

        Another tab may still confirm it between that retrieve and this update (one Stripe
        round trip): into processing or requires_capture, Stripe refuses the update, and the
        refusal says so below; into requires_action, Stripe takes it, and the challenge,
        opened with the amount before, authenticates this one. Only that window remains.
        """
        if intent.get("status") == "requires_action":
            # 3-D Secure pending, maybe abandoned (the tab closed, or Back): its amount stays
            # the challenge's, and the attempt is let go instead; the page starts a new one.
            intent = self.cancel_unpaid(intent)
            _check_open(intent)
        if intent.get("status") not in UPDATABLE:
            raise _in_progress(intent)
        intent_id = intent["id"]
        try:
            return self.gateway.update_intent(
                intent_id, quote, order_id=order_id, cart_id=cart_id, ship_to=name
            )
        except PaymentError as exc:
            if exc.stripe_code != "payment_intent_unexpected_state":
                raise
            intent = exc.payment_intent or self.gateway.retrieve_intent(intent_id, expand=())
            _check_open(intent)
            raise _in_progress(intent) from None


def check_owner(recorded: dict, cart_id: str | None, quote: Quote | None, message: str) -> None:
    """Refuse (as ``AttemptNotFound``, the answer an unknown attempt gets) a request for an
    attempt recorded for another order: another cart than the request's (``cart_id``, the one
    its cookie finds, None for "Buy now"), or "Buy now" of another book than ``quote``'s.

    An attempt belongs to the cart or the book it was first asked for: the page keys its attempt
    by its cart (and the cart's payments) or its book, so only a request that knows an attempt's
    id without being its page gets here; it learns nothing of the attempt and changes nothing.
    """
    if recorded["cart_id"] != cart_id:
        raise AttemptNotFound(message)
    if cart_id is None and quote is not None:
        items = [line["item_id"] for line in recorded["lines"]]
        if items != [line.item_id for line in quote.lines]:
            raise AttemptNotFound(message)


def _stale(version: int) -> StaleQuote:
    return StaleQuote(
        f"A later quote (version {version}) is already applied: this one is not.", version=version
    )


def _in_progress(intent: dict) -> PaymentInProgress:
    if intent.get("status") == "requires_action":  # the 3-D Secure page, here or in a tab
        return PaymentInProgress(
            "This payment is waiting for the customer to authenticate (3-D Secure, in this "
            "tab or another): its amount can no longer change. Finish it, or add the books "
            "to the cart again and reload this page to start a new payment."
        )
    return PaymentInProgress(
        f"This payment is already {in_words(intent.get('status'))}: its amount can no "
        "longer change. Wait for it to finish, then start a new checkout."
    )


def _check_open(intent: dict) -> None:
    if intent.get("status") in FINISHED:
        raise AttemptFinished(
            f"This checkout has already been {in_words(intent['status'])}: start a new attempt.",
            intent_id=intent["id"],
            status=intent["status"],
            order_id=(intent.get("metadata") or {}).get("order_id"),
        )


def _holds(intent: dict, quote: Quote) -> bool:
    """Whether the PaymentIntent holds this quote's amount, lines and tax calculation."""
    metadata = intent.get("metadata") or {}
    return (
        intent.get("amount") == quote.total
        and intent.get("currency") == quote.currency
        and metadata.get("lines") == quote.line_summary()
        and (metadata.get("tax_calculation") or None) == quote.tax_calculation
    )


def _same_lines(recorded: dict, quote: Quote) -> bool:
    lines = [(row["item_id"], row["quantity"], row["unit_amount"]) for row in recorded["lines"]]
    return recorded["currency"] == quote.currency and lines == [
        (line.item_id, line.quantity, line.unit_amount) for line in quote.lines
    ]


def _same(recorded: dict, quote: Quote) -> bool:
    return (
        _same_lines(recorded, quote)
        and recorded["total"] == quote.total
        and recorded["tax_calculation"] == quote.tax_calculation
    )
