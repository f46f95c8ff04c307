"""Webhook ingestion and replay throughput, over HTTP into the real checkout server.

Setup: the emulator runs in its own process (Stripe is a remote service; in this process it would
share the GIL with the server), and EVENTS PaymentIntents (plus a few for warming up) are created
and confirmed in it through the gateway (pm_card_visa). Each is turned into a signed
``payment_intent.succeeded`` event. A checkout server (create_app on waitress, in a process of
its own, over a fresh SQLite ledger each run) receives them: each event is verified, recorded,
its PaymentIntent retrieved (the receiver never trusts the event's copy), the order fulfilled
and the event marked processed; the receipt worker writes the .eml files meanwhile. The senders
run in a process of their own too (the replay engine, keep-alive connections), as Stripe does.

Figures:

1. ingestion, end to end (one stripe-python retrieval from the emulator per event), with 1 and 8
   senders, this code against the code before the change, side by side in the same run: the
   base revision (``BENCH_BASE``, default ``git merge-base HEAD main``) is checked out with
   ``git archive`` into a temporary folder and its server runs from there, against the same
   emulator, the same events and the same senders. BENCH_ROUNDS rounds (default 3) alternate
   the two; each figure is the median. For each: events/s, the p50 and p95 latency of a
   delivery, the wait for the ledger's write lock per event (SQLite's ``BEGIN IMMEDIATE`` and
   single-statement writes, timed by a probe in the server process whatever code it runs, plus
   the wait for the writer's turn in the process where the code has one), and the server's CPU
   per event. Two more rows of this code: its receipts sent by `bookpay worker` in a process of
   its own ("worker"), and, with 8 senders, two server processes listening on one port
   (SO_REUSEPORT) over one SQLite ledger ("2procs"), their CPU and lock waits added up;
2. ingestion, bookpay alone: 8 senders, a gateway that returns the succeeded intents captured
   from the emulator, so the figure is bookpay's own cost (HTTP, signature, ledger, fulfilment);
3. replay: `bookpay webhook replay` as a subprocess (the real CLI, start-up included) sending
   REPLAYED events (the captured ones again, each under a fresh id so each is handled in full)
   into an end-to-end server, with --concurrency 8.

Targets on a 2-core machine: end to end with 8 senders at least 2 times the base's rate, and its
p95 at most 3 times the p95 with 1 sender; bookpay alone >= 200 events/s; REPLAYED events
replayed within 10 s. Scale: BENCH_WEBHOOK_EVENTS (default 1600), BENCH_ROUNDS (default 3).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import (
    REPO,
    base_revision,
    emulator_process,
    free_port,
    machine_ticks,
    percentile,
    source_tree,
)

EVENTS = int(os.environ.get("BENCH_WEBHOOK_EVENTS", "1600"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
WARMUP = 100  # events sent first to each new server, not measured
SENDER_COUNTS = (1, 8)
REPLAYED = 1000
SECRET = "whsec_bench_secret"
SHOP = "shop_bench"
SPEEDUP_TARGET = 2.0  # end to end, 8 senders, this code / base
P95_GROWTH_TARGET = 3.0  # p95 with 8 senders / p95 with 1, this code
INGEST_TARGET = 200.0  # events per second, bookpay alone
REPLAY_TARGET = 10.0  # seconds for REPLAYED events
WORKER_POLL = 0.05  # seconds: `bookpay worker --poll`, so draining waits little on the worker

# The checkout server in a process of its own, run from a source tree given as the working
# directory, so the same script serves this code and the base's. It answers "stats" on stdin
# with what it has done so far, "drain" with the same once every receipt is sent; at the end of
# stdin it counts the receipts it wrote.
SERVER = """
import copy, json, sqlite3, sys, threading, time
from pathlib import Path

# The probe: how long writes wait for SQLite's write lock, in any version of the ledger. BEGIN
# and single-statement writes outside a transaction (their whole time: an upper bound).
waited, waited_lock = [0.0], threading.Lock()

class Timed(sqlite3.Connection):
    def execute(self, sql, *args):
        head = sql.lstrip()[:6].upper()
        if head[:5] != "BEGIN" and (self.in_transaction or head not in ("INSERT", "UPDATE")):
            return super().execute(sql, *args)
        started = time.perf_counter()
        try:
            return super().execute(sql, *args)
        finally:
            with waited_lock:
                waited[0] += time.perf_counter() - started

connect = sqlite3.connect
sqlite3.connect = lambda *args, **kwargs: connect(*args, factory=Timed, **kwargs)

