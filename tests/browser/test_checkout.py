"""The shop end to end in Chromium: the real server on waitress, the emulator and its Stripe.js.

One server for the module (``create_app`` on a free port, in a thread), a fresh browser context
per test (tests/browser/conftest.py), and the cards of Stripe's testing documentation.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bookpay.catalog import Catalog
from bookpay.config import Settings
from bookpay.server import create_app
from bookpay.web import runner

EMAIL = "ada@example.com"
BOOKS = list(Catalog.default())
# One copy shipped to San Francisco (fill_checkout's address): standard shipping, $5.00, and
# California's 7.25% on the book (shipping is exempt there), from the emulator's TEST rates.
TAX_IN_SF = {"1": "$1.67", "2": "$1.81", "3": "$2.03"}
PAID_IN_SF = {"1": "$29.67", "2": "$31.81", "3": "$35.03"}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="module")
def shop(emulator, tmp_path_factory) -> Iterator[str]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("shop-data"), emulator_url=emulator.url)
    apps = []

    def make_app(own_url: str):
        apps.append(create_app(settings, public_url=own_url))
        return apps[-1]

    server = runner.start(make_app, "127.0.0.1", 0, background=True)
    yield server.url
    server.stop()
    apps[0].close()


def open_checkout(page, shop: str, item: str = "1"):
    page.goto(f"{shop}/checkout?item={item}")
    page.locator("#payment-element [name=number]").wait_for()
    return page


def fill_checkout(page, card: str = "4242424242424242") -> None:
    page.fill("#link-auth-element [name=email]", EMAIL)
    address = page.locator("#address-element")
    address.locator("[name=name]").fill("Ada Lovelace")
    address.locator("[name=addressLine1]").fill("12 Analytical Row")
    address.locator("[name=locality]").fill("San Francisco")
    address.locator("[name=administrativeArea]").fill("CA")
    address.locator("[name=postalCode]").fill("94110")
    fill_card(page, card)


def fill_card(page, card: str) -> None:
    payment = page.locator("#payment-element")
    payment.locator("[name=number]").fill(card)
    payment.locator("[name=expiry]").fill("1234")
    payment.locator("[name=cvc]").fill("123")
    postal = payment.locator("[name=postalCode]")
    if postal.is_visible():
        postal.fill("94110")


def wait_for_pay(page) -> None:
    """Until Pay is enabled: the quote for the address may still be on its way."""
    page.wait_for_function("() => !document.getElementById('submit-button').disabled")


def pay(page) -> None:
    """Press Pay once it is enabled."""
    wait_for_pay(page)
    page.locator("#submit-button").click()


def expect_success(page, book) -> str:
    """The success page of one copy of ``book``; the PaymentIntent's id."""
    page.wait_for_url(re.compile(r"/success\?"))
    heading = page.locator("h1")
    assert heading.inner_text() == "Success!"
    line = page.locator("#receipt-lines [data-item]")
    assert line.count() == 1
    assert line.get_attribute("data-item") == book.id
    assert line.locator(".line-title").inner_text() == book.title
    assert line.locator(".line-quantity").inner_text() == "1 ×"
    assert page.locator("#receipt-subtotal").inner_text() == book.price
    assert page.locator("#receipt-shipping-amount").inner_text() == "$5.00"
    assert page.locator("#receipt-tax").inner_text() == TAX_IN_SF[book.id]
    assert page.locator("#receipt-amount").inner_text() == PAID_IN_SF[book.id]
    intent_id = page.locator("#receipt-intent").inner_text()
    assert re.fullmatch(r"pi_\w+", intent_id)
    assert re.fullmatch(r"ord_[0-9a-f]{16}", page.locator("#receipt-order").inner_text())
    assert page.locator("dt:has(+ #receipt-order)").inner_text() == "Order reference"
    assert page.locator("dt:has(+ #receipt-intent)").inner_text() == "Payment reference"
    assert page.locator("#receipt-email").inner_text() == EMAIL
    shipping = page.locator("#receipt-shipping").inner_text().splitlines()
    assert shipping[0] == "Ada Lovelace"
    assert shipping[-1] == "United States"  # the country's name, not its code
    return intent_id


