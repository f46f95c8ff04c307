"""Receipts: unusable addresses, claims of crashed processes, the idle worker, private files.

On both backends where the ledger is involved (``database_url``).
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bookpay.config import Settings
from bookpay.ledger import open_ledger
from bookpay.mailer import (
    OutboxTransport,
    ReceiptMailer,
    address_problem,
    header_text,
    paid_on,
)

SHOP = "shop_test"


def intent(pi="pi_1", email="jenny@example.com"):
    return {
        "id": pi,
        "object": "payment_intent",
        "status": "succeeded",
        "amount": 2300,
        "currency": "usd",
        "metadata": {"item_id": "1", "integration": "bookpay", "shop_id": SHOP},
        "receipt_email": email,
        "shipping": None,
        "latest_charge": None,
        "last_payment_error": None,
    }


def render(order):
    return order["email"], "Your receipt", "Thank you\n"


@pytest.fixture
def settings(tmp_path, database_url):
    return Settings(data_dir=tmp_path / "data", database_url=database_url, shop_id=SHOP)


@pytest.fixture
def ledger(settings):
    ledger = open_ledger(settings)
    yield ledger
    ledger.close()


def outbox(settings) -> list[str]:
    folder = settings.data_dir / "outbox"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# Addresses ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("jenny@example.com", None),
        ("jenny.rosen+books@mail.example.co.uk", None),
        ("jenny@example.com\r\nBcc: all@example.com", "line break or control character"),
        ("jenny@example.com\n", "line break or control character"),
        ("jen\x1b[2Jny@example.com", "line break or control character"),
        ("Jenny Rosen <jenny@example.com>", "not a plain e-mail address"),
        ("jenny@example.com, eve@example.com", "not a plain e-mail address"),
        ("=cmd|'/C calc'!A0@evil.example", "not a plain e-mail address"),
        ("jenny", "not a plain e-mail address"),
        ("jenny@localhost", "not a plain e-mail address"),
        ("jenný@example.com", "not a plain e-mail address"),
        # A dot-atom, yet a mail reader decodes it (RFC 2047): a line break, another address.
        ("=?utf-8?q?x=0D=0Ay?=@example.com", "an encoded-word"),
        ("=?utf-8?b?amVubnlAZXZpbC5leGFtcGxl?=@example.com", "an encoded-word"),
        ("a=b?c@example.com", None),
        ("j" * 65 + "@example.com", "local part is longer than 64"),
        ("j@" + "e" * 250 + ".com", "longer than 254"),
    ],
)
def test_address_problem(address, problem):
    found = address_problem(address)
    assert (found is None) if problem is None else (problem in found)


def test_header_text_never_carries_a_line_break():
    assert header_text("Your receipt: A\r\nBcc: x@example.com\tbook") == (
        "Your receipt: A Bcc: x@example.com book"
    )


# Text from outside in the body ------------------------------------------------------------------

# Every character that ends a line for someone (str.splitlines, a mail reader, a terminal), and
# other controls: C0, DEL, C1 (CSI), a bidirectional override, a lone surrogate.
BREAKS = ["\r\n", "\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
OTHERS = ["\x00", "\x1b[2J", "\x7f", "\x9b31m", "\u202e", "\ud800"]
FORGED = "Total paid:     $0.00"


def hostile_intent(text: str) -> dict:
    """A paid PaymentIntent whose shipping name and address parts each try to start a line."""
    from test_orders import intent as paid_intent

    part = f"{text}{FORGED}"
    return paid_intent(
        shipping={
            "name": f"Jenny{part}",
            "address": {
                "line1": f"1 Main St{part}",
                "line2": f"Flat 2{part}",
                "city": f"Paris{part}",
                "state": f"IDF{part}",
                "postal_code": f"75001{part}",
                "country": "FR",
            },
        }
    )


def assert_one_line_each(body: str) -> None:
    from bookpay.terminal import printable

    lines = body.split("\n")
    assert body.splitlines() == lines[:-1]  # no line break but \n, which ends the body too
    assert all(printable(line) == line for line in lines)  # and no control character at all
    assert [line for line in lines if line.startswith("Total")] == ["Total paid:     $23.00"]
    at = lines.index("Shipping to:")
    shipping = lines[at + 1 : lines.index("", at)]
    starts = ["  Jenny", "  1 Main St", "  Flat 2", "  Paris", "  France"]
    assert len(shipping) == len(starts)
    assert [line[: len(start)] for line, start in zip(shipping, starts, strict=True)] == starts


@pytest.mark.parametrize("text", BREAKS + OTHERS)
def test_a_shipping_address_cannot_add_lines_to_a_receipt(ledger, settings, text):
    """The receipt as fulfilment renders and queues it, from the PaymentIntent's shipping
    (which the shopper's browser sets): each part stays on its own line, control-free."""
    from test_orders import FakeGateway

    from bookpay.catalog import Catalog
    from bookpay.fulfilment import Fulfiller

    fulfiller = Fulfiller(ledger, FakeGateway(hostile_intent(text)), Catalog.default(), settings)
    try:
        assert fulfiller.fulfil("pi_1").outcome == "fulfilled"
    finally:
        fulfiller.close()
    [receipt] = ledger.receipts()
    assert_one_line_each(receipt["body"])


def test_titles_rate_names_and_ids_in_a_receipt_are_one_line_each():
    """The other outside text of a body: a book's title, a shipping rate's name, a line's id."""
    from bookpay.terminal import printable

    order = {
        "id": "ord_1",
        "payment_intent": "pi_1",
        "fulfilled_at": "2026-01-01T00:00:00Z",
        "amount": 2300,
        "currency": "usd",
        "email": "jenny@example.com",
        "shipping": None,
        "quote": {
            "currency": "usd",
            "subtotal": 2000,
            "shipping": 300,
            "tax": 0,
            "shipping_rate_name": "Post\u2028Total paid:     $0.00\x9b",
        },
    }
    lines = [
        {
            "title": "Dune\x85Total paid:     $0.00\u202e",
            "item_id": "1\r\nTotal paid:     $0.00",
            "quantity": 1,
            "unit_amount": 2000,
            "line_amount": 2000,
        }
    ]
    _, subject, body = ReceiptMailer(None, None).render(order, lines)
    assert body.splitlines() == body.split("\n")[:-1]
    assert all(printable(line) == line for line in body.split("\n"))
    assert [line for line in body.split("\n") if line.startswith("Total")] == [
        "Total paid:     $23.00"
    ]
    assert "1 x Dune Total paid: $0.00 (book 1 Total paid: $0.00)" in body
    assert "Shipping:       $3.00 (Post Total paid: $0.00)" in body
    assert subject == "Your bookpay receipt: Dune Total paid: $0.00 ($23.00)"


def receipt_of(fulfilled_at, currency="usd", amount=2300) -> tuple[str, str]:
    order = {
        "id": "ord_1",
        "payment_intent": "pi_1",
        "fulfilled_at": fulfilled_at,
        "amount": amount,
        "currency": currency,
        "email": "jenny@example.com",
        "shipping": None,
    }
    line = {"title": "Dune", "item_id": "1", "quantity": 1}
    line |= {"unit_amount": amount, "line_amount": amount}
    _, subject, body = ReceiptMailer(None, None).render(order, [line])
    return subject, body


@pytest.mark.parametrize(
    ("fulfilled_at", "shown"),
    [
        ("2026-12-07T19:15:54.115Z", "7 December 2026, 19:15 UTC"),  # as the ledger writes it
        ("2026-03-01T00:59:59Z", "1 March 2026, 00:59 UTC"),
        ("2026-06-30T23:30:00+02:00", "30 June 2026, 21:30 UTC"),  # another offset, in UTC
        ("2026-06-30T21:30:00", "30 June 2026, 21:30 UTC"),  # none: the ledger's UTC
        ("soon\nTotal paid: $0", "soon Total paid: $0"),  # not a time: as it is, on its line
    ],
)
def test_a_receipt_says_when_it_was_paid_in_words_in_utc(fulfilled_at, shown, monkeypatch):
    """A person's date ("7 December 2026, 19:15 UTC"), not the ledger's ISO 8601 with its
    milliseconds; the month by name (never 12/07 or 07/12), in UTC whatever the shop's zone."""
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    try:
        _, body = receipt_of(fulfilled_at)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert f"Paid on:        {shown}\n" in body


def test_a_receipt_says_when_the_charge_was_made_not_when_the_order_was_fulfilled(ledger):
    """Fulfilled hours after the payment (a stopped serve catching up, a late redelivery): the
    receipt's "Paid on" is the Charge's ``created``, from the PaymentIntent retrieved at
    fulfilment, and the order keeps it; one fulfilled with no Charge to read says when it was
    fulfilled, as the receipts of orders from before the ledger kept it do."""
    paid = 1577880000  # 2020-01-01T12:00:00Z: long before this fulfilment
    charge = {"id": "ch_late", "object": "charge", "created": paid, "billing_details": {}}
    late = {**intent("pi_late"), "latest_charge": charge}
    lines = [
        {"title": "Dune", "item_id": "1", "quantity": 1, "unit_amount": 2300, "line_amount": 2300}
    ]
    mailer = ReceiptMailer(None, None)
    order, _ = ledger.record_fulfilment(late, lambda order: mailer.render(order, lines))
    assert order["fulfilled_at"] > "2020-01-02"
    assert "Paid on:        1 January 2020, 12:00 UTC\n" in ledger.receipt_for("pi_late")["body"]
    assert ledger.get_order("pi_late")["paid_at"] == "2020-01-01T12:00:00.000Z"
    order, _ = ledger.record_fulfilment(intent("pi_none"), lambda o: mailer.render(o, lines))
    assert ledger.get_order("pi_none")["paid_at"] is None
    shown = paid_on(order["fulfilled_at"])
    assert f"Paid on:        {shown}\n" in ledger.receipt_for("pi_none")["body"]


def test_a_receipt_in_isk_shows_whole_kronur():
    """Stripe's 674100 ISK (two decimals) is 6,741 ISK to the shopper, as on the pages."""
    subject, body = receipt_of("2026-12-07T19:15:54.115Z", "isk", 674100)
    assert "    at 6,741 ISK each: 6,741 ISK\n" in body
    assert "Total paid:     6,741 ISK\n" in body
    assert subject == "Your bookpay receipt: Dune (6,741 ISK)"


def test_a_partially_captured_order_s_receipt_says_the_amount_taken(ledger):
    """The receipt is rendered at fulfilment from the order Stripe's retrieved PaymentIntent
    made: after a partial capture the total paid is what was captured (``amount_received``),
    with the amount authorized and what of it was released, not the quote's total."""
    held = {**intent("pi_part"), "amount": 2967, "amount_received": 1500}
    quote = {"currency": "usd", "subtotal": 2300, "shipping": 500, "tax": 167}
    lines = [
        {"title": "Dune", "item_id": "1", "quantity": 1, "unit_amount": 2300, "line_amount": 2300}
    ]
    mailer = ReceiptMailer(None, None)
    ledger.record_fulfilment(held, lambda order: mailer.render({**order, "quote": quote}, lines))
    receipt = ledger.receipt_for("pi_part")
    body = receipt["body"].split("\n")
    assert body[body.index("Tax:            $1.67") + 1 :][:2] == [
        "Authorized:     $29.67, of which $14.67 was released, not charged",
        "Total paid:     $15.00",
    ]
    assert receipt["subject"] == "Your bookpay receipt: Dune ($15.00)"
    # Paid in full: no such line, the total paid is the amount.
    ledger.record_fulfilment(intent("pi_full"), lambda order: mailer.render(order, lines))
    body = ledger.receipt_for("pi_full")["body"]
    assert "Total paid:     $23.00\n" in body and "Authorized" not in body


def test_an_unusable_address_is_never_queued_nor_sent(ledger, settings):
    bad = intent(email="jenny@example.com\r\nBcc: everyone@example.com")
    _, done = ledger.record_fulfilment(bad, render, recipient_problem=address_problem)
    assert done
    [receipt] = ledger.receipts()
    assert receipt["status"] == "undeliverable"
    assert "line break" in receipt["last_error"]
    mailer = ReceiptMailer(ledger, OutboxTransport(settings.data_dir / "outbox"))
    assert mailer.send_due() == 0
    assert mailer.drain(1)
    assert outbox(settings) == []
    assert ledger.receipt_for("pi_1")["attempts"] == 0


def test_an_unusable_address_queued_by_an_older_bookpay_is_marked_not_retried(ledger, settings):
    ledger.record_fulfilment(intent(email="jenny@example.com\nX: y"), render)  # no check
    assert ledger.receipts()[0]["status"] == "pending"

    class Refuses:
        calls = 0

        def send(self, receipt):
            Refuses.calls += 1
            raise ValueError("Header values may not contain linefeed or carriage return")

    mailer = ReceiptMailer(ledger, Refuses())
    mailer.send_due()
    receipt = ledger.receipt_for("pi_1")
    assert (receipt["status"], Refuses.calls) == ("undeliverable", 0)
    assert ledger.next_receipt_due() is None  # never due again


# Claims of a crashed process --------------------------------------------------------------------

HOLDER = """
import sys, time
from pathlib import Path
from bookpay.config import Settings
from bookpay.ledger import open_ledger
url = sys.argv[2] or None
ledger = open_ledger(Settings(data_dir=Path(sys.argv[1]), database_url=url))
with ledger.claim_receipts() as claims:
    print(len(claims), flush=True)
    time.sleep(600)
"""


def test_a_crashed_processs_claim_is_taken_over_at_once(ledger, settings):
    ledger.record_fulfilment(intent(), render)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(settings.data_dir), settings.database_url or ""],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "1"  # it holds the receipt
        mailer = ReceiptMailer(ledger, OutboxTransport(settings.data_dir / "outbox"))
        assert mailer.send_due() == 0  # a live holder's claim is respected
        assert outbox(settings) == []
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        started = time.monotonic()
        assert mailer.drain(15)
        assert time.monotonic() - started < 5  # not after a lease runs out
    finally:
        holder.kill()
        holder.wait(10)
    assert outbox(settings) == ["pi_1.eml"]
    assert ledger.receipt_for("pi_1")["status"] == "sent"


