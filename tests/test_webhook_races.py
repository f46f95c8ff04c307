"""Refund and dispute events handled at once, committing in the wrong order: the ledger still
ends at Stripe's newest Charge (``WebhookReceiver._settle_refunds``) and Dispute
(``WebhookReceiver._settle_dispute``).

Two receivers, each with its own ledger connection over one database (SQLite, then
PostgreSQL), stand for two processes; a gateway wrapper pauses one handler between its read of
the Charge (or the Dispute) and its commit, so the interleaving is the same every run.
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
    """A fake Stripe that, once armed, holds the first Charge (or, ``holds = "dispute"``, the
    first Dispute) it hands to thread "A" until ``go`` is set, after telling ``read`` what it
    handed over."""

    def __init__(self, *intents):
        super().__init__(*intents)
        self.read, self.go = threading.Event(), threading.Event()
        self.armed = False
        self.holds = "charge"
        self.charge_reads = 0

    def retrieve_charge(self, charge_id, *, expand=("refunds",)):
        found = super().retrieve_charge(charge_id, expand=expand)
        self.charge_reads += 1
        self._hold("charge")
        return found

    def retrieve_dispute(self, dispute_id):
        found = super().retrieve_dispute(dispute_id)
        self._hold("dispute")
        return found

    def _hold(self, kind: str) -> None:
        if self.armed and self.holds == kind and threading.current_thread().name == "A":
            self.armed = False
            self.read.set()
            assert self.go.wait(10)


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


@pytest.mark.parametrize("stale", ["lost", "appeal_needs_response"])
def test_a_stale_dispute_read_committed_last_does_not_undo_a_newer_decision(shops, gateway, stale):
    """Lost, appealed, then won: a handler that read the Dispute lost (or under appeal) and
    commits after one that read it won would leave the order at the older status
    (``dispute_moves`` lets a decided chargeback take an appeal or another decision); it reads
    the Dispute again after its commit, and records the newer one."""
    a, b = shops
    deliver(a, event("payment_intent.succeeded", intent()))
    gateway.charges["ch_pi_1"] = charge()
    gateway.disputes["dp_1"] = dispute(pi="pi_1", status=stale)
    gateway.holds, gateway.armed = "dispute", True
    answers = {}
    first = threading.Thread(
        target=lambda: answers.update(
            a=deliver(a, event("charge.dispute.updated", dispute(), "evt_stale"))
        ),
        name="A",
    )
    first.start()
    try:
        assert gateway.read.wait(10)  # A holds the Dispute at its older status, not committed
        gateway.disputes["dp_1"] = dispute(pi="pi_1", status="won")
        deliver(b, event("charge.dispute.closed", dispute(), "evt_won"))
        assert b.ledger.get_order("pi_1")["dispute_status"] == "won"
    finally:
        gateway.go.set()
        first.join(10)
    assert answers["a"]["handled"] is True
    for receiver in (a, b):
        order = receiver.ledger.get_order("pi_1")
        assert (order["status"], order["dispute_status"]) == ("paid", "won")
        assert [row["status"] for row in receiver.ledger.disputes_for(order["id"])] == ["won"]
    assert a.ledger.get_event("evt_stale")["processed_at"] is not None
    assert a.ledger.fulfilment_count() == 1


class DecidedMeanwhile(FakeGateway):
    """Stripe decides a Dispute again (its appeal's events missed) just after it is first read:
    the first retrieve of ``dp_1`` answers what it holds, every later one ``later``."""

    later: dict | None = None

    def retrieve_dispute(self, dispute_id):
        found = super().retrieve_dispute(dispute_id)
        if self.later is not None:
            self.disputes[dispute_id], self.later = self.later, None
        return found


def test_a_dispute_won_after_it_was_read_lost_fulfils_an_order_disputed_first(tmp_path):
    """The re-read after the commit records the win, and with it what a won dispute does: the
    order back to what its Charge says, fulfilled once if it was disputed before its
    fulfilment (``Fulfiller.kept``)."""
    settings = Settings(data_dir=tmp_path / "data", webhook_secrets=(SECRET,), shop_id=SHOP)
    gateway = DecidedMeanwhile(intent())
    with open_ledger(settings) as ledger:
        fulfiller = Fulfiller(ledger, gateway, Catalog.default(), settings)
        try:
            receiver = WebhookReceiver(settings, ledger, fulfiller)
            gateway.charges["ch_pi_1"] = charge()
            gateway.disputes["dp_1"] = dispute(pi="pi_1")
            deliver(receiver, event("charge.dispute.created", dispute(pi="pi_1"), "evt_dispute"))
            deliver(receiver, event("payment_intent.succeeded", intent()))
            assert ledger.fulfilment_count() == 0  # disputed before it was fulfilled
            gateway.disputes["dp_1"] = dispute(pi="pi_1", status="lost")
            gateway.later = dispute(pi="pi_1", status="won")
            deliver(receiver, event("charge.dispute.closed", dispute(pi="pi_1"), "evt_lost"))
            order = ledger.get_order("pi_1")
            assert (order["status"], order["dispute_status"]) == ("paid", "won")
            assert order["fulfilled_at"] is not None and order["not_fulfilled_at"] is None
            assert ledger.fulfilment_count() == 1 and len(ledger.receipts()) == 1
            deliver(receiver, event("charge.dispute.closed", dispute(pi="pi_1"), "evt_won"))
            assert ledger.fulfilment_count() == 1 and len(ledger.receipts()) == 1
        finally:
            fulfiller.close()


@pytest.mark.parametrize(
    ("status", "dispute_reads"),
    [("won", 2), ("lost", 2), ("appeal_under_review", 2), ("needs_response", 1)],
)
def test_the_usual_dispute_event_reads_the_dispute_again_only_when_decided_and_writes_once(
    shops, gateway, monkeypatch, status, dispute_reads
):
    """A decided chargeback or an appeal costs one more read of the Dispute and no more writes;
    any other status only moves forward (``DISPUTE_RANK``), so it is not read again."""
    receiver = shops[0]
    deliver(receiver, event("payment_intent.succeeded", intent()))
    gateway.charges["ch_pi_1"] = charge()
    gateway.disputes["dp_1"] = dispute(pi="pi_1", status=status)
    gateway.asked.clear()
    transactions = Transactions(receiver.ledger.backend, monkeypatch)
    deliver(receiver, event("charge.dispute.updated", dispute()))
    assert gateway.asked.count("dp_1") == dispute_reads
    assert transactions.count == 1
    assert receiver.ledger.get_order("pi_1")["dispute_status"] == status


class DownAfterOneRead(FakeGateway):
    """Once armed, Stripe answers one more read of a Charge (or, ``counts = "dispute"``, of a
    Dispute), and not the next."""

    reads_left: int | None = None
    counts = "charge"

    def retrieve_charge(self, charge_id, *, expand=("refunds",)):
        self._count("charge")
        return super().retrieve_charge(charge_id, expand=expand)

    def retrieve_dispute(self, dispute_id):
        self._count("dispute")
        return super().retrieve_dispute(dispute_id)

    def _count(self, kind: str) -> None:
        if self.reads_left is not None and kind == self.counts:
            self.down, self.reads_left = self.reads_left == 0, self.reads_left - 1


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


def test_when_the_dispute_cannot_be_read_again_the_redelivery_handles_the_event(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", webhook_secrets=(SECRET,), shop_id=SHOP)
    gateway = DownAfterOneRead(intent())
    gateway.counts = "dispute"
    with open_ledger(settings) as ledger:
        fulfiller = Fulfiller(ledger, gateway, Catalog.default(), settings)
        try:
            receiver = WebhookReceiver(settings, ledger, fulfiller)
            deliver(receiver, event("payment_intent.succeeded", intent()))
            gateway.charges["ch_pi_1"] = charge()
            gateway.disputes["dp_1"] = dispute(pi="pi_1", status="lost")
            evt = event("charge.dispute.closed", dispute(pi="pi_1"))
            gateway.reads_left = 1
            with pytest.raises(StripeUnavailable):
                deliver(receiver, evt)
            assert ledger.get_order("pi_1")["status"] == "dispute_lost"  # committed, unconfirmed
            assert ledger.get_event(evt["id"])["processed_at"] is None  # Stripe will retry
            gateway.down, gateway.reads_left = False, None
            answer = deliver(receiver, evt)
            assert (answer["duplicate"], answer["handled"]) == (False, True)
            assert ledger.get_event(evt["id"])["processed_at"] is not None
            assert ledger.get_order("pi_1")["status"] == "dispute_lost"
        finally:
            fulfiller.close()
