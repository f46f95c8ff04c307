"""The checkout and cart pages under hostile conditions: refusals the page cannot mend by asking
again, answers that are not the shop's JSON, a tab restored from the back-forward cache,
quantities no shopper should be able to send, and a browser that blocks sessionStorage.

One shop for the module, whose catalog has the default books and a $0.30 pin (below the $0.50
Stripe charges at least in US dollars, so the shop refuses to check it out: 400
amount_too_small).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import pytest
from test_checkout import (
    fill_checkout,
    focused_id,
    message,
    open_checkout,
    pay,
    wait_for_pay,
)

from bookpay.catalog import DEFAULT_BOOKS, Book, Catalog
from bookpay.config import Settings
from bookpay.server import create_app
from bookpay.web import runner

PIN = Book(id="pin", title="A pin", author="X", amount=30, currency="usd", description="A pin.")
MARKUP = '<img src=x class=injected onerror="document.title=1">'
BAIT = Book(id="bait", title=MARKUP, author=MARKUP, amount=900, currency="usd", description=MARKUP)


@contextlib.contextmanager
def shop_selling(emulator, folder, *books: Book, catalog: Catalog | None = None) -> Iterator[str]:
    """A shop of its own (its ledger in ``folder``, the session's emulator) whose catalog adds
    ``books`` to the built-in ones (or is ``catalog``): its URL while it runs."""
    catalog = catalog if catalog is not None else Catalog((*DEFAULT_BOOKS, *books))
    settings = Settings(data_dir=folder, emulator_url=emulator.url)
    apps = []

    def make_app(own_url: str):
        apps.append(create_app(settings, catalog=catalog, public_url=own_url))
        return apps[-1]

    server = runner.start(make_app, "127.0.0.1", 0, background=True)
    try:
        yield server.url
    finally:
        server.stop()
        apps[0].close()


@pytest.fixture(scope="module")
def shop(emulator, tmp_path_factory) -> Iterator[str]:
    with shop_selling(emulator, tmp_path_factory.mktemp("hostile-shop"), PIN, BAIT) as url:
        yield url


def add_to_cart(page, shop: str, item: str, quantity: int = 1) -> None:
    answer = page.request.post(
        f"{shop}/cart/items",
        data={"item": item, "quantity": quantity},
        headers={"Origin": shop},
    )
    assert answer.ok, answer.text()


def test_a_total_stripe_cannot_charge_is_refused_with_the_way_back_and_no_retry(page, shop):
    page.goto(f"{shop}/checkout?item=pin")
    page.wait_for_function("() => document.getElementById('payment-message').textContent")
    assert message(page) == (
        "Your order's total, $0.30, is less than $0.50, the smallest payment Stripe takes in "
        "USD: add a book to reach it."
    )
    assert page.locator("#retry-button").is_hidden()
    assert page.locator("#submit-button").is_hidden()
    back = page.locator("#refused-link")
    assert back.inner_text() == "Back to the books"
    back.click()
    page.wait_for_url(shop + "/")


def test_a_cart_refused_by_the_shop_leads_back_to_the_cart(page, shop):
    page.goto(shop + "/")
    add_to_cart(page, shop, "pin")
    page.goto(f"{shop}/checkout")
    page.locator("#refused-link").wait_for()
    assert "add a book to reach it" in message(page)
    assert page.locator("#retry-button").is_hidden()
    page.locator("#refused-link").click()
    page.wait_for_url(shop + "/cart")


def test_a_server_failure_keeps_its_retry(page, shop):
    page.route(
        "**/create-payment-intent",
        lambda route: route.fulfill(
            status=502, content_type="text/html", body="<html><h1>502 Bad Gateway</h1></html>"
        ),
    )
    page.goto(f"{shop}/checkout?item=1")
    retry = page.locator("#retry-button")
    retry.wait_for()
    assert message(page) == "Something went wrong. Please try again."
    assert page.locator("#refused-link").is_hidden()
    page.unroute("**/create-payment-intent")
    retry.click()
    page.locator("#payment-element [name=number]").wait_for()


def test_a_tab_restored_from_the_back_forward_cache_asks_the_shop_again(page, shop, emulator):
    """After Pay the page leaves while "Processing…"; restored from the back-forward cache
    (pageshow, persisted) it would stay so, frozen, whatever became of the payment. It reloads
    instead: the shop says how the attempt stands. (Chromium under Playwright keeps no such
    cache, so the event is sent as the browser would send it.)"""
    held = []
    page.route(f"{emulator.url}/v1/payment_intents/*/confirm", lambda route: held.append(route))
    open_checkout(page, shop)
    fill_checkout(page)
    pay(page)
    while not held:
        page.wait_for_timeout(20)
    assert page.locator("#submit-button").inner_text().strip() == "Processing…"
    with page.expect_navigation(timeout=5_000):
        page.evaluate(
            "() => window.dispatchEvent(new PageTransitionEvent('pageshow', {persisted: true}))"
        )
    page.locator("#payment-element [name=number]").wait_for()
    assert page.locator("#submit-button").inner_text().strip().startswith("Pay $")
    assert page.locator("#payment-form").get_attribute("aria-busy") != "true"


@pytest.mark.parametrize("status", [502, 200, 408])
def test_a_quote_answered_by_a_proxy_in_html_is_asked_again(page, shop, status):
    """A proxy's HTML page instead of the shop's quote (a 502, a 200 from a captive portal, a
    408 timeout) is no answer about the address: the page asks again, and never shows a
    script's error."""
    answered = []

    def proxy_once(route):
        if answered:
            route.continue_()
            return
        answered.append(route.request.url)
        route.fulfill(status=status, content_type="text/html", body="<html>Bad Gateway</html>")

    page.route("**/checkout/quote", proxy_once)
    open_checkout(page, shop)
    shown = []
    page.on("console", lambda msg: shown.append(msg.text) if msg.type == "error" else None)
    fill_checkout(page)
    wait_for_pay(page)
    assert answered
    rates = page.locator("#shipping-rates-message").inner_text()
    assert "undefined" not in rates and "Cannot read" not in rates
    assert page.locator("#shipping-amount").inner_text() == "$5.00"
    pay(page)
    page.wait_for_url(re.compile(r"/success\?"))


def cart_line(page, item: str):
    return page.locator(f"#cart-lines [data-item='{item}']")


def server_quantities(page, shop: str) -> dict[str, int]:
    cart = page.request.get(f"{shop}/cart", headers={"Accept": "application/json"}).json()
    return {line["item"]: line["quantity"] for line in cart["cart"]["lines"]}


@pytest.mark.parametrize("typed", ["-3", "99999999999999999999", "1e3", ""])
def test_a_refused_quantity_on_the_cart_page_shows_the_quantity_the_cart_has(page, shop, typed):
    page.goto(shop + "/")
    add_to_cart(page, shop, "1", 2)
    page.goto(shop + "/cart")
    quantity = cart_line(page, "1").locator("input[name=quantity]")
    quantity.fill(typed)
    quantity.dispatch_event("change")
    page.wait_for_function("() => document.getElementById('cart-message').textContent")
    assert page.locator("#cart-lines").get_attribute("aria-busy") == "false"
    assert server_quantities(page, shop) == {"1": 2}
    assert quantity.input_value() == "2"  # not what was refused, beside the old subtotal
    assert page.locator("#cart-subtotal").inner_text() == "$46.00"


def test_quantities_changed_quickly_on_the_cart_page_go_in_order(page, shop):
    """Two changes while the first is still on its way: the last one typed is what the cart
    keeps (the second is not sent past the first)."""
    page.goto(shop + "/")
    add_to_cart(page, shop, "1")
    page.goto(shop + "/cart")
    held = []

    def hold_first(route):
        if held:
            route.continue_()
        else:
            held.append(route)

    page.route("**/cart/items/1", hold_first)
    quantity = cart_line(page, "1").locator("input[name=quantity]")
    quantity.fill("3")
    quantity.dispatch_event("change")
    while not held:
        page.wait_for_timeout(20)
    quantity.fill("5")
    quantity.dispatch_event("change")
    page.wait_for_timeout(300)
    held[0].continue_()
    page.wait_for_function(
        "() => document.getElementById('cart-subtotal').textContent === '$115.00'"
    )
    page.wait_for_timeout(300)
    assert server_quantities(page, shop) == {"1": 5}
    assert quantity.input_value() == "5"
    assert page.locator("#cart-subtotal").inner_text() == "$115.00"


def no_markup(page) -> None:
    assert page.locator("img.injected").count() == 0, page.url
    for frame in page.frames:
        assert frame.locator("img.injected").count() == 0, frame.url


def test_a_title_and_an_address_with_markup_are_shown_as_text_everywhere(page, shop):
    page.goto(shop + "/")
    page.get_by_role("button", name=f"Add to cart ({MARKUP})").click()
    page.wait_for_function("() => document.getElementById('cart-count').textContent === '1'")
    assert page.locator(".book .add-status:not(:empty)").inner_text().startswith(MARKUP)
    no_markup(page)
    page.goto(shop + "/cart")
    assert cart_line(page, "bait").locator(".line-title").inner_text() == MARKUP
    no_markup(page)
    page.goto(shop + "/checkout")
    page.locator("#payment-element [name=number]").wait_for()
    fill_checkout(page)
    page.locator("#address-element [name=name]").fill(MARKUP)
    wait_for_pay(page)
    assert page.locator("#order-lines .line-title").inner_text() == MARKUP
    no_markup(page)
    pay(page)
    page.wait_for_url(re.compile(r"/success\?"))
    assert page.locator("#receipt-lines .line-title").inner_text() == MARKUP
    assert page.locator("#receipt-shipping").inner_text().splitlines()[0] == MARKUP
    no_markup(page)


@pytest.mark.parametrize("typed", ["-3", "11", ""])
def test_a_refused_quantity_at_checkout_shows_the_quantity_of_the_order(page, shop, typed):
    page.goto(shop + "/")
    add_to_cart(page, shop, "1", 2)
    page.goto(shop + "/checkout")
    page.locator("#payment-element [name=number]").wait_for()
    quantity = page.locator("#order-lines [data-item='1'] input[name=quantity]")
    quantity.fill(typed)
    quantity.dispatch_event("change")  # the field keeps the focus, as after Enter
    page.wait_for_function(
        "() => /copies|quantity/i.test(document.getElementById('order-status').textContent)"
    )
    assert server_quantities(page, shop) == {"1": 2}
    assert quantity.input_value() == "2"
    assert page.locator("#subtotal").inner_text() == "$46.00"


@pytest.mark.parametrize("pressed", ["next-lines-update", "back-to-the-cart"])
def test_a_press_as_a_typed_quantity_is_answered_at_checkout_is_never_lost(page, shop, pressed):
    """As on the cart page: 0 typed in the first line's quantity, its field still focused, then
    the next line's Update (or the way back to the cart, under the order) pressed. The press
    sends the change, which takes the first line away (and says the order is being updated,
    above the way back) before the press ends: the page shows none of it until the press is
    over, so the press ends on what it began on."""
    page.add_init_script(NOTE_ANSWERS_READ)
    add_to_cart(page, shop, "1")
    add_to_cart(page, shop, "2")
    page.goto(shop + "/checkout")
    page.locator("#payment-element [name=number]").wait_for()
    page.locator("#order-lines [data-item='1'] input[name=quantity]").fill("0")
    if pressed == "back-to-the-cart":
        press_while_answered(page, page.locator(".summary .back-link"), "/create-payment-intent")
        page.wait_for_url(shop + "/cart")
        assert server_quantities(page, shop) == {"2": 1}
        return
    with page.expect_request("**/cart/items/2"):  # the Update's own change, sent once clicked
        press_while_answered(
            page,
            page.locator("#order-lines [data-item='2'] .line-update"),
            "/create-payment-intent",
        )
    page.wait_for_function(
        "() => document.getElementById('order-lines').getAttribute('aria-busy') === 'false'"
    )
    assert page.locator("#order-lines > li").evaluate_all(
        "(ls) => ls.map((l) => l.dataset.item)"
    ) == ["2"]
    assert server_quantities(page, shop) == {"2": 1}


LAST_LOOK = "**/create-payment-intent"  # Pay's last look at the order, just before confirming


def ready_to_pay(page, shop: str) -> list[str]:
    """The checkout of book 1, filled in and ready to pay; the confirms it will send."""
    open_checkout(page, shop)
    fill_checkout(page)
    wait_for_pay(page)
    confirms: list[str] = []
    page.on("request", lambda r: confirms.append(r.url) if r.url.endswith("/confirm") else None)
    return confirms


def test_a_refusal_of_pays_last_look_shows_the_way_back_and_no_pay(page, shop):
    """A 4xx refusal of the last look (here: the book no longer sold) is a refusal of the
    order, as at the checkout's creation: its message, the way back, and no Pay to press."""
    confirms = ready_to_pay(page, shop)
    page.route(
        LAST_LOOK,
        lambda route: route.fulfill(
            status=404,
            content_type="application/json",
            body='{"error": {"message": "We no longer sell that book.", "code": "unknown_item"}}',
        ),
    )
    pay(page)
    page.locator("#refused-link").wait_for()
    assert message(page) == "We no longer sell that book."
    assert page.locator("#refused-link").inner_text() == "Back to the books"
    assert page.locator("#submit-button").is_hidden()
    assert page.locator("#retry-button").is_hidden()
    assert page.locator("#payment-form").get_attribute("aria-busy") == "false"
    assert focused_id(page) == "payment-message"
    assert confirms == []


SAFE = "Nothing was charged: please try again, you will not be charged twice."


@pytest.mark.parametrize(
    "answer",
    [
        {
            "status": 500,
            "content_type": "application/json",
            "body": '{"error": {"message": "Something went wrong on our side. Please try again.",'
            ' "code": "internal_error"}}',
        },
        {"status": 502, "content_type": "text/html", "body": "<html>Bad Gateway</html>"},
        {"status": 200, "content_type": "text/html", "body": "<html>Sign in to the Wi-Fi</html>"},
        None,  # the connection lost
    ],
    ids=["500", "502-html", "200-html", "unreached"],
)
def test_no_answer_to_pays_last_look_offers_to_pay_again_safely(page, shop, answer):
    """A server failure, a proxy's page or a lost connection instead of the last look's answer:
    nothing was confirmed, so the page says paying again is safe and offers Try again, which
    pays (the same attempt, the same PaymentIntent)."""
    confirms = ready_to_pay(page, shop)
    page.route(
        LAST_LOOK, lambda route: route.fulfill(**answer) if answer else route.abort("failed")
    )
    pay(page)
    retry = page.locator("#retry-button")
    retry.wait_for()
    said = "Could not reach the shop." if answer is None else "The shop did not answer."
    assert message(page) == f"{said} {SAFE}"
    assert retry.inner_text() == "Try again"
    assert page.locator("#refused-link").is_hidden()
    assert focused_id(page) == "payment-message"
    assert confirms == []
    page.unroute(LAST_LOOK)
    retry.click()
    page.wait_for_url(re.compile(r"/success\?"))
    assert page.locator("#receipt-amount").inner_text() == "$29.67"


def test_the_cart_page_restored_from_the_back_forward_cache_asks_the_shop_again(page, shop):
    """Restored from the back-forward cache (pageshow, persisted) the cart page would show the
    cart as it was left, though it changed since (another tab). It reloads instead. (Chromium
    under Playwright keeps no such cache, so the event is sent as the browser would send it.)"""
    page.goto(shop + "/")
    add_to_cart(page, shop, "1")
    page.goto(shop + "/cart")
    add_to_cart(page, shop, "1", 2)  # elsewhere: the cart now holds 3
    assert server_quantities(page, shop) == {"1": 3}
    with page.expect_navigation(timeout=5_000):
        page.evaluate(
            "() => window.dispatchEvent(new PageTransitionEvent('pageshow', {persisted: true}))"
        )
    quantity = cart_line(page, "1").locator("input[name=quantity]")
    assert quantity.input_value() == "3"
    assert page.locator("#cart-subtotal").inner_text() == "$69.00"


def rate_limited(wait: int, *, json: bool = True) -> dict:
    """A 429 with Retry-After: the shop's own (JSON), or a proxy's (HTML)."""
    body = (
        '{"error": {"message": "Too many payment requests for this checkout: try again in'
        f' {wait} s.", "code": "rate_limited"}}}}'
    )
    return {
        "status": 429,
        "headers": {"Retry-After": str(wait)},
        "content_type": "application/json" if json else "text/html",
        "body": body if json else "<html>Too Many Requests</html>",
    }


def test_pays_last_look_timed_out_says_so_and_offers_to_pay_again_safely(page, shop):
    """A 408 is a timeout, not a failure of the shop: said as such; nothing was confirmed."""
    confirms = ready_to_pay(page, shop)
    page.route(
        LAST_LOOK,
        lambda route: route.fulfill(status=408, content_type="text/html", body="<html>408</html>"),
    )
    pay(page)
    retry = page.locator("#retry-button")
    retry.wait_for()
    assert message(page) == f"The shop took too long to answer. {SAFE}"
    assert page.locator("#refused-link").is_hidden()
    assert confirms == []
    page.unroute(LAST_LOOK)
    retry.click()
    page.wait_for_url(re.compile(r"/success\?"))
    assert page.locator("#receipt-amount").inner_text() == "$29.67"


def test_pays_last_look_rate_limited_says_when_to_pay_again_and_waits_till_then(page, shop):
    """A 429 is the shop asking to wait: the page says for how long (its Retry-After), that
    nothing was charged, and offers neither Pay nor Try again before then."""
    confirms = ready_to_pay(page, shop)
    page.route(LAST_LOOK, lambda route: route.fulfill(**rate_limited(2)))
    pay(page)
    page.wait_for_function("() => document.getElementById('payment-message').textContent")
    assert message(page) == (
        "The shop is busy. Nothing was charged: please try again in 2 s, you will not be"
        " charged twice."
    )
    retry = page.locator("#retry-button")
    assert retry.is_hidden()
    assert page.locator("#submit-button").is_disabled()
    assert page.locator("#refused-link").is_hidden()
    assert focused_id(page) == "payment-message"
    page.unroute(LAST_LOOK)
    retry.wait_for(timeout=5_000)
    assert retry.inner_text() == "Try again"
    assert not page.locator("#submit-button").is_disabled()
    assert confirms == []
    retry.click()
    page.wait_for_url(re.compile(r"/success\?"))
    assert page.locator("#receipt-amount").inner_text() == "$29.67"


@pytest.mark.parametrize("json", [True, False], ids=["shop", "proxy"])
def test_a_rate_limited_checkout_says_when_to_try_again_and_offers_it_then(page, shop, json):
    page.route(LAST_LOOK, lambda route: route.fulfill(**rate_limited(2, json=json)))
    page.goto(f"{shop}/checkout?item=1")
    page.wait_for_function("() => document.getElementById('payment-message').textContent")
    assert message(page) == "The shop is busy. Please try again in 2 s."
    retry = page.locator("#retry-button")
    assert retry.is_hidden()
    page.unroute(LAST_LOOK)
    retry.wait_for(timeout=5_000)
    retry.click()
    page.locator("#payment-element [name=number]").wait_for()


def test_a_rate_limited_quote_says_the_page_asks_again_and_then_does(page, shop):
    answered = []

    def limited_once(route):
        if answered:
            route.continue_()
            return
        answered.append(route.request.url)
        route.fulfill(**rate_limited(3, json=False))

    page.route("**/checkout/quote", limited_once)
    open_checkout(page, shop)
    fill_checkout(page)
    page.wait_for_function(
        "() => document.getElementById('shipping-rates-message').textContent"
        " === 'The shop is busy. Trying again in 3 s…'"
    )
    wait_for_pay(page)
    assert page.locator("#shipping-amount").inner_text() == "$5.00"


@pytest.mark.parametrize("status", [408, 429])
def test_a_quantity_change_the_shop_could_not_take_now_is_not_marked_refused(page, shop, status):
    """A timeout or a rate limit on a quantity's change says so; the quantity is not invalid
    (the shop did not refuse it) and shows what the order has."""
    page.goto(shop + "/")
    add_to_cart(page, shop, "1", 2)
    page.goto(shop + "/checkout")
    page.locator("#payment-element [name=number]").wait_for()
    answer = rate_limited(2, json=False) if status == 429 else {"status": 408, "body": "late"}
    page.route("**/cart/items/1", lambda route: route.fulfill(**answer))
    quantity = page.locator("#order-lines [data-item='1'] input[name=quantity]")
    quantity.fill("3")
    quantity.dispatch_event("change")
    page.wait_for_function(
        "() => /busy|too long/.test(document.getElementById('order-status').textContent)"
    )
    said = page.locator("#order-status").inner_text()
    if status == 429:
        assert said == "The shop is busy. Please try again in 2 s."
    else:
        assert said == "The shop took too long to answer. Please try again."
    assert quantity.get_attribute("aria-invalid") is None
    assert quantity.input_value() == "2"
    assert server_quantities(page, shop) == {"1": 2}


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 200, "content_type": "text/html", "body": "<html>proxy</html>"},
        {"status": 200, "content_type": "application/json", "body": "not json"},
        {"status": 200, "content_type": "application/json", "body": '{"ok": true}'},
    ],
    ids=["html", "not-json", "json-without-cart"],
)
def test_a_quantity_change_answered_200_without_the_cart_is_not_taken_for_done(page, shop, answer):
    """A 200 that is not the shop's cart (a proxy's page) did not change the order: the page
    says something went wrong, not that the order was updated, and the field shows what the
    order holds."""
    page.goto(shop + "/")
    add_to_cart(page, shop, "1", 2)
    page.goto(shop + "/checkout")
    page.locator("#payment-element [name=number]").wait_for()
    page.route("**/cart/items/1", lambda route: route.fulfill(**answer))
    quantity = page.locator("#order-lines [data-item='1'] input[name=quantity]")
    quantity.fill("5")
    quantity.dispatch_event("change")  # the field keeps the focus, as after Enter
    page.wait_for_function(
        "() => document.getElementById('order-lines').getAttribute('aria-busy') === 'false'"
        " && document.getElementById('order-status').textContent !== 'Updating your order…'"
    )
    assert page.locator("#order-status").inner_text() == "Something went wrong. Please try again."
    assert quantity.input_value() == "2"
    assert quantity.get_attribute("aria-invalid") is None  # not refused: could not be taken
    assert server_quantities(page, shop) == {"1": 2}
    assert page.locator("#subtotal").inner_text() == "$46.00"


