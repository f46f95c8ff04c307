"""The checkout server, in-process through its WSGI app, against the session's emulator.

Each test builds its own app with ``create_app`` (the flaskr way) and calls it with a WSGI environ
built here, so statuses, headers and bodies are asserted exactly, with no sockets in between
except the gateway's real HTTP calls to the emulator.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import html
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
from wsgi import Response, call

from bookpay.catalog import Catalog
from bookpay.config import Settings
from bookpay.errors import ConfigError, PaymentError, StripeUnavailable, WebhookSignatureError
from bookpay.server import ASSETS, EARLY_SCRIPT, INTENT_BURST, STATIC, create_app
from bookpay.web.assets import IMMUTABLE, REVALIDATE, StaticFiles

PUBLIC_URL = "http://shop.example.test:4242"
SECURITY_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy")


# --------------------------------------------------------------------------- helpers ------


def get(app, target: str, **headers) -> Response:
    return call(app, "GET", target, headers=headers)


# What a browser on the shop's own page sends (the test environ's Host is 127.0.0.1).
OWN_ORIGIN = "http://127.0.0.1"


def post_json(app, data, *, raw: bytes | None = None, content_type="application/json") -> Response:
    body = raw if raw is not None else json.dumps(data).encode()
    headers = {"Content-Type": content_type, "Origin": OWN_ORIGIN}
    return call(app, "POST", "/create-payment-intent", body, headers)


def new_attempt() -> str:
    return str(uuid.uuid4())


def emulator_api(settings: Settings, method: str, path: str, params: dict | None = None) -> dict:
    """Talk to the emulator directly, as another Stripe integration would (no bookpay code)."""
    data = urllib.parse.urlencode(params or {}).encode() if params is not None else None
    request = urllib.request.Request(
        settings.emulator_url + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {settings.api_key}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as exc:  # a decline: the body still carries the intent
        return json.loads(exc.read())


SHIPPING = {
    "shipping[name]": "Ada Lovelace",
    "shipping[address][line1]": "12 St James's Square",
    "shipping[address][city]": "London",
    "shipping[address][postal_code]": "SW1Y 4JH",
    "shipping[address][country]": "GB",
}


def confirm(settings: Settings, intent_id: str, card: str, **extra) -> dict:
    params = {"payment_method": card, "return_url": PUBLIC_URL + "/success", **extra}
    return emulator_api(settings, "POST", f"/v1/payment_intents/{intent_id}/confirm", params)


def complete_3ds(settings: Settings, pending: dict) -> dict:
    """Press "Complete authentication" on the emulator's challenge page of ``pending`` (a
    PaymentIntent in requires_action), as the shopper's browser does; the intent afterwards."""
    form = {"client_secret": pending["client_secret"], "action": "complete"}
    request = urllib.request.Request(
        f"{settings.emulator_url}/3ds/authenticate/{pending['id']}",
        data=urllib.parse.urlencode(form).encode(),
        method="POST",
    )

    class Stay(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # the return_url is the shop's: not here
            return None

    try:
        urllib.request.build_opener(Stay).open(request, timeout=10).close()
    except urllib.error.HTTPError as exc:
        assert exc.code == 303, exc.code
    return emulator_api(settings, "GET", f"/v1/payment_intents/{pending['id']}")


def success_url(intent_id: str, secret: str | None) -> str:
    query = {"payment_intent": intent_id, "redirect_status": "succeeded"}
    if secret is not None:
        query["payment_intent_client_secret"] = secret
    return "/success?" + urllib.parse.urlencode(query)


class RecordingFulfiller:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[str] = []
        self.settled: list[str] = []
        self.fail = fail

    def fulfil(self, intent_id: str):
        self.calls.append(intent_id)
        if self.fail:
            raise RuntimeError("the ledger is on fire")
        return {"intent": intent_id}

    def settle_cart(self, intent_id: str) -> bool:
        self.settled.append(intent_id)
        return True


class RecordingReceiver:
    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[tuple[bytes, str | None]] = []
        self.error = error

    def handle(self, payload: bytes, signature_header: str | None) -> dict:
        self.calls.append((payload, signature_header))
        if self.error:
            raise self.error
        return {"received": True, "type": "payment_intent.succeeded"}


def dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def fulfiller() -> RecordingFulfiller:
    return RecordingFulfiller()


@pytest.fixture
def app(settings, fulfiller):
    return create_app(settings, fulfiller=fulfiller, public_url=PUBLIC_URL)


@pytest.fixture
def stripe_settings(tmp_path) -> Settings:
    return Settings(
        secret_key="sk_test_51Hsecretsecretsecret1234",
        publishable_key="pk_test_51Hpublicpublicpublic9876",
        data_dir=tmp_path / "data",
    )


def create_intent(app, item: str = "1", attempt: str | None = None) -> dict:
    response = post_json(app, {"item": item, "attemptId": attempt or new_attempt()})
    assert response.status == 200, response.body
    return response.json()


# ------------------------------------------------------------------------- catalog ------


def test_catalog_lists_every_book_with_cover_author_description_and_price(app):
    response = get(app, "/")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/html; charset=UTF-8"
    for book in Catalog.default():
        assert book.title in response.shown
        assert book.author in response.shown
        assert book.description in response.shown
        assert f'src="/covers/{book.id}.svg"' in response.text
        assert f'href="/checkout?item={book.id}"' in response.text
        # Named by their visible words first (WCAG 2.5.3), then the book's title (and price).
        assert (
            f'Buy now<span class="visually-hidden"> ({book.title}, {book.price})</span></a>'
            in response.text
        )
        assert (
            f'Add to cart<span class="visually-hidden"> ({book.title})</span></button>'
            in response.text
        )
        assert f'<input type="hidden" name="item" value="{book.id}">' in response.text
        assert f'<p class="book-price">{book.price}</p>' in response.text
    assert response.text.count('<form class="add-to-cart" method="post" action="/cart/items">') == 3
    assert response.text.count('<button class="button" type="submit">Add to cart<') == 3
    assert "aria-label" not in response.text.split("<main")[1]  # none hides what is shown


def test_every_page_shows_the_emulator_banner(app):
    for target in ("/", "/checkout?item=2", "/nowhere"):
        assert "Local test mode: payments are emulated" in get(app, target).text


def test_stripe_mode_has_no_emulator_banner(stripe_settings):
    page = get(create_app(stripe_settings, public_url=PUBLIC_URL), "/").text
    assert "payments are emulated" not in page
    assert "Stripe test mode" in page


def test_the_readme_says_which_banner_stripe_mode_shows(stripe_settings):
    """The README's "Using real Stripe test mode" quotes the banner the pages show (it said the
    banner was gone)."""
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = " ".join(readme.split("## Using real Stripe test mode")[1].split("\n## ")[0].split())
    said = re.search(r'their banner says "([^"]+)"', section)
    assert said, "the README's Stripe test mode steps say nothing of the banner"
    page = shown(stripe_settings)
    banner = re.search(r'<p class="mode-banner[^"]*" role="note">(.*?)</p>', page, re.S)
    assert " ".join(re.sub(r"<[^>]+>", "", banner.group(1)).split()) == said.group(1)
    assert "--live` there is no banner" in section
    live = dataclasses.replace(
        stripe_settings,
        secret_key="sk_live_51Hsecretsecretsecret1234",
        publishable_key="pk_live_51Hpublicpublicpublic9876",
        allow_live=True,
    )
    assert "mode-banner" not in shown(live)


def shown(settings: Settings, target: str = "/") -> str:
    made = create_app(settings, public_url=PUBLIC_URL)
    try:
        return get(made, target).text
    finally:
        made.close()


def test_cover_is_an_svg_drawn_from_the_catalog(app):
    response = get(app, "/covers/2.svg")
    assert response.status == 200
    assert response.headers["Content-Type"] == "image/svg+xml; charset=UTF-8"
    assert response.text.startswith("<svg")
    assert "Jordan Mechner" in response.text
    assert get(app, "/covers/99.svg").status == 404


def test_pages_escape_catalog_text(settings):
    catalog = Catalog.from_records(
        [
            {
                "id": "x1",
                "title": "<script>alert('t')</script>",
                "author": 'A "quoted" & <b>bold</b> author',
                "amount": 1000,
                "currency": "usd",
                "description": "<img src=x onerror=alert(1)>",
            }
        ]
    )
    app = create_app(settings, catalog=catalog, public_url=PUBLIC_URL)
    for target in ("/", "/checkout?item=x1"):
        page = get(app, target).text
        assert "<script>alert" not in page
        assert "<img src=x" not in page
        assert "&lt;script&gt;alert(" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in get(app, "/").text


# ------------------------------------------------------------------------ checkout ------


def checkout_config(page: str) -> dict:
    match = re.search(
        r'<script type="application/json" id="checkout-config">(.*?)</script>', page, re.S
    )
    assert match, "no checkout-config block"
    return json.loads(match.group(1))


def test_checkout_page_mounts_the_three_elements_in_order(app, settings):
    response = get(app, "/checkout?item=1")
    assert response.status == 200
    page = response.text
    assert "The Art of Doing Science and Engineering" in page
    assert "$23.00" in page
    positions = [
        page.index(f'id="{name}"')
        for name in ("link-auth-element", "address-element", "payment-element", "submit-button")
    ]
    assert positions == sorted(positions)
    assert re.search(r'id="submit-button"[^>]*disabled', page)
    assert re.search(r'<span class="button-text">Pay \$23.00</span>', page)
    assert (
        '<div id="payment-message" class="payment-message" role="status" aria-live="polite"'
        ' tabindex="-1">' in page
    )
    assert f'<script src="{settings.emulator_url}/v3/" defer></script>' in page
    digest = hashlib.sha256((STATIC / "checkout.js").read_bytes()).hexdigest()[:12]
    assert f'<script src="/static/checkout.js?v={digest}" async></script>' in page


def inline_scripts(page: str) -> list[str]:
    return re.findall(r"<script>(.*?)</script>", page, re.S)


def test_checkout_asks_for_its_intent_first_thing_in_the_head(app):
    """The configuration, then the inline script that sends the request, both before the
    stylesheet (which would hold an inline script back) and before any other script."""
    head = get(app, "/checkout?item=1").text.split("</head>")[0]
    # The page scripts' fetch helper first, which the request uses, in the same script.
    assert inline_scripts(head) == [
        (STATIC / "fetch-answer.js").read_text()
        + "\n"
        + (ASSETS / "inline" / "checkout-early.js").read_text()
    ]
    order = [
        head.index('id="checkout-config"'),
        head.index("<script>"),
        head.index('rel="stylesheet"'),
        head.index("<script src="),
    ]
    assert order == sorted(order)


def test_the_only_inline_script_is_the_one_the_csp_allows_by_its_hash(app):
    response = get(app, "/checkout?item=1")
    tags = re.findall(r"<script\b[^>]*>", response.text)
    inline = [tag for tag in tags if "src=" not in tag and 'type="application/json"' not in tag]
    assert inline == ["<script>"]
    (script,) = inline_scripts(response.text)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    sources = csp(response)["script-src"]
    assert f"'sha256-{digest}'" in sources
    assert [source for source in sources if source.startswith("'sha")] == [f"'sha256-{digest}'"]
    assert "'unsafe-inline'" not in sources
    for page in ("/", "/cart"):  # no other page has an inline script
        assert inline_scripts(get(app, page).text) == []


def test_the_page_scripts_fetch_through_one_shared_helper():
    """The helper that asks the shop (a request given up when no answer comes, the answer
    read) is written once, in fetch-answer.js, and the other page scripts use it."""
    scripts = sorted(ASSETS.glob("*/*.js"))
    defining = [path.name for path in scripts if "function fetchAnswer(" in path.read_text()]
    assert defining == ["fetch-answer.js"]
    assert [path.name for path in scripts if "ANSWER_WAIT_MS =" in path.read_text()] == [
        "fetch-answer.js"
    ]
    for name in ("inline/checkout-early.js", "static/checkout.js", "static/cart.js"):
        assert "window.bookpayFetch" in (ASSETS / name).read_text(), name


def test_every_page_but_the_checkout_loads_the_fetch_helper_then_cart_js_deferred(app):
    """Deferred scripts run in the page's order: the helper is there when cart.js runs. The
    checkout has it inline, ahead of its first request (no request of its own for it)."""
    for page in ("/", "/cart", "/no-such-page"):
        tags = re.findall(
            r"<script src=\"/static/([\w.-]+)\?v=\w+\" (\w+)></script>", get(app, page).text
        )
        assert tags == [("fetch-answer.js", "defer"), ("cart.js", "defer")], page
    checkout = get(app, "/checkout?item=1").text
    assert "/static/fetch-answer.js" not in checkout
    assert "window.bookpayFetch = {" in inline_scripts(checkout)[0]


def test_checkout_config_comes_from_settings(app, settings):
    config = checkout_config(get(app, "/checkout?item=3").text)
    quote = config.pop("quote")
    assert config == {
        "publishableKey": settings.client_publishable_key,
        "item": "3",
        "attemptScope": "3",
        "returnUrl": PUBLIC_URL + "/success",
        "createIntentUrl": "/create-payment-intent",
        "quoteUrl": "/checkout/quote",
        "cartItemsUrl": "/cart/items",
        "taxEnabled": True,
    }
    assert quote["lines"] == [
        {
            "item": "3",
            "title": "Working in Public: The Making and Maintenance of Open Source",
            "quantity": 1,
            "unitAmount": 2800,
            "lineAmount": 2800,
            "unitText": "$28.00",
            "lineText": "$28.00",
        }
    ]
    assert (quote["total"], quote["totalText"], quote["currency"]) == (2800, "$28.00", "usd")
    assert (quote["priced"], quote["shipping"], quote["tax"]) == (False, 0, 0)  # no address yet


def test_return_url_never_follows_a_forged_host_header(app):
    page = get(
        app,
        "/checkout?item=1",
        Host="evil.example",
        X_Forwarded_Host="evil.example",
        X_Forwarded_Proto="https",
    ).text
    assert checkout_config(page)["returnUrl"] == PUBLIC_URL + "/success"
    assert "evil.example" not in page


def test_return_url_prefers_bookpay_base_url(settings):
    settings = dataclasses.replace(settings, base_url="https://books.example.com")
    app = create_app(settings, public_url=PUBLIC_URL)
    page = get(app, "/checkout?item=1", Host="evil.example").text
    assert checkout_config(page)["returnUrl"] == "https://books.example.com/success"


def test_stripe_mode_loads_stripe_js_from_stripe(stripe_settings):
    page = get(create_app(stripe_settings, public_url=PUBLIC_URL), "/checkout?item=1").text
    assert '<script src="https://js.stripe.com/v3/" defer></script>' in page
    assert checkout_config(page)["publishableKey"] == stripe_settings.publishable_key


def test_pay_button_is_described_by_a_live_hint_saying_what_is_missing(app):
    page = get(app, "/checkout?item=1").text
    button = re.search(r'<button id="submit-button"[^>]*>', page).group(0)
    assert 'aria-describedby="pay-hint"' in button
    hint = re.search(r'<p id="pay-hint"([^>]*)>(.*?)</p>', page, re.S)
    assert hint, "no #pay-hint"
    assert 'aria-live="polite"' in hint.group(1)
    assert hint.group(2) == "Enter your email address and complete the shipping address to pay."
    # after the button, before the error message: read right after Pay, never instead of errors
    assert page.index('id="submit-button"') < page.index('id="pay-hint"')
    assert page.index('id="pay-hint"') < page.index('id="payment-message"')


def test_the_paid_notice_is_in_the_page_hidden_until_needed(app):
    page = get(app, "/checkout?item=1").text
    notice = re.search(r'<section id="paid-notice"[^>]*>', page).group(0)
    assert " hidden" in notice
    assert 'tabindex="-1"' in notice
    assert "You already paid for this book (order" in page
    assert (
        '<button id="new-attempt-button" class="button" type="button">Buy another copy</button>'
        in page
    )


@pytest.mark.parametrize("target", ["/checkout", "/checkout?item="])
def test_checkout_without_an_item_sends_the_shopper_to_choose_one(app, target):
    # No book named, and nothing in the cart: the (empty) cart page, which leads to the books.
    response = get(app, target, Host="evil.example")
    assert response.status == 303
    assert response.headers["Location"] == "/cart"  # relative: never built from the Host
    assert response.headers["Cache-Control"] == "no-store"
    for name in SECURITY_HEADERS:
        assert name in response.headers


@pytest.mark.parametrize(
    "target",
    [
        "/checkout?item=99",
        "/checkout?item=%27%27",
        # Not UTF-8: no book's id (Bottle reads it as "", which would be the cart).
        "/checkout?item=%ff",
        "/checkout?item=1&item=%ff",
    ],
)
def test_unknown_item_is_a_404_page_with_a_way_back(app, target):
    response = get(app, target)
    assert response.status == 404
    assert response.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert 'href="/"' in response.text
    assert "We don't have that book. Choose one from the list." in response.shown
    assert "No book with id" not in response.shown
    assert "$0" not in response.text
    assert "payment-element" not in response.text


# ------------------------------------------------------------ create-payment-intent ------


def test_create_payment_intent_prices_from_the_catalog(app, settings):
    response = post_json(
        app, {"item": "2", "attemptId": new_attempt(), "amount": 1, "currency": "eur"}
    )
    assert response.status == 200
    data = response.json()
    assert set(data) == {
        "clientSecret",
        "paymentIntentId",
        "orderId",
        "amount",
        "currency",
        "changed",
        "quote",
        "quoteVersion",
        "quoteAddress",
    }
    assert data["quoteAddress"] is None  # no address priced yet
    assert (data["amount"], data["currency"]) == (2500, "usd")
    assert data["quote"]["total"] == 2500 and data["quote"]["lines"][0]["item"] == "2"
    assert data["clientSecret"].startswith(data["paymentIntentId"] + "_secret_")
    intent = emulator_api(settings, "GET", f"/v1/payment_intents/{data['paymentIntentId']}")
    assert (intent["amount"], intent["currency"]) == (2500, "usd")
    assert intent["metadata"]["item_id"] == "2"
    assert intent["metadata"]["integration"] == "bookpay"
    assert intent["metadata"]["order_id"] == data["orderId"]
    assert intent["metadata"]["lines"] == "2x1"
    assert response.headers["Cache-Control"] == "no-store"


def test_the_same_attempt_reuses_its_payment_intent(app):
    attempt = new_attempt()
    first = create_intent(app, "1", attempt)
    again = create_intent(app, "1", attempt)
    assert again["paymentIntentId"] == first["paymentIntentId"]
    assert again["clientSecret"] == first["clientSecret"]
    assert create_intent(app, "1", attempt.upper())["paymentIntentId"] == first["paymentIntentId"]
    other = create_intent(app, "1", new_attempt())
    assert other["paymentIntentId"] != first["paymentIntentId"]


def test_payment_requests_are_rate_limited_per_attempt(app):
    attempt = new_attempt()
    unknown = {"item": "99", "attemptId": attempt}  # refused before Stripe: only the limit counts
    answers = [post_json(app, unknown) for _ in range(INTENT_BURST + 1)]
    assert [a.status for a in answers[:INTENT_BURST]] == [404] * INTENT_BURST
    limited = answers[-1]
    assert limited.status == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    assert post_json(app, {"item": "1", "attemptId": attempt}).status == 429  # Stripe not asked
    assert create_intent(app, "1")["paymentIntentId"].startswith("pi_")  # another attempt is not


@pytest.mark.parametrize("final", ["succeeded", "canceled"])
def test_a_finished_attempt_gets_a_409_asking_for_a_new_one(app, settings, final):
    attempt = new_attempt()
    intent_id = create_intent(app, "1", attempt)["paymentIntentId"]
    if final == "succeeded":
        assert confirm(settings, intent_id, "pm_card_visa")["status"] == "succeeded"
    else:
        emulator_api(settings, "POST", f"/v1/payment_intents/{intent_id}/cancel", {})
    response = post_json(app, {"item": "1", "attemptId": attempt})
    assert response.status == 409
    error = response.json()["error"]
    assert error["code"] == "attempt_finished"
    assert "new attempt" in error["message"]
    # what the page needs to tell the shopper which order they already paid for
    assert error["paymentIntentId"] == intent_id
    assert error["status"] == final
    assert "clientSecret" not in error
    assert create_intent(app, "1", new_attempt())["paymentIntentId"] != intent_id


BAD_REQUESTS = [
    pytest.param(b"not json", "application/json", 400, "invalid_json", id="not-json"),
    pytest.param(b"", "application/json", 400, "invalid_json", id="empty"),
    pytest.param(b'{"item": "1"', "application/json", 400, "invalid_json", id="truncated"),
    pytest.param(b"[1, 2]", "application/json", 400, "invalid_json", id="array"),
    pytest.param(b'"1"', "application/json", 400, "invalid_json", id="string"),
    pytest.param(
        b"[" * 3000 + b"]" * 3000, "application/json", 413, "payload_too_large", id="deep"
    ),
    pytest.param(b"[" * 2000 + b"]" * 2000, "application/json", 400, "invalid_json", id="nested"),
    pytest.param(b"\xff\xfe\x00", "application/json", 400, "invalid_json", id="not-utf8"),
    pytest.param(b'{"item": "1"}', "text/plain", 415, "unsupported_media_type", id="text-plain"),
    pytest.param(
        b"item=1", "application/x-www-form-urlencoded", 415, "unsupported_media_type", id="form"
    ),
]


@pytest.mark.parametrize(("body", "content_type", "status", "code"), BAD_REQUESTS)
def test_malformed_bodies_get_json_errors(app, body, content_type, status, code):
    response = post_json(app, None, raw=body, content_type=content_type)
    assert response.status == status
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


ATTEMPT = "6f1c1b8e-3a4b-4c5d-8e9f-0a1b2c3d4e5f"
BAD_FIELDS = [
    pytest.param({"attemptId": ATTEMPT}, 400, "cart_empty", id="no-item-no-cart"),
    pytest.param({"item": 1, "attemptId": ATTEMPT}, 400, "invalid_item", id="int-item"),
    pytest.param({"item": ["1"], "attemptId": ATTEMPT}, 400, "invalid_item", id="list-item"),
    pytest.param({"item": "", "attemptId": ATTEMPT}, 400, "invalid_item", id="empty-item"),
    pytest.param({"item": "99", "attemptId": ATTEMPT}, 404, "unknown_item", id="unknown-item"),
    pytest.param({"item": "1"}, 400, "missing_attempt_id", id="no-attempt"),
    pytest.param({"item": "1", "attemptId": "abc"}, 400, "invalid_attempt_id", id="short"),
    pytest.param({"item": "1", "attemptId": 12}, 400, "invalid_attempt_id", id="int-attempt"),
    pytest.param(
        {"item": "1", "attemptId": ATTEMPT.replace("-", "")}, 400, "invalid_attempt_id", id="hex"
    ),
    pytest.param(
        {"item": "1", "attemptId": "{" + ATTEMPT[1:-1] + "}"}, 400, "invalid_attempt_id", id="brace"
    ),
    pytest.param(
        {"item": "1", "attemptId": ATTEMPT[:-1] + "g"}, 400, "invalid_attempt_id", id="not-hex"
    ),
]


@pytest.mark.parametrize(("data", "status", "code"), BAD_FIELDS)
def test_bad_fields_get_json_errors(app, data, status, code):
    response = post_json(app, data)
    assert response.status == status
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]


