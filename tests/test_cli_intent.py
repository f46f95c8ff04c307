"""`bookpay intent` and `bookpay refund` against a running emulator, through CliRunner."""

import json
import re

import pytest
from typer.testing import CliRunner

from bookpay.cli import app

runner = CliRunner()


@pytest.fixture
def bookpay(cli_env):
    def invoke(*args):
        return runner.invoke(app, list(args), env=cli_env)

    return invoke


def create(bookpay, item="1"):
    result = bookpay("intent", "create", "--item", item, "--email", "reader@example.com", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_create_human_output(bookpay):
    result = bookpay("intent", "create", "--item", "2")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("PaymentIntent:  pi_")
    assert lines[1:] == ["Status:         requires_payment_method", "Amount:         $25.00"]
    assert "bookpay intent confirm pi_" in result.stderr


def test_create_json_carries_catalog_price_and_metadata(bookpay):
    intent = create(bookpay, "3")
    assert (intent["amount"], intent["currency"]) == (2800, "usd")
    assert intent["metadata"]["integration"] == "bookpay"
    assert intent["metadata"]["item_id"] == "3"


def test_create_unknown_item_exits_2(bookpay):
    result = bookpay("intent", "create", "--item", "99")
    assert result.exit_code == 2
    assert "bookpay catalog list" in result.stderr


def test_confirm_declined_exits_3_with_stripes_reason(bookpay):
    intent = create(bookpay)
    result = bookpay("intent", "confirm", intent["id"], "--card", "4000000000009995")
    assert result.exit_code == 3
    assert (
        result.stderr
        == "Error: Your card has insufficient funds. (card_declined/insufficient_funds)\n"
    )
    shown = json.loads(bookpay("intent", "show", intent["id"], "--json").stdout)
    error = shown["payment_intent"]["last_payment_error"]
    assert (error["code"], error["decline_code"]) == ("card_declined", "insufficient_funds")


def test_confirm_then_show_then_refund(bookpay):
    intent = create(bookpay)
    confirmed = bookpay("intent", "confirm", intent["id"], "--card", "4242 4242 4242 4242")
    assert confirmed.exit_code == 0
    assert "Status:         succeeded" in confirmed.stdout

    refund = bookpay("refund", "create", intent["id"], "--amount", "500", "--json")
    assert refund.exit_code == 0
    assert json.loads(refund.stdout)["amount"] == 500

    shown = bookpay("intent", "show", intent["id"])
    assert shown.exit_code == 0
    out = shown.stdout
    assert f"PaymentIntent:   {intent['id']}" in out
    assert "Status:          succeeded" in out
    assert "Amount:          $23.00" in out
    assert "Refunded:        $5.00" in out
    assert "Net:             $18.00" in out
    assert re.search(r"^Order:           ord_[0-9a-f]{16}$", out, re.M)
    lines = out.splitlines()
    table = lines.index("Lines")
    assert lines[table + 1].split() == ["Item", "Title", "Qty", "Unit", "Amount"]
    assert lines[table + 2].split() == [
        "1",
        *"The Art of Doing Science and Engineering".split(),
        "1",
        "$23.00",
        "$23.00",
    ]
    assert "Email:           reader@example.com" in out
    assert "Latest charge:   ch_" in out and "(succeeded, visa ending 4242)" in out
    assert "Refund:          re_" in out and ": $5.00 (succeeded)" in out


def test_show_decline_code_in_human_view(bookpay):
    intent = create(bookpay)
    bookpay("intent", "confirm", intent["id"], "--card", "pm_card_visa_chargeDeclinedLostCard")
    out = bookpay("intent", "show", intent["id"]).stdout
    assert "Last payment error:  Your card was declined. (card_declined/lost_card)" in out


def test_three_d_secure_shows_where_to_authenticate(bookpay):
    intent = create(bookpay)
    result = bookpay(
        "intent",
        "confirm",
        intent["id"],
        "--card",
        "4000002760003184",
        "--return-url",
        "http://127.0.0.1:4242/success",
    )
    assert result.exit_code == 0
    assert "Status:           requires_action" in result.stdout
    assert "Authenticate at:  http" in result.stdout


def test_list_and_status_filter(bookpay):
    paid = create(bookpay)
    bookpay("intent", "confirm", paid["id"], "--card", "pm_card_visa")
    open_one = create(bookpay)
    listed = json.loads(bookpay("intent", "list", "--limit", "100", "--json").stdout)
    assert {paid["id"], open_one["id"]} <= {i["id"] for i in listed}
    succeeded = json.loads(bookpay("intent", "list", "--status", "succeeded", "--json").stdout)
    assert paid["id"] in {i["id"] for i in succeeded}
    assert {i["status"] for i in succeeded} == {"succeeded"}
    table = bookpay("intent", "list", "--limit", "2")
    assert table.stdout.splitlines()[0].split() == [
        "PaymentIntent",
        "Status",
        "Amount",
        "Book",
        "Created",
    ]
    assert len(table.stdout.splitlines()) == 3


def test_cancel_then_refund_is_refused_with_exit_3(bookpay):
    intent = create(bookpay)
    canceled = bookpay("intent", "cancel", intent["id"], "--reason", "abandoned", "--json")
    assert canceled.exit_code == 0
    assert json.loads(canceled.stdout)["status"] == "canceled"
    again = bookpay("intent", "cancel", intent["id"])
    assert again.exit_code == 3
    assert "canceled" in again.stderr


def test_over_refund_exits_3(bookpay):
    intent = create(bookpay)
    bookpay("intent", "confirm", intent["id"], "--card", "pm_card_visa")
    result = bookpay("refund", "create", intent["id"], "--amount", "5000")
    assert result.exit_code == 3
    assert result.stderr.startswith("Error: Refund amount")


def test_show_of_a_ledger_that_fails_when_read_is_unavailable(bookpay, cli_env, monkeypatch):
    """Stripe answered; the ledger's events could not be read: exit 5, in one line."""
    from test_cli_orders import fail_reads

    intent = create(bookpay)
    said = fail_reads(monkeypatch, cli_env)
    result = bookpay("intent", "show", intent["id"])
    assert result.exit_code == 5, result.output
    assert result.stderr.startswith(f"Error: {said}: disk I/O error.")
    assert len(result.stderr.splitlines()) == 1


def test_unknown_intent_exits_2(bookpay):
    result = bookpay("intent", "show", "pi_nope")
    assert result.exit_code == 2
    assert "No such payment_intent: 'pi_nope'" in result.stderr


def test_emulator_not_running_exits_4_with_a_hint(tmp_path):
    result = runner.invoke(
        app,
        ["intent", "list"],
        env={"BOOKPAY_EMULATOR_URL": "http://127.0.0.1:9", "BOOKPAY_DATA_DIR": str(tmp_path)},
    )
    assert result.exit_code == 4
    assert result.stderr == (
        "Error: Could not reach the emulator at http://127.0.0.1:9: the connection was refused "
        "(3 attempts). Start it with `bookpay emulator` or `bookpay serve`.\n"
    )


def test_unknown_status_is_a_usage_error(bookpay):
    result = bookpay("intent", "list", "--status", "paid")
    assert result.exit_code == 2
    assert "'paid' is not one of" in result.output


def test_status_filter_pages_past_the_newest_hundred(tmp_path):
    from bookpay.catalog import Catalog
    from bookpay.config import Settings
    from bookpay.emulator import EmulatorOptions, start_emulator
    from bookpay.payments import Gateway

    with start_emulator("127.0.0.1", 0, EmulatorOptions()) as own:
        gateway = Gateway(Settings(emulator_url=own.url))
        book = Catalog.default().get("1")
        old = gateway.create_intent(book)
        gateway.confirm_intent(old["id"], payment_method="pm_card_visa")
        for _ in range(105):
            gateway.create_intent(book)
        env = {"BOOKPAY_EMULATOR_URL": own.url, "BOOKPAY_DATA_DIR": str(tmp_path)}
        result = runner.invoke(
            app, ["intent", "list", "--status", "succeeded", "--limit", "5", "--json"], env=env
        )
    assert result.exit_code == 0, result.output
    assert [i["id"] for i in json.loads(result.stdout)] == [old["id"]]


def test_show_says_where_to_authenticate(bookpay):
    intent = create(bookpay)
    bookpay(
        "intent", "confirm", intent["id"], "--card", "pm_card_threeDSecure2Required",
        "--return-url", "http://127.0.0.1:4242/success",
    )  # fmt: skip
    out = bookpay("intent", "show", intent["id"]).stdout
    assert "Status:           requires_action" in out
    assert "Authenticate at:  http" in out


# 3-D Secure from the command line -----------------------------------------------------------------


def test_3ds_complete_finishes_the_challenge_in_the_emulator(bookpay):
    intent = create(bookpay)
    result = bookpay("intent", "confirm", intent["id"], "--card", "4000002760003184",
                     "--3ds", "complete", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "succeeded"
    shown = bookpay("intent", "show", intent["id"], "--json")
    assert json.loads(shown.stdout)["payment_intent"]["status"] == "succeeded"


def test_3ds_fail_leaves_the_intent_waiting_for_another_card_and_exits_3(bookpay):
    intent = create(bookpay)
    result = bookpay("intent", "confirm", intent["id"], "--card", "4000002760003184",
                     "--3ds", "fail")  # fmt: skip
    assert result.exit_code == 3
    assert result.stdout == ""
    assert "failed authentication" in result.stderr
    shown = json.loads(bookpay("intent", "show", intent["id"], "--json").stdout)
    assert shown["payment_intent"]["status"] == "requires_payment_method"
    error = shown["payment_intent"]["last_payment_error"]
    assert error["code"] == "payment_intent_authentication_failure"


def test_3ds_alone_finishes_the_challenge_waiting_without_confirming_again(bookpay):
    """`--3ds` without `--card` once the intent waits for 3-D Secure: it used to confirm again
    with the default 4242 card (succeeded, exit 0), the challenge never finished."""
    intent = create(bookpay)
    waiting = bookpay("intent", "confirm", intent["id"], "--card", "4000002760003184")
    assert waiting.exit_code == 0, waiting.output
    follow_up = f"bookpay intent confirm {intent['id']} --3ds complete (or --3ds fail)"
    assert f"Finish it with: {follow_up}\n" in waiting.stderr
    failed = bookpay("intent", "confirm", intent["id"], "--3ds", "fail")
    assert failed.exit_code == 3, failed.output
    assert "failed authentication" in failed.stderr
    shown = json.loads(bookpay("intent", "show", intent["id"], "--json").stdout)
    assert shown["payment_intent"]["status"] == "requires_payment_method"

    again = bookpay("intent", "confirm", intent["id"], "--card", "4000002760003184")
    assert again.exit_code == 0, again.output
    done = bookpay("intent", "confirm", intent["id"], "--3ds", "complete", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["status"] == "succeeded"
    shown = json.loads(bookpay("intent", "show", intent["id"], "--json").stdout)
    card = shown["payment_intent"]["latest_charge"]["payment_method_details"]["card"]
    assert card["last4"] == "3184"  # the card that was challenged, not the default one


def test_3ds_alone_with_no_challenge_waiting_exits_2_before_confirming(bookpay):
    intent = create(bookpay)
    result = bookpay("intent", "confirm", intent["id"], "--3ds", "complete")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(
        f"Error: {intent['id']} has no 3-D Secure challenge waiting (status"
        " requires_payment_method), so --3ds complete has nothing to finish."
    )
    shown = json.loads(bookpay("intent", "show", intent["id"], "--json").stdout)
    assert shown["payment_intent"]["status"] == "requires_payment_method"


def test_3ds_on_a_confirmation_that_brings_no_challenge_exits_2(bookpay):
    """`--card 4242... --3ds fail` succeeded with exit 0, --3ds silently ignored."""
    intent = create(bookpay)
    result = bookpay("intent", "confirm", intent["id"], "--card", "4242424242424242",
                     "--3ds", "fail")  # fmt: skip
    assert result.exit_code == 2
    assert "Status:         succeeded" in result.stdout  # what happened is shown all the same
    assert result.stderr == (
        f"Error: --3ds fail was not used: {intent['id']} needed no 3-D Secure authentication"
        " (status succeeded); the confirmation stands.\n"
    )


def test_an_empty_return_url_is_a_usage_error(bookpay):
    """`--return-url ''` (an unset shell variable) quietly sent the shop's own URL."""
    intent = create(bookpay)
    result = bookpay("intent", "confirm", intent["id"], "--return-url", "")
    assert result.exit_code == 2
    assert "Invalid value for '--return-url': expected a URL, got ''." in result.stderr
    shown = json.loads(bookpay("intent", "show", intent["id"], "--json").stdout)
    assert shown["payment_intent"]["status"] == "requires_payment_method"


@pytest.mark.parametrize("card", ["", " "])
def test_a_blank_card_is_a_usage_error_and_charges_nothing(bookpay, card):
    """`--card "$CARD"` with CARD unset charged the default card, which always succeeds."""
    intent = create(bookpay)
    result = bookpay("intent", "confirm", intent["id"], "--card", card)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '--card': expected a card number or a pm_ token, got {card!r}." in (
        result.stderr
    )
    shown = json.loads(bookpay("intent", "show", intent["id"], "--json").stdout)
    assert shown["payment_intent"]["status"] == "requires_payment_method"


def test_a_refusal_names_the_parameter_its_message_does_not(bookpay):
    """Stripe says only "Not a valid URL": which one was not said."""
    intent = create(bookpay)
    result = bookpay("intent", "confirm", intent["id"], "--return-url", "foo")
    assert result.exit_code == 3
    assert result.stderr == "Error: Not a valid URL (parameter return_url).\n"
    result = bookpay("refund", "create", intent["id"])  # "This PaymentIntent (pi_...)": named
    assert result.exit_code == 3
    assert "(parameter" not in result.stderr


@pytest.mark.parametrize(
    ("card", "said"),
    [
        ("4000000000009979", "Your card was declined. (card_declined/stolen_card)"),
        ("4000000000000069", "Your card has expired. (expired_card)"),
    ],
)
def test_a_decline_names_its_codes_for_support(bookpay, card, said):
    """A stolen card's message to the customer is "Your card was declined.": the error line
    alone did not tell support why (only `intent show` did)."""
    intent = create(bookpay)
    result = bookpay("intent", "confirm", intent["id"], "--card", card)
    assert result.exit_code == 3
    assert result.stderr == f"Error: {said}\n"


def test_3ds_complete_then_a_decline_exits_3(bookpay):
    intent = create(bookpay)
    result = bookpay("intent", "confirm", intent["id"], "--card", "4000008260003178",
                     "--3ds", "complete")  # fmt: skip
    assert result.exit_code == 3
    assert (
        result.stderr
        == "Error: Your card has insufficient funds. (card_declined/insufficient_funds)\n"
    )


def test_3ds_in_stripe_test_mode_prints_the_url_to_open(monkeypatch):
    from bookpay.commands import challenge
    from bookpay.payments import Gateway

    url = "https://hooks.stripe.com/3d_secure_2/hosted?merchant=acct_1&payment_intent=pi_1"
    waiting = {
        "id": "pi_1",
        "status": "requires_action",
        "amount": 2300,
        "currency": "usd",
        "next_action": {"type": "redirect_to_url", "redirect_to_url": {"url": url}},
    }
    monkeypatch.setattr(Gateway, "payment_method_for", lambda self, card: "pm_card_visa")
    monkeypatch.setattr(Gateway, "confirm_intent", lambda self, *a, **k: waiting)
    monkeypatch.setattr(challenge, "finish_challenge", lambda *a: pytest.fail("not in Stripe"))
    result = runner.invoke(
        app,
        ["intent", "confirm", "pi_1", "--card", "4000002760003184", "--3ds", "complete"],
        env={"STRIPE_SECRET_KEY": "sk_test_51NoNetworkHereAtAll0000"},
    )
    assert result.exit_code == 0, result.output
    assert f"Authenticate at:  {url}" in result.stdout
    assert "open the URL to authenticate" in result.stderr


def test_3ds_drives_only_the_emulators_own_page():
    from bookpay.commands.challenge import finish_challenge
    from bookpay.errors import UsageError

    with pytest.raises(UsageError, match="only drives the emulator's own challenge page"):
        finish_challenge("http://elsewhere.example/3ds", "http://127.0.0.1:12111", "complete")


def test_create_below_stripes_minimum_exits_2_before_stripe_is_asked(cli_env, tmp_path):
    path = tmp_path / "books.json"
    path.write_text(
        json.dumps(
            [{"id": "pin", "title": "A pin", "author": "X", "amount": 30, "currency": "usd"}]
        )
    )
    env = {**cli_env, "BOOKPAY_CATALOG": str(path)}
    result = runner.invoke(app, ["intent", "create", "--item", "pin"], env=env)
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: Your order's total, $0.30, is less than $0.50, the smallest payment Stripe takes"
        " in USD: add a book to reach it.\n"
    )
    assert runner.invoke(app, ["intent", "create", "--item", "pin:2"], env=env).exit_code == 0