# Chrome with the site's cookies blocked throws on every use of `window.sessionStorage`.
NO_STORAGE = """Object.defineProperty(window, 'sessionStorage', {get() {
  throw new DOMException('Access is denied for this document.', 'SecurityError'); }});"""


@pytest.mark.parametrize("cart", [False, True], ids=["buy-now", "cart"])
def test_with_storage_blocked_the_page_pays_its_one_attempt(
    page, bookpay_shop, stripe_emulator, cart
):
    """Storage blocked, the page cannot keep its attempt across a reload, but every ask of the
    page (the first, and Pay's last look at the order) names the same attempt: one PaymentIntent,
    paid, and no reload of the checkout on the way."""
    page.add_init_script(NO_STORAGE)
    asked: list[str] = []
    page.on(
        "request",
        lambda r: (
            asked.append(r.post_data_json["attemptId"])
            if r.url.endswith("/create-payment-intent")
            else None
        ),
    )
    if cart:
        add_to_cart(page, bookpay_shop.url, "1")
        page.goto(f"{bookpay_shop.url}/checkout")
    else:
        page.goto(f"{bookpay_shop.url}/checkout?item=1")
    assert (
        page.evaluate(
            "() => { try { sessionStorage; return 'kept'; } catch (e) { return e.name; } }"
        )
        == "SecurityError"
    )
    page.locator("#payment-element [name=number]").wait_for()
    loads: list[str] = []
    page.on("framenavigated", lambda f: loads.append(f.url) if f == page.main_frame else None)
    fill_checkout(page)
    pay(page)
    page.wait_for_url(re.compile(r"/success\?"))
    assert page.locator("#receipt-amount").inner_text() == "$29.67"
    assert len(loads) == 1  # the success page: the checkout was never loaded again
    assert len(asked) == 2  # the page's first ask and Pay's last look
    assert len(set(asked)) == 1
    intents = stripe_emulator.api("GET", "/v1/payment_intents")["data"]
    assert [(i["status"], i["metadata"]["attempt_id"]) for i in intents] == [
        ("succeeded", asked[0])
    ]


