"""Webhook endpoints and signed delivery with retries; the 3-D Secure challenge flow."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable
from html import escape
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import pytest
import stripe

from bookpay.emulator import EmulatorOptions, start_emulator
from bookpay.emulator.delivery import DISABLED, signature_header
from bookpay.emulator.store import Store


def endpoint(client: stripe.StripeClient, url: str, events: list[str]) -> stripe.WebhookEndpoint:
    return client.v1.webhook_endpoints.create(
        params={"url": url, "enabled_events": events, "description": "test", "metadata": {"a": "1"}}
    )


def test_signature_scheme() -> None:
    payload = b'{"id": "evt_1"}'
    header = signature_header(payload, "whsec_test", timestamp=int(time.time()))
    event = stripe.Webhook.construct_event(payload, header, "whsec_test")
    assert event.id == "evt_1"
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, header, "whsec_other")


def test_endpoint_crud(client: stripe.StripeClient) -> None:
    we = endpoint(client, "http://127.0.0.1:9/hook", ["*"])
    assert we.id.startswith("we_") and we.secret.startswith("whsec_")
    assert we.status == "enabled" and we.enabled_events == ["*"]
    fetched = client.v1.webhook_endpoints.retrieve(we.id)
    assert "secret" not in fetched and fetched.url == "http://127.0.0.1:9/hook"
    assert we.id in [e.id for e in client.v1.webhook_endpoints.list().data]
    updated = client.v1.webhook_endpoints.update(
        we.id, params={"enabled_events": ["charge.succeeded"], "disabled": True}
    )
    assert updated.enabled_events == ["charge.succeeded"] and updated.status == "disabled"
    deleted = client.v1.webhook_endpoints.delete(we.id)
    assert deleted.deleted is True and deleted.id == we.id
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.webhook_endpoints.retrieve(we.id)
    assert caught.value.http_status == 404
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.webhook_endpoints.create(params={"url": "not a url", "enabled_events": ["*"]})
    assert caught.value.param == "url"


# Real Stripe event types of the families the emulator emits: endpoints may subscribe to them.
REAL_TYPES = [
    *(f"payment_intent.{k}" for k in ("amount_capturable_updated", "canceled", "created",
      "partially_funded", "payment_failed", "processing", "requires_action", "succeeded")),
    *(f"charge.{k}" for k in ("captured", "expired", "failed", "pending", "refunded",
      "succeeded", "updated")),
    *(f"charge.dispute.{k}" for k in ("closed", "created", "funds_reinstated",
      "funds_withdrawn", "updated")),
    "charge.refund.updated",
    *(f"refund.{k}" for k in ("created", "failed", "updated")),
    *(f"payment_method.{k}" for k in ("attached", "automatically_updated", "detached",
      "updated")),
    *(f"customer.{k}" for k in ("created", "updated", "deleted")),
    *(f"checkout.session.{k}" for k in ("completed", "expired", "async_payment_succeeded",
      "async_payment_failed")),
]  # fmt: skip


def test_enabled_events_must_be_real() -> None:
    # Its own emulator: an endpoint wrongly accepted here must not receive other tests' events.
    with start_emulator() as emu:
        client = stripe.StripeClient(
            "sk_test_x", base_addresses={"api": emu.url}, max_network_retries=0
        )
        we = endpoint(client, "http://127.0.0.1:9/real", REAL_TYPES)
        assert we.enabled_events == REAL_TYPES
        for bad, index in ((["charge.succeeded", "bogus.event"], 1), (["payment_intent.*"], 0)):
            with pytest.raises(stripe.InvalidRequestError) as caught:
                endpoint(client, "http://127.0.0.1:9/bogus", bad)
            assert caught.value.http_status == 400
            assert caught.value.error.type == "invalid_request_error"
            assert caught.value.param == f"enabled_events[{index}]"
            assert caught.value.user_message.startswith(f"Invalid enabled_events[{index}]: ")
            assert f"'{bad[index]}'" in caught.value.user_message
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.webhook_endpoints.update(we.id, params={"enabled_events": ["bogus.event"]})
        assert caught.value.param == "enabled_events[0]"
        assert client.v1.webhook_endpoints.retrieve(we.id).enabled_events == REAL_TYPES
        assert [e.id for e in client.v1.webhook_endpoints.list().data] == [we.id]


def test_delivery_signed_and_counted(
    client: stripe.StripeClient, emu: Any, receiver: Any, paid_intent: Callable[..., Any]
) -> None:
    we = endpoint(client, receiver.url, ["payment_intent.succeeded", "charge.succeeded"])
    try:
        pi = paid_intent(client, amount=1234)
        got = receiver.wait_for(2)
        kinds = []
        for request in got:
            headers = request["headers"]
            assert headers["Content-Type"] == "application/json; charset=utf-8"
            assert headers["User-Agent"] == "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
            assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", headers["Stripe-Signature"])
            event = stripe.Webhook.construct_event(
                request["body"].decode(), headers["Stripe-Signature"], we.secret
            )
            kinds.append(event.type)
            assert event.data.object.amount == 1234
        assert sorted(kinds) == ["charge.succeeded", "payment_intent.succeeded"]
        succeeded = client.v1.events.list(params={"type": "payment_intent.succeeded"}).data[0]
        assert succeeded.data.object.id == pi.id
        deadline = time.time() + 2
        while client.v1.events.retrieve(succeeded.id).pending_webhooks and time.time() < deadline:
            time.sleep(0.01)
        assert client.v1.events.retrieve(succeeded.id).pending_webhooks == 0
        attempts = emu.app.delivery_attempts(succeeded.id)
        assert [(a["endpoint_id"], a["status"], a["error"]) for a in attempts] == [
            (we.id, 200, None)
        ]
    finally:
        client.v1.webhook_endpoints.delete(we.id)


def test_retry_after_failures(
    client: stripe.StripeClient, emu: Any, receiver: Any, eventually: Any
) -> None:
    receiver.statuses = [500, 302]  # a redirect is a failure too; then the receiver recovers
    we = endpoint(client, receiver.url, ["payment_intent.created"])
    try:
        started = time.time()
        client.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
        got = receiver.wait_for(3)
        assert len({r["body"] for r in got}) == 1  # the same event each time
        assert time.time() - started >= 0.15  # waited 0.05 s then 0.1 s
        evt = json.loads(got[0]["body"])
        # The attempt is recorded once its answer is read: a moment after the receiver has it.
        attempts = eventually(
            lambda: (a := emu.app.delivery_attempts(evt["id"])) and len(a) >= 3 and a
        )
        assert [a["status"] for a in attempts] == [500, 302, 200]
        assert attempts[0]["error"] == "HTTP 500"
    finally:
        client.v1.webhook_endpoints.delete(we.id)


def test_gives_up_after_schedule(client: stripe.StripeClient, emu: Any) -> None:
    we = endpoint(client, "http://127.0.0.1:9/closed", ["payment_intent.canceled"])
    try:
        pi = client.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
        client.v1.payment_intents.cancel(pi.id)
        evt = client.v1.events.list(params={"type": "payment_intent.canceled"}).data[0]
        assert evt.pending_webhooks == 1
        deadline = time.time() + 3
        while client.v1.events.retrieve(evt.id).pending_webhooks and time.time() < deadline:
            time.sleep(0.02)
        assert client.v1.events.retrieve(evt.id).pending_webhooks == 0
        attempts = emu.app.delivery_attempts(evt.id)
        assert len(attempts) == 3  # first try + two retries
        assert all(a["status"] is None and a["error"] for a in attempts)
    finally:
        client.v1.webhook_endpoints.delete(we.id)


class Trickler:
    """A receiver that answers a status line promising a long body, then sends it one byte
    every 0.2 s: each read gets something, so only a deadline on the whole attempt ends it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.connections = 0
        self.answering = threading.Event()  # a status line was sent, the body is trickling
        self.done = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.done.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(10)
                request = b""
                while b"\r\n\r\n" not in request:
                    request += conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                self.answering.set()
                while not self.done.wait(0.2):
                    conn.sendall(b"x")
            except OSError:
                pass

    def close(self) -> None:
        self.done.set()
        self.sock.close()


