"""bookpay's gateway, shop and CLI in Stripe's bad minutes, against the emulator's faults.

Every POST carries a key bookpay chose, so stripe-python's retries (after a 500 or a dropped
connection, both after the call has run) never do a thing twice; 429s are retried too, waiting
what Retry-After asks; when Stripe stays unavailable the shop answers 503 with Retry-After and
the CLI exits 4 saying why.
"""

from __future__ import annotations

import dataclasses
import time
import uuid

import pytest
from typer.testing import CliRunner

from bookpay import testing
from bookpay.catalog import Catalog
from bookpay.cli import app
from bookpay.config import Settings, StripeLimits
from bookpay.errors import StripeUnavailable
from bookpay.payments import Gateway

BOOK = Catalog.default().get("1")


@pytest.fixture(scope="module")
def module_emulator():
    with testing.emulator() as running:
        yield running


@pytest.fixture
def emu(module_emulator):
    module_emulator.reset()
    return module_emulator


@pytest.fixture
def gateway(emu, tmp_path):
    return Gateway(Settings(data_dir=tmp_path / "data", emulator_url=emu.url))


def key_of(emu, event_type: str) -> str:
    """The idempotency key of the request that caused the last event of this type."""
    return emu.events(event_type)[-1]["request"]["idempotency_key"]


def count(emu, path: str) -> int:
    return len(emu.api("GET", path, {"limit": 100})["data"])


def test_a_post_without_an_idempotency_key_is_refused_before_it_is_sent(gateway):
    with pytest.raises(ValueError, match="needs an idempotency key"):
        gateway._request("post", "/v1/customers", {"email": "a@example.com"})


def paid(emu, **params) -> dict:
    return emu.api(
        "POST",
        "/v1/payment_intents",
        {"amount": 2300, "currency": "usd", "confirm": "true", "payment_method": "pm_card_visa",
         "return_url": "https://shop.example/success", **params},
    )  # fmt: skip


def authorized(emu) -> dict:
    return paid(emu, capture_method="manual")


def unconfirmed(emu) -> dict:
    return emu.api("POST", "/v1/payment_intents", {"amount": 2300, "currency": "usd"})


# Each mutating operation, a dropped connection after its first try: one effect, bookpay's key.
OPERATIONS = {
    "create (checkout attempt)": (
        "/v1/payment_intents",
        lambda g, emu: g.create_intent(BOOK, attempt_id=str(uuid.uuid4())),
        "payment_intent.created",
        "bookpay-checkout-",
    ),
    "create (CLI)": (
        "/v1/payment_intents",
        lambda g, emu: g.create_intent(BOOK),
        "payment_intent.created",
        "bookpay-cli-",
    ),
    "confirm": (
        "/v1/payment_intents/{id}/confirm",
        lambda g, emu: g.confirm_intent(g.create_intent(BOOK)["id"], payment_method="pm_card_visa"),
        "payment_intent.succeeded",
        "bookpay-confirm-",
    ),
    "cancel": (
        "/v1/payment_intents/{id}/cancel",
        lambda g, emu: g.cancel_intent(g.create_intent(BOOK)["id"]),
        "payment_intent.canceled",
        "bookpay-cancel-",
    ),
    "capture": (
        "/v1/payment_intents/{id}/capture",
        lambda g, emu: g.capture_intent(authorized(emu)["id"]),
        "charge.captured",
        "bookpay-capture-",
    ),
    "refund": (
        "/v1/refunds",
        lambda g, emu: g.create_refund(paid(emu)["id"]),
        "refund.created",
        "bookpay-refund-",
    ),
    "refund (request id)": (
        "/v1/refunds",
        lambda g, emu: g.create_refund(paid(emu)["id"], request_id="ticket-7"),
        "refund.created",
        "bookpay-refund-",
    ),
}