def in_own_pid_namespace() -> list[str]:
    """A command prefix running a process under this host name with pids of its own, as a
    container sharing the host's name (`--uts=host`, `--network host`) does. A user namespace
    of its own lets anyone make one where Linux allows unprivileged namespaces (most
    distributions, CI); skipped, saying why, only where the system refuses them."""
    prefix = ["unshare", "--user", "--map-root-user", "--pid", "--fork", "--kill-child",
              "--mount-proc"]  # fmt: skip
    try:
        subprocess.run([*prefix, "true"], check=True, capture_output=True, timeout=30)
    except FileNotFoundError:
        pytest.skip("unshare (util-linux) is not installed: no pid namespace to run a holder in")
    except subprocess.CalledProcessError as exc:
        said = exc.stderr.decode(errors="replace").strip()
        pytest.skip(f"this system refuses a pid namespace to this user ({said})")
    return prefix


def test_a_live_holder_whose_pids_are_not_ours_keeps_its_claim(ledger, settings):
    """Its pid means nothing here (in its namespace it may well be 1): only its lease ends it."""
    ledger.record_fulfilment(intent(), render)
    holder = subprocess.Popen(
        [
            *in_own_pid_namespace(),
            sys.executable, "-c", HOLDER, str(settings.data_dir), settings.database_url or "",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "1"  # it holds the receipt, alive
        mailer = ReceiptMailer(ledger, OutboxTransport(settings.data_dir / "outbox"))
        assert mailer.send_due() == 0
        assert outbox(settings) == []
        assert ledger.receipt_for("pi_1")["status"] == "pending"
    finally:
        holder.kill()
        holder.wait(10)


def test_a_claim_ends_with_the_block_when_nothing_was_sent(ledger):
    ledger.record_fulfilment(intent(), render)
    with ledger.claim_receipts() as claims:
        assert len(claims) == 1
        with ledger.claim_receipts() as others:
            assert len(others) == 0  # held
    with ledger.claim_receipts() as claims:
        assert len(claims) == 1  # released, not leased away for minutes


# The idle worker --------------------------------------------------------------------------------


class CountingLedger:
    """The ledger, counting how often (and when) the worker looks for receipts."""

    def __init__(self, ledger):
        self._ledger = ledger
        self.claims = 0
        self.reads = 0  # of when the next receipt is due
        self.looked_at: list[float] = []  # time.monotonic() of each look
        self._looked = threading.Condition()

    def next_receipt_due(self):
        self.reads += 1
        return self._ledger.next_receipt_due()

    def claim_receipts(self, **kwargs):
        with self._looked:
            self.claims += 1
            self.looked_at.append(time.monotonic())
            self._looked.notify_all()
        return self._ledger.claim_receipts(**kwargs)

    def wait_for_claims(self, count: int, timeout: float = 10.0) -> None:
        with self._looked:
            assert self._looked.wait_for(lambda: self.claims >= count, timeout), self.claims

    def __getattr__(self, name):
        return getattr(self._ledger, name)


def test_the_idle_worker_sleeps_until_woken(ledger, settings):
    counting = CountingLedger(ledger)
    mailer = ReceiptMailer(counting, OutboxTransport(settings.data_dir / "outbox"))
    mailer.start()
    try:
        time.sleep(1.0)
        # One look at start (a read: nothing due, nothing claimed), then asleep.
        assert (counting.reads, counting.claims) == (2, 0)
        ledger.record_fulfilment(intent(), render)
        mailer.wake()
        assert mailer.drain(5)
    finally:
        mailer.close()
    assert outbox(settings) == ["pi_1.eml"]


def test_the_worker_sleeps_until_the_next_receipt_is_due(ledger, settings):
    ledger.record_fulfilment(intent(), render)
    with ledger.transaction() as tx:
        tx.execute("UPDATE receipts SET next_attempt_at = ?", (_in(30),))
    mailer = ReceiptMailer(ledger, OutboxTransport(settings.data_dir / "outbox"))
    assert 25 < mailer._idle_wait(0) <= 30


def test_the_worker_does_not_spin_on_receipts_another_process_is_sending(
    ledger, settings, monkeypatch
):
    from bookpay import mailer as mailer_module

    monkeypatch.setattr(mailer_module, "BUSY_WAIT", (0.1, 5.0))  # 0.5 s, 1 s, 2 s... in 5x
    ledger.record_fulfilment(intent(), render)
    counting = CountingLedger(ledger)
    mailer = ReceiptMailer(counting, OutboxTransport(settings.data_dir / "outbox"))
    with open_ledger(settings) as other, other.claim_receipts() as held:
        assert len(held) == 1  # a live holder sends it (slowly)
        mailer.start()
        try:
            counting.wait_for_claims(4)
        finally:
            mailer.close()
    # Backing off 0.1, 0.2, 0.4 s..., not looking again at once, nor every 0.1 s.
    gaps = [later - earlier for earlier, later in itertools.pairwise(counting.looked_at[:4])]
    assert all(gap >= wait * 0.95 for gap, wait in zip(gaps, (0.1, 0.2, 0.4), strict=True)), gaps


def test_an_idle_worker_looks_every_30_s_for_what_another_process_left(ledger, settings):
    """Two `serve` on one ledger: a receipt claimed by the one that was killed was sent by the
    other up to 10 minutes later (IDLE_LOOK was 600 s: nothing wakes a process for a receipt
    another one queued). Each look at an outbox with nothing due is one read."""
    from test_worker_backoff import Clock, Waits

    from bookpay.ledger import now_iso
    from bookpay.ledger.process import new_token

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    holder = new_token().split("/")
    holder[2:4] = [str(dead.pid), "-"]  # a process of this machine, ended
    transport = Counted()
    mailer = ReceiptMailer(ledger, transport)
    waits = Waits(Clock())
    real_wait = waits.wait

    def wait(timeout):  # asleep, with nothing due: the other process pays, claims, dies
        if len(waits.timeouts) == 1:
            mailer._stop.set()
        else:
            with open_ledger(settings) as other:
                other.record_fulfilment(intent(), render)
                with other.transaction() as tx:
                    tx.execute(
                        "UPDATE receipts SET claimed_by = ?, claimed_until = ?",
                        ("/".join(holder), now_iso(600)),
                    )
        return real_wait(timeout)

    waits.wait = wait
    mailer._wake = waits
    mailer._run()
    assert waits.timeouts[0] <= 30  # the first look's sleep, nothing due then
    assert transport.sent == ["pi_1"]  # at the next look
    assert ledger.receipt_for("pi_1")["status"] == "sent"


def test_a_look_at_an_outbox_with_nothing_due_takes_no_write_lock(ledger, settings):
    """`bookpay worker --poll 1` took a write transaction (SQLite's lock is the whole
    database's, which webhooks wait for) every second to claim nothing; a read first, as the
    sibling canceler does."""
    writes = []
    real_write = ledger.backend.write

    def write():
        writes.append(True)
        return real_write()

    ledger.backend.write = write
    mailer = ReceiptMailer(ledger, Counted())
    assert mailer.send_due() == 0  # nothing pending
    assert writes == []
    ledger.record_fulfilment(intent(), render)
    with real_write() as tx:
        tx.execute("UPDATE receipts SET next_attempt_at = ?", (_in(30),))
    writes.clear()
    assert mailer.send_due() == 0  # pending, due in 30 s
    assert writes == []
    with real_write() as tx:
        tx.execute("UPDATE receipts SET next_attempt_at = ?", (_in(-1),))
    assert mailer.send_due() == 1  # due: claimed and sent
    assert writes


def _in(seconds: float) -> str:
    from bookpay.ledger import now_iso

    return now_iso(seconds)


# Temporary files --------------------------------------------------------------------------------


def test_temporary_files_of_dead_writers_are_removed_at_start(tmp_path):
    folder = tmp_path / "outbox"
    folder.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    (folder / f".writing-{dead}-abc.eml").write_text("half a message")
    (folder / ".writing-legacy123.eml").write_text("from an older bookpay")
    alive = folder / f".writing-{os.getppid()}-def.eml"  # someone writing right now
    alive.write_text("being written")
    (folder / "pi_1.eml").write_text("a receipt")

    class NoLedger:
        def claim_receipts(self, **kwargs):
            raise RuntimeError("closed")

        def next_receipt_due(self):
            return None

    mailer = ReceiptMailer(NoLedger(), OutboxTransport(folder))
    mailer.start()
    mailer.close()
    assert sorted(p.name for p in folder.iterdir()) == [alive.name, "pi_1.eml"]


# Private files ----------------------------------------------------------------------------------


def test_the_data_folder_and_its_files_are_private(tmp_path, monkeypatch):
    old = os.umask(0o022)  # the usual umask, which makes files readable by everyone
    try:
        settings = Settings(data_dir=tmp_path / "data", shop_id=SHOP)
        with open_ledger(settings) as ledger:
            ledger.record_fulfilment(intent(), render)
            mailer = ReceiptMailer(ledger, OutboxTransport(settings.data_dir / "outbox"))
            mailer.send_due()
            modes = {
                p.relative_to(settings.data_dir).as_posix(): p.stat().st_mode & 0o777
                for p in [settings.data_dir, *settings.data_dir.rglob("*")]
            }
    finally:
        os.umask(old)
    assert modes == {
        ".": 0o700,
        "bookpay.sqlite3": 0o600,
        "bookpay.sqlite3-wal": 0o600,
        "bookpay.sqlite3-shm": 0o600,
        "bookpay.sqlite3-turn": 0o600,  # the writers' turn across processes
        "outbox": 0o700,
        "outbox/pi_1.eml": 0o600,
    }


def test_an_existing_ledger_file_is_made_private(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "bookpay.sqlite3").touch(mode=0o644)
    os.chmod(folder / "bookpay.sqlite3", 0o644)
    open_ledger(Settings(data_dir=folder)).close()
    assert (folder / "bookpay.sqlite3").stat().st_mode & 0o777 == 0o600


def test_the_emulator_state_started_by_serve_is_private(tmp_path):
    from bookpay.web.emulator_link import ensure_emulator

    old = os.umask(0o022)
    try:
        settings = Settings(data_dir=tmp_path / "data", emulator_url="http://127.0.0.1:9")
        settings, emulator = ensure_emulator(settings, "127.0.0.1", 0)
    finally:
        os.umask(old)
    try:
        assert emulator is not None
        files = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "data").iterdir()}
        assert files and set(files.values()) == {0o600}, files
        assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700
    finally:
        emulator.stop()


