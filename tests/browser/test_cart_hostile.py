"""The catalog's and the cart page's scripts under quick and concurrent use: adds sent one after
the other, the cart page showing after each change what a reload would (its notice, its problem
and the Checkout link, lines added in another tab), answers that are not the shop's (a proxy's
HTML, a timeout, a rate limit, a lost connection), the keyboard's Enter and the focus after a
line is removed.

Each test has a shop of its own whose catalog (the built-in books and two more) the test may
change while the shop runs, as a new catalog would change it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from test_checkout_hostile import (
    ANSWER_WAIT_MS,
    NOTE_ANSWERS_READ,
    UNREACHED,
    add_to_cart,
    cart_line,
    press_while_answered,
    server_quantities,
    shop_selling,
    wait_until_held,
)

from bookpay.catalog import DEFAULT_BOOKS, Book, Catalog

BOOKS = {book.id: book for book in DEFAULT_BOOKS}
MAP = Book(id="map", title="A map", author="X", amount=1000, currency="usd", description="A map.")
# What the catalog's "Add to cart" said, next to the button pressed (one message at a time).
SAID = ".book .add-status:not(:empty)"
GUIDE = Book(id="guide", title="A guide", author="Y", amount=700, currency="usd", description=".")


@dataclasses.dataclass
class Shop:
    url: str
    catalog: Catalog

    def stop_selling(self, item: str) -> None:
        """The catalog no longer sells ``item`` (a test's stand-in for a new catalog)."""
        del self.catalog._books[item]

    def reprice(self, item: str, **changes) -> None:
        book = self.catalog._books[item]
        self.catalog._books[item] = dataclasses.replace(book, **changes)


@pytest.fixture
def shop(emulator, tmp_path) -> Iterator[Shop]:
    catalog = Catalog((*DEFAULT_BOOKS, MAP, GUIDE))
    with shop_selling(emulator, tmp_path, catalog=catalog) as url:
        yield Shop(url, catalog)


def text(page, selector: str) -> str:
    return page.locator(selector).inner_text()


def change_quantity(page, item: str, quantity: str) -> None:
    """Types ``quantity`` and leaves the field, as a shopper does: the browser's own change
    event sends it. (A change event dispatched by the test would leave the browser to send the
    field's change again when the focus leaves it later, say on the mousedown of another line's
    Remove, whose answer could then move the page under the button before the mouseup.)"""
    field = cart_line(page, item).locator("input[name=quantity]")
    field.fill(quantity)
    field.press("Tab")


def settled(page) -> None:
    """Every change sent has its answer shown."""
    page.wait_for_function(
        "() => document.getElementById('cart-lines').getAttribute('aria-busy') === 'false'"
    )


def test_adds_of_different_books_go_one_after_the_other(page, shop):
    """The first add reaches the shop but its answer is slow: the second is not sent before it
    is shown, so the older answer never sets the count lower than the cart holds."""
    page.goto(shop.url + "/")
    sent = []
    held = []

    def hold_first(route):
        sent.append(route.request.post_data)
        if held:
            route.continue_()
        else:
            held.append((route, route.fetch()))  # the shop made the change; its answer waits

    page.route("**/cart/items", hold_first)
    page.get_by_role("button", name=f"Add to cart ({BOOKS['1'].title})").click()
    while not held:
        page.wait_for_timeout(20)
    page.get_by_role("button", name=f"Add to cart ({BOOKS['2'].title})").click()
    page.wait_for_timeout(300)
    assert len(sent) == 1  # the second waits for the first's answer
    route, answer = held[0]
    route.fulfill(response=answer)
    page.wait_for_function("() => document.getElementById('cart-count').textContent === '2'")
    page.wait_for_timeout(300)
    assert text(page, "#cart-count") == "2"
    assert text(page, SAID).startswith(f"{BOOKS['2'].title} is in your cart (2 in all)")
    assert server_quantities(page, shop.url) == {"1": 1, "2": 1}


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (
            {
                "status": 429,
                "headers": {"Retry-After": "2"},
                "content_type": "text/html",
                "body": "<html>Too Many Requests</html>",
            },
            "The shop is busy. Please try again in 2 s.",
        ),
        ({"status": 408, "body": "late"}, "The shop took too long to answer. Please try again."),
    ],
    ids=["429", "408"],
)
def test_an_add_the_shop_could_not_take_now_says_so(page, shop, answer, said):
    page.goto(shop.url + "/")
    page.route("**/cart/items", lambda route: route.fulfill(**answer))
    page.get_by_role("button", name=f"Add to cart ({BOOKS['1'].title})").click()
    page.locator(SAID).wait_for()
    assert text(page, SAID) == said
    assert page.locator(SAID).get_attribute("role") == "alert"


