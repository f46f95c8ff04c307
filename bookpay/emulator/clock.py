"""The emulator's time, and what Stripe does "some time later" on it, on a thread of its own.

A dispute card's dispute opens, an asynchronous refund fails or succeeds, submitted evidence
decides a dispute, an uncaptured authorization expires: each is a timer in the store (so it
survives a restart) whose handler runs in a transaction of its own, emitting its events as a
request would.

The clock is real time plus an offset that only grows: ``advance`` (the control endpoint
``POST /_emulator/clock``) moves it forward and does, in order, everything that falls due on the
way (timers, and with the deliverer attached, every webhook attempt and retry), so a test can
pass Stripe's 24-hour idempotency window, its hours (days, live) of webhook retries or a seven-day
authorization without waiting. Objects' ``created`` times and webhook signatures stay real time:
a receiver checks signatures against its own clock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .store import Store

log = logging.getLogger(__name__)

# kind -> handler(ctx, object_id); the resource modules register theirs.
HANDLERS: dict[str, Callable[[Any, str], None]] = {}
MAX_STEPS = 10_000  # moments one advance stops at, at most (each runs what is due then)


def handles(kind: str) -> Callable[[Callable[[Any, str], None]], Callable[[Any, str], None]]:
    def register(fn: Callable[[Any, str], None]) -> Callable[[Any, str], None]:
        HANDLERS[kind] = fn
        return fn

    return register


class Clock:
    def __init__(self, store: Store, make_ctx: Callable[[], Any], delay: float) -> None:
        self.store = store
        self.make_ctx = make_ctx
        self.delay = delay
        self.offset = 0.0  # seconds the clock has been advanced by
        self.deliverer: Any = None  # attached by the app: advancing runs deliveries too
        self._wake = threading.Condition()
        self._running = threading.Lock()  # one runner of due timers at a time
        self._advancing = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="emulator-clock", daemon=True)

    def now(self) -> float:
        return time.time() + self.offset

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout=5)

    def schedule(
        self, kind: str, object_id: str, steps: float = 1, *, after: float | None = None
    ) -> None:
        """Run `kind`'s handler on the object `steps` delays from now (or `after` seconds)."""
        if kind not in HANDLERS:
            raise ValueError(f"no handler for timer {kind!r}")
        seconds = self.delay * steps if after is None else after
        self.store.add_timer(self.now() + seconds, kind, object_id)
        self._notify()

    def reset(self) -> None:
        """Back to real time (the store's timers are cleared with the rest of its state)."""
        with self._advancing:
            self.offset = 0.0
        self._notify()

    def advance(self, seconds: float) -> dict[str, Any]:
        """Move time forward, stopping at each moment something falls due to do it then.

        Returns how many timers ran and webhook attempts were made on the way.
        """
        if not seconds >= 0:
            raise ValueError("the clock only moves forward")
        timers = attempts = 0
        with self._advancing:
            target = self.now() + seconds
            for _ in range(MAX_STEPS):
                timers += self.run_due()[0]
                attempts += self._settle()
                nxt = self._next_due()
                if nxt is None or nxt > target:
                    break
                self._move_to(nxt)
            self._move_to(target)
            timers += self.run_due()[0]
            attempts += self._settle()
        self._notify()
        return {"timers": timers, "webhook_attempts": attempts}

    def _move_to(self, moment: float) -> None:
        self.offset += max(0.0, moment - self.now())

    def _settle(self) -> int:
        return self.deliverer.settle() if self.deliverer is not None else 0

    def _next_due(self) -> float | None:
        due, nxt = self.store.due_timers(self.now())
        if due:
            return self.now()
        candidates = [nxt]
        if self.deliverer is not None:
            candidates.append(self.deliverer.next_due())
        found = [moment for moment in candidates if moment is not None]
        return min(found) if found else None

    def _notify(self) -> None:
        with self._wake:
            self._wake.notify()
        if self.deliverer is not None:
            self.deliverer.notify()

    def _loop(self) -> None:
        while True:
            with self._wake:
                if self._stopping:
                    return
            ran, nxt = self.run_due()
            if ran:
                wait = 0.0
            elif nxt is None:
                wait = 1.0
            else:
                wait = max(0.005, min(1.0, nxt - self.now()))
            with self._wake:
                if self._stopping:
                    return
                self._wake.wait(timeout=wait)

    def run_due(self) -> tuple[int, float | None]:
        """Run what is due now; (how many ran, when the next timer after them is due)."""
        with self._running:
            try:
                due, nxt = self.store.due_timers(self.now())
            except Exception:  # the store closed under us during shutdown
                return 0, None
            for timer in due:
                try:
                    ctx = self.make_ctx()
                    with self.store.transaction():
                        HANDLERS[timer["kind"]](ctx, timer["object_id"])
                        self.store.drop_timer(timer["id"])
                except Exception:
                    log.exception(
                        "emulator timer %s on %s failed", timer["kind"], timer["object_id"]
                    )
                    try:
                        self.store.drop_timer(timer["id"])  # never loop on a broken timer
                    except Exception:
                        return len(due), None
            return len(due), nxt
