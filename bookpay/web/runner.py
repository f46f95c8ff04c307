"""Run a WSGI app on waitress: bound first, so the app can know its own address.

The socket is bound before the app is built because the app needs its public URL (the
``return_url`` Stripe sends shoppers back to, the ``/webhook`` the emulator delivers to), and with
``--port 0`` that is only known once the port is taken. Binding first also turns "port in use"
into one clear error instead of a traceback from deep inside the server.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bookpay.errors import UsageError


@dataclass(frozen=True)
class Capacity:
    """How much the shop's waitress server takes on at once; `bookpay serve` options set it.

    - ``threads``: requests handled at once. A checkout holds a thread for the length of a Stripe
      call (a few hundred ms), so there are enough for the calls the Stripe bulkhead allows
      (``StripeLimits.max_concurrent``, at most two thirds of them) plus a third left for pages,
      static files, /healthz and webhooks whatever Stripe does.
    - ``connection_limit``: open connections, idle keep-alive ones included; beyond it waitress
      stops accepting (new clients wait in the listen backlog). Waitress's default of 100 is
      what 128 keep-alive shoppers exhausted; each connection costs a file descriptor and a
      few kB, so 1,000 is cheap, and it is kept below the process's file descriptor limit.
    - ``idle_timeout``: seconds before an idle connection (keep-alive, or one that never sent
      a whole request) is closed, so abandoned connections do not hold slots.
    """

    threads: int = 48
    connection_limit: int = 1000
    idle_timeout: int = 30

    def problems(self) -> list[str]:
        """What is out of range, in `bookpay serve`'s words (its options have the same bounds)."""
        found = []
        for name, (low, high) in CAPACITY_BOUNDS.items():
            value = getattr(self, name)
            if value < low:
                found.append(f"{name.replace('_', '-')} must be at least {low}")
            elif value > high:
                found.append(f"{name.replace('_', '-')} must be at most {high}")
        return found

    @property
    def stripe_slots(self) -> int:
        """The most Stripe calls that may wait at once and still leave a third for the rest."""
        return max(1, self.threads * 2 // 3)


DEFAULT_CAPACITY = Capacity()
# The least and the most of each; `bookpay serve`'s options say the same.
CAPACITY_BOUNDS = {
    "threads": (2, 1024),
    "connection_limit": (1, 100_000),
    "idle_timeout": (1, 3600),
}
# The largest request body waitress takes: twice the largest a route reads (a webhook's 512 KiB;
# a checkout request is ~100 bytes). Waitress reads a whole body before the app sees it, to a
# temporary file past 512 KiB, so without this any client could make it buffer 1 GB (its
# default) per connection; with it, a longer declared body is a 413 before a byte is read.
MAX_REQUEST_BODY = 1024 * 1024
# Descriptors kept free for the listening socket, the ledger, the log, outgoing Stripe calls.
RESERVED_FDS = 64


def usable_connections(wanted: int) -> int:
    """``wanted``, or fewer if the process may not open that many file descriptors."""
    try:
        import resource
    except ImportError:  # Windows: no such limit to respect here
        return wanted
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - RESERVED_FDS))


