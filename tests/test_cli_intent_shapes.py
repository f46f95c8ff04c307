"""`intent show` and `intent list` against PaymentIntents of every shape Stripe returns.

The emulator makes card payments of bookpay's own; Stripe test mode holds every other kind. A fake
Stripe (a local HTTP server answering with the objects a test gives it, Stripe's own example
objects from tests/reference/stripe/fixtures3.json among them) shows each shape to the CLI.
"""

from __future__ import annotations

import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from typer.testing import CliRunner

from bookpay.cli import app
from bookpay.commands import output

runner = CliRunner()
FIXTURES = json.loads(
    (Path(__file__).parent / "reference" / "stripe" / "fixtures3.json").read_text()
)["resources"]
HOSTILE = "Mallory\x1b]0;pwned\x07\x1b[2J\rOverwritten\x9b2J\u202egnp.exe"
ESCAPES = ("\x1b", "\x07", "\r", "\x9b", "\u202e")


class FakeStripe:
    """Answers GETs of PaymentIntents, refunds and disputes with the objects given, a page of
    ``page_size`` at a time (``has_more`` and ``starting_after`` as Stripe pages)."""

    def __init__(self, intents=(), refunds=(), disputes=(), page_size=100) -> None:
        self.intents = list(intents)
        self.lists = {"/v1/refunds": list(refunds), "/v1/disputes": list(disputes)}
        self.page_size = page_size
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urlparse(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                if url.path.startswith("/v1/payment_intents/"):
                    wanted = url.path.rsplit("/", 1)[1]
                    body = next(i for i in fake.intents if i["id"] == wanted)
                else:
                    every = fake.intents if url.path == "/v1/payment_intents" else None
                    every = every if every is not None else fake.lists[url.path]
                    body = fake.page(every, query.get("starting_after"))
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def page(self, every: list[dict], after: str | None) -> dict:
        start = next(n + 1 for n, o in enumerate(every) if o["id"] == after) if after else 0
        data = every[start : start + self.page_size]
        return {"object": "list", "data": data, "has_more": start + len(data) < len(every)}


@pytest.fixture
def stripe_with(tmp_path):
    """``stripe_with(intents, refunds=..., disputes=...)``: a function running bookpay against
    a fake Stripe holding them."""
    fakes = []

    def make(*intents, **lists):
        fake = FakeStripe(intents, **lists)
        fakes.append(fake)
        env = {"BOOKPAY_EMULATOR_URL": fake.url, "BOOKPAY_DATA_DIR": str(tmp_path / "data")}

        def invoke(*args, columns=None):
            extra = {"COLUMNS": str(columns)} if columns else {}
            return runner.invoke(app, ["--utc", *args], env={**env, **extra})

        return invoke

    yield make
    for fake in fakes:
        fake.server.shutdown()


def payment_intent(**fields) -> dict:
    """Stripe's example PaymentIntent, with ``fields`` changed."""
    intent = copy.deepcopy(FIXTURES["payment_intent"])
    intent.update(fields)
    return intent


def charge(**fields) -> dict:
    """Stripe's example Charge, with ``fields`` changed."""
    data = copy.deepcopy(FIXTURES["charge"])
    data.update(fields)
    return data


def field(result, label: str) -> str:
    """The value of one ``Label:`` line of a detail view."""
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith(f"{label}:")]
    assert len(lines) == 1, result.stdout
    return lines[0][len(label) + 1 :].strip()


# The last payment error ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        ({"type": "idempotency_error"}, "idempotency error"),  # Stripe's example: no message
        (
            {"type": "card_error", "code": "card_declined", "decline_code": "generic_decline",
             "message": None},
            "card error (card_declined/generic_decline)",
        ),
        (
            {"type": "card_error", "code": "card_declined", "message": "Your card was declined.",
             "payment_method": {"id": "pm_1", "object": "payment_method", "type": "card"}},
            "Your card was declined. (card_declined)",
        ),
    ],
)  # fmt: skip
def test_a_last_payment_error_without_a_message_says_what_it_was(stripe_with, error, shown):
    intent = payment_intent(last_payment_error=error)
    result = stripe_with(intent)("intent", "show", intent["id"])
    assert field(result, "Last payment error") == shown


