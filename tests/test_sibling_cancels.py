"""A paid cart's other attempts are canceled even across a stop: the canceling is owed in the
ledger (``sibling_cancels``, written by ``Ledger.settle_cart`` in the settling's transaction),
and whichever process runs the workers next does it, once, claimed, with back-off.

On SQLite, then PostgreSQL (the ``database_url`` fixture); the shops against the session's
emulator, over HTTP.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import uuid

import pytest
from test_cart_server import Shopper, intent_at, services_of
from test_server import PUBLIC_URL, complete_3ds, confirm, success_url

from bookpay.config import Settings
from bookpay.errors import StripeUnavailable
from bookpay.ledger import open_ledger
from bookpay.ledger.model import now_iso, parse_iso
from bookpay.quote import Quote, QuoteLine
from bookpay.server import create_app
from bookpay.siblings import CANCELABLE, IDLE_LOOK, RETRY_DELAYS, SiblingCanceler


@pytest.fixture
def settings(tmp_path, emulator, database_url) -> Settings:
    return Settings(
        data_dir=tmp_path / "data", emulator_url=emulator.url, database_url=database_url
    )


@pytest.fixture
def ledger(settings):
    ledger = open_ledger(settings)
    yield ledger
    ledger.close()


# A shop that stops before its canceler ran -------------------------------------------------------


def settle_then_stop(settings, monkeypatch) -> tuple[dict, str]:
    """A shop process: tab A of a cart waits for 3-D Secure, tab B pays and reaches /success
    (the cart settled, committed); the process then stops before its canceler ever ran (it is
    neither started nor woken: Ctrl-C, a crash). (A's PaymentIntent on its challenge, B's.)"""
    monkeypatch.setattr(SiblingCanceler, "start", lambda self: None)
    monkeypatch.setattr(SiblingCanceler, "settled", lambda self, intent_id: None)
    app = create_app(settings, public_url=PUBLIC_URL)
    try:
        shopper = Shopper(app)
        shopper.add("1")
        tabs = [shopper.pay(str(uuid.uuid4())).json() for _ in range(2)]
        waiting, paying = (tab["paymentIntentId"] for tab in tabs)
        pending = confirm(settings, waiting, "pm_card_authenticationRequired")
        assert pending["status"] == "requires_action"
        assert confirm(settings, paying, "pm_card_visa")["status"] == "succeeded"
        assert shopper.get(success_url(paying, tabs[1]["clientSecret"])).status == 200
    finally:
        app.close()
    monkeypatch.undo()
    with open_ledger(settings) as ledger:
        assert ledger.quote_for(paying)["settled_at"] is not None
    assert intent_at(settings, waiting)["status"] == "requires_action"  # left by the stop
    return pending, paying


def assert_canceled_and_never_charged(settings, pending: dict, paying: str) -> None:
    canceled = intent_at(settings, pending["id"])
    assert (canceled["status"], canceled["cancellation_reason"]) == ("canceled", "duplicate")
    done = complete_3ds(settings, pending)  # the challenge, passed late, charges nothing
    assert (done["status"], done["amount_received"]) == ("canceled", 0)
    assert intent_at(settings, paying)["status"] == "succeeded"  # paid once
    with open_ledger(settings) as ledger:
        owed = ledger.sibling_cancel_for(paying)
        assert (owed["status"], owed["claimed_by"]) == ("done", None)
        assert ledger.quote_for(pending["id"])["canceled_at"] is not None


def test_the_next_shop_started_cancels_what_a_stopped_one_left(settings, monkeypatch):
    pending, paying = settle_then_stop(settings, monkeypatch)
    app = create_app(settings, public_url=PUBLIC_URL)  # `bookpay serve` again
    try:
        assert services_of(app).fulfiller.siblings.drain(timeout=15)
    finally:
        app.close()
    assert_canceled_and_never_charged(settings, pending, paying)


def test_bookpay_worker_in_a_process_of_its_own_cancels_what_a_stopped_shop_left(
    settings, monkeypatch
):
    pending, paying = settle_then_stop(settings, monkeypatch)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "BOOKPAY_"))},
        "BOOKPAY_EMULATOR_URL": settings.emulator_url,
        "BOOKPAY_DATA_DIR": str(settings.data_dir),
        **({"BOOKPAY_DATABASE_URL": settings.database_url} if settings.database_url else {}),
    }
    worker = subprocess.run(
        [sys.executable, "-m", "bookpay", "worker", "--once"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert worker.returncode == 0, worker.stderr
    assert_canceled_and_never_charged(settings, pending, paying)
    assert "paid carts' other payments looked at: 1." in worker.stderr


# The ledger's side -------------------------------------------------------------------------------

QUOTE = Quote((QuoteLine("1", "One", 1, 2300),), "usd")


def two_tabs_paid(ledger, paid: str = "pi_paid", other: str = "pi_other") -> str:
    """Two attempts of one cart recorded, the first settled; the cart's id."""
    cart = ledger.create_cart(uuid.uuid4().hex * 2)
    for n, pi in enumerate((paid, other)):
        ledger.record_quote(pi, f"ord_{pi}", QUOTE, attempt_id=f"att_{pi}", cart_id=cart["id"])
        assert n == 0 or ledger.attempts_beside(paid)[0]["payment_intent"] == other
    assert ledger.settle_cart(paid) is True
    return cart["id"]