def test_bodies_over_4_kib_are_refused_with_413(app):
    padding = "x" * 4200
    response = post_json(app, {"item": "1", "attemptId": ATTEMPT, "pad": padding})
    assert response.status == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_lying_content_length_cannot_make_the_server_read_more(app):
    body = json.dumps({"item": "1", "attemptId": ATTEMPT, "pad": "x" * 5000}).encode()
    response = call(
        app,
        "POST",
        "/create-payment-intent",
        body,
        {"Content-Type": "application/json", "Content-Length": "60"},
    )
    assert response.status == 400  # only the first 60 bytes were read: not JSON
    assert response.json()["error"]["code"] == "invalid_json"


def test_stripe_unreachable_is_a_503_json_error_with_retry_after(settings):
    dead = dataclasses.replace(settings, emulator_url=f"http://127.0.0.1:{dead_port()}")
    app = create_app(dead, public_url=PUBLIC_URL)
    response = post_json(app, {"item": "1", "attemptId": new_attempt()})
    assert response.status == 503
    assert int(response.headers["Retry-After"]) >= 1
    error = response.json()["error"]
    assert error["code"] == "stripe_unavailable"
    assert error["message"] == "Payments are unavailable right now. Please try again in a moment."
    assert "Traceback" not in response.text
    assert "127.0.0.1" not in response.text  # where Stripe is reached from is the shop's business
    # the pages that don't need Stripe still work, and the return page says what is wrong
    assert get(app, "/checkout?item=1").status == 200
    page = get(app, success_url("pi_123", "pi_123_secret_abc"))
    assert page.status == 503
    assert int(page.headers["Retry-After"]) >= 1
    assert page.headers["Content-Type"] == "text/html; charset=UTF-8"