def message(page) -> str:
    return page.locator("#payment-message").inner_text()


def hint(page) -> str:
    return page.locator("#pay-hint").inner_text()


def focused_id(page) -> str:
    return page.evaluate("document.activeElement ? document.activeElement.id : ''")


def wait_for_message(page) -> None:
    page.wait_for_function(
        "() => document.getElementById('payment-message').textContent.length > 0"
    )


def wait_until_idle(page) -> None:
    page.wait_for_function(
        "() => document.getElementById('payment-form').getAttribute('aria-busy') === 'false'"
    )


@pytest.mark.parametrize("book", BOOKS, ids=[book.id for book in BOOKS])
def test_buy_each_book_from_the_catalog(page, shop, book):
    page.goto(shop + "/")
    assert "Local test mode: payments are emulated" in page.locator("body").inner_text()
    page.get_by_role("link", name=f"Buy now ({book.title}, {book.price})").click()
    page.wait_for_url(f"{shop}/checkout?item={book.id}")
    page.locator("#payment-element [name=number]").wait_for()
    assert page.locator("#retry-button").is_hidden()
    assert page.locator("#submit-button").inner_text().strip() == f"Pay {book.price}"
    assert page.locator("#submit-button").is_disabled()  # nothing filled in yet
    fill_checkout(page)
    pay(page)
    expect_success(page, book)


def test_pay_stays_disabled_until_email_and_address_are_complete(page, shop):
    open_checkout(page, shop)
    fill_card(page, "4242424242424242")
    button = page.locator("#submit-button")
    assert button.is_disabled()
    page.fill("#link-auth-element [name=email]", EMAIL)
    assert button.is_disabled()
    fill_checkout(page)
    page.wait_for_function("() => !document.getElementById('submit-button').disabled")


def test_a_live_hint_says_why_pay_is_disabled(page, shop):
    open_checkout(page, shop)
    button = page.locator("#submit-button")
    pay_hint = page.locator("#pay-hint")
    assert button.get_attribute("aria-describedby") == "pay-hint"
    assert pay_hint.get_attribute("aria-live") == "polite"
    assert button.is_disabled()
    assert hint(page) == "Enter your email address and complete the shipping address to pay."
    page.fill("#link-auth-element [name=email]", EMAIL)
    assert hint(page) == "Complete the shipping address to pay."
    page.fill("#link-auth-element [name=email]", "ada@")
    page.locator("#address-element [name=name]").focus()  # the email field shows its error
    assert hint(page) == "Enter your email address and complete the shipping address to pay."
    field_errors = page.locator(".BookpayElement-error").all_inner_texts()
    assert field_errors and hint(page) not in field_errors  # the hint never repeats them
    fill_checkout(page)
    wait_for_pay(page)  # the quote for the address is asked for when it is complete
    assert hint(page) == ""
    assert pay_hint.is_hidden()
    page.locator("#address-element [name=addressLine1]").fill("")
    assert hint(page) == "Complete the shipping address to pay."
    assert button.is_disabled()


def test_a_declined_card_then_a_good_one_on_the_same_page(page, shop):
    open_checkout(page, shop, "2")
    fill_checkout(page, "4000000000000002")
    pay(page)
    wait_for_message(page)
    assert message(page) == "Your card was declined."
    assert "/checkout" in page.url
    wait_until_idle(page)
    assert focused_id(page) == "payment-message"  # the keyboard is not dropped on <body>
    assert page.locator("#payment-message").get_attribute("tabindex") == "-1"
    fill_card(page, "4242424242424242")
    assert message(page) == ""  # editing clears the last error
    pay(page)
    expect_success(page, BOOKS[1])


def test_insufficient_funds(page, shop):
    open_checkout(page, shop)
    fill_checkout(page, "4000000000009995")
    pay(page)
    page.wait_for_function(
        "() => document.getElementById('payment-message').textContent.length > 0"
    )
    assert message(page) == "Your card has insufficient funds."
    assert page.locator("#submit-button").is_enabled()


