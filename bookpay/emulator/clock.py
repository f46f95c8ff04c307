"""What Stripe does "some time later" in test mode, on a thread of its own.

A dispute card's dispute opens, an asynchronous refund fails or succeeds, submitted evidence
decides a dispute: each is a timer in the store (so it survives a restart) whose handler runs in
a transaction of its own, emitting its events as a request would.
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
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="emulator-clock", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout=5)

    def schedule(self, kind: str, object_id: str, steps: float = 1) -> None:
        """Run `kind`'s handler on the object `steps` delays from now."""
        if kind not in HANDLERS:
            raise ValueError(f"no handler for timer {kind!r}")
        self.store.add_timer(time.time() + self.delay * steps, kind, object_id)
        with self._wake:
            self._wake.notify()

    def _loop(self) -> None:
        while True:
            with self._wake:
                if self._stopping:
                    return
            wait = self._run_due()
            with self._wake:
                if self._stopping:
                    return
                self._wake.wait(timeout=wait)

    def _run_due(self) -> float:
        """Run what is due; return how long to sleep until the next timer."""
        try:
            due, nxt = self.store.due_timers(time.time())
        except Exception:  # the store closed under us during shutdown
            return 0.2
        for timer in due:
            try:
                ctx = self.make_ctx()
                with self.store.transaction():
                    HANDLERS[timer["kind"]](ctx, timer["object_id"])
                    self.store.drop_timer(timer["id"])
            except Exception:
                log.exception("emulator timer %s on %s failed", timer["kind"], timer["object_id"])
                try:
                    self.store.drop_timer(timer["id"])  # never loop on a broken timer
                except Exception:
                    return 0.2
        if due:
            return 0.0
        return 1.0 if nxt is None else max(0.005, min(1.0, nxt - time.time()))
