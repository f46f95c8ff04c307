"""`bookpay serve --no-worker` with `bookpay worker` beside it: the receipts and tax records a shop
queues are sent by another process, once each."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest
from typer.testing import CliRunner

from bookpay.cli import app
from bookpay.config import Settings
from bookpay.web.launch import start_shop
from bookpay.web.runner import Capacity

runner = CliRunner()


@pytest.fixture
def shop_without_worker(emulator, tmp_path):
    shop = start_shop(
        Settings(data_dir=tmp_path / "data", emulator_url=emulator.url),
        capacity=Capacity(threads=8),
        say=lambda line: None,
        background=True,
        workers=False,
    )
    try:
        yield shop
    finally:
        shop.stop()


def paid_order(shop) -> str:
    """A PaymentIntent paid through the shop's checkout; once its webhook fulfilled it."""
    request = urllib.request.Request(
        shop.url + "/create-payment-intent",
        data=json.dumps({"item": "1", "attemptId": str(uuid.uuid4())}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        intent = json.loads(answer.read())["paymentIntentId"]
    shop.services.gateway.confirm_intent(intent, payment_method="pm_card_visa")
    ledger = shop.services.ledger
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        order = ledger.find_order(intent)
        if order and order["status"] == "paid":
            return intent
        time.sleep(0.05)
    raise AssertionError(f"{intent} was not fulfilled")


def receipt_file(shop, intent: str):
    return shop.settings.data_dir / "outbox" / f"{intent}.eml"


def test_a_shop_without_its_worker_queues_receipts_and_bookpay_worker_once_sends_them(
    shop_without_worker, emulator
):
    shop = shop_without_worker
    intents = [paid_order(shop) for _ in range(3)]
    time.sleep(0.3)  # long enough for a worker thread, had the shop started one, to send them
    assert not any(receipt_file(shop, intent).exists() for intent in intents)
    assert shop.services.ledger.next_receipt_due() is not None
    env = {"BOOKPAY_EMULATOR_URL": emulator.url, "BOOKPAY_DATA_DIR": str(shop.settings.data_dir)}
    result = runner.invoke(app, ["worker", "--once"], env=env)
    assert result.exit_code == 0, result.output
    assert "Receipts handled: 3;" in result.stderr
    assert all(receipt_file(shop, intent).exists() for intent in intents)
    assert shop.services.ledger.next_receipt_due() is None
    again = runner.invoke(app, ["worker", "--once"], env=env)  # nothing is sent twice
    assert again.exit_code == 0 and "Receipts handled: 0;" in again.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_bookpay_worker_sends_within_its_poll_and_stops_on_sigterm_or_hangup(
    shop_without_worker, emulator, signum
):
    shop = shop_without_worker
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "BOOKPAY_"))},
        "BOOKPAY_EMULATOR_URL": emulator.url,
        "BOOKPAY_DATA_DIR": str(shop.settings.data_dir),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bookpay", "worker", "--poll", "0.1"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL),  # not nohup's
    )
    try:
        assert "looking every 0.1 s" in process.stderr.readline()
        intent = paid_order(shop)  # queued after the worker's first look: found by polling
        deadline = time.monotonic() + 10
        while not receipt_file(shop, intent).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert receipt_file(shop, intent).exists()
    finally:
        process.send_signal(signum)
        _, err = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "Stopping." in err and "Traceback" not in err


def test_serve_says_when_receipts_are_left_to_bookpay_worker(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "bookpay", "serve", "--port", "0", "--emulator-port", "0",
         "--no-worker", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "BOOKPAY_"))},
            "BOOKPAY_DATA_DIR": str(tmp_path / "data"),
        },
    )  # fmt: skip
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if "Press Ctrl-C" in line:
                break
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)
    assert any("left in the ledger for `bookpay worker`" in line for line in lines), lines
