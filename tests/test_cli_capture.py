"""`bookpay intent confirm` sends a return_url; `bookpay intent capture` captures, through the
emulator (which refuses a server-side confirmation without a return_url, as Stripe does)."""

import json
import re
import time

import pytest
import stripe
from typer.testing import CliRunner

from bookpay.cli import app
from bookpay.config import Settings
from bookpay.errors import PaymentError
from bookpay.payments import Gateway

runner = CliRunner()


@pytest.fixture
def bookpay(cli_env):
    def invoke(*args, **env):
        return runner.invoke(app, list(args), env={**cli_env, **env})

    return invoke


def created(bookpay) -> dict:
    result = bookpay("intent", "create", "--item", "1", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def authorized(emulator, bookpay) -> dict:
    """An intent created for manual capture and confirmed through the CLI: requires_capture."""
    client = stripe.StripeClient("sk_test_x", base_addresses={"api": emulator.url})
    pi = client.v1.payment_intents.create(
        params={"amount": 2300, "currency": "usd", "capture_method": "manual"}
    )
    result = bookpay("intent", "confirm", pi.id, "--card", "4242424242424242", "--json")
    assert result.exit_code == 0, result.output
    intent = json.loads(result.stdout)
    assert (intent["status"], intent["amount_capturable"]) == ("requires_capture", 2300)
    return intent


def test_confirm_sends_the_local_shops_success_page(bookpay):
    intent = created(bookpay)
    result = bookpay("intent", "confirm", intent["id"], "--card", "pm_card_authenticationRequired",
                     "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    action = json.loads(result.stdout)["next_action"]
    assert action["redirect_to_url"]["return_url"] == "http://127.0.0.1:4242/success"


def test_confirm_sends_the_public_success_page(bookpay):
    intent = created(bookpay)
    result = bookpay(
        "intent", "confirm", intent["id"], "--card", "pm_card_authenticationRequired", "--json",
        BOOKPAY_BASE_URL="https://books.example/",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    action = json.loads(result.stdout)["next_action"]
    assert action["redirect_to_url"]["return_url"] == "https://books.example/success"


def test_confirm_succeeds_where_stripe_requires_a_return_url(bookpay):
    result = bookpay("intent", "confirm", created(bookpay)["id"], "--card", "4242424242424242")
    assert result.exit_code == 0, result.output
    assert "Status:         succeeded" in result.stdout


def test_gateway_without_return_url_would_be_refused(settings):
    """What `confirm` fixed: the same confirmation without a return_url is Stripe's 400."""
    gateway = Gateway(settings)
    client = stripe.StripeClient("sk_test_x", base_addresses={"api": settings.emulator_url})
    pi = client.v1.payment_intents.create(params={"amount": 2300, "currency": "usd"})
    with pytest.raises(PaymentError, match="A `return_url` must be specified"):
        gateway._request("post", f"/v1/payment_intents/{pi.id}/confirm",
                         {"payment_method": "pm_card_visa"},
                         idempotency_key="no-return-url")  # fmt: skip
    assert gateway.confirm_intent(pi.id, payment_method="pm_card_visa")["status"] == "succeeded"


def test_capture_in_part_releases_the_rest(emulator, bookpay):
    intent = authorized(emulator, bookpay)
    result = bookpay("intent", "capture", intent["id"], "--amount", "1500")
    assert result.exit_code == 0, result.output
    assert "Status:         succeeded" in result.stdout
    assert "Captured:       $15.00" in result.stdout
    shown = json.loads(bookpay("intent", "show", intent["id"], "--json").stdout)
    charge = shown["payment_intent"]["latest_charge"]
    assert (charge["amount_captured"], charge["amount_refunded"]) == (1500, 800)
    again = bookpay("intent", "capture", intent["id"])
    assert again.exit_code == 3
    assert "could not be captured because it has a status of succeeded" in again.stderr
    # The released 800 was never received: nothing was refunded of what was.
    assert shown["totals"] | {"currency": None} == {
        "amount": 2300, "received": 1500, "refunded": 0, "lost_to_disputes": 0, "net": 1500,
        "currency": None,
    }  # fmt: skip


def test_a_canceled_hold_received_and_refunded_nothing(emulator, bookpay):
    intent = authorized(emulator, bookpay)
    result = bookpay("intent", "cancel", intent["id"])
    assert result.exit_code == 0, result.output
    shown = json.loads(bookpay("intent", "show", intent["id"], "--json").stdout)
    charge = shown["payment_intent"]["latest_charge"]
    released = (charge["captured"], charge["refunded"], charge["amount_refunded"])
    assert released == (False, True, 2300)  # as Stripe shows a released hold
    totals = shown["totals"]
    assert (totals["received"], totals["refunded"], totals["net"]) == (0, 0, 0)


def test_show_labels_a_released_hold_released_not_refund(emulator, bookpay):
    """A partial capture's rest, and a canceled authorization, were listed as "Refund:
    re_...: $8.00 (succeeded)" though never taken, and not counted as refunded."""
    intent = authorized(emulator, bookpay)
    assert bookpay("intent", "capture", intent["id"], "--amount", "1500").exit_code == 0
    assert bookpay("refund", "create", intent["id"], "--amount", "500").exit_code == 0
    out = bookpay("intent", "show", intent["id"]).stdout
    assert re.search(r"^Refund: +re_\w+: \$5\.00 \(succeeded\)$", out, re.M), out
    assert re.search(r"^Released: +re_\w+: \$8\.00 \(the rest of the hold, not a refund\)$",
                     out, re.M), out  # fmt: skip
    assert "$8.00 (succeeded)" not in out
    shown = json.loads(bookpay("intent", "show", intent["id"], "--json").stdout)
    assert sorted(r["amount"] for r in shown["refunds"]) == [500, 800]  # as Stripe sends them

    canceled = authorized(emulator, bookpay)
    assert bookpay("intent", "cancel", canceled["id"]).exit_code == 0
    out = bookpay("intent", "show", canceled["id"]).stdout
    assert re.search(r"^Released: +re_\w+: \$23\.00 \(the whole hold, not a refund\)$",
                     out, re.M), out  # fmt: skip
    assert "Refund:" not in out


def test_a_release_stripe_lists_no_refund_for_is_shown_from_the_charge():
    from bookpay.commands.intent import refund_fields

    rest = {"id": "ch_1", "amount": 2300, "amount_captured": 1500, "captured": True,
            "amount_refunded": 1300}  # fmt: skip
    refund = {"id": "re_1", "charge": "ch_1", "amount": 500, "currency": "usd",
              "status": "succeeded", "created": 2}  # fmt: skip
    assert refund_fields([refund], rest, "usd") == [
        ("Refund", "re_1: $5.00 (succeeded)"),
        ("Released", "$8.00 (the rest of the hold, not a refund)"),
    ]
    held = {"id": "ch_2", "amount": 2300, "amount_captured": 0, "captured": False,
            "amount_refunded": 0}  # fmt: skip
    assert refund_fields([], held, "usd") == []  # still held: nothing released yet
    expired = {**held, "amount_refunded": 2300, "refunded": True}
    assert refund_fields([], expired, "usd") == [
        ("Released", "$23.00 (the whole hold, not a refund)")
    ]


def test_capture_in_full(emulator, bookpay):
    intent = authorized(emulator, bookpay)
    result = bookpay("intent", "capture", intent["id"], "--json")
    assert result.exit_code == 0, result.output
    captured = json.loads(result.stdout)
    assert (captured["status"], captured["amount_received"]) == ("succeeded", 2300)
    assert captured["amount_capturable"] == 0


def test_capture_refuses_what_is_not_authorized(bookpay):
    result = bookpay("intent", "capture", created(bookpay)["id"])
    assert result.exit_code == 3
    assert "status of requires_payment_method" in result.stderr
    assert bookpay("intent", "capture", "pi_missing").exit_code == 2
    assert bookpay("intent", "capture", "pi_x", "--amount", "0").exit_code == 2


@pytest.mark.parametrize("amount", ["1_000", " 100", "+100", "١٠٠", "100.0", "9" * 19])
def test_an_amount_not_plainly_written_captures_nothing(emulator, bookpay, amount):
    """Typer reads `1_000` as 1000 cents: $10.00 taken on a typo, released for good."""
    intent = authorized(emulator, bookpay)
    result = bookpay("intent", "capture", intent["id"], "--amount", amount)
    assert result.exit_code == 2, result.output
    assert (
        "expected a whole number in the currency's minor unit (500 for $5.00 or ¥500) from 1"
        in result.output
    )
    shown = json.loads(bookpay("intent", "show", intent["id"], "--json").stdout)
    assert shown["payment_intent"]["status"] == "requires_capture"
    assert bookpay("intent", "capture", intent["id"], "--amount", "0100").exit_code == 0


def test_capture_request_captures_once(emulator, bookpay, settings: Settings):
    intent = authorized(emulator, bookpay)
    gateway = Gateway(settings)
    first = gateway.capture_intent(intent["id"], amount=1000, request_id="shipment-1")
    again = gateway.capture_intent(intent["id"], amount=1000, request_id="shipment-1")
    assert first == again and first["amount_received"] == 1000


def test_charge_with_refunds_and_disputes(emulator, bookpay, settings: Settings):
    intent = created(bookpay)
    result = bookpay("intent", "confirm", intent["id"], "--card", "4000000000000259", "--json")
    assert result.exit_code == 0, result.output
    gateway = Gateway(settings)
    paid = gateway.retrieve_intent(intent["id"], expand=())
    gateway.create_refund(intent["id"], amount=100)
    charge = gateway.retrieve_charge(paid["latest_charge"])
    assert [r["amount"] for r in charge["refunds"]["data"]] == [100]
    deadline = time.monotonic() + 10
    while not (found := gateway.list_disputes(intent["id"])) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert found, "the dispute card's dispute never opened"
    dispute = gateway.retrieve_dispute(found[0]["id"])
    assert (dispute["charge"], dispute["reason"]) == (paid["latest_charge"], "fraudulent")


def test_a_lost_dispute_is_taken_from_the_net(emulator, bookpay, settings: Settings):
    """What the shop keeps: a lost dispute's amount is the customer's for good (an open one may
    yet come back, and is only shown)."""
    intent = created(bookpay)
    result = bookpay("intent", "confirm", intent["id"], "--card", "4000000000000259")
    assert result.exit_code == 0, result.output
    gateway = Gateway(settings)
    deadline = time.monotonic() + 10
    while not (found := gateway.list_disputes(intent["id"])) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert found, "the dispute card's dispute never opened"
    open_totals = json.loads(bookpay("intent", "show", intent["id"], "--json").stdout)["totals"]
    assert (open_totals["lost_to_disputes"], open_totals["net"]) == (0, 2300)
    client = stripe.StripeClient("sk_test_x", base_addresses={"api": emulator.url})
    assert client.v1.disputes.close(found[0]["id"]).status == "lost"
    shown = bookpay("intent", "show", intent["id"])
    assert "Lost to disputes:  $23.00" in shown.stdout.splitlines()
    assert "Net:               $0.00" in shown.stdout.splitlines()
    totals = json.loads(bookpay("intent", "show", intent["id"], "--json").stdout)["totals"]
    assert (totals["received"], totals["lost_to_disputes"], totals["net"]) == (2300, 2300, 0)


def test_a_kwd_capture_stripe_cannot_take_is_refused_before_it_is_sent(emulator, bookpay):
    """KWD is charged in tens of the fils: capturing 2.555 KWD of 5.120 is refused in one line
    (exit 2), the authorization untouched; 2.560 KWD is captured."""
    client = stripe.StripeClient("sk_test_x", base_addresses={"api": emulator.url})
    pi = client.v1.payment_intents.create(
        params={"amount": 5120, "currency": "kwd", "capture_method": "manual"}
    )
    assert bookpay("intent", "confirm", pi.id, "--card", "pm_card_visa").exit_code == 0
    refused = bookpay("intent", "capture", pi.id, "--amount", "2555")
    assert refused.exit_code == 2
    assert refused.stderr == (
        "Error: --amount 2555 must end in 0: KWD is a three-decimal currency, which Stripe"
        " charges in tens of its minor unit (5120 for 5.120 KWD).\n"
    )
    assert client.v1.payment_intents.retrieve(pi.id).status == "requires_capture"
    captured = bookpay("intent", "capture", pi.id, "--amount", "2560", "--json")
    assert captured.exit_code == 0, captured.output
    assert json.loads(captured.stdout)["amount_received"] == 2560


def test_an_isk_capture_stripe_cannot_take_is_refused_before_it_is_sent(emulator, bookpay):
    """ISK is charged in whole krónur, written with two decimals: capturing 250.50 ISK of
    500.00 is refused in one line (exit 2), the authorization untouched; 250.00 is captured."""
    client = stripe.StripeClient("sk_test_x", base_addresses={"api": emulator.url})
    pi = client.v1.payment_intents.create(
        params={"amount": 50000, "currency": "isk", "capture_method": "manual"}
    )
    assert bookpay("intent", "confirm", pi.id, "--card", "pm_card_visa").exit_code == 0
    refused = bookpay("intent", "capture", pi.id, "--amount", "25050")
    assert refused.exit_code == 2
    assert refused.stderr == (
        "Error: --amount 25050 must end in 00: Stripe charges ISK in whole units, written with"
        " two decimals (500 for 5.00 ISK).\n"
    )
    assert client.v1.payment_intents.retrieve(pi.id).status == "requires_capture"
    captured = bookpay("intent", "capture", pi.id, "--amount", "25000", "--json")
    assert captured.exit_code == 0, captured.output
    assert json.loads(captured.stdout)["amount_received"] == 25000
