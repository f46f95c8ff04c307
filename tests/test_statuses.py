"""Statuses read as English in the sentences bookpay writes: the webhook's outcome, the checkout."""

from __future__ import annotations

import test_server as server
import test_webhooks as hooks
from test_server import app, fulfiller  # noqa: F401  (fixtures)
from test_webhooks import gateway, world  # noqa: F401  (fixtures)


def test_a_webhook_outcome_says_the_order_status_in_words(world, gateway):  # noqa: F811
    hooks.deliver(world, hooks.event("payment_intent.succeeded", hooks.intent()))
    gateway.charges["ch_pi_1"] = hooks.charge(refunded=1000)  # what Stripe says, not the event
    refund = hooks.event("charge.refunded", hooks.charge(refunded=1000), "evt_r1")
    assert hooks.deliver(world, refund)["outcome"].endswith(" is partially refunded")


def test_a_fulfilment_that_waits_says_why_in_words(world, gateway):  # noqa: F811
    gateway.intents["pi_2"] = hooks.intent("pi_2", status="requires_payment_method")
    answer = hooks.deliver(world, hooks.event("payment_intent.succeeded", hooks.intent("pi_2")))
    assert answer["outcome"] == "not_succeeded: the PaymentIntent is waiting for a payment method"


def test_the_checkout_says_it_has_already_been_paid(app, settings):  # noqa: F811
    attempt = server.new_attempt()
    intent_id = server.create_intent(app, "1", attempt)["paymentIntentId"]
    server.confirm(settings, intent_id, "pm_card_visa")
    error = server.post_json(app, {"item": "1", "attemptId": attempt}).json()["error"]
    assert error["message"] == "This checkout has already been paid: start a new attempt."
