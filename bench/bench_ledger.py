"""The ledger at scale, on SQLite and PostgreSQL, side by side in one run.

1. CLI cost bounded by the page: `orders list` (first page, 50 orders) and `orders show` on a
   ledger of SMALL orders against one of LARGE orders, through the real CLI in this process
   (CliRunner: opening the ledger, the query, the table), medians of alternating runs; target:
   large / small at most 1.2 on each backend.
2. `orders export --format csv` of the LARGE ledger, the real CLI in a process of its own:
   rows per second (start-up included) and its peak RSS; targets: at least 100,000 rows/s and at
   most 100 MB.
3. Webhook ingestion of distinct paid intents, 8 senders in a process of their own: three server
   processes on one PostgreSQL ledger (the senders spread over them, as a load balancer would)
   against one server process on SQLite. Like bench_webhooks' "bookpay alone" figure, each
   server answers retrievals from intents captured from the emulator beforehand, so the figure
   is bookpay's own cost. Target: three on PostgreSQL at least 1.3 times one on SQLite.

The export is also timed with the base revision's code (``BENCH_BASE``, default ``git
merge-base HEAD main``, from a ``git archive`` of it) on the same ledgers, alternating,
BENCH_LEDGER_EXPORT_RUNS (default 2) runs each, medians; the two CSV files must be the same bytes.

Scale: BENCH_LEDGER_ORDERS (default 1,000,000; SMALL is 1,000), BENCH_LEDGER_EVENTS (default
1,200 events). Parts: BENCH_LEDGER_PARTS, any of pages,export,ingest (default all three):
``BENCH_LEDGER_PARTS=export`` fills only the large ledgers and times only the export.
PostgreSQL: BOOKPAY_TEST_DATABASE_URL, else 127.0.0.1:5432 database test; each run works in a
schema of its own, dropped afterwards.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from bench.common import REPO, base_revision, machine_ticks, source_tree

SMALL = 1000
LARGE = int(os.environ.get("BENCH_LEDGER_ORDERS", "1000000"))
EVENTS = int(os.environ.get("BENCH_LEDGER_EVENTS", "1200"))
PARTS = os.environ.get("BENCH_LEDGER_PARTS", "pages,export,ingest").split(",")
EXPORT_RUNS = int(os.environ.get("BENCH_LEDGER_EXPORT_RUNS", "2"))
RUNS = 15
SENDERS = 8
SECRET = "whsec_bench_ledger"
SHOP = "shop_bench"
RATIO_TARGET = 1.2
EXPORT_ROWS_TARGET = 100_000
EXPORT_RSS_TARGET_MB = 100
SCALE_OUT_TARGET = 1.3
ORDER_SQL = """INSERT INTO orders (id, payment_intent, item_id, amount, currency, email, shipping,
status, failure_reason, amount_refunded, charge, note, created, updated, fulfilled_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
SHIPPING = json.dumps(
    {
        "name": "Jenny Rosen",
        "address": {
            "line1": "1 Main St",
            "line2": None,
            "city": "San Francisco",
            "state": "CA",
            "postal_code": "94110",
            "country": "US",
        },
    }
)


def _postgres_url() -> str:
    import psycopg

    for url in (
        os.environ.get("BOOKPAY_TEST_DATABASE_URL"),
        "postgresql://127.0.0.1:5432/test",
        "postgresql://postgres@127.0.0.1:5432/test",
    ):
        if not url:
            continue
        try:
            with psycopg.connect(url, connect_timeout=3):
                return url
        except psycopg.Error:
            continue
    raise RuntimeError("bench_ledger needs PostgreSQL (BOOKPAY_TEST_DATABASE_URL or :5432)")


@contextmanager
def _schema(url: str, name: str):
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        conn.execute(f"CREATE SCHEMA {name}")
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


START = 1_767_225_600  # 2026-01-01T00:00:00Z
EVERY = 31  # seconds between orders: a million span a year


def _row(n: int) -> tuple:
    """Order ``n``, created ``EVERY`` seconds after order ``n - 1``: written in the order of
    their creation, as a shop writes them (a checkout records its order when it starts)."""
    seconds = START + n * EVERY
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{n % 1000:03d}Z"
    status = ("paid", "pending", "refunded", "processing")[n % 4]
    return (
        f"ord_{n:016x}",
        f"pi_bench{n:012d}",
        str(1 + n % 3),
        2300,
        "usd",
        f"reader{n}@example.com",
        SHIPPING,
        status,
        None,
        0,
        f"ch_bench{n:012d}",
        None,
        stamp,
        stamp,
        stamp if status == "paid" else None,
    )


def _fill(settings, count: int) -> None:
    """``count`` orders, written in bulk (COPY on PostgreSQL)."""
    from bookpay.ledger import open_ledger

    with open_ledger(settings) as ledger:
        if ledger.kind == "postgresql":
            with ledger.backend.connect() as conn, conn.cursor() as cursor:
                columns = "id, payment_intent, item_id, amount, currency, email, shipping, "
                columns += "status, failure_reason, amount_refunded, charge, note, created, "
                columns += "updated, fulfilled_at"
                with cursor.copy(f"COPY orders ({columns}) FROM STDIN") as copy:
                    for n in range(count):
                        copy.write_row(_row(n))
                conn.execute("ANALYZE orders")
            return
        for start in range(0, count, 50_000):
            with ledger.transaction() as tx:
                tx.many(ORDER_SQL, [_row(n) for n in range(start, min(count, start + 50_000))])
        with ledger.transaction() as tx:
            tx.execute("ANALYZE")


def _cli_seconds(env: dict[str, str], args: list[str]) -> float:
    from typer.testing import CliRunner

    from bookpay.cli import app

    started = time.perf_counter()
    result = CliRunner().invoke(app, args, env=env)
    seconds = time.perf_counter() - started
    if result.exit_code != 0:
        raise RuntimeError(f"bookpay {' '.join(args)} exited {result.exit_code}: {result.output}")
    return seconds


def _pages(envs: dict[str, dict[str, str]], show: dict[str, str]) -> dict[str, float]:
    """Median seconds of `orders list` and `orders show`, for each ledger, run alternately."""
    samples: dict[str, list[float]] = {}
    for _ in range(RUNS):
        for name, env in envs.items():
            samples.setdefault(f"list {name}", []).append(_cli_seconds(env, ["orders", "list"]))
            samples.setdefault(f"show {name}", []).append(
                _cli_seconds(env, ["orders", "show", show[name]])
            )
    return {name: statistics.median(times) for name, times in samples.items()}


# The export's own peak memory: VmHWM of its address space, written when it exits. (A child's
# ru_maxrss would count the benchmark's own memory, inherited between fork and exec.)
EXPORT = """
import atexit, sys
where = sys.argv[1]
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            open(where, "w").write(line.split()[1])
atexit.register(peak)
from bookpay.cli import main
sys.argv = ["bookpay", "orders", "export", "--output", sys.argv[2]]
main()
"""


def _export(env: dict[str, str], target: Path, root: Path = REPO) -> tuple[float, float]:
    """(rows per second, peak RSS in MB) of `bookpay orders export` in a process of its own,
    with the code of the source tree ``root`` (its working directory, so first on the path)."""
    peak = target.with_suffix(".peak")
    command = [sys.executable, "-c", EXPORT, str(peak), str(target)]
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=root, env={**os.environ, **env}, stderr=subprocess.PIPE, check=False
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:  # e.g. a base revision older than the ledger's schema
        said = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise RuntimeError(f"orders export from {root} exited {done.returncode}: {said}")
    return LARGE / seconds, int(peak.read_text()) / 1024  # VmHWM is in kB


def _exports(env: dict[str, str], folder: Path, roots: dict[str, Path]) -> dict[str, dict]:
    """Medians of EXPORT_RUNS exports with each source tree, alternating which goes first;
    the files they write must be the same bytes."""
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in roots}
    for number in range(EXPORT_RUNS):
        order = list(roots) if number % 2 == 0 else list(reversed(roots))
        for name in order:
            runs[name].append(_export(env, folder / f"{name}.csv", roots[name]))
    first, *others = (folder / f"{name}.csv" for name in roots)
    if any(not _same_export(first, other) for other in others):
        raise RuntimeError(f"the exports in {folder} differ")
    return {
        name: {
            "rows_per_second": round(statistics.median(rate for rate, _ in found)),
            "peak_rss_mb": round(statistics.median(rss for _, rss in found), 1),
        }
        for name, found in runs.items()
    }


