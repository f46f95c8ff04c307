"""Support ergonomics through CliRunner: ids checked first, totals, receipts, widths, hostile text.

Terminal layout is tested by making bookpay believe stdout is a terminal of a fixed width
(COLUMNS); CliRunner's stream is not a TTY, so Rich adds no colour codes and the text compares
as is.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from bookpay.cli import app
from bookpay.commands import output
from bookpay.orders import Ledger

runner = CliRunner()
HOSTILE_NAME = "Mallory\x1b]0;pwned\x07\x1b[2J\x1b[1;31mRED\rOverwritten\x9b2J\u202egnp.exe"
ESCAPES = ("\x1b", "\x07", "\r", "\x9b", "\u202e")


@pytest.fixture
def terminal(monkeypatch):
    """stdout is a terminal (of COLUMNS columns) for bookpay's output module."""
    monkeypatch.setattr(output, "is_terminal", lambda stream=None: True)


@pytest.fixture
def bookpay(cli_env):
    def invoke(*args, columns=None, env=None):
        extra = {"COLUMNS": str(columns)} if columns else {}
        return runner.invoke(app, ["--utc", *args], env={**cli_env, **extra, **(env or {})})

    return invoke


def emulator_post(emulator, path: str, fields: dict) -> dict:
    request = urllib.request.Request(
        emulator.url + path,
        data=urllib.parse.urlencode(fields).encode(),
        headers={"Authorization": "Bearer sk_test_cli_support"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def new_intent(bookpay, item="1") -> str:
    result = bookpay("intent", "create", "--item", item, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["id"]


def ship_to(emulator, intent_id: str, name: str) -> None:
    emulator_post(
        emulator,
        f"/v1/payment_intents/{intent_id}",
        {
            "shipping[name]": name,
            "shipping[address][line1]": "1 Rue de Rivoli",
            "shipping[address][city]": "Paris",
            "shipping[address][country]": "FR",
        },
    )


# 1. A secret key alone ---------------------------------------------------------------------------


def test_a_secret_key_alone_is_enough_for_api_commands(monkeypatch):
    # No publishable key: the command gets past the settings and asks "Stripe" (here a closed
    # port, so exit 4), instead of refusing with a configuration problem (exit 5) as before.
    import stripe

    from bookpay import payments

    monkeypatch.setattr(
        payments,
        "_client_for",
        lambda settings, *budget: stripe.StripeClient(
            settings.api_key, base_addresses={"api": "http://127.0.0.1:9"}, max_network_retries=0
        ),
    )
    result = runner.invoke(
        app,
        ["intent", "list"],
        env={"STRIPE_SECRET_KEY": "rk_test_51RestrictedKeyForSupport0000"},
    )
    assert result.exit_code == 4, result.output
    assert "Configuration problem" not in result.output
    assert "PUBLISHABLE" not in result.output


def test_serve_still_needs_the_publishable_key():
    from bookpay.config import Settings
    from bookpay.errors import ConfigError

    settings = Settings.from_env({"STRIPE_SECRET_KEY": "rk_test_51RestrictedKeyForSupport0000"})
    assert settings.check(serving=False) is settings
    with pytest.raises(ConfigError, match="STRIPE_PUBLISHABLE_KEY is not set"):
        settings.check()


class ForbiddingStripe:
    """Answers every request as Stripe answers a restricted key that lacks a permission."""

    BODY = {
        "error": {
            "message": "The provided key 'rk_test_*********************abcd' does not have the "
            "required permissions for this endpoint on account 'acct_1Nuzfl'. Having the "
            "'rak_payment_intent_read' permission would allow this request to continue.",
            "type": "invalid_request_error",
        }
    }

    def __init__(self) -> None:
        body = json.dumps(self.BODY).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(403)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()


def test_a_permission_error_names_the_missing_permission():
    fake = ForbiddingStripe()
    try:
        result = runner.invoke(
            app, ["intent", "show", "pi_3MtwBwLkdIwHu7ix28a3tqPa"],
            env={"BOOKPAY_EMULATOR_URL": fake.url},
        )  # fmt: skip
    finally:
        fake.server.shutdown()
    assert result.exit_code == 5
    assert "lacks the permission rak_payment_intent_read (PaymentIntent: Read)" in result.stderr
    assert "restricted key (rk_test_...) works for what it permits" in result.stderr


# 3. Ids are checked before any request -----------------------------------------------------------

CLOSED = {"BOOKPAY_EMULATOR_URL": "http://127.0.0.1:9"}  # a request would exit 4, not 2


@pytest.mark.parametrize(
    "args",
    [
        ["intent", "show", ""],
        ["intent", "show", "xyz"],
        ["intent", "show", "pi_"],
        ["intent", "show", "pi_1/../../v1/refunds"],
        ["intent", "confirm", "ch_3MtwBwLkdIwHu7ix"],
        ["intent", "cancel", "xyz"],
        ["refund", "create", "xyz"],
        ["refund", "create", ""],
    ],
)
def test_a_payment_intent_argument_that_is_not_an_id_is_a_usage_error(args):
    result = runner.invoke(app, args, env=CLOSED)
    assert result.exit_code == 2, result.output
    assert "expected a PaymentIntent id (pi_...)" in result.stderr
    assert "Unrecognized request URL" not in result.output


def test_a_client_secret_is_recognised_as_one():
    result = runner.invoke(app, ["intent", "show", "pi_123_secret_abc"], env=CLOSED)
    assert result.exit_code == 2
    assert "got a client secret" in result.stderr


@pytest.mark.parametrize("value", ["", "xyz", "order_1", "ord_"])
def test_orders_show_checks_its_id_before_opening_the_ledger(tmp_path, value):
    result = runner.invoke(
        app, ["orders", "show", value], env={"BOOKPAY_DATA_DIR": str(tmp_path / "d")}
    )
    assert result.exit_code == 2
    assert "expected an order id (ord_...) or a PaymentIntent id (pi_...)" in result.stderr
    assert not (tmp_path / "d").exists()


def test_webhook_sign_refuses_a_secret_as_config_check_does(tmp_path):
    body = tmp_path / "event.json"
    body.write_text("{}")
    result = runner.invoke(app, ["webhook", "sign", str(body), "--secret", "nope"])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: --secret must start with whsec_, got another value.")
    assert "Fix: use the signing secret that `stripe listen` prints" in result.stderr
    from_env = runner.invoke(
        app, ["webhook", "sign", str(body)], env={"STRIPE_WEBHOOK_SECRET": "nope_but_long_value"}
    )
    assert from_env.exit_code == 5
    assert "STRIPE_WEBHOOK_SECRET must start with whsec_" in from_env.stderr
    check = runner.invoke(
        app, ["config", "check", "--offline"], env={"STRIPE_WEBHOOK_SECRET": "nope"}
    )
    assert "STRIPE_WEBHOOK_SECRET must start with whsec_, got another value" in check.stdout


def test_a_secret_that_is_whsec_alone_is_said_to_have_nothing_after_it(tmp_path):
    """It was "--secret must start with whsec_, got whsec_...", which it does."""
    body = tmp_path / "event.json"
    body.write_text("{}")
    result = runner.invoke(app, ["webhook", "sign", str(body), "--secret", "whsec_"])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "Error: --secret has nothing after whsec_: it is the prefix alone, not a secret."
    )
    check = runner.invoke(
        app, ["config", "check", "--offline"], env={"STRIPE_WEBHOOK_SECRET": "whsec_"}
    )
    assert "STRIPE_WEBHOOK_SECRET has nothing after whsec_" in check.stdout


@pytest.mark.parametrize(
    ("secret", "says"),
    [
        ("whsec_abc def", "--secret holds a space, which no Stripe key or secret does"),
        ("whsec_abc\x1b[2J", "--secret holds '\\x1b', which no Stripe key or secret does"),
        ("whsec_abcé", "--secret holds 'é', which no Stripe key or secret does"),
        ("", "--secret is blank. Pass the whsec_... secret, or leave --secret out"),
        (" ", "--secret is blank."),
    ],
)
def test_webhook_sign_refuses_a_secret_no_server_would_verify_with(tmp_path, secret, says):
    """A pasted secret with a space in it signed, and the server refused every signature; a
    blank --secret ("$SECRET" unset) signed with STRIPE_WEBHOOK_SECRET instead."""
    body = tmp_path / "event.json"
    body.write_text("{}")
    env = {"STRIPE_WEBHOOK_SECRET": "whsec_configured"}
    result = runner.invoke(app, ["webhook", "sign", str(body), "--secret", secret], env=env)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith(f"Error: {says}"), result.stderr
    assert len(result.stderr.splitlines()) == 1
    from_env = runner.invoke(
        app, ["webhook", "sign", str(body)], env={"STRIPE_WEBHOOK_SECRET": "whsec_abc\tdef"}
    )
    assert from_env.exit_code == 5, from_env.output
    assert "STRIPE_WEBHOOK_SECRET holds '\\t', which no Stripe key" in from_env.stderr


@pytest.mark.parametrize("timestamp", ["-5", "253402300800", "99999999999999999999999"])
def test_webhook_sign_refuses_a_time_no_signature_was_made_at(tmp_path, timestamp):
    body = tmp_path / "event.json"
    body.write_text("{}")
    args = ["webhook", "sign", str(body), "--secret", "whsec_abc", "--timestamp", timestamp]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: --timestamp {int(timestamp):,}: a signature's time is from 0 (1970) to "
        "253,402,300,799 (the end of year 9999).\n"
    )
    for edge in ("0", "253402300799"):
        signed = runner.invoke(app, [*args[:-1], edge])
        assert signed.stdout.startswith(f"t={edge},v1="), signed.output


# 5. Totals and the receipt -----------------------------------------------------------------------


def test_intent_show_totals_after_a_partial_refund(bookpay):
    intent_id = new_intent(bookpay)
    assert bookpay("intent", "confirm", intent_id).exit_code == 0
    assert bookpay("refund", "create", intent_id, "--amount", "500").exit_code == 0
    assert bookpay("refund", "create", intent_id, "--amount", "300").exit_code == 0
    shown = bookpay("intent", "show", intent_id)
    assert "Amount:          $23.00\n" in shown.stdout
    assert "Refunded:        $8.00\n" in shown.stdout
    assert "Net:             $15.00\n" in shown.stdout
    data = json.loads(bookpay("intent", "show", intent_id, "--json").stdout)
    assert data["totals"] == {
        "amount": 2300,
        "received": 2300,
        "refunded": 800,
        "lost_to_disputes": 0,
        "net": 1500,
        "currency": "usd",
    }


def test_intent_show_shows_a_dispute(bookpay, monkeypatch):
    from bookpay.payments import Gateway

    real = Gateway.retrieve_intent

    def disputed(self, intent_id, **kwargs):
        intent = real(self, intent_id, **kwargs)
        if isinstance(intent.get("latest_charge"), dict):  # expanded, as `intent show` has it
            intent["latest_charge"]["disputed"] = True
        return intent

    dispute = {
        "id": "dp_1OtherDisputeB7WZ01zgkW",
        "amount": 2300,
        "currency": "usd",
        "reason": "fraudulent",
        "status": "needs_response",
        "evidence_details": {"due_by": 1714572180},
    }
    monkeypatch.setattr(Gateway, "retrieve_intent", disputed)
    monkeypatch.setattr(Gateway, "list_disputes", lambda self, intent_id: [dispute])
    intent_id = new_intent(bookpay)
    bookpay("intent", "confirm", intent_id)
    shown = bookpay("intent", "show", intent_id)
    assert (
        "Dispute:         dp_1OtherDisputeB7WZ01zgkW: $23.00, fraudulent, needs response "
        "(evidence due by 2024-05-01 14:03)\n"
    ) in shown.stdout
    assert json.loads(bookpay("intent", "show", intent_id, "--json").stdout)["disputes"] == [
        dispute
    ]


def fulfil(data_dir, intent: dict) -> Ledger:
    ledger = Ledger.open(data_dir)
    ledger.record_fulfilment(intent, lambda order: ("reader@example.com", "Your order", "Thanks"))
    return ledger


RECEIPT_STATES = {
    "queued": (lambda ledger, pi: None, "Receipt: queued to reader@example.com"),
    "sent": (
        lambda ledger, pi: _claimed(ledger, "sent", location="outbox/receipt-1.eml"),
        re.compile(
            r"Receipt: sent \d{4}-\d\d-\d\d \d\d:\d\d to reader@example.com "
            r"\(outbox/receipt-1.eml\)"
        ),
    ),
    "failed": (
        lambda ledger, pi: _claimed(ledger, "failed", "SMTPServerDisconnected: bye", retry_in=60),
        re.compile(
            r"Receipt: failed to reader@example.com \(1 attempt, next \d{4}-\d\d-\d\d "
            r"\d\d:\d\d\): SMTPServerDisconnected: bye"
        ),
    ),
    "undeliverable": (
        lambda ledger, pi: _claimed(ledger, "undeliverable", "the address has a line break"),
        "Receipt: undeliverable to reader@example.com: the address has a line break",
    ),
}


def _claimed(ledger, outcome, *args, **kwargs):
    """The one queued receipt, claimed as the mailer claims it, and given ``outcome``."""
    with ledger.claim_receipts() as claims:
        [receipt] = list(claims)
        getattr(claims, outcome)(receipt, *args, **kwargs)


@pytest.mark.parametrize("state", list(RECEIPT_STATES))
def test_orders_show_and_intent_show_give_the_receipts_state(bookpay, cli_env, state):
    change, expected = RECEIPT_STATES[state]
    intent_id = new_intent(bookpay)
    bookpay("intent", "confirm", intent_id)
    intent = json.loads(bookpay("intent", "show", intent_id, "--json").stdout)["payment_intent"]
    ledger = fulfil(cli_env["BOOKPAY_DATA_DIR"], intent)
    change(ledger, intent_id)
    ledger.close()
    for args in (["orders", "show", intent_id], ["intent", "show", intent_id]):
        shown = bookpay(*args)
        assert shown.exit_code == 0, shown.output
        line = next(x for x in shown.stdout.splitlines() if x.startswith("Receipt:"))
        line = re.sub(r"^Receipt:\s+", "Receipt: ", line)
        if isinstance(expected, str):
            assert line == expected
        else:
            assert expected.fullmatch(line), line
    receipt = json.loads(bookpay("orders", "show", intent_id, "--json").stdout)["receipt"]
    assert receipt["status"] == {"queued": "pending", "failed": "pending"}.get(state, state)


# 6. Widths ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("columns", [80, 100, 200])
def test_intent_list_shows_ids_and_statuses_whole_at_any_width(bookpay, terminal, columns):
    waiting = new_intent(bookpay, "2")
    action = new_intent(bookpay, "3")
    bookpay("intent", "confirm", action, "--card", "4000002760003184")
    result = bookpay("intent", "list", "--limit", "2", columns=columns)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(len(line) <= columns for line in lines), result.stdout
    rows = {line.split()[0]: line.split()[1] for line in lines[1:] if line.startswith("pi_")}
    assert rows == {action: "requires_action", waiting: "requires_payment_method"}
    book = "The Making of Prince of Persia: Journals 1985-1993"
    if columns == 200:
        assert book in result.stdout  # room for everything, one line per intent
        assert len(lines) == 3
    else:  # wrapped in its column, or moved under its row: every word, in order
        tokens = iter(result.stdout.split())
        assert all(any(t == word for t in tokens) for word in book.split())


@pytest.mark.parametrize("columns", [80, 100, 200])
def test_orders_show_keeps_event_types_and_ids_whole(tmp_path, terminal, columns):
    data = tmp_path / "data"
    ledger = Ledger.open(data)
    intent = {
        "id": "pi_3QfxFailB7WZ01zgkW0fixture",
        "status": "requires_payment_method",
        "amount": 2300,
        "currency": "usd",
        "metadata": {"item_id": "1", "integration": "bookpay"},
        "receipt_email": "reader@example.com",
        "last_payment_error": {"code": "card_declined", "decline_code": "insufficient_funds",
                               "message": "Your card has insufficient funds."},
    }  # fmt: skip
    ledger.record_intent(intent, status="failed")
    long = (
        "order ord_1 is failed: card_declined/insufficient_funds: Your card has insufficient "
        "funds. The customer was asked to try another card."
    )
    kinds = ["payment_intent.created", "payment_intent.payment_failed", "charge.refund.updated"]
    for number, kind in enumerate(kinds):
        event_id = f"evt_1PgafuB7WZ01zgkWXYmPNZs{number}"
        ledger.receive_event(event_id, kind, intent["id"])
        ledger.finish_event(event_id, handled=True, outcome=long)
    ledger.close()
    result = runner.invoke(
        app,
        ["--utc", "orders", "show", intent["id"]],
        env={"BOOKPAY_DATA_DIR": str(data), "COLUMNS": str(columns)},
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(len(line) <= columns for line in lines), result.stdout
    for kind in kinds:
        assert any(kind in line.split() for line in lines)
    for number in range(3):
        assert any(f"evt_1PgafuB7WZ01zgkWXYmPNZs{number}" in line.split() for line in lines)
    # The outcome wraps (or moves under its row), never cut.
    assert result.stdout.count("another") == 3 and result.stdout.count("card.") == 3


# 8.6 Hostile text never reaches the terminal -----------------------------------------------------


@pytest.mark.parametrize("at_a_terminal", [True, False])
def test_a_hostile_shipping_name_is_escaped_in_intent_show_and_orders_show(
    bookpay, emulator, cli_env, monkeypatch, at_a_terminal
):
    if at_a_terminal:
        monkeypatch.setattr(output, "is_terminal", lambda stream=None: True)
    intent_id = new_intent(bookpay)
    ship_to(emulator, intent_id, HOSTILE_NAME)
    bookpay("intent", "confirm", intent_id)
    intent = json.loads(bookpay("intent", "show", intent_id, "--json").stdout)["payment_intent"]
    assert intent["shipping"]["name"] == HOSTILE_NAME  # JSON keeps the data, escaped by JSON
    Ledger.open(cli_env["BOOKPAY_DATA_DIR"]).record_intent(intent)
    for args in (["intent", "show", intent_id], ["orders", "show", intent_id]):
        result = bookpay(*args, columns=100)
        assert result.exit_code == 0, result.output
        for escape in ESCAPES:
            assert escape not in result.stdout, (args, escape)
        assert "Mallory\\x1b]0;pwned\\x07\\x1b[2J" in result.stdout
        assert "\\rOverwritten\\x9b2J\\u202egnp.exe" in result.stdout


def test_a_hostile_name_in_a_real_terminal(settings, cli_env, emulator):
    """Through a pseudo-terminal, with Rich colouring the output: only Rich's own SGR codes."""
    from test_cli import run_in_terminal

    from bookpay.catalog import Catalog
    from bookpay.payments import Gateway

    gateway = Gateway(settings)
    intent = gateway.create_intent(Catalog.default().get("1"))
    ship_to(emulator, intent["id"], HOSTILE_NAME)
    shown = run_in_terminal(["intent", "show", intent["id"]], cli_env)
    assert "Mallory\\x1b]0;pwned" in shown
    assert "\x1b]" not in shown and "\x07" not in shown and "\x1b[2J" not in shown
    assert "\u202e" not in shown and "\x9b" not in shown
    assert re.search(r"\r(?!\n)", shown) is None  # the terminal's own CRLF only
    assert set(re.findall(r"\x1b\[[0-9;]*([A-Za-z])", shown)) <= {"m"}  # colours, nothing else


def test_error_messages_are_escaped_too(tmp_path):
    result = runner.invoke(
        app, ["orders", "show", "pi_1"], env={"BOOKPAY_DATA_DIR": str(tmp_path / "x\x1b[2J")}
    )
    assert "\x1b" not in result.stderr and "x\\x1b[2J" in result.stderr


# 7. Times ----------------------------------------------------------------------------------------


def test_times_are_iso_utc_in_json_and_one_human_form_in_views(tmp_path):
    data = tmp_path / "data"
    with Ledger.open(data) as ledger:
        ledger.record_intent(
            {"id": "pi_time", "status": "processing", "amount": 2300, "currency": "usd",
             "metadata": {"item_id": "1", "integration": "bookpay"}}
        )  # fmt: skip
    env = {"BOOKPAY_DATA_DIR": str(data), "TZ": "UTC"}
    order = json.loads(runner.invoke(app, ["orders", "show", "pi_time", "--json"], env=env).stdout)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", order["created"])
    shown = runner.invoke(app, ["--utc", "orders", "show", "pi_time"], env=env).stdout
    human = order["created"][:16].replace("T", " ")
    assert f"Created:        {human}\n" in shown
