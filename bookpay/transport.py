"""HTTP/1.1 for the gateway's calls: keep-alive connections straight over ``http.client``.

stripe-python does the Stripe part of a call (encoding, authentication, idempotency headers,
retries, error bodies) and hands the wire to an HTTP client. Its requests-based client spent
about 1.2 ms of CPU per call preparing, merging settings and pooling: two thirds of a webhook's
cost in the checkout server's process, where every event retrieves its object from Stripe and
the GIL is the bottleneck. Here a call is one ``http.client`` request on this thread's open
connection to the host.

What a Stripe client needs of the wire is kept: connect and read timeouts, TLS verified against
the CA bundle given, the ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` environment (unless told not
to, as for the local emulator), a proxy's user name and password (``http://user:pass@host:port``,
sent as ``Proxy-Authorization`` on the CONNECT tunnel or on each plain-HTTP proxied request), and
a connection the server closed while it sat idle is noticed before it is used. Failures are
``TransportError``: ``retry`` says whether another attempt may help (a timeout, a refused or
dropped connection), and the OSError behind it is its cause.
"""

from __future__ import annotations

import base64
import copy
import http.client
import io
import ipaddress
import select
import socket
import ssl
import threading
import time
import urllib.request
import weakref
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit


class TransportError(Exception):
    """A call that got no answer; ``timeout`` when it was a timeout. ``proxy_status`` is the
    status of a proxy that refused to pass the call on (407: it wants a login, or refused the
    one given; 0: the proxy's address in the environment cannot be read), and the message then
    says so in words fit for the user (never the password). ``sent`` when it failed with the
    connection made, so the request may have reached the server (and been done): not when the
    connection was refused, or the host name did not resolve."""

    def __init__(
        self,
        message: str,
        *,
        retry: bool,
        timeout: bool = False,
        proxy_status: int | None = None,
        sent: bool = False,
    ) -> None:
        super().__init__(message)
        self.retry = retry
        self.timeout = timeout
        self.proxy_status = proxy_status
        self.sent = sent


class Headers(dict):
    """Response headers, looked up whatever their case (as stripe-python expects)."""

    def __init__(self, pairs) -> None:
        super().__init__((name.lower(), value) for name, value in pairs)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())

    def get(self, name: str, default=None):
        return super().get(name.lower(), default)


class Transport:
    """Keep-alive connections, one per thread and origin; safe to share between threads.

    A thread's connections last as long as the thread: when it ends (a readiness ping's thread
    does, after one call), they are closed and forgotten. ``_all`` holds the connections in use,
    for ``close``; one replaced after the server dropped it leaves it.
    """

    def __init__(self, *, cafile: str | None = None, trust_env: bool = True) -> None:
        self.trust_env = trust_env
        self._tls = ssl.create_default_context(cafile=cafile)
        self._local = threading.local()
        self._all: set[http.client.HTTPConnection] = set()
        self._lock = threading.Lock()

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | str | None,
        timeout: tuple[float, float],
        *,
        deadline: float | None = None,
    ) -> tuple[bytes, int, Headers]:
        """(body, status, headers) of one request; TransportError when no answer came.

        ``timeout`` is (connect, read): connecting, the host name's resolution included, takes
        at most the first; each wait for bytes of the answer at most the second. ``deadline``
        (a ``time.monotonic()`` time) ends the whole exchange: no wait goes past it, however
        the answer trickles in, and reaching it is the same timeout as a read's.
        """
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn, proxy_headers = self._connection(parts, timeout)
        if proxy_headers is not None:  # a plain HTTP proxy is sent the whole URL (and its login)
            target = url
            headers = {**headers, **proxy_headers}
        if isinstance(body, str):
            body = body.encode()
        connected = False
        try:
            conn.response_class = _timed_response(timeout[1], deadline)
            if conn.sock is None:
                conn.timeout = timeout[0]
                conn.connect()
            connected = True  # from here on, the request may reach the server
            conn.sock.settimeout(_wait(timeout[1], deadline))
            conn.request(method.upper(), target, body=body, headers=dict(headers))
            response = conn.getresponse()
            content = response.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            refused = _tunnel_refused(exc)
            if refused is not None:
                login = "Proxy-Authorization" in getattr(conn, "_tunnel_headers", {})
                raise _proxy_refused(parts, *refused, login=login) from exc
            timed_out = isinstance(exc, TimeoutError)
            raise TransportError(
                f"{type(exc).__name__}: {exc}", retry=not isinstance(exc, ssl.SSLError),
                timeout=timed_out, sent=connected,
            ) from exc  # fmt: skip
        if response.will_close or (proxy_headers is not None and response.status == 407):
            conn.close()
        if proxy_headers is not None and response.status == 407:  # the proxy's, not the server's
            login = "Proxy-Authorization" in proxy_headers
            raise _proxy_refused(parts, 407, response.reason, login=login)
        return content, response.status, Headers(response.getheaders())

    def _connection(self, parts, timeout) -> tuple[http.client.HTTPConnection, dict | None]:
        """This thread's connection to the URL's origin (a new one if it was closed meanwhile),
        and, when it goes through a plain HTTP proxy, the headers each request adds for it."""
        key = (parts.scheme, parts.hostname, parts.port)
        found = getattr(self._local, "connections", None)
        if found is None:
            found = self._local.connections = {}
            # Let go of with the rest of the thread's local data when the thread ends; its
            # finalizer then closes the thread's connections (it holds them, not the marker).
            self._local.end = end = _ThreadEnd()
            weakref.finalize(end, _forget, weakref.ref(self), found)
        entry = found.get(key)
        if entry is not None:
            conn, proxy_headers = entry
            if conn.sock is None or not dropped(conn.sock):
                return conn, proxy_headers
            conn.close()
            with self._lock:
                self._all.discard(conn)
        conn, proxy_headers = self._new(parts, timeout)
        found[key] = (conn, proxy_headers)
        with self._lock:
            self._all.add(conn)
        return conn, proxy_headers

    def _new(self, parts, timeout) -> tuple[http.client.HTTPConnection, dict | None]:
        conn, proxy_headers = self._made(parts, timeout)
        conn._create_connection = _connect  # the name's resolution within the connect timeout
        return conn, proxy_headers

    def _made(self, parts, timeout) -> tuple[http.client.HTTPConnection, dict | None]:
        https = parts.scheme == "https"
        port = parts.port or (443 if https else 80)
        proxy = self._proxy_for(parts)
        if proxy is None:
            if https:
                return http.client.HTTPSConnection(
                    parts.hostname, port, timeout=timeout[0], context=self._tls
                ), None
            return http.client.HTTPConnection(parts.hostname, port, timeout=timeout[0]), None
        proxied, proxy_port = _proxy_address(proxy, parts)
        login = _proxy_login(proxied)
        if https:  # a CONNECT tunnel through the proxy, TLS end to end
            conn = http.client.HTTPSConnection(
                proxied.hostname, proxy_port, timeout=timeout[0], context=self._tls
            )
            conn.set_tunnel(parts.hostname, port, headers=login)
            return conn, None
        return http.client.HTTPConnection(proxied.hostname, proxy_port, timeout=timeout[0]), login

    def _proxy_for(self, parts) -> str | None:
        if not self.trust_env:
            return None
        proxies = urllib.request.getproxies()
        proxy = proxies.get(parts.scheme)
        if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
            return None
        return proxy

    def close(self) -> None:
        with self._lock:
            connections, self._all = self._all, set()
        for conn in connections:
            conn.close()


