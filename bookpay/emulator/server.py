"""Running the emulator on its own HTTP server (httpd.py) in a background thread."""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

from .api import Emulator
from .httpd import Server

try:
    import fcntl
except ImportError:  # Windows: the state file is not locked
    fcntl = None

# Open connections the emulator keeps, idle keep-alive ones included. Every stripe-python client
# (a checkout server's worker threads, a benchmark's shoppers) holds one per thread, so a limit of
# 100 (or a few per thread) is soon used up, and a client past it waits until an idle one times
# out: the emulator seems to hang. Connections (a thread each) are cheap; descriptors are the bound.
CONNECTION_LIMIT = 1000
IDLE_TIMEOUT = 30  # seconds before an idle connection is closed
# Answered without waiting for one of the `threads` request slots: the health check, and the
# control API (a test clears a fault or moves the clock even while every slot is busy).
EXEMPT = ("/healthz", "/_emulator/")
RESERVED_FDS = 64  # kept free for the store, the listening socket and webhook deliveries


def connection_limit() -> int:
    """CONNECTION_LIMIT, or fewer if the process may not open that many file descriptors."""
    try:
        import resource
    except ImportError:  # Windows
        return CONNECTION_LIMIT
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return CONNECTION_LIMIT
    return max(16, min(CONNECTION_LIMIT, soft - RESERVED_FDS))


def bind(host: str, port: int) -> socket.socket:
    """A bound TCP socket for host:port (the first address host resolves to), or OSError.

    Binding before anything else starts means a taken port leaves nothing open behind: no app,
    no store, no server thread.
    """
    try:
        name = None if host in ("", "*") else host
        infos = socket.getaddrinfo(
            name, port, socket.AF_UNSPEC, socket.SOCK_STREAM, socket.IPPROTO_TCP, socket.AI_PASSIVE
        )
    except OSError as exc:  # socket.gaierror: a name that does not resolve
        raise OSError(exc.errno, f"cannot start the emulator on {host}:{port}: {exc}") from exc
    family, socktype, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, socktype, proto)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # IPv6 only, as asked
        if os.name != "nt":  # on Windows it would let a second server share the port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise OSError(
                exc.errno, f"cannot start the emulator: {host}:{port} is already in use"
            ) from exc
        raise OSError(exc.errno, f"cannot start the emulator on {host}:{port}: {exc}") from exc
    return sock


def url_for(host: str, sock: socket.socket) -> str:
    """The URL a client reaches a bound socket at: a wildcard address means its loopback."""
    address, port = sock.getsockname()[:2]
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:  # a name (localhost, a host name): clients resolve it as we did
        if host and host != "*":
            return f"http://{host}:{port}"
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.is_unspecified:
        address = "::1" if ip.version == 6 else "127.0.0.1"
    if ":" in address:
        return f"http://[{address.replace('%', '%25')}]:{port}"
    return f"http://{address}:{port}"


class StateInUse(Exception):
    """Another running emulator keeps its state in this file. Two emulators on one file would
    each list both's webhook endpoints and send every event to the shops of both."""

    def __init__(self, path: Path, holder: dict) -> None:
        self.path = path
        self.url = holder.get("url") if isinstance(holder.get("url"), str) else None
        self.pid = holder.get("pid") if isinstance(holder.get("pid"), int) else None
        super().__init__(f"{path} is the state of {self.holder}")

    @property
    def holder(self) -> str:
        """ "the emulator at URL (process N)", as far as its lock file says."""
        if self.url is None:
            return "another emulator"
        return f"the emulator at {self.url}" + (f" (process {self.pid})" if self.pid else "")


def lock_state(path: Path, url: str) -> int | None:
    """Hold ``<state>-lock`` (an ``flock``, let go by a process that dies) for as long as this
    emulator runs: its descriptor, to close at stop. Raises StateInUse, naming the emulator that
    holds it (the file says its URL and process). None without locks (Windows, a filesystem
    that has none): the state is then used unlocked, as before."""
    if fcntl is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(f"{path}-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = json.loads(os.pread(fd, 4096, 0))
        except ValueError:  # being written, or not ours to read
            holder = {}
        os.close(fd)
        raise StateInUse(path, holder if isinstance(holder, dict) else {}) from None
    except OSError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"url": url, "pid": os.getpid()}).encode(), 0)
    return fd


def unlock_state(fd: int | None) -> None:
    if fd is not None:
        os.ftruncate(fd, 0)  # nobody's any more
        os.close(fd)  # lets go of the lock


class RunningEmulator:
    """A started emulator: `.url`, `.host`, `.port`, `.app`; `stop()`, or use it with `with`."""

    def __init__(self, host: str, port: int, options: Any) -> None:
        sock = bind(host, port)
        self._state_lock = None
        try:
            if options.db_path is not None:  # one emulator per state file (StateInUse)
                self._state_lock = lock_state(Path(options.db_path), url_for(host, sock))
            self.app = Emulator(options)
        except BaseException:
            sock.close()
            unlock_state(self._state_lock)
            raise
        try:
            self._server = Server(
                self.app,
                sock,
                threads=options.threads,
                connection_limit=connection_limit(),
                idle_timeout=IDLE_TIMEOUT,
                ident="bookpay-emulator",
                exempt=EXEMPT,
            )
        except BaseException as exc:
            sock.close()
            self.app.close()
            unlock_state(self._state_lock)
            if isinstance(exc, OSError):
                raise OSError(
                    exc.errno, f"cannot start the emulator on {host}:{port}: {exc}"
                ) from exc
            raise
        self.host = host
        self.port = int(sock.getsockname()[1])
        self.url = url_for(host, sock)
        self._stopped = False
        self._thread = threading.Thread(
            target=self._server.serve, name="emulator-http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            self._server.stop()  # waits a little for requests under way
            self._thread.join(timeout=5)
        finally:  # even when Ctrl-C (or SIGTERM) again cuts that wait short
            try:
                self.app.close()
            finally:
                unlock_state(self._state_lock)
                self._state_lock = None

    def __enter__(self) -> RunningEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<RunningEmulator {self.url}>"
