"""The gateway against the emulator, through stripe-python over real HTTP."""

import dataclasses
import re
import threading
import uuid

import pytest

from bookpay.catalog import Catalog
from bookpay.config import Settings, StripeLimits
from bookpay.emulator import api, routes
from bookpay.errors import (
    CardDeclined,
    ConfigError,
    NotFound,
    PaymentError,
    StripeUnavailable,
    UsageError,
)
from bookpay.payments import Gateway, idempotency_key

BOOK = Catalog.default().get("1")


@pytest.fixture
def gateway(settings):
    return Gateway(settings)


def test_create_prices_from_the_catalog_and_tags_the_intent(gateway):
    intent = gateway.create_intent(BOOK, email="reader@example.com")
    assert intent["id"].startswith("pi_")
    assert intent["client_secret"].startswith(intent["id"] + "_secret_")
    assert (intent["amount"], intent["currency"]) == (2300, "usd")
    order_id = intent["metadata"].pop("order_id")
    assert re.fullmatch(r"ord_[0-9a-f]{16}", order_id)
    assert intent["metadata"] == {
        "item_id": "1",
        "book_title": BOOK.title,
        "integration": "bookpay",
        "shop_id": gateway.settings.shop_id,
        "item_count": "1",
        "lines": "1x1",
    }
    assert intent["description"] == BOOK.title
    assert intent["receipt_email"] == "reader@example.com"
    assert intent["automatic_payment_methods"]["enabled"] is True


def test_same_attempt_same_intent_other_attempt_new_intent(gateway):
    first = gateway.create_intent(BOOK, attempt_id="8b0c6f5e-0000-4000-8000-000000000001")
    again = gateway.create_intent(BOOK, attempt_id="8b0c6f5e-0000-4000-8000-000000000001")
    other = gateway.create_intent(BOOK, attempt_id="8b0c6f5e-0000-4000-8000-000000000002")
    assert first["id"] == again["id"]
    assert other["id"] != first["id"]
    assert first["metadata"]["attempt_id"] == "8b0c6f5e-0000-4000-8000-000000000001"


def test_an_attempt_asked_for_another_quote_is_refused_without_the_key_or_keyed_by_cart(gateway):
    attempt = str(uuid.uuid4())
    first = gateway.create_intent(BOOK, attempt_id=attempt)
    other = Catalog.default().get("2")
    with pytest.raises(PaymentError) as refused:
        gateway.create_intent(other, attempt_id=attempt)
    assert refused.value.error_type == "idempotency_error"
    assert "bookpay-" not in refused.value.message
    assert "for another cart first" in refused.value.message
    by_cart = gateway.create_intent(other, attempt_id=attempt, keyed_by_cart=True)
    assert by_cart["id"] != first["id"]
    assert by_cart["amount"] == other.amount
    again = gateway.create_intent(other, attempt_id=attempt, keyed_by_cart=True)
    assert again["id"] == by_cart["id"]


def test_cli_creates_are_never_merged(gateway):
    assert gateway.create_intent(BOOK)["id"] != gateway.create_intent(BOOK)["id"]


def test_idempotency_key_is_stable_and_distinct():
    assert idempotency_key("checkout", "a", "1") == idempotency_key("checkout", "a", "1")
    assert idempotency_key("checkout", "a", "1") != idempotency_key("checkout", "a", "2")
    assert idempotency_key("checkout", "a", "1").startswith("bookpay-checkout-")


def test_decline_then_success(gateway):
    intent = gateway.create_intent(BOOK)
    with pytest.raises(CardDeclined) as info:
        gateway.confirm_intent(intent["id"], payment_method="pm_card_visa_chargeDeclined")
    declined = info.value
    assert declined.message == "Your card was declined."
    assert (declined.stripe_code, declined.decline_code) == ("card_declined", "generic_decline")
    assert declined.http_status == 402 and declined.exit_code == 3
    assert declined.payment_intent["status"] == "requires_payment_method"
    paid = gateway.confirm_intent(intent["id"], payment_method="pm_card_visa")
    assert paid["status"] == "succeeded"
    assert gateway.retrieve_intent(intent["id"])["latest_charge"]["paid"] is True


def test_a_blank_return_url_is_sent_not_replaced_by_the_shops(gateway):
    intent = gateway.create_intent(BOOK)
    with pytest.raises(PaymentError) as info:
        gateway.confirm_intent(intent["id"], payment_method="pm_card_visa", return_url="")
    assert info.value.param == "return_url"
    assert gateway.retrieve_intent(intent["id"])["status"] == "requires_payment_method"


