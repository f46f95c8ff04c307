"""Fuzzing the checkout server's own routes: random and hostile requests, never a 5xx.

The real app (``create_app``) runs in-process (WSGI) over a real ledger in the test's folder and
the session's emulator. Cases mix hostile requests (wrong methods, bent paths and query strings,
hostile JSON and form bodies, forged cookies, cross-site and malformed Origin headers, lying
Content-Lengths) with valid-ish sequences (add to the cart, create the attempt's PaymentIntent,
quote it for mutated addresses, come back to /success) so that they reach the deep code paths.
Fuzz values carry a marker (``<fz"'>``) that must never come back raw in an HTML page.

Every case is built from its own seed, ``SEED:INDEX``; cases share the app, its ledger and a few
shoppers, so a failure names its case and ``SERVER_FUZZ_SEED=SEED pytest tests/test_server_fuzz.py``
replays the run (``SERVER_FUZZ_CASES`` sets how many cases). (/webhook has its own fuzzer,
tests/test_webhook_fuzz.py; the emulator's is tests/emulator/test_wire_fuzz.py.)
"""

from __future__ import annotations

import copy
import json
import os
import random
import urllib.parse
import uuid
from collections import Counter

from test_cart_server import ADDRESS, Shopper, app  # noqa: F401  (the app fixture)
from test_server import confirm
from wsgi import Response

SEED = int(os.environ.get("SERVER_FUZZ_SEED", "20261207"))
CASES = int(os.environ.get("SERVER_FUZZ_CASES", "3000"))

MARKER = "<fz\"'>"
RAW_MARKER = b"<fz"  # the marker's tag opening: never raw in HTML, whatever the escaping
PAGES = ("/", "/checkout", "/success", "/cart")
API = ("/create-payment-intent", "/checkout/quote", "/healthz", "/readyz")
ROUTES = [
    "/",
    "/covers/1.svg",
    "/checkout",
    "/create-payment-intent",
    "/success",
    "/cart",
    "/cart/items",
    "/cart/items/1",
    "/checkout/quote",
    "/healthz",
    "/readyz",
    "/static/style.css",
    "/favicon.ico",
]
METHODS = ["GET"] * 6 + ["POST"] * 6 + ["PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"]
ITEMS = ["1", "2", "3"]
LONDON = {"line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH",
          "country": "GB"}  # fmt: skip

HOSTILE_VALUES = [
    None,
    True,
    False,
    0,
    -1,
    1,
    10,
    11,
    10**20,
    -(10**20),
    2**53,
    2**63,
    1.5,
    1e308,
    float("inf"),
    float("nan"),
    "",
    " ",
    "1",
    "0",
    "01",
    " 3 ",
    "1e3",
    "²",
    "99",
    "standard",
    "express",
    "US",
    "us",
    "ZZ",
    MARKER,
    f"1{MARKER}",
    "\ud800",
    "\udfff",
    "\x00",
    "\x00\x1b[2J\x07",
    "\u202e\u2066abc\u2069",
    "\ufeff1",
    "a" * 5000,
    "6f1c1b8e-3a4b-4c5d-8e9f-0a1b2c3d4e5f",
    "6F1C1B8E-3A4B-4C5D-8E9F-0A1B2C3D4E5F",
    "{6f1c1b8e-3a4b-4c5d-8e9f-0a1b2c3d4e5}",
    "=cmd|'/C calc'!A0",
    "/checkout",
    "https://evil.example/",
    "//evil.example",
    [],
    ["1"],
    [1, "2", None],
    {},
    {"country": "US"},
    {"country": ["US"]},
    {"line1": MARKER, "country": "US"},
    {"__proto__": {"x": 1}},
]
FIELDS = [
    "item",
    "attemptId",
    "quantity",
    "next",
    "address",
    "shippingRate",
    "name",
    "version",
    "line1",
    "line2",
    "city",
    "state",
    "postal_code",
    "country",
    MARKER,
]
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON ; charset=latin-1",
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=latin-1",
    "multipart/form-data; boundary=zz",
    "multipart/form-data",
    "text/plain",
    "application/json-patch+json",
    "",
    "\x00",
    MARKER,
]