@pytest.fixture
def trickler() -> Any:
    rx = Trickler()
    yield rx
    rx.close()


def test_an_attempt_is_bounded_as_a_whole_and_retried(trickler: Trickler) -> None:
    """delivery_timeout bounds the whole attempt, not each read: a receiver trickling its
    answer is cut off at the deadline, a failed attempt, retried on the schedule."""
    options = EmulatorOptions(retry_schedule=(0.05, 0.1), delivery_timeout=1, async_delay=0.05)
    with start_emulator(options=options) as emu:
        client = stripe.StripeClient("sk_test_x", base_addresses={"api": emu.url})
        endpoint(client, trickler.url, ["customer.created"])
        started = time.monotonic()
        try:
            client.v1.customers.create(params={})
            while not emu.app.delivery_attempts() and time.monotonic() - started < 6:
                time.sleep(0.02)
            first = emu.app.delivery_attempts()
            assert first, "no attempt recorded 6 s after the event (delivery_timeout=1)"
            # The deadline plus slack for a loaded machine; the trickle alone lasts far longer.
            assert time.monotonic() - started < 3.5
            assert first[0]["status"] is None and "TimeoutError" in first[0]["error"]
            while trickler.connections < 2 and time.monotonic() - started < 8:
                time.sleep(0.02)
            assert trickler.connections >= 2  # retried
        finally:
            trickler.close()  # so that a failure here is not a hang in stopping


def test_stopping_does_not_wait_for_an_attempt_under_way(trickler: Trickler, tmp_path: Any) -> None:
    """Stopping the emulator (Ctrl-C, a test's teardown) cuts off an attempt under way rather
    than waiting for it: the attempt is not recorded, and the delivery stays pending for the
    next start."""
    db = tmp_path / "emulator.db"
    options = EmulatorOptions(
        retry_schedule=(0.05,), delivery_timeout=60, async_delay=0.05, db_path=db
    )
    emu = start_emulator(options=options)
    client = stripe.StripeClient("sk_test_x", base_addresses={"api": emu.url})
    endpoint(client, trickler.url, ["customer.created"])
    client.v1.customers.create(params={})
    assert trickler.answering.wait(5)
    time.sleep(0.3)  # a byte or two of the body read
    stopper = threading.Thread(target=emu.stop, daemon=True)
    started = time.monotonic()
    stopper.start()
    stopper.join(timeout=5)
    assert not stopper.is_alive(), "stopping waited for the trickling attempt"
    assert time.monotonic() - started < 3
    store = Store(db)
    try:
        assert store.attempts() == []
        assert len(store.pending_deliveries()) == 1
    finally:
        store.close()