# The .eml file --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "subject, body",
    [
        ("Your bookpay receipt: Dune ($9.00)", "Thank you\n\nTotal paid:     $9.00\n"),
        (
            "Your bookpay receipt: The Art of Computer Programming, Volume 1: Fundamental "
            "Algorithms, third edition, and a title longer still ($23.00)",
            "Thank you\n",
        ),
        ("Your bookpay receipt: Überleben ($9.00)", "Danke schön\n"),
        ("x" * 90 + " " + "y" * 90, "Thank you\n"),
        # A title that a mail reader would decode (RFC 2047) into other text, even line breaks.
        ("Your bookpay receipt: =?utf-8?q?Free=0D=0ATotal_paid:_$0?= ($9.00)", "Thank you\n"),
        ("Your bookpay receipt: =?utf-8?b?VG90YWwgcGFpZDogJDAuMDA=?= ($9.00)", "Thank you\n"),
        # A title of one word longer than a line may be (RFC 5322 2.1.1: 998 characters).
        ("Your bookpay receipt: " + "x" * 1200 + " ($9.00)", "Thank you\n"),
        ("Your bookpay receipt: Dune 📚 ($9.00)", "a\n.\nSubject: x\n" + "é" * 1200 + "\n"),
    ],
)
def test_a_receipt_file_reads_back_as_the_message_it_was_built_from(tmp_path, subject, body):
    import email
    from email.policy import default

    receipt = {
        "payment_intent": "pi_1",
        "order_id": "ord_0123456789abcdef",
        "recipient": "jenny@example.com",
        "subject": subject,
        "body": body,
    }
    path = OutboxTransport(tmp_path / "outbox").send(receipt)
    data = Path(path).read_bytes()
    message = email.message_from_bytes(data, policy=default)
    assert message["Subject"] == subject
    assert message["To"] == "jenny@example.com"
    assert message["Message-ID"] == "<receipt.pi_1@bookpay.localhost>"
    assert message["X-Bookpay-Order"] == "ord_0123456789abcdef"
    assert message.get_content() == body
    # Folded at RFC 5322's 78 characters where it can be: a longer line is one unbreakable word.
    head = data.split(b"\n\n")[0].split(b"\n")
    assert all(len(line) <= 78 or b" " not in line.strip().split(b": ")[-1] for line in head)
    assert max(len(line) for line in data.split(b"\n")) <= 998


