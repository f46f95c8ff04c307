"""A Stripe account on which Stripe Tax is not active, with BOOKPAY_TAX=stripe (the default):
`config check` says so before any checkout fails (asking Stripe for its tax settings), and a
checkout that meets it (``stripe_tax_inactive`` from its tax calculation) logs one line saying
what to do, and tells the shopper without promising that another try will work."""

from __future__ import annotations

import copy
import json
import logging
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from http_fakes import forward, read_body, send, serve
from test_cart_server import Shopper
from test_quote_server import buy_now, quote
from test_server import PUBLIC_URL
from typer.testing import CliRunner

from bookpay.cli import app as cli
from bookpay.config import Settings
from bookpay.server import create_app

SK = "sk_test_51HxAbCdEfGhIjKlMnOpQrStUvWxYz0123"
PK = "pk_test_51HxAbCdEfGhIjKlMnOpQrStUvWxYz9876"
FIXTURES = Path(__file__).parent / "reference" / "stripe" / "fixtures3.json"
# Stripe's answer to a tax calculation on an account without Stripe Tax.
INACTIVE = {
    "error": {
        "type": "invalid_request_error",
        "code": "stripe_tax_inactive",
        "message": "Stripe Tax has not been activated on your account. Please visit "
        "https://stripe.com/docs/tax/set-up to get started.",
    }
}


def tax_settings(status: str) -> dict:
    """Stripe's example tax.settings object, with that status (and what "pending" lacks)."""
    found = json.loads(FIXTURES.read_text())["resources"]["tax.settings"]
    found = copy.deepcopy(found)
    found["status"] = status
    if status == "pending":
        found["head_office"] = None
        found["status_details"] = {"pending": {"missing_fields": ["head_office"]}}
    return found


class FakeStripe(BaseHTTPRequestHandler):
    """Answers as Stripe does: its ``answers`` by (method, path), the rest passed on to
    ``upstream`` (the session's emulator) when there is one, else a 404."""

    protocol_version = "HTTP/1.1"

    def handle_one(self):
        body = read_body(self)
        path = urlsplit(self.path).path
        self.server.asked.append((self.command, path))
        answer = self.server.answers.get((self.command, path))
        if answer is None and self.server.upstream:
            status, data, _ = forward(self, self.server.upstream, self.path, body)
        else:
            status, found = answer or (404, {"error": {"type": "invalid_request_error"}})
            data = json.dumps(found).encode()
        headers = [("Content-Type", "application/json"), ("Request-Id", "req_fake")]
        send(self, status, data, headers)

    do_GET = do_POST = do_DELETE = handle_one

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_stripe():
    server = serve(FakeStripe)
    server.answers, server.asked, server.upstream = {}, [], None
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


def test_a_checkout_meeting_stripe_tax_inactive_logs_what_to_do_and_promises_no_retry(
    fake_stripe, emulator, tmp_path, caplog
):
    # The emulator behind a front answering tax calculations as Stripe does without Stripe Tax.
    fake_stripe.upstream = emulator.url
    fake_stripe.answers[("POST", "/v1/tax/calculations")] = (400, INACTIVE)
    settings = Settings(data_dir=tmp_path / "data", emulator_url=fake_stripe.url)
    made = create_app(settings, public_url=PUBLIC_URL)
    try:
        shopper = Shopper(made)
        attempt, _ = buy_now(shopper)
        with caplog.at_level(logging.WARNING, logger="bookpay"):
            answer = quote(shopper, attempt)
    finally:
        made.close()
    # A 4xx: the page shows it and stops (a 503 would have it ask again and again).
    assert answer.status == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "tax_not_active"
    assert error["message"] == (
        "This shop can't take payments yet: it can't work out the tax on orders. "
        "Please let the shop know."
    )
    assert "try again" not in error["message"].lower()
    said = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in said] == [
        "POST /checkout/quote answered 400: Stripe Tax is not active on this Stripe account "
        "(stripe_tax_inactive): no checkout can work out its tax. Activate Stripe Tax in the "
        "Dashboard (https://dashboard.stripe.com/settings/tax), or set BOOKPAY_TAX=off to sell "
        "without tax."
    ]
    assert said[0].exc_info is None  # one line, no traceback


