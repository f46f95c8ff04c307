"""Many shoppers at once, each on a keep-alive connection: zero errors, latency reported.

Run: ``python -m bench capacity`` (``BENCH_SHOPPERS`` and ``BENCH_SECONDS`` scale it down).

`bookpay serve` (its default capacity) runs against the emulator in a process of its own; the
shoppers run in this process, each a thread with one keep-alive connection, looping through a
visit: ``GET /``, ``GET /checkout?item=N``, ``GET /static/checkout.js``,
``POST /create-payment-intent``, thinking 0.2 to 0.8 s (seeded) between requests. Two phases,
side by side in one run: 16 shoppers, then SHOPPERS (256) for SECONDS (30). Every answer that is
not a 200, and every connection error or timeout, is an error.

Target: zero errors with 256 shoppers; p50/p99 reported for each kind of request, with the ratio
of the 256-shopper p99 to the 16-shopper one, and how many lines the shop logged meanwhile
(repeated waitress warnings are rate-limited).
"""

from __future__ import annotations

import os
import random
import tempfile
import threading
import time
import uuid
from pathlib import Path

from bench.common import Client, emulator_process, percentile, shop_process

SHOPPERS = int(os.environ.get("BENCH_SHOPPERS", "256"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "30"))
FEW = 16
THINK = (0.2, 0.8)
SEED = 8
KINDS = ("index", "checkout", "static", "create")


def _visit(client: Client, kind: str, item: str):
    if kind == "index":
        return client.request("GET", "/")
    if kind == "checkout":
        return client.request("GET", f"/checkout?item={item}")
    if kind == "static":
        return client.request("GET", "/static/checkout.js")
    return client.request(
        "POST", "/create-payment-intent", {"item": item, "attemptId": str(uuid.uuid4())}
    )


def _phase(url: str, shoppers: int, seconds: float) -> dict:
    latencies: dict[str, list[float]] = {kind: [] for kind in KINDS}
    errors: dict[str, int] = {}
    lock = threading.Lock()
    start = threading.Barrier(shoppers + 1)
    stop_at: list[float] = []

    def shopper(number: int) -> None:
        rng = random.Random(f"{SEED}:{number}")
        client = Client(url, timeout=60)
        try:
            client.conn.connect()
            start.wait()
            n = 0
            while time.monotonic() < stop_at[0]:
                kind = KINDS[n % len(KINDS)]
                status, _, _, took = _visit(client, kind, str(rng.randint(1, 3)))
                n += 1
                with lock:
                    latencies[kind].append(took)
                    if status != 200:
                        key = f"{kind} {status or 'connection error'}"
                        errors[key] = errors.get(key, 0) + 1
                time.sleep(rng.uniform(*THINK))
        finally:
            client.close()

    threads = [threading.Thread(target=shopper, args=(i,), daemon=True) for i in range(shoppers)]
    for thread in threads:
        thread.start()
    stop_at.append(time.monotonic() + seconds)
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join(seconds + 120)
    elapsed = time.perf_counter() - began
    every = [t for kind in KINDS for t in latencies[kind]]
    return {
        "shoppers": shoppers,
        "seconds": round(elapsed, 1),
        "requests": len(every),
        "requests_per_second": round(len(every) / elapsed, 1),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "p50_s": round(percentile(every, 0.5), 4),
        "p99_s": round(percentile(every, 0.99), 4),
        "max_s": round(max(every, default=0), 4),
        "by_kind": {
            kind: {
                "requests": len(values),
                "p50_s": round(percentile(values, 0.5), 4),
                "p99_s": round(percentile(values, 0.99), 4),
            }
            for kind, values in latencies.items()
        },
    }


def main() -> dict:
    with (
        tempfile.TemporaryDirectory(prefix="bookpay-bench-") as tmp,
        emulator_process() as (_, emulator_url),
        shop_process(emulator_url, Path(tmp)) as shop,
    ):
        few = _phase(shop.url, FEW, max(3.0, SECONDS / 3))
        many = _phase(shop.url, SHOPPERS, SECONDS)
        time.sleep(0.5)  # let the shop's last log lines arrive
        log_lines = len(shop.stderr)

    ratio = round(many["p99_s"] / few["p99_s"], 2) if few["p99_s"] else None
    figures = {
        "few": few,
        "many": many,
        "p99_ratio_many_to_few": ratio,
        "shop_log_lines": log_lines,
        "zero_errors": many["errors"] == 0 and few["errors"] == 0,
    }
    print(
        f"bench_capacity: keep-alive shoppers, think time {THINK[0]:g}-{THINK[1]:g} s, "
        "`bookpay serve` with its defaults, emulator in its own process"
    )
    print(
        f"{'shoppers':>8} {'seconds':>8} {'requests':>9} {'req/s':>8} {'errors':>7} "
        f"{'p50':>8} {'p99':>8} {'max':>8}"
    )
    for phase in (few, many):
        print(
            f"{phase['shoppers']:>8} {phase['seconds']:>8.1f} {phase['requests']:>9} "
            f"{phase['requests_per_second']:>8.1f} {phase['errors']:>7} {phase['p50_s']:>8.4f} "
            f"{phase['p99_s']:>8.4f} {phase['max_s']:>8.4f}"
        )
    for kind in KINDS:
        row = many["by_kind"][kind]
        print(f"  {kind:<9} p50 {row['p50_s']:.4f} s, p99 {row['p99_s']:.4f} s ({row['requests']})")
    print(
        f"p99 {SHOPPERS} / {FEW} shoppers: {ratio}; errors: {many['errors']} "
        f"{many['error_kinds'] or ''} {'OK' if figures['zero_errors'] else 'ERRORS'}; "
        f"the shop logged {log_lines} lines"
    )
    return figures


if __name__ == "__main__":
    main()