def test_an_incomplete_card_is_a_validation_error_shown_once_under_its_field(page, shop):
    open_checkout(page, shop)
    fill_checkout(page, "4242 4242")
    pay(page)
    number = page.locator("#payment-element [name=number]")
    page.wait_for_function(
        "() => document.querySelector('#payment-element [name=number]')"
        ".getAttribute('aria-invalid') === 'true'"
    )
    wait_until_idle(page)
    assert page.locator("#payment-element .BookpayElement-error").inner_text() == (
        "Your card number is incomplete."
    )
    assert message(page) == ""  # not a second time under Pay
    assert "Your card number is incomplete." not in page.locator("#pay-hint").inner_text()
    assert number.evaluate("(input) => input === document.activeElement")
    fill_card(page, "4242424242424242")
    pay(page)
    expect_success(page, BOOKS[0])


def test_fields_are_inert_while_paying_and_focus_stays_on_pay(page, shop, emulator):
    held = []
    page.route(f"{emulator.url}/v1/payment_intents/*/confirm", lambda route: held.append(route))
    open_checkout(page, shop)
    fill_checkout(page, "4000000000000002")
    wait_for_pay(page)
    page.locator("#submit-button").focus()
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => document.getElementById('payment-form').getAttribute('aria-busy') === 'true'"
    )
    while not held:
        page.wait_for_timeout(20)
    # the confirmation is on its way: nothing can be edited, and Pay keeps the keyboard focus
    assert page.locator("#checkout-fields").evaluate("(node) => node.inert")
    for name in ("email", "addressLine1", "number"):
        assert page.locator(f"#checkout-fields [name={name}]").evaluate(
            "(input) => !!input.closest('[inert]')"
        )
    assert focused_id(page) == "submit-button"
    assert page.locator("#submit-button").get_attribute("aria-disabled") == "true"
    assert page.locator("#submit-button").inner_text().strip() == "Processing…"
    page.keyboard.press("Enter")  # the double-submit guard: no second confirmation
    page.wait_for_timeout(200)
    assert len(held) == 1
    held[0].continue_()
    wait_for_message(page)
    wait_until_idle(page)
    assert message(page) == "Your card was declined."
    assert not page.locator("#checkout-fields").evaluate("(node) => node.inert")
    assert page.locator("#submit-button").get_attribute("aria-disabled") is None
    assert focused_id(page) == "payment-message"
    page.unroute(f"{emulator.url}/v1/payment_intents/*/confirm")
    fill_card(page, "4242424242424242")
    pay(page)
    expect_success(page, BOOKS[0])


def test_other_errors_get_a_generic_message(page, shop, emulator):
    page.route(
        f"{emulator.url}/v1/payment_intents/*/confirm",
        lambda route: route.fulfill(
            status=500,
            content_type="application/json",
            body='{"error": {"type": "api_error", "message": "db shard 7 is down"}}',
        ),
    )
    open_checkout(page, shop)
    fill_checkout(page)
    pay(page)
    page.wait_for_function(
        "() => document.getElementById('payment-message').textContent.length > 0"
    )
    assert message(page) == "Something went wrong. Please try again."
    assert page.locator("#submit-button").is_enabled()  # the shopper can try again


def test_3d_secure_completed(page, shop):
    open_checkout(page, shop, "3")
    fill_checkout(page, "4000002760003184")
    pay(page)
    page.locator("#test-source-authorize-3ds").click()
    expect_success(page, BOOKS[2])


def test_3d_secure_failed(page, shop):
    open_checkout(page, shop, "3")
    fill_checkout(page, "4000002760003184")
    pay(page)
    page.locator("#test-source-fail-3ds").click()
    page.wait_for_url(re.compile(r"/success\?"))
    assert page.locator("h1").inner_text() == "Payment failed"
    assert page.locator("#failure-reason").inner_text() == (
        "We are unable to authenticate your payment method. "
        "Please choose a different payment method and try again."
    )
    assert "PaymentMethod" not in page.locator("main").inner_text()
    retry = page.get_by_role("link", name="Try again")
    assert retry.get_attribute("href") == "/checkout?item=3"
    retry.click()
    page.locator("#payment-element [name=number]").wait_for()
    fill_checkout(page)
    pay(page)
    expect_success(page, BOOKS[2])