def test_a_disabled_endpoint_is_sent_no_retries_until_enabled_again(receiver: Any) -> None:
    """Disabling an endpoint stops its attempts, as Stripe does; re-enabled before its retries
    run out, it is sent the next one. The attempts due meanwhile count as failed."""
    receiver.statuses = [500]
    options = EmulatorOptions(retry_schedule=(0.3,) * 8, delivery_timeout=1, async_delay=0.05)
    with start_emulator(options=options) as emu:
        client = stripe.StripeClient("sk_test_x", base_addresses={"api": emu.url})
        we = endpoint(client, receiver.url, ["customer.created"])
        client.v1.customers.create(params={})
        receiver.wait_for(1)
        client.v1.webhook_endpoints.update(we.id, params={"disabled": True})
        time.sleep(1.0)
        assert len(receiver.received) == 1
        evt = client.v1.events.list(params={"type": "customer.created"}).data[0]
        assert evt.pending_webhooks == 1
        client.v1.webhook_endpoints.update(we.id, params={"disabled": False})
        receiver.wait_for(2, timeout=2)
        deadline = time.monotonic() + 2
        while client.v1.events.retrieve(evt.id).pending_webhooks and time.monotonic() < deadline:
            time.sleep(0.02)
        assert client.v1.events.retrieve(evt.id).pending_webhooks == 0
        statuses = [a["status"] for a in emu.app.delivery_attempts(evt.id)]
        assert statuses[0] == 500 and statuses[-1] == 200
        assert len(statuses) >= 4 and set(statuses[1:-1]) == {None}  # not sent while disabled
        assert len(receiver.received) == 2


def test_a_delivery_given_up_while_its_endpoint_is_disabled_says_no_endpoint_is_failing(
    receiver: Any,
) -> None:
    receiver.statuses = [500]
    options = EmulatorOptions(retry_schedule=(0.1, 0.1), delivery_timeout=1, async_delay=0.05)
    with start_emulator(options=options) as emu:
        client = stripe.StripeClient("sk_test_x", base_addresses={"api": emu.url})
        we = endpoint(client, receiver.url, ["customer.created"])
        client.v1.customers.create(params={})
        receiver.wait_for(1)
        client.v1.webhook_endpoints.update(we.id, params={"disabled": True})
        evt = client.v1.events.list(params={"type": "customer.created"}).data[0]
        deadline = time.monotonic() + 3
        while client.v1.events.retrieve(evt.id).pending_webhooks and time.monotonic() < deadline:
            time.sleep(0.02)
        assert client.v1.events.retrieve(evt.id).pending_webhooks == 0  # given up
        errors = [a["error"] for a in emu.app.delivery_attempts(evt.id)]
        assert errors == ["HTTP 500", DISABLED, DISABLED]
        assert emu.app.deliverer.notices == []
        assert len(receiver.received) == 1


# --- 3-D Secure -----------------------------------------------------------------------------


def start_3ds(client: stripe.StripeClient, token: str, return_url: str | None, **extra: Any) -> Any:
    params: dict[str, Any] = {"amount": 2500, "currency": "usd", "confirm": True, **extra}
    if token.startswith("pm_"):
        params["payment_method"] = token
    else:
        params["payment_method_data"] = {
            "type": "card",
            "card": {"number": token, "exp_month": 1, "exp_year": 2040, "cvc": "123"},
        }
    if return_url:
        params["return_url"] = return_url
    else:  # a server-side confirmation without a return_url: card only, as Stripe requires
        params["allowed_payment_method_types"] = ["card"]
    pi = client.v1.payment_intents.create(params=params)
    assert pi.status == "requires_action"
    return pi


def challenge(call: Callable[..., Any], pi: Any) -> tuple[str, str]:
    action = pi.next_action
    page_url = (
        action.use_stripe_sdk["stripe_js"]
        if action.type == "use_stripe_sdk"
        else action.redirect_to_url.url
    )
    url = urlsplit(page_url)
    page = call("GET", f"{url.path}?{url.query}", key=None)
    assert page.status == 200
    html = page.body.decode()
    assert "Emulated 3D Secure authentication" in html and "$25.00" in html
    assert "id='test-source-authorize-3ds'" in html and "Complete authentication" in html
    assert "id='test-source-fail-3ds'" in html and "Fail authentication" in html
    return url.path, parse_qs(url.query)["client_secret"][0]


def test_3ds_complete(client: stripe.StripeClient, call: Callable[..., Any]) -> None:
    pi = start_3ds(client, "pm_card_authenticationRequired", "http://127.0.0.1:4242/success?x=1")
    path, secret = challenge(call, pi)
    resp = call("POST", path, {"client_secret": secret, "action": "complete"}, key=None)
    assert resp.status == 303
    location = urlsplit(resp.headers["location"])
    assert location.netloc == "127.0.0.1:4242" and location.path == "/success"
    query = parse_qs(location.query)
    assert query["payment_intent"] == [pi.id]
    assert query["payment_intent_client_secret"] == [pi.client_secret]
    assert query["redirect_status"] == ["succeeded"] and query["x"] == ["1"]
    after = client.v1.payment_intents.retrieve(pi.id, params={"expand": ["latest_charge"]})
    assert after.status == "succeeded" and after.next_action is None
    assert after.latest_charge.payment_method_details.card.three_d_secure.result == "authenticated"
    kinds = {e.type for e in client.v1.events.list(params={"limit": 100}).data
             if e.data.object.to_dict().get("id") == pi.id}  # fmt: skip
    assert {"payment_intent.requires_action", "payment_intent.succeeded"} <= kinds


