"""PaymentIntents through stripe-python: every test card, declines, the state machine."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
import stripe

NEXT_YEAR = dt.date.today().year + 1
NO_REDIRECTS = {"enabled": True, "allow_redirects": "never"}
PaidIntent = Callable[..., stripe.PaymentIntent]

SUCCEEDING = [
    ("4242424242424242", "pm_card_visa", "visa"),
    ("5555555555554444", "pm_card_mastercard", "mastercard"),
    # Stripe's testing page, "Cards by brand" and "Cards by country".
    ("3566002020360505", "pm_card_jcb", "jcb"),
    ("6200000000000005", "pm_card_unionpay", "unionpay"),
    ("3056930009020004", "pm_card_diners", "diners"),
    ("4242424242424242", "pm_card_us", "visa"),
    ("4000008260000000", "pm_card_gb", "visa"),
    # "Fraud prevention": a charge with an elevated risk level goes through.
    ("4000000000009235", "pm_card_riskLevelElevated", "visa"),
]
DECLINING = [
    ("4000000000000002", "pm_card_visa_chargeDeclined", "card_declined", "generic_decline",
     "Your card was declined."),
    ("4000000000009995", "pm_card_visa_chargeDeclinedInsufficientFunds", "card_declined",
     "insufficient_funds", "Your card has insufficient funds."),
    ("4000000000009987", "pm_card_visa_chargeDeclinedLostCard", "card_declined", "lost_card",
     "Your card was declined."),
    ("4000000000009979", "pm_card_visa_chargeDeclinedStolenCard", "card_declined", "stolen_card",
     "Your card was declined."),
    ("4000000000000069", "pm_card_chargeDeclinedExpiredCard", "expired_card", "expired_card",
     "Your card has expired."),
    ("4000000000000127", "pm_card_chargeDeclinedIncorrectCvc", "incorrect_cvc", "incorrect_cvc",
     "Your card's security code is incorrect."),
    ("4000000000000119", "pm_card_chargeDeclinedProcessingError", "processing_error",
     "processing_error",
     "An error occurred while processing your card. Try again in a little bit."),
    ("4000000000006975", "pm_card_visa_chargeDeclinedVelocityLimitExceeded", "card_declined",
     "card_velocity_exceeded",
     "Your card was declined for making repeated attempts too frequently or exceeding its"
     " amount limit."),
    # "Fraud prevention": Radar blocks these (the second by its default rule on `highest`).
    ("4100000000000019", "pm_card_radarBlock", "card_declined", "fraudulent",
     "Your card was declined."),
    ("4000000000004954", "pm_card_riskLevelHighest", "card_declined", "fraudulent",
     "Your card was declined."),
    # A CVC given fails its check; "Decline after attaching" declines every charge.
    ("4000000000000101", "pm_card_cvcCheckFail", "incorrect_cvc", "incorrect_cvc",
     "Your card's security code is incorrect."),
    ("4000000000000341", "pm_card_chargeCustomerFail", "card_declined", "generic_decline",
     "Your card was declined."),
]  # fmt: skip
COUNTRIES = {"pm_card_gb": "GB", "pm_card_us": "US"}
RISK = {"4100000000000019": "highest", "4000000000004954": "highest",
        "4000000000009235": "elevated"}  # fmt: skip
THREE_DS = [
    ("4000002760003184", "pm_card_authenticationRequired"),
    ("4000002500003155", "pm_card_authenticationRequiredOnSetup"),
    ("4000000000003220", "pm_card_threeDSecure2Required"),
    ("4000008260003178", None),
    ("4000003800000446", None),
    ("4000008400001629", None),
]
ALIASES = {
    "pm_card_chargeDeclined": "generic_decline",
    "pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds",
    "pm_card_chargeDeclinedLostCard": "lost_card",
    "pm_card_chargeDeclinedStolenCard": "stolen_card",
    # Stripe's Radar testing page names the always-blocked card's token so.
    "pm_card_chargeDeclinedFraudulent": "fraudulent",
}


def card_data(number: str) -> dict[str, Any]:
    return {
        "type": "card",
        "card": {"number": number, "exp_month": 12, "exp_year": NEXT_YEAR, "cvc": "123"},
        "billing_details": {"name": "Jenny Rosen", "email": "jenny@example.com"},
    }


def new_intent(client: stripe.StripeClient, **extra: Any) -> stripe.PaymentIntent:
    """An intent a server may confirm without a return_url: it accepts no redirect methods."""
    if "allowed_payment_method_types" not in extra:
        extra.setdefault("automatic_payment_methods", NO_REDIRECTS)
    return client.v1.payment_intents.create(
        params={"amount": 1999, "currency": "usd", "metadata": {"item_id": "1"}, **extra}
    )


def test_create_defaults(client: stripe.StripeClient) -> None:
    pi = client.v1.payment_intents.create(
        params={"amount": 1999, "currency": "usd", "metadata": {"item_id": "1"},
                "description": "A book", "receipt_email": "a@example.com"}
    )  # fmt: skip
    assert pi.automatic_payment_methods.allow_redirects == "always"
    assert pi.id.startswith("pi_") and len(pi.id) == 27
    assert pi.status == "requires_payment_method"
    assert pi.client_secret.startswith(f"{pi.id}_secret_")
    assert pi.automatic_payment_methods.enabled is True
    assert pi.payment_method_types == ["card"]
    assert pi.metadata.to_dict() == {"item_id": "1"}
    assert (pi.amount, pi.currency, pi.livemode) == (1999, "usd", False)
    assert pi.latest_charge is None and pi.last_payment_error is None


@pytest.mark.parametrize(("number", "token", "brand"), SUCCEEDING)
def test_succeeding_cards(client: stripe.StripeClient, number: str, token: str, brand: str) -> None:
    by_number = client.v1.payment_intents.confirm(
        new_intent(client).id, params={"payment_method_data": card_data(number)}
    )
    by_token = client.v1.payment_intents.confirm(
        new_intent(client).id, params={"payment_method": token}
    )
    for pi in (by_number, by_token):
        assert pi.status == "succeeded"
        assert pi.amount_received == 1999
        charge = client.v1.charges.retrieve(pi.latest_charge)
        assert charge.status == "succeeded" and charge.paid and charge.captured
        assert charge.amount_captured == 1999
        assert charge.payment_method_details.card.brand == brand
        assert charge.payment_method_details.card.last4 == number[-4:]
        assert charge.payment_intent == pi.id
        assert charge.outcome.risk_level == RISK.get(number, "normal")
        assert charge.outcome.type == "authorized"
    pm = client.v1.payment_methods.retrieve(by_token.payment_method)
    assert pm.card.last4 == number[-4:] and pm.card.brand == brand
    assert pm.card.country == COUNTRIES.get(token, pm.card.country)


@pytest.mark.parametrize(("number", "token", "code", "decline_code", "message"), DECLINING)
def test_declining_cards(
    client: stripe.StripeClient, number: str, token: str, code: str, decline_code: str, message: str
) -> None:
    for how in ({"payment_method_data": card_data(number)}, {"payment_method": token}):
        pi = new_intent(client)
        with pytest.raises(stripe.CardError) as caught:
            client.v1.payment_intents.confirm(pi.id, params=how)
        err = caught.value
        assert err.http_status == 402
        assert (err.code, err.error.decline_code, err.user_message) == (code, decline_code, message)
        body = err.json_body["error"]
        assert body["type"] == "card_error"
        assert body["charge"].startswith("ch_")
        assert body["payment_method"]["card"]["last4"] == number[-4:]
        assert body["payment_intent"]["id"] == pi.id
        assert body["payment_intent"]["status"] == "requires_payment_method"
        assert body["payment_intent"]["last_payment_error"]["decline_code"] == decline_code
        failed = client.v1.charges.retrieve(body["charge"])
        assert (failed.status, failed.failure_code, failed.failure_message) == (
            "failed",
            code,
            message,
        )
        blocked = decline_code == "fraudulent"  # by Radar: never sent to the card's network
        assert failed.outcome.type == ("blocked" if blocked else "issuer_declined")
        assert failed.outcome.risk_level == RISK.get(number, "normal")
        if blocked:
            assert failed.outcome.network_status == "not_sent_to_network"
            assert failed.outcome.reason == "highest_risk_level"
        if code == "incorrect_cvc":
            assert failed.payment_method_details.card.checks.cvc_check == "fail"
        after = client.v1.payment_intents.retrieve(pi.id)
        assert after.status == "requires_payment_method"
        assert after.last_payment_error.code == code
        assert after.latest_charge == body["charge"]
        # ... and it can be paid with another card.
        again = client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"})
        assert again.status == "succeeded" and again.last_payment_error is None


@pytest.mark.parametrize(("alias", "decline_code"), sorted(ALIASES.items()))
def test_old_token_aliases(client: stripe.StripeClient, alias: str, decline_code: str) -> None:
    with pytest.raises(stripe.CardError) as caught:
        new_intent(client, confirm=True, payment_method=alias)
    assert caught.value.error.decline_code == decline_code


def test_the_cvc_check_card_without_a_cvc_succeeds(client: stripe.StripeClient) -> None:
    """Stripe's testing page: 4000 0000 0000 0101 "succeeds unless a CVC is entered, in which
    case cvc_check fails and the charge is declined"."""
    data = card_data("4000000000000101")
    del data["card"]["cvc"]
    pi = new_intent(client, confirm=True, payment_method_data=data)
    assert pi.status == "succeeded"
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert charge.payment_method_details.card.checks.cvc_check is None


