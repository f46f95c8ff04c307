"""`bookpay report sales` of one day, on a small and a large ledger, side by side in one run;
and `bookpay report tax`'s default listing in a ledger of many tax records.

The same day holds the same sales (DAY_ORDERS fulfilled orders, each with its lines) in a ledger
of SMALL orders and in one of LARGE orders, on SQLite and on PostgreSQL. `report sales --since
DAY --until DAY --json` runs through the real CLI in this process (CliRunner: opening the
ledger, the query through ``orders_fulfilled``, the arithmetic, the JSON), alternately, and the
medians are compared. Target: large / small at most 1.2 on each backend (the time of a period
does not grow with the whole ledger). The report of the whole large ledger is timed once, for
scale.

`report tax` (part ``tax``) lists by default the records that need a person: refused, owed,
and the reversals Stripe Tax has whose refund failed afterwards (an OR of the two). In a ledger
of TAX_RECORDS tax records, mostly recorded as a shop's are, its query
(``tax_records_with_status``, as the command calls it) and the whole command (`report tax
--json`) are timed with the index of the reversals whose refund failed
(``tax_records_refund_failed``) and then without it (dropped, then made again), medians of RUNS
each; both list the same records. Target: the query within TAX_QUERY_TARGET_MS with the index.

Scale: BENCH_REPORT_ORDERS (default 1,000,000; SMALL is 1,000), BENCH_REPORT_TAX_RECORDS
(default 400,000). Parts: BENCH_REPORT_PARTS, any of sales,tax (default both). PostgreSQL as
bench_ledger.
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
TAX_RECORDS = int(os.environ.get("BENCH_REPORT_TAX_RECORDS", "400000"))
PARTS = os.environ.get("BENCH_REPORT_PARTS", "sales,tax").split(",")
TAX_QUERY_TARGET_MS = 10.0
TAX_INDEX = "tax_records_refund_failed"
TAX_COLUMNS = (
    "id, kind, order_id, payment_intent, refund, amount, status, stripe_id, attempts, "
    "next_attempt_at, created, recorded_at, refund_failed_at"
)
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


def _tax_rows(count: int):
    """(tax record, its order or None): a transaction per order, then three reversals of it;
    one in 4,000 owed, one in 20,000 refused, one in 1,000 skipped, the rest recorded, and one
    reversal in 2,000 recorded whose refund failed afterwards."""
    for n in range(count):
        order_id = f"ord_t{n // 4:015x}"
        stamp = f"2025-{1 + n % 12:02d}-{1 + n % 28:02d}T{n % 24:02d}:00:00.{n % 1000:03d}Z"
        status = "recorded"
        if n % 4000 == 1:
            status = "pending"
        elif n % 20000 == 2:
            status = "refused"
        elif n % 1000 == 3:
            status = "skipped"
        recorded = stamp if status == "recorded" else None
        if n % 4 == 0:
            record = (f"txn:{order_id}", "transaction", order_id, f"pi_t{n // 4:012d}", None,
                      None, status, f"tax_{n}" if recorded else None, 1, stamp, stamp, recorded,
                      None)  # fmt: skip
            order = (order_id, f"pi_t{n // 4:012d}", None, 2300, "usd", f"t{n}@example.com",
                     "paid", 0, stamp, stamp, stamp)  # fmt: skip
            yield record, order
            continue
        failed = stamp if status == "recorded" and n % 2000 == 5 else None
        record = (f"rev:re_t{n:012d}", "reversal", order_id, f"pi_t{n // 4:012d}",
                  f"re_t{n:012d}", 500, status, f"taxrev_{n}" if recorded else None, 1, stamp,
                  stamp, recorded, failed)  # fmt: skip
        yield record, None


def _fill_tax(settings, count: int) -> None:
    from bookpay.ledger import open_ledger

    with open_ledger(settings) as ledger:
        if ledger.kind == "postgresql":
            with ledger.backend.connect() as conn, conn.cursor() as cursor:
                with cursor.copy(f"COPY tax_records ({TAX_COLUMNS}) FROM STDIN") as copy:
                    for record, _ in _tax_rows(count):
                        copy.write_row(record)
                with cursor.copy(f"COPY orders ({ORDER_COLUMNS}) FROM STDIN") as copy:
                    for _, order in _tax_rows(count):
                        if order:
                            copy.write_row(order)
                conn.execute("ANALYZE tax_records")  # as autovacuum does
                conn.execute("ANALYZE orders")
            return
        # No ANALYZE on SQLite: bookpay never runs it, so a shop's ledger has no statistics.
        records = f"INSERT INTO tax_records ({TAX_COLUMNS}) VALUES ({', '.join('?' * 13)})"
        orders = f"INSERT INTO orders ({ORDER_COLUMNS}) VALUES ({', '.join('?' * 11)})"
        rows = list(_tax_rows(count))
        with ledger.transaction() as tx:
            tx.many(records, [record for record, _ in rows])
            tx.many(orders, [order for _, order in rows if order])


def _tax_listing(settings, env: dict[str, str]) -> dict:
    """Medians (ms) of the default listing's query and of `report tax --json`, with the index
    and without it, and how many records it lists."""
    from bookpay.ledger import open_ledger
    from bookpay.ledger.migrations import MIGRATIONS

    create = next(
        statement
        for migration in MIGRATIONS
        for statement in migration.sqlite
        if f"INDEX {TAX_INDEX} " in statement
    )
    found: dict = {}
    with open_ledger(settings) as ledger:
        listed = {}
        for state in ("indexed", "not_indexed"):
            if state == "not_indexed":
                with ledger.transaction() as tx:
                    tx.run(f"DROP INDEX {TAX_INDEX}")
            query, command = [], []
            for _ in range(RUNS):
                started = time.perf_counter()
                rows = ledger.tax_records_with_status(["refused", "pending"], refund_failed=True)
                query.append(time.perf_counter() - started)
                command.append(_cli_seconds(env, ["report", "tax", "--json"]))
            listed[state] = [row["id"] for row in rows]
            found[state] = {
                "query_ms": round(statistics.median(query) * 1000, 2),
                "command_ms": round(statistics.median(command) * 1000, 1),
            }
        with ledger.transaction() as tx:
            tx.run(create)
    if listed["indexed"] != listed["not_indexed"]:
        raise RuntimeError("report tax listed other records without the index")
    found["listed"] = len(listed["indexed"])
    found["query_ratio"] = round(
        found["not_indexed"]["query_ms"] / max(found["indexed"]["query_ms"], 0.001), 1
    )
    return found


def main() -> dict:
    from bookpay.config import Settings

    url = _postgres_url()
    figures: dict = {"small": SMALL, "large": LARGE, "day_orders": DAY_ORDERS}
    if "tax" in PARTS:
        figures["tax"] = _tax_part(url)
    if "sales" not in PARTS:
        _report_tax(figures["tax"])
        return figures
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
    if "tax" in figures:
        _report_tax(figures["tax"])
    return figures


def _tax_part(url: str) -> dict:
    from bookpay.config import Settings

    found: dict = {"records": TAX_RECORDS}
    with tempfile.TemporaryDirectory() as name, _schema(url, "bench_report_tax") as pg:
        for backend, db in (("sqlite", None), ("postgresql", pg)):
            settings = Settings(data_dir=Path(name) / f"{backend}-tax", database_url=db)
            started = time.perf_counter()
            _fill_tax(settings, TAX_RECORDS)
            print(f"  filled {backend}: {TAX_RECORDS:,} tax records in "
                  f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
            env = {"BOOKPAY_DATA_DIR": str(settings.data_dir)}
            if db:
                env["BOOKPAY_DATABASE_URL"] = db
            found[backend] = _tax_listing(settings, env)
    return found


def _report_tax(found: dict) -> None:
    print(
        f"bench_report: report tax's default listing in {found['records']:,} tax records, "
        f"with the index of reversals whose refund failed / without it"
    )
    print(f"{'backend':<12}{'listed':>8}{'query ms':>22}{'ratio':>8}{'report tax --json ms':>26}")
    for backend in ("sqlite", "postgresql"):
        f = found[backend]
        with_, without = f["indexed"], f["not_indexed"]
        print(
            f"{backend:<12}{f['listed']:>8}{with_['query_ms']:>10.2f} / {without['query_ms']:<9.2f}"
            f"{f['query_ratio']:>8.0f}{with_['command_ms']:>13.1f} / {without['command_ms']:<10.1f}"
        )
    print(f"  target: the query within {TAX_QUERY_TARGET_MS} ms with the index")


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
