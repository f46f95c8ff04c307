"""The emulator's own HTTP server (bookpay/emulator/httpd.py) against cheroot, a well-kept one.

Run: ``python -m bench httpd``.

bookpay prefers a well-kept library to code of its own, so its own server has to earn its place.
cheroot (CherryPy's threaded WSGI server) is installed by this benchmark into a folder of its own
in the user's cache (it is never a dependency of bookpay), and the same emulator app (one
``create_app()``, in memory) is served by each server in a process of its own. Both answer the
same calls from the same stripe-python clients (``raw_request``, threads in this process): a
retrieve of a PaymentIntent and a list of ten, at 1 and 4 clients, BENCH_ROUNDS (5) alternating
rounds of BENCH_EMULATOR_REQUESTS (200) requests; each figure is the median, with the server's
CPU per request. (waitress, the shop's server, was measured against httpd.py when httpd.py was
written: see the README's emulator section.)

Reading the figures: a ratio above 1 means the emulator's own server answers more requests per
second than cheroot does, with the same app behind it.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench.bench_localstripe import POOL, create, operations
from bench.common import Service, free_port, stripe_client, throughput

CHEROOT = "cheroot==11.1.2"
# Outside the repository (whose tests read every file under bench/), in the user's cache folder.
TARGET = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "bookpay-bench"
    / CHEROOT.replace("==", "-")
)
REQUESTS = int(os.environ.get("BENCH_EMULATOR_REQUESTS") or 200)
ROUNDS = int(os.environ.get("BENCH_ROUNDS") or 5)
THREADS = 32  # as EmulatorOptions.threads: requests either server handles at once

# One emulator app, in memory, behind the server named in argv[1], on the port in argv[2].
SERVER = """
import sys, threading
from bookpay.emulator import EmulatorOptions, create_app

kind, port, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if kind == "cheroot":
    sys.path.insert(0, sys.argv[4])
    from cheroot import wsgi

    wsgi.Server(("127.0.0.1", port), create_app(EmulatorOptions()), numthreads=threads).start()
else:
    from bookpay.emulator.server import RunningEmulator

    RunningEmulator("127.0.0.1", port, EmulatorOptions(threads=threads))
    threading.Event().wait()
"""


def cheroot_path() -> Path:
    """A folder holding cheroot and its dependencies, installed there the first time."""
    marker = TARGET / f".installed-{CHEROOT}"
    if not marker.exists():
        print(f"installing {CHEROOT} into {TARGET} (once)", flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--upgrade", "--target", str(TARGET), CHEROOT],
            check=True,
        )  # fmt: skip
        marker.touch()
    return TARGET


def pool_of(url: str) -> list[str]:
    client = stripe_client(url)
    return [create(client) for _ in range(POOL)]


def main() -> dict:
    path = cheroot_path()
    services = {}
    for kind in ("httpd", "cheroot"):
        port = free_port()
        argv = [sys.executable, "-c", SERVER, kind, str(port), str(THREADS), str(path)]
        services[kind] = Service(argv, port)
    results: dict[str, dict[str, float]] = {}
    try:
        pools = {kind: pool_of(service.url) for kind, service in services.items()}
        samples: dict[tuple[str, int, str], list[tuple[float, float, float]]] = {}
        for _ in range(ROUNDS):
            for clients in (1, 4):
                for kind, service in services.items():
                    calls = operations("emulator", pools[kind])
                    for op in ("retrieve", "list"):
                        sample = throughput(
                            service.url, calls[op], clients, REQUESTS, pid=service.process.pid
                        )
                        samples.setdefault((op, clients, kind), []).append(sample)
    finally:
        for service in services.values():
            service.stop()
    print(f"{'requests per second':<24}{'httpd.py':>10}{'cheroot':>10}{'ratio':>8}"
          "   server CPU ms/request (httpd.py / cheroot)")  # fmt: skip
    for op in ("retrieve", "list"):
        for clients in (1, 4):
            row: dict[str, float] = {}
            for kind in services:
                rates, server_ms, _ = zip(*samples[op, clients, kind], strict=True)
                row[kind] = statistics.median(rates)
                row[f"{kind} cpu ms"] = statistics.median(server_ms)
            row["ratio"] = row["httpd"] / row["cheroot"]
            label = f"{op}, {clients} client{'s' if clients > 1 else ''}"
            results[label] = row
            print(
                f"{label:<24}{row['httpd']:>10.0f}{row['cheroot']:>10.0f}{row['ratio']:>8.2f}"
                f"   {row['httpd cpu ms']:.2f} / {row['cheroot cpu ms']:.2f}"
            )
    print(f"medians of {ROUNDS} alternating rounds of {REQUESTS} requests; "
          f"the same emulator app behind each, {THREADS} threads each")  # fmt: skip
    return results