@pytest.mark.parametrize("token", ["pm_card_amex", "pm_card_visa_debit"])
def test_extra_tokens(client: stripe.StripeClient, token: str) -> None:
    pi = new_intent(client, confirm=True, payment_method=token)
    assert pi.status == "succeeded"


@pytest.mark.parametrize(("number", "token"), THREE_DS)
def test_three_d_secure_cards_require_action(
    client: stripe.StripeClient, number: str, token: str | None
) -> None:
    hows: list[dict[str, Any]] = [{"payment_method_data": card_data(number)}]
    if token:
        hows.append({"payment_method": token})
    for how in hows:
        pi = client.v1.payment_intents.confirm(
            new_intent(client).id, params={**how, "return_url": "http://127.0.0.1:4242/success"}
        )
        assert pi.status == "requires_action"
        assert pi.next_action.type == "redirect_to_url"
        assert pi.next_action.redirect_to_url.return_url == "http://127.0.0.1:4242/success"
        assert "/3ds/authenticate/" in pi.next_action.redirect_to_url.url
        assert pi.latest_charge is None


def test_incorrect_number_and_expiry(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.CardError) as caught:
        client.v1.payment_methods.create(params=card_data("4242424242424241"))
    assert caught.value.code == "incorrect_number"
    assert caught.value.user_message == "Your card number is incorrect."
    past = card_data("4242424242424242")
    past["card"]["exp_year"] = 2001
    with pytest.raises(stripe.CardError) as caught:
        client.v1.payment_methods.create(params=past)
    assert caught.value.code == "invalid_expiry_year"
    past["card"].update(exp_year=NEXT_YEAR, exp_month=13)
    with pytest.raises(stripe.CardError) as caught:
        client.v1.payment_methods.create(params=past)
    assert caught.value.code == "invalid_expiry_month"
    with pytest.raises(stripe.CardError) as caught:
        client.v1.payment_intents.confirm(
            new_intent(client).id, params={"payment_method_data": card_data("4000000000000001")}
        )
    assert caught.value.code == "incorrect_number"