# What the customer must do next ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "shown"),
    [
        (
            {"type": "verify_with_microdeposits", "verify_with_microdeposits": {
                "arrival_date": 1714572180, "microdeposit_type": "descriptor_code",
                "hosted_verification_url": "https://payments.stripe.com/microdeposit/pacs_1"}},
            "verify with microdeposits: https://payments.stripe.com/microdeposit/pacs_1",
        ),
        (
            {"type": "display_bank_transfer_instructions", "display_bank_transfer_instructions": {
                "amount_remaining": 1099, "currency": "usd", "reference": "REF123",
                "type": "us_bank_transfer", "financial_addresses": [],
                "hosted_instructions_url": "https://payments.stripe.com/bank_transfers/1"}},
            "display bank transfer instructions: https://payments.stripe.com/bank_transfers/1",
        ),
        (
            {"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect"}},
            "use stripe sdk (the customer's page finishes it with Stripe.js)",
        ),
        (
            {"type": "redirect_to_url", "redirect_to_url": {"url": None, "return_url": None}},
            "redirect to url",
        ),
    ],
)  # fmt: skip
def test_intent_show_says_what_the_customer_must_do_next(stripe_with, action, shown):
    intent = payment_intent(status="requires_action", next_action=action)
    result = stripe_with(intent)("intent", "show", intent["id"])
    assert field(result, "Next action") == shown
    assert "Authenticate at" not in result.stdout


# Payment methods that are not cards --------------------------------------------------------------


@pytest.mark.parametrize(
    ("details", "shown"),
    [
        (None, "succeeded, visa ending 4242"),  # Stripe's example Charge: a card
        ({"type": "us_bank_account", "us_bank_account": {"bank_name": "STRIPE TEST BANK",
          "last4": "6789", "account_type": "checking"}},
         "succeeded, us_bank_account STRIPE TEST BANK ending 6789"),
        ({"type": "sepa_debit", "sepa_debit": {"bank_code": "37040044", "last4": "3000"}},
         "succeeded, sepa_debit ending 3000"),
        ({"type": "link", "link": {"country": "US"}}, "succeeded, link"),
        ({"type": "cashapp", "cashapp": {"buyer_id": "x", "cashtag": "$jenny"}},
         "succeeded, cashapp"),
        ({"type": "card", "card": {"brand": None, "last4": "0002"}}, "succeeded, card ending 0002"),
    ],
)  # fmt: skip
def test_the_latest_charge_names_its_payment_method_of_any_type(stripe_with, details, shown):
    paid = charge() if details is None else charge(payment_method_details=details)
    intent = payment_intent(status="succeeded", amount_received=1099, latest_charge=paid)
    result = stripe_with(intent)("intent", "show", intent["id"])
    assert field(result, "Latest charge") == f"{paid['id']} ({shown})"


# Hostile and huge text ---------------------------------------------------------------------------

LONG = "B" * 10_000


def hostile_intent(text: str) -> dict:
    """An intent with ``text`` in every string field that comes from outside."""
    address = {"line1": text, "line2": text, "city": text, "state": text,
               "postal_code": text, "country": "FR"}  # fmt: skip
    paid = charge(
        billing_details={"name": text, "email": text, "address": address, "phone": text},
        payment_method_details={"type": "us_bank_account",
                                "us_bank_account": {"bank_name": text, "last4": "6789"}},
    )  # fmt: skip
    return payment_intent(
        status="requires_payment_method",
        description=text,
        metadata={"order_id": text, "item_id": text, "book_title": text, "email": text},
        receipt_email=text,
        shipping={"name": text, "address": address, "phone": text, "carrier": text},
        statement_descriptor=text,
        latest_charge=paid,
        last_payment_error={"type": "card_error", "code": text, "decline_code": text,
                            "message": text},
    )  # fmt: skip