UNREACHED = "Could not reach the shop. Check your connection and try again."
ANSWER_WAIT_MS = 30_000  # how long the page waits for an answer of the shop's


def never_answered(page, pattern: str) -> list:
    """Requests to ``pattern`` from now on are held, never answered (a hung connection); the
    page's clock is Playwright's, so its wait can be skipped through. The held requests."""
    held: list = []
    page.route(pattern, lambda route: held.append(route))
    return held


def wait_until_held(page, held: list) -> None:
    while not held:
        page.wait_for_timeout(20)


# Notes each answer the page reads (its JSON parsed) by its URL, in `window.answersRead`: what
# the page does with an answer at once (promise callbacks, no wait) is done before a test sees
# it noted.
NOTE_ANSWERS_READ = """(() => {
  const json = Response.prototype.json;
  window.answersRead = [];
  Response.prototype.json = async function () {
    try {
      return await json.call(this);
    } finally {
      window.answersRead.push(this.url);
    }
  };
})();"""


def press_while_answered(page, target, answered: str) -> None:
    """Presses ``target`` with the mouse as a shopper does (a click lasts ~100 ms, an answer of
    the shop's ~10 ms): the press goes down, the page reads the answer to the request at
    ``answered`` (a URL's end: a change the press sent, taking the focus from a changed field),
    and only then the press comes up. The page must note its answers (NOTE_ANSWERS_READ)."""
    target.hover()
    read = page.evaluate("() => window.answersRead.length")
    page.mouse.down()
    page.wait_for_function(
        "([url, n]) => window.answersRead.slice(n).some((u) => u.endsWith(url))",
        arg=[answered, read],
    )
    page.mouse.up()


