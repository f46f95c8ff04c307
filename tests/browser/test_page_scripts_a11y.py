"""What the page scripts do for a keyboard and a screen reader: where the focus goes when the
checkout's order is shown again, how the catalog's "Add to cart" says what happened (a refusal
as an error where the shopper pressed, a success seen there too), the checkout's announcement of
the delivery options and total for a completed address, and a quote that hears a payment of the
attempt is already under way.

One shop for the module, selling the built-in books, a book in euros (a cart holds one currency,
so adding it to a cart of dollars is refused) and one more in dollars, last, below the first
screen of the catalog.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import pytest
from test_checkout import EMAIL, fill_checkout, pay, wait_for_pay
from test_checkout_hostile import add_to_cart, shop_selling
from test_checkout_recovery import copy_of_tab, open_checkout

from bookpay.catalog import DEFAULT_BOOKS, Book, Catalog
from bookpay.checkout import PaymentInProgress

BOOKS = {book.id: book for book in DEFAULT_BOOKS}
EURO = Book(id="euro", title="Euro Book", author="E", amount=2000, currency="eur", description=".")
LAST = Book(id="last", title="Last Book", author="L", amount=1500, currency="usd", description=".")

ACTIVE = """() => {
  const a = document.activeElement;
  const line = a && a.closest('[data-item]');
  return [a ? a.tagName + (a.name ? '[' + a.name + ']' : '') + (a.className ? '.' + a.className
    : '') : '', line ? line.dataset.item : ''];
}"""


@pytest.fixture(scope="module")
def shop(emulator, tmp_path_factory) -> Iterator[str]:
    catalog = Catalog((*DEFAULT_BOOKS, EURO, LAST))
    with shop_selling(emulator, tmp_path_factory.mktemp("a11yjs-shop"), catalog=catalog) as url:
        yield url


def active(page) -> list[str]:
    """The focused element (tag, name, class) and the item of the line holding it."""
    return page.evaluate(ACTIVE)


# ------------------------------------------------------ the checkout's quantities and focus -----


def cart_checkout(page, shop: str, *items: str) -> None:
    page.goto(shop + "/")
    for item in items:
        add_to_cart(page, shop, item)
    page.goto(shop + "/checkout")
    page.locator("#payment-element [name=number]").wait_for()


def line(page, item: str):
    return page.locator(f"#order-lines [data-item='{item}']")


def answered(page) -> None:
    """The change just asked for (aria-busy set at once, by the submit's handler) is shown."""
    page.wait_for_function(
        "() => document.getElementById('order-lines').getAttribute('aria-busy') === 'false'"
    )


def test_a_quantity_typed_and_entered_at_checkout_keeps_the_focus_in_its_field(page, shop):
    cart_checkout(page, shop, "1", "2", "3")
    sent = []
    page.on("request", lambda r: sent.append(r.url) if "/cart/items/" in r.url else None)
    field = line(page, "2").locator("input[name=quantity]")
    field.fill("3")
    field.press("Enter")  # the field's change, then its form's submit: one change
    answered(page)
    assert page.locator("#order-status").inner_text() == "Your order was updated."
    assert line(page, "2").locator(".line-amount").inner_text() == "$75.00"
    assert active(page) == ["INPUT[quantity]", "2"]
    page.keyboard.press("Tab")  # leaving the field (its change, to what the order has)
    assert page.locator("#order-lines").get_attribute("aria-busy") == "false"
    assert sent == [f"{shop}/cart/items/2"]


def test_update_pressed_at_checkout_keeps_the_focus_on_update(page, shop):
    cart_checkout(page, shop, "1", "2")
    line(page, "1").locator("input[name=quantity]").fill("2")
    update = line(page, "1").locator(".line-update")
    update.focus()
    page.keyboard.press("Enter")
    answered(page)
    assert line(page, "1").locator(".line-amount").inner_text() == "$46.00"
    assert active(page) == ["BUTTON.button button--small button--secondary line-update", "1"]


def test_a_line_set_to_zero_at_checkout_moves_the_focus_to_the_next_line_else_the_one_before(
    page, shop
):
    cart_checkout(page, shop, "1", "2", "3")
    field = line(page, "1").locator("input[name=quantity]")
    field.fill("0")
    field.press("Enter")
    answered(page)
    assert line(page, "1").count() == 0
    assert active(page) == ["INPUT[quantity]", "2"]  # the line after the removed one
    field = line(page, "3").locator("input[name=quantity]")
    field.fill("0")
    field.press("Enter")
    answered(page)
    assert line(page, "3").count() == 0
    assert active(page) == ["INPUT[quantity]", "2"]  # the last line gone: the one before it


def test_a_refused_quantity_at_checkout_keeps_the_focus_in_its_field(page, shop):
    cart_checkout(page, shop, "1", "2")
    field = line(page, "2").locator("input[name=quantity]")
    field.fill("11")
    field.press("Enter")
    answered(page)
    assert page.locator("#order-status").inner_text() == (
        "You can order from 1 to 10 copies of a book (0 removes it)."
    )
    assert field.input_value() == "1"  # the quantity the order has
    assert field.get_attribute("aria-invalid") == "true"
    assert active(page) == ["INPUT[quantity]", "2"]


# ------------------------------------------------------------- the catalog's "Add to cart" -----


def add_button(page, book: Book):
    return page.get_by_role("button", name=f"Add to cart ({book.title})")


def said_near(page, book: Book):
    """What the page says next to the book's "Add to cart", in a live region of its own."""
    return page.locator(".book", has=add_button(page, book)).locator(".add-status:not(:empty)")


def in_view(page, selector_or_locator) -> bool:
    box = (
        page.locator(selector_or_locator)
        if isinstance(selector_or_locator, str)
        else selector_or_locator
    ).evaluate("(node) => { const r = node.getBoundingClientRect(); return [r.top, r.bottom]; }")
    return box[1] > 0 and box[0] < page.viewport_size["height"] and box[1] > box[0]


def test_a_refused_add_is_an_alert_styled_as_an_error_next_to_the_button(page, shop):
    page.goto(shop + "/")
    add_button(page, BOOKS["1"]).click()
    page.wait_for_function("() => document.getElementById('cart-count').textContent === '1'")
    add_button(page, EURO).click()
    said = said_near(page, EURO)
    said.wait_for()
    assert said.inner_text() == (
        f"Your order is in USD, and {EURO.title!r} is priced in EUR: one order holds one "
        "currency. Pay for these books first, or remove them."
    )
    assert said.get_attribute("role") == "alert"
    colors = said.evaluate(
        "(node) => { const s = getComputedStyle(node);"
        " return [s.borderLeftColor, s.backgroundColor]; }"
    )
    danger = page.evaluate(
        "() => getComputedStyle(document.documentElement).getPropertyValue('--danger').trim()"
    )
    assert colors[0] == hex_to_rgb(danger)  # the error's colour, not the success's green
    assert page.locator("#cart-count").inner_text() == "1"
    assert add_button(page, EURO).evaluate("(b) => b === document.activeElement")
    # Only one message at a time: the first book's success is not left beside it.
    assert said_near(page, BOOKS["1"]).count() == 0
    assert page.locator("#cart-status").count() == 0  # nothing at the top of the page


def hex_to_rgb(color: str) -> str:
    color = color.lstrip("#")
    if len(color) == 3:
        color = "".join(c * 2 for c in color)
    r, g, b = (int(color[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgb({r}, {g}, {b})"


def test_an_add_below_the_first_screen_is_said_where_it_was_pressed(page, shop):
    page.goto(shop + "/")
    button = add_button(page, LAST)
    button.focus()  # scrolls the book into view: the header is above the screen now
    assert not in_view(page, ".site-header")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.getElementById('cart-count').textContent === '1'")
    said = said_near(page, LAST)
    said.wait_for()
    assert said.inner_text() == f"{LAST.title} is in your cart (1 in all)."
    assert said.get_attribute("role") == "status"
    assert in_view(page, said)
    assert in_view(page, button)
    assert button.evaluate("(b) => b === document.activeElement")


def test_a_refusal_below_the_first_screen_is_said_where_it_was_pressed(page, shop):
    page.goto(shop + "/")
    add_to_cart(page, shop, "1")
    button = add_button(page, EURO)
    button.focus()
    page.keyboard.press("Enter")
    said = said_near(page, EURO)
    said.wait_for()
    assert said.get_attribute("role") == "alert"
    assert in_view(page, said)


# ------------------------------------------- the checkout's delivery options and total ---------


def record_said(page, selector: str) -> None:
    """Keep every text the live region at ``selector`` is given (in window.said)."""
    page.evaluate(
        """(selector) => {
          window.said = [];
          const node = document.querySelector(selector);
          new MutationObserver(() => window.said.push(node.textContent))
            .observe(node, {childList: true, characterData: true, subtree: true});
        }""",
        selector,
    )


def test_the_delivery_options_and_total_of_a_completed_address_are_announced_once(page, shop):
    page.goto(f"{shop}/checkout?item=1")
    page.locator("#payment-element [name=number]").wait_for()
    record_said(page, "#shipping-rates-message")
    fill_checkout(page)
    wait_for_pay(page)
    assert page.locator("#total").inner_text() == "$29.67"
    announced = "Delivery options and total updated: $29.67"
    assert page.locator("#shipping-rates-message").inner_text() == announced
    assert page.locator("#shipping-rates-message").get_attribute("role") == "status"
    # More typing that changes neither the options nor the total says nothing again.
    name = page.locator("#address-element [name=name]")
    name.press_sequentially(" King")
    wait_for_pay(page)
    page.locator("#link-auth-element [name=email]").fill(EMAIL)
    assert [text for text in page.evaluate("window.said") if text] == [announced]
    # Another option is a new total: that is said.
    page.locator("#shipping-rate-options input[type=radio]:not(:checked)").first.check()
    page.wait_for_function(
        "() => document.getElementById('shipping-rates-message').textContent"
        " !== 'Delivery options and total updated: $29.67'"
    )
    wait_for_pay(page)
    total = page.locator("#total").inner_text()
    assert total != "$29.67"
    assert page.locator("#shipping-rates-message").inner_text() == f"Total updated: {total}"


# --------------------------------------------------- a quote that hears a payment under way -----

IN_PROGRESS = (
    "This payment is already processing: its amount can no longer change. "
    "Wait for it to finish, then start a new checkout."
)


def test_a_quote_that_hears_a_payment_under_way_says_so_not_an_address_problem(page, shop):
    page.goto(f"{shop}/checkout?item=2")
    page.locator("#payment-element [name=number]").wait_for()
    refused = json.dumps({"error": PaymentInProgress(IN_PROGRESS).to_dict()})
    page.route(
        "**/checkout/quote",
        lambda route: route.fulfill(status=409, content_type="application/json", body=refused),
    )
    fill_checkout(page)
    page.wait_for_function("() => document.getElementById('payment-message').textContent")
    said = page.locator("#payment-message").inner_text()
    assert said.startswith("A payment of this checkout is already under way")
    assert IN_PROGRESS in said
    rates_message = page.locator("#shipping-rates-message")
    assert IN_PROGRESS not in rates_message.inner_text()
    assert "is-error" not in (rates_message.get_attribute("class") or "")
    assert page.locator("#submit-button").is_disabled()
    assert page.locator("#pay-hint").inner_text() != "Check the shipping address to pay."
    assert IN_PROGRESS not in page.locator("#pay-hint").inner_text()
    assert page.locator("#outcome-link").is_hidden()  # Stripe says it is not paid: no page yet


def test_a_quote_in_a_tab_whose_attempt_another_tab_paid_leads_to_that_payment(
    context, bookpay_shop, stripe_emulator
):
    """Two tabs on one attempt; the first pays an authorized payment (manual capture: confirmed,
    not finished). The second tab's address then changes: its quote hears 409
    payment_in_progress for real. It says a payment is under way (not an address problem), Pay
    waits, and, Stripe saying the payment went through, a link leads to its page."""
    first = open_checkout(context.new_page(), bookpay_shop, "1")
    second = copy_of_tab(context, first)
    [intent] = stripe_emulator.api("GET", "/v1/payment_intents")["data"]
    stripe_emulator.api("POST", f"/v1/payment_intents/{intent['id']}", {"capture_method": "manual"})
    pay(first)
    first.wait_for_url(re.compile(r"/success\?"))

    second.locator("#address-element [name=postalCode]").fill("94103")
    link = second.locator("#outcome-link")
    link.wait_for()
    said = second.locator("#payment-message").inner_text()
    assert said.startswith("A payment of this checkout is already under way")
    assert "its amount can no longer change" in said
    rates_message = second.locator("#shipping-rates-message")
    assert "is-error" not in (rates_message.get_attribute("class") or "")
    assert second.locator("#submit-button").is_disabled()
    assert second.locator("#pay-hint").inner_text() == ""
    assert link.inner_text() == "See how the payment stands"
    assert "/checkout" in second.url  # typing an address never left the page
    link.click()
    second.wait_for_url(re.compile(r"/success\?"))
    query = parse_qs(urlparse(second.url).query)
    assert query["payment_intent"] == [intent["id"]]
    assert query["redirect_status"] == ["succeeded"]
