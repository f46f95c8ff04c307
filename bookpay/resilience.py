"""Protection against a slow or hung dependency: a bulkhead, a circuit breaker, a cached probe.

A hung Stripe must not freeze the shop. Every call to it holds a worker thread for as long as it
waits, so two things bound the damage:

- the **bulkhead** caps how many calls may wait at once; one more fails at once (``Busy``) instead
  of taking a thread that a page, a static file or ``/healthz`` needs;
- the **circuit breaker** counts consecutive failures; past a threshold it *opens* and every call
  fails at once (``CircuitOpen``) for a cool-down, then lets one call through as a probe
  (*half-open*): its success closes the breaker, its failure opens it for another cool-down.

``CachedCheck`` answers "is it up?" for a readiness endpoint without ever piling up on a hung
dependency: at most one check runs at a time, its answer is kept briefly, and nobody waits for it
longer than a bound.

Generic on purpose (no stripe, no bottle): the gateway guards its calls with a ``Guard``, so the
checkout server and the CLI get the same protection.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bookpay.errors import StripeUnavailable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class Busy(StripeUnavailable):
    """The bulkhead is full: too many calls are already waiting (HTTP 503, exit 4)."""

    code = "stripe_busy"


class CircuitOpen(StripeUnavailable):
    """The breaker is open after repeated failures: fail fast until the cool-down ends."""

    code = "stripe_circuit_open"


class Permit:
    """What ``CircuitBreaker.allow`` hands a call it lets through; the call gives it back with its
    outcome. Only the probe's permit settles a half-open breaker."""

    __slots__ = ("probe",)

    def __init__(self, *, probe: bool) -> None:
        self.probe = probe


PASS = Permit(probe=False)  # every call let through while the breaker is closed


class CircuitBreaker:
    """Consecutive failures open it; after ``cooldown`` seconds one probe may pass (half-open).

    Once open, only the probe's outcome changes its state: a call let through before it opened
    and ending late is counted (a failure) but neither closes nor re-opens it, nor frees the
    probe's place, so one probe at most is ever in flight.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        cooldown: float = 5.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or cooldown <= 0:
            raise ValueError("failure_threshold must be >= 1 and cooldown > 0")
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe: Permit | None = None  # the permit of the probe in flight

    @property
    def state(self) -> str:
        with self._lock:
            if self._state == OPEN and self._clock() - self._opened_at >= self.cooldown:
                return HALF_OPEN  # the next call will be the probe
            return self._state

    def retry_after(self) -> float:
        """Seconds until a call may be tried again (0 when one may be tried now)."""
        with self._lock:
            if self._state == CLOSED:
                return 0.0
            if self._state == OPEN:
                return max(0.0, self.cooldown - (self._clock() - self._opened_at))
            return 1.0 if self._probe is not None else 0.0

    def allow(self) -> Permit | None:
        """May a call go ahead now? A permit if so (to give back with its outcome), else None.
        In half-open, only one caller (the probe) gets one."""
        with self._lock:
            if self._state == CLOSED:
                return PASS
            if self._state == OPEN:
                if self._clock() - self._opened_at < self.cooldown:
                    return None
                self._state = HALF_OPEN
            if self._probe is not None:
                return None
            self._probe = Permit(probe=True)
            return self._probe

    def record_success(self, permit: Permit | None = None) -> None:
        with self._lock:
            if self._state == CLOSED:
                self._failures = 0
            elif permit is not None and permit is self._probe:
                self._state, self._failures, self._probe = CLOSED, 0, None

    def abandon(self, permit: Permit | None = None) -> None:
        """A call that ended without an outcome: a probe it was lets another probe go."""
        with self._lock:
            if permit is not None and permit is self._probe:
                self._probe = None

    def record_failure(self, permit: Permit | None = None) -> None:
        with self._lock:
            self._failures += 1
            if self._state == CLOSED:
                if self._failures >= self.failure_threshold:
                    self._state, self._opened_at = OPEN, self._clock()
            elif permit is not None and permit is self._probe:
                self._state, self._opened_at, self._probe = OPEN, self._clock(), None


class Bulkhead:
    """At most ``limit`` holders at once; one more is refused at once, never queued."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self._in_use = 0

    @property
    def in_use(self) -> int:
        return self._in_use

    def try_acquire(self) -> bool:
        if not self._slots.acquire(blocking=False):
            return False
        with self._lock:
            self._in_use += 1
        return True

    def release(self) -> None:
        with self._lock:
            self._in_use -= 1
        self._slots.release()


