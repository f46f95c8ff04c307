"""The shop while Stripe hangs: pages stay fast, checkouts fail fast, recovery is automatic.

Run: ``python -m bench resilience``.

`bookpay serve` (default capacity and Stripe limits) runs against the emulator in a process of
its own. Four keep-alive page clients cycle through ``/``, ``/checkout?item=1``,
``/static/checkout.js`` and ``/healthz`` while 60 checkouts (``POST /create-payment-intent``) are
in flight, twice, side by side in one run:

1. healthy: the emulator answers; the 60 checkouts repeat for a few seconds;
2. hung: the emulator is stopped with SIGSTOP (it accepts connections and never answers), and
   60 checkouts are sent at once.

Then the emulator resumes (SIGCONT) and a checkout is tried every 50 ms until one succeeds.

Targets: while Stripe hangs, page p99 under 1 s; every checkout answers 503 (with Retry-After)
within the call budget (``StripeLimits.total_timeout``) plus 1 s; after the emulator resumes,
the first checkout succeeds within the breaker's cool-down (``StripeLimits.cooldown``) plus 1 s.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import threading
import time
import uuid
from pathlib import Path

from bench.common import Client, emulator_process, percentile, shop_process

CHECKOUTS = 60
PAGE_CLIENTS = 4
PAGES = ("/", "/checkout?item=1", "/static/checkout.js", "/healthz")
HEALTHY_SECONDS = 5.0
PAGE_P99_TARGET = 1.0


def _create(client: Client):
    body = {"item": "1", "attemptId": str(uuid.uuid4())}
    return client.request("POST", "/create-payment-intent", body)


class PageClients:
    """PAGE_CLIENTS threads requesting PAGES in turn until stopped; latencies by outcome."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, daemon=True) for _ in range(PAGE_CLIENTS)
        ]

    def _run(self) -> None:
        client = Client(self.url)
        n = 0
        try:
            while not self._stop.is_set():
                status, _, _, seconds = client.request("GET", PAGES[n % len(PAGES)])
                n += 1
                with self._lock:
                    self.latencies.append(seconds)
                    self.failures += status != 200
        finally:
            client.close()

    def __enter__(self) -> PageClients:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


def _checkouts(url: str, until: float | None = None) -> list[tuple[int, dict, bytes, float]]:
    """CHECKOUTS threads, each sending one checkout (or repeating them until ``until``)."""
    answers: list = []
    lock = threading.Lock()
    start = threading.Barrier(CHECKOUTS + 1)

    def work() -> None:
        client = Client(url)
        client.conn.connect()
        try:
            start.wait()
            while True:
                answer = _create(client)
                with lock:
                    answers.append(answer)
                if until is None or time.monotonic() >= until:
                    return
        finally:
            client.close()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(CHECKOUTS)]
    for thread in threads:
        thread.start()
    start.wait()
    for thread in threads:
        thread.join(120)
    return answers


def _code(body: bytes) -> str:
    try:
        return json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return "?"


