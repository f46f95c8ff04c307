"""A rate limit per key (a checkout attempt): a token bucket each, in this process's memory.

A shopper typing an address makes a quote (two Stripe calls) per change; the page sends one at a
time, so a person never comes near the limit, while a script hammering one attempt gets a 429
with ``Retry-After`` instead of a Stripe call per request. Buckets live in this process only
(several processes each allow the rate), and at most ``max_keys`` are kept, the least recently
used dropped first, so memory stays bounded whoever sends what.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict

from bookpay.errors import UsageError


class TooManyRequests(UsageError):
    http_status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimiter:
    """``burst`` requests at once, then ``rate`` a second, per key."""

    def __init__(
        self, *, rate: float, burst: int, max_keys: int = 10_000, clock=time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, when

    def check(self, key: str, what: str = "requests") -> None:
        """Take a token for ``key``, or raise TooManyRequests saying when to try again."""
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - then) * self.rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        if not allowed:
            wait = max(1, math.ceil((1.0 - tokens) / self.rate))
            raise TooManyRequests(
                f"Too many {what} for this checkout: try again in {wait} s.", retry_after=wait
            )