def test_3ds_returns_to_a_return_url_with_any_characters(
    client: stripe.StripeClient, call: Callable[..., Any]
) -> None:
    # A Location header carries ASCII only: the rest goes percent-encoded as UTF-8, as a
    # browser would send it (a return_url outside Latin-1 once closed the connection instead).
    pi = start_3ds(
        client, "pm_card_authenticationRequired", "https://例え.テスト/ß€/戻る?q=ü&r=€#片"
    )
    path, secret = challenge(call, pi)
    resp = call("POST", path, {"client_secret": secret, "action": "complete"}, key=None)
    assert resp.status == 303
    location = resp.headers["location"]
    assert location.isascii()
    back = urlsplit(location)
    assert unquote(back.netloc) == "例え.テスト" and unquote(back.path) == "/ß€/戻る"
    assert unquote(back.fragment) == "片"
    query = parse_qs(back.query)
    assert query["q"] == ["ü"] and query["r"] == ["€"] and query["payment_intent"] == [pi.id]
    assert query["redirect_status"] == ["succeeded"]
    finished = call("GET", path + "?" + urlencode({"client_secret": secret}), key=None)
    assert finished.status == 200 and escape(location, quote=True) in finished.body.decode()


@pytest.mark.parametrize(
    "return_url",
    ["bookshop://payment/done?x=1", "com.example.app:///return", "bookshop://pay/it's<done>"],
)
def test_3ds_returns_to_an_application_uri(
    client: stripe.StripeClient, call: Callable[..., Any], return_url: str
) -> None:
    """A return_url may send the customer back to a mobile app (Stripe's documentation of the
    parameter); the redirect and the finished page's link keep it as given (an empty authority
    too), with Stripe's query parameters, and the page shows it escaped."""
    pi = start_3ds(client, "pm_card_authenticationRequired", return_url)
    assert pi.next_action.redirect_to_url.return_url == return_url
    path, secret = challenge(call, pi)
    resp = call("POST", path, {"client_secret": secret, "action": "complete"}, key=None)
    assert resp.status == 303
    location = resp.headers["location"]
    base, _, query = return_url.partition("?")
    assert location.startswith(base + "?")
    assert parse_qs(location.removeprefix(base + "?"), keep_blank_values=True) == {
        **parse_qs(query),
        "payment_intent": [pi.id],
        "payment_intent_client_secret": [pi.client_secret],
        "redirect_status": ["succeeded"],
    }
    finished = call("GET", path + "?" + urlencode({"client_secret": secret}), key=None)
    html = finished.body.decode()
    assert f"id='return-link' href='{escape(location, quote=True)}'" in html
    assert "<done>" not in html


def test_3ds_fail(client: stripe.StripeClient, call: Callable[..., Any]) -> None:
    pi = start_3ds(client, "4000000000003220", "http://127.0.0.1:4242/success")
    path, secret = challenge(call, pi)
    resp = call("POST", path, {"client_secret": secret, "action": "fail"}, key=None)
    assert resp.status == 303
    assert parse_qs(urlsplit(resp.headers["location"]).query)["redirect_status"] == ["failed"]
    after = client.v1.payment_intents.retrieve(pi.id)
    assert after.status == "requires_payment_method"
    assert after.last_payment_error.code == "payment_intent_authentication_failure"
    assert after.latest_charge is None
    again = client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"})
    assert again.status == "succeeded"


@pytest.mark.parametrize(
    ("card", "decline_code"),
    [
        ("4000008260003178", "insufficient_funds"),
        # "3D Secure authentication required, but the payment will be declined with a
        # card_declined failure code after authentication" (Stripe's testing docs).
        ("4000008400001629", "generic_decline"),
    ],
)
def test_3ds_then_decline(
    client: stripe.StripeClient, call: Callable[..., Any], card: str, decline_code: str
) -> None:
    pi = start_3ds(client, card, "http://127.0.0.1:4242/success")
    path, secret = challenge(call, pi)
    resp = call("POST", path, {"client_secret": secret, "action": "complete"}, key=None)
    assert parse_qs(urlsplit(resp.headers["location"]).query)["redirect_status"] == ["failed"]
    after = client.v1.payment_intents.retrieve(pi.id)
    assert after.status == "requires_payment_method"
    assert after.last_payment_error.code == "card_declined"
    assert after.last_payment_error.decline_code == decline_code
    assert client.v1.charges.retrieve(after.latest_charge).status == "failed"


def test_3ds_without_return_url(client: stripe.StripeClient, call: Callable[..., Any]) -> None:
    pi = start_3ds(client, "pm_card_authenticationRequiredOnSetup", None)
    # Nowhere to redirect back to: Stripe.js's own action, not a redirect.
    assert pi.next_action.type == "use_stripe_sdk" and "redirect_to_url" not in pi.next_action
    assert pi.next_action.use_stripe_sdk["type"] == "three_d_secure_redirect"
    path, secret = challenge(call, pi)
    resp = call("POST", path, {"client_secret": secret, "action": "complete"}, key=None)
    assert resp.status == 200 and "succeeded" in resp.body.decode()
    wrong = call("POST", path, {"client_secret": "nope", "action": "complete"}, key=None)
    assert wrong.status == 404


