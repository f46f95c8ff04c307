"""Small HTTP servers for tests that stand between bookpay and Stripe (a reverse proxy, a fake
Stripe passing what it does not answer on to the emulator): the pieces they share."""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# Headers of one hop: the answer passed on gets its own.
HOP_BY_HOP = ("content-length", "connection", "transfer-encoding")


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def forward(
    handler: BaseHTTPRequestHandler, upstream: str, path: str, body: bytes
) -> tuple[int, bytes, list[tuple[str, str]]]:
    """The request ``handler`` holds, sent to ``upstream`` at ``path``: (status, body, headers)
    of the answer, as ``send`` takes them."""
    target = urlsplit(upstream)
    conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
    try:
        headers = {k: v for k, v in handler.headers.items() if k.lower() != "host"}
        conn.request(handler.command, path, body=body or None, headers=headers)
        got = conn.getresponse()
        return got.status, got.read(), got.getheaders()
    finally:
        conn.close()


def send(handler: BaseHTTPRequestHandler, status: int, data: bytes, headers=()) -> None:
    """Answer ``status`` with ``data`` and ``headers`` (those of one hop left out)."""
    handler.send_response(status)
    for name, value in headers:
        if name.lower() not in HOP_BY_HOP:
            handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def serve(handler_class: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A server of ``handler_class`` on a free port of 127.0.0.1, running in a thread of its
    own (``shutdown`` and ``server_close`` it after)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server
