"""Hostile input to the emulator: Stripe's 400s (never a 500), no hot loop in delivery, and no
secret-key API for web pages."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from conftest import raw

from bookpay.emulator import EmulatorOptions, api, start_emulator

KEY = "sk_test_hostile"
PK = "pk_test_hostile"
BAD_URLS = ["http://127.0.0.1:99999/hook", "http://[::1]:abc/", "http://[::1"]
# URLs that parse but name nowhere a request can go: no host, port 0 (nothing listens there),
# whitespace or a control character, an IPv6 zone.
NOWHERE = ["https:///x", "https://", "http:foo", "http://user@/", "https://:443/"]
UNUSABLE_URLS = [
    *NOWHERE,
    "http://127.0.0.1:0/hook",
    "https://shop.example:00/hook",
    "http://[::1]:0/",
    "https://shop example/hook",
    "https://shop.example/a hook",
    "https://shop.example/hook?a=b c",
    "https://shop.example/hook\r\nX-Injected: 1",
    "https://shop.example/hook\t",
    "https://shop.example/\x00",
    "https://[fe80::1%25eth0]/hook",
]
# Non-ASCII ones, in the host (refused wherever a URL is taken) and in the path (refused where
# the URL is delivered to): C1 controls, Unicode whitespace, bidirectional controls.
UNSENDABLE_HOSTS = [
    "https://a\x85b.example/hook",  # NEL (C1, and whitespace)
    "https://a\x9bb.example/hook",  # CSI (C1)
    "https://exa\u00a0mple.com/hook",  # no-break space
    "https://a\u3000b.example/hook",  # ideographic space
    "https://a\u2028b.example/hook",  # line separator
    "https://a\u202eb.example/hook",  # right-to-left override
    "https://a\u200fb.example/hook",  # right-to-left mark
    "https://shop\u200b.example/hook",  # zero-width space (a format character, Cf)
    "https://shop.example\ufeff/hook",  # zero-width no-break space (byte order mark)
]
UNSENDABLE_PATHS = [
    "https://shop.example/ho\x85ok",
    "https://shop.example/ho\x9bok",
    "https://shop.example/hook?a=\u00a0",
    "https://shop.example/ho\u3000ok",
    "https://shop.example/ho\u2003ok",  # em space
    "https://shop.example/ho\u2028ok",
    "https://shop.example/ho\u2066ok",  # left-to-right isolate
    "https://shop.example/ho\u200bok",  # zero-width space
    "https://shop.example/hook?a=\u200d",  # zero-width joiner
    "https://shop.example/ho\u2060ok",  # word joiner
    "https://shop.example/ho\u00adok",  # soft hyphen
]
# Application URIs, which a return_url may be (Stripe's documentation of the parameter).
APP_URIS = ["bookshop://payment/done", "com.example.app://return?from=pay", "my-app+2.x:done"]
# Not one: no scheme or a malformed one, a scheme a browser runs or reads itself, whitespace,
# a control or format character anywhere, an authority that does not parse.
NOT_APP_URIS = [
    "payment/done",
    "//shop.example/r",
    "1app://done",
    "-app://done",
    "my_app://done",
    "book shop://done",
    " bookshop://done",
    "java\tscript:alert(1)",
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "bookshop://payment/do ne",
    "bookshop://payment/done\r\nX-Injected: 1",
    "bookshop://pay\u200bment/done",
    "bookshop://payment/\u202edone",
    "bookshop://[payment/done",
    "localhost:4242/success",  # http:// forgotten: not an app named "localhost"
    "shop.example:8080",
    "127.0.0.1:4242/success?x=1",
]


@pytest.fixture
def fresh() -> Iterator[Any]:
    """An emulator of its own: these tests move its clock and break its endpoints' URLs."""
    options = EmulatorOptions(retry_schedule=(0.05, 0.1), delivery_timeout=1, async_delay=60)
    with start_emulator(options=options) as running:
        yield running