def test_payment_method_card_fields(client: stripe.StripeClient) -> None:
    pm = client.v1.payment_methods.create(params=card_data("5555555555554444"))
    again = client.v1.payment_methods.create(params=card_data("5555555555554444"))
    assert pm.id.startswith("pm_") and pm.type == "card"
    card = pm.card
    assert (card.brand, card.last4, card.exp_month, card.exp_year) == (
        "mastercard",
        "4444",
        12,
        NEXT_YEAR,
    )
    assert card.funding == "credit" and card.country == "US"
    assert card.fingerprint == again.card.fingerprint
    assert card.networks.available == ["mastercard"]
    assert pm.billing_details.name == "Jenny Rosen"
    assert "number" not in pm.card and "_number" not in pm
    other = client.v1.payment_methods.create(params=card_data("378282246310005"))
    assert other.card.brand == "amex"


def test_tokens_materialise_new_payment_methods(
    client: stripe.StripeClient, paid_intent: PaidIntent
) -> None:
    a = paid_intent(client, amount=1999)
    b = paid_intent(client, amount=1999)
    assert a.payment_method.startswith("pm_") and a.payment_method != b.payment_method


def test_attach_then_confirm(client: stripe.StripeClient) -> None:
    pi = new_intent(client, payment_method="pm_card_visa")
    assert pi.status == "requires_confirmation"
    pi = client.v1.payment_intents.confirm(pi.id)
    assert pi.status == "succeeded"


