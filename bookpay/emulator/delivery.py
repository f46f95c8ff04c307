"""Webhook delivery: Stripe's signature scheme, a scheduler thread and a pool of senders.

Deliveries live in SQLite, so pending ones resume after a restart. The scheduler keeps at most
one attempt in flight per endpoint and picks the oldest due delivery first, which keeps events
in order per endpoint unless a retry is waiting. No redirects are followed: a 3xx is a failure.

Each attempt is bounded as a whole, connecting, sending and reading the answer: at
``delivery_timeout`` a watchdog shuts its connection down (a receiver trickling its answer a byte
at a time gets something on every read, so a socket timeout alone never ends it), and the
attempt has failed. Stopping the emulator cuts off the attempts under way in the same way; they
are not recorded, so their deliveries stay pending (and are made after a restart).
An endpoint that is disabled is sent nothing: an attempt due meanwhile fails without being
sent, and one re-enabled before its retries run out gets the next.

Retries follow Stripe's test-mode schedule by default, three over a few hours
(``STRIPE_TEST_RETRY_SCHEDULE``; live mode's, for up to three days, is
``STRIPE_LIVE_RETRY_SCHEDULE``), on the emulator's clock, which a test can advance; after the
last, the delivery has failed and the account is told the endpoint is failing, as Stripe e-mails
it (``notices``, shown at ``GET /_emulator/notifications``). Signatures always carry real time.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any
from urllib.parse import urlsplit

from .objects import public
from .render import conform
from .store import Store
from .validate import ascii_url

log = logging.getLogger(__name__)
USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
SETTLE_TIMEOUT = 120.0  # seconds `settle` waits for attempts (each is bounded by its timeout)
STOP_WAIT = 2.0  # seconds `stop` waits for the attempts it cut off (one may still be connecting)
RECUT = 0.05  # seconds between tries to cut off an attempt whose socket is not there yet
DISABLED = "webhook endpoint disabled: not sent"


def signature_header(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """`t=<unix>,v1=<hex HMAC-SHA256(secret, "t.payload")>`, as Stripe signs."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


class Stopped(Exception):
    """The emulator stopped during the attempt: it is not recorded, its delivery stays pending."""


class _Watched:
    """One attempt's connection, its deadline, and whether (and why) it was cut off."""

    def __init__(self, conn: http.client.HTTPConnection, deadline: float, timeout: float) -> None:
        self.conn = conn
        self.deadline = deadline
        self.timeout = timeout
        self.cut: str | None = None  # "timeout" or "stopped", set before the socket is shut
        self.shut: socket.socket | None = None

    def check(self, cause: BaseException | None = None) -> None:
        """Raise what a cut off attempt came to (whatever error the cut made it see)."""
        if self.cut == "stopped":
            raise Stopped("the emulator stopped during the attempt") from cause
        if self.cut == "timeout":
            raise TimeoutError(
                f"no whole answer within {self.timeout:g} s (connecting, sending and reading)"
            ) from cause