def _same_export(one: Path, other: Path) -> bool:
    """The same bytes; or, where one revision's export has columns the other's has not (a
    column added since), the same rows in the columns they share."""
    if one.read_bytes() == other.read_bytes():
        return True
    with one.open(newline="") as a, other.open(newline="") as b:
        rows_a, rows_b = csv.reader(a), csv.reader(b)
        head_a, head_b = next(rows_a), next(rows_b)
        shared = [name for name in head_a if name in head_b]
        if shared == head_a and shared == head_b:
            return False  # the same columns, other bytes
        pick_a = [head_a.index(name) for name in shared]
        pick_b = [head_b.index(name) for name in shared]
        for row_a, row_b in itertools.zip_longest(rows_a, rows_b):
            if row_a is None or row_b is None:
                return False
            if [row_a[i] for i in pick_a] != [row_b[i] for i in pick_b]:
                return False
    return True


# Ingestion ------------------------------------------------------------------------------------

SERVER = """
import copy, json, sys
from pathlib import Path
from bookpay.catalog import Catalog
from bookpay.config import Settings
from bookpay.fulfilment import Fulfiller
from bookpay.ledger import open_ledger
from bookpay.server import create_app
from bookpay.web import runner
from bookpay.webhooks import WebhookReceiver

class Captured:
    def __init__(self, intents):
        self.intents = {i["id"]: i for i in intents}
    def retrieve_intent(self, intent_id, *, expand=("latest_charge",)):
        return copy.deepcopy(self.intents[intent_id])

data_dir, url, intents_path, secret, shop = sys.argv[1:6]
settings = Settings(data_dir=Path(data_dir), database_url=url or None,
                    webhook_secrets=(secret,), shop_id=shop)
gateway = Captured(json.loads(Path(intents_path).read_text()))
ledger = open_ledger(settings)
fulfiller = Fulfiller(ledger, gateway, Catalog.default(), settings)
receiver = WebhookReceiver(settings, ledger, fulfiller)
running = runner.start(
    lambda own: create_app(settings, gateway=gateway, ledger=ledger, fulfiller=fulfiller,
                           receiver=receiver, public_url=own),
    "127.0.0.1", 0, background=True)
print(running.url, flush=True)
sys.stdin.read()
running.stop(); fulfiller.close(); ledger.close()
"""

