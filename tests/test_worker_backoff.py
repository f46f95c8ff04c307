"""A worker whose rounds fail (the ledger read-only, locked or down) backs off: it looks again
after 1 s, then doubling to ``FAILED_WAIT_MAX`` (or its --poll, if longer), not every few
milliseconds with a log line each time; a round that goes through starts it over. A wake (a
commit in this process) still starts a round at once."""

from __future__ import annotations

import logging
import threading

from bookpay.ledger.errors import LedgerUnavailable
from bookpay.worker import FAILED_WAIT_MAX, Worker


class Waits:
    """In place of a worker's wake event: each wait's timeout is recorded and none sleeps;
    after ``rounds`` waits the worker is stopped."""

    def __init__(self, worker: Worker, rounds: int) -> None:
        self.worker, self.rounds, self.timeouts = worker, rounds, []
        self._set = False

    def wait(self, timeout: float | None = None) -> bool:
        self.timeouts.append(timeout)
        if len(self.timeouts) >= self.rounds:
            self.worker._stop.set()
        woken, self._set = self._set, False
        return woken

    def set(self) -> None:
        self._set = True

    def clear(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set


class Failing(Worker):
    """Its rounds fail as ``outcomes`` say (an exception, or a count handled), then go
    through; something is due at once, always (a read-only ledger cannot mark it done)."""

    def __init__(self, outcomes: list) -> None:
        super().__init__()
        self.outcomes = list(outcomes)

    def work(self) -> int:
        outcome = self.outcomes.pop(0) if self.outcomes else 1
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def _idle_wait(self, handled: int) -> float:
        return 0.05  # due again at once

    def due_now(self) -> bool:
        return True


def run_rounds(worker: Worker, rounds: int) -> list[float]:
    waits = Waits(worker, rounds)
    worker._wake = waits
    thread = threading.Thread(target=worker._run)
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    return waits.timeouts


def read_only() -> LedgerUnavailable:
    return LedgerUnavailable("The ledger database is read-only.")


def test_failed_rounds_back_off_doubling_to_a_cap_then_start_over(caplog):
    caplog.set_level(logging.WARNING, logger="bookpay.worker")
    worker = Failing([read_only()] * 7 + [1, read_only(), RuntimeError("closing")])
    timeouts = run_rounds(worker, 10)
    assert FAILED_WAIT_MAX == 30.0
    assert timeouts == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 0.05, 1.0, 2.0]
    assert len(caplog.records) == 9  # one line a failed round
    assert sum(1 for r in caplog.records if r.exc_info) == 1  # the unexpected one only


def test_a_worker_polling_slower_than_the_cap_backs_off_to_its_poll():
    worker = Failing([read_only()] * 8)
    worker.poll = 60.0
    assert run_rounds(worker, 8) == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
