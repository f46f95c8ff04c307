"""`bookpay serve` stopping with work under way, and shops on one data folder: real processes
(tests/processes.py), signalled as an operator or a developer would."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid

import pytest
from processes import (
    Emulator,
    Process,
    Shop,
    clean_environment,
    free_port,
    http,
    stop_all,
    succeeded_event,
    wait_for,
)

from bookpay.catalog import Catalog
from bookpay.config import Settings
from bookpay.ledger import open_ledger
from bookpay.payments import Gateway
from bookpay.webhooks import sign

SECRET = "whsec_serve_stop"
BOOK = Catalog.default().get("1")
# Seconds the ledger stays locked after SIGTERM: longer than serve used to wait for a request
# before closing the ledger under it (waitress's 5 s, then 2 s more).
HELD_AFTER_SIGTERM = 9.0


@pytest.fixture(autouse=True)
def _stop_everything():
    yield
    stop_all()


def test_sigterm_while_a_webhook_waits_for_the_ledger_lets_it_finish_and_exits_0(tmp_path):
    """Another process holds the SQLite ledger's write lock; a payment's webhook waits for it;
    SIGTERM comes. The shop stops taking requests, waits for that one (its answer sent, its
    order recorded) and exits 0: it used to close the ledger under the waiting thread after
    7 s and die of a segmentation fault, the order never recorded."""
    emulator = Emulator(tmp_path / "emulator")
    data = tmp_path / "shop"
    gateway = Gateway(Settings(data_dir=data, emulator_url=emulator.url))
    intent = gateway.create_intent(BOOK, attempt_id=str(uuid.uuid4()))
    # Paid before the shop registers an endpoint: the only delivery is the test's own.
    gateway.confirm_intent(intent["id"], payment_method="pm_card_visa")
    payload = succeeded_event(gateway.retrieve_intent(intent["id"]))
    shop = Shop(data, BOOKPAY_EMULATOR_URL=emulator.url, STRIPE_WEBHOOK_SECRET=SECRET)

    locker = sqlite3.connect(data / "bookpay.sqlite3", isolation_level=None)
    answer = {}

    def deliver() -> None:
        headers = {"Content-Type": "application/json", "Stripe-Signature": sign(payload, SECRET)}
        try:
            answer["status"], answer["text"] = http("POST", f"{shop.url}/webhook", payload, headers)
        except OSError as exc:  # the connection closed under it
            answer["error"] = exc

    try:
        locker.execute("BEGIN IMMEDIATE")  # another process's writer holds the ledger
        delivery = threading.Thread(target=deliver)
        delivery.start()
        time.sleep(1.5)  # the handler is waiting for the write lock
        assert not answer
        shop.terminate()
        time.sleep(HELD_AFTER_SIGTERM)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    delivery.join(30)
    assert shop.wait(30) == 0, "\n".join(shop.lines)
    assert answer.get("status") == 200, answer
    assert shop.saw(r"Waiting for 1 request under way to finish \(30 s at most")
    assert not shop.saw("Traceback|ERROR")
    with open_ledger(Settings(data_dir=data)) as ledger:
        assert ledger.fulfilment_count(intent["id"]) == 1
    # Disabled (kept for the next run) once the request was done.
    assert [e["status"] for e in emulator.endpoints()] == ["disabled"]


def test_a_shop_stopping_with_nothing_under_way_stops_at_once(tmp_path):
    shop = Shop(tmp_path / "shop", "--emulator-port", "0")
    status, _ = http("GET", f"{shop.url}/healthz")
    assert status == 200
    started = time.monotonic()
    shop.terminate()
    assert shop.wait(30) == 0
    assert time.monotonic() - started < 5
    assert not shop.saw("Waiting for")
    wait_for(lambda: not shop.alive)


# Shops on one data folder, each with an emulator of its own -------------------------------------


def test_a_second_emulator_on_the_same_data_folder_refuses_naming_the_first(tmp_path):
    """The emulator's state (``emulator.sqlite3``) is one emulator's: a second `serve` on the
    same folder with another --emulator-port (or a `bookpay emulator` there) used to share it,
    so both emulators listed both shops' endpoints and sent every event to both."""
    data = tmp_path / "data"
    first = Shop(data, "--emulator-port", "0")
    url = first.wait_for_line(r"Stripe emulator at (\S+) \(started here\)").group(1)
    pid = first.proc.pid
    port = free_port()
    second = Process(
        ["serve", "--port", "0", "--emulator-port", str(port)],
        clean_environment(BOOKPAY_DATA_DIR=str(data)),
    )
    second.wait_for_line(r"^Error:|Press Ctrl-C to stop")
    assert second.wait(30) == 2, "\n".join(second.lines)
    assert second.lines == [
        f"Error: Cannot start an emulator on 127.0.0.1:{port}: its state, "
        f"{data / 'emulator.sqlite3'}, is in use by the emulator at {url} (process {pid}). "
        f"Use that one (--emulator-port {url.rsplit(':', 1)[1]}, or its BOOKPAY_EMULATOR_URL), "
        "or give this shop a BOOKPAY_DATA_DIR of its own."
    ]
    alone = Process(["emulator", "--port", "0"], clean_environment(BOOKPAY_DATA_DIR=str(data)))
    alone.wait_for_line(r"^Error:|listening on")
    assert alone.wait(30) == 2, "\n".join(alone.lines)
    assert alone.lines == [
        f"Error: Cannot start the emulator: its state, {data / 'emulator.sqlite3'}, is in use "
        f"by the emulator at {url} (process {pid}). Use that one, or start this one with "
        "--ephemeral or another BOOKPAY_DATA_DIR."
    ]
    first.terminate()
    assert first.wait(30) == 0
    # Once the first has stopped, the state is free again.
    again = Shop(data, "--emulator-port", str(port))
    assert again.saw(r"\(started here\)")


def test_a_shop_keeps_its_emulator_only_for_shops_registered_with_it(tmp_path):
    """An endpoint kept in the emulator's state from an earlier run, whose shop (still up) uses
    another emulator now, does not keep this emulator, nor its process, running."""
    data = tmp_path / "data"
    earlier = Emulator(data, ephemeral=False)  # its state: data/emulator.sqlite3
    elsewhere = Shop(tmp_path / "elsewhere", BOOKPAY_EMULATOR_URL=earlier.url)
    earlier.terminate()
    assert earlier.wait(30) == 0  # the endpoint of `elsewhere` stays in the state it kept
    shop = Shop(data, "--emulator-port", "0")  # an emulator of its own, on that state
    assert shop.saw(r"\(started here\)")
    started = time.monotonic()
    shop.terminate()
    assert shop.wait(30) == 0, "\n".join(shop.lines)
    assert time.monotonic() - started < 10
    assert not shop.saw("keeps running for")
    assert elsewhere.alive
