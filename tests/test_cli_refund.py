"""`bookpay refund create --request-id`: one request id is one refund, through the CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bookpay.catalog import Catalog
from bookpay.cli import app
from bookpay.config import Settings
from bookpay.payments import Gateway

runner = CliRunner()


@pytest.fixture
def bookpay(cli_env):
    def invoke(*args):
        return runner.invoke(app, list(args), env=cli_env)

    return invoke


@pytest.fixture
def paid(bookpay) -> str:
    created = bookpay("intent", "create", "--item", "1", "--json")
    intent = json.loads(created.stdout)
    confirmed = bookpay("intent", "confirm", intent["id"], "--card", "pm_card_visa")
    assert confirmed.exit_code == 0, confirmed.output
    return intent["id"]


def refunds_of(bookpay, intent_id: str) -> list[dict]:
    shown = json.loads(bookpay("intent", "show", intent_id, "--json").stdout)
    return shown["refunds"]


def test_an_exact_repeat_returns_the_same_refund(bookpay, paid):
    args = ("refund", "create", paid, "--amount", "500", "--request-id", "T-1", "--json")
    first = bookpay(*args)
    assert first.exit_code == 0, first.output
    again = bookpay(*args)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["id"] == json.loads(first.stdout)["id"]
    assert [r["amount"] for r in refunds_of(bookpay, paid)] == [500]


@pytest.mark.parametrize(
    "other",
    [
        ("--amount", "600"),
        ("--amount", "500", "--reason", "duplicate"),
        (),  # no --amount: the rest, which is not the 500 first asked for
    ],
    ids=["other-amount", "other-reason", "no-amount"],
)
def test_a_repeat_with_other_parameters_is_refused_naming_the_option(bookpay, paid, other):
    first = bookpay("refund", "create", paid, "--amount", "500", "--request-id", "T-2")
    assert first.exit_code == 0, first.output
    result = bookpay("refund", "create", paid, *other, "--request-id", "T-2")
    assert result.exit_code == 3
    assert result.stderr.startswith("Error: --request-id 'T-2' was already used (refund re_")
    assert "one request id is one refund" in result.stderr
    assert "bookpay-refund" not in result.stderr  # never the internal idempotency key
    assert [r["amount"] for r in refunds_of(bookpay, paid)] == [500]


def test_a_request_id_stripe_refused_says_no_refund_was_made_under_it(bookpay, paid):
    """A refused first request (more than the charge) is kept under the id's key: the next one
    with another amount was told the id "was already used", as if it had made a refund."""
    refused = bookpay("refund", "create", paid, "--amount", "99999", "--request-id", "T-9")
    assert refused.exit_code == 3
    assert "greater than charge amount" in refused.stderr
    result = bookpay("refund", "create", paid, "--amount", "500", "--request-id", "T-9")
    assert result.exit_code == 3
    assert result.stderr == (
        "Error: No refund was made under --request-id 'T-9': Stripe refused the request first"
        " made with it, and keeps that refusal for 24 hours. Repeat it exactly to see why, or"
        " use a new --request-id.\n"
    )
    assert refunds_of(bookpay, paid) == []
    fresh = bookpay("refund", "create", paid, "--amount", "500", "--request-id", "T-10")
    assert fresh.exit_code == 0, fresh.output


def test_a_request_id_for_the_rest_repeats_as_the_same_refund(bookpay, paid):
    first = bookpay("refund", "create", paid, "--request-id", "T-3", "--json")
    again = bookpay("refund", "create", paid, "--request-id", "T-3", "--json")
    assert (first.exit_code, again.exit_code) == (0, 0)
    assert json.loads(first.stdout)["id"] == json.loads(again.stdout)["id"]
    assert json.loads(first.stdout)["amount"] == 2300


def test_request_ids_are_per_payment_intent_and_distinct_ids_refund_separately(bookpay, paid):
    one = bookpay("refund", "create", paid, "--amount", "100", "--request-id", "A", "--json")
    two = bookpay("refund", "create", paid, "--amount", "100", "--request-id", "B", "--json")
    assert (one.exit_code, two.exit_code) == (0, 0)
    assert json.loads(one.stdout)["id"] != json.loads(two.stdout)["id"]


def test_a_racing_repeat_is_refused_by_stripes_idempotency_check(settings, monkeypatch):
    """Two repeats at once both find no earlier refund: the shared key makes Stripe refuse one."""
    from bookpay.payments import RefundRequestReused

    gateway = Gateway(Settings(data_dir=settings.data_dir, emulator_url=settings.emulator_url))
    intent = gateway.create_intent(Catalog.default().get("1"))
    gateway.confirm_intent(intent["id"], payment_method="pm_card_visa")
    first = gateway.create_refund(intent["id"], amount=500, request_id="race")
    found = gateway.find_refund_request
    monkeypatch.setattr(gateway, "find_refund_request", lambda *args: None)
    with pytest.raises(RefundRequestReused) as caught:
        gateway.create_refund(intent["id"], amount=700, request_id="race")
    assert caught.value.exit_code == 3
    assert "bookpay-refund" not in caught.value.message
    monkeypatch.setattr(gateway, "find_refund_request", found)
    assert [r["id"] for r in gateway.list_refunds(intent["id"])] == [first["id"]]


@pytest.mark.parametrize("request_id", ["", "   ", "T\x1b[2J", "x" * 201])
def test_a_blank_or_unusable_request_id_is_a_usage_error_and_refunds_nothing(
    bookpay, paid, request_id
):
    """`--request-id "$TICKET"` with TICKET unset must not mean a new refund on every run."""
    result = bookpay("refund", "create", paid, "--amount", "100", "--request-id", request_id)
    assert result.exit_code == 2, result.output
    assert "expected a request id of 1 to 200 printable characters" in result.output
    assert refunds_of(bookpay, paid) == []


@pytest.mark.parametrize("amount", ["1_000", " 100", "+100", "٣", "-5", "0", "9" * 5000])
def test_an_amount_not_plainly_written_is_a_usage_error_and_refunds_nothing(bookpay, paid, amount):
    result = bookpay("refund", "create", paid, "--amount", amount)
    assert result.exit_code == 2, result.output
    assert (
        "expected a whole number in the currency's minor unit (500 for $5.00 or ¥500) from 1"
        in result.output
    )
    assert len(result.output) < 1000  # a 5,000-digit amount is not echoed whole
    assert refunds_of(bookpay, paid) == []


def test_the_gateway_refuses_a_blank_request_id_too(settings):
    from bookpay.errors import UsageError

    gateway = Gateway(Settings(data_dir=settings.data_dir, emulator_url=settings.emulator_url))
    intent = gateway.create_intent(Catalog.default().get("1"))
    gateway.confirm_intent(intent["id"], payment_method="pm_card_visa")
    with pytest.raises(UsageError, match="request id is blank"):
        gateway.create_refund(intent["id"], amount=100, request_id=" ")
    assert gateway.list_refunds(intent["id"]) == []


def test_a_reason_stripe_does_not_take_is_a_usage_error_and_refunds_nothing(bookpay, paid):
    result = bookpay("refund", "create", paid, "--reason", "changed_mind")
    assert result.exit_code == 2, result.output
    assert "'changed_mind' is not one of duplicate, fraudulent," in result.output
    assert refunds_of(bookpay, paid) == []
    refunded = bookpay("refund", "create", paid, "--reason", "requested_by_customer", "--json")
    assert refunded.exit_code == 0, refunded.output
    assert json.loads(refunded.stdout)["reason"] == "requested_by_customer"


def test_the_reasons_offered_are_stripes_own():
    """Oracle: the values the pinned stripe-python declares for a refund's reason and a
    PaymentIntent's cancellation_reason, and no others."""
    import re

    import stripe.params

    from bookpay.commands.intent import CancelReason
    from bookpay.commands.refund import RefundReason

    def declared(params, name: str) -> set[str]:
        return set(re.findall(r"'([a-z_]+)'", str(params.__annotations__[name])))

    assert {r.value for r in RefundReason} == declared(stripe.params.RefundCreateParams, "reason")
    cancel = declared(stripe.params.PaymentIntentCancelParams, "cancellation_reason")
    assert {r.value for r in CancelReason} == cancel


