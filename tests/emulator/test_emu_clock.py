"""The emulator's clock: advanced through the control endpoint, doing what falls due on the way.

Stripe's 24-hour idempotency window, its webhook retries (three over a few hours in test mode,
three days of them in live mode; then the account is told the endpoint is failing) and a
seven-day card authorization, reached without waiting.
"""

from __future__ import annotations

import socket
import time
from itertools import pairwise

import pytest
import stripe
from conftest import raw
from test_emu_faults import KEY, control, create

from bookpay.emulator import (
    STRIPE_LIVE_RETRY_SCHEDULE,
    STRIPE_TEST_RETRY_SCHEDULE,
    EmulatorOptions,
    start_emulator,
)

DAY = 86400


@pytest.fixture
def emu():
    """Stripe's own (test-mode) retry schedule and a "some time later" of a minute: only the
    clock moves."""
    with start_emulator(options=EmulatorOptions(async_delay=60, delivery_timeout=2)) as running:
        yield running


@pytest.fixture
def live_emu():
    """As ``emu``, with live mode's retry schedule."""
    options = EmulatorOptions(
        async_delay=60, delivery_timeout=2, retry_schedule=STRIPE_LIVE_RETRY_SCHEDULE
    )
    with start_emulator(options=options) as running:
        yield running


def advance(url: str, **units: float) -> dict:
    status, answer = control(url, "POST", "clock", units)
    assert status == 200, answer
    return answer


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/webhook"  # nothing listens: every attempt is refused


def attempts(url: str) -> list[dict]:
    return control(url, "GET", "deliveries", key=None)[1]["data"]


def test_idempotency_keys_expire_after_24_hours_of_the_emulators_time(emu):
    first = create(emu.url, "order-42").json()
    advance(emu.url, hours=23)
    replay = create(emu.url, "order-42")
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == first["id"]
    advance(emu.url, hours=1, minutes=1)
    fresh = create(emu.url, "order-42")
    assert "idempotent-replayed" not in fresh.headers
    assert fresh.json()["id"] != first["id"]


def failing_endpoint(emu, eventually) -> str:
    """An endpoint nothing listens at, and an event for it whose first attempt has failed."""
    url = closed_port_url()
    raw(
        emu.url,
        "POST",
        "/v1/webhook_endpoints",
        {"url": url, "enabled_events[]": "customer.created"},
    )
    raw(emu.url, "POST", "/v1/customers", {"email": "ada@example.com"})
    eventually(lambda: attempts(emu.url))  # the first attempt goes out at once
    return url


def test_webhook_retries_are_test_modes_three_over_a_few_hours_by_default(emu, eventually):
    # Stripe's Webhooks page: in a sandbox (test mode) Stripe retries three times over a few hours.
    url = failing_endpoint(emu, eventually)
    ran = advance(emu.url, hours=3)
    made = attempts(emu.url)
    assert ran["ran"]["webhook_attempts"] == 3
    gaps = [round(b["attempted_at"] - a["attempted_at"]) for a, b in pairwise(made)]
    assert gaps[0] == pytest.approx(300, abs=5)
    assert gaps[1:] == [1800, 7200]
    notices = control(emu.url, "GET", "notifications", key=None)[1]["data"]
    assert [(n["type"], n["url"], n["attempts"]) for n in notices] == [
        ("webhook_endpoint.failing", url, 4)
    ]
    advance(emu.url, days=4)
    assert len(attempts(emu.url)) == 4  # given up: no more
    assert EmulatorOptions().retry_schedule == STRIPE_TEST_RETRY_SCHEDULE == (300, 1800, 7200)


