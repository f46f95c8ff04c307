"""Refunds and events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import stripe

PaidIntent = Callable[..., stripe.PaymentIntent]


def test_partial_then_full_then_refused(
    client: stripe.StripeClient, paid_intent: PaidIntent
) -> None:
    pi = paid_intent(client)
    first = client.v1.refunds.create(
        params={"payment_intent": pi.id, "amount": 300, "reason": "requested_by_customer",
                "metadata": {"why": "damaged"}}
    )  # fmt: skip
    assert first.id.startswith("re_") and first.status == "succeeded"
    assert (first.amount, first.charge, first.payment_intent) == (300, pi.latest_charge, pi.id)
    assert first.reason == "requested_by_customer" and first.metadata.to_dict() == {
        "why": "damaged"
    }
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert (charge.amount_refunded, charge.refunded) == (300, False)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.create(params={"charge": pi.latest_charge, "amount": 800})
    assert caught.value.http_status == 400 and caught.value.param == "amount"
    assert caught.value.user_message == (
        "Refund amount ($8.00) is greater than unrefunded amount on charge ($7.00)"
    )
    rest = client.v1.refunds.create(params={"charge": pi.latest_charge})
    assert rest.amount == 700
    charge = client.v1.charges.retrieve(pi.latest_charge, params={"expand": ["refunds"]})
    assert (charge.amount_refunded, charge.refunded) == (1000, True)
    assert {r.id for r in charge.refunds.data} == {first.id, rest.id}
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.create(params={"payment_intent": pi.id})
    assert caught.value.code == "charge_already_refunded"
    listed = client.v1.refunds.list(params={"payment_intent": pi.id})
    assert [r.id for r in listed.data] == [rest.id, first.id]
    assert client.v1.refunds.list(params={"charge": pi.latest_charge}).data[0].id == rest.id
    assert client.v1.refunds.retrieve(first.id).amount == 300


def test_over_refund_first_time(client: stripe.StripeClient, paid_intent: PaidIntent) -> None:
    pi = paid_intent(client)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 1001})
    assert "greater than" in caught.value.user_message


def test_refund_needs_success(client: stripe.StripeClient) -> None:
    pi = client.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.create(params={"payment_intent": pi.id})
    assert "does not have a successful charge" in caught.value.user_message
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.create(params={"payment_intent": pi.id, "reason": "bored"})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.create(params={"payment_intent": "pi_missing"})
    assert caught.value.code == "resource_missing"


def events_for(client: stripe.StripeClient, object_id: str) -> list[Any]:
    found = client.v1.events.list(params={"limit": 100})
    objs = [(e, e.data.object.to_dict()) for e in found.data]
    return [e for e, o in objs if object_id in (o.get("id"), o.get("payment_intent"))]


def test_events_emitted(client: stripe.StripeClient, paid_intent: PaidIntent) -> None:
    pi = paid_intent(client)
    types = [e.type for e in reversed(events_for(client, pi.id))]
    assert types == ["payment_intent.created", "charge.succeeded", "payment_intent.succeeded"]
    client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 100})
    assert {"refund.created", "charge.refunded"} <= {e.type for e in events_for(client, pi.id)}
    declined = client.v1.payment_intents.create(
        params={"amount": 1000, "currency": "usd", "allowed_payment_method_types": ["card"]}
    )
    with pytest.raises(stripe.CardError):
        client.v1.payment_intents.confirm(
            declined.id, params={"payment_method": "pm_card_chargeDeclined"}
        )
    client.v1.payment_intents.cancel(declined.id)
    types = [e.type for e in reversed(events_for(client, declined.id))]
    assert types == [
        "payment_intent.created",
        "charge.failed",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
    ]


def test_event_shape_and_snapshot(client: stripe.StripeClient) -> None:
    opts: Any = {"idempotency_key": "evt-key"}
    pi = client.v1.payment_intents.create(
        params={"amount": 1000, "currency": "usd", "allowed_payment_method_types": ["card"]},
        options=opts,
    )
    created = events_for(client, pi.id)[0]
    assert created.id.startswith("evt_") and created.livemode is False
    assert created.type == "payment_intent.created"
    assert created.request.idempotency_key == "evt-key"
    assert created.request.id.startswith("req_")
    assert created.api_version and created.pending_webhooks == 0
    client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"})
    again = client.v1.events.retrieve(created.id)
    assert again.data.object.status == "requires_payment_method"  # a snapshot, not live


def test_event_filters(client: stripe.StripeClient, paid_intent: PaidIntent) -> None:
    paid_intent(client)
    only = client.v1.events.list(params={"type": "charge.succeeded"})
    assert only.data and all(e.type == "charge.succeeded" for e in only.data)
    wild = client.v1.events.list(params={"type": "payment_intent.*", "limit": 100})
    assert wild.data and all(e.type.startswith("payment_intent.") for e in wild.data)
    several = client.v1.events.list(
        params={"types": ["charge.succeeded", "payment_intent.created"], "limit": 100}
    )
    assert {e.type for e in several.data} == {"charge.succeeded", "payment_intent.created"}
    newest = several.data[0]
    assert client.v1.events.list(params={"created": {"gt": newest.created}}).data == []