KWD_CATALOG = {
    "books": [{"id": "k1", "title": "Kuwait", "author": "A", "amount": 5120, "currency": "kwd"}],
    "shipping_rates": [
        {"id": "post", "display_name": "Post", "amount": 1250, "currency": "kwd",
         "countries": ["*"], "min_days": 2, "max_days": 5},
    ],
}  # fmt: skip


@pytest.fixture
def kwd_bookpay(cli_env, tmp_path):
    """The CLI of a shop selling in KWD, a three-decimal currency."""
    path = tmp_path / "kwd.json"
    path.write_text(json.dumps(KWD_CATALOG))

    def invoke(*args):
        return runner.invoke(app, ["--catalog", str(path), *args], env=cli_env)

    return invoke


def test_a_kwd_amount_stripe_cannot_take_is_refused_before_it_is_sent(kwd_bookpay):
    """Stripe takes KWD amounts in tens of the fils only: --amount 1 (0.001 KWD) is refused in
    one line, nothing refunded; --amount 10 is 0.010 KWD."""
    intent = json.loads(kwd_bookpay("intent", "create", "--item", "k1", "--json").stdout)
    assert kwd_bookpay("intent", "confirm", intent["id"], "--card", "pm_card_visa").exit_code == 0
    refused = kwd_bookpay("refund", "create", intent["id"], "--amount", "1")
    assert refused.exit_code == 2
    assert refused.stderr == (
        "Error: --amount 1 must end in 0: KWD is a three-decimal currency, which Stripe charges"
        " in tens of its minor unit (5120 for 5.120 KWD).\n"
    )
    assert refunds_of(kwd_bookpay, intent["id"]) == []
    done = kwd_bookpay("refund", "create", intent["id"], "--amount", "10")
    assert done.exit_code == 0, done.output
    assert "Amount:         0.010 KWD\n" in done.stdout