class ExplodingGateway:
    def create_intent(self, book, **kwargs):
        raise RuntimeError("kaboom with sk_test_should_not_leak")

    def retrieve_intent(self, intent_id, **kwargs):
        raise RuntimeError("kaboom with sk_test_should_not_leak")


class RefusingGateway:
    """A gateway whose creation fails as given: what Stripe's failures say names where the shop
    reaches Stripe (the emulator's address), for the log, never for a browser."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def create_intent(self, *args, **kwargs):
        raise self.error

    def retrieve_intent(self, intent_id, **kwargs):
        raise self.error


INTERNAL = "http://10.1.2.3:27101"


@pytest.mark.parametrize(
    ("error", "status", "code", "said"),
    [
        pytest.param(
            StripeUnavailable(f"The emulator at {INTERNAL} could not handle the request (500)."),
            503,
            "stripe_unavailable",
            "Payments are unavailable right now. Please try again in a moment.",
            id="stripe-unavailable",
        ),
        pytest.param(
            PaymentError(
                f"The emulator at {INTERNAL} refused the request (414: URI Too Long).",
                http_status=414,
            ),
            414,
            "payment_rejected",
            "Your payment could not be set up. Please try again.",
            id="payment-error",
        ),
        pytest.param(
            ConfigError(f"the emulator at {INTERNAL} refused the API key: Invalid API Key."),
            503,
            "configuration_error",
            "The shop can't take orders right now. Please try again in a moment.",
            id="config-error",
        ),
    ],
)
def test_what_failed_behind_the_shop_reaches_the_log_not_the_shopper(
    settings, caplog, error, status, code, said
):
    app = create_app(settings, gateway=RefusingGateway(error), public_url=PUBLIC_URL)
    with caplog.at_level("WARNING", logger="bookpay.server"):
        response = post_json(app, {"item": "1", "attemptId": new_attempt()})
    assert response.status == status
    assert response.json()["error"]["message"] == said
    assert response.json()["error"]["code"] == code
    assert "10.1.2.3" not in response.text
    assert INTERNAL in caplog.text  # what failed, for whoever runs the shop


def test_unexpected_errors_are_a_500_without_a_traceback(settings):
    app = create_app(settings, gateway=ExplodingGateway(), public_url=PUBLIC_URL)
    response = post_json(app, {"item": "1", "attemptId": new_attempt()})
    assert response.status == 500
    assert response.json() == {
        "error": {
            "message": "Something went wrong on our side. Please try again.",
            "code": "internal_error",
        }
    }
    page = get(app, success_url("pi_123", "pi_123_secret_abc"))
    assert page.status == 500
    assert page.headers["Content-Type"] == "text/html; charset=UTF-8"
    for text in (response.text, page.text):
        assert "kaboom" not in text
        assert "Traceback" not in text
        assert "sk_test" not in text


# ------------------------------------------------------------------------- success ------


def test_success_page_shows_a_paid_order_and_fulfils_it(app, settings, fulfiller):
    created = create_intent(app, "2")
    intent_id = created["paymentIntentId"]
    confirmed = confirm(
        settings, intent_id, "pm_card_visa", receipt_email="ada@example.com", **SHIPPING
    )
    assert confirmed["status"] == "succeeded"
    response = get(app, success_url(intent_id, created["clientSecret"]))
    assert response.status == 200
    page = response.text
    assert "Success!" in page
    assert "The Making of Prince of Persia: Journals 1985-1993" in page
    assert '<li class="line" data-item="2">' in page
    assert '<dd id="receipt-amount">$25.00</dd>' in page
    order_id = created["orderId"]
    assert f'<dt>Order reference</dt><dd id="receipt-order"><code>{order_id}</code></dd>' in page
    payment = f'<dt>Payment reference</dt><dd id="receipt-intent"><code>{intent_id}</code></dd>'
    assert payment in page
    assert "ada@example.com" in page
    assert "Ada Lovelace" in page
    assert "12 St James&#039;s Square" in page
    assert "SW1Y 4JH" in page
    assert response.headers["Cache-Control"] == "no-store"
    assert fulfiller.calls == [intent_id]
    receipt = emulator_api(settings, "GET", f"/v1/charges/{confirmed['latest_charge']}")
    if receipt.get("receipt_url"):
        assert "View your receipt" in page


def test_success_page_still_shows_the_receipt_when_fulfilment_fails(settings, caplog):
    app = create_app(settings, fulfiller=RecordingFulfiller(fail=True), public_url=PUBLIC_URL)
    created = create_intent(app, "1")
    confirm(settings, created["paymentIntentId"], "pm_card_visa")
    response = get(app, success_url(created["paymentIntentId"], created["clientSecret"]))
    assert response.status == 200
    assert "Success!" in response.text
    assert "fulfilment of" in caplog.text


def test_success_page_decides_from_the_intent_not_redirect_status(app, settings, fulfiller):
    created = create_intent(app, "3")
    intent_id = created["paymentIntentId"]
    declined = confirm(settings, intent_id, "pm_card_visa_chargeDeclined")
    assert declined["error"]["code"] == "card_declined"
    response = get(app, success_url(intent_id, created["clientSecret"]))  # says "succeeded"
    assert response.status == 200
    page = response.text
    assert "Payment failed" in page
    assert "<title>Payment failed · bookpay</title>" in page  # the tab says where, as the h1
    assert "Success!" not in page
    assert "Your card was declined." in page
    assert 'href="/checkout?item=3">Try again</a>' in page
    assert fulfiller.calls == []


class OneIntentGateway:
    """A gateway whose only PaymentIntent is the one given: for states hard to reach for real."""

    def __init__(self, intent: dict) -> None:
        self.intent = intent

    def retrieve_intent(self, intent_id, **kwargs):
        return self.intent


def failed_intent(error: dict, shop_id: str) -> dict:
    return {
        "id": "pi_failed123",
        "client_secret": "pi_failed123_secret_abc",
        "status": "requires_payment_method",
        "amount": 2300,
        "currency": "usd",
        "metadata": {"item_id": "1", "integration": "bookpay", "shop_id": shop_id},
        "last_payment_error": error,
    }


API_AUTH_FAILURE = (
    "The provided PaymentMethod has failed authentication. You can provide payment_method_data "
    "or a new PaymentMethod to attempt to fulfill this PaymentIntent again."
)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        pytest.param(
            {
                "type": "invalid_request_error",
                "code": "payment_intent_authentication_failure",
                "message": API_AUTH_FAILURE,
            },
            "We are unable to authenticate your payment method. "
            "Please choose a different payment method and try again.",
            id="3ds-failed",
        ),
        pytest.param(
            {
                "type": "card_error",
                "code": "card_declined",
                "decline_code": "insufficient_funds",
                "message": "Your card has insufficient funds.",
            },
            "Your card has insufficient funds.",
            id="card-error-keeps-stripes-wording",
        ),
        pytest.param(
            {"type": "card_error", "code": "card_declined", "decline_code": "lost_card"},
            "Your card was declined.",
            id="card-error-without-message",
        ),
        pytest.param(
            {"type": "card_error", "code": "expired_card", "message": ""},
            "Your card has expired.",
            id="expired-without-message",
        ),
        pytest.param(
            {
                "type": "api_error",
                "code": "resource_missing",
                "message": "No such payment_method: 'pm_123'; a similar object exists in live mode",
            },
            "Your payment could not be completed. Please try again.",
            id="api-text-is-never-shown",
        ),
        pytest.param(
            {"type": "invalid_request_error", "message": "Invalid integer: abc"},
            "Your payment could not be completed. Please try again.",
            id="invalid-request",
        ),
    ],
)
def test_a_failed_payment_gives_the_shopper_a_reason_in_shopper_words(settings, error, reason):
    intent = failed_intent(error, settings.shop_id)
    app = create_app(settings, gateway=OneIntentGateway(intent), public_url=PUBLIC_URL)
    response = get(app, success_url(intent["id"], intent["client_secret"]))
    assert response.status == 200
    assert "Payment failed" in response.text
    assert f'<p class="reason" id="failure-reason">{html.escape(reason)}</p>' in response.text
    visible = re.sub(r"<[^>]*>", " ", response.text)  # class names are not shown
    for developer_text in ("PaymentMethod", "payment_method", "Invalid integer", "No such"):
        assert developer_text not in html.unescape(visible)


def test_success_page_for_a_canceled_intent(app, settings):
    created = create_intent(app, "1")
    emulator_api(settings, "POST", f"/v1/payment_intents/{created['paymentIntentId']}/cancel", {})
    page = get(app, success_url(created["paymentIntentId"], created["clientSecret"])).text
    assert "Payment canceled" in page
    assert "<title>Payment canceled · bookpay</title>" in page


def test_success_page_for_an_authorized_payment_says_it_is_held_and_offers_no_retry(
    app, settings, fulfiller
):
    """Manual capture: the payment is authorized (requires_capture), the money held, not taken.
    Nothing to try again (paying again would hold a second amount); not paid, not fulfilled."""
    created = create_intent(app, "2")
    intent_id = created["paymentIntentId"]
    emulator_api(settings, "POST", f"/v1/payment_intents/{intent_id}", {"capture_method": "manual"})
    assert confirm(settings, intent_id, "pm_card_visa", **SHIPPING)["status"] == "requires_capture"
    response = get(app, success_url(intent_id, created["clientSecret"]))
    assert response.status == 200
    page = response.text
    assert '<h1 id="result-heading">Payment authorized</h1>' in page
    assert "<title>Payment authorized · bookpay</title>" in page
    assert "held on your card" in page
    for said in ("Try again", "Start again", "Payment not completed", "Success!", "Total charged"):
        assert said not in page
    assert "/checkout" not in page
    assert '<dt>Total authorized</dt><dd id="receipt-amount">$25.00</dd>' in page
    assert f'<dd id="receipt-order"><code>{created["orderId"]}</code></dd>' in page
    assert f'<dd id="receipt-intent"><code>{intent_id}</code></dd>' in page
    assert '<li class="line" data-item="2">' in page
    assert "View your receipt" not in page
    assert fulfiller.calls == []  # fulfilment waits for the capture


def test_success_page_for_an_unconfirmed_intent(app):
    created = create_intent(app, "1")
    page = get(app, success_url(created["paymentIntentId"], created["clientSecret"])).text
    assert "Success!" not in page
    assert "Payment not completed" in page
    assert "<title>Payment not completed · bookpay</title>" in page
    assert "Payment failed" not in page  # nothing was tried, so nothing failed
    assert 'href="/checkout?item=1"' in page


def test_success_page_refuses_a_missing_or_wrong_client_secret(app, settings, fulfiller):
    created = create_intent(app, "1")
    intent_id = created["paymentIntentId"]
    confirm(settings, intent_id, "pm_card_visa")
    other = create_intent(app, "1")
    for secret in (None, "", "wrong", other["clientSecret"], created["clientSecret"] + "x"):
        response = get(app, success_url(intent_id, secret))
        assert response.status == 404, secret
        assert intent_id not in response.text
        assert "Success!" not in response.text
    assert fulfiller.calls == []


class RetrieveCounter:
    """Counts the PaymentIntents asked for; there are none."""

    def __init__(self) -> None:
        self.retrieved: list[str] = []

    def retrieve_intent(self, intent_id, **kwargs):
        self.retrieved.append(intent_id)
        raise StripeUnavailable("not expected")


def test_success_page_asks_stripe_only_for_a_secret_that_can_be_the_intents(settings):
    gateway = RetrieveCounter()
    app = create_app(settings, gateway=gateway, public_url=PUBLIC_URL)
    intent_id = "pi_3Abc123"
    for secret in ("wrong", "pi_3Other_secret_x", f"x{intent_id}_secret_x", f"{intent_id}_secre"):
        response = get(app, success_url(intent_id, secret))
        assert response.status == 404, secret
    assert gateway.retrieved == []
    # One that can be its secret is checked with Stripe (here unreachable: the page says so).
    assert get(app, success_url(intent_id, f"{intent_id}_secret_abc")).status == 503
    assert gateway.retrieved == [intent_id]


def test_success_page_refuses_a_payment_intent_that_is_not_the_shops(app, settings, fulfiller):
    foreign = emulator_api(
        settings,
        "POST",
        "/v1/payment_intents",
        {"amount": 2300, "currency": "usd", "allowed_payment_method_types[]": "card"},
    )
    confirm(settings, foreign["id"], "pm_card_visa")
    response = get(app, success_url(foreign["id"], foreign["client_secret"]))
    assert response.status == 404
    assert fulfiller.calls == []


class UnavailableGateway:
    """Stripe answering 500s past the gateway's retries, as the gateway words it."""

    def retrieve_intent(self, intent_id, **kwargs):
        raise StripeUnavailable(
            "The emulator at http://127.0.0.1:12600 could not handle the request (500).",
            retry_after=7,
        )


