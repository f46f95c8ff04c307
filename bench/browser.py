"""What the browser benchmarks share: Debian's Chromium through Playwright, and a shop served by
`bookpay serve` in its own process against an emulator in another (with API latency if asked).

The shop and the emulator run as a user runs them, each in a process of its own, so the browser,
the shop and Stripe's stand-in do not share an interpreter (or its GIL) with the measuring code.
Times are taken inside the page (``performance``), not by Playwright's round trips.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.common import emulator_process, percentile, shop_process

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]


def chromium_path() -> str | None:
    path = os.environ.get("BOOKPAY_CHROMIUM") or shutil.which("chromium")
    return path if path and os.path.isfile(path) else None


@contextmanager
def emulator(latency: float = 0.0) -> Iterator[str]:
    """An emulator in its own process adding ``latency`` seconds to every API call; its URL."""
    with emulator_process(f"latency={float(latency)!r}") as (_, url):
        yield url


@contextmanager
def shop(latency: float = 0.0) -> Iterator[str]:
    """`bookpay serve` against an emulator with ``latency``; the shop's URL."""
    with (
        emulator(latency) as emulator_url,
        tempfile.TemporaryDirectory(prefix="bookpay-bench-") as tmp,
        shop_process(emulator_url, Path(tmp)) as served,
    ):
        yield served.url


@contextmanager
def browser():
    """A headless Chromium, or None (with the reason printed) when there is none."""
    path = chromium_path()
    if path is None:
        print("Chromium not found (install Debian's chromium, or set BOOKPAY_CHROMIUM): skipped")
        yield None
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=path, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


def summary(values: list[float]) -> dict:
    """Median, 95th percentile, least and most of ``values`` (milliseconds, rounded)."""
    return {
        "runs": len(values),
        "median_ms": round(percentile(values, 0.5), 1),
        "p95_ms": round(percentile(values, 0.95), 1),
        "min_ms": round(min(values), 1) if values else 0.0,
        "max_ms": round(max(values), 1) if values else 0.0,
    }
