"""A fake Stripe for webhook tests: what it holds, and events and objects shaped like Stripe's."""

from __future__ import annotations

import copy
import time

from bookpay.errors import NotFound, StripeUnavailable

SHOP = "shop_test"  # the shop id of the fake shop's settings and of its intents' metadata


class FakeGateway:
    """What Stripe holds: PaymentIntents, Charges (with their refunds), Refunds, Disputes."""

    def __init__(self, *intents: dict) -> None:
        self.intents = {intent["id"]: intent for intent in intents}
        self.charges: dict[str, dict] = {}
        self.refunds: dict[str, dict] = {}
        self.disputes: dict[str, dict] = {}
        self.down = False
        self.asked: list[str] = []

    def _get(self, kind: str, store: dict, object_id: str) -> dict:
        self.asked.append(object_id)
        if self.down:
            raise StripeUnavailable("Could not reach Stripe.")
        if object_id not in store:
            raise NotFound(f"No such {kind}: '{object_id}'", code="resource_missing")
        return copy.deepcopy(store[object_id])

    def retrieve_intent(self, intent_id, *, expand=("latest_charge",)):
        return self._get("payment_intent", self.intents, intent_id)

    def retrieve_charge(self, charge_id, *, expand=("refunds",)):
        store = self.charges
        if charge_id not in store:  # Stripe has the Charge of every PaymentIntent it has
            for held in self.intents.values():
                latest = held.get("latest_charge")
                if isinstance(latest, dict) and latest.get("id") == charge_id:
                    store = {charge_id: {**charge(held["id"], held["amount"]), **latest}}
        return self._get("charge", store, charge_id)

    def retrieve_refund(self, refund_id):
        return self._get("refund", self.refunds, refund_id)

    def retrieve_dispute(self, dispute_id):
        return self._get("dispute", self.disputes, dispute_id)


def intent(pi="pi_1", status="succeeded", item="1", amount=2300, **extra):
    data = {
        "id": pi,
        "object": "payment_intent",
        "status": status,
        "amount": amount,
        "currency": "usd",
        "metadata": {"item_id": item, "integration": "bookpay", "shop_id": SHOP},
        "receipt_email": "jenny@example.com",
        "shipping": None,
        "latest_charge": {"id": f"ch_{pi}", "billing_details": {}},
        "last_payment_error": None,
    }
    data.update(extra)
    return data


def event(kind, obj, event_id=None):
    return {
        "id": event_id or f"evt_{kind}_{obj.get('id')}",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
    }


def charge(pi="pi_1", amount=2300, refunded=0):
    refunds = [{"id": f"re_{pi}", "object": "refund", "amount": refunded}] if refunded else []
    return {
        "id": f"ch_{pi}",
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": refunded,
        "refunded": refunded >= amount,
        "payment_intent": pi,
        "refunds": {"object": "list", "data": refunds, "has_more": False},
    }


def dispute(dp="dp_1", ch="ch_pi_1", pi=None, reason="fraudulent", status="needs_response"):
    return {
        "id": dp,
        "object": "dispute",
        "charge": ch,
        "payment_intent": pi,
        "reason": reason,
        "status": status,
    }