def test_success_page_while_stripe_is_down_reassures_and_offers_a_reload(settings, caplog):
    app = create_app(settings, gateway=UnavailableGateway(), public_url=PUBLIC_URL)
    target = success_url("pi_paid123", "pi_paid123_secret_abc")
    response = get(app, target)
    assert response.status == 503
    assert response.headers["Retry-After"] == "7"
    assert response.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert response.headers["Cache-Control"] == "no-store"
    page = response.text
    assert "We could not check your payment just now" in page
    assert "<title>Payment not checked yet · bookpay</title>" in page
    assert "your order is safe" in page
    assert f'id="reload-link" class="button" href="{html.escape(target)}"' in page
    for internal in ("127.0.0.1:12600", "emulator", "(500)", "Payments are unavailable"):
        assert internal not in page
    assert "127.0.0.1:12600" in caplog.text  # what failed is in the server's log


@pytest.mark.parametrize(
    "target",
    [
        "/success",
        "/success?payment_intent=pi_doesnotexist&payment_intent_client_secret=pi_x_secret_y",
        "/success?payment_intent=not-an-id&payment_intent_client_secret=abc",
        "/success?payment_intent_client_secret=abc",
    ],
)
def test_success_page_is_a_404_for_nonsense(app, target):
    response = get(app, target)
    assert response.status == 404
    assert response.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert 'href="/"' in response.text


