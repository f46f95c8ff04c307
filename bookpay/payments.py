"""The gateway: bookpay's only way to Stripe (or to the emulator, which answers like Stripe).

One ``StripeClient`` per Settings, never global state. Every POST carries an idempotency key
(``_request`` refuses one without): from business identity where there is one (a checkout
attempt, a refund request), so a retried request, a reload or a double click returns the first
answer instead of charging or refunding twice; else a key of its own per call, so that the
client's own retries (a 500, a 429, a dropped connection) can never do a thing twice. Stripe's
exceptions become bookpay's in one place, ``_translate``; nothing above this module sees one.

A hung Stripe must not hang bookpay: every call has connect and read timeouts and one budget for
all its attempts (``Settings.stripe_limits``), and goes through a ``resilience.Guard`` (a bulkhead
and a circuit breaker), so the checkout server and the CLI fail fast, with ``StripeUnavailable``,
instead of waiting behind a dependency that does not answer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from typing import Any

import stripe

from bookpay.catalog import Book
from bookpay.config import Settings, StripeLimits
from bookpay.errors import (
    BookpayError,
    CardDeclined,
    ConfigError,
    NotFound,
    PaymentError,
    StripeUnavailable,
    UsageError,
    refused_outright,
)
from bookpay.orders import INTEGRATION
from bookpay.quote import Quote, QuoteLine, new_order_id, order_id_for
from bookpay.resilience import Guard
from bookpay.transport import Transport, TransportError

log = logging.getLogger("bookpay.payments")

# Test-mode PaymentMethod tokens that Stripe documents; any pm_ id is accepted as well.
TEST_CARD_NUMBERS = {
    "4242424242424242": "pm_card_visa",
    "5555555555554444": "pm_card_mastercard",
    "4000000000000002": "pm_card_visa_chargeDeclined",
    "4000000000009995": "pm_card_visa_chargeDeclinedInsufficientFunds",
    "4000000000009987": "pm_card_visa_chargeDeclinedLostCard",
    "4000000000009979": "pm_card_visa_chargeDeclinedStolenCard",
    "4000000000000069": "pm_card_chargeDeclinedExpiredCard",
    "4000000000000127": "pm_card_chargeDeclinedIncorrectCvc",
    "4000000000000119": "pm_card_chargeDeclinedProcessingError",
    "4000000000006975": "pm_card_visa_chargeDeclinedVelocityLimitExceeded",
    "4000000000000341": "pm_card_chargeCustomerFail",
    "4100000000000019": "pm_card_radarBlock",
    "4000000000004954": "pm_card_riskLevelHighest",
    "4000000000009235": "pm_card_riskLevelElevated",
    "4000000000000101": "pm_card_cvcCheckFail",
    "3566002020360505": "pm_card_jcb",
    "6200000000000005": "pm_card_unionpay",
    "3056930009020004": "pm_card_diners",
    "4000008260000000": "pm_card_gb",
    "4000002760003184": "pm_card_authenticationRequired",
    "4000002500003155": "pm_card_authenticationRequiredOnSetup",
    "4000000000003220": "pm_card_threeDSecure2Required",
    "4000000000000259": "pm_card_createDispute",
    "4000000000002685": "pm_card_createDisputeProductNotReceived",
    "4000000000001976": "pm_card_createDisputeInquiry",
    "4000000404000079": "pm_card_createMultipleDisputes",
    "4000000404000038": "pm_card_createCe3EligibleDispute",
    "4000008400000779": "pm_card_createComplianceDispute",
    "5105008400000002": "pm_card_createMastercardComplianceDispute",
    "4000000000005126": "pm_card_refundFail",
    "4000000000007726": "pm_card_pendingRefund",
}


# Where the shop answers when BOOKPAY_BASE_URL is not set: `bookpay serve`'s default address.
LOCAL_SHOP_URL = "http://127.0.0.1:4242"


# Stripe's tax code for physical books: every line of a bookshop's quote has it.
BOOKS_TAX_CODE = "txcd_35010000"
ADDRESS_FIELDS = ("line1", "line2", "city", "state", "postal_code", "country")


@dataclass(frozen=True)
class TaxLine:
    """One line of a quote, as Stripe Tax sees it."""

    reference: str  # unique within a calculation: the book's id
    amount: int  # the line's total in minor units: unit price times quantity
    quantity: int = 1


def idempotency_key(*parts: str) -> str:
    """A stable key for one business operation: the same parts always give the same key."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
    return f"bookpay-{parts[0]}-{digest}"


def _call_key(operation: str) -> str:
    """A key for one call with no business identity: its own retries share it, nothing else."""
    return f"bookpay-{operation}-{uuid.uuid4()}"


class CreationUnknown(StripeUnavailable):
    """A PaymentIntent's creation answered with a replayed 500 whose look for what it made
    could not tell (it ran out of time, or failed): it may have been made (exit 4, HTTP 503;
    the exit code of the look's own failure where that was no failure of Stripe's, such as 5
    for a key it refused)."""