def test_an_add_answered_by_a_proxy_shows_the_count_the_cart_has(page, shop):
    """The add went through, but a proxy answered a 502 page: the count is asked for again."""
    page.goto(shop.url + "/")

    def through_then_502(route):
        route.fetch()
        route.fulfill(status=502, content_type="text/html", body="<h1>502 Bad Gateway</h1>")

    page.route("**/cart/items", through_then_502)
    page.get_by_role("button", name=f"Add to cart ({BOOKS['1'].title})").click()
    page.wait_for_function("() => document.getElementById('cart-count').textContent === '1'")
    assert text(page, SAID) == "Something went wrong. Please try again."


def test_the_cart_page_shows_the_carts_problem_notice_and_checkout_as_a_reload_would(page, shop):
    add_to_cart(page, shop.url, "1")
    add_to_cart(page, shop.url, "map")
    add_to_cart(page, shop.url, "guide")
    page.goto(shop.url + "/cart")
    checkout = page.locator("#checkout-link")
    assert checkout.is_visible()
    # The map is now priced in euros: the cart cannot be paid for as it is.
    shop.reprice("map", currency="eur")
    change_quantity(page, "1", "2")
    settled(page)
    assert "EUR and USD" in text(page, "#cart-message")
    assert checkout.is_hidden()
    assert text(page, "#cart-subtotal") == ""  # no one total in two currencies, as on a reload
    # The guide is no longer sold: the next change's answer says so and takes its line away.
    shop.stop_selling("guide")
    cart_line(page, "map").get_by_role("button", name="Remove").click()
    settled(page)
    assert text(page, "#cart-notice") == "'A guide' is no longer sold: removed from your cart."
    assert text(page, "#cart-message") == ""
    assert checkout.is_visible()
    assert page.locator("#cart-lines [data-item]").count() == 1
    assert text(page, "#cart-count") == "2"
    # The shop says it once (the answer that drops the book); the page keeps saying it through
    # the next changes, which may come before the shopper has read it. A reload no longer does.
    change_quantity(page, "1", "3")
    settled(page)
    assert text(page, "#cart-notice") == "'A guide' is no longer sold: removed from your cart."
    page.reload()
    assert text(page, "#cart-notice") == ""
    assert checkout.is_visible()


def test_the_last_book_removed_with_one_no_longer_sold_says_so(page, shop):
    add_to_cart(page, shop.url, "1")
    add_to_cart(page, shop.url, "guide")
    page.goto(shop.url + "/cart")
    shop.stop_selling("guide")
    cart_line(page, "1").get_by_role("button", name="Remove").click()
    page.locator("#cart-empty").wait_for()
    assert text(page, "#cart-notice") == "'A guide' is no longer sold: removed from your cart."
    assert text(page, "#cart-count") == "0"
    assert page.locator("#checkout-link").is_hidden()


