"""A shop's stop while its watcher's look at the emulator is held (a slow emulator): the
watcher's last look and the endpoint's disable share one budget (``STOP_WITHIN``), so the
stop is bounded whatever the emulator does."""

from __future__ import annotations

import contextlib
import threading
import time

from bookpay import testing
from bookpay.errors import BookpayError
from bookpay.web.emulator_link import STOP_WITHIN, WATCH_EVERY


def test_a_stop_while_the_watcher_waits_on_a_held_emulator_is_bounded(tmp_path):
    """The watcher joined for up to 3 s, then the disable had 2 s: a stop took 2.1 to 4.5 s
    (the changelog said about two)."""
    with testing.emulator() as emu:
        with testing.shop(emu, data_dir=tmp_path / "shop") as running:
            link = running._running.link
            looking = threading.Event()

            def held_look(up: bool = True) -> bool:
                # A look that calls Stripe (as registering the endpoint again does), held.
                looking.set()
                with contextlib.suppress(BookpayError):
                    link.gateway.webhook_endpoints()
                return up

            link.look = held_look
            emu.faults.rates(latency="6000")  # every call held six seconds
            assert looking.wait(WATCH_EVERY + 5)
            started = time.monotonic()
        took = time.monotonic() - started
        emu.faults.clear()
        assert took < STOP_WITHIN + 0.8, took  # the budget, and the rest of the stop
