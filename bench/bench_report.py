"""`bookpay report sales` of one day, on a small and a large ledger, side by side in one run.

The same day holds the same sales (DAY_ORDERS fulfilled orders, each with its lines) in a ledger
of SMALL orders and in one of LARGE orders, on SQLite and on PostgreSQL. `report sales --since
DAY --until DAY --json` runs through the real CLI in this process (CliRunner: opening the
ledger, the query through ``orders_fulfilled``, the arithmetic, the JSON), alternately, and the
medians are compared. Target: large / small at most 1.2 on each backend (the time of a period
does not grow with the whole ledger). The report of the whole large ledger is timed once, for
scale.

Scale: BENCH_REPORT_ORDERS (default 1,000,000; SMALL is 1,000). PostgreSQL as bench_ledger.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.bench_ledger import _cli_seconds, _postgres_url, _schema

SMALL = 1000
LARGE = int(os.environ.get("BENCH_REPORT_ORDERS", "1000000"))
DAY = "2026-06-15"
DAY_ORDERS = 200
RUNS = 15
RATIO_TARGET = 1.2
ORDER_COLUMNS = (
    "id, payment_intent, item_id, amount, currency, email, status, amount_refunded, created, "
    "updated, fulfilled_at"
)
LINE_COLUMNS = "order_id, position, item_id, title, quantity, unit_amount, line_amount"


def _rows(count: int):
    """(order, lines) rows: DAY_ORDERS on DAY, the rest spread over the year before."""
    for n in range(count):
        if n < DAY_ORDERS:
            stamp = f"{DAY}T{n % 24:02d}:{n % 60:02d}:00.000Z"
        else:
            stamp = f"2025-{1 + n % 12:02d}-{1 + n % 28:02d}T{n % 24:02d}:00:00.{n % 1000:03d}Z"
        order_id = f"ord_{n:016x}"
        quantity = 1 + n % 3
        status = ("paid", "partially_refunded", "refunded", "disputed")[n % 4]
        refunded = {"partially_refunded": 500, "refunded": 2300 * quantity}.get(status, 0)
        amount = 2300 * quantity
        order = (order_id, f"pi_r{n:012d}", None, amount, "usd", f"r{n}@example.com", status,
                 refunded, stamp, stamp, stamp)  # fmt: skip
        lines = [(order_id, 0, str(1 + n % 3), f"Book {1 + n % 3}", quantity, 2300, amount)]
        yield order, lines


def _fill(settings, count: int) -> None:
    from bookpay.ledger import open_ledger

    with open_ledger(settings) as ledger:
        if ledger.kind == "postgresql":
            with ledger.backend.connect() as conn, conn.cursor() as cursor:
                with cursor.copy(f"COPY orders ({ORDER_COLUMNS}) FROM STDIN") as copy:
                    for order, _ in _rows(count):
                        copy.write_row(order)
                with cursor.copy(f"COPY order_lines ({LINE_COLUMNS}) FROM STDIN") as copy:
                    for _, lines in _rows(count):
                        for line in lines:
                            copy.write_row(line)
                conn.execute("ANALYZE orders")
                conn.execute("ANALYZE order_lines")
            return
        insert_order = f"INSERT INTO orders ({ORDER_COLUMNS}) VALUES ({', '.join('?' * 11)})"
        insert_line = f"INSERT INTO order_lines ({LINE_COLUMNS}) VALUES ({', '.join('?' * 7)})"
        batch: list = []
        for row in _rows(count):
            batch.append(row)
            if len(batch) == 50_000:
                _write(ledger, insert_order, insert_line, batch)
                batch = []
        _write(ledger, insert_order, insert_line, batch)
        with ledger.transaction() as tx:
            tx.execute("ANALYZE")


def _write(ledger, insert_order: str, insert_line: str, batch: list) -> None:
    with ledger.transaction() as tx:
        tx.many(insert_order, [order for order, _ in batch])
        tx.many(insert_line, [line for _, lines in batch for line in lines])


def main() -> dict:
    from bookpay.config import Settings

    url = _postgres_url()
    figures: dict = {"small": SMALL, "large": LARGE, "day_orders": DAY_ORDERS}
    period = ["report", "sales", "--since", DAY, "--until", DAY, "--json"]
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        with _schema(url, "bench_report_s") as pg_small, _schema(url, "bench_report_l") as pg_large:
            for backend, dbs in (("sqlite", (None, None)), ("postgresql", (pg_small, pg_large))):
                envs = {}
                for size, count, db in (("small", SMALL, dbs[0]), ("large", LARGE, dbs[1])):
                    data_dir = folder / f"{backend}-{size}"
                    started = time.perf_counter()
                    _fill(Settings(data_dir=data_dir, database_url=db), count)
                    print(f"  filled {backend} {size}: {count:,} orders in "
                          f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
                    envs[size] = {"BOOKPAY_DATA_DIR": str(data_dir)}
                    if db:
                        envs[size]["BOOKPAY_DATABASE_URL"] = db
                samples: dict[str, list[float]] = {"small": [], "large": []}
                for _ in range(RUNS):
                    for size, env in envs.items():
                        samples[size].append(_cli_seconds(env, period))
                medians = {size: statistics.median(times) for size, times in samples.items()}
                whole = _cli_seconds(envs["large"], ["report", "sales", "--by", "month", "--json"])
                figures[backend] = {
                    "day_ms": {size: round(m * 1000, 2) for size, m in medians.items()},
                    "ratio": round(medians["large"] / medians["small"], 3),
                    "whole_large_ledger_s": round(whole, 2),
                }
    _report(figures)
    return figures


def _report(figures: dict) -> None:
    print(
        f"bench_report: one day ({figures['day_orders']} sales) in {figures['small']:,} against "
        f"{figures['large']:,} orders"
    )
    print(f"{'backend':<12}{'day small / large ms':>24}{'ratio':>8}{'whole large ledger s':>24}")
    for backend in ("sqlite", "postgresql"):
        f = figures[backend]
        print(
            f"{backend:<12}{f['day_ms']['small']:>11.1f} / {f['day_ms']['large']:<10.1f}"
            f"{f['ratio']:>8.2f}{f['whole_large_ledger_s']:>24.2f}"
        )
    print(f"  target: ratio <= {RATIO_TARGET}")