def send(url: str, method: str, path: str, body: str, headers: dict[str, str]) -> Any:
    """A request with exactly this body and these headers (no Authorization unless given)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request(method, path, body=body.encode() if body else None, headers=headers)
        answer = conn.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        conn.close()


def strict_json(body: bytes) -> Any:
    """JSON as a browser reads it: no Infinity or NaN."""

    def refuse(name: str) -> Any:
        raise ValueError(f"not JSON: {name}")

    return json.loads(body, parse_constant=refuse)


def control(url: str, name: str, body: str) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    status, _, answer = send(url, "POST", f"/_emulator/{name}", body, headers)
    return status, strict_json(answer)


def assert_400(status: int, body: Any, param: str | None = None, code: str | None = None) -> None:
    assert status == 400, body
    error = body["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    if param:
        assert error["param"] == param
    if code:
        assert error["code"] == code


# --- webhook endpoint URLs and the deliverer -----------------------------------------------


@pytest.mark.parametrize("url", BAD_URLS + UNUSABLE_URLS + UNSENDABLE_HOSTS + UNSENDABLE_PATHS)
def test_endpoint_urls_that_do_not_parse_are_refused(fresh: Any, url: str) -> None:
    params = {"url": url, "enabled_events[]": "*"}
    created = raw(fresh.url, "POST", "/v1/webhook_endpoints", params, key=KEY)
    assert_400(created.status, created.json(), "url", "url_invalid")
    good = {"url": "https://shop.example/hook", "enabled_events[]": "*"}
    we = raw(fresh.url, "POST", "/v1/webhook_endpoints", good, key=KEY).json()
    updated = raw(fresh.url, "POST", f"/v1/webhook_endpoints/{we['id']}", {"url": url}, key=KEY)
    assert_400(updated.status, updated.json(), "url", "url_invalid")
    kept = raw(fresh.url, "GET", f"/v1/webhook_endpoints/{we['id']}", key=KEY).json()
    assert kept["url"] == "https://shop.example/hook"


def test_an_endpoint_url_with_non_ascii_characters_is_delivered_to(
    fresh: Any, receiver: Any
) -> None:
    """Accepted, so deliverable: http.client cannot send `é`, so it goes percent-encoded."""
    params = {"url": receiver.url + "/café?über=1", "enabled_events[]": "payment_intent.created"}
    created = raw(fresh.url, "POST", "/v1/webhook_endpoints", params, key=KEY)
    assert created.status == 200 and created.json()["url"] == params["url"]
    raw(fresh.url, "POST", "/v1/payment_intents", {"amount": "1000", "currency": "usd"}, key=KEY)
    [request] = receiver.wait_for(1)
    assert request["path"] == "/webhook/caf%C3%A9?%C3%BCber=1"


@pytest.mark.parametrize("url", ["https://bücher.example/hook", "https://例え.テスト/フック"])
def test_an_endpoint_url_with_an_internationalised_host_is_taken(fresh: Any, url: str) -> None:
    """Letters of any script are no control or whitespace: kept, as before the check grew."""
    params = {"url": url, "enabled_events[]": "*"}
    created = raw(fresh.url, "POST", "/v1/webhook_endpoints", params, key=KEY)
    assert created.status == 200 and created.json()["url"] == url


def test_a_url_http_client_refuses_is_a_failed_attempt_not_a_hot_loop(
    fresh: Any, receiver: Any
) -> None:
    """An endpoint kept with such a URL (by an emulator from before the check, in its database)
    fails each attempt on the schedule, and the other endpoints still get their events."""
    store = fresh.app.store
    params = {"url": "https://shop.example/hook", "enabled_events[]": "payment_intent.created"}
    bad = raw(fresh.url, "POST", "/v1/webhook_endpoints", params, key=KEY).json()
    with store.transaction():
        endpoint = store.get(bad["id"], "webhook_endpoint")
        endpoint["url"] = BAD_URLS[0]
        store.save(endpoint)
    params["url"] = receiver.url
    raw(fresh.url, "POST", "/v1/webhook_endpoints", params, key=KEY)
    created = raw(fresh.url, "POST", "/v1/payment_intents", {"amount": "1000", "currency": "usd"})
    assert created.status == 200
    receiver.wait_for(1)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        attempts = [a for a in fresh.app.delivery_attempts() if a["endpoint_id"] == bad["id"]]
        if len(attempts) == 3:
            break
        time.sleep(0.02)
    time.sleep(0.2)  # a hot loop would go on making (or never recording) attempts
    attempts = [a for a in fresh.app.delivery_attempts() if a["endpoint_id"] == bad["id"]]
    assert len(attempts) == 3  # the first and the two retries of the schedule, then given up
    assert all(a["status"] is None for a in attempts)
    assert all(a["error"].startswith("ValueError: Port out of range") for a in attempts)
    assert [n["endpoint"] for n in fresh.app.deliverer.notices] == [bad["id"]]


# --- secret keys and web pages --------------------------------------------------------------


def test_a_page_cannot_use_a_secret_key_in_a_simple_request(fresh: Any) -> None:
    """The reviewer's request: text/plain, so no preflight, the key as a parameter."""
    body = "key=sk_test_anything&url=https://evil.example/hook&enabled_events[]=*"
    headers = {"Origin": "https://evil.example", "Content-Type": "text/plain;charset=UTF-8"}
    status, _, answer = send(fresh.url, "POST", "/v1/webhook_endpoints", body, headers)
    assert status == 403
    error = json.loads(answer)["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"] == api.FROM_A_PAGE and "whsec_" not in answer.decode()
    assert raw(fresh.url, "GET", "/v1/webhook_endpoints", key=KEY).json()["data"] == []