def test_ids_that_cannot_be_a_payment_intent_are_never_sent_to_stripe(app):
    # A 70,000-character id used to reach Stripe, whose 414 the gateway counts as Stripe failing:
    # a 503 each time, and after five the circuit breaker stopped every shopper's payments.
    for intent_id in ("pi_" + "x" * 70000, "pi_1/../../v1/customers", "pi_1_secret_abc"):
        for _ in range(6):
            response = get(app, success_url(intent_id, "pi_1_secret_abc"))
            assert response.status == 404, intent_id[:40]
    assert get(app, "/readyz").status == 200
    create_intent(app, "1")


# ------------------------------------------------------------------ webhook, health ------


def test_webhook_hands_the_raw_body_and_signature_to_the_receiver(settings):
    receiver = RecordingReceiver()
    app = create_app(settings, receiver=receiver, public_url=PUBLIC_URL)
    payload = b'{"id": "evt_1", "type": "payment_intent.succeeded"}'
    response = call(
        app,
        "POST",
        "/webhook",
        payload,
        {"Content-Type": "application/json", "Stripe-Signature": "t=1,v1=abc"},
    )
    assert response.status == 200
    assert response.json() == {"received": True, "type": "payment_intent.succeeded"}
    assert receiver.calls == [(payload, "t=1,v1=abc")]


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (WebhookSignatureError("No valid signature."), 400, "invalid_signature"),
        (ConfigError("No webhook secret is configured."), 503, "configuration_error"),
    ],
)
def test_webhook_errors_are_json(settings, error, status, code):
    app = create_app(settings, receiver=RecordingReceiver(error), public_url=PUBLIC_URL)
    response = call(app, "POST", "/webhook", b"{}", {"Content-Type": "application/json"})
    assert response.status == status
    assert response.json()["error"]["code"] == code


def test_a_ledger_that_fails_when_read_answers_a_webhook_503_with_retry_after(
    settings, monkeypatch
):
    """The ledger is down for now, not the shop: a 503 (so Stripe delivers the event again
    later), in JSON, saying when to come back; not a 500."""
    from stripe_fakes import SHOP, event, intent
    from test_cli_orders import fail_reads

    from bookpay.webhooks import sign

    settings = dataclasses.replace(settings, webhook_secrets=("whsec_test",), shop_id=SHOP)
    app = create_app(settings, public_url=PUBLIC_URL)
    said = fail_reads(monkeypatch, {"BOOKPAY_DATA_DIR": str(settings.data_dir)}, "events")
    payload = json.dumps(event("payment_intent.succeeded", intent())).encode()
    headers = {"Content-Type": "application/json", "Stripe-Signature": sign(payload, "whsec_test")}
    try:
        response = call(app, "POST", "/webhook", payload, headers)
    finally:
        app.close()  # the ledger and the workers it built: their threads outlive no test
    assert response.status == 503, response.body
    assert response.headers["Retry-After"] == "5"
    error = response.json()["error"]
    assert error["code"] == "ledger_unavailable"
    assert error["message"] == f"{said}: disk I/O error."


def test_webhook_refuses_huge_payloads(settings):
    receiver = RecordingReceiver()
    app = create_app(settings, receiver=receiver, public_url=PUBLIC_URL)
    response = call(app, "POST", "/webhook", b"x" * (600 * 1024), {"Content-Type": "text/plain"})
    assert response.status == 413
    assert receiver.calls == []


def test_healthz(app, stripe_settings):
    response = get(app, "/healthz")
    assert response.status == 200
    assert response.json() == {"ok": True, "mode": "emulator"}
    stripe_app = create_app(stripe_settings, public_url=PUBLIC_URL)
    assert get(stripe_app, "/healthz").json() == {"ok": True, "mode": "stripe"}


def test_readyz_says_whether_stripe_answers(app, settings):
    response = get(app, "/readyz")
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["ready"] is True and body["mode"] == "emulator"
    assert body["stripe"]["circuit"] == "closed" and body["stripe"]["check"] == "ok"
    dead = dataclasses.replace(settings, emulator_url=f"http://127.0.0.1:{dead_port()}")
    response = get(create_app(dead, public_url=PUBLIC_URL), "/readyz")
    assert response.status == 503
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()["ready"] is False
    assert response.json()["error"]["code"] == "not_ready"
    message = response.json()["error"]["message"]
    assert "reach the emulator" in message
    assert message.endswith(".") and not message.endswith("..")  # one full stop, not two


class CountingGateway:
    """A real gateway whose pings are counted."""

    def __init__(self, gateway) -> None:
        self._gateway = gateway
        self.pings = 0

    def __getattr__(self, name):
        return getattr(self._gateway, name)

    def ping(self):
        self.pings += 1
        return self._gateway.ping()