@pytest.mark.parametrize("operation", OPERATIONS)
def test_every_mutating_call_survives_a_dropped_answer_once(emu, gateway, operation):
    path, call, event_type, prefix = OPERATIONS[operation]
    emu.faults.fail("reset", path=path, method="POST", times=1)
    before = len(emu.events(event_type))
    result = call(gateway, emu)
    assert result["id"]
    assert emu.faults.injected == {"reset": 1}  # the call did meet the fault
    assert len(emu.events(event_type)) == before + 1  # and still happened once
    assert key_of(emu, event_type).startswith(prefix)


def test_a_webhook_endpoint_and_a_payment_method_are_created_once_too(emu, gateway):
    emu.faults.fail("500", path="/v1/webhook_endpoints", method="POST", times=1)
    created = gateway.create_webhook("http://127.0.0.1:9/webhook", metadata={"a": "b"})
    assert created["secret"].startswith("whsec_")
    assert count(emu, "/v1/webhook_endpoints") == 1
    emu.faults.fail("reset", path="/v1/payment_methods", method="POST", times=1)
    assert gateway.payment_method_for("4000008260003178").startswith("pm_")
    assert emu.faults.injected == {"500": 1, "reset": 1}


def test_a_429_is_retried_after_what_retry_after_asks(emu, gateway):
    emu.faults.fail("429", path="/v1/payment_intents", method="POST", times=1, retry_after=1)
    started = time.monotonic()
    created = gateway.create_intent(BOOK)
    assert created["status"] == "requires_payment_method"
    assert time.monotonic() - started >= 1.0
    assert count(emu, "/v1/payment_intents") == 1


def test_a_429_asking_more_than_the_budget_fails_at_once_passing_retry_after_on(emu, tmp_path):
    limits = dataclasses.replace(StripeLimits(), total_timeout=3.0)
    gateway = Gateway(Settings(data_dir=tmp_path, emulator_url=emu.url, stripe_limits=limits))
    emu.faults.fail("429", path="/v1/refunds", retry_after=30)
    intent = paid(emu)
    started = time.monotonic()
    with pytest.raises(StripeUnavailable) as refused:
        gateway.create_refund(intent["id"])
    assert time.monotonic() - started < 2.0
    assert refused.value.retry_after == 30
    assert "is limiting the rate of requests (429: Request rate limit exceeded" in str(
        refused.value
    )


def test_a_5xx_is_retried_after_what_its_retry_after_asks(emu, gateway):
    emu.faults.fail("500", path="/v1/payment_intents", method="POST", times=1, retry_after=2)
    started = time.monotonic()
    created = gateway.create_intent(BOOK)
    assert created["status"] == "requires_payment_method"
    assert time.monotonic() - started >= 2.0  # not stripe-python's 0.5 s back-off
    assert emu.faults.injected == {"500": 1}
    assert count(emu, "/v1/payment_intents") == 1


def test_a_5xx_asking_more_than_the_budget_fails_at_once_passing_retry_after_on(emu, tmp_path):
    limits = dataclasses.replace(StripeLimits(), total_timeout=3.0)
    gateway = Gateway(Settings(data_dir=tmp_path, emulator_url=emu.url, stripe_limits=limits))
    emu.faults.fail("500", path="/v1/payment_intents", method="GET", retry_after=30)
    with pytest.raises(StripeUnavailable) as refused:
        gateway.list_intents()
    assert emu.faults.injected == {"500": 1}  # no retry that could not wait as asked
    assert refused.value.retry_after == 30
    assert "could not handle the request (500: An unknown error occurred)." in str(refused.value)


