"""bookpay's Stripe test-mode emulator: a separate HTTP service speaking Stripe's v1 API.

Light to import: the server, SQLite and the resources load only when the emulator starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import RunningEmulator

__all__ = ["EMULATOR_DB", "EmulatorOptions", "RunningEmulator", "create_app", "start_emulator"]

# The emulator's SQLite file name under bookpay's data folder.
EMULATOR_DB = "emulator.sqlite3"


@dataclass(frozen=True)
class EmulatorOptions:
    db_path: Path | None = None  # None: in memory (ephemeral)
    latency: float = 0.0  # seconds added to each /v1 call
    # Seconds before each webhook retry; after the last one, the delivery gives up.
    retry_schedule: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0)
    delivery_timeout: float = 5.0  # seconds per webhook attempt
    # Seconds before what Stripe does "some time later" in test mode: a dispute card's dispute
    # opening, an asynchronous refund failing or succeeding, submitted evidence deciding.
    async_delay: float = 2.0
    threads: int = 32


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
    # `from bookpay.emulator import RunningEmulator` works without importing waitress eagerly.
    if name == "RunningEmulator":
        from .server import RunningEmulator

        return RunningEmulator
    raise AttributeError(name)
