"""Webhook delivery: Stripe's signature scheme, a scheduler thread and a pool of senders.

Deliveries live in SQLite, so pending ones resume after a restart. The scheduler keeps at most
one attempt in flight per endpoint and picks the oldest due delivery first, which keeps events
in order per endpoint unless a retry is waiting. No redirects are followed: a 3xx is a failure.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from .objects import public
from .render import conform
from .store import Store

log = logging.getLogger(__name__)
USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"


def signature_header(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """`t=<unix>,v1=<hex HMAC-SHA256(secret, "t.payload")>`, as Stripe signs."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def post(url: str, payload: bytes, headers: dict[str, str], timeout: float) -> int:
    """One POST with http.client (which never follows redirects). Returns the status."""
    parts = urlsplit(url)
    conn_cls: Any = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    kwargs: dict[str, Any] = {"timeout": timeout}
    if parts.scheme == "https":
        kwargs["context"] = ssl.create_default_context()
    conn = conn_cls(parts.hostname, parts.port, **kwargs)
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("POST", path, body=payload, headers=headers)
        response = conn.getresponse()
        response.read(64 * 1024)
        return response.status
    finally:
        conn.close()


class Deliverer:
    def __init__(
        self, store: Store, retry_schedule: tuple[float, ...], timeout: float, workers: int = 8
    ) -> None:
        self.store = store
        self.retry_schedule = retry_schedule
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="emulator-webhook")
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
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _loop(self) -> None:
        while True:
            with self._wake:
                if self._stopping:
                    return
            delay = self._dispatch_due()
            with self._wake:
                if self._stopping:
                    return
                self._wake.wait(timeout=delay)

    def _dispatch_due(self) -> float:
        """Start what is due; return how long to sleep until the next delivery is due."""
        now = time.time()
        next_due = 1.0
        started: set[str] = set()
        try:
            pending = self.store.pending_deliveries()
        except Exception:  # the store closed under us during shutdown
            return 0.2
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
                self._in_flight.add(endpoint)
            started.add(endpoint)
            self._pool.submit(self._attempt, row)
        return max(next_due, 0.005)

    def _attempt(self, row: Any) -> None:
        try:
            self._deliver(row)
        except Exception:
            log.exception("webhook delivery %s crashed", row["id"])
        finally:
            with self._wake:
                self._in_flight.discard(row["endpoint_id"])
                self._wake.notify()

    def _deliver(self, row: Any) -> None:
        store = self.store
        endpoint = store.get(row["endpoint_id"], "webhook_endpoint")
        event = store.get(row["event_id"], "event")
        if endpoint is None or event is None:
            store.finish_attempt(row, "", None, "endpoint or event deleted", "abandoned", 0)
            return
        payload = json.dumps(conform(public(event)), indent=2).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            "Cache-Control": "no-cache",
            "Accept": "*/*; q=0.5, application/xml",
            "Stripe-Signature": signature_header(payload, endpoint["_secret"]),
        }
        status: int | None = None
        error: str | None = None
        try:
            status = post(endpoint["url"], payload, headers, self.timeout)
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except (OSError, http.client.HTTPException) as exc:
            error = f"{type(exc).__name__}: {exc}"
        if error is None:
            state, next_at = "succeeded", 0.0
        elif row["attempts"] < len(self.retry_schedule):
            state, next_at = "pending", time.time() + self.retry_schedule[row["attempts"]]
        else:
            state, next_at = "failed", 0.0
        if not store.closed:
            store.finish_attempt(row, endpoint["url"], status, error, state, next_at)
