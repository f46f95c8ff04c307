"""The emulator's HTTP/1.1 server: a thread per connection, blocking sockets, the WSGI app called
directly from the thread that read the request.

Why not waitress (which the shop runs on): a request to waitress passes between threads three
times (its I/O loop reads it, a worker runs the app, the loop is woken again to finish the write).
For the emulator's callers, a few keep-alive connections each sending one small request after
another (stripe-python, a shop's worker threads), those hand-offs were most of a retrieve's time
on our side of the socket; here the thread blocked on a connection reads, answers and writes.

What it takes on: HTTP/1.0 and 1.1, keep-alive, `Expect: 100-continue`, bodies with a
Content-Length (a chunked body is refused with 411), at most ``connection_limit`` connections (the
rest wait in the listen backlog until one closes, as with waitress) and ``threads`` requests
handled at once, idle connections closed after ``idle_timeout`` seconds. A request it cannot
parse gets a 4xx and the connection is closed. An application that raises ``faults.Drop`` has
its connection closed without an answer.

A request slot (one of ``threads``) is held only while the app computes: a latency is waited
outside it (the app calls ``environ["bookpay.wait"]``, which lets the slot go and takes one
again), a `timeout` fault's hold once the request has left it (``Drop(hold=...)``: the
connection is held until then, or until the client hangs up or the server stops), and requests
to the ``exempt`` paths (the health check, the control API) never take one. So a slow or hung
call delays no other; each still has its connection's thread, as every open connection does.
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from .faults import Drop

log = logging.getLogger(__name__)

MAX_LINE = 65536  # bytes in a request line or a header line
MAX_HEADERS = 100
MAX_BODY = 16 * 1024 * 1024  # beyond this the server refuses (the app refuses 1 MiB itself)
ACCEPT_POLL = 0.2  # seconds between looks at the stop flag while waiting to accept


class BadRequest(Exception):
    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


_date_lock = threading.Lock()
_date: tuple[int, bytes] = (0, b"")


def _http_date() -> bytes:
    """Today's Date header value, formatted at most once a second."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        with _date_lock:
            _date = (now, formatdate(now, usegmt=True).encode())
    return _date[1]


