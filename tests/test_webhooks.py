"""WebhookReceiver: signatures, duplicates, ordering, forgeries, crashes (fake gateway).

The receiver's ledger is SQLite, then PostgreSQL (the ``database_url`` fixture): the duplicate,
concurrency and crash tests hold on both.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from stripe_fakes import SHOP, FakeGateway, charge, dispute, event, intent

from bookpay.catalog import Catalog
from bookpay.config import Settings
from bookpay.errors import (
    BookpayError,
    ConfigError,
    StripeUnavailable,
    UnknownToBookpay,
    UsageError,
    WebhookSignatureError,
)
from bookpay.fulfilment import Fulfiller
from bookpay.ledger import open_ledger, status_of_intent
from bookpay.replay import FIXTURES_DIR
from bookpay.webhooks import WebhookReceiver, sign

SECRET = "whsec_test_current"
OLD_SECRET = "whsec_test_previous"
# Stripe's example objects, vendored with their licence (tests/reference/stripe/README.md).
STRIPE_EXAMPLES = Path(__file__).resolve().parent / "reference" / "stripe" / "fixtures3.json"


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


def signed_event(**changes) -> bytes:
    """A payment_intent.succeeded event with top-level fields replaced (or removed by None)."""
    evt = event("payment_intent.succeeded", intent(), "evt_bad")
    for name, value in changes.items():
        if value is None:
            evt.pop(name, None)
        else:
            evt[name] = value
    return json.dumps(evt).encode()


def with_object(kind: str, **fields) -> bytes:
    """A ``kind`` event whose data.object has ``fields`` replaced."""
    obj = {**(intent() if kind.startswith("payment_intent") else charge()), **fields}
    return json.dumps(event(kind, obj, "evt_bad")).encode()


NOT_EVENTS_AT_ALL = {
    "not-json": b"not json",
    "array": b"[1, 2]",
    "number": b"42",
    "nested-2000-deep": b"[" * 2000 + b"]" * 2000,
    "object-nested-2000-deep": b'{"id": "evt_deep", "data": '
    + b'{"a": ' * 2000
    + b"1"
    + b"}" * 2001,
    "huge-integer": b'{"id": "evt_x", "created": ' + b"9" * 5000 + b"}",
    "no-id": b'{"type": "payment_intent.succeeded"}',
    "id-too-long": signed_event(id="evt_" + "x" * 300),
    "id-not-a-string": signed_event(id={"id": "evt_1"}),
    "id-lone-surrogate": signed_event(id="evt_\ud800"),
    "id-with-newline": signed_event(id="evt_1\nINFO forged log line"),
}


def _twice(member: str, first: str) -> bytes:
    """A signed succeeded event with ``first`` put just before its ``member``, same key."""
    text = json.dumps(event("payment_intent.succeeded", intent(), "evt_twice"))
    assert member in text
    return text.replace(member, f"{first}, {member}", 1).encode()


# Stripe never sends a key twice in one object; a body that does can be read two ways (Python
# keeps the last, other parsers the first), so which event, or which object, it names is unsure.
NOT_EVENTS_AT_ALL.update(
    {
        "type-twice": _twice('"type": "payment_intent.succeeded"', '"type": "customer.created"'),
        "id-twice": _twice('"id": "evt_twice"', '"id": "evt_other"'),
        "object-id-twice": _twice('"id": "pi_1"', '"id": "pi_other"'),
    }
)


@pytest.mark.parametrize("body", NOT_EVENTS_AT_ALL.values(), ids=NOT_EVENTS_AT_ALL.keys())
def test_a_signed_body_without_a_usable_id_is_a_400_and_logged(world, body, caplog):
    with pytest.raises(UsageError) as caught:
        deliver(world, None, body=body)
    assert (caught.value.http_status, caught.value.code) == (400, "invalid_event")
    assert world.ledger.event_count() == 0
    assert world.ledger.list_orders() == []
    [record] = [r for r in caplog.records if r.name == "bookpay.webhooks"]
    assert record.getMessage().startswith("refused a signed webhook event: ")


MALFORMED_EVENTS = {
    "no-type": (signed_event(type=None), "its type is missing"),
    "type-not-a-string": (signed_event(type=["payment_intent.succeeded"]), "its type is missing"),
    "created-10^20": (signed_event(created=10**20), "created is not a Unix timestamp"),
    "created-string": (signed_event(created="yesterday"), "created is not a Unix timestamp"),
    "created-missing": (signed_event(created=None), "created is not a Unix timestamp"),
    "livemode-string": (signed_event(livemode="no"), "livemode is not true or false"),
    "data-string": (signed_event(data="pi_1"), "data.object is not an object"),
    "data-list": (signed_event(data=[intent()]), "data.object is not an object"),
    "data-number": (signed_event(data=7), "data.object is not an object"),
    "object-string": (signed_event(data={"object": "pi_1"}), "data.object is not an object"),
    "object-of-another-kind": (
        with_object("payment_intent.succeeded", object="charge"),
        "data.object is not a payment_intent",
    ),
    "object-id-surrogate": (
        with_object("payment_intent.succeeded", id="pi_\udfff"),
        "data.object.id is not a payment_intent id",
    ),
    "last_payment_error-string": (
        with_object("payment_intent.payment_failed", last_payment_error="declined"),
        "data.object.last_payment_error is malformed",
    ),
    "amount_refunded-x": (
        with_object("charge.refunded", amount_refunded="x"),
        "data.object.amount_refunded is malformed",
    ),
    "amount_refunded-10^20": (
        with_object("charge.refunded", amount_refunded=10**20),
        "data.object.amount_refunded is malformed",
    ),
    "amount_refunded-negative": (
        with_object("charge.refunded", amount_refunded=-5),
        "data.object.amount_refunded is malformed",
    ),
    "refunded-string": (
        with_object("charge.refunded", refunded="yes"),
        "data.object.refunded is malformed",
    ),
    "payment_intent-number": (
        with_object("charge.refunded", payment_intent=12),
        "data.object.payment_intent is malformed",
    ),
}


@pytest.mark.parametrize(("body", "reason"), MALFORMED_EVENTS.values(), ids=MALFORMED_EVENTS.keys())
def test_a_malformed_event_is_a_400_and_recorded_as_refused(world, gateway, body, reason):
    with pytest.raises(UsageError) as caught:
        deliver(world, None, body=body)
    assert (caught.value.http_status, caught.value.code) == (400, "invalid_event")
    assert reason in caught.value.message
    recorded = world.ledger.get_event("evt_bad")
    assert recorded["handled"] is False
    assert recorded["processed_at"] is not None
    assert recorded["outcome"].startswith("refused: ") and reason in recorded["outcome"]
    assert world.ledger.list_orders() == []
    assert gateway.asked == []  # nothing malformed is looked up


def test_a_refused_event_id_already_processed_keeps_its_record(world):
    good = event("payment_intent.succeeded", intent(), "evt_bad")
    deliver(world, good)
    before = world.ledger.get_event("evt_bad")
    with pytest.raises(UsageError):
        deliver(world, None, body=signed_event(data="nonsense"))
    after = world.ledger.get_event("evt_bad")
    assert (after["outcome"], after["handled"]) == (before["outcome"], True)


def test_an_unhandled_event_type_needs_only_the_envelope(world):
    odd = event("customer.created", {"id": "cus_1", "object": "customer", "payment_intent": 5})
    answer = deliver(world, odd)
    assert (answer["handled"], answer["outcome"]) == (
        False,
        "ignored: not an event bookpay handles",
    )
    assert world.ledger.get_event(odd["id"])["payment_intent"] is None


def thin_event(kind: str, event_id: str) -> dict:
    """A thin event, as an event destination sends it (Stripe's API reference, v2 Event): an
    ISO 8601 ``created`` and a ``related_object``, no ``data.object``."""
    return {
        "id": event_id,
        "object": "v2.core.event",
        "type": kind,
        "livemode": False,
        "created": "2024-09-17T06:20:52.246Z",
        "context": None,
        "related_object": {"id": "ed_test_1", "type": "v2.core.event_destination", "url": "/"},
    }


UNHANDLED_ODDLY_SHAPED = {
    "thin-ping": thin_event("v2.core.event_destination.ping", "evt_test_thin_ping"),
    # A type with brackets, as Stripe names some of its events (thin ones, so far).
    "bracketed-type": thin_event(
        "v2.core.account[configuration.merchant].capability_status_updated", "evt_test_bracket"
    ),
    "no-data-no-created": {"id": "evt_test_bare", "object": "event", "type": "customer.created"},
}


@pytest.mark.parametrize("evt", UNHANDLED_ODDLY_SHAPED.values(), ids=UNHANDLED_ODDLY_SHAPED.keys())
def test_an_event_bookpay_does_not_handle_is_acknowledged_whatever_its_envelope(
    world, gateway, evt
):
    """Nothing reads such an event but its id and type: refusing it (400) would only have Stripe
    send it again for days, and warn that the endpoint fails."""
    answer = deliver(world, evt)
    assert (answer["handled"], answer["outcome"]) == (
        False,
        "ignored: not an event bookpay handles",
    )
    recorded = world.ledger.get_event(evt["id"])
    assert (recorded["type"], recorded["handled"]) == (evt["type"], False)
    assert recorded["processed_at"] is not None and recorded["created"] is None
    assert gateway.asked == []
    assert world.ledger.list_orders() == []


@pytest.mark.parametrize(
    "header",
    [
        "t={stamp}=9,v1={sig}",  # a t= value containing '=': parsed as Stripe's libraries do
        "t={stamp},t=junk,v1={sig}",  # several t=: the first counts
        "t={stamp},v1=\u00e9\u00e9,v1={sig}",  # non-ASCII in the header
        "t={stamp},v1={sig},v0=\x00",  # a control character
        "t={stamp},v1={sig}," + "x" * 10000,  # far too long to be a signature
        "t=" + "9" * 400 + ",v1={sig}",  # a timestamp too large for anything
        "t=1e5,v1={sig}",
        "t,v1,{sig}",
        "=,=,=",
    ],
)
def test_odd_signature_headers_never_crash(world, header):
    stamp = int(time.time())
    sig = sign(BODY, SECRET, stamp).split("v1=")[1]
    header = header.format(stamp=stamp, sig=sig)
    try:
        answer = world.handle(BODY, header)
    except WebhookSignatureError as exc:
        assert exc.http_status == 400
    else:
        assert answer["received"] is True


def test_the_timestamp_checked_for_the_future_is_the_one_stripe_parsed(world):
    future = int(time.time()) + 3600
    sig = sign(BODY, SECRET, future).split("v1=")[1]
    with pytest.raises(WebhookSignatureError, match="in the future"):
        world.handle(BODY, f"t={future}=0,v1={sig}")


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


def _mode_events(livemode: bool) -> list[dict]:
    """One event of each family bookpay handles (its objects all known to the fake Stripe)."""
    return [
        {**event(kind, obj, f"evt_{kind}_{livemode}"), "livemode": livemode}
        for kind, obj in (
            ("payment_intent.succeeded", intent()),
            ("payment_intent.processing", intent()),
            ("charge.refunded", charge(refunded=2300)),
            ("charge.dispute.created", dispute()),
        )
    ]


def test_a_live_event_reaching_a_test_mode_shop_is_ignored_without_asking_stripe(world, gateway):
    """Real Stripe answers 404 for an object of the other mode, which would have read "Stripe
    does not know pi_..."; the event says its mode, so it is ignored for that, and never acted
    on however its ids happen to match."""
    gateway.charges["ch_pi_1"] = charge(refunded=2300)
    gateway.disputes["dp_1"] = dispute(pi="pi_1")
    for evt in _mode_events(livemode=True):
        answer = deliver(world, evt)
        assert (answer["handled"], answer["outcome"]) == (
            False,
            "ignored: a live-mode event, and this shop uses test-mode keys "
            "(Stripe keeps live and test objects apart)",
        )
    assert gateway.asked == []
    assert world.ledger.list_orders() == []
    assert world.ledger.fulfilment_count() == 0
    # Its own mode's events are handled as ever.
    assert deliver(world, _mode_events(livemode=False)[0])["handled"] is True


def test_a_test_event_reaching_a_live_shop_is_ignored_without_asking_stripe(tmp_path, gateway):
    settings = Settings(
        data_dir=tmp_path / "d",
        secret_key="sk_live_51Hlivelivelivelive1234",
        publishable_key="pk_live_51Hlivelivelivelive9876",
        allow_live=True,
        webhook_secrets=(SECRET,),
        shop_id=SHOP,
    )
    ledger = open_ledger(settings)
    fulfiller = Fulfiller(ledger, gateway, Catalog.default(), settings)
    try:
        receiver = WebhookReceiver(settings, ledger, fulfiller)
        answer = deliver(receiver, _mode_events(livemode=False)[0])
        assert (answer["handled"], answer["outcome"]) == (
            False,
            "ignored: a test-mode event, and this shop uses live-mode keys "
            "(Stripe keeps live and test objects apart)",
        )
        assert gateway.asked == []
        assert deliver(receiver, _mode_events(livemode=True)[0])["handled"] is True
    finally:
        fulfiller.close()
        ledger.close()


def test_an_event_of_another_api_version_is_handled_from_what_stripe_has(world, gateway):
    """A webhook endpoint (or `stripe listen` without --latest) sends events in the account's
    API version, not the one bookpay pins: an older PaymentIntent (a ``charges`` list, no
    ``latest_charge``) or dispute (no ``payment_intent``) is only a copy; the objects are
    retrieved in bookpay's own version."""
    old = {k: v for k, v in intent().items() if k != "latest_charge"}
    old["charges"] = {"object": "list", "data": [{"id": "ch_pi_1"}], "has_more": False}
    answer = deliver(world, {**event("payment_intent.succeeded", old), "api_version": "2020-08-27"})
    assert (answer["handled"], answer["outcome"]) == (True, "fulfilled")
    gateway.charges["ch_pi_1"] = charge()
    gateway.disputes["dp_1"] = dispute()  # no payment_intent: found through its charge
    disputed = {**event("charge.dispute.created", dispute()), "api_version": "2019-12-03"}
    assert deliver(world, disputed)["handled"] is True
    assert world.ledger.get_order("pi_1")["status"] == "disputed"


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
    gateway.charges["ch_pi_theirs"] = charge("pi_theirs", refunded=2300)
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


def test_a_canceled_event_for_a_succeeded_intent_is_handled_and_leaves_the_order_paid(world):
    """The README's word: Stripe's PaymentIntent is at least what a `.canceled` claims (a paid
    order ranks above a canceled one), so the event is handled, and the order stays paid."""
    deliver(world, event("payment_intent.succeeded", intent()))
    answer = deliver(world, event("payment_intent.canceled", intent(status="canceled")))
    order = world.ledger.get_order("pi_1")
    assert answer["handled"] is True
    assert answer["outcome"] == f"order {order['id']} is paid"
    assert (order["status"], world.ledger.fulfilment_count()) == ("paid", 1)


def test_a_canceled_event_marks_the_quote_canceled_as_stripe_has_it_once(world, gateway):
    """Two tabs of one cart: the second's PaymentIntent canceled (by Stripe, or in the
    Dashboard) is marked so from the PaymentIntent retrieved, never the event's copy, and the
    attempts beside the first leave it out; a second delivery keeps the first mark."""
    from bookpay.quote import Quote, QuoteLine

    ledger = world.ledger
    cart = ledger.create_cart("c" * 64)
    quote = Quote((QuoteLine("1", "One", 1, 2300),), "usd")
    for n in (1, 2):
        ledger.record_quote(f"pi_{n}", f"ord_q{n}", quote, attempt_id=f"a{n}", cart_id=cart["id"])
    # The event's copy says canceled; Stripe says it waits for 3-D Secure: nothing marked.
    gateway.intents["pi_2"] = intent("pi_2", status="requires_action")
    forged = deliver(world, event("payment_intent.canceled", intent("pi_2", "canceled"), "evt_c1"))
    assert forged["handled"] is False
    assert ledger.quote_for("pi_2")["canceled_at"] is None
    assert [a["payment_intent"] for a in ledger.attempts_beside("pi_1")] == ["pi_2"]
    gateway.intents["pi_2"] = intent("pi_2", status="canceled")
    answer = deliver(world, event("payment_intent.canceled", intent("pi_2", "canceled"), "evt_c2"))
    assert answer["handled"] is True
    marked = ledger.quote_for("pi_2")["canceled_at"]
    assert marked is not None
    assert ledger.attempts_beside("pi_1") == []  # not asked of Stripe again
    time.sleep(0.002)  # a later mark would carry a later time
    deliver(world, event("payment_intent.canceled", intent("pi_2", "canceled"), "evt_c3"))
    assert ledger.quote_for("pi_2")["canceled_at"] == marked


def test_partial_then_full_refund_as_stripes_charge_says(world, gateway):
    deliver(world, event("payment_intent.succeeded", intent()))
    gateway.charges["ch_pi_1"] = charge(refunded=1000)
    deliver(world, event("charge.refunded", charge(refunded=1000), "evt_r1"))
    order = world.ledger.get_order("pi_1")
    assert (order["status"], order["amount_refunded"]) == ("partially_refunded", 1000)
    gateway.charges["ch_pi_1"] = charge(refunded=2300)
    deliver(world, event("charge.refunded", charge(refunded=2300), "evt_r2"))
    order = world.ledger.get_order("pi_1")
    assert (order["status"], order["amount_refunded"]) == ("refunded", 2300)
    # A late partial refund event cannot undo the full refund.
    deliver(world, event("charge.refunded", charge(refunded=1000), "evt_r0"))
    assert world.ledger.get_order("pi_1")["status"] == "refunded"


def test_a_refund_the_event_claims_but_stripe_has_not_made_changes_nothing(world, gateway):
    deliver(world, event("payment_intent.succeeded", intent()))
    gateway.charges["ch_pi_1"] = charge(refunded=0)  # Stripe: nothing refunded
    answer = deliver(world, event("charge.refunded", charge(refunded=2300)))
    order = world.ledger.get_order("pi_1")
    assert (answer["handled"], answer["outcome"]) == (True, f"order {order['id']} is paid")
    assert (order["status"], order["amount_refunded"]) == ("paid", 0)
    # The event's figures are not Stripe's: Stripe's partial refund wins over a claimed full one.
    gateway.charges["ch_pi_1"] = charge(refunded=500)
    deliver(world, event("charge.refunded", charge(refunded=2300), "evt_claims_all"))
    order = world.ledger.get_order("pi_1")
    assert (order["status"], order["amount_refunded"]) == ("partially_refunded", 500)


def test_a_refund_that_failed_takes_the_order_back_and_a_stale_event_rereads_stripe(world, gateway):
    deliver(world, event("payment_intent.succeeded", intent()))
    gateway.charges["ch_pi_1"] = charge(refunded=2300)
    deliver(world, event("charge.refunded", charge(refunded=2300), "evt_r1"))
    assert world.ledger.get_order("pi_1")["status"] == "refunded"
    gateway.charges["ch_pi_1"] = charge(refunded=0)  # the refund failed
    failed = {"id": "re_1", "object": "refund", "charge": "ch_pi_1", "amount": 2300}
    gateway.refunds["re_1"] = {**failed, "status": "failed"}
    deliver(world, event("refund.failed", failed, "evt_failed"))
    order = world.ledger.get_order("pi_1")
    assert (order["status"], order["amount_refunded"]) == ("paid", 0)
    # The first event again, late: Stripe's Charge says nothing is refunded now.
    deliver(world, event("charge.refunded", charge(refunded=2300), "evt_r1_late"))
    assert world.ledger.get_order("pi_1")["status"] == "paid"


def test_a_refund_of_a_charge_stripe_does_not_know_is_ignored(world):
    deliver(world, event("payment_intent.succeeded", intent()))
    forged = {**charge(refunded=2300), "id": "ch_forged"}  # Stripe has pi_1's own Charge
    answer = deliver(world, event("charge.refunded", forged))
    assert (answer["handled"], answer["outcome"]) == (
        False,
        "ignored: Stripe does not know ch_forged",
    )
    assert world.ledger.get_order("pi_1")["status"] == "paid"


@pytest.mark.parametrize("kind", ["charge.refund.updated", "refund.updated", "refund.failed"])
def test_refund_events_follow_the_refund_and_charge_stripe_has(world, gateway, kind):
    deliver(world, event("payment_intent.succeeded", intent()))
    gateway.charges["ch_pi_1"] = charge(refunded=700)
    gateway.refunds["re_1"] = {"id": "re_1", "object": "refund", "charge": "ch_pi_1", "amount": 700}
    claimed = {"id": "re_1", "object": "refund", "charge": "ch_forged", "amount": 2300}
    answer = deliver(world, event(kind, claimed))
    assert answer["handled"] is True
    # Never the event's ch_forged; the Charge is read again once the refunds are committed.
    assert gateway.asked[-4:] == ["re_1", "ch_pi_1", "pi_1", "ch_pi_1"]
    order = world.ledger.get_order("pi_1")
    assert (order["status"], order["amount_refunded"]) == ("partially_refunded", 700)
    forged = {"id": "re_forged", "object": "refund", "charge": "ch_pi_1", "amount": 2300}
    answer = deliver(world, event(kind, forged))
    assert answer["outcome"] == "ignored: Stripe does not know re_forged"


def test_an_order_refunded_in_full_before_succeeded_is_never_fulfilled(world, gateway):
    paid_then_refunded = charge(refunded=2300)
    gateway.intents["pi_1"]["latest_charge"] = paid_then_refunded
    gateway.charges["ch_pi_1"] = paid_then_refunded
    deliver(world, event("charge.refunded", charge(refunded=2300)))
    assert world.ledger.get_order("pi_1")["status"] == "refunded"
    answer = deliver(world, event("payment_intent.succeeded", intent()))
    assert (answer["handled"], answer["outcome"]) == (
        False,
        "refunded: refunded in full before it was fulfilled",
    )
    order = world.ledger.get_order("pi_1")
    assert order["status"] == "refunded"
    assert order["fulfilled_at"] is None
    assert world.ledger.fulfilment_count() == 0
    assert world.ledger.receipts() == []
    assert world.fulfiller.drain(5)
    assert outbox(world) == []


def test_a_succeeded_event_for_an_order_refunded_in_full_first_sends_no_receipt(world, gateway):
    # The succeeded event comes first, but Stripe already says the charge is refunded in full.
    gateway.intents["pi_1"]["latest_charge"] = charge(refunded=2300)
    answer = deliver(world, event("payment_intent.succeeded", intent()))
    assert answer["outcome"].startswith("refunded")
    order = world.ledger.get_order("pi_1")
    assert (order["status"], order["amount_refunded"], order["fulfilled_at"]) == (
        "refunded",
        2300,
        None,
    )
    assert world.ledger.receipts() == []


def test_a_partial_refund_before_succeeded_is_still_fulfilled(world, gateway):
    gateway.intents["pi_1"]["latest_charge"] = charge(refunded=300)
    answer = deliver(world, event("payment_intent.succeeded", intent()))
    assert answer["outcome"] == "fulfilled"
    assert world.fulfiller.drain(5)
    assert outbox(world) == ["pi_1.eml"]


def test_a_fulfilled_order_refunded_later_is_not_fulfilled_again(world, gateway):
    deliver(world, event("payment_intent.succeeded", intent()))
    gateway.intents["pi_1"]["latest_charge"] = charge(refunded=2300)
    again = deliver(world, event("payment_intent.succeeded", intent(), "evt_again"))
    assert again["outcome"] == "already_fulfilled"
    assert world.ledger.fulfilment_count() == 1


def refunded_by(gateway, pi, *refunds: tuple[str, int, str]) -> dict:
    """Stripe's Charge of ``pi`` with these (id, amount, status) refunds, each also a Refund
    Stripe has; the PaymentIntent's latest_charge is that Charge."""
    made = charge(pi, amount=gateway.intents[pi]["amount"])
    made["refunds"]["data"] = [
        {"id": rid, "object": "refund", "amount": amt, "status": status, "charge": made["id"]}
        for rid, amt, status in refunds
    ]
    made["amount_refunded"] = sum(amt for _, amt, status in refunds if status != "failed")
    made["refunded"] = made["amount_refunded"] >= made["amount"]
    gateway.charges[made["id"]] = made
    gateway.intents[pi]["latest_charge"] = made
    for refund in made["refunds"]["data"]:
        gateway.refunds[refund["id"]] = refund
    return made


def refunded_first(world, gateway, pi="pi_1", *refunds: tuple[str, int]) -> None:
    """An order refunded in full (by ``refunds``) before its succeeded event was handled."""
    gateway.intents.setdefault(pi, intent(pi))
    made = refunded_by(gateway, pi, *[(rid, amt, "succeeded") for rid, amt in refunds])
    deliver(world, event("charge.refunded", made, f"evt_refunded_{pi}"))
    answer = deliver(world, event("payment_intent.succeeded", intent(pi)))
    assert answer["outcome"] == "refunded: refunded in full before it was fulfilled"
    assert world.ledger.get_order(pi)["not_fulfilled_at"] is not None


def test_an_order_refunded_in_full_first_is_fulfilled_once_its_refund_fails(world, gateway):
    """The refund fails: the shop keeps the money, so the order is fulfilled after all, from
    the refund event (no succeeded event comes again), once however many events arrive."""
    from bookpay.ledger.check import check_ledger

    refunded_first(world, gateway, "pi_1", ("re_1", 2300))
    refunded_by(gateway, "pi_1", ("re_1", 2300, "failed"))
    failed = {"id": "re_1", "object": "refund", "charge": "ch_pi_1", "amount": 2300}
    answer = deliver(world, event("refund.failed", failed, "evt_failed"))
    order = world.ledger.get_order("pi_1")
    assert (answer["handled"], answer["outcome"]) == (
        True,
        f"order {order['id']} is paid; fulfilled: its refund in full failed",
    )
    assert (order["status"], order["amount_refunded"]) == ("paid", 0)
    assert order["fulfilled_at"] is not None and order["not_fulfilled_at"] is None
    assert order["note"] == "fulfilled after its refund in full failed: the shop kept the money"
    # Redelivered, another event for the same failure, the succeeded event again: nothing new.
    deliver(world, event("refund.failed", failed, "evt_failed"))
    deliver(world, event("charge.refund.updated", failed, "evt_updated"))
    again = deliver(world, event("payment_intent.succeeded", intent(), "evt_succeeded_again"))
    assert again["outcome"] == "already_fulfilled"
    assert world.ledger.fulfilment_count() == 1
    assert len(world.ledger.receipts()) == 1
    assert world.fulfiller.drain(5)
    assert outbox(world) == ["pi_1.eml"]
    report = check_ledger(world.ledger)
    assert report.ok and not [w.name for w in report.warnings if w.count]


def test_a_partial_refund_of_a_full_one_that_fails_fulfils_the_order(world, gateway):
    """Refunded in full by two refunds, one of which then fails: part of the money is kept."""
    refunded_first(world, gateway, "pi_1", ("re_a", 1300), ("re_b", 1000))
    refunded_by(gateway, "pi_1", ("re_a", 1300, "succeeded"), ("re_b", 1000, "failed"))
    failed = {"id": "re_b", "object": "refund", "charge": "ch_pi_1", "amount": 1000}
    answer = deliver(world, event("refund.failed", failed, "evt_failed_b"))
    assert answer["outcome"].endswith("is partially refunded; fulfilled: its refund in full failed")
    order = world.ledger.get_order("pi_1")
    assert (order["status"], order["amount_refunded"]) == ("partially_refunded", 1300)
    assert order["fulfilled_at"] is not None
    assert world.ledger.fulfilment_count() == 1


def test_a_refund_that_fails_fulfils_no_order_refused_for_another_reason(world, gateway):
    """A price mismatch refused for good, refunded, its refund failing; and an order waiting for
    its succeeded event whose partial refund failed: neither is fulfilled by the refund event."""
    gateway.intents["pi_cheap"] = intent("pi_cheap", amount=1)
    deliver(world, event("payment_intent.succeeded", intent("pi_cheap")))
    refused = world.ledger.get_order("pi_cheap")["note"]
    assert refused.startswith("not fulfilled: amount 1 usd")
    gateway.intents["pi_2"] = intent("pi_2")
    for pi, amount in (("pi_cheap", 1), ("pi_2", 700)):
        made = refunded_by(gateway, pi, (f"re_{pi}", amount, "succeeded"))
        deliver(world, event("charge.refunded", made, f"evt_refunded_{pi}"))
        refunded_by(gateway, pi, (f"re_{pi}", amount, "failed"))
        failed = {"id": f"re_{pi}", "object": "refund", "charge": f"ch_{pi}", "amount": amount}
        answer = deliver(world, event("refund.failed", failed, f"evt_failed_{pi}"))
        assert answer["handled"] is True and "fulfilled" not in answer["outcome"]
    cheap = world.ledger.get_order("pi_cheap")
    assert (cheap["status"], cheap["fulfilled_at"], cheap["note"]) == ("paid", None, refused)
    assert cheap["not_fulfilled_at"] is not None
    assert world.ledger.get_order("pi_2")["fulfilled_at"] is None
    assert world.ledger.fulfilment_count() == 0


def test_a_refunded_first_order_whose_refund_failed_while_disputed_is_fulfilled_once_won(
    world, gateway
):
    """Disputed when its refund fails: a person decides, nothing is fulfilled. The dispute won,
    the shop keeps the money: the order is fulfilled then (its note rewritten by the dispute)."""
    refunded_first(world, gateway, "pi_1", ("re_1", 2300))
    gateway.disputes["dp_1"] = dispute(pi="pi_1")
    deliver(world, event("charge.dispute.created", dispute(), "evt_dispute"))
    refunded_by(gateway, "pi_1", ("re_1", 2300, "failed"))
    failed = {"id": "re_1", "object": "refund", "charge": "ch_pi_1", "amount": 2300}
    deliver(world, event("refund.failed", failed, "evt_failed"))
    order = world.ledger.get_order("pi_1")
    assert (order["status"], order["fulfilled_at"]) == ("disputed", None)
    gateway.disputes["dp_1"] = dispute(pi="pi_1", status="won")
    answer = deliver(world, event("charge.dispute.closed", dispute(status="won"), "evt_won"))
    assert answer["outcome"].endswith("is paid; fulfilled: its refund in full failed")
    order = world.ledger.get_order("pi_1")
    assert order["status"] == "paid" and order["fulfilled_at"] is not None
    assert order["note"] == "dispute dp_1: fraudulent, won"
    assert world.ledger.fulfilment_count() == 1


@pytest.mark.parametrize("first", ["refunded", "disputed"])
def test_check_finds_an_order_refused_first_and_kept_after_a_dispute_rewrote_its_note(
    world, gateway, first
):
    """As an earlier version (or a handler that died before ``Fulfiller.kept``) left it:
    refunded in full (or disputed) before it was fulfilled, then a dispute's note replaced "not
    fulfilled: ...", and the refund failed (or the dispute closed in the shop's favour): paid,
    never fulfilled. `ledger check` still reports it: why the fulfilment was refused is kept on
    the order (``fulfilment_refused``), not read from its note."""
    from bookpay.ledger.check import check_ledger

    if first == "refunded":
        refunded_first(world, gateway, "pi_1", ("re_1", 2300))
        now = refunded_by(gateway, "pi_1", ("re_1", 2300, "failed"))
        world.ledger.record_refunds(gateway.intents["pi_1"], now)
        closed = dispute(pi="pi_1", status="warning_closed")
    else:
        now = gateway.charges["ch_pi_1"] = charge()
        gateway.disputes["dp_1"] = dispute(pi="pi_1")
        deliver(world, event("charge.dispute.created", dispute(pi="pi_1"), "evt_dispute"))
        answer = deliver(world, event("payment_intent.succeeded", intent()))
        assert answer["outcome"] == "disputed: disputed before it was fulfilled"
        closed = dispute(pi="pi_1", status="won")
    # Recorded straight into the ledger: no event handler, so no Fulfiller.kept.
    world.ledger.record_dispute(intent(), closed, now)
    order = world.ledger.get_order("pi_1")
    assert (order["status"], order["fulfilled_at"]) == ("paid", None)
    assert order["note"].startswith("dispute dp_1: fraudulent, ")  # the refusal's note is gone
    found = [f.name for f in check_ledger(world.ledger).problems if order["id"] in f.examples]
    assert len(found) == 1 and found[0].startswith("orders refunded in full or disputed before")
    again = deliver(world, event("payment_intent.succeeded", intent(), "evt_succeeded_again"))
    assert again["outcome"] == "fulfilled"
    assert clean(world)


def clean(world) -> bool:
    from bookpay.ledger.check import check_ledger

    return check_ledger(world.ledger).ok


def test_a_succeeded_that_read_a_refund_since_failed_rereads_the_charge_and_fulfils(world, gateway):
    """A race: the succeeded handler retrieved the PaymentIntent while its Charge was refunded
    in full; the refund then failed, and the refund.failed handler committed first (nothing to
    fulfil yet). The succeeded handler re-reads the Charge after its commit: paid, fulfilled."""
    stale = refunded_by(gateway, "pi_1", ("re_1", 2300, "succeeded"))  # what succeeded read
    refunded_by(gateway, "pi_1", ("re_1", 2300, "failed"))  # Stripe now
    gateway.intents["pi_1"]["latest_charge"] = stale
    failed = {"id": "re_1", "object": "refund", "charge": "ch_pi_1", "amount": 2300}
    deliver(world, event("refund.failed", failed, "evt_failed"))
    assert world.ledger.get_order("pi_1")["status"] == "paid"
    answer = deliver(world, event("payment_intent.succeeded", intent()))
    assert answer["outcome"] == "refunded: refunded in full before it was fulfilled"
    order = world.ledger.get_order("pi_1")
    assert (order["status"], order["amount_refunded"]) == ("paid", 0)
    assert order["fulfilled_at"] is not None and order["not_fulfilled_at"] is None
    assert world.ledger.fulfilment_count() == 1 and len(world.ledger.receipts()) == 1
    assert clean(world)


def test_a_succeeded_that_read_the_charge_before_its_full_refund_does_not_fulfil(world, gateway):
    """A race: the succeeded handler retrieved the PaymentIntent before its Charge was refunded
    in full, and charge.refunded committed first: the order is refunded first, not fulfilled
    (no receipt, no tax transaction); that refund failing later fulfils it."""
    made = refunded_by(gateway, "pi_1", ("re_1", 2300, "succeeded"))
    gateway.intents["pi_1"]["latest_charge"] = {"id": "ch_pi_1"}  # what succeeded read
    deliver(world, event("charge.refunded", made, "evt_refunded"))
    answer = deliver(world, event("payment_intent.succeeded", intent()))
    assert (answer["handled"], answer["outcome"]) == (
        False,
        "refunded: refunded in full before it was fulfilled",
    )
    order = world.ledger.get_order("pi_1")
    assert (order["status"], order["amount_refunded"], order["fulfilled_at"]) == (
        "refunded",
        2300,
        None,
    )
    assert order["note"] == "not fulfilled: refunded in full before it was fulfilled"
    assert world.ledger.fulfilment_count() == 0 and world.ledger.receipts() == []
    assert clean(world)
    refunded_by(gateway, "pi_1", ("re_1", 2300, "failed"))
    failed = {"id": "re_1", "object": "refund", "charge": "ch_pi_1", "amount": 2300}
    answer = deliver(world, event("refund.failed", failed, "evt_failed"))
    assert answer["outcome"].endswith("is paid; fulfilled: its refund in full failed")
    assert world.ledger.fulfilment_count() == 1


@pytest.mark.parametrize("status", ["needs_response", "lost"])
def test_a_late_succeeded_does_not_fulfil_an_order_disputed_first(world, gateway, status):
    """Stripe retries a succeeded event for days: one that comes after a dispute was opened (or
    lost) records the order not fulfilled; no receipt, no tax transaction."""
    gateway.charges["ch_pi_1"] = charge()
    gateway.disputes["dp_1"] = dispute(pi="pi_1", status=status)
    kind = "charge.dispute.closed" if status == "lost" else "charge.dispute.created"
    deliver(world, event(kind, dispute(pi="pi_1"), "evt_dispute"))
    answer = deliver(world, event("payment_intent.succeeded", intent()))
    assert (answer["handled"], answer["outcome"]) == (
        False,
        "disputed: disputed before it was fulfilled",
    )
    order = world.ledger.get_order("pi_1")
    assert order["status"] == ("dispute_lost" if status == "lost" else "disputed")
    assert (order["fulfilled_at"], order["note"]) == (
        None,
        "not fulfilled: disputed before it was fulfilled",
    )
    assert order["not_fulfilled_at"] is not None
    assert world.ledger.fulfilment_count() == 0 and world.ledger.receipts() == []
    assert clean(world)


def test_an_order_disputed_before_it_was_fulfilled_is_fulfilled_once_the_dispute_is_won(
    world, gateway
):
    gateway.charges["ch_pi_1"] = charge()
    gateway.disputes["dp_1"] = dispute(pi="pi_1")
    deliver(world, event("charge.dispute.created", dispute(pi="pi_1"), "evt_dispute"))
    deliver(world, event("payment_intent.succeeded", intent()))
    assert world.ledger.fulfilment_count() == 0
    gateway.disputes["dp_1"] = dispute(pi="pi_1", status="won")
    answer = deliver(world, event("charge.dispute.closed", dispute(pi="pi_1"), "evt_won"))
    assert answer["outcome"].endswith("is paid; fulfilled: its dispute was won")
    order = world.ledger.get_order("pi_1")
    assert order["fulfilled_at"] is not None and order["not_fulfilled_at"] is None
    deliver(world, event("payment_intent.succeeded", intent(), "evt_succeeded_again"))
    assert world.ledger.fulfilment_count() == 1 and len(world.ledger.receipts()) == 1
    assert clean(world)


def test_a_won_dispute_fulfils_an_order_whose_note_still_says_disputed_first(world, gateway):
    """``Fulfiller.kept`` fulfils an order refused as disputed first once its dispute is won."""
    from bookpay.ledger.model import DISPUTED_FIRST, REFUSED_DISPUTED_FIRST

    gateway.charges["ch_pi_1"] = charge()
    world.ledger.record_intent(intent(), note=DISPUTED_FIRST, refused=REFUSED_DISPUTED_FIRST)
    kept = world.fulfiller.kept(intent(), charge())
    assert (kept.outcome, kept.reason) == ("fulfilled", "its dispute was won")
    assert world.ledger.get_order("pi_1")["fulfilled_at"] is not None


def test_a_dispute_stripe_has_marks_the_order_disputed_and_a_refund_does_not_hide_it(
    world, gateway
):
    deliver(world, event("payment_intent.succeeded", intent()))
    gateway.disputes["dp_1"] = dispute(pi="pi_1", reason="fraudulent")
    claimed = dispute(reason="product_not_received")  # the event's copy is not read
    answer = deliver(world, event("charge.dispute.created", claimed))
    assert answer["handled"] is True
    order = world.ledger.get_order("pi_1")
    assert order["status"] == "disputed"
    assert order["note"] == "dispute dp_1: fraudulent"
    gateway.charges["ch_pi_1"] = charge(refunded=2300)
    deliver(world, event("charge.refunded", charge(refunded=2300)))
    assert world.ledger.get_order("pi_1")["status"] == "disputed"


def test_a_lost_dispute_appealed_is_open_again_and_won_after_its_appeal(world, gateway):
    """Every status stripe-python lists is handled: an appeal reopens a lost chargeback (the
    order disputed again), and the appeal won ends won (the Charge decides: paid)."""
    gateway.charges["ch_pi_1"] = charge()
    deliver(world, event("payment_intent.succeeded", intent()))
    gateway.disputes["dp_1"] = dispute(pi="pi_1", status="lost")
    deliver(world, event("charge.dispute.closed", dispute(), "evt_lost"))
    assert world.ledger.get_order("pi_1")["status"] == "dispute_lost"
    for status, event_id in (("appeal_needs_response", "e1"), ("appeal_under_review", "e2")):
        gateway.disputes["dp_1"] = dispute(pi="pi_1", status=status)
        answer = deliver(world, event("charge.dispute.updated", dispute(), event_id))
        assert answer["handled"] is True, answer["outcome"]
        order = world.ledger.get_order("pi_1")
        assert (order["status"], order["dispute_status"]) == ("disputed", status)
    assert order["note"] == "dispute dp_1: fraudulent"
    gateway.disputes["dp_1"] = dispute(pi="pi_1", status="won")
    deliver(world, event("charge.dispute.closed", dispute(), "evt_won"))
    order = world.ledger.get_order("pi_1")
    assert (order["status"], order["dispute_status"]) == ("paid", "won")
    assert order["note"] == "dispute dp_1: fraudulent, won"


def test_a_prevented_dispute_costs_nothing(world, gateway):
    gateway.charges["ch_pi_1"] = charge()
    deliver(world, event("payment_intent.succeeded", intent()))
    gateway.disputes["dp_1"] = dispute(pi="pi_1", status="prevented")
    answer = deliver(world, event("charge.dispute.closed", dispute()))
    assert (answer["handled"], answer["outcome"].endswith("is paid")) == (True, True)
    order = world.ledger.get_order("pi_1")
    assert (order["status"], order["dispute_status"]) == ("paid", "prevented")
    assert order["note"] == "dispute dp_1: fraudulent, prevented before it became a chargeback"


def test_a_dispute_status_bookpay_does_not_know_is_redelivered_not_forgotten(
    world, gateway, caplog
):
    """A status Stripe added since: a 503 (Stripe redelivers), nothing recorded from a guess,
    the event left unprocessed, an error logged; once bookpay knows it, the redelivery works."""
    deliver(world, event("payment_intent.succeeded", intent()))
    gateway.disputes["dp_1"] = dispute(pi="pi_1", status="arbitration_pending")
    with pytest.raises(UnknownToBookpay) as raised:
        deliver(world, event("charge.dispute.updated", dispute(), "evt_new"))
    assert raised.value.http_status == 503
    assert "'arbitration_pending'" in raised.value.message
    assert "does not know" in caplog.text
    assert world.ledger.get_event("evt_new")["processed_at"] is None
    order = world.ledger.get_order("pi_1")
    assert (order["status"], order["dispute_status"]) == ("paid", None)
    assert world.ledger.disputes_for(order["id"]) == []
    gateway.disputes["dp_1"] = dispute(pi="pi_1", status="needs_response")
    answer = deliver(world, event("charge.dispute.updated", dispute(), "evt_new"))
    assert (answer["handled"], answer["duplicate"]) == (True, False)


def test_the_note_tells_of_the_dispute_that_decides_not_the_last_one_named(world, gateway):
    gateway.charges["ch_pi_1"] = charge()
    deliver(world, event("payment_intent.succeeded", intent()))
    gateway.disputes["dp_A"] = dispute("dp_A", pi="pi_1", status="needs_response")
    gateway.disputes["dp_B"] = dispute("dp_B", pi="pi_1", reason="duplicate", status="won")
    deliver(world, event("charge.dispute.created", dispute("dp_A"), "evt_a"))
    deliver(world, event("charge.dispute.closed", dispute("dp_B"), "evt_b"))
    order = world.ledger.get_order("pi_1")
    assert (order["status"], order["dispute_status"]) == ("disputed", "needs_response")
    assert order["note"] == "dispute dp_A: fraudulent"
    gateway.disputes["dp_A"] = dispute("dp_A", pi="pi_1", status="lost")
    deliver(world, event("charge.dispute.closed", dispute("dp_A"), "evt_a2"))
    order = world.ledger.get_order("pi_1")
    assert (order["status"], order["note"]) == ("dispute_lost", "dispute dp_A: fraudulent, lost")


def test_a_dispute_stripe_does_not_have_changes_nothing(world):
    deliver(world, event("payment_intent.succeeded", intent()))
    answer = deliver(world, event("charge.dispute.created", dispute(pi="pi_1")))
    assert (answer["handled"], answer["outcome"]) == (False, "ignored: Stripe does not know dp_1")
    assert world.ledger.get_order("pi_1")["status"] == "paid"


def test_a_dispute_without_a_payment_intent_is_found_through_stripes_charge(world, gateway):
    deliver(world, event("payment_intent.succeeded", intent()))
    gateway.charges["ch_pi_1"] = charge()
    # Older API versions: the dispute names only its charge, possibly expanded.
    gateway.disputes["dp_3"] = dispute("dp_3", ch={"id": "ch_pi_1"}, reason="other")
    assert deliver(world, event("charge.dispute.created", dispute("dp_3")))["handled"] is True
    assert world.ledger.get_order("pi_1")["status"] == "disputed"
    gateway.disputes["dp_4"] = dispute("dp_4", ch={"nested": ["not", "an", "id"]})
    answer = deliver(world, event("charge.dispute.created", dispute("dp_4")))
    assert (answer["handled"], answer["outcome"]) == (False, "ignored: no PaymentIntent")


def test_a_dispute_of_a_charge_stripe_does_not_know_is_ignored(world, gateway):
    gateway.disputes["dp_2"] = dispute("dp_2", ch="ch_unknown")
    answer = deliver(world, event("charge.dispute.created", dispute("dp_2")))
    assert (answer["handled"], answer["outcome"]) == (
        False,
        "ignored: Stripe does not know ch_unknown",
    )


# Where an event is filed ------------------------------------------------------------------------


def two_paid_orders(world, gateway) -> None:
    """pi_1 (the real order, whose Charge Stripe has) and pi_u (another one), both paid."""
    gateway.intents["pi_u"] = intent("pi_u")
    for pi in ("pi_1", "pi_u"):
        deliver(world, event("payment_intent.succeeded", intent(pi)))


def timeline(world, pi) -> list[str]:
    return [e["id"] for e in world.ledger.events_for(pi)]


def test_an_event_is_filed_under_the_intent_stripes_objects_lead_to_not_its_copys(world, gateway):
    from bookpay.ledger.check import check_ledger

    two_paid_orders(world, gateway)
    gateway.charges["ch_pi_1"] = charge(refunded=1000)
    gateway.refunds["re_1"] = {"id": "re_1", "object": "refund", "charge": "ch_pi_1"}
    gateway.disputes["dp_1"] = dispute(pi="pi_1")
    edited = [  # signed, but each copy names pi_u
        event("charge.refunded", {**charge(refunded=1000), "payment_intent": "pi_u"}, "evt_ch"),
        event("refund.updated", {"id": "re_1", "object": "refund", "payment_intent": "pi_u"}),
        event("charge.dispute.created", dispute(pi="pi_u"), "evt_dp"),
    ]
    for evt in edited:
        assert deliver(world, evt)["handled"] is True
    assert timeline(world, "pi_u") == ["evt_payment_intent.succeeded_pi_u"]
    assert timeline(world, "pi_1")[1:] == [evt["id"] for evt in edited]
    assert world.ledger.get_order("pi_u")["status"] == "paid"
    order = world.ledger.get_order("pi_1")
    assert (order["status"], order["amount_refunded"]) == ("disputed", 1000)
    assert check_ledger(world.ledger).ok


def test_an_event_with_nothing_retrieved_is_filed_under_its_copys_intent(world, gateway):
    two_paid_orders(world, gateway)
    forged = {**charge(refunded=1000), "id": "ch_forged", "payment_intent": "pi_u"}
    answer = deliver(world, event("charge.refunded", forged, "evt_forged"))
    assert answer["outcome"] == "ignored: Stripe does not know ch_forged"
    assert timeline(world, "pi_u")[-1] == "evt_forged"


def test_a_delivery_that_failed_before_retrieving_is_refiled_by_its_redelivery(world, gateway):
    two_paid_orders(world, gateway)
    gateway.charges["ch_pi_1"] = charge(refunded=1000)
    evt = event("charge.refunded", {**charge(refunded=1000), "payment_intent": "pi_u"})
    gateway.down = True
    with pytest.raises(StripeUnavailable):
        deliver(world, evt)
    assert timeline(world, "pi_u")[-1] == evt["id"]  # nothing retrieved yet: the copy's
    gateway.down = False
    assert deliver(world, evt)["handled"] is True
    assert evt["id"] not in timeline(world, "pi_u")
    assert world.ledger.get_event(evt["id"])["payment_intent"] == "pi_1"


def test_filing_after_the_first_write_corrects_the_record_in_its_transaction(world):
    ledger = world.ledger
    with ledger.handling("evt_1", "charge.refunded", "pi_u") as unit:
        ledger.record_intent(intent())
        unit.file_under("pi_1")
    assert ledger.get_event("evt_1")["payment_intent"] == "pi_1"


def test_a_late_payment_failed_for_an_intent_confirmed_again_is_not_a_check_problem(world, gateway):
    """Declined, then confirmed again with a 3-D Secure card: the late payment_failed records
    the retrieved intent (requires_action: pending), and `ledger check` finds nothing wrong."""
    from bookpay.ledger.check import check_ledger

    gateway.intents["pi_1"].update(status="requires_action", last_payment_error=None)
    declined = intent(status="requires_payment_method", last_payment_error={"code": "declined"})
    assert deliver(world, event("payment_intent.payment_failed", declined))["handled"] is True
    assert world.ledger.get_order("pi_1")["status"] == "pending"
    report = check_ledger(world.ledger)
    assert report.ok, [(f.name, f.examples) for f in report.problems if f.count]


def test_amount_capturable_updated_records_the_retrieved_intent(world, gateway):
    gateway.intents["pi_1"].update(status="requires_capture", amount_capturable=2300)
    answer = deliver(
        world, event("payment_intent.amount_capturable_updated", intent(status="succeeded"))
    )
    assert answer["handled"] is True
    order = world.ledger.get_order("pi_1")
    assert order["status"] == status_of_intent(gateway.intents["pi_1"])
    assert order["fulfilled_at"] is None  # authorized is not paid


CLAIMS = {  # what the event's type says the PaymentIntent is
    "payment_intent.canceled": "canceled",
    "payment_intent.amount_capturable_updated": "requires_capture",
    "payment_intent.succeeded": "succeeded",
}


@pytest.mark.parametrize("kind", list(CLAIMS))
def test_a_signed_event_stripes_intent_does_not_bear_out_is_not_a_check_problem(
    world, gateway, kind
):
    """A validly signed event whose type Stripe's PaymentIntent does not bear out (forged, or
    meant for a PaymentIntent since gone: an emulator restarted): the order follows Stripe (still
    pending), the event is not handled, and `ledger check` finds nothing wrong."""
    from bookpay.ledger.check import check_ledger

    gateway.intents["pi_1"].update(status="requires_payment_method")
    answer = deliver(world, event(kind, intent(status=CLAIMS[kind])))
    assert answer["handled"] is False
    assert "the PaymentIntent is waiting for a payment method" in answer["outcome"]
    order = world.ledger.get_order("pi_1")
    assert (order["status"], order["fulfilled_at"]) == ("pending", None)
    report = check_ledger(world.ledger)
    assert report.ok, [(f.name, f.examples) for f in report.problems if f.count]


@pytest.mark.parametrize(
    ("kind", "stripe_says"),
    [
        ("payment_intent.canceled", "canceled"),
        ("payment_intent.amount_capturable_updated", "requires_capture"),
        ("payment_intent.amount_capturable_updated", "canceled"),  # released since
        ("payment_intent.succeeded", "succeeded"),
    ],
)
def test_check_finds_an_order_behind_an_event_stripe_bore_out(world, gateway, kind, stripe_says):
    from bookpay.ledger.check import check_ledger

    gateway.intents["pi_1"].update(status=stripe_says)
    assert deliver(world, event(kind, intent(status=CLAIMS[kind])))["handled"] is True
    assert check_ledger(world.ledger).ok
    with world.ledger.transaction() as tx:  # what no handler does: a status set back
        tx.execute("UPDATE orders SET status = 'pending' WHERE payment_intent = 'pi_1'")
    found = {f.name: f for f in check_ledger(world.ledger).problems if f.count}
    behind = found.pop("orders behind an event they handled")
    assert behind.examples == [world.ledger.get_order("pi_1")["id"]]
    assert set(found) <= {"fulfilled orders below paid"}


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
EXAMPLE_FOR = {
    "payment_intent": "payment_intent",
    "charge": "charge",
    "dispute": "dispute",
    "refund": "refund",
}


def test_there_is_a_fixture_for_every_handled_case():
    assert [p.stem for p in FIXTURES] == [
        "charge.dispute.closed.lost",
        "charge.dispute.closed.won",
        "charge.dispute.created",
        "charge.refunded.full",
        "charge.refunded.partial",
        "payment_intent.canceled",
        "payment_intent.payment_failed",
        "payment_intent.processing",
        "payment_intent.succeeded",
        "refund.failed",
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
    if obj["object"] not in ("dispute", "refund"):
        book = catalog.get(obj["metadata"]["item_id"])
        assert (obj["amount"], obj["currency"]) == (book.amount, book.currency)


def stripe_for_fixtures(gateway: FakeGateway) -> None:
    """Have the fake Stripe hold what the fixtures describe, so replaying them moves orders."""
    for path in FIXTURES:
        obj = json.loads(path.read_text())["data"]["object"]
        pi = obj["id"] if obj["object"] == "payment_intent" else obj["payment_intent"]
        book = Catalog.default().get(obj.get("metadata", {}).get("item_id") or "1")
        state = obj["status"] if obj["object"] == "payment_intent" else "succeeded"
        error = obj.get("last_payment_error") if obj["object"] == "payment_intent" else None
        gateway.intents[pi] = intent(
            pi, status=state, item=book.id, amount=book.amount, last_payment_error=error
        )
        store = {
            "charge": gateway.charges,
            "dispute": gateway.disputes,
            "refund": gateway.refunds,
        }.get(obj["object"])
        if store is not None:
            store[obj["id"]] = obj
        if obj["object"] == "refund":  # its charge, the failed refund no longer counted
            failed = charge(pi, amount=book.amount)
            gateway.charges[obj["charge"]] = {**failed, "id": obj["charge"], "refunds": {
                "object": "list", "data": [obj], "has_more": False}}  # fmt: skip
        if obj["object"] == "dispute" and obj["status"] in ("won", "lost"):
            gateway.charges[obj["charge"]] = {**charge(pi, amount=book.amount), "id": obj["charge"]}


def test_the_fixtures_move_orders_as_their_names_say(world, gateway):
    stripe_for_fixtures(gateway)
    failed = "pi_3QfxRFaiB7WZ01zgkW0fixture"
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
        "DWon": "paid",
        "DLst": "dispute_lost",
        "RFai": "paid",
    }
    assert world.ledger.get_order(failed)["amount_refunded"] == 0
    failed = world.ledger.get_order("pi_3QfxFailB7WZ01zgkW0fixture")
    assert failed["failure_reason"].startswith("card_declined/insufficient_funds")
