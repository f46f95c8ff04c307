"""The emulator's offline Stripe.js, driven in Chromium against an in-process emulator.

The test page (tests/browser/pages/stripejs.*) is served from another origin than the emulator,
with a strict CSP, as the shop's checkout is: the script must work cross-origin and without
inline styles.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import stripe

PAGES = Path(__file__).parent / "pages"
EMAIL = "ada@example.com"


class _PagesHandler(SimpleHTTPRequestHandler):
    """Serves the test page with the emulator's URL filled in, and a plain page as return_url."""

    emulator_url = ""

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/checkout":
            html = (PAGES / "stripejs.html").read_text().replace("{{EMULATOR}}", self.emulator_url)
            self._send(html, "text/html")
        elif path == "/stripejs.js":
            self._send((PAGES / "stripejs.js").read_text(), "text/javascript")
        elif path == "/return":
            self._send("<!doctype html><title>Returned</title><h1>Returned</h1>", "text/html")
        else:
            self.send_error(404)

    def _send(self, text: str, content_type: str) -> None:
        body = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        emu = self.emulator_url
        self.send_header(
            "Content-Security-Policy",
            f"default-src 'self'; script-src 'self' {emu}; connect-src 'self' {emu}; "
            "style-src 'self'; img-src 'self' data:",
        )
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def shop(emulator) -> Iterator[str]:
    """The test page's origin: a server of its own, so every call to the emulator is CORS."""
    handler = type("Handler", (_PagesHandler,), {"emulator_url": emulator.url})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(PAGES)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture(scope="module")
def client(emulator) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_bookpay", base_addresses={"api": emulator.url})


@pytest.fixture
def intent(client):
    return client.v1.payment_intents.create(
        params={"amount": 2300, "currency": "usd", "automatic_payment_methods": {"enabled": True}}
    )


def open_checkout(page, shop: str, client_secret: str, query: str = "", ready: bool = True):
    page.goto(f"{shop}/checkout?cs={client_secret}{query}")
    if ready:
        page.wait_for_function(
            "() => window.__events.filter((e) => e.event === 'ready').length === 3"
        )
    return page


def events(page, name: str, element_type: str | None = None) -> list[dict]:
    return [
        e
        for e in page.evaluate("() => window.__events")
        if e["event"] == name and (element_type is None or e["elementType"] == element_type)
    ]


def fill_checkout(page, card: str = "4242424242424242") -> None:
    page.fill("#link-auth-element [name=email]", EMAIL)
    address = page.locator("#address-element")
    address.locator("[name=name]").fill("Ada Lovelace")
    address.locator("[name=addressLine1]").fill("12 Analytical Row")
    address.locator("[name=addressLine2]").fill("Apt 3")
    address.locator("[name=locality]").fill("San Francisco")
    address.locator("[name=administrativeArea]").fill("CA")
    address.locator("[name=postalCode]").fill("94110")
    payment = page.locator("#payment-element")
    payment.locator("[name=number]").fill(card)
    payment.locator("[name=expiry]").fill("1234")
    payment.locator("[name=cvc]").fill("123")
    payment.locator("[name=postalCode]").fill("94110")


def alerts(page, container: str) -> list[str]:
    return page.locator(f"{container} [role=alert]").all_inner_texts()


EXPECTED_INPUTS = [
    ("#link-auth-element", "email", "email"),
    ("#address-element", "name", "shipping name"),
    ("#address-element", "addressLine1", "shipping address-line1"),
    ("#address-element", "addressLine2", "shipping address-line2"),
    ("#address-element", "locality", "shipping address-level2"),
    ("#address-element", "administrativeArea", "shipping address-level1"),
    ("#address-element", "postalCode", "shipping postal-code"),
    ("#address-element", "country", "shipping country"),
    ("#payment-element", "number", "cc-number"),
    ("#payment-element", "expiry", "cc-exp"),
    ("#payment-element", "cvc", "cc-csc"),
    ("#payment-element", "postalCode", "billing postal-code"),
]


