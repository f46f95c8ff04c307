"""Receipt claims that outlive the connection that made them, and fates written after a claim
was lost. A claim on PostgreSQL was a row lock held, in an open transaction, for the whole send:
when the server ended that connection mid-send, the lock went with it, and another worker
claimed and sent the receipt again (the first one's mark then matched nothing, unsaid).

Sends are held on an event (a stub of an SMTP transport: it cannot send twice harmlessly), so
what happens during one is made to happen there."""

from __future__ import annotations

import logging
import secrets
import threading

import psycopg
import pytest
from test_receipts import SHOP, intent, render

from bookpay.config import Settings
from bookpay.ledger import open_ledger
from bookpay.ledger.model import now_iso
from bookpay.mailer import ReceiptMailer


class Held:
    """An SMTP-like transport whose sends wait for ``release``; ``sending`` is set once one is
    under way. ``fails``: the send then fails (the server hung up), to be tried again."""

    def __init__(self, fails: bool = False) -> None:
        self.sending = threading.Event()
        self.release = threading.Event()
        self.fails = fails
        self.sent: list[str] = []

    def send(self, receipt):
        self.sending.set()
        assert self.release.wait(30), "never released"
        if self.fails:
            raise ConnectionResetError("the server hung up")
        self.sent.append(receipt["payment_intent"])
        return "smtp://mail.example.com:25"


class Counted:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, receipt):
        self.sent.append(receipt["payment_intent"])
        return "smtp://mail.example.com:25"


def in_thread(action) -> tuple[threading.Thread, list]:
    failures: list[BaseException] = []

    def body():
        try:
            action()
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=body)
    thread.start()
    return thread, failures


def test_a_claim_outlives_its_connection_ended_mid_send(postgres_url, tmp_path):
    """pg_terminate_backend on the claiming worker's connections while it sends: the other
    worker does not send the receipt again, and the first one's fate is recorded."""
    name = "bookpay_test_" + secrets.token_hex(6)
    tagged = f"{postgres_url}&application_name={name}"
    data = tmp_path / "data"
    first = open_ledger(Settings(data_dir=data, database_url=tagged, shop_id=SHOP))
    second = open_ledger(Settings(data_dir=data, database_url=postgres_url, shop_id=SHOP))
    try:
        first.record_fulfilment(intent(), render)
        held = Held()
        worker, failures = in_thread(ReceiptMailer(first, held).send_due)
        assert held.sending.wait(10)
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            ended = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (name,),
            ).fetchone()[0]
        assert ended >= 1
        other = Counted()
        assert ReceiptMailer(second, other).send_due() == 0
        assert other.sent == []  # claimed still: never sent twice
        held.release.set()
        worker.join(30)
        assert failures == []
        assert held.sent == ["pi_1"]
        receipt = second.receipt_for("pi_1")
        assert (receipt["status"], receipt["attempts"], receipt["claimed_by"]) == ("sent", 1, None)
    finally:
        first.close()
        second.close()


@pytest.fixture
def settings(tmp_path, database_url):
    return Settings(data_dir=tmp_path / "data", database_url=database_url, shop_id=SHOP)


@pytest.fixture
def ledger(settings):
    opened = open_ledger(settings)
    yield opened
    opened.close()


def taken_over(ledger) -> str:
    """The receipt's claim taken by another sender, as when this one's lease ran out, or it
    was thought dead, and a worker on another machine claimed it."""
    holder = "elsewhere.example/4242/1/abcd"
    with ledger.transaction() as tx:
        tx.execute(
            "UPDATE receipts SET claimed_by = ?, claimed_until = ? WHERE payment_intent = 'pi_1'",
            (holder, now_iso(600)),
        )
    return holder


def test_a_receipt_sent_after_its_claim_was_lost_says_so_and_is_recorded_sent(ledger, caplog):
    ledger.record_fulfilment(intent(), render)
    held = Held()
    worker, failures = in_thread(ReceiptMailer(ledger, held).send_due)
    assert held.sending.wait(10)
    holder = taken_over(ledger)
    held.release.set()
    worker.join(30)
    assert failures == []
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warned] == [
        f"receipt for order {ledger.receipt_for('pi_1')['order_id']} (pi_1) sent, but its claim "
        f"had been lost (now held by {holder}, which may send it too): recorded all the same."
    ]
    # Each receipt's line is its own: serve's repeat filter never folds two into one (its
    # template, "%s", is the same for all of them).
    assert all(getattr(r, "each", False) for r in warned)
    receipt = ledger.receipt_for("pi_1")
    assert (receipt["status"], receipt["claimed_by"]) == ("sent", None)  # not sent yet again


