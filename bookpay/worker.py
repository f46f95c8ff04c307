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

# After a failed round (the ledger read-only, locked or down) the next is tried after this many
# seconds, doubling with each failure in a row up to FAILED_WAIT_MAX (or the worker's poll, if
# longer); a wake still starts one at once.
FAILED_WAIT = 1.0
FAILED_WAIT_MAX = 30.0
# Meanwhile, whether the ledger answers is looked at this often (every poll, if sooner): one read
# (``due_now``), no write, no log line. A ledger that did not answer (down, unreachable) and
# answers again gets a full round at once, not at the end of a back-off of up to 30 s.
PROBE_EVERY = 2.0


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

    _clock = staticmethod(time.monotonic)  # for the back-off (tests give it a clock of theirs)

    def __init__(self) -> None:
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._thread: threading.Thread | None = None
        # Set when the thread ends. Waited on rather than ``join``: a Ctrl-C in ``join`` (Python
        # 3.11, bpo-45274's fix) releases the running thread's lock and takes it for ended.
        self._ended = threading.Event()
        self._ended.set()  # no thread yet
        self._down = False  # the ledger did not answer the last look while backing off

    def work(self) -> int:  # pragma: no cover - provided by subclasses
        raise NotImplementedError

    def _idle_wait(self, handled: int) -> float:  # pragma: no cover - provided by subclasses
        raise NotImplementedError

    def due_now(self) -> bool:  # pragma: no cover - provided by subclasses
        raise NotImplementedError

    def interrupt(self) -> None:
        """Called by ``close``, from another thread: cut short what the thread is doing, as
        far as that is safe (the mailer: a send under way)."""

    def hurry(self) -> None:
        """Called by ``close`` on a second Ctrl-C (or signal) while it waits: skip what the
        stop is still waiting for (the mailer: a server's answer), not the writes after it."""

    def woken(self) -> None:
        """Called after a wake, before the next round (the mailer gathers more first)."""

    def start(self) -> None:
        if self._thread is None:
            self._spawn(self._run)

    def _spawn(self, target) -> None:
        ended = self._ended = threading.Event()

        def run() -> None:
            try:
                target()
            finally:
                ended.set()

        self._thread = threading.Thread(target=run, name=self.thread_name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        failures = 0  # rounds failed in a row
        # Each worker's failures are a kind of their own in serve's log, which holds back the
        # repeats of a kind (bookpay.web.logs.RepeatFilter): not one line for all three workers,
        # nor the count of one's held-back lines credited to another.
        failed_line = self.what.replace("%", "%%") + " failed"
        while not self._stop.is_set():
            self._wake.clear()
            handled = 0
            try:
                handled = self.work()
                failures, self._down = 0, False
            except LedgerUnavailable as exc:  # locked, read-only or down: try again later
                failures += 1
                log.warning(failed_line + ": %s", exc)
            except Exception:  # the ledger is closing: try again at the next wake
                failures += 1
                log.exception(failed_line)
            with self._idle:
                self._idle.notify_all()
            if failures:  # what is due is still due: not again at once, a log line each time
                woken = self._back_off(failures)
            else:
                wait = self._idle_wait(handled)
                if self.poll is not None:
                    wait = min(wait, self.poll)
                woken = self._wake.wait(wait)
            if woken:
                self.woken()

    def failed_wait(self, failures: int) -> float:
        """Seconds before the next round after ``failures`` failed rounds in a row."""
        cap = max(FAILED_WAIT_MAX, self.poll or 0.0)
        return min(FAILED_WAIT * 2 ** min(failures - 1, 16), cap)

    def _back_off(self, failures: int) -> bool:
        """Wait ``failed_wait(failures)`` before the next round; whether woken meanwhile.

        The ledger is looked at every PROBE_EVERY seconds (or poll) meanwhile (``answers``): one
        that did not answer at a look (down) and answers at the next ends the wait, so a worker
        goes on within a poll of the database's return, not up to 30 s later. A ledger that
        answers all along (read-only, locked for writes) gets its rounds as backed off: each
        would fail again, and say so. Nothing else is read (no ``_idle_wait``): on a PostgreSQL
        ledger that is down each read waits for the pool."""
        until = self._clock() + self.failed_wait(failures)
        step = min(self.poll or PROBE_EVERY, PROBE_EVERY)
        while True:
            remaining = until - self._clock()
            if remaining <= 0:
                return False
            if self._wake.wait(min(step, remaining)):
                return True
            if self._stop.is_set() or until - self._clock() <= 0:
                return False  # a round follows anyway
            answers = self.answers()
            if answers and self._down:
                self._down = False
                return False
            self._down = not answers

    def answers(self) -> bool:
        """Whether the ledger answers a read (``due_now``), while backing off."""
        try:
            self.due_now()
        except Exception:
            return False
        return True

    def run_once(self) -> int:
        """One round (``work``) in the worker's thread, waited for here; how many it handled.
        A Ctrl-C (or a signal under ``stop_on_signals``) meanwhile reaches the caller, which
        then stops the round with ``close``, as it stops a running worker (`bookpay worker
        --once`: a send under way is cut off or given its answer, and its fate written)."""
        outcome: dict = {}

        def one_round() -> None:
            try:
                outcome["handled"] = self.work()
            except BaseException as exc:  # for the caller, in its thread
                outcome["error"] = exc

        self._spawn(one_round)
        self._ended.wait()
        self._thread = None
        if "error" in outcome:
            raise outcome["error"]
        return outcome["handled"]

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is due now; False if something still is after ``timeout``."""
        deadline = time.monotonic() + timeout
        while self.due_now():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self._thread is None or self._ended.is_set():
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
        at work then: see ``at_work``)."""
        self._stop.set()
        self._wake.set()
        if self._thread is None:
            return
        # A second Ctrl-C (or signal) meanwhile skips what the stop waits for (``hurry``), but
        # the thread is still waited for: it writes the fate of what it was doing, which the
        # exit would cut off half-way (a receipt left claimed, or sent and not marked). The
        # interrupt is raised again once it has stopped.
        interrupted = False
        wait = self.stop_wait if timeout is None else timeout
        deadline = time.monotonic() + wait
        steps = [self.interrupt]
        while steps or not self._ended.is_set():
            try:
                if steps:
                    steps.pop(0)()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._ended.wait(remaining)
            except KeyboardInterrupt:
                interrupted = True
                steps = [self.hurry]  # again if one more interrupt cuts it short
        if not self._ended.is_set():
            log.warning("%s: still at work after %g s, left unfinished", self.what, wait)
        self._thread = None
        if interrupted:
            raise KeyboardInterrupt

    @property
    def at_work(self) -> bool:
        """Whether its thread still runs: after ``close``, one left unfinished, under which
        what it uses (the ledger) must not be closed."""
        return not self._ended.is_set()
