"""Emitting events: a snapshot of the object, plus one queued delivery per subscribed endpoint."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import objects
from .params import declared
from .render import complete
from .store import MATCH_ALL, Cond, Store, field_is, field_starts

# The event types the emulator emits, for the flows it has.
EMITTED = (
    "payment_intent.created",
    "payment_intent.requires_action",
    "payment_intent.amount_capturable_updated",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "charge.succeeded",
    "charge.failed",
    "charge.captured",
    "charge.expired",
    "charge.refunded",
    "charge.refund.updated",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
    "refund.created",
    "refund.updated",
    "refund.failed",
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "payment_method.attached",
)


def known() -> frozenset[str]:
    """Every event type Stripe has (an endpoint may subscribe to any), from the generated table."""
    return frozenset(declared()["event_types"])


def changed(obj: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """An event's previous_attributes: of the values ``before`` held, those ``obj`` no longer
    holds. Stripe names only what changed (a partial refund's `charge.refunded` has no
    `refunded`, still false), and inside a hash that is still a hash, only its keys that changed:
    a key changed or removed with its old value, a key added as null (a product's metadata key
    set: `"previous_attributes": {"metadata": {"tier": null}}`). A list that changed is there
    whole (Stripe's event docs: "If an array attribute has any updated elements, this object
    contains the entire array")."""
    return {
        key: _was(value, obj.get(key)) for key, value in before.items() if obj.get(key) != value
    }


def _was(old: Any, new: Any) -> Any:
    """What previous_attributes shows of a value that changed from ``old`` to ``new``."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return old
    shown = {key: _was(value, new.get(key)) for key, value in old.items() if new.get(key) != value}
    shown.update((key, None) for key in new.keys() - old.keys() if new[key] is not None)
    return shown


def subscribed(endpoint: dict[str, Any], kind: str) -> bool:
    events = endpoint["enabled_events"]
    return endpoint["status"] == "enabled" and ("*" in events or kind in events)


def type_matches(pattern: str) -> Cond:
    """Stripe's event list filter on `type`: exact, `*`, or a `prefix.*` wildcard."""
    if pattern.endswith(".*"):
        return field_starts("type", pattern[:-1])
    if pattern == "*":
        return MATCH_ALL
    return field_is("type", pattern)


@dataclass
class Emitter:
    """Bound to one request (or one 3-D Secure page post): who caused the events."""

    store: Store
    api_version: str
    request_id: str | None = None
    idempotency_key: str | None = None
    notify: Callable[[], None] = lambda: None

    def __call__(
        self, kind: str, obj: dict[str, Any], previous: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        with self.store.transaction():
            evt = objects.event(
                kind,
                complete(self.store, obj, full=False),  # conformed when rendered or sent
                self.api_version,
                self.request_id,
                self.idempotency_key,
                previous,
            )
            endpoints = [e for e in self.store.all("webhook_endpoint") if subscribed(e, kind)]
            evt["pending_webhooks"] = len(endpoints)
            self.store.save(evt)
            for endpoint in reversed(endpoints):  # oldest endpoint first
                self.store.add_delivery(evt["id"], endpoint["id"])
        if endpoints:
            self.notify()
        return evt
