"""One write transaction per webhook event: units, the writers' turn, and batched receipts.

On both backends (``database_url``) where the ledger is involved; the writers' turn is SQLite's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest
from stripe_fakes import SHOP, FakeGateway, event, intent
from test_webhooks import FIXTURES, SECRET, stripe_for_fixtures

from bookpay.catalog import Catalog
from bookpay.config import Settings
from bookpay.fulfilment import Fulfiller
from bookpay.ledger import LedgerUnavailable, open_ledger
from bookpay.mailer import OutboxTransport, ReceiptMailer
from bookpay.webhooks import WebhookReceiver, sign


@pytest.fixture
def settings(tmp_path, database_url):
    return Settings(
        data_dir=tmp_path / "data",
        webhook_secrets=(SECRET,),
        database_url=database_url,
        shop_id=SHOP,
    )


@pytest.fixture
def gateway():
    return FakeGateway(intent())


@pytest.fixture
def receiver(settings, gateway):
    ledger = open_ledger(settings)
    fulfiller = Fulfiller(ledger, gateway, Catalog.default(), settings)
    yield WebhookReceiver(settings, ledger, fulfiller)
    fulfiller.close()
    ledger.close()


def deliver(receiver, evt):
    payload = json.dumps(evt).encode()
    return receiver.handle(payload, sign(payload, SECRET))


class Transactions:
    """Counts the write transactions this thread commits or tries (the mailer's are its own)."""

    def __init__(self, backend, monkeypatch) -> None:
        self.count = 0
        self._thread = threading.get_ident()
        real_transaction, real_autocommit = backend._transaction, backend._autocommit

        def transaction():
            self._seen()
            return real_transaction()

        def autocommit(sql, params):
            self._seen()
            return real_autocommit(sql, params)

        monkeypatch.setattr(backend, "_transaction", transaction)
        monkeypatch.setattr(backend, "_autocommit", autocommit)

    def _seen(self) -> None:
        if threading.get_ident() == self._thread:
            self.count += 1


# One transaction per event ----------------------------------------------------------------------


def test_a_paid_order_is_recorded_fulfilled_and_queued_in_one_transaction(receiver, monkeypatch):
    transactions = Transactions(receiver.ledger.backend, monkeypatch)
    evt = event("payment_intent.succeeded", intent())
    answer = deliver(receiver, evt)
    assert (answer["handled"], answer["outcome"]) == (True, "fulfilled")
    assert transactions.count == 1  # the event, the order, the fulfilment, the receipt, processed
    recorded = receiver.ledger.get_event(evt["id"])
    assert recorded["processed_at"] is not None and recorded["outcome"] == "fulfilled"
    assert receiver.ledger.receipt_for("pi_1")["status"] in ("pending", "sent")
    assert receiver.fulfiller.drain(5)


def test_every_handled_event_type_is_one_transaction(receiver, gateway, monkeypatch):
    stripe_for_fixtures(gateway)
    transactions = Transactions(receiver.ledger.backend, monkeypatch)
    for path in FIXTURES:
        before = transactions.count
        payload = path.read_bytes()
        assert receiver.handle(payload, sign(payload, SECRET))["handled"] is True, path.stem
        assert transactions.count - before == 1, path.stem


def test_sqlite_sees_one_begin_and_one_commit_for_an_event(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", webhook_secrets=(SECRET,), shop_id=SHOP)
    ledger = open_ledger(settings)
    fulfiller = Fulfiller(ledger, FakeGateway(intent()), Catalog.default(), settings)
    try:
        receiver = WebhookReceiver(settings, ledger, fulfiller)
        statements: list[str] = []
        ledger.backend._connection().set_trace_callback(statements.append)
        deliver(receiver, event("payment_intent.succeeded", intent()))
        ledger.backend._connection().set_trace_callback(None)
    finally:
        fulfiller.close()
        ledger.close()
    words = [s.split()[0].upper() for s in statements]
    assert words.count("BEGIN") == 1 and words.count("COMMIT") == 1
    begin, commit = words.index("BEGIN"), words.index("COMMIT")
    writes = [n for n, word in enumerate(words) if word in ("INSERT", "UPDATE", "DELETE")]
    assert len(writes) >= 4 and all(begin < n < commit for n in writes)


def test_a_duplicate_is_counted_without_asking_stripe(receiver, gateway):
    evt = event("payment_intent.succeeded", intent())
    deliver(receiver, evt)
    asked = len(gateway.asked)
    answer = deliver(receiver, evt)
    assert (answer["duplicate"], answer["handled"]) == (True, True)
    assert len(gateway.asked) == asked
    assert receiver.ledger.get_event(evt["id"])["deliveries"] == 2


class Watchful(FakeGateway):
    """A fake Stripe that fails the test if it is asked while the ledger has a write open."""

    ledger = None

    def _get(self, kind, store, object_id):
        assert not self.ledger.writing, f"asked Stripe for {object_id} inside a transaction"
        return super()._get(kind, store, object_id)


def test_stripe_is_never_asked_while_a_write_transaction_is_open(settings):
    gateway = Watchful()
    stripe_for_fixtures(gateway)
    ledger = open_ledger(settings)
    gateway.ledger = ledger
    fulfiller = Fulfiller(ledger, gateway, Catalog.default(), settings)
    try:
        receiver = WebhookReceiver(settings, ledger, fulfiller)
        for again in ("", "_again"):  # the second time, under new ids, finds the orders there
            for path in FIXTURES:
                evt = json.loads(path.read_text())
                evt["id"] += again
                assert deliver(receiver, evt)["handled"] is True, path.stem
        assert len(gateway.asked) >= 2 * len(FIXTURES)
        with ledger.handling("evt_x", "payment_intent.succeeded", "pi_x"):
            ledger.record_intent(intent("pi_x"))
            assert ledger.writing
            with pytest.raises(AssertionError, match="inside a transaction"):
                gateway.retrieve_intent("pi_x")
        assert not ledger.writing
    finally:
        fulfiller.close()
        ledger.close()


# What a failure keeps ---------------------------------------------------------------------------


def test_a_failed_write_rolls_the_unit_back_and_keeps_the_delivery(receiver, monkeypatch):
    def broken(order, book):
        raise RuntimeError("rendering failed")

    monkeypatch.setattr(receiver.fulfiller.mailer, "render", broken)
    evt = event("payment_intent.succeeded", intent())
    with pytest.raises(RuntimeError, match="rendering failed"):
        deliver(receiver, evt)
    recorded = receiver.ledger.get_event(evt["id"])
    assert recorded is not None and recorded["processed_at"] is None  # received, not processed
    assert receiver.ledger.find_order("pi_1") is None  # nothing of the unit is kept
    assert receiver.ledger.fulfilment_count() == 0
    monkeypatch.undo()
    answer = deliver(receiver, evt)
    assert (answer["duplicate"], answer["outcome"]) == (False, "fulfilled")
    assert receiver.ledger.get_event(evt["id"])["deliveries"] == 2


class Broken(Exception):
    """A write that fails half-way."""


def test_a_unit_refuses_writes_after_one_failed(settings):
    with open_ledger(settings) as ledger:
        handling = ledger.handling("evt_1", "payment_intent.succeeded", "pi_1")
        with pytest.raises(RuntimeError, match="rolled back"), handling:
            with pytest.raises(Broken), ledger.transaction() as tx:
                tx.execute("UPDATE orders SET note = 'x' WHERE id = 'none'")
                raise Broken
            ledger.record_intent(intent())  # would commit without the rolled-back part
        assert ledger.find_order("pi_1") is None
        assert ledger.get_event("evt_1")["processed_at"] is None


def test_a_quote_refused_for_a_fulfilled_order_does_not_roll_back_the_unit(settings):
    """Fulfilment records a quote for a paid intent that has none, and takes QuoteFrozen when
    another process fulfilled the order meanwhile: a refusal found by reading, which must leave
    the event's one transaction usable (it was rolled back: a 500 under a duplicate storm)."""
    from bookpay.ledger.lines import QuoteFrozen
    from bookpay.quote import quote_items

    paid = intent()
    with open_ledger(settings) as ledger:
        order = ledger.record_intent(paid)
        ledger.record_fulfilment(paid, lambda order: (None, "s", "b"))  # another process did it
        quote = quote_items(Catalog.default(), [("1", 1)])
        with ledger.handling("evt_1", "payment_intent.succeeded", paid["id"]):
            with pytest.raises(QuoteFrozen):
                ledger.record_quote(paid["id"], order["id"], quote)
            ledger.finish_event("evt_1", handled=True, outcome="already fulfilled")
        assert ledger.get_event("evt_1")["processed_at"] is not None


def test_callbacks_wait_for_the_commit_and_are_dropped_by_a_rollback(settings):
    with open_ledger(settings) as ledger:
        called = []
        with ledger.handling("evt_1", "payment_intent.succeeded", "pi_1"):
            ledger.after_commit(lambda: called.append("before any write"))
            ledger.record_intent(intent())
            ledger.after_commit(lambda: called.append("committed"))
            assert called == ["before any write"]
        assert called == ["before any write", "committed"]
        handling = ledger.handling("evt_2", "payment_intent.succeeded", "pi_2")
        with pytest.raises(Broken), handling, ledger.transaction() as tx:
            ledger.after_commit(lambda: called.append("rolled back"))
            tx.execute("UPDATE orders SET note = 'x'")
            raise Broken
        assert called == ["before any write", "committed"]
        assert ledger.find_order("pi_1")["note"] is None


DIES_INSIDE = """
import os, sys
from pathlib import Path
from bookpay.config import Settings
from bookpay.ledger import open_ledger
sys.path.insert(0, sys.argv[3])
from stripe_fakes import intent
ledger = open_ledger(Settings(data_dir=Path(sys.argv[1]), database_url=sys.argv[2] or None))
with ledger.handling("evt_dies", "payment_intent.succeeded", "pi_1"):
    ledger.record_intent(intent())
    print("written", flush=True)
    os._exit(9)  # the process dies before the unit commits
"""


def test_a_process_that_dies_inside_a_unit_commits_nothing_of_it(receiver, settings):
    folder = str(__import__("pathlib").Path(__file__).parent)
    done = subprocess.run(
        [sys.executable, "-c", DIES_INSIDE, str(settings.data_dir), settings.database_url or "",
         folder],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (9, "written\n"), done.stderr
    assert receiver.ledger.get_event("evt_dies") is None  # to the ledger it never came
    assert receiver.ledger.find_order("pi_1") is None
    answer = deliver(receiver, event("payment_intent.succeeded", intent(), "evt_dies"))
    assert (answer["duplicate"], answer["outcome"]) == (False, "fulfilled")


# The writers' turn (SQLite) ---------------------------------------------------------------------


def test_writers_of_one_process_take_turns_instead_of_failing_on_the_lock(tmp_path):
    """A second writer with no busy timeout at all still gets through: it waits for its turn
    in the process, not on SQLite's lock (which would fail at once with "database is locked")."""
    with open_ledger(Settings(data_dir=tmp_path / "data")) as ledger:
        holding, release, finished = threading.Event(), threading.Event(), []

        def first():
            with ledger.transaction() as tx:
                tx.execute("UPDATE orders SET note = 'first'")
                holding.set()
                release.wait(10)

        def second():
            conn = ledger.backend._connection()
            conn.execute("PRAGMA busy_timeout = 0")
            ledger.record_intent(intent("pi_2"))
            finished.append(True)

        one, two = threading.Thread(target=first), threading.Thread(target=second)
        one.start()
        assert holding.wait(10)
        two.start()
        two.join(0.3)
        assert finished == []  # waiting for its turn
        release.set()
        one.join(10)
        two.join(10)
        assert finished == [True]
        assert ledger.find_order("pi_2") is not None
        assert ledger.backend.turn_wait > 0


def _holding(ledger, seconds=None):
    """A thread of another "process" (another ledger on the same file: its own connections,
    its own descriptor of the turn file) holding a write transaction until released."""
    holding, release = threading.Event(), threading.Event()

    def hold():
        with ledger.transaction() as tx:
            tx.execute("UPDATE orders SET note = 'first'")
            holding.set()
            release.wait(seconds or 10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert holding.wait(10)
    return thread, release


def test_writers_of_two_processes_take_turns_on_the_turn_file_not_on_sqlites_sleeps(tmp_path):
    """Another process's writer waits on the ``-turn`` file, looking every millisecond at most,
    not in SQLite's busy handler (which sleeps up to 100 ms between looks): with no busy
    timeout at all it still gets through, as soon as the first commits."""
    settings = Settings(data_dir=tmp_path / "data")
    with open_ledger(settings) as one, open_ledger(settings) as other:
        thread, release = _holding(one)
        finished = []

        def second():
            other.backend._connection().execute("PRAGMA busy_timeout = 0")
            other.record_intent(intent("pi_2"))
            finished.append(time.monotonic())

        two = threading.Thread(target=second)
        two.start()
        two.join(0.3)
        assert finished == []  # waiting for its turn
        released = time.monotonic()
        release.set()
        thread.join(10)
        two.join(10)
        assert finished and finished[0] - released < 1.0
        assert one.find_order("pi_2") is not None
        assert (settings.data_dir / "bookpay.sqlite3-turn").exists()


def test_a_turn_another_process_holds_past_the_busy_timeout_is_an_unavailable_ledger(
    tmp_path, monkeypatch
):
    from bookpay.ledger import sqlite

    monkeypatch.setattr(sqlite, "BUSY_TIMEOUT", 0.2, raising=False)
    settings = Settings(data_dir=tmp_path / "data")
    with open_ledger(settings) as one, open_ledger(settings) as other:
        thread, release = _holding(one)
        try:
            started = time.monotonic()
            with pytest.raises(LedgerUnavailable, match="database is locked"):
                other.record_intent(intent("pi_2"))
            assert 0.2 <= time.monotonic() - started < 5
        finally:
            release.set()
            thread.join(10)
        other.record_intent(intent("pi_2"))  # its turn, once the other has committed
        assert one.find_order("pi_2") is not None


def test_the_wait_for_the_turn_and_for_sqlites_lock_share_one_timeout(tmp_path, monkeypatch):
    """A writer that takes no turn (the ``sqlite3`` shell, an older bookpay) holds SQLite's lock:
    the first process's writer takes the turn and waits out the busy timeout; the second waits
    for the turn meanwhile and then, were its own SQLite wait a fresh one, as long again. The
    two waits share one timeout: the second fails about when the first does."""
    import sqlite3

    from bookpay.ledger import sqlite

    monkeypatch.setattr(sqlite, "BUSY_TIMEOUT", 1.0)
    settings = Settings(data_dir=tmp_path / "data")
    with open_ledger(settings) as one, open_ledger(settings) as other:
        one.record_intent(intent("pi_1"))  # the ledger's file and tables exist
        shell = sqlite3.connect(settings.data_dir / "bookpay.sqlite3", isolation_level=None)
        shell.execute("BEGIN IMMEDIATE")
        failed: dict[str, float] = {}
        timeouts: dict[str, int] = {}
        started = time.monotonic()

        def write(name, ledger, pi):
            try:
                ledger.record_intent(intent(pi))
            except LedgerUnavailable:
                failed[name] = time.monotonic() - started
                # Then back to the whole timeout, for this thread's next write.
                conn = ledger.backend._connection()
                timeouts[name] = conn.execute("PRAGMA busy_timeout").fetchone()[0]

        first = threading.Thread(target=write, args=("first", one, "pi_2"))
        first.start()
        time.sleep(0.1)  # the first has the turn and waits on SQLite's lock
        second = threading.Thread(target=write, args=("second", other, "pi_3"))
        second.start()
        first.join(10)
        second.join(10)
        shell.execute("ROLLBACK")
        shell.close()
        assert set(failed) == {"first", "second"}
        assert 0.9 <= failed["first"] < 1.6
        assert failed["second"] < 1.6, failed  # not about 2 s: one timeout, not two
        assert timeouts == {"first": 1000, "second": 1000}
        other.record_intent(intent("pi_3"))


def test_a_ledger_on_a_filesystem_without_locks_writes_on_sqlites_lock_alone(tmp_path, monkeypatch):
    import errno

    from bookpay.ledger import sqlite

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(sqlite.fcntl, "flock", no_locks)
    with open_ledger(Settings(data_dir=tmp_path / "data")) as ledger:
        ledger.record_intent(intent("pi_2"))
        ledger.record_intent(intent("pi_3"))
        assert ledger.find_order("pi_3") is not None


# Receipts in batches ----------------------------------------------------------------------------


def render(order):
    return order["email"], "Your receipt", "Thank you\n"


def test_a_batch_of_receipts_costs_two_write_transactions(settings, monkeypatch):
    with open_ledger(settings) as ledger:
        for n in range(12):
            ledger.record_fulfilment(intent(f"pi_{n}"), render)
        transactions = Transactions(ledger.backend, monkeypatch)
        mailer = ReceiptMailer(ledger, OutboxTransport(settings.data_dir / "outbox"))
        assert mailer.send_due() == 12
        # Claim them (committed before they are sent, on both backends), then mark them sent.
        assert transactions.count == 2
        assert {r["status"] for r in ledger.receipts()} == {"sent"}
        assert len(list((settings.data_dir / "outbox").iterdir())) == 12


class Once:
    """A transport that cannot be asked whether it already sent (SQLite): each send must be
    recorded before the next begins, so a crash resends at most one message."""

    idempotent = False

    def __init__(self, ledger) -> None:
        self.ledger = ledger
        self.sent: list[str] = []

    def send(self, receipt):
        earlier = [self.ledger.receipt_for(pi)["status"] for pi in self.sent]
        assert earlier == ["sent"] * len(self.sent)
        self.sent.append(receipt["payment_intent"])
        return "smtp://example"


def test_a_transport_that_cannot_resend_safely_is_marked_after_each_receipt(tmp_path):
    with open_ledger(Settings(data_dir=tmp_path / "data")) as ledger:
        for n in range(3):
            ledger.record_fulfilment(intent(f"pi_{n}"), render)
        transport = Once(ledger)
        assert ReceiptMailer(ledger, transport).send_due() == 3
        assert len(transport.sent) == 3
        assert {r["status"] for r in ledger.receipts()} == {"sent"}


# The receipt message ----------------------------------------------------------------------------

RECEIPT = {
    "payment_intent": "pi_1",
    "order_id": "ord_1",
    "recipient": "jenny@example.com",
    "subject": "Your bookpay receipt: Œuvres complètes, a title long enough to be folded ($23.00)",
    "body": "Merci !\nLivre : Œuvres complètes\n",
}


def test_a_receipt_reads_back_as_written_whatever_its_text():
    from email import message_from_bytes, policy

    from bookpay.mailer import DEFAULT_SENDER, build_message

    raw = bytes(build_message(RECEIPT, DEFAULT_SENDER))
    assert raw.isascii() and max(len(line) for line in raw.splitlines()) <= 78
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["Subject"] == RECEIPT["subject"]
    assert parsed.get_content() == RECEIPT["body"]
    assert (parsed["To"], parsed["Message-ID"]) == (
        "jenny@example.com",
        "<receipt.pi_1@bookpay.localhost>",
    )
    plain = bytes(
        build_message({**RECEIPT, "subject": "Receipt", "body": "Thanks\n"}, "a@b.example")
    )
    assert b"\nSubject: Receipt\n" in plain and plain.endswith(b"\n\nThanks\n")  # text as it is


@pytest.mark.parametrize("field", ["recipient", "payment_intent", "order_id"])
def test_no_header_value_can_carry_a_line_break(field):
    from bookpay.mailer import DEFAULT_SENDER, build_message

    refused = "not a Stripe PaymentIntent id" if field == "payment_intent" else "line breaks"
    with pytest.raises(ValueError, match=refused):
        build_message({**RECEIPT, field: "x\r\nBcc: all@example.com"}, DEFAULT_SENDER)
    with pytest.raises(ValueError, match="line breaks"):
        build_message(RECEIPT, "shop@example.com\nBcc: all@example.com")


def test_an_smtp_sender_with_a_line_break_is_a_config_error():
    from bookpay.errors import ConfigError
    from bookpay.mailer import SmtpTransport

    with pytest.raises(ConfigError, match="from="):
        SmtpTransport("smtp://mail.example:25?from=shop@example.com%0D%0ABcc:+all@example.com")