@pytest.mark.parametrize("key", [KEY, "rk_test_hostile"])
def test_a_secret_key_with_an_origin_is_refused_even_in_the_header(fresh: Any, key: str) -> None:
    for method, path in (("GET", "/v1/payment_intents"), ("POST", "/v1/customers")):
        answer = raw(fresh.url, method, path, {}, {"Origin": "https://evil.example"}, key=key)
        assert answer.status == 403, path
        assert answer.json()["error"]["message"] == api.FROM_A_PAGE
    faults = {"Origin": "null", "Authorization": f"Bearer {KEY}"}
    status, _, answer = send(fresh.url, "POST", "/_emulator/reset", "", faults)
    assert status == 403 and json.loads(answer)["error"]["message"] == api.FROM_A_PAGE


def test_a_secret_key_is_never_taken_from_a_parameter(fresh: Any) -> None:
    """Without an Origin (a no-cors GET from an <img> sends none) the key parameter is still
    no way in: a secret key comes in the Authorization header."""
    for method in ("GET", "POST"):
        answer = raw(fresh.url, method, "/v1/customers", {"key": KEY}, key=None)
        assert answer.status == 401
        assert "did not provide an API key" in answer.json()["error"]["message"]


def test_pages_keep_their_publishable_key_calls_and_preflights(fresh: Any) -> None:
    """What Stripe.js does from a shop's page: the pk_ as a parameter, an Origin, a form."""
    created = raw(fresh.url, "POST", "/v1/payment_intents", {"amount": "1000", "currency": "usd"})
    pi = created.json()
    page = {"Origin": "http://127.0.0.1:4242"}
    seen = raw(
        fresh.url,
        "GET",
        f"/v1/payment_intents/{pi['id']}",
        {"client_secret": pi["client_secret"], "key": PK},
        page,
        key=None,
    )
    assert seen.status == 200 and seen.headers["access-control-allow-origin"] == "*"
    year = str(dt.date.today().year + 2)
    method = {"type": "card", "card[number]": "4242424242424242", "card[exp_month]": "12",
              "card[exp_year]": year, "card[cvc]": "123", "key": PK}  # fmt: skip
    pm = raw(fresh.url, "POST", "/v1/payment_methods", method, page, key=None)
    assert pm.status == 200, pm.body
    preflight = {**page, "Access-Control-Request-Method": "POST"}
    options = raw(fresh.url, "OPTIONS", "/v1/payment_methods", None, preflight, key=None)
    assert options.status == 204 and options.headers["access-control-allow-origin"] == "*"


