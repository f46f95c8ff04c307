"""Incoming webhooks: verify the raw body, record the event, handle it, mark it processed.

Order of work, and why:

1. The signature is checked on the raw bytes before anything is parsed, against every
   configured secret (``STRIPE_WEBHOOK_SECRET`` may hold several while a secret is rolled, and
   ``bookpay serve`` adds the one the emulator issued). Nothing is recorded for a bad one.
2. The event is recorded as *received* by its id. An event already *processed* is a duplicate:
   200, nothing changes. An event received but never processed (the process died, or handling
   raised) is handled again: handling is idempotent, so a redelivery can only finish the job.
3. Handling never trusts the event's copy of a PaymentIntent: it asks Stripe (the gateway),
   which also rejects forged ids (NotFound) and PaymentIntents that are not this shop's.
4. Only then is the event marked *processed*. Receipts are sent by the Fulfiller's worker
   thread, so the answer comes as soon as the fulfilment is committed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Sequence

from bookpay.errors import ConfigError, NotFound, UsageError, WebhookSignatureError
from bookpay.orders import Fulfiller, Ledger, failure_reason, ownership_problem

TOLERANCE = 300  # seconds; stripe-python's default (Webhook.DEFAULT_TOLERANCE)

# Event type -> order status it implies (payment_intent.succeeded goes through fulfilment).
INTENT_EVENTS = {
    "payment_intent.processing": "processing",
    "payment_intent.payment_failed": "failed",
    "payment_intent.canceled": "canceled",
}
HANDLED = (
    "payment_intent.succeeded",
    *INTENT_EVENTS,
    "charge.refunded",
    "charge.dispute.created",
)


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header value for ``payload``, as Stripe computes it."""
    stamp = int(time.time()) if timestamp is None else int(timestamp)
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256)
    return f"t={stamp},v1={mac.hexdigest()}"


def verify(
    payload: bytes, header: str | None, secrets: Sequence[str], tolerance: int = TOLERANCE
) -> None:
    """Raise WebhookSignatureError unless ``header`` signs ``payload`` with one of ``secrets``.

    stripe-python's check (any of several ``v1`` signatures, timestamps older than the
    tolerance refused), plus one it leaves out: a timestamp more than the tolerance in the
    future is refused too, so a signature cannot be made to outlive its window.
    """
    from stripe import SignatureVerificationError, WebhookSignature

    if not header:
        raise WebhookSignatureError("Missing Stripe-Signature header.", code="missing_signature")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookSignatureError("The webhook body is not UTF-8.") from None
    failure: Exception | None = None
    for secret in secrets:
        try:
            WebhookSignature.verify_header(text, header, secret, tolerance)
        except SignatureVerificationError as exc:
            failure = exc
            continue
        stamp = _timestamp(header)
        if stamp > time.time() + tolerance:
            raise WebhookSignatureError(
                f"Timestamp outside the tolerance zone ({stamp}): it is in the future."
            )
        return
    message = str(getattr(failure, "user_message", None) or failure)
    raise WebhookSignatureError(f"Invalid Stripe-Signature: {message}")


def _timestamp(header: str) -> int:
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            return int(value)
    raise WebhookSignatureError("Stripe-Signature has no timestamp.")


MAX_ID = 255  # Stripe's ids are far shorter; anything longer is not one


def object_id(value: object) -> str | None:
    """The id in an expandable field: an id string, or an expanded object's ``id``."""
    if isinstance(value, dict):
        value = value.get("id")
    if isinstance(value, str) and 0 < len(value) <= MAX_ID:
        return value
    return None


def intent_id_of(event: dict) -> str | None:
    """The PaymentIntent an event is about, if any."""
    obj = (event.get("data") or {}).get("object") or {}
    if not isinstance(obj, dict):
        return None
    if obj.get("object") == "payment_intent":
        return object_id(obj.get("id"))
    return object_id(obj.get("payment_intent"))


