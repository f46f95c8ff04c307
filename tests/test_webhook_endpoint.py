"""End to end: the emulator's signed webhooks into the real checkout server on waitress.

The PaymentIntent is created and confirmed through the gateway (stripe-python over HTTP to the
session's emulator); the emulator signs and delivers its events to the server's /webhook, which
the receiver verifies against the secret the emulator issued at registration.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from bookpay.catalog import Catalog
from bookpay.orders import Fulfiller, Ledger
from bookpay.replay import Replayer, load_events, plan
from bookpay.webhooks import WebhookReceiver


def wait_for(condition, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out waiting for the condition")


def emulator_call(settings, method, path):
    request = urllib.request.Request(
        settings.emulator_url + path,
        method=method,
        headers={"Authorization": f"Bearer {settings.api_key}"},
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.loads(answer.read())


class Shop:
    """The checkout server on a free port, with its ledger, fulfiller and receiver exposed."""

    def __init__(self, settings, *, register=True) -> None:
        from bookpay.payments import Gateway
        from bookpay.server import create_app
        from bookpay.web import runner

        self.settings = settings
        self.gateway = Gateway(settings)
        self.ledger = Ledger.open(settings.data_dir)
        self.fulfiller = Fulfiller(self.ledger, self.gateway, Catalog.default(), settings)
        self.receiver = WebhookReceiver(settings, self.ledger, self.fulfiller)
        self.running = runner.start(
            lambda url: create_app(
                settings,
                gateway=self.gateway,
                ledger=self.ledger,
                fulfiller=self.fulfiller,
                receiver=self.receiver,
                public_url=url,
            ),
            background=True,
        )
        self.url = self.running.url
        self.secret = None
        if register:
            self.secret = self.gateway.register_webhook(self.url + "/webhook")
            self.receiver.add_secret(self.secret)

    def close(self) -> None:
        # Leave no endpoint behind for the emulator to keep delivering the session's events to.
        endpoints = emulator_call(self.settings, "GET", "/v1/webhook_endpoints?limit=100")
        for endpoint in endpoints["data"]:
            if endpoint["url"] == self.url + "/webhook":
                emulator_call(self.settings, "DELETE", f"/v1/webhook_endpoints/{endpoint['id']}")
        self.running.stop()
        self.fulfiller.close()
        self.ledger.close()

    def pay(self, item="1", card="pm_card_visa") -> dict:
        book = Catalog.default().get(item)
        intent = self.gateway.create_intent(book, email="jenny.rosen@example.com")
        return self.gateway.confirm_intent(intent["id"], payment_method=card)

    def processed(self, event_type: str, intent_id: str):
        return next(
            (
                e
                for e in self.ledger.events_for(intent_id)
                if e["type"] == event_type and e["processed_at"]
            ),
            None,
        )


@pytest.fixture
def shop(settings):
    made = []

    def make(**kwargs):
        made.append(Shop(settings, **kwargs))
        return made[-1]

    yield make
    for running in made:
        running.close()


def test_the_full_flow_makes_one_order_and_one_receipt(shop, settings):
    server = shop()
    paid = server.pay()
    assert paid["status"] == "succeeded"
    pi = paid["id"]
    event = wait_for(lambda: server.processed("payment_intent.succeeded", pi))
    assert event["handled"] is True and event["outcome"] == "fulfilled"

    # The shopper's browser comes back to the success page: fulfilled already, not again.
    success = f"{server.url}/success?payment_intent={pi}&payment_intent_client_secret="
    with urllib.request.urlopen(success + paid["client_secret"], timeout=10) as page:
        assert page.status == 200

    [order] = server.ledger.list_orders()
    assert order["payment_intent"] == pi
    assert (order["status"], order["item_id"], order["amount"]) == ("paid", "1", 2300)
    assert order["email"] == "jenny.rosen@example.com"
    assert order["fulfilled_at"] is not None
    assert server.ledger.fulfilment_count() == 1
    assert server.fulfiller.drain(10)
    [eml] = (settings.data_dir / "outbox").iterdir()
    assert eml.name == f"{pi}.eml"
    assert pi in eml.read_text()
    types = {e["type"] for e in server.ledger.events_for(pi)}
    assert {"payment_intent.created", "payment_intent.succeeded"} <= types


def test_a_refund_through_the_api_moves_the_order(shop):
    server = shop()
    pi = server.pay(item="2")["id"]
    wait_for(lambda: server.processed("payment_intent.succeeded", pi))
    server.gateway.create_refund(pi, amount=1000)
    wait_for(lambda: server.processed("charge.refunded", pi))
    order = server.ledger.get_order(pi)
    assert (order["status"], order["amount_refunded"]) == ("partially_refunded", 1000)
    server.gateway.create_refund(pi)
    wait_for(lambda: server.ledger.get_order(pi)["status"] == "refunded")


def emulator_event(settings, kind: str, object_id: str) -> dict:
    """The event of ``kind`` about ``object_id`` (or its PaymentIntent) the emulator made."""
    captured = emulator_call(settings, "GET", f"/v1/events?limit=100&type={kind}")
    return next(
        e
        for e in captured["data"]
        if object_id in (e["data"]["object"]["id"], e["data"]["object"].get("payment_intent"))
    )


def send(server, tmp_path, evt: dict) -> dict:
    """POST ``evt`` to the server's /webhook, signed with its secret; the answer's JSON."""
    path = tmp_path / f"{evt['id']}.json"
    path.write_text(json.dumps(evt))
    [result] = Replayer(server.url + "/webhook", server.secret).run(load_events([str(path)]))
    assert result.status == 200, result.answer
    return json.loads(result.answer)


def test_a_signed_refund_event_the_emulator_did_not_make_changes_nothing(shop, tmp_path):
    server = shop()
    pi = server.pay()["id"]
    wait_for(lambda: server.processed("payment_intent.succeeded", pi))
    charge = emulator_call(server.settings, "GET", f"/v1/payment_intents/{pi}")["latest_charge"]
    claimed = {
        "id": charge,
        "object": "charge",
        "amount": 2300,
        "amount_refunded": 2300,
        "refunded": True,
        "payment_intent": pi,
    }
    forged = {
        "id": "evt_forged_refund",
        "object": "event",
        "type": "charge.refunded",
        "created": int(time.time()),
        "livemode": False,
        "data": {"object": claimed},
    }
    answer = send(server, tmp_path, forged)
    order = server.ledger.get_order(pi)
    # Handled from Stripe's Charge, which refunds nothing: the order stays paid.
    assert (answer["handled"], answer["outcome"]) == (True, f"order {order['id']} is paid")
    assert (order["status"], order["amount_refunded"]) == ("paid", 0)


def test_an_order_refunded_in_full_before_its_succeeded_event_is_not_fulfilled(shop, tmp_path):
    server = shop(register=False)  # the events arrive only when this test sends them
    server.secret = "whsec_test_late_events"
    server.receiver.add_secret(server.secret)
    pi = server.pay()["id"]
    server.gateway.create_refund(pi)
    refunded = send(server, tmp_path, emulator_event(server.settings, "charge.refunded", pi))
    assert refunded["handled"] is True
    late = send(server, tmp_path, emulator_event(server.settings, "payment_intent.succeeded", pi))
    assert (late["handled"], late["outcome"]) == (
        False,
        "refunded: refunded in full before it was fulfilled",
    )
    order = server.ledger.get_order(pi)
    assert (order["status"], order["amount_refunded"], order["fulfilled_at"]) == (
        "refunded",
        2300,
        None,
    )
    assert server.ledger.fulfilment_count(pi) == 0
    assert server.ledger.receipts() == []


def test_a_declined_card_records_the_reason(shop):
    from bookpay.errors import CardDeclined

    server = shop()
    book = Catalog.default().get("3")
    intent = server.gateway.create_intent(book)
    with pytest.raises(CardDeclined):
        server.gateway.confirm_intent(
            intent["id"], payment_method="pm_card_visa_chargeDeclinedInsufficientFunds"
        )
    wait_for(lambda: server.processed("payment_intent.payment_failed", intent["id"]))
    order = server.ledger.get_order(intent["id"])
    assert order["status"] == "failed"
    assert "insufficient_funds" in order["failure_reason"]


def test_a_crash_while_handling_is_healed_by_the_emulators_redelivery(shop, monkeypatch):
    server = shop()
    real_fulfil = server.fulfiller.fulfil
    crashes = []

    def crash_first(intent_id):
        if not crashes:
            crashes.append(intent_id)
            raise RuntimeError("the process died here")
        return real_fulfil(intent_id)

    monkeypatch.setattr(server.fulfiller, "fulfil", crash_first)
    pi = server.pay()["id"]
    event = wait_for(lambda: server.processed("payment_intent.succeeded", pi))
    assert crashes == [pi]
    assert event["deliveries"] >= 2 and event["outcome"] == "fulfilled"
    assert server.ledger.fulfilment_count(pi) == 1
    assert server.fulfiller.drain(10)
    assert len(server.ledger.receipts()) == 1


def test_replayed_duplicates_and_forgeries_over_http(shop, tmp_path):
    server = shop()
    pi = server.pay()["id"]
    wait_for(lambda: server.processed("payment_intent.succeeded", pi))
    captured = emulator_call(server.settings, "GET", "/v1/events?limit=100")
    succeeded = next(
        e
        for e in captured["data"]
        if e["type"] == "payment_intent.succeeded" and e["data"]["object"]["id"] == pi
    )
    path = tmp_path / "succeeded.json"
    path.write_text(json.dumps(succeeded, indent=2))
    events = load_events([str(path)])
    url = server.url + "/webhook"

    results = Replayer(url, server.secret, concurrency=8).run(plan(events, repeat=20))
    assert all(r.status == 200 for r in results)
    assert all(json.loads(r.answer)["duplicate"] for r in results)
    fresh = Replayer(url, server.secret, concurrency=8).run(
        plan(events, repeat=10, new_event_id=True)
    )
    assert all(r.ok and json.loads(r.answer)["outcome"] == "already_fulfilled" for r in fresh)
    assert server.ledger.fulfilment_count(pi) == 1
    assert server.fulfiller.drain(10)
    assert len(server.ledger.receipts()) == 1

    # The same body under a forged id for an intent the emulator never made fulfils nothing.
    forged = json.loads(path.read_text())
    forged["id"], forged["data"]["object"]["id"] = "evt_forged", "pi_forged123"
    path.write_text(json.dumps(forged))
    [result] = Replayer(url, server.secret).run(load_events([str(path)]))
    assert result.status == 200
    assert json.loads(result.answer)["handled"] is False
    assert server.ledger.find_order("pi_forged123") is None


def test_bad_signatures_get_a_json_400_and_leave_nothing(shop):
    server = shop()
    before = server.ledger.event_count()
    events = load_events([_fixture()])
    url = server.url + "/webhook"
    for replayer in (
        Replayer(url, server.secret, bad_signature=True),
        Replayer(url, server.secret, timestamp_offset=-301),
        Replayer(url, "whsec_not_the_one"),
    ):
        [result] = replayer.run(events)
        assert result.status == 400
        assert json.loads(result.answer)["error"]["code"] == "invalid_signature"
    assert server.ledger.event_count() == before


def test_no_secret_in_stripe_mode_is_a_503_naming_the_variable(tmp_path):
    from bookpay.config import Settings
    from bookpay.server import create_app
    from bookpay.web import runner

    settings = Settings(data_dir=tmp_path / "data", secret_key="sk_test_x", publishable_key="pk_x")
    ledger = Ledger.open(settings.data_dir)
    fulfiller = Fulfiller(ledger, None, Catalog.default(), settings)
    receiver = WebhookReceiver(settings, ledger, fulfiller)
    running = runner.start(
        lambda url: create_app(settings, ledger=ledger, fulfiller=fulfiller, receiver=receiver),
        background=True,
    )
    try:
        [result] = Replayer(running.url + "/webhook", "whsec_any").run(load_events([_fixture()]))
        assert result.status == 503
        assert "STRIPE_WEBHOOK_SECRET" in json.loads(result.answer)["error"]["message"]
        assert ledger.event_count() == 0
    finally:
        running.stop()
        fulfiller.close()
        ledger.close()


def _fixture() -> str:
    from bookpay.replay import FIXTURES_DIR

    return str(FIXTURES_DIR / "payment_intent.succeeded.json")
