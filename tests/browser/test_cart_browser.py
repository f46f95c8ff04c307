"""The cart end to end in Chromium: the real server, the emulator and its Stripe.js.

Three books (one twice) into the cart, a quantity changed during checkout, one payment: one
order with three lines, the right amount in the emulator's PaymentIntent, the lines on the
success page and in the one receipt. Then what happens when the cart changes while paying,
and the cart without JavaScript.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from processes import wait_for
from test_checkout import EMAIL, fill_checkout, pay, wait_for_pay
from test_server import emulator_api

from bookpay.catalog import Catalog
from bookpay.config import Settings
from bookpay.ledger import open_ledger
from bookpay.server import create_app
from bookpay.web import runner

BOOKS = {book.id: book for book in Catalog.default()}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@dataclass
class Shop:
    url: str
    settings: Settings


@pytest.fixture(scope="module")
def shop(emulator, tmp_path_factory) -> Iterator[Shop]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("cart-shop"), emulator_url=emulator.url)
    apps = []

    def make_app(own_url: str):
        apps.append(create_app(settings, public_url=own_url))
        return apps[-1]

    server = runner.start(make_app, "127.0.0.1", 0, background=True)
    yield Shop(server.url, settings)
    server.stop()
    apps[0].close()


def add_from_catalog(page, book_id: str) -> None:
    title = BOOKS[book_id].title
    count = int(page.locator("#cart-count").inner_text() or 0)
    page.get_by_role("button", name=f"Add to cart ({title})").click()
    page.wait_for_function(
        "(n) => document.getElementById('cart-count').textContent === String(n)", arg=count + 1
    )
    said = page.locator(".book .add-status:not(:empty)")  # next to the button pressed
    assert said.inner_text().startswith(f"{title} is in your cart")


def line(page, book_id: str):
    return page.locator(f"#order-lines [data-item='{book_id}']")


def test_three_books_one_twice_a_quantity_changed_while_paying_one_order(page, shop):
    page.goto(shop.url + "/")
    for book_id in ("1", "2", "1", "3"):
        add_from_catalog(page, book_id)
    page.get_by_role("link", name="Cart").click()
    page.wait_for_url(shop.url + "/cart")
    assert [n.get_attribute("data-item") for n in page.locator("#cart-lines > li").all()] == [
        "1",
        "2",
        "3",
    ]
    assert page.locator("#cart-subtotal").inner_text() == "$99.00"
    page.get_by_role("link", name="Checkout").click()
    page.wait_for_url(shop.url + "/checkout")
    page.locator("#payment-element [name=number]").wait_for()
    assert page.locator("#total").inner_text() == "$99.00"  # the books, until the address
    fill_checkout(page)
    # San Francisco: free shipping from $50.00; 7.25% tax on each book.
    page.wait_for_function("() => document.getElementById('total').textContent === '$106.18'")
    assert page.locator("#shipping-amount").inner_text() == "$0.00"
    assert page.locator("#tax-amount").inner_text() == "$7.18"

    # Hold the page's next request for the PaymentIntent, to see Pay while it is in flight.
    held = []
    page.route("**/create-payment-intent", lambda route: held.append(route))
    line(page, "3").locator("input[name=quantity]").fill("2")
    line(page, "3").locator("input[name=quantity]").dispatch_event("change")
    while not held:  # Playwright runs the route handler while the test waits in a Playwright call
        page.wait_for_timeout(20)
    button = page.locator("#submit-button")
    assert button.is_disabled()
    assert page.locator("#pay-hint").inner_text() == "Updating your order…"
    held[0].continue_()
    page.unroute("**/create-payment-intent")
    page.wait_for_function("() => document.getElementById('total').textContent === '$136.21'")
    page.wait_for_function("() => !document.getElementById('submit-button').disabled")
    assert button.inner_text().strip() == "Pay $136.21"
    assert page.locator("#subtotal").inner_text() == "$127.00"
    assert page.locator("#tax-amount").inner_text() == "$9.21"
    assert line(page, "3").locator(".line-amount").inner_text() == "$56.00"
    assert page.locator("#order-status").inner_text() == "Your order was updated."

    pay(page)
    page.wait_for_url(re.compile(r"/success\?"))
    assert page.locator("h1").inner_text() == "Success!"
    shown = [
        (n.get_attribute("data-item"), n.locator(".line-quantity").inner_text())
        for n in page.locator("#receipt-lines [data-item]").all()
    ]
    assert shown == [("1", "2 ×"), ("2", "1 ×"), ("3", "2 ×")]
    assert page.locator("#receipt-amount").inner_text() == "$136.21"
    intent_id = page.locator("#receipt-intent").inner_text()
    order_id = page.locator("#receipt-order").inner_text()
    assert page.locator("#cart-count").inner_text() == "0"  # what was paid left the cart

    intent = emulator_api(shop.settings, "GET", f"/v1/payment_intents/{intent_id}")
    assert (intent["amount"], intent["amount_received"], intent["status"]) == (
        13621,
        13621,
        "succeeded",
    )
    assert intent["metadata"]["order_id"] == order_id
    assert intent["metadata"]["lines"] == "1x2,2x1,3x2"
    with open_ledger(shop.settings) as ledger:
        order = ledger.get_order(order_id)
        assert (order["payment_intent"], order["amount"]) == (intent_id, 13621)
        lines = ledger.order_lines(order_id)
        assert [(x["item_id"], x["quantity"], x["line_amount"]) for x in lines] == [
            ("1", 2, 4600),
            ("2", 1, 2500),
            ("3", 2, 5600),
        ]
        assert ledger.fulfilment_count(intent_id) == 1
    outbox = shop.settings.data_dir / "outbox"
    receipt = wait_for(lambda: next(iter(outbox.glob(f"{intent_id}.eml")), None), what="receipt")
    assert len([p for p in outbox.glob("*.eml") if intent_id in p.name]) == 1
    text = receipt.read_text()
    assert f"Order:          {order_id}" in text
    assert "2 x The Art of Doing Science and Engineering (book 1)" in text
    assert "1 x The Making of Prince of Persia: Journals 1985-1993 (book 2)" in text
    assert "2 x Working in Public: The Making and Maintenance of Open Source (book 3)" in text
    assert "Subtotal:       $127.00" in text
    assert "Tax:            $9.21" in text
    assert "Total paid:     $136.21" in text
    assert f"To: {EMAIL}" in text


def test_a_cart_changed_in_another_tab_is_shown_before_paying(page, context, shop):
    page.goto(shop.url + "/")
    add_from_catalog(page, "1")
    page.goto(shop.url + "/checkout")
    page.locator("#payment-element [name=number]").wait_for()
    fill_checkout(page)
    wait_for_pay(page)  # quoted for the address: $23.00 + $5.00 + $1.67
    assert page.locator("#total").inner_text() == "$29.67"
    other = context.new_page()  # another tab, same shopper
    other.goto(shop.url + "/")
    add_from_catalog(other, "2")
    other.close()
    pay(page)
    # $48.00 of books ships for $5.00 to San Francisco, with 7.25% on each book.
    page.wait_for_function("() => document.getElementById('total').textContent === '$56.48'")
    # The total shows first; the message once the Elements have the new amount too.
    page.wait_for_function(
        "() => document.getElementById('payment-message').textContent"
        " === 'Your order changed: check the new total, then pay.'"
    )
    assert "/checkout" in page.url  # nothing was confirmed
    assert page.locator("#order-lines [data-item]").count() == 2
    page.wait_for_function("() => !document.getElementById('submit-button').disabled")
    assert page.locator("#submit-button").inner_text().strip() == "Pay $56.48"
    pay(page)
    page.wait_for_url(re.compile(r"/success\?"))
    assert page.locator("#receipt-amount").inner_text() == "$56.48"
    assert page.locator("#receipt-lines [data-item]").count() == 2


def change_at_checkout(page, shop, book_id: str, quantity: str) -> None:
    """A cart of one copy of ``book_id``, at the checkout, its quantity changed there."""
    page.goto(shop.url + "/")
    add_from_catalog(page, book_id)
    page.goto(shop.url + "/checkout")
    page.locator("#payment-element [name=number]").wait_for()
    line(page, book_id).locator("input[name=quantity]").fill(quantity)
    line(page, book_id).locator("input[name=quantity]").dispatch_event("change")


def test_removing_the_last_line_at_checkout_goes_back_to_the_cart(page, shop):
    change_at_checkout(page, shop, "2", "0")
    page.wait_for_url(shop.url + "/cart")
    assert page.locator("#cart-empty").is_visible()


def count_is(page, n: int) -> None:
    page.wait_for_function(
        "(n) => document.getElementById('cart-count').textContent === String(n)", arg=n
    )


def test_back_to_the_catalog_shows_the_cart_count_as_it_is_now(page, shop):
    """Back from the cart to the catalog shows the catalog as it was loaded (from the HTTP
    cache here, from the back-forward cache in a browser that keeps one): its count is asked
    for again, so it is the cart's now, not the one the page was left with."""
    page.goto(shop.url + "/")
    add_from_catalog(page, "2")
    page.goto(shop.url + "/cart")
    quantity = page.locator("#cart-lines [data-item='2'] input[name=quantity]")
    quantity.fill("3")
    quantity.dispatch_event("change")
    count_is(page, 3)
    page.go_back()
    page.wait_for_url(shop.url + "/")
    count_is(page, 3)
    page.goto(shop.url + "/cart")
    page.locator("#cart-lines [data-item='2']").get_by_role("button", name="Remove").click()
    page.locator("#cart-empty").wait_for()  # the emptied cart's page, reloaded
    page.go_back()
    page.wait_for_url(shop.url + "/")
    count_is(page, 0)


