"""The cart through the checkout server, in-process (WSGI), against the session's emulator.

Plain forms (no JavaScript) and JSON alike; the cookie; the Origin check on every state-changing
request; paying for a cart with one PaymentIntent per attempt that follows the cart; what
happens when the cart changes while paying; and the cart count in every page's header.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import sqlite3
import threading
import time
import urllib.parse
import uuid

import pytest
from test_server import (
    PUBLIC_URL,
    checkout_config,
    complete_3ds,
    confirm,
    emulator_api,
    success_url,
)
from wsgi import Response, call

from bookpay.cart import MOVE_GRACE, cookie_name
from bookpay.server import create_app

OWN = "http://127.0.0.1"  # the test environ's Host
FORM = "application/x-www-form-urlencoded"


class Shopper:
    """One browser: its cookies, sent back with every request, and its own origin."""

    def __init__(self, app, origin: str = OWN) -> None:
        self.app = app
        self.origin = origin
        self.jar: dict[str, str] = {}

    @property
    def cookie(self) -> str:
        """The Cookie header the browser sends."""
        return "; ".join(f"{name}={value}" for name, value in self.jar.items())

    @cookie.setter
    def cookie(self, header: str) -> None:
        self.jar = dict(part.split("=", 1) for part in header.split("; ") if "=" in part)

    def request(self, method: str, target: str, body: bytes = b"", **headers) -> Response:
        if self.jar:
            headers.setdefault("Cookie", self.cookie)
        if method == "POST" and self.origin:
            headers.setdefault("Origin", self.origin)
        response = call(self.app, method, target, body, headers)
        for set_cookie in response.cookies:
            name, value, _ = cookie_parts(set_cookie)
            if expires(set_cookie):
                self.jar.pop(name, None)
            else:
                self.jar[name] = value
        return response

    def get(self, target: str, **headers) -> Response:
        return self.request("GET", target, **headers)

    def form(self, target: str, **fields) -> Response:
        body = urllib.parse.urlencode(fields).encode()
        return self.request("POST", target, body, Content_Type=FORM)

    def json(self, target: str, data: dict) -> Response:
        body = json.dumps(data).encode()
        return self.request("POST", target, body, Content_Type="application/json")

    def add(self, item: str, quantity: int = 1) -> Response:
        return self.json("/cart/items", {"item": item, "quantity": quantity})

    def pay(self, attempt: str) -> Response:
        return self.json("/create-payment-intent", {"attemptId": attempt})


@pytest.fixture
def app(settings):
    made = create_app(settings, public_url=PUBLIC_URL)
    yield made
    made.close()


@pytest.fixture
def shopper(app) -> Shopper:
    return Shopper(app)


def cookie_parts(set_cookie: str) -> tuple[str, str, set[str]]:
    """A Set-Cookie header's name, value and attributes (lower case)."""
    name, _, rest = set_cookie.partition("=")
    value, *attributes = [part.strip() for part in rest.split(";")]
    return name, value, {a.lower() for a in attributes}


def expires(set_cookie: str) -> bool:
    """Whether a browser drops the cookie on this Set-Cookie (a Max-Age of 0 or less)."""
    return any(
        a.startswith("max-age=") and int(a.partition("=")[2]) <= 0
        for a in cookie_parts(set_cookie)[2]
    )


def count_in_header(page: str) -> str:
    found = re.search(r'<span id="cart-count"[^>]*>([^<]*)</span>', page)
    assert found, "no #cart-count"
    return found.group(1)


def lines_of(page: str) -> list[tuple[str, str]]:
    """(data-item, quantity) of each cart line on the page."""
    found = re.findall(
        r'<li class="line" data-item="([^"]+)">.*?name="quantity" value="(\d+)"', page, re.S
    )
    return found


# The cart without JavaScript -------------------------------------------------------------------


def test_plain_forms_add_change_and_remove(shopper):
    added = shopper.form("/cart/items", item="1")
    assert (added.status, added.headers["Location"]) == (303, "/cart")
    shopper.form("/cart/items", item="2", quantity="3")
    shopper.form("/cart/items", item="1")
    page = shopper.get("/cart").text
    assert lines_of(page) == [("1", "2"), ("2", "3")]
    assert '<dd id="cart-subtotal">$121.00</dd>' in page
    assert count_in_header(page) == "5"
    changed = shopper.form("/cart/items/2", quantity="1", next="/checkout")
    assert (changed.status, changed.headers["Location"]) == (303, "/checkout")
    removed = shopper.form("/cart/items/1", quantity="0", next="https://evil.example/")
    assert removed.headers["Location"] == "/cart"  # never a place the form names
    assert lines_of(shopper.get("/cart").text) == [("2", "1")]


def test_the_cookie_is_random_httponly_and_samesite_lax(app, settings):
    first, second = Shopper(app), Shopper(app)
    cookie = first.form("/cart/items", item="1").headers["Set-Cookie"]
    second.form("/cart/items", item="1")
    name, _, rest = cookie.partition("=")
    token, *attributes = [part.strip() for part in rest.split(";")]
    assert name == "bookpay_cart" and len(token) >= 40
    assert first.cookie != second.cookie
    assert {a.lower() for a in attributes} >= {"httponly", "samesite=lax", "path=/"}
    assert not any(a.lower() == "secure" for a in attributes)  # plain http here
    # Looking at the cart makes none.
    assert "Set-Cookie" not in Shopper(app).get("/cart").headers


# Other cookies on the same host (browsers keep cookies apart by host, not by port) --------------

# Values browsers take and send back, which Python's SimpleCookie (behind Bottle's get_cookie)
# refuses, dropping the whole Cookie header with them: the cart cookie after one was lost.
FOREIGN_COOKIES = {
    "space": "x=a b",
    "json": 'prefs={"theme":"dark"}',
    "unbalanced-quote": 'x="unbalanced',
    "backslash": "x=a\\b",
    "utf-8": "x=é".encode().decode("latin-1"),  # a server hands the header to WSGI as latin-1
    "no-value": "novalue",
    "bang": "flash=Welcome back!",
    "date": "x=Mon, 01 Jan 2024",
}


def cart_rows(settings) -> int:
    with contextlib.closing(sqlite3.connect(settings.data_dir / "bookpay.sqlite3")) as db:
        return db.execute("SELECT count(*) FROM carts").fetchone()[0]


def add_with(shopper: Shopper, cookie: str, item: str) -> Response:
    """``shopper`` adds ``item`` (JSON), sending ``cookie`` as the whole Cookie header."""
    body = json.dumps({"item": item}).encode()
    return shopper.request("POST", "/cart/items", body, Content_Type="application/json",
                           Cookie=cookie)  # fmt: skip


@pytest.mark.parametrize("foreign", FOREIGN_COOKIES.values(), ids=FOREIGN_COOKIES.keys())
def test_another_apps_cookie_before_the_carts_keeps_the_cart(app, settings, foreign):
    shopper = Shopper(app)
    shopper.add("1")
    header = f"{foreign}; {shopper.cookie}"
    page = shopper.get("/cart", Cookie=header).text
    assert lines_of(page) == [("1", "1")] and count_in_header(page) == "1"
    added = add_with(shopper, header, "2")
    assert added.json()["cart"]["count"] == 2
    assert added.cookies == []  # the same cart, not a new one on each add
    assert cart_rows(settings) == 1


def test_over_https_another_apps_cookie_keeps_the_cart_and_the_move(app, https_app, settings):
    foreign = FOREIGN_COOKIES["json"]
    shopper = Shopper(https_app, origin=SHOP_HTTPS)
    shopper.add("1")
    assert add_with(shopper, f"{foreign}; {shopper.cookie}", "2").json()["cart"]["count"] == 2
    # A cart from before the prefix still moves, the plain cookie after a foreign one.
    old = plain_cart(app, "3")
    mover = Shopper(https_app, origin=SHOP_HTTPS)
    moved = mover.get("/cart", Cookie=f"{foreign}; {'='.join(old)}")
    assert lines_of(moved.text) == [("3", "1")]
    assert [cookie_parts(c)[0] for c in moved.cookies] == ["__Host-bookpay_cart", "bookpay_cart"]
    assert cart_rows(settings) == 2


@pytest.mark.parametrize("ours", ["last", "first"])
def test_a_namesake_cookie_neither_hides_the_cart_nor_starts_new_ones(app, settings, ours):
    """Another app on this host (any port) with a cookie of the same name, whose token finds
    no cart: browsers send a cookie with a longer Path first, else the older first, so ours may
    come on either side of it."""
    shopper = Shopper(app)
    shopper.add("1")
    stray = "bookpay_cart=" + "s" * 43  # a token as ours look, that finds nothing
    header = "; ".join([stray, shopper.cookie] if ours == "last" else [shopper.cookie, stray])
    for item in ("2", "3"):
        added = add_with(shopper, header, item)
        assert added.cookies == []
    assert added.json()["cart"]["count"] == 3
    assert lines_of(shopper.get("/cart", Cookie=header).text) == [
        ("1", "1"),
        ("2", "1"),
        ("3", "1"),
    ]
    assert cart_rows(settings) == 1