@pytest.fixture
def hung_stripe():
    """Settings whose Stripe accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock.getsockname()[1]
    sock.close()


def test_readyz_is_bounded_and_never_piles_up_on_a_hung_stripe(settings, hung_stripe):
    from bookpay.config import StripeLimits
    from bookpay.payments import Gateway
    from bookpay.server import READY_WAIT

    limits = StripeLimits(read_timeout=3, total_timeout=3)
    hung = dataclasses.replace(
        settings, emulator_url=f"http://127.0.0.1:{hung_stripe}", stripe_limits=limits
    )
    gateway = CountingGateway(Gateway(hung))
    app = create_app(hung, gateway=gateway, public_url=PUBLIC_URL)
    answers = []

    def ask():
        started = time.monotonic()
        response = get(app, "/readyz")
        answers.append((response, time.monotonic() - started))

    threads = [threading.Thread(target=ask) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(answers) == 20
    for response, seconds in answers:
        assert response.status == 503
        assert response.json()["error"]["code"] == "not_ready"
        assert seconds < READY_WAIT + 2  # never the 3 s the ping itself may take
    assert gateway.pings == 1
    assert get(app, "/healthz").status == 200  # liveness never asks Stripe


def test_readyz_answers_at_once_while_the_breaker_is_open(settings):
    from bookpay.config import StripeLimits
    from bookpay.payments import Gateway

    limits = StripeLimits(failure_threshold=1, cooldown=60)
    dead = dataclasses.replace(
        settings, emulator_url=f"http://127.0.0.1:{dead_port()}", stripe_limits=limits
    )
    gateway = CountingGateway(Gateway(dead))
    app = create_app(dead, gateway=gateway, public_url=PUBLIC_URL)
    response = post_json(app, {"item": "1", "attemptId": new_attempt()})  # opens the breaker
    assert response.json()["error"]["code"] == "stripe_unavailable"
    response = get(app, "/readyz")
    assert response.status == 503
    assert 50 <= int(response.headers["Retry-After"]) <= 60
    assert response.json()["stripe"]["circuit"] == "open"
    assert response.json()["error"]["message"].endswith("(circuit open).")
    assert gateway.pings == 0
    response = post_json(app, {"item": "1", "attemptId": new_attempt()})
    assert response.status == 503
    assert response.json()["error"]["code"] == "stripe_circuit_open"
    assert 50 <= int(response.headers["Retry-After"]) <= 60


def test_api_routes_answer_404_and_405_in_json(app):
    response = get(app, "/create-payment-intent")
    assert response.status == 405
    assert response.headers["Allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"
    response = call(app, "DELETE", "/healthz")
    assert response.status == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_unknown_pages_are_an_html_404(app):
    response = get(app, "/no/such/page")
    assert response.status == 404
    assert response.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert "Page not found" in response.text
    assert 'href="/"' in response.text


def test_static_files(app):
    script = get(app, "/static/checkout.js")
    assert script.headers["Cache-Control"] == "no-cache"  # no fingerprint: revalidated
    assert script.status == 200
    assert "javascript" in script.headers["Content-Type"]
    assert "confirmPayment" in script.text
    assert get(app, "/static/style.css").headers["Content-Type"].startswith("text/css")
    assert get(app, "/static/favicon.svg").status == 200
    assert get(app, "/static/nope.js").status == 404
    assert get(app, "/static/../server.py").status in (403, 404)
    assert get(app, "/static/%2e%2e/%2e%2e/server.py").status in (403, 404)


def test_static_files_are_linked_by_digest_and_kept_until_they_change(app):
    for page, name in (
        ("/", "style.css"),
        ("/", "fetch-answer.js"),
        ("/", "cart.js"),
        ("/checkout?item=1", "checkout.js"),
    ):
        digest = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]
        url = f"/static/{name}?v={digest}"
        assert f'"{url}"' in get(app, page).text
        assert get(app, url).headers["Cache-Control"] == "public, max-age=31536000, immutable"
    # A page from before a change names an old digest: that file is revalidated, not kept.
    assert get(app, "/static/style.css?v=0123456789ab").headers["Cache-Control"] == "no-cache"
    etag = get(app, "/static/style.css").headers["Etag"]  # Bottle's spelling
    again = get(app, "/static/style.css", If_None_Match=etag)
    assert again.status == 304
    assert again.headers["Cache-Control"] == "no-cache"


def test_a_static_file_changed_while_serving_gets_a_new_digest(tmp_path):
    files = StaticFiles(tmp_path)
    (tmp_path / "app.js").write_text("one")
    first = files.url("app.js")
    assert first == f"/static/app.js?v={hashlib.sha256(b'one').hexdigest()[:12]}"
    assert files.cache_control("app.js", first.rsplit("=", 1)[1]) == IMMUTABLE
    (tmp_path / "app.js").write_text("two, longer")
    second = files.url("app.js")
    assert second == f"/static/app.js?v={hashlib.sha256(b'two, longer').hexdigest()[:12]}"
    assert files.cache_control("app.js", first.rsplit("=", 1)[1]) == REVALIDATE
    assert files.cache_control("app.js", "") == REVALIDATE
    assert files.url("gone.js") == "/static/gone.js"


# ------------------------------------------------------------------------- headers ------

EVERY_KIND_OF_RESPONSE = [
    ("GET", "/"),
    ("GET", "/checkout?item=1"),
    ("GET", "/checkout?item=99"),
    ("GET", "/success"),
    ("GET", "/covers/1.svg"),
    ("GET", "/static/style.css"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/no/such/page"),
    ("GET", "/create-payment-intent"),
    ("POST", "/create-payment-intent"),
]


@pytest.mark.parametrize(("method", "target"), EVERY_KIND_OF_RESPONSE)
def test_security_headers_on_every_response(app, method, target):
    response = call(app, method, target)
    for name in SECURITY_HEADERS:
        assert name in response.headers, (name, target, response.status)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] in ("strict-origin-when-cross-origin", "same-origin")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize(("method", "target"), EVERY_KIND_OF_RESPONSE)
def test_hsts_on_every_response_when_shoppers_come_over_https(settings, method, target):
    https = dataclasses.replace(settings, base_url="https://shop.example.test")
    response = call(create_app(https), method, target)
    assert response.headers.get("Strict-Transport-Security") == "max-age=31536000", target


def test_no_hsts_over_plain_http(app, settings):
    assert "Strict-Transport-Security" not in get(app, "/").headers
    plain = dataclasses.replace(settings, base_url="http://shop.example.test")
    assert "Strict-Transport-Security" not in get(create_app(plain), "/checkout?item=1").headers


def test_an_unsatisfiable_range_is_the_shops_error_page_not_bottles(app):
    response = get(app, "/static/style.css", Range="bytes=999999-", Host="evil.example")
    assert response.status == 416
    assert "evil.example" not in response.text  # Bottle's page echoes the URL, Host and all
    assert "<title>Range not satisfiable · bookpay</title>" in response.text
    for name in SECURITY_HEADERS:
        assert name in response.headers


def test_an_unexpected_http_error_is_answered_by_the_shop(app):
    import bottle

    @app.get("/teapot")
    def teapot():
        raise bottle.HTTPError(418, "I'm a teapot")

    response = get(app, "/teapot", Host="evil.example")
    assert response.status == 418
    assert "evil.example" not in response.text
    assert "· bookpay</title>" in response.text


@pytest.mark.parametrize("target", ["/checkout?item=1", "/success", "/checkout?item=99"])
def test_checkout_and_success_are_never_cached(app, target):
    assert get(app, target).headers["Cache-Control"] == "no-store"


def csp(response: Response) -> dict[str, list[str]]:
    directives = {}
    for part in response.headers["Content-Security-Policy"].split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


def test_csp_in_emulator_mode_allows_the_emulator_and_nothing_else(app, settings):
    policy = csp(get(app, "/checkout?item=1"))
    origin = settings.emulator_url
    assert policy["script-src"] == ["'self'", EARLY_SCRIPT.csp_source, origin]
    assert origin in policy["connect-src"]
    assert origin in policy["frame-src"]
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "stripe.com" not in get(app, "/").headers["Content-Security-Policy"]


def test_csp_in_stripe_mode_allows_what_stripe_js_needs_and_nothing_else(stripe_settings):
    """Exactly Stripe's list for Stripe.js (its integration security guide, "Content Security
    Policy"): connect-src api.stripe.com and maps.googleapis.com; frame-src js.stripe.com, its
    subdomains and hooks.stripe.com; script-src js.stripe.com, its subdomains and
    maps.googleapis.com. Nothing of Checkout's (img-src *.stripe.com), no origin it does not name
    (m.stripe.network); inline styles only, which Stripe.js sets on what it mounts."""
    response = get(create_app(stripe_settings, public_url=PUBLIC_URL), "/checkout?item=1")
    policy = csp(response)
    assert policy["script-src"] == [
        "'self'",
        EARLY_SCRIPT.csp_source,
        "https://js.stripe.com",
        "https://*.js.stripe.com",
        "https://maps.googleapis.com",
    ]
    assert policy["frame-src"] == [
        "https://js.stripe.com",
        "https://*.js.stripe.com",
        "https://hooks.stripe.com",
    ]
    assert policy["connect-src"] == [
        "'self'",
        "https://api.stripe.com",
        "https://maps.googleapis.com",
    ]
    assert policy["img-src"] == ["'self'", "data:"]
    assert policy["style-src"] == ["'self'", "'unsafe-inline'"]
    assert policy["default-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "127.0.0.1" not in response.headers["Content-Security-Policy"]


def test_the_secret_key_never_reaches_a_page(stripe_settings):
    app = create_app(stripe_settings, public_url=PUBLIC_URL)
    for target in ("/", "/checkout?item=1", "/healthz", "/no/such/page"):
        response = get(app, target)
        assert stripe_settings.secret_key not in response.text
        assert stripe_settings.secret_key not in json.dumps(response.headers)
        assert "sk_test" not in response.text


# --------------------------------------------------------------------- bookpay serve ------


def test_serve_refuses_a_port_in_use_in_one_line(cli_env):
    from typer.testing import CliRunner

    from bookpay.cli import app as cli

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = CliRunner().invoke(cli, ["serve", "--port", str(port)], env=cli_env)
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: Port {port} on 127.0.0.1 is already in use. "
        "Stop whatever is using it, or choose another with --port.\n"
    )
    assert "Traceback" not in result.output


def test_serve_leaves_no_logging_handler_behind(cli_env):
    import logging

    from typer.testing import CliRunner

    from bookpay.cli import app as cli

    loggers = [logging.getLogger(name) for name in ("bookpay", "waitress")]
    before = [list(logger.handlers) for logger in loggers]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        for _ in range(3):
            result = CliRunner().invoke(cli, ["serve", "--port", str(port)], env=cli_env)
            assert result.exit_code == 2
    assert [list(logger.handlers) for logger in loggers] == before


def test_serve_checks_the_settings_first(cli_env):
    from typer.testing import CliRunner

    from bookpay.cli import app as cli

    env = {**cli_env, "STRIPE_SECRET_KEY": "pk_test_notasecretkey123"}
    result = CliRunner().invoke(cli, ["serve", "--port", "0"], env=env)
    assert result.exit_code == 5
    assert result.stderr.startswith("Error: Configuration problem: STRIPE_SECRET_KEY must be")


FIXTURES = Path(__file__).resolve().parents[1] / "bookpay" / "assets" / "fixtures"


def _default_signals() -> None:
    """In a child: a background test runner (or nohup) may ignore SIGINT or SIGHUP; the shop
    must get a real Ctrl-C and a real hangup."""
    import signal

    for signum in (signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


class Served:
    """`bookpay serve` in a child process, as a developer runs it; Ctrl-C ends it."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        import os
        import subprocess
        import sys

        self.process = subprocess.Popen(
            [sys.executable, "-m", "bookpay", "serve", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env},
            preexec_fn=_default_signals,
        )
        self.lines: list[str] = []
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("Press Ctrl-C"):
                break
        else:
            raise AssertionError(self.process.stderr.read())
        self.url = self.lines[0].rsplit(" ", 1)[1]

    def stop(self, signum: int | None = None) -> tuple[int, str, str]:
        import signal

        self.process.send_signal(signal.SIGINT if signum is None else signum)
        out, err = self.process.communicate(timeout=15)
        return self.process.returncode, out, err


