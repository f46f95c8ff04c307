"""Shipping and Stripe Tax at checkout in Chromium: the real server, the emulator, its Stripe.js.

Once the Address Element is complete the page lists the delivery options for the country (the
cheapest chosen) and shows shipping, tax and the total; Pay waits until the PaymentIntent holds
that quote. A taxed US state, another state, a zero-rated country, express shipping, and an
address no rate serves; then the time from the last keystroke to Pay with a slow Stripe.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from test_cart_browser import Shop
from test_checkout import EMAIL, fill_card, open_checkout, pay, wait_for_pay
from test_server import emulator_api

from bookpay.catalog import Book, Catalog
from bookpay.config import Settings
from bookpay.ledger import open_ledger
from bookpay.server import create_app
from bookpay.shipping import ShippingRate
from bookpay.web import runner


def start_shop(settings: Settings, catalog: Catalog | None = None):
    apps = []

    def make_app(own_url: str):
        apps.append(create_app(settings, public_url=own_url, catalog=catalog))
        return apps[-1]

    server = runner.start(make_app, "127.0.0.1", 0, background=True)
    return server, apps


@pytest.fixture(scope="module")
def shop(emulator, tmp_path_factory) -> Iterator[Shop]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("tax-shop"), emulator_url=emulator.url)
    server, apps = start_shop(settings)
    yield Shop(server.url, settings)
    server.stop()
    apps[0].close()


def fill_address(page, *, line1, city, state, postal_code, country="US") -> None:
    address = page.locator("#address-element")
    if country != "US":
        address.locator("[name=country]").select_option(country)
    address.locator("[name=name]").fill("Ada Lovelace")
    address.locator("[name=addressLine1]").fill(line1)
    address.locator("[name=locality]").fill(city)
    address.locator("[name=administrativeArea]").fill(state)
    address.locator("[name=postalCode]").fill(postal_code)


def in_san_francisco(page) -> None:
    page.fill("#link-auth-element [name=email]", EMAIL)
    fill_address(
        page, line1="12 Analytical Row", city="San Francisco", state="CA", postal_code="94110"
    )


def in_london(page) -> None:
    page.fill("#link-auth-element [name=email]", EMAIL)
    fill_address(
        page,
        line1="12 St James's Square",
        city="London",
        state="",
        postal_code="SW1Y 4JH",
        country="GB",
    )


def text(page, node_id: str) -> str:
    return page.locator(f"#{node_id}").inner_text()


def wait_for_total(page, total: str) -> None:
    page.wait_for_function("(t) => document.getElementById('total').textContent === t", arg=total)


def rates(page) -> list[tuple[str, bool]]:
    radios = page.locator("#shipping-rates input[type=radio][name=shipping_rate]")
    return [(r.get_attribute("value"), r.is_checked()) for r in radios.all()]


def paid_intent(page, shop: Shop) -> dict:
    page.wait_for_url(re.compile(r"/success\?"))
    assert page.locator("h1").inner_text() == "Success!"
    intent_id = page.locator("#receipt-intent").inner_text()
    return emulator_api(shop.settings, "GET", f"/v1/payment_intents/{intent_id}")


def test_a_taxed_us_state_shows_shipping_and_tax_and_pays_that_total(page, shop):
    open_checkout(page, shop.url, "1")  # $23.00
    assert text(page, "shipping-amount") == "—" and text(page, "tax-amount") == "—"
    assert rates(page) == []
    assert "Enter your shipping address" in text(page, "shipping-rates-message")
    in_san_francisco(page)
    fill_card(page, "4242424242424242")
    wait_for_total(page, "$29.67")
    assert rates(page) == [("standard", True), ("express", False)]  # the cheapest chosen
    assert text(page, "subtotal") == "$23.00"
    assert text(page, "shipping-amount") == "$5.00"
    assert text(page, "tax-amount") == "$1.67"  # California's 7.25%; shipping exempt there
    wait_for_pay(page)
    assert page.locator("#submit-button").inner_text().strip() == "Pay $29.67"
    pay(page)
    intent = paid_intent(page, shop)
    assert (intent["amount"], intent["amount_received"]) == (2967, 2967)
    assert intent["metadata"]["tax_calculation"].startswith("taxcalc_")
    assert intent["shipping"]["address"]["state"] == "CA"
    assert text(page, "receipt-tax") == "$1.67" and text(page, "receipt-amount") == "$29.67"
    with open_ledger(shop.settings) as ledger:
        quote = ledger.quote_for(intent["id"])
    assert (quote["shipping"], quote["tax"], quote["total"]) == (500, 167, 2967)
    assert quote["tax_calculation"] == intent["metadata"]["tax_calculation"]


def test_changing_the_state_and_zip_changes_the_tax_before_paying(page, shop):
    open_checkout(page, shop.url, "1")
    in_san_francisco(page)
    fill_card(page, "4242424242424242")
    wait_for_total(page, "$29.67")
    # Texas: 6.25%, and shipping is taxed with the goods there: 6.25% of $28.00.
    address = page.locator("#address-element")
    address.locator("[name=locality]").fill("Austin")
    address.locator("[name=administrativeArea]").fill("TX")
    address.locator("[name=postalCode]").fill("78701")
    wait_for_total(page, "$29.75")
    assert text(page, "tax-amount") == "$1.75"
    pay(page)
    intent = paid_intent(page, shop)
    assert intent["amount_received"] == 2975
    assert intent["shipping"]["address"]["postal_code"] == "78701"
    assert text(page, "receipt-amount") == "$29.75"


def test_a_zero_rated_country_pays_no_tax(page, shop):
    open_checkout(page, shop.url, "3")  # $28.00
    in_london(page)
    fill_card(page, "4242424242424242")
    page.locator("#payment-element [name=postalCode]").fill("SW1Y 4JH")  # a UK card's
    wait_for_total(page, "$53.00")  # books are zero-rated in the UK
    assert rates(page) == [("international", True)]
    assert text(page, "shipping-amount") == "$25.00"
    assert text(page, "tax-amount") == "$0.00"
    pay(page)
    intent = paid_intent(page, shop)
    assert intent["amount_received"] == 5300
    assert text(page, "receipt-tax") == "$0.00"


def test_express_shipping_changes_the_total(page, shop):
    open_checkout(page, shop.url, "2")  # $25.00
    in_san_francisco(page)
    fill_card(page, "4242424242424242")
    wait_for_total(page, "$31.81")
    page.locator("#shipping-rates input[value=express]").check()
    wait_for_total(page, "$41.81")
    assert text(page, "shipping-amount") == "$15.00"
    assert text(page, "shipping-rate-name") == "(Express shipping)"
    pay(page)
    intent = paid_intent(page, shop)
    assert intent["amount_received"] == 4181
    assert page.locator("dt:has(+ #receipt-shipping-amount)").inner_text() == (
        "Shipping (Express shipping)"
    )


def test_a_name_corrected_alone_is_quoted_again_and_the_parcel_goes_to_it(page, shop):
    """Same address, same rate, another name: the PaymentIntent's shipping (the name the parcel
    goes to) must follow before Pay, so the page quotes again with the name."""
    open_checkout(page, shop.url, "1")
    in_san_francisco(page)
    fill_card(page, "4242424242424242")
    wait_for_total(page, "$29.67")
    wait_for_pay(page)

    def quotes_grace(response) -> bool:
        if not response.url.endswith("/checkout/quote"):
            return False
        return (response.request.post_data_json or {}).get("name") == "Grace Hopper"

    with page.expect_response(quotes_grace, timeout=5000) as answered:
        page.locator("#address-element [name=name]").fill("Grace Hopper")
    assert answered.value.status == 200
    intent_id = answered.value.json()["paymentIntentId"]
    wait_for_pay(page)
    held = emulator_api(shop.settings, "GET", f"/v1/payment_intents/{intent_id}")
    assert (held["amount"], held["shipping"]["name"]) == (2967, "Grace Hopper")
    pay(page)
    intent = paid_intent(page, shop)
    assert intent["id"] == intent_id and intent["amount_received"] == 2967
    assert intent["shipping"]["name"] == "Grace Hopper"
    assert intent["shipping"]["address"]["postal_code"] == "94110"


def test_pay_waits_for_the_quote_of_the_address_shown(page, shop):
    open_checkout(page, shop.url, "1")
    held = []
    page.route("**/checkout/quote", lambda route: held.append(route))
    in_san_francisco(page)
    fill_card(page, "4242424242424242")
    while not held:  # Playwright runs the route handler while the test waits in a Playwright call
        page.wait_for_timeout(20)
    assert page.locator("#submit-button").is_disabled()
    assert text(page, "pay-hint") == "Updating your order…"
    held[0].continue_()
    page.unroute("**/checkout/quote")
    wait_for_pay(page)
    assert text(page, "total") == "$29.67"


def test_an_address_no_rate_serves_keeps_pay_disabled_with_a_message(page, emulator, tmp_path):
    us_only = Catalog(
        Catalog.default(),
        [ShippingRate("standard", "Standard shipping", 500, "usd", ("US",), 3, 5)],
    )
    settings = Settings(data_dir=tmp_path / "data", emulator_url=emulator.url)
    server, apps = start_shop(settings, us_only)
    try:
        open_checkout(page, server.url, "1")
        in_london(page)
        fill_card(page, "4242424242424242")
        page.wait_for_function(
            "() => document.getElementById('shipping-rates-message').textContent.length > 0"
            " && document.querySelectorAll('#shipping-rates input').length === 0"
        )
        assert text(page, "shipping-rates-message") == (
            "Sorry, we don't ship to United Kingdom: choose another address."
        )
        page.wait_for_function(
            "() => document.getElementById('pay-hint').textContent"
            " === 'Check the shipping address to pay.'"
        )
        assert page.locator("#submit-button").is_disabled()
        assert text(page, "total") == "$23.00"  # the books alone: nothing was quoted
        # Back to an address the shop ships to: Pay is enabled for its quote.
        page.locator("#address-element [name=country]").select_option("US")
        fill_address(
            page, line1="12 Analytical Row", city="San Francisco", state="CA", postal_code="94110"
        )
        wait_for_total(page, "$29.67")
        wait_for_pay(page)
        assert text(page, "shipping-rates-message") == (
            "Delivery options and total updated: $29.67"  # no longer the problem
        )
    finally:
        server.stop()
        apps[0].close()


def test_with_a_slow_stripe_pay_waits_for_the_last_keystrokes_quote(page, tmp_path):
    """The suite's small version of `python -m bench quote`: a Stripe answering in 200 ms, the ZIP
    typed a key at a time, Pay enabled only for the quote of the whole ZIP (no timing asserted)."""
    from bookpay.emulator import EmulatorOptions, start_emulator

    slow = start_emulator("127.0.0.1", 0, EmulatorOptions(latency=0.2))
    settings = Settings(data_dir=tmp_path / "data", emulator_url=slow.url)
    server, apps = start_shop(settings)
    try:
        open_checkout(page, server.url, "1")
        page.fill("#link-auth-element [name=email]", EMAIL)
        fill_card(page, "4242424242424242")
        fill_address(page, line1="12 Main St", city="Austin", state="TX", postal_code="7870")
        page.locator("#address-element [name=postalCode]").press("1")  # the last keystroke
        pressed = time.monotonic()
        assert page.locator("#submit-button").is_disabled()
        wait_for_pay(page)
        waited = time.monotonic() - pressed
        assert text(page, "total") == "$29.75"
        intent_id = page.evaluate(
            "() => Object.keys(sessionStorage).filter((k) => k.startsWith('bookpay.secret.'))[0]"
        ).removeprefix("bookpay.secret.")
        held = emulator_api(settings, "GET", f"/v1/payment_intents/{intent_id}")
        assert held["amount"] == 2975  # the PaymentIntent holds the quote Pay is enabled for
        print(f"last keystroke to Pay enabled, 200 ms API latency: {waited * 1000:.0f} ms")
    finally:
        server.stop()
        apps[0].close()
        slow.stop()


def test_a_quote_refused_for_now_says_so_and_is_asked_again(page, shop):
    open_checkout(page, shop.url, "1")
    refused = []

    def once_unavailable(route):
        if refused:
            route.continue_()
            return
        refused.append(route.request.url)
        route.fulfill(
            status=503,
            headers={"Retry-After": "1"},
            content_type="application/json",
            body='{"error": {"message": "Payments are unavailable: try again.",'
            ' "code": "stripe_unavailable"}}',
        )

    page.route("**/checkout/quote", once_unavailable)
    in_san_francisco(page)
    fill_card(page, "4242424242424242")
    page.wait_for_function(
        "() => document.getElementById('shipping-rates-message').textContent"
        " === 'Payments are unavailable: try again.'"
    )
    assert page.locator("#submit-button").is_disabled()
    wait_for_total(page, "$29.67")  # asked again after Retry-After, and applied
    wait_for_pay(page)
    assert text(page, "shipping-rates-message") == "Delivery options and total updated: $29.67"
    assert len(refused) == 1


def test_a_kwd_shop_pays_a_total_stripe_charges_tax_rounded_down_to_tens(page, emulator, tmp_path):
    """KWD has three decimals and Stripe charges it in tens of the fils: California's tax on
    5.120 KWD of books is 0.371 KWD by Stripe Tax, 0.370 KWD on the page, the PaymentIntent and
    the success page alike."""
    kwd = Catalog(
        [Book(id="k1", title="Kuwait", author="A", amount=5120, currency="kwd", description="")],
        [ShippingRate("post", "Post", 1250, "kwd", ("*",), 2, 5)],
    )
    settings = Settings(data_dir=tmp_path / "data", emulator_url=emulator.url)
    server, apps = start_shop(settings, kwd)
    try:
        open_checkout(page, server.url, "k1")
        assert text(page, "subtotal") == "5.120 KWD"
        in_san_francisco(page)
        fill_card(page, "4242424242424242")
        wait_for_total(page, "6.740 KWD")
        assert text(page, "shipping-amount") == "1.250 KWD"
        assert text(page, "tax-amount") == "0.370 KWD"
        wait_for_pay(page)
        assert page.locator("#submit-button").inner_text().strip() == "Pay 6.740 KWD"
        pay(page)
        intent = paid_intent(page, Shop(server.url, settings))
        assert (intent["amount"], intent["amount_received"]) == (6740, 6740)
        assert text(page, "receipt-tax") == "0.370 KWD"
        assert text(page, "receipt-amount") == "6.740 KWD"
    finally:
        server.stop()
        apps[0].close()


def test_after_a_quantity_change_the_delivery_message_states_the_total_shown(page, shop):
    """The delivery's live region says the total of the quote shown: a quantity changed after
    the address was priced re-prices the order, and the old total is not left said."""
    page.goto(shop.url + "/")
    added = page.request.post(
        f"{shop.url}/cart/items", data={"item": "1", "quantity": 1}, headers={"Origin": shop.url}
    )
    assert added.ok, added.text()
    page.goto(shop.url + "/checkout")
    page.locator("#payment-element [name=number]").wait_for()
    in_san_francisco(page)
    fill_card(page, "4242424242424242")
    wait_for_total(page, "$29.67")
    wait_for_pay(page)
    assert text(page, "shipping-rates-message") == "Delivery options and total updated: $29.67"
    before = text(page, "shipping-rate-options")  # their names, delivery times and amounts
    quantity = page.locator("#order-lines [data-item='1'] input[name=quantity]")
    quantity.fill("3")
    quantity.press("Enter")
    page.wait_for_function(
        "() => document.getElementById('order-status').textContent === 'Your order was updated.'"
    )
    wait_for_pay(page)
    shown = text(page, "total")
    assert shown != "$29.67"
    said = text(page, "shipping-rates-message")
    if text(page, "shipping-rate-options") == before:
        assert said == "Total updated: " + shown
    else:
        assert said == "Delivery options and total updated: " + shown
    assert page.locator("#submit-button").inner_text().strip() == "Pay " + shown