def test_a_checkout_that_never_gets_its_payment_intent_says_so_and_retries(page, shop):
    """The first ask of the page gets no answer at all: after the page's wait (longer than the
    shop's own for Stripe) it says the shop could not be reached and offers Try again."""
    page.clock.install()
    held = never_answered(page, "**/create-payment-intent")
    page.goto(f"{shop}/checkout?item=1")
    wait_until_held(page, held)
    page.clock.fast_forward(ANSWER_WAIT_MS - 1_000)
    page.wait_for_timeout(200)
    assert message(page) == ""
    assert page.locator("#retry-button").is_hidden()
    page.clock.fast_forward(1_000)
    retry = page.locator("#retry-button")
    retry.wait_for()
    assert message(page) == UNREACHED
    page.unroute("**/create-payment-intent")
    retry.click()
    page.locator("#payment-element [name=number]").wait_for()
    assert message(page) == ""


def test_pays_last_look_never_answered_offers_to_pay_again_safely(page, shop):
    """Pay's last look at the order gets no answer: the page does not stay "Processing…" for
    ever; nothing was confirmed, so it says paying again is safe, and Try again pays."""
    page.clock.install()
    confirms = ready_to_pay(page, shop)
    held = never_answered(page, LAST_LOOK)
    pay(page)
    wait_until_held(page, held)
    page.clock.fast_forward(ANSWER_WAIT_MS)
    retry = page.locator("#retry-button")
    retry.wait_for()
    assert message(page) == f"Could not reach the shop. {SAFE}"
    assert confirms == []
    page.unroute(LAST_LOOK)
    retry.click()
    page.wait_for_url(re.compile(r"/success\?"))
    assert page.locator("#receipt-amount").inner_text() == "$29.67"