def wait_for_fulfilment(data_dir, intent_id: str, timeout: float = 10.0) -> bool:
    import time

    from bookpay.orders import Ledger

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ledger = Ledger.open(data_dir)
        try:
            if ledger.fulfilment_count(intent_id) == 1:
                return True
        finally:
            ledger.close()
        time.sleep(0.1)
    return False


def test_serve_starts_an_emulator_serves_the_shop_and_stops_on_ctrl_c(tmp_path):
    served = Served(
        ["--port", "0", "--emulator-port", "0"], {"BOOKPAY_DATA_DIR": str(tmp_path / "data")}
    )
    try:
        text = "\n".join(served.lines)
        assert re.match(r"bookpay is serving the shop at http://127\.0\.0\.1:\d+$", served.lines[0])
        assert "local test mode: payments are emulated" in text
        assert "(started here)" in text
        assert "4242 4242 4242 4242  succeeds" in text
        with urllib.request.urlopen(served.url + "/healthz", timeout=5) as answer:
            assert json.loads(answer.read()) == {"ok": True, "mode": "emulator"}
            assert answer.headers["Server"] == "bookpay"  # waitress, not wsgiref
        emulator_url = re.search(r"Stripe emulator at (\S+)", text).group(1)
        with urllib.request.urlopen(served.url + "/checkout?item=1", timeout=5) as answer:
            page = answer.read().decode()
        assert f'<script src="{emulator_url}/v3/"' in page
        assert (tmp_path / "data" / "emulator.sqlite3").exists()
        # A payment made now reaches the ledger through the emulator's signed webhook alone.
        request = urllib.request.Request(
            served.url + "/create-payment-intent",
            data=json.dumps({"item": "1", "attemptId": new_attempt()}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            intent_id = json.loads(answer.read())["paymentIntentId"]
        emulator = Settings(emulator_url=emulator_url)
        assert confirm(emulator, intent_id, "pm_card_visa")["status"] == "succeeded"
        assert wait_for_fulfilment(tmp_path / "data", intent_id)
        # QA can replay at the running server without looking up its secret.
        secret_file = tmp_path / "data" / f"webhook_secret.{served.url.rsplit(':', 1)[1]}"
        assert secret_file.stat().st_mode & 0o777 == 0o600
        replayed = subprocess.run(
            [
                sys.executable,
                "-m",
                "bookpay",
                "webhook",
                "replay",
                "--json",
                "--to",
                served.url + "/webhook",
                str(FIXTURES / "payment_intent.succeeded.json"),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "BOOKPAY_DATA_DIR": str(tmp_path / "data")},
        )
        assert replayed.returncode == 0, replayed.stderr
        assert json.loads(replayed.stdout)[0]["status"] == 200
        # The emulator is not where other commands look by default: the banner says how to
        # point them at it, and a support engineer's command does what the line says.
        hint = re.search(r"Other bookpay commands find it with BOOKPAY_EMULATOR_URL=(\S+) ", text)
        assert hint and hint.group(1) == emulator_url
        shown = subprocess.run(
            [sys.executable, "-m", "bookpay", "intent", "show", "--json", intent_id],
            capture_output=True,
            text=True,
            timeout=30,
            env={
                **{
                    k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "BOOKPAY_"))
                },
                "BOOKPAY_DATA_DIR": str(tmp_path / "data"),
                "BOOKPAY_EMULATOR_URL": hint.group(1),
            },
        )
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["payment_intent"]["status"] == "succeeded"
    finally:
        code, out, err = served.stop()
    assert code == 0
    assert "Stopping." in out
    assert "Traceback" not in err
    assert not secret_file.exists()


def test_signals_stop_as_ctrl_c_does_but_a_hangup_nohup_ignores_stays_ignored():
    import signal

    from bookpay.web.launch import stop_on_signals

    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under `nohup`
    term = signal.getsignal(signal.SIGTERM)
    try:
        with stop_on_signals():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            with pytest.raises(KeyboardInterrupt):
                signal.raise_signal(signal.SIGTERM)
        assert signal.getsignal(signal.SIGTERM) is term  # put back
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        with stop_on_signals(), pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGHUP)
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGHUP, before)


@pytest.mark.skipif(
    sys.platform != "linux",
    reason="stands 127.0.0.2 for another interface: Linux answers on all of 127.0.0.0/8 "
    "without setup, macOS only on 127.0.0.1 unless an alias is added",
)
def test_serve_on_all_interfaces_keeps_the_emulator_it_starts_on_loopback(tmp_path):
    served = Served(
        ["--host", "0.0.0.0", "--port", "0", "--emulator-port", "0"],
        {"BOOKPAY_DATA_DIR": str(tmp_path / "data")},
    )
    try:
        text = "\n".join(served.lines)
        emulator_url = re.search(r"Stripe emulator at (\S+) \(started here\)", text).group(1)
        assert emulator_url.startswith("http://127.0.0.1:")
        emulator_port = int(emulator_url.rsplit(":", 1)[1])
        shop_port = int(served.url.rsplit(":", 1)[1])
        # 127.0.0.2 stands for another interface: it reaches what listens on all of them.
        with urllib.request.urlopen(f"http://127.0.0.2:{shop_port}/checkout?item=1") as answer:
            page = answer.read().decode()
        assert f'<script src="{emulator_url}/v3/"' in page  # where the page always pointed
        with urllib.request.urlopen(f"{emulator_url}/healthz", timeout=5) as answer:
            assert answer.status == 200
        with pytest.raises(ConnectionRefusedError), socket.socket() as elsewhere:
            elsewhere.connect(("127.0.0.2", emulator_port))
    finally:
        code, _, err = served.stop()
    assert code == 0, err


def test_serve_keeps_serving_when_the_reader_of_its_stdout_goes_away(tmp_path):
    served = Served(
        ["--port", "0", "--emulator-port", "0"], {"BOOKPAY_DATA_DIR": str(tmp_path / "data")}
    )
    served.process.stdout.close()  # `bookpay serve | head -1`: head has exited
    for _ in range(3):  # a request line each, to a pipe nobody reads
        with urllib.request.urlopen(served.url + "/healthz", timeout=5) as answer:
            assert answer.status == 200
    code, _, err = served.stop()
    assert code == 0
    assert err.count("WARNING bookpay: stdout is closed (its reader went away)") == 1, err
    assert "Traceback" not in err and "Logging error" not in err


def test_serve_started_with_its_stdout_closed_serves_and_stops_cleanly(tmp_path):
    import signal

    def closed_stdout() -> None:
        _default_signals()
        os.close(1)  # `bookpay serve >&-`

    process = subprocess.Popen(
        [sys.executable, "-m", "bookpay", "serve", "--port", "0", "--emulator-port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "BOOKPAY_DATA_DIR": str(tmp_path / "data")},
        preexec_fn=closed_stdout,
    )
    try:
        assert "stdout is closed" in process.stderr.readline()  # said at its first line
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    assert err == ""


def test_serve_stops_cleanly_when_its_terminal_hangs_up(tmp_path):
    import signal

    served = Served(
        ["--port", "0", "--emulator-port", "0"], {"BOOKPAY_DATA_DIR": str(tmp_path / "data")}
    )
    secret_file = tmp_path / "data" / f"webhook_secret.{served.url.rsplit(':', 1)[1]}"
    assert secret_file.exists()
    code, out, err = served.stop(signal.SIGHUP)
    assert code == 0
    assert out.splitlines()[-1] == "Stopping."
    assert "Traceback" not in err
    assert not secret_file.exists()  # cleaned up as on Ctrl-C


def test_serve_stops_cleanly_on_sigterm_while_it_is_still_starting(tmp_path):
    import signal

    with socket.socket() as silent:  # takes the emulator probe's connection, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        process = subprocess.Popen(
            [sys.executable, "-m", "bookpay", "serve", "--port", "0", "--emulator-port",
             str(silent.getsockname()[1])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "BOOKPAY_DATA_DIR": str(tmp_path / "data")},
            preexec_fn=_default_signals,
        )  # fmt: skip
        silent.settimeout(30)
        probe, _ = silent.accept()  # the shop is looking for its emulator: not serving yet
        with probe:
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    assert out == "Stopping.\n"
    assert err == ""


