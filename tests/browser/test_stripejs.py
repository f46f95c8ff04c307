"""The emulator's offline Stripe.js, driven in Chromium against an in-process emulator.

The test page (tests/browser/pages/stripejs.*) is served from another origin than the emulator,
with a strict CSP, as the shop's checkout is: the script must work cross-origin and without
inline styles.
"""

from __future__ import annotations

import re
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
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
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
    ("#payment-element", "country", "billing country"),
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
    assert len(ids) == len(EXPECTED_INPUTS)  # the two postalCode and country inputs differ
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


def test_ready_means_each_element_is_rendered_and_usable(page, shop, intent):
    """Stripe: `ready` fires when the Element is fully rendered and can accept focus. The inputs
    are built while the PaymentIntent loads, but shown (and `ready` said) only once it has."""
    open_checkout(page, shop, intent.client_secret)
    at_ready = page.evaluate("() => window.__atReady")
    assert set(at_ready) == {"linkAuthentication", "address", "payment"}
    for kind, seen in at_ready.items():
        assert seen["inputs"], kind
        assert seen["connected"] is True, kind  # in the page and displayed
        assert (seen["loader"], seen["busy"]) == (False, None), kind
    assert at_ready["linkAuthentication"]["inputs"] == ["email"]
    assert {"number", "expiry", "cvc"} <= set(at_ready["payment"]["inputs"])
    page.locator("#payment-element [name=number]").focus()
    assert page.evaluate("document.activeElement.name") == "number"


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


def payment_field(page, name: str):
    return page.locator(f"#payment-element [name={name}]")


def label_of(page, field) -> str:
    return page.locator(f"label[for='{field.get_attribute('id')}']").inner_text().strip()


def test_billing_country_follows_shipping_until_picked_and_sets_postal_rules(page, shop, intent):
    open_checkout(page, shop, intent.client_secret)
    country, postal = payment_field(page, "country"), payment_field(page, "postalCode")
    assert country.input_value() == "US"
    assert label_of(page, country) == "Country"
    assert label_of(page, postal) == "ZIP"
    for zip_code in ("94110", "94110-1234"):
        postal.fill(zip_code)
        postal.blur()
        assert alerts(page, "#payment-element") == []
    postal.fill("9411A")
    assert alerts(page, "#payment-element") == ["Your postal code is invalid."]

    # The shipping country is the billing default while the shopper has not picked one.
    page.locator("#address-element [name=country]").select_option("GB")
    assert country.input_value() == "GB"
    assert label_of(page, postal) == "Postal code"
    postal.fill("94110")
    assert alerts(page, "#payment-element") == ["Your postal code is invalid."]
    for postcode in ("SW1A 1AA", "m1 1ae", "EC1A1BB"):
        postal.fill(postcode)
        assert alerts(page, "#payment-element") == []
    page.locator("#address-element [name=country]").select_option("CA")
    assert country.input_value() == "CA"
    assert alerts(page, "#payment-element") == ["Your postal code is invalid."]
    postal.fill("K1A 0B1")
    assert alerts(page, "#payment-element") == []

    # Once picked, the billing country stays; where cards are not checked by postal code
    # (Germany), the field is not asked for.
    country.select_option("DE")
    assert postal.is_hidden()
    page.locator("#address-element [name=country]").select_option("FR")
    assert country.input_value() == "DE"
    assert events(page, "change", "payment")[-1]["complete"] is False  # card still empty
    assert page.evaluate("() => window.__csp") == []


def test_billing_country_and_postal_code_are_sent_at_confirm(page, shop, client):
    def confirm(query: str, choose) -> stripe.PaymentMethod:
        intent = client.v1.payment_intents.create(params={"amount": 2300, "currency": "usd"})
        open_checkout(page, shop, intent.client_secret, query + "&redirect=if_required")
        fill_checkout(page)
        choose()
        page.click("#submit-button")
        page.locator("#payment-message").filter(has_text="succeeded").wait_for()
        pi = client.v1.payment_intents.retrieve(intent.id, params={"expand": ["payment_method"]})
        return pi.payment_method.billing_details.address

    def canada() -> None:
        payment_field(page, "country").select_option("CA")
        payment_field(page, "postalCode").fill("K1A 0B1")

    address = confirm("", canada)
    assert (address.country, address.postal_code) == ("CA", "K1A 0B1")

    address = confirm("", lambda: payment_field(page, "country").select_option("DE"))
    assert (address.country, address.postal_code) == ("DE", None)

    # defaultValues wins over the shipping country, which stays US here.
    address = confirm("&billing=GB", lambda: payment_field(page, "postalCode").fill("SW1A 1AA"))
    assert page.locator("#address-element [name=country]").input_value() == "US"
    assert (address.country, address.postal_code) == ("GB", "SW1A 1AA")


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("1/28", "01 / 28"), ("4/28", "04 / 28"), ("0128", "01 / 28"), ("12/34", "12 / 34"),
     ("1 / 2", "01 / 2"), ("9", "09 / ")],
)  # fmt: skip
def test_expiry_formats_as_typed_and_as_pasted(page, shop, intent, typed, expected):
    open_checkout(page, shop, intent.client_secret)
    expiry = payment_field(page, "expiry")
    expiry.press_sequentially(typed)
    assert expiry.input_value() == expected
    expiry.fill(typed)
    assert expiry.input_value() == expected