def test_a_book_added_in_another_tab_shows_as_a_line_named_for_its_own(page, shop):
    add_to_cart(page, shop.url, "1")
    add_to_cart(page, shop.url, "3")
    page.goto(shop.url + "/cart")
    add_to_cart(page, shop.url, "2", 2)  # another tab, same shopper
    change_quantity(page, "3", "2")
    cart_line(page, "2").wait_for()
    assert [n.get_attribute("data-item") for n in page.locator("#cart-lines > li").all()] == [
        "1",
        "3",
        "2",
    ]
    new = cart_line(page, "2")
    assert new.locator(".line-title").inner_text() == BOOKS["2"].title
    assert new.locator(".line-unit").inner_text() == "$25.00 each"
    assert new.locator(".line-amount").inner_text() == "$50.00"
    assert new.locator("input[name=quantity]").input_value() == "2"
    assert new.locator("img").get_attribute("src") == "/covers/2.svg"
    name = BOOKS["2"].title
    assert page.get_by_role("spinbutton", name=f"Quantity of {name}", exact=True).count() == 1
    assert page.get_by_role("button", name=f"Remove {name}", exact=True).count() == 1
    assert text(page, "#cart-subtotal") == "$129.00"  # 23 + 2 x 28 + 2 x 25
    assert text(page, "#cart-count") == "5"
    # Its forms are its own.
    change_quantity(page, "2", "3")
    page.wait_for_function(
        "() => document.getElementById('cart-subtotal').textContent === '$154.00'"
    )
    new.get_by_role("button", name="Remove").click()
    page.wait_for_function("() => document.getElementById('cart-count').textContent === '3'")
    assert server_quantities(page, shop.url) == {"1": 1, "3": 2}


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (
            {"status": 502, "content_type": "text/html", "body": "<h1>502 Bad Gateway</h1>"},
            "Something went wrong. Please try again.",
        ),
        (
            {
                "status": 429,
                "headers": {"Retry-After": "3"},
                "content_type": "text/html",
                "body": "<html>Too Many Requests</html>",
            },
            "The shop is busy. Please try again in 3 s.",
        ),
        ({"status": 408, "body": "late"}, "The shop took too long to answer. Please try again."),
        (
            {
                "status": 200,
                "content_type": "text/html",
                "body": "<html>Sign in to the Wi-Fi</html>",
            },
            "Something went wrong. Please try again.",
        ),
        (
            {
                "status": 409,
                "content_type": "application/json",
                "body": '{"error": {"message": "Your payment is under way.", "code": "x"}}',
            },
            "Your payment is under way.",
        ),
    ],
    ids=["502", "429", "408", "portal", "409"],
)
def test_a_change_answered_by_no_answer_of_the_shops_shows_the_cart_the_shop_has(
    page, shop, answer, said
):
    """The change reached the shop, but the answer is not the shop's: the page says so, marks
    no quantity refused, and shows the cart as the shop has it (asked again)."""
    add_to_cart(page, shop.url, "1")
    page.goto(shop.url + "/cart")

    def through_then(route):
        route.fetch()
        route.fulfill(**answer)

    page.route("**/cart/items/1", through_then)
    change_quantity(page, "1", "3")
    page.wait_for_function("() => document.getElementById('cart-message').textContent")
    settled(page)
    assert text(page, "#cart-message") == said
    field = cart_line(page, "1").locator("input[name=quantity]")
    assert field.get_attribute("aria-invalid") is None
    page.wait_for_function(
        "() => document.getElementById('cart-subtotal').textContent === '$69.00'"
    )
    assert field.input_value() == "3"
    assert text(page, "#cart-count") == "3"


def test_a_change_that_never_reached_the_shop_keeps_the_carts_quantity(page, shop):
    add_to_cart(page, shop.url, "1", 2)
    page.goto(shop.url + "/cart")
    page.route("**/cart/items/1", lambda route: route.abort("internetdisconnected"))
    change_quantity(page, "1", "5")
    page.wait_for_function("() => document.getElementById('cart-message').textContent")
    settled(page)
    assert text(page, "#cart-message") == (
        "Could not reach the shop. Check your connection and try again."
    )
    field = cart_line(page, "1").locator("input[name=quantity]")
    assert field.input_value() == "2"
    assert field.get_attribute("aria-invalid") is None
    assert text(page, "#cart-subtotal") == "$46.00"


def test_a_change_never_answered_says_so_and_keeps_the_carts_quantity(page, shop):
    """No answer at all (a hung connection): after the page's wait, longer than the shop's own
    for Stripe, the page says so rather than waiting for ever, and shows the cart's quantity."""
    add_to_cart(page, shop.url, "1", 2)
    page.clock.install()
    page.goto(shop.url + "/cart")
    held: list = []
    page.route("**/cart/items/1", lambda route: held.append(route))
    change_quantity(page, "1", "5")
    wait_until_held(page, held)
    page.clock.fast_forward(ANSWER_WAIT_MS - 1_000)
    page.wait_for_timeout(200)
    assert text(page, "#cart-message") == ""
    page.clock.fast_forward(1_000)
    page.wait_for_function("() => document.getElementById('cart-message').textContent")
    settled(page)
    assert text(page, "#cart-message") == UNREACHED
    field = cart_line(page, "1").locator("input[name=quantity]")
    assert field.input_value() == "2"
    assert text(page, "#cart-subtotal") == "$46.00"


def test_enter_in_a_quantity_sends_the_change_once(page, shop):
    add_to_cart(page, shop.url, "1")
    page.goto(shop.url + "/cart")
    sent = []
    page.on("request", lambda r: sent.append(r.url) if r.method == "POST" else None)
    field = cart_line(page, "1").locator("input[name=quantity]")
    field.fill("4")
    field.press("Enter")
    page.wait_for_function("() => document.getElementById('cart-count').textContent === '4'")
    settled(page)
    field.blur()
    page.wait_for_timeout(300)
    assert len(sent) == 1, sent
    assert page.url == shop.url + "/cart"