def test_receipt_page(
    client: stripe.StripeClient, call: Callable[..., Any], paid_intent: Callable[..., Any]
) -> None:
    pi = paid_intent(client, amount=1999)
    charge = client.v1.charges.retrieve(pi.latest_charge)
    page = call("GET", urlsplit(charge.receipt_url).path, key=None)
    assert page.status == 200 and "$19.99" in page.body.decode() and "4242" in page.body.decode()


def test_3ds_page_is_not_cached_and_speaks_to_the_shopper(
    client: stripe.StripeClient, call: Callable[..., Any]
) -> None:
    pi = start_3ds(client, "pm_card_authenticationRequired", "http://127.0.0.1:4242/success")
    url = urlsplit(pi.next_action.redirect_to_url.url)
    page = call("GET", f"{url.path}?{url.query}", key=None)
    assert page.headers["cache-control"] == "no-store"
    html = page.body.decode()
    assert "Your bank asks you to confirm this payment of $25.00 to bookpay emulator." in html
    assert "requires_action" not in html
    assert "min-height: 44px" in html
    assert "<link rel='icon' href='data:,'>" in html  # no request for /favicon.ico


@pytest.mark.parametrize(
    ("currency", "amount", "shown"),
    [("isk", 250000, "2,500 ISK"), ("ugx", 5000, "50 UGX"), ("jpy", 2500, "¥2,500"),
     ("kwd", 2500, "2.500 KWD"), ("aud", 2500, "A$25.00"), ("usd", 2500, "$25.00")],
)  # fmt: skip
def test_3ds_pages_show_the_amount_as_bookpay_does_in_each_currency(
    client: stripe.StripeClient, call: Callable[..., Any], currency, amount, shown
) -> None:
    """ISK and UGX are charged in whole units, written with two decimals on the wire (250000 is
    2,500 ISK): not "2,500.00 ISK" for the shopper, as the shop itself shows them."""
    pi = start_3ds(client, "pm_card_authenticationRequired", None, currency=currency, amount=amount)
    url = urlsplit(pi.next_action.use_stripe_sdk["stripe_js"])
    html = call("GET", f"{url.path}?{url.query}", key=None).body.decode()
    assert f"<p class='amount' id='amount'>{shown}</p>" in html
    assert f"confirm this payment of {shown} to" in html
    secret = parse_qs(url.query)["client_secret"][0]
    done = call("POST", url.path, {"client_secret": secret, "action": "complete"}, key=None)
    assert f"<p class='amount'>{shown}</p>" in done.body.decode()  # no return_url: the result
    again = call("GET", f"{url.path}?{url.query}", key=None).body.decode()
    assert f"The payment of {shown} no longer needs your confirmation." in again
    charge = client.v1.payment_intents.retrieve(pi.id).latest_charge
    receipt = call("GET", f"/receipts/{charge}", key=None).body.decode()
    assert f"<p class='amount'>{shown}</p>" in receipt


def test_3ds_finished_page_after_completion(
    client: stripe.StripeClient, call: Callable[..., Any]
) -> None:
    pi = start_3ds(client, "pm_card_authenticationRequired", "http://127.0.0.1:4242/success?x=1")
    path, secret = challenge(call, pi)
    done = call("POST", path, {"client_secret": secret, "action": "complete"}, key=None)
    assert done.status == 303 and done.headers["cache-control"] == "no-store"
    charges = client.v1.charges.list(params={"payment_intent": pi.id}).data

    # Back to the page, or a second click from a stale copy: finished, no live buttons.
    again = call("GET", f"{path}?client_secret={secret}", key=None)
    posted = call("POST", path, {"client_secret": secret, "action": "fail"}, key=None)
    for resp in (again, posted):
        assert resp.status == 200 and resp.headers["cache-control"] == "no-store"
        html = resp.body.decode()
        assert "This authentication is already finished" in html
        assert "id='test-source-authorize-3ds'" not in html and "<form" not in html
        href = re.search(r"id='return-link' href='([^']+)'", html).group(1).replace("&amp;", "&")
        link = urlsplit(href)
        assert (link.netloc, link.path) == ("127.0.0.1:4242", "/success")
        assert parse_qs(link.query) == {
            "x": ["1"],
            "payment_intent": [pi.id],
            "payment_intent_client_secret": [pi.client_secret],
            "redirect_status": ["succeeded"],
        }
    assert client.v1.payment_intents.retrieve(pi.id).status == "succeeded"  # "fail" ignored
    assert client.v1.charges.list(params={"payment_intent": pi.id}).data == charges


def test_3ds_finished_page_after_failure_without_return_url(
    client: stripe.StripeClient, call: Callable[..., Any]
) -> None:
    pi = start_3ds(client, "pm_card_threeDSecure2Required", None)
    path, secret = challenge(call, pi)
    call("POST", path, {"client_secret": secret, "action": "fail"}, key=None)
    html = call("GET", f"{path}?client_secret={secret}", key=None).body.decode()
    assert "This authentication is already finished" in html
    assert "You can close this window." in html and "return-link" not in html
    assert "id='test-source-fail-3ds'" not in html
    resp = call("POST", path, {"client_secret": secret, "action": "complete"}, key=None)
    assert "This authentication is already finished" in resp.body.decode()
    assert client.v1.payment_intents.retrieve(pi.id).status == "requires_payment_method"