class Guard:
    """A bulkhead and a circuit breaker around calls to one dependency, named ``where``.

    ``is_failure(exc)`` says which exceptions mean the dependency failed (did not answer, or
    answered with a server error); any other outcome, a refusal included, means it answered.
    ``says_nothing(exc)`` picks those that are neither (a call the caller cut short itself,
    before the dependency's own time was up): they settle nothing, as an interrupted call.
    """

    def __init__(
        self,
        where: str,
        *,
        max_concurrent: int,
        failure_threshold: int,
        cooldown: float,
        is_failure: Callable[[BaseException], bool] = lambda exc: isinstance(
            exc, StripeUnavailable
        ),
        says_nothing: Callable[[BaseException], bool] = lambda exc: False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.where = where
        self.bulkhead = Bulkhead(max_concurrent)
        self.breaker = CircuitBreaker(failure_threshold, cooldown, clock=clock)
        self._is_failure = is_failure
        self._says_nothing = says_nothing

    @contextmanager
    def call(self) -> Iterator[None]:
        """Hold a slot for one call; raise Busy or CircuitOpen at once if it may not go ahead."""
        if not self.bulkhead.try_acquire():
            raise Busy(
                f"Too many requests are waiting on {self.where} "
                f"({self.bulkhead.limit} at once); try again in a moment.",
                retry_after=1,
            )
        try:
            permit = self.breaker.allow()
            if permit is None:
                wait = seconds(self.breaker.retry_after())
                raise CircuitOpen(
                    f"{self.where} failed repeatedly; not trying again for {wait} s.",
                    retry_after=wait,
                )
            try:
                yield
            except Exception as exc:
                if self._says_nothing(exc):
                    self.breaker.abandon(permit)
                elif self._is_failure(exc):
                    self.breaker.record_failure(permit)
                else:
                    self.breaker.record_success(permit)
                raise
            except BaseException:  # interrupted (Ctrl-C): says nothing about the dependency
                self.breaker.abandon(permit)
                raise
            self.breaker.record_success(permit)
        finally:
            self.bulkhead.release()

    def status(self) -> dict:
        """The guard's state, for a readiness answer or a log line."""
        return {
            "circuit": self.breaker.state,
            "retry_after": seconds(self.breaker.retry_after()),
            "in_flight": self.bulkhead.in_use,
            "max_concurrent": self.bulkhead.limit,
        }


def seconds(value: float) -> int:
    """Whole seconds for a Retry-After header: rounded up, never 0 for a real wait."""
    return max(1, math.ceil(value)) if value > 0 else 0


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str
    checked_at: float  # clock time the answer was obtained


class CachedCheck:
    """Runs ``check()`` (raising means "not OK") in a thread of its own, one at a time.

    ``result()`` answers from the last outcome while it is younger than ``ttl``; otherwise it
    starts a check unless one is already running, and waits for it at most ``wait`` seconds. So
    however many callers ask and however long the check hangs, one thread waits on it, and no
    caller waits more than ``wait``.
    """

    def __init__(
        self,
        check: Callable[[], object],
        *,
        ttl: float = 5.0,
        wait: float = 1.0,
        describe: Callable[[BaseException], str] = str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._check = check
        self.ttl = ttl
        self.wait = wait
        self._describe = describe
        self._clock = clock
        self._lock = threading.Lock()
        self._last: CheckResult | None = None
        self._running: threading.Event | None = None

    def result(self) -> CheckResult:
        with self._lock:
            last = self._last
            if last is not None and self._clock() - last.checked_at < self.ttl:
                return last
            done = self._running
            if done is None:
                done = self._running = threading.Event()
                threading.Thread(target=self._run, args=(done,), daemon=True).start()
        done.wait(self.wait)
        with self._lock:
            if self._last is not None and self._last is not last:
                return self._last
        return CheckResult(False, f"no answer within {self.wait:g} s", self._clock())

    def _run(self, done: threading.Event) -> None:
        try:
            self._check()
            outcome = CheckResult(True, "ok", self._clock())
        except Exception as exc:
            outcome = CheckResult(False, self._describe(exc), self._clock())
        with self._lock:
            self._last = outcome
            self._running = None
        done.set()