def test_removing_a_line_leaves_the_focus_on_the_next_one_and_an_empty_cart_on_its_heading(
    page, shop
):
    add_to_cart(page, shop.url, "1")
    add_to_cart(page, shop.url, "2")
    page.goto(shop.url + "/cart")
    cart_line(page, "1").get_by_role("button", name="Remove").focus()
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.getElementById('cart-count').textContent === '1'")
    assert page.evaluate("() => document.activeElement.closest('[data-item]')?.dataset.item") == "2"
    page.keyboard.press("Tab")  # the focus is still in the page's order, not back at its top
    assert page.evaluate("() => document.activeElement.closest('[data-item]')?.dataset.item") == "2"
    cart_line(page, "2").get_by_role("button", name="Remove").focus()
    page.keyboard.press("Enter")
    page.locator("#cart-empty").wait_for()
    assert page.evaluate("() => document.activeElement.id") == "cart-heading"


def test_a_double_click_on_remove_removes_the_book_once_and_says_nothing_wrong(page, shop):
    add_to_cart(page, shop.url, "1")
    add_to_cart(page, shop.url, "2")
    page.goto(shop.url + "/cart")
    cart_line(page, "1").get_by_role("button", name="Remove").dblclick()
    page.wait_for_function("() => document.getElementById('cart-count').textContent === '1'")
    settled(page)
    assert text(page, "#cart-message") == ""
    assert server_quantities(page, shop.url) == {"2": 1}


def test_an_answer_never_overwrites_a_quantity_being_typed_or_changed_again(page, shop):
    """The answer to one change comes while the shopper types in another line's field, and
    after the same line was changed again (its up arrow, clicked twice): neither field goes
    back to the older answer's quantity (which the next click would then build on)."""
    add_to_cart(page, shop.url, "1")
    add_to_cart(page, shop.url, "2")
    page.goto(shop.url + "/cart")
    held = []
    page.route("**/cart/items/*", lambda route: held.append((route, route.fetch())))
    first = cart_line(page, "1").locator("input[name=quantity]")
    change_quantity(page, "1", "2")
    while not held:
        page.wait_for_timeout(20)
    change_quantity(page, "1", "3")  # the second click, sent after the first's answer
    second = cart_line(page, "2").locator("input[name=quantity]")
    second.fill("7")  # typed, not sent yet
    route, answer = held[0]
    route.fulfill(response=answer)
    while len(held) < 2:  # the first answer is shown, the second change is on its way
        page.wait_for_timeout(20)
    assert text(page, "#cart-count") == "3"
    assert first.input_value() == "3"
    assert second.input_value() == "7"
    assert second.evaluate("(input) => input === document.activeElement")
    route, answer = held[1]
    route.fulfill(response=answer)
    page.wait_for_function("() => document.getElementById('cart-count').textContent === '4'")
    settled(page)
    assert first.input_value() == "3"
    assert second.input_value() == "7"
    assert server_quantities(page, shop.url) == {"1": 3, "2": 1}


@pytest.mark.parametrize(
    ("books", "change", "left", "said"),
    [
        (["1", "2", "guide"], "stop_selling", ["1"], ("#cart-notice", "'A guide' is no longer")),
        (["guide", "1", "2"], "stop_selling", ["1"], ("#cart-notice", "'A guide' is no longer")),
        (["1", "2", "map"], "reprice", ["1", "map"], ("#cart-message", "EUR and USD")),
    ],
    ids=["notice-shown-above", "line-above-gone", "problem-shown-above"],
)
def test_a_remove_pressed_as_a_typed_quantity_is_answered_is_never_lost(
    page, shop, books, change, left, said
):
    """A quantity typed, its field still focused, then another line's Remove pressed: the press
    takes the focus, so the field's change goes at once, and its answer comes before the button
    is released. That answer moves the lines (a notice or a problem said above them, a line
    above taken away): the page waits for the press to end before it shows it, so the press
    ends on the Remove it began on, and the line goes."""
    page.add_init_script(NOTE_ANSWERS_READ)
    for item in books:
        add_to_cart(page, shop.url, item)
    page.goto(shop.url + "/cart")
    if change == "stop_selling":
        shop.stop_selling("guide")
    else:
        shop.reprice("map", currency="eur")
    cart_line(page, "1").locator("input[name=quantity]").fill("2")
    press_while_answered(
        page, cart_line(page, "2").get_by_role("button", name="Remove"), "/cart/items/1"
    )
    cart_line(page, "2").wait_for(state="detached")
    settled(page)
    assert [n.get_attribute("data-item") for n in page.locator("#cart-lines > li").all()] == left
    assert server_quantities(page, shop.url) == {item: 2 if item == "1" else 1 for item in left}
    where, words = said
    assert words in text(page, where)  # the first answer's, shown once the press was over
    assert cart_line(page, "1").locator("input[name=quantity]").input_value() == "2"