def test_settling_a_cart_owes_its_canceling_once(ledger):
    cart_id = two_tabs_paid(ledger)
    owed = ledger.sibling_cancel_for("pi_paid")
    assert (owed["cart_id"], owed["status"], owed["attempts"]) == (cart_id, "pending", 0)
    assert owed["claimed_by"] is None
    assert parse_iso(owed["next_attempt_at"]) <= parse_iso(now_iso())  # due at once
    assert ledger.settle_cart("pi_paid") is False
    assert [row["payment_intent"] for row in ledger.sibling_cancels()] == ["pi_paid"]
    assert ledger.sibling_cancel_for("pi_other") is None  # not paid: owes nothing


def test_one_ledger_instance_claims_a_row_at_a_time(ledger, settings):
    two_tabs_paid(ledger)
    with open_ledger(settings) as other:
        (claimed,) = ledger.claim_sibling_cancels()
        assert claimed["payment_intent"] == "pi_paid"
        assert other.claim_sibling_cancels() == []  # held by a live holder
        assert ledger.claim_sibling_cancels() == []  # and not claimed twice by its holder
        # The other does not look again before the claim ends (no spinning on it).
        assert other.next_sibling_cancel_due() == claimed["claimed_until"]
        ledger.release_sibling_cancels()
        assert [row["payment_intent"] for row in other.claim_sibling_cancels()] == ["pi_paid"]
        assert ledger.sibling_cancel_done("pi_paid") is False  # not its claim any more
        assert other.sibling_cancel_done("pi_paid") is True
    assert ledger.sibling_cancel_for("pi_paid")["status"] == "done"
    assert ledger.next_sibling_cancel_due() is None


HOLDER = """
import sys, time
from pathlib import Path
from bookpay.config import Settings
from bookpay.ledger import open_ledger
ledger = open_ledger(Settings(data_dir=Path(sys.argv[1]), database_url=sys.argv[2] or None))
print(len(ledger.claim_sibling_cancels()), flush=True)
time.sleep(600)
"""


def test_a_claim_whose_holder_died_is_taken_over_at_once(ledger, settings):
    two_tabs_paid(ledger)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(settings.data_dir), settings.database_url or ""],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "1"  # it holds the row
        assert ledger.claim_sibling_cancels() == []  # a live holder's claim is respected
        held = ledger.sibling_cancel_for("pi_paid")
        assert ledger.next_sibling_cancel_due() == held["claimed_until"]  # looked at then
        canceler = SiblingCanceler(ledger, None)
        assert not canceler.due_now()
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        # Not after its lease: at once, and a running canceler does not sleep until then.
        assert ledger.next_sibling_cancel_due() == held["next_attempt_at"]
        assert canceler.due_now() and canceler._idle_wait(0) == 0.05
        assert [r["payment_intent"] for r in ledger.claim_sibling_cancels()] == ["pi_paid"]
    finally:
        holder.kill()
        holder.wait(10)


