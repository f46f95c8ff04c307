"""A background worker over the ledger's outbox-like tables: receipts to send, tax records to
report. One daemon thread does what is due when woken (a commit that queued something), and
otherwise sleeps until the next thing is due; ``drain`` waits for it, for tests and shutdowns.
"""

from __future__ import annotations

import logging
import threading
import time

from bookpay.ledger.errors import LedgerUnavailable

log = logging.getLogger("bookpay.worker")


class Worker:
    """Subclasses say what one round does (``work``, how many it handled), how long to sleep
    after it (``_idle_wait``) and whether something is still due now (``due_now``)."""

    thread_name = "bookpay-worker"
    what = "work"  # in the log, when a round fails
    # At most this many seconds between rounds, or None. In the process that queues the work a
    # commit wakes the worker; a worker in a process of its own (`bookpay worker`) is never
    # woken, so it looks this often.
    poll: float | None = None
    # Seconds ``close`` waits for the thread to finish what it is doing (``interrupt`` has asked
    # it to stop): past that the process's exit would kill it half-way.
    stop_wait = 5.0

    def __init__(self) -> None:
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._thread: threading.Thread | None = None

    def work(self) -> int:  # pragma: no cover - provided by subclasses
        raise NotImplementedError

    def _idle_wait(self, handled: int) -> float:  # pragma: no cover - provided by subclasses
        raise NotImplementedError

    def due_now(self) -> bool:  # pragma: no cover - provided by subclasses
        raise NotImplementedError

    def interrupt(self) -> None:
        """Called by ``close``, from another thread: cut short what the thread is doing, as
        far as that is safe (the mailer: a send under way)."""

    def woken(self) -> None:
        """Called after a wake, before the next round (the mailer gathers more first)."""

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
            self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            handled = 0
            try:
                handled = self.work()
            except LedgerUnavailable as exc:  # locked, or down: try again shortly
                log.warning("%s failed: %s", self.what, exc)
            except Exception:  # the ledger is closing: try again at the next wake
                log.exception("%s failed", self.what)
            with self._idle:
                self._idle.notify_all()
            wait = self._idle_wait(handled)
            if self.poll is not None:
                wait = min(wait, self.poll)
            if self._wake.wait(wait):
                self.woken()

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is due now; False if something still is after ``timeout``."""
        deadline = time.monotonic() + timeout
        while self.due_now():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self._thread is None or not self._thread.is_alive():
                self.work()
                if self.due_now():
                    time.sleep(min(0.05, remaining))
                continue
            self.wake()
            with self._idle:
                self._idle.wait(min(0.2, remaining))
        return True

    def close(self, timeout: float | None = None) -> None:
        """Stop the thread: it starts nothing new, ``interrupt`` cuts short what it is doing,
        and this waits for it (``stop_wait`` seconds at most; said in the log if it is still
        at work then)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self.interrupt()
            wait = self.stop_wait if timeout is None else timeout
            self._thread.join(wait)
            if self._thread.is_alive():
                log.warning("%s: still at work after %g s, left unfinished", self.what, wait)
            self._thread = None