class Watchdog:
    """Cuts off attempts: shuts an attempt's connection down at its deadline, or at once when
    stopped, so that whatever the attempt is blocked in (connecting, a TLS handshake, sending,
    reading) ends then. Closing the socket from this thread would not: the close waits for the
    read under way (see ``mailer.SmtpTransport._watch``, which bounds a send this way too).
    One thread for all the attempts, started with the first."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._watched: set[_Watched] = set()
        self._stopping = False
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def watching(self, conn: http.client.HTTPConnection, timeout: float) -> Iterator[_Watched]:
        watched = _Watched(conn, time.monotonic() + timeout, timeout)
        with self._cond:
            if self._stopping:
                raise Stopped("the emulator is stopping")
            self._watched.add(watched)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="emulator-webhook-watchdog", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        try:
            yield watched
        finally:
            with self._cond:
                self._watched.discard(watched)
                self._cond.notify()  # once stopped, the last one gone ends the thread

    def stop(self) -> None:
        """Cut off every attempt under way, and any that would begin."""
        with self._cond:
            self._stopping = True
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not (self._stopping and not self._watched):
                now = time.monotonic()
                wake: float | None = None
                for watched in self._watched:
                    if watched.cut is None and self._stopping:
                        watched.cut = "stopped"
                    elif watched.cut is None and watched.deadline <= now:
                        watched.cut = "timeout"
                    if watched.cut is None:
                        left = watched.deadline - now
                        wake = left if wake is None else min(wake, left)
                        continue
                    sock = watched.conn.sock
                    if sock is None:  # still connecting: try again soon
                        wake = RECUT if wake is None else min(wake, RECUT)
                    elif sock is not watched.shut:
                        watched.shut = sock
                        with contextlib.suppress(OSError):  # already closed by the attempt
                            socket.socket.shutdown(sock, socket.SHUT_RDWR)
                self._cond.wait(timeout=wake)


def post(
    url: str, payload: bytes, headers: dict[str, str], timeout: float, watchdog: Watchdog
) -> int:
    """One POST with http.client (which never follows redirects), the whole of it bounded by
    `timeout` (TimeoutError), or cut off when `watchdog` is stopped (Stopped). The status."""
    parts = urlsplit(url)
    conn_cls: Any = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    kwargs: dict[str, Any] = {"timeout": timeout}
    if parts.scheme == "https":
        kwargs["context"] = ssl.create_default_context()
    conn = conn_cls(parts.hostname, parts.port, **kwargs)
    try:
        with watchdog.watching(conn, timeout) as watched:
            try:
                path = ascii_url((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
                conn.request("POST", path, body=payload, headers=headers)
                response = conn.getresponse()
                response.read(64 * 1024)  # a body cut short by the watchdog ends without error
            except Exception as exc:
                watched.check(exc)
                raise
    finally:
        conn.close()
    watched.check()  # no longer watched: cut off by now or never
    return response.status


class Deliverer:
    def __init__(
        self,
        store: Store,
        retry_schedule: tuple[float, ...],
        timeout: float,
        workers: int = 8,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.retry_schedule = retry_schedule
        self.timeout = timeout
        self.clock = clock
        # What Stripe would e-mail the account: an endpoint failing, after a delivery gave up.
        self.notices: list[dict[str, Any]] = []
        self._generation = 0  # bumped by reset(): attempts begun before it record nothing
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="emulator-webhook")
        self._futures: set[Future[None]] = set()  # attempts queued or under way
        self._watchdog = Watchdog()
        self._wake = threading.Condition()
        self._stopping = False
        self._in_flight: set[str] = set()  # endpoint ids with an attempt under way
        self._thread = threading.Thread(target=self._loop, name="emulator-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def notify(self) -> None:
        with self._wake:
            self._wake.notify()

    def stop(self) -> None:
        """No attempt starts from now on; those queued are dropped and those under way are cut
        off (neither is recorded: their deliveries stay pending). Waits at most STOP_WAIT
        seconds for them to end (one still connecting ends within its timeout)."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._watchdog.stop()
        with self._wake:
            futures = list(self._futures)
        wait(futures, timeout=STOP_WAIT)

    def _loop(self) -> None:
        while True:
            with self._wake:
                if self._stopping:
                    return
            delay = self._dispatch_due()[0]
            with self._wake:
                if self._stopping:
                    return
                self._wake.wait(timeout=delay)

    def reset(self) -> None:
        """Forget notices; attempts under way finish without recording anything."""
        with self.store.lock:
            self._generation += 1
            self.notices.clear()

    def next_due(self) -> float | None:
        """When the next pending delivery is due (on the emulator's clock), if any is."""
        try:
            pending = self.store.pending_deliveries()
        except Exception:
            return None
        return min((row["next_at"] for row in pending), default=None)

    def settle(self, timeout: float = SETTLE_TIMEOUT) -> int:
        """Make every attempt that is due now and wait for them; how many were made.

        One attempt at a time per endpoint, so an endpoint owed several events takes several
        rounds; an attempt that fails is rescheduled later on the clock, so this ends.
        """
        deadline = time.monotonic() + timeout
        made = 0
        while time.monotonic() < deadline:
            futures = self._dispatch_due(collect=True)[1]
            made += len(futures)
            wait(futures, timeout=max(0.0, deadline - time.monotonic()))
            with self._wake:
                busy = bool(self._in_flight)
                if busy:  # started by the scheduler thread: wait for them too
                    self._wake.wait(timeout=0.05)
            if not futures and not busy and not self._any_due():
                return made
        return made

    def _any_due(self) -> bool:
        nxt = self.next_due()
        return nxt is not None and nxt <= self.clock()

    def _dispatch_due(self, collect: bool = False) -> tuple[float, list[Any]]:
        """Start what is due; how long to sleep until the next delivery is due, and (when
        `collect`) the attempts started."""
        now = self.clock()
        next_due = 1.0
        started: set[str] = set()
        futures: list[Any] = []
        with self._wake:
            if self._stopping:
                return 0.2, futures
        try:
            pending = self.store.pending_deliveries()
        except Exception:  # the store closed under us during shutdown
            return 0.2, futures
        for row in pending:
            endpoint = row["endpoint_id"]
            with self._wake:
                busy = endpoint in self._in_flight or endpoint in started
            if busy:
                continue
            if row["next_at"] > now:
                # A retry waiting its turn does not hold back later events (Stripe does not either).
                next_due = min(next_due, row["next_at"] - now)
                continue
            with self._wake:
                if self._stopping:
                    break
                self._in_flight.add(endpoint)
                future = self._pool.submit(self._attempt, row)
                self._futures.add(future)
            future.add_done_callback(self._done)
            started.add(endpoint)
            if collect:
                futures.append(future)
        return max(next_due, 0.005), futures

    def _done(self, future: Future[None]) -> None:
        with self._wake:
            self._futures.discard(future)

    def _attempt(self, row: Any) -> None:
        try:
            self._deliver(row)
        except Stopped:
            pass  # not recorded: the delivery stays pending for the next start
        except Exception:
            log.exception("webhook delivery %s crashed", row["id"])
        finally:
            with self._wake:
                self._in_flight.discard(row["endpoint_id"])
                self._wake.notify()

    def _deliver(self, row: Any) -> None:
        store = self.store
        generation = self._generation
        endpoint = store.get(row["endpoint_id"], "webhook_endpoint")
        event = store.get(row["event_id"], "event")
        if endpoint is None or event is None:
            store.finish_attempt(row, "", None, "endpoint or event deleted", "abandoned", 0)
            return
        status: int | None = None
        error: str | None = None
        sent = endpoint["status"] == "enabled"  # Stripe sends a disabled endpoint nothing
        if not sent:
            error = DISABLED  # failed on the schedule: re-enabled in time, it gets the next
        else:
            try:
                status = self._send(endpoint, event)
                if not 200 <= status < 300:
                    error = f"HTTP {status}"
            except Stopped:
                raise
            except Exception as exc:  # any failure is a failed attempt: see _send
                error = f"{type(exc).__name__}: {exc}"
        now = self.clock()
        if error is None:
            state, next_at = "succeeded", 0.0
        elif row["attempts"] < len(self.retry_schedule):
            state, next_at = "pending", now + self.retry_schedule[row["attempts"]]
        else:
            state, next_at = "failed", 0.0
        with store.lock:  # reset() bumps the generation under this lock too
            if store.closed or generation != self._generation:
                return
            store.finish_attempt(row, endpoint["url"], status, error, state, next_at, now)
            if state == "failed" and sent:  # a disabled endpoint is not said to be failing
                self._failing(row, endpoint, error, now)

    def _send(self, endpoint: dict[str, Any], event: dict[str, Any]) -> int:
        """Sign and post one event; the receiver's status. Whatever this raises (a refused
        connection, or a URL stored before URLs were checked, whose port http.client refuses
        with ValueError) is a failed attempt: recorded and retried on the schedule. An attempt
        left unrecorded would be due again at once, and the scheduler would spin on it."""
        payload = json.dumps(conform(public(event)), indent=2).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            "Cache-Control": "no-cache",
            "Accept": "*/*; q=0.5, application/xml",
            "Stripe-Signature": signature_header(payload, endpoint["_secret"]),
        }
        return post(endpoint["url"], payload, headers, self.timeout, self._watchdog)

    def _failing(self, row: Any, endpoint: dict[str, Any], error: str | None, now: float) -> None:
        """Tell the account its endpoint is failing, as Stripe does by e-mail."""
        notice = {
            "type": "webhook_endpoint.failing",
            "endpoint": endpoint["id"],
            "url": endpoint["url"],
            "event": row["event_id"],
            "attempts": row["attempts"] + 1,
            "last_error": error,
            "created": int(now),
        }
        self.notices.append(notice)
        # Debug only: the notice is for whoever asks (GET /_emulator/notifications); an
        # emulator shared by many shops must not fill their consoles with each other's news.
        log.debug(
            "webhook endpoint %s (%s) is failing: gave up on %s after %d attempts (%s)",
            endpoint["id"],
            endpoint["url"],
            row["event_id"],
            notice["attempts"],
            error,
        )