def test_update(client: stripe.StripeClient) -> None:
    pi = new_intent(client)
    pi = client.v1.payment_intents.update(
        pi.id,
        params={
            "amount": 2500,
            "metadata": {"order": "7", "item_id": ""},
            "description": "Updated",
            "shipping": {"name": "Jenny", "address": {"line1": "1 Main St", "country": "US"}},
        },
    )
    assert pi.amount == 2500 and pi.description == "Updated"
    assert pi.metadata.to_dict() == {"order": "7"}
    assert pi.shipping.address.line1 == "1 Main St" and pi.shipping.address.city is None
    client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.update(pi.id, params={"amount": 3000})
    assert caught.value.code == "payment_intent_unexpected_state"
    assert "status of succeeded" in caught.value.user_message


@pytest.mark.parametrize("status", ["succeeded", "requires_capture", "canceled"])
def test_a_confirmed_intent_takes_what_does_not_need_it_unconfirmed(
    client: stripe.StripeClient, status: str
) -> None:
    """Stripe refuses by status only what needs an unconfirmed intent (its amount, currency,
    payment method, capture method...), each by name; its metadata, description, receipt email
    and shipping (a tracking number comes once it has shipped) are updated in any status."""
    pi = new_intent(
        client,
        payment_method="pm_card_visa",
        confirm=True,
        capture_method="manual" if status != "succeeded" else "automatic",
        return_url="https://shop.example/r",
    )
    if status == "canceled":
        pi = client.v1.payment_intents.cancel(pi.id)
    assert pi.status == status
    shipping = {"name": "Jenny", "address": {"line1": "1 Main St", "country": "US"},
                "carrier": "USPS", "tracking_number": "9400"}  # fmt: skip
    updated = client.v1.payment_intents.update(
        pi.id,
        params={"metadata": {"order": "8"}, "description": "Shipped",
                "receipt_email": "jenny@example.com", "shipping": shipping},
    )  # fmt: skip
    assert (updated.status, updated.description) == (status, "Shipped")
    assert updated.metadata.to_dict() == {"item_id": "1", "order": "8"}
    assert updated.receipt_email == "jenny@example.com"
    assert updated.shipping.tracking_number == "9400"
    for field, value in [("amount", 3000), ("currency", "eur"), ("capture_method", "automatic"),
                         ("payment_method", "pm_card_mastercard")]:  # fmt: skip
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.payment_intents.update(
                pi.id, params={"metadata": {"order": "9"}, field: value}
            )
        assert caught.value.code == "payment_intent_unexpected_state"
        assert caught.value.user_message == (
            f"This PaymentIntent's {field} could not be updated because it has a status of"
            f" {status}. You may only update the {field} of a PaymentIntent with one of the"
            " following statuses: requires_payment_method, requires_confirmation,"
            " requires_action."
        )
    after = client.v1.payment_intents.retrieve(pi.id)
    assert after.metadata.to_dict() == {"item_id": "1", "order": "8"}  # refused: unchanged
    assert (after.amount, after.currency, after.payment_method) == (1999, "usd", pi.payment_method)


