"""The orders ledger, fulfilment exactly once, and the receipt outbox (with a fake gateway).

Every test that touches the ledger runs on both backends (the ``database_url`` fixture: SQLite,
then PostgreSQL in a schema of the test's own); the few about SQLite's file say so in their name.
"""

from __future__ import annotations

import copy
import socketserver
import sqlite3
import threading

import pytest

from bookpay.catalog import Catalog
from bookpay.config import Settings
from bookpay.errors import NotFound, UsageError
from bookpay.fulfilment import Fulfiller
from bookpay.ledger import (
    DB_NAME,
    SCHEMA_VERSION,
    STATUSES,
    Ledger,
    LedgerUnavailable,
    advance,
    open_ledger,
    status_of_intent,
)
from bookpay.ledger.errors import LedgerTooNew
from bookpay.mailer import OutboxTransport, ReceiptMailer, SmtpTransport

SHOP = "shop_test"


class FakeGateway:
    """Stripe as far as the Fulfiller can tell: retrieve_intent over a dict of intents."""

    def __init__(self, *intents: dict) -> None:
        self.intents = {intent["id"]: intent for intent in intents}
        self.retrieved: list[str] = []

    def retrieve_intent(self, intent_id, *, expand=("latest_charge",)):
        self.retrieved.append(intent_id)
        if intent_id not in self.intents:
            raise NotFound(f"No such payment_intent: '{intent_id}'", code="resource_missing")
        return copy.deepcopy(self.intents[intent_id])


def intent(pi="pi_1", status="succeeded", item="1", amount=2300, currency="usd", **extra):
    data = {
        "id": pi,
        "object": "payment_intent",
        "status": status,
        "amount": amount,
        "currency": currency,
        "metadata": {
            "item_id": item,
            "integration": "bookpay",
            "book_title": "A book",
            "shop_id": SHOP,
        },
        "receipt_email": "jenny@example.com",
        "shipping": {
            "name": "Jenny Rosen",
            "address": {"line1": "1 Main St", "city": "Paris", "postal_code": "75001"},
        },
        "latest_charge": {"id": "ch_1", "billing_details": {"email": "billing@example.com"}},
        "last_payment_error": None,
    }
    data.update(extra)
    return data


@pytest.fixture
def settings(tmp_path, database_url):
    return Settings(data_dir=tmp_path / "data", database_url=database_url, shop_id=SHOP)


@pytest.fixture
def ledger(settings):
    ledger = open_ledger(settings)
    yield ledger
    ledger.close()


@pytest.fixture
def make_fulfiller(ledger, settings):
    made = []

    def make(*intents, mailer=None):
        fulfiller = Fulfiller(
            ledger, FakeGateway(*intents), Catalog.default(), settings, mailer=mailer
        )
        made.append(fulfiller)
        return fulfiller

    yield make
    for fulfiller in made:
        fulfiller.close()


# The schema --------------------------------------------------------------------------------------


def test_open_creates_the_folder_a_wal_database_and_the_schema_on_sqlite(tmp_path):
    ledger = Ledger.open(tmp_path / "a" / "b")
    try:
        assert ledger.path == tmp_path / "a" / "b" / "bookpay.sqlite3"
        assert ledger.schema_version == SCHEMA_VERSION
        conn = sqlite3.connect(ledger.path)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"orders", "events", "fulfilments", "receipts"} <= tables
        conn.close()
    finally:
        ledger.close()


def test_reopening_keeps_the_data_and_does_not_migrate_again(settings, ledger):
    ledger.record_intent(intent(status="processing"))
    again = open_ledger(settings)
    try:
        assert again.schema_version == SCHEMA_VERSION
        assert again.get_order("pi_1")["status"] == "processing"
    finally:
        again.close()


