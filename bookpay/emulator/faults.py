"""Stripe's bad minutes, on demand: latency, 500s, 429s and dropped connections, for /v1 only.

Two sources, checked in this order for every API call:

- **rules**, scripted at run time through the control endpoint (``POST /_emulator/faults``):
  "the next two calls to POST /v1/payment_intents answer 500", "every call to /v1/refunds answers
  429 with Retry-After: 2". A rule names a fault, optionally a method and a path (exact, with
  ``{id}`` standing for any one segment, or ending in ``*`` for a prefix), and how many calls it
  takes (``times``; none: every matching call until the rules are cleared);
- **rates**, drawn from a seeded random generator (``bookpay emulator --faults
  "500=5%,429=2%,reset=1%,timeout=1%" --seed 7``), so a sequence of calls meets the same faults
  on every run with the same seed; latencies are drawn from another, seeded from the same seed,
  so a latency range does not change which faults a seed gives.

What each fault does, as at Stripe:

- ``429`` answers at once, before anything is done: Stripe's ``rate_limit`` error, nothing
  changed, nothing kept under the idempotency key (a retry runs the request);
- ``500`` runs the request first, keeping its state change, then answers Stripe's
  ``api_error``; that 500 is what the idempotency key keeps (Stripe saves the answer of a
  request whose execution began, a 500 included): a retry with the same key gets the 500 again
  for the key's 24 hours (a request refused before it ran, or a replay, keeps nothing new);
- ``reset`` runs the request, then closes the connection without an answer: the client cannot
  know whether it happened (only the idempotency key can tell it);
- ``timeout`` runs the request, then holds the connection for ``seconds`` (30 by default) and
  closes it without an answer. A client that waits less (bookpay's gateway: 15 s for a call,
  retries included) times out on its own; one that waits longer (stripe-python waits 80 s by
  default) sees, after ``seconds``, the connection closed with no answer, as for a ``reset``
  (stripe-python: an ``APIConnectionError``, retried when its network retries are on). To
  make such a client time out itself, give ``seconds`` more than its timeout.

Nothing here runs unless a fault or a latency is configured: the request path checks one flag.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

KINDS = ("500", "429", "reset", "timeout")
# Stripe's own words for these answers.
RATE_LIMIT_MESSAGE = (
    "Request rate limit exceeded. Learn more about rate limits here"
    " https://stripe.com/docs/rate-limits."
)
API_ERROR_MESSAGE = "An unknown error occurred"
# Seconds a `timeout` holds the connection: more than bookpay's gateway waits (15 s), less than
# stripe-python's default of 80 s (a client waiting that long sees the connection dropped).
DEFAULT_HANG = 30.0
# The most latency a call may be given, in milliseconds: a minute, four times bookpay's gateway's
# budget (less than stripe-python's default timeout of 80 s), and far below what time.sleep takes
# (beyond it every call would answer 500 with an OverflowError).
MAX_LATENCY_MS = 60_000


class Drop(Exception):
    """Close the connection without answering (raised after the request has been processed).

    ``hold``: seconds the server keeps the connection open first (a `timeout`), which the
    emulator's own server does after the request has left its slot, so that a held call keeps
    no other call waiting.
    """

    def __init__(self, hold: float = 0.0) -> None:
        super().__init__("fault injected by the emulator: connection dropped")
        self.hold = hold


def drop_connection() -> None:
    """Make the WSGI server close the connection with no response at all.

    waitress takes its own ``ClientDisconnected`` from an application as "the client went away":
    it sends nothing and closes the socket, which is exactly what a dropped connection looks like
    to the client. Under another server this becomes that server's 500.
    """
    from waitress.channel import ClientDisconnected

    raise ClientDisconnected("fault injected by the emulator: connection dropped")


@dataclass(frozen=True)
class Fault:
    kind: str
    retry_after: int | None = None
    seconds: float = DEFAULT_HANG


@dataclass
class Rule:
    fault: str
    method: str | None = None
    path: str | None = None  # /v1/refunds, /v1/payment_intents/{id}/confirm, /v1/refunds*
    times: int | None = None  # None: every matching call, until cleared
    retry_after: int | None = None
    seconds: float = DEFAULT_HANG
    id: int = 0

    def __post_init__(self) -> None:
        if self.path and not self.path.endswith("*"):
            # "/v1/customers/" is /v1/customers: a call's path is matched with or without its
            # final slash, which the rule's own would otherwise make required.
            self.path = self.path.rstrip("/") or "/"
        self._pattern = path_pattern(self.path) if self.path else None

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        return self._pattern is None or self._pattern.fullmatch(path) is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def path_pattern(path: str) -> re.Pattern[str]:
    """``{id}`` stands for one path segment; a final ``*`` for anything that follows."""
    prefix = path.endswith("*")
    body = re.escape(path.rstrip("*")).replace(re.escape("{id}"), "[^/]+")
    return re.compile(body + (".*" if prefix else "/?"))


_SPEC_ITEM = re.compile(r"^\s*([a-z0-9]+)\s*=\s*([0-9]+(?:\.[0-9]+)?)\s*%\s*$")


def parse_rates(spec: str) -> dict[str, float]:
    """``"500=5%,429=2%,reset=1%,timeout=1%"`` -> {"500": 0.05, ...}; ValueError when wrong."""
    rates: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        found = _SPEC_ITEM.match(item)
        if not found:
            raise ValueError(
                f"{item!r} is not a fault rate: write KIND=PERCENT%, such as 500=5%"
                f" (kinds: {', '.join(KINDS)})"
            )
        kind, percent = found.group(1), float(found.group(2))
        if kind not in KINDS:
            raise ValueError(f"unknown fault {kind!r}: the kinds are {', '.join(KINDS)}")
        rates[kind] = rates.get(kind, 0.0) + percent / 100
    if sum(rates.values()) > 1 + 1e-9:
        raise ValueError("the fault rates add up to more than 100%")
    return rates


def parse_latency(spec: str) -> tuple[float, float]:
    """``"50-400"`` or ``"200"`` (milliseconds) -> (low, high) in seconds; ValueError when wrong."""
    found = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(?:-\s*([0-9]+(?:\.[0-9]+)?)\s*)?", spec)
    if not found:
        raise ValueError(f"{spec!r} is not a latency: write milliseconds, MS or MIN-MAX (50-400)")
    low = float(found.group(1))
    high = float(found.group(2)) if found.group(2) else low
    if high < low:
        raise ValueError(f"the latency range {spec!r} ends before it starts")
    if high > MAX_LATENCY_MS:
        raise ValueError(f"a latency of {spec.strip()} ms is more than {MAX_LATENCY_MS:,} ms")
    return low / 1000, high / 1000


class Faults:
    """The faults and latency configured now; ``active`` is False when there are none."""

    def __init__(
        self,
        rates: dict[str, float] | None = None,
        latency: tuple[float, float] = (0.0, 0.0),
        seed: int | None = None,
        hang: float = DEFAULT_HANG,
    ) -> None:
        self._lock = threading.Lock()
        self._initial = (dict(rates or {}), latency, seed)
        self.hang = hang
        self.injected: Counter[str] = Counter()
        self.rules: list[Rule] = []
        self._next_id = 1
        self.seed: int | None = None
        self._random = random.Random()  # the faults drawn
        self._latency_random = random.Random()  # the latencies drawn: apart, not to shift them
        self.configure(rates or {}, latency, seed)

    @classmethod
    def from_options(cls, options: Any) -> Faults:
        low = float(getattr(options, "latency", 0.0) or 0.0)
        high = getattr(options, "latency_max", None)
        return cls(
            parse_rates(getattr(options, "faults", "") or ""),
            (low, max(low, float(high)) if high is not None else low),
            getattr(options, "seed", None),
            getattr(options, "fault_hang", DEFAULT_HANG),
        )

    def configure(
        self,
        rates: dict[str, float] | None = None,
        latency: tuple[float, float] | None = None,
        seed: int | None = None,
    ) -> None:
        """Replace the rates (and the latency, and restart the generator, when given)."""
        if latency is not None and not 0 <= latency[0] <= latency[1] <= MAX_LATENCY_MS / 1000:
            raise ValueError(f"the latency is 0 to {MAX_LATENCY_MS:,} ms, low to high")
        with self._lock:
            if rates is not None:
                self.rates = {kind: rates.get(kind, 0.0) for kind in KINDS if rates.get(kind)}
            if latency is not None:
                self.latency = latency
            if seed is not None:
                self._seed(seed)
            self._refresh()

    def add_rule(self, rule: Rule) -> Rule:
        with self._lock:
            rule.id = self._next_id
            self._next_id += 1
            self.rules.append(rule)
            self._refresh()
        return rule

    def clear(self) -> None:
        """No faults and no latency: the emulator answers perfectly again."""
        with self._lock:
            self.rules.clear()
            self.rates = {}
            self.latency = (0.0, 0.0)
            self._refresh()

    def reset(self) -> None:
        """Back to what the emulator started with: its options' rates, latency and seed."""
        rates, latency, seed = self._initial
        with self._lock:
            self.rules.clear()
            self.injected.clear()
            self._seed(seed)
        self.configure(rates, latency)

    def _seed(self, seed: int | None) -> None:
        self.seed = seed
        self._random = random.Random(seed)
        self._latency_random = random.Random(None if seed is None else f"latency {seed}")

    def _refresh(self) -> None:
        self.active = bool(self.rates or self.rules or self.latency[1] > 0)

    # The request path ------------------------------------------------------------------------

    def delay(self) -> float:
        low, high = self.latency
        if high <= 0:
            return 0.0
        if high == low:
            return low
        with self._lock:
            return self._latency_random.uniform(low, high)

    def pick(self, method: str, path: str) -> Fault | None:
        """The fault this call meets, if any: a scripted rule first, then the rates."""
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path):
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times <= 0:
                            self.rules.remove(rule)
                            self._refresh()
                    self.injected[rule.fault] += 1
                    return Fault(rule.fault, rule.retry_after, rule.seconds)
            if not self.rates:
                return None
            draw = self._random.random()
            for kind, rate in self.rates.items():
                if draw < rate:
                    self.injected[kind] += 1
                    return Fault(kind, None, self.hang)
                draw -= rate
        return None

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {
                "rates": {kind: round(rate * 100, 6) for kind, rate in self.rates.items()},
                "latency_ms": [round(x * 1000, 3) for x in self.latency],
                "seed": self.seed,
                "rules": [rule.to_dict() for rule in self.rules],
                "injected": dict(self.injected),
            }


def wait(environ: dict[str, Any], seconds: float) -> None:
    """A latency: under the emulator's own server, waited without holding one of its request
    slots (``bookpay.wait``), so that slow calls never delay others; elsewhere, a sleep."""
    outside = environ.get("bookpay.wait")
    if outside is not None:
        outside(seconds)
    else:
        time.sleep(seconds)


def hold(fault: Fault, environ: dict[str, Any] | None = None) -> None:
    """What a `timeout` does once the request has run: hold the connection, then drop it.

    The emulator's own server (``bookpay.holds``) holds it itself, once the request has left
    its slot, and lets it go early when the client hangs up; under another server, a sleep.
    """
    seconds = max(0.0, fault.seconds)
    if environ is not None and environ.get("bookpay.holds"):
        raise Drop(hold=seconds)
    time.sleep(seconds)
    raise Drop