def url_host(host: str) -> str:
    """The host to put in a URL for a server bound to ``host`` (a wildcard is reached locally)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port), or a UsageError saying plainly what is wrong."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(
                f"Port {port} on {host} is already in use.",
                hint="Stop whatever is using it, or choose another with --port.",
                code="port_in_use",
            ) from None
        raise UsageError(
            f"Cannot listen on {host}:{port}: {exc.strerror or exc}.", code="cannot_listen"
        ) from None
    return sock


# Seconds `stop()` lets the requests under way finish: as long as a SQLite write waits for the
# ledger's lock (bookpay.ledger.sqlite.BUSY_TIMEOUT), so a webhook waiting on it is handled (or
# refused, and redelivered) rather than cut off; a call to Stripe is bounded well within it.
STOP_WAIT = 30.0
# Seconds before `stop()` says it is waiting (a request that ends sooner is not worth a line).
SAY_WAITING_AFTER = 1.0
# Seconds a background server's loop waits for its sockets at most before looking at its stop
# flags (`stop()` wakes it at once as well).
LOOP_SLICE = 0.05


@dataclass
class RunningServer:
    """A waitress server started by :func:`start`; ``run()`` blocks, ``stop()`` ends it."""

    url: str
    server: object
    thread: threading.Thread | None = None
    stopping: threading.Event = field(default_factory=threading.Event)
    # Set by stop(): take no more requests and close idle connections (the loop's thread does it).
    draining: threading.Event = field(default_factory=threading.Event)
    drained: threading.Event = field(default_factory=threading.Event)
    # Request threads still at work when stop() returned (left to the process's exit).
    unfinished: int = 0

    def run(self) -> None:
        """The foreground server, until Ctrl-C (a KeyboardInterrupt, raised again here: the
        requests under way are left running for ``stop()`` to wait for, where waitress's own
        ``run()`` would wait for them 5 s and then go on as if they had finished)."""
        from waitress import wasyncore

        wasyncore.loop(
            timeout=self.server.adj.asyncore_loop_timeout, map=self.server._map, use_poll=True
        )

    def _run_until_stopped(self) -> None:
        # In short slices, so stop() can end the loop from another thread; the sockets are then
        # closed by this same thread, never under a select() that is still using them.
        from waitress import wasyncore

        while not self.stopping.is_set():
            if self.draining.is_set() and self._drain_step():
                self.drained.set()
            wasyncore.loop(timeout=LOOP_SLICE, use_poll=True, map=self.server._map, count=1)
        wasyncore.close_all(self.server._map, ignore_all=True)

    def _drain_step(self) -> bool:
        """In the loop's thread: stop listening, close the connections with nothing under way;
        whether every request has been answered (its answer sent) and no thread is at work."""
        from waitress import wasyncore
        from waitress.channel import HTTPChannel

        if self.server.accepting:
            # The listening socket alone (the server's own close() closes its trigger too, which
            # the threads still at work pull when they have answered): new connections refused.
            wasyncore.dispatcher.close(self.server)
        under_way = False
        for channel in list(self.server._map.values()):
            if not isinstance(channel, HTTPChannel):
                continue
            if channel.requests or channel.total_outbufs_len:
                under_way = True
            else:
                channel.will_close = True  # idle: closed at the loop's next turn
        dispatcher = self.server.task_dispatcher
        with dispatcher.lock:
            return not (under_way or dispatcher.queue or dispatcher.active_count)

    def _wake(self) -> None:
        """The loop's thread out of its wait now, to see ``draining`` or ``stopping`` (else at
        its slice's end: every server a test stopped waited for two of them)."""
        trigger = getattr(self.server, "trigger", None)
        if trigger is not None:
            with contextlib.suppress(OSError, ValueError):  # closed: the loop has ended
                trigger.pull_trigger()

    def requests_under_way(self) -> int:
        dispatcher = self.server.task_dispatcher
        with dispatcher.lock:
            return dispatcher.active_count + len(dispatcher.queue)

    def stop(self, wait: float = STOP_WAIT, say=None) -> bool:
        """Take no more connections, let the requests under way finish and send their answers
        (``wait`` seconds at most), then close every connection and end the worker threads.

        Whether every request thread has ended: one still at work (a SQLite write waiting for
        another process's lock, say) may be using the ledger, which must not be closed under
        it. ``say`` is told, once, when the wait lasts more than a second. A KeyboardInterrupt
        (Ctrl-C again) cuts the wait short; the rest is done all the same and it is raised again.
        """
        from waitress import wasyncore

        started = time.monotonic()
        deadline = started + wait
        told = say is None
        try:
            self.draining.set()
            self._wake()
            while True:
                if self.thread is not None:
                    done = self.drained.wait(0.05)
                else:  # run() in the foreground returned on Ctrl-C: the loop goes on here
                    done = self._drain_step()
                    if not done:
                        wasyncore.loop(timeout=0.05, use_poll=True, map=self.server._map, count=1)
                now = time.monotonic()
                if done or now >= deadline:
                    break
                if not told and now - started >= SAY_WAITING_AFTER:
                    told = True
                    count = self.requests_under_way()
                    if count:
                        say(
                            f"Waiting for {count} request{'s' if count != 1 else ''} under way "
                            f"to finish ({wait:g} s at most; Ctrl-C again to stop now)."
                        )
        finally:
            self.stopping.set()
            if self.thread is not None:
                self._wake()
                self.thread.join(timeout=5)
            else:
                wasyncore.close_all(self.server._map, ignore_all=True)
            dispatcher = self.server.task_dispatcher
            # The idle threads end at once; one still at work is left to the process's exit.
            dispatcher.shutdown(timeout=0.5)
            with dispatcher.lock:
                self.unfinished = len(dispatcher.threads)
        return self.unfinished == 0


def start(
    make_app: Callable[[str], Callable],
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    capacity: Capacity = DEFAULT_CAPACITY,
    background: bool = False,
    sock: socket.socket | None = None,
) -> RunningServer:
    """Bind (unless given a bound ``sock``), build the app with its own URL, prepare waitress.

    With ``background`` the server runs in a daemon thread; otherwise call ``run()``.
    """
    from waitress.server import create_server

    sock = sock or bind(host, port)
    own_url = f"http://{url_host(host)}:{sock.getsockname()[1]}"
    app = make_app(own_url)
    server = create_server(
        app,
        sockets=[sock],
        threads=capacity.threads,
        connection_limit=usable_connections(capacity.connection_limit),
        channel_timeout=capacity.idle_timeout,
        max_request_body_size=MAX_REQUEST_BODY,
        # Idle connections are looked for this often, so one lives at most about this much
        # longer than idle_timeout (waitress's default is every 30 s).
        cleanup_interval=max(1, min(10, capacity.idle_timeout)),
        # poll(), not select(): select cannot watch descriptors numbered 1024 or more.
        asyncore_use_poll=True,
        ident="bookpay",
        # Proxy headers are ignored unless a trusted proxy is configured: the return_url never
        # comes from a request anyway, but logs should not believe forged X-Forwarded-* either.
        clear_untrusted_proxy_headers=True,
    )
    running = RunningServer(url=own_url, server=server)
    if background:
        # waitress logs a "task queue depth" warning under load; the bench and tests don't care.
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)
        running.thread = threading.Thread(
            target=running._run_until_stopped, name="bookpay-server", daemon=True
        )
        running.thread.start()
    return running
