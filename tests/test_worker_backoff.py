"""A worker whose rounds fail (the ledger read-only, locked or down) backs off: it looks again
after 1 s, then doubling to ``FAILED_WAIT_MAX`` (or its --poll, if longer), not every few
milliseconds with a log line each time; a round that goes through starts it over. A wake (a
commit in this process) still starts a round at once. Meanwhile it looks whether the ledger
answers, every --poll seconds (``PROBE_EVERY`` at most): one that was down gets a full round as
soon as it answers again, not at the end of a back-off of up to 30 s.

The worker's clock and its waits are the test's: nothing here sleeps."""

from __future__ import annotations

import itertools
import logging
import threading

from bookpay.ledger.errors import LedgerUnavailable
from bookpay.web.logs import RepeatFilter
from bookpay.worker import FAILED_WAIT_MAX, PROBE_EVERY, Worker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Waits:
    """In place of a worker's wake event: each wait's timeout is recorded, and passes on the
    worker's clock at once; ``wake_at`` (clock times) wake it then."""

    def __init__(self, clock: Clock, wake_at: tuple[float, ...] = ()) -> None:
        self.clock, self.timeouts, self.wake_at = clock, [], sorted(wake_at)
        self._set = False

    def wait(self, timeout: float | None = None) -> bool:
        self.timeouts.append(timeout)
        if self._set:
            self._set = False
            return True
        if self.wake_at and self.wake_at[0] <= self.clock.now + timeout:
            self.clock.now = max(self.clock.now, self.wake_at.pop(0))
            return True
        self.clock.now += timeout
        return False

    def set(self) -> None:
        self._set = True

    def clear(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set


class Scripted(Worker):
    """Its ledger is down (every round and every read fails) from the start until ``back``
    on its clock, or, ``read_only``, answers reads and fails every round until then; ``fails``:
    the rounds fail as listed (an exception, or a count handled) first. It stops once it has
    had ``rounds`` rounds. Something is due at once, always."""

    what = "scripted work"

    def __init__(
        self,
        *,
        back: float = 0.0,
        read_only: bool = False,
        fails: tuple = (),
        rounds: int = 1000,
        poll: float | None = None,
        wake_at: tuple[float, ...] = (),
    ) -> None:
        super().__init__()
        self.clock = Clock()
        self._clock = self.clock
        self._wake = Waits(self.clock, wake_at)
        self.back, self.read_only, self.fails = back, read_only, list(fails)
        self.rounds_left, self.poll = rounds, poll
        self.rounds: list[float] = []  # when each began, on the clock
        self.looks: list[float] = []  # the reads while backing off
        self.idle_waits: list[float] = []  # when _idle_wait was asked, on the clock

    def work(self) -> int:
        self.rounds.append(self.clock.now)
        self.rounds_left -= 1
        if self.rounds_left <= 0:
            self._stop.set()
        if self.fails:
            outcome = self.fails.pop(0)
            if isinstance(outcome, Exception):
                raise outcome
            return outcome
        if self.clock.now < self.back:
            if self.read_only:
                raise LedgerUnavailable("The ledger database x is read-only.")
            raise LedgerUnavailable("Cannot reach the ledger database x: connection refused.")
        return 1

    def due_now(self) -> bool:
        self.looks.append(self.clock.now)
        if self.clock.now < self.back and not self.read_only:
            raise LedgerUnavailable("Cannot reach the ledger database x: connection refused.")
        return True

    def _idle_wait(self, handled: int) -> float:
        self.idle_waits.append(self.clock.now)
        return 0.05  # due again at once

    def run(self) -> Scripted:
        thread = threading.Thread(target=self._run)
        thread.start()
        thread.join(10)
        assert not thread.is_alive()
        return self


def gaps(times: list[float]) -> list[float]:
    return [round(later - earlier, 2) for earlier, later in itertools.pairwise(times)]


def read_only() -> LedgerUnavailable:
    return LedgerUnavailable("The ledger database is read-only.")


def test_failed_rounds_back_off_doubling_to_a_cap_then_start_over(caplog):
    caplog.set_level(logging.WARNING, logger="bookpay.worker")
    fails = (*[read_only()] * 7, 1, read_only(), RuntimeError("closing"))
    worker = Scripted(fails=fails, rounds=11).run()
    assert FAILED_WAIT_MAX == 30.0
    assert gaps(worker.rounds) == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 0.05, 1.0, 2.0]
    assert len(caplog.records) == 9  # one line a failed round
    assert sum(1 for r in caplog.records if r.exc_info) == 1  # the unexpected one only