def _proxy_address(proxy: str, parts):
    """The proxy's URL split, and its port; a TransportError (its words never showing the URL:
    it may hold a password) when it cannot be read. A ``#``, ``?`` or ``/`` left unencoded in a
    password ends the address early: the rest of it is taken for a port (a ValueError showing
    the password), or for the host (``user:1234/x@proxy`` is host ``user``, port 1234)."""
    proxied = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    try:
        port = proxied.port or 80
    except ValueError:
        port = None
    if (
        port is None
        or not proxied.hostname
        or "@" in proxied.path + proxied.query + proxied.fragment
    ):
        variable = "HTTPS_PROXY" if parts.scheme == "https" else "HTTP_PROXY"
        raise TransportError(
            f"the proxy in {variable} is not an address bookpay can read: percent-encode any"
            " @ : / ? # % in its user name and password (%40 %3A %2F %3F %23 %25)",
            retry=False,
            proxy_status=0,
        )
    return proxied, port


def _proxy_login(proxied) -> dict[str, str]:
    """The ``Proxy-Authorization`` header for the user name and password in a proxy's URL
    (percent-decoded, as curl and requests read them), or none when it has no user name."""
    if proxied.username is None:
        return {}
    login = f"{unquote(proxied.username)}:{unquote(proxied.password or '')}".encode()
    return {"Proxy-Authorization": "Basic " + base64.b64encode(login).decode("ascii")}


def _tunnel_refused(exc: BaseException) -> tuple[int, str] | None:
    """The status and reason of a proxy that answered a CONNECT with something else than 200
    (``http.client`` says so only in an OSError's words), or None for any other failure."""
    text = str(exc)
    prefix = "Tunnel connection failed: "
    if type(exc) is not OSError or not text.startswith(prefix):
        return None
    status, _, reason = text[len(prefix) :].partition(" ")
    return (int(status), reason) if status.isdigit() else None


def _proxy_refused(parts, status: int, reason: str, *, login: bool) -> TransportError:
    """A proxy's refusal to pass a call on, in words that name the setting to correct. Only a
    5xx (the proxy could not reach the server) may go better at another attempt: a 407 (no
    login, or a wrong one) or a 403 is the same at every attempt."""
    variable = "HTTPS_PROXY" if parts.scheme == "https" else "HTTP_PROXY"
    said = f"{status} {reason}".strip()
    if status == 407 and login:
        words = f"the proxy in {variable} refused its user name and password ({said})"
    elif status == 407:
        words = f"the proxy in {variable} asks for a user name and password ({said})"
    else:
        words = f"the proxy in {variable} would not pass the request on ({said})"
    return TransportError(words, retry=status >= 500, proxy_status=status)