def test_a_failed_send_after_its_claim_was_lost_leaves_the_receipt_to_its_new_holder(
    ledger, caplog
):
    ledger.record_fulfilment(intent(), render)
    held = Held(fails=True)
    worker, failures = in_thread(ReceiptMailer(ledger, held).send_due)
    assert held.sending.wait(10)
    holder = taken_over(ledger)
    held.release.set()
    worker.join(30)
    assert failures == []
    assert any("claim had been lost" in r.getMessage() for r in caplog.records)
    receipt = ledger.receipt_for("pi_1")
    assert (receipt["status"], receipt["attempts"], receipt["claimed_by"]) == ("pending", 0, holder)


def test_a_receipt_finished_by_another_sender_first_says_it_may_be_sent_twice(ledger, caplog):
    ledger.record_fulfilment(intent(), render)
    held = Held()
    worker, failures = in_thread(ReceiptMailer(ledger, held).send_due)
    assert held.sending.wait(10)
    with ledger.transaction() as tx:  # the claim taken over, and that sender done first
        tx.execute("UPDATE receipts SET status = 'sent', claimed_by = NULL, attempts = 1")
    held.release.set()
    worker.join(30)
    assert failures == []
    assert any(
        "another sender recorded it sent first, so it may have been sent twice" in r.getMessage()
        for r in caplog.records
    )
    assert ledger.receipt_for("pi_1")["attempts"] == 1  # its fate, written once


def test_claimers_at_once_never_claim_the_same_receipt(ledger, settings):
    """The claims are marks committed, not locks held through the sends: on PostgreSQL two
    claiming at once must still each take rows the other did not (the claiming transactions
    skip each other's rows), or both would send them."""
    for n in range(40):
        ledger.record_fulfilment(intent(f"pi_{n}"), render)
    others = [open_ledger(settings) for _ in range(4)]
    start = threading.Barrier(len(others))
    all_claimed = threading.Barrier(len(others))
    claimed: list[list[str]] = [[] for _ in others]

    def claim(n):
        start.wait(20)
        with others[n].claim_receipts(limit=15) as claims:
            claimed[n] = [r["payment_intent"] for r in claims]
            all_claimed.wait(20)  # every claim held until all have claimed

    try:
        threads = [in_thread(lambda n=n: claim(n)) for n in range(len(others))]
        for thread, failures in threads:
            thread.join(30)
            assert failures == []
    finally:
        for other in others:
            other.close()
    every = [pi for found in claimed for pi in found]
    assert sorted(every) == sorted(f"pi_{n}" for n in range(40))  # each once, none twice


def test_a_failed_sends_fate_whose_commit_answer_was_lost_is_not_written_twice(
    ledger, monkeypatch, caplog
):
    """The fate committed, but the ledger failed as it answered: tried again, it finds the
    receipt pending and unclaimed, as its own first try left it. One attempt counted, and no
    claim said lost."""
    from contextlib import contextmanager

    from bookpay.ledger import outbox
    from bookpay.ledger.errors import LedgerUnavailable

    monkeypatch.setattr(outbox, "FATE_RETRIES", (0.0,))
    ledger.record_fulfilment(intent(), render)
    real_write = ledger.backend.write
    lost_answers = []

    @contextmanager
    def write_losing_the_fates_answer():
        with real_write() as tx:
            yield tx
        if not lost_answers and tx_wrote_a_fate():
            lost_answers.append(True)
            raise LedgerUnavailable("the ledger went away as it answered the commit")

    def tx_wrote_a_fate() -> bool:
        return ledger.receipt_for("pi_1")["attempts"] == 1

    monkeypatch.setattr(ledger.backend, "write", write_losing_the_fates_answer)
    held = Held(fails=True)
    held.release.set()
    ReceiptMailer(ledger, held).send_due()
    assert lost_answers == [True]
    receipt = ledger.receipt_for("pi_1")
    assert (receipt["status"], receipt["attempts"], receipt["claimed_by"]) == ("pending", 1, None)
    assert not [r.getMessage() for r in caplog.records if "claim had been lost" in r.getMessage()]