# --- values -----------------------------------------------------------------------------------


def hostile(rng: random.Random):
    return copy.deepcopy(rng.choice(HOSTILE_VALUES))


def random_json(rng: random.Random, depth: int = 0):
    roll = rng.random()
    if depth > 3 or roll < 0.6:
        return hostile(rng)
    if roll < 0.75:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(FIELDS): random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def mutate(rng: random.Random, value, depth: int = 0):
    """``value`` with one field somewhere in it replaced, removed or added."""
    if isinstance(value, dict) and value and depth < 4:
        key = rng.choice(sorted(value, key=str))
        roll = rng.random()
        if roll < 0.35:
            value[key] = mutate(rng, value[key], depth + 1)
        elif roll < 0.7:
            value[key] = hostile(rng)
        elif roll < 0.85:
            del value[key]
        else:
            value[rng.choice(FIELDS)] = random_json(rng)
        return value
    return random_json(rng)


def to_body(rng: random.Random, data) -> bytes:
    """``data`` as JSON, sometimes in the ways a hostile client writes it."""
    text = json.dumps(data, ensure_ascii=rng.random() < 0.6)  # NaN and Infinity as literals
    body = text.encode("utf-8", "surrogatepass")  # a lone surrogate: invalid UTF-8
    roll = rng.random()
    if roll < 0.04:
        return b"\xef\xbb\xbf" + body  # a BOM
    if roll < 0.08 and body.startswith(b"{") and len(body) > 2:  # a duplicate key
        return b'{"item": ' + rng.choice([b"null", b"1", b'"99"', b"[]"]) + b", " + body[1:]
    if roll < 0.1:
        return text.encode("utf-16", "surrogatepass")
    if roll < 0.12:
        return body[: rng.randrange(len(body) + 1)]  # cut short
    return body


def raw_json_body(rng: random.Random) -> bytes:
    """Bodies no json.dumps writes."""
    depth = rng.choice([50, 500, 1000, 5000])
    return rng.choice(
        [
            b"",
            b"null",
            b"[]",
            b'"x"',
            b"1e999",
            b"-0",
            b"NaN",
            b"[" * depth + b"]" * depth,
            b'{"attemptId": ' * depth + b"1" + b"}" * depth,
            b'{"quantity": ' + b"9" * 5000 + b"}",
            b'{"quantity": 1' + b"0" * 400 + b', "item": "1"}',
            b'{"item": "1", "attemptId": "\\ud800"}',
            b'{"item": "\xff\xfe", "attemptId": 1}',
            b'{"address": {"country": "US", "country": "GB"}}',
            b"\xef\xbb\xbf{}",
            b"{'item': '1'}",
            b'{"item": "1",}',
            bytes(rng.randrange(256) for _ in range(rng.randint(1, 200))),
        ]
    )


def hostile_text(rng: random.Random) -> bytes:
    """A value for a query string or form field, as raw (percent-encoded or not) bytes."""
    return rng.choice(
        [
            b"",
            b"1",
            b"2",
            b"%ff",
            b"%ff%fe",
            b"%c3%28",
            b"%00",
            b"%ed%a0%80",  # a surrogate's UTF-8 form
            b"%e2%80%ae",  # RTL override
            b"%0d%0aSet-Cookie:%20x=1",
            b"%3Cfz%22%27%3E",  # the marker, encoded
            b"<fz\"'>",  # the marker, raw
            b"a+b",
            b"%",
            b"%%",
            b"%g1",
            b"x" * rng.choice([100, 5000, 70000]),
            b"pi_" + b"1" * rng.choice([24, 300, 70000]),
            b"pi_123_secret_abc",
            b"\xff",
            b"\xc3\xa9",
        ]
    )