def test_add_to_cart_by_keyboard_keeps_the_focus_and_a_double_press_adds_one_copy(page, shop):
    page.goto(shop.url + "/")
    add = page.get_by_role("button", name=f"Add to cart ({BOOKS['3'].title})")
    add.focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")  # pressed again while the first is on its way
    page.wait_for_function("() => document.getElementById('cart-count').textContent === '1'")
    page.wait_for_timeout(300)
    assert add.evaluate("(button) => button === document.activeElement")
    assert server_quantities(page, shop.url) == {"3": 1}
    page.keyboard.press("Enter")  # once answered, the button adds again
    page.wait_for_function("() => document.getElementById('cart-count').textContent === '2'")


# Whether the page's answers are held for a press now: "held" if afterPress() has not resolved
# within the given milliseconds.
PRESS_STATE = """(ms) => Promise.race([
    window.bookpayFetch.afterPress().then(() => 'free'),
    new Promise((done) => setTimeout(() => done('held'), ms)),
])"""


def press_at(page, selector: str) -> None:
    box = page.locator(selector).bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()


def test_a_press_released_over_a_frame_does_not_hold_the_answers(page, shop):
    """A press that ends over a frame (Stripe's fields, at checkout) is released where the page
    cannot hear it: seen over the frame, it holds the page's answers no longer (it held them
    till the next press in the page: the checkout's order stale, Pay never done)."""
    add_to_cart(page, shop.url, "1")
    page.goto(shop.url + "/cart")
    page.evaluate(
        """() => { const frame = document.createElement('iframe');
                   frame.id = 'frame'; frame.style.cssText = 'width: 300px; height: 150px';
                   document.querySelector('h1').after(frame); }"""
    )
    press_at(page, "h1")
    assert page.evaluate(PRESS_STATE, 200) == "held"
    box = page.locator("#frame").bounding_box()
    page.mouse.move(box["x"] + 50, box["y"] + 50, steps=4)
    page.mouse.up()
    assert page.evaluate(PRESS_STATE, 200) == "free"


def test_a_press_released_unheard_is_over_once_the_pointer_is_seen_with_its_button_up(page, shop):
    add_to_cart(page, shop.url, "1")
    page.goto(shop.url + "/cart")
    press_at(page, "h1")
    # Released where the page could not hear it: the pointer comes back with no button down.
    page.dispatch_event("h1", "pointermove", {"pointerId": 1, "buttons": 0, "isPrimary": True})
    assert page.evaluate(PRESS_STATE, 200) == "free"
    press_at(page, "h1")
    page.keyboard.press("Shift")  # typing, not clicking
    assert page.evaluate(PRESS_STATE, 200) == "free"


def test_no_press_holds_the_answers_longer_than_a_second(page, shop):
    add_to_cart(page, shop.url, "1")
    page.goto(shop.url + "/cart")
    press_at(page, "h1")  # and never released
    assert page.evaluate(PRESS_STATE, 300) == "held"
    assert page.evaluate(PRESS_STATE, 1500) == "free"


def test_the_second_click_of_a_double_click_on_remove_never_removes_the_next_line(page, shop):
    """The first click's answer took its line away before the second click came (a busy
    machine, a quick shop): the next line's Remove, now under the pointer, is not pressed."""
    add_to_cart(page, shop.url, "1")
    add_to_cart(page, shop.url, "2")
    page.goto(shop.url + "/cart")
    box = cart_line(page, "1").get_by_role("button", name="Remove").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.up()
    page.wait_for_function("() => document.getElementById('cart-count').textContent === '1'")
    settled(page)
    under = page.evaluate(
        "([x, y]) => document.elementFromPoint(x, y).closest('[data-item]').dataset.item",
        [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
    )
    assert under == "2"  # the next line's Remove moved under the pointer
    page.mouse.down(click_count=2)
    page.mouse.up(click_count=2)
    page.wait_for_timeout(300)
    settled(page)
    assert server_quantities(page, shop.url) == {"2": 1}
    assert page.locator("#cart-lines [data-item]").count() == 1
