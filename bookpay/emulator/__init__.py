"""bookpay's Stripe test-mode emulator: a separate HTTP service speaking Stripe's v1 API.

Light to import: the server, SQLite and the resources load only when the emulator starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import RunningEmulator, StateInUse

__all__ = [
    "EMULATOR_DB",
    "RETRY_SCHEDULES",
    "STRIPE_LIVE_RETRY_SCHEDULE",
    "STRIPE_RETRY_SCHEDULE",
    "STRIPE_TEST_RETRY_SCHEDULE",
    "EmulatorOptions",
    "RunningEmulator",
    "StateInUse",
    "create_app",
    "start_emulator",
]

# The emulator's SQLite file name under bookpay's data folder.
EMULATOR_DB = "emulator.sqlite3"
_HOUR = 3600.0
# Seconds before each webhook retry; when the last one fails too, the delivery has failed and the
# account is told that the endpoint is failing. On the emulator's clock, which tests advance.
# Stripe's Webhooks page (docs.stripe.com/webhooks, automatic retries): live mode retries for up
# to three days with an exponential back-off; a sandbox (test mode) three times over a few hours.
# It gives no intervals: live mode's here are 5 min, 30 min, 2 h, 5 h, 10 h, then every 12 h (the
# last retry some 65 hours after the first attempt); test mode's, the same back-off's first three
# (the last retry 2 h 35 min after the first attempt).
STRIPE_LIVE_RETRY_SCHEDULE = (300.0, 1800.0, 2 * _HOUR, 5 * _HOUR, 10 * _HOUR) + (12 * _HOUR,) * 4
STRIPE_TEST_RETRY_SCHEDULE = STRIPE_LIVE_RETRY_SCHEDULE[:3]
# The name this had before test mode's schedule became the default: live mode's, as it was.
STRIPE_RETRY_SCHEDULE = STRIPE_LIVE_RETRY_SCHEDULE
RETRY_SCHEDULES = {"test": STRIPE_TEST_RETRY_SCHEDULE, "live": STRIPE_LIVE_RETRY_SCHEDULE}


@dataclass(frozen=True)
class EmulatorOptions:
    db_path: Path | None = None  # None: in memory (ephemeral)
    latency: float = 0.0  # seconds added to each /v1 call (the least, with latency_max)
    latency_max: float | None = None  # a random latency from latency to this, per call
    # Faults drawn at random for each /v1 call, as `bookpay emulator --faults` takes them:
    # "500=5%,429=2%,reset=1%,timeout=1%" (see bookpay/emulator/faults.py).
    faults: str = ""
    seed: int | None = None  # for the faults and latencies drawn: the same seed, the same run
    fault_hang: float = 30.0  # seconds a `timeout` fault holds the connection
    # Seconds before each webhook retry; after the last one, the delivery gives up. A test-mode
    # emulator retries as Stripe's sandboxes do; STRIPE_LIVE_RETRY_SCHEDULE for live mode's.
    retry_schedule: tuple[float, ...] = STRIPE_TEST_RETRY_SCHEDULE
    delivery_timeout: float = 5.0  # seconds per webhook attempt
    # Seconds before what Stripe does "some time later" in test mode: a dispute card's dispute
    # opening, an asynchronous refund failing or succeeding, submitted evidence deciding.
    async_delay: float = 2.0
    threads: int = 32  # requests handled at once (each open connection has a thread of its own)


def create_app(options: EmulatorOptions | None = None) -> Any:
    """The WSGI app (an `api.Emulator`); call `.close()` on it when done."""
    from .api import Emulator

    return Emulator(options or EmulatorOptions())


def start_emulator(
    host: str = "127.0.0.1", port: int = 0, options: EmulatorOptions | None = None
) -> RunningEmulator:
    """Start in a background thread; return once it accepts connections (port=0: any free)."""
    from .server import RunningEmulator

    return RunningEmulator(host, port, options or EmulatorOptions())


def __getattr__(name: str) -> Any:
    # `from bookpay.emulator import RunningEmulator` works without importing the server eagerly.
    if name in ("RunningEmulator", "StateInUse"):
        from . import server

        return getattr(server, name)
    raise AttributeError(name)