def test_a_claim_changed_since_it_was_read_is_not_taken(ledger, monkeypatch):
    """A claim is a compare-and-set of the claim as it was read: rows held by others are read
    unlocked (on PostgreSQL another process may claim or finish one before this one's update),
    and a row changed since is left as it is, and not returned. Made to happen here in the
    claiming transaction itself (so on both databases), as the dead holders are looked for."""
    from bookpay.ledger import cancels, process

    owed = ("pi_free", "pi_free_taken", "pi_dead", "pi_dead_taken", "pi_dead_done")
    dead, rival = "dead.example/1/1/1/ab", "rival.example/1/2/2/cd"
    with ledger.transaction() as tx:
        for pi in owed:
            ledger.owe_sibling_cancel(tx, pi, None)
        tx.execute(
            "UPDATE sibling_cancels SET claimed_by = ?, claimed_until = ? "
            "WHERE payment_intent LIKE 'pi_dead%'",
            (dead, now_iso(600)),
        )

    def others_first(rows):  # every holder dead, and another claimer at work meanwhile
        claiming.run(
            """UPDATE sibling_cancels SET claimed_by = ?, claimed_until = ?
            WHERE payment_intent IN ('pi_free_taken', 'pi_dead_taken')""",
            (rival, now_iso(600)),
        )
        claiming.run(
            "UPDATE sibling_cancels SET status = 'done' WHERE payment_intent = ?", ("pi_dead_done",)
        )
        return rows

    monkeypatch.setattr(process, "of_dead_holders", others_first)
    with ledger.backend.write() as claiming:
        claimed = process.claim_due(
            claiming,
            "sibling_cancels",
            cancels.CANCEL_COLUMNS,
            "payment_intent",
            token=ledger._token,
            lease=cancels.CANCEL_LEASE,
            limit=10,
            stamp=now_iso(),
            lock_held=False,
        )
    assert [(r["payment_intent"], r["claimed_by"]) for r in claimed] == [
        ("pi_free", ledger._token),
        ("pi_dead", ledger._token),
    ]
    rows = {r["payment_intent"]: r for r in ledger.sibling_cancels()}
    assert {pi: (r["status"], r["claimed_by"]) for pi, r in rows.items()} == {
        "pi_free": ("pending", ledger._token),
        "pi_free_taken": ("pending", rival),
        "pi_dead": ("pending", ledger._token),
        "pi_dead_taken": ("pending", rival),
        "pi_dead_done": ("done", dead),
    }
    assert rows["pi_dead"]["claimed_until"] == claimed[1]["claimed_until"]


class Unreachable:
    """A gateway whose Stripe cannot be reached."""

    def __init__(self) -> None:
        self.calls = 0

    def retrieve_intent(self, intent_id: str, *, expand=()) -> dict:
        self.calls += 1
        raise StripeUnavailable("Could not reach Stripe: connection refused.")

    def cancel_intent(self, intent_id: str, **kwargs) -> dict:  # pragma: no cover - not reached
        raise AssertionError("canceled without a retrieve")


class Intents:
    """A gateway over PaymentIntents held here, by id: each retrieved as it is, canceled if
    Stripe would (``CANCELABLE``); the calls are counted."""

    def __init__(self, statuses: dict[str, str]) -> None:
        self.statuses = dict(statuses)
        self.retrieved: list[str] = []
        self.canceled: list[str] = []

    def retrieve_intent(self, intent_id: str, *, expand=()) -> dict:
        self.retrieved.append(intent_id)
        return {"id": intent_id, "status": self.statuses[intent_id]}

    def cancel_intent(self, intent_id: str, **kwargs) -> dict:
        assert self.statuses[intent_id] in CANCELABLE, intent_id
        self.statuses[intent_id] = "canceled"
        self.canceled.append(intent_id)
        return {"id": intent_id, "status": "canceled"}


def due_at_once(ledger) -> None:
    with ledger.transaction() as tx:  # its time comes
        tx.execute("UPDATE sibling_cancels SET next_attempt_at = ?", (now_iso(),))


