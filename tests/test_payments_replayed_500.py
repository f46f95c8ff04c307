"""A 500 that Stripe saved under an idempotency key, and replays to every retry with that key
for 24 hours (the emulator does the same): bookpay is not blocked behind it. The gateway stops
retrying a replayed 500, looks for what the request would have made, and finds it, or sends the
request again under the key's next generation; never a second PaymentIntent or refund."""

from __future__ import annotations

import uuid

import pytest
from test_payments_faults import BOOK, OPERATIONS, count, paid

from bookpay.errors import CardDeclined, PaymentError, StripeUnavailable
from bookpay.payments import TaxLine


@pytest.fixture(scope="module")
def module_emulator():
    from bookpay import testing

    with testing.emulator() as running:
        yield running


@pytest.fixture
def emu(module_emulator):
    module_emulator.reset()
    return module_emulator


@pytest.fixture
def gateway(emu, tmp_path):
    from bookpay.config import Settings
    from bookpay.payments import Gateway

    return Gateway(Settings(data_dir=tmp_path / "data", emulator_url=emu.url))


FOUND_AGAIN = [name for name in OPERATIONS if name != "refund"]


@pytest.mark.parametrize("operation", FOUND_AGAIN)
def test_every_mutating_call_gets_past_a_500_saved_under_its_key(emu, gateway, operation):
    path, call, event_type, _ = OPERATIONS[operation]
    emu.faults.fail("500", path=path, method="POST", times=1)
    before = len(emu.events(event_type))
    result = call(gateway, emu)
    assert result["id"]
    assert emu.faults.injected == {"500": 1}  # the call did meet the fault
    assert len(emu.events(event_type)) == before + 1  # and it happened once


def test_a_refund_with_no_request_id_after_a_500_is_unavailable_and_made_once(emu, gateway):
    # Nothing names it (each call is a new refund): bookpay cannot tell it from another.
    intent = paid(emu)
    emu.faults.fail("500", path="/v1/refunds", method="POST", times=1)
    with pytest.raises(StripeUnavailable) as unavailable:
        gateway.create_refund(intent["id"])
    assert count(emu, "/v1/refunds") == 1
    # Said so: the refund may have been made, where to look, how to make a repeat safe.
    assert unavailable.value.hint == (
        "The refund may have been made all the same: see "
        f"`bookpay intent show {intent['id']}` before refunding again, and give --request-id "
        "next time, so that a repeat cannot refund twice."
    )


def test_the_checkout_attempt_after_a_500_gets_its_one_intent_at_once(emu, gateway):
    attempt = str(uuid.uuid4())
    emu.faults.fail("500", path="/v1/payment_intents", method="POST", times=1)
    created = gateway.create_intent(BOOK, attempt_id=attempt)
    again = gateway.create_intent(BOOK, attempt_id=attempt)  # a reload: the same one
    assert created["id"] == again["id"]
    assert created["metadata"]["attempt_id"] == attempt
    assert count(emu, "/v1/payment_intents") == 1
    # Two tries (the second a replay, not tried again), a list, a retrieve.
    assert emu.faults.injected == {"500": 1}


def test_a_refund_request_after_a_500_is_one_refund_however_often_repeated(emu, gateway):
    intent = paid(emu)
    emu.faults.fail("500", path="/v1/refunds", method="POST", times=1)
    first = gateway.create_refund(intent["id"], amount=500, request_id="T-1")
    assert gateway.create_refund(intent["id"], amount=500, request_id="T-1")["id"] == first["id"]
    assert count(emu, "/v1/refunds") == 1
    with pytest.raises(PaymentError, match="with other parameters"):
        gateway.create_refund(intent["id"], amount=600, request_id="T-1")


def test_a_500_over_a_refusal_gives_the_refusal_under_the_next_key(emu, gateway):
    # The refund was refused (more than was paid), then answered 500: the key holds the 500
    # and no refund exists, so the next generation of the key asks again and hears why.
    intent = paid(emu)
    emu.faults.fail("500", path="/v1/refunds", method="POST", times=1)
    with pytest.raises(PaymentError) as refused:
        gateway.create_refund(intent["id"], amount=99_999, request_id="T-2")
    assert not isinstance(refused.value, StripeUnavailable)
    assert refused.value.http_status == 400
    assert count(emu, "/v1/refunds") == 0


