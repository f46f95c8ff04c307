"""Behind a replayed 500 on a PaymentIntent's creation the gateway lists the PaymentIntents the
key may have made: the whole list gets one call's budget (``StripeLimits.total_timeout``), not
one per page. A list it cannot finish in time leaves the outcome unknown: StripeUnavailable
(retryable: HTTP 503, exit 4), never the key's next generation, which would make a second
PaymentIntent for the attempt. The emulator's latency makes Stripe slow: no sleeps."""

from __future__ import annotations

import time
import uuid

import pytest
from test_payments_faults import BOOK

from bookpay.config import Settings, StripeLimits
from bookpay.errors import StripeUnavailable
from bookpay.payments import CLOCK_MARGIN, Gateway

# Every call answers in LATENCY; a call's budget (and so the walk's) fits one page and a bit:
# after the first page less than MIN_ATTEMPT (0.5 s) is left, so a second page is not started.
LATENCY_MS = 600
BUDGET = 1.0


@pytest.fixture(scope="module")
def module_emulator():
    from bookpay import testing

    with testing.emulator() as running:
        yield running


@pytest.fixture
def emu(module_emulator):
    module_emulator.reset()
    yield module_emulator
    module_emulator.faults.clear()


@pytest.fixture
def gateway(emu, tmp_path):
    limits = StripeLimits(total_timeout=BUDGET)
    made = Gateway(Settings(data_dir=tmp_path / "data", emulator_url=emu.url, stripe_limits=limits))
    yield made
    made.close()


def intents(emu) -> list[str]:
    """Every PaymentIntent's id, newest first."""
    found: list[str] = []
    params: dict = {"limit": 100}
    while True:
        page = emu.api("GET", "/v1/payment_intents", params)
        found += [intent["id"] for intent in page["data"]]
        if not page["has_more"]:
            return found
        params["starting_after"] = found[-1]


def made_long_ago(emu, gateway) -> tuple[str, dict]:
    """A checkout attempt whose creation was answered 500 (its key keeps the 500), then 150
    other PaymentIntents: the attempt's is on the list's second page now, as after a reload
    hours later in a busy shop."""
    attempt = str(uuid.uuid4())
    emu.faults.fail("500", path="/v1/payment_intents", method="POST", times=1)
    first = gateway.create_intent(BOOK, attempt_id=attempt)
    assert emu.faults.injected == {"500": 1}
    for n in range(150):
        emu.api("POST", "/v1/payment_intents", {"amount": 100 + n, "currency": "usd"})
    assert intents(emu).index(first["id"]) >= 100
    return attempt, first


def test_a_list_longer_than_its_budget_is_unavailable_and_makes_no_second_intent(emu, gateway):
    attempt, first = made_long_ago(emu, gateway)
    before = intents(emu)
    emu.faults.rates(latency=str(LATENCY_MS))  # Stripe slow: one page of the list fits the budget
    started = time.monotonic()
    with pytest.raises(StripeUnavailable) as unavailable:
        gateway.create_intent(BOOK, attempt_id=attempt)
    took = time.monotonic() - started
    emu.faults.clear()
    # Not taken for "nothing was made": the key's next generation made no second intent.
    assert intents(emu) == before
    assert getattr(unavailable.value, "outcome_unknown", False)
    assert not getattr(unavailable.value, "replayed", False)
    assert unavailable.value.message == (
        f"The emulator at {emu.url} answered the PaymentIntent's creation with a 500, and "
        f"listing the PaymentIntents it may have made took more than {BUDGET:g} s: whether it "
        "was made is not known yet."
    )
    assert unavailable.value.hint.startswith("Try again in a moment")
    assert unavailable.value.http_status == 503 and unavailable.value.exit_code == 4
    # The creation (a replayed 500, not retried) and one page, then no page more.
    assert took < 2 * LATENCY_MS / 1000 + BUDGET
    # Once Stripe answers in time, the same attempt finds its PaymentIntent: still one.
    again = gateway.create_intent(BOOK, attempt_id=attempt)
    assert again["id"] == first["id"]
    assert intents(emu) == before


