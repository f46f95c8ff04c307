"""A quote for the address of a checkout attempt that is over: the shop answers 409
`attempt_finished` (its PaymentIntent paid in another tab, or canceled because another tab paid
the cart), and the page says so and offers the way on, as Pay's last look does: paid, the "you
already paid" notice with the order's page and a fresh checkout; canceled, that this checkout
is over, nothing was charged here, and a fresh checkout.

A real shop with its webhook and the emulator's Stripe.js: the other tab really pays.
"""

from __future__ import annotations

import re

from test_cart_browser import add_from_catalog
from test_checkout import EMAIL, fill_checkout, focused_id, pay, wait_for_pay
from test_checkout_in_progress import intents, open_cart_checkout
from test_checkout_recovery import charges, copy_of_tab, open_checkout

QUOTE = "**/checkout/quote"


def record_quotes(tab, seen: list) -> None:
    """Let the tab's quotes through, keeping each answer's status and error code."""

    def handle(route):
        answer = route.fetch()
        body = answer.json()
        seen.append((answer.status, (body.get("error") or {}).get("code")))
        route.fulfill(response=answer)

    tab.route(QUOTE, handle)


def confirms_of(tab) -> list[str]:
    sent: list[str] = []
    tab.on("request", lambda r: sent.append(r.url) if r.url.endswith("/confirm") else None)
    return sent


def change_address(tab) -> None:
    """The shopper corrects the street of a complete address: the page asks the shop for a
    quote for it at once."""
    tab.locator("#address-element [name=addressLine1]").fill("13 Analytical Row")


def fill_address(tab) -> None:
    """The shopper types an email and an address, which asks the shop for a quote once complete
    (the last field)."""
    tab.fill("#link-auth-element [name=email]", EMAIL)
    address = tab.locator("#address-element")
    address.locator("[name=name]").fill("Ada Lovelace")
    address.locator("[name=addressLine1]").fill("12 Analytical Row")
    address.locator("[name=locality]").fill("San Francisco")
    address.locator("[name=administrativeArea]").fill("CA")
    address.locator("[name=postalCode]").fill("94110")


def test_a_quote_in_a_tab_whose_attempt_another_tab_paid_shows_the_paid_notice(
    context, bookpay_shop, stripe_emulator
):
    """Two tabs on one attempt ("Buy now"); the first pays. The second's shopper then changes
    the address: its quote hears `attempt_finished` (succeeded), and the tab says the book was
    paid for, which order, links to the order's page and offers to buy another copy, as Pay
    does; it confirms nothing and says nothing about the shipping address."""
    first = open_checkout(context.new_page(), bookpay_shop, "1")
    second = copy_of_tab(context, first)
    pay(first)
    first.wait_for_url(re.compile(r"/success\?"))
    order_id = first.locator("#receipt-order").inner_text()
    [intent] = intents(stripe_emulator)

    seen: list = []
    record_quotes(second, seen)
    confirms = confirms_of(second)
    change_address(second)
    notice = second.locator("#paid-notice")
    notice.wait_for()
    assert seen == [(409, "attempt_finished")]
    assert notice.locator("#paid-notice-text").inner_text() == (
        f"You already paid for this book (order {order_id}). Buy another copy?"
    )
    assert second.locator("#payment-form").is_hidden()
    assert second.locator("#order-totals").is_hidden()  # not what was paid: the order's page is
    assert focused_id(second) == "paid-notice"
    link = second.locator("#paid-order-link")
    assert link.is_visible()
    href = link.get_attribute("href") or ""
    assert f"payment_intent={intent['id']}" in href and "redirect_status=succeeded" in href
    assert second.locator("#new-attempt-button").inner_text() == "Buy another copy"
    assert confirms == []
    assert [i["id"] for i in intents(stripe_emulator)] == [intent["id"]]
    assert [c["status"] for c in charges(stripe_emulator)] == ["succeeded"]

    buy_another_copy(second, stripe_emulator, paid=intent["id"])


def buy_another_copy(tab, stripe_emulator, *, paid: str) -> None:
    """The notice's other way on: a new attempt, its own PaymentIntent, which pays."""
    tab.locator("#new-attempt-button").click()
    tab.locator("#payment-element [name=number]").wait_for()
    assert tab.locator("#paid-notice").is_hidden()
    fill_checkout(tab)
    pay(tab)
    tab.wait_for_url(re.compile(r"/success\?"))
    again = tab.locator("#receipt-intent").inner_text()
    assert again != paid
    assert sorted(i["id"] for i in intents(stripe_emulator)) == sorted([paid, again])
    assert sorted((c["payment_intent"], c["status"]) for c in charges(stripe_emulator)) == sorted(
        [(paid, "succeeded"), (again, "succeeded")]
    )