import bookpay
from bookpay.catalog import Catalog
from bookpay.config import Settings
from bookpay.orders import Fulfiller, Ledger
from bookpay.payments import Gateway
from bookpay.server import create_app
from bookpay.web import runner
from bookpay.webhooks import WebhookReceiver

class Captured:
    def __init__(self, intents):
        self.intents = {intent["id"]: intent for intent in intents}
    def retrieve_intent(self, intent_id, *, expand=("latest_charge",)):
        return copy.deepcopy(self.intents[intent_id])

root, data_dir, emulator_url, secret, shop, captured = sys.argv[1:7]
flags = sys.argv[7:]
external = "external" in flags  # receipts sent by `bookpay worker` beside it
# "port=N": listen on port N with SO_REUSEPORT, beside other processes on the same port.
shared = next((int(flag[5:]) for flag in flags if flag.startswith("port=")), None)
if not Path(bookpay.__file__).resolve().is_relative_to(Path(root).resolve()):
    sys.exit(f"bookpay came from {bookpay.__file__}, not from {root}")
settings = Settings(data_dir=Path(data_dir), emulator_url=emulator_url,
                    webhook_secrets=(secret,), shop_id=shop)
gateway = Captured(json.loads(Path(captured).read_text())) if captured else Gateway(settings)
ledger = Ledger.open(settings.data_dir)
fulfiller = (Fulfiller(ledger, gateway, Catalog.default(), settings, workers=False) if external
             else Fulfiller(ledger, gateway, Catalog.default(), settings))

def drain(timeout):
    if not external:
        return fulfiller.drain(timeout)
    deadline = time.monotonic() + timeout  # the worker process sends them: wait, do not help
    while ledger.next_receipt_due() is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True

receiver = WebhookReceiver(settings, ledger, fulfiller)
options = {}
if shared is not None:
    import socket
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", shared))
    sock.listen(1024)
    options["sock"] = sock
running = runner.start(
    lambda own: create_app(settings, gateway=gateway, ledger=ledger, fulfiller=fulfiller,
                           receiver=receiver, public_url=own),
    background=True, **options)
print(json.dumps({"url": running.url + "/webhook"}), flush=True)
for line in sys.stdin:
    started = time.perf_counter()
    if line.strip() == "drain" and not drain(120):
        sys.exit("the receipts were not all sent within 120 s")
    drained = time.perf_counter() - started
    # The writer's turn in this process, where the ledger has one (see SqliteBackend).
    turn = getattr(ledger.backend, "turn_wait", 0.0)
    print(json.dumps({"fulfilled": ledger.fulfilment_count(), "lock_wait": waited[0] + turn,
                      "cpu": time.process_time(), "drain_seconds": drained}), flush=True)
drain(60)
receipts = len(list((settings.data_dir / "outbox").glob("*.eml")))
running.stop(); fulfiller.close(); ledger.close()
print(json.dumps({"receipts": receipts}), flush=True)
"""

# The senders, in a process of their own: in the server's process they would take the GIL from
# the very server being measured.
SENDER = """
import json, sys, time
from bookpay.replay import Delivery, Replayer
url, secret, path, senders = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
bodies = open(path, "rb").read().splitlines()
deliveries = [
    Delivery(n, json.loads(body)["id"], "payment_intent.succeeded", body, "bench")
    for n, body in enumerate(bodies)
]
started = time.perf_counter()
results = Replayer(url, secret, concurrency=senders).run(deliveries)
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "failed": sum(not r.ok for r in results),
                  "latencies": [r.latency_ms for r in results], "cpu": time.process_time()}))