def test_a_list_that_ends_in_its_budget_finds_the_attempts_intent(emu, gateway):
    attempt, first = made_long_ago(emu, gateway)
    count = len(intents(emu))
    found = gateway.create_intent(BOOK, attempt_id=attempt)  # a reload: the key replays its 500
    assert found["id"] == first["id"]
    assert found["metadata"]["attempt_id"] == attempt
    assert len(intents(emu)) == count


def test_a_cli_creation_behind_a_500_lists_only_from_its_own_start(emu, gateway, monkeypatch):
    """Its key is new to the call: nothing older than the call can have been made under it."""
    listed: list[dict] = []
    iter_intents = gateway.iter_intents

    def spy(**kwargs):
        listed.append(kwargs.get("created") or {})
        return iter_intents(**kwargs)

    monkeypatch.setattr(gateway, "iter_intents", spy)
    emu.faults.fail("500", path="/v1/payment_intents", method="POST", times=1)
    started = int(time.time())
    created = gateway.create_intent(BOOK)
    assert emu.faults.injected == {"500": 1}
    assert intents(emu) == [created["id"]]
    assert len(listed) == 1
    assert started - CLOCK_MARGIN <= listed[0]["gte"] <= int(time.time()) - CLOCK_MARGIN


def test_the_checkout_answers_503_while_the_list_is_too_slow_then_the_same_intent(emu):
    """The shop's own path: the attempt's creation answered 500 once too slowly to be tried
    again (the shopper saw a 503), and the shop took 150 orders since; its reload behind the
    replayed 500 is a 503 while Stripe stays slow, its intent once Stripe is fast again."""
    from bookpay import testing

    with testing.shop(emu, stripe_limits=StripeLimits(total_timeout=BUDGET)) as shop:
        attempt = str(uuid.uuid4())
        body = {"item": "1", "attemptId": attempt}
        emu.faults.rates(latency=str(LATENCY_MS))
        emu.faults.fail("500", path="/v1/payment_intents", method="POST", times=1)
        assert shop.request("POST", "/create-payment-intent", body).status == 503
        emu.faults.clear()
        made = intents(emu)
        assert len(made) == 1  # the 500 came after the creation ran
        for n in range(150):
            emu.api("POST", "/v1/payment_intents", {"amount": 100 + n, "currency": "usd"})
        before = intents(emu)
        emu.faults.rates(latency=str(LATENCY_MS))
        answer = shop.request("POST", "/create-payment-intent", body)
        emu.faults.clear()
        assert answer.status == 503
        assert int(answer.headers["Retry-After"]) >= 1
        error = answer.json()["error"]
        assert error["code"] == "stripe_unavailable"
        assert "whether it was made is not known yet" in error["message"]
        assert intents(emu) == before  # no second PaymentIntent under the key's next generation
        created = shop.checkout("1", attempt_id=attempt)  # the page's "Try again"
        assert created["paymentIntentId"] == made[0]
        assert intents(emu) == before


def test_a_cli_creation_whose_list_hangs_says_where_to_look(emu, gateway):
    """A new key per CLI call: trying again would make another PaymentIntent, so the error says
    where to look first."""
    emu.faults.fail("500", path="/v1/payment_intents", method="POST", times=1)
    emu.faults.fail("timeout", path="/v1/payment_intents", method="GET", seconds=5)
    started = time.monotonic()
    with pytest.raises(StripeUnavailable) as unavailable:
        gateway.create_intent(BOOK)
    # The creation's budget (a retry of the 500 and its back-off), then the list's: never the
    # 5 s the list's page hangs.
    assert time.monotonic() - started < 3 * BUDGET
    assert "whether it was made is not known yet" in unavailable.value.message
    assert unavailable.value.hint == (
        "It may have been made all the same: see `bookpay intent list` before creating it again."
    )