def test_elements_render_named_labelled_inputs(page, shop, intent):
    open_checkout(page, shop, intent.client_secret)
    ids = set()
    for container, name, autocomplete in EXPECTED_INPUTS:
        field = page.locator(f"{container} [name={name}]")
        assert field.count() == 1, (container, name)
        field_id = field.get_attribute("id")
        ids.add(field_id)
        assert page.locator(f"label[for='{field_id}']").inner_text().strip()
        assert field.get_attribute("autocomplete") == autocomplete
        assert field.get_attribute("aria-invalid") == "false"
    assert len(ids) == len(EXPECTED_INPUTS)  # the two postalCode inputs do not collide
    # Inputs are reachable by their labels, as a person (or assistive technology) finds them.
    page.get_by_label("Card number").fill("4242")
    country = page.locator("#address-element [name=country]")
    assert country.input_value() == "US"
    codes = country.locator("option").evaluate_all("(os) => os.map((o) => o.value)")
    assert {"US", "GB", "CA", "DE", "FR", "AU", "JP"} <= set(codes)
    assert sorted(e["elementType"] for e in events(page, "ready")) == [
        "address",
        "linkAuthentication",
        "payment",
    ]
    assert page.evaluate("() => window.__csp") == []


def test_change_events_report_values_and_completeness(page, shop, intent):
    open_checkout(page, shop, intent.client_secret)
    page.fill("#link-auth-element [name=email]", "ada@")
    assert events(page, "change", "linkAuthentication")[-1]["complete"] is False
    page.fill("#link-auth-element [name=email]", EMAIL)
    last = events(page, "change", "linkAuthentication")[-1]
    assert last["complete"] is True
    assert last["empty"] is False
    assert last["value"] == {"email": EMAIL}
    assert events(page, "focus", "linkAuthentication")

    fill_checkout(page)
    assert page.locator("#payment-element [name=number]").input_value() == "4242 4242 4242 4242"
    assert page.locator("#payment-element [name=expiry]").input_value() == "12 / 34"
    payment = events(page, "change", "payment")[-1]
    assert payment["complete"] is True
    assert payment["value"] == {"type": "card"}
    address = events(page, "change", "address")[-1]
    assert address["complete"] is True
    assert address["elementMode"] == "shipping"
    assert address["value"] == {
        "name": "Ada Lovelace",
        "address": {
            "line1": "12 Analytical Row",
            "line2": "Apt 3",
            "city": "San Francisco",
            "state": "CA",
            "postal_code": "94110",
            "country": "US",
        },
    }
    page.locator("#payment-element [name=cvc]").fill("12")
    assert events(page, "change", "payment")[-1]["complete"] is False


def test_validation_messages_show_on_blur_and_submit(page, shop, intent):
    open_checkout(page, shop, intent.client_secret)
    number = page.locator("#payment-element [name=number]")
    number.fill("4242424242424241")  # fails the Luhn check: shown while typing
    assert alerts(page, "#payment-element") == ["Your card number is invalid."]
    assert number.get_attribute("aria-invalid") == "true"
    number.fill("4242424242424242")
    assert alerts(page, "#payment-element") == []

    expiry = page.locator("#payment-element [name=expiry]")
    expiry.fill("0120")
    assert "Your card's expiration year is in the past." in alerts(page, "#payment-element")
    expiry.fill("1234")
    cvc = page.locator("#payment-element [name=cvc]")
    cvc.fill("12")
    assert alerts(page, "#payment-element") == []  # incomplete waits for blur
    page.locator("#payment-element [name=postalCode]").focus()
    assert alerts(page, "#payment-element") == ["Your card's security code is incomplete."]

    result = page.evaluate("() => window.__elements.submit()")
    assert result["error"]["type"] == "validation_error"
    assert result["error"]["code"] == "incomplete_email"
    assert result["error"]["message"] == "Your email address is incomplete."
    assert page.evaluate("() => document.activeElement.name") == "email"
    assert "Your postal code is incomplete." in alerts(page, "#payment-element")
    assert alerts(page, "#link-auth-element") == ["Your email address is incomplete."]

    fill_checkout(page, card="378282246310005")  # Amex: a 4-digit security code
    assert page.locator("#payment-element [name=number]").input_value() == "3782 822463 10005"
    page.locator("#payment-element [name=cvc]").fill("1234")
    page.locator("#payment-element [name=number]").fill("4242424242424242")
    assert alerts(page, "#payment-element") == ["Your card's security code is invalid."]

    fill_checkout(page)
    assert page.evaluate("() => window.__elements.submit()") == {}
    assert alerts(page, "form") == []
    assert page.evaluate("() => window.__csp") == []  # error styling is CSP-safe too


def test_successful_card_redirects_to_return_url(page, shop, intent, client):
    open_checkout(page, shop, intent.client_secret)
    fill_checkout(page)
    page.click("#submit-button")
    page.wait_for_url(f"{shop}/return?**")
    query = parse_qs(urlsplit(page.url).query)
    assert query == {
        "order": ["42"],
        "payment_intent": [intent.id],
        "payment_intent_client_secret": [intent.client_secret],
        "redirect_status": ["succeeded"],
    }
    pi = client.v1.payment_intents.retrieve(intent.id, params={"expand": ["payment_method"]})
    assert pi.status == "succeeded"
    assert pi.shipping.name == "Ada Lovelace"
    assert pi.shipping.address.line1 == "12 Analytical Row"
    assert pi.shipping.address.state == "CA"
    billing = pi.payment_method.billing_details
    assert billing.email == EMAIL
    assert billing.address.postal_code == "94110"
    assert pi.payment_method.card.last4 == "4242"