def test_back_after_paying_says_so_and_buys_again_only_when_asked(page, shop):
    open_checkout(page, shop)
    fill_checkout(page)
    pay(page)
    first = expect_success(page, BOOKS[0])
    first_order = page.locator("#receipt-order").inner_text()
    asked = []
    page.on(
        "request",
        lambda request: asked.append(request.url) if "create-payment-intent" in request.url else 0,
    )
    console_errors = []
    page.on(
        "console",
        lambda msg: console_errors.append(msg.text) if msg.type == "error" else None,
    )
    page.go_back()  # the page asks for its attempt again: the server answers 409
    notice = page.locator("#paid-notice")
    notice.wait_for()
    assert notice.inner_text().startswith(
        f"You already paid for this book (order {first_order}). Buy another copy?"
    )
    assert focused_id(page) == "paid-notice"
    assert page.locator("#payment-form").is_hidden()
    # The notice links to that order's page.
    order_link = page.get_by_role("link", name="See your order")
    assert order_link.is_visible()
    assert f"payment_intent={first}" in order_link.get_attribute("href")
    page.wait_for_timeout(300)
    assert len(asked) == 1  # the finished attempt only: no new PaymentIntent yet
    # the 409 is expected: only the browser's own network line, never the page's console.error
    assert [text for text in console_errors if "Failed to load resource" not in text] == []
    page.get_by_role("button", name="Buy another copy").click()
    page.locator("#payment-element [name=number]").wait_for()
    assert notice.is_hidden()
    assert len(asked) == 2
    page.wait_for_function(
        "() => document.activeElement && document.activeElement.name === 'email'"
    )
    fill_checkout(page)
    pay(page)
    assert expect_success(page, BOOKS[0]) != first


def test_the_already_paid_notice_opens_that_orders_page(page, shop):
    open_checkout(page, shop, "2")
    fill_checkout(page)
    pay(page)
    first = expect_success(page, BOOKS[1])
    page.go_back()
    page.get_by_role("link", name="See your order").click()
    assert expect_success(page, BOOKS[1]) == first


def test_the_card_brand_shows_as_the_number_is_typed(page, shop):
    open_checkout(page, shop)
    number = page.locator("#payment-element [name=number]")
    brand = page.locator("#payment-element .BookpayElement-brand")
    assert brand.is_hidden()
    for typed, name in (
        ("4242", "Visa"),
        ("5555 5555", "Mastercard"),
        ("3782 822463", "American Express"),
        ("6011 1111", "Discover"),
        ("3056 9300", "Diners Club"),
        ("3566 0020", "JCB"),
        ("6200 0000", "UnionPay"),
    ):
        number.fill("")
        number.press_sequentially(typed)
        assert brand.inner_text() == name
        assert brand.is_visible()
        # The badge sits inside the field, at its right end.
        box, badge = number.bounding_box(), brand.bounding_box()
        assert box["x"] + box["width"] / 2 < badge["x"]
        assert badge["x"] + badge["width"] <= box["x"] + box["width"]
    number.fill("")
    number.press_sequentially("9")
    assert brand.is_hidden()  # an unknown brand shows nothing


def test_when_stripe_js_cannot_load_only_the_message_and_retry_show(page, shop, emulator):
    page.route(f"{emulator.url}/v3/**", lambda route: route.abort())
    page.goto(f"{shop}/checkout?item=1")
    retry = page.locator("#retry-button")
    retry.wait_for()
    assert "Stripe.js did not load" in message(page)
    for heading in ("#contact-heading", "#shipping-heading", "#payment-heading"):
        assert page.locator(heading).is_hidden()
    assert page.locator("#submit-button").is_visible()  # disabled, under the message
    assert page.locator("#submit-button").is_disabled()