def test_illegal_transitions(client: stripe.StripeClient, paid_intent: PaidIntent) -> None:
    done = paid_intent(client, amount=1999)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.confirm(done.id, params={"payment_method": "pm_card_visa"})
    assert caught.value.code == "payment_intent_unexpected_state"
    assert caught.value.http_status == 400
    assert "already succeeded" in caught.value.user_message
    assert caught.value.json_body["error"]["payment_intent"]["status"] == "succeeded"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.cancel(done.id)
    assert caught.value.user_message.startswith(
        "You cannot cancel this PaymentIntent because it has a status of succeeded."
    )
    canceled = client.v1.payment_intents.cancel(
        new_intent(client).id, params={"cancellation_reason": "requested_by_customer"}
    )
    assert canceled.status == "canceled" and canceled.canceled_at
    assert canceled.cancellation_reason == "requested_by_customer"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.confirm(canceled.id, params={"payment_method": "pm_card_visa"})
    assert "status of canceled" in caught.value.user_message
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.confirm(new_intent(client).id)
    assert "missing a payment method" in caught.value.user_message


def test_validation(client: stripe.StripeClient) -> None:
    cases = [
        ({"amount": 49, "currency": "usd"}, "amount_too_small", "amount",
         "Amount must be at least $0.50 usd"),
        ({"amount": 100000000, "currency": "usd"}, "amount_too_large", "amount", None),
        ({"amount": 1000, "currency": "xyz"}, None, "currency", None),
        ({"amount": 1000, "currency": "USDZ"}, None, "currency", None),  # USD is usd
        ({"currency": "usd"}, "parameter_missing", "amount", "Missing required param: amount."),
        ({"amount": "abc", "currency": "usd"}, "parameter_invalid_integer", "amount", None),
        ({"amount": 1000, "currency": "usd", "metadata": {"k" * 41: "v"}}, None,
         f"metadata[{'k' * 41}]", None),
        ({"amount": 1000, "currency": "usd", "metadata": {"k": "v" * 501}}, None, "metadata[k]",
         None),
        ({"amount": 1000, "currency": "usd", "metadata": {f"k{i}": "v" for i in range(51)}},
         None, "metadata", None),
    ]  # fmt: skip
    for params, code, param, message in cases:
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.payment_intents.create(params=params)
        assert caught.value.code == code, params
        assert caught.value.param == param, params
        if message:
            assert caught.value.user_message == message


def test_charges_list_by_intent(client: stripe.StripeClient) -> None:
    pi = new_intent(client)
    with pytest.raises(stripe.CardError):
        client.v1.payment_intents.confirm(
            pi.id, params={"payment_method": "pm_card_chargeDeclined"}
        )
    client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"})
    charges = client.v1.charges.list(params={"payment_intent": pi.id})
    assert [c.status for c in charges.data] == ["succeeded", "failed"]
    expanded = client.v1.payment_intents.retrieve(pi.id, params={"expand": ["latest_charge"]})
    assert expanded.latest_charge.id == charges.data[0].id
    assert expanded.latest_charge.receipt_url.endswith(f"/receipts/{charges.data[0].id}")


@pytest.mark.parametrize("currency", ["kwd", "bhd", "jod", "omr", "tnd"])
def test_three_decimal_currencies_accepted(
    client: stripe.StripeClient, paid_intent: PaidIntent, currency: str
) -> None:
    pi = paid_intent(client, amount=1500, currency=currency)
    assert (pi.status, pi.amount, pi.currency) == ("succeeded", 1500, currency)


CHARGE_AMOUNT = "invalid_charge_amount"  # Stripe's code for an amount it cannot charge


def three_decimal_refusal(currency: str) -> str:
    return (
        f"Invalid amount. Currency {currency.upper()} is a three-decimal currency and amounts"
        " must be evenly divisible by 10. See https://stripe.com/docs/currencies#three-decimal"
        " for more information."
    )


NO_DECIMAL_COMPATIBLE = "invalid_charge_amount_no_decimal_compatible"  # Stripe's code for it