def test_a_batch_is_written_whole_but_for_the_receipt_that_failed(tmp_path, monkeypatch):
    """The outbox writes a batch in passes (files, flushes, links): a failure stays with its own
    receipt, nothing half-written is left, and every final file is one that was flushed first."""
    import bookpay.mailer as mailer

    flushed, linked = [], []
    real_flush = mailer._flush_to_disk

    def flush(temp):
        flushed.append(Path(temp).read_bytes())
        real_flush(temp)

    def link(temp, final):
        linked.append(len(flushed))  # how many files were on the disk by then
        if final.name == "pi_2.eml":
            raise PermissionError("no room for this one")
        os.link(temp, final)

    monkeypatch.setattr(mailer, "_flush_to_disk", flush)
    monkeypatch.setattr(mailer, "_link", link)
    transport = OutboxTransport(tmp_path)
    receipts = [
        {"payment_intent": f"pi_{n}", "order_id": f"ord_{n}", "recipient": None,
         "subject": "Receipt", "body": f"receipt {n}\n"}
        for n in range(1, 4)
    ]  # fmt: skip
    first, second, third = transport.send_all(receipts)
    assert (first, third) == (str(tmp_path / "pi_1.eml"), str(tmp_path / "pi_3.eml"))
    assert isinstance(second, PermissionError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pi_1.eml", "pi_3.eml"]
    assert linked == [3, 3, 3]  # every file was flushed before any was linked
    assert {Path(first).read_bytes(), Path(third).read_bytes()} <= set(flushed)
    # Written again, the batch finds the files there and writes nothing twice.
    flushed.clear()
    assert transport.send_all(receipts[:1]) == [first] and flushed == []


def test_a_full_disk_leaves_no_receipt_file_and_the_next_attempt_writes_it_whole(
    tmp_path, monkeypatch
):
    """ENOSPC when linking the file into place (a new name needs room in its folder) sent it
    to the copy meant for filesystems without hard links, which left an empty ``pi_1.eml``
    behind: the next attempt found it and marked the receipt sent."""
    import errno

    import bookpay.mailer as mailer

    real_fdopen = os.fdopen

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    def fdopen(fd, *args, **kwargs):
        handle = real_fdopen(fd, *args, **kwargs)
        if os.readlink(f"/proc/self/fd/{fd}").endswith("pi_1.eml"):
            handle.write = full  # the final name: created, but nothing fits in it
        return handle

    monkeypatch.setattr(mailer.os, "link", full)
    monkeypatch.setattr(mailer.os, "rename", full)
    monkeypatch.setattr(mailer.os, "fdopen", fdopen)
    transport = OutboxTransport(tmp_path)
    receipt = {"payment_intent": "pi_1", "order_id": "ord_1", "recipient": None,
               "subject": "Receipt", "body": "Thank you\n"}  # fmt: skip
    [result] = transport.send_all([receipt])
    assert isinstance(result, OSError) and result.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []  # neither a temporary file nor an empty receipt
    monkeypatch.undo()  # room again
    path = transport.send(receipt)
    assert Path(path).read_bytes().endswith(b"\n\nThank you\n")

    def no_links(*args):
        raise PermissionError(errno.EPERM, "Operation not permitted")  # vfat, say

    monkeypatch.setattr(mailer.os, "link", no_links)
    path = transport.send({**receipt, "payment_intent": "pi_2"})
    assert Path(path).read_bytes().endswith(b"\n\nThank you\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pi_1.eml", "pi_2.eml"]


def test_over_smtp_each_receipt_is_marked_sent_before_the_next_is_sent(ledger):
    """A sender that cannot send twice harmlessly (SMTP) has each receipt's fate committed as
    soon as it is known: on PostgreSQL the marks waited for the end of the claim's transaction,
    so a process dying at the third receipt of a claim sent the first two again."""

    class Crash(BaseException):
        """The process dies (nothing after it in this process runs)."""

    class DiesAtTheSecond:
        sent: list[str] = []

        def send(self, receipt):
            if self.sent:
                raise Crash
            self.sent.append(receipt["payment_intent"])
            return "smtp://mail.example.com:25"

    for n in (1, 2):
        ledger.record_fulfilment(intent(f"pi_{n}"), render)
    with pytest.raises(Crash):
        ReceiptMailer(ledger, DiesAtTheSecond()).send_due()
    [first] = DiesAtTheSecond.sent
    assert ledger.receipt_for(first)["status"] == "sent"  # never sent again


def test_an_outbox_that_is_a_file_fails_each_receipt_with_the_reason_and_is_left_alone(
    ledger, settings
):
    """A file where the outbox folder should be was made 0700 (executable) and written into as
    a folder; the receipts wait, tried again later, the reason shown by ``orders show``."""
    settings.data_dir.mkdir(exist_ok=True)
    folder = settings.data_dir / "outbox"
    folder.write_text("not a folder")
    os.chmod(folder, 0o600)
    ledger.record_fulfilment(intent(), render)
    ReceiptMailer(ledger, OutboxTransport(folder)).send_due()
    receipt = ledger.receipt_for("pi_1")
    assert (receipt["status"], receipt["attempts"]) == ("pending", 1)
    assert receipt["last_error"] == f"NotADirectoryError: [Errno 20] Not a directory: '{folder}'"
    assert ledger.next_receipt_due() > receipt["created"]  # later, not at once
    assert (folder.read_text(), folder.stat().st_mode & 0o777) == ("not a folder", 0o600)


class Counted:
    """An SMTP-like transport (never sends twice harmlessly) that counts its sends."""

    def __init__(self):
        self.sent: list[str] = []

    def send(self, receipt):
        self.sent.append(receipt["payment_intent"])
        return "smtp://mail.example.com:25"


def failing_marks(ledger, monkeypatch, times: int) -> list[int]:
    """The ledger fails the next ``times`` writes of a receipt's fate (LedgerUnavailable, as a
    lock held past its timeout or a lost connection); ``left[0]`` = 0 brings it back."""
    from contextlib import contextmanager

    from bookpay.ledger.errors import LedgerUnavailable

    left = [times]
    write = ledger.backend.write

    class Flaky:
        def __init__(self, tx):
            self.tx = tx

        def __getattr__(self, name):
            return getattr(self.tx, name)

        def run(self, sql, params=()):
            if left[0] and "SET status" in sql:
                left[0] -= 1
                raise LedgerUnavailable("Cannot write the orders ledger: database is locked.")
            return self.tx.run(sql, params)

    @contextmanager
    def flaky_write():
        with write() as tx:
            yield Flaky(tx)

    monkeypatch.setattr(ledger.backend, "write", flaky_write)
    return left


def test_a_mark_that_fails_once_is_tried_again_at_once(ledger, monkeypatch):
    """The ledger failed the mark of a receipt the server took: the claim was held for its
    10-minute lease (SQLite), or let go unmarked (PostgreSQL), and the receipt sent again."""
    failing_marks(ledger, monkeypatch, 1)
    ledger.record_fulfilment(intent(), render)
    transport = Counted()
    started = time.monotonic()
    assert ReceiptMailer(ledger, transport).send_due() == 1
    assert time.monotonic() - started < 3
    receipt = ledger.receipt_for("pi_1")
    assert (receipt["status"], receipt["attempts"], receipt["claimed_by"]) == ("sent", 1, None)
    assert transport.sent == ["pi_1"]


def test_a_mark_the_ledger_keeps_failing_is_written_before_the_next_claim(ledger, monkeypatch):
    """Past the few quick tries, the round fails; the next one writes the mark first and never
    sends that receipt again, nor waits for the lease."""
    from bookpay.ledger import outbox
    from bookpay.ledger.errors import LedgerUnavailable

    monkeypatch.setattr(outbox, "FATE_RETRIES", (0.01, 0.01), raising=False)
    left = failing_marks(ledger, monkeypatch, 100)
    ledger.record_fulfilment(intent(), render)
    transport = Counted()
    worker = ReceiptMailer(ledger, transport)
    with pytest.raises(LedgerUnavailable):
        worker.send_due()
    left[0] = 0  # the ledger is back
    worker.send_due()
    receipt = ledger.receipt_for("pi_1")
    assert (receipt["status"], receipt["claimed_by"]) == ("sent", None)
    assert transport.sent == ["pi_1"]


def test_a_round_the_ledger_fails_is_one_line_in_the_log_not_a_traceback(caplog):
    from bookpay.ledger.errors import LedgerUnavailable
    from bookpay.worker import Worker

    class Down(Worker):
        rounds = 0

        def work(self):
            self.rounds += 1
            raise LedgerUnavailable("Cannot write the orders ledger x: database is locked.")

        def _idle_wait(self, handled):
            return 10.0

    worker = Down()
    with caplog.at_level("WARNING", logger="bookpay.worker"):
        worker.start()
        deadline = time.monotonic() + 5
        while not worker.rounds and time.monotonic() < deadline:
            time.sleep(0.01)
        worker.close()
    [record] = caplog.records
    assert "database is locked" in record.getMessage()
    assert record.exc_info is None


class Refusing:
    """An SMTP-like transport whose server refuses some recipients for good (550) and drops
    the connection for the others."""

    def send(self, receipt):
        import smtplib

        if receipt["recipient"].startswith("gone"):
            refusal = (550, b"5.1.1 no such user")
            raise smtplib.SMTPRecipientsRefused({receipt["recipient"]: refusal})
        raise ConnectionResetError("the server hung up")


def test_each_receipts_fate_is_a_line_of_serves_log_however_many_come_at_once(ledger, capsys):
    """serve's log holds back a repeated line by its template for 10 s: of two receipts
    refused (or failing) within 10 s only the first was said."""
    from bookpay.commands.serve import _configure_logging, _remove_handler

    for n in range(3):
        ledger.record_fulfilment(intent(f"pi_gone{n}", f"gone{n}@example.com"), render)
        ledger.record_fulfilment(intent(f"pi_later{n}", f"later{n}@example.com"), render)
    handlers = _configure_logging(debug=False)
    try:
        assert ReceiptMailer(ledger, Refusing()).send_due() == 6
    finally:
        _remove_handler(handlers)
    err = capsys.readouterr().err
    for n in range(3):
        assert f"(pi_gone{n}) refused for good: refused by the mail server: 550" in err
        assert f"(pi_later{n}) not sent (ConnectionResetError: the server hung up)" in err
    assert "more like it" not in err


def test_an_interrupt_while_the_receipts_stop_still_stops_the_tax_records(ledger, settings):
    from test_orders import FakeGateway

    from bookpay.catalog import Catalog
    from bookpay.fulfilment import Fulfiller

    fulfiller = Fulfiller(ledger, FakeGateway(intent()), Catalog.default(), settings)
    stopped = []
    real_close = fulfiller.taxes.close

    def interrupted() -> None:
        raise KeyboardInterrupt  # a second Ctrl-C, which the mailer's close raises again

    real_mailer_close = fulfiller.mailer.close
    fulfiller.mailer.close = interrupted
    fulfiller.taxes.close = lambda *args: stopped.append(True) or real_close(*args)
    try:
        with pytest.raises(KeyboardInterrupt):
            fulfiller.close()
    finally:
        real_mailer_close()  # its thread, left running by the stand-in, outlives no test
    assert stopped == [True]


@pytest.mark.parametrize(
    ("left_at_work", "ledger_in_use"), [(False, False), (True, False), (False, True)]
)
def test_the_shop_closes_its_ledger_only_when_no_worker_is_left_at_work(
    settings, monkeypatch, left_at_work, ledger_in_use
):
    """`bookpay serve` stopping: a second interrupt during the workers' stop still closes the
    connections to Stripe, and the ledger too unless a worker or a request thread still uses
    it (closing a connection in use can crash the process)."""
    from bookpay.fulfilment import Fulfiller
    from bookpay.ledger.ledger import Ledger
    from bookpay.payments import Gateway
    from bookpay.server import Services

    closed = []
    monkeypatch.setattr(Ledger, "close", lambda self: closed.append("ledger"))
    monkeypatch.setattr(Gateway, "close", lambda self: closed.append("gateway"))

    def interrupted(self) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Fulfiller, "close", interrupted)
    monkeypatch.setattr(Fulfiller, "at_work", property(lambda self: left_at_work))
    services = Services(settings)
    fulfiller = services.fulfiller  # builds the ledger and the gateway too
    try:
        with pytest.raises(KeyboardInterrupt):
            services.close(ledger_in_use=ledger_in_use)
    finally:  # the real workers and ledger, which the stand-ins left open, outlive no test
        monkeypatch.undo()
        fulfiller.close()
        services.ledger.close()
        services.gateway.close()
    in_use = left_at_work or ledger_in_use
    assert sorted(closed) == (["gateway"] if in_use else ["gateway", "ledger"])


