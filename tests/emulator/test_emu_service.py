"""The service: startup, ports, persistence, latency, object shapes against Stripe's fixtures."""

from __future__ import annotations

import gc
import json
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import stripe
from stripe_oracle import optional

from bookpay.emulator import EMULATOR_DB, EmulatorOptions, api, create_app, start_emulator

# Stripe's example objects, vendored with their licence (tests/reference/stripe/README.md).
FIXTURES = Path(__file__).resolve().parents[1] / "reference" / "stripe" / "fixtures3.json"


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
    banned = re.compile(r"^\s*(from|import)\s+(stripe|typer|rich|bottle|\.\.)", re.M)
    # Of bookpay itself, only the version string and two modules that import nothing but the
    # standard library: the currencies of bookpay.money and the unsafe characters of
    # bookpay.terminal.
    own = re.compile(r"^\s*(from|import)\s+(bookpay\S*)(.*)$", re.M)
    allowed = {
        ("from", "bookpay", " import __version__"),
        ("from", "bookpay.money", None),
        ("from", "bookpay.terminal", None),
    }
    for pure in ("money.py", "terminal.py"):
        text = (package.parent / pure).read_text()
        imported = re.findall(r"^\s*(?:from|import)\s+(\S+)", text, re.M)
        assert imported[0] == "__future__", pure
        foreign = [name for name in imported if name.split(".")[0] not in sys.stdlib_module_names]
        assert not foreign, f"{pure} imports {foreign}"
    for source in package.glob("*.py"):
        text = source.read_text()
        assert not banned.search(text), source.name
        for how, module, rest in own.findall(text):
            assert (how, module, rest) in allowed or (how, module, None) in allowed, (
                f"{source.name}: {how} {module}{rest}"
            )


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


def test_state_survives_restart(tmp_path: Path, paid_intent: Callable[..., Any]) -> None:
    db = tmp_path / "data" / "emulator.sqlite3"
    options = EmulatorOptions(db_path=db, retry_schedule=(0.05,))
    with start_emulator(options=options) as emu:
        client = client_for(emu)
        pi = paid_intent(client, options={"idempotency_key": "persist"})
        # An endpoint nobody answers: its delivery stays owed across the restart.
        client.v1.webhook_endpoints.create(
            params={"url": "http://127.0.0.1:9/down", "enabled_events": ["charge.refunded"]}
        )
    assert db.exists()
    with start_emulator(options=options) as emu:
        client = client_for(emu)
        assert client.v1.payment_intents.retrieve(pi.id).status == "succeeded"
        assert client.v1.charges.retrieve(pi.latest_charge).amount == 1000
        replay = paid_intent(client, options={"idempotency_key": "persist"})
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


def test_object_shapes_match_stripe_examples(
    examples: dict[str, Any], paid_intent: Callable[..., Any]
) -> None:
    with start_emulator() as emu:
        client = client_for(emu)
        we = client.v1.webhook_endpoints.create(
            params={"url": "http://127.0.0.1:9/x", "enabled_events": ["*"]}
        )
        pi = paid_intent(client)
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
            # What Stripe's example shows and Stripe always shows: an optional field (such as
            # transfer_data, set in the example) is absent from ours unless we set it.
            missing = sorted(k for k in set(theirs) - set(mine) if not optional(kind, k))
            assert not missing, f"{kind} lacks {missing}"
            assert mine["object"] == kind
            assert not [k for k in mine if k.startswith("_")], kind
        card_keys = set(examples["payment_method"]["card"])
        assert card_keys <= set(ours["payment_method"].to_dict()["card"])
        listing = client.v1.payment_intents.list().to_dict()
        assert set(listing) >= {"object", "data", "has_more", "url"}


# --- starting, addresses, the store file ----------------------------------------------------


def test_busy_port_leaves_nothing_open() -> None:
    with start_emulator() as emu:
        before = set(threading.enumerate())  # (a thread of an earlier test may end meanwhile)
        gc.collect()  # what earlier tests left for the collector is not this test's to report
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            for _ in range(3):
                with pytest.raises(OSError, match="already in use") as caught:
                    start_emulator(port=emu.port)
            del caught
            gc.collect()
        leaks = [str(w.message) for w in seen if issubclass(w.category, ResourceWarning)]
        assert leaks == []
        # No app was built: no store, no delivery thread.
        assert [t.name for t in set(threading.enumerate()) - before] == []


def ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def healthy(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/healthz", timeout=5) as answer:
        return json.loads(answer.read())["ok"] is True


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback (::1) on this machine")
@pytest.mark.parametrize("host", ["::1", "::"])
def test_ipv6_url(host: str) -> None:
    with start_emulator(host) as emu:
        assert emu.host == host and emu.url == f"http://[::1]:{emu.port}"
        assert healthy(emu.url)


def test_wildcard_url_is_loopback() -> None:
    with start_emulator("0.0.0.0") as emu:
        assert emu.host == "0.0.0.0" and emu.url == f"http://127.0.0.1:{emu.port}"
        assert healthy(emu.url)


def test_unresolvable_host_is_an_oserror() -> None:
    with pytest.raises(OSError, match=r"cannot start the emulator on no-such-host\.invalid:0"):
        start_emulator("no-such-host.invalid")


def test_db_file_name() -> None:
    assert EMULATOR_DB == "emulator.sqlite3"


def test_store_file_from_before_the_reference_columns(
    tmp_path: Path, paid_intent: Callable[..., Any]
) -> None:
    db = tmp_path / EMULATOR_DB
    options = EmulatorOptions(db_path=db)
    with start_emulator(options=options) as emu:
        client = client_for(emu)
        pi = paid_intent(client, amount=2000)
        refund = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 500})
    # Rewrite the file as an emulator without the payment_intent and charge columns left it.
    con = sqlite3.connect(db)
    con.executescript(
        """
        DROP INDEX objects_payment_intent;
        DROP INDEX objects_charge;
        CREATE TABLE old (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL,
                          type TEXT NOT NULL, created INTEGER NOT NULL, data TEXT NOT NULL);
        INSERT INTO old SELECT seq, id, type, created, data FROM objects;
        DROP TABLE objects;
        ALTER TABLE old RENAME TO objects;
        CREATE INDEX objects_type ON objects (type, seq);
        PRAGMA user_version = 0;
        """
    )
    con.close()
    with start_emulator(options=options) as emu:
        client = client_for(emu)
        charge = client.v1.charges.retrieve(pi.latest_charge, params={"expand": ["refunds"]})
        assert [r.id for r in charge.refunds.data] == [refund.id]
        listed = client.v1.charges.list(params={"payment_intent": pi.id})
        assert [c.id for c in listed.data] == [pi.latest_charge]
        by_charge = client.v1.refunds.list(params={"charge": pi.latest_charge})
        assert [r.id for r in by_charge.data] == [refund.id]
        # New objects land in the migrated table as well.
        second = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 100})
        by_pi = client.v1.refunds.list(params={"payment_intent": pi.id})
        assert [r.id for r in by_pi.data] == [second.id, refund.id]
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA user_version").fetchone()[0] == 1
        rows = con.execute(
            "SELECT type, payment_intent, charge FROM objects WHERE type IN ('charge', 'refund')"
            " ORDER BY seq"
        ).fetchall()
    finally:
        con.close()
    assert rows == [
        ("charge", pi.id, None),
        ("refund", pi.id, pi.latest_charge),
        ("refund", pi.id, pi.latest_charge),
    ]


def test_stripe_js_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "stripe-v3.js"
    monkeypatch.setattr(api, "STATIC_JS", script)
    monkeypatch.setattr(api, "_static_bytes", None)
    monkeypatch.setattr(api, "_static_etag", "")  # else later tests see this script's ETag
    app = create_app(EmulatorOptions())
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/v3", "SERVER_NAME": "x",
               "SERVER_PORT": "1", "wsgi.url_scheme": "http"}  # fmt: skip

    def get() -> tuple[str, bytes]:
        seen: list[str] = []
        body = b"".join(app(dict(environ), lambda status, headers: seen.append(status)))
        return seen[0], body

    try:
        assert get() == ("404 Not Found", b"stripe-v3.js is not installed\n")
        script.write_text("window.Stripe = function () {};\n")
        assert get() == ("200 OK", b"window.Stripe = function () {};\n")
        script.unlink()  # read once: served from memory from now on
        assert get() == ("200 OK", b"window.Stripe = function () {};\n")
    finally:
        app.close()
