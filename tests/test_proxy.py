"""A proxy from the environment that asks for a login (``http://user:pass@host:port``): the
login goes with the CONNECT tunnel and with plain-HTTP proxied requests, and a refusal (407) is
said in words, once, without the password."""

from __future__ import annotations

import base64
import json
import socketserver
import threading

import pytest
from typer.testing import CliRunner

from bookpay.cli import app
from bookpay.config import Settings
from bookpay.errors import StripeUnavailable
from bookpay.payments import Gateway
from bookpay.transport import Transport, TransportError

TIMEOUT = (5.0, 5.0)
SK = "sk_test_51HxAbCdEfGhIjKlMnOpQrStUvWxYz0123"
PK = "pk_test_51HxAbCdEfGhIjKlMnOpQrStUvWxYz9876"
# A user name and a password with characters a URL must percent-encode.
USER, PASSWORD = "shop@example.com", "s3cr:t/p%ss"
LOGIN_URL = "shop%40example.com:s3cr%3At%2Fp%25ss"
EXPECTED = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


class ProxyHandler(socketserver.StreamRequestHandler):
    """A proxy wanting ``EXPECTED``: without it a 407. With it, a plain-HTTP request is answered
    with the URL it asked for; a CONNECT is let through (to nothing: it closes at once, so the
    TLS handshake that follows fails, which tells the test the proxy said yes)."""

    def handle(self):
        head = []
        while True:
            line = self.rfile.readline()
            if line in (b"", b"\r\n", b"\n"):
                break
            head.append(line.decode("latin-1").rstrip("\r\n"))
        if not head:
            return
        self.server.seen.append(head)
        login = [h.split(":", 1)[1].strip() for h in head if h.lower().startswith("proxy-auth")]
        if login != [EXPECTED]:
            self.wfile.write(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b'Proxy-Authenticate: Basic realm="shop"\r\nContent-Length: 0\r\n\r\n'
            )
        elif head[0].startswith("CONNECT "):
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            body = head[0].split()[1].encode()
            self.wfile.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                % (len(body), body)
            )


@pytest.fixture
def proxy(monkeypatch):
    socketserver.ThreadingTCPServer.daemon_threads = True
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), ProxyHandler)
    server.seen = []
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    yield server
    server.shutdown()
    server.server_close()


def use_proxy(monkeypatch, proxy, login: str | None) -> None:
    at = f"{login}@" if login is not None else ""
    url = f"http://{at}127.0.0.1:{proxy.server_address[1]}"
    for name in ("https_proxy", "http_proxy", "HTTPS_PROXY", "HTTP_PROXY"):
        monkeypatch.setenv(name, url)


def test_the_login_goes_with_the_connect_tunnel_percent_decoded(proxy, monkeypatch):
    use_proxy(monkeypatch, proxy, LOGIN_URL)
    with pytest.raises(TransportError) as caught:  # the tunnel leads nowhere: TLS fails after
        Transport().request("GET", "https://api.stripe.com/v1/x", {}, None, TIMEOUT)
    [head] = proxy.seen
    assert head[0] == "CONNECT api.stripe.com:443 HTTP/1.0"
    assert f"Proxy-Authorization: {EXPECTED}" in head
    assert caught.value.proxy_status is None  # not the proxy: it said yes


def test_the_login_goes_with_each_plain_http_request_through_the_proxy(proxy, monkeypatch):
    use_proxy(monkeypatch, proxy, LOGIN_URL)
    transport = Transport()
    for _ in range(2):
        body, status, _ = transport.request(
            "GET", "http://stripe.invalid/v1/x", {"Authorization": "Bearer k"}, None, TIMEOUT
        )
        assert (status, body) == (200, b"http://stripe.invalid/v1/x")
    assert [f"Proxy-Authorization: {EXPECTED}" in head for head in proxy.seen] == [True, True]
    transport.close()