def hostile_query(rng: random.Random, names: list[str]) -> bytes:
    """A query string: the route's names (repeated, with ``[]``, empty) and strays."""
    pairs = []
    for _ in range(rng.randint(0, 5)):
        name = rng.choice([*names, "v", "x", ""]).encode()
        if rng.random() < 0.15:
            name += b"[]"
        if rng.random() < 0.1:
            pairs.append(name)  # no "="
            continue
        pairs.append(name + b"=" + hostile_text(rng))
    separator = rng.choice([b"&", b"&", b";", b"&&"])
    return separator.join(pairs)


def form_body(rng: random.Random, fields: dict) -> bytes:
    pairs = []
    for name, value in fields.items():
        pairs.append(urllib.parse.quote(name).encode() + b"=" + value)
    for _ in range(rng.randint(0, 2)):
        name = rng.choice(["item", "quantity", "next", "item[]", "quantity[]", MARKER])
        pairs.append(urllib.parse.quote(name).encode() + b"=" + hostile_text(rng))
    rng.shuffle(pairs)
    return b"&".join(pairs)


def multipart_body(rng: random.Random, fields: dict) -> tuple[bytes, str]:
    """``fields`` as multipart/form-data, sometimes bent: a bad charset, a file part, bytes that
    are not UTF-8, a boundary that never closes."""
    boundary = rng.choice(["zz", "----fz", "a" * 70])
    parts = []
    for name, value in fields.items():
        disposition = f'form-data; name="{name}"'
        if rng.random() < 0.15:
            disposition += f'; filename="{rng.choice(["a.txt", MARKER, ""])}"'
        head = f"Content-Disposition: {disposition}\r\n"
        if rng.random() < 0.15:
            head += f"Content-Type: text/plain; charset={rng.choice(['latin-1', 'nope', ''])}\r\n"
        parts.append(f"--{boundary}\r\n{head}\r\n".encode() + value + b"\r\n")
    closing = f"--{boundary}--\r\n".encode() if rng.random() < 0.9 else b""
    body = b"".join(parts) + closing
    options = rng.choice(["", "; charset=utf-8", "; charset=latin-1", "; charset=nope"])
    return body, f"multipart/form-data; boundary={boundary}{options}"


def hostile_path(rng: random.Random) -> str:
    """A path, bent: its bytes percent-decoded and as a WSGI server hands them over (latin-1)."""
    raw = rng.choice(
        [
            b"/covers/%s.svg",
            b"/cart/items/%s",
            b"/static/%s",
            b"/%s",
            b"/checkout/%s",
        ]
    )
    part = urllib.parse.unquote_to_bytes(
        rng.choice(
            [
                b"1",
                b"99",
                b"..%2f..%2fserver.py",
                b"../../bookpay/server.py",
                b"%00",
                b"%ff",
                b"%c3%a9",
                b"%3Cfz%22%27%3E",
                b"a" * 3000,
                b"style.css%00.js",
                b"%e2%80%ae",
                b"",
                b"favicon.svg/",
            ]
        )
    )
    path = raw.replace(b"%s", part).decode("latin-1")
    return path.replace("%", "%25")  # tests/wsgi.call percent-decodes the path once


# --- the shop the cases share -----------------------------------------------------------------


class World:
    """The shoppers (cookies) and attempts the cases share, so sequences build on each other."""

    def __init__(self, wsgi_app, settings) -> None:
        self.app = wsgi_app
        self.settings = settings
        self.shoppers = [Shopper(wsgi_app) for _ in range(3)]
        # attempt id -> [payment intent id, client secret, quotes asked]
        self.attempts: dict[str, list] = {}
        self.statuses: Counter[tuple[str, int]] = Counter()

    def shopper(self, rng: random.Random) -> Shopper:
        """One of the shoppers, or now and then a new browser: no cookie, no cart yet."""
        if rng.random() < 0.15:
            return Shopper(self.app)
        return rng.choice(self.shoppers)

    def attempt(self, rng: random.Random):
        """A known attempt with quotes left before the rate limit, a new one, or a bad one."""
        fresh = [a for a, held in self.attempts.items() if held[2] < 25]
        roll = rng.random()
        if fresh and roll < 0.75:
            return rng.choice(sorted(fresh))
        if roll < 0.9:
            return str(uuid.UUID(int=rng.getrandbits(128), version=4))
        return hostile(rng)

    def quoted(self, attempt) -> None:
        """Count a quote asked for ``attempt``, so the fuzz moves on before its rate limit."""
        if isinstance(attempt, str) and attempt in self.attempts:
            self.attempts[attempt][2] += 1