def test_live_mode_webhook_retries_back_off_for_three_days_then_the_endpoint_is_reported(
    live_emu, eventually
):
    emu, schedule = live_emu, STRIPE_LIVE_RETRY_SCHEDULE
    url = closed_port_url()
    raw(
        emu.url,
        "POST",
        "/v1/webhook_endpoints",
        {"url": url, "enabled_events[]": "customer.created"},
    )
    raw(emu.url, "POST", "/v1/customers", {"email": "ada@example.com"})
    eventually(lambda: attempts(emu.url))  # the first attempt goes out at once
    advance(emu.url, minutes=4)
    assert len(attempts(emu.url)) == 1  # the first retry waits five minutes
    advance(emu.url, minutes=1)
    assert len(attempts(emu.url)) == 2
    assert control(emu.url, "GET", "notifications", key=None)[1]["data"] == []
    ran = advance(emu.url, days=3)
    made = attempts(emu.url)
    assert ran["ran"]["webhook_attempts"] == len(schedule) - 1
    assert len(made) == 1 + len(schedule)
    gaps = [round(b["attempted_at"] - a["attempted_at"]) for a, b in pairwise(made)]
    assert gaps[0] == pytest.approx(schedule[0], abs=5)
    assert gaps[1:] == [round(s) for s in schedule[1:]]
    assert all(a["error"].startswith("ConnectionRefusedError") for a in made)
    assert 60 * 3600 < made[-1]["attempted_at"] - made[0]["attempted_at"] < 72 * 3600
    notices = control(emu.url, "GET", "notifications", key=None)[1]["data"]
    assert [(n["type"], n["url"], n["attempts"]) for n in notices] == [
        ("webhook_endpoint.failing", url, 1 + len(schedule))
    ]
    advance(emu.url, days=10)
    assert len(attempts(emu.url)) == 1 + len(schedule)  # given up: no more


def test_a_retry_that_gets_through_ends_the_schedule(emu, receiver):
    receiver.statuses = [500, 503]
    raw(emu.url, "POST", "/v1/webhook_endpoints", {"url": receiver.url, "enabled_events[]": "*"})
    raw(emu.url, "POST", "/v1/customers", {"email": "ada@example.com"})
    receiver.wait_for(1)
    advance(emu.url, minutes=5)
    # The next retry is due 30 minutes after the first retry ended, which took real time too:
    # a minute more, so a slow delivery on a loaded machine does not put it past the advance.
    advance(emu.url, minutes=31)
    assert [a["status"] for a in attempts(emu.url)] == [500, 503, 200]
    advance(emu.url, days=4)
    assert len(receiver.received) == 3
    assert control(emu.url, "GET", "notifications", key=None)[1]["data"] == []


def test_an_uncaptured_authorization_expires_after_seven_days(emu, paid_intent):
    client = stripe.StripeClient(KEY, base_addresses={"api": emu.url}, max_network_retries=0)
    pi = paid_intent(client, capture_method="manual")
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert charge.payment_method_details.card.capture_before == charge.created + 7 * DAY
    advance(emu.url, days=6, hours=23)
    assert client.v1.payment_intents.retrieve(pi.id).status == "requires_capture"
    advance(emu.url, hours=2)
    expired = client.v1.payment_intents.retrieve(pi.id)
    assert (expired.status, expired.cancellation_reason) == ("canceled", "automatic")
    assert expired.amount_capturable == 0
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert (charge.captured, charge.refunded) == (False, True)
    assert charge.amount_refunded == charge.amount  # the hold is released
    types = [e.type for e in client.v1.events.list(params={"limit": 100}).data]
    assert "charge.expired" in types and "payment_intent.canceled" in types
    with pytest.raises(stripe.InvalidRequestError, match="status of canceled"):
        client.v1.payment_intents.capture(pi.id)


def test_an_expired_authorizations_release_has_stripes_reason(emu, paid_intent):
    """The refund that releases an expired hold carries the reason Stripe generates for it;
    a release the integration asks for (a cancel) has none."""
    client = stripe.StripeClient(KEY, base_addresses={"api": emu.url}, max_network_retries=0)
    expiring = paid_intent(client, capture_method="manual")
    canceled = paid_intent(client, capture_method="manual")
    client.v1.payment_intents.cancel(canceled.id)
    advance(emu.url, days=8)
    expired = client.v1.refunds.list(params={"payment_intent": expiring.id}).data
    assert [(r.amount, r.reason) for r in expired] == [(1000, "expired_uncaptured_charge")]
    events = client.v1.events.list(params={"type": "refund.created", "limit": 100}).data
    sent = [e.data.object for e in events if e.data.object.payment_intent == expiring.id]
    assert [r.reason for r in sent] == ["expired_uncaptured_charge"]
    released = client.v1.refunds.list(params={"payment_intent": canceled.id}).data
    assert [(r.amount, r.reason) for r in released] == [(1000, None)]