class _ThreadEnd:
    """A marker kept in a thread's local data only to be let go of when the thread ends."""

    __slots__ = ("__weakref__",)


def _forget(transport_ref, connections: dict) -> None:
    """A thread ended: close its connections, and take them out of its transport's ``_all``."""
    transport = transport_ref()
    for conn, _ in list(connections.values()):
        conn.close()
        if transport is not None:
            with transport._lock:
                transport._all.discard(conn)
    connections.clear()


def _wait(read_timeout: float, deadline: float | None) -> float:
    """How long the next wait for the server may take: the read timeout, or less if the
    deadline comes first (a TimeoutError once it has passed)."""
    if deadline is None:
        return read_timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the call's time ran out before its answer came")
    return min(read_timeout, left)


def _timed_response(read_timeout: float, deadline: float | None):
    """An ``HTTPConnection.response_class`` reading the answer through a ``_TimedReader``."""

    def response(sock, *args, **kwargs) -> http.client.HTTPResponse:
        return http.client.HTTPResponse(_TimedReader(sock, read_timeout, deadline), *args, **kwargs)

    return response


class _TimedReader(io.RawIOBase):
    """A connected socket as ``http.client`` reads an answer from it (``makefile("rb")``, all it
    asks of the socket), each receive held to the read timeout and to the deadline: a socket's
    timeout alone is per receive, so a server sending a byte at a time kept a call for as long
    as it liked. It reads through the socket's own file (``socket.makefile``), which keeps the
    socket open until the answer is read: an answer that ends its connection
    (``Connection: close``) has http.client close the connection as soon as its headers are in,
    and its body is read after that."""

    def __init__(self, sock: socket.socket, read_timeout: float, deadline: float | None) -> None:
        super().__init__()
        self._sock = sock
        self._file = sock.makefile("rb", buffering=0)
        self._read_timeout = read_timeout
        self._deadline = deadline

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(self)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        self._sock.settimeout(_wait(self._read_timeout, self._deadline))
        return self._file.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            self._file.close()  # the socket is closed now if its connection let go of it
        super().close()


def _connect(address, timeout, source_address=None) -> socket.socket:
    """``socket.create_connection`` (what ``http.client`` connects with), the host name's
    resolution held to ``timeout`` too, and every address tried within it, not each in a
    ``timeout`` of its own: ``getaddrinfo`` has no timeout, and a hung resolver held a call
    for as long as it hung, whatever its budget."""
    if not isinstance(timeout, (int, float)):  # no timeout given: nothing to hold to
        return socket.create_connection(address, timeout, source_address)
    host, port = address
    until = time.monotonic() + timeout
    error: OSError | None = None
    for family, kind, proto, _, sockaddr in _resolve(host, port, timeout):
        left = until - time.monotonic()
        if left <= 0:
            raise error or TimeoutError(f"no connection to {host} within {timeout:g} s")
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(left)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error or OSError(f"{host} resolves to no address")


def _resolve(host: str, port: int, timeout: float) -> list:
    """``getaddrinfo`` for a stream connection, waited for at most ``timeout`` seconds (an
    address needs no resolver, and is not given a thread)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return _lookups.resolve(host, port, timeout)
    return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)


class _Lookup:
    __slots__ = ("addresses", "done", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.addresses: list = []
        self.error: BaseException | None = None


class _Lookups:
    """Host names being resolved, each on a thread of its own so that a caller waits for it only
    as long as it may. Callers asking for a name while it is being resolved share that lookup,
    so a hung resolver holds one thread per name, not one per call. Nothing is kept after."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[tuple[str, int], _Lookup] = {}

    def resolve(self, host: str, port: int, timeout: float) -> list:
        key = (host, port)
        with self._lock:
            lookup = self._running.get(key)
            if lookup is None:
                lookup = self._running[key] = _Lookup()
                threading.Thread(
                    target=self._run, args=(key, lookup), name="bookpay-resolve", daemon=True
                ).start()
        if not lookup.done.wait(timeout):
            raise TimeoutError(f"{host} did not resolve within {timeout:g} s")
        if lookup.error is not None:
            raise copy.copy(lookup.error)  # its own copy: callers sharing it raise it at once
        return lookup.addresses

    def _run(self, key: tuple[str, int], lookup: _Lookup) -> None:
        try:
            lookup.addresses = socket.getaddrinfo(key[0], key[1], 0, socket.SOCK_STREAM)
        except Exception as exc:  # a gaierror; a UnicodeError for a name IDNA cannot encode
            lookup.error = exc
        finally:
            with self._lock:
                del self._running[key]
            lookup.done.set()


_lookups = _Lookups()


def dropped(sock: socket.socket) -> bool:
    """Whether an idle keep-alive connection was closed by the server (or has stray bytes):
    readable before a request was sent means one or the other. (`bookpay webhook replay` asks
    it of its connections too.)"""
    poller = select.poll()  # not select(): it cannot watch descriptors numbered 1024 or more
    poller.register(sock, select.POLLIN)
    try:
        return bool(poller.poll(0))
    except OSError:
        return True