def test_refunds_full_and_partial(gateway):
    intent = gateway.create_intent(BOOK)
    gateway.confirm_intent(intent["id"], payment_method="pm_card_visa")
    part = gateway.create_refund(intent["id"], amount=300, reason="requested_by_customer")
    assert (part["amount"], part["reason"]) == (300, "requested_by_customer")
    rest = gateway.create_refund(intent["id"])
    assert rest["amount"] == 2000
    assert [r["amount"] for r in gateway.list_refunds(intent["id"])] == [2000, 300]
    with pytest.raises(PaymentError) as info:
        gateway.create_refund(intent["id"], amount=1)
    assert info.value.stripe_code == "charge_already_refunded"


def test_same_refund_request_refunds_once(gateway):
    intent = gateway.create_intent(BOOK)
    gateway.confirm_intent(intent["id"], payment_method="pm_card_visa")
    one = gateway.create_refund(intent["id"], amount=500, request_id="ticket-42")
    two = gateway.create_refund(intent["id"], amount=500, request_id="ticket-42")
    assert one["id"] == two["id"]
    assert len(gateway.list_refunds(intent["id"])) == 1


def test_unknown_intent_is_not_found(gateway):
    with pytest.raises(NotFound) as info:
        gateway.retrieve_intent("pi_doesnotexist")
    assert "pi_doesnotexist" in info.value.message


def test_cancel_and_illegal_transition(gateway):
    intent = gateway.create_intent(BOOK)
    canceled = gateway.cancel_intent(intent["id"], reason="abandoned")
    assert (canceled["status"], canceled["cancellation_reason"]) == ("canceled", "abandoned")
    with pytest.raises(PaymentError) as info:
        gateway.confirm_intent(intent["id"], payment_method="pm_card_visa")
    assert info.value.stripe_code == "payment_intent_unexpected_state"


def test_three_d_secure_needs_action(gateway):
    intent = gateway.create_intent(BOOK)
    pending = gateway.confirm_intent(
        intent["id"], payment_method="pm_card_authenticationRequired", return_url="http://shop/x"
    )
    assert pending["status"] == "requires_action"
    assert pending["next_action"]["type"] == "redirect_to_url"


def test_card_numbers_become_payment_methods(gateway):
    assert gateway.payment_method_for("4242 4242 4242 4242") == "pm_card_visa"
    assert gateway.payment_method_for("pm_card_mastercard") == "pm_card_mastercard"
    assert gateway.payment_method_for("4000008260003178").startswith("pm_")
    with pytest.raises(CardDeclined) as info:
        gateway.payment_method_for("4242424242424241")
    assert info.value.stripe_code == "incorrect_number"
    with pytest.raises(UsageError):
        gateway.payment_method_for("visa please")


def test_raw_numbers_are_refused_against_real_stripe():
    stripe_mode = Settings(
        secret_key="sk_test_abcdefghijkl", publishable_key="pk_test_abcdefghijkl"
    )
    with pytest.raises(UsageError, match="no PaymentMethod token"):
        Gateway(stripe_mode).payment_method_for("4000008260003178")


def test_unreachable_emulator_is_stripe_unavailable(tmp_path):
    dead = Settings(data_dir=tmp_path, emulator_url="http://127.0.0.1:9")
    with pytest.raises(StripeUnavailable) as info:
        Gateway(dead).ping()
    assert info.value.exit_code == 4
    assert "bookpay emulator" in info.value.hint


def test_a_refused_key_is_a_configuration_problem(emulator):
    import stripe

    client = stripe.StripeClient("pk_test_nope", base_addresses={"api": emulator.url})
    gateway = Gateway(Settings(emulator_url=emulator.url), client=client)
    with pytest.raises(ConfigError) as info:
        gateway.list_intents()
    assert info.value.exit_code == 5


def test_register_webhook_replaces_old_endpoints_for_the_same_url(gateway):
    url = "http://127.0.0.1:4999/webhook"
    first = gateway.register_webhook(url)
    second = gateway.register_webhook(url)
    assert first.startswith("whsec_") and second.startswith("whsec_") and first != second
    endpoints = gateway._client.v1.webhook_endpoints.list({"limit": 100}).data
    assert [e.url for e in endpoints].count(url) == 1


def test_a_replayed_attempt_returns_the_intents_current_state(gateway):
    attempt = "8b0c6f5e-0000-4000-8000-0000000000aa"
    first = gateway.create_intent(BOOK, attempt_id=attempt)
    gateway.confirm_intent(first["id"], payment_method="pm_card_visa")
    again = gateway.create_intent(BOOK, attempt_id=attempt)
    assert again["id"] == first["id"]
    assert again["status"] == "succeeded"


def test_emulator_traffic_ignores_proxy_settings(settings, monkeypatch):
    # A proxy from the environment must not swallow calls to the local emulator.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    assert Gateway(settings).create_intent(BOOK)["status"] == "requires_payment_method"


