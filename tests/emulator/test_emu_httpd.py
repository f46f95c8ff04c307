"""The emulator's own HTTP server (bookpay/emulator/httpd.py), over raw sockets: keep-alive,
HTTP/1.0, `Expect: 100-continue`, what it refuses, its limits, and stopping with clients open."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bookpay.emulator import EmulatorOptions, httpd, start_emulator
from bookpay.emulator.httpd import Server
from bookpay.emulator.server import bind

AUTH = "Authorization: Bearer sk_test_httpd\r\n"


@pytest.fixture(scope="module")
def emu() -> Iterator[Any]:
    with start_emulator(options=EmulatorOptions()) as running:
        yield running


def connect(emu: Any) -> socket.socket:
    return socket.create_connection(("127.0.0.1", emu.port), timeout=10)


def read_answer(sock: socket.socket, buffer: bytearray) -> tuple[str, dict[str, str], bytes]:
    """One answer off a connection (``buffer`` keeps what came after it)."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {bytes(buffer)!r}")
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    length = int(headers.get("content-length", 0))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-body")
        rest += chunk
    buffer[:] = rest[length:]
    return status, headers, rest[:length]


def closed(sock: socket.socket) -> bool:
    sock.settimeout(5)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_several_requests_on_one_connection_even_pipelined(emu) -> None:
    body = b"amount=2300&currency=usd"
    create = (
        f"POST /v1/payment_intents HTTP/1.1\r\nHost: x\r\n{AUTH}"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    health = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with connect(emu) as sock:
        buffer = bytearray()
        sock.sendall(create)
        status, headers, answer = read_answer(sock, buffer)
        assert status == "HTTP/1.1 200 OK", answer
        assert headers["request-id"].startswith("req_") and headers["server"] == "bookpay-emulator"
        assert "date" in headers and "connection" not in headers
        intent = json.loads(answer)["id"]
        sock.sendall(health + health)  # two at once: answered in order
        assert [read_answer(sock, buffer)[0] for _ in range(2)] == ["HTTP/1.1 200 OK"] * 2
        retrieve = f"GET /v1/payment_intents/{intent} HTTP/1.1\r\nHost: x\r\n{AUTH}\r\n"
        sock.sendall(retrieve.encode())
        assert json.loads(read_answer(sock, buffer)[2])["id"] == intent


def test_http_1_0_closes_unless_asked_to_keep_alive(emu) -> None:
    with connect(emu) as sock:
        sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        status, headers, _ = read_answer(sock, bytearray())
        assert status == "HTTP/1.1 200 OK" and headers["connection"] == "close"
        assert closed(sock)
    with connect(emu) as sock:
        buffer = bytearray()
        for _ in range(2):
            sock.sendall(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            assert read_answer(sock, buffer)[1]["connection"] == "Keep-Alive"


def test_connection_close_is_honoured(emu) -> None:
    with connect(emu) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert read_answer(sock, bytearray())[1]["connection"] == "close"
        assert closed(sock)


def test_expect_100_continue_is_answered_before_the_body(emu) -> None:
    body = b"email=a@example.com"
    head = (
        f"POST /v1/customers HTTP/1.1\r\nHost: x\r\n{AUTH}Expect: 100-continue\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    with connect(emu) as sock:
        sock.sendall(head.encode())
        assert sock.recv(64) == b"HTTP/1.1 100 Continue\r\n\r\n"  # as curl waits for it
        sock.sendall(body)
        status, _, answer = read_answer(sock, bytearray())
        assert status == "HTTP/1.1 200 OK" and json.loads(answer)["email"] == "a@example.com"


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", "400"),
        (b"GET /healthz HTTP/2.0\r\n\r\n", "505"),
        (b"GET /healthz HTTP/1.1\r\nNo colon here\r\n\r\n", "400"),
        (b"GET /healthz HTTP/1.1\r\n folded: header\r\n\r\n", "400"),
        (b"POST /v1/customers HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", "400"),
        (b"POST /v1/customers HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "400"),
        (b"POST /v1/customers HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "411"),
        (b"POST /v1/customers HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", "413"),
        (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", "414"),
        (b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 101 + b"\r\n", "431"),
    ],
)
def test_what_cannot_be_parsed_is_a_4xx_and_the_connection_closes(emu, request_bytes, status):
    with connect(emu) as sock:
        sock.sendall(request_bytes)
        answer = read_answer(sock, bytearray())
        assert answer[0].split(" ")[1] == status, answer
        assert answer[1]["connection"] == "close"
        assert closed(sock)
    with connect(emu) as sock:  # and the server still serves
        sock.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
        assert read_answer(sock, bytearray())[0] == "HTTP/1.1 200 OK"


def test_an_application_error_is_a_500_not_a_hang() -> None:
    def broken(environ, start_response):
        raise RuntimeError("boom")

    server = Server(
        broken, bind("127.0.0.1", 0), threads=2, connection_limit=4, idle_timeout=5, ident="t"
    )
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        with socket.create_connection(server.sock.getsockname()[:2], timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
            assert read_answer(sock, bytearray())[0] == "HTTP/1.1 500 Internal Server Error"
    finally:
        server.stop()
        thread.join(5)


def serve_hello(**limits: Any) -> tuple[Server, threading.Thread, tuple]:
    def hello(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    server = Server(hello, bind("127.0.0.1", 0), ident="t", **limits)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    return server, thread, server.sock.getsockname()[:2]


def test_past_the_connection_limit_a_client_waits_for_a_free_one(caplog) -> None:
    caplog.set_level(logging.WARNING, "bookpay.emulator.httpd")
    server, thread, address = serve_hello(threads=4, connection_limit=2, idle_timeout=30)
    try:
        first, second = (socket.create_connection(address, timeout=10) for _ in range(2))
        for sock in (first, second):
            sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
            assert read_answer(sock, bytearray())[2] == b"hello"
        third = socket.create_connection(address, timeout=10)  # in the backlog, not served
        third.sendall(b"GET / HTTP/1.1\r\n\r\n")
        third.settimeout(0.5)
        with pytest.raises(TimeoutError):
            third.recv(1)
        time.sleep(0.5)  # the accept loop looks again every 0.2 s: it says so once, not each time
        said = [r.getMessage() for r in caplog.records if r.name == "bookpay.emulator.httpd"]
        assert said == ["the emulator has 2 connections open, its limit: new ones wait until one"
                        " closes"]  # fmt: skip
        first.close()  # a slot frees up: the third is served
        third.settimeout(10)
        assert read_answer(third, bytearray())[2] == b"hello"
        for sock in (second, third):
            sock.close()
    finally:
        server.stop()
        thread.join(5)


def test_an_idle_connection_is_closed_after_the_idle_timeout() -> None:
    server, thread, address = serve_hello(threads=4, connection_limit=4, idle_timeout=0.5)
    try:
        with socket.create_connection(address, timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
            read_answer(sock, bytearray())
            started = time.monotonic()
            assert closed(sock)
            assert time.monotonic() - started < 5
    finally:
        server.stop()
        thread.join(5)


def test_stopping_ends_the_accept_loop_at_once(monkeypatch) -> None:
    """Not at the accept loop's next look at the stop flag: every emulator a test (or `bookpay
    serve`) stops waited that long."""
    monkeypatch.setattr(httpd, "ACCEPT_POLL", 60.0)
    server, thread, address = serve_hello(threads=4, connection_limit=8, idle_timeout=30)
    with socket.create_connection(address, timeout=10) as sock:  # the loop is accepting
        sock.sendall(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert read_answer(sock, bytearray())[2] == b"hello"
    server.stop()
    thread.join(10)
    assert not thread.is_alive()


def test_stopping_closes_open_connections_and_ends_the_threads() -> None:
    before = threading.active_count()
    server, thread, address = serve_hello(threads=4, connection_limit=8, idle_timeout=30)
    clients = [socket.create_connection(address, timeout=10) for _ in range(3)]
    for sock in clients:
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
        read_answer(sock, bytearray())
    server.stop()
    thread.join(5)
    assert all(closed(sock) for sock in clients)
    for sock in clients:
        sock.close()
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == before