@pytest.mark.parametrize("scheme", ["https", "http"])
@pytest.mark.parametrize(
    ("login", "words"),
    [
        ("shop%40example.com:wrong", "refused its user name and password"),
        (None, "asks for a user name and password"),
    ],
)
def test_a_407_is_said_in_words_and_not_worth_another_attempt(
    proxy, monkeypatch, scheme, login, words
):
    use_proxy(monkeypatch, proxy, login)
    with pytest.raises(TransportError) as caught:
        Transport().request("GET", f"{scheme}://stripe.invalid/v1/x", {}, None, TIMEOUT)
    variable = f"{scheme.upper()}_PROXY"
    assert str(caught.value) == (
        f"the proxy in {variable} {words} (407 Proxy Authentication Required)"
    )
    assert caught.value.proxy_status == 407 and not caught.value.retry
    assert "wrong" not in str(caught.value)


def test_a_wrong_proxy_login_fails_a_stripe_call_once_naming_it(proxy, monkeypatch, tmp_path):
    use_proxy(monkeypatch, proxy, f"{USER.replace('@', '%40')}:n0t-the-password")
    gateway = Gateway(Settings(secret_key=SK, data_dir=tmp_path / "data"))
    with pytest.raises(StripeUnavailable) as caught:
        gateway.list_intents(limit=1)
    assert caught.value.message == (
        "Could not reach Stripe: the proxy in HTTPS_PROXY refused its user name and password "
        "(407 Proxy Authentication Required)."
    )
    assert "HTTPS_PROXY" in caught.value.hint and "password" in caught.value.hint
    assert len(proxy.seen) == 1  # the same refusal at every attempt: one was enough
    gateway.close()


def test_the_cli_names_the_proxy_refusal_and_never_prints_the_password(proxy, monkeypatch):
    secret = "n0t-the-passw0rd"
    use_proxy(monkeypatch, proxy, f"shop:{secret}")
    env = {"STRIPE_SECRET_KEY": SK, "STRIPE_PUBLISHABLE_KEY": PK}
    runner = CliRunner()
    listed = runner.invoke(app, ["intent", "list"], env=env)
    assert listed.exit_code == 4
    assert "refused its user name and password (407" in listed.output
    checked = runner.invoke(app, ["config", "check", "--json"], env=env)
    assert checked.exit_code == 5
    report = json.loads(checked.stdout)
    [finding] = [f for f in report["findings"] if f["level"] == "problem"]
    assert "refused its user name and password (407" in finding["message"]
    assert finding["fix"].startswith("check the user name and password in HTTPS_PROXY")
    human = runner.invoke(app, ["config", "check"], env=env)
    assert "Fix: check the user name and password in HTTPS_PROXY" in human.output
    for result in (listed, checked, human):
        assert secret not in result.output + (result.stderr or "")


@pytest.mark.parametrize("password", ["s3cr3t#x", "pa?ss", "pa/ss", "1234/x"])
def test_a_password_with_an_unencoded_url_character_is_named_never_shown(
    proxy, monkeypatch, password
):
    """``#``, ``?`` and ``/`` end a URL's address: left unencoded in a password they cut it into
    the port (a ValueError showing the password) or name another host (``shop:1234``)."""
    use_proxy(monkeypatch, proxy, f"shop:{password}")
    with pytest.raises(TransportError) as caught:
        Transport().request("GET", "https://stripe.invalid/v1/x", {}, None, TIMEOUT)
    assert str(caught.value) == (
        "the proxy in HTTPS_PROXY is not an address bookpay can read: percent-encode any"
        " @ : / ? # % in its user name and password (%40 %3A %2F %3F %23 %25)"
    )
    assert not caught.value.retry and caught.value.proxy_status == 0
    assert proxy.seen == []  # nothing was sent anywhere
    env = {"STRIPE_SECRET_KEY": SK, "STRIPE_PUBLISHABLE_KEY": PK}
    for command in (["intent", "list"], ["config", "check"]):
        result = CliRunner().invoke(app, command, env=env)
        assert result.exit_code in (4, 5), result.output
        assert "percent-encode" in result.output
        assert password not in result.output + (result.stderr or "")
        assert "unexpected" not in result.output