@pytest.mark.parametrize("path", ["/", "/no-such-page"])
def test_a_page_restored_from_the_back_forward_cache_shows_the_cart_count_as_it_is_now(
    page, context, shop, path
):
    """Every page shows the count (an error page too). Restored from the back-forward cache
    (pageshow, persisted) it asks the shop for it again. (Chromium under Playwright keeps no
    such cache, so the event is sent as the browser would send it.)"""
    page.goto(shop.url + "/")
    add_from_catalog(page, "1")
    page.goto(shop.url + path)
    count_is(page, 1)
    other = context.new_page()  # another tab, same shopper
    other.goto(shop.url + "/")
    add_from_catalog(other, "1")
    other.close()
    page.evaluate(
        "() => window.dispatchEvent(new PageTransitionEvent('pageshow', {persisted: true}))"
    )
    count_is(page, 2)


def test_a_quantity_changed_at_checkout_changes_the_headers_count(page, shop):
    change_at_checkout(page, shop, "2", "4")
    page.wait_for_function(
        "() => document.getElementById('order-status').textContent === 'Your order was updated.'"
    )
    assert page.locator("#cart-count").inner_text() == "4"


def test_another_apps_json_cookie_before_the_cart_cookie_keeps_the_cart(page, shop):
    """Cookies are kept apart by host, not port: another app on 127.0.0.1 set this one first,
    so Chromium sends it before the cart's (Python's SimpleCookie gave up on the whole header
    at it, and each add started a cart of its own)."""
    page.context.add_cookies([{"name": "prefs", "value": '{"theme":"dark"}', "url": shop.url}])
    page.goto(shop.url + "/")
    for book_id in ("1", "2"):
        add_from_catalog(page, book_id)
    with page.expect_request(shop.url + "/cart") as asked:
        page.get_by_role("link", name="Cart").click()
    page.wait_for_url(shop.url + "/cart")
    assert [n.get_attribute("data-item") for n in page.locator("#cart-lines > li").all()] == [
        "1",
        "2",
    ]
    assert page.locator("#cart-count").inner_text() == "2"
    sent = asked.value.all_headers()["cookie"]
    assert sent.startswith('prefs={"theme":"dark"}; bookpay_cart='), sent


