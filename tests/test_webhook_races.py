"""Refund and dispute events handled at once, committing in the wrong order: the ledger still
ends at Stripe's newest Charge (``WebhookReceiver._settle_refunds``).

Two receivers, each with its own ledger connection over one database (SQLite, then
PostgreSQL), stand for two processes; a gateway wrapper pauses one handler between its read of
the Charge and its commit, so the interleaving is the same every run.
"""

from __future__ import annotations

import json
import threading

import pytest
from stripe_fakes import SHOP, FakeGateway, charge, dispute, event, intent
from test_ledger_units import Transactions

from bookpay.catalog import Catalog
from bookpay.config import Settings
from bookpay.errors import StripeUnavailable
from bookpay.fulfilment import Fulfiller
from bookpay.ledger import open_ledger
from bookpay.webhooks import WebhookReceiver, sign

SECRET = "whsec_test_races"


class Pausing(FakeGateway):
    """A fake Stripe that, once armed, holds the first Charge it hands to thread "A" until
    ``go`` is set, after telling ``read`` what it handed over."""

    def __init__(self, *intents):
        super().__init__(*intents)
        self.read, self.go = threading.Event(), threading.Event()
        self.armed = False
        self.charge_reads = 0

    def retrieve_charge(self, charge_id, *, expand=("refunds",)):
        found = super().retrieve_charge(charge_id, expand=expand)
        self.charge_reads += 1
        if self.armed and threading.current_thread().name == "A":
            self.armed = False
            self.read.set()
            assert self.go.wait(10)
        return found


@pytest.fixture
def gateway():
    return Pausing(intent())


@pytest.fixture
def shops(tmp_path, gateway, database_url):
    """Two receivers (two 'processes') over one ledger database and one Stripe."""
    settings = Settings(
        data_dir=tmp_path / "data",
        webhook_secrets=(SECRET,),
        database_url=database_url,
        shop_id=SHOP,
    )
    made = []
    for _ in range(2):
        ledger = open_ledger(settings)
        fulfiller = Fulfiller(ledger, gateway, Catalog.default(), settings)
        made.append((WebhookReceiver(settings, ledger, fulfiller), fulfiller, ledger))
    yield [receiver for receiver, _, _ in made]
    for _, fulfiller, ledger in made:
        fulfiller.close()
        ledger.close()


def deliver(receiver, evt):
    payload = json.dumps(evt).encode()
    return receiver.handle(payload, sign(payload, SECRET))


def test_a_stale_refund_event_committed_last_does_not_undo_a_newer_refund(shops, gateway):
    a, b = shops
    deliver(a, event("payment_intent.succeeded", intent()))
    gateway.charges["ch_pi_1"] = charge(refunded=1000)
    gateway.armed = True
    answers = {}
    first = threading.Thread(
        target=lambda: answers.update(a=deliver(a, event("charge.refunded", charge(), "evt_r1"))),
        name="A",
    )
    first.start()
    try:
        assert gateway.read.wait(10)  # A holds the Charge at 1000, not yet committed
        gateway.charges["ch_pi_1"] = charge(refunded=1800)  # a second refund
        deliver(b, event("charge.refunded", charge(), "evt_r2"))
        assert b.ledger.get_order("pi_1")["amount_refunded"] == 1800
    finally:
        gateway.go.set()
        first.join(10)
    assert answers["a"]["handled"] is True
    for receiver in (a, b):
        order = receiver.ledger.get_order("pi_1")
        assert (order["status"], order["amount_refunded"]) == ("partially_refunded", 1800)
    assert a.ledger.get_event("evt_r1")["processed_at"] is not None


def test_the_usual_refund_event_costs_one_more_read_and_no_more_writes(shops, gateway, monkeypatch):
    receiver = shops[0]
    deliver(receiver, event("payment_intent.succeeded", intent()))
    gateway.charge_reads = 0  # its own read after the commit: counted below
    gateway.charges["ch_pi_1"] = charge(refunded=1000)
    transactions = Transactions(receiver.ledger.backend, monkeypatch)
    deliver(receiver, event("charge.refunded", charge(refunded=1000)))
    assert gateway.charge_reads == 2  # handling's, then the one after the commit
    assert transactions.count == 1
    order = receiver.ledger.get_order("pi_1")
    assert (order["status"], order["amount_refunded"]) == ("partially_refunded", 1000)


def test_the_usual_succeeded_event_costs_no_read_of_the_charge_and_one_write(
    shops, gateway, monkeypatch
):
    """A fulfilment writes no refunds, and one refunded or disputed meanwhile is refused on the
    locked row: only a refunded-first outcome reads the Charge again after its commit."""
    receiver = shops[0]
    transactions = Transactions(receiver.ledger.backend, monkeypatch)
    answer = deliver(receiver, event("payment_intent.succeeded", intent()))
    assert answer["outcome"] == "fulfilled"
    assert gateway.charge_reads == 0
    assert transactions.count == 1


