"""The gateway: bookpay's only way to Stripe (or to the emulator, which answers like Stripe).

One ``StripeClient`` per Settings, never global state. Idempotency keys come from business
identity (a checkout attempt, a refund request), so a retried request, a reload or a double click
returns the first answer instead of charging or refunding twice. Stripe's exceptions become
bookpay's in one place, ``_translate``; nothing above this module sees a stripe exception.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import stripe

from bookpay.catalog import Book
from bookpay.config import Settings
from bookpay.errors import (
    CardDeclined,
    ConfigError,
    NotFound,
    PaymentError,
    StripeUnavailable,
    UsageError,
)
from bookpay.orders import INTEGRATION

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


def idempotency_key(*parts: str) -> str:
    """A stable key for one business operation: the same parts always give the same key."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
    return f"bookpay-{parts[0]}-{digest}"


class Gateway:
    """The operations the CLI and the checkout server need, over one StripeClient."""

    def __init__(self, settings: Settings, *, client: stripe.StripeClient | None = None) -> None:
        self.settings = settings
        if client is None:
            client = _client_for(settings)
        self._client = client

    @property
    def where(self) -> str:
        return (
            f"the emulator at {self.settings.emulator_url}"
            if self.settings.is_emulated
            else "Stripe"
        )

    # PaymentIntents -------------------------------------------------------------------------

    def create_intent(
        self, book: Book, *, attempt_id: str | None = None, email: str | None = None
    ) -> dict:
        """A PaymentIntent for one book, priced from the catalog, in its current state.

        With an ``attempt_id`` (a checkout attempt) the same attempt always gets the same
        PaymentIntent back; without one (the CLI) every call makes a new one. When Stripe replays
        an earlier creation (``Idempotent-Replayed``), its body is the intent as it was created,
        so the intent is retrieved again: the caller must see whether it has been paid since.
        """
        metadata = {"item_id": book.id, "book_title": book.title[:500], "integration": INTEGRATION}
        if attempt_id:
            metadata["attempt_id"] = attempt_id
        params: dict[str, Any] = {
            "amount": book.amount,
            "currency": book.currency,
            "automatic_payment_methods": {"enabled": True},
            "description": book.title[:1000],
            "metadata": metadata,
        }
        if email:
            params["receipt_email"] = email
        key = (
            idempotency_key("checkout", attempt_id, book.id)
            if attempt_id
            else f"bookpay-cli-{uuid.uuid4()}"
        )
        created, headers = self._request(
            "post", "/v1/payment_intents", params, idempotency_key=key, with_headers=True
        )
        if headers.get("Idempotent-Replayed") == "true":
            return self.retrieve_intent(created["id"], expand=())
        return created

    def retrieve_intent(
        self, intent_id: str, *, expand: Sequence[str] = ("latest_charge",)
    ) -> dict:
        params = {"expand": list(expand)} if expand else {}
        return self._request("get", f"/v1/payment_intents/{_path(intent_id)}", params)

    def list_intents(self, *, limit: int = 10) -> list[dict]:
        page = self._request("get", "/v1/payment_intents", {"limit": limit})
        return page["data"]

    def iter_intents(self, *, page_size: int = 100) -> Iterator[dict]:
        """Every PaymentIntent, newest first, a page at a time (fetched as they are needed)."""
        params: dict[str, Any] = {"limit": page_size}
        while True:
            page = self._request("get", "/v1/payment_intents", params)
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
        success page is where a 3-D Secure redirect comes back to.
        """
        if self.settings.livemode:
            raise ConfigError("Confirming from the command line is for test mode only.")
        params: dict[str, Any] = {
            "payment_method": payment_method,
            "return_url": return_url or self.success_url(),
        }
        return self._request("post", f"/v1/payment_intents/{_path(intent_id)}/confirm", params)

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
        if compact.isdigit():
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
            method = self._request("post", "/v1/payment_methods", params)
            return method["id"]
        if not card.startswith("pm_"):
            raise UsageError(f"{card!r} is neither a card number nor a PaymentMethod id or token.")
        return card

    def cancel_intent(self, intent_id: str, *, reason: str | None = None) -> dict:
        params = {"cancellation_reason": reason} if reason else {}
        return self._request("post", f"/v1/payment_intents/{_path(intent_id)}/cancel", params)

    def capture_intent(
        self, intent_id: str, *, amount: int | None = None, request_id: str | None = None
    ) -> dict:
        """Capture an authorized PaymentIntent (capture_method=manual): all of it, or ``amount``
        with the rest released. One capture request (``request_id``, say a shipment) captures
        once, however often it is retried; without one, each call is a new request."""
        params: dict[str, Any] = {}
        if amount is not None:
            params["amount_to_capture"] = amount
        key = (
            idempotency_key("capture", intent_id, request_id)
            if request_id
            else f"bookpay-capture-{uuid.uuid4()}"
        )
        path = f"/v1/payment_intents/{_path(intent_id)}/capture"
        return self._request("post", path, params, idempotency_key=key)

    # Refunds --------------------------------------------------------------------------------

    def create_refund(
        self,
        intent_id: str,
        *,
        amount: int | None = None,
        reason: str | None = None,
        request_id: str | None = None,
    ) -> dict:
        """Refund a PaymentIntent, in full or in part.

        ``request_id`` names the refund request (say, a support ticket): the same request never
        refunds twice. Without one, a fresh request is assumed.
        """
        params: dict[str, Any] = {"payment_intent": intent_id}
        if amount is not None:
            params["amount"] = amount
        if reason:
            params["reason"] = reason
        if request_id:
            params["metadata"] = {"request_id": request_id}
        key = (
            idempotency_key("refund", intent_id, request_id, str(amount))
            if request_id
            else f"bookpay-refund-{uuid.uuid4()}"
        )
        return self._request("post", "/v1/refunds", params, idempotency_key=key)

    def list_refunds(self, intent_id: str) -> list[dict]:
        page = self._request("get", "/v1/refunds", {"payment_intent": intent_id, "limit": 100})
        return page["data"]

    def retrieve_charge(self, charge_id: str) -> dict:
        """A charge with its refunds (Stripe includes them only when asked: expand[]=refunds)."""
        return self._request("get", f"/v1/charges/{_path(charge_id)}", {"expand": ["refunds"]})

    # Disputes -------------------------------------------------------------------------------

    def retrieve_dispute(self, dispute_id: str) -> dict:
        return self._request("get", f"/v1/disputes/{_path(dispute_id)}")

    def list_disputes(self, intent_id: str) -> list[dict]:
        """The disputes of a PaymentIntent's charges, newest first."""
        params = {"payment_intent": intent_id, "limit": 100}
        return self._request("get", "/v1/disputes", params)["data"]

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
        created = self._request(
            "post", "/v1/webhook_endpoints", {"url": url, "enabled_events": list(events)}
        )
        return created["secret"]

    def ping(self) -> None:
        """Raise StripeUnavailable (or ConfigError for a bad key) unless the API answers."""
        self._request("get", "/v1/payment_intents", {"limit": 1})

    # The one boundary where stripe's exceptions become bookpay's -----------------------------

    def _request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        with_headers: bool = False,
    ) -> Any:
        """One API call, answered as plain JSON.

        stripe-python's raw requests do the encoding, authentication, retries (with the same
        idempotency key) and error translation of its typed services, without building typed
        objects that would only be turned back into dicts: that halves the client's cost of a
        retrieve, which the webhook handler makes for every event.
        """
        options = {"idempotency_key": idempotency_key} if idempotency_key else {}
        with self._translate():
            response = self._client.raw_request(method, path, **(params or {}), **options)
        body = json.loads(response.body)
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
        except (stripe.AuthenticationError, stripe.PermissionError) as exc:
            raise ConfigError(
                f"{self.where} refused the API key: {exc.user_message or exc}",
                hint="Check STRIPE_SECRET_KEY with `bookpay config check`.",
            ) from exc
        except stripe.APIConnectionError as exc:
            hint = (
                "Start it with `bookpay emulator` or `bookpay serve`."
                if self.settings.is_emulated
                else "Check your network connection and https://status.stripe.com."
            )
            raise StripeUnavailable(f"Could not reach {self.where}.", hint=hint) from exc
        except (stripe.RateLimitError, stripe.APIError) as exc:
            raise StripeUnavailable(
                f"{self.where} could not handle the request: {exc.user_message or exc}"
            ) from exc
        except stripe.StripeError as exc:  # anything newer than this module knows
            raise PaymentError(exc.user_message or str(exc), **_details(exc)) from exc


def _client_for(settings: Settings) -> stripe.StripeClient:
    if not settings.is_emulated:
        return stripe.StripeClient(settings.api_key, max_network_retries=2)
    import requests

    # The emulator is local: never send its traffic through an HTTP(S)_PROXY from the
    # environment (requests would, for 127.0.0.1 too), and skip the per-request look-up.
    session = requests.Session()
    session.trust_env = False
    return stripe.StripeClient(
        settings.api_key,
        base_addresses={"api": settings.emulator_url},
        max_network_retries=2,
        http_client=stripe.RequestsClient(session=session, timeout=30),
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