def _hold_creation(monkeypatch, attempt, *, let_go_when_refused):
    """The emulator's creation of ``attempt``'s PaymentIntent held executing until ``release`` is
    set (by the test, or at once when another request with its key is refused, if asked):
    ``entered`` once it is held, ``refused`` once another request with its key got a 409."""
    entered, release, refused = threading.Event(), threading.Event(), threading.Event()
    i, route = next(
        (i, r) for i, r in enumerate(routes.ROUTES) if r.op == "POST /v1/payment_intents"
    )

    def held(ctx, *groups):
        if (ctx.params.get("metadata") or {}).get("attempt_id") == attempt:
            entered.set()
            release.wait(60)
        return route.handler(ctx, *groups)

    patched = list(routes.ROUTES)
    patched[i] = dataclasses.replace(route, handler=held)
    monkeypatch.setattr(routes, "ROUTES", patched)
    taken = api._KeyLock.__init__

    def watched(self, app, name):
        try:
            taken(self, app, name)
        except api.KeyInUse:
            refused.set()
            if let_go_when_refused:
                release.set()
            raise

    monkeypatch.setattr(api._KeyLock, "__init__", watched)
    return entered, release, refused


def test_a_409_after_the_calls_own_try_got_no_answer_may_have_been_made_and_counts(
    settings, monkeypatch
):
    """This call's first try timed out while Stripe went on with it; its retries (same key)
    meet that very request still executing, a 409. Whether it was made is not known (the CLI
    warns before anyone runs it again: a refund twice), and the timeout was a failure of
    Stripe's, which the 409 after it must not hide from the breaker."""
    slow = dataclasses.replace(
        settings,
        stripe_limits=StripeLimits(
            read_timeout=1.0, total_timeout=8.0, max_retries=2, failure_threshold=1
        ),
    )
    attempt = str(uuid.uuid4())
    entered, release, refused = _hold_creation(monkeypatch, attempt, let_go_when_refused=False)
    gateway = Gateway(slow)
    try:
        with pytest.raises(StripeUnavailable) as unavailable:
            gateway.create_intent(BOOK, attempt_id=attempt)
        assert entered.is_set() and refused.is_set()
        assert " is still working on this request: an earlier try of it got no answer (409: " in (
            unavailable.value.message
        )
        assert unavailable.value.outcome_unknown is True
        assert gateway.guard.breaker.state == "open"
    finally:
        release.set()
        gateway.close()


def _creating(settings, attempt):
    """The attempt's creation in a thread of its own: (the thread, where its intent goes)."""
    made = []
    thread = threading.Thread(
        target=lambda: made.append(Gateway(settings).create_intent(BOOK, attempt_id=attempt))
    )
    thread.start()
    return thread, made


def test_a_creation_whose_key_is_in_use_is_tried_again_and_gets_the_first(settings, monkeypatch):
    """Two processes creating one attempt's PaymentIntent at once: Stripe refuses the second
    (409, the key in use) while the first executes; stripe-python tries it again, which gets the
    first's answer: one PaymentIntent."""
    patient = dataclasses.replace(settings, stripe_limits=StripeLimits(max_retries=5))
    attempt = str(uuid.uuid4())
    entered, release, refused = _hold_creation(monkeypatch, attempt, let_go_when_refused=True)
    thread, first = _creating(patient, attempt)
    try:
        assert entered.wait(60)
        second = Gateway(patient).create_intent(BOOK, attempt_id=attempt)
    finally:
        release.set()
        thread.join(60)
    assert refused.is_set()
    assert second["id"] == first[0]["id"]


def test_a_creation_whose_key_stays_in_use_is_unavailable_not_another_cart(settings, monkeypatch):
    """The first creation still executing when the second's tries are spent: the second is a
    "try again" (StripeUnavailable, a 503), not a refusal of another cart; tried again once the
    first has finished, it gets the first's PaymentIntent."""
    short = dataclasses.replace(
        settings,
        stripe_limits=StripeLimits(total_timeout=5.0, max_retries=1, failure_threshold=1),
    )
    attempt = str(uuid.uuid4())
    entered, release, refused = _hold_creation(monkeypatch, attempt, let_go_when_refused=False)
    thread, first = _creating(settings, attempt)
    second = Gateway(short)
    try:
        assert entered.wait(60)
        with pytest.raises(StripeUnavailable) as unavailable:
            second.create_intent(BOOK, attempt_id=attempt)
    finally:
        release.set()
        thread.join(60)
    assert refused.is_set()
    assert unavailable.value.http_status == 503
    assert unavailable.value.message.startswith(f"The emulator at {settings.emulator_url} is")
    assert " is still working on an earlier request under the same idempotency key (409: " in (
        unavailable.value.message
    )
    assert "another cart" not in unavailable.value.message
    assert not getattr(unavailable.value, "outcome_unknown", False)
    # Stripe answering "busy with that very request" is no failure of Stripe's: the breaker
    # (opened by one failure here) stays closed, and the same gateway gets the first's intent.
    assert second.create_intent(BOOK, attempt_id=attempt)["id"] == first[0]["id"]
    second.close()