# Over HTTPS: the __Host- prefix ----------------------------------------------------------------

SHOP_HTTPS = "https://shop.example"


@pytest.fixture
def https_app(settings):
    """The shop as shoppers reach it over HTTPS (BOOKPAY_BASE_URL), on ``app``'s ledger."""
    made = create_app(dataclasses.replace(settings, base_url=SHOP_HTTPS))
    yield made
    made.close()


def test_over_https_the_cookie_is_host_prefixed_secure_path_root_and_without_domain(https_app):
    shopper = Shopper(https_app, origin=SHOP_HTTPS)
    (made,) = shopper.form("/cart/items", item="1").cookies
    name, token, attributes = cookie_parts(made)
    assert name == "__Host-bookpay_cart" and len(token) >= 40
    assert {"secure", "path=/", "httponly", "samesite=lax"} <= attributes
    assert not any(a.startswith("domain") for a in attributes)
    # The prefixed cookie finds its cart.
    shopper.form("/cart/items", item="2", quantity="2")
    assert lines_of(shopper.get("/cart").text) == [("1", "1"), ("2", "2")]
    assert list(shopper.jar) == ["__Host-bookpay_cart"]


def test_a_cart_from_before_https_moves_to_the_prefixed_cookie_once(app, https_app):
    before = Shopper(app)  # the cart as the shop made it before the prefix: the plain name
    before.form("/cart/items", item="1", quantity="2")
    (old,) = before.jar.items()
    assert old[0] == "bookpay_cart"
    shopper = Shopper(https_app, origin=SHOP_HTTPS)
    shopper.jar = dict([old])
    moved = shopper.get("/cart")
    assert lines_of(moved.text) == [("1", "2")]
    (new, expired) = moved.cookies
    name, token, attributes = cookie_parts(new)
    assert name == "__Host-bookpay_cart" and token != old[1]  # a new token, not the old one
    assert {"secure", "path=/", "httponly"} <= attributes and not expires(new)
    assert cookie_parts(expired)[0] == "bookpay_cart" and expires(expired)
    assert list(shopper.jar) == ["__Host-bookpay_cart"]
    shopper.form("/cart/items", item="2")
    assert lines_of(shopper.get("/cart").text) == [("1", "2"), ("2", "1")]
    # Past the grace a second request has (MOVE_GRACE), the old token finds nothing any more,
    # over HTTPS or plain HTTP.
    carts_of(https_app).clock = lambda: time.monotonic() + MOVE_GRACE
    assert lines_of(Shopper(https_app).get("/cart", Cookie="=".join(old)).text) == []
    assert lines_of(before.get("/cart").text) == []


def carts_of(app):
    """The ``Carts`` an app made by ``create_app`` finds carts with."""
    (lifecycle,) = [plugin for plugin in app.plugins if plugin.name == "bookpay_lifecycle"]
    return lifecycle.services.carts


def plain_cart(app, *items: str) -> tuple[str, str]:
    """The plain-named cookie of a cart made before the prefix, holding ``items``."""
    before = Shopper(app)
    for item in items:
        before.form("/cart/items", item=item)
    (old,) = before.jar.items()
    return old


def test_a_second_request_with_the_old_cookie_gets_the_moved_cart_and_its_cookie(app, https_app):
    """The page and its fetch bring the old cookie at once: the one that comes second neither
    finds an empty cart nor starts one of its own whose cookie replaces the moved cart's."""
    old = plain_cart(app, "1")
    page = Shopper(https_app, origin=SHOP_HTTPS)
    page.jar = dict([old])
    fetch = Shopper(https_app, origin=SHOP_HTTPS)
    fetch.jar = dict([old])
    assert lines_of(page.get("/cart").text) == [("1", "1")]
    assert fetch.add("2").json()["cart"]["count"] == 2
    assert fetch.jar == page.jar and list(page.jar) == ["__Host-bookpay_cart"]
    assert lines_of(page.get("/cart").text) == [("1", "1"), ("2", "1")]


def test_racing_requests_with_the_old_cookie_all_end_with_the_moved_cart(app, https_app):
    old = plain_cart(app, "1")
    shoppers = [Shopper(https_app, origin=SHOP_HTTPS) for _ in range(6)]
    start = threading.Barrier(len(shoppers))

    def browse(n: int, shopper: Shopper) -> None:
        shopper.jar = dict([old])
        start.wait()
        if n % 2:
            shopper.add("2")
        else:
            shopper.get("/cart")

    threads = [threading.Thread(target=browse, args=pair) for pair in enumerate(shoppers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({shopper.jar["__Host-bookpay_cart"] for shopper in shoppers}) == 1
    assert lines_of(shoppers[0].get("/cart").text) == [("1", "1"), ("2", "3")]


@pytest.mark.parametrize("target", ["/no-such-page", "/checkout?item=no-such-book"])
def test_an_error_page_that_moves_the_cart_hands_over_its_new_cookie(app, https_app, target):
    """The old token finds nothing once the cart moved: the new one must reach the browser even
    on an error page (Bottle's errors replace the response's cookies)."""
    before = Shopper(app)
    before.form("/cart/items", item="1")
    shopper = Shopper(https_app, origin=SHOP_HTTPS)
    shopper.jar = dict(before.jar)
    assert shopper.get(target).status == 404
    assert list(shopper.jar) == ["__Host-bookpay_cart"]
    assert lines_of(shopper.get("/cart").text) == [("1", "1")]


def test_a_planted_plain_cookie_never_finds_a_cart_made_over_https(https_app):
    """Cookie tossing: a sibling subdomain (or a man-in-the-middle on http://) plants the plain
    name with the token of a cart the attacker made, hoping the shopper fills it."""
    attacker = Shopper(https_app, origin=SHOP_HTTPS)
    attacker.form("/cart/items", item="1")
    (token,) = attacker.jar.values()
    shopper = Shopper(https_app, origin=SHOP_HTTPS)
    shopper.jar = {"bookpay_cart": token}
    page = shopper.get("/cart")
    assert lines_of(page.text) == [] and count_in_header(page.text) == "0"
    assert shopper.jar == {}  # expired, and no prefixed cookie made for it
    shopper.jar = {"bookpay_cart": token}
    shopper.form("/cart/items", item="2")
    assert lines_of(shopper.get("/cart").text) == [("2", "1")]  # a cart of its own
    assert lines_of(attacker.get("/cart").text) == [("1", "1")]  # the attacker's, untouched
    assert shopper.jar["__Host-bookpay_cart"] != token


def test_with_both_cookies_the_prefixed_one_is_the_cart(app, https_app):
    planted = Shopper(app)
    planted.form("/cart/items", item="3")
    shopper = Shopper(https_app, origin=SHOP_HTTPS)
    shopper.form("/cart/items", item="1")
    shopper.jar["bookpay_cart"] = planted.jar["bookpay_cart"]
    assert lines_of(shopper.get("/cart").text) == [("1", "1")]
    assert list(shopper.jar) == ["__Host-bookpay_cart"]  # the plain one expired
    assert lines_of(planted.get("/cart").text) == [("3", "1")]  # not moved


def test_an_empty_cart_says_so_and_leads_back_to_the_books(shopper):
    page = shopper.get("/cart").text
    assert "Your cart is empty." in page
    assert '<a class="button" href="/">Browse the books</a>' in page
    assert count_in_header(page) == "0"


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"item": "1"}, 400, "at most 10 copies of 'The Art of Doing"),
        ({"item": "1", "quantity": "11"}, 400, "from 1 to 10 copies"),
        ({"item": "1", "quantity": "0"}, 400, "from 1 to 10 copies"),
        ({"item": "1", "quantity": "two"}, 400, "a whole number from 1 to 10"),
        # Digits to str.isdigit(), not to int(): each a 400, never a 500.
        ({"item": "1", "quantity": "\u00b2"}, 400, "a whole number from 1 to 10"),
        ({"item": "1", "quantity": "\u2460"}, 400, "a whole number from 1 to 10"),
        ({"item": "1", "quantity": "\u0663"}, 400, "a whole number from 1 to 10"),
        ({"item": "nope"}, 404, "No book with id 'nope'"),
        ({}, 400, "'item' is missing"),
    ],
)
def test_a_refused_form_shows_the_cart_again_with_the_reason(shopper, fields, status, message):
    shopper.form("/cart/items", item="1", quantity="10")
    response = shopper.form("/cart/items", **fields)
    assert response.status == status
    assert message in response.shown
    assert '<p id="cart-message" class="cart-message" role="alert">' in response.text


