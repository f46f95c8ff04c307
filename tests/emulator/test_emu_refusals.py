"""A request Stripe refuses leaves nothing behind, even when the refusal comes from what it asked
to be shown (`expand[]`) rather than from what it asked to be done.

Stripe checks a request before it acts on it: a create with an `expand[]` path it would not take
is a 400 and creates nothing, sends no event and keeps no idempotent result (Stripe saves none
for a request that failed validation), so the same key may be used again with good parameters.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest.mock import ANY

import pytest
from conftest import raw

from bookpay.emulator import EmulatorOptions, start_emulator

INTENT = {"amount": "2300", "currency": "usd"}


@pytest.fixture
def emu() -> Iterator[Any]:
    with start_emulator(options=EmulatorOptions()) as running:
        yield running


def listed(url: str, path: str) -> list[dict[str, Any]]:
    answer = raw(url, "GET", path, {"limit": "100"})
    assert answer.status == 200, answer.body
    return answer.json()["data"]


def refused(url: str, path: str, params: dict[str, str], key: str | None = None) -> dict:
    headers = {"Idempotency-Key": key} if key else {}
    answer = raw(url, "POST", path, params, headers)
    assert answer.status == 400, answer.body
    assert "idempotent-replayed" not in answer.headers
    return answer.json()["error"]


@pytest.mark.parametrize(
    ("path", "params", "expand"),
    [
        ("/v1/payment_intents", INTENT, "nope"),
        ("/v1/payment_intents", {**INTENT, "customer": ""}, "customer.nope"),
        ("/v1/customers", {"email": "a@example.com"}, "default_source.nope"),
    ],
)  # fmt: skip
def test_a_create_refused_for_its_expand_creates_nothing(emu, path, params, expand) -> None:
    error = refused(emu.url, path, {**params, "expand[]": expand})
    assert error["param"] in ("expand", f"expand[]={expand}")
    # Through a kind it does not hold (a card), the emulator cannot tell: unsupported.
    assert "cannot be expanded" in error["message"] or error["code"] == "parameter_unsupported"
    assert listed(emu.url, path) == []
    assert listed(emu.url, "/v1/events") == []


def test_a_refused_confirm_changes_nothing(emu) -> None:
    intent = raw(emu.url, "POST", "/v1/payment_intents", INTENT).json()
    confirm = {"payment_method": "pm_card_visa", "return_url": "https://example.com/back"}
    refused(emu.url, f"/v1/payment_intents/{intent['id']}/confirm", {**confirm, "expand[]": "x"})
    after = raw(emu.url, "GET", f"/v1/payment_intents/{intent['id']}").json()
    assert (after["status"], after["latest_charge"]) == ("requires_payment_method", None)
    assert listed(emu.url, "/v1/charges") == []
    assert [e["type"] for e in listed(emu.url, "/v1/events")] == ["payment_intent.created"]


def test_no_idempotent_result_is_kept_for_a_refused_create(emu) -> None:
    refused(emu.url, "/v1/payment_intents", {**INTENT, "expand[]": "nope"}, key="order-7")
    # Asked again: refused again (not replayed), and nothing was made either time.
    refused(emu.url, "/v1/payment_intents", {**INTENT, "expand[]": "nope"}, key="order-7")
    assert listed(emu.url, "/v1/payment_intents") == []
    # The key is free for the request with good parameters (not an idempotency_error).
    made = raw(emu.url, "POST", "/v1/payment_intents", INTENT, {"Idempotency-Key": "order-7"})
    assert made.status == 200, made.body
    again = raw(emu.url, "POST", "/v1/payment_intents", INTENT, {"Idempotency-Key": "order-7"})
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == made.json()["id"]
    assert [pi["id"] for pi in listed(emu.url, "/v1/payment_intents")] == [made.json()["id"]]


def test_a_create_whose_confirmation_is_refused_creates_nothing(emu) -> None:
    """Create with confirm=true and no return_url (Stripe wants one for automatic payment
    methods) is a 400: no PaymentIntent, no payment_intent.created, as for any refused create;
    a decline (402) is another matter: that intent exists and says why it failed."""
    create = {**INTENT, "confirm": "true", "payment_method": "pm_card_visa"}
    error = refused(emu.url, "/v1/payment_intents", create, key="order-8")
    assert error["param"] == "return_url"
    assert listed(emu.url, "/v1/payment_intents") == []
    assert listed(emu.url, "/v1/events") == []


def test_a_confirm_refused_for_want_of_a_payment_method_keeps_nothing(emu) -> None:
    intent = raw(emu.url, "POST", "/v1/payment_intents", INTENT).json()
    path = f"/v1/payment_intents/{intent['id']}/confirm"
    asked = {"return_url": "https://example.com/back", "receipt_email": "a@example.com"}
    error = refused(emu.url, path, asked)
    assert error["code"] == "payment_intent_unexpected_state"
    assert error["payment_intent"]["receipt_email"] is None
    after = raw(emu.url, "GET", f"/v1/payment_intents/{intent['id']}").json()
    assert after == intent
    # Nor was its return_url kept: confirming without one is refused as before.
    error = refused(emu.url, path, {"payment_method": "pm_card_visa"})
    assert error["param"] == "return_url"


PI_ONE_OF = {"allowed_payment_method_types[]": "card", "automatic_payment_methods[enabled]": "true"}
HOOK = {"url": "https://shop.example/hook", "enabled_events[]": "*"}


@pytest.mark.parametrize(
    ("path", "bad", "good"),
    [
        ("/v1/payment_intents", {**INTENT, "amount": "0"}, INTENT),  # a range
        ("/v1/payment_intents", {**INTENT, "amount": "12x"}, INTENT),  # an integer's format
        ("/v1/payment_intents", {**INTENT, "currency": "xyz"}, INTENT),  # one of the currencies
        ("/v1/payment_intents", {**INTENT, "capture_method": "later"}, INTENT),  # an enum
        ("/v1/payment_intents", {**INTENT, "confirm": "yes"}, INTENT),  # a boolean
        ("/v1/payment_intents", {**INTENT, "receipt_email": "a@b"}, INTENT),  # email_invalid
        ("/v1/payment_intents", {**INTENT, "metadata[" + "k" * 41 + "]": "v"}, INTENT),
        ("/v1/payment_intents", {**INTENT, "description": "d" * 5001}, INTENT),  # a length
        ("/v1/payment_intents", {**INTENT, **PI_ONE_OF}, INTENT),  # a combination
        ("/v1/payment_intents", {**INTENT, "payment_method_types[]": "cheque"}, INTENT),
        ("/v1/payment_intents", {**INTENT, "return_url": "https://x"}, INTENT),  # with confirm
        ("/v1/customers", {"email": "nobody"}, {"email": "a@example.com"}),
        ("/v1/customers", {"address": "here"}, {"email": "a@example.com"}),  # a hash
        ("/v1/webhook_endpoints", {**HOOK, "url": "not a url"}, HOOK),  # url_invalid
        ("/v1/webhook_endpoints", {**HOOK, "enabled_events[]": "nope"}, HOOK),
    ],
)  # fmt: skip
def test_a_request_refused_for_its_parameters_keeps_nothing_under_its_key(
    emu, path, bad, good
) -> None:
    """Stripe saves no idempotent result for a request whose parameters fail validation (their
    type, format, length, range, allowed values or combination): asked again it is refused
    again, not replayed, and the corrected request under the same key executes."""
    key = "order-corrected"
    first = refused(emu.url, path, bad, key=key)
    assert refused(emu.url, path, bad, key=key) == {**first, "request_log_url": ANY}
    made = raw(emu.url, "POST", path, good, {"Idempotency-Key": key})
    assert made.status == 200, made.body
    assert "idempotent-replayed" not in made.headers
    assert [o["id"] for o in listed(emu.url, path)] == [made.json()["id"]]


def test_an_amount_under_1_is_refused_before_the_state_is_looked_at(emu) -> None:
    """Stripe validates parameters before the endpoint executes: a capture or a refund of 0
    is refused for its amount (and keeps nothing under its key) whatever the intent's state."""
    paid = {**INTENT, "confirm": "true", "payment_method": "pm_card_visa",
            "return_url": "https://shop.example/r"}  # fmt: skip
    intent = raw(emu.url, "POST", "/v1/payment_intents", paid).json()
    assert intent["status"] == "succeeded"
    capture = f"/v1/payment_intents/{intent['id']}/capture"
    refund = {"payment_intent": intent["id"], "amount": "0"}
    for path, params in [(capture, {"amount_to_capture": "0"}), ("/v1/refunds", refund)]:
        error = refused(emu.url, path, params, key=f"zero-{path}")
        assert error["message"] == "This value must be greater than or equal to 1.", error
        assert refused(emu.url, path, params, key=f"zero-{path}")["message"] == error["message"]
    fully = raw(emu.url, "POST", "/v1/refunds", {"payment_intent": intent["id"]})
    assert fully.status == 200, fully.body
    error = refused(emu.url, "/v1/refunds", {"payment_intent": intent["id"], "amount": "-1"})
    assert error["message"] == "This value must be greater than or equal to 1."