@pytest.mark.parametrize("columns", [None, 80])  # a pipe, a terminal
@pytest.mark.parametrize("command", ["show", "list"])
def test_huge_text_is_shown_bounded(stripe_with, monkeypatch, command, columns):
    if columns:
        monkeypatch.setattr(output, "is_terminal", lambda stream=None: True)
    intent = hostile_intent(LONG)
    args = ["intent", "show", intent["id"]] if command == "show" else ["intent", "list"]
    result = stripe_with(intent)(*args, columns=columns)
    assert result.exit_code == 0, result.output
    widest = max(len(line) for line in result.stdout.splitlines())
    # At a terminal free text wraps (a detail view cuts no word: an id, a URL); in a pipe
    # nothing wraps, and the order lines' item and title are two such values on one line.
    assert widest <= (80 if columns and command == "list" else 300 if columns else 500)
    assert len(result.stdout) < 4_000
    assert "B" * 50 in result.stdout and "… (10,000" in result.stdout


@pytest.mark.parametrize("command", ["show", "list"])
def test_text_is_cut_and_counted_by_its_own_characters_not_its_escapes(stripe_with, command):
    colour = "d\x1b[31m" * 100  # 600 characters, 900 once escaped: 200 end "d\x1b"
    bells = "\x07" * 150  # under the limit, 600 characters once escaped
    intent = payment_intent(description=colour, receipt_email=bells, metadata={})
    args = ["intent", "show", intent["id"]] if command == "show" else ["intent", "list"]
    result = stripe_with(intent)(*args)
    assert result.exit_code == 0, result.output
    if command == "show":
        assert field(result, "Email") == "\\x07" * 150
    else:
        assert "  " + "d\\x1b[31m" * 33 + "d\\x1b… (600 characters)  " in result.stdout


@pytest.mark.parametrize("command", ["show", "list"])
def test_hostile_text_in_any_field_is_escaped(stripe_with, monkeypatch, command):
    monkeypatch.setattr(output, "is_terminal", lambda stream=None: True)
    intent = hostile_intent(HOSTILE)
    args = ["intent", "show", intent["id"]] if command == "show" else ["intent", "list"]
    result = stripe_with(intent)(*args, columns=100)
    assert result.exit_code == 0, result.output
    for escape in ESCAPES:
        assert escape not in result.stdout, escape
    assert "Mallory\\x1b]0;pwned\\x07" in result.stdout
    as_json = stripe_with(intent)(*args, "--json")
    assert "\u202e" not in as_json.stdout and "\\u202e" in as_json.stdout
    data = json.loads(as_json.stdout)
    shown = data["payment_intent"] if command == "show" else data[0]
    assert shown["description"] == HOSTILE  # JSON keeps the data, escaped


# Lists that have more than one page, a charge that is only an id ---------------------------------


def refund(number: int, amount: int = 100) -> dict:
    return {**FIXTURES["refund"], "id": f"re_{number}", "amount": amount}


def dispute(number: int, status: str = "lost", amount: int = 200) -> dict:
    return {**FIXTURES["dispute"], "id": f"dp_{number}", "status": status, "amount": amount}


def test_every_refund_is_counted_past_the_first_page(stripe_with):
    # latest_charge as an id only: the totals come from the refunds list itself.
    intent = payment_intent(status="succeeded", amount_received=1099, latest_charge="ch_1")
    invoke = stripe_with(intent, refunds=[refund(n) for n in range(3)], page_size=2)
    shown = invoke("intent", "show", intent["id"])
    assert (field(shown, "Refunded"), field(shown, "Net")) == ("$3.00", "$7.99")
    listed = [line.split()[1] for line in shown.stdout.splitlines() if line.startswith("Refund:")]
    assert listed == ["re_0:", "re_1:", "re_2:"]
    data = json.loads(invoke("intent", "show", intent["id"], "--json").stdout)
    assert [r["id"] for r in data["refunds"]] == ["re_0", "re_1", "re_2"]