def test_500s_that_do_not_stop_are_unavailable_after_three_tries_and_charge_once(emu, gateway):
    # The creation's 500, then the look for what it made (a list) 500s too.
    emu.faults.fail("500", path="/v1/payment_intents")
    attempt = str(uuid.uuid4())
    with pytest.raises(StripeUnavailable) as failed:
        gateway.create_intent(BOOK, attempt_id=attempt)
    assert "could not handle the request (500: An unknown error occurred) (3 attempts)" in (
        failed.value.message
    )
    # The creation (its 500 kept under the key: Stripe-Should-Retry: false), the look's 3 tries.
    assert emu.faults.injected == {"500": 4}
    emu.faults.clear()
    assert count(emu, "/v1/payment_intents") == 1  # ran once
    again = gateway.create_intent(BOOK, attempt_id=attempt)  # the shopper tries again
    assert count(emu, "/v1/payment_intents") == 1
    assert again["id"] == emu.api("GET", "/v1/payment_intents")["data"][0]["id"]


@pytest.fixture
def shop(emu):
    with testing.shop(emu) as running:
        yield running


def test_the_checkout_answers_503_with_retry_after_then_the_same_intent(emu, shop):
    emu.faults.fail("500", path="/v1/payment_intents")  # the creation, and the look behind it
    attempt = str(uuid.uuid4())
    answer = shop.request("POST", "/create-payment-intent", {"item": "1", "attemptId": attempt})
    assert answer.status == 503
    assert int(answer.headers["Retry-After"]) >= 1
    assert answer.json()["error"]["code"] == "stripe_unavailable"
    emu.faults.clear()
    created = shop.checkout("1", attempt_id=attempt)  # the page's "Try again"
    assert count(emu, "/v1/payment_intents") == 1
    assert created["paymentIntentId"] == emu.api("GET", "/v1/payment_intents")["data"][0]["id"]


@pytest.mark.parametrize(
    ("fault", "cause"),
    [
        ("500", "could not handle the request (500: An unknown error occurred) (3 attempts)"),
        ("reset", "the connection was closed without an answer (3 attempts)"),
        ("429", "is limiting the rate of requests (429: Request rate limit exceeded"),
    ],
)
def test_the_cli_exits_4_and_says_why(emu, tmp_path, fault, cause):
    emu.faults.fail(fault, path="/v1/payment_intents")  # for a 500: the look behind it too
    result = CliRunner().invoke(
        app,
        ["intent", "create", "--item", "1"],
        env={"BOOKPAY_EMULATOR_URL": emu.url, "BOOKPAY_DATA_DIR": str(tmp_path)},
    )
    assert result.exit_code == 4
    assert result.stderr.startswith("Error: ")
    assert f"he emulator at {emu.url}" in result.stderr
    assert cause in result.stderr
    assert "Traceback" not in result.stderr


def cli(emu, tmp_path, *args):
    env = {"BOOKPAY_EMULATOR_URL": emu.url, "BOOKPAY_DATA_DIR": str(tmp_path)}
    return CliRunner().invoke(app, list(args), env=env)


# A connection closed after the request was sent: Stripe may have done it, as after a timeout.
SENT_AND_DROPPED = {
    "refund": (
        "/v1/refunds",
        lambda emu: paid(emu)["id"],
        ("refund", "create", "{id}", "--amount", "200"),
        "The refund may have been made all the same: see `bookpay intent show {id}` before "
        "refunding again",
        "refund.created",
    ),
    "capture": (
        "/v1/payment_intents/{id}/capture",
        lambda emu: authorized(emu)["id"],
        ("intent", "capture", "{id}", "--amount", "2000"),
        "The capture may have been made all the same: see `bookpay intent show {id}` before "
        "capturing again",
        "charge.captured",
    ),
    "confirm": (
        "/v1/payment_intents/{id}/confirm",
        lambda emu: unconfirmed(emu)["id"],
        ("intent", "confirm", "{id}", "--card", "4242424242424242"),
        "The confirmation may have been made all the same: see `bookpay intent show {id}`. "
        "Confirming it again is safe:",
        "payment_intent.succeeded",
    ),
    "cancel": (
        "/v1/payment_intents/{id}/cancel",
        lambda emu: unconfirmed(emu)["id"],
        ("intent", "cancel", "{id}"),
        "The cancellation may have been made all the same: see `bookpay intent show {id}`. "
        "Canceling it again is safe:",
        "payment_intent.canceled",
    ),
}