def test_the_payment_intent_is_asked_for_while_the_scripts_still_load(page, shop, emulator):
    """The page's inline script asks for the attempt's PaymentIntent first thing: Stripe.js and
    checkout.js held back do not hold the request back, and the form still mounts once they
    arrive."""
    held = []
    page.route(f"{emulator.url}/v3/**", lambda route: held.append(route))
    page.route(f"{shop}/static/checkout.js*", lambda route: held.append(route))
    answered = []
    page.on(
        "response",
        lambda r: answered.append(r.status) if r.url.endswith("/create-payment-intent") else None,
    )
    page.goto(f"{shop}/checkout?item=2", wait_until="commit")
    for _ in range(500):  # at most 10 s: Playwright runs the handlers while the test waits
        if len(held) == 2 and answered:
            break
        page.wait_for_timeout(20)
    assert answered == [200]  # the PaymentIntent is there, and neither script is yet
    assert page.evaluate("typeof window.Stripe") == "undefined"
    page.wait_for_timeout(200)  # the page parsed meanwhile: it must wait for Stripe.js, not fail
    assert page.locator("#payment-message").inner_text() == ""
    for route in held:
        route.continue_()
    page.unroute(f"{emulator.url}/v3/**")
    page.unroute(f"{shop}/static/checkout.js*")
    page.locator("#payment-element [name=number]").wait_for()
    assert answered == [200]  # checkout.js used that answer: no second request
    fill_checkout(page)
    pay(page)
    expect_success(page, BOOKS[1])


def test_the_3d_secure_page_uses_the_shops_fonts(page, shop):
    page.goto(shop + "/")
    shop_font = page.evaluate("getComputedStyle(document.body).fontFamily")
    open_checkout(page, shop, "3")
    fill_checkout(page, "4000002760003184")
    pay(page)
    button = page.locator("#test-source-authorize-3ds")
    button.wait_for()
    assert page.evaluate("getComputedStyle(document.body).fontFamily") == shop_font
    assert button.evaluate("b => getComputedStyle(b).fontFamily") == shop_font


def test_a_server_error_is_shown_with_a_retry_button(page, shop):
    page.route(
        "**/create-payment-intent",
        lambda route: route.fulfill(
            status=500,
            content_type="application/json",
            body='{"error": {"message": "Payments are down for a moment.", "code": "x"}}',
        ),
    )
    page.goto(f"{shop}/checkout?item=1")
    retry = page.locator("#retry-button")
    retry.wait_for()
    assert message(page) == "Payments are down for a moment."
    assert page.locator("#submit-button").is_disabled()
    page.unroute("**/create-payment-intent")
    retry.click()
    page.locator("#payment-element [name=number]").wait_for()
    assert retry.is_hidden()


def test_elements_that_fail_to_load_offer_a_retry(page, shop, emulator):
    page.route(
        f"{emulator.url}/v1/payment_intents/**",
        lambda route: route.fulfill(status=500, content_type="application/json", body="{}"),
    )
    page.goto(f"{shop}/checkout?item=2")
    page.locator("#retry-button").wait_for()
    assert message(page)
    assert page.locator("#submit-button").is_disabled()


def test_unknown_item_shows_the_404_page(page, shop):
    response = page.goto(f"{shop}/checkout?item=nope")
    assert response.status == 404
    assert page.locator("h1").inner_text() == "Page not found"
    page.get_by_role("link", name="Back to the books").click()
    page.wait_for_url(shop + "/")
    assert page.locator("h1").inner_text() == "Books"


def test_checkout_with_an_empty_cart_leads_back_to_the_catalog(page, shop):
    page.goto(f"{shop}/checkout")
    page.wait_for_url(shop + "/cart")
    assert page.locator("h1").inner_text() == "Your cart"
    assert page.locator("#cart-empty").inner_text().startswith("Your cart is empty.")
    page.get_by_role("link", name="Browse the books").click()
    page.wait_for_url(shop + "/")
    assert page.locator("h1").inner_text() == "Books"


NO_SCRIPT = (
    "Paying needs JavaScript, which is turned off in this browser: turn it on to see the "
    "payment form."
)


