"""The gateway's HTTP transport: keep-alive reuse, a connection closed while idle, timeouts,
proxies from the environment, headers whatever their case."""

from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest
from processes import counts_open_fds, open_fds, settled

from bookpay.transport import Transport, TransportError

TIMEOUT = (2.0, 2.0)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def do_GET(self):
        if self.path == "/slow":
            time.sleep(1.0)
        if self.path.startswith("/trickle"):
            return self.trickle()
        body = f"{self.path} {self.client_address[1]}".encode()
        if self.path == "/close-big":  # an answer ending its connection, longer than one read
            body = b"y" * 1_000_000
            self.close_connection = True
        self.send_response(200)
        self.send_header("Request-Id", "req_1")
        self.send_header("Content-Length", str(len(body)))
        if self.path == "/close-big":
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        if self.path == "/drop":  # then closed, as an idle keep-alive timeout closes it
            self.close_connection = True

    do_POST = do_GET

    def trickle(self):
        """An answer a byte every 0.1 s (its headers too, for /trickle-headers): never a read
        timeout's wait between two bytes, but 4 s to the end (8 s with its headers; 1.5 s for
        the 15 bytes of /trickle-short)."""
        length = 15 if self.path == "/trickle-short" else 40
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n".encode()
        slow = head + b"x" * length if self.path == "/trickle-headers" else b"x" * length
        if self.path != "/trickle-headers":
            self.wfile.write(head)
        try:
            for byte in slow:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:  # the client gave up: good
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def url(server, path="/v1/x"):
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def test_calls_of_one_thread_share_one_keep_alive_connection(server):
    transport = Transport(trust_env=False)
    answers = [transport.request("get", url(server), {}, None, TIMEOUT) for _ in range(3)]
    assert [status for _, status, _ in answers] == [200, 200, 200]
    ports = {body.split()[1] for body, _, _ in answers}
    assert len(ports) == 1  # the same client port: the same connection
    assert answers[0][2]["request-id"] == "req_1" and "REQUEST-ID" in answers[0][2]
    assert answers[0][2].get("Request-Id") == "req_1"
    transport.close()


def test_an_answer_that_closes_its_connection_is_read_whole(server):
    """``Connection: close`` (an HTTP/1.0 server, a proxy): http.client closes the connection
    once it has the headers, and the body is read after that, from the socket the answer keeps
    open, as its own file keeps it (a million bytes: many reads after the close)."""
    transport = Transport()
    body, status, _ = transport.request("GET", url(server, "/close-big"), {}, None, TIMEOUT)
    assert (status, len(body), set(body)) == (200, 1_000_000, {ord("y")})
    body, status, _ = transport.request("GET", url(server), {}, None, TIMEOUT)  # and then again
    assert status == 200 and body.startswith(b"/v1/x ")
    transport.close()


def test_a_connection_the_server_closed_while_idle_is_replaced_before_use(server):
    transport = Transport(trust_env=False)
    first, _, _ = transport.request("post", url(server), {}, "a=1", TIMEOUT)
    for conn, _ in transport._local.connections.values():
        # The server closes its end, as its idle timeout would: our half closed, it sees EOF.
        conn.sock.shutdown(1)
    time.sleep(0.2)
    second, status, _ = transport.request("get", url(server), {}, None, TIMEOUT)
    assert status == 200
    assert first.split()[1] != second.split()[1]  # a new connection, not an error
    transport.close()


def test_a_read_timeout_is_a_retryable_timeout(server):
    transport = Transport(trust_env=False)
    with pytest.raises(TransportError) as caught:
        transport.request("get", url(server, "/slow"), {}, None, (2.0, 0.2))
    assert caught.value.timeout and caught.value.retry
    assert isinstance(caught.value.__cause__, TimeoutError)


def test_a_refused_connection_is_retryable_and_says_so():
    transport = Transport(trust_env=False)
    with pytest.raises(TransportError) as caught:
        transport.request("get", "http://127.0.0.1:9/v1/x", {}, None, TIMEOUT)
    assert caught.value.retry and not caught.value.timeout
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)