def check(case: str, world: World, method: str, target: str, response: Response, sent) -> None:
    """The oracle: the contract every response keeps."""
    path = target.partition("?")[0]
    world.statuses[(path if path in ROUTES else "other", response.status)] += 1
    why = (
        f"case {case}: {method} {target[:200]!r} answered {response.status}\n"
        f"sent: {sent!r:.400}\ngot: {response.body[:400]!r}\n"
        f"replay: SERVER_FUZZ_SEED={SEED} SERVER_FUZZ_CASES={CASES} pytest {__file__}"
    )
    assert response.status < 500, why
    assert b"Traceback" not in response.body, why
    content_type = response.headers.get("Content-Type", "")
    as_json = content_type.startswith("application/json")
    if response.status >= 400:
        assert as_json or content_type.startswith("text/html"), why
        assert as_json or path not in API, why  # the API answers JSON, errors too
        if as_json and method != "HEAD":
            error = json.loads(response.body).get("error")
            assert isinstance(error, dict), why
            assert isinstance(error.get("message"), str) and error["message"], why
            assert isinstance(error.get("code"), str) and error["code"], why
        # A refused request makes nothing: no cart (and so no cookie) either.
        assert "Set-Cookie" not in response.headers, why
    if response.status == 200 and path in PAGES and not as_json:
        assert content_type == "text/html; charset=UTF-8", why
    if content_type.startswith("text/html"):
        assert RAW_MARKER not in response.body, why


# --- the cases --------------------------------------------------------------------------------


def send(world, rng, case, method, target, body=b"", shopper=None, **headers) -> Response:
    shopper = shopper or world.shopper(rng)
    response = shopper.request(method, target, body, **headers)
    check(case, world, method, target, response, (headers, body))
    return response


def case_route(world: World, rng: random.Random, case: str) -> None:
    """Any route, any method, a hostile query string and maybe a body."""
    path = rng.choice(ROUTES) if rng.random() < 0.8 else hostile_path(rng)
    names = ["item", "payment_intent", "payment_intent_client_secret", "redirect_status", "v"]
    query = hostile_query(rng, names).decode("latin-1")
    target = path + ("?" + query if query or rng.random() < 0.1 else "")
    method = rng.choice(METHODS)
    headers = {}
    if rng.random() < 0.3:
        headers["Accept"] = rng.choice(["application/json", "text/html", "*/*", MARKER])
    body = b""
    if method != "GET" and rng.random() < 0.5:
        body = to_body(rng, random_json(rng))
        headers["Content-Type"] = rng.choice(CONTENT_TYPES)
    send(world, rng, case, method, target, body, **headers)


def case_json(world: World, rng: random.Random, case: str) -> None:
    """A POST route with a JSON body: a valid one bent, or one no browser sends."""
    attempt = world.attempt(rng)
    bases = {
        "/create-payment-intent": [{"item": rng.choice(ITEMS), "attemptId": attempt},
                                   {"attemptId": attempt}],
        "/checkout/quote": [{"attemptId": attempt, "address": dict(ADDRESS),
                             "shippingRate": "standard", "name": "Ada", "version": 1}],
        "/cart/items": [{"item": rng.choice(ITEMS), "quantity": 1, "next": "/cart"}],
        f"/cart/items/{rng.choice(ITEMS)}": [{"quantity": rng.randint(0, 3)}],
    }  # fmt: skip
    path = rng.choice(sorted(bases))
    if rng.random() < 0.85:
        data = copy.deepcopy(rng.choice(bases[path]))
        for _ in range(rng.randint(1, 3)):
            data = mutate(rng, data)
        body = to_body(rng, data)
    else:
        body = raw_json_body(rng)
    content_type = "application/json" if rng.random() < 0.8 else rng.choice(CONTENT_TYPES)
    if path == "/checkout/quote":
        world.quoted(attempt)
    send(world, rng, case, "POST", path, body, Content_Type=content_type)