@pytest.fixture
def stripe_mode(fake_stripe, monkeypatch):
    """Stripe test mode, its calls going to the fake Stripe through bookpay's own transport."""
    import stripe

    from bookpay import payments

    monkeypatch.setattr(
        payments,
        "_client_for",
        lambda settings, http: stripe.StripeClient(
            settings.api_key,
            http_client=http,
            base_addresses={"api": fake_stripe.url},
            max_network_retries=0,
        ),
    )
    listed = {"object": "list", "data": [], "has_more": False, "url": "/v1/payment_intents"}
    fake_stripe.answers[("GET", "/v1/payment_intents")] = (200, listed)
    return {"STRIPE_SECRET_KEY": SK, "STRIPE_PUBLISHABLE_KEY": PK}


def check(env):
    result = CliRunner().invoke(cli, ["config", "check", "--json"], env=env)
    return result.exit_code, json.loads(result.stdout)


def problems(report):
    return [f for f in report["findings"] if f["level"] == "problem"]


def test_config_check_says_stripe_tax_is_not_active_and_names_bookpay_tax_off(
    fake_stripe, stripe_mode
):
    fake_stripe.answers[("GET", "/v1/tax/settings")] = (200, tax_settings("pending"))
    code, report = check(stripe_mode)
    assert code == 5 and report["ok"] is False
    [problem] = problems(report)
    assert problem["message"] == (
        "Stripe Tax is not active on this Stripe account (its tax settings are pending, missing "
        "head_office): with BOOKPAY_TAX=stripe every checkout fails at its address step"
    )
    assert problem["fix"] == (
        "activate Stripe Tax in the Dashboard (https://dashboard.stripe.com/settings/tax), or "
        "set BOOKPAY_TAX=off to sell without tax"
    )
    human = CliRunner().invoke(cli, ["config", "check"], env=stripe_mode)
    assert "No problems found" not in human.stdout
    assert "    Fix: activate Stripe Tax in the Dashboard" in human.stdout


def test_config_check_is_content_with_active_tax_settings_and_asks_nothing_with_tax_off(
    fake_stripe, stripe_mode
):
    fake_stripe.answers[("GET", "/v1/tax/settings")] = (200, tax_settings("active"))
    code, report = check(stripe_mode)
    assert (code, problems(report)) == (0, [])
    assert ("GET", "/v1/tax/settings") in fake_stripe.asked
    fake_stripe.asked.clear()
    code, report = check({**stripe_mode, "BOOKPAY_TAX": "off"})
    assert (code, problems(report)) == (0, [])
    assert ("GET", "/v1/tax/settings") not in fake_stripe.asked
    assert ("GET", "/v1/payment_intents") in fake_stripe.asked  # Stripe was asked all the same


def test_tax_settings_the_key_may_not_read_are_a_warning(fake_stripe, stripe_mode):
    refused = {
        "error": {
            "type": "invalid_request_error",
            "message": "The provided key 'rk_test_***1234' does not have the required "
            "permissions for this endpoint on account 'acct_1'. Having the 'rak_tax_settings_read' "
            "permission would allow this request to continue.",
        }
    }
    fake_stripe.answers[("GET", "/v1/tax/settings")] = (403, refused)
    code, report = check(stripe_mode)
    assert (code, problems(report)) == (0, [])
    [warning] = [f for f in report["findings"] if "Stripe Tax" in f["message"]]
    assert warning["level"] == "warning"
    assert warning["message"].startswith("Stripe Tax's settings could not be read (")
    assert "BOOKPAY_TAX=off" in warning["fix"]
    assert warning["fix"].startswith("give the key read access to Tax settings")


@pytest.mark.parametrize(
    ("status", "fix"),
    [
        (500, "try again when Stripe answers (https://status.stripe.com)"),
        (404, "look at the account's tax settings in the Dashboard"),
    ],
)
def test_tax_settings_stripe_fails_to_give_are_not_blamed_on_the_keys_permissions(
    fake_stripe, stripe_mode, status, fix
):
    failed = {"error": {"type": "api_error", "message": "Something went wrong."}}
    fake_stripe.answers[("GET", "/v1/tax/settings")] = (status, failed)
    code, report = check(stripe_mode)
    assert code == 0  # a warning: whether tax works is not known, nothing is known wrong
    [warning] = [f for f in report["findings"] if "Stripe Tax" in f["message"]]
    assert warning["level"] == "warning"
    assert warning["fix"].startswith(fix)
    assert "rak_tax_settings_read" not in warning["fix"]
    assert "BOOKPAY_TAX=off" in warning["fix"]