def test_an_address_a_mail_reader_would_decode_is_never_put_in_a_header(ledger, settings):
    """``=?utf-8?q?x=0D=0Ay?=@example.com`` is a plain dot-atom, but the email package decodes
    it (as mail readers do) into a local part with a line break, and refused to read the To
    header of the receipt: such a receipt is undeliverable, and every file written parses."""
    import email
    from email.policy import default

    for pi, email_address in [("pi_1", "=?utf-8?q?x=0D=0Ay?=@example.com"), ("pi_2", None)]:
        ledger.record_fulfilment(
            intent(pi, email_address),
            lambda order: ReceiptMailer(None, None).render(
                order,
                [dict(title="Dune", item_id="1", quantity=1, unit_amount=2300, line_amount=2300)],
            ),
            recipient_problem=address_problem,
        )
    assert ledger.receipt_for("pi_1")["status"] == "undeliverable"
    assert "encoded-word" in ledger.receipt_for("pi_1")["last_error"]
    # Queued by an older bookpay, it is marked so too, and never written.
    ledger.record_fulfilment(
        intent("pi_3", "=?utf-8?b?amVubnlAZXZpbC5leGFtcGxl?=@example.com"), render
    )
    mailer = ReceiptMailer(ledger, OutboxTransport(settings.data_dir / "outbox"))
    mailer.send_due()
    assert ledger.receipt_for("pi_3")["status"] == "undeliverable"
    assert outbox(settings) == ["pi_2.eml"]
    message = email.message_from_bytes(
        (settings.data_dir / "outbox" / "pi_2.eml").read_bytes(), policy=default
    )
    assert message["To"] is None and message["Subject"] == "Your bookpay receipt: Dune ($23.00)"