def test_stripe_unreachable_is_tried_again_with_a_capped_backoff_never_given_up(ledger, caplog):
    """Stripe down for hours: the row stays owed, tried again with a back-off growing to
    ``RETRY_DELAYS[-1]`` and staying there (a sibling on its 3-D Secure page can be charged for
    as long as Stripe keeps it open); a warning per try, no traceback. Once Stripe answers, the
    sibling is canceled."""
    two_tabs_paid(ledger)
    gateway = Unreachable()
    canceler = SiblingCanceler(ledger, gateway)
    caplog.set_level(logging.INFO, logger="bookpay.siblings")
    delays = [*RETRY_DELAYS, RETRY_DELAYS[-1], RETRY_DELAYS[-1]]
    for tries, delay in enumerate(delays, start=1):
        started = parse_iso(now_iso())
        assert canceler.work() == 1
        owed = ledger.sibling_cancel_for("pi_paid")
        assert (owed["status"], owed["attempts"], owed["claimed_by"]) == ("pending", tries, None)
        assert owed["last_error"] == "pi_other: Could not reach Stripe: connection refused."
        wait = (parse_iso(owed["next_attempt_at"]) - started).total_seconds()
        assert delay - 1 <= wait <= delay + 1  # backed off, growing, then capped
        assert not canceler.due_now()
        assert canceler.work() == 0  # not due yet: no Stripe call
        due_at_once(ledger)
    assert RETRY_DELAYS[-1] == 600.0
    assert gateway.calls == len(delays)
    assert not any("gave up" in r.getMessage() for r in caplog.records)
    assert not any(r.exc_info for r in caplog.records)  # said, not a traceback each try
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == len(delays)
    # Stripe is back (in this process or the next: the row is still owed).
    back = Intents({"pi_other": "requires_action", "pi_paid": "succeeded"})
    assert SiblingCanceler(ledger, back).work() == 1
    assert back.canceled == ["pi_other"]
    assert ledger.sibling_cancel_for("pi_paid")["status"] == "done"
    assert ledger.next_sibling_cancel_due() is None


class Partly(Intents):
    """Intents held here, some of which Stripe does not know (404) or cannot be reached for."""

    def __init__(self, statuses: dict[str, str], *, missing=(), failing=()) -> None:
        super().__init__(statuses)
        self.missing, self.failing = set(missing), set(failing)

    def retrieve_intent(self, intent_id: str, *, expand=()) -> dict:
        from bookpay.errors import NotFound

        if intent_id in self.missing:
            self.retrieved.append(intent_id)
            raise NotFound(f"No such payment_intent: '{intent_id}'", code="resource_missing")
        if intent_id in self.failing:
            self.retrieved.append(intent_id)
            raise StripeUnavailable("Stripe is limiting the rate of requests (429).")
        return super().retrieve_intent(intent_id)


def test_a_sibling_stripe_does_not_know_leaves_nothing_to_cancel_and_blocks_no_other(
    ledger, caplog
):
    """An older sibling on its 3-D Secure page, a newer one Stripe does not know (an emulator
    reset, another account's): the real one is canceled and the row done, no traceback."""
    cart = ledger.create_cart(uuid.uuid4().hex * 2)
    for n, pi in enumerate(("pi_real", "pi_gone", "pi_paid")):
        ledger.record_quote(pi, f"ord_{pi}", QUOTE, attempt_id=f"att_{pi}", cart_id=cart["id"])
        with ledger.backend.write() as tx:
            tx.run(
                "UPDATE quotes SET created = ? WHERE payment_intent = ?",
                (f"2030-01-01T00:0{n}:00.000Z", pi),
            )
    ledger.settle_cart("pi_paid")
    gateway = Partly({"pi_real": "requires_action"}, missing={"pi_gone"})
    caplog.set_level(logging.INFO, logger="bookpay.siblings")
    assert SiblingCanceler(ledger, gateway).work() == 1
    assert gateway.retrieved == ["pi_gone", "pi_real"]
    assert gateway.canceled == ["pi_real"]
    owed = ledger.sibling_cancel_for("pi_paid")
    assert (owed["status"], owed["attempts"]) == ("done", 1)
    assert not any(r.exc_info for r in caplog.records)
    assert not any(r.levelno >= logging.WARNING for r in caplog.records)
    assert any("Stripe has no pi_gone" in r.getMessage() for r in caplog.records)