def test_the_cart_works_without_javascript(browser, shop):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(shop.url + "/")
        page.get_by_role("button", name=f"Add to cart ({BOOKS['1'].title})").click()
        page.wait_for_url(shop.url + "/cart")
        page.goto(shop.url + "/")
        page.get_by_role("button", name=f"Add to cart ({BOOKS['3'].title})").click()
        page.wait_for_url(shop.url + "/cart")
        assert page.locator("#cart-count").inner_text() == "2"
        first = page.locator("#cart-lines [data-item='1']")
        first.locator("input[name=quantity]").fill("4")
        first.get_by_role("button", name="Update").click()
        page.wait_for_url(shop.url + "/cart")
        assert page.locator("#cart-subtotal").inner_text() == "$120.00"
        first.locator("input[name=quantity]").fill("10")
        first.get_by_role("button", name="Update").click()
        page.goto(shop.url + "/")
        page.get_by_role("button", name=f"Add to cart ({BOOKS['1'].title})").click()
        assert page.locator("#cart-message").inner_text() == (
            f"You can order at most 10 copies of {BOOKS['1'].title!r}; your cart already has 10."
        )
        first.locator("input[name=quantity]").fill("4")
        first.get_by_role("button", name="Update").click()
        page.wait_for_url(shop.url + "/cart")
        page.locator("#cart-lines [data-item='3']").get_by_role("button", name="Remove").click()
        page.wait_for_url(shop.url + "/cart")
        assert page.locator("#cart-lines [data-item]").count() == 1
        assert page.locator("#cart-count").inner_text() == "4"
    finally:
        context.close()


def test_cart_screenshot(page, shop, request):
    """The cart page, copied to docs/screenshots/ for the README when UPDATE_SCREENSHOTS=1."""
    import os
    import shutil

    folder = request.config.rootpath / "test-artifacts" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1100, "height": 900})
    page.goto(shop.url + "/")
    for book_id in ("1", "1", "2", "3"):
        add_from_catalog(page, book_id)
    page.goto(shop.url + "/cart")
    page.screenshot(path=str(folder / "cart.png"), full_page=True)
    page.goto(shop.url + "/checkout")
    page.locator("#payment-element [name=number]").wait_for()
    fill_checkout(page)
    wait_for_pay(page)  # quoted for the address: free shipping over $50.00, and the tax
    page.screenshot(path=str(folder / "checkout-cart.png"), full_page=True)
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for name in ("cart", "checkout-cart"):
            shutil.copyfile(folder / f"{name}.png", SCREENSHOTS / f"{name}.png")
