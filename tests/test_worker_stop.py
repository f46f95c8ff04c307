"""`bookpay worker` stopped while it sends a receipt to a slow mail server, in a process of its
own: with --once as without it, on Ctrl-C, SIGTERM and SIGHUP, and on a second one during the
stop; and `worker --once` on a ledger it cannot use."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from test_receipts import intent, render
from test_smtp_receipts import Handler, Script, Server, url, wait_for
from typer.testing import CliRunner

from bookpay.cli import app
from bookpay.config import Settings
from bookpay.ledger import open_ledger


@pytest.fixture
def slow_smtp():
    """The scripted SMTP server of test_smtp_receipts, in this process."""
    import threading

    server = Server(("127.0.0.1", 0), Handler)
    server.script = Script()
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def queued(tmp_path, database_url):
    """A ledger holding one receipt to send (pi_1), and the environment of a worker on it."""
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, shop_id="shop_t")
    ledger = open_ledger(settings)
    ledger.record_fulfilment(intent(), render)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "BOOKPAY_"))},
        "BOOKPAY_DATA_DIR": str(tmp_path / "data"),
        "BOOKPAY_SHOP_ID": "shop_t",
    }
    if database_url:
        env["BOOKPAY_DATABASE_URL"] = database_url
    yield ledger, env
    ledger.close()


# `bookpay worker` with the mailer's bounded stop wait (15 s) shortened to argv[1] seconds: for a
# test of what happens once that wait is over, not of how long it is.
SHORT_STOP_WAIT = """import sys
from bookpay.mailer import ReceiptMailer
ReceiptMailer.stop_wait = float(sys.argv.pop(1))
from bookpay.cli import main
main()
"""


def worker(env: dict, smtp, *args: str, stop_wait: float | None = None) -> subprocess.Popen:
    command = ["-m", "bookpay"] if stop_wait is None else ["-c", SHORT_STOP_WAIT, str(stop_wait)]
    return subprocess.Popen(
        [sys.executable, *command, "worker", *args],
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "BOOKPAY_SMTP_URL": url(smtp)},
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL),  # not nohup's
    )


def stopped(process: subprocess.Popen, *signals: int) -> tuple[str, float]:
    """Its stderr once ``signals`` (0.2 s apart) stopped it, and how long it took after them."""
    for n, signum in enumerate(signals):
        if n:
            time.sleep(0.2)
        process.send_signal(signum)
    started = time.monotonic()
    try:
        _, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return err, time.monotonic() - started


def fate(ledger) -> tuple:
    receipt = ledger.receipt_for("pi_1")
    return receipt["status"], receipt["attempts"], receipt["claimed_by"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_worker_once_stopped_before_the_server_has_the_message_leaves_it_pending(
    slow_smtp, queued, signum
):
    """--once ran outside the stop handling: SIGTERM killed it (-15) with the receipt claimed,
    Ctrl-C ended it with 130 and no "Stopping."."""
    ledger, env = queued
    slow_smtp.script.stall = "RCPT"
    process = worker(env, slow_smtp, "--once")
    wait_for(lambda: b"RCPT" in slow_smtp.script.verbs)
    err, took = stopped(process, signum)
    assert process.returncode == 0, err
    assert "Stopping." in err and "cut off the send under way" in err
    assert "Traceback" not in err and "Receipts handled" not in err
    assert took < 3
    assert fate(ledger) == ("pending", 0, None)
    assert slow_smtp.script.messages == []


def test_worker_once_stopped_after_the_server_has_the_message_waits_for_its_answer(
    slow_smtp, queued
):
    """The server has the whole message and answers 1 s later: --once, killed by SIGTERM,
    left the receipt unmarked (and claimed), so it was sent again."""
    ledger, env = queued
    slow_smtp.script.end_delay = 1.0
    process = worker(env, slow_smtp, "--once")
    wait_for(lambda: slow_smtp.script.messages)
    err, _ = stopped(process, signal.SIGTERM)
    assert process.returncode == 0, err
    assert "waiting up to 5 s for the mail server's answer" in err and "pi_1) sent" in err
    assert fate(ledger) == ("sent", 1, None)
    assert len(slow_smtp.script.messages) == 1


@pytest.mark.parametrize("args", [["--once"], ["--poll", "0.1"]], ids=["once", "running"])
def test_a_second_interrupt_skips_only_the_wait_for_the_answer(slow_smtp, queued, args):
    """A server that never answers the message's end, and a second SIGTERM during the stop's
    5 s wait: the process ended at once (130) from under the send, the receipt's fate unwritten.
    Now the wait alone is cut short: the receipt is recorded as tried (it may be delivered, so
    sent again at the next start), its claim released, and the exit code is 0."""
    ledger, env = queued
    slow_smtp.script.stall = "END"
    process = worker(env, slow_smtp, *args)
    wait_for(lambda: slow_smtp.script.messages)
    err, took = stopped(process, signal.SIGINT, signal.SIGTERM)
    assert process.returncode == 0, err
    assert took < 3, err
    assert "stopping again: cut off the send under way without its answer" in err
    assert "Traceback" not in err
    assert fate(ledger) == ("pending", 1, None)
    assert "which it may deliver" in ledger.receipt_for("pi_1")["last_error"]


def test_a_worker_left_at_work_in_a_locked_sqlite_ledger_is_not_crashed_by_the_stop(
    slow_smtp, tmp_path
):
    """--once has sent a receipt it claimed and waits to write its fate, another process
    holding the SQLite ledger's write lock; SIGTERM, and the stop's bounded wait is over with the
    worker still waiting. The ledger must not be closed under it: closing releases this
    process's claims, a write that waits behind the worker's own (it holds the writers' turn)
    for the lock's 30 s and more, and would free a receipt still being sent for another worker
    to send again. (The connection itself the SQLite ledger never closes under a thread using
    it: tests/test_ledger_sqlite_close.py.) The exit ends the worker; its claim, of a process
    that died, is taken over at the next start."""
    data = tmp_path / "data"
    with open_ledger(Settings(data_dir=data, shop_id="shop_t")) as ledger:
        ledger.record_fulfilment(intent(), render)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "BOOKPAY_"))},
        "BOOKPAY_DATA_DIR": str(data),
        "BOOKPAY_SHOP_ID": "shop_t",
    }
    slow_smtp.script.end_delay = 0.5  # the answer to the message, once the lock is taken
    holder = sqlite3.connect(data / "bookpay.sqlite3", isolation_level=None)
    try:
        process = worker(env, slow_smtp, "--once", stop_wait=1.0)
        wait_for(lambda: slow_smtp.script.messages)  # claimed (committed), and being sent
        holder.execute("BEGIN EXCLUSIVE")
        # Answered, and waiting for the lock to write the fate: the worker has taken its
        # writers' turn (the ledger's `-turn` file), which the holder, as the `sqlite3` shell,
        # does not take.
        wait_for(lambda: turn_taken(data / "bookpay.sqlite3-turn"))
        err, took = stopped(process, signal.SIGTERM)
    finally:
        holder.rollback()
        holder.close()
    assert process.returncode == 0, err
    assert "Stopping." in err and "still at work after 1 s, left unfinished" in err
    assert "Traceback" not in err
    assert took < 10  # the stop's bounded wait, not the lock's (BUSY_TIMEOUT, 30 s)
    with open_ledger(Settings(data_dir=data, shop_id="shop_t")) as ledger:
        receipt = ledger.receipt_for("pi_1")
    assert receipt["status"] == "pending" and receipt["claimed_by"]  # the dead process's claim


def turn_taken(path) -> bool:
    """Whether another process holds the writers' turn of a SQLite ledger (its flock)."""
    import fcntl

    if not path.exists():
        return False
    with open(path, "rb") as turn:
        try:
            fcntl.flock(turn, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(turn, fcntl.LOCK_UN)
        return False


@pytest.mark.parametrize("poll", ["0", "-1", "nan", "inf", "-inf", "1e400", "1e9"])
def test_a_poll_that_cannot_work_is_a_usage_error(tmp_path, poll):
    result = CliRunner().invoke(
        app, ["worker", "--poll", poll], env={"BOOKPAY_DATA_DIR": str(tmp_path / "data")}
    )
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--poll'" in result.stderr and "Traceback" not in result.output
    assert "must be a number of seconds from 0.05 to 60, got " in result.stderr
    assert not (tmp_path / "data").exists()  # refused before the ledger is opened


def test_worker_once_on_an_empty_a_newer_or_an_unreachable_ledger(tmp_path):
    data = tmp_path / "data"
    env = {"BOOKPAY_DATA_DIR": str(data)}
    empty = CliRunner().invoke(app, ["worker", "--once"], env=env)
    assert empty.exit_code == 0, empty.output
    assert empty.stderr == (
        "Receipts handled: 0; tax records tried: 0; paid carts' other payments looked at: 0.\n"
    )
    with open_ledger(Settings(data_dir=data)) as ledger:
        version = ledger.schema_version
    conn = sqlite3.connect(data / "bookpay.sqlite3")
    conn.execute(f"PRAGMA user_version = {version + 1}")
    conn.close()
    for settings in ({}, {"BOOKPAY_DATABASE_URL": "postgresql://bookpay@127.0.0.1:1/none"}):
        result = CliRunner().invoke(app, ["worker", "--once"], env={**env, **settings})
        assert result.exit_code == 5, result.output
        assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
        assert "Traceback" not in result.output