def test_a_sibling_that_fails_is_tried_again_alone_the_others_canceled_meanwhile(ledger, caplog):
    """Of two siblings, Stripe refuses to answer about one (429): the other is canceled now,
    the row stays owed with why (the real error, naming the sibling), and the next try looks
    at the one left."""
    cart = ledger.create_cart(uuid.uuid4().hex * 2)
    for pi in ("pi_a", "pi_b", "pi_paid"):
        ledger.record_quote(pi, f"ord_{pi}", QUOTE, attempt_id=f"att_{pi}", cart_id=cart["id"])
    ledger.settle_cart("pi_paid")
    gateway = Partly({"pi_a": "requires_action", "pi_b": "requires_action"}, failing={"pi_a"})
    caplog.set_level(logging.INFO, logger="bookpay.siblings")
    canceler = SiblingCanceler(ledger, gateway)
    assert canceler.work() == 1
    assert gateway.canceled == ["pi_b"]
    owed = ledger.sibling_cancel_for("pi_paid")
    assert (owed["status"], owed["attempts"]) == ("pending", 1)
    assert owed["last_error"] == "pi_a: Stripe is limiting the rate of requests (429)."
    assert "Stripe could not be reached" not in owed["last_error"]
    assert not any(r.exc_info for r in caplog.records)
    gateway.failing.clear()
    gateway.retrieved.clear()
    due_at_once(ledger)
    assert canceler.work() == 1
    assert gateway.retrieved == ["pi_a"]  # b is known canceled: not asked again
    assert gateway.canceled == ["pi_b", "pi_a"]
    assert ledger.sibling_cancel_for("pi_paid")["status"] == "done"


def test_a_worker_stopped_mid_round_releases_what_it_had_not_done(ledger, settings):
    """Two carts paid; the worker is stopped after the first: the second is released, due at
    once for the next process (not held for the lease)."""
    two_tabs_paid(ledger)
    two_tabs_paid(ledger, "pi_paid2", "pi_other2")
    canceler = SiblingCanceler(ledger, None)
    done = []

    def cancel_beside(intent_id: str) -> list[str]:
        done.append(intent_id)
        canceler._stop.set()  # the stop comes while the first is canceled
        return []

    canceler.cancel_beside = cancel_beside
    assert canceler.work() == 1
    rows = {row["payment_intent"]: row for row in ledger.sibling_cancels()}
    assert rows[done[0]]["status"] == "done"
    (left,) = set(rows) - set(done)
    assert (rows[left]["status"], rows[left]["claimed_by"]) == ("pending", None)
    with open_ledger(settings) as other:
        assert [r["payment_intent"] for r in other.claim_sibling_cancels()] == [left]


def test_a_ledger_failing_while_canceling_is_not_a_try(ledger):
    """The ledger locked (or down) under a round is not Stripe failing: the round ends (the
    worker's loop says so and comes back), the row released and its tries not counted, so a busy
    ledger never spends the budget that Stripe's outages have."""
    from bookpay.ledger.errors import LedgerUnavailable

    two_tabs_paid(ledger)
    canceler = SiblingCanceler(ledger, None)

    def locked(intent_id: str) -> list[str]:
        raise LedgerUnavailable("The orders ledger is locked.")

    canceler.cancel_beside = locked
    with pytest.raises(LedgerUnavailable):
        canceler.work()
    owed = ledger.sibling_cancel_for("pi_paid")
    assert (owed["status"], owed["attempts"], owed["claimed_by"]) == ("pending", 0, None)
    assert canceler.due_now()  # due again at once


def test_a_ledger_failing_while_one_sibling_is_marked_ends_the_round_not_a_try(ledger, monkeypatch):
    """The ledger fails writing that a sibling was canceled (LedgerUnavailable is a
    BookpayError, as Stripe's failures are): not taken for that sibling failing, the round
    ends, the row released with its tries not counted."""
    from bookpay.ledger.errors import LedgerUnavailable

    two_tabs_paid(ledger)

    def locked(payment_intent: str) -> None:
        raise LedgerUnavailable("The orders ledger is locked.")

    monkeypatch.setattr(ledger, "mark_canceled", locked)
    gateway = Intents({"pi_other": "requires_action"})
    with pytest.raises(LedgerUnavailable):
        SiblingCanceler(ledger, gateway).work()
    owed = ledger.sibling_cancel_for("pi_paid")
    assert (owed["status"], owed["attempts"], owed["claimed_by"]) == ("pending", 0, None)
    assert owed["last_error"] is None


# However many attempts beside the paid one ----------------------------------------------------


def many_tabs_paid(ledger, count: int, *, same_moment: bool = False) -> list[str]:
    """``count`` attempts of one cart, oldest first; the newest pays and settles it. With
    ``same_moment``, all recorded as made at one time (a clock's milliseconds tell few apart)."""
    cart = ledger.create_cart(uuid.uuid4().hex * 2)
    tabs = [f"pi_tab{n:02d}" for n in range(count)]
    for n, pi in enumerate(tabs):
        ledger.record_quote(pi, f"ord_{pi}", QUOTE, attempt_id=f"att_{pi}", cart_id=cart["id"])
        moment = "2030-01-01T00:00:00.000Z" if same_moment else f"2030-01-01T00:{n:02d}:00.000Z"
        with ledger.backend.write() as tx:
            tx.run("UPDATE quotes SET created = ? WHERE payment_intent = ?", (moment, pi))
    assert ledger.settle_cart(tabs[-1]) is True
    return tabs


