"""The checkout page after Pay failed in a way that does not say whether the shopper paid: the
confirmation's answer lost, another tab paying the same attempt, Stripe unavailable while paying,
and the return page while Stripe is down. Real faults from the emulator, a real shop with its
webhook, so an order paid behind the page's back is paid for real."""

from __future__ import annotations

import re
import time

from test_checkout import fill_card, fill_checkout, message, pay, wait_for_pay
from test_checkout_hostile import NO_STORAGE

GENERIC = "Something went wrong. Please try again."
UNAVAILABLE = (
    "Payments are unavailable right now. Nothing was charged: please try again in a moment."
)
CONFIRM = "/v1/payment_intents/{id}/confirm"


def open_checkout(page, shop, item: str = "1"):
    page.goto(f"{shop.url}/checkout?item={item}")
    page.locator("#payment-element [name=number]").wait_for()
    return page


def charges(stripe_emulator) -> list[dict]:
    return stripe_emulator.api("GET", "/v1/charges")["data"]


def test_a_confirmation_whose_answer_was_lost_goes_to_the_success_page(
    page, bookpay_shop, stripe_emulator
):
    open_checkout(page, bookpay_shop)
    fill_checkout(page)
    wait_for_pay(page)
    stripe_emulator.faults.fail("reset", path=CONFIRM, times=1)  # it ran, its answer is lost
    pay(page)
    page.wait_for_url(re.compile(r"/success\?"))
    assert page.locator("h1").inner_text() == "Success!"
    assert stripe_emulator.faults.injected == {"reset": 1}
    assert [charge["status"] for charge in charges(stripe_emulator)] == ["succeeded"]


def test_a_lost_confirmation_that_left_a_challenge_shows_it_then_the_success_page(
    page, bookpay_shop, stripe_emulator
):
    """The confirmation ran and asked for 3-D Secure, but the page got a 500 instead of its
    answer: it finds the PaymentIntent waiting for the challenge and lets Stripe.js show it
    (handleNextAction). (A reset would not do here: Chromium sends a POST again by itself when
    a reused connection is reset before any answer.)"""
    open_checkout(page, bookpay_shop, "3")
    fill_checkout(page, "4000002760003184")  # 3-D Secure required
    wait_for_pay(page)
    stripe_emulator.faults.fail("500", path=CONFIRM, times=1)  # ran; answered 500
    pay(page)
    page.locator("#test-source-authorize-3ds").click()
    page.wait_for_url(re.compile(r"/success\?"))
    assert page.locator("h1").inner_text() == "Success!"
    assert stripe_emulator.faults.injected == {"500": 1}
    assert [charge["status"] for charge in charges(stripe_emulator)] == ["succeeded"]


def test_a_lost_confirmation_whose_challenge_fails_says_so(page, bookpay_shop, stripe_emulator):
    """As when nothing was lost: the challenge's page returns to the return page, which says
    the payment failed and offers to try again."""
    open_checkout(page, bookpay_shop, "3")
    fill_checkout(page, "4000002760003184")
    wait_for_pay(page)
    stripe_emulator.faults.fail("500", path=CONFIRM, times=1)  # ran; answered 500
    pay(page)
    page.locator("#test-source-fail-3ds").click()
    page.wait_for_url(re.compile(r"/success\?"))
    assert page.locator("h1").inner_text() == "Payment failed"
    assert page.get_by_role("link", name="Try again").is_visible()
    assert all(charge["status"] != "succeeded" for charge in charges(stripe_emulator))


def test_a_lost_confirmation_of_a_declined_card_says_the_card_was_declined(
    page, bookpay_shop, stripe_emulator
):
    """The confirmation ran and the card was declined, but the page got a 500 instead of the
    decline: Stripe, asked, says why (the PaymentIntent's last_payment_error), and the page says
    it in the card's words, as it would have said the decline itself."""
    open_checkout(page, bookpay_shop, "2")
    fill_checkout(page, "4000000000000002")  # declined: card_declined
    wait_for_pay(page)
    stripe_emulator.faults.fail("500", path=CONFIRM, times=1)  # ran; answered 500
    pay(page)
    page.wait_for_function("() => document.getElementById('payment-message').textContent")
    assert message(page) == "Your card was declined."
    assert stripe_emulator.faults.injected == {"500": 1}
    assert [charge["status"] for charge in charges(stripe_emulator)] == ["failed"]
    assert "/checkout" in page.url
    assert page.locator("#submit-button").is_enabled()  # another card can be tried


def first_card_declined(page, bookpay_shop) -> None:
    """Book 2's checkout paid with a card declined, and the page saying so."""
    open_checkout(page, bookpay_shop, "2")
    fill_checkout(page, "4000000000000002")
    pay(page)
    page.wait_for_function("() => document.getElementById('payment-message').textContent")
    assert message(page) == "Your card was declined."


def next_card_refused_before_it_ran(page, stripe_emulator) -> None:
    """Pay with the card now typed, its confirmation refused by Stripe before it ran (a 429):
    the page says only that something went wrong."""
    stripe_emulator.faults.fail("429", path=CONFIRM, times=1)  # refused before it ran
    page.evaluate("document.getElementById('payment-message').textContent = ''")
    pay(page)
    page.wait_for_function("() => document.getElementById('payment-message').textContent")
    assert message(page) == GENERIC
    assert stripe_emulator.faults.injected == {"429": 1}