def case_form(world: World, rng: random.Random, case: str) -> None:
    """A cart form, its fields bent (odd encodings, repeated keys, ``[]``)."""
    path = rng.choice(["/cart/items", f"/cart/items/{rng.choice(ITEMS)}"])
    fields = {}
    if rng.random() < 0.8:
        fields["item"] = rng.choice([b"1", b"2", b"3"]) if rng.random() < 0.6 else hostile_text(rng)
    if rng.random() < 0.7:
        fields["quantity"] = (
            str(rng.randint(0, 11)).encode() if rng.random() < 0.5 else hostile_text(rng)
        )
    if rng.random() < 0.5:
        fields["next"] = rng.choice([b"/checkout", b"/cart", hostile_text(rng)])
    if rng.random() < 0.2:
        body, content_type = multipart_body(rng, fields)
        send(world, rng, case, "POST", path, body, Content_Type=content_type)
        return
    body = form_body(rng, fields)
    content_type = rng.choice(
        ["application/x-www-form-urlencoded"] * 6
        + CONTENT_TYPES
        + ["application/x-www-form-urlencoded; charset=utf-16"]
    )
    send(world, rng, case, "POST", path, body, Content_Type=content_type)


def origin_header(rng: random.Random) -> dict:
    return rng.choice(
        [
            {"Origin": "https://evil.example"},
            {"Origin": "null"},
            {"Origin": ""},
            {"Origin": "http://127.0.0.1.evil.example"},
            {"Origin": "HTTP://127.0.0.1"},
            {"Origin": "http://127.0.0.1:80"},
            {"Origin": MARKER},
            {"Origin": "\xff\x00"},
            {"Origin": "http://[::1"},
            {"Referer": "https://evil.example/cart"},
            {"Referer": "http://127.0.0.1/cart"},
            {"Referer": "http://[::1/"},
            {"Referer": "javascript:alert(1)"},
            {"Referer": "\xff" * 10},
            {"Origin": "", "Referer": ""},
        ]
    )


def case_headers(world: World, rng: random.Random, case: str) -> None:
    """A state-changing request with a cross-site or malformed Origin, a bad cookie, or a
    Content-Length that lies. A refused one changes no cart."""
    shopper = world.shopper(rng)
    headers = {}
    roll = rng.random()
    if roll < 0.4:
        headers.update(origin_header(rng))
    elif roll < 0.7:
        headers["Cookie"] = rng.choice(
            [
                "bookpay_cart=" + "A" * 43,  # a forged token: finds no cart
                "bookpay_cart=" + MARKER,
                "bookpay_cart=\xff\xfe" * 10,
                "bookpay_cart=" + "x" * 5000,
                "bookpay_cart=a; bookpay_cart=b",
                'bookpay_cart="\\"quoted\\""',
                "=; ;;=x; bookpay_cart",
                "\x00",
                "bookpay_cart=" + "a" * 20 + "\x7f",
            ]
        )
    else:
        # Digits only: waitress refuses any other Content-Length before the app sees it.
        headers["Content-Length"] = rng.choice(["0", "1", "10", "5000", "99999999999999999999"])
    if rng.random() < 0.2:
        headers["X-Forwarded-Host"] = rng.choice(["evil.example", MARKER, "\xff"])
        headers["X-Forwarded-Proto"] = rng.choice(["https", "gopher", ""])
    if rng.random() < 0.3:
        headers["Host"] = rng.choice(["evil.example", "", "\xff", MARKER, "127.0.0.1:99999"])
    path = rng.choice(["/cart/items", "/cart/items/1", "/create-payment-intent", "/checkout/quote",
                       "/cart", "/checkout", "/"])  # fmt: skip
    method = "GET" if path in ("/cart", "/checkout", "/") else "POST"
    if rng.random() < 0.5:
        body = json.dumps({"item": "1", "attemptId": world.attempt(rng), "quantity": 1}).encode()
        headers["Content-Type"] = "application/json"
    else:
        body = b"item=1&quantity=1"
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    if "Referer" in headers and "Origin" not in headers:  # a browser that sends no Origin
        shopper = Shopper(world.app, origin="")
        shopper.cookie = world.shopper(rng).cookie
    before = cart_of(shopper)
    response = send(world, rng, case, method, path, body, shopper=shopper, **headers)
    if response.status >= 400 and path.startswith("/cart"):
        assert cart_of(shopper) == before, f"case {case}: a refused request changed the cart"