@pytest.mark.parametrize("pi", ["../escaped", "pi_1/../../escaped", "pi_1> <x@y"])
def test_a_payment_intent_id_that_is_no_stripe_id_names_no_file(ledger, settings, pi):
    """The ``.eml`` file's name and the Message-ID come from the PaymentIntent's id, which is
    Stripe's answer: one that is not a Stripe id (``pi_`` and letters and digits) wrote the
    receipt outside the outbox (``../``) or a Message-ID of other ids. It is undeliverable."""
    ledger.record_fulfilment(intent(pi), render)
    mailer = ReceiptMailer(ledger, OutboxTransport(settings.data_dir / "outbox"))
    mailer.send_due()
    receipt = ledger.receipt_for(pi)
    assert receipt["status"] == "undeliverable"
    assert "not a Stripe PaymentIntent id" in receipt["last_error"]
    assert not list(settings.data_dir.parent.rglob("*.eml"))
    with pytest.raises(ValueError, match="not a Stripe PaymentIntent id"):
        OutboxTransport(settings.data_dir / "outbox").path_for(pi)


def test_an_id_that_names_no_file_fails_its_own_receipt_not_the_batch(tmp_path):
    receipts = [
        {
            "payment_intent": pi,
            "order_id": "ord_1",
            "recipient": None,
            "subject": "R",
            "body": "b\n",
        }
        for pi in ("pi_1", "../escaped", "pi_2")
    ]
    first, refused, last = OutboxTransport(tmp_path / "outbox").send_all(receipts)
    assert isinstance(refused, ValueError)
    assert (Path(first).name, Path(last).name) == ("pi_1.eml", "pi_2.eml")
    assert sorted(p.name for p in tmp_path.rglob("*.eml")) == ["pi_1.eml", "pi_2.eml"]