def whole_units_refusal(currency: str) -> str:
    """Stripe's refusal of a fractional ISK amount (support.stripe.com, "Deprecation of
    fractional ISK charges and refunds"), for UGX too."""
    return (
        f"Invalid amount. Currency {currency.upper()} has become effectively zero-decimal and"
        " charged amounts must be evenly divisible by 100. See"
        " https://stripe.com/docs/currencies#special-cases for more information."
    )


def refused_creates(client: stripe.StripeClient, currency: str, amount: int) -> list:
    """The errors of creating ``amount`` in ``currency``, alone and with confirm=true, for a
    customer of its own; asserts that neither created anything."""
    cus = client.v1.customers.create()
    confirming = {
        "confirm": True,
        "payment_method": "pm_card_visa",
        "return_url": "https://shop.example/success",
    }
    errors = []
    for extra in ({}, confirming):
        params = {"amount": amount, "currency": currency, "customer": cus.id, **extra}
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.payment_intents.create(params=params)
        errors.append(caught.value)
    assert client.v1.payment_intents.list(params={"customer": cus.id}).data == []
    return errors


@pytest.mark.parametrize("currency", ["kwd", "bhd", "jod", "omr", "tnd", "KWD"])
def test_a_three_decimal_amount_must_end_in_0(client: stripe.StripeClient, currency: str) -> None:
    """Stripe's currencies page: for three-decimal currencies the Payment Intents and Refunds
    calls "require the least-significant (last) digit to be 0". A create (with confirm=true too)
    that breaks it is a 400 on `amount` and creates nothing."""
    for error in refused_creates(client, currency, 1005):
        assert (error.http_status, error.code, error.param) == (400, CHARGE_AMOUNT, "amount")
        assert error.user_message == three_decimal_refusal(currency)
    # Two-decimal and zero-decimal currencies take any last digit.
    for other in ("usd", "jpy"):
        created = client.v1.payment_intents.create(params={"amount": 1005, "currency": other})
        assert created.amount == 1005


@pytest.mark.parametrize(
    ("currency", "odd", "code", "refusal", "even"),
    [
        ("kwd", 1005, CHARGE_AMOUNT, three_decimal_refusal, 1010),
        ("isk", 1050, NO_DECIMAL_COMPATIBLE, whole_units_refusal, 1100),
    ],
)
def test_an_update_must_keep_the_currencys_last_digits(
    client: stripe.StripeClient, currency: str, odd: int, code: str, refusal, even: int
) -> None:
    """An update to an amount, or to the currency for an amount, that does not end as the
    currency's amounts must (in 0 for a three-decimal currency, in 00 for ISK) is refused on
    `amount`, and the intent is left as it was."""
    mine = client.v1.payment_intents.create(params={"amount": 1000, "currency": currency})
    usd = client.v1.payment_intents.create(params={"amount": odd, "currency": "usd"})
    for pi, params in ((mine, {"amount": odd}), (usd, {"currency": currency})):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.payment_intents.update(pi.id, params=params)
        assert (caught.value.code, caught.value.param) == (code, "amount")
        assert caught.value.user_message == refusal(currency)
        kept = client.v1.payment_intents.retrieve(pi.id)
        assert (kept.amount, kept.currency) == (pi.amount, pi.currency)
    assert client.v1.payment_intents.update(mine.id, params={"amount": even}).amount == even


def test_a_three_decimal_capture_or_refund_must_end_in_0(
    client: stripe.StripeClient, paid_intent: PaidIntent
) -> None:
    """`amount_to_capture` and a refund's `amount` follow the same rule; nothing is captured
    or refunded by a refused call."""
    held = paid_intent(client, amount=5120, currency="bhd", capture_method="manual")
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.capture(held.id, params={"amount_to_capture": 2555})
    assert (caught.value.code, caught.value.param) == (CHARGE_AMOUNT, "amount_to_capture")
    assert caught.value.user_message == three_decimal_refusal("bhd")
    still = client.v1.payment_intents.retrieve(held.id)
    assert (still.status, still.amount_capturable) == ("requires_capture", 5120)
    captured = client.v1.payment_intents.capture(held.id, params={"amount_to_capture": 2560})
    assert captured.amount_received == 2560
    released = client.v1.refunds.list(params={"payment_intent": held.id}).data  # the 2.560 held
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.create(params={"payment_intent": held.id, "amount": 1})
    assert (caught.value.code, caught.value.param) == (CHARGE_AMOUNT, "amount")
    assert caught.value.user_message == three_decimal_refusal("bhd")
    assert client.v1.refunds.list(params={"payment_intent": held.id}).data == released
    assert client.v1.refunds.create(params={"payment_intent": held.id, "amount": 10}).amount == 10