@pytest.mark.parametrize("form", [{}, {"action": "bogus"}, {"action": "COMPLETE"}])
def test_3ds_form_without_a_known_action_is_a_400_that_changes_nothing(
    client: stripe.StripeClient, call: Callable[..., Any], form: dict[str, str]
) -> None:
    """Only the page's two buttons finish the authentication: anything else once failed it."""
    pi = start_3ds(client, "pm_card_authenticationRequired", "http://127.0.0.1:4242/success")
    path, secret = challenge(call, pi)
    resp = call("POST", path, {"client_secret": secret, **form}, key=None)
    assert resp.status == 400 and "location" not in resp.headers
    assert "complete or fail" in resp.body.decode()
    assert client.v1.payment_intents.retrieve(pi.id).status == "requires_action"
    done = call("POST", path, {"client_secret": secret, "action": "complete"}, key=None)
    assert done.status == 303


def test_3ds_keeps_the_return_urls_query_as_it_was_given(
    client: stripe.StripeClient, call: Callable[..., Any]
) -> None:
    """Stripe's parameters are added after the merchant's query, which is kept byte for byte:
    a bare flag stays bare, a percent-encoded byte that is not UTF-8 stays that byte."""
    pi = start_3ds(
        client, "pm_card_authenticationRequired", "https://shop.example/done?flag&a=%FF&b=x+y#top"
    )
    path, secret = challenge(call, pi)
    resp = call("POST", path, {"client_secret": secret, "action": "complete"}, key=None)
    assert resp.status == 303
    ours = urlencode(
        {
            "payment_intent": pi.id,
            "payment_intent_client_secret": pi.client_secret,
            "redirect_status": "succeeded",
        }
    )
    assert resp.headers["location"] == f"https://shop.example/done?flag&a=%FF&b=x+y&{ours}#top"


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_pages_answer_405_to_other_methods(
    client: stripe.StripeClient,
    call: Callable[..., Any],
    paid_intent: Callable[..., Any],
    method: str,
) -> None:
    pi = start_3ds(client, "pm_card_authenticationRequired", "http://127.0.0.1:4242/success")
    path, secret = challenge(call, pi)
    page = call(method, path, {"client_secret": secret, "action": "complete"}, key=None)
    assert page.status == 405 and page.headers["allow"] == "GET, HEAD, POST"
    assert client.v1.payment_intents.retrieve(pi.id).status == "requires_action"
    charge = client.v1.charges.retrieve(paid_intent(client).latest_charge)
    receipt_path = urlsplit(charge.receipt_url).path
    for verb in (method, "POST"):
        receipt = call(verb, receipt_path, key=None)
        assert receipt.status == 405 and receipt.headers["allow"] == "GET, HEAD"
    assert call("HEAD", receipt_path, key=None).status == 200


def test_pages_are_never_cached_sniffed_or_scripted_but_may_be_framed(
    client: stripe.StripeClient, call: Callable[..., Any], paid_intent: Callable[..., Any]
) -> None:
    """The challenge page's URL holds the client secret, and every page shows what an object
    holds: none is kept in a cache or sent as a Referer, and none may run a script. Stripe shows
    the challenge in an iframe of the merchant's page, so no page refuses to be framed."""
    pi = start_3ds(client, "pm_card_authenticationRequired", "http://127.0.0.1:4242/success")
    path, secret = challenge(call, pi)
    charge = client.v1.charges.retrieve(paid_intent(client).latest_charge)
    pages = [
        call("GET", f"{path}?client_secret={secret}", key=None),
        call("GET", f"{path}?client_secret=wrong", key=None),
        call("GET", urlsplit(charge.receipt_url).path, key=None),
        call("GET", "/receipts/ch_nope", key=None),
        call("POST", path, {"client_secret": secret, "action": "bogus"}, key=None),
        call("POST", path, {"client_secret": secret, "action": "complete"}, key=None),
        call("GET", f"{path}?client_secret={secret}", key=None),
    ]
    for page in pages:
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "no-referrer"
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "frame-ancestors" not in policy
        assert "form-action" not in policy  # the form's 303 goes to the return_url
        assert "x-frame-options" not in page.headers


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # Each of ours replaced where it stood, the merchant's other parameters kept as given.
        (
            "a=1&payment_intent=pi_old&b=2&redirect_status=failed&c=%FF",
            "a=1&{payment_intent}&b=2&{redirect_status}&c=%FF&{payment_intent_client_secret}",
        ),
        # Said twice, or as a bare flag, or with its name percent-encoded or its value empty:
        # once, where it first stood (as URLSearchParams.set does, and the offline Stripe.js).
        (
            "payment_intent&x=1&payment_intent=pi_b&payment%5Fintent_client_secret=&redirect_status=",
            "{payment_intent}&x=1&{payment_intent_client_secret}&{redirect_status}",
        ),
        # All three there already: in the merchant's order, nothing appended.
        (
            "redirect_status=x&payment_intent_client_secret=y&payment_intent=z&",
            "{redirect_status}&{payment_intent_client_secret}&{payment_intent}&",
        ),
        # Names that only look like ours are the merchant's.
        (
            "Payment_Intent=1&payment_intents=2&my_payment_intent=3",
            "Payment_Intent=1&payment_intents=2&my_payment_intent=3&{payment_intent}"
            "&{payment_intent_client_secret}&{redirect_status}",
        ),
    ],
    ids=["replaced-in-place", "once-where-first", "all-there", "lookalikes"],
)
def test_3ds_replaces_stripes_parameters_a_return_url_already_has(
    client: stripe.StripeClient, call: Callable[..., Any], query: str, expected: str
) -> None:
    """A return_url reused from an earlier return (the success page's own URL) already holds
    payment_intent and its kin: the redirect gives each once, this payment's, so that a page
    reading the first value (URLSearchParams.get) reads this payment's, not the earlier one."""
    return_url = f"https://shop.example/done?{query}#top"
    pi = start_3ds(client, "pm_card_authenticationRequired", return_url)
    path, secret = challenge(call, pi)
    resp = call("POST", path, {"client_secret": secret, "action": "complete"}, key=None)
    assert resp.status == 303
    ours = {
        name: urlencode({name: value})
        for name, value in (
            ("payment_intent", pi.id),
            ("payment_intent_client_secret", pi.client_secret),
            ("redirect_status", "succeeded"),
        )
    }
    location = resp.headers["location"]
    assert location == f"https://shop.example/done?{expected.format(**ours)}#top"
    parsed = parse_qs(urlsplit(location).query, keep_blank_values=True)
    assert parsed["payment_intent"] == [pi.id]
    assert parsed["payment_intent_client_secret"] == [pi.client_secret]
    assert parsed["redirect_status"] == ["succeeded"]
    # The page shown after, on Back, links to the same place.
    finished = call("GET", f"{path}?client_secret={secret}", key=None).body.decode()
    assert f"href='{escape(location, quote=True)}'" in finished