"""


class Server:
    """The checkout server of one source tree, on a free port over a ledger of its own."""

    def __init__(
        self,
        root: Path,
        data_dir: Path,
        emulator_url: str,
        captured: Path | None,
        external_worker: bool = False,
        port: int | None = None,
    ):
        env = {**os.environ, "PYTHONPATH": str(root)}
        env = {k: v for k, v in env.items() if not k.startswith(("STRIPE_", "BOOKPAY_"))}
        args = [str(root), str(data_dir), emulator_url, SECRET, SHOP, str(captured or "")]
        args += ["external"] if external_worker else []
        args += [f"port={port}"] if port is not None else []
        self.worker = None
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER, *args],
            cwd=root,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        first = self.process.stdout.readline()
        if not first:
            self.process.wait(10)
            raise RuntimeError(f"the server from {root} did not start")
        self.url = json.loads(first)["url"]
        if external_worker:  # `bookpay worker` on the same ledger, once its schema is there
            env |= {"BOOKPAY_DATA_DIR": str(data_dir), "BOOKPAY_EMULATOR_URL": emulator_url}
            command = [sys.executable, "-m", "bookpay", "worker", "--poll", str(WORKER_POLL)]
            self.worker = subprocess.Popen(
                command, cwd=root, env=env, stderr=subprocess.PIPE, text=True
            )
            if "looking every" not in self.worker.stderr.readline():
                raise RuntimeError("bookpay worker did not start")

    def worker_cpu(self) -> float:
        """CPU seconds the worker process has used so far (0 without one)."""
        return _cpu_seconds(self.worker.pid) if self.worker else 0.0

    def stats(self, *, drain: bool = False) -> dict:
        """What it has done so far; with ``drain``, once every receipt is sent."""
        self.process.stdin.write("drain\n" if drain else "stats\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> int:
        """Stop it once its receipts are sent; how many .eml files it wrote."""
        self.process.stdin.close()
        last = self.process.stdout.readline()
        self.process.wait(60)
        if self.worker:
            self.worker.terminate()
            self.worker.communicate(timeout=20)
        return json.loads(last)["receipts"] if last else -1


def _send(url: str, bodies: list[bytes], senders: int, folder: Path) -> dict:
    path = folder / "events.jsonl"
    path.write_bytes(b"\n".join(json.dumps(json.loads(body)).encode() for body in bodies))
    command = [sys.executable, "-c", SENDER, url, SECRET, str(path), str(senders)]
    done = subprocess.run(command, capture_output=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ingestion senders failed: {done.stderr.decode()[-500:]}")
    report = json.loads(done.stdout)
    if report["failed"]:
        raise RuntimeError(f"ingestion: {report['failed']} deliveries failed")
    return report


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ingest(
    root: Path,
    folder: Path,
    emulator: int,
    emulator_url: str,
    warmup: list[bytes],
    bodies: list[bytes],
    senders: int,
    captured: Path | None = None,
    external_worker: bool = False,
    processes: int = 1,
) -> dict:
    """One measured run: a new server from ``root``, warmed up, then ``bodies`` at ``senders``.

    With ``processes`` above 1, that many servers listen on one port (SO_REUSEPORT: the kernel
    spreads the senders' connections over them) over one SQLite ledger, each with its own
    receipt worker; their CPU and lock waits are added up.

    Two rates: events answered per second, and events per second until every receipt is sent
    too (sustained: a server that answers faster than its receipt worker keeps up with only
    defers work). The CPU and lock figures cover the whole, receipts included. Besides the
    server's own figures, where the machine's CPU went meanwhile: the emulator's and the
    senders' CPU per event, and the share of the machine left idle (when it is near 0, the
    figure is bounded by CPU, whoever uses it).
    """
    data_dir = Path(tempfile.mkdtemp(dir=folder, prefix="server-"))
    port = free_port() if processes > 1 else None
    servers: list[Server] = []
    try:
        for _ in range(processes):  # one by one: the first creates the ledger
            servers.append(Server(root, data_dir, emulator_url, captured, external_worker, port))
        server = servers[0]
        _send(server.url, warmup, 1, data_dir)
        before = [each.stats(drain=True) for each in servers]
        worker_before = server.worker_cpu()
        emulator_before, machine_before = _cpu_seconds(emulator), machine_ticks()
        report = _send(server.url, bodies, senders, data_dir)
        after = [each.stats(drain=True) for each in servers]
        worker_after = server.worker_cpu()
        emulator_after, machine_after = _cpu_seconds(emulator), machine_ticks()
    finally:
        closed = [each.close() for each in servers]  # every one: each counts the one outbox
        receipts = closed[0] if closed else -1
    busy, idle = (now - then for now, then in zip(machine_after, machine_before, strict=True))
    fulfilled = after[0]["fulfilled"] - before[0]["fulfilled"]
    if fulfilled != len(bodies) or receipts != len(warmup) + len(bodies):
        raise RuntimeError(f"ingestion: {fulfilled} fulfilled, {receipts} receipts")
    count, latencies = len(bodies), report["latencies"]
    # The drains ran one after the other: the first waited for every receipt.
    drained = sum(each["drain_seconds"] for each in after)

    def spent(key: str) -> float:  # all the servers', per event, in ms
        pairs = zip(after, before, strict=True)
        return sum(now[key] - then[key] for now, then in pairs) * 1000 / count

    return {
        "events_per_second": count / report["seconds"],
        "sustained_per_second": count / (report["seconds"] + drained),
        "p50_ms": percentile(latencies, 0.50),
        "p95_ms": percentile(latencies, 0.95),
        "lock_wait_ms_per_event": spent("lock_wait"),
        "cpu_ms_per_event": spent("cpu"),
        "worker_cpu_ms_per_event": (worker_after - worker_before) * 1000 / count,
        "emulator_cpu_ms_per_event": (emulator_after - emulator_before) * 1000 / count,
        "senders_cpu_ms_per_event": report["cpu"] * 1000 / count,
        "machine_idle_percent": 100 * idle / max(1, busy + idle),
    }


def _replay(url: str, bodies: list[bytes], folder: Path) -> float:
    """Seconds for `bookpay webhook replay` to deliver REPLAYED events."""
    capture = folder / "captured.jsonl"
    lines = [json.dumps(json.loads(body)).encode() for body in bodies]
    capture.write_bytes(b"\n".join((lines * (REPLAYED // len(lines) + 1))[:REPLAYED]))
    command = [
        sys.executable, "-m", "bookpay", "webhook", "replay", str(capture), "--to", url,
        "--secret", SECRET, "--new-event-id", "--concurrency", "8", "--json",
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, timeout=120, check=False)
    seconds = time.perf_counter() - started
    replayed = json.loads(done.stdout) if done.stdout else []
    if done.returncode != 0 or len(replayed) != REPLAYED:
        raise RuntimeError(f"replay exited {done.returncode}: {done.stderr.decode()[-500:]}")
    return seconds


def _event(intent: dict, number: int) -> bytes:
    from bookpay.testing._webhooks import stripe_event

    event = stripe_event("payment_intent.succeeded", intent, f"evt_bench{number:06d}")
    return json.dumps(event, indent=2).encode()


def _median(runs: list[dict]) -> dict:
    return {key: round(statistics.median(run[key] for run in runs), 2) for key in runs[0]}


def main() -> dict:
    from bookpay.catalog import Catalog
    from bookpay.config import Settings
    from bookpay.payments import Gateway

    base = base_revision()
    with (
        emulator_process() as (emulator, emulator_url),
        tempfile.TemporaryDirectory() as name,
        source_tree(base) as base_root,
    ):
        folder = Path(name)
        settings = Settings(data_dir=folder / "setup", emulator_url=emulator_url, shop_id=SHOP)
        gateway = Gateway(settings)
        books = list(Catalog.default())

        def paid(number: int) -> dict:
            intent = gateway.create_intent(books[number % len(books)])
            gateway.confirm_intent(intent["id"], payment_method="pm_card_visa")
            return gateway.retrieve_intent(intent["id"])

        with ThreadPoolExecutor(8) as pool:
            intents = list(pool.map(paid, range(WARMUP + EVENTS)))
        bodies = [_event(intent, n) for n, intent in enumerate(intents)]
        warmup, bodies = bodies[:WARMUP], bodies[WARMUP:]
        captured = folder / "intents.json"
        captured.write_text(json.dumps(intents))

        # "worker": this code, its receipts sent by `bookpay worker` in a process of its own
        # (`bookpay serve --no-worker` beside it). "2procs": this code in two server processes
        # on one port and one ledger (8 senders only: one sender is one connection, served by
        # one of them).
        roots = {"this": REPO, "base": base_root, "worker": REPO, "2procs": REPO}
        runs: dict[tuple[str, int], list[dict]] = {}
        for number in range(ROUNDS):
            for senders in SENDER_COUNTS:
                # Rotate which goes first, so a drift in the machine's load favours none.
                kinds = ("base", "this", "worker") + (("2procs",) if senders > 1 else ())
                order = kinds[number % len(kinds) :] + kinds[: number % len(kinds)]
                for which in order:
                    run = _ingest(
                        roots[which], folder, emulator.pid, emulator_url, warmup, bodies,
                        senders, external_worker=which == "worker",
                        processes=2 if which == "2procs" else 1,
                    )  # fmt: skip
                    runs.setdefault((which, senders), []).append(run)
        medians = {key: _median(found) for key, found in runs.items()}
        alone = _ingest(REPO, folder, emulator.pid, emulator_url, warmup, bodies, 8, captured)

        replay_dir = Path(tempfile.mkdtemp(dir=folder, prefix="server-"))
        server = Server(REPO, replay_dir, emulator_url, None)
        try:
            replay_seconds = _replay(server.url, warmup + bodies, folder)
        finally:
            server.close()

    this8, base8, this1 = medians["this", 8], medians["base", 8], medians["this", 1]
    speedup = this8["events_per_second"] / base8["events_per_second"]
    sustained = this8["sustained_per_second"] / base8["sustained_per_second"]
    growth = this8["p95_ms"] / this1["p95_ms"]
    worker8, worker1 = medians["worker", 8], medians["worker", 1]
    worker_speedup = worker8["events_per_second"] / base8["events_per_second"]
    worker_sustained = worker8["sustained_per_second"] / base8["sustained_per_second"]
    worker_growth = worker8["p95_ms"] / worker1["p95_ms"]
    two8 = medians["2procs", 8]
    figures = {
        "base": base,
        "events": EVENTS,
        "rounds": ROUNDS,
        "end_to_end": {f"{which}_{senders}": medians[which, senders] for which, senders in runs},
        "speedup_8_senders": round(speedup, 2),
        "speedup_target_met": speedup >= SPEEDUP_TARGET,
        "sustained_speedup_8_senders": round(sustained, 2),
        "p95_growth_1_to_8": round(growth, 2),
        "p95_growth_target_met": growth <= P95_GROWTH_TARGET,
        "worker_speedup_8_senders": round(worker_speedup, 2),
        "worker_speedup_target_met": worker_speedup >= SPEEDUP_TARGET,
        "worker_sustained_speedup_8_senders": round(worker_sustained, 2),
        "worker_p95_growth_1_to_8": round(worker_growth, 2),
        "two_processes_speedup_8_senders": round(
            two8["events_per_second"] / base8["events_per_second"], 2
        ),
        "two_processes_over_one_8_senders": round(
            two8["events_per_second"] / this8["events_per_second"], 2
        ),
        "ingest_events_per_second": round(alone["events_per_second"], 1),
        "ingest_target_met": alone["events_per_second"] >= INGEST_TARGET,
        "replay_events": REPLAYED,
        "replay_seconds": round(replay_seconds, 3),
        "replay_target_met": replay_seconds <= REPLAY_TARGET,
    }
    _report(figures, medians)
    return figures


def _report(figures: dict, medians: dict) -> None:
    print("bench_webhooks: signed payment_intent.succeeded events over HTTP into the server")
    print(
        f"  end to end (a retrieval from the emulator per event), {EVENTS} events, medians of "
        f"{ROUNDS} alternating rounds; base {figures['base'][:12]}"
    )
    print(
        "    code    senders  answered/s  sustained/s  p50 ms  p95 ms  lock wait ms/event"
        "  CPU ms/event: server worker emulator senders  machine idle"
    )
    for (which, senders), run in sorted(medians.items(), key=lambda item: (item[0][1], item[0])):
        print(
            f"    {which:<6}  {senders:>7}  {run['events_per_second']:>10.0f}"
            f"  {run['sustained_per_second']:>11.0f}  {run['p50_ms']:>6.1f}"
            f"  {run['p95_ms']:>6.1f}  {run['lock_wait_ms_per_event']:>18.2f}"
            f"  {run['cpu_ms_per_event']:>20.2f} {run['worker_cpu_ms_per_event']:>6.2f}"
            f" {run['emulator_cpu_ms_per_event']:>8.2f}"
            f" {run['senders_cpu_ms_per_event']:>7.2f}  {run['machine_idle_percent']:>11.0f}%"
        )
    print(
        f"  8 senders, this / base: {figures['speedup_8_senders']:.2f}x answered "
        f"(target >= {SPEEDUP_TARGET:.0f}x), {figures['sustained_speedup_8_senders']:.2f}x "
        f"sustained (until every receipt is sent); p95 8 senders / 1 sender: "
        f"{figures['p95_growth_1_to_8']:.2f} (target <= {P95_GROWTH_TARGET:.0f})"
    )
    print(
        f"  8 senders, this with `bookpay worker` beside it / base: "
        f"{figures['worker_speedup_8_senders']:.2f}x answered, "
        f"{figures['worker_sustained_speedup_8_senders']:.2f}x sustained; p95 8 / 1 sender: "
        f"{figures['worker_p95_growth_1_to_8']:.2f}"
    )
    print(
        f"  8 senders, this in two server processes on one port and one ledger / base: "
        f"{figures['two_processes_speedup_8_senders']:.2f}x answered; / one process: "
        f"{figures['two_processes_over_one_8_senders']:.2f}x"
    )
    print(
        f"  ingestion (bookpay alone, captured intents, 8 senders): "
        f"{figures['ingest_events_per_second']:.0f} events/s (target >= {INGEST_TARGET:.0f})"
    )
    print(
        f"  replay: `bookpay webhook replay` of {REPLAYED} events, --concurrency 8: "
        f"{figures['replay_seconds']:.2f}s ({REPLAYED / figures['replay_seconds']:.0f} events/s; "
        f"target <= {REPLAY_TARGET:.0f}s)"
    )


if __name__ == "__main__":
    main()