def test_a_decline_already_shown_is_not_the_reason_another_cards_payment_failed(
    page, bookpay_shop, stripe_emulator
):
    """A card declined and said so; the shopper types another, and Stripe refuses that
    confirmation before running it (a 429): the PaymentIntent still holds the first card's
    decline, which says nothing of the second card, so the page does not repeat it."""
    first_card_declined(page, bookpay_shop)
    fill_card(page, "4242424242424242")
    next_card_refused_before_it_ran(page, stripe_emulator)
    assert [charge["status"] for charge in charges(stripe_emulator)] == ["failed"]


def test_a_decline_said_before_a_reload_is_not_the_reason_another_cards_payment_failed(
    page, bookpay_shop, stripe_emulator
):
    """As above, with the page reloaded between the two cards (the same attempt, the same
    PaymentIntent): the decline the page said before the reload says nothing of the card typed
    since, whose confirmation Stripe refused before running it, so it is not said again."""
    first_card_declined(page, bookpay_shop)
    page.reload()
    page.locator("#payment-element [name=number]").wait_for()
    fill_checkout(page, "4242424242424242")
    wait_for_pay(page)
    next_card_refused_before_it_ran(page, stripe_emulator)
    intents = stripe_emulator.api("GET", "/v1/payment_intents")["data"]
    assert len(intents) == 1  # the reload kept the attempt
    assert intents[0]["last_payment_error"]["code"] == "card_declined"  # the first card's
    assert [charge["status"] for charge in charges(stripe_emulator)] == ["failed"]


def test_with_storage_blocked_a_decline_said_is_still_not_said_again(
    page, bookpay_shop, stripe_emulator
):
    """Storage blocked (it throws), the declines said are kept in memory: the page says the
    first card's decline, then not again when the next card's confirmation is refused before
    it ran."""
    page.add_init_script(NO_STORAGE)
    first_card_declined(page, bookpay_shop)
    fill_card(page, "4242424242424242")
    next_card_refused_before_it_ran(page, stripe_emulator)


def copy_of_tab(context, first):
    """A second tab on ``first``'s checkout (the same attempt), both filled with the default
    card and ready to pay; the second tab."""
    with context.expect_page() as opened:
        first.evaluate("window.open(location.href)")
    second = opened.value
    second.locator("#payment-element [name=number]").wait_for()
    for tab in (first, second):
        fill_checkout(tab)
        wait_for_pay(tab)
    return second


def test_a_second_tab_paying_the_same_attempt_shows_the_payment_not_an_error(
    context, bookpay_shop, stripe_emulator
):
    first = open_checkout(context.new_page(), bookpay_shop, "3")
    second = copy_of_tab(context, first)
    stripe_emulator.faults.rates(latency="800")
    first.locator("#submit-button").click()
    second.locator("#submit-button").click()
    for tab in (first, second):
        tab.wait_for_function(
            "() => location.pathname === '/success'"
            " || !document.getElementById('paid-notice').hidden"
            " || document.getElementById('payment-message').textContent.length > 0",
            timeout=30_000,
        )
        if "/success" not in tab.url:
            assert message(tab) != GENERIC
            assert tab.locator("#paid-notice").is_visible(), message(tab)
    stripe_emulator.faults.clear()
    assert [charge["status"] for charge in charges(stripe_emulator)] == ["succeeded"]


def test_stripe_unavailable_while_paying_says_so_and_try_again_pays(
    page, bookpay_shop, stripe_emulator
):
    open_checkout(page, bookpay_shop, "2")
    fill_checkout(page)
    wait_for_pay(page)
    stripe_emulator.faults.fail("500", path="/v1/payment_intents*")
    pay(page)
    retry = page.locator("#retry-button")
    retry.wait_for(timeout=40_000)  # the shop tried three times first
    assert message(page) == UNAVAILABLE
    assert retry.inner_text() == "Try again"
    assert page.locator("#checkout-fields").is_visible()  # what was filled in is still there
    assert charges(stripe_emulator) == []
    stripe_emulator.faults.clear()
    deadline = time.monotonic() + 30  # the shop's breaker may hold off Stripe a moment longer
    while "/success" not in page.url and time.monotonic() < deadline:
        if retry.is_visible():
            retry.click()
        page.wait_for_timeout(500)
    page.wait_for_url(re.compile(r"/success\?"))
    assert page.locator("h1").inner_text() == "Success!"


def test_the_paid_notice_does_not_show_totals_that_were_not_paid(
    page, bookpay_shop, stripe_emulator
):
    open_checkout(page, bookpay_shop)
    fill_checkout(page)
    pay(page)
    page.wait_for_url(re.compile(r"/success\?"))
    page.go_back()
    page.locator("#paid-notice").wait_for()
    assert page.locator("#order-totals").is_hidden()  # no "Shipping —" beside a paid order
    assert page.locator("#totals-note").is_hidden()
    page.locator("#new-attempt-button").click()
    page.locator("#payment-element [name=number]").wait_for()
    assert page.locator("#order-totals").is_visible()


def test_the_return_page_while_stripe_is_down_reassures_and_reload_shows_the_order(
    page, bookpay_shop, stripe_emulator
):
    open_checkout(page, bookpay_shop)
    fill_checkout(page)
    pay(page)
    page.wait_for_url(re.compile(r"/success\?"))
    stripe_emulator.faults.fail("500", path="/v1/payment_intents*")
    response = page.reload()
    assert response is not None and response.status == 503
    assert response.headers["retry-after"]
    assert page.locator("h1").inner_text() == "We could not check your payment just now"
    text = page.locator("main").inner_text()
    assert "your order is safe" in text
    assert "127.0.0.1" not in text and "emulator" not in text
    stripe_emulator.faults.clear()
    page.locator("#reload-link").click()
    page.wait_for_function("() => document.querySelector('h1')?.textContent === 'Success!'")