def cart_of(shopper: Shopper) -> dict:
    response = shopper.get("/cart", Accept="application/json")
    assert response.status == 200, response.body[:300]
    return response.json()["cart"]


ADDRESS_TEXT = ["CA", "TX", "NY", "ca", " CA ", "ZZ", "94110", "78701", "SW1Y 4JH", "00000",
                "9411", "M5V 2T6", "75001", "", " ", None, MARKER, "a" * 200, "a" * 201,
                "\u202eabc\u202c", "\u00e9", "\u6771\u4eac", "\u00a0", "\x7f",
                "\ud800"]  # fmt: skip
COUNTRIES = ["US", "US", "GB", "CA", "FR", "DE", "JP", "AU", "us", " gb ", "ZZ", "XK", "AQ", ""]


def an_address(rng: random.Random) -> dict:
    """A shipping address: a real one, or one with a part or two bent (text, not wrong types:
    those reach Stripe Tax and the ledger)."""
    address = copy.deepcopy(rng.choice([ADDRESS, LONDON]))
    for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
        name = rng.choice(["line1", "line2", "city", "state", "postal_code", "country"])
        if name == "country":
            address[name] = rng.choice(COUNTRIES)
        else:
            address[name] = rng.choice(ADDRESS_TEXT)
    if rng.random() < 0.15:
        address = mutate(rng, address)  # wrong types, unknown fields
    return address


def add_to_cart(world: World, rng: random.Random, case: str, shopper: Shopper) -> None:
    for _ in range(rng.randint(1, 3)):
        fields = {"item": rng.choice(ITEMS), "quantity": rng.randint(1, 4)}
        if rng.random() < 0.5:
            send(world, rng, case, "POST", "/cart/items", json.dumps(fields).encode(), shopper,
                 Content_Type="application/json")  # fmt: skip
        else:
            send(world, rng, case, "POST", "/cart/items", urllib.parse.urlencode(fields).encode(),
                 shopper, Content_Type="application/x-www-form-urlencoded")  # fmt: skip
    if rng.random() < 0.3:
        send(world, rng, case, "GET", rng.choice(["/checkout", "/cart", "/"]), shopper=shopper)


def create(world: World, rng: random.Random, case: str, shopper: Shopper) -> str | None:
    """A new attempt's PaymentIntent, for one book or the shopper's cart."""
    attempt = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    data = {"attemptId": attempt}
    if rng.random() < 0.6:
        data["item"] = rng.choice(ITEMS)
    response = send(world, rng, case, "POST", "/create-payment-intent", json.dumps(data).encode(),
                    shopper, Content_Type="application/json")  # fmt: skip
    if response.status != 200:
        return None
    created = response.json()
    world.attempts[attempt] = [created["paymentIntentId"], created["clientSecret"], 0]
    return attempt