def test_buy_another_copy_after_pay_found_the_attempt_paid_pays_a_new_attempt(
    context, bookpay_shop, stripe_emulator
):
    """The same two tabs; the second presses Pay after the first paid, and its last look shows
    the paid notice (test_checkout_in_progress). "Buy another copy" there starts a new attempt
    that pays: the Elements of the finished one, already mounted, do not keep Pay disabled."""
    first = open_checkout(context.new_page(), bookpay_shop, "1")
    second = copy_of_tab(context, first)
    pay(first)
    first.wait_for_url(re.compile(r"/success\?"))
    [intent] = intents(stripe_emulator)
    second.locator("#submit-button").click()
    second.locator("#paid-notice").wait_for()
    buy_another_copy(second, stripe_emulator, paid=intent["id"])


def test_a_quote_in_a_tab_whose_cart_another_tab_paid_says_the_checkout_is_over(
    context, bookpay_shop, stripe_emulator
):
    """A cart's checkout in two tabs, each its own attempt; the first pays, which empties the
    cart and cancels the second's PaymentIntent. The second's shopper then types an address:
    its quote hears `attempt_finished` (canceled), and the tab says this checkout is over and
    nothing was charged here, with no Pay and no address problem, and offers a fresh checkout,
    which (the cart paid, so empty) leads to the cart."""
    shopping = context.new_page()
    shopping.goto(bookpay_shop.url + "/")
    add_from_catalog(shopping, "1")
    first = context.new_page()
    open_cart_checkout(first, bookpay_shop)
    second = context.new_page()
    open_cart_checkout(second, bookpay_shop)
    assert len(intents(stripe_emulator)) == 2  # two attempts of the cart's payment
    fill_checkout(first)
    pay(first)
    first.wait_for_url(re.compile(r"/success\?"))
    paid = first.locator("#receipt-intent").inner_text()
    bookpay_shop.wait_for_order(paid)
    [other] = [i["id"] for i in intents(stripe_emulator) if i["id"] != paid]

    seen: list = []
    record_quotes(second, seen)
    confirms = confirms_of(second)
    fill_address(second)
    notice = second.locator("#paid-notice")
    notice.wait_for()
    assert seen == [(409, "attempt_finished")]
    assert notice.locator("#paid-notice-text").inner_text() == (
        "This checkout is over: its payment was canceled (the order was paid for in another "
        "tab or window, or a payment was left waiting for your bank's confirmation). Nothing "
        "was charged here."
    )
    assert second.locator("#payment-form").is_hidden()
    assert second.locator("#order-totals").is_hidden()
    assert second.locator("#paid-order-link").is_hidden()
    assert focused_id(second) == "paid-notice"
    assert confirms == []
    assert stripe_emulator.api("GET", f"/v1/payment_intents/{other}")["status"] == "canceled"
    assert [(c["payment_intent"], c["status"]) for c in charges(stripe_emulator)] == [
        (paid, "succeeded")
    ]

    fresh = second.locator("#new-attempt-button")
    assert fresh.inner_text() == "Start a new checkout"
    fresh.click()  # the way on: a fresh checkout of the cart, which the other tab paid for
    second.wait_for_url(re.compile(r"/cart$"))
    assert second.locator("#cart-empty").is_visible()


def test_a_quote_after_the_other_tab_paid_and_the_cart_was_refilled_starts_afresh(
    context, bookpay_shop, stripe_emulator
):
    """As above, but the cart is filled again before the second tab's shopper types: the fresh
    checkout the notice offers is of the refilled cart, with its own PaymentIntent, and pays."""
    shopping = context.new_page()
    shopping.goto(bookpay_shop.url + "/")
    add_from_catalog(shopping, "1")
    first = context.new_page()
    open_cart_checkout(first, bookpay_shop)
    second = context.new_page()
    open_cart_checkout(second, bookpay_shop)
    fill_checkout(first)
    pay(first)
    first.wait_for_url(re.compile(r"/success\?"))
    bookpay_shop.wait_for_order(first.locator("#receipt-intent").inner_text())
    shopping.goto(bookpay_shop.url + "/")
    add_from_catalog(shopping, "2")

    fill_address(second)
    second.locator("#paid-notice").wait_for()
    second.locator("#new-attempt-button").click()
    second.wait_for_url(re.compile(r"/checkout$"))
    second.locator("#payment-element [name=number]").wait_for()
    assert [
        line.get_attribute("data-item") for line in second.locator("#order-lines li").all()
    ] == ["2"]
    fill_checkout(second)
    wait_for_pay(second)
    pay(second)
    second.wait_for_url(re.compile(r"/success\?"))
    assert second.locator("#receipt-email").inner_text() == EMAIL
    assert second.locator("#receipt-lines [data-item]").get_attribute("data-item") == "2"
    assert len(charges(stripe_emulator)) == 2