SENDER = """
import http.client, json, sys, threading, time
from urllib.parse import urlsplit
from bookpay.webhooks import sign
urls, secret, path, senders = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
bodies = open(path, "rb").read().splitlines()
failed, lock = [], threading.Lock()
def send(worker):
    conns = {}
    for n in range(worker, len(bodies), senders):
        url = urlsplit(urls[n % len(urls)])
        conn = conns.get(url.netloc) or http.client.HTTPConnection(url.hostname, url.port)
        conns[url.netloc] = conn
        conn.request("POST", "/webhook", bodies[n], {"Content-Type": "application/json",
                     "Stripe-Signature": sign(bodies[n], secret)})
        answer = conn.getresponse(); answer.read()
        if answer.status != 200:
            with lock: failed.append(answer.status)
started = time.perf_counter()
threads = [threading.Thread(target=send, args=(w,)) for w in range(senders)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"seconds": time.perf_counter() - started, "failed": len(failed)}))
"""

EMULATOR = """
import sys
from bookpay.emulator import EmulatorOptions, start_emulator
running = start_emulator("127.0.0.1", 0, EmulatorOptions())
print(running.url, flush=True)
sys.stdin.read()
running.stop()
"""


def _paid_intents(folder: Path) -> list[dict]:
    from bookpay.catalog import Catalog
    from bookpay.config import Settings
    from bookpay.payments import Gateway

    emulator = subprocess.Popen(
        [sys.executable, "-c", EMULATOR], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        url = emulator.stdout.readline().strip()
        gateway = Gateway(Settings(data_dir=folder / "setup", emulator_url=url, shop_id=SHOP))
        books = list(Catalog.default())

        def paid(n: int) -> dict:
            intent = gateway.create_intent(books[n % len(books)])
            gateway.confirm_intent(intent["id"], payment_method="pm_card_visa")
            return gateway.retrieve_intent(intent["id"])

        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(paid, range(EVENTS)))
    finally:
        emulator.stdin.close()
        emulator.wait(10)