def test_expiry_slash_caret_and_backspace(page, shop, intent):
    open_checkout(page, shop, intent.client_secret)
    expiry = payment_field(page, "expiry")
    expiry.press_sequentially("1/")
    assert expiry.input_value() == "01 / "
    assert expiry.evaluate("(e) => [e.selectionStart, e.selectionEnd]") == [5, 5]
    expiry.press_sequentially("28")
    assert expiry.input_value() == "01 / 28"
    steps = []
    for _ in range(4):
        expiry.press("Backspace")
        steps.append(expiry.input_value())
    assert steps == ["01 / 2", "01", "0", ""]  # no separator is put back while deleting
    # Editing in the middle keeps the caret after the digit typed.
    expiry.fill("0128")
    expiry.evaluate("(e) => e.setSelectionRange(1, 1)")
    expiry.press_sequentially("2")
    assert expiry.input_value() == "02 / 12"
    assert expiry.evaluate("(e) => e.selectionStart") == 2


def _rgb(css_color: str) -> tuple[int, int, int]:
    r, g, b = (int(float(x)) for x in re.findall(r"[\d.]+", css_color)[:3])
    return r, g, b


def _contrast(a: str, b: str) -> float:
    def luminance(color: str) -> float:
        channels = [c / 255 for c in _rgb(color)]
        r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


STYLE_OF = """(e) => { const s = getComputedStyle(e); return {
    outlineStyle: s.outlineStyle, outlineWidth: s.outlineWidth, outlineColor: s.outlineColor,
    outlineOffset: s.outlineOffset, border: s.borderTopColor, background: s.backgroundColor}; }"""


FOCUSABLE = [
    "#link-auth-element [name=email]",
    "#address-element [name=country]",
    "#payment-element [name=number]",
    "#payment-element [name=country]",
]


@pytest.mark.parametrize("theme", ["stripe", "night"])
def test_borders_and_focus_rings_meet_non_text_contrast(page, shop, intent, theme):
    open_checkout(page, shop, intent.client_secret, f"&theme={theme}")
    for selector in FOCUSABLE:
        field = page.locator(selector)
        resting = field.evaluate(STYLE_OF)
        assert resting["outlineStyle"] == "none", selector
        assert _contrast(resting["border"], resting["background"]) >= 3, (selector, resting)
        field.focus()
        focused = field.evaluate(STYLE_OF)
        assert focused["outlineStyle"] == "solid", selector
        assert focused["outlineWidth"] == "2px" and focused["outlineOffset"] == "2px"
        assert _contrast(focused["outlineColor"], focused["background"]) >= 3, (selector, focused)
        if theme == "stripe":  # appearance.variables.colorPrimary is the ring's colour
            assert _rgb(focused["outlineColor"]) == (0x0A, 0x66, 0x40)
    page.locator("#payment-element [name=number]").fill("4242424242424241")
    invalid = page.locator("#payment-element [name=number]").evaluate(STYLE_OF)
    assert invalid["outlineStyle"] == "solid"
    assert _contrast(invalid["outlineColor"], invalid["background"]) >= 3
    assert page.evaluate("() => window.__csp") == []


def _tops(page, container: str, names: list[str]) -> list[float]:
    return [page.locator(f"{container} [name={n}]").bounding_box()["y"] for n in names]


