"""Fixtures for the emulator tests: a real emulator on a free port, stripe-python against it."""

from __future__ import annotations

import http.client
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import stripe

from bookpay.emulator import EmulatorOptions, start_emulator

FAST_RETRIES = (0.05, 0.1)


@pytest.fixture(scope="module")
def emu() -> Iterator[Any]:
    """One emulator per test module: tests there use fresh objects, so state does not clash."""
    options = EmulatorOptions(retry_schedule=FAST_RETRIES, delivery_timeout=1, async_delay=0.05)
    with start_emulator(options=options) as e:
        yield e


@pytest.fixture(scope="module")
def client(emu: Any) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_x", base_addresses={"api": emu.url}, max_network_retries=0)


def _paid_intent(
    client: stripe.StripeClient,
    amount: int = 1000,
    currency: str = "usd",
    options: Any = None,
    **params: Any,
) -> stripe.PaymentIntent:
    """A PaymentIntent created and confirmed at once with pm_card_visa: it has succeeded."""
    return client.v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": currency,
            "confirm": True,
            "payment_method": "pm_card_visa",
            "return_url": "https://shop.example/success",
            **params,
        },
        options=options or {},
    )


@pytest.fixture(scope="session")
def paid_intent() -> Callable[..., stripe.PaymentIntent]:
    """`paid_intent(client, amount=1000, currency="usd", options=None, **params)`."""
    return _paid_intent


def _eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


@pytest.fixture(scope="session")
def eventually() -> Callable[..., Any]:
    """`eventually(check, timeout=10)`: what `check` returns once it is truthy (the emulator's
    clock moves disputes and refunds on some time later)."""
    return _eventually


@dataclass
class Raw:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def raw(
    url: str,
    method: str,
    path: str,
    params: dict[str, str] | list[tuple[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    key: str | None = "sk_test_raw",
    body: str | None = None,
) -> Raw:
    """A plain HTTP call (no redirects followed), for what stripe-python hides; `body` is sent
    as it is instead of the form-encoded `params`."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    hdrs = dict(headers or {})
    if key:
        hdrs.setdefault("Authorization", f"Bearer {key}")
    if body is None:
        body = urlencode(params or {})
    if method in ("GET", "DELETE") and body:
        path, body = f"{path}?{body}", ""
    if method == "POST":
        hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
    try:
        conn.request(method, path, body=body.encode() if body else None, headers=hdrs)
        resp = conn.getresponse()
        return Raw(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


@pytest.fixture
def call(emu: Any) -> Callable[..., Raw]:
    return lambda method, path, params=None, **kw: raw(emu.url, method, path, params, **kw)


@dataclass
class Receiver:
    """A tiny webhook receiver: records each POST; answers from `statuses`, then 200."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.01)
        raise AssertionError(f"expected {count} webhook requests, got {len(self.received)}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with rec.lock:
                rec.received.append(
                    {"headers": dict(self.headers), "body": body, "path": self.path}
                )
                status = rec.statuses.pop(0) if rec.statuses else 200
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/webhook"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()