def test_a_second_ctrl_c_while_the_shop_stops_cuts_one_step_short_never_the_rest(tmp_path):
    from bookpay import replay
    from bookpay.web.launch import RunningShop

    done = []

    class Step:
        def __init__(self, name: str, interrupted: bool = False) -> None:
            self.name, self.interrupted = name, interrupted

        def __call__(self, **options) -> None:
            done.append((self.name, options) if options else self.name)
            if self.interrupted:  # Ctrl-C again, in the middle of this step
                raise KeyboardInterrupt

    class Link:
        stop_watching = Step("stop watching")
        unregister = Step("unregister")

    class Server:
        stop = Step("server", interrupted=True)  # the wait for the requests under way, cut
        unfinished = 1  # a request thread still at work then

    class Services:
        close = Step("services")

    settings = Settings(data_dir=tmp_path)
    replay.save_secret(tmp_path, "whsec_stopping", 4242)
    shop = RunningShop(
        url="http://shop",
        own_url="http://127.0.0.1:4242",
        settings=settings,
        server=Server(),
        services=Services(),
        link=Link(),
        secrets=["whsec_stopping"],
    )
    with pytest.raises(KeyboardInterrupt):  # raised again, once every step has been taken
        shop.stop()
    # The requests under way first, then the endpoint; the ledger is left to the thread still
    # using it.
    assert [step if isinstance(step, str) else step[0] for step in done] == [
        "stop watching",
        "server",
        "unregister",
        "services",
    ]
    assert done[3] == ("services", {"ledger_in_use": True})
    assert not (tmp_path / "webhook_secret.4242").exists()


def test_serve_uses_an_emulator_already_running_and_registers_its_webhook(emulator, tmp_path):
    port = int(emulator.url.rsplit(":", 1)[1])
    served = Served(
        ["--port", "0", "--emulator-port", str(port)], {"BOOKPAY_DATA_DIR": str(tmp_path / "d")}
    )
    try:
        assert f"Stripe emulator at {emulator.url} (already running)" in "\n".join(served.lines)
        assert "BOOKPAY_EMULATOR_URL=" in "\n".join(served.lines)  # not the default port
    finally:
        code, _, _ = served.stop()
    assert code == 0
    # Where the environment already points, there is nothing to tell.
    served = Served(
        ["--port", "0"],
        {"BOOKPAY_DATA_DIR": str(tmp_path / "d"), "BOOKPAY_EMULATOR_URL": emulator.url + "/"},
    )
    try:
        assert f"Stripe emulator at {emulator.url} (already running)" in "\n".join(served.lines)
        assert "BOOKPAY_EMULATOR_URL" not in "\n".join(served.lines)
        settings = Settings(emulator_url=emulator.url)
        endpoints = emulator_api(settings, "GET", "/v1/webhook_endpoints?limit=100")["data"]
        assert served.url + "/webhook" in [endpoint["url"] for endpoint in endpoints]
    finally:
        code, _, _ = served.stop()
    assert code == 0


def test_two_servers_on_one_data_folder_each_keep_their_secret_while_they_run(emulator, tmp_path):
    """Several processes on one SQLite ledger: replay finds each server's secret by its --to
    port, and a server that stops removes its own secret only."""
    data = tmp_path / "data"
    args = ["--port", "0", "--emulator-port", emulator.url.rsplit(":", 1)[1]]

    def replay_at(served: Served) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "bookpay", "webhook", "replay", "--json", "--to",
             served.url + "/webhook", str(FIXTURES / "payment_intent.succeeded.json")],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "BOOKPAY_DATA_DIR": str(data), "STRIPE_WEBHOOK_SECRET": ""},
        )  # fmt: skip

    first = Served(args, {"BOOKPAY_DATA_DIR": str(data)})
    try:
        second = Served(args, {"BOOKPAY_DATA_DIR": str(data)})
        try:
            for served in (first, second):
                replayed = replay_at(served)
                assert replayed.returncode == 0, replayed.stdout + replayed.stderr
                assert json.loads(replayed.stdout)[0]["status"] == 200
        finally:
            assert second.stop()[0] == 0
        assert sorted(p.name for p in data.glob("webhook_secret*")) == [
            f"webhook_secret.{first.url.rsplit(':', 1)[1]}"
        ]
        replayed = replay_at(first)  # the first still signed for, after the second stopped
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    finally:
        assert first.stop()[0] == 0
    assert list(data.glob("webhook_secret*")) == []


def test_serve_in_stripe_mode_warns_without_a_webhook_secret(tmp_path):
    env = {
        "STRIPE_SECRET_KEY": "sk_test_51Hsecretsecretsecret1234",
        "STRIPE_PUBLISHABLE_KEY": "pk_test_51Hpublicpublicpublic9876",
        "BOOKPAY_DATA_DIR": str(tmp_path / "data"),
    }
    served = Served(["--port", "0"], env)
    try:
        text = "\n".join(served.lines)
        assert "Mode: Stripe test mode" in text
        assert (  # `bookpay config check` lists it too, with the same words (one source)
            "WARNING: STRIPE_WEBHOOK_SECRET is not set: /webhook will refuse every event (503) "
            "and orders are fulfilled only from the success page. Run `stripe listen "
            f"--forward-to {served.url}/webhook` and set the whsec_ secret it prints."
        ) in served.lines
        assert "sk_test_51Hsecret" not in text
        with urllib.request.urlopen(served.url + "/", timeout=5) as answer:
            assert "js.stripe.com" in answer.headers["Content-Security-Policy"]
    finally:
        code, _, err = served.stop()
    assert code == 0
    assert "sk_test_51Hsecret" not in err


def test_serve_sizes_its_server_from_its_options_and_says_so(tmp_path):
    env = {
        "STRIPE_SECRET_KEY": "sk_test_51Hsecretsecretsecret1234",
        "STRIPE_PUBLISHABLE_KEY": "pk_test_51Hpublicpublicpublic9876",
        "STRIPE_WEBHOOK_SECRET": "whsec_capacity",
        "BOOKPAY_DATA_DIR": str(tmp_path / "data"),
    }
    args = ["--port", "0", "--threads", "9", "--connection-limit", "77", "--idle-timeout", "5"]
    served = Served(args, env)
    try:
        assert (
            "Capacity: 9 threads (6 may wait on Stripe, for 15 s at most), 77 connections, "
            "idle ones closed after 5 s."
        ) in served.lines
    finally:
        code, _, _ = served.stop()
    assert code == 0


def test_serve_options_reach_the_server(cli_env, monkeypatch):
    from typer.testing import CliRunner

    import bookpay.web.launch
    from bookpay.cli import app as cli
    from bookpay.web.runner import DEFAULT_CAPACITY, Capacity

    seen = []
    monkeypatch.setattr(
        bookpay.web.launch, "serve", lambda settings, **options: seen.append(options)
    )
    args = ["serve", "--threads", "12", "--connection-limit", "300", "--idle-timeout", "7"]
    assert CliRunner().invoke(cli, args, env=cli_env).exit_code == 0
    assert CliRunner().invoke(cli, ["serve"], env=cli_env).exit_code == 0
    assert [options["capacity"] for options in seen] == [Capacity(12, 300, 7), DEFAULT_CAPACITY]
    refused = CliRunner().invoke(cli, ["serve", "--threads", "1"], env=cli_env)
    assert refused.exit_code == 2
    assert "--threads" in refused.stderr


def test_the_stripe_bulkhead_leaves_a_third_of_the_threads_for_everything_else():
    from bookpay.config import StripeLimits
    from bookpay.web.launch import _bounded_bulkhead
    from bookpay.web.runner import Capacity

    settings = Settings(stripe_limits=StripeLimits(max_concurrent=32))
    assert _bounded_bulkhead(settings, Capacity(threads=48)) is settings
    assert _bounded_bulkhead(settings, Capacity(threads=9)).stripe_limits.max_concurrent == 6


def test_success_page_with_the_real_ledger_fulfils_once(settings):
    app = create_app(settings, public_url=PUBLIC_URL)  # orders and webhooks built on demand
    created = create_intent(app, "1")
    confirm(settings, created["paymentIntentId"], "pm_card_visa")
    url = success_url(created["paymentIntentId"], created["clientSecret"])
    try:
        assert "Success!" in get(app, url).text
        assert "Success!" in get(app, url).text  # a reload is not a second order
    finally:
        app.close()
    from bookpay.orders import Ledger

    ledger = Ledger.open(settings.data_dir)
    try:
        assert ledger.fulfilment_count(created["paymentIntentId"]) == 1
    finally:
        ledger.close()


def test_serve_refuses_an_emulator_port_taken_by_something_else(cli_env):
    from typer.testing import CliRunner

    from bookpay.cli import app as cli

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = CliRunner().invoke(
            cli, ["serve", "--port", "0", "--emulator-port", str(port)], env=cli_env
        )
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: Port {port} on 127.0.0.1 is in use, and not by a bookpay emulator. "
        "Choose another port with --emulator-port.\n"
    )
