"""Stripe's rules for PaymentIntents, through stripe-python: return_url, next actions,
confirmation_method, expand[], references to other objects, manual capture, API versions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
import stripe

Client = stripe.StripeClient
RETURN_URL_REQUIRED = (
    "A `return_url` must be specified because this Payment Intent is configured to automatically"
    " accept the payment methods enabled in the Dashboard, some of which may require a full page"
    " redirect to succeed. If you do not want to accept redirect-based payment methods, set"
    " `automatic_payment_methods[enabled]` to `true` and"
    " `automatic_payment_methods[allow_redirects]` to `never` when creating Setup Intents and"
    " Payment Intents."
)


def create(client: Client, **params: Any) -> stripe.PaymentIntent:
    return client.v1.payment_intents.create(params={"amount": 1000, "currency": "usd", **params})


def events_of(client: Client, object_id: str) -> list[str]:
    """The types of the events about an object (or objects pointing at it), oldest first."""
    found = client.v1.events.list(params={"limit": 100}).data
    mine = [e for e in found if object_id in _ids(e.data.object.to_dict())]
    return [e.type for e in reversed(mine)]


def _ids(obj: dict[str, Any]) -> set[str]:
    return {v for k, v in obj.items() if k in ("id", "payment_intent", "charge") and v}


# --- 4. return_url --------------------------------------------------------------------------


def test_return_url_required_with_automatic_payment_methods(client: Client) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        create(client, confirm=True, payment_method="pm_card_visa")
    assert caught.value.http_status == 400
    assert (caught.value.user_message, caught.value.param) == (RETURN_URL_REQUIRED, "return_url")
    pi = create(client)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"})
    assert caught.value.user_message == RETURN_URL_REQUIRED
    assert client.v1.payment_intents.retrieve(pi.id).status == "requires_payment_method"
    done = client.v1.payment_intents.confirm(
        pi.id, params={"payment_method": "pm_card_visa", "return_url": "https://shop.example/r"}
    )
    assert done.status == "succeeded"


def test_no_return_url_needed_without_redirects(client: Client) -> None:
    never = {"enabled": True, "allow_redirects": "never"}
    pi = create(
        client, automatic_payment_methods=never, confirm=True, payment_method="pm_card_visa"
    )
    assert pi.status == "succeeded"
    card = create(client, allowed_payment_method_types=["card"], confirm=True,
                  payment_method="pm_card_visa")  # fmt: skip
    assert card.status == "succeeded" and card.automatic_payment_methods is None


def test_three_d_secure_without_return_url_is_use_stripe_sdk(
    client: Client, call: Callable[..., Any]
) -> None:
    pi = create(client, allowed_payment_method_types=["card"], confirm=True,
                payment_method="pm_card_authenticationRequired")  # fmt: skip
    assert pi.status == "requires_action"
    assert pi.next_action.type == "use_stripe_sdk" and "redirect_to_url" not in pi.next_action
    sdk = pi.next_action.use_stripe_sdk
    assert sdk["type"] == "three_d_secure_redirect" and sdk["source"].startswith("src_")
    page = urlsplit(sdk["stripe_js"])
    assert call("GET", f"{page.path}?{page.query}", key=None).status == 200
    with_url = create(client, allowed_payment_method_types=["card"], confirm=True,
                      payment_method="pm_card_authenticationRequired",
                      return_url="https://shop.example/r")  # fmt: skip
    assert with_url.next_action.type == "redirect_to_url"
    assert with_url.next_action.redirect_to_url.return_url == "https://shop.example/r"
    asked = create(client, allowed_payment_method_types=["card"], confirm=True, use_stripe_sdk=True,
                   payment_method="pm_card_authenticationRequired",
                   return_url="https://shop.example/r")  # fmt: skip
    assert asked.next_action.type == "use_stripe_sdk"


def test_publishable_confirm_needs_no_return_url(client: Client, call: Callable[..., Any]) -> None:
    """Stripe.js handles redirects itself: the rule is for server-side confirmations."""
    pi = create(client)
    resp = call("POST", f"/v1/payment_intents/{pi.id}/confirm",
                {"client_secret": pi.client_secret, "payment_method": "pm_card_visa"},
                key="pk_test_x")  # fmt: skip
    assert resp.status == 200 and resp.json()["status"] == "succeeded"


def test_payment_method_types_is_no_longer_a_parameter(client: Client) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        create(client, payment_method_types=["card"])
    assert caught.value.code == "payment_method_types_no_longer_supported"
    assert caught.value.param == "payment_method_types"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        create(
            client,
            allowed_payment_method_types=["card"],
            automatic_payment_methods={"enabled": True},
        )
    assert "allowed_payment_method_types, automatic_payment_methods" in caught.value.user_message
    only = create(client, allowed_payment_method_types=["card", "sepa_debit"])
    assert only.payment_method_types == ["card"]  # incompatible types left out, as Stripe does
    assert only.allowed_payment_method_types == ["card", "sepa_debit"]
    with pytest.raises(stripe.InvalidRequestError) as caught:
        create(client, allowed_payment_method_types=["sepa_debit"])
    assert caught.value.code == "parameter_unsupported"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        create(client, allowed_payment_method_types=["carrier_pigeon"])
    assert caught.value.param == "allowed_payment_method_types[0]"


def test_a_currency_is_read_in_any_case(client: Client, call: Callable[..., Any]) -> None:
    """Stripe lowercases a currency before it checks it (its refusal names `xyz` for `XYZ`), so
    `USD` is `usd`; refusing it answered "Invalid currency: usd ... supports ... usd"."""
    assert create(client, currency="USD").currency == "usd"
    pi = create(client)
    assert client.v1.payment_intents.update(pi.id, params={"currency": "Eur"}).currency == "eur"
    refused = call("POST", "/v1/payment_intents", {"amount": "1000", "currency": "XYZ"})
    error = refused.json()["error"]
    assert (refused.status, error["param"]) == (400, "currency")
    assert error["message"].startswith("Invalid currency: xyz. Stripe currently supports")


STATEMENT_DESCRIPTOR_FOR_CARDS = (
    "The statement_descriptor parameter is not supported for the payment_method_type `card`. To"
    " continue supporting payment_method_type `card`, please pass in `statement_descriptor_suffix`"
    " or remove the `statement_descriptor` parameter altogether. Please see"
    " https://support.stripe.com/questions/use-of-the-statement-descriptor-parameter-on-"
    "paymentintents-for-card-charges for additional details."
)


def test_statement_descriptor_is_refused_for_card_payments(client: Client) -> None:
    """Stripe's rule since 2024 (its parameter docs: "Setting this value for a card charge
    returns an error"): the emulator's PaymentIntents all take cards, so a statement_descriptor
    is refused on create, update and capture; the suffix is what a card payment takes."""
    with pytest.raises(stripe.InvalidRequestError) as caught:
        create(client, statement_descriptor="BOOKPAY BOOKS")
    assert (caught.value.http_status, caught.value.param) == (400, "statement_descriptor")
    assert caught.value.user_message == STATEMENT_DESCRIPTOR_FOR_CARDS
    pi = create(client, statement_descriptor_suffix="ORDER 42", capture_method="manual")
    assert pi.statement_descriptor_suffix == "ORDER 42"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.update(pi.id, params={"statement_descriptor": "BOOKS"})
    assert caught.value.user_message == STATEMENT_DESCRIPTOR_FOR_CARDS
    updated = client.v1.payment_intents.update(pi.id, params={"statement_descriptor": ""})
    assert updated.statement_descriptor is None
    confirmed = client.v1.payment_intents.confirm(
        pi.id, params={"payment_method": "pm_card_visa", "return_url": "https://shop.example/"}
    )
    assert confirmed.status == "requires_capture"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.capture(pi.id, params={"statement_descriptor": "BOOKS"})
    assert caught.value.user_message == STATEMENT_DESCRIPTOR_FOR_CARDS
    assert client.v1.payment_intents.retrieve(pi.id).status == "requires_capture"


def test_an_array_parameter_given_one_string_is_invalid_array(call: Callable[..., Any]) -> None:
    """Stripe's "Invalid array" (no more words), naming the parameter, for `expand=customer`
    instead of `expand[]=customer`: it took the string as a list of one."""
    intent = {"amount": "1000", "currency": "usd"}
    for method, path, params, param in [
        ("POST", "/v1/payment_intents", {**intent, "expand": "customer"}, "expand"),
        ("POST", "/v1/payment_intents", {**intent, "allowed_payment_method_types": "card"},
         "allowed_payment_method_types"),
        ("GET", "/v1/events", {"types": "payment_intent.created"}, "types"),
        ("POST", "/v1/tax/calculations", {"currency": "usd", "line_items[amount]": "1000"},
         "line_items"),
    ]:  # fmt: skip
        error = call(method, path, params).json()["error"]
        assert (error["message"], error["param"]) == ("Invalid array", param), (path, error)
    assert call("GET", "/v1/events", {"type": "payment_intent.created"}).status == 200
    assert call("POST", "/v1/payment_intents", {**intent, "expand": ""}).status == 200


# --- 5. confirmation_method, expand[], references --------------------------------------------


def test_confirmation_method_is_validated_and_kept(client: Client) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        create(client, confirmation_method="sometimes")
    assert caught.value.param == "confirmation_method"
    assert (
        caught.value.user_message == "Invalid confirmation_method: must be one of automatic, manual"
    )
    assert create(client, confirmation_method="manual").confirmation_method == "manual"
    assert create(client).confirmation_method == "automatic"


def test_manual_confirmation_waits_for_the_server_after_the_action(
    client: Client, call: Callable[..., Any]
) -> None:
    pi = create(client, confirmation_method="manual", allowed_payment_method_types=["card"])
    resp = call("POST", f"/v1/payment_intents/{pi.id}/confirm",
                {"client_secret": pi.client_secret, "payment_method": "pm_card_visa"},
                key="pk_test_x")  # fmt: skip
    assert resp.status == 400 and "confirmation_method is manual" in resp.json()["error"]["message"]
    pending = client.v1.payment_intents.confirm(
        pi.id, params={"payment_method": "pm_card_authenticationRequired"}
    )
    assert pending.status == "requires_action"
    page = urlsplit(pending.next_action.use_stripe_sdk["stripe_js"])
    done = call("POST", page.path, {"client_secret": pi.client_secret, "action": "complete"},
                key=None)  # fmt: skip
    assert done.status == 200
    waiting = client.v1.payment_intents.retrieve(pi.id)
    assert (waiting.status, waiting.latest_charge) == ("requires_confirmation", None)
    paid = client.v1.payment_intents.confirm(pi.id)
    assert paid.status == "succeeded"
    charge = client.v1.charges.retrieve(paid.latest_charge)
    assert charge.payment_method_details.card.three_d_secure.result == "authenticated"


def test_expand_refuses_what_is_not_expandable(client: Client, call: Callable[..., Any]) -> None:
    pi = create(client)
    for path in ("amount", "latest_charge.amount", "metadata.x", "data"):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.payment_intents.retrieve(pi.id, params={"expand": [path]})
        assert caught.value.user_message == f"This property cannot be expanded ({path})."
        assert caught.value.param == "expand"
    listed = call("GET", "/v1/payment_intents", {"expand[]": "customer"})
    assert listed.json()["error"]["message"] == "This property cannot be expanded (customer)."
    assert call("GET", "/v1/payment_intents", {"expand[]": "data.customer"}).status == 200
    assert (
        client.v1.payment_intents.retrieve(pi.id, params={"expand": ["customer"]}).customer is None
    )


def test_expand_through_a_null_hash_or_an_unheld_kind_is_valid_before_and_after_paying(
    client: Client, paid_intent: Callable[..., Any]
) -> None:
    """Stripe accepts a path its declarations allow whatever the object holds now: through a
    hash that is null (`transfer_data` with no transfer), before the payment and after it
    alike; a path no such object takes is still refused. Through a kind the emulator does not
    hold (a balance transaction's `source`) it cannot tell: unsupported, paid or not."""
    unpaid, paid = create(client), paid_intent(client)
    valid = ("transfer_data.destination", "latest_charge.transfer_data.destination",
             "latest_charge.balance_transaction.source")  # fmt: skip
    for pi in (unpaid, paid):
        for path in valid[:2]:
            got = client.v1.payment_intents.retrieve(pi.id, params={"expand": [path]})
            assert got.id == pi.id, path
    for pi in (unpaid, paid):  # a balance transaction the emulator does not hold, paid or not
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.payment_intents.retrieve(pi.id, params={"expand": [valid[2]]})
        assert caught.value.code == "parameter_unsupported"
    for path in ("transfer_data.amount", "latest_charge.transfer_data.no_such"):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.payment_intents.retrieve(paid.id, params={"expand": [path]})
        assert caught.value.user_message == f"This property cannot be expanded ({path}).", path


def test_expand_at_most_four_levels(call: Callable[..., Any]) -> None:
    deep = "data.latest_charge.payment_intent.latest_charge.payment_intent"
    resp = call("GET", "/v1/payment_intents", {"expand[]": deep})
    error = resp.json()["error"]
    assert resp.status == 400 and error["code"] == "property_expansion_max_depth"
    assert (
        error["message"] == f"You cannot expand more than 4 levels of a property. Property: {deep}"
    )
    ok = call("GET", "/v1/payment_intents", {"expand[]": "data.latest_charge.payment_intent"})
    assert ok.status == 200


def test_expanding_what_the_emulator_does_not_hold_is_unsupported(
    client: Client, paid_intent: Callable[..., Any]
) -> None:
    pi = paid_intent(client)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.charges.retrieve(pi.latest_charge, params={"expand": ["balance_transaction"]})
    assert caught.value.code == "parameter_unsupported"


def test_unknown_references_are_resource_missing(client: Client) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        create(client, customer="cus_doesnotexist")
    assert (caught.value.http_status, caught.value.code, caught.value.param) == (
        400, "resource_missing", "customer",
    )  # fmt: skip
    assert caught.value.user_message == "No such customer: 'cus_doesnotexist'"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        create(client, payment_method="pm_doesnotexist")
    assert caught.value.user_message == "No such PaymentMethod: 'pm_doesnotexist'"
    assert caught.value.code == "resource_missing"
    pi = create(client)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.update(pi.id, params={"customer": "cus_nope"})
    assert caught.value.user_message == "No such customer: 'cus_nope'"
    cus = client.v1.customers.create(params={"email": "a@example.com"})
    assert client.v1.payment_intents.update(pi.id, params={"customer": cus.id}).customer == cus.id
    listed = client.v1.payment_intents.list(params={"customer": cus.id}).data
    assert [p.id for p in listed] == [pi.id]


# --- 6. manual capture ----------------------------------------------------------------------


def authorized(client: Client) -> stripe.PaymentIntent:
    pi = create(client, amount=2000, capture_method="manual", confirm=True,
                payment_method="pm_card_visa", return_url="https://shop.example/r")  # fmt: skip
    assert (pi.status, pi.amount_capturable, pi.amount_received) == ("requires_capture", 2000, 0)
    return pi


def test_manual_capture_in_full(client: Client) -> None:
    pi = authorized(client)
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert (charge.status, charge.captured, charge.amount_captured) == ("succeeded", False, 0)
    assert events_of(client, pi.id) == [
        "payment_intent.created", "charge.succeeded", "payment_intent.amount_capturable_updated",
    ]  # fmt: skip
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.create(params={"payment_intent": pi.id})
    captured = client.v1.payment_intents.capture(pi.id)
    assert (captured.status, captured.amount_received, captured.amount_capturable) == (
        "succeeded", 2000, 0,
    )  # fmt: skip
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert (charge.captured, charge.amount_captured, charge.amount_refunded) == (True, 2000, 0)
    assert events_of(client, pi.id)[-2:] == ["charge.captured", "payment_intent.succeeded"]
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.capture(pi.id)
    assert caught.value.code == "payment_intent_unexpected_state"


def test_manual_capture_in_part_releases_the_rest(client: Client) -> None:
    pi = authorized(client)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.capture(pi.id, params={"amount_to_capture": 2001})
    assert caught.value.param == "amount_to_capture"
    captured = client.v1.payment_intents.capture(pi.id, params={"amount_to_capture": 1200})
    assert (captured.status, captured.amount_received) == ("succeeded", 1200)
    charge = client.v1.charges.retrieve(pi.latest_charge, params={"expand": ["refunds"]})
    assert (charge.amount_captured, charge.amount_refunded, charge.refunded) == (1200, 800, False)
    assert [r.amount for r in charge.refunds.data] == [800]
    assert "charge.captured" in events_of(client, pi.id)
    refund = client.v1.refunds.create(params={"payment_intent": pi.id})
    assert refund.amount == 1200  # what was captured, and no more


def test_final_capture_false_is_multicapture_and_refused_by_name(
    client: Client, call: Callable[..., Any]
) -> None:
    """final_capture=false asks for multicapture, which the emulator leaves out: refused as not
    supported (naming it), not as a bad value; a value that is no boolean is Stripe's refusal."""
    pi = authorized(client)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.capture(pi.id, params={"final_capture": False})
    assert (caught.value.code, caught.value.param) == ("parameter_unsupported", "final_capture")
    assert "does not support final_capture=false yet" in caught.value.user_message
    answer = call("POST", f"/v1/payment_intents/{pi.id}/capture", {"final_capture": "maybe"})
    assert (answer.status, answer.json()["error"]["message"]) == (400, "Invalid boolean: maybe")
    assert client.v1.payment_intents.retrieve(pi.id).status == "requires_capture"
    captured = client.v1.payment_intents.capture(pi.id, params={"final_capture": True})
    assert (captured.status, captured.amount_received) == ("succeeded", 2000)


def test_canceling_an_authorization_releases_it(client: Client) -> None:
    pi = authorized(client)
    canceled = client.v1.payment_intents.cancel(pi.id)
    assert (canceled.status, canceled.amount_capturable) == ("canceled", 0)
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert (charge.captured, charge.amount_refunded, charge.refunded) == (False, 2000, True)
    assert events_of(client, pi.id)[-2:] == ["charge.refunded", "payment_intent.canceled"]


def test_capture_method_is_validated(client: Client) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        create(client, capture_method="later")
    assert caught.value.param == "capture_method"
    assert "automatic, automatic_async, manual" in caught.value.user_message


# --- API versions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "status", "code"),
    [
        ("2026-10-28.endive", 200, None),
        ("2026-09-30.endive", 200, None),
        ("2024-06-20", 400, "api_version_unsupported"),
        ("2026-08-26.dahlia", 400, "api_version_unsupported"),
        ("2026-10-29.endive", 400, None),  # not a version Stripe has
        ("yesterday", 400, None),
    ],
)
def test_stripe_version_header(
    call: Callable[..., Any], version: str, status: int, code: str | None
) -> None:
    resp = call("GET", "/v1/payment_intents", headers={"Stripe-Version": version})
    assert resp.status == status
    if status == 200:
        assert resp.headers["stripe-version"] == version
    else:
        error = resp.json()["error"]
        assert error.get("code") == code
        if code is None:
            assert error["message"] == f"Invalid Stripe API version: {version}"
        assert resp.headers["stripe-version"] == "2026-10-28.endive"