def test_without_javascript_the_checkout_says_paying_needs_it_and_what_still_works(browser, shop):
    """With JavaScript off the payment form cannot load: the page says so (not only a disabled
    Pay asking for an email no field takes), and what works without it does: the order, and
    for a cart its quantities (their forms post)."""
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{shop}/checkout?item=1")
        said = page.locator("#no-script-message")
        assert said.is_visible()
        assert said.inner_text() == NO_SCRIPT + " You can still review your order here."
        added = page.request.post(
            f"{shop}/cart/items", form={"item": "2", "quantity": "1"}, headers={"Origin": shop}
        )
        assert added.ok, added.text()
        page.goto(f"{shop}/checkout")
        assert said.inner_text() == (
            NO_SCRIPT + " You can still review your order and change its quantities here."
        )
        quantity = page.locator("#order-lines [data-item='2'] input[name=quantity]")
        quantity.fill("2")
        with page.expect_navigation():  # the line's form posts; the shop shows the checkout
            quantity.press("Enter")
        assert page.url == f"{shop}/checkout"
        assert page.locator("#subtotal").inner_text() == "$50.00"
        assert said.is_visible()
    finally:
        context.close()
    page = browser.new_page()  # with JavaScript on, the message is never shown
    try:
        page.goto(f"{shop}/checkout?item=1")
        page.locator("#payment-element [name=number]").wait_for()
        assert not page.locator("#no-script-message").is_visible()
    finally:
        page.close()


def tap_targets_too_small(page) -> list[str]:
    """Visible links and buttons under 44px tall, except links inside a sentence."""
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('a, button')).filter((el) => {
            const box = el.getBoundingClientRect();
            if (!box.width || !box.height) return false;
            const inSentence = el.tagName === 'A' && el.parentElement
                && el.parentElement.textContent.trim() !== el.textContent.trim();
            return !inSentence && box.height < 44;
        }).map((el) => el.outerHTML.slice(0, 80) + ' ' + el.getBoundingClientRect().height)"""
    )


def test_tap_targets_on_a_phone_are_at_least_44px(page, shop):
    page.set_viewport_size({"width": 375, "height": 667})
    page.goto(shop + "/")
    assert tap_targets_too_small(page) == []
    open_checkout(page, shop, "1")
    assert page.locator(".back-link").bounding_box()["height"] >= 44
    assert tap_targets_too_small(page) == []
    fill_checkout(page)
    pay(page)
    expect_success(page, BOOKS[0])
    assert tap_targets_too_small(page) == []
    page.goto(f"{shop}/checkout?item=nope")
    assert tap_targets_too_small(page) == []


@pytest.mark.parametrize("width", [375, 1100])
def test_header_lines_up_with_the_content(page, shop, width):
    page.set_viewport_size({"width": width, "height": 900})
    for target in ("/", "/checkout?item=1"):
        page.goto(shop + target)
        brand = page.locator(".brand").bounding_box()["x"]
        content = page.evaluate(
            """() => {
                const main = document.querySelector('main');
                return main.getBoundingClientRect().left
                    + parseFloat(getComputedStyle(main).paddingLeft);
            }"""
        )
        assert abs(brand - content) < 1, (target, brand, content)


def test_checkout_works_on_a_phone(page, shop):
    page.set_viewport_size({"width": 375, "height": 667})
    page.goto(shop + "/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    open_checkout(page, shop, "1")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    box = page.locator("#submit-button").bounding_box()
    assert box["width"] <= 375 and box["height"] >= 44  # a comfortable tap target
    fill_checkout(page)
    pay(page)
    expect_success(page, BOOKS[0])
    assert page.evaluate("document.documentElement.scrollWidth") <= 375


def test_screenshots(page, shop, request):
    """Catalog, checkout and success pages; copied to docs/screenshots/ for the README when
    UPDATE_SCREENSHOTS=1 (scripts/screenshots.py sets it)."""
    folder = request.config.rootpath / "test-artifacts" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1100, "height": 900})
    page.goto(shop + "/")
    page.screenshot(path=str(folder / "catalog.png"), full_page=True)
    open_checkout(page, shop, "1")
    fill_checkout(page)
    wait_for_pay(page)  # the delivery options, shipping and tax for the address are shown
    page.screenshot(path=str(folder / "checkout.png"), full_page=True)
    pay(page)
    expect_success(page, BOOKS[0])
    page.screenshot(path=str(folder / "success.png"), full_page=True)
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for name in ("catalog", "checkout", "success"):
            shutil.copyfile(folder / f"{name}.png", SCREENSHOTS / f"{name}.png")