def test_json_answers_the_cart_and_json_errors(shopper):
    answer = shopper.add("1", 2)
    assert answer.status == 200
    cart = answer.json()["cart"]
    assert cart["count"] == 2 and cart["subtotalText"] == "$46.00"
    assert cart["lines"] == [
        {
            "item": "1",
            "title": "The Art of Doing Science and Engineering",
            "quantity": 2,
            "unitAmount": 2300,
            "lineAmount": 4600,
            "unitText": "$23.00",
            "lineText": "$46.00",
        }
    ]
    refused = shopper.json("/cart/items/1", {"quantity": 12})
    assert refused.status == 400
    assert refused.json()["error"]["code"] == "quantity_out_of_range"
    assert shopper.json("/cart/items/1", {"quantity": True}).status == 400
    superscript = shopper.json("/cart/items/1", {"quantity": "\u00b2"})
    assert superscript.status == 400
    assert superscript.json()["error"]["code"] == "quantity_out_of_range"


@pytest.mark.parametrize(
    ("target", "fields", "status"),
    [
        ("/cart/items", {"item": "99"}, 404),
        ("/cart/items", {"item": "1", "quantity": 11}, 400),
        ("/cart/items", {"item": "1", "quantity": 0}, 400),
        ("/cart/items/99", {"quantity": 1}, 404),
        ("/cart/items/1", {"quantity": 11}, 400),
    ],
)
def test_a_refused_change_makes_no_cart(app, settings, target, fields, status):
    for response in (
        Shopper(app).json(target, fields),
        Shopper(app).form(target, **{k: str(v) for k, v in fields.items()}),
    ):
        assert response.status == status, response.text
        assert "Set-Cookie" not in response.headers  # it used to make an empty cart for this
    database = settings.data_dir / "bookpay.sqlite3"
    if database.exists():  # the form's refusal shows the cart page, which opens the ledger
        with contextlib.closing(sqlite3.connect(database)) as db:
            assert db.execute("SELECT count(*) FROM carts").fetchone() == (0,)


def test_a_multipart_form_whose_field_is_not_text_gets_the_cart_page_with_the_reason(shopper):
    def multipart(item: bytes) -> Response:
        body = b'--zz\r\nContent-Disposition: form-data; name="item"\r\n\r\n%s\r\n--zz--\r\n'
        return shopper.request("POST", "/cart/items", body % item,
                               Content_Type="multipart/form-data; boundary=zz")  # fmt: skip

    assert multipart(b"1").status == 303
    refused = multipart(b"\xff")  # no UTF-8: it was a 500
    assert refused.status == 400
    assert refused.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert "The form&#039;s fields are not valid text." in refused.text
    assert lines_of(refused.text) == [("1", "1")]


def test_a_cart_holds_one_currency(settings):
    from bookpay.catalog import Catalog

    catalog = Catalog.from_records(
        [
            {"id": "a", "title": "A", "author": "X", "amount": 1000, "currency": "usd"},
            {"id": "b", "title": "B", "author": "X", "amount": 1000, "currency": "eur"},
        ],
        shipping_rates=[
            {
                "id": c,
                "display_name": c,
                "amount": 500,
                "currency": c,
                "countries": ["*"],
                "min_days": 1,
                "max_days": 3,
            }
            for c in ("usd", "eur")
        ],
    )
    app = create_app(settings, catalog=catalog, public_url=PUBLIC_URL)
    shopper = Shopper(app)
    shopper.add("a")
    refused = shopper.add("b")
    assert refused.status == 400
    assert refused.json()["error"]["code"] == "mixed_currency"
    assert "one order holds one currency" in refused.json()["error"]["message"]
    app.close()


@pytest.mark.parametrize(
    ("odd", "encoded"),
    [
        ("a b?c#d%e", "a%20b%3Fc%23d%25e"),
        ("fiction/1", "fiction%2F1"),  # a server decodes %2F: the routes take the whole rest
        ("/a//b/", "%2Fa%2F%2Fb%2F"),
        ("x.svg/y", "x.svg%2Fy"),
    ],
)
def test_urls_made_from_a_book_id_are_percent_encoded(settings, odd, encoded):
    """An id may hold characters a URL gives meaning to ("/" too): each page's links to the
    cover and the line's forms name that book, and lead to it."""
    from bookpay.catalog import Catalog

    book = {"id": odd, "title": "Odd", "author": "X", "amount": 1000, "currency": "usd"}
    app = create_app(settings, catalog=Catalog.from_records([book]), public_url=PUBLIC_URL)
    shopper = Shopper(app)
    assert shopper.add(odd).status == 200
    cover = f'src="/covers/{encoded}.svg"'
    action = f'action="/cart/items/{encoded}"'
    assert cover in shopper.get("/").text
    assert f'href="/checkout?item={encoded}"' in shopper.get("/").text
    for page in (shopper.get("/cart").text, shopper.get("/checkout").text):
        assert cover in page
        assert action in page
    assert shopper.get(f"/covers/{encoded}.svg").status == 200
    assert shopper.get(f"/checkout?item={encoded}").status == 200
    changed = shopper.form(f"/cart/items/{encoded}", quantity="3", next="/cart")
    assert changed.status == 303, changed.text
    assert count_in_header(shopper.get("/cart").text) == "3"
    removed = shopper.form(f"/cart/items/{encoded}", quantity="0", next="/cart")
    assert removed.status == 303, removed.text
    assert shopper.get("/cart").text.count('class="line"') == 0
    app.close()


def test_a_book_id_holding_a_slash_through_the_real_server(settings):
    """Waitress decodes %2F (and UTF-8) in the path before the routes see it: the cover, the
    line's form and "Buy now" still find a book whose id holds "/" and non-ASCII letters."""
    import http.client

    from bookpay.catalog import Catalog
    from bookpay.web import runner

    odd = "fiction/é/1"
    encoded = urllib.parse.quote(odd, safe="")
    book = {"id": odd, "title": "Odd", "author": "X", "amount": 1000, "currency": "usd"}
    apps = []

    def make(url):
        apps.append(create_app(settings, catalog=Catalog.from_records([book]), public_url=url))
        return apps[0]

    server = runner.start(make, background=True, capacity=runner.Capacity(threads=2))
    conn = http.client.HTTPConnection(*urllib.parse.urlsplit(server.url).netloc.split(":"))
    cookie = {}

    def ask(method, target, body=b"", **headers):
        headers = {**headers, "Origin": server.url, **cookie}
        conn.request(method, target, body, headers)
        answer = conn.getresponse()
        data = answer.read().decode()
        if answer.getheader("Set-Cookie"):
            cookie["Cookie"] = answer.getheader("Set-Cookie").split(";")[0]
        return answer.status, data

    try:
        assert ask("GET", f"/covers/{encoded}.svg")[0] == 200
        assert ask("GET", f"/checkout?item={encoded}")[0] == 200
        added = json.dumps({"item": odd, "quantity": 1}).encode()
        status, _ = ask("POST", "/cart/items", added, **{"Content-Type": "application/json"})
        assert status == 200
        assert f'action="/cart/items/{encoded}"' in ask("GET", "/cart")[1]
        form = {"Content-Type": FORM}
        assert ask("POST", f"/cart/items/{encoded}", b"quantity=4", **form)[0] == 303
        assert count_in_header(ask("GET", "/cart")[1]) == "4"
        assert ask("POST", f"/cart/items/{encoded}", b"quantity=0", **form)[0] == 303
        assert count_in_header(ask("GET", "/cart")[1]) == "0"
    finally:
        conn.close()
        server.stop()
        for app in apps:
            app.close()


def test_a_book_no_longer_sold_is_dropped_with_a_notice_on_the_page(settings):
    from bookpay.catalog import Catalog

    def shop(*books):
        records = [
            {"id": b, "title": f"<Book {b}>", "author": "X", "amount": 1000, "currency": "usd"}
            for b in books
        ]
        return create_app(settings, catalog=Catalog.from_records(records), public_url=PUBLIC_URL)

    before = shop("a", "b")
    shopper = Shopper(before)
    shopper.add("a")
    shopper.add("b", 2)
    before.close()
    after = shop("a")  # the same ledger and cookie; book b is no longer sold
    shopper.app = after
    notice = r'<p id="cart-notice"[^>]*>([^<]*)</p>'
    page = shopper.get("/cart").text
    assert re.search(notice, page).group(1) == (
        "&#039;&lt;Book b&gt;&#039; is no longer sold: removed from your cart."
    )
    assert lines_of(page) == [("a", "1")]
    assert count_in_header(page) == "1"
    assert re.search(notice, shopper.get("/cart").text).group(1) == ""  # said once
    after.close()


# Cross-site requests ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1.evil.example"},
        {"Referer": "https://evil.example/page"},
        {"Referer": "http://[::1/page"},  # no URL: urlsplit raises (it was a 500)
        {},  # a form that says nowhere it comes from
    ],
    ids=["other-site", "null", "lookalike", "referer-only", "broken-referer", "none"],
)
def test_cross_site_forms_are_refused_and_change_nothing(app, headers):
    victim = Shopper(app)
    victim.form("/cart/items", item="1")
    for target, body in (("/cart/items", b"item=2"), ("/cart/items/1", b"quantity=0")):
        response = call(app, "POST", target, body, {"Content-Type": FORM, "Cookie": victim.cookie,
                                                     **headers})  # fmt: skip
        assert response.status == 403
        assert "another site" in response.shown or "which page it comes from" in response.shown
    assert lines_of(victim.get("/cart").text) == [("1", "1")]