@pytest.mark.parametrize("currency", ["isk", "ugx", "ISK"])
def test_an_isk_or_ugx_amount_must_end_in_00(client: stripe.StripeClient, currency: str) -> None:
    """Stripe's currencies page, "Special cases": ISK and UGX "transitioned to a zero-decimal
    currency, but backwards compatibility requires you to represent it as a two-decimal value,
    where the decimal amount is always 00". A create (with confirm=true too) of 10.50 is a 400
    on `amount` and creates nothing; 10.00 is taken, as the two-decimal amount 1000."""
    for error in refused_creates(client, currency, 1050):
        assert (error.http_status, error.code, error.param) == (
            400,
            NO_DECIMAL_COMPATIBLE,
            "amount",
        )
        assert error.user_message == whole_units_refusal(currency)
    created = client.v1.payment_intents.create(params={"amount": 1000, "currency": currency})
    assert (created.amount, created.currency) == (1000, currency.lower())
    # HUF and TWD are zero-decimal for payouts only (the emulator has none): charges take any
    # two-decimal amount.
    for other in ("huf", "twd"):
        created = client.v1.payment_intents.create(params={"amount": 17505, "currency": other})
        assert created.amount == 17505


@pytest.mark.parametrize("currency", ["isk", "ugx"])
def test_an_isk_or_ugx_capture_or_refund_must_end_in_00(
    client: stripe.StripeClient, paid_intent: PaidIntent, currency: str
) -> None:
    """`amount_to_capture` and a refund's `amount` follow the same rule (the support article:
    a refund of fractional krónur gets "the same" response); a refused call captures or
    refunds nothing."""
    held = paid_intent(client, amount=50000, currency=currency, capture_method="manual")
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.capture(held.id, params={"amount_to_capture": 25050})
    assert (caught.value.code, caught.value.param) == (NO_DECIMAL_COMPATIBLE, "amount_to_capture")
    assert caught.value.user_message == whole_units_refusal(currency)
    still = client.v1.payment_intents.retrieve(held.id)
    assert (still.status, still.amount_capturable) == ("requires_capture", 50000)
    captured = client.v1.payment_intents.capture(held.id, params={"amount_to_capture": 25000})
    assert captured.amount_received == 25000
    released = client.v1.refunds.list(params={"payment_intent": held.id}).data
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.create(params={"payment_intent": held.id, "amount": 150})
    assert (caught.value.code, caught.value.param) == (NO_DECIMAL_COMPATIBLE, "amount")
    assert caught.value.user_message == whole_units_refusal(currency)
    assert client.v1.refunds.list(params={"payment_intent": held.id}).data == released
    assert client.v1.refunds.create(params={"payment_intent": held.id, "amount": 100}).amount == 100


def test_kwd_intent(
    client: stripe.StripeClient, paid_intent: PaidIntent, call: Callable[..., Any]
) -> None:
    pi = paid_intent(client, amount=12340, currency="kwd")
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert (charge.amount, charge.currency, charge.status) == (12340, "kwd", "succeeded")
    # Three digits below the dinar, in messages and on the receipt.
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 20000})
    assert caught.value.user_message == (
        "Refund amount (20.000) is greater than charge amount (12.340)"
    )
    refund = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 340})
    assert (refund.amount, refund.currency) == (340, "kwd")
    page = call("GET", urlsplit(charge.receipt_url).path, key=None).body.decode()
    assert "12.340" in page and "0.340" in page
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.create(params={"amount": 100000000, "currency": "kwd"})
    assert caught.value.code == "amount_too_large"
    assert caught.value.user_message == "Amount must be no more than 99,999.999"
