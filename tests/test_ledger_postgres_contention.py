"""PostgreSQL only: transactions that meet each other's row locks. Settling a paid cart and
editing it lock the cart before its lines, so they never deadlock; a transaction the database
ends for a deadlock anyway is run again whole (``Units.retried``), and one that still fails says
so, not that the ledger cannot be reached.

The meetings are made to happen, not hoped for: a cart edit holds its lock inside its ``edit``
callback until the other session is seen waiting for a lock (``pg_stat_activity``, the one
place PostgreSQL says so), then goes on."""

from __future__ import annotations

import logging
import secrets
import threading
import time

import psycopg
import pytest
from test_cart import CATALOG
from test_orders import SHOP

from bookpay.cart import Carts
from bookpay.config import Settings
from bookpay.ledger import open_ledger, units
from bookpay.ledger.errors import LedgerContention
from bookpay.quote import Quote, QuoteLine


@pytest.fixture
def tagged_url(postgres_url):
    """The test's URL with an application_name of its own: its sessions can be told apart
    from those of other tests on the same server."""
    name = "bookpay_test_" + secrets.token_hex(6)
    return f"{postgres_url}&application_name={name}", name


@pytest.fixture
def ledger(tagged_url, tmp_path):
    url, _ = tagged_url
    opened = open_ledger(Settings(data_dir=tmp_path / "data", database_url=url, shop_id=SHOP))
    yield opened
    opened.close()


@pytest.fixture
def admin(postgres_url):
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        yield conn


