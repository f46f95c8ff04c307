"""An emulator a reverse proxy serves under a path (BOOKPAY_EMULATOR_URL=http://host/emu, which
`config check` takes): `bookpay serve` uses it there, and says so plainly when nothing answers
there, instead of starting an emulator on the proxy's own port."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from http_fakes import forward, read_body, send, serve

from bookpay import testing
from bookpay.config import Settings
from bookpay.errors import UsageError
from bookpay.web.emulator_link import ensure_emulator


def proxy_under(prefix: str, upstream: str) -> ThreadingHTTPServer:
    """A reverse proxy passing ``prefix/...`` on to ``upstream/...``; anything else a 404."""

    class Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle_one(self):
            body = read_body(self)
            if not self.path.startswith(prefix + "/"):
                send(self, 404, b"not here")
            else:
                send(self, *forward(self, upstream, self.path[len(prefix) :], body))

        do_GET = do_POST = do_DELETE = handle_one

        def log_message(self, *args):
            pass

    return serve(Proxy)


@pytest.fixture
def proxied():
    with testing.emulator() as emu:
        server = proxy_under("/emu", emu.url)
        yield f"http://127.0.0.1:{server.server_address[1]}"
        server.shutdown()
        server.server_close()


def test_serve_uses_the_emulator_under_a_proxys_path(proxied, tmp_path):
    settings = Settings(data_dir=tmp_path, emulator_url=f"{proxied}/emu")
    found, started = ensure_emulator(settings, "127.0.0.1", None)
    assert started is None
    assert found.emulator_url == f"{proxied}/emu"


def test_nothing_under_the_proxys_path_is_said_so_not_taken_for_a_busy_port(proxied, tmp_path):
    settings = Settings(data_dir=tmp_path, emulator_url=f"{proxied}/elsewhere")
    with pytest.raises(UsageError) as refused:
        ensure_emulator(settings, "127.0.0.1", None)
    assert refused.value.message == (
        f"No bookpay emulator answers at BOOKPAY_EMULATOR_URL ({proxied}/elsewhere), and one "
        "under a path cannot be started here."
    )
    assert "unset BOOKPAY_EMULATOR_URL" in refused.value.hint