def test_a_quote_never_answered_is_asked_again(page, shop):
    """The quote for the address gets no answer: after the page's wait it asks again (as after
    any answer that is not the shop's), and Pay comes with the new quote."""
    page.clock.install()
    held: list = []

    def hold_first(route):
        if held:
            route.continue_()
        else:
            held.append(route)

    page.route("**/checkout/quote", hold_first)
    open_checkout(page, shop)
    fill_checkout(page)
    wait_until_held(page, held)
    page.wait_for_timeout(300)
    assert page.locator("#submit-button").is_disabled()
    page.clock.fast_forward(ANSWER_WAIT_MS)
    wait_for_pay(page)
    pay(page)
    page.wait_for_url(re.compile(r"/success\?"))
    assert page.locator("#receipt-amount").inner_text() == "$29.67"


def test_pays_last_look_answered_under_a_press_confirms_at_once(page, shop):
    """The last look finds the order as shown: nothing on the page moves, so a press under way
    (a second click on Pay, held) does not hold the payment back."""
    confirms = ready_to_pay(page, shop)
    held = never_answered(page, LAST_LOOK)
    pay(page)
    wait_until_held(page, held)
    page.locator("h1").first.hover()
    page.mouse.down()  # held from here on, past the last look's answer
    held[0].continue_()
    page.wait_for_timeout(500)  # a press holds an answer that moves the page up to 1 s
    sent = list(confirms)
    page.mouse.up()
    assert sent, "the confirmation waited for the press to end"
    page.wait_for_url(re.compile(r"/success\?"))