@pytest.mark.parametrize("same_moment", [False, True])
def test_every_sibling_is_canceled_however_many_tabs_the_cart_had(ledger, same_moment):
    """22 tabs: the oldest waits on 3-D Secure, the newest pays. Every one of the 21 others is
    canceled before the row is done (not only the newest 20), each retrieved once."""
    tabs = many_tabs_paid(ledger, 22, same_moment=same_moment)
    paid, others = tabs[-1], tabs[:-1]
    gateway = Intents({**dict.fromkeys(others, "requires_payment_method"), paid: "succeeded"})
    gateway.statuses[tabs[0]] = "requires_action"
    assert SiblingCanceler(ledger, gateway).work() == 1
    assert sorted(gateway.canceled) == sorted(others)
    assert sorted(gateway.retrieved) == sorted(others)
    assert ledger.sibling_cancel_for(paid)["status"] == "done"
    assert all(ledger.quote_for(pi)["canceled_at"] is not None for pi in others)


def test_siblings_that_stay_open_do_not_hide_older_ones_nor_make_the_canceler_spin(ledger):
    """25 siblings authorized or processing (never canceled here, so they stay beside the paid
    one), and the oldest two on 3-D Secure: those two are canceled, each sibling retrieved
    once."""
    tabs = many_tabs_paid(ledger, 28)
    paid, others = tabs[-1], tabs[:-1]
    statuses = {pi: ("requires_capture", "processing")[n % 2] for n, pi in enumerate(others)}
    statuses.update({tabs[0]: "requires_action", tabs[1]: "requires_action", paid: "succeeded"})
    gateway = Intents(statuses)
    assert SiblingCanceler(ledger, gateway).work() == 1
    assert sorted(gateway.canceled) == tabs[:2]
    assert sorted(gateway.retrieved) == sorted(others)
    assert ledger.sibling_cancel_for(paid)["status"] == "done"


def test_pays_last_look_sees_a_paid_sibling_older_than_twenty_others(ledger):
    """Tab 0 paid (confirmed, its event not yet handled so not settled); 21 newer tabs open:
    Pay in the newest is refused, whatever the number of tabs between them."""
    from bookpay.checkout import CartPaidElsewhere, Checkout

    cart = ledger.create_cart(uuid.uuid4().hex * 2)
    tabs = [f"pi_look{n:02d}" for n in range(22)]
    for n, pi in enumerate(tabs):
        ledger.record_quote(pi, f"ord_{pi}", QUOTE, attempt_id=f"att_{pi}", cart_id=cart["id"])
        with ledger.backend.write() as tx:
            tx.run(
                "UPDATE quotes SET created = ? WHERE payment_intent = ?",
                (f"2030-01-01T00:{n:02d}:00.000Z", pi),
            )
    gateway = Intents({**dict.fromkeys(tabs, "requires_payment_method"), tabs[0]: "succeeded"})
    with pytest.raises(CartPaidElsewhere) as refused:
        Checkout(ledger, gateway, None).check_paid_beside(tabs[-1])
    assert refused.value.paid_by == tabs[0]


def test_a_read_only_postgresql_ledger_is_unavailable_said_as_such(postgres_url, tmp_path):
    """default_transaction_read_only on (a standby, a database set so): each write is the
    ledger unavailable, its message saying why, so a worker's round fails with a warning (and
    backs off: ``Worker``), not a traceback for an unexpected error."""
    from bookpay.ledger.errors import LedgerUnavailable

    settings = Settings(data_dir=tmp_path / "data", database_url=postgres_url)
    with open_ledger(settings) as ledger:
        two_tabs_paid(ledger)
    read_only = postgres_url.replace("options=", "options=-cdefault_transaction_read_only%3Don%20")
    assert read_only != postgres_url
    with open_ledger(Settings(data_dir=tmp_path / "data", database_url=read_only)) as ledger:
        assert ledger.sibling_cancel_for("pi_paid")["status"] == "pending"  # reads go on
        with pytest.raises(LedgerUnavailable) as unavailable:
            SiblingCanceler(ledger, Intents({})).work()
        assert "is read-only" in unavailable.value.message
        assert "default_transaction_read_only" in unavailable.value.message
        with pytest.raises(LedgerUnavailable):
            ledger.mark_canceled("pi_other")  # an autocommit write as well


