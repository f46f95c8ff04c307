"""WebhookReceiver: signatures, duplicates, ordering, forgeries, crashes (fake gateway).

The receiver's ledger is SQLite, then PostgreSQL (the ``database_url`` fixture): the duplicate,
concurrency and crash tests hold on both.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from pathlib import Path

import pytest

from bookpay.catalog import Catalog
from bookpay.config import Settings
from bookpay.errors import (
    BookpayError,
    ConfigError,
    NotFound,
    StripeUnavailable,
    UsageError,
    WebhookSignatureError,
)
from bookpay.fulfilment import Fulfiller
from bookpay.ledger import open_ledger
from bookpay.replay import FIXTURES_DIR
from bookpay.webhooks import WebhookReceiver, sign

SHOP = "shop_test"
SECRET = "whsec_test_current"
OLD_SECRET = "whsec_test_previous"
# Stripe's example objects, vendored with their licence (tests/reference/stripe/README.md).
STRIPE_EXAMPLES = Path(__file__).resolve().parent / "reference" / "stripe" / "fixtures3.json"


class FakeGateway:
    def __init__(self, *intents: dict) -> None:
        self.intents = {intent["id"]: intent for intent in intents}
        self.down = False

    def retrieve_intent(self, intent_id, *, expand=("latest_charge",)):
        if self.down:
            raise StripeUnavailable("Could not reach Stripe.")
        if intent_id not in self.intents:
            raise NotFound(f"No such payment_intent: '{intent_id}'", code="resource_missing")
        return copy.deepcopy(self.intents[intent_id])


def intent(pi="pi_1", status="succeeded", item="1", amount=2300, **extra):
    data = {
        "id": pi,
        "object": "payment_intent",
        "status": status,
        "amount": amount,
        "currency": "usd",
        "metadata": {"item_id": item, "integration": "bookpay", "shop_id": SHOP},
        "receipt_email": "jenny@example.com",
        "shipping": None,
        "latest_charge": {"id": f"ch_{pi}", "billing_details": {}},
        "last_payment_error": None,
    }
    data.update(extra)
    return data


def event(kind, obj, event_id=None):
    return {
        "id": event_id or f"evt_{kind}_{obj.get('id')}",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
    }


def charge(pi="pi_1", amount=2300, refunded=0):
    return {
        "id": f"ch_{pi}",
        "object": "charge",
        "amount": amount,
        "amount_refunded": refunded,
        "payment_intent": pi,
    }


@pytest.fixture
def gateway():
    return FakeGateway(intent())


@pytest.fixture
def world(tmp_path, gateway, database_url):
    """A receiver, its ledger and fulfiller, over a fake gateway; closed after the test."""
    settings = Settings(
        data_dir=tmp_path / "data",
        webhook_secrets=(SECRET,),
        database_url=database_url,
        shop_id=SHOP,
    )
    ledger = open_ledger(settings)
    fulfiller = Fulfiller(ledger, gateway, Catalog.default(), settings)
    receiver = WebhookReceiver(settings, ledger, fulfiller)
    yield receiver
    fulfiller.close()
    ledger.close()


def deliver(receiver, evt, secret=SECRET, timestamp=None, body=None):
    payload = body if body is not None else json.dumps(evt, indent=2).encode()
    return receiver.handle(payload, sign(payload, secret, timestamp))


def outbox(receiver) -> list[str]:
    folder = receiver.ledger.data_dir / "outbox"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# Signatures -------------------------------------------------------------------------------------

BODY = json.dumps(event("payment_intent.succeeded", intent()), indent=2).encode()


def _header(secret=SECRET, offset=0, body=BODY):
    return sign(body, secret, int(time.time()) + offset)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: (None, BODY), id="missing"),
        pytest.param(lambda: ("", BODY), id="empty"),
        pytest.param(lambda: ("not a signature", BODY), id="malformed"),
        pytest.param(lambda: ("t=soon,v1=abc", BODY), id="malformed-timestamp"),
        pytest.param(lambda: (_header().replace("v1=", "v0="), BODY), id="no-v1"),
        pytest.param(lambda: (_header("whsec_someone_else"), BODY), id="wrong-secret"),
        pytest.param(lambda: (_header(offset=-310), BODY), id="expired"),
        pytest.param(lambda: (_header(offset=+310), BODY), id="future"),
        pytest.param(lambda: (_header(), BODY.replace(b"2300", b"1")), id="tampered-body"),
        pytest.param(lambda: (_header(), BODY + b" "), id="one-byte-more"),
        pytest.param(lambda: (_header(), b"\xff" + BODY), id="not-utf8"),
    ],
)
def test_a_bad_signature_is_refused_and_nothing_is_recorded(world, make):
    header, body = make()
    with pytest.raises(WebhookSignatureError) as caught:
        world.handle(body, header)
    assert caught.value.http_status == 400
    assert caught.value.code in ("invalid_signature", "missing_signature")
    assert world.ledger.event_count() == 0
    assert world.ledger.list_orders() == []


def test_any_valid_v1_among_several_passes(world):
    good = _header()
    stamp = good.split(",")[0]
    header = f"{stamp},v1={'0' * 64},{good.split(',')[1]},v0=abc"
    assert world.handle(BODY, header)["handled"] is True


def test_a_signature_just_inside_the_tolerance_passes(world):
    assert world.handle(BODY, _header(offset=-290))["received"] is True


def test_both_secrets_are_accepted_while_a_secret_is_rolled(tmp_path, gateway):
    settings = Settings(data_dir=tmp_path / "d", webhook_secrets=(OLD_SECRET, SECRET), shop_id=SHOP)
    ledger = open_ledger(settings)
    fulfiller = Fulfiller(ledger, gateway, Catalog.default(), settings)
    receiver = WebhookReceiver(settings, ledger, fulfiller)
    try:
        old = deliver(receiver, event("payment_intent.succeeded", intent(), "evt_a"), OLD_SECRET)
        new = deliver(receiver, event("payment_intent.succeeded", intent(), "evt_b"), SECRET)
        assert old["handled"] and new["handled"]
        with pytest.raises(WebhookSignatureError):
            deliver(receiver, event("ping", {"id": "x"}, "evt_c"), "whsec_retired")
    finally:
        fulfiller.close()
        ledger.close()


def test_add_secret_accepts_the_emulators_secret(world):
    with pytest.raises(WebhookSignatureError):
        deliver(world, event("payment_intent.succeeded", intent()), "whsec_emulator")
    world.add_secret("whsec_emulator")
    world.add_secret("whsec_emulator")
    assert world.secrets == (SECRET, "whsec_emulator")
    assert deliver(world, event("payment_intent.succeeded", intent()), "whsec_emulator")["handled"]


@pytest.mark.parametrize("key", ["sk_test_123", None])
def test_no_secret_at_all_is_a_503_configuration_error(tmp_path, gateway, key):
    settings = Settings(data_dir=tmp_path / "d", secret_key=key)
    ledger = open_ledger(settings)
    fulfiller = Fulfiller(ledger, gateway, Catalog.default(), settings)
    try:
        receiver = WebhookReceiver(settings, ledger, fulfiller)
        with pytest.raises(ConfigError, match="STRIPE_WEBHOOK_SECRET") as caught:
            receiver.handle(BODY, _header())
        assert caught.value.http_status == 503
        assert ledger.event_count() == 0
    finally:
        fulfiller.close()
        ledger.close()


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"id": "evt_1"}',
        json.dumps(
            event("payment_intent.succeeded", intent(), event_id="evt_" + "x" * 300)
        ).encode(),
        json.dumps(event("payment_intent.succeeded", intent(), event_id={"id": "evt_1"})).encode(),
    ],
    ids=["not-json", "array", "no-type", "id-too-long", "id-not-a-string"],
)
def test_a_signed_body_that_is_not_an_event_is_a_400(world, body):
    with pytest.raises(UsageError) as caught:
        deliver(world, None, body=body)
    assert caught.value.http_status == 400
    assert world.ledger.event_count() == 0


# Recording and duplicates -----------------------------------------------------------------------


def test_succeeded_fulfils_and_a_duplicate_changes_nothing(world):
    evt = event("payment_intent.succeeded", intent())
    first = deliver(world, evt)
    assert first == {
        "received": True,
        "id": evt["id"],
        "type": "payment_intent.succeeded",
        "duplicate": False,
        "handled": True,
        "outcome": "fulfilled",
    }
    order = world.ledger.get_order("pi_1")
    again = deliver(world, evt)
    assert again["duplicate"] is True and again["handled"] is True
    assert world.ledger.get_order("pi_1") == order
    assert world.ledger.fulfilment_count() == 1
    assert world.fulfiller.drain(5)
    assert outbox(world) == ["pi_1.eml"]
    [recorded] = world.ledger.events_for("pi_1")
    assert recorded["deliveries"] == 2


def test_twenty_concurrent_deliveries_of_one_event_fulfil_once(world):
    evt = event("payment_intent.succeeded", intent())
    payload = json.dumps(evt).encode()
    barrier = threading.Barrier(20)
    answers, errors = [], []

    def send():
        barrier.wait()
        try:
            answers.append(world.handle(payload, sign(payload, SECRET)))
        except BookpayError as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(answers) == 20 and all(a["received"] for a in answers)
    assert world.ledger.fulfilment_count("pi_1") == 1
    assert world.fulfiller.drain(5)
    assert len(world.ledger.receipts()) == 1
    assert outbox(world) == ["pi_1.eml"]
    assert world.ledger.get_event(evt["id"])["deliveries"] == 20


def test_other_event_types_are_recorded_and_ignored(world):
    answer = deliver(world, event("customer.created", {"id": "cus_1", "object": "customer"}))
    assert answer["handled"] is False
    assert answer["outcome"].startswith("ignored")
    assert world.ledger.event_count() == 1
    assert world.ledger.list_orders() == []


# Forgeries ------------------------------------------------------------------------------------


def test_a_validly_signed_event_for_an_unknown_intent_fulfils_nothing(world):
    forged = intent("pi_forged")
    answer = deliver(world, event("payment_intent.succeeded", forged))
    assert answer["handled"] is False
    assert "does not know pi_forged" in answer["outcome"]
    assert world.ledger.list_orders() == []
    assert world.ledger.fulfilment_count() == 0
    assert world.ledger.events_for("pi_forged")[0]["handled"] is False


def test_the_events_copy_of_the_intent_is_never_trusted(world, gateway):
    gateway.intents["pi_1"]["status"] = "processing"  # Stripe says: not paid (yet)
    answer = deliver(world, event("payment_intent.succeeded", intent()))
    assert answer["handled"] is False
    assert world.ledger.get_order("pi_1")["status"] == "processing"
    assert world.ledger.fulfilment_count() == 0


def test_an_intent_that_is_not_this_shops_is_ignored(world, gateway):
    gateway.intents["pi_other"] = intent("pi_other", metadata={"order": "42"})
    for kind in ("payment_intent.succeeded", "payment_intent.processing"):
        answer = deliver(world, event(kind, intent("pi_other")))
        assert answer["handled"] is False
        assert "not a bookpay PaymentIntent" in answer["outcome"]
    assert world.ledger.list_orders() == []


def test_another_shops_intent_is_answered_not_ours(world, gateway):
    """Shops sharing an emulator each receive every event: only the creator acts on it."""
    theirs = {"item_id": "1", "integration": "bookpay", "shop_id": "shop_next_door"}
    gateway.intents["pi_theirs"] = intent("pi_theirs", metadata=theirs)
    for kind in ("payment_intent.succeeded", "payment_intent.canceled", "charge.refunded"):
        obj = (
            charge("pi_theirs", refunded=2300) if kind == "charge.refunded" else intent("pi_theirs")
        )
        answer = deliver(world, event(kind, obj))
        assert answer["received"] is True and answer["handled"] is False
        assert answer["outcome"].startswith("ignored: not ours: created by shop shop_next_door")
    assert world.ledger.list_orders() == []
    assert world.ledger.fulfilment_count() == 0


def test_a_price_mismatch_is_recorded_but_not_fulfilled(world, gateway):
    gateway.intents["pi_cheap"] = intent("pi_cheap", amount=1)
    answer = deliver(world, event("payment_intent.succeeded", intent("pi_cheap")))
    assert answer["handled"] is False
    assert "does not match the catalog price" in answer["outcome"]
    order = world.ledger.get_order("pi_cheap")
    assert order["fulfilled_at"] is None
    assert "not fulfilled" in order["note"]


# Status changes and ordering ----------------------------------------------------------------------


def test_processing_then_failed_with_the_decline_reason_then_paid_after_a_retry(world, gateway):
    gateway.intents["pi_1"]["status"] = "processing"
    deliver(world, event("payment_intent.processing", intent(status="processing")))
    assert world.ledger.get_order("pi_1")["status"] == "processing"

    decline = {
        "type": "card_error",
        "code": "card_declined",
        "decline_code": "insufficient_funds",
        "message": "Your card has insufficient funds.",
    }
    gateway.intents["pi_1"].update(status="requires_payment_method", last_payment_error=decline)
    failed = intent(status="requires_payment_method", last_payment_error=decline)
    deliver(world, event("payment_intent.payment_failed", failed))
    order = world.ledger.get_order("pi_1")
    assert order["status"] == "failed"
    assert order["failure_reason"] == (
        "card_declined/insufficient_funds: Your card has insufficient funds."
    )

    gateway.intents["pi_1"].update(status="succeeded", last_payment_error=None)
    deliver(world, event("payment_intent.succeeded", intent()))
    order = world.ledger.get_order("pi_1")
    assert order["status"] == "paid"
    assert order["fulfilled_at"] is not None
    assert order["failure_reason"] is None  # the earlier decline no longer describes it


def test_succeeded_before_processing_stays_paid(world):
    deliver(world, event("payment_intent.succeeded", intent()))
    answer = deliver(world, event("payment_intent.processing", intent(status="processing")))
    assert answer["handled"] is True
    assert world.ledger.get_order("pi_1")["status"] == "paid"
    assert world.ledger.fulfilment_count() == 1


def test_canceled(world, gateway):
    gateway.intents["pi_2"] = intent("pi_2", status="canceled")
    deliver(world, event("payment_intent.canceled", intent("pi_2", status="canceled")))
    assert world.ledger.get_order("pi_2")["status"] == "canceled"
    assert world.ledger.fulfilment_count() == 0


def test_partial_then_full_refund(world):
    deliver(world, event("payment_intent.succeeded", intent()))
    deliver(world, event("charge.refunded", charge(refunded=1000), "evt_r1"))
    order = world.ledger.get_order("pi_1")
    assert (order["status"], order["amount_refunded"]) == ("partially_refunded", 1000)
    deliver(world, event("charge.refunded", charge(refunded=2300), "evt_r2"))
    order = world.ledger.get_order("pi_1")
    assert (order["status"], order["amount_refunded"]) == ("refunded", 2300)
    # A late partial refund event cannot undo the full refund.
    deliver(world, event("charge.refunded", charge(refunded=1000), "evt_r0"))
    assert world.ledger.get_order("pi_1")["status"] == "refunded"


def test_refunded_then_a_late_succeeded(world):
    deliver(world, event("charge.refunded", charge(refunded=2300)))
    assert world.ledger.get_order("pi_1")["status"] == "refunded"
    answer = deliver(world, event("payment_intent.succeeded", intent()))
    assert answer["outcome"] == "fulfilled"
    order = world.ledger.get_order("pi_1")
    assert order["status"] == "refunded"
    assert order["fulfilled_at"] is not None
    assert world.fulfiller.drain(5)
    assert outbox(world) == ["pi_1.eml"]


def test_a_dispute_marks_the_order_disputed_and_a_refund_does_not_hide_it(world):
    deliver(world, event("payment_intent.succeeded", intent()))
    dispute = {
        "id": "dp_1",
        "object": "dispute",
        "charge": "ch_pi_1",
        "payment_intent": None,  # older API versions: found through the charge
        "reason": "fraudulent",
    }
    answer = deliver(world, event("charge.dispute.created", dispute))
    assert answer["handled"] is True
    order = world.ledger.get_order("pi_1")
    assert order["status"] == "disputed"
    assert order["note"] == "dispute dp_1: fraudulent"
    deliver(world, event("charge.refunded", charge(refunded=2300)))
    assert world.ledger.get_order("pi_1")["status"] == "disputed"


def test_a_dispute_with_an_expanded_charge_is_found_through_it(world):
    deliver(world, event("payment_intent.succeeded", intent()))
    dispute = {"id": "dp_3", "object": "dispute", "charge": {"id": "ch_pi_1"}, "reason": "other"}
    assert deliver(world, event("charge.dispute.created", dispute))["handled"] is True
    assert world.ledger.get_order("pi_1")["status"] == "disputed"
    odd = {"id": "dp_4", "object": "dispute", "charge": {"nested": ["not", "an", "id"]}}
    assert deliver(world, event("charge.dispute.created", odd))["handled"] is False


def test_a_dispute_for_an_unknown_charge_is_ignored(world):
    dispute = {"id": "dp_2", "object": "dispute", "charge": "ch_unknown", "payment_intent": None}
    assert deliver(world, event("charge.dispute.created", dispute))["handled"] is False


# Crashes ----------------------------------------------------------------------------------------


def test_a_crash_before_handling_finished_is_handled_by_the_redelivery(world, monkeypatch):
    real_fulfil = world.fulfiller.fulfil
    calls = []

    def crash_once(intent_id):
        calls.append(intent_id)
        if len(calls) == 1:
            raise RuntimeError("process died")
        return real_fulfil(intent_id)

    monkeypatch.setattr(world.fulfiller, "fulfil", crash_once)
    evt = event("payment_intent.succeeded", intent())
    with pytest.raises(RuntimeError):
        deliver(world, evt)
    recorded = world.ledger.get_event(evt["id"])
    assert recorded["processed_at"] is None
    assert world.ledger.fulfilment_count() == 0

    answer = deliver(world, evt)
    assert (answer["duplicate"], answer["outcome"]) == (False, "fulfilled")
    assert world.ledger.get_event(evt["id"])["processed_at"] is not None
    assert deliver(world, evt)["duplicate"] is True
    assert world.ledger.fulfilment_count() == 1
    assert world.fulfiller.drain(5)
    assert outbox(world) == ["pi_1.eml"]


def test_a_crash_after_fulfilment_committed_does_not_fulfil_twice(world, monkeypatch):
    real_finish = world.ledger.finish_event
    calls = []

    def crash_once(event_id, **kwargs):
        calls.append(event_id)
        if len(calls) == 1:
            raise RuntimeError("process died before marking the event processed")
        return real_finish(event_id, **kwargs)

    monkeypatch.setattr(world.ledger, "finish_event", crash_once)
    evt = event("payment_intent.succeeded", intent())
    with pytest.raises(RuntimeError):
        deliver(world, evt)
    assert world.ledger.fulfilment_count() == 1
    answer = deliver(world, evt)
    assert answer["outcome"] == "already_fulfilled"
    assert world.ledger.fulfilment_count() == 1
    assert world.fulfiller.drain(5)
    assert len(world.ledger.receipts()) == 1
    assert outbox(world) == ["pi_1.eml"]


def test_stripe_unreachable_leaves_the_event_for_a_retry(world, gateway):
    gateway.down = True
    evt = event("payment_intent.succeeded", intent())
    with pytest.raises(StripeUnavailable):
        deliver(world, evt)
    gateway.down = False
    assert deliver(world, evt)["outcome"] == "fulfilled"


# The bundled fixtures ---------------------------------------------------------------------------

FIXTURES = sorted(FIXTURES_DIR.glob("*.json"))
EXAMPLE_FOR = {"payment_intent": "payment_intent", "charge": "charge", "dispute": "dispute"}


def test_there_is_a_fixture_for_every_handled_case():
    assert [p.stem for p in FIXTURES] == [
        "charge.dispute.created",
        "charge.refunded.full",
        "charge.refunded.partial",
        "payment_intent.canceled",
        "payment_intent.payment_failed",
        "payment_intent.processing",
        "payment_intent.succeeded",
    ]


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_fixtures_are_shaped_like_stripes_events(path):
    examples = json.loads(STRIPE_EXAMPLES.read_text())["resources"]
    evt = json.loads(path.read_text())
    assert set(examples["event"]) <= set(evt)
    assert evt["object"] == "event" and evt["id"].startswith("evt_")
    assert path.stem.startswith(evt["type"])
    obj = evt["data"]["object"]
    assert set(examples[EXAMPLE_FOR[obj["object"]]]) <= set(obj)
    catalog = Catalog.default()
    if obj["object"] != "dispute":
        book = catalog.get(obj["metadata"]["item_id"])
        assert (obj["amount"], obj["currency"]) == (book.amount, book.currency)


def fixture_intents():
    """Intents Stripe would hold for the fixtures, so replaying them moves orders."""
    found = []
    for path in FIXTURES:
        obj = json.loads(path.read_text())["data"]["object"]
        pi = obj["id"] if obj["object"] == "payment_intent" else obj["payment_intent"]
        book = Catalog.default().get(obj.get("metadata", {}).get("item_id") or "1")
        state = obj["status"] if obj["object"] == "payment_intent" else "succeeded"
        found.append(intent(pi, status=state, item=book.id, amount=book.amount))
    return found


def test_the_fixtures_move_orders_as_their_names_say(world, gateway):
    gateway.intents.update({i["id"]: i for i in fixture_intents()})
    for path in FIXTURES:
        payload = path.read_bytes()
        assert world.handle(payload, sign(payload, SECRET))["handled"] is True, path.stem
    statuses = {o["payment_intent"][7:11]: o["status"] for o in world.ledger.list_orders()}
    assert statuses == {
        "Sucd": "paid",
        "Proc": "processing",
        "Fail": "failed",
        "Cncl": "canceled",
        "Rfnd": "refunded",
        "Part": "partially_refunded",
        "Disp": "disputed",
    }
    failed = world.ledger.get_order("pi_3QfxFailB7WZ01zgkW0fixture")
    assert failed["failure_reason"].startswith("card_declined/insufficient_funds")
