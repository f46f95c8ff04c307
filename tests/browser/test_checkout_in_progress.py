"""Pay when the shop answers the page's last look at the order with 409 `payment_in_progress`.

Just before confirming, the page asks the shop for the attempt's PaymentIntent once more (the
requote). The shop refuses with 409 `payment_in_progress` when the order changed but the
attempt's payment is already confirmed (another tab paid it): its amount can no longer change.
The page then asks Stripe.js what became of the PaymentIntent: paid (or processing) goes to the
return page, as Stripe.js would have; anything else shows the shop's message and Pay again.

A real shop with its webhook and the emulator's Stripe.js: the first case is produced for real
(another tab paid an authorized payment, then the cart changed); the second, the shop saying so
while Stripe says the payment was never confirmed, cannot be, so the requote's answer is faked
once (page.route) and everything else is real.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlparse

from test_cart_browser import add_from_catalog
from test_checkout import (
    BOOKS,
    PAID_IN_SF,
    fill_card,
    fill_checkout,
    focused_id,
    message,
    pay,
    wait_for_message,
    wait_for_pay,
    wait_until_idle,
)
from test_checkout_recovery import charges, copy_of_tab, open_checkout

from bookpay.checkout import PaymentInProgress

REQUOTE = "**/create-payment-intent"


def intents(stripe_emulator) -> list[dict]:
    return stripe_emulator.api("GET", "/v1/payment_intents")["data"]


def open_cart_checkout(page, shop) -> None:
    page.goto(f"{shop.url}/checkout")
    page.locator("#payment-element [name=number]").wait_for()


def cart_in_two_tabs(context, shop):
    """A cart holding book 1 (added in a tab of its own, which is returned first, to change the
    cart later), its checkout in a first tab and a copy of that tab, on the same attempt, in a
    second: both ready to pay."""
    shopping = context.new_page()
    shopping.goto(shop.url + "/")
    add_from_catalog(shopping, "1")
    first = context.new_page()
    open_cart_checkout(first, shop)
    return shopping, first, copy_of_tab(context, first)


def record_requotes(page, seen: list) -> None:
    """Let the page's requests for its PaymentIntent through, keeping each answer (its status and
    body: the page may navigate away before the body could be read from a response event)."""

    def handle(route):
        answer = route.fetch()
        seen.append((answer.status, answer.json()))
        route.fulfill(response=answer)

    page.route(REQUOTE, handle)


def pay_in_a_tab_already_paid(tab) -> list[str]:
    """Press Pay in ``tab``, on an attempt another tab has paid: the shop's last look answers
    409 `attempt_finished` and the paid notice shows. The confirms the tab sent (none, if all
    is well)."""
    seen: list = []
    record_requotes(tab, seen)
    confirms: list[str] = []
    tab.on("request", lambda r: confirms.append(r.url) if r.url.endswith("/confirm") else None)
    tab.locator("#submit-button").click()
    tab.locator("#paid-notice").wait_for()
    assert [(status, body["error"]["code"]) for status, body in seen] == [(409, "attempt_finished")]
    return confirms


def test_a_second_tab_paying_after_the_first_paid_goes_to_that_payment_not_a_second(
    context, bookpay_shop, stripe_emulator
):
    """Two tabs on one attempt. The first pays; the cart changes in a third tab; then Pay in the
    second: the shop refuses to change the confirmed payment's amount (409 payment_in_progress),
    Stripe says it was paid, so the second tab goes to that payment's page: one PaymentIntent,
    one charge, one order.

    The payment is authorized (manual capture), not captured at once as the shop's own: an
    attempt whose payment has succeeded is finished, and the shop answers `attempt_finished`
    instead (the "you already paid" notice); confirmed but not finished is what Stripe calls
    processing or requires_capture, and with a card only an authorization is that."""
    shopping, first, second = cart_in_two_tabs(context, bookpay_shop)
    [intent] = intents(stripe_emulator)
    stripe_emulator.api("POST", f"/v1/payment_intents/{intent['id']}", {"capture_method": "manual"})

    pay(first)
    first.wait_for_url(re.compile(r"/success\?"))
    assert stripe_emulator.api("GET", f"/v1/payment_intents/{intent['id']}")["status"] == (
        "requires_capture"
    )
    # The money is held, not taken: the page says so, and offers no second payment.
    assert first.locator("h1").inner_text() == "Payment authorized"
    assert first.title() == "Payment authorized · bookpay"
    assert first.locator("#receipt-amount").inner_text() == PAID_IN_SF["1"]
    assert first.get_by_role("link", name=re.compile("Try again|Start again")).count() == 0
    add_from_catalog(shopping, "2")  # the cart changes: the second tab's order is not the paid one

    seen: list = []
    record_requotes(second, seen)
    assert second.locator("#total").inner_text() == PAID_IN_SF["1"]  # what it shows: the paid one
    second.locator("#submit-button").click()
    second.wait_for_url(re.compile(r"/success\?"))
    assert [(status, body["error"]["code"]) for status, body in seen] == [
        (409, "payment_in_progress")
    ]
    query = parse_qs(urlparse(second.url).query)
    assert query["payment_intent"] == [intent["id"]]
    assert query["redirect_status"] == ["succeeded"]

    stripe_emulator.api("POST", f"/v1/payment_intents/{intent['id']}/capture")
    order = bookpay_shop.wait_for_order(intent["id"])
    second.reload()
    assert second.locator("h1").inner_text() == "Success!"
    assert second.locator("#receipt-intent").inner_text() == intent["id"]
    assert second.locator("#receipt-order").inner_text() == order["id"]
    assert second.locator("#receipt-amount").inner_text() == PAID_IN_SF["1"]
    assert [i["id"] for i in intents(stripe_emulator)] == [intent["id"]]
    assert [
        (c["payment_intent"], c["status"], c["captured"]) for c in charges(stripe_emulator)
    ] == [(intent["id"], "succeeded", True)]
    assert [o["id"] for o in bookpay_shop.ledger.list_orders()] == [order["id"]]


def test_a_second_tab_pressing_pay_after_the_first_paid_at_once_says_so_and_charges_once(
    context, bookpay_shop, stripe_emulator
):
    """The same two tabs, the payment captured at once (4242, as the shop's own): the attempt is
    finished, the shop answers `attempt_finished`, and the second tab says the book was paid
    for (that order), confirming nothing."""
    first = open_checkout(context.new_page(), bookpay_shop, "1")
    second = copy_of_tab(context, first)
    pay(first)
    first.wait_for_url(re.compile(r"/success\?"))
    order_id = first.locator("#receipt-order").inner_text()
    [intent] = intents(stripe_emulator)

    confirms = pay_in_a_tab_already_paid(second)
    assert second.locator("#paid-order").inner_text() == order_id
    assert second.locator("#payment-form").is_hidden()
    assert confirms == []
    assert [i["id"] for i in intents(stripe_emulator)] == [intent["id"]]
    assert [c["status"] for c in charges(stripe_emulator)] == ["succeeded"]


def test_a_second_tab_on_a_cart_the_first_paid_for_says_so_not_that_the_cart_is_empty(
    context, bookpay_shop, stripe_emulator
):
    """The same two tabs on a cart's checkout: the first pays (4242) and reaches its success
    page, and paying empties the cart. The second tab's Pay hears that the attempt is paid
    (`attempt_finished`, not `cart_empty`), stays on the checkout and says which order was
    paid, confirming nothing: one PaymentIntent, one charge."""
    shopping, first, second = cart_in_two_tabs(context, bookpay_shop)
    pay(first)
    first.wait_for_url(re.compile(r"/success\?"))
    order_id = first.locator("#receipt-order").inner_text()
    [intent] = intents(stripe_emulator)
    shopping.goto(bookpay_shop.url + "/cart")
    assert shopping.locator("#cart-count").inner_text() == "0"  # paying emptied the cart

    confirms = pay_in_a_tab_already_paid(second)
    assert "/checkout" in second.url
    assert second.locator("#paid-order").inner_text() == order_id
    assert second.locator("#payment-form").is_hidden()
    assert confirms == []
    assert [i["id"] for i in intents(stripe_emulator)] == [intent["id"]]
    assert [(c["payment_intent"], c["status"]) for c in charges(stripe_emulator)] == [
        (intent["id"], "succeeded")
    ]
    assert [o["id"] for o in bookpay_shop.ledger.list_orders()] == [order_id]


IN_PROGRESS = (
    "This payment is already processing: its amount can no longer change. "
    "Wait for it to finish, then start a new checkout."
)


def test_payment_in_progress_while_stripe_says_unpaid_shows_the_message_and_pay_again(
    page, bookpay_shop, stripe_emulator
):
    """The shop says the payment is under way, Stripe says it is waiting for a payment method:
    nothing was confirmed, so the page says what the shop said and Pay works again."""
    open_checkout(page, bookpay_shop, "2")
    fill_checkout(page)
    wait_for_pay(page)
    [intent] = intents(stripe_emulator)
    asked_stripe: list[str] = []
    page.on(
        "request",
        lambda request: (
            asked_stripe.append(f"{request.method} {urlparse(request.url).path}")
            if request.url.startswith(stripe_emulator.url + "/v1/payment_intents/")
            else None
        ),
    )
    refused = json.dumps({"error": PaymentInProgress(IN_PROGRESS).to_dict()})
    faked: list[str] = []

    def refuse_once(route):
        if faked:
            route.fallback()
            return
        faked.append(route.request.url)
        route.fulfill(status=409, content_type="application/json", body=refused)

    page.route(REQUOTE, refuse_once)

    pay(page)
    wait_for_message(page)
    wait_until_idle(page)
    page.unroute(REQUOTE)
    assert len(faked) == 1
    assert message(page) == IN_PROGRESS
    assert "/checkout" in page.url
    # The page asked Stripe what became of the payment, and confirmed nothing.
    assert asked_stripe, "the page did not ask Stripe"
    assert set(asked_stripe) == {f"GET /v1/payment_intents/{intent['id']}"}, asked_stripe
    button = page.locator("#submit-button")
    assert button.is_enabled()
    assert button.get_attribute("aria-disabled") is None
    assert button.inner_text().strip() == f"Pay {PAID_IN_SF['2']}"
    assert not page.locator("#checkout-fields").evaluate("(node) => node.inert")
    assert page.locator("#retry-button").is_hidden()
    assert focused_id(page) == "payment-message"
    assert charges(stripe_emulator) == []
    unpaid = stripe_emulator.api("GET", f"/v1/payment_intents/{intent['id']}")
    assert (unpaid["status"], unpaid["amount_received"]) == ("requires_payment_method", 0)

    pay(page)  # the shop answers as usual now: Pay pays, once
    page.wait_for_url(re.compile(r"/success\?"))
    assert page.locator("h1").inner_text() == "Success!"
    assert page.locator("#receipt-intent").inner_text() == intent["id"]
    assert page.locator("#receipt-lines [data-item]").get_attribute("data-item") == BOOKS[1].id
    assert [(c["payment_intent"], c["status"]) for c in charges(stripe_emulator)] == [
        (intent["id"], "succeeded")
    ]


# One copy of book 1 shipped to New York (1 Broadway, NY 10004): standard shipping and New
# York's tax, from the emulator's TEST rates; San Francisco's is PAID_IN_SF["1"].
PAID_IN_NY = "$29.12"


def move_to_new_york(tab) -> None:
    address = tab.locator("#address-element")
    address.locator("[name=addressLine1]").fill("1 Broadway")
    address.locator("[name=locality]").fill("New York")
    address.locator("[name=administrativeArea]").fill("NY")
    address.locator("[name=postalCode]").fill("10004")
    tab.wait_for_function(
        "(t) => document.getElementById('total').textContent === t", arg=PAID_IN_NY
    )
    wait_for_pay(tab)


def test_a_tab_whose_address_another_tab_requoted_quotes_its_own_again_before_paying(
    context, bookpay_shop, stripe_emulator
):
    """Two tabs on one attempt, both quoted for San Francisco; the second then quotes New York,
    the attempt's last quote. The first (its Address Element still in San Francisco) presses
    Pay: its last look finds a quote that is not its own, so it does not confirm; it quotes its
    own address again (San Francisco's total, not New York's), and only then can Pay. The
    payment ships where its shipping and tax were priced, and the order is fulfilled."""
    first = open_checkout(context.new_page(), bookpay_shop, "1")
    second = copy_of_tab(context, first)
    move_to_new_york(second)
    confirms: list[str] = []
    first.on("request", lambda r: confirms.append(r.url) if r.url.endswith("/confirm") else None)

    first.locator("#submit-button").click()
    wait_for_message(first)
    assert confirms == []
    assert message(first).startswith("Your order was changed in another window")
    wait_for_pay(first)
    assert first.locator("#total").inner_text() == PAID_IN_SF["1"]
    pay(first)
    first.wait_for_url(re.compile(r"/success\?"))
    assert first.locator("h1").inner_text() == "Success!"

    [intent] = intents(stripe_emulator)
    paid = stripe_emulator.api("GET", f"/v1/payment_intents/{intent['id']}")
    assert paid["status"] == "succeeded"
    assert paid["shipping"]["address"]["city"] == "San Francisco"
    assert first.locator("#receipt-amount").inner_text() == PAID_IN_SF["1"]
    order = bookpay_shop.wait_for_order(intent["id"])
    assert order["fulfilled_at"] and not order["fulfilment_refused"]
    assert "San Francisco, CA 94110" in first.locator("#receipt-shipping").inner_text()


def test_a_quote_while_another_tab_waits_for_3d_secure_lets_that_challenge_go(
    context, bookpay_shop, stripe_emulator
):
    """Two tabs on one attempt; the first pays with a card that asks for 3-D Secure and waits on
    the challenge (maybe abandoned: its tab left open). The second then quotes another street:
    the shop does not wait for that challenge (409 `payment_in_progress` is not its answer) but
    cancels its PaymentIntent (409 `attempt_finished`, canceled): the second says the checkout
    is over and nothing was charged, and the challenge, passed afterwards, charges nothing and
    its tab is told the payment was canceled."""
    first = open_checkout(context.new_page(), bookpay_shop, "1")
    second = copy_of_tab(context, first)
    fill_card(first, "4000002760003184")  # 3-D Secure required
    wait_for_pay(first)
    first.locator("#submit-button").click()
    first.locator("#test-source-authorize-3ds").wait_for()
    [intent] = intents(stripe_emulator)
    assert intent["status"] == "requires_action"

    seen: list = []

    def record(route):  # each quote's answer, kept before the page reads it
        answer = route.fetch()
        seen.append((answer.status, answer.json().get("error", {}).get("code")))
        route.fulfill(response=answer)

    second.route("**/checkout/quote", record)
    second.locator("#address-element [name=addressLine1]").fill("5 Other Street")
    second.locator("#paid-notice").wait_for()
    assert second.locator("#paid-notice-text").inner_text() == (
        "This checkout is over: its payment was canceled (the order was paid for in another "
        "tab or window, or a payment was left waiting for your bank's confirmation). Nothing "
        "was charged here."
    )
    assert second.locator("#new-attempt-button").inner_text() == "Start a new checkout"
    assert message(second) == ""
    assert seen[-1] == (409, "attempt_finished")
    assert (409, "payment_in_progress") not in seen
    assert stripe_emulator.api("GET", f"/v1/payment_intents/{intent['id']}")["status"] == (
        "canceled"
    )

    first.locator("#test-source-authorize-3ds").click()
    first.get_by_role("link", name="Return to the merchant").click()
    first.wait_for_url(re.compile(r"/success\?"))
    assert first.locator("h1").inner_text() == "Payment canceled"
    assert "You have not been charged." in first.locator("main").inner_text()
    assert stripe_emulator.api("GET", f"/v1/payment_intents/{intent['id']}")["status"] == (
        "canceled"
    )
    assert [c for c in charges(stripe_emulator) if c["status"] == "succeeded"] == []


def test_back_from_a_3d_secure_challenge_then_a_new_address_is_a_new_checkout_paid_once(
    page, bookpay_shop, stripe_emulator
):
    """Pay with a card that asks for 3-D Secure, then Back from the challenge: the form is blank
    (Stripe's Elements keep nothing), and the address typed again lets the challenge go (its
    PaymentIntent canceled): the page says why the checkout is over, this tab's own challenge
    among the reasons, and "Start a new checkout" pays once, the challenge charging nothing."""
    open_checkout(page, bookpay_shop, "1")
    fill_checkout(page, "4000002760003184")  # 3-D Secure required
    pay(page)
    page.locator("#test-source-authorize-3ds").wait_for()
    [left] = intents(stripe_emulator)
    page.go_back()
    page.locator("#payment-element [name=number]").wait_for()
    assert page.locator("#address-element [name=addressLine1]").input_value() == ""
    address = page.locator("#address-element")  # quoted once complete: no card typed yet
    address.locator("[name=name]").fill("Ada Lovelace")
    address.locator("[name=addressLine1]").fill("12 Analytical Row")
    address.locator("[name=locality]").fill("San Francisco")
    address.locator("[name=administrativeArea]").fill("CA")
    address.locator("[name=postalCode]").fill("94110")
    page.locator("#paid-notice").wait_for()
    assert page.locator("#paid-notice-text").inner_text() == (
        "This checkout is over: its payment was canceled (the order was paid for in another "
        "tab or window, or a payment was left waiting for your bank's confirmation). Nothing "
        "was charged here."
    )
    assert stripe_emulator.api("GET", f"/v1/payment_intents/{left['id']}")["status"] == "canceled"
    page.locator("#new-attempt-button").click()
    page.locator("#payment-element [name=number]").wait_for()
    fill_checkout(page)
    pay(page)
    page.wait_for_url(re.compile(r"/success\?"))
    assert page.locator("h1").inner_text() == "Success!"
    assert [c["status"] for c in charges(stripe_emulator)] == ["succeeded"]