@pytest.mark.parametrize("operation", SENT_AND_DROPPED)
def test_a_request_dropped_after_it_was_sent_may_have_been_made(emu, tmp_path, operation):
    path, make, args, hint, event_type = SENT_AND_DROPPED[operation]
    intent_id = make(emu)
    emu.faults.fail("reset", path=path.format(id=intent_id), method="POST")
    before = len(emu.events(event_type))
    result = cli(emu, tmp_path, *(arg.format(id=intent_id) for arg in args))
    assert result.exit_code == 4
    assert "the connection was closed without an answer (3 attempts)" in result.stderr
    assert hint.format(id=intent_id) in result.stderr.replace("\n", " ")
    # The emulator is running: it was reached, and dropped the connection.
    assert "Start it with" not in result.stderr
    assert emu.faults.injected == {"reset": 3}
    assert len(emu.events(event_type)) == before + 1  # made, once, under the one key


# Run again after the drop: Stripe refuses a second confirmation or cancellation by the
# intent's state, and the CLI says so in words of its own, not Stripe's list of statuses.
AGAIN = {
    "confirm": (
        "Error: {id} has been confirmed already (status succeeded), so Stripe refused to "
        "confirm it: see `bookpay intent show {id}`.\n"
    ),
    "cancel": (
        "Error: {id} has been canceled already, so Stripe refused to cancel it: see "
        "`bookpay intent show {id}`.\n"
    ),
}


@pytest.mark.parametrize("operation", AGAIN)
def test_running_it_again_after_the_drop_says_it_was_done(emu, tmp_path, operation):
    path, make, args, _, event_type = SENT_AND_DROPPED[operation]
    intent_id = make(emu)
    emu.faults.fail("reset", path=path.format(id=intent_id), method="POST")
    args = [arg.format(id=intent_id) for arg in args]
    assert cli(emu, tmp_path, *args).exit_code == 4
    emu.faults.clear()
    again = cli(emu, tmp_path, *args)
    assert again.exit_code == 3  # Stripe refused it: nothing was done twice
    assert again.stderr == AGAIN[operation].format(id=intent_id)
    assert len(emu.events(event_type)) == 1


@pytest.mark.parametrize(
    "call",
    [lambda g: g.create_refund("pi_123", amount=200), lambda g: g.cancel_intent("pi_123")],
    ids=["refund", "cancel"],
)
def test_a_connection_refused_is_not_a_request_that_may_have_been_made(tmp_path, call):
    gateway = Gateway(Settings(data_dir=tmp_path, emulator_url="http://127.0.0.1:9"))
    with pytest.raises(StripeUnavailable) as refused:
        call(gateway)
    assert "the connection was refused (3 attempts)" in refused.value.message
    assert not getattr(refused.value, "outcome_unknown", False)
    assert refused.value.hint == "Start it with `bookpay emulator` or `bookpay serve`."


def test_a_checkout_creation_dropped_after_it_was_sent_makes_one_intent(emu, shop):
    emu.faults.fail("reset", path="/v1/payment_intents", method="POST")
    attempt = str(uuid.uuid4())
    answer = shop.request("POST", "/create-payment-intent", {"item": "1", "attemptId": attempt})
    assert answer.status == 503
    assert "whether your payment was set up is not known yet" in answer.json()["error"]["message"]
    assert emu.faults.injected == {"reset": 3}
    emu.faults.clear()
    created = shop.checkout("1", attempt_id=attempt)  # the page's "Try again"
    assert count(emu, "/v1/payment_intents") == 1
    assert created["paymentIntentId"] == emu.api("GET", "/v1/payment_intents")["data"][0]["id"]