def quote(world: World, rng: random.Random, case: str, shopper: Shopper, attempt) -> None:
    data = {"attemptId": attempt, "address": an_address(rng),
            "shippingRate": rng.choice([None, "standard", "express", "nope"]),
            "name": rng.choice([None, "Ada Lovelace", MARKER, "\u202eAda", " "])}  # fmt: skip
    if rng.random() < 0.5:
        data["version"] = rng.choice([1, 2, 10**6, rng.randint(1, 50)])
    world.quoted(attempt)
    send(world, rng, case, "POST", "/checkout/quote", json.dumps(data).encode(), shopper,
         Content_Type="application/json")  # fmt: skip


def come_back(world: World, rng: random.Random, case: str, shopper: Shopper, attempt) -> None:
    """Maybe pay (or fail to), then come back to /success, its query valid or bent."""
    intent_id, secret, _ = world.attempts[attempt]
    if rng.random() < 0.3:
        card = rng.choice(["pm_card_visa", "pm_card_visa", "pm_card_chargeDeclined"])
        confirm(world.settings, intent_id, card)
    if rng.random() < 0.2:  # another intent's id, or this one's bent
        intent_id = rng.choice([intent_id + "x", intent_id.upper(), intent_id + "/../../v1/x",
                                intent_id + "\x00", "pi_", "pi_" + "1" * 70000, secret, MARKER,
                                world.attempts[rng.choice(sorted(world.attempts))][0]])  # fmt: skip
    if rng.random() < 0.1:
        secret = rng.choice(["", secret + "x", secret[:-1], secret.upper(), MARKER])
    query = {"payment_intent": intent_id, "payment_intent_client_secret": secret,
             "redirect_status": rng.choice(["succeeded", "failed", MARKER])}  # fmt: skip
    raw = urllib.parse.urlencode(query).encode()
    if rng.random() < 0.5:
        raw += b"&" + hostile_query(rng, sorted(query))
    send(world, rng, case, "GET", "/success?" + raw.decode("latin-1"), shopper=shopper)


def case_sequence(world: World, rng: random.Random, case: str) -> None:
    """The way a shopper goes (buy now or the cart, a payment intent, quotes, /success), each
    step valid or bent, so that the cases reach what lies behind the first checks."""
    shopper = world.shopper(rng)
    roll = rng.random()
    if roll < 0.4:  # a whole checkout: the deepest paths, the fuzz marker in the receipt
        if rng.random() < 0.4:
            add_to_cart(world, rng, case, shopper)
        attempt = create(world, rng, case, shopper)
        if attempt is None:
            return
        for _ in range(rng.randint(0, 3)):
            quote(world, rng, case, shopper, attempt)
        if rng.random() < 0.3:
            add_to_cart(world, rng, case, shopper)  # the cart changes while paying
        come_back(world, rng, case, shopper, attempt)
    elif roll < 0.55:
        add_to_cart(world, rng, case, shopper)
    elif roll < 0.7:
        create(world, rng, case, shopper)
    elif roll < 0.9 or not world.attempts:
        quote(world, rng, case, shopper, world.attempt(rng))
    else:
        come_back(world, rng, case, shopper, rng.choice(sorted(world.attempts)))


CASE_KINDS = [
    (case_route, 0.3),
    (case_json, 0.25),
    (case_form, 0.12),
    (case_headers, 0.13),
    (case_sequence, 0.2),
]


def test_no_request_makes_the_checkout_server_answer_5xx(app, settings):  # noqa: F811
    world = World(app, settings)
    kinds, weights = zip(*CASE_KINDS, strict=True)
    for index in range(CASES):
        rng = random.Random(f"{SEED}:{index}")
        kind = rng.choices(kinds, weights)[0]
        kind(world, rng, f"{SEED}:{index}")
    # The run must have reached what lies behind the first checks, not only the refusals.
    statuses = world.statuses
    assert statuses[("/create-payment-intent", 200)] > CASES // 50, statuses
    assert statuses[("/checkout/quote", 200)] > CASES // 100, statuses
    assert statuses[("/success", 200)] > CASES // 200, statuses
    assert statuses[("/cart/items", 303)] + statuses[("/cart/items", 200)] > CASES // 50, statuses