def test_a_ledger_from_a_newer_bookpay_is_refused_on_sqlite(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    conn = sqlite3.connect(tmp_path / "bookpay.sqlite3")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(LedgerTooNew, match="newer bookpay"):
        Ledger.open(tmp_path)


# A SQLite ledger that fails once it is open -------------------------------------------------------


def in_a_thread(call):
    """``call()``'s result or exception, on a thread of its own (a new SQLite connection)."""
    out = []

    def run():
        try:
            out.append(call())
        except Exception as exc:  # handed back to the test
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return out[0]


def test_a_sqlite_ledger_damaged_after_it_was_opened_is_unavailable(tmp_path):
    Ledger.open(tmp_path).close()  # all of it in the file, none in the write-ahead log
    with Ledger.open(tmp_path) as ledger:
        with open(ledger.path, "r+b") as file:
            file.write(b"not a database, " * 8)  # the header, once opened
        found = in_a_thread(ledger.list_orders)
        assert isinstance(found, LedgerUnavailable), found
        assert str(found) == (
            f"Cannot read the orders ledger {ledger.path}: file is not a database."
        )
        written = in_a_thread(lambda: ledger.record_intent(intent()))
        assert isinstance(written, LedgerUnavailable), written
        assert str(written).startswith(f"Cannot write the orders ledger {ledger.path}: ")


def test_a_failed_sqlite_write_is_unavailable_and_rolled_back(tmp_path):
    with Ledger.open(tmp_path) as ledger:
        ledger.record_intent(intent())
        failing = pytest.raises(LedgerUnavailable, match=r"^Cannot write .*: disk I/O error\.$")
        with failing, ledger.transaction() as tx:
            tx.run("DELETE FROM orders")
            raise sqlite3.OperationalError("disk I/O error")
        # Rolled back, and the thread's connection is not left inside a transaction.
        ledger.record_intent(intent("pi_2"))
        assert {order["payment_intent"] for order in ledger.list_orders()} == {"pi_1", "pi_2"}


def test_bookpays_own_sql_mistakes_are_not_the_ledgers_on_sqlite(tmp_path):
    with Ledger.open(tmp_path) as ledger:
        with pytest.raises(sqlite3.OperationalError, match="no such column"):
            ledger._read("SELECT no_such_column FROM orders")
        with pytest.raises(sqlite3.ProgrammingError):
            ledger._read("SELECT id FROM orders WHERE id = ?", ())
        # An OSError in a transaction is the code's in the block (a file it writes), not the
        # ledger's (SQLite says its own with its errors): it stays itself, and is rolled back.
        ledger.record_intent(intent())
        with pytest.raises(OSError, match="No space left") as raised, ledger.transaction() as tx:
            tx.run("DELETE FROM orders")
            raise OSError(28, "No space left on device")
        assert not isinstance(raised.value, LedgerUnavailable)
        assert [order["payment_intent"] for order in ledger.list_orders()] == ["pi_1"]


# Status -----------------------------------------------------------------------------------------


def test_status_rank_is_documented_order():
    assert STATUSES == (
        "pending",
        "processing",
        "failed",
        "authorized",
        "canceled",
        "paid",
        "partially_refunded",
        "refunded",
        "disputed",
        "dispute_lost",
    )


@pytest.mark.parametrize(
    ("current", "new", "expected"),
    [
        (None, "processing", "processing"),
        ("paid", "processing", "paid"),  # a late processing never undoes paid
        ("failed", "paid", "paid"),  # a retry after a decline succeeds
        ("processing", "failed", "failed"),
        ("paid", "failed", "paid"),
        ("partially_refunded", "refunded", "refunded"),
        ("refunded", "partially_refunded", "refunded"),
        ("refunded", "paid", "refunded"),
        ("disputed", "refunded", "disputed"),
        ("paid", "disputed", "disputed"),
        ("disputed", "dispute_lost", "dispute_lost"),
        ("dispute_lost", "paid", "dispute_lost"),
        ("canceled", "paid", "paid"),
        ("processing", "authorized", "authorized"),  # manual capture: the money is held
        ("failed", "authorized", "authorized"),  # another card was authorized after a decline
        ("authorized", "failed", "authorized"),  # a late decline of the earlier card
        ("authorized", "processing", "authorized"),
        ("authorized", "canceled", "canceled"),  # canceling releases the hold
        ("authorized", "paid", "paid"),  # captured
        ("paid", "authorized", "paid"),
    ],
)
def test_status_only_moves_forward(current, new, expected):
    assert advance(current, new) == expected


@pytest.mark.parametrize(
    ("state", "error", "expected"),
    [
        ("succeeded", None, "paid"),
        ("processing", None, "processing"),
        ("canceled", None, "canceled"),
        ("requires_payment_method", None, "pending"),
        ("requires_payment_method", {"code": "card_declined"}, "failed"),
        ("requires_action", None, "pending"),
        ("requires_capture", None, "authorized"),
    ],
)
def test_status_of_an_intent(state, error, expected):
    assert status_of_intent({"status": state, "last_payment_error": error}) == expected


def test_record_intent_creates_then_moves_forward_only(ledger):
    order = ledger.record_intent(intent(status="requires_payment_method"))
    assert order["id"].startswith("ord_")
    assert order["status"] == "pending"
    assert order["email"] == "jenny@example.com"
    assert order["shipping"]["name"] == "Jenny Rosen"
    assert order["charge"] == "ch_1"
    assert ledger.record_intent(intent(status="succeeded"))["status"] == "paid"
    later = ledger.record_intent(intent(status="processing"), status="processing")
    assert later["status"] == "paid"
    assert later["id"] == order["id"]
    assert ledger.get_order(order["id"]) == ledger.get_order("pi_1")


def test_get_order_unknown_is_not_found(ledger):
    with pytest.raises(NotFound, match="No order 'pi_nope'"):
        ledger.get_order("pi_nope")


def test_list_orders_filters_by_status_and_refuses_unknown_ones(ledger):
    ledger.record_intent(intent("pi_a", status="succeeded"))
    ledger.record_intent(intent("pi_b", status="processing"))
    assert [o["payment_intent"] for o in ledger.list_orders()] == ["pi_b", "pi_a"]
    assert [o["payment_intent"] for o in ledger.list_orders("paid")] == ["pi_a"]
    with pytest.raises(UsageError, match="Unknown status 'shipped'"):
        ledger.list_orders("shipped")


def test_events_are_recorded_once_by_id(ledger):
    assert ledger.receive_event("evt_1", "payment_intent.succeeded", "pi_1") == "new"
    assert ledger.receive_event("evt_1", "payment_intent.succeeded", "pi_1") == "retry"
    ledger.finish_event("evt_1", handled=True, outcome="fulfilled")
    assert ledger.receive_event("evt_1", "payment_intent.succeeded", "pi_1") == "duplicate"
    [event] = ledger.events_for("pi_1")
    assert event["id"] == "evt_1"
    assert event["deliveries"] == 3
    assert event["handled"] is True
    assert event["processed_at"] >= event["received_at"]
    assert ledger.events_for("pi_other") == []


# Fulfilment -------------------------------------------------------------------------------------


def test_fulfil_fulfils_once_and_writes_one_receipt(make_fulfiller, ledger, settings):
    fulfiller = make_fulfiller(intent())
    first = fulfiller.fulfil("pi_1")
    second = fulfiller.fulfil("pi_1")
    assert (first.outcome, second.outcome) == ("fulfilled", "already_fulfilled")
    assert first.fulfilled and second.fulfilled and first.newly_fulfilled
    assert first.order["fulfilled_at"] == second.order["fulfilled_at"]
    assert fulfiller.drain(5)
    [eml] = (settings.data_dir / "outbox").iterdir()
    assert eml.name == "pi_1.eml"
    text = eml.read_text()
    assert "pi_1" in text
    assert "To: jenny@example.com" in text
    assert "$23.00" in text
    assert "The Art of Doing Science and Engineering" in text
    assert [r["status"] for r in ledger.receipts()] == ["sent"]


def test_fulfil_is_exactly_once_under_concurrency(make_fulfiller, ledger, settings):
    fulfiller = make_fulfiller(intent())
    barrier = threading.Barrier(20)
    outcomes = []

    def go():
        barrier.wait()
        outcomes.append(fulfiller.fulfil("pi_1").outcome)

    threads = [threading.Thread(target=go) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["already_fulfilled"] * 19 + ["fulfilled"]
    assert ledger.fulfilment_count("pi_1") == 1
    assert fulfiller.drain(5)
    assert len(ledger.receipts()) == 1
    assert len(list((settings.data_dir / "outbox").iterdir())) == 1


def test_two_fulfillers_on_one_ledger_still_fulfil_once(settings, ledger, make_fulfiller):
    other_ledger = open_ledger(settings)
    try:
        one = make_fulfiller(intent())
        two = Fulfiller(other_ledger, FakeGateway(intent()), Catalog.default(), settings)
        try:
            outcomes = {one.fulfil("pi_1").outcome, two.fulfil("pi_1").outcome}
            assert outcomes == {"fulfilled", "already_fulfilled"}
            assert one.drain(5) and two.drain(5)
        finally:
            two.close()
    finally:
        other_ledger.close()
    assert len(list((settings.data_dir / "outbox").iterdir())) == 1


def test_fulfil_asks_stripe_and_refuses_an_unknown_intent(make_fulfiller, ledger):
    fulfiller = make_fulfiller()
    with pytest.raises(NotFound):
        fulfiller.fulfil("pi_forged")
    assert ledger.list_orders() == []


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"amount": 100}, "does not match the catalog price"),
        ({"currency": "eur"}, "does not match the catalog price"),
        (
            {"metadata": {"item_id": "99", "integration": "bookpay", "shop_id": SHOP}},
            "not in the catalog",
        ),
    ],
)
def test_fulfil_rejects_an_intent_that_does_not_pay_the_catalog_price(
    make_fulfiller, ledger, changes, reason
):
    fulfiller = make_fulfiller(intent(**changes))
    result = fulfiller.fulfil("pi_1")
    assert result.outcome == "rejected"
    assert reason in result.reason
    assert ledger.fulfilment_count() == 0
    assert ledger.get_order("pi_1")["fulfilled_at"] is None
    assert ledger.receipts() == []