# --- Cards saved during payment (setup_future_usage) -----------------------------------------
# Stripe's testing docs, "Authentication and setup": 4000 0025 0000 3155 "requires
# authentication for off-session payments unless you set it up for future payments. After you
# set it up, off-session payments no longer require authentication"; 4000 0027 6000 3184
# "requires authentication on all transactions, regardless of how the card is set up";
# 4000 0082 6000 3178 declines insufficient_funds "even after being successfully authenticated".

RETURN = "https://shop.example/done"


def saved_with_challenge(
    client: stripe.StripeClient, call: Callable[..., Any], card: str, **extra: Any
) -> Any:
    """A $25 payment with `card` that asks to save it (`extra`: customer, setup_future_usage,
    capture_method), its challenge passed; the intent as it is after."""
    pi = start_3ds(client, card, RETURN, **extra)
    path, secret = challenge(call, pi)
    resp = call("POST", path, {"client_secret": secret, "action": "complete"}, key=None)
    assert resp.status == 303
    return client.v1.payment_intents.retrieve(pi.id)


def charge_off_session(client: stripe.StripeClient, pm: str, customer: str | None) -> Any:
    """A later payment with a saved card, the customer away: the intent, or the error."""
    params = {"amount": 1500, "currency": "usd", "payment_method": pm, "off_session": True,
              "confirm": True, "allowed_payment_method_types": ["card"]}  # fmt: skip
    if customer:
        params["customer"] = customer
    try:
        return client.v1.payment_intents.create(params=params)
    except stripe.StripeError as exc:
        return exc


def attached_events(client: stripe.StripeClient, pm: str) -> list[Any]:
    events = client.v1.events.list(params={"type": "payment_method.attached", "limit": 100})
    return [e for e in events.data if e.data.object.id == pm]


def test_3155_set_up_off_session_is_charged_off_session_without_authentication(
    client: stripe.StripeClient, call: Callable[..., Any]
) -> None:
    cus = client.v1.customers.create()
    first = saved_with_challenge(client, call, "pm_card_authenticationRequiredOnSetup",
                                 customer=cus.id, setup_future_usage="off_session")  # fmt: skip
    assert first.status == "succeeded"
    pm = client.v1.payment_methods.retrieve(first.payment_method)
    assert pm.customer == cus.id
    [event] = attached_events(client, pm.id)
    assert event.data.object.customer == cus.id
    later = charge_off_session(client, pm.id, cus.id)
    assert not isinstance(later, Exception), later
    assert later.status == "succeeded" and later.next_action is None
    charge = client.v1.charges.retrieve(later.latest_charge)
    assert charge.payment_method_details.card.three_d_secure is None  # no challenge this time
    assert attached_events(client, pm.id) == [event]  # attached once


@pytest.mark.parametrize(
    ("card", "usage"),
    [
        ("pm_card_authenticationRequired", "off_session"),  # 3184: every time
        ("pm_card_authenticationRequiredOnSetup", "on_session"),  # set up, not for off-session
    ],
)
def test_a_saved_card_that_still_needs_authentication_is_declined_off_session(
    client: stripe.StripeClient, call: Callable[..., Any], card: str, usage: str
) -> None:
    cus = client.v1.customers.create()
    first = saved_with_challenge(client, call, card, customer=cus.id, setup_future_usage=usage)
    assert first.status == "succeeded"
    assert client.v1.payment_methods.retrieve(first.payment_method).customer == cus.id
    later = charge_off_session(client, first.payment_method, cus.id)
    assert isinstance(later, stripe.CardError)
    assert later.code == "authentication_required"