def test_a_proxy_from_the_environment_is_used_unless_told_not_to(server, monkeypatch):
    # The "proxy" is the test server itself: a plain HTTP proxy is sent the whole URL.
    proxy = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("http_proxy", proxy)
    monkeypatch.setenv("no_proxy", "")
    target = "http://stripe.invalid/v1/x"
    body, _, _ = Transport().request("get", target, {}, None, TIMEOUT)
    assert body.split()[0] == target.encode()
    with pytest.raises(TransportError):  # not trusting the environment: no such host
        Transport(trust_env=False).request("get", target, {}, None, TIMEOUT)


@counts_open_fds
def test_the_connection_of_a_thread_that_ended_is_closed_and_forgotten(server):
    # /readyz pings from a thread of their own each time: one socket left open per ping was
    # a load balancer's polling running the process out of descriptors.
    transport = Transport(trust_env=False)
    before = open_fds()
    for _ in range(40):
        thread = threading.Thread(
            target=transport.request, args=("get", url(server), {}, None, TIMEOUT)
        )
        thread.start()
        thread.join()
    assert len(transport._all) == 0  # the threads ended, and their connections with them
    assert settled(open_fds, before + 2) <= before + 2
    transport.request("get", url(server), {}, None, TIMEOUT)  # this thread's stays open
    assert len(transport._all) == 1
    transport.close()


def test_a_connection_replaced_after_the_server_dropped_it_is_forgotten(server):
    transport = Transport(trust_env=False)
    ports = set()
    for _ in range(25):
        body, status, _ = transport.request("get", url(server, "/drop"), {}, None, TIMEOUT)
        assert status == 200
        ports.add(body.split()[1])
        time.sleep(0.03)  # the server's close arrives before the next call
    assert len(ports) == 25  # each call on a new connection: the dropped one was replaced
    assert len(transport._all) == 1
    transport.close()


@pytest.mark.parametrize("path", ["/trickle", "/trickle-headers"])
def test_a_server_trickling_its_answer_cannot_hold_a_call_past_its_deadline(server, path):
    transport = Transport(trust_env=False)
    started = time.monotonic()
    with pytest.raises(TransportError) as caught:
        transport.request("get", url(server, path), {}, None, (2.0, 1.0), deadline=started + 1.0)
    assert time.monotonic() - started < 2.5  # not the 4 s the whole answer takes
    assert caught.value.timeout and caught.value.retry
    assert isinstance(caught.value.__cause__, TimeoutError)
    if path == "/trickle":  # without a deadline, the read timeout is per wait: it all comes
        started = time.monotonic()
        answer = transport.request("get", url(server, "/trickle-short"), {}, None, (2.0, 1.0))
        body, status, _ = answer
        assert (status, body) == (200, b"x" * 15)
        assert time.monotonic() - started > 1.0  # longer than one read timeout
    transport.close()


def test_a_hung_name_resolution_is_held_to_the_connect_timeout(monkeypatch):
    resolve = socket.getaddrinfo
    release = threading.Event()

    def hung(host, *args, **kwargs):
        if host == "stripe-dns.test":
            release.wait(5)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hung)
    transport = Transport(trust_env=False)
    started = time.monotonic()
    with pytest.raises(TransportError) as caught:
        transport.request("get", "http://stripe-dns.test/v1/x", {}, None, (0.5, 2.0))
    release.set()
    assert time.monotonic() - started < 2.0  # not the resolver's 5 s
    assert caught.value.timeout and caught.value.retry
    assert isinstance(caught.value.__cause__, TimeoutError)


def test_a_name_that_does_not_resolve_says_so(monkeypatch):
    def unknown(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unknown)
    with pytest.raises(TransportError) as caught:
        Transport(trust_env=False).request("get", "http://nowhere.test/v1/x", {}, None, TIMEOUT)
    assert caught.value.retry and not caught.value.timeout
    assert isinstance(caught.value.__cause__, socket.gaierror)