def test_a_captured_authorization_does_not_expire(emu, paid_intent):
    client = stripe.StripeClient(KEY, base_addresses={"api": emu.url}, max_network_retries=0)
    pi = paid_intent(client, capture_method="manual")
    client.v1.payment_intents.capture(pi.id)
    advance(emu.url, days=8)
    assert client.v1.payment_intents.retrieve(pi.id).status == "succeeded"
    types = [e.type for e in client.v1.events.list(params={"limit": 100}).data]
    assert "charge.expired" not in types


def test_what_stripe_does_some_time_later_comes_when_the_clock_gets_there(emu, paid_intent):
    client = stripe.StripeClient(KEY, base_addresses={"api": emu.url}, max_network_retries=0)
    pi = paid_intent(client, payment_method="pm_card_pendingRefund")
    refund = client.v1.refunds.create(params={"payment_intent": pi.id})
    assert refund.status == "pending"
    advance(emu.url, seconds=30)
    assert client.v1.refunds.retrieve(refund.id).status == "pending"
    ran = advance(emu.url, seconds=31)
    assert ran["ran"]["timers"] == 1
    assert client.v1.refunds.retrieve(refund.id).status == "succeeded"


def test_the_clock_says_its_time_and_only_moves_forward(emu):
    before = control(emu.url, "GET", "clock")[1]
    assert before["offset"] == 0 and abs(before["now"] - time.time()) < 5
    after = advance(emu.url, days=1, hours=2)
    assert after["offset"] == pytest.approx(26 * 3600, abs=1)
    assert after["now"] - before["now"] >= 26 * 3600
    bodies = ({"seconds": -1}, {"weeks": 1}, {}, {"days": "soon"}, {"days": 1, "seconds": -5},
              {"seconds": "1_0"}, {"seconds": "\u0661\u0662"}, {"hours": "1e400"},
              {"days": 10**400})  # fmt: skip
    for body in bodies:
        status, answer = control(emu.url, "POST", "clock", body)
        assert status == 400, body
        assert answer["error"]["message"]
    assert control(emu.url, "GET", "clock")[1]["offset"] == after["offset"]


def test_a_reset_forgets_objects_keys_faults_and_the_clock(emu):
    create(emu.url, "kept?")
    control(emu.url, "POST", "faults", {"fault": "500", "path": "/v1/customers"})
    advance(emu.url, days=2)
    assert control(emu.url, "POST", "reset")[0] == 200
    assert raw(emu.url, "GET", "/v1/payment_intents").json()["data"] == []
    assert control(emu.url, "GET", "faults")[1]["rules"] == []
    assert control(emu.url, "GET", "clock")[1]["offset"] == 0
    assert raw(emu.url, "POST", "/v1/customers", {"email": "a@example.com"}).status == 200
    assert "idempotent-replayed" not in create(emu.url, "kept?").headers


def test_tax_calculations_expire_on_the_emulators_clock(emu):
    client = stripe.StripeClient(KEY, base_addresses={"api": emu.url}, max_network_retries=0)
    params = {"currency": "usd", "line_items": [{"amount": 1000, "reference": "L1"}],
              "customer_details": {"address": {"country": "AU"}}}  # fmt: skip
    calcs = client.v1.tax.calculations
    kept, spent = calcs.create(params=params), calcs.create(params=params)
    assert kept.expires_at == kept.tax_date + 90 * DAY
    advance(emu.url, seconds=kept.expires_at - control(emu.url, "GET", "clock")[1]["now"] - 60)
    assert calcs.retrieve(kept.id).id == kept.id  # a minute to go
    advance(emu.url, seconds=61)
    for call in (calcs.retrieve, calcs.line_items.list):
        with pytest.raises(stripe.InvalidRequestError) as gone:
            call(kept.id)
        assert (gone.value.http_status, gone.value.code) == (404, "resource_missing")
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.tax.transactions.create_from_calculation(
            params={"calculation": spent.id, "reference": "order-1"}
        )
    assert refused.value.param == "calculation" and "expired" in refused.value.user_message
    # One made now lives 90 days of the emulator's time, not of the wall clock's.
    fresh = calcs.create(params=params)
    assert fresh.expires_at - time.time() > 179 * DAY
    txn = client.v1.tax.transactions.create_from_calculation(
        params={"calculation": fresh.id, "reference": "order-1"}
    )
    assert txn.type == "transaction"