def wait_for_a_lock_wait(admin, name: str, timeout: float = 10.0) -> None:
    """Until a session of the ledger named ``name`` waits for a lock another holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = %s AND wait_event_type = 'Lock'",
            (name,),
        ).fetchone()
        if row[0]:
            return
        time.sleep(0.01)
    raise AssertionError(f"no session of {name} waited for a lock within {timeout} s")


def catching(action, failures: list) -> threading.Thread:
    """A thread (not started) that runs ``action``, keeping what it raises in ``failures``."""

    def body():
        try:
            action()
        except BaseException as exc:
            failures.append(exc)

    return threading.Thread(target=body)


def test_settling_a_paid_cart_while_it_is_edited_never_deadlocks(
    ledger, tagged_url, admin, monkeypatch
):
    """settle_cart wrote the cart's lines, then locked the cart; edit_cart locks the cart,
    then writes its lines: a webhook settling a cart while another tab edited it deadlocked,
    failing one of them. Not run again here, so a deadlock would show."""
    monkeypatch.setattr(units, "CONTENTION_RETRIES", 0)
    _, name = tagged_url
    carts = Carts(ledger, CATALOG)
    cart, _ = carts.create()
    carts.add(cart, "1", 2)
    carts.add(cart, "2")
    ledger.record_quote(
        "pi_paid", "ord_00000000000000aa", carts.view(cart).quote, cart_id=cart["id"]
    )

    def edit(items):
        # The cart is locked (this transaction's first statement): the settle starts now,
        # and this edit writes its line only once the settle waits for a lock.
        if settling.ident is None:  # the first run (the only one: not run again here)
            settling.start()
        wait_for_a_lock_wait(admin, name)
        return {"1": (5, "Title 1", "usd")}

    failures: list[BaseException] = []
    settled = []
    settling = catching(lambda: settled.append(ledger.settle_cart("pi_paid")), failures)
    editing = catching(lambda: ledger.edit_cart(cart["id"], edit), failures)
    editing.start()
    editing.join(30)
    settling.join(30)
    assert failures == []
    assert settled == [True]
    assert {i["item_id"]: i["quantity"] for i in ledger.cart_items(cart["id"])} == {"1": 3}
    assert ledger.get_cart(cart["id"])["generation"] == 1


def _deadlock_an_edit(ledger, cart_id: str, postgres_url: str, admin, name: str) -> tuple:
    """Edit the cart while another session locks its line, then the cart: the edit, which
    began waiting first, is the one the database ends (the other session waits 10 s before it
    looks for a deadlock, the ledger's sessions the default 1 s). The other session commits
    once it holds the cart. Returns (what the edit returned or raised, the edit's calls)."""
    calls = []
    outcome: list = []
    other = psycopg.connect(postgres_url)
    try:
        other.execute("SET deadlock_timeout = '10s'")
        other.execute(
            "UPDATE cart_items SET quantity = quantity WHERE cart_id = %s AND item_id = '1'",
            (cart_id,),
        )

        def edit(items):
            calls.append({i["item_id"]: i["quantity"] for i in items})
            return {"1": (4, "Title 1", "usd")}

        editing = catching(lambda: outcome.append(ledger.edit_cart(cart_id, edit)), outcome)
        editing.start()
        wait_for_a_lock_wait(admin, name)  # the edit holds the cart and waits for the line
        other.execute("SELECT id FROM carts WHERE id = %s FOR UPDATE", (cart_id,))  # deadlock
        other.commit()
        editing.join(30)
    finally:
        other.close()
    return outcome, calls


def test_a_transaction_ended_by_a_deadlock_is_run_again_whole(
    ledger, tagged_url, postgres_url, admin, caplog
):
    _, name = tagged_url
    carts = Carts(ledger, CATALOG)
    cart, _ = carts.create()
    carts.add(cart, "1", 2)
    caplog.set_level(logging.INFO, logger="bookpay.ledger")
    [result], calls = _deadlock_an_edit(ledger, cart["id"], postgres_url, admin, name)
    assert not isinstance(result, BaseException), result
    assert {i["item_id"]: i["quantity"] for i in result} == {"1": 4}
    assert calls == [{"1": 2}, {"1": 2}]  # run twice, from the start: the first wrote nothing
    assert "deadlock detected" in caplog.text and "Running it again (1 of 3)" in caplog.text


def test_a_deadlock_not_run_again_says_so_not_that_the_ledger_is_unreachable(
    ledger, tagged_url, postgres_url, admin, monkeypatch
):
    monkeypatch.setattr(units, "CONTENTION_RETRIES", 0)
    _, name = tagged_url
    carts = Carts(ledger, CATALOG)
    cart, _ = carts.create()
    carts.add(cart, "1", 2)
    [failure], calls = _deadlock_an_edit(ledger, cart["id"], postgres_url, admin, name)
    assert isinstance(failure, LedgerContention)
    assert failure.http_status == 503  # the shopper (or Stripe) tries again
    assert "deadlock detected" in failure.message and "Cannot reach" not in failure.message
    assert "Process " not in failure.message  # the server's DETAIL (pids) is not shown
    assert calls == [{"1": 2}]
    assert {i["item_id"]: i["quantity"] for i in ledger.cart_items(cart["id"])} == {"1": 2}


def test_inside_a_unit_a_deadlock_is_not_run_again(ledger, tagged_url, postgres_url, admin):
    """A unit's writes are interleaved with its handler's work: the transaction around them
    is not the edit's to run again (a redelivery of the event does)."""
    _, name = tagged_url
    carts = Carts(ledger, CATALOG)
    cart, _ = carts.create()
    carts.add(cart, "1", 2)

    class InUnit:
        def edit_cart(self, cart_id, edit):
            with ledger.together():
                ledger.backend.write_one(
                    "UPDATE carts SET updated = updated WHERE id = ?", (cart_id,)
                )
                return ledger.edit_cart(cart_id, edit)

    [failure], calls = _deadlock_an_edit(InUnit(), cart["id"], postgres_url, admin, name)
    assert isinstance(failure, LedgerContention)
    assert len(calls) == 1


ONE = Quote((QuoteLine("1", "One", 1, 2300),), "usd")
TWO = Quote((QuoteLine("1", "One", 2, 2300),), "usd")
ORD = "ord_00000000000000aa"


def _intent(pi: str, status: str, amount: int = 2300) -> dict:
    return {
        "id": pi,
        "status": status,
        "amount": amount,
        "currency": "usd",
        "metadata": {"order_id": ORD, "integration": "bookpay", "shop_id": SHOP},
        "latest_charge": None,
        "last_payment_error": None,
    }


def test_a_quote_recorded_while_its_payment_is_canceled_never_deadlocks(
    ledger, tagged_url, admin, monkeypatch
):
    """The canceled handler (and a fulfilment) lock the order, then the quote (record_intent,
    then mark_canceled or settle_cart, in one transaction); record_quote locked the quote,
    then the order: a re-quote meeting a cancel deadlocked, failing one of them. Not run again
    here, so a deadlock would show."""
    monkeypatch.setattr(units, "CONTENTION_RETRIES", 0)
    _, name = tagged_url
    ledger.record_quote("pi_A", ORD, ONE, attempt_id="att_1")
    failures: list[BaseException] = []
    order_held = threading.Event()

    def webhook():
        with ledger.together():
            ledger.record_intent(_intent("pi_A", "canceled"))
            order_held.set()
            quoting.start()
            # The re-quote waits for a lock now (the order's, or the quote's before)...
            wait_for_a_lock_wait(admin, name)
            ledger.mark_canceled("pi_A")  # ... and this takes the quote's.

    quoting = catching(lambda: ledger.record_quote("pi_A", ORD, TWO, attempt_id="att_1"), failures)
    canceling = catching(webhook, failures)
    canceling.start()
    canceling.join(30)
    quoting.join(30)
    assert failures == []
    assert order_held.is_set()
    assert ledger.get_order(ORD)["status"] == "canceled"
    assert ledger.quote_for("pi_A")["canceled_at"] is not None
    assert ledger.quote_for("pi_A")["total"] == 4600


def test_two_events_at_once_for_a_stray_payment_both_count(ledger, tagged_url, admin):
    """A stray PaymentIntent's order (its order id another payment's) is written under an id
    of its own. Two events about it at once each found no order and inserted one: the second
    insert did nothing, and its status was lost. It is read back and moved forward."""
    _, name = tagged_url
    ledger.record_quote("pi_owner", ORD, ONE, attempt_id="att_1")
    failures: list[BaseException] = []

    def first():
        with ledger.together():
            ledger.record_intent(_intent("pi_stray", "processing"))
            second.start()
            wait_for_a_lock_wait(admin, name)  # the other insert waits on this one's row

    second = catching(lambda: ledger.record_intent(_intent("pi_stray", "canceled")), failures)
    one = catching(first, failures)
    one.start()
    one.join(30)
    second.join(30)
    assert failures == []
    stray = ledger.find_order("pi_stray")
    assert stray["id"] != ORD and stray["status"] == "canceled"
    assert ledger.get_order(ORD)["payment_intent"] == "pi_owner"


def test_a_quote_and_a_stray_payments_first_event_at_once_leave_the_id_to_the_quote(ledger):
    """The answered PaymentIntent's first quote and a stray's first event (its order under the
    same id, from its metadata), at once: each found no order under the id, the stray's insert
    committed first and the quote's order was never written (no order for the PaymentIntent
    the shopper was told of; 25 rounds in 40). Both take the order id's turn now."""
    for round_ in range(15):
        order_id = f"ord_{round_:016x}"
        owner, stray = f"pi_owner{round_}", f"pi_stray{round_}"
        event = {**_intent(stray, "canceled"), "metadata": {"order_id": order_id}}
        start = threading.Barrier(2)
        failures: list[BaseException] = []

        def quote(owner=owner, order_id=order_id, start=start, attempt=f"att_{round_}"):
            start.wait()
            ledger.record_quote(owner, order_id, TWO, attempt_id=attempt)

        def cancel(event=event, start=start):
            start.wait()
            ledger.record_intent(event)

        threads = [catching(quote, failures), catching(cancel, failures)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert failures == []
        assert ledger.find_order(owner)["id"] == order_id, round_
        assert ledger.find_order(stray)["id"] != order_id, round_