def test_fulfil_ignores_an_intent_that_is_not_this_shops(make_fulfiller, ledger):
    fulfiller = make_fulfiller(intent(metadata={"item_id": "1"}))
    result = fulfiller.fulfil("pi_1")
    assert (result.outcome, result.order) == ("rejected", None)
    assert "not a bookpay PaymentIntent" in result.reason
    assert ledger.list_orders() == []


@pytest.mark.parametrize(
    ("shop", "reason"),
    [
        ("shop_other", "not ours: created by shop shop_other, this is shop shop_test"),
        (None, "not ours: it names no shop"),
    ],
)
def test_fulfil_ignores_another_shops_intent(make_fulfiller, ledger, shop, reason):
    """Two shops sharing one Stripe account (or emulator) fulfil only their own payments."""
    metadata = {"item_id": "1", "integration": "bookpay", "shop_id": shop}
    fulfiller = make_fulfiller(intent(metadata={k: v for k, v in metadata.items() if v}))
    result = fulfiller.fulfil("pi_1")
    assert (result.outcome, result.order) == ("rejected", None)
    assert result.reason.startswith(reason)
    assert ledger.list_orders() == []
    assert ledger.fulfilment_count() == 0


def test_fulfil_does_nothing_for_an_intent_that_has_not_succeeded(make_fulfiller, ledger):
    fulfiller = make_fulfiller(intent(status="processing"))
    result = fulfiller.fulfil("pi_1")
    assert result.outcome == "not_succeeded"
    assert ledger.get_order("pi_1")["status"] == "processing"
    assert ledger.fulfilment_count() == 0