# --- the control endpoints ------------------------------------------------------------------


@pytest.mark.parametrize(
    "body", ['{"days":1e308}', '{"days":36526}', '{"days":1e303,"hours":1e305}']
)
def test_the_clock_advances_at_most_100_years(fresh: Any, body: str) -> None:
    status, answer = control(fresh.url, "clock", body)
    assert status == 400 and "100 years" in answer["error"]["message"]
    status, _, now = send(
        fresh.url, "GET", "/_emulator/clock", "", {"Authorization": f"Bearer {KEY}"}
    )
    assert status == 200 and strict_json(now)["offset"] == 0


def test_the_clock_counts_what_it_was_moved_already(fresh: Any) -> None:
    assert control(fresh.url, "clock", '{"days":36000}')[0] == 200
    status, answer = control(fresh.url, "clock", '{"days":600}')
    assert status == 400 and "36000.00 days ahead now" in answer["error"]["message"]
    calc = {
        "currency": "usd",
        "line_items[0][amount]": "1000",
        "line_items[0][reference]": "book",
        "customer_details[address][country]": "US",
        "customer_details[address][postal_code]": "10001",
        "customer_details[address_source]": "shipping",
    }
    answer = raw(fresh.url, "POST", "/v1/tax/calculations", calc, key=KEY)
    assert answer.status == 200, answer.body


@pytest.mark.parametrize(
    "body",
    [
        '{"fault":"500","times":Infinity}',
        '{"fault":"500","retry_after":Infinity}',
        '{"fault":"500","times":1e309}',
        '{"seed":1e309}',
        '{"a":' + "[" * 200_000,
    ],
)
def test_fault_bodies_that_overflow_are_400s(fresh: Any, body: str) -> None:
    status, answer = control(fresh.url, "faults", body)
    assert status == 400, answer
    assert answer["error"]["message"]


# --- parameters and headers -----------------------------------------------------------------


# A return_url goes in the Location header of the 3-D Secure page's redirect: whitespace, a
# control or a format character anywhere in it (not only in its host) is not a URL one can go to.
UNREDIRECTABLE = [
    "https://shop.example/a\r\nSet-Cookie: x=1",
    "https://shop.example/done\x00",
    "https://shop.example/done\x7f",
    "https://shop.example/a b",
    "https://shop.example/done?a=b c",
    "https://shop.example/done#a\tb",
    *UNSENDABLE_PATHS,
]


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1",
        "https://shop.example:0/r",
        *NOWHERE,
        *UNSENDABLE_HOSTS,
        *NOT_APP_URIS,
        *UNREDIRECTABLE,
    ],
)
def test_a_return_url_one_cannot_go_to_is_a_400(fresh: Any, url: str) -> None:
    """Stripe's answer, as its API gives it: 400 url_invalid "Not a valid URL" on return_url."""
    params = {"amount": "1000", "currency": "usd"}
    pi = raw(fresh.url, "POST", "/v1/payment_intents", params, key=KEY).json()
    confirm = {"payment_method": "pm_card_visa", "return_url": url}
    path = f"/v1/payment_intents/{pi['id']}/confirm"
    answer = raw(fresh.url, "POST", path, confirm, key=KEY)
    assert_400(answer.status, answer.json(), "return_url", "url_invalid")
    assert answer.json()["error"]["message"] == "Not a valid URL"
    from_page = {**confirm, "client_secret": pi["client_secret"], "key": PK}
    answer = raw(fresh.url, "POST", path, from_page, {"Origin": "http://shop.example"}, key=None)
    assert_400(answer.status, answer.json(), "return_url", "url_invalid")
    at_once = {**params, **confirm, "confirm": "true"}
    created = raw(fresh.url, "POST", "/v1/payment_intents", at_once, key=KEY)
    assert_400(created.status, created.json(), "return_url", "url_invalid")
    kept = raw(fresh.url, "GET", path.removesuffix("/confirm"), key=KEY).json()
    assert kept["status"] == "requires_payment_method" and kept["latest_charge"] is None