class RefundRequestReused(PaymentError):
    """A refund request id already used for a refund with other parameters (exit 3, HTTP 409)."""

    http_status = 409
    code = "refund_request_reused"

    def __init__(self, message: str, *, request_id: str, refund: dict | None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.request_id = request_id
        self.refund = refund


class Gateway:
    """The operations the CLI and the checkout server need, over one StripeClient."""

    def __init__(self, settings: Settings, *, client: stripe.StripeClient | None = None) -> None:
        self.settings = settings
        limits = settings.stripe_limits
        self._budget = _Budget(limits.total_timeout)
        self._http: _BudgetClient | None = None  # ours to close, when we made the client
        if client is None:
            self._http = _http_for(settings, self._budget)
            client = _client_for(settings, self._http)
        self._client = client
        self._walks = _Walks()  # where the looks behind replayed 500s got to, per key
        self.guard = Guard(
            self.where,
            max_concurrent=limits.max_concurrent,
            failure_threshold=limits.failure_threshold,
            cooldown=limits.cooldown,
            says_nothing=_says_nothing,
        )

    def close(self) -> None:
        """Close the keep-alive connections to Stripe (of a client this gateway made)."""
        if self._http is not None:
            self._http.close()

    @property
    def where(self) -> str:
        return (
            f"the emulator at {self.settings.emulator_url}"
            if self.settings.is_emulated
            else "Stripe"
        )

    # PaymentIntents -------------------------------------------------------------------------

    def create_intent(
        self,
        quote: Quote | Book,
        *,
        attempt_id: str | None = None,
        email: str | None = None,
        order_id: str | None = None,
        cart_id: str | None = None,
        keyed_by_cart: bool = False,
    ) -> dict:
        """A PaymentIntent for a quote (or one copy of a book), priced by the caller from the
        catalog, in its current state.

        With an ``attempt_id`` (a checkout attempt) the same attempt always gets the same
        PaymentIntent back; without one (the CLI) every call makes a new one. When Stripe replays
        an earlier creation (``Idempotent-Replayed``), its body is the intent as it was created,
        so the intent is retrieved again: the caller must see whether it has been paid since.
        ``order_id`` names the order in the metadata (a new one when not given).

        The attempt's key was first used with the parameters of the attempt's first quote: asked
        with another (the cart changed after that creation's answer was lost), Stripe refuses,
        a PaymentError whose ``error_type`` is ``idempotency_error`` (its message without the
        key). ``keyed_by_cart`` makes the key of the attempt and these parameters instead.
        """
        quote = _as_quote(quote)
        if order_id is None:  # an attempt names the same order each time it is asked again
            order_id = order_id_for(attempt_id, self.settings.shop_id) if attempt_id else None
        metadata = self._metadata(quote, order_id or new_order_id(), cart_id)
        metadata = {key: value for key, value in metadata.items() if value}  # nothing to unset
        if attempt_id:
            metadata["attempt_id"] = attempt_id
        params: dict[str, Any] = {
            "amount": quote.total,
            "currency": quote.currency,
            "automatic_payment_methods": {"enabled": True},
            "description": quote.description(),
            "metadata": metadata,
        }
        if email:
            params["receipt_email"] = email
        if not attempt_id:
            key = _call_key("cli")
        elif keyed_by_cart:
            key = idempotency_key("checkout", attempt_id, _digest(params))
        else:
            key = idempotency_key("checkout", attempt_id)
        # A key of the CLI's own is new to this call: nothing older can have been made under it.
        since = None if attempt_id else int(time.time()) - CLOCK_MARGIN
        # _post_keyed looks once for each generation of the key that replayed its 500, in order.
        generations = iter(range(KEY_GENERATIONS))

        def find() -> dict | None:
            return self._find_created(
                params,
                since=since,
                checkout=bool(attempt_id),
                key=key,
                generation=next(generations),
            )

        def unfinished(seconds: float) -> StripeUnavailable:
            return self._creation_unknown(
                params,
                f"finding out whether it was made (and making it under the key's next "
                f"generations) took more than {seconds:g} s in all",
                checkout=bool(attempt_id),
            )

        try:
            created, headers = self._post_keyed(
                "/v1/payment_intents",
                params,
                key,
                find=find,
                with_headers=True,
                unfinished=unfinished,
            )
        except StripeUnavailable as exc:
            # The CLI's creation sent, and not answered (a 500 its budget could not retry, no
            # answer in time): its next run is a new creation, so the hint says where to look.
            unknown = getattr(exc, "outcome_unknown", False)
            if not attempt_id and unknown and not isinstance(exc, CreationUnknown):
                exc.hint = f"{CLI_CREATION_HINT} {exc.hint}" if exc.hint else CLI_CREATION_HINT
            raise
        except PaymentError as exc:
            if exc.error_type != "idempotency_error":
                raise
            # Stripe's message names the key: not a thing to show a shopper.
            raise PaymentError(
                f"{_capitalized(self.where)} created this checkout's payment for another cart "
                "first, and will not create it again for this one.",
                error_type=exc.error_type,
                stripe_code=exc.stripe_code,
                http_status=exc.http_status,
            ) from exc
        if headers.get("Idempotent-Replayed") == "true":
            return self.retrieve_intent(created["id"], expand=())
        return created

    def _find_created(
        self,
        params: dict[str, Any],
        *,
        since: int | None = None,
        checkout: bool = True,
        key: str | None = None,
        generation: int = 0,
    ) -> dict | None:
        """The PaymentIntent a creation with ``params`` made, if Stripe has one: what a 500
        leaves unknown. Its metadata names its order (and checkout attempt), new to each
        creation of the CLI, the attempt's own in a checkout. It lists the PaymentIntents of
        the key's life (24 hours, and a margin), or from ``since`` when the caller knows the key
        is younger, newest first: a list, unlike a search, shows a creation at once.

        The whole list gets one call's budget (``_walk``): a list it cannot finish in time is
        StripeUnavailable, the outcome unknown, never taken for "nothing was made" (the key's
        next generation would make a second PaymentIntent). So is a list that fails (a 5xx, a
        429, the breaker open): for the CLI, whatever fails it, as its next try is a new
        creation, not this one's (see ``_creation_unknown``).

        A list not finished goes on, at the key's next look (``generation``: the key's
        generation whose 500 was replayed), from the last PaymentIntent it read, not from the
        newest again: a shop with more PaymentIntents in a day than one budget lists would
        otherwise never get past the same page. Why what it skips cannot be the one: at
        ``_Walk``.
        """
        oldest = int(time.time()) - KEY_LIFE - CLOCK_MARGIN
        since = oldest if since is None else max(since, oldest)
        fresh = _Walk(generation=generation, since=since, started=time.time())
        walk = self._walks.resume(key, generation) or fresh
        if walk.done:
            return None  # listed to the end since this generation's 500: nothing was made
        wanted = params["metadata"]
        found: dict | None = None

        def ran_out(seconds: float) -> StripeUnavailable:
            return self._creation_unknown(
                params,
                f"listing the PaymentIntents it may have made took more than {seconds:g} s",
                checkout=checkout,
                listed=walk.listed,
            )

        try:
            with self._walk(ran_out):
                try:
                    while found is None:
                        resumed = walk.cursor is not None
                        pages = self.iter_intents(
                            starting_after=walk.cursor, created={"gte": walk.since}
                        )
                        try:
                            for intent in pages:
                                walk = walk.read(intent["id"])
                                metadata = intent.get("metadata") or {}
                                if (
                                    intent.get("amount") == params["amount"]
                                    and intent.get("currency") == params["currency"]
                                    and all(metadata.get(k) == v for k, v in wanted.items())
                                ):
                                    found = intent
                                    break
                            else:
                                walk = replace(walk, done=True)
                                break
                        except NotFound:
                            # Stripe no longer knows the intent the walk stopped at (Stripe
                            # answers a 400, resource_missing: test data deleted, an emulator
                            # reset): the look starts again from the newest.
                            if not resumed:
                                raise
                            walk = fresh
                finally:
                    # Found: the look is over. Else where it got to (or that it listed to the
                    # end) is kept for the key's next look, even when Stripe failed a page.
                    self._walks.keep(key, None if found is not None else walk)
        except CreationUnknown:
            raise
        except BookpayError as exc:
            if getattr(exc, "cut_short", False):
                raise  # the enclosing bound ended the look (see _walk): the caller says so
            # The 500 left it unknown, and so does a look that failed. A checkout's own error
            # (a refusal, a configuration's) stands: its next try is this creation again.
            if checkout and not isinstance(exc, StripeUnavailable):
                raise
            what = "listing the PaymentIntents it may have made failed"
            raise self._creation_unknown(params, what, checkout=checkout, cause=exc) from exc
        # The page just read holds the PaymentIntent as Stripe has it now. Retrieving it again
        # spent a call the key's bound may not have left: cut short, it failed the try after the
        # look had found it and forgotten its place, and the next try listed from the newest.
        return found

    def _creation_unknown(
        self,
        params: dict[str, Any],
        why: str,
        *,
        checkout: bool,
        cause: BookpayError | None = None,
        listed: int | None = None,
    ) -> StripeUnavailable:
        """What a creation behind a replayed 500 says when whether its PaymentIntent was made
        is not known (``why``: its look ran out of time, or failed with ``cause``): it may have
        been made. A checkout's next try is the same creation (the attempt's key), which finds
        it or goes on with the look; the CLI's would be another (a key of its own): the hint
        says where to look first.

        What a shopper's browser is sent says nothing of the shop's business: how many
        PaymentIntents a look read (``listed``, how many the shop made lately) goes to the log.
        """
        order = params["metadata"].get("order_id")
        if checkout and listed is not None:
            log.warning(
                "order %s: the look for its PaymentIntent behind a replayed 500 stopped after "
                "%d listed; the next try goes on from there",
                order,
                listed,
            )
        message = (
            f"{_capitalized(self.where)} answered the PaymentIntent's creation with a 500, "
            f"and {why}: whether it was made is not known yet"
            + (" (the next try goes on from there)." if listed is not None and checkout else ".")
        )
        if cause is not None:
            message = f"{message} {_capitalized(cause.message)}"
        if checkout:
            hint = (
                "Try again in a moment: the same checkout attempt finds it, or makes it, "
                "and is never charged twice."
            )
        else:
            hint = CLI_CREATION_HINT
            if cause is not None and cause.hint:
                hint = f"{hint} {cause.hint}"
        unavailable = isinstance(cause, StripeUnavailable)
        exc = CreationUnknown(
            message,
            hint=hint,
            code=cause.code if cause is not None else None,  # the breaker's, the bulkhead's
            retry_after=cause.retry_after if unavailable else None,
        )
        if cause is not None and not unavailable:
            # The look's own failure (a key Stripe refuses now, exit 5), not Stripe's being
            # unavailable: the CLI's exit code says that, as it would for any other command.
            exc.exit_code = cause.exit_code
        exc.outcome_unknown = True
        return exc

    @contextmanager
    def _walk(self, unfinished: Callable[[float], StripeUnavailable]) -> Iterator[None]:
        """A list walked page by page (``_pages``) under one budget for all its pages, a call's
        (``StripeLimits.total_timeout``, or what is left of an enclosing one): each page's own
        budget is cut to what is left of it, and no page is started with less than MIN_ATTEMPT
        left. A walk that runs out raises ``unfinished(seconds)``: what it was looking for may
        be on a page it did not read."""
        with self._budget.running():
            left = self._budget.left() or 0.0
            seconds = self._budget.seconds if self._budget.enclosing is None else round(left, 1)
            held = self._budget.enclosing is not None
            try:
                yield
            except StripeUnavailable as exc:
                if not getattr(exc, "cut_short", False):
                    raise  # Stripe failed a page: its own error says how
                if held:
                    # Held to the enclosing budget's deadline (a request's under its key), which
                    # came before the walk's own: that bound ended it, and its caller says so.
                    raise
                raise unfinished(seconds) from exc

    def update_intent(
        self,
        intent_id: str,
        quote: Quote,
        *,
        order_id: str,
        cart_id: str | None = None,
        ship_to: str | None = None,
    ) -> dict:
        """Make an unconfirmed PaymentIntent hold ``quote``: its amount, description and line
        metadata, with the tax calculation the amount comes from (Stripe allows it until the
        intent is confirmed). A quote priced for an address also sets the intent's ``shipping``
        to it, for ``ship_to`` (the name; Stripe needs one with an address).

        Each update is its own request (its retries share one key): an earlier update's key
        must never replay, or a cart changed back and forth would keep the middle amount.
        """
        params: dict[str, Any] = {
            "amount": quote.total,
            "currency": quote.currency,
            "description": quote.description(),
            "metadata": self._metadata(quote, order_id, cart_id),
        }
        if quote.address is not None and ship_to:
            address = {k: v for k, v in quote.address.to_dict().items() if v}
            params["shipping"] = {"name": ship_to, "address": address}
        key = f"bookpay-quote-{uuid.uuid4()}"
        path = f"/v1/payment_intents/{_path(intent_id)}"
        # After a 500, the same update again under a new key: setting it twice is setting it.
        return self._post_keyed(path, params, key)

    def _metadata(self, quote: Quote, order_id: str, cart_id: str | None) -> dict[str, str]:
        return {
            "integration": INTEGRATION,
            "shop_id": self.settings.shop_id,  # which shop fulfils it (several share a Stripe)
            **quote.metadata(order_id=order_id, cart_id=cart_id),
        }

    def retrieve_intent(
        self, intent_id: str, *, expand: Sequence[str] = ("latest_charge",)
    ) -> dict:
        params = {"expand": list(expand)} if expand else {}
        return self._request("get", f"/v1/payment_intents/{_path(intent_id)}", params)

    def list_intents(self, *, limit: int = 10) -> list[dict]:
        page = self._request("get", "/v1/payment_intents", {"limit": limit})
        return page["data"]

    def iter_intents(
        self,
        *,
        page_size: int = 100,
        starting_after: str | None = None,
        created: dict[str, int] | None = None,
    ) -> Iterator[dict]:
        """Every PaymentIntent, newest first, a page at a time (fetched as they are needed).

        ``starting_after`` resumes after that intent; ``created`` is Stripe's range filter
        (``{"gte": ..., "lt": ...}``, Unix seconds).
        """
        params: dict[str, Any] = {"limit": page_size}
        if starting_after:
            params["starting_after"] = starting_after
        if created:
            params["created"] = created
        return self._pages("/v1/payment_intents", params)

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[dict]:
        params = dict(params)
        while True:
            if self._budget.spent():  # a walk's budget (see _walk): no page worth starting
                spent = StripeUnavailable(f"The {self._budget.seconds:g} s budget is spent.")
                spent.cut_short = True
                raise spent
            page = self._request("get", path, params)
            yield from page["data"]
            if not page.get("has_more") or not page["data"]:
                return
            params["starting_after"] = page["data"][-1]["id"]

    def confirm_intent(
        self, intent_id: str, *, payment_method: str, return_url: str | None = None
    ) -> dict:
        """Confirm with a PaymentMethod id or test token (test mode and the emulator only).

        Stripe requires a ``return_url`` on a server-side confirmation of an intent with
        automatic payment methods (some of them redirect); without one given, the shop's
        success page is where a 3-D Secure redirect comes back to (a blank one is sent as it
        is, for Stripe to refuse: it is never taken for "none given").
        """
        if self.settings.livemode:
            raise ConfigError("Confirming from the command line is for test mode only.")
        params: dict[str, Any] = {
            "payment_method": payment_method,
            "return_url": self.success_url() if return_url is None else return_url,
        }
        path = f"/v1/payment_intents/{_path(intent_id)}/confirm"
        before = self.retrieve_intent(intent_id, expand=())  # to judge what a 500 hides

        def confirmed() -> dict | None:  # what a 500 leaves unknown: did the confirmation run?
            if before.get("status") not in UNCONFIRMED:
                return None  # it could not have: the key's next generation hears Stripe's refusal
            intent = self.retrieve_intent(intent_id, expand=())
            if intent.get("status") not in UNCONFIRMED:
                return self.retrieve_intent(intent_id)
            error = intent.get("last_payment_error")
            if error and (
                error != before.get("last_payment_error")
                or intent.get("latest_charge") != before.get("latest_charge")
            ):
                raise _declined(error, intent)  # it ran and was declined: not sent again
            return None

        with _may_have_been_made(
            "confirmation",
            intent_id,
            ". Confirming it again is safe: Stripe refuses to confirm a PaymentIntent that has "
            "succeeded or is authorized, so it cannot be charged twice.",
        ):
            return self._post_keyed(path, params, _call_key("confirm"), find=confirmed)

    def success_url(self) -> str:
        """The shop's return page: BOOKPAY_BASE_URL's /success, or the local default's."""
        return f"{(self.settings.base_url or LOCAL_SHOP_URL).rstrip('/')}/success"

    def payment_method_for(self, card: str) -> str:
        """A PaymentMethod id for a test card number (spaces allowed), a pm_card_ token or a pm_ id.

        Numbers Stripe has a test token for become that token, which works against real Stripe
        test mode too. Other numbers (4242424242424241, 4000008260003178) can only be sent raw
        to the emulator, which accepts card details the way Stripe.js sends them.
        """
        compact = _compact(card)
        # The digits 0-9 only: isdigit() alone takes Arabic-Indic and full-width digits too.
        if compact.isascii() and compact.isdigit():
            if compact in TEST_CARD_NUMBERS:
                return TEST_CARD_NUMBERS[compact]
            if not self.settings.is_emulated:
                raise UsageError(
                    f"{card} has no PaymentMethod token in Stripe test mode; "
                    "use a pm_card_... token or a number from the README's table."
                )
            params = {
                "type": "card",
                "card": {"number": compact, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
            }
            key = _call_key("payment-method")
            method = self._request("post", "/v1/payment_methods", params, idempotency_key=key)
            return method["id"]
        if not card.startswith("pm_"):
            raise UsageError(f"{card!r} is neither a card number nor a PaymentMethod id or token.")
        return card

    def cancel_intent(self, intent_id: str, *, reason: str | None = None) -> dict:
        params = {"cancellation_reason": reason} if reason else {}
        path = f"/v1/payment_intents/{_path(intent_id)}/cancel"

        def canceled() -> dict | None:  # what a 500 leaves unknown: did the cancel happen?
            intent = self.retrieve_intent(intent_id, expand=())
            return intent if intent.get("status") == "canceled" else None

        with _may_have_been_made(
            "cancellation",
            intent_id,
            ". Canceling it again is safe: Stripe refuses to cancel a canceled PaymentIntent.",
        ):
            return self._post_keyed(path, params, _call_key("cancel"), find=canceled)

    def capture_intent(
        self, intent_id: str, *, amount: int | None = None, request_id: str | None = None
    ) -> dict:
        """Capture an authorized PaymentIntent (capture_method=manual): all of it, or ``amount``
        with the rest released. One capture request (``request_id``, say a shipment) captures
        once, however often it is retried; without one, each call is a new request."""
        params: dict[str, Any] = {}
        if amount is not None:
            params["amount_to_capture"] = amount
        path = f"/v1/payment_intents/{_path(intent_id)}/capture"
        before = self.retrieve_intent(intent_id, expand=())  # to judge what a 500 hides
        # What this capture takes: the amount asked, else all that is capturable.
        wanted = amount if amount is not None else before.get("amount_capturable")

        def captured() -> dict | None:  # what a 500 leaves unknown: did the capture happen?
            # Only from an authorization (or, under a capture request's id, one already
            # captured: an earlier run of the same request) at the amount asked; anything else
            # goes to the key's next generation, to hear Stripe's refusal.
            done_before = request_id is not None and before.get("status") == "succeeded"
            if before.get("status") != "requires_capture" and not done_before:
                return None
            intent = self.retrieve_intent(intent_id, expand=())
            if intent.get("status") != "succeeded":
                return None
            if done_before and amount is None:
                return intent
            return intent if intent.get("amount_received") == wanted else None

        if request_id:
            return self._post_keyed(
                path, params, idempotency_key("capture", intent_id, request_id), find=captured
            )
        with _may_have_been_made("capture", intent_id, " before capturing again."):
            return self._post_keyed(path, params, _call_key("capture"), find=captured)

    # Refunds --------------------------------------------------------------------------------

    def create_refund(
        self,
        intent_id: str,
        *,
        amount: int | None = None,
        reason: str | None = None,
        request_id: str | None = None,
    ) -> dict:
        """Refund a PaymentIntent, in full (what remains) or in part.

        ``request_id`` names the refund request (say, a support ticket): one request id is one
        refund. Repeating the request exactly returns that refund; repeating it with another
        amount or reason raises RefundRequestReused. The id is kept in the refund's metadata,
        so this holds after Stripe's idempotency keys expire (24 hours) too, and it is the whole
        idempotency key, so two racing repeats cannot both refund. Without an id, every call is
        a new request.
        """
        params: dict[str, Any] = {"payment_intent": intent_id}
        if amount is not None:
            params["amount"] = amount
        if reason:
            params["reason"] = reason
        if request_id is None:
            with _may_have_been_made(
                "refund",
                intent_id,
                " before refunding again, and give --request-id next time, so that a repeat "
                "cannot refund twice.",
            ):
                key = _call_key("refund")
                return self._request("post", "/v1/refunds", params, idempotency_key=key)
        if not request_id.strip():
            # A blank id (an empty shell variable) must not quietly mean "a new refund each time".
            raise UsageError("The refund request id is blank: give one, or none at all.")
        asked = {"request_id": request_id, "request_amount": _asked_amount(amount)}
        earlier = self.find_refund_request(intent_id, request_id)
        if earlier is not None:
            if _same_request(earlier, asked, reason):
                return earlier
            raise _reused(request_id, earlier)
        params["metadata"] = asked

        def made() -> dict | None:  # what a 500 leaves unknown: did the refund happen?
            refund = self.find_refund_request(intent_id, request_id)
            if refund is not None and not _same_request(refund, asked, reason):
                raise _reused(request_id, refund)
            return refund

        key = idempotency_key("refund", intent_id, request_id)
        try:
            return self._post_keyed("/v1/refunds", params, key, find=made)
        except PaymentError as exc:
            if "idempotency_error" not in (exc.error_type, exc.stripe_code):
                raise
            # A repeat that raced the first one: Stripe compared the parameters for us.
            raise _reused(request_id, self.find_refund_request(intent_id, request_id)) from None

    def find_refund_request(self, intent_id: str, request_id: str) -> dict | None:
        """The refund that ``request_id`` made for ``intent_id``, if any."""
        refunds = self._pages("/v1/refunds", {"payment_intent": intent_id, "limit": 100})
        return next(
            (r for r in refunds if (r.get("metadata") or {}).get("request_id") == request_id),
            None,
        )

    def list_refunds(self, intent_id: str) -> list[dict]:
        """Every refund of a PaymentIntent, newest first (past Stripe's first page of 100)."""
        return list(self._pages("/v1/refunds", {"payment_intent": intent_id, "limit": 100}))

    def retrieve_refund(self, refund_id: str) -> dict:
        return self._request("get", f"/v1/refunds/{_path(refund_id)}")

    # Charges and disputes (what webhooks about refunds and disputes are checked against) ------

    def retrieve_charge(self, charge_id: str, *, expand: Sequence[str] = ("refunds",)) -> dict:
        """A Charge as Stripe has it now, with its refunds (which Stripe lists only on request).

        Stripe's expanded list holds the first 10 refunds only (``has_more``): the rest are read
        from the refunds list, so a Charge refunded more than 10 times still lists every refund
        (each owes its own tax reversal, and each may fail)."""
        params = {"expand": list(expand)} if expand else {}
        charge = self._request("get", f"/v1/charges/{_path(charge_id)}", params)
        refunds = charge.get("refunds")
        if isinstance(refunds, dict) and refunds.get("has_more"):
            listed = {"charge": charge["id"], "limit": 100}
            every = list(self._pages("/v1/refunds", listed))
            charge["refunds"] = {**refunds, "data": every, "has_more": False}
        return charge

    def retrieve_dispute(self, dispute_id: str) -> dict:
        return self._request("get", f"/v1/disputes/{_path(dispute_id)}")

    def list_disputes(self, intent_id: str) -> list[dict]:
        """Every dispute of a PaymentIntent's charges, newest first (past the first page)."""
        params = {"payment_intent": intent_id, "limit": 100}
        return list(self._pages("/v1/disputes", params))

    # Stripe Tax ------------------------------------------------------------------------------

    def create_tax_calculation(
        self,
        lines: Sequence[TaxLine],
        *,
        currency: str,
        address: Mapping[str, Any],
        shipping_amount: int | None = None,
        tax_behavior: str = "exclusive",
        attempt_id: str | None = None,
    ) -> dict:
        """Stripe Tax's calculation for a quote: its lines (each with the books tax code), its
        shipping cost and the address it ships to (Stripe's shape: line1, line2, city, state,
        postal_code, country), with its line items expanded.

        ``tax_behavior`` says whether the amounts are before tax ("exclusive", as US prices
        are) or include it ("inclusive"). With an ``attempt_id`` the same checkout attempt asking
        for the same quote gets the same calculation back (the key is made of both, so a retry
        costs no second calculation); without one every call is a new calculation. An address
        Stripe cannot place is a PaymentError whose ``stripe_code`` is
        ``customer_tax_location_invalid``. With BOOKPAY_TAX=off there is no tax to calculate:
        ConfigError.
        """
        if not self.settings.tax_enabled:
            raise ConfigError(
                "Tax is off (BOOKPAY_TAX=off): bookpay makes no tax calculations.",
                hint="Set BOOKPAY_TAX=stripe to have Stripe Tax work out the tax.",
            )
        params: dict[str, Any] = {
            "currency": currency,
            "line_items": [
                {
                    "amount": line.amount,
                    "quantity": line.quantity,
                    "reference": line.reference,
                    "tax_code": BOOKS_TAX_CODE,
                    "tax_behavior": tax_behavior,
                }
                for line in lines
            ],
            "customer_details": {
                "address": {k: v for k in ADDRESS_FIELDS if (v := address.get(k))},
                "address_source": "shipping",
            },
            "expand": ["line_items"],
        }
        if shipping_amount is not None:
            params["shipping_cost"] = {"amount": shipping_amount, "tax_behavior": tax_behavior}
        if not attempt_id:
            key = f"bookpay-taxcalc-{uuid.uuid4()}"
            return self._request("post", "/v1/tax/calculations", params, idempotency_key=key)
        # A calculation records nothing: after a 500, another one is as good.
        key = idempotency_key("taxcalc", attempt_id, _digest(params))
        return self._post_keyed("/v1/tax/calculations", params, key)

    def tax_settings(self) -> dict:
        """The account's Stripe Tax settings (``GET /v1/tax/settings``): ``status`` is "active"
        when Stripe Tax can calculate tax, "pending" (``status_details.pending.missing_fields``
        says what it lacks) when every calculation would fail. (Stripe only: the emulator
        calculates with its TEST rates and has no such settings.)"""
        return self._request("get", "/v1/tax/settings", retries=0)

    def retrieve_tax_calculation(self, calculation_id: str) -> dict:
        """A calculation, with its line items, until it expires (90 days; NotFound after)."""
        path = f"/v1/tax/calculations/{_path(calculation_id)}"
        return self._request("get", path, {"expand": ["line_items"]})

    def create_tax_transaction(self, calculation_id: str, *, order_id: str) -> dict:
        """Record a paid order's tax with Stripe Tax: the transaction of its calculation, with the
        order id as its reference and its line items expanded.

        One calculation makes one transaction: the idempotency key is the calculation's, so a
        repeat (a duplicate webhook, a retry) within Stripe's 24 hours gets the first transaction
        back; after that Stripe refuses a second one (a PaymentError whose ``stripe_code`` is
        ``resource_already_exists``), so the caller keeps the transaction id it got.
        """
        params = {"calculation": calculation_id, "reference": order_id, "expand": ["line_items"]}
        key = idempotency_key("taxtxn", calculation_id)
        # After a 500, a new key cannot record it twice: Stripe refuses a reference it has.
        return self._post_keyed("/v1/tax/transactions/create_from_calculation", params, key)

    def retrieve_tax_transaction(self, transaction_id: str) -> dict:
        path = f"/v1/tax/transactions/{_path(transaction_id)}"
        return self._request("get", path, {"expand": ["line_items"]})

    def tax_transaction_line_items(self, transaction_id: str) -> list[dict]:
        """Every line item of a tax transaction (past the first page)."""
        path = f"/v1/tax/transactions/{_path(transaction_id)}/line_items"
        return list(self._pages(path, {"limit": 100}))

    def create_tax_reversal(
        self, transaction_id: str, *, refund_id: str, amount: int | None = None
    ) -> dict:
        """Record a refund with Stripe Tax: a reversal of the order's tax transaction.

        Without ``amount``, a full reversal. With it (what was refunded, tax included, in the
        currency's minor units), a partial reversal of that flat amount, which Stripe spreads
        over the lines and the shipping in proportion to what each has left. The refund's id is
        the reversal's reference and the idempotency key's source: one refund, one reversal.
        """
        params: dict[str, Any] = {
            "original_transaction": transaction_id,
            "reference": refund_id,
            "mode": "full",
            "metadata": {"refund": refund_id},
            "expand": ["line_items"],
        }
        if amount is not None:
            if amount <= 0:
                raise UsageError(f"A refund's amount must be positive, got {amount}.")
            params |= {"mode": "partial", "flat_amount": -amount}
        key = idempotency_key("taxrev", refund_id)
        # After a 500, a new key cannot reverse it twice: Stripe refuses a reference it has.
        return self._post_keyed("/v1/tax/transactions/create_reversal", params, key)

    # Webhook endpoints (the emulator's, registered by `bookpay serve`) ----------------------

    def register_webhook(self, url: str, events: Sequence[str] = ("*",)) -> str:
        """Create a webhook endpoint for ``url`` and return its signing secret.

        Endpoints left by an earlier run for the same URL are deleted first, so a restarted
        server is not sent every event twice.
        """

        endpoints = self._request("get", "/v1/webhook_endpoints", {"limit": 100})["data"]
        for old in endpoints:
            if old["url"] == url:
                self._request("delete", f"/v1/webhook_endpoints/{_path(old['id'])}")
        params = {"url": url, "enabled_events": list(events)}
        key = _call_key("webhook-endpoint")
        created = self._request("post", "/v1/webhook_endpoints", params, idempotency_key=key)
        return created["secret"]

    def webhook_endpoints(self) -> list[dict]:
        """Every webhook endpoint of the account (the emulator's: a handful)."""
        found: list[dict] = []
        params: dict[str, Any] = {"limit": 100}
        while True:
            page = self._request("get", "/v1/webhook_endpoints", params)
            found += page["data"]
            if not page.get("has_more") or not page["data"]:
                return found
            params["starting_after"] = page["data"][-1]["id"]

    def create_webhook(
        self, url: str, *, metadata: dict[str, str], events: Sequence[str] = ("*",)
    ) -> dict:
        """A new webhook endpoint; only this answer carries its signing ``secret``."""
        params = {"url": url, "enabled_events": list(events), "metadata": metadata}

        def orphans() -> None:
            """After a 500 replayed from the key: an endpoint it made is deleted (its secret,
            shown only in that lost answer, is not known), so the next key makes one that is."""
            for old in self.webhook_endpoints():
                if old["url"] == url and (old.get("metadata") or {}) == metadata:
                    self.delete_webhook(old["id"])

        key = _call_key("webhook-endpoint")
        return self._post_keyed("/v1/webhook_endpoints", params, key, find=orphans)

    def retrieve_webhook(self, endpoint_id: str) -> dict | None:
        """A webhook endpoint (its ``secret`` is not in it: Stripe shows that only at creation),
        or None when it is gone."""
        try:
            return self._request("get", f"/v1/webhook_endpoints/{_path(endpoint_id)}")
        except NotFound:
            return None

    def update_webhook(self, endpoint_id: str, **params: Any) -> dict:
        """Change a webhook endpoint (``url``, ``metadata``, ``disabled``: Stripe's names)."""
        key = _call_key("webhook-endpoint-update")
        path = f"/v1/webhook_endpoints/{_path(endpoint_id)}"
        return self._request("post", path, params, idempotency_key=key)

    def iter_events(
        self,
        *,
        types: Sequence[str] = (),
        delivery_success: bool | None = None,
        created: dict[str, int] | None = None,
        page_size: int = 100,
    ) -> Iterator[dict]:
        """Events, newest first, a page at a time (fetched as they are needed): of ``types``
        (20 at most, as Stripe takes), ``delivery_success`` (False: those not delivered to some
        endpoint yet, or never), ``created`` in Stripe's range filter (Unix seconds)."""
        params: dict[str, Any] = {"limit": page_size}
        if types:
            params["types"] = list(types)
        if delivery_success is not None:
            params["delivery_success"] = delivery_success
        if created:
            params["created"] = created
        return self._pages("/v1/events", params)

    def delete_webhook(self, endpoint_id: str) -> None:
        """Remove a webhook endpoint; one that is already gone is not an error."""
        with suppress(NotFound):
            self._request("delete", f"/v1/webhook_endpoints/{_path(endpoint_id)}")

    def ping(self) -> None:
        """Raise StripeUnavailable (or ConfigError for a bad key) unless the API answers.

        One try, no retries: a readiness check wants to know now, and will ask again.
        """
        self._request("get", "/v1/payment_intents", {"limit": 1}, retries=0)

    # The one boundary where stripe's exceptions become bookpay's -----------------------------

    def _post_keyed(
        self,
        path: str,
        params: dict[str, Any],
        key: str,
        *,
        find: Callable[[], dict | None] | Callable[[], None] | None = None,
        with_headers: bool = False,
        unfinished: Callable[[float], StripeUnavailable] | None = None,
    ) -> Any:
        """A POST under a key of business identity (an attempt, a request id, a calculation),
        which a 500 must not block: Stripe saves a 500 under its key as any answer, and replays
        it to every retry with that key for 24 hours.

        After a 500 replayed from the key (a 500 not saved lets a retry run again), ``find`` looks
        for what the request would have made (a 500 does not say whether it was), and that is
        the answer (``find`` is called once for each generation that replayed its 500, in
        order, the key itself first); when nothing was made, the request goes again
        under the key's next generation (``KEY-r1``, ``KEY-r2``...): derived, not random, so two
        processes retrying one request walk the same keys, and one of them makes it. Without
        ``find``, only a request that cannot be done twice whatever its key (Stripe refuses a
        second record of one reference), or whose repeat does no harm (an update, a
        calculation).

        All of it, every generation's request and look, has KEYED_BUDGETS calls' budgets in
        all (not one per call: four generations of a 15 s creation and a 15 s look held a
        server thread for two minutes): past that, whether it was done is not known, and
        ``unfinished(seconds)`` (else a StripeUnavailable of its own) says so; a retry of the
        request finds it, or goes on.
        """
        bound = KEYED_BUDGETS * self._budget.seconds

        def ran_out(cause: BaseException | None = None) -> StripeUnavailable:
            if unfinished is not None:
                return unfinished(bound)
            exc = StripeUnavailable(
                f"{_capitalized(self.where)} answered the request with a 500, and finding out "
                "whether it was done (and sending it again under the key's next generations) "
                f"took more than {bound:g} s in all: whether it was done is not known yet.",
                retry_after=getattr(cause, "retry_after", None),
            )
            exc.outcome_unknown = True
            return exc

        failed: StripeUnavailable | None = None
        with self._budget.running(bound):
            for generation in range(KEY_GENERATIONS):
                if generation and self._budget.spent():
                    raise ran_out(failed) from failed
                current = key if generation == 0 else f"{key}-r{generation}"
                try:
                    return self._request(
                        "post", path, params, idempotency_key=current, with_headers=with_headers
                    )
                except StripeUnavailable as exc:
                    if getattr(exc, "cut_short", False):
                        raise ran_out(exc) from exc  # the bound ended it, not Stripe
                    if not getattr(exc, "replayed", False):
                        unknown = getattr(exc, "outcome_unknown", False)  # a 5xx, no answer
                        if generation and unknown and self._budget.spent():
                            # A later generation's 500 the bound left no time to try again (to
                            # learn whether the key kept it): the bound ended it, as below.
                            raise ran_out(exc) from exc
                        raise  # no answer, a 429, a 500 not saved, the breaker: the key is free
                    failed = exc
                if find is not None:
                    if self._budget.spent():
                        raise ran_out(failed) from failed
                    try:
                        found = find()
                    except StripeUnavailable as exc:
                        if getattr(exc, "cut_short", False):
                            raise ran_out(exc) from exc  # the bound ended the look, not Stripe
                        raise
                    if found is not None:
                        return (found, {}) if with_headers else found
        assert failed is not None
        raise failed

    def _request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        with_headers: bool = False,
        retries: int | None = None,
    ) -> Any:
        """One API call, answered as plain JSON.

        stripe-python's raw requests do the encoding, authentication, retries (with the same
        idempotency key) and error translation of its typed services, without building typed
        objects that would only be turned back into dicts: that halves the client's cost of a
        retrieve, which the webhook handler makes for every event.

        A POST without an idempotency key is a programming error: a retry of it could charge,
        refund or create twice.
        """
        if method == "post" and not idempotency_key:
            raise ValueError(f"POST {path} needs an idempotency key")
        options: dict[str, Any] = {"idempotency_key": idempotency_key} if idempotency_key else {}
        if retries is not None:
            options["max_network_retries"] = retries
        # The guard is outermost, so it sees bookpay's errors: a StripeUnavailable is a failure
        # of Stripe, a refusal (a decline, a 404) is Stripe answering.
        with self.guard.call(), self._translate(), self._budget.running():
            response = self._client.raw_request(method, path, **(params or {}), **options)
        body = response.data  # stripe-python has decoded it once already: no second decode
        return (body, response.headers) if with_headers else body

    @contextmanager
    def _translate(self):
        try:
            yield
        except stripe.CardError as exc:
            raise CardDeclined(exc.user_message or str(exc), **_details(exc)) from exc
        except stripe.IdempotencyError as exc:
            raise PaymentError(exc.user_message or str(exc), **_details(exc)) from exc
        except stripe.InvalidRequestError as exc:
            if exc.code == "resource_missing":
                raise NotFound(exc.user_message or str(exc), code="resource_missing") from exc
            raise PaymentError(exc.user_message or str(exc), **_details(exc)) from exc
        except stripe.PermissionError as exc:
            raise ConfigError(_permission_message(exc), hint=PERMISSION_HINT) from exc
        except stripe.AuthenticationError as exc:
            raise ConfigError(
                f"{self.where} refused the API key: {exc.user_message or exc}",
                hint="Check STRIPE_SECRET_KEY with `bookpay config check`.",
            ) from exc
        except stripe.APIConnectionError as exc:
            if not self.settings.is_emulated:
                hint = "Check your network connection and https://status.stripe.com."
            elif self._budget.reached:
                hint = None  # it is running: it took the connection, and dropped it or hung
            else:
                hint = "Start it with `bookpay emulator` or `bookpay serve`."
            wire = exc.__cause__ if isinstance(exc.__cause__, TransportError) else None
            if wire is not None and wire.timeout:
                # The call's own budget, or what was left of an enclosing one (a walk's, a
                # request's under its key) when that ended it first.
                cause = f"no answer within {round(self._budget.allowed, 1):g} s"
            elif wire is not None and wire.proxy_status is not None:
                cause = str(wire)  # the proxy's refusal, in words (no password in them)
                hint = PROXY_LOGIN_HINT if wire.proxy_status in (0, 407) else PROXY_HINT
            else:
                cause = _connection_cause(exc)
            message = f"Could not reach {self.where}: {cause}{self._budget.tries()}."
            unreached = StripeUnavailable(message, hint=hint)
            # Sent, and no answer (none in time, or the connection closed or reset after it
            # was sent): Stripe may have done it. Not when no attempt got a connection (it was
            # refused, the host name did not resolve): nothing was sent.
            unreached.outcome_unknown = self._budget.sent
            # Its last attempt cut short by an enclosing budget (a walk's, a request's under its
            # key): bookpay's own deadline, not Stripe failing. Unless an earlier one met a
            # failure of Stripe's, the circuit breaker counts it neither way (see Gateway.guard).
            unreached.cut_short = self._budget.cut
            unreached.stripe_failed = self._budget.failed
            raise unreached from exc
        except stripe.RateLimitError as exc:
            wait = _retry_after(exc.headers)
            raise StripeUnavailable(
                f"{_capitalized(self.where)} is limiting the rate of requests "
                f"(429: {exc.user_message or exc})"
                f"{self._budget.tries()}.",
                retry_after=wait,
            ) from exc
        except stripe.APIError as exc:
            if refused_outright(exc.http_status):
                # Refused before Stripe's API looked at it (a URL too long is a 414 in plain
                # text): the request's fault, not a failure of Stripe, so the breaker does not
                # count it and nothing is retried.
                raise PaymentError(
                    f"{_capitalized(self.where)} refused the request "
                    f"({exc.http_status}: {exc.user_message or exc}).",
                    **_details(exc),
                ) from exc
            if exc.http_status == 409:
                # The same key's first request still executing (idempotency_key_in_use): Stripe
                # busy with this very request, not failing, so the breaker does not count the
                # 409 itself (see _says_nothing). When that request is this call's own earlier
                # try, which got no answer (a timeout, a dropped connection), it may well be
                # made: the outcome is not known, and that try's failure still counts.
                own = self._budget.sent
                doing = (
                    "this request: an earlier try of it got no answer"
                    if own
                    else "an earlier request under the same idempotency key"
                )
                unavailable = StripeUnavailable(
                    f"{_capitalized(self.where)} is still working on {doing} "
                    f"(409: {exc.user_message or exc}){self._budget.tries()}.",
                    retry_after=_retry_after(exc.headers),
                )
                unavailable.key_in_use = True
                unavailable.outcome_unknown = own
                unavailable.stripe_failed = self._budget.failed
                raise unavailable from exc
            unavailable = StripeUnavailable(
                f"{_capitalized(self.where)} could not handle the request "
                f"({exc.http_status or 'error'}: "
                f"{exc.user_message or exc}){self._budget.tries()}.",
                retry_after=_retry_after(exc.headers),
            )
            # A 5xx the key keeps (replayed, or the first, which Stripe says a retry would only
            # replay): it will answer nothing else (see _post_keyed).
            unavailable.replayed = _kept_failure(exc.http_status or 0, exc.headers)
            # A 5xx: Stripe may have done the request before it failed (its docs say so).
            unavailable.outcome_unknown = (exc.http_status or 0) >= 500
            raise unavailable from exc
        except stripe.StripeError as exc:  # anything newer than this module knows
            raise PaymentError(exc.user_message or str(exc), **_details(exc)) from exc


# What the CLI says when a creation it sent may have been made: its next run would be another.
CLI_CREATION_HINT = (
    "It may have been made all the same: see `bookpay intent list` before creating it again."
)


@contextmanager
def _may_have_been_made(what: str, intent_id: str, then: str) -> Iterator[None]:
    """What the CLI says when a call on ``intent_id`` (its ``what``: "refund", "capture") was
    sent and its outcome is not known (a 5xx, or sent and not answered: Stripe may have done
    it): that it may have been made, where to see, and ``then`` (what to mind before running it
    again). It takes the place of any other hint (the emulator was reached: not "Start it with
    ..."); a call that reached nothing keeps its own."""
    try:
        yield
    except StripeUnavailable as exc:
        if getattr(exc, "outcome_unknown", False):
            exc.hint = (
                f"The {what} may have been made all the same: see "
                f"`bookpay intent show {intent_id}`{then}"
            )
        raise


# Below this many seconds left in a call's budget, another attempt is not worth starting.
MIN_ATTEMPT = 0.5
# A request under a key, its looks for what a replayed 500 hid and its key's next generations
# (Gateway._post_keyed): at most this many calls' budgets in all.
KEYED_BUDGETS = 2
# How early a timeout may fire against a deadline it was set for (the clock's rounding).
CLOCK_SLACK = 0.01
# How long Stripe keeps an idempotency key's answer (seconds), and how many keys a request of
# business identity may go through after 500s (see Gateway._post_keyed).
KEY_LIFE = 24 * 3600
KEY_GENERATIONS = 4
# How far Stripe's clock (a PaymentIntent's ``created``) may be from this machine's (seconds).
CLOCK_MARGIN = 600
# A PaymentIntent no confirmation has taken yet (or whose confirmation was declined).
UNCONFIRMED = ("requires_payment_method", "requires_confirmation")


# How many keys' looks behind a replayed 500 a Gateway remembers (see _Walks).
MAX_WALKS = 256


@dataclass(frozen=True)
class _Walk:
    """Where a look for a creation's PaymentIntent behind a replayed 500 (newest first, from
    ``since``) has got to: ``cursor`` is the last PaymentIntent it read (None: none yet),
    ``listed`` how many it read in all, ``done`` that it listed to the end.

    Why a look may go on where an earlier one stopped, skipping what was made since that one
    began: the PaymentIntent looked for, if it was made, was made by a creation under the key
    (or one of its generations, ``KEY-r1``...) that then answered the 500 now replayed; Stripe
    makes nothing under a key that holds a 500 (it replays the 500), and a key's next
    generation is used only once its 500 is replayed, so a generation's 500 is saved after
    every earlier one's. So what generation ``generation``'s look, begun after that 500 was
    replayed, did not reach is newer than the 500s of this generation and every earlier one:
    not the one any of their looks is for. A later generation's look (whose 500 may be newer
    than this look's start) starts from the newest (``_Walks.resume``).

    A look that listed to the end without finding it is kept too (``done``; a found one is
    forgotten: what was made is known): the key's generations up to ``generation`` made
    nothing, and their next look says so at once, so the next generation's creation (whose
    answer Stripe keeps) is reached in a try, not after listing the whole day again.
    """

    generation: int
    since: int
    started: float  # time.time() when the look began (from the newest)
    cursor: str | None = None
    listed: int = 0
    done: bool = False

    def read(self, intent_id: str) -> _Walk:
        return replace(self, cursor=intent_id, listed=self.listed + 1)


class _Walks:
    """Per idempotency key, where its last look behind a replayed 500 got to (``_Walk``): in
    memory, for this process; at most MAX_WALKS keys (the least recently kept dropped), none
    older than a key's life (its 500 is no longer replayed). Threads looking for one key at
    once each go on from what was kept when they began, and the last to stop is kept: every
    look kept is a true account of a list that does not change under it (see _Walk), so
    either may win."""

    def __init__(self, size: int = MAX_WALKS) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._walks: OrderedDict[str, _Walk] = OrderedDict()

    def resume(self, key: str | None, generation: int) -> _Walk | None:
        """The look to go on with for ``key``'s generation ``generation``: one begun for that
        generation or a later one (whose start is after this generation's 500), or None."""
        if key is None:
            return None
        with self._lock:
            self._expire()
            walk = self._walks.get(key)
        return None if walk is None or walk.generation < generation else walk

    def keep(self, key: str | None, walk: _Walk | None) -> None:
        """Keep where ``key``'s look got to; None forgets it (the look found what it wanted)."""
        if key is None:
            return
        with self._lock:
            if walk is None:
                self._walks.pop(key, None)
            else:
                self._walks[key] = walk
                self._walks.move_to_end(key)
            self._expire()
            while len(self._walks) > self._size:
                self._walks.popitem(last=False)

    def _expire(self) -> None:
        oldest = time.time() - KEY_LIFE
        for key in [key for key, walk in self._walks.items() if walk.started < oldest]:
            del self._walks[key]

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._walks


class _Budget(threading.local):
    """The deadline of the call this thread is making, shared by all of that call's attempts;
    how many attempts it made, and the wait the last answer asked for (Retry-After).

    Budgets nest: a call made inside another budget (a page of a walk, ``Gateway._walk``; any
    call of a request under a key, ``Gateway._post_keyed``) ends by the earlier of its own
    deadline and the enclosing one (``enclosing``, when that one is earlier).

    Whether Stripe failed the call, for the circuit breaker: ``failed`` when an attempt met no
    answer in its own time, a refused or dropped connection, a 5xx or a 429; ``cut`` when the
    last one was cut short by the enclosing deadline instead, which says nothing of Stripe
    (it answers pages in 0.7 s; the walk had 0.6 s left for one).

    Whether Stripe may have done it: ``sent`` when an attempt failed with its connection made
    (no answer in time, the connection closed or reset after the request went); ``reached``
    when an attempt got a connection at all (that, or an answer)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline: float | None = None
        self.enclosing: float | None = None
        self.attempts = 0
        self.retry_after: float | None = None
        self.failed = False
        self.cut = False
        self.sent = False
        self.reached = False
        self.allowed = seconds  # the seconds the last call had: its own, or fewer if cut short

    @contextmanager
    def running(self, seconds: float | None = None) -> Iterator[None]:
        """A budget of ``seconds`` (a call's, ``self.seconds``, by default) for what runs in it,
        ended by the enclosing one's deadline when that comes first."""
        outer, outer_enclosing = self.deadline, self.enclosing
        now = time.monotonic()
        deadline = now + (self.seconds if seconds is None else seconds)
        if outer is not None and outer < deadline:
            self.deadline = self.enclosing = outer
        else:
            self.deadline, self.enclosing = deadline, None
        self.allowed = max(0.0, self.deadline - now)
        self.attempts = 0
        self.retry_after = None
        self.failed = self.cut = self.sent = self.reached = False
        try:
            yield
        finally:
            self.deadline, self.enclosing = outer, outer_enclosing

    def left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def spent(self) -> bool:
        """Too little is left of the budget to start another attempt (or a walk's next page)."""
        left = self.left()
        return left is not None and left < MIN_ATTEMPT

    def ended_by_enclosing(self) -> bool:
        """The enclosing budget's deadline has come: a wait that timed out now was cut short by
        it, before its own timeout (a wait of an attempt is held to the earlier of the two)."""
        return self.enclosing is not None and time.monotonic() >= self.enclosing - CLOCK_SLACK

    def tries(self) -> str:
        """ " (3 attempts)" after a call that was retried, for its error message."""
        return f" ({self.attempts} attempts)" if self.attempts > 1 else ""


class _BudgetClient(stripe.HTTPClient):
    """stripe-python's HTTP client over ``bookpay.transport``, every attempt's timeouts cut to
    what the call's budget has left, its retries and back-off held to the budget too.

    It also retries a 429 (stripe-python retries only those Stripe marks with
    ``Stripe-Should-Retry``): every POST carries an idempotency key, so a retry is always safe,
    and a rate limit is a reason to wait, not to fail a checkout. A retried answer (a 429, a
    5xx) is retried no sooner than its ``Retry-After`` asks; a wait the budget cannot afford is
    not attempted: the call fails at once with StripeUnavailable, which passes the Retry-After
    on.
    """

    name = "bookpay"

    def __init__(self, transport: Transport, budget: _Budget, limits: StripeLimits) -> None:
        super().__init__()
        self._transport = transport
        self._budget = budget
        self._limits = limits

    def request(self, method, url, headers, post_data=None):
        self._budget.attempts += 1
        timeout = (self._limits.connect_timeout, self._limits.read_timeout)
        try:
            left = self._budget.left()
            if left is not None:
                if left <= 0:
                    raise TransportError(
                        f"the {self._budget.seconds:g} s budget is spent", retry=False, timeout=True
                    )
                timeout = (min(timeout[0], left), min(timeout[1], left))
            answer = self._transport.request(
                method, url, headers or {}, post_data, timeout, deadline=self._budget.deadline
            )
        except TransportError as exc:
            if exc.sent:
                self._budget.sent = self._budget.reached = True
            # Cut short by an enclosing budget (a walk's), not Stripe failing: see _Budget.
            if exc.timeout and self._budget.ended_by_enclosing():
                self._budget.cut = True
            else:
                self._budget.failed = True
            # stripe-python retries it (within the budget, see _should_retry) when it may help.
            raise stripe.APIConnectionError(str(exc), should_retry=exc.retry) from exc
        self._budget.reached = True
        if answer[1] >= 500 or answer[1] == 429:
            self._budget.failed = True
        return answer

    def request_stream(self, method, url, headers, post_data=None):
        raise NotImplementedError("bookpay makes no streaming calls")

    def close(self) -> None:
        self._transport.close()

    def _should_retry(self, response, api_connection_error, num_retries, max_network_retries):
        self._budget.retry_after = None
        left = self._budget.left()
        if left is not None and left < MIN_ATTEMPT:
            return False
        if response is not None and response[1] == 429:
            headers = response[2] or {}
            if num_retries >= (max_network_retries or 0):
                return False
            if str(headers.get("Stripe-Should-Retry", "")).lower() == "false":
                return False
        elif response is not None and _kept_failure(response[1], response[2]):
            return False  # Stripe replays a saved 5xx to every retry with its key
        elif not super()._should_retry(
            response, api_connection_error, num_retries, max_network_retries
        ):
            return False
        if response is None:
            return True
        wait = _retry_after(response[2])  # a 429's, a 5xx's: whatever answer asked for a wait
        if wait is not None and left is not None and wait > left - MIN_ATTEMPT:
            return False  # the wait asked for does not fit in what is left of the budget
        self._budget.retry_after = wait
        return True

    def _sleep_time_seconds(self, num_retries: int) -> float:
        sleep = super()._sleep_time_seconds(num_retries)
        if self._budget.retry_after is not None:
            sleep = max(sleep, self._budget.retry_after)
        left = self._budget.left()
        return sleep if left is None else max(0.0, min(sleep, left - MIN_ATTEMPT))


def _says_nothing(exc: BaseException) -> bool:
    """A call that says nothing of Stripe's health, for the circuit breaker: one bookpay's own
    deadline (an enclosing budget's) cut short, or one Stripe refused because the same key's
    first request is still executing (a 409), each with no failure of Stripe's before."""
    if getattr(exc, "key_in_use", False):
        return not getattr(exc, "stripe_failed", False)
    return getattr(exc, "cut_short", False) and not getattr(exc, "stripe_failed", True)


def _kept_failure(status: int, headers: Any) -> bool:
    """A 5xx that an idempotency key keeps, so another try gets it again: one Stripe replayed
    from the key (``Idempotent-Replayed``), or the first, which Stripe answers with
    ``Stripe-Should-Retry: false`` (a retry "won't have an additional effect")."""
    return status >= 500 and (_replayed(headers) or _no_retry(headers))


def _replayed(headers: Any) -> bool:
    try:
        return str((headers or {}).get("Idempotent-Replayed", "")).lower() == "true"
    except AttributeError:
        return False


def _no_retry(headers: Any) -> bool:
    try:
        return str((headers or {}).get("Stripe-Should-Retry", "")).lower() == "false"
    except AttributeError:
        return False


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def _retry_after(headers: Any) -> int | None:
    """Whole seconds from a Retry-After header (the seconds form; a date is not used here)."""
    try:
        value = (headers or {}).get("Retry-After")
    except AttributeError:
        return None
    if value is None or not str(value).strip().isdigit():
        return None
    return int(str(value).strip())


def _connection_cause(exc: BaseException) -> str:
    """What went wrong with the connection, in words, from the innermost error."""
    inner: BaseException | None = exc
    seen = []
    while inner is not None and len(seen) < 10:
        seen.append(inner)
        inner = inner.__cause__ or inner.__context__
    text = " ".join(f"{type(e).__name__}: {e}" for e in seen)
    for marker, words in (
        ("RemoteDisconnected", "the connection was closed without an answer"),
        ("Remote end closed connection", "the connection was closed without an answer"),
        ("ConnectionResetError", "the connection was reset"),
        ("Connection reset", "the connection was reset"),
        ("ConnectionRefusedError", "the connection was refused"),
        ("Connection refused", "the connection was refused"),
        ("NameResolutionError", "the host name does not resolve"),
        ("gaierror", "the host name does not resolve"),
    ):
        if marker in text:
            return words
    return "the connection failed"


def _http_for(settings: Settings, budget: _Budget) -> _BudgetClient:
    # The emulator is local: never send its traffic through an HTTP(S)_PROXY from the
    # environment (that would catch 127.0.0.1 too), and skip the per-request look-up.
    transport = Transport(cafile=stripe.ca_bundle_path, trust_env=not settings.is_emulated)
    return _BudgetClient(transport, budget, settings.stripe_limits)


def _client_for(settings: Settings, http: _BudgetClient) -> stripe.StripeClient:
    options: dict[str, Any] = {}
    if settings.is_emulated:
        options["base_addresses"] = {"api": settings.emulator_url}
    return stripe.StripeClient(
        settings.api_key,
        max_network_retries=settings.stripe_limits.max_retries,
        http_client=http,
        **options,
    )


def _digest(params: dict[str, Any]) -> str:
    """The same parameters, the same digest (for keys that must change when a request does)."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()


def _as_quote(quote: Quote | Book) -> Quote:
    if isinstance(quote, Quote):
        return quote
    return Quote((QuoteLine(quote.id, quote.title, 1, quote.amount),), quote.currency)


def _asked_amount(amount: int | None) -> str:
    return "remaining" if amount is None else str(amount)


def _same_request(refund: dict, asked: dict[str, str], reason: str | None) -> bool:
    """Is ``refund`` what this request asks for: the same amount asked and the same reason?"""
    metadata = refund.get("metadata") or {}
    return metadata.get("request_amount") == asked["request_amount"] and (
        refund.get("reason") or None
    ) == (reason or None)


def _reused(request_id: str, refund: dict | None) -> RefundRequestReused:
    """The request id was used before with other parameters. With no refund under it, the
    request first made with it was refused (more than the charge, say): Stripe keeps that
    answer under the id's idempotency key for 24 hours, and refuses other parameters there."""
    if refund is None:
        return RefundRequestReused(
            f"No refund was made under refund request {request_id!r}: Stripe refused the "
            "request first made with it, and keeps that answer under the id for 24 hours.",
            hint="Use a new request id.",
            request_id=request_id,
            refund=None,
            error_type="idempotency_error",
        )
    amount = (refund.get("metadata") or {}).get("request_amount") or refund.get("amount")
    reason = refund.get("reason") or "no reason"
    what = f"refund {refund.get('id')} (amount {amount}, {reason})"
    return RefundRequestReused(
        f"Refund request {request_id!r} was already made, as {what}, with other parameters; "
        "one request id is one refund.",
        request_id=request_id,
        refund=refund,
        error_type="idempotency_error",
    )


# What to check when the proxy from the environment refused to pass a call on.
PROXY_LOGIN_HINT = (
    "Check the user name and password in HTTPS_PROXY (http://user:password@host:port, with any "
    "@ : / ? # % in them percent-encoded)."
)
PROXY_HINT = "Check HTTPS_PROXY, and that the proxy lets connections to api.stripe.com through."
PERMISSION_HINT = (
    "A restricted key (rk_test_...) works for what it permits: add the permission to the key in "
    "the Dashboard (Developers > API keys), or use a key that has it."
)
_RAK = re.compile(r"'rak_([a-z0-9_]+?)_(read|write)'")


def _permission_message(exc: stripe.PermissionError) -> str:
    """Which permission a restricted key lacks, from Stripe's 403 ("Having the 'rak_..._read'
    permission would allow this request to continue")."""
    text = str(exc.user_message or exc)
    found = _RAK.search(text)
    if not found:
        return f"The API key is not permitted to do this: {text}"
    resource, access = found.groups()
    label = resource.replace("_", " ").title().replace(" ", "")
    return (
        f"The API key lacks the permission {found.group(0)[1:-1]} ({label}: {access.title()}), "
        "which this command needs."
    )


def _declined(error: dict, intent: dict) -> PaymentError:
    """The refusal a PaymentIntent's ``last_payment_error`` records, as its confirmation's
    answer would have said it (a card error is a 402)."""
    card = error.get("type") == "card_error"
    return (CardDeclined if card else PaymentError)(
        error.get("message") or "The payment was declined.",
        error_type=error.get("type"),
        stripe_code=error.get("code"),
        decline_code=error.get("decline_code"),
        param=error.get("param"),
        http_status=402 if card else 400,
        payment_intent=intent,
    )


def _details(exc: stripe.StripeError) -> dict[str, Any]:
    error = getattr(exc, "error", None)
    intent = getattr(error, "payment_intent", None) if error is not None else None
    return {
        "error_type": getattr(error, "type", None),
        "stripe_code": exc.code,
        "decline_code": getattr(error, "decline_code", None),
        "param": getattr(error, "param", None),
        "http_status": exc.http_status,
        "payment_intent": intent.to_dict() if isinstance(intent, stripe.StripeObject) else intent,
    }


def _path(object_id: str) -> str:
    """An id as one path segment: an id with a slash must not reach another endpoint."""
    from urllib.parse import quote

    return quote(object_id, safe="")


def _compact(card: str) -> str:
    return card.replace(" ", "").replace("-", "")