def test_a_worker_polling_slower_than_the_cap_backs_off_to_its_poll():
    worker = Scripted(fails=[read_only()] * 8, rounds=9, poll=60.0).run()
    assert gaps(worker.rounds) == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]


def test_a_wake_starts_a_round_at_once_while_backing_off():
    worker = Scripted(back=1000.0, rounds=7, wake_at=(40.0,)).run()
    assert worker.rounds[:6] == [0.0, 1.0, 3.0, 7.0, 15.0, 31.0]
    assert worker.rounds[6] == 40.0  # woken, not at 61


def test_a_ledger_back_from_an_outage_gets_a_round_within_a_poll_of_its_return(caplog):
    """`bookpay worker --poll 1` on a PostgreSQL ledger down for 100 s: its receipts went out
    up to 30 s after the database was back (the back-off), not within the poll."""
    caplog.set_level(logging.WARNING, logger="bookpay.worker")
    worker = Scripted(back=100.5, rounds=9, poll=1.0).run()
    failed, done = worker.rounds[:-1], worker.rounds[-1]
    assert failed == [0.0, 1.0, 3.0, 7.0, 15.0, 31.0, 61.0, 91.0]  # backing off, as before
    assert 100.5 <= done <= 101.5  # a full round within a poll of the return
    assert len(caplog.records) == 8  # a line a failed round, none a look
    # One read a poll while backing off (none where a round follows), and no other: the
    # worker's _idle_wait (a read, waiting POOL_WAIT on a PostgreSQL ledger that is down)
    # is not asked after a failed round.
    assert worker.idle_waits == [done]  # after the round that went through only
    assert all(gap == 1.0 for gap in gaps(sorted({*worker.looks, *worker.rounds})))


def test_without_a_poll_the_ledger_is_looked_at_every_few_seconds_while_backing_off():
    worker = Scripted(back=50.0, rounds=8).run()  # `bookpay serve`'s workers: no poll
    assert worker.rounds[:7] == [0.0, 1.0, 3.0, 7.0, 15.0, 31.0, 51.0]
    worker = Scripted(back=44.0, rounds=7).run()
    assert worker.rounds[:6] == [0.0, 1.0, 3.0, 7.0, 15.0, 31.0]
    assert 44.0 <= worker.rounds[6] <= 44.0 + PROBE_EVERY  # not at 61


def test_a_ledger_that_answers_all_along_keeps_its_back_off():
    """Read-only (or locked for writes): reads answer, every round fails again. Looking does
    not start a round (a log line) every poll."""
    worker = Scripted(back=100.5, read_only=True, rounds=9, poll=1.0).run()
    assert gaps(worker.rounds) == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]  # 91 -> 121


def test_each_workers_failures_are_lines_of_their_own_in_serves_log():
    """serve's log holds back a repeated line by its template for 10 s: the three workers'
    failures shared one ("%s failed: %s"), so one worker's line hid another's, and the count
    of lines held back was credited to the wrong one."""
    clock = Clock()
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    handler.addFilter(RepeatFilter(10.0, clock=clock))
    logger = logging.getLogger("bookpay.worker")
    logger.addHandler(handler)
    try:
        for what in ("sending receipts", "recording tax", "sending receipts", "recording tax"):
            worker = Scripted(back=1000.0, rounds=1)
            worker.what = what
            worker.run()
            clock.now += 1.0
        clock.now += 10.0
        Scripted(back=1000.0, rounds=1).run()
        worker = Scripted(back=1000.0, rounds=1)
        worker.what = "sending receipts"
        worker.run()
    finally:
        logger.removeHandler(handler)
    down = "Cannot reach the ledger database x: connection refused."
    assert records == [
        f"sending receipts failed: {down}",
        f"recording tax failed: {down}",
        f"scripted work failed: {down}",
        f"sending receipts failed: {down} (and 1 more like it since the last shown)",
    ]