def test_cross_site_json_is_refused_too(app):
    victim = Shopper(app)
    victim.add("1")
    body = json.dumps({"attemptId": str(uuid.uuid4())}).encode()
    for target in ("/create-payment-intent", "/cart/items/1"):
        response = call(app, "POST", target, body, {"Content-Type": "application/json",
                                                    "Cookie": victim.cookie,
                                                    "Origin": "https://evil.example"})  # fmt: skip
        assert response.status == 403
        assert response.json()["error"]["code"] == "cross_origin"


def test_the_shops_own_origins_are_accepted(app):
    assert Shopper(app, origin=OWN).form("/cart/items", item="1").status == 303
    assert Shopper(app, origin=PUBLIC_URL).form("/cart/items", item="1").status == 303
    referer_only = Shopper(app, origin="")
    response = referer_only.request(
        "POST", "/cart/items", b"item=1", Content_Type=FORM, Referer=OWN + "/"
    )
    assert response.status == 303


@pytest.mark.parametrize(
    ("base_url", "origin"),
    [
        ("https://shop.example:443", "https://shop.example"),  # behind a TLS proxy
        ("http://shop.example:80", "http://shop.example"),
        ("https://bücher.example", "https://xn--bcher-kva.example"),
        ("HTTPS://Shop.Example", "https://shop.example"),
    ],
)
def test_a_base_url_written_otherwise_takes_the_origin_browsers_send(settings, base_url, origin):
    """Browsers write an origin without its default port, its host in punycode and lower case:
    a BOOKPAY_BASE_URL that says the same origin otherwise refused every POST (403)."""
    shop = create_app(dataclasses.replace(settings, base_url=base_url))
    try:
        shopper = Shopper(shop, origin=origin)
        added = shopper.form("/cart/items", item="1")
        assert added.status == 303, added.text
        assert list(shopper.jar) == [cookie_name(origin.startswith("https:"))]
        referer_only = Shopper(shop, origin="")
        referer_only.jar = dict(shopper.jar)
        response = referer_only.request(
            "POST", "/cart/items", b"item=2", Content_Type=FORM, Referer=origin + "/cart"
        )
        assert response.status == 303
        assert lines_of(shopper.get("/cart").text) == [("1", "1"), ("2", "1")]
        page = shopper.get("/checkout").text
        assert checkout_config(page)["returnUrl"] == origin + "/success"
        # Another port, or a host that only looks alike, is another site still.
        for other in (origin + ":8443", origin.replace("xn--bcher-kva", "bucher")):
            if other != origin:
                assert Shopper(shop, origin=other).form("/cart/items", item="1").status == 403
    finally:
        shop.close()


def test_the_servers_own_address_written_otherwise_takes_the_origin_browsers_send(settings):
    """The address the server was given (``public_url``: not through Settings) is compared as
    browsers write an origin too, and so is the Origin header itself."""
    shop = create_app(settings, public_url="https://Shop.Example:443")
    try:
        for origin in ("https://shop.example", "https://shop.example:443", "HTTPS://SHOP.example"):
            assert Shopper(shop, origin=origin).form("/cart/items", item="1").status == 303
        for origin in ("https://shop.example:443/", "https://u@shop.example", "https://shop"):
            assert Shopper(shop, origin=origin).form("/cart/items", item="1").status == 403
        page = Shopper(shop).get("/checkout?item=1").text
        assert checkout_config(page)["returnUrl"] == "https://shop.example/success"
    finally:
        shop.close()


def test_webhooks_are_not_origin_checked(app):
    response = call(app, "POST", "/webhook", b"{}", {"Origin": "https://evil.example"})
    assert response.status != 403


# The cart count on every page ------------------------------------------------------------------


def test_every_page_shows_the_cart_count(shopper):
    shopper.add("1", 2)
    shopper.add("3")
    for target in ("/", "/cart", "/checkout", "/checkout?item=2", "/nowhere"):
        response = shopper.get(target)
        assert count_in_header(response.text) == "3", target
        assert '<a class="cart-link" href="/cart">' in response.text


# Paying for a cart -----------------------------------------------------------------------------


def intent_at(settings, intent_id: str) -> dict:
    return emulator_api(settings, "GET", f"/v1/payment_intents/{intent_id}")


def test_the_checkout_page_shows_the_carts_lines_and_totals(shopper):
    shopper.add("1", 2)
    shopper.add("3")
    page = shopper.get("/checkout").text
    assert re.findall(r'id="order-lines".*?</ul>', page, re.S)
    assert [item for item, _ in lines_of(page)] == ["1", "3"]
    assert '<dd id="subtotal">$74.00</dd>' in page
    assert re.search(r'<dd id="total" class="totals-total">\$74.00</dd>', page)
    assert '<span class="button-text">Pay $74.00</span>' in page


def test_one_payment_intent_per_attempt_follows_the_cart(shopper, settings, app):
    shopper.add("1", 2)
    shopper.add("2")
    attempt = str(uuid.uuid4())
    first = shopper.pay(attempt).json()
    assert (first["amount"], first["changed"]) == (7100, True)
    intent = intent_at(settings, first["paymentIntentId"])
    assert intent["amount"] == 7100
    cart_id = intent["metadata"]["cart_id"]
    assert intent["metadata"] == {
        "integration": "bookpay",
        "shop_id": settings.shop_id,
        "order_id": first["orderId"],
        "attempt_id": attempt,
        "cart_id": cart_id,
        "item_count": "3",
        "lines": "1x2,2x1",
    }
    assert intent["description"].startswith("3 books: 2 x The Art of Doing Science")
    again = shopper.pay(attempt).json()
    assert (again["paymentIntentId"], again["changed"]) == (first["paymentIntentId"], False)

    shopper.json("/cart/items/2", {"quantity": 3})
    changed = shopper.pay(attempt).json()
    assert changed["paymentIntentId"] == first["paymentIntentId"]
    assert (changed["amount"], changed["changed"]) == (2 * 2300 + 3 * 2500, True)
    intent = intent_at(settings, first["paymentIntentId"])
    assert intent["amount"] == 12100
    assert intent["metadata"]["lines"] == "1x2,2x3"
    assert intent["metadata"]["item_count"] == "5"
    with _ledger(settings) as ledger:
        quote = ledger.quote_for(first["paymentIntentId"])
    assert (quote["total"], quote["order_id"], quote["cart_id"]) == (
        12100,
        first["orderId"],
        cart_id,
    )
    assert [(x["item_id"], x["quantity"]) for x in quote["lines"]] == [("1", 2), ("2", 3)]


def held_by(settings, intent_id: str) -> tuple:
    """What a PaymentIntent holds and the ledger records for it: what a refusal must not change."""
    intent = intent_at(settings, intent_id)
    with _ledger(settings) as ledger:
        quote = ledger.quote_for(intent_id)
    lines = [(x["item_id"], x["quantity"]) for x in quote["lines"]]
    recorded = (quote["cart_id"], quote["version"], quote["total"], lines)
    return intent["amount"], intent["metadata"], intent.get("shipping"), recorded


def refused(answer: Response) -> None:
    assert answer.status == 404, answer.text
    assert answer.json()["error"]["code"] == "attempt_not_found"


def test_a_carts_attempt_answers_only_that_carts_cookie(app, settings):
    """Whoever learns a cart's attempt id cannot take its PaymentIntent: not without the cart's
    cookie, not with another cart's, not as "Buy now"; the same 404 as an unknown attempt, and
    the PaymentIntent and its record stay as they were."""
    owner, other, stranger = Shopper(app), Shopper(app), Shopper(app)
    owner.add("1", 2)
    other.add("2")
    attempt = str(uuid.uuid4())
    first = owner.pay(attempt).json()
    before = held_by(settings, first["paymentIntentId"])
    assert before[3][0] is not None

    refused(stranger.json("/create-payment-intent", {"attemptId": attempt, "item": "3"}))
    refused(other.json("/create-payment-intent", {"attemptId": attempt, "item": "3"}))
    refused(other.pay(attempt))
    for shopper in (stranger, other):
        refused(shopper.json("/checkout/quote", quoting(attempt)))
    assert held_by(settings, first["paymentIntentId"]) == before

    # The cart's own tabs still find it, the cart changed meanwhile.
    owner.add("3")
    again = owner.pay(attempt).json()
    assert (again["paymentIntentId"], again["changed"]) == (first["paymentIntentId"], True)
    quoted = owner.json("/checkout/quote", quoting(attempt))
    assert quoted.status == 200, quoted.text