UGX_CATALOG = {
    "books": [{"id": "u1", "title": "Uganda", "author": "A", "amount": 5000000, "currency": "ugx"}],
    "shipping_rates": [
        {"id": "post", "display_name": "Post", "amount": 1000000, "currency": "ugx",
         "countries": ["*"], "min_days": 2, "max_days": 5},
    ],
}  # fmt: skip


def test_a_ugx_refund_of_a_fraction_of_a_shilling_is_refused_before_it_is_sent(cli_env, tmp_path):
    """Stripe writes UGX with two decimals but charges whole shillings (its "Special cases"):
    --amount 150 (1.50 UGX) is refused in one line, nothing refunded; --amount 100 is 1.00 UGX."""
    path = tmp_path / "ugx.json"
    path.write_text(json.dumps(UGX_CATALOG))

    def ugx_bookpay(*args):
        return runner.invoke(app, ["--catalog", str(path), *args], env=cli_env)

    intent = json.loads(ugx_bookpay("intent", "create", "--item", "u1", "--json").stdout)
    assert intent["amount"] == 5000000
    assert ugx_bookpay("intent", "confirm", intent["id"], "--card", "pm_card_visa").exit_code == 0
    refused = ugx_bookpay("refund", "create", intent["id"], "--amount", "150")
    assert refused.exit_code == 2
    assert refused.stderr == (
        "Error: --amount 150 must end in 00: Stripe charges UGX in whole units, written with two"
        " decimals (500 for 5.00 UGX).\n"
    )
    assert refunds_of(ugx_bookpay, intent["id"]) == []
    done = ugx_bookpay("refund", "create", intent["id"], "--amount", "100")
    assert done.exit_code == 0, done.output
    assert "Amount:         1 UGX\n" in done.stdout  # shown in whole shillings
