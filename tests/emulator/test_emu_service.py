"""The service: startup, ports, persistence, latency, object shapes against Stripe's fixtures."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import stripe

from bookpay.emulator import EmulatorOptions, create_app, start_emulator

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "stripe" / "fixtures3.json"


def client_for(emu: Any) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_x", base_addresses={"api": emu.url}, max_network_retries=0)


def test_import_is_light() -> None:
    code = (
        "import sys, bookpay.emulator as e; e.EmulatorOptions();"
        "print(any(m in sys.modules for m in ('waitress', 'sqlite3', 'stripe', 'bottle')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_emulator_imports_nothing_foreign() -> None:
    package = Path(__file__).resolve().parents[2] / "bookpay" / "emulator"
    banned = re.compile(r"^\s*(from|import)\s+(stripe|typer|rich|bottle|bookpay|\.\.)", re.M)
    for source in package.glob("*.py"):
        assert not banned.search(source.read_text()), source.name


def test_starts_fast_and_port_in_use() -> None:
    started = time.perf_counter()
    with start_emulator() as emu:
        assert time.perf_counter() - started < 1.0
        assert (
            emu.host == "127.0.0.1" and emu.port > 0 and emu.url == f"http://127.0.0.1:{emu.port}"
        )
        with pytest.raises(OSError, match="already in use"):
            start_emulator(port=emu.port)
    with socket.socket() as probe:  # stopped: the port is free again
        probe.bind(("127.0.0.1", emu.port))


def test_create_app_is_wsgi() -> None:
    app = create_app(EmulatorOptions())
    try:
        seen: list[str] = []
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/healthz", "SERVER_NAME": "x",
                   "SERVER_PORT": "1", "wsgi.url_scheme": "http"}  # fmt: skip
        body = b"".join(app(environ, lambda status, headers: seen.append(status)))
        assert seen == ["200 OK"] and json.loads(body)["ok"] is True
    finally:
        app.close()


def test_state_survives_restart(tmp_path: Path) -> None:
    db = tmp_path / "data" / "emulator.sqlite3"
    options = EmulatorOptions(db_path=db, retry_schedule=(0.05,))
    with start_emulator(options=options) as emu:
        client = client_for(emu)
        pi = client.v1.payment_intents.create(
            params={
                "amount": 1000,
                "currency": "usd",
                "confirm": True,
                "payment_method": "pm_card_visa",
            },
            options={"idempotency_key": "persist"},
        )
        # An endpoint nobody answers: its delivery stays owed across the restart.
        client.v1.webhook_endpoints.create(
            params={"url": "http://127.0.0.1:9/down", "enabled_events": ["charge.refunded"]}
        )
    assert db.exists()
    with start_emulator(options=options) as emu:
        client = client_for(emu)
        assert client.v1.payment_intents.retrieve(pi.id).status == "succeeded"
        assert client.v1.charges.retrieve(pi.latest_charge).amount == 1000
        replay = client.v1.payment_intents.create(
            params={
                "amount": 1000,
                "currency": "usd",
                "confirm": True,
                "payment_method": "pm_card_visa",
            },
            options={"idempotency_key": "persist"},
        )
        assert replay.id == pi.id
        assert len(client.v1.events.list().data) == 3


def test_pending_delivery_resumes_after_restart(tmp_path: Path, receiver: Any) -> None:
    db = tmp_path / "emulator.sqlite3"
    receiver.statuses = [503]
    options = EmulatorOptions(db_path=db, retry_schedule=(0.4,))
    with start_emulator(options=options) as emu:
        client = client_for(emu)
        client.v1.webhook_endpoints.create(
            params={"url": receiver.url, "enabled_events": ["payment_intent.created"]}
        )
        client.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
        receiver.wait_for(1)
    with start_emulator(options=options) as emu:
        got = receiver.wait_for(2)
        assert got[0]["body"] == got[1]["body"]
        evt_id = json.loads(got[1]["body"])["id"]
        deadline = time.time() + 2
        while (
            client_for(emu).v1.events.retrieve(evt_id).pending_webhooks and time.time() < deadline
        ):
            time.sleep(0.02)
        assert client_for(emu).v1.events.retrieve(evt_id).pending_webhooks == 0


def test_ephemeral_forgets() -> None:
    with start_emulator() as emu:
        client_for(emu).v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    with start_emulator() as emu:
        assert client_for(emu).v1.payment_intents.list().data == []


def test_latency_overlaps(tmp_path: Path) -> None:
    with start_emulator(options=EmulatorOptions(latency=0.2)) as emu:
        client = client_for(emu)
        errors: list[BaseException] = []

        def one() -> None:
            try:
                client.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        started = time.perf_counter()
        client.v1.payment_intents.list()
        assert time.perf_counter() - started >= 0.2
        started = time.perf_counter()
        threads = [threading.Thread(target=one) for _ in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        assert not errors
        assert elapsed < 1.5, f"32 calls with 0.2 s latency took {elapsed:.2f} s: not concurrent"
        assert len(client.v1.payment_intents.list(params={"limit": 100}).data) == 32


# --- shapes ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def examples() -> dict[str, Any]:
    return json.loads(FIXTURES.read_text())["resources"]


def test_object_shapes_match_stripe_examples(examples: dict[str, Any]) -> None:
    with start_emulator() as emu:
        client = client_for(emu)
        we = client.v1.webhook_endpoints.create(
            params={"url": "http://127.0.0.1:9/x", "enabled_events": ["*"]}
        )
        pi = client.v1.payment_intents.create(
            params={
                "amount": 1000,
                "currency": "usd",
                "confirm": True,
                "payment_method": "pm_card_visa",
            }
        )
        refund = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 100})
        ours = {
            "payment_intent": client.v1.payment_intents.retrieve(pi.id),
            "payment_method": client.v1.payment_methods.retrieve(pi.payment_method),
            "charge": client.v1.charges.retrieve(pi.latest_charge),
            "refund": refund,
            "event": client.v1.events.list().data[0],
            "webhook_endpoint": client.v1.webhook_endpoints.retrieve(we.id),
        }
        for kind, obj in ours.items():
            theirs = examples[kind]
            mine = obj.to_dict()
            missing = sorted(set(theirs) - set(mine))
            assert not missing, f"{kind} lacks {missing}"
            assert mine["object"] == kind
            assert not [k for k in mine if k.startswith("_")], kind
        card_keys = set(examples["payment_method"]["card"])
        assert card_keys <= set(ours["payment_method"].to_dict()["card"])
        listing = client.v1.payment_intents.list().to_dict()
        assert set(listing) >= {"object", "data", "has_more", "url"}