def test_a_buy_now_attempt_answers_only_for_its_book(app, settings):
    buyer, other = Shopper(app), Shopper(app)
    other.add("2")
    attempt = str(uuid.uuid4())
    first = buyer.json("/create-payment-intent", {"attemptId": attempt, "item": "1"}).json()
    before = held_by(settings, first["paymentIntentId"])

    for shopper in (buyer, other):
        refused(shopper.json("/create-payment-intent", {"attemptId": attempt, "item": "3"}))
    refused(other.pay(attempt))  # a cart's checkout
    assert held_by(settings, first["paymentIntentId"]) == before

    # Buy now of the same book again (a reload, Back, a second tab): the same PaymentIntent,
    # with or without a cart's cookie.
    for shopper in (buyer, other):
        again = shopper.json("/create-payment-intent", {"attemptId": attempt, "item": "1"})
        assert again.json()["paymentIntentId"] == first["paymentIntentId"]
    quoted = other.json("/checkout/quote", quoting(attempt))
    assert quoted.status == 200, quoted.text


def _ledger(settings):
    from bookpay.ledger import open_ledger

    return open_ledger(settings)


@pytest.fixture
def faulty(tmp_path, stripe_emulator):
    """A shop against an emulator of the test's own, whose faults the test scripts."""
    from bookpay.config import Settings

    settings = Settings(data_dir=tmp_path / "faulty", emulator_url=stripe_emulator.url)
    made = create_app(settings, public_url=PUBLIC_URL)
    yield stripe_emulator, settings, Shopper(made)
    made.close()


def all_intents(settings) -> list[dict]:
    return emulator_api(settings, "GET", "/v1/payment_intents", {"limit": 100})["data"]


def test_a_creation_whose_answer_was_lost_then_a_changed_cart_gets_a_payable_intent(faulty):
    """The attempt's first creation ran at Stripe but its answer never came back (503); the
    shopper then changed the cart. Stripe will not replay the attempt's key for another cart
    (idempotency_error): the attempt gets a PaymentIntent for the cart it has now, which
    reloads find again, and its key never shows."""
    emu, settings, shopper = faulty
    shopper.add("1")
    attempt = str(uuid.uuid4())
    emu.faults.fail("500", path="/v1/payment_intents")  # the creation, and the look behind it
    assert error_of(shopper.pay(attempt)) == (503, "stripe_unavailable")
    emu.faults.clear()
    [lost] = all_intents(settings)  # created, its client secret never answered
    assert (lost["amount"], lost["metadata"]["attempt_id"]) == (2300, attempt)

    shopper.json("/cart/items/1", {"quantity": 2})
    answer = shopper.pay(attempt)
    assert answer.status == 200, answer.text
    shown = answer.json()
    assert (shown["amount"], shown["changed"]) == (4600, True)
    assert shown["paymentIntentId"] != lost["id"]
    intent = intent_at(settings, shown["paymentIntentId"])
    assert (intent["amount"], intent["metadata"]["lines"]) == (4600, "1x2")
    assert intent["metadata"]["attempt_id"] == attempt
    assert intent["metadata"]["order_id"] == shown["orderId"] == lost["metadata"]["order_id"]
    again = shopper.pay(attempt).json()  # a reload: the same one, unchanged
    assert (again["paymentIntentId"], again["changed"]) == (shown["paymentIntentId"], False)
    with _ledger(settings) as ledger:
        assert ledger.quote_for_attempt(attempt)["payment_intent"] == shown["paymentIntentId"]
    assert len(all_intents(settings)) == 2
    paid = confirm(settings, shown["paymentIntentId"], "pm_card_visa")
    assert (paid["status"], paid["amount_received"]) == ("succeeded", 4600)


class RacingGateway:
    """The real gateway; ``before_create`` and ``after_retrieve`` run once, when armed, as
    another process or tab acting between this request's reads and its writes."""

    def __init__(self, settings) -> None:
        from bookpay.payments import Gateway

        self.inner = Gateway(settings)
        self.before_create = None
        self.after_create = None
        self.after_retrieve = None

    def create_intent(self, *args, **kwargs):
        if self.before_create is not None:
            act, self.before_create = self.before_create, None
            act(**kwargs)
        intent = self.inner.create_intent(*args, **kwargs)
        if self.after_create is not None and kwargs.get("keyed_by_cart"):
            act, self.after_create = self.after_create, None
            act(**kwargs)
        return intent

    def retrieve_intent(self, *args, **kwargs):
        intent = self.inner.retrieve_intent(*args, **kwargs)
        if self.after_retrieve is not None:
            act, self.after_retrieve = self.after_retrieve, None
            act(intent)
        return intent

    def __getattr__(self, name):
        return getattr(self.inner, name)


def racing_cart(settings):
    """A shop on a RacingGateway, and a shopper whose cart holds two copies of book 1."""
    gateway = RacingGateway(settings)
    made = create_app(settings, gateway=gateway, public_url=PUBLIC_URL)
    shopper = Shopper(made)
    shopper.add("1", 2)
    return gateway, made, shopper


def other_tabs_quote():
    """The cart as another tab of the same attempt saw it: one copy of book 1."""
    from bookpay.catalog import Catalog
    from bookpay.quote import quote_items

    return quote_items(Catalog.default(), [("1", 1)])


def test_an_attempt_another_process_created_and_recorded_meanwhile_is_updated(settings):
    """Two processes answer one attempt's first request at once, for two carts: the one that
    creates second hears Stripe's idempotency_error, finds the other's PaymentIntent recorded
    and updates it, so the attempt still has one."""
    gateway, made, shopper = racing_cart(settings)
    attempt = str(uuid.uuid4())
    created = []

    def other_process(*, attempt_id, order_id, cart_id, **_):
        quote = other_tabs_quote()
        intent = gateway.inner.create_intent(
            quote, attempt_id=attempt_id, order_id=order_id, cart_id=cart_id
        )
        with _ledger(settings) as ledger:
            ledger.record_quote(intent["id"], order_id, quote, attempt_id=attempt, cart_id=cart_id)
        created.append(intent["id"])

    gateway.before_create = other_process
    try:
        answer = shopper.pay(attempt)
    finally:
        made.close()
    assert answer.status == 200, answer.text
    shown = answer.json()
    assert (shown["paymentIntentId"], shown["amount"], shown["changed"]) == (
        created[0],
        4600,
        True,
    )
    intent = intent_at(settings, created[0])
    assert (intent["amount"], intent["metadata"]["lines"]) == (4600, "1x2")
    mine = [x for x in all_intents(settings) if x["metadata"].get("attempt_id") == attempt]
    assert [x["id"] for x in mine] == created


def test_an_attempt_another_process_recorded_after_this_one_looked_is_updated(settings):
    """Two processes answer one attempt's first request at once, for two carts, each creating a
    PaymentIntent of its own (the second under a cart-keyed key, after Stripe's
    idempotency_error); the other records its own after this one looked again: this one's
    record is refused (the attempt has one already), and it updates the recorded one instead of
    answering a 500 ledger_conflict."""
    gateway, made, shopper = racing_cart(settings)
    attempt = str(uuid.uuid4())
    other: dict = {}

    def other_creates(*, attempt_id, order_id, cart_id, **_):
        other["quote"] = other_tabs_quote()
        other["intent"] = gateway.inner.create_intent(
            other["quote"], attempt_id=attempt_id, order_id=order_id, cart_id=cart_id
        )

    def other_records(*, attempt_id, order_id, cart_id, **_):
        with _ledger(settings) as ledger:
            ledger.record_quote(
                other["intent"]["id"], order_id, other["quote"], attempt_id=attempt, cart_id=cart_id
            )

    gateway.before_create = other_creates
    gateway.after_create = other_records
    try:
        answer = shopper.pay(attempt)
    finally:
        made.close()
    assert answer.status == 200, answer.text
    shown = answer.json()
    assert (shown["paymentIntentId"], shown["amount"]) == (other["intent"]["id"], 4600)
    intent = intent_at(settings, other["intent"]["id"])
    assert (intent["amount"], intent["metadata"]["lines"]) == (4600, "1x2")
    with _ledger(settings) as ledger:
        assert ledger.quote_for_attempt(attempt)["payment_intent"] == other["intent"]["id"]


def test_a_payment_confirmed_in_another_tab_while_the_cart_changes_is_in_progress(settings):
    """Another tab confirms between this request's retrieve and its update: Stripe refuses the
    update, and the page hears that the payment is under way (409), not Stripe's words."""
    gateway = RacingGateway(settings)
    made = create_app(settings, gateway=gateway, public_url=PUBLIC_URL)
    shopper = Shopper(made)
    shopper.add("1")
    attempt = str(uuid.uuid4())
    shown = shopper.pay(attempt).json()
    intent_id = shown["paymentIntentId"]

    def other_tab(intent):
        path = f"/v1/payment_intents/{intent_id}"
        emulator_api(settings, "POST", path, {"capture_method": "manual"})
        assert confirm(settings, intent_id, "pm_card_visa")["status"] == "requires_capture"

    shopper.add("2")
    gateway.after_retrieve = other_tab
    try:
        refused = shopper.pay(attempt)
    finally:
        made.close()
    assert error_of(refused) == (409, "payment_in_progress")
    assert "authorized" in refused.json()["error"]["message"]
    assert intent_at(settings, intent_id)["amount"] == 2300


