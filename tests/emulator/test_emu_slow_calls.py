"""A slow or hung API call delays no other: a latency and a `timeout` fault's hold are waited
outside the server's request slots (``threads``), the health check and the control API never
take one, and a held connection is let go as soon as its client hangs up."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import raw

from bookpay.emulator import EmulatorOptions, start_emulator
from bookpay.emulator.httpd import Server
from bookpay.emulator.server import bind

KEY = "sk_test_slow"
THREADS = 2  # request slots: a few held calls would take them all


@pytest.fixture
def emu() -> Iterator[Any]:
    options = EmulatorOptions(threads=THREADS, retry_schedule=(), async_delay=60)
    with start_emulator(options=options) as running:
        yield running


def until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Whether ``condition`` came true within ``timeout`` seconds (looked at every 20 ms)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def send_customers_call(emu: Any) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", emu.port), timeout=10)
    sock.sendall(f"GET /v1/customers HTTP/1.1\r\nAuthorization: Bearer {KEY}\r\n\r\n".encode())
    return sock


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    return call(), time.monotonic() - started


def test_calls_held_by_a_timeout_fault_keep_no_other_call_waiting(emu):
    rule = {"fault": "timeout", "path": "/v1/customers", "seconds": 60}
    assert raw(emu.url, "POST", "/_emulator/faults", rule, key=KEY).status == 200
    held = [send_customers_call(emu) for _ in range(THREADS + 2)]  # more than there are slots
    try:
        # Every one of them ran (and is being held), not only as many as there are slots.
        injected = emu.app.faults.injected
        assert until(lambda: injected["timeout"] == len(held)), dict(injected)
        for method, path, key in [
            ("GET", "/healthz", None),
            ("GET", "/v3/", None),
            ("GET", "/v1/payment_intents", KEY),
            ("GET", "/3ds/authenticate/pi_none", None),  # the 3-D Secure page
            ("DELETE", "/_emulator/faults", KEY),  # the fault can be cleared while it holds
        ]:
            answer, took = timed(lambda: raw(emu.url, method, path, key=key))  # noqa: B023
            assert answer.status < 500, (path, answer.status)
            assert took < 5, (path, took)
        assert raw(emu.url, "GET", "/v1/customers", key=KEY).status == 200  # cleared
    finally:
        for sock in held:
            sock.close()


def test_a_held_connection_is_let_go_as_soon_as_its_client_hangs_up(emu):
    rule = {"fault": "timeout", "path": "/v1/customers", "seconds": 60}
    raw(emu.url, "POST", "/_emulator/faults", rule, key=KEY)
    sock = send_customers_call(emu)
    assert until(lambda: emu.app.faults.injected["timeout"] == 1)
    open_connections = emu._server._open
    port = sock.getsockname()[1]  # the held call's (the fault's own request may still be closing)

    def held() -> bool:
        for conn in list(open_connections):
            with contextlib.suppress(OSError):  # closed meanwhile: not held
                if conn.getpeername()[1] == port:
                    return True
        return False

    assert held()
    sock.close()  # the client gave up: nobody waits for the answer any more
    assert until(lambda: not held(), timeout=5), "the connection is still held"


def test_latency_is_waited_outside_the_request_slots():
    options = EmulatorOptions(threads=THREADS, latency=1.0, retry_schedule=(), async_delay=60)
    calls = 3 * THREADS
    with start_emulator(options=options) as slow:
        statuses: list[int] = []

        def call() -> None:
            statuses.append(raw(slow.url, "GET", "/v1/customers", key=KEY).status)

        threads = [threading.Thread(target=call) for _ in range(calls)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        took = time.monotonic() - started
    assert statuses == [200] * calls
    # All overlap: one latency, not one per slot-full of calls (3 s), with room for a busy host.
    assert 1.0 <= took < 2.5, took


def test_exempt_paths_are_answered_while_every_slot_is_busy():
    release = threading.Event()

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/busy":
            release.wait(30)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    server = Server(
        app,
        bind("127.0.0.1", 0),
        threads=1,
        connection_limit=8,
        idle_timeout=30,
        ident="t",
        exempt=("/healthz", "/_emulator/"),
    )
    serving = threading.Thread(target=server.serve, daemon=True)
    serving.start()
    address = server.sock.getsockname()[:2]
    busy = socket.create_connection(address, timeout=10)
    try:
        busy.sendall(b"GET /busy HTTP/1.1\r\n\r\n")  # takes the only slot, and keeps it
        for path in ("/healthz", "/_emulator/faults"):
            with socket.create_connection(address, timeout=5) as sock:
                sock.sendall(f"GET {path} HTTP/1.1\r\nConnection: close\r\n\r\n".encode())
                assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK"), path
        # Anything else waits for the slot (which the busy request gives back).
        with socket.create_connection(address, timeout=10) as sock:
            sock.sendall(b"GET /other HTTP/1.1\r\nConnection: close\r\n\r\n")
            sock.settimeout(0.3)
            with pytest.raises(TimeoutError):
                sock.recv(1)
            release.set()
            sock.settimeout(10)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
    finally:
        release.set()
        busy.close()
        server.stop()
        serving.join(5)