class Server:
    """Serve ``app`` on a bound socket until ``stop()``; ``serve()`` runs the accept loop."""

    def __init__(
        self,
        app: Callable,
        sock: socket.socket,
        *,
        threads: int,
        connection_limit: int,
        idle_timeout: float,
        ident: str,
        exempt: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.sock = sock
        self.idle_timeout = idle_timeout
        self.ident = ident.encode()
        self._slots = threading.BoundedSemaphore(connection_limit)
        self._running = threading.BoundedSemaphore(threads)  # requests in the app at once
        self._exempt = exempt  # path prefixes answered without taking a slot
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._open: dict[socket.socket, threading.Thread] = {}
        name, port = sock.getsockname()[:2]
        self._server = {"SERVER_NAME": str(name), "SERVER_PORT": str(port)}
        sock.listen(1024)
        sock.settimeout(ACCEPT_POLL)

    def serve(self) -> None:
        full = False  # said once each time the limit is reached, not every poll
        while not self._stopping.is_set():
            if not self._slots.acquire(timeout=ACCEPT_POLL):
                if not full:
                    log.warning(
                        "the emulator has %d connections open, its limit: new ones wait until"
                        " one closes",
                        len(self._open),
                    )
                full = True
                continue
            full = False
            try:
                conn, peer = self.sock.accept()
            except (TimeoutError, BlockingIOError):
                self._slots.release()
                continue
            except OSError:  # the listening socket closed: stopping
                self._slots.release()
                break
            thread = threading.Thread(
                target=self._connection, args=(conn, peer), name="emulator-conn", daemon=True
            )
            with self._lock:
                if self._stopping.is_set():  # accepted just as stop() looked: not served
                    conn.close()
                    self._slots.release()
                    break
                self._open[conn] = thread
            try:
                thread.start()
            except RuntimeError:  # no thread to be had: this connection is refused, not leaked
                log.warning("the emulator could not start a thread for a new connection")
                with self._lock:
                    self._open.pop(conn, None)
                conn.close()
                self._slots.release()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop accepting, close every connection, wait a little for requests under way."""
        with self._lock:
            self._stopping.set()
            open_now = list(self._open.items())
        # The accept loop waits in accept(), which a close() from this thread does not end (it
        # would see the stop flag only at its next look, ACCEPT_POLL later): a shutdown does.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        for conn, _ in open_now:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)  # a thread waiting in recv wakes up
        deadline = time.monotonic() + timeout
        for _, thread in open_now:
            thread.join(max(0.0, deadline - time.monotonic()))

    # --- one connection ---------------------------------------------------------------------

    def _connection(self, conn: socket.socket, peer: Any) -> None:
        try:
            conn.settimeout(self.idle_timeout)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            reader = conn.makefile("rb", buffering=65536)
            remote = {"REMOTE_ADDR": str(peer[0]), "REMOTE_PORT": str(peer[1])}
            while not self._stopping.is_set():
                try:
                    request = _read_head(reader)
                    if request is None:
                        break
                    environ, keep_alive = self._environ(request, remote)
                    body = self._body(conn, reader, environ)
                except BadRequest as exc:
                    _answer_error(conn, exc.status, str(exc))
                    break
                environ["wsgi.input"] = io.BytesIO(body)
                if not self._respond(conn, environ, keep_alive):
                    break
        except (OSError, ValueError):  # the client went away, or idled past the timeout
            pass
        finally:
            with self._lock:
                self._open.pop(conn, None)
            with contextlib.suppress(OSError):
                conn.close()
            self._slots.release()

    def _environ(self, request: tuple, remote: dict[str, str]) -> tuple[dict[str, Any], bool]:
        method, target, version, headers = request
        path, _, query = target.partition("?")
        if not path.startswith("/"):  # absolute form: http://host/v1/...
            path = urlsplit(path).path or "/"
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query,
            "REQUEST_URI": target,
            "SERVER_PROTOCOL": version,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "bookpay.drops": True,  # this server closes a connection on faults.Drop
            "bookpay.holds": True,  # and holds it first as Drop(hold=seconds) asks
            **self._server,
            **remote,
        }
        for name, value in headers:
            key = name.upper().replace("-", "_")
            if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                if key in environ and environ[key] != value:
                    raise BadRequest("400 Bad Request", f"Conflicting {name} headers")
                environ[key] = value
                continue
            key = "HTTP_" + key
            environ[key] = f"{environ[key]}, {value}" if key in environ else value
        connection = environ.get("HTTP_CONNECTION", "").lower()
        if version == "HTTP/1.1":
            keep_alive = "close" not in connection
        else:
            keep_alive = "keep-alive" in connection
        return environ, keep_alive

    def _body(self, conn: socket.socket, reader: Any, environ: dict[str, Any]) -> bytes:
        if "HTTP_TRANSFER_ENCODING" in environ:
            raise BadRequest("411 Length Required", "Send the body with a Content-Length.")
        raw = environ.get("CONTENT_LENGTH", "").strip()
        if not raw:
            return b""
        if not raw.isdigit() or not raw.isascii():
            raise BadRequest("400 Bad Request", "Invalid Content-Length")
        length = int(raw)
        if length > MAX_BODY:
            raise BadRequest("413 Request Entity Too Large", "Request body too large")
        if environ.get("HTTP_EXPECT", "").lower() == "100-continue":
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = reader.read(length)
        if len(body) < length:
            raise OSError("the client closed the connection mid-body")
        return body

    def _respond(self, conn: socket.socket, environ: dict[str, Any], keep_alive: bool) -> bool:
        """Run the app and write its answer; whether the connection stays open."""
        started: list[Any] = []

        def start_response(status: str, headers: list, exc_info: Any = None) -> Callable:
            started[:] = [status, headers]
            return lambda data: None  # the app returns its body (write() is for old apps)

        if self._exempt and environ["PATH_INFO"].startswith(self._exempt):
            slot: Any = _NO_SLOT
        else:
            slot = self._running
            environ["bookpay.wait"] = self._wait_outside
        try:
            with slot:
                chunks = self.app(environ, start_response)
                try:
                    body = b"".join(chunks)
                finally:
                    close = getattr(chunks, "close", None)
                    if close is not None:
                        close()
        except Drop as drop:
            if drop.hold > 0:  # out of the slot by now: a held call keeps nobody else waiting
                self._hold(conn, drop.hold)
            return False  # closed with no answer: a dropped connection, as asked
        except Exception:
            log.exception("emulator: the application failed")
            _answer_error(conn, "500 Internal Server Error", "Internal Server Error")
            return False
        status, headers = started
        lines = [b"HTTP/1.1 ", status.encode("latin-1"), b"\r\n"]
        has_length = False
        for name, value in headers:
            if "\r" in value or "\n" in value:  # never let a header value split the answer
                value = value.replace("\r", " ").replace("\n", " ")
            has_length = has_length or name.lower() == "content-length"
            lines += [name.encode("latin-1"), b": ", value.encode("latin-1"), b"\r\n"]
        if not has_length and not status.startswith("304"):
            lines.append(b"Content-Length: %d\r\n" % len(body))
        lines += [b"Date: ", _http_date(), b"\r\nServer: ", self.ident, b"\r\n"]
        if not keep_alive:
            lines.append(b"Connection: close\r\n")
        elif environ["SERVER_PROTOCOL"] != "HTTP/1.1":
            lines.append(b"Connection: Keep-Alive\r\n")
        lines.append(b"\r\n")
        if environ["REQUEST_METHOD"] != "HEAD":
            lines.append(body)
        conn.sendall(b"".join(lines))
        return keep_alive

    def _wait_outside(self, seconds: float) -> None:
        """A latency, waited by a request in the app without its slot (taken again after)."""
        self._running.release()
        try:
            self._stopping.wait(seconds)
        finally:
            self._running.acquire()
        if self._stopping.is_set():
            raise Drop  # stopping: the request is not run

    def _hold(self, conn: socket.socket, seconds: float) -> None:
        """Keep a connection open and silent for ``seconds``, or until the client hangs up (no
        one is waiting any more: its thread and connection are let go at once) or the server
        stops (stop() shuts the socket down, which ends the wait too)."""
        deadline = time.monotonic() + seconds
        try:
            conn.settimeout(max(seconds, 0.001))
            if conn.recv(1, socket.MSG_PEEK) == b"":
                return  # the client closed its end
        except OSError:  # held for the whole time (TimeoutError), or the connection broke
            return
        # The client sent more behind the held request: never answered, held to the end.
        self._stopping.wait(max(0.0, deadline - time.monotonic()))


_NO_SLOT = contextlib.nullcontext()


def _read_head(reader: Any) -> tuple[str, str, str, list[tuple[str, str]]] | None:
    """(method, target, version, headers) of the next request; None at a clean end."""
    line = reader.readline(MAX_LINE + 1)
    while line in (b"\r\n", b"\n"):  # a stray empty line between requests is allowed
        line = reader.readline(MAX_LINE + 1)
    if not line:
        return None
    if len(line) > MAX_LINE:
        raise BadRequest("414 URI Too Long", "Request line too long")
    parts = line.decode("latin-1").rstrip("\r\n").split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[1]:
        raise BadRequest("400 Bad Request", "Malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise BadRequest("505 HTTP Version Not Supported", "HTTP/1.0 and HTTP/1.1 only")
    headers: list[tuple[str, str]] = []
    while True:
        line = reader.readline(MAX_LINE + 1)
        if not line:
            raise OSError("the client closed the connection mid-request")
        if line in (b"\r\n", b"\n"):
            return method.upper(), target, version, headers
        if len(line) > MAX_LINE or len(headers) >= MAX_HEADERS:
            raise BadRequest("431 Request Header Fields Too Large", "Too many or too long headers")
        text = line.decode("latin-1").rstrip("\r\n")
        name, sep, value = text.partition(":")
        if not sep or not name or name != name.strip() or " " in name or text[0] in " \t":
            raise BadRequest("400 Bad Request", "Malformed header")
        headers.append((name, value.strip(" \t")))


def _answer_error(conn: socket.socket, status: str, message: str) -> None:
    body = f"{status}\r\n\r\n{message}\r\n".encode("latin-1", "replace")
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode("latin-1")
    with contextlib.suppress(OSError):
        conn.sendall(head + body)
