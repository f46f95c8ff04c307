"""Checkout server throughput, and how it holds up when the Stripe API is slow.

Run: ``python -m bench.bench_server`` (or ``python -m bench``, which runs every bench module).

1. Requests per second for ``GET /``, ``GET /checkout?item=1`` and
   ``POST /create-payment-intent`` (emulator mode), with 16 concurrent keep-alive clients, beside
   a hello-world Bottle route on the same waitress server, in the same run: the gap between them
   is what bookpay's own work costs.
2. 32 checkouts at once (``POST /create-payment-intent``, distinct attempts) while the emulator
   adds 200 ms to every API call: they must all finish within one second, which they can only do
   if no request waits for another's Stripe call.

Everything runs on loopback, in bounded loops.
"""

from __future__ import annotations

import http.client
import json
import logging
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

CLIENTS = 16
REQUESTS_PER_CLIENT = {"hello": 200, "index": 100, "checkout": 100, "create": 25}
CONCURRENT_CHECKOUTS = 32
SLOW_API_LATENCY = 0.2
WALL_LIMIT = 1.0


def _start_shop(emulator_url: str, data_dir: Path):
    from bookpay.config import Settings
    from bookpay.server import create_app
    from bookpay.web import runner

    settings = Settings(data_dir=data_dir, emulator_url=emulator_url)
    apps = []

    def make_app(own_url: str):
        app = create_app(settings, public_url=own_url)
        app.route("/hello")(lambda: "Hello, world!")  # the baseline: Bottle and waitress alone
        apps.append(app)
        return app

    server = runner.start(make_app, "127.0.0.1", 0, background=True)
    return server, apps[0]


class _Client:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        headers = {"Connection": "keep-alive"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=data, headers=headers)
        response = self.conn.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.conn.close()


def _call(client: _Client, kind: str) -> int:
    if kind == "hello":
        return client.request("GET", "/hello")[0]
    if kind == "index":
        return client.request("GET", "/")[0]
    if kind == "checkout":
        return client.request("GET", "/checkout?item=1")[0]
    body = {"item": "1", "attemptId": str(uuid.uuid4())}
    return client.request("POST", "/create-payment-intent", body)[0]


def _run_clients(url: str, kind: str, clients: int, per_client: int) -> tuple[int, float, int]:
    """(requests, seconds, failures) for ``clients`` threads making ``per_client`` calls each."""
    start = threading.Barrier(clients + 1)
    failures = [0] * clients

    def work(index: int) -> None:
        client = _Client(url)
        try:
            _call(client, kind)  # connect and warm up before the clock starts
            start.wait()
            for _ in range(per_client):
                if _call(client, kind) != 200:
                    failures[index] += 1
        finally:
            client.close()

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    return clients * per_client, elapsed, sum(failures)


def _concurrent_checkouts(url: str, count: int) -> tuple[float, list[int]]:
    """Wall time for ``count`` simultaneous checkouts, each on its own fresh connection."""
    start = threading.Barrier(count + 1)
    statuses: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        client = _Client(url)
        client.conn.connect()
        try:
            start.wait()
            status = _call(client, "create")
        finally:
            client.close()
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join(timeout=30)
    return time.perf_counter() - began, statuses


def main() -> dict:
    from bookpay.emulator import EmulatorOptions, start_emulator

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    figures: dict = {}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bookpay-bench-") as tmp:
        emulator = start_emulator("127.0.0.1", 0, EmulatorOptions())
        server, app = _start_shop(emulator.url, Path(tmp) / "fast")
        try:
            for kind, label in (
                ("hello", "GET /hello (hello-world Bottle route)"),
                ("index", "GET /"),
                ("checkout", "GET /checkout?item=1"),
                ("create", "POST /create-payment-intent"),
            ):
                count, seconds, failed = _run_clients(
                    server.url, kind, CLIENTS, REQUESTS_PER_CLIENT[kind]
                )
                rps = count / seconds
                figures[f"{kind}_rps"] = round(rps, 1)
                figures[f"{kind}_failures"] = failed
                rows.append((label, count, seconds, rps, failed))
        finally:
            server.stop()
            app.close()
            emulator.stop()

        slow = start_emulator("127.0.0.1", 0, EmulatorOptions(latency=SLOW_API_LATENCY))
        server, app = _start_shop(slow.url, Path(tmp) / "slow")
        try:
            _concurrent_checkouts(server.url, 2)  # warm up: imports, first connections
            wall, statuses = _concurrent_checkouts(server.url, CONCURRENT_CHECKOUTS)
        finally:
            server.stop()
            app.close()
            slow.stop()

    ok = len(statuses) == CONCURRENT_CHECKOUTS and all(s == 200 for s in statuses)
    figures.update(
        concurrent_checkouts=CONCURRENT_CHECKOUTS,
        api_latency_s=SLOW_API_LATENCY,
        concurrent_checkout_wall_s=round(wall, 3),
        concurrent_checkout_all_ok=ok,
        concurrent_checkout_within_limit=ok and wall <= WALL_LIMIT,
    )

    print(f"Checkout server: {CLIENTS} concurrent keep-alive clients, emulator mode, loopback")
    print(f"{'endpoint':<42} {'requests':>8} {'seconds':>8} {'req/s':>9} {'failed':>7}")
    for label, count, seconds, rps, failed in rows:
        print(f"{label:<42} {count:>8} {seconds:>8.2f} {rps:>9.1f} {failed:>7}")
    verdict = "OK" if figures["concurrent_checkout_within_limit"] else "TOO SLOW"
    print(
        f"{CONCURRENT_CHECKOUTS} concurrent checkouts with {SLOW_API_LATENCY * 1000:.0f} ms "
        f"API latency: {wall:.3f} s wall (limit {WALL_LIMIT:.1f} s, "
        f"{sum(s == 200 for s in statuses)}/{CONCURRENT_CHECKOUTS} answered 200) {verdict}"
    )
    return figures


if __name__ == "__main__":
    main()