def test_every_dispute_is_counted_past_the_first_page(stripe_with):
    disputed = charge(amount=1099, amount_captured=1099, disputed=True)
    intent = payment_intent(status="succeeded", amount_received=1099, latest_charge=disputed)
    invoke = stripe_with(intent, disputes=[dispute(n) for n in range(3)], page_size=2)
    shown = invoke("intent", "show", intent["id"])
    assert (field(shown, "Lost to disputes"), field(shown, "Net")) == ("$6.00", "$4.99")
    data = json.loads(invoke("intent", "show", intent["id"], "--json").stdout)
    assert [d["id"] for d in data["disputes"]] == ["dp_0", "dp_1", "dp_2"]


def test_a_latest_charge_given_as_an_id_still_shows_its_dispute(stripe_with):
    intent = payment_intent(status="succeeded", amount_received=1099, latest_charge="ch_1")
    shown = stripe_with(intent, disputes=[dispute(1, status="needs_response")])(
        "intent", "show", intent["id"]
    )
    assert field(shown, "Dispute").startswith("dp_1: $2.00, general, needs response")


# Statuses ----------------------------------------------------------------------------------------


def test_an_authorized_intent_shows_what_can_be_captured(stripe_with):
    intent = payment_intent(
        status="requires_capture", amount=99_999_990, amount_capturable=99_999_990,
        currency="kwd", last_payment_error=None, next_action=None,
    )  # fmt: skip
    shown = stripe_with(intent)("intent", "show", intent["id"])
    assert field(shown, "Amount") == "99,999.990 KWD"
    assert field(shown, "Capturable") == "99,999.990 KWD"


# Currencies --------------------------------------------------------------------------------------


def test_lines_are_not_priced_from_a_catalog_in_another_currency(stripe_with):
    # The catalog sells book 1 for $23.00 (2300 cents): not ¥2,300 for a yen PaymentIntent.
    one = payment_intent(id="pi_1Yen", currency="jpy", amount=3000, metadata={"item_id": "1"})
    two = payment_intent(id="pi_2Yen", currency="jpy", amount=3000, metadata={"lines": "1x2"})
    invoke = stripe_with(one, two)
    shown = invoke("intent", "show", one["id"])
    assert "¥2,300" not in shown.stdout and "¥4,600" not in shown.stdout
    [line] = [line for line in shown.stdout.splitlines() if line.startswith("1 ")]
    assert line.split()[-3:] == ["1", "¥3,000", "¥3,000"]  # the line as the intent names it
    shown = invoke("intent", "show", two["id"])
    assert "¥" not in shown.stdout.split("Created:")[1]
    assert "No order lines known for it." in shown.stdout


def test_a_refund_without_a_status_does_not_read_none(stripe_with):
    intent = payment_intent(status="succeeded", amount_received=1099)
    refunds = [{**refund(1), "status": None, "reason": "expired_uncaptured_charge"}]
    shown = stripe_with(intent, refunds=refunds)("intent", "show", intent["id"])
    assert field(shown, "Refund") == "re_1: $1.00 (status unknown, expired_uncaptured_charge)"


def test_cancel_confirm_and_capture_bound_the_error_and_name_the_next_action(monkeypatch):
    from bookpay.payments import Gateway

    answer = payment_intent(
        status="requires_action",
        next_action={"type": "verify_with_microdeposits", "verify_with_microdeposits": {
            "hosted_verification_url": "https://payments.stripe.com/microdeposit/pacs_1"}},
        last_payment_error={"type": "invalid_request_error", "message": LONG},
    )  # fmt: skip
    monkeypatch.setattr(Gateway, "cancel_intent", lambda self, *a, **k: answer)
    result = runner.invoke(
        app, ["intent", "cancel", answer["id"]], env={"BOOKPAY_EMULATOR_URL": "http://127.0.0.1:9"}
    )
    assert field(result, "Last error").endswith("… (10,000 characters)")
    assert field(result, "Next action") == (
        "verify with microdeposits: https://payments.stripe.com/microdeposit/pacs_1"
    )