def test_a_declined_confirmation_behind_a_500_is_declined_again_not_unavailable(emu, gateway):
    intent = gateway.create_intent(BOOK)
    emu.faults.fail("500", path="/v1/payment_intents/{id}/confirm", method="POST", times=1)
    with pytest.raises(CardDeclined):
        gateway.confirm_intent(intent["id"], payment_method="pm_card_visa_chargeDeclined")


def test_a_500_that_did_not_stop_blocks_the_attempt_no_longer_once_it_does(emu, gateway):
    attempt = str(uuid.uuid4())
    emu.faults.fail("500", path="/v1/payment_intents")  # the creation, and the look behind it
    with pytest.raises(StripeUnavailable):
        gateway.create_intent(BOOK, attempt_id=attempt)
    emu.faults.clear()
    # The attempt's key now replays its 500 for 24 hours: the shopper's Try again is not.
    created = gateway.create_intent(BOOK, attempt_id=attempt)
    assert count(emu, "/v1/payment_intents") == 1
    assert created["id"] == emu.api("GET", "/v1/payment_intents")["data"][0]["id"]


def test_a_tax_transaction_after_a_500_is_recorded_once(emu, gateway):
    address = {"country": "US", "postal_code": "10001", "state": "NY"}
    calculation = gateway.create_tax_calculation(
        [TaxLine("1", 2300)], currency="usd", address=address, shipping_amount=500
    )
    emu.faults.fail("500", path="/v1/tax/transactions/create_from_calculation", times=1)
    with pytest.raises(PaymentError) as refused:
        gateway.create_tax_transaction(calculation["id"], order_id="order-1")
    # Made by the first key: the next refuses its reference, naming the transaction.
    assert refused.value.stripe_code == "resource_already_exists"
    assert "tax_" in refused.value.message
    made = emu.api("GET", "/v1/tax/transactions/" + _txn_id(refused.value))
    assert made["reference"] == "order-1"


def _txn_id(exc: PaymentError) -> str:
    import re

    return re.search(r"tax_[A-Za-z0-9]+", exc.message).group(0)


# What was there before the call decides whether the call did it ------------------------------


def charges_of(emu, intent_id: str) -> int:
    return len(emu.api("GET", "/v1/charges", {"payment_intent": intent_id, "limit": 100})["data"])


def test_a_capture_refused_behind_a_500_is_refused_not_taken_for_done(emu, gateway):
    """Captured in part already: a second capture is refused by Stripe; behind a 500, finding
    the intent succeeded is no proof that this capture ran."""
    from test_payments_faults import authorized

    intent = authorized(emu)
    gateway.capture_intent(intent["id"], amount=1000)
    emu.faults.fail("500", path="/v1/payment_intents/{id}/capture", method="POST", times=1)
    with pytest.raises(PaymentError) as refused:
        gateway.capture_intent(intent["id"], amount=2300)
    assert not isinstance(refused.value, StripeUnavailable)
    assert emu.faults.injected == {"500": 1}


def test_a_capture_behind_a_500_is_found_with_the_amount_asked(emu, gateway):
    from test_payments_faults import authorized

    intent = authorized(emu)
    emu.faults.fail("500", path="/v1/payment_intents/{id}/capture", method="POST", times=1)
    captured = gateway.capture_intent(intent["id"], amount=1500)
    assert (captured["status"], captured["amount_received"]) == ("succeeded", 1500)
    assert emu.faults.injected == {"500": 1}


def test_a_confirmation_of_a_canceled_intent_behind_a_500_is_refused(emu, gateway):
    intent = gateway.create_intent(BOOK)
    gateway.cancel_intent(intent["id"])
    emu.faults.fail("500", path="/v1/payment_intents/{id}/confirm", method="POST", times=1)
    with pytest.raises(PaymentError) as refused:
        gateway.confirm_intent(intent["id"], payment_method="pm_card_visa")
    assert not isinstance(refused.value, StripeUnavailable)


def test_a_declined_confirmation_behind_a_500_is_not_sent_to_the_card_again(emu, gateway):
    """The confirmation ran and was declined, then answered 500: the decline is said, and the
    card is not asked a second time under the key's next generation."""
    intent = gateway.create_intent(BOOK)
    emu.faults.fail("500", path="/v1/payment_intents/{id}/confirm", method="POST", times=1)
    with pytest.raises(CardDeclined) as declined:
        gateway.confirm_intent(intent["id"], payment_method="pm_card_visa_chargeDeclined")
    assert declined.value.decline_code == "generic_decline"
    assert charges_of(emu, intent["id"]) == 1