def test_a_payment_waiting_for_3ds_keeps_its_amount_when_the_cart_changes(shopper, settings):
    """Pay, 3-D Secure pending, then Back (or the challenge left in another tab); a book is
    added and the attempt asks again: its PaymentIntent is canceled, never re-priced (the
    challenge, passed late, charges nothing), and the page's new attempt pays the new cart."""
    shopper.add("1")
    attempt = str(uuid.uuid4())
    shown = shopper.pay(attempt).json()
    intent_id = shown["paymentIntentId"]
    pending = confirm(settings, intent_id, "pm_card_authenticationRequired")
    assert (pending["status"], pending["amount"]) == ("requires_action", 2300)
    shopper.add("2")
    refused = shopper.pay(attempt)
    assert error_of(refused) == (409, "attempt_finished")
    assert refused.json()["error"]["status"] == "canceled"  # the page starts a new attempt at once
    canceled = intent_at(settings, intent_id)
    assert (canceled["status"], canceled["amount"]) == ("canceled", 2300)
    done = complete_3ds(settings, pending)
    assert (done["status"], done["amount_received"]) == ("canceled", 0)
    with _ledger(settings) as ledger:
        assert ledger.quote_for_attempt(attempt)["total"] == 2300
    again = shopper.pay(str(uuid.uuid4()))
    assert again.status == 200, again.text
    assert again.json()["amount"] > 2300
    assert shopper.pay(attempt).json()["error"]["code"] == "attempt_finished"


def services_of(app):
    (lifecycle,) = [plugin for plugin in app.plugins if plugin.name == "bookpay_lifecycle"]
    return lifecycle.services


def two_tabs_of_one_cart(shopper: Shopper) -> tuple[tuple[str, dict], tuple[str, dict]]:
    """One cart, its checkout opened in two tabs the ordinary way: each its own attempt (its own
    sessionStorage), each its own PaymentIntent; (attempt, answer) of each."""
    shopper.add("1")
    tabs = []
    for _ in range(2):
        attempt = str(uuid.uuid4())
        answer = shopper.pay(attempt)
        assert answer.status == 200, answer.text
        tabs.append((attempt, answer.json()))
    assert tabs[0][1]["paymentIntentId"] != tabs[1][1]["paymentIntentId"]
    return tabs[0], tabs[1]


@pytest.mark.parametrize("card, status", [("pm_card_visa", "succeeded")])
def test_pay_in_a_second_tab_of_a_cart_paid_in_the_first_is_refused(
    app, shopper, settings, card, status
):
    """Tab A confirms (paid, not back yet); tab B's Pay asks the shop its last look: refused
    (409), so B confirms nothing and the cart is charged once. The look settles the cart, so
    B's PaymentIntent is then canceled in the background, never charged."""
    (_, first), (second_attempt, second) = two_tabs_of_one_cart(shopper)
    assert confirm(settings, first["paymentIntentId"], card)["status"] == status
    refused = shopper.pay(second_attempt)
    assert error_of(refused) == (409, "cart_payment_in_progress")
    assert "another tab or window" in refused.json()["error"]["message"]
    unpaid = intent_at(settings, second["paymentIntentId"])
    assert unpaid["status"] in ("requires_payment_method", "canceled")  # canceled meanwhile
    assert services_of(app).fulfiller.siblings.drain(timeout=10)
    unpaid = intent_at(settings, second["paymentIntentId"])
    assert (unpaid["status"], unpaid["amount"], unpaid["amount_received"]) == ("canceled", 2300, 0)


def test_a_challenge_abandoned_in_another_tab_never_blocks_the_cart(shopper, settings):
    """Tab A waits for 3-D Secure, then is closed; tab B's Pay's last look cancels A's payment
    and goes on: A's challenge, passed late, charges nothing, and B pays the cart once."""
    (_, first), (second_attempt, second) = two_tabs_of_one_cart(shopper)
    pending = confirm(settings, first["paymentIntentId"], "pm_card_authenticationRequired")
    assert pending["status"] == "requires_action"
    last_look = shopper.pay(second_attempt)
    assert last_look.status == 200, last_look.text
    assert last_look.json()["paymentIntentId"] == second["paymentIntentId"]
    canceled = intent_at(settings, pending["id"])
    assert (canceled["status"], canceled["cancellation_reason"]) == ("canceled", "abandoned")
    assert (complete_3ds(settings, pending)["amount_received"]) == 0
    assert confirm(settings, second["paymentIntentId"], "pm_card_visa")["status"] == "succeeded"


def test_once_a_cart_is_paid_its_other_tabs_payments_are_canceled(app, shopper, settings):
    """Tab A waits for 3-D Secure, tab B pays (before A's Pay, so no last look saw it): once the
    cart is settled by B's payment, A's PaymentIntent is canceled, and its challenge can no
    longer charge the cart a second time. A tab that never paid is canceled too."""
    shopper.add("1")
    tabs = [shopper.pay(str(uuid.uuid4())).json() for _ in range(3)]
    waiting, paying, idle = (tab["paymentIntentId"] for tab in tabs)
    pending = confirm(settings, waiting, "pm_card_authenticationRequired")
    assert pending["status"] == "requires_action"
    assert confirm(settings, paying, "pm_card_visa")["status"] == "succeeded"
    assert shopper.get(success_url(paying, tabs[1]["clientSecret"])).status == 200
    assert services_of(app).fulfiller.siblings.drain(timeout=10)
    canceled = intent_at(settings, waiting)
    assert (canceled["status"], canceled["cancellation_reason"]) == ("canceled", "duplicate")
    assert intent_at(settings, idle)["status"] == "canceled"
    assert intent_at(settings, paying)["status"] == "succeeded"
    done = complete_3ds(settings, pending)  # the challenge, passed late, charges nothing
    assert (done["status"], done["amount_received"]) == ("canceled", 0)
    assert [
        c["payment_intent"]
        for c in emulator_api(settings, "GET", "/v1/charges")["data"]
        if c["payment_intent"] in (waiting, paying, idle)
    ] == [paying]


@pytest.mark.parametrize("refusal", ["mismatch", "refunded_first"])
def test_a_paid_order_fulfilment_refuses_still_settles_its_cart(app, shopper, settings, refusal):
    """Tab A pays, but fulfilment refuses the order (its amount is not the quote's, or it was
    refunded in full first): it was paid all the same, so its cart is settled and tab B's Pay
    is not told for good that the cart is being paid elsewhere."""
    (_, first), (_, second) = two_tabs_of_one_cart(shopper)
    paid = first["paymentIntentId"]
    if refusal == "mismatch":
        emulator_api(settings, "POST", f"/v1/payment_intents/{paid}", {"amount": "2000"})
    assert confirm(settings, paid, "pm_card_visa")["status"] == "succeeded"
    if refusal == "refunded_first":
        emulator_api(settings, "POST", "/v1/refunds", {"payment_intent": paid})
    result = services_of(app).fulfiller.fulfil(paid)  # as the webhook does
    assert result.outcome == {"mismatch": "rejected", "refunded_first": "refunded"}[refusal]
    assert result.order["fulfilment_refused"] == refusal
    with _ledger(settings) as ledger:
        assert ledger.quote_for(paid)["settled_at"] is not None
    assert services_of(app).fulfiller.siblings.drain(timeout=10)
    assert intent_at(settings, second["paymentIntentId"])["status"] == "canceled"
    assert error_of(shopper.pay(str(uuid.uuid4()))) == (400, "cart_empty")  # nothing left


def test_a_cart_paid_in_another_tab_is_settled_by_the_last_look_that_sees_it(
    app, shopper, settings
):
    """Tab A paid and never came back, its webhook late or lost; tab B's Pay's last look sees
    A's payment succeeded: it says so once and settles the cart there, so reloading shows
    what is left instead of the same refusal for ever."""
    (_, first), (second_attempt, _) = two_tabs_of_one_cart(shopper)
    paid = first["paymentIntentId"]
    assert confirm(settings, paid, "pm_card_visa")["status"] == "succeeded"
    assert error_of(shopper.pay(second_attempt)) == (409, "cart_payment_in_progress")
    with _ledger(settings) as ledger:
        assert ledger.quote_for(paid)["settled_at"] is not None
    assert shopper.get("/cart").text.count('class="line"') == 0
    assert services_of(app).fulfiller.siblings.drain(timeout=10)  # B's payment canceled
    finished = shopper.pay(second_attempt)
    assert error_of(finished) == (409, "attempt_finished")  # the page starts a new attempt
    assert finished.json()["error"]["status"] == "canceled"
    assert error_of(shopper.pay(str(uuid.uuid4()))) == (400, "cart_empty")


def pay_leaving_the_other_tab_open(app, shopper, settings, monkeypatch):
    """Two tabs of one cart; the first pays and the cart is settled, but the cart's canceler
    never gets to the other tab's PaymentIntent (the process restarted with it queued, or it
    gave up on Stripe); (paid PaymentIntent, (attempt, answer) of the tab left open)."""
    siblings = services_of(app).fulfiller.siblings
    siblings.close()  # it never gets to what the settling owes, however late its first round
    monkeypatch.setattr(siblings, "settled", lambda intent_id: None)
    (_, first), (left_attempt, left) = two_tabs_of_one_cart(shopper)
    paid = first["paymentIntentId"]
    assert confirm(settings, paid, "pm_card_visa")["status"] == "succeeded"
    assert shopper.get(success_url(paid, first["clientSecret"])).status == 200  # settled
    assert intent_at(settings, left["paymentIntentId"])["status"] == "requires_payment_method"
    return paid, (left_attempt, left)