class WebhookReceiver:
    """Turns one webhook request (raw body + Stripe-Signature) into ledger changes."""

    def __init__(
        self,
        settings,
        ledger: Ledger,
        fulfiller: Fulfiller,
        *,
        secrets: Sequence[str] = (),
        tolerance: int = TOLERANCE,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.fulfiller = fulfiller
        self.tolerance = tolerance
        self._lock = threading.Lock()
        self._secrets = tuple(dict.fromkeys([*settings.webhook_secrets, *secrets]))
        import stripe  # noqa: F401  (imported now so the first request does not pay for it)

    def add_secret(self, secret: str) -> None:
        """Accept events signed with ``secret`` too (the emulator's endpoint secret)."""
        with self._lock:
            if secret not in self._secrets:
                self._secrets = (*self._secrets, secret)

    @property
    def secrets(self) -> tuple[str, ...]:
        return self._secrets

    def handle(self, payload: bytes, signature_header: str | None) -> dict:
        secrets = self._secrets
        if not secrets:
            where = (
                "the emulator has not issued one yet (`bookpay serve` registers the endpoint)"
                if self.settings.is_emulated
                else "run `stripe listen` and set the whsec_... secret it prints"
            )
            raise ConfigError(
                f"No webhook signing secret is configured: set STRIPE_WEBHOOK_SECRET; {where}."
            )
        verify(payload, signature_header, secrets, self.tolerance)
        event = _parse(payload)
        event_id, kind = event["id"], event["type"]
        intent_id = intent_id_of(event)
        state = self.ledger.receive_event(
            event_id,
            kind,
            intent_id,
            created=event.get("created") if isinstance(event.get("created"), int) else None,
            livemode=event.get("livemode") if isinstance(event.get("livemode"), bool) else None,
        )
        answer = {"received": True, "id": event_id, "type": kind, "duplicate": False}
        if state == "duplicate":
            recorded = self.ledger.get_event(event_id) or {}
            return {**answer, "duplicate": True, "handled": bool(recorded.get("handled"))}
        handled, outcome = self.dispatch(kind, event["data"]["object"], intent_id)
        self.ledger.finish_event(event_id, handled=handled, outcome=outcome)
        return {**answer, "handled": handled, "outcome": outcome}

    # Handling ---------------------------------------------------------------------------------

    def dispatch(self, kind: str, obj: dict, intent_id: str | None) -> tuple[bool, str]:
        """(handled, outcome) for one verified event; raises only when it should be retried."""
        if kind not in HANDLED:
            return False, "ignored: not an event bookpay handles"
        charge = object_id(obj.get("charge"))
        if kind == "charge.dispute.created" and not intent_id and charge:
            order = self.ledger.find_order_by_charge(charge)
            intent_id = order["payment_intent"] if order else None
        if not intent_id:
            return False, "ignored: no PaymentIntent"
        if kind == "payment_intent.succeeded":
            try:
                result = self.fulfiller.fulfil(intent_id)
            except NotFound:
                return False, f"ignored: Stripe does not know {intent_id}"
            if result.outcome == "rejected" and result.order is None:
                return False, f"ignored: {result.reason}"
            return result.fulfilled, f"{result.outcome}" + (
                f": {result.reason}" if result.reason else ""
            )
        try:
            intent = self.fulfiller.retrieve(intent_id)
        except NotFound:
            return False, f"ignored: Stripe does not know {intent_id}"
        problem = ownership_problem(intent, self.settings.shop_id)
        if problem:
            return False, f"ignored: {problem}"
        if kind in INTENT_EVENTS:
            failure = None
            if kind == "payment_intent.payment_failed":
                failure = failure_reason(obj.get("last_payment_error"))
            order = self.ledger.record_intent(intent, status=INTENT_EVENTS[kind], failure=failure)
        elif kind == "charge.refunded":
            refunded, amount = obj.get("amount_refunded") or 0, obj.get("amount") or 0
            status = "refunded" if amount and refunded >= amount else "partially_refunded"
            if not refunded:
                return False, "ignored: nothing refunded"
            order = self.ledger.record_intent(intent, status=status, amount_refunded=refunded)
        else:
            note = f"dispute {obj.get('id')}: {obj.get('reason') or 'no reason given'}"
            order = self.ledger.record_intent(intent, status="disputed", note=note)
        return True, f"order {order['id']} is {order['status']}"


def _parse(payload: bytes) -> dict:
    try:
        event = json.loads(payload)
    except ValueError:
        raise UsageError("The webhook body is not JSON.", code="invalid_event") from None
    if (
        not isinstance(event, dict)
        or not isinstance(event.get("id"), str)
        or not 0 < len(event["id"]) <= MAX_ID
        or not isinstance(event.get("type"), str)
        or not 0 < len(event["type"]) <= MAX_ID
        or not isinstance((event.get("data") or {}).get("object"), dict)
    ):
        raise UsageError(
            "The webhook body is not a Stripe event (id, type, data.object).",
            code="invalid_event",
        )
    return event