def test_declined_card_resolves_the_api_error(page, shop, intent, client):
    open_checkout(page, shop, intent.client_secret)
    fill_checkout(page, card="4000000000000002")
    page.click("#submit-button")
    message = page.locator("#payment-message")
    message.filter(has_text="declined").wait_for()
    assert message.inner_text() == "Your card was declined."
    error = page.evaluate("() => window.__result.error")
    assert error["type"] == "card_error"
    assert error["code"] == "card_declined"
    assert error["decline_code"] == "generic_decline"
    assert error["payment_intent"]["id"] == intent.id
    assert page.url.startswith(f"{shop}/checkout")
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_payment_method"


def test_3ds_card_goes_to_the_challenge_page_and_back(page, shop, intent, emulator, client):
    open_checkout(page, shop, intent.client_secret)
    fill_checkout(page, card="4000002760003184")
    page.click("#submit-button")
    page.wait_for_url(f"{emulator.url}/3ds/**")
    assert intent.id in page.url
    page.click("#test-source-authorize-3ds")  # the challenge page sends us to return_url
    page.wait_for_url(f"{shop}/return?**")
    query = parse_qs(urlsplit(page.url).query)
    assert query["order"] == ["42"]
    assert query["redirect_status"] == ["succeeded"]
    assert client.v1.payment_intents.retrieve(intent.id).status == "succeeded"


def test_if_required_resolves_payment_intent_and_never_email_needs_confirm_param(
    page, shop, intent, client
):
    open_checkout(page, shop, intent.client_secret, "&never=1&redirect=if_required&noemail=1")
    fill_checkout(page)
    page.click("#submit-button")
    page.locator("#payment-message").filter(has_text="never").wait_for()
    assert page.evaluate("() => window.__result.error.type") == "invalid_request_error"

    open_checkout(page, shop, intent.client_secret, "&never=1&redirect=if_required")
    fill_checkout(page)
    page.click("#submit-button")
    page.locator("#payment-message").filter(has_text="succeeded").wait_for()
    assert page.evaluate("() => window.__result.paymentIntent.id") == intent.id
    assert page.url.startswith(f"{shop}/checkout")
    pi = client.v1.payment_intents.retrieve(intent.id, params={"expand": ["payment_method"]})
    assert pi.payment_method.billing_details.email == EMAIL


def test_missing_return_url_and_secret_key_are_integration_errors(page, shop, intent):
    open_checkout(page, shop, intent.client_secret)
    fill_checkout(page)
    result = page.evaluate(
        "() => window.__stripe.confirmPayment({elements: window.__elements, confirmParams: {}})"
    )
    assert result["error"]["type"] == "invalid_request_error"
    assert "return_url" in result["error"]["message"]
    thrown = page.evaluate(
        "() => { try { Stripe('sk_test_x'); } catch (e) { return e.name + ': ' + e.message; } }"
    )
    assert thrown.startswith("IntegrationError: You should not use your secret key")


def test_retrieve_payment_intent(page, shop, intent):
    open_checkout(page, shop, intent.client_secret)
    result = page.evaluate(
        "(cs) => window.__stripe.retrievePaymentIntent(cs)", intent.client_secret
    )
    pi = result["paymentIntent"]
    assert (pi["id"], pi["amount"], pi["currency"]) == (intent.id, 2300, "usd")
    assert pi["status"] == "requires_payment_method"
    wrong = page.evaluate(
        "(cs) => window.__stripe.retrievePaymentIntent(cs)", f"{intent.id}_secret_wrong"
    )
    assert wrong["error"]["type"] == "invalid_request_error"


def test_loaderror_when_the_client_secret_is_wrong(page, shop, intent):
    open_checkout(page, shop, f"{intent.id}_secret_wrong", ready=False)
    page.wait_for_function(
        "() => window.__events.filter((e) => e.event === 'loaderror').length === 3"
    )
    failures = events(page, "loaderror")
    assert {e["elementType"] for e in failures} == {"linkAuthentication", "address", "payment"}
    assert all(e["error"]["type"] == "invalid_request_error" for e in failures)
    assert events(page, "ready") == []
    assert page.locator("form input").count() == 0