def test_a_refund_that_failed_meanwhile_is_recorded_after_the_commit(shops, gateway):
    """Down as well as up: the re-read records a Charge whose refund failed after the read."""
    a, b = shops
    deliver(a, event("payment_intent.succeeded", intent()))
    gateway.charges["ch_pi_1"] = charge(refunded=2300)
    gateway.armed = True
    first = threading.Thread(
        target=lambda: deliver(a, event("charge.refunded", charge(), "evt_r1")), name="A"
    )
    first.start()
    try:
        assert gateway.read.wait(10)
        gateway.charges["ch_pi_1"] = charge(refunded=0)  # the refund failed
        refund = {"id": "re_1", "object": "refund", "charge": "ch_pi_1", "amount": 2300}
        gateway.refunds["re_1"] = {**refund, "status": "failed"}
        deliver(b, event("refund.failed", refund, "evt_failed"))
    finally:
        gateway.go.set()
        first.join(10)
    order = b.ledger.get_order("pi_1")
    assert (order["status"], order["amount_refunded"]) == ("paid", 0)


@pytest.mark.parametrize("on_the_dispute", ["pi_1", None], ids=["intent", "charge-only"])
def test_a_won_dispute_committed_last_does_not_undo_a_newer_refund(shops, gateway, on_the_dispute):
    """A won dispute takes the order back to what the Charge's refunds say: the Charge its
    handler read, before a refund another handler committed first. Older API versions name only
    the Charge on the Dispute (then it is read first, to find the PaymentIntent)."""
    a, b = shops
    deliver(a, event("payment_intent.succeeded", intent()))
    gateway.charges["ch_pi_1"] = charge()
    gateway.disputes["dp_1"] = dispute(pi=on_the_dispute, status="won")
    gateway.armed = True
    first = threading.Thread(
        target=lambda: deliver(a, event("charge.dispute.closed", dispute(), "evt_won")),
        name="A",
    )
    first.start()
    try:
        assert gateway.read.wait(10)  # A holds the Charge with nothing refunded
        gateway.charges["ch_pi_1"] = charge(refunded=1000)
        deliver(b, event("charge.refunded", charge(), "evt_r1"))
        assert b.ledger.get_order("pi_1")["amount_refunded"] == 1000
    finally:
        gateway.go.set()
        first.join(10)
    for receiver in (a, b):
        order = receiver.ledger.get_order("pi_1")
        assert (order["status"], order["amount_refunded"]) == ("partially_refunded", 1000)
        assert order["dispute_status"] == "won"
    assert a.ledger.get_event("evt_won")["handled"] is True


def test_the_usual_won_dispute_costs_one_more_read_and_no_more_writes(shops, gateway, monkeypatch):
    receiver = shops[0]
    deliver(receiver, event("payment_intent.succeeded", intent()))
    gateway.charge_reads = 0  # its own read after the commit: counted below
    gateway.charges["ch_pi_1"] = charge(refunded=1000)
    gateway.disputes["dp_1"] = dispute(pi="pi_1", status="won")
    transactions = Transactions(receiver.ledger.backend, monkeypatch)
    deliver(receiver, event("charge.dispute.closed", dispute()))
    assert gateway.charge_reads == 2  # handling's, then the one after the commit
    assert transactions.count == 1
    order = receiver.ledger.get_order("pi_1")
    assert (order["status"], order["amount_refunded"]) == ("partially_refunded", 1000)


def test_an_open_dispute_reads_no_charge(shops, gateway):
    """It records no refunds (the order shows the dispute whatever they are): nothing to
    re-read."""
    receiver = shops[0]
    deliver(receiver, event("payment_intent.succeeded", intent()))
    gateway.charge_reads = 0  # its own read after the commit: counted below
    gateway.disputes["dp_1"] = dispute(pi="pi_1")
    deliver(receiver, event("charge.dispute.created", dispute()))
    assert gateway.charge_reads == 0
    assert receiver.ledger.get_order("pi_1")["status"] == "disputed"


class DownAfterOneRead(FakeGateway):
    """Once armed, Stripe answers one more read of a Charge, and not the next."""

    reads_left: int | None = None

    def retrieve_charge(self, charge_id, *, expand=("refunds",)):
        if self.reads_left is not None:
            self.down, self.reads_left = self.reads_left == 0, self.reads_left - 1
        return super().retrieve_charge(charge_id, expand=expand)


def test_when_the_charge_cannot_be_read_again_the_redelivery_handles_the_event(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", webhook_secrets=(SECRET,), shop_id=SHOP)
    gateway = DownAfterOneRead(intent())
    with open_ledger(settings) as ledger:
        fulfiller = Fulfiller(ledger, gateway, Catalog.default(), settings)
        try:
            receiver = WebhookReceiver(settings, ledger, fulfiller)
            deliver(receiver, event("payment_intent.succeeded", intent()))
            gateway.charges["ch_pi_1"] = charge(refunded=1000)
            evt = event("charge.refunded", charge(refunded=1000))
            gateway.reads_left = 1
            with pytest.raises(StripeUnavailable):
                deliver(receiver, evt)
            assert ledger.get_order("pi_1")["amount_refunded"] == 1000  # committed, unconfirmed
            assert ledger.get_event(evt["id"])["processed_at"] is None  # Stripe will retry
            gateway.down, gateway.reads_left = False, None
            answer = deliver(receiver, evt)
            assert (answer["duplicate"], answer["handled"]) == (False, True)
            assert ledger.get_event(evt["id"])["processed_at"] is not None
            assert ledger.get_order("pi_1")["amount_refunded"] == 1000
        finally:
            fulfiller.close()
