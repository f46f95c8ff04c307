"""Units: the writes one thread makes for one webhook event, committed as one transaction.

Handling an event makes several writes, each atomic on its own: the delivery's record, the order,
the fulfilment and its receipt, the event marked processed. Inside ``unit()`` they join one
transaction instead of committing one by one: one commit, and on SQLite one turn at the write
lock, instead of three or four. The transaction opens at the unit's first write, not when the
unit starts, so whatever the thread does before it (retrieving the object from Stripe) holds no
lock and no open transaction. The handlers' rule that makes this hold: every Stripe call comes
before the first write (tests/test_ledger_units.py checks it for every event type bookpay handles).

What a failure keeps, so a redelivery can always finish the job:

- the unit's ``first`` statements (the delivery's record) are committed whatever happens: they
  open the transaction, and when nothing else of the unit can be committed they are written on
  their own;
- a failure inside a write rolls the unit's transaction back, and the unit refuses further
  writes (its earlier ones are gone: carrying on would commit a part as if it were the whole);
- a failure between writes commits the writes made so far, each of them whole (as they would
  have been, committed one by one), then goes on up.

A process that dies inside a unit commits nothing of it: to the ledger the delivery never came,
and Stripe's redelivery is handled as a first one.

A transaction PostgreSQL ends to break a deadlock (or a serialization failure) wrote nothing:
``retried`` runs a whole transaction again, a few times, where it is a function that may be run
twice and no transaction of this thread is open around it (``LedgerContention``). A unit is not
run again: its writes are interleaved with the handler's own work, which only a redelivery of
the event repeats.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import TypeVar

from bookpay.ledger.errors import LedgerContention

Statement = tuple[str, Sequence]
T = TypeVar("T")
# Runs of a transaction after the first that PostgreSQL ended for a deadlock or a serialization
# failure, each after a short random pause (so the two that met do not meet again at once).
CONTENTION_RETRIES = 3
CONTENTION_PAUSE = 0.02  # seconds, at most, times the run's number

log = logging.getLogger("bookpay.ledger")


class _Unit:
    def __init__(self, first: Sequence[Statement]) -> None:
        self.first = first
        self.stack: ExitStack | None = None  # the open transaction, when there is one
        self.tx = None
        self.after: list[Callable[[], None]] = []
        self.broken = False


class Units:
    """Mixed into a backend, which provides ``_transaction()`` (begin ... commit or roll back)
    and ``_autocommit(sql, params)`` (one statement, its own transaction)."""

    def _init_units(self) -> None:
        self._units = threading.local()

    def _transaction(self):  # pragma: no cover - provided by the backend
        raise NotImplementedError

    def _autocommit(self, sql: str, params: Sequence) -> int:  # pragma: no cover - ditto
        raise NotImplementedError

    @property
    def writing(self) -> bool:
        """Whether this thread holds a write transaction open."""
        unit = getattr(self._units, "unit", None)
        return getattr(self._units, "depth", 0) > 0 or (unit is not None and unit.tx is not None)

    @contextmanager
    def unit(self, first: Sequence[Statement] = ()) -> Iterator[None]:
        """Every write this thread makes in the block joins one transaction (see the module)."""
        if getattr(self._units, "unit", None) is not None:
            raise RuntimeError("ledger units do not nest")
        unit = self._units.unit = _Unit(first)
        committed = False
        try:
            yield
        except BaseException:
            self._units.unit = None
            committed = self._finish(unit)
            raise
        else:
            self._units.unit = None
            committed = self._finish(unit)
        finally:
            if committed:
                for callback in unit.after:
                    callback()

    def _finish(self, unit: _Unit) -> bool:
        """Commit what the unit holds, or write its first statements alone; whether it did."""
        if unit.stack is not None:
            unit.stack.close()
            return True
        if unit.first:
            with self._transaction() as tx:
                for sql, params in unit.first:
                    tx.run(sql, params)
        return False

    def _open_unit(self):
        """The transaction of this thread's unit, when it has one open."""
        unit = getattr(self._units, "unit", None)
        return None if unit is None else unit.tx

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once this thread's writes are committed: now, outside a unit."""
        unit = getattr(self._units, "unit", None)
        if unit is None or unit.tx is None:
            callback()
        else:
            unit.after.append(callback)

    @contextmanager
    def write(self) -> Iterator:
        """A write transaction (``tx.run(sql, params)``), or a part of this thread's unit."""
        unit = getattr(self._units, "unit", None)
        if unit is None:
            self._units.depth = getattr(self._units, "depth", 0) + 1
            try:
                with self._transaction() as tx:
                    yield tx
            finally:
                self._units.depth -= 1
            return
        tx = self._join(unit)
        try:
            yield tx
        except BaseException as exc:
            self._fail(unit, exc)
            raise

    def write_one(self, sql: str, params: Sequence = ()) -> int:
        """One statement: its own transaction, or a part of this thread's unit; rows changed."""
        unit = getattr(self._units, "unit", None)
        if unit is None:
            return self._autocommit(sql, params)
        tx = self._join(unit)
        try:
            return tx.run(sql, params)
        except BaseException as exc:
            self._fail(unit, exc)
            raise

    def retried(self, action: Callable[[], T]) -> T:
        """``action()``, one whole transaction that may be run again from its start; run
        again up to CONTENTION_RETRIES times where the database ended it to let another go on
        (``LedgerContention``: nothing of it was written). Inside a unit or another transaction
        of this thread it runs once: what failed is the transaction around it, which is not
        this function's to run again."""
        if self.writing or getattr(self._units, "unit", None) is not None:
            return action()
        for run in range(1, CONTENTION_RETRIES + 1):
            try:
                return action()
            except LedgerContention as exc:
                log.info("%s Running it again (%d of %d).", exc, run, CONTENTION_RETRIES)
            time.sleep(random.uniform(0, CONTENTION_PAUSE * run))
        return action()

    def _join(self, unit: _Unit):
        if unit.broken:
            raise RuntimeError("this unit's transaction was rolled back after a failed write")
        if unit.tx is None:
            stack = ExitStack()
            unit.tx = stack.enter_context(self._transaction())
            unit.stack = stack
            try:
                for sql, params in unit.first:
                    unit.tx.run(sql, params)
            except BaseException as exc:
                self._fail(unit, exc)
                raise
        return unit.tx

    def _fail(self, unit: _Unit, exc: BaseException) -> None:
        """Roll the unit's transaction back (the backend may raise its own error for ``exc``)."""
        stack, unit.stack, unit.tx, unit.broken = unit.stack, None, None, True
        unit.after.clear()
        if stack is not None:
            stack.__exit__(type(exc), exc, exc.__traceback__)


def rerun_on_contention(method: Callable[..., T]) -> Callable[..., T]:
    """A ledger method that is one transaction, and may be run twice (its callbacks only read
    and compute), run again where the database ended it (``Units.retried``)."""

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        return self.backend.retried(lambda: method(self, *args, **kwargs))

    return run
