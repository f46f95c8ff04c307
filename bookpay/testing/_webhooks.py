"""Signing and posting webhook events to a shop, as Stripe does: ``bookpay webhook replay``'s
own loading, signing and delivery (``bookpay.replay``), for tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import stripe


def webhook_sender(
    shop: Any = None, *, url: str | None = None, secret: str | None = None
) -> WebhookSender:
    """A sender to ``shop`` (a ``bookpay.testing`` Shop) or to any ``url`` with ``secret``."""
    return WebhookSender(shop, url=url, secret=secret)


class WebhookSender:
    """``send(event)``: a bundled fixture's name (``"payment_intent.succeeded"``), a file, a
    dict, stripe-python's ``stripe.Event`` (any ``StripeObject``: its ``to_dict()``) or bytes,
    signed at send time; the delivery's ``replay.Result`` (``status``,
    ``outcome``: fulfilled, updated, duplicate, ignored, refused, failed; ``reason``)."""

    def __init__(
        self, shop: Any = None, *, url: str | None = None, secret: str | None = None
    ) -> None:
        self._shop = shop
        self.url = url
        self.secret = secret

    def _target(self, url: str | None, secret: str | None) -> tuple[str, str]:
        shop = self._shop() if callable(self._shop) else self._shop
        url = url or self.url or (shop.webhook_url if shop is not None else None)
        secret = secret or self.secret or (shop.webhook_secret if shop is not None else None)
        if not url or not secret:
            raise ValueError("say where to send the event and its secret: to=..., secret=...")
        return url, secret

    def send(
        self,
        event: str | Path | dict | bytes | stripe.StripeObject,
        *,
        to: str | None = None,
        secret: str | None = None,
        timestamp_offset: int = 0,
        bad_signature: bool = False,
    ) -> Any:
        from bookpay import replay

        delivery = _delivery(event)
        url, secret = self._target(to, secret)
        sender = replay.Replayer(
            url, secret, timestamp_offset=timestamp_offset, bad_signature=bad_signature
        )
        return sender.run([delivery])[0]

    __call__ = send

    def event(self, kind: str, obj: dict[str, Any], event_id: str | None = None) -> dict:
        """An event of type ``kind`` about ``obj``, shaped as Stripe sends it."""
        return stripe_event(kind, obj, event_id)


def stripe_event(kind: str, obj: dict[str, Any], event_id: str | None = None) -> dict:
    """An event of type ``kind`` about ``obj``, shaped as Stripe sends it (the API version the
    pinned stripe-python speaks; a random id unless ``event_id`` is given)."""
    import secrets
    import time

    import stripe

    return {
        "id": event_id or f"evt_{secrets.token_hex(12)}",
        "object": "event",
        "api_version": stripe.api_version,
        "created": int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
    }


def _delivery(event: str | Path | dict | bytes | stripe.StripeObject) -> Any:
    """The delivery of ``event``: bytes are sent as they are (JSON or not, an event or not, as
    an attacker's would be); a ``stripe.StripeObject`` (a ``stripe.Event`` listed or retrieved
    with stripe-python, which is not a dict) as its ``to_dict()``; ValueError for a name or file
    that holds no one event."""
    from bookpay import replay
    from bookpay.errors import BookpayError

    if _stripe_object(event):
        event = event.to_dict(for_json=True)
    if isinstance(event, (str, Path)):
        try:
            found = replay.load_events([str(event)])
        except BookpayError as exc:
            problem = exc.message
            if not Path(event).exists():  # a fixture's name mistyped, most likely
                problem += f" The bundled fixtures: {', '.join(replay.FIXTURE_NOTES)}."
            raise ValueError(problem) from None
        if len(found) != 1:
            raise ValueError(f"{event} holds {len(found)} events: send them one at a time")
        return found[0]
    if isinstance(event, (bytes, bytearray)):
        body = bytes(event)
    elif isinstance(event, dict):
        body = json.dumps(event, indent=2).encode()
    else:
        raise TypeError(
            f"an event is a bundled fixture's name, a file, a dict, a stripe.Event or bytes, "
            f"not {type(event).__name__}"
        )
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    said = parsed if isinstance(parsed, dict) else {}
    event_id, kind = (said.get(key) for key in ("id", "type"))
    return replay.Delivery(
        0,
        event_id if isinstance(event_id, str) else "",
        kind if isinstance(kind, str) else "",
        body,
        "<test>",
    )


def _stripe_object(value: Any) -> bool:
    """Whether ``value`` is stripe-python's (checked only for what is none of the other kinds,
    so that a name, a dict or bytes never loads stripe)."""
    if isinstance(value, (str, Path, dict, bytes, bytearray)):
        return False
    import stripe

    return isinstance(value, stripe.StripeObject)