# Receipts ---------------------------------------------------------------------------------------


class FlakyTransport:
    def __init__(self, inner, failures=1):
        self.inner, self.failures, self.calls = inner, failures, 0

    def send(self, receipt):
        self.calls += 1
        if self.calls <= self.failures:
            raise OSError("mail server down")
        return self.inner.send(receipt)


def test_a_failed_send_is_kept_and_retried(ledger, settings, make_fulfiller, monkeypatch):
    monkeypatch.setattr("bookpay.mailer.RETRY_DELAYS", (0.05,))
    transport = FlakyTransport(OutboxTransport(settings.data_dir / "outbox"))
    fulfiller = make_fulfiller(intent(), mailer=ReceiptMailer(ledger, transport))
    fulfiller.fulfil("pi_1")
    assert fulfiller.drain(5)
    [receipt] = ledger.receipts()
    assert (receipt["status"], receipt["attempts"]) == ("sent", 2)
    assert "mail server down" in receipt["last_error"]
    assert transport.calls == 2


def test_pending_receipts_are_sent_at_the_next_start(ledger, settings, make_fulfiller):
    class Down:
        def send(self, receipt):
            raise OSError("down")

    crashed = make_fulfiller(intent(), mailer=ReceiptMailer(ledger, Down()))
    crashed.fulfil("pi_1")
    assert not crashed.drain(0.3)
    crashed.close()
    # Make it due now, as it would be after the backoff; then "restart".
    with ledger.transaction() as conn:
        conn.execute("UPDATE receipts SET next_attempt_at = '2000-01-01T00:00:00.000Z'")
    restarted = make_fulfiller(intent())
    assert restarted.drain(5)
    assert (settings.data_dir / "outbox" / "pi_1.eml").is_file()


def test_the_outbox_never_writes_a_receipt_twice(tmp_path):
    transport = OutboxTransport(tmp_path)
    receipt = {
        "payment_intent": "pi_1",
        "order_id": "ord_1",
        "recipient": "a@example.com",
        "subject": "Receipt",
        "body": "first\n",
    }
    first = transport.send(receipt)
    second = transport.send({**receipt, "body": "second\n"})
    assert first == second == str(tmp_path / "pi_1.eml")
    assert "first" in (tmp_path / "pi_1.eml").read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["pi_1.eml"]