def test_3178_declined_after_authentication_is_not_saved(
    client: stripe.StripeClient, call: Callable[..., Any]
) -> None:
    cus = client.v1.customers.create()
    first = saved_with_challenge(client, call, "4000008260003178", customer=cus.id,
                                 setup_future_usage="off_session")  # fmt: skip
    assert first.status == "requires_payment_method"
    assert first.last_payment_error.decline_code == "insufficient_funds"
    pm = first.last_payment_error.payment_method.id
    assert client.v1.payment_methods.retrieve(pm).customer is None
    assert attached_events(client, pm) == []


def test_an_authorized_payment_saves_its_card(
    client: stripe.StripeClient, call: Callable[..., Any]
) -> None:
    """Manual capture: the card is saved once the payment is authorized (requires_capture)."""
    cus = client.v1.customers.create()
    first = saved_with_challenge(client, call, "pm_card_authenticationRequiredOnSetup",
                                 customer=cus.id, setup_future_usage="off_session",
                                 capture_method="manual")  # fmt: skip
    assert first.status == "requires_capture"
    assert client.v1.payment_methods.retrieve(first.payment_method).customer == cus.id
    assert charge_off_session(client, first.payment_method, cus.id).status == "succeeded"


def test_setup_future_usage_without_a_customer_saves_nothing(
    client: stripe.StripeClient, call: Callable[..., Any]
) -> None:
    """Stripe accepts it ("you can still attach the payment method to a Customer after the
    transaction completes"): the payment goes through, the card is attached to no one."""
    first = saved_with_challenge(client, call, "pm_card_authenticationRequiredOnSetup",
                                 setup_future_usage="off_session")  # fmt: skip
    assert first.status == "succeeded" and first.setup_future_usage == "off_session"
    assert client.v1.payment_methods.retrieve(first.payment_method).customer is None
    assert attached_events(client, first.payment_method) == []
    later = charge_off_session(client, first.payment_method, None)
    assert isinstance(later, stripe.CardError) and later.code == "authentication_required"


@pytest.mark.parametrize("other", [False, True], ids=["no-customer", "another-customer"])
def test_a_customers_saved_card_is_refused_on_an_intent_not_theirs(
    client: stripe.StripeClient, call: Callable[..., Any], other: bool
) -> None:
    cus = client.v1.customers.create()
    first = saved_with_challenge(client, call, "pm_card_authenticationRequiredOnSetup",
                                 customer=cus.id, setup_future_usage="off_session")  # fmt: skip
    newest = client.v1.payment_intents.list(params={"limit": 1}).data[0].id
    someone = client.v1.customers.create().id if other else None
    refused = charge_off_session(client, first.payment_method, someone)
    assert isinstance(refused, stripe.InvalidRequestError)
    assert refused.http_status == 400 and refused.param == "payment_method"
    assert f"belongs to the Customer {cus.id}" in str(refused.user_message)
    assert client.v1.payment_intents.list(params={"limit": 1}).data[0].id == newest  # none made


# Stripe's testing docs, "Authentication and setup": 4000 0038 0000 0446 ("Already set up")
# "requires authentication for one-time and other on-session payments. However, all off-session
# payments will succeed as if the card has been previously set up."
ALREADY_SET_UP = "4000003800000446"


def test_0446_is_charged_off_session_without_ever_being_set_up(
    client: stripe.StripeClient, call: Callable[..., Any]
) -> None:
    on_session = start_3ds(client, ALREADY_SET_UP, RETURN)  # asserts requires_action
    assert on_session.next_action is not None
    card = {"number": ALREADY_SET_UP, "exp_month": 1, "exp_year": 2040, "cvc": "123"}
    pm = client.v1.payment_methods.create(params={"type": "card", "card": card})
    later = charge_off_session(client, pm.id, None)
    assert not isinstance(later, Exception), later
    assert later.status == "succeeded" and later.next_action is None
    charge = client.v1.charges.retrieve(later.latest_charge)
    assert charge.payment_method_details.card.three_d_secure is None


@pytest.mark.parametrize("card", ["pm_card_authenticationRequiredOnSetup", ALREADY_SET_UP])
def test_a_card_set_up_for_off_session_still_needs_authentication_on_session(
    client: stripe.StripeClient, call: Callable[..., Any], card: str
) -> None:
    """error_on_requires_action is not off_session: an on-session payment with a card set up
    (or counted as set up) for off-session use still needs the customer, so Stripe declines it
    authentication_required rather than charging it unauthenticated."""
    cus = client.v1.customers.create()
    first = saved_with_challenge(client, call, card, customer=cus.id,
                                 setup_future_usage="off_session")  # fmt: skip
    assert first.status == "succeeded"
    params = {"amount": 1500, "currency": "usd", "payment_method": first.payment_method,
              "customer": cus.id, "confirm": True, "error_on_requires_action": True,
              "allowed_payment_method_types": ["card"]}  # fmt: skip
    with pytest.raises(stripe.CardError) as refused:
        client.v1.payment_intents.create(params=params)
    assert refused.value.code == "authentication_required"
