"""Bad input gets Stripe's 400, never a 500: hostile keys, nesting, expand chains, limits."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from stripe_oracle import OPERATIONS, declared_params, walk_declared

from bookpay.emulator.wire import MAX_BODY, MAX_DEPTH, decode_form


def send(emu: Any, method: str, path: str, body: bytes, headers: dict[str, str] | None = None):
    """Raw bytes to the emulator; (status, parsed JSON or text)."""
    parts = urlsplit(emu.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    hdrs = {"Authorization": "Bearer sk_test_x",
            "Content-Type": "application/x-www-form-urlencoded", **(headers or {})}  # fmt: skip
    try:
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(data)
    except ValueError:
        return resp.status, data.decode("utf-8", "replace")


def error_of(emu: Any, body: str, path: str = "/v1/payment_intents") -> dict[str, Any]:
    status, answer = send(emu, "POST", path, body.encode())
    assert status == 400, (status, answer)
    return answer["error"]


def test_all_digit_top_level_keys_are_unknown_parameters(emu: Any) -> None:
    error = error_of(emu, "0=x&amount=1000&currency=usd")
    assert (error["code"], error["param"]) == ("parameter_unknown", "0")
    assert error["message"] == "Received unknown parameter: 0"
    assert decode_form("0=a&1=b") == {"0": "a", "1": "b"}  # not a list at the top level


def test_deep_nesting_is_refused(emu: Any) -> None:
    for depth in (MAX_DEPTH + 1, 490, 5000):
        key = "metadata" + "[a]" * depth
        error = error_of(emu, f"{key}=x&amount=1000&currency=usd")
        assert error["type"] == "invalid_request_error"
        assert f"nested more than {MAX_DEPTH} levels deep" in error["message"]
    within = "shipping[address][line1]"
    assert decode_form(f"{within}=x") == {"shipping": {"address": {"line1": "x"}}}


def test_max_depth_exceeds_every_declared_parameter() -> None:
    deepest = max(
        path.count("[") + 1 for op in OPERATIONS for path, _ in walk_declared(declared_params(op))
    )
    assert deepest + 1 < MAX_DEPTH  # room for list indices


def test_long_expand_chains(emu: Any) -> None:
    for length in (5, 970, 20_000):
        chain = ".".join(["latest_charge"] * length)
        status, answer = send(emu, "POST", "/v1/payment_intents", f"expand[]={chain}".encode())
        assert status == 400
        assert answer["error"]["code"] == "property_expansion_max_depth"
        assert answer["error"]["message"].startswith(
            "You cannot expand more than 4 levels of a property. Property: latest_charge."
        )


def test_metadata_limits(emu: Any) -> None:
    base = "amount=1000&currency=usd"
    many = "&".join(f"metadata[k{i}]=v" for i in range(51))
    assert error_of(emu, f"{base}&{many}")["message"] == "You can have up to 50 metadata keys."
    fifty = "&".join(f"metadata[k{i}]=v" for i in range(50))
    status, _ = send(emu, "POST", "/v1/payment_intents", f"{base}&{fifty}".encode())
    assert status == 200
    key = "k" * 41
    error = error_of(emu, f"{base}&metadata[{key}]=v")
    assert error["message"] == (
        f"Metadata keys can have a maximum length of 40 characters. '{key}' is too long."
    )
    error = error_of(emu, f"{base}&metadata[k]={'v' * 501}")
    assert error["message"].startswith(
        "Metadata values can have up to 500 characters, but you passed in a value that is 501"
    )


def test_string_length(emu: Any) -> None:
    long = "x" * 4990 + "0123456789"
    error = error_of(emu, f"amount=1000&currency=usd&description={long}y")
    assert error["param"] == "description"
    assert error["message"] == (
        "Invalid string: xxxxxxxxxx...123456789y; must be at most 5000 characters"
    )
    error = error_of(emu, "amount=1000&currency=usd&statement_descriptor=" + "B" * 23)
    assert error["message"].endswith("must be at most 22 characters")


def test_body_size(emu: Any) -> None:
    error = error_of(emu, "description=" + "x" * MAX_BODY)
    assert error["message"] == f"Request body too large: at most {MAX_BODY} bytes are accepted."
    status, _ = send(emu, "POST", "/v1/payment_intents", b"", {"Content-Length": "-1"})
    assert status == 400  # refused by the HTTP server itself, before the emulator


@pytest.mark.parametrize(
    "body",
    [
        "a[]=1&a[b]=2",
        "amount[b]=1&amount[]=2",
        "metadata[]=x",
        "expand=x&expand[]=y",
        "expand[][a]=b",
        "currency[]=usd&amount=1",
        "amount=1e400&currency=usd",
        "amount=99999999999999999999999999&currency=usd",
        "created[gt]=99999999999999999999999999",
        "limit=-99999999999999999999",
        "%ZZ=%ZZ&%=%",
        "[]=x&[a]=y&]=z",
        "amount=1000&currency=usd&shipping=x&shipping[name]=a",
        "metadata[" + "9" * 5000 + "]=x",
        "expand[" + "9" * 5000 + "]=latest_charge",
    ],
)
def test_odd_shapes_are_400_not_500(emu: Any, body: str) -> None:
    for path in ("/v1/payment_intents", "/v1/refunds", "/v1/customers", "/v1/webhook_endpoints"):
        status, _ = send(emu, "POST", path, body.encode())
        assert 200 <= status < 500, (path, body, status)
    status, _ = send(emu, "GET", f"/v1/payment_intents?{body}", b"")
    assert status < 500


def test_non_utf8_body(emu: Any) -> None:
    status, answer = send(emu, "POST", "/v1/payment_intents", b"amount=\xff\xfe&currency=usd")
    assert status == 400 and answer["error"]["param"] == "amount"


def test_three_d_secure_page_with_a_hostile_form(emu: Any, call: Callable[..., Any]) -> None:
    body = ("a" + "[b]" * 1000 + "=x").encode()
    status, answer = send(emu, "POST", "/3ds/authenticate/pi_x", body, {"Authorization": ""})
    assert status == 400 and "nested more than" in answer


def test_bad_content_length_reaching_the_app() -> None:
    """Behind another server (or in-process) the app itself refuses a bad Content-Length."""
    import io

    from bookpay.emulator import EmulatorOptions, create_app

    app = create_app(EmulatorOptions())
    try:
        for length in ("-1", "x", str(MAX_BODY + 1)):
            seen: list[str] = []
            record = seen.append
            environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/v1/payment_intents",
                       "SERVER_NAME": "x", "SERVER_PORT": "1", "wsgi.url_scheme": "http",
                       "CONTENT_LENGTH": length, "wsgi.input": io.BytesIO(b""),
                       "HTTP_AUTHORIZATION": "Bearer sk_test_x"}  # fmt: skip
            body = b"".join(app(environ, lambda status, headers, record=record: record(status)))
            assert seen == ["400 Bad Request"], (length, body)
            assert json.loads(body)["error"]["type"] == "invalid_request_error"
    finally:
        app.close()