@pytest.mark.parametrize("url", APP_URIS)
def test_a_return_url_may_be_an_application_uri(fresh: Any, url: str) -> None:
    """Taken on confirm (server and page) and on create with confirm=true, and kept: the
    3-D Secure redirect goes back to it."""
    params = {"amount": "1000", "currency": "usd"}
    confirm = {"payment_method": "pm_card_visa", "return_url": url}
    for from_page in (False, True):
        pi = raw(fresh.url, "POST", "/v1/payment_intents", params, key=KEY).json()
        path = f"/v1/payment_intents/{pi['id']}/confirm"
        if from_page:
            page = {**confirm, "client_secret": pi["client_secret"], "key": PK}
            answer = raw(fresh.url, "POST", path, page, {"Origin": "http://shop.example"}, key=None)
        else:
            answer = raw(fresh.url, "POST", path, confirm, key=KEY)
        assert answer.status == 200 and answer.json()["status"] == "succeeded", answer.body
    at_once = {**params, **confirm, "confirm": "true"}
    created = raw(fresh.url, "POST", "/v1/payment_intents", at_once, key=KEY)
    assert created.status == 200 and created.json()["status"] == "succeeded", created.body
    three_d = {**at_once, "payment_method": "pm_card_authenticationRequired"}
    pi = raw(fresh.url, "POST", "/v1/payment_intents", three_d, key=KEY).json()
    assert pi["status"] == "requires_action"
    assert pi["next_action"]["redirect_to_url"]["return_url"] == url


def test_idempotency_keys_empty_or_over_255_characters_are_refused(fresh: Any) -> None:
    """As Stripe answers them: an idempotency_error, the length in characters, nothing done."""
    params = {"amount": "1000", "currency": "usd"}
    for length in (0, 256, 60_000):
        headers = {"Idempotency-Key": "k" * length}
        answer = raw(fresh.url, "POST", "/v1/payment_intents", params, headers, key=KEY)
        assert answer.status == 400
        error = answer.json()["error"]
        assert error["type"] == "idempotency_error" and "code" not in error
        assert error["message"] == api.IDEMPOTENCY_KEY_LENGTH.format(length=length)
        assert error["message"].startswith(f"Idempotent key length is {length} characters long,")
        assert "idempotency-key" not in answer.headers
    assert raw(fresh.url, "GET", "/v1/payment_intents", key=KEY).json()["data"] == []
    for length in (1, 255):
        headers = {"Idempotency-Key": "k" * length}
        answer = raw(fresh.url, "POST", "/v1/payment_intents", params, headers, key=KEY)
        assert answer.status == 200 and answer.headers["idempotency-key"] == "k" * length


