"""The part of Stripe.js the shop's checkout.js uses: listed here, and each checked offline.

`tsc --checkJs` (tests/test_checkout_types.py) holds checkout.js to @stripe/stripe-js's
declarations; this module holds the offline Stripe.js (bookpay/emulator/static/stripe-v3.js) to
the same names and shapes, for every method, option and event checkout.js uses. The list is
read back from checkout.js, so a new use cannot go unchecked.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_stripejs import EMAIL, client, events, fill_checkout, intent, open_checkout, shop  # noqa: F401

CHECKOUT_JS = Path(__file__).resolve().parents[2] / "bookpay" / "assets" / "static" / "checkout.js"

# What checkout.js calls, creates, passes and listens to.
METHODS = {
    "Stripe": "window.Stripe(publishableKey)",
    "stripe.elements": "stripe.elements(options)",
    "stripe.confirmPayment": "stripe.confirmPayment({elements, confirmParams})",
    "stripe.retrievePaymentIntent": "stripe.retrievePaymentIntent(clientSecret)",
    "stripe.handleNextAction": "stripe.handleNextAction({clientSecret})",
    "elements.create": "elements.create(type, options)",
    "elements.submit": "elements.submit()",
    "elements.getElement": "elements.getElement('payment')",
    "elements.fetchUpdates": "elements.fetchUpdates()",
    "element.on": "element.on(event, handler)",
    "element.mount": "element.mount(node)",
    "element.focus": "element.focus()",
    "element.update": "element.update({readOnly})",
}
ELEMENTS = {"linkAuthentication", "address", "payment"}
EVENTS = {
    (element, event)
    for element in ("link", "address", "payment")
    for event in ("ready", "change", "loaderror")
}
OPTIONS = {
    "elements": {"clientSecret", "loader", "appearance"},
    "address": {"mode"},
    "payment": {"layout", "fields"},
    "confirmParams": {"return_url", "receipt_email", "payment_method_data"},
}


def used_in_checkout_js() -> dict:
    source = CHECKOUT_JS.read_text()
    code = re.sub(r"/\*.*?\*/|//[^\n]*", "", source, flags=re.S)  # comments and JSDoc out
    methods = {f"stripe.{m}" for m in re.findall(r"\bstripe\.(\w+)\(", code)}
    methods |= {f"elements.{m}" for m in re.findall(r"\b(?:group|elements)\.(\w+)\(", code)}
    methods |= {
        f"element.{m}" for m in re.findall(r"\b(?:link|address|payment|element)\.(\w+)\(", code)
    }
    if re.search(r"\bwindow\.Stripe\(", code):
        methods.add("Stripe")
    return {
        "methods": methods,
        "elements": set(re.findall(r"\.create\('(\w+)'", code)),
        "events": set(re.findall(r"\b(link|address|payment)\.on\('(\w+)'", code)),
        "address": set(re.findall(r"create\('address', \{(\w+):", code)),
        "payment": set(
            re.findall(r"^\s+(\w+):", code.split("create('payment'", 1)[1].split("});")[0], re.M)
        ),
        "elements_options": set(
            re.findall(r"^\s+(\w+):", code.split(".elements({", 1)[1].split("});")[0], re.M)
        ),
        "confirmParams": set(
            re.findall(r"^\s+(\w+):", code.split("confirmParams: {", 1)[1].split("},\n")[0], re.M)
        ),
    }


def test_the_list_is_what_checkout_js_uses():
    used = used_in_checkout_js()
    assert used["methods"] == set(METHODS)
    assert used["elements"] == ELEMENTS
    assert used["events"] == EVENTS
    assert used["elements_options"] == OPTIONS["elements"]
    assert used["address"] == OPTIONS["address"]
    assert used["payment"] == OPTIONS["payment"]
    assert used["confirmParams"] == OPTIONS["confirmParams"]


def test_every_method_exists_with_its_declared_name(page, shop, intent):  # noqa: F811
    open_checkout(page, shop, intent.client_secret)
    kinds = page.evaluate(
        """() => {
        const s = window.__stripe, g = window.__elements, p = g.getElement('payment');
        return {
          'Stripe': typeof window.Stripe,
          'stripe.elements': typeof s.elements, 'stripe.confirmPayment': typeof s.confirmPayment,
          'stripe.retrievePaymentIntent': typeof s.retrievePaymentIntent,
          'stripe.handleNextAction': typeof s.handleNextAction,
          'elements.create': typeof g.create, 'elements.submit': typeof g.submit,
          'elements.getElement': typeof g.getElement,
          'elements.fetchUpdates': typeof g.fetchUpdates,
          'element.on': typeof p.on, 'element.mount': typeof p.mount,
          'element.focus': typeof p.focus, 'element.update': typeof p.update,
        };
    }"""
    )
    assert kinds == dict.fromkeys(METHODS, "function")


def test_events_carry_the_declared_fields(page, shop, intent):  # noqa: F811
    open_checkout(page, shop, intent.client_secret, "&never=1")
    for element in ELEMENTS:
        assert events(page, "ready", element), element
    page.fill("#link-auth-element [name=email]", EMAIL)
    link = events(page, "change", "linkAuthentication")[-1]
    assert link["value"]["email"] == EMAIL and link["complete"] is True  # checkout.js reads both
    fill_checkout(page)
    address = events(page, "change", "address")[-1]
    assert address["complete"] is True
    assert events(page, "change", "payment")[-1]["complete"] is True


def test_loaderror_carries_an_error_message(page, shop, intent):  # noqa: F811
    open_checkout(page, shop, "pi_nope_secret_nope", ready=False)
    page.wait_for_function(
        "() => window.__events.filter((e) => e.event === 'loaderror').length === 3"
    )
    for event in events(page, "loaderror"):
        assert event["error"]["message"]


def test_submit_getelement_update_and_confirm_behave_as_declared(page, shop, intent, client):  # noqa: F811
    open_checkout(page, shop, intent.client_secret, "&never=1")
    submitted = page.evaluate("() => window.__elements.submit()")
    assert submitted["error"]["type"] == "validation_error"  # {error} when incomplete
    page.evaluate("() => window.__elements.getElement('payment').update({readOnly: true})")
    assert page.locator("#payment-element [name=number]").get_attribute("readonly") is not None
    page.evaluate("() => window.__elements.getElement('payment').update({readOnly: false})")
    page.evaluate("() => window.__elements.getElement('linkAuthentication').focus()")
    assert page.evaluate("document.activeElement.name") == "email"
    fill_checkout(page)
    assert page.evaluate("() => window.__elements.submit()") == {}
    page.evaluate(
        """([email]) => { window.__stripe.confirmPayment({
            elements: window.__elements,
            confirmParams: {return_url: window.location.origin + '/return',
                            receipt_email: email,
                            payment_method_data: {billing_details: {email: email}}},
        }); }""",  # the page leaves for return_url: nothing to wait for here
        [EMAIL],
    )
    page.wait_for_url(re.compile(r"/return\?"))
    paid = client.v1.payment_intents.retrieve(intent.id, params={"expand": ["latest_charge"]})
    assert paid.status == "succeeded"
    assert paid.receipt_email == EMAIL
    assert paid.latest_charge.billing_details.email == EMAIL


def test_retrieve_payment_intent_answers_as_declared(page, shop, intent):  # noqa: F811
    """checkout.js asks what became of a payment whose confirm's answer was lost: it reads
    ``paymentIntent.status`` (and ``id``), or gets ``{error}`` for a secret Stripe refuses."""
    open_checkout(page, shop, intent.client_secret, "&never=1")
    found = page.evaluate(
        "([secret]) => window.__stripe.retrievePaymentIntent(secret)", [intent.client_secret]
    )
    assert set(found) == {"paymentIntent"}
    assert found["paymentIntent"]["id"] == intent.id
    assert found["paymentIntent"]["status"] == "requires_payment_method"
    refused = page.evaluate(
        "([secret]) => window.__stripe.retrievePaymentIntent(secret)",
        [f"{intent.id}_secret_wrong"],
    )
    assert set(refused) == {"error"} and refused["error"]["message"]


@pytest.mark.parametrize("option", sorted(OPTIONS["payment"] | OPTIONS["address"]))
def test_element_options_are_honoured(page, shop, intent, option):  # noqa: F811
    open_checkout(page, shop, intent.client_secret, "&never=1")
    if option == "mode":  # address {mode: 'shipping'}
        auto = page.locator("#address-element [name=addressLine1]").get_attribute("autocomplete")
        assert auto == "shipping address-line1"
    elif option == "fields":  # payment {fields: {billingDetails: {email: 'never'}}}
        assert page.locator("#payment-element [name=email]").count() == 0
    elif option == "layout":  # payment {layout: 'tabs'}: accepted, the card form shown
        assert page.locator("#payment-element [name=number]").is_visible()