def test_stripe_python_pins_the_version_the_emulator_reports(
    client: Client, paid_intent: Callable[..., Any]
) -> None:
    pi = paid_intent(client)
    event = next(e for e in client.v1.events.list(params={"limit": 100}).data
                 if e.data.object.to_dict().get("id") == pi.id)  # fmt: skip
    assert event.api_version == stripe.api_version


@pytest.mark.parametrize("resource", ["payment_intents", "customers", "charges"])
def test_the_search_api_is_refused_by_name_not_taken_for_an_id(
    client: Client, call: Callable[..., Any], resource: str
) -> None:
    service = getattr(client.v1, resource)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        service.search(params={"query": "metadata['order_id']:'42'"})
    error = caught.value
    assert error.http_status == 400
    assert error.code == "parameter_unsupported"
    assert error.user_message == (
        f"The bookpay emulator does not support the Search API (GET /v1/{resource}/search) yet."
        f" Stripe accepts it: list with the list's filters here (GET /v1/{resource}), or run"
        " against Stripe test mode."
    )
    bare = call("GET", f"/v1/{resource}/search")  # without a query: refused the same way
    assert bare.status == 400
    assert bare.json()["error"]["code"] == "parameter_unsupported"
    assert bare.json()["error"]["type"] == "invalid_request_error"
