"""Capacity: connections held open by keep-alive clients, idle connections, log floods.

The shop and the emulator must keep answering new clients while many others hold keep-alive
connections, close connections left idle, and not flood the console with one warning per queued
request. The figures under load are measured by ``python -m bench capacity``.
"""

from __future__ import annotations

import http.client
import io
import logging
import time
from urllib.parse import urlsplit

import pytest

from bookpay.config import Settings
from bookpay.server import MAX_WEBHOOK_BODY, create_app
from bookpay.web import runner
from bookpay.web.logs import RepeatFilter

SLACK = 10.0  # seconds: generous, for a loaded machine


def keep_alive_clients(url: str, count: int) -> list[http.client.HTTPConnection]:
    """``count`` connections that each made one request and stay open (HTTP/1.1 keep-alive)."""
    parts = urlsplit(url)
    held = []
    for _ in range(count):
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=SLACK)
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        response.read()
        assert response.status == 200
        held.append(conn)
    return held


def answers_a_new_client(url: str) -> bool:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=SLACK)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:  # socket.timeout: the server never took the connection
        return False
    finally:
        conn.close()


@pytest.fixture
def shop(tmp_path, emulator):
    settings = Settings(data_dir=tmp_path / "data", emulator_url=emulator.url)
    apps = []

    def make(**options):
        server = runner.start(
            lambda url: apps.append(create_app(settings, public_url=url)) or apps[-1],
            background=True,
            **options,
        )
        made.append(server)
        return server

    made: list = []
    yield make
    for server in made:
        server.stop()
    for app in apps:
        app.close()


def test_the_shop_answers_new_clients_while_256_hold_keep_alive_connections(shop):
    server = shop()
    held = keep_alive_clients(server.url, 256)  # waitress's default limit is 100
    try:
        assert answers_a_new_client(server.url)
        for conn in held[:8]:  # and the ones holding on are still served
            conn.request("GET", "/")
            assert conn.getresponse().status == 200
    finally:
        for conn in held:
            conn.close()


def test_the_emulator_answers_new_clients_while_128_hold_keep_alive_connections(emulator):
    held = keep_alive_clients(emulator.url, 160)
    try:
        assert answers_a_new_client(emulator.url)
    finally:
        for conn in held:
            conn.close()


def test_the_shop_closes_idle_connections(shop):
    server = shop(capacity=runner.Capacity(idle_timeout=1))
    [conn] = keep_alive_clients(server.url, 1)
    conn.sock.settimeout(SLACK)
    started = time.monotonic()
    try:
        assert conn.sock.recv(1) == b""  # the server closed it
    except (TimeoutError, ConnectionResetError) as exc:
        pytest.fail(f"the idle connection was not closed: {exc!r}")
    finally:
        conn.close()
    assert time.monotonic() - started < 1 + SLACK


def test_stopping_wakes_the_servers_loop(shop, monkeypatch):
    """Not at the end of its wait for its sockets: every server a test stopped waited twice."""
    monkeypatch.setattr(runner, "LOOP_SLICE", 60.0)
    server = shop()
    keep_alive_clients(server.url, 1)[0].close()  # served, and gone: the loop waits for sockets
    assert server.stop(wait=SLACK)
    assert not server.thread.is_alive()


def test_a_body_over_the_limit_is_refused_before_it_is_sent(shop):
    """A declared body longer than any route reads is a 413 at once: the server neither waits
    for it nor buffers it (waitress's default would take 1 GB per connection)."""
    assert MAX_WEBHOOK_BODY < runner.MAX_REQUEST_BODY
    parts = urlsplit(shop().url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=SLACK)
    try:
        conn.putrequest("POST", "/cart/items")
        conn.putheader("Content-Type", "application/x-www-form-urlencoded")
        conn.putheader("Content-Length", str(runner.MAX_REQUEST_BODY + 1))
        conn.endheaders()  # and not one byte of the body
        started = time.monotonic()
        response = conn.getresponse()
        response.read()
    except TimeoutError:
        pytest.fail("the server waited for the body")
    finally:
        conn.close()
    assert response.status == 413
    assert time.monotonic() - started < SLACK


def test_a_body_within_the_limit_reaches_the_app(shop):
    parts = urlsplit(shop().url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=SLACK)
    try:
        body = b"x" * (MAX_WEBHOOK_BODY + 1)  # the app's own limit answers, as JSON
        conn.request("POST", "/webhook", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        answer = response.read()
    finally:
        conn.close()
    assert response.status == 413
    assert b'"payload_too_large"' in answer


def test_capacity_is_checked():
    assert runner.Capacity(threads=1).problems() == ["threads must be at least 2"]
    assert runner.Capacity().problems() == []
    # The same bounds as `bookpay serve`'s options, for code that starts a shop itself.
    too_much = runner.Capacity(threads=10**20, connection_limit=100_001, idle_timeout=3601)
    assert too_much.problems() == [
        "threads must be at most 1024",
        "connection-limit must be at most 100000",
        "idle-timeout must be at most 3600",
    ]
    assert runner.Capacity(threads=48).stripe_slots == 32
    assert runner.Capacity(threads=3).stripe_slots == 2


def test_the_connection_limit_stays_below_the_descriptor_limit(monkeypatch):
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda which: (256, 4096))
    assert runner.usable_connections(1000) == 256 - runner.RESERVED_FDS
    monkeypatch.setattr(resource, "getrlimit", lambda which: (65536, 65536))
    assert runner.usable_connections(1000) == 1000


# Log floods --------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_repeated_warnings_are_held_back_and_counted():
    clock = Clock()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RepeatFilter(10.0, clock=clock))
    queue = logging.getLogger("test.capacity.waitress.queue")
    queue.addHandler(handler)
    queue.propagate = False
    try:
        for depth in range(1, 4516):
            queue.warning("Task queue depth is %d", depth)
            clock.now += 0.005  # 4,515 warnings in about 23 s
        queue.error("a real error always shows")
        queue.error("a real error always shows")
    finally:
        queue.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert lines[0] == "Task queue depth is 1"
    assert lines[1] == "Task queue depth is 2001 (and 1999 more like it since the last shown)"
    assert lines[2] == "Task queue depth is 4001 (and 1999 more like it since the last shown)"
    assert lines[3:] == ["a real error always shows"] * 2


def test_serve_rate_limits_waitress_warnings(capsys):
    from bookpay.commands.serve import _configure_logging, _remove_handler

    queue = logging.getLogger("waitress.queue")
    level = queue.level
    queue.setLevel(logging.NOTSET)  # a background server started by another test quietens it
    handler = _configure_logging(debug=False)
    try:
        for depth in range(1000):
            logging.getLogger("waitress.queue").warning("Task queue depth is %d", depth)
            logging.getLogger("waitress").warning(
                "total open connections reached the connection limit, no longer accepting "
                "new connections"
            )
    finally:
        _remove_handler(handler)
        queue.setLevel(level)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert "Task queue depth is 0" in lines[0]
    assert "connection limit" in lines[1]