def _ticks(pid: int) -> int:
    """CPU time (user + system, clock ticks) a process has used so far; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def _postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().startswith("postgres"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _ingest(folder: Path, intents_path: Path, url: str | None, processes: int) -> dict:
    """Events per second, and where the CPU went (a profile of what bounds the figure)."""
    from bookpay.config import Settings
    from bookpay.ledger import open_ledger

    servers = []
    try:
        for n in range(processes):
            data_dir = folder / f"server-{url is not None}-{n}"
            args = [str(data_dir), url or "", str(intents_path), SECRET, SHOP]
            server = subprocess.Popen(
                [sys.executable, "-c", SERVER, *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            servers.append(server)
        urls = [server.stdout.readline().strip() for server in servers]
        intents = json.loads(intents_path.read_text())
        events = folder / "events.jsonl"
        events.write_bytes(
            b"\n".join(_event(intent, n, url is not None) for n, intent in enumerate(intents))
        )
        command = [sys.executable, "-c", SENDER, json.dumps(urls), SECRET, str(events)]
        servers_pids = [s.pid for s in servers]
        postgres_before = {pid: _ticks(pid) for pid in _postgres_pids()}
        before = {"bookpay": sum(map(_ticks, servers_pids)), "postgresql": 0}
        machine = machine_ticks()
        done = subprocess.run([*command, str(SENDERS)], capture_output=True, timeout=600)
        # Backends the pools opened during the run count in full.
        after = {
            "bookpay": sum(map(_ticks, servers_pids)),
            "postgresql": sum(
                _ticks(pid) - postgres_before.get(pid, 0) for pid in _postgres_pids()
            ),
        }
        busy, idle = (now - then for now, then in zip(machine_ticks(), machine, strict=True))
        if done.returncode != 0:
            raise RuntimeError(f"senders failed: {done.stderr.decode()[-500:]}")
        report = json.loads(done.stdout)
        settings = Settings(data_dir=folder / f"server-{url is not None}-0", database_url=url)
        with open_ledger(settings) as ledger:
            fulfilled = ledger.fulfilment_count()
        if report["failed"] or fulfilled != len(intents):
            raise RuntimeError(f"ingestion: {report['failed']} failed, {fulfilled} fulfilled")
        hz, count = os.sysconf("SC_CLK_TCK"), len(intents)
        return {
            "events_per_second": round(count / report["seconds"], 1),
            # CPU milliseconds per event: the servers' Python, PostgreSQL's backends (any
            # other user of that server included), and the share of the machine left idle.
            "cpu_ms_per_event": {
                name: round((after[name] - before[name]) / hz * 1000 / count, 2) for name in after
            },
            "machine_idle_share": round(idle / max(1, busy + idle), 3),
        }
    finally:
        for server in servers:
            server.stdin.close()
        for server in servers:
            server.wait(30)


def _event(intent: dict, n: int, postgres: bool) -> bytes:
    from bookpay.testing._webhooks import stripe_event

    kind = "pg" if postgres else "sq"
    event_id = f"evt_bench_{kind}{n:06d}"
    return json.dumps(stripe_event("payment_intent.succeeded", intent, event_id)).encode()


def main() -> dict:
    url = _postgres_url()
    figures: dict = {"small": SMALL, "large": LARGE, "events": EVENTS, "parts": PARTS}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        if "pages" in PARTS or "export" in PARTS:
            _ledgers(url, folder, figures)
        if "ingest" in PARTS:
            figures["ingest"] = _ingestion(url, folder)
    _report(figures)
    return figures


def _ledgers(url: str, folder: Path, figures: dict) -> None:
    """The pages and the export parts, on each backend: ledgers of SMALL (pages only) and LARGE
    orders."""
    from bookpay.config import Settings

    sizes = (("small", SMALL), ("large", LARGE)) if "pages" in PARTS else (("large", LARGE),)
    figures["base"] = base_revision()
    with (
        _schema(url, f"bench_small_{os.getpid()}") as pg_small,
        _schema(url, f"bench_large_{os.getpid()}") as pg_large,
        source_tree(figures["base"]) as base_root,
    ):
        ledgers = {"sqlite": {"small": None, "large": None}}
        ledgers["postgresql"] = {"small": pg_small, "large": pg_large}
        for backend, urls in ledgers.items():
            envs, show = {}, {}
            for size, count in sizes:
                data_dir = folder / f"{backend}-{size}"
                started = time.perf_counter()
                _fill(Settings(data_dir=data_dir, database_url=urls[size]), count)
                print(f"  filled {backend} {size}: {count} orders in "
                      f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
                envs[size] = {"BOOKPAY_DATA_DIR": str(data_dir)}
                if urls[size]:
                    envs[size]["BOOKPAY_DATABASE_URL"] = urls[size]
                show[size] = f"pi_bench{count // 2:012d}"
            found = figures[backend] = {}
            if "pages" in PARTS:
                medians = _pages(envs, show)
                found["list_ms"] = {s: round(medians[f"list {s}"] * 1000, 2) for s in envs}
                found["show_ms"] = {s: round(medians[f"show {s}"] * 1000, 2) for s in envs}
                found["list_ratio"] = round(medians["list large"] / medians["list small"], 3)
                found["show_ratio"] = round(medians["show large"] / medians["show small"], 3)
            if "export" in PARTS:
                roots = {"this": REPO, "base": base_root}
                (folder / backend).mkdir()
                found["export"] = _exports(envs["large"], folder / backend, roots)


def _ingestion(url: str, folder: Path) -> dict:
    intents = _paid_intents(folder)
    intents_path = folder / "intents.json"
    intents_path.write_text(json.dumps(intents))
    sqlite = _ingest(folder, intents_path, None, 1)
    with _schema(url, f"bench_ingest_{os.getpid()}") as pg:
        postgres = _ingest(folder, intents_path, pg, 3)
    return {
        "sqlite_1_process": sqlite,
        "postgresql_3_processes": postgres,
        "ratio": round(postgres["events_per_second"] / sqlite["events_per_second"], 3),
    }


def _report(figures: dict) -> None:
    print(f"bench_ledger: {figures['small']:,} against {figures['large']:,} orders")
    if "pages" in PARTS:
        print(f"{'backend':<12}{'list small/large ms':>22}{'ratio':>7}"
              f"{'show small/large ms':>22}{'ratio':>7}")  # fmt: skip
        for backend in ("sqlite", "postgresql"):
            f = figures[backend]
            print(
                f"{backend:<12}{f['list_ms']['small']:>10.1f} / {f['list_ms']['large']:<9.1f}"
                f"{f['list_ratio']:>7.2f}{f['show_ms']['small']:>10.1f} / "
                f"{f['show_ms']['large']:<9.1f}{f['show_ratio']:>7.2f}"
            )
        print(f"  target: ratios <= {RATIO_TARGET}")
    if "export" in PARTS:
        print(f"orders export --format csv of {figures['large']:,} orders, this code and the base "
              f"({figures['base'][:12]}), medians of {EXPORT_RUNS} alternating runs")  # fmt: skip
        print(f"{'backend':<12}{'this rows/s':>13}{'peak MB':>9}{'base rows/s':>13}{'peak MB':>9}"
              f"{'this/base':>11}")  # fmt: skip
        for backend in ("sqlite", "postgresql"):
            this, base = figures[backend]["export"]["this"], figures[backend]["export"]["base"]
            print(
                f"{backend:<12}{this['rows_per_second']:>13,}{this['peak_rss_mb']:>9.1f}"
                f"{base['rows_per_second']:>13,}{base['peak_rss_mb']:>9.1f}"
                f"{this['rows_per_second'] / base['rows_per_second']:>10.2f}x"
            )
        print(f"  targets: >= {EXPORT_ROWS_TARGET:,} rows/s and <= {EXPORT_RSS_TARGET_MB} MB")
    if "ingest" in PARTS:
        ingest = figures["ingest"]
        print(
            f"  ingestion of {figures['events']} events, {SENDERS} senders: "
            f"{ingest['ratio']:.2f}x (target >= {SCALE_OUT_TARGET})"
        )
        for name, label in (
            ("sqlite_1_process", "1 on SQLite"),
            ("postgresql_3_processes", "3 on PG"),
        ):
            run = ingest[name]
            cpu = run["cpu_ms_per_event"]
            print(
                f"    {label:<12}{run['events_per_second']:>8.0f} events/s; CPU ms per event: "
                f"bookpay {cpu['bookpay']:.2f}, PostgreSQL {cpu['postgresql']:.2f}; "
                f"machine idle {run['machine_idle_share']:.0%}"
            )


if __name__ == "__main__":
    main()