def main() -> dict:
    from bookpay.config import StripeLimits

    limits = StripeLimits()
    with (
        tempfile.TemporaryDirectory(prefix="bookpay-bench-") as tmp,
        emulator_process() as (emulator, emulator_url),
        shop_process(emulator_url, Path(tmp)) as shop,
    ):
        warm = Client(shop.url)
        for _ in range(3):
            if _create(warm)[0] != 200:
                raise RuntimeError("the shop cannot create PaymentIntents")
        warm.close()

        with PageClients(shop.url) as healthy_pages:
            healthy = _checkouts(shop.url, until=time.monotonic() + HEALTHY_SECONDS)

        os.kill(emulator.pid, signal.SIGSTOP)
        try:
            with PageClients(shop.url) as hung_pages:
                hung = _checkouts(shop.url)
        finally:
            os.kill(emulator.pid, signal.SIGCONT)
        resumed = time.monotonic()
        client = Client(shop.url)
        attempts = 0
        while time.monotonic() - resumed < limits.cooldown + 30:
            attempts += 1
            if _create(client)[0] == 200:
                break
            time.sleep(0.05)
        recovery = time.monotonic() - resumed
        client.close()

    healthy_p99 = percentile(healthy_pages.latencies, 0.99)
    hung_p99 = percentile(hung_pages.latencies, 0.99)
    hung_seconds = [seconds for _, _, _, seconds in hung]
    codes: dict[str, int] = {}
    for status, _, body, _ in hung:
        key = f"{status} {_code(body)}" if status != 200 else "200"
        codes[key] = codes.get(key, 0) + 1
    all_503 = len(hung) == CHECKOUTS and all(
        status == 503 and "Retry-After" in headers for status, headers, _, _ in hung
    )
    within_budget = max(hung_seconds, default=0) <= limits.total_timeout + 1
    figures = {
        "checkouts_in_flight": CHECKOUTS,
        "healthy_checkouts": len(healthy),
        "healthy_checkout_failures": sum(status != 200 for status, _, _, _ in healthy),
        "healthy_page_p99_s": round(healthy_p99, 4),
        "healthy_page_requests": len(healthy_pages.latencies),
        "hung_page_p50_s": round(percentile(hung_pages.latencies, 0.5), 4),
        "hung_page_p99_s": round(hung_p99, 4),
        "hung_page_max_s": round(max(hung_pages.latencies, default=0), 4),
        "hung_page_requests": len(hung_pages.latencies),
        "hung_page_failures": hung_pages.failures,
        "hung_page_p99_ratio": round(hung_p99 / healthy_p99, 2) if healthy_p99 else None,
        "hung_checkout_answers": codes,
        "hung_checkout_fastest_s": round(min(hung_seconds, default=0), 4),
        "hung_checkout_slowest_s": round(max(hung_seconds, default=0), 4),
        "budget_s": limits.total_timeout,
        "recovery_s": round(recovery, 3),
        "recovery_attempts": attempts,
        "cooldown_s": limits.cooldown,
        "page_p99_target_met": hung_p99 < PAGE_P99_TARGET and hung_pages.failures == 0,
        "checkouts_503_within_budget": all_503 and within_budget,
        "recovered_within_cooldown": recovery <= limits.cooldown + 1,
    }
    print(
        f"bench_resilience: {CHECKOUTS} checkouts in flight, {PAGE_CLIENTS} page clients, "
        "`bookpay serve` with its defaults, emulator in its own process"
    )
    print(f"{'':<34} {'p50':>8} {'p99':>8} {'max':>8} {'requests':>9} {'failed':>7}")
    for label, pages in (
        ("pages, emulator answering", healthy_pages),
        ("pages, emulator stopped", hung_pages),
    ):
        lat = pages.latencies
        print(
            f"{label:<34} {percentile(lat, 0.5):>8.4f} {percentile(lat, 0.99):>8.4f} "
            f"{max(lat, default=0):>8.4f} {len(lat):>9} {pages.failures:>7}"
        )
    print(
        f"page p99 stopped / answering: {figures['hung_page_p99_ratio']} "
        f"(target: p99 under {PAGE_P99_TARGET:g} s) "
        f"{'OK' if figures['page_p99_target_met'] else 'MISSED'}"
    )
    print(
        f"checkouts while stopped: {codes}, answered in {figures['hung_checkout_fastest_s']:.3f}"
        f"-{figures['hung_checkout_slowest_s']:.3f} s (budget {limits.total_timeout:g} s) "
        f"{'OK' if figures['checkouts_503_within_budget'] else 'MISSED'}"
    )
    print(
        f"first checkout after the emulator resumed: {recovery:.2f} s, {attempts} tries "
        f"(cool-down {limits.cooldown:g} s) "
        f"{'OK' if figures['recovered_within_cooldown'] else 'MISSED'}"
    )
    return figures


if __name__ == "__main__":
    main()