@pytest.mark.parametrize(
    ("address", "recipient", "status"),
    [
        # An internationalized domain (IDN): its ASCII form (RFC 5890), which any server takes.
        ("jenny@Bücher.example", "jenny@xn--bcher-kva.example", "sent"),
        ("jenny@例え.テスト", "jenny@xn--r8jz45g.xn--zckzah", "sent"),
        # IDNA 2003 would write "strasse": another domain, so it is left undeliverable.
        ("jenny@straße.example", "jenny@straße.example", "undeliverable"),
        # A local part that is not ASCII needs SMTPUTF8, which bookpay does not speak.
        ("jenný@bücher.example", "jenný@bücher.example", "undeliverable"),
    ],
)
def test_an_internationalized_domain_gets_its_receipt(ledger, settings, address, recipient, status):
    """Stripe takes ``jenny@bücher.example``; the receipt was recorded undeliverable (not a
    plain ASCII address) although its domain has an ASCII form every mail server takes."""
    import email
    from email.policy import default

    line = dict(title="Dune", item_id="1", quantity=1, unit_amount=2300, line_amount=2300)
    ledger.record_fulfilment(
        intent("pi_1", address),
        lambda order: ReceiptMailer(None, None).render(order, [line]),
        recipient_problem=address_problem,
    )
    ReceiptMailer(ledger, OutboxTransport(settings.data_dir / "outbox")).send_due()
    receipt = ledger.receipt_for("pi_1")
    assert (receipt["recipient"], receipt["status"]) == (recipient, status)
    if status == "sent":
        data = (settings.data_dir / "outbox" / "pi_1.eml").read_bytes()
        assert email.message_from_bytes(data, policy=default)["To"] == recipient
