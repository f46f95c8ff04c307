"""A shopper pays with Stripe's dispute test card in Chromium; the payment succeeds, then the
emulator opens a dispute, delivers `charge.dispute.created` to the shop's webhook, and the order
shows as disputed (`bookpay orders show`, the ledger's public face)."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from bookpay.cli import app as cli
from bookpay.config import Settings
from bookpay.payments import Gateway
from bookpay.server import create_app
from bookpay.web import runner


@pytest.fixture(scope="module")
def shop(emulator, tmp_path_factory) -> Iterator[tuple[str, Settings]]:
    """The shop, registered with the emulator for webhooks as `bookpay serve` registers it."""
    base = Settings(data_dir=tmp_path_factory.mktemp("dispute-shop"), emulator_url=emulator.url)
    gateway = Gateway(base)
    made = []

    def make_app(own_url: str):
        secret = gateway.register_webhook(own_url + "/webhook")
        made.append((own_url, dataclasses.replace(base, webhook_secrets=(secret,))))
        made.append(create_app(made[0][1], public_url=own_url))
        return made[1]

    server = runner.start(make_app, "127.0.0.1", 0, background=True)
    try:
        yield server.url, made[0][1]
    finally:
        server.stop()
        made[1].close()
        endpoints = gateway._request("get", "/v1/webhook_endpoints", {"limit": 100})["data"]
        for endpoint in endpoints:  # the session's emulator must not keep delivering to it
            if endpoint["url"].startswith(server.url):
                gateway._request("delete", f"/v1/webhook_endpoints/{endpoint['id']}")


def wait_for(condition, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("timed out")


def checkout(page, url: str, card: str) -> str:
    page.goto(f"{url}/checkout?item=1")
    page.locator("#payment-element [name=number]").wait_for()
    page.fill("#link-auth-element [name=email]", "ada@example.com")
    address = page.locator("#address-element")
    address.locator("[name=name]").fill("Ada Lovelace")
    address.locator("[name=addressLine1]").fill("12 Analytical Row")
    address.locator("[name=locality]").fill("San Francisco")
    address.locator("[name=administrativeArea]").fill("CA")
    address.locator("[name=postalCode]").fill("94110")
    payment = page.locator("#payment-element")
    payment.locator("[name=number]").fill(card)
    payment.locator("[name=expiry]").fill("1234")
    payment.locator("[name=cvc]").fill("123")
    postal = payment.locator("[name=postalCode]")
    if postal.is_visible():
        postal.fill("94110")
    page.locator("#submit-button").click()
    page.wait_for_url(re.compile(r"/success\?"))
    assert page.locator("h1").inner_text() == "Success!"
    return page.locator("#receipt-intent").inner_text()


@pytest.mark.parametrize(
    ("card", "status"),
    [("4000000000000259", "needs_response"), ("4000000000001976", "warning_needs_response")],
)
def test_a_dispute_card_pays_then_is_disputed(page, shop, card, status):
    url, settings = shop
    intent_id = checkout(page, url, card)
    gateway = Gateway(settings)
    disputes = wait_for(lambda: gateway.list_disputes(intent_id))
    assert disputes[0]["status"] == status
    charge = gateway.retrieve_intent(intent_id)["latest_charge"]
    assert charge["disputed"] is True

    def order_status():
        result = CliRunner().invoke(
            cli,
            ["orders", "show", intent_id, "--json"],
            env={"BOOKPAY_DATA_DIR": str(settings.data_dir),
                 "BOOKPAY_EMULATOR_URL": settings.emulator_url},
        )  # fmt: skip
        if result.exit_code != 0:
            return None
        order = json.loads(result.stdout)
        order = order.get("order", order)
        return order.get("status") == "disputed" and order

    wait_for(order_status)