def test_place_row_stays_aligned_with_short_single_line_labels(page, shop, intent):
    page.set_viewport_size({"width": 500, "height": 900})
    open_checkout(page, shop, intent.client_secret)
    address = page.locator("#address-element")
    area = address.locator("[name=administrativeArea]")
    row = ["locality", "administrativeArea", "postalCode"]
    for code, label in (("US", "State"), ("DE", "State (optional)"), ("GB", "County (optional)"),
                        ("CA", "Province"), ("FR", "State (optional)")):  # fmt: skip
        address.locator("[name=country]").select_option(code)
        assert label_of(page, area) == label
        tops = _tops(page, "#address-element", row)
        assert max(tops) - min(tops) < 1, (code, tops)
        heights = [
            page.locator(
                f"label[for='{address.locator(f'[name={n}]').get_attribute('id')}']"
            ).bounding_box()["height"]
            for n in row
        ]
        assert max(heights) - min(heights) < 1, (code, heights)
    # An error under one input does not move its neighbours.
    address.locator("[name=postalCode]").fill("x")
    address.locator("[name=locality]").focus()
    tops = _tops(page, "#address-element", row)
    assert max(tops) - min(tops) < 1
    payment_field(page, "country").select_option("GB")
    billing = _tops(page, "#payment-element", ["country", "postalCode"])
    assert abs(billing[0] - billing[1]) < 1


def test_update_read_only_locks_and_unlocks_every_element(page, shop, intent):
    open_checkout(page, shop, intent.client_secret)
    fill_checkout(page)
    number = payment_field(page, "number")
    number.focus()
    lock = """(on) => ['linkAuthentication', 'address', 'payment'].forEach(
        (t) => window.__elements.getElement(t).update({readOnly: on}))"""
    page.evaluate(lock, True)
    assert page.evaluate("() => document.activeElement.name") == "number"  # not re-rendered
    fields = page.locator("form input, form select")
    assert fields.count() == len(EXPECTED_INPUTS)
    for i in range(fields.count()):
        field = fields.nth(i)
        assert not field.is_editable(), field.get_attribute("name")
    page.keyboard.type("99")
    assert number.input_value() == "4242 4242 4242 4242"
    assert page.locator("#payment-element [name=country]").is_disabled()
    assert page.locator("#address-element [name=country]").is_disabled()

    page.evaluate(lock, False)
    for i in range(fields.count()):
        assert fields.nth(i).is_editable()
    assert page.locator("#link-auth-element [name=email]").input_value() == EMAIL
    assert events(page, "change", "payment")[-1]["complete"] is True
    assert page.evaluate("() => window.__elements.submit()") == {}


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
    not_found = []
    page.on("response", lambda r: r.status == 404 and not_found.append(r.url))
    open_checkout(page, shop, intent.client_secret)
    fill_checkout(page, card="4000002760003184")
    page.click("#submit-button")
    page.wait_for_url(f"{emulator.url}/3ds/**")
    assert intent.id in page.url
    body = page.locator("body").inner_text()
    assert "Your bank asks you to confirm this payment of $23.00" in body
    assert "requires_action" not in body
    for button in ("#test-source-authorize-3ds", "#test-source-fail-3ds"):
        assert page.locator(button).bounding_box()["height"] >= 44
    page.click("#test-source-authorize-3ds")  # the challenge page sends us to return_url
    page.wait_for_url(f"{shop}/return?**")
    query = parse_qs(urlsplit(page.url).query)
    assert query["order"] == ["42"]
    assert query["redirect_status"] == ["succeeded"]
    assert client.v1.payment_intents.retrieve(intent.id).status == "succeeded"
    assert not_found == []

    # Back shows the page afresh (no-store): finished, with no live buttons, and a way back.
    page.go_back()
    page.wait_for_url(f"{emulator.url}/3ds/**")
    page.get_by_text("This authentication is already finished").wait_for()
    assert page.locator("#test-source-authorize-3ds").count() == 0
    page.click("#return-link")
    page.wait_for_url(f"{shop}/return?**")
    assert parse_qs(urlsplit(page.url).query) == query
    assert not_found == []


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


def test_fetch_updates_reflects_the_intent_the_server_updated(page, shop, intent, client):
    """elements.fetchUpdates(): {} once the Elements hold the PaymentIntent as the server left
    it; the payment then confirms that amount."""
    open_checkout(page, shop, intent.client_secret)
    assert page.evaluate("() => window.__elements._intent.amount") == 2300
    client.v1.payment_intents.update(intent.id, params={"amount": 4600})
    assert page.evaluate("() => window.__elements.fetchUpdates()") == {}
    assert page.evaluate("() => window.__elements._intent.amount") == 4600
    fill_checkout(page)
    page.click("#submit-button")
    page.wait_for_url(f"{shop}/return?**")
    paid = client.v1.payment_intents.retrieve(intent.id)
    assert (paid.status, paid.amount_received) == ("succeeded", 4600)


def test_fetch_updates_says_when_the_intent_cannot_be_fetched(page, shop, intent):
    open_checkout(page, shop, f"{intent.id}_secret_wrong", ready=False)
    result = page.evaluate("() => window.__elements.fetchUpdates()")
    assert set(result) == {"error"} and result["error"]["message"]