def test_a_tab_of_an_earlier_payment_of_the_cart_never_pays_the_refilled_cart(
    app, shopper, settings, monkeypatch
):
    """A tab left open from the cart's previous payment, its PaymentIntent not canceled: once
    the cart is refilled, its Pay is refused (attempt_finished, its PaymentIntent canceled, so
    the page starts a new attempt of the cart's next payment) instead of charging for the
    cart's next order beside that order's own tab."""
    _, (old_attempt, old) = pay_leaving_the_other_tab_open(app, shopper, settings, monkeypatch)
    shopper.add("2")
    new_attempt = str(uuid.uuid4())
    new = shopper.pay(new_attempt)  # the next payment's tab
    assert new.status == 200, new.text
    refused = shopper.pay(old_attempt)
    assert error_of(refused) == (409, "attempt_finished")
    assert refused.json()["error"]["status"] == "canceled"
    canceled = intent_at(settings, old["paymentIntentId"])
    assert (canceled["status"], canceled["amount"]) == ("canceled", 2300)
    assert canceled["cancellation_reason"] == "duplicate"
    quoted = shopper.json("/checkout/quote", quoting(old_attempt))  # its quotes too
    assert error_of(quoted) == (409, "attempt_finished")
    again = shopper.pay(new_attempt)  # the next payment's own tab pays on
    assert again.status == 200, again.text
    assert again.json()["paymentIntentId"] == new.json()["paymentIntentId"]


def test_the_carts_next_payment_is_never_a_sibling_of_the_last_whatever_the_clocks(
    app, shopper, settings, monkeypatch
):
    """The next payment's first quote written by a process whose clock is behind the one that
    settled the cart (dated before the settling): the canceler of the paid attempt's siblings
    cancels the tab left open from that payment, never the shopper's next purchase."""
    paid, (_, left) = pay_leaving_the_other_tab_open(app, shopper, settings, monkeypatch)
    shopper.add("3")
    nxt = shopper.pay(str(uuid.uuid4())).json()["paymentIntentId"]
    with _ledger(settings) as ledger:
        created = ledger.quote_for(paid)["created"]
        with ledger.backend.write() as tx:  # a clock behind: dated with the paid one
            tx.run("UPDATE quotes SET created = ? WHERE payment_intent = ?", (created, nxt))
    canceled = services_of(app).fulfiller.siblings.cancel_beside(paid)
    assert canceled == [left["paymentIntentId"]]
    assert intent_at(settings, nxt)["status"] == "requires_payment_method"
    assert services_of(app).fulfiller.siblings.cancel_beside(nxt) == []


def test_a_creation_whose_answer_was_lost_then_the_same_cart_gets_that_intent(faulty):
    emu, settings, shopper = faulty
    shopper.add("1")
    attempt = str(uuid.uuid4())
    emu.faults.fail("500", path="/v1/payment_intents")  # the creation, and the look behind it
    assert error_of(shopper.pay(attempt)) == (503, "stripe_unavailable")
    emu.faults.clear()
    shown = shopper.pay(attempt).json()
    assert [x["id"] for x in all_intents(settings)] == [shown["paymentIntentId"]]


def test_an_empty_cart_cannot_be_paid(shopper):
    response = shopper.pay(str(uuid.uuid4()))
    assert response.status == 400
    assert response.json()["error"]["code"] == "cart_empty"
    assert shopper.get("/checkout").headers["Location"] == "/cart"


def test_the_cart_changed_in_another_tab_is_not_what_this_attempt_pays(shopper, settings):
    """The attempt's PaymentIntent holds the quote the page was last shown; a change made
    elsewhere reaches it only when the page asks again (as it does just before confirming)."""
    shopper.add("1")
    attempt = str(uuid.uuid4())
    shown = shopper.pay(attempt).json()
    shopper.add("3")  # another tab
    assert intent_at(settings, shown["paymentIntentId"])["amount"] == 2300
    paid = confirm(settings, shown["paymentIntentId"], "pm_card_visa")
    assert (paid["status"], paid["amount_received"]) == ("succeeded", 2300)
    page = shopper.get(success_url(shown["paymentIntentId"], shown["clientSecret"]))
    assert re.findall(r'<li class="line" data-item="(\w+)">', page.text) == ["1"]
    # What was paid left the cart; what was added meanwhile stays, for the next order.
    assert [(x, q) for x, q in lines_of(shopper.get("/cart").text)] == [("3", "1")]
    with _ledger(settings) as ledger:
        order = ledger.get_order(shown["paymentIntentId"])
        assert (order["id"], order["amount"], order["fulfilled_at"] is not None) == (
            shown["orderId"],
            2300,
            True,
        )


def test_a_confirmed_payment_cannot_change_its_amount(shopper, settings):
    shopper.add("1")
    attempt = str(uuid.uuid4())
    shown = shopper.pay(attempt).json()
    intent_id = shown["paymentIntentId"]
    # An authorized payment (manual capture): confirmed, not finished, its amount fixed.
    emulator_api(settings, "POST", f"/v1/payment_intents/{intent_id}", {"capture_method": "manual"})
    assert confirm(settings, intent_id, "pm_card_visa")["status"] == "requires_capture"
    shopper.add("2")
    refused = shopper.pay(attempt)
    assert refused.status == 409
    assert refused.json()["error"]["code"] == "payment_in_progress"
    assert intent_at(settings, intent_id)["amount"] == 2300
    unchanged = shopper.json("/cart/items/2", {"quantity": 0})
    assert unchanged.status == 200
    assert shopper.pay(attempt).json()["paymentIntentId"] == intent_id  # the same quote: fine


def test_a_paid_attempt_says_so_settles_the_cart_and_the_next_checkout_is_new(shopper, settings):
    shopper.add("2", 2)
    attempt = str(uuid.uuid4())
    shown = shopper.pay(attempt).json()
    scope_before = re.search(r'"attemptScope": "([^"]+)"', shopper.get("/checkout").text).group(1)
    confirm(settings, shown["paymentIntentId"], "pm_card_visa")
    finished = shopper.pay(attempt)  # the shopper never reached the success page
    assert finished.status == 409
    error = finished.json()["error"]
    assert (error["code"], error["status"], error["orderId"]) == (
        "attempt_finished",
        "succeeded",
        shown["orderId"],
    )
    assert shopper.get("/cart").text.count('class="line"') == 0  # settled
    shopper.add("1")
    scope_after = re.search(r'"attemptScope": "([^"]+)"', shopper.get("/checkout").text).group(1)
    assert scope_after != scope_before  # a new attempt for the next order of this cart


def test_fulfilment_settles_the_cart_even_when_the_browser_never_comes_back(shopper, settings):
    """The confirm's answer may be lost (a dropped connection, a closed tab): the webhook's
    fulfilment takes what was paid out of the cart, so it cannot be paid for a second time."""
    from bookpay.catalog import Catalog
    from bookpay.fulfilment import Fulfiller
    from bookpay.ledger import open_ledger
    from bookpay.payments import Gateway

    shopper.add("2", 2)
    shown = shopper.pay(str(uuid.uuid4())).json()
    shopper.add("1")  # added in another tab while paying: not paid, stays
    confirm(settings, shown["paymentIntentId"], "pm_card_visa")
    with open_ledger(settings) as ledger:
        fulfiller = Fulfiller(ledger, Gateway(settings), Catalog.default(), settings, workers=False)
        try:
            assert fulfiller.fulfil(shown["paymentIntentId"]).outcome == "fulfilled"
            assert fulfiller.fulfil(shown["paymentIntentId"]).outcome == "already_fulfilled"
        finally:
            fulfiller.close()
    assert lines_of(shopper.get("/cart").text) == [("1", "1")]


def test_a_failed_payment_of_a_one_copy_cart_tries_again_with_the_cart(shopper, settings):
    """A one-copy cart's PaymentIntent names its book (``item_id``) as a Buy now's does: its
    Try again is the cart's checkout all the same, never a Buy now beside the cart."""
    shopper.add("3")
    shown = shopper.pay(str(uuid.uuid4())).json()
    intent_id = shown["paymentIntentId"]
    metadata = intent_at(settings, intent_id)["metadata"]
    assert (metadata["item_id"], "cart_id" in metadata) == ("3", True)
    assert confirm(settings, intent_id, "pm_card_visa_chargeDeclined")["error"]["code"] == (
        "card_declined"
    )
    page = shopper.get(success_url(intent_id, shown["clientSecret"])).text
    assert "Payment failed" in page
    assert '<a class="button" href="/checkout">Try again</a>' in page
    assert "?item=" not in page
    assert lines_of(shopper.get("/cart").text) == [("3", "1")]  # still the cart's to pay