class _SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT."""

    def handle(self):
        self.wfile.write(b"220 fake ESMTP\r\n")
        while line := self.rfile.readline():
            command = line.decode().strip()
            verb = command.split(" ")[0].upper()
            if verb == "EHLO":
                self.wfile.write(b"250-fake\r\n250 AUTH PLAIN\r\n")
            elif verb == "AUTH":
                self.server.log.append(command)
                self.wfile.write(b"235 ok\r\n")
            elif verb in ("MAIL", "RCPT"):
                self.server.log.append(command)
                self.wfile.write(b"250 ok\r\n")
            elif verb == "DATA":
                self.wfile.write(b"354 go\r\n")
                data = []
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data.append(chunk)
                self.server.messages.append(b"".join(data).decode())
                self.wfile.write(b"250 queued\r\n")
            elif verb == "QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


@pytest.fixture
def smtp_server():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SmtpHandler)
    server.daemon_threads = True
    server.log, server.messages = [], []
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_receipts_go_through_smtp_when_configured(tmp_path, smtp_server, database_url):
    port = smtp_server.server_address[1]
    settings = Settings(
        data_dir=tmp_path / "data",
        smtp_url=f"smtp://shop:s%40cret@127.0.0.1:{port}?from=shop@example.com",
        database_url=database_url,
        shop_id=SHOP,
    )
    ledger = open_ledger(settings)
    fulfiller = Fulfiller(ledger, FakeGateway(intent()), Catalog.default(), settings)
    try:
        assert isinstance(fulfiller.mailer.transport, SmtpTransport)
        fulfiller.fulfil("pi_1")
        fulfiller.fulfil("pi_1")
        assert fulfiller.drain(5)
    finally:
        fulfiller.close()
        ledger.close()
    [message] = smtp_server.messages
    assert "pi_1" in message
    assert "Message-ID: <receipt.pi_1@bookpay.localhost>" in message
    assert "rcpt TO:<jenny@example.com>" in smtp_server.log
    assert any(entry.startswith("AUTH PLAIN") for entry in smtp_server.log)
    assert not (settings.data_dir / "outbox").exists()


def test_smtp_skips_an_order_without_email(tmp_path, smtp_server, database_url):
    port = smtp_server.server_address[1]
    settings = Settings(
        data_dir=tmp_path / "data",
        smtp_url=f"smtp://127.0.0.1:{port}",
        database_url=database_url,
        shop_id=SHOP,
    )
    ledger = open_ledger(settings)
    no_email = intent(receipt_email=None, latest_charge=None)
    fulfiller = Fulfiller(ledger, FakeGateway(no_email), Catalog.default(), settings)
    try:
        fulfiller.fulfil("pi_1")
        assert fulfiller.drain(5)
        assert [r["status"] for r in ledger.receipts()] == ["skipped"]
    finally:
        fulfiller.close()
        ledger.close()
    assert smtp_server.messages == []


def test_a_bad_smtp_url_is_a_config_error():
    from bookpay.errors import ConfigError

    with pytest.raises(ConfigError, match="BOOKPAY_SMTP_URL"):
        SmtpTransport("http://mail.example.com")
    # Not a ValueError from the URL's parser: the worker and serve say it in one line, exit 5.
    for url in ("smtp://u:p@[::1", "smtp://u:p@mail.example:99999", "smtp://u:p@mail.example:x"):
        with pytest.raises(ConfigError, match="BOOKPAY_SMTP_URL"):
            SmtpTransport(url)


def test_opening_an_up_to_date_ledger_does_not_wait_for_a_writer_on_sqlite(tmp_path):
    """`bookpay orders list` must not queue behind a busy server just to check the schema."""
    import time

    Ledger.open(tmp_path).close()
    writer = sqlite3.connect(tmp_path / DB_NAME, timeout=0)
    writer.execute("BEGIN IMMEDIATE")  # a server in the middle of a write
    try:
        started = time.monotonic()
        with Ledger.open(tmp_path) as reader:
            assert reader.list_orders() == []
        assert time.monotonic() - started < 2.0
    finally:
        writer.rollback()
        writer.close()


OPENER = """
import sys, time
from pathlib import Path
from bookpay.config import Settings
from bookpay.ledger import open_ledger
start = float(sys.argv[3])
time.sleep(max(0.0, start - time.time()))  # all open at the same moment
with open_ledger(Settings(data_dir=Path(sys.argv[1]), database_url=sys.argv[2])) as ledger:
    print(ledger.schema_version)
"""


def test_processes_starting_at_once_migrate_a_new_postgresql_ledger_once(tmp_path, postgres_url):
    """The migrations run under an advisory lock: the others wait, then find them done."""
    import subprocess
    import sys
    import time

    start = time.time() + 2.0
    openers = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, str(tmp_path / f"d{n}"), postgres_url, str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    results = [opener.communicate(timeout=60) for opener in openers]
    assert [opener.returncode for opener in openers] == [0] * 4, results
    assert [out.strip() for out, _ in results] == [str(SCHEMA_VERSION)] * 4