def test_a_canceler_owed_nothing_looks_again_soon_for_what_another_process_settles(
    ledger, settings
):
    """Another process on the ledger (a shop whose own canceler stopped, a `bookpay serve
    --no-worker` with no worker) settles a cart: a canceler owed nothing sees it within
    ``IDLE_LOOK`` (a 3-D Secure tab has little time), one read, not a busy loop."""
    canceler = SiblingCanceler(ledger, Intents({"pi_other": "requires_action"}))
    assert IDLE_LOOK == 30.0
    assert canceler._idle_wait(0) == IDLE_LOOK  # nothing owed
    with open_ledger(settings) as other:
        two_tabs_paid(other)
    assert canceler._idle_wait(0) == 0.05 and canceler.due_now()
    assert canceler.work() == 1
    assert canceler.gateway.canceled == ["pi_other"]
    assert canceler._idle_wait(0) == IDLE_LOOK


def test_each_payments_canceling_is_a_line_of_serves_log_however_many_come_at_once(ledger, capsys):
    """serve's log holds back a repeated warning or line (``RepeatFilter``, by its template):
    not what became of each payment, one line each, however many carts are paid at once."""
    from bookpay.commands.serve import _configure_logging, _remove_handler

    statuses = {}
    for n in range(3):
        two_tabs_paid(ledger, f"pi_paid{n}", f"pi_other{n}")
        statuses[f"pi_other{n}"] = "requires_action"
    two_tabs_paid(ledger, "pi_paid_gone", "pi_gone")
    two_tabs_paid(ledger, "pi_paid_late", "pi_late")
    two_tabs_paid(ledger, "pi_paid_late2", "pi_late2")
    gateway = Partly({**statuses, "pi_late": "requires_action", "pi_late2": "requires_action"})
    gateway.missing.add("pi_gone")

    def too_late(intent_id: str, **kwargs) -> dict:  # confirmed since it was retrieved
        from bookpay.errors import PaymentError

        if intent_id.startswith("pi_late"):
            gateway.statuses[intent_id] = "succeeded"
            raise PaymentError("This PaymentIntent's status is succeeded.")
        return Intents.cancel_intent(gateway, intent_id, **kwargs)

    gateway.cancel_intent = too_late
    handlers = _configure_logging(debug=False)
    try:
        assert SiblingCanceler(ledger, gateway).work() == 6
    finally:
        _remove_handler(handlers)
    err = capsys.readouterr().err
    for n in range(3):
        assert f"canceled pi_other{n}: its cart was paid by pi_paid{n}" in err
    assert "Stripe has no pi_gone" in err
    assert "could not cancel pi_late beside the paid pi_paid_late" in err
    assert "could not cancel pi_late2 beside the paid pi_paid_late2" in err
    assert "more like it" not in err


def test_pays_last_look_passes_over_a_sibling_stripe_does_not_know(ledger):
    """A sibling Stripe has no record of (an emulator reset, another account's) can charge
    nothing: it neither blocks Pay nor hides a paid sibling older than it."""
    from bookpay.checkout import CartPaidElsewhere, Checkout

    cart = ledger.create_cart(uuid.uuid4().hex * 2)
    for n, pi in enumerate(("pi_paid_here", "pi_gone", "pi_paying")):
        ledger.record_quote(pi, f"ord_{pi}", QUOTE, attempt_id=f"att_{pi}", cart_id=cart["id"])
        with ledger.backend.write() as tx:
            tx.run(
                "UPDATE quotes SET created = ? WHERE payment_intent = ?",
                (f"2030-01-01T00:0{n}:00.000Z", pi),
            )
    gateway = Partly({"pi_paid_here": "requires_payment_method"}, missing={"pi_gone"})
    checkout = Checkout(ledger, gateway, None)
    checkout.check_paid_beside("pi_paying")  # nothing paid beside it: Pay goes on
    gateway.statuses["pi_paid_here"] = "succeeded"
    with pytest.raises(CartPaidElsewhere):
        checkout.check_paid_beside("pi_paying")