def test_buy_now_still_buys_one_copy_without_touching_the_cart(shopper, settings):
    shopper.add("3")
    response = shopper.json("/create-payment-intent", {"item": "1", "attemptId": str(uuid.uuid4())})
    assert response.status == 200
    intent = intent_at(settings, response.json()["paymentIntentId"])
    assert (intent["amount"], intent["metadata"]["lines"]) == (2300, "1x1")
    assert "cart_id" not in intent["metadata"]
    assert lines_of(shopper.get("/cart").text) == [("3", "1")]


def test_pages_without_a_cart_do_not_open_the_ledger(app, settings):
    for target in ("/", "/checkout?item=1", "/nowhere"):
        assert count_in_header(Shopper(app).get(target).text) == "0"
    assert not (settings.data_dir / "bookpay.sqlite3").exists()


ADDRESS = {
    "line1": "12 Analytical Row",
    "line2": None,
    "city": "San Francisco",
    "state": "CA",
    "postal_code": "94110",
    "country": "US",
}


def quoting(attempt: str) -> dict:
    """A quote's request for ``attempt`` as the checkout page sends it, a name with the address."""
    return {"attemptId": attempt, "address": ADDRESS, "name": "Ada Lovelace"}


def requote(shopper: Shopper, attempt: str):
    return shopper.json("/checkout/quote", quoting(attempt))


def error_of(response: Response) -> tuple[int, str]:
    return response.status, response.json()["error"]["code"]


def test_a_cart_emptied_by_its_attempts_payment_says_the_attempt_is_paid(app, shopper, settings):
    """Two tabs on one attempt: the first pays and reaches /success, which empties the cart.
    The second tab's Pay (and its quote) must hear that the attempt is paid, with its order,
    not that the cart is empty; only this cart's shopper hears it."""
    shopper.add("2", 2)
    attempt = str(uuid.uuid4())
    shown = shopper.pay(attempt).json()
    confirm(settings, shown["paymentIntentId"], "pm_card_visa")
    shopper.get(success_url(shown["paymentIntentId"], shown["clientSecret"]))  # the first tab
    assert shopper.get("/cart").text.count('class="line"') == 0  # settled: empty

    finished = shopper.pay(attempt)  # the second tab's Pay
    assert error_of(finished) == (409, "attempt_finished")
    error = finished.json()["error"]
    assert (error["status"], error["paymentIntentId"], error["orderId"]) == (
        "succeeded",
        shown["paymentIntentId"],
        shown["orderId"],
    )
    assert error_of(requote(shopper, attempt)) == (409, "attempt_finished")
    # A new attempt on the empty cart: nothing to pay for.
    assert error_of(shopper.pay(str(uuid.uuid4()))) == (400, "cart_empty")

    # Another shopper naming the attempt learns nothing of it: with an empty cart of their own,
    # or none at all, the cart is empty, and a quote hears what an unknown attempt's does.
    other = Shopper(app)
    other.add("1")
    other.json("/cart/items/1", {"quantity": 0})
    assert other.cookie
    unknown = str(uuid.uuid4())
    for stranger in (other, Shopper(app)):
        assert error_of(stranger.pay(attempt)) == (400, "cart_empty")
        assert error_of(stranger.pay(unknown)) == (400, "cart_empty")
        assert error_of(requote(stranger, attempt)) == (404, "attempt_not_found")
        assert error_of(requote(stranger, unknown)) == (404, "attempt_not_found")


def test_a_quote_for_an_attempt_paid_in_another_tab_says_so_and_settles_the_cart(shopper, settings):
    """The first tab paid and has not come back (no success page, no webhook yet); the second
    tab's quote hears that the attempt is paid, and what was paid leaves the cart then, as the
    second tab's Pay would make it."""
    shopper.add("2", 2)
    shopper.add("3")
    attempt = str(uuid.uuid4())
    shown = shopper.pay(attempt).json()
    confirm(settings, shown["paymentIntentId"], "pm_card_visa")
    assert shopper.get("/cart").text.count('class="line"') == 2  # nothing has settled it yet
    finished = requote(shopper, attempt)
    assert error_of(finished) == (409, "attempt_finished")
    assert finished.json()["error"]["orderId"] == shown["orderId"]
    assert shopper.get("/cart").text.count('class="line"') == 0  # settled


def test_an_emptied_cart_with_a_payment_under_way_or_still_open(shopper, settings):
    """Emptied while its attempt's payment is authorized (confirmed, not finished): the payment
    is under way (409), as for any change to it. Emptied before paying: the cart is empty."""
    shopper.add("1")
    attempt = str(uuid.uuid4())
    shown = shopper.pay(attempt).json()
    shopper.json("/cart/items/1", {"quantity": 0})
    assert error_of(shopper.pay(attempt)) == (400, "cart_empty")
    assert error_of(requote(shopper, attempt)) == (400, "cart_empty")

    shopper.add("1")
    assert shopper.pay(attempt).json()["paymentIntentId"] == shown["paymentIntentId"]
    intent_id = shown["paymentIntentId"]
    emulator_api(settings, "POST", f"/v1/payment_intents/{intent_id}", {"capture_method": "manual"})
    assert confirm(settings, intent_id, "pm_card_visa")["status"] == "requires_capture"
    shopper.json("/cart/items/1", {"quantity": 0})
    assert error_of(shopper.pay(attempt)) == (409, "payment_in_progress")
    assert error_of(requote(shopper, attempt)) == (409, "payment_in_progress")


def test_a_buy_now_attempt_named_from_an_empty_cart_is_not_looked_at(shopper, settings):
    shopper.add("1")
    shopper.json("/cart/items/1", {"quantity": 0})
    attempt = str(uuid.uuid4())
    bought = shopper.json("/create-payment-intent", {"item": "2", "attemptId": attempt}).json()
    confirm(settings, bought["paymentIntentId"], "pm_card_visa")
    assert error_of(shopper.pay(attempt)) == (400, "cart_empty")


class CountingGateway:
    """The real gateway, counting the PaymentIntents it is asked to create or update, and the
    tax calculations."""

    def __init__(self, settings) -> None:
        from bookpay.payments import Gateway

        self.inner = Gateway(settings)
        self.writes = 0
        self.calculations = 0

    def create_tax_calculation(self, *args, **kwargs):
        self.calculations += 1
        return self.inner.create_tax_calculation(*args, **kwargs)

    def create_intent(self, *args, **kwargs):
        self.writes += 1
        return self.inner.create_intent(*args, **kwargs)

    def update_intent(self, *args, **kwargs):
        self.writes += 1
        return self.inner.update_intent(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _priced_app(settings, *books: tuple[str, int]):
    from bookpay.catalog import Catalog

    catalog = Catalog.from_records(
        [
            {
                "id": book,
                "title": f"Book {book}",
                "author": "X",
                "amount": amount,
                "currency": "usd",
            }
            for book, amount in books
        ]
    )
    gateway = CountingGateway(settings)
    return create_app(settings, gateway=gateway, catalog=catalog, public_url=PUBLIC_URL), gateway


def test_a_total_below_stripes_minimum_is_refused_by_the_shop_before_stripe(settings):
    app, gateway = _priced_app(settings, ("pin", 30))  # $0.30: Stripe's least in USD is $0.50
    shopper = Shopper(app)
    attempt = str(uuid.uuid4())
    refused = shopper.json("/create-payment-intent", {"item": "pin", "attemptId": attempt})
    assert refused.status == 400
    assert refused.json()["error"] == {
        "code": "amount_too_small",
        "message": "Your order's total, $0.30, is less than $0.50, the smallest payment Stripe "
        "takes in USD: add a book to reach it.",
    }
    assert gateway.writes == 0  # Stripe was never asked
    assert shopper.add("pin").status == 200
    assert shopper.pay(attempt).json()["error"]["code"] == "amount_too_small"
    assert shopper.add("pin").status == 200  # two: $0.60
    paid = shopper.pay(attempt)
    assert paid.status == 200, paid.text
    assert paid.json()["amount"] == 60
    app.close()


def test_a_total_above_stripes_maximum_is_refused_by_the_shop_before_stripe(settings):
    app, gateway = _priced_app(settings, ("gold", 99_999_999))  # Stripe's largest amount
    shopper = Shopper(app)
    attempt = str(uuid.uuid4())
    shopper.add("gold")
    held = shopper.pay(attempt)
    assert held.status == 200, held.text
    assert gateway.writes == 1
    shopper.add("gold")  # two copies: more than eight digits
    refused = shopper.pay(attempt)
    assert refused.status == 400
    error = refused.json()["error"]
    assert error["code"] == "amount_too_large"
    assert error["message"] == (
        "Your order's total, $1,999,999.98, is more than $999,999.99, the largest payment Stripe"
        " takes in USD: remove some books, and pay for them in another order."
    )
    assert gateway.writes == 1
    intent = emulator_api(settings, "GET", f"/v1/payment_intents/{held.json()['paymentIntentId']}")
    assert intent["amount"] == 99_999_999  # the PaymentIntent still holds the last quote
    app.close()