@pytest.mark.parametrize("amount", ["١٠٠٠", "１０００", "1٠00"])
def test_integers_are_ascii_digits(fresh: Any, amount: str) -> None:
    body = urlencode({"amount": amount, "currency": "usd"})
    headers = {
        "Authorization": f"Bearer {KEY}",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    status, _, answer = send(fresh.url, "POST", "/v1/payment_intents", body, headers)
    error = json.loads(answer)["error"]
    assert status == 400 and error["message"] == f"Invalid integer: {amount}"
    assert error["param"] == "amount" and error["code"] == "parameter_invalid_integer"


# --- client secrets ---------------------------------------------------------------------------


def three_d_secure_intent(url: str) -> dict[str, Any]:
    """A PaymentIntent waiting on its 3-D Secure challenge, and the challenge page's path."""
    params = {"amount": "1000", "currency": "usd", "confirm": "true",
              "payment_method": "pm_card_authenticationRequired",
              "return_url": "https://shop.example/done"}  # fmt: skip
    pi = raw(url, "POST", "/v1/payment_intents", params, key=KEY).json()
    assert pi["status"] == "requires_action", pi
    return pi


def test_client_secrets_are_compared_in_constant_time(fresh: Any, monkeypatch: Any) -> None:
    """How long a wrong client secret takes to refuse must not tell how much of it was right:
    the publishable-key API and the 3-D Secure page compare with hmac.compare_digest, on bytes
    (it refuses a str with non-ASCII characters)."""
    import hmac

    seen: list[tuple[type, type]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        seen.append((type(a), type(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    pi = three_d_secure_intent(fresh.url)
    path = f"/v1/payment_intents/{pi['id']}"
    secret = pi["client_secret"]
    # Wrong in its last character only (a secret that already ends in "x" gets a "y").
    wrong = secret[:-1] + ("y" if secret.endswith("x") else "x")
    for given, status in ((secret, 200), (wrong, 400)):
        answer = raw(fresh.url, "GET", path, {"client_secret": given, "key": PK}, key=None)
        assert answer.status == status, answer.body
    page = f"/3ds/authenticate/{pi['id']}"
    # The right secret shows the page, and a form with no button's action is its 400; a wrong
    # one is "No such authentication" either way.
    for given, shown, posted in ((secret, 200, 400), (wrong, 404, 404)):
        assert raw(fresh.url, "GET", page, {"client_secret": given}, key=None).status == shown
        form = {"client_secret": given, "action": "nothing"}
        assert raw(fresh.url, "POST", page, form, key=None).status == posted
    assert len(seen) >= 6 and set(seen) == {(bytes, bytes)}  # one a request at least


# A client secret that is not one: none, empty, non-ASCII (alone, or in place of the secret's
# last character), bidirectional and NUL characters, over-long, and a hash or a list (bracketed
# names) rather than a string.
ODD_SECRETS = [
    [],
    [("client_secret", "")],
    [("client_secret", "é")],
    [("client_secret", "{secret}")],  # the real secret with its last character made non-ASCII
    [("client_secret", "\u202e\x00")],
    [("client_secret", "s" * 6000)],
    [("client_secret[a]", "{secret}")],
    [("client_secret[]", "{secret}")],
]


ODD_IDS = ["missing", "empty", "non-ascii", "near-miss", "controls", "long", "hash", "list"]


@pytest.mark.parametrize("odd", ODD_SECRETS, ids=ODD_IDS)
def test_odd_client_secrets_are_a_clean_4xx(fresh: Any, odd: list[tuple[str, str]]) -> None:
    """From the publishable-key API, Stripe's 400 on client_secret; from the 3-D Secure page,
    its 404 (or, for a form it cannot read, its 400 page); never a 500, and nothing changes."""
    pi = three_d_secure_intent(fresh.url)
    secret = pi["client_secret"][:-1] + "\u00e9"
    params = [(k, v.format(secret=secret)) for k, v in odd]
    path = f"/v1/payment_intents/{pi['id']}"
    answer = raw(fresh.url, "GET", path, [*params, ("key", PK)], key=None)
    code = None if params else "parameter_missing"
    assert_400(answer.status, answer.json(), "client_secret", code)
    confirm = [*params, ("key", PK), ("payment_method", "pm_card_visa")]
    answer = raw(fresh.url, "POST", f"{path}/confirm", confirm, key=None)
    assert_400(answer.status, answer.json(), "client_secret", code)
    page = f"/3ds/authenticate/{pi['id']}"
    assert raw(fresh.url, "GET", page, params, key=None).status == 404
    form = [*params, ("action", "complete")]
    assert raw(fresh.url, "POST", page, form, key=None).status == 404
    kept = raw(fresh.url, "GET", path, key=KEY).json()
    assert kept["status"] == "requires_action" and kept["next_action"]
