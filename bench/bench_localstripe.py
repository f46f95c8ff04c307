"""The emulator against localstripe, the peer stateful fake Stripe, called the same way.

localstripe (PyPI, pinned below) is a benchmark peer only, never a dependency of bookpay: this
benchmark installs it once into a virtual environment of its own (in the user's cache folder,
``~/.cache/bookpay-bench/``, or ``BENCH_LOCALSTRIPE_VENV``) and runs it as its own process, as
the emulator runs as its own (`bookpay emulator`, keeping its state in a file, its default).
Both are called with the same stripe-python client and raw requests (how bookpay's gateway calls
Stripe), 1 client, 4 clients as threads of the benchmark's process and 4 as processes of their
own (threads take turns on one interpreter lock, so with 4 of them the figure can be the clients'
limit, not the server's), in alternating rounds, each figure the median of its rounds, with the
CPU each server used per request; each round starts from an empty store on both (the emulator's
`/_emulator/reset`, localstripe's `DELETE /_config/data`) holding the 20 intents the retrieves
and lists read:

- create: `POST /v1/payment_intents` (amount, currency, metadata);
- create+confirm: the same with `payment_method=pm_card_visa`, then `POST .../confirm`; the
  emulator's confirm also carries the `return_url` Stripe requires of a server-side confirm with
  automatic payment methods (localstripe refuses that parameter, and takes no others);
- retrieve: `GET /v1/payment_intents/{id}`;
- list: `GET /v1/payment_intents?limit=10`.

Then growth: the same calls (1 client) with 0, 10,000 and 100,000 intents already stored
(`BENCH_GROWTH`), stored beforehand by each server's own code (the emulator's create request
run in-process into its file; localstripe's PaymentIntent class, its store pickled once), each
sample bounded to `BENCH_GROWTH_SECONDS` (10) so a server that slows down still finishes.

localstripe writes its whole store to `/tmp/localstripe.pickle` after every write, shared by
every localstripe on the machine: here it writes the same pickle into this run's own folder.

Targets (same-run ratios, emulator/localstripe): at least 1.0 on retrieve and list at 1 and 4
clients, at least 5 on create+confirm.
"""

from __future__ import annotations

import http.client
import io
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import stripe

from bench.common import Service, free_port, stripe_client, throughput, throughput_processes

LOCALSTRIPE = "localstripe==1.15.10"
# Outside the repository (whose tests read every file under bench/), in the user's cache folder.
VENV = Path(
    os.environ.get("BENCH_LOCALSTRIPE_VENV")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "bookpay-bench"
    / LOCALSTRIPE.replace("==", "-")
)
REQUESTS = int(os.environ.get("BENCH_EMULATOR_REQUESTS") or 200)
ROUNDS = int(os.environ.get("BENCH_ROUNDS") or 5)
GROWTH = [int(n) for n in (os.environ.get("BENCH_GROWTH") or "0,10000,100000").split(",")]
GROWTH_ROUNDS = int(os.environ.get("BENCH_GROWTH_ROUNDS") or 3)
GROWTH_SECONDS = float(os.environ.get("BENCH_GROWTH_SECONDS") or 10)
POOL = 20  # intents each round holds for the retrieves and the lists

METADATA = {"item_id": "1", "integration": "bookpay"}
CREATE = {"amount": 2300, "currency": "usd", "metadata": METADATA}
RETURN_URL = "http://127.0.0.1:4242/success"
TARGETS = {"retrieve": 1.0, "list": 1.0, "create+confirm": 5.0}

# localstripe in its own process: its store pickled into this run's file (as it does after every
# write into /tmp/localstripe.pickle), SEED intents made by its own class first, then its server.
LOCALSTRIPE_SERVER = """
import pickle, sys
from localstripe import resources, server

state, port, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
seeding = True


def dump_to_disk(self):
    if not seeding:
        with open(state, "wb") as f:
            pickle.dump(self, f, protocol=pickle.HIGHEST_PROTOCOL)


resources.Store.dump_to_disk = dump_to_disk
resources.Store.try_load_from_disk = lambda self: None
for _ in range(seed):
    resources.PaymentIntent(amount=2300, currency="usd", metadata={METADATA!r})
seeding = False
resources.store.dump_to_disk()
sys.argv = ["localstripe", "--port", port, "--from-scratch"]
server.start()
""".replace("{METADATA!r}", repr(METADATA))


def localstripe_python() -> Path:
    """localstripe's own virtual environment, made (and localstripe installed) the first time."""
    python = VENV / "bin" / "python"
    marker = VENV / f".installed-{LOCALSTRIPE}"
    if not marker.exists():
        print(f"installing {LOCALSTRIPE} into {VENV} (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             LOCALSTRIPE],
            check=True,
        )  # fmt: skip
        marker.touch()
    return python


def seed_emulator(db_path: Path, count: int) -> None:
    """``count`` intents made by the emulator's own create request, run in-process into its
    file (a thousand to a transaction) before it serves."""
    from bookpay.emulator import EmulatorOptions, create_app

    body = urlencode(
        {"amount": "2300", "currency": "usd", **{f"metadata[{k}]": v for k, v in METADATA.items()}}
    ).encode()
    app = create_app(EmulatorOptions(db_path=db_path))
    statuses: list[str] = []
    try:
        for start in range(0, count, 1000):
            with app.store.transaction():
                for _ in range(min(1000, count - start)):
                    environ = {
                        "REQUEST_METHOD": "POST",
                        "PATH_INFO": "/v1/payment_intents",
                        "HTTP_AUTHORIZATION": "Bearer sk_test_bench",
                        "CONTENT_TYPE": "application/x-www-form-urlencoded",
                        "CONTENT_LENGTH": str(len(body)),
                        "wsgi.input": io.BytesIO(body),
                        "HTTP_HOST": "127.0.0.1",
                        "wsgi.url_scheme": "http",
                    }
                    app(environ, lambda status, headers: statuses.append(status))
            if any(not s.startswith("200") for s in statuses):
                raise RuntimeError(f"seeding the emulator failed: {statuses[-1]}")
            statuses.clear()
    finally:
        app.close()


@contextmanager
def servers(folder: Path, seed: int = 0) -> Iterator[dict[str, Service]]:
    """The emulator (`bookpay emulator`, state in a file) and localstripe, each holding
    ``seed`` intents, in processes of their own."""
    data = Path(tempfile.mkdtemp(prefix=f"emulator-{seed}-", dir=folder))
    if seed:
        from bookpay.emulator import EMULATOR_DB

        seed_emulator(data / EMULATOR_DB, seed)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "BOOKPAY_"))},
        "BOOKPAY_DATA_DIR": str(data),
    }
    port = free_port()
    emulator = Service(
        [sys.executable, "-m", "bookpay", "emulator", "--port", str(port)], port, env=env
    )
    try:
        port = free_port()
        state = data / "localstripe.pickle"
        argv = [str(localstripe_python()), "-c", LOCALSTRIPE_SERVER, str(state), str(port)]
        peer = Service([*argv, str(seed)], port, start_timeout=60 + seed / 1000)
        try:
            yield {"emulator": emulator, "localstripe": peer}
        finally:
            peer.stop()
    finally:
        emulator.stop()


def reset(name: str, url: str) -> list[str]:
    """An empty store, then POOL intents; their ids."""
    method, path = (
        ("POST", "/_emulator/reset") if name == "emulator" else ("DELETE", "/_config/data")
    )
    conn = http.client.HTTPConnection(*urlsplit(url).netloc.split(":"), timeout=60)
    try:
        conn.request(method, path, headers={"Authorization": "Bearer sk_test_bench"})
        answer = conn.getresponse()
        answer.read()
    finally:
        conn.close()
    if answer.status != 200:
        raise RuntimeError(f"{name}: {method} {path} answered {answer.status}")
    client = stripe_client(url)
    return [create(client) for _ in range(POOL)]


def create(client: stripe.StripeClient, **extra: str) -> str:
    return client.raw_request("post", "/v1/payment_intents", **CREATE, **extra).data["id"]


def operations(name: str, pool: list[str]) -> dict[str, Callable[[stripe.StripeClient], int]]:
    """The calls, as both servers get them (the confirm's return_url aside: see above)."""
    confirm_extra = {"return_url": RETURN_URL} if name == "emulator" else {}
    turn = iter(range(1 << 62))

    def create_once(client: stripe.StripeClient) -> int:
        create(client)
        return 1

    def create_and_confirm(client: stripe.StripeClient) -> int:
        intent = create(client, payment_method="pm_card_visa")
        answer = client.raw_request(
            "post", f"/v1/payment_intents/{intent}/confirm", **confirm_extra
        )
        if answer.data.get("status") != "succeeded":
            raise RuntimeError(f"{name}: the confirm did not succeed: {answer.body[:200]!r}")
        return 2

    def retrieve(client: stripe.StripeClient) -> int:
        client.raw_request("get", f"/v1/payment_intents/{pool[next(turn) % POOL]}")
        return 1

    def list_ten(client: stripe.StripeClient) -> int:
        page = client.raw_request("get", "/v1/payment_intents", limit=10).data
        if len(page["data"]) != 10:
            raise RuntimeError(f"{name}: a list of ten showed {len(page['data'])}")
        return 1

    return {
        "create": create_once,
        "create+confirm": create_and_confirm,
        "retrieve": retrieve,
        "list": list_ten,
    }


# How the clients run: one; four threads of this process (taking turns on its interpreter lock,
# as four callers in one Python service would); four processes of their own (four services).
CLIENTS = (("1 client", 1, False), ("4 clients", 4, False), ("4 client processes", 4, True))


def side_by_side(folder: Path) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    with servers(folder) as running:
        for label, clients, processes in CLIENTS:
            samples: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
            for _ in range(ROUNDS):
                for name, service in running.items():
                    pool = reset(name, service.url)
                    for op, call in operations(name, pool).items():
                        pid = service.process.pid
                        if processes:
                            sample = throughput_processes(service.url, call, clients, REQUESTS, pid)
                        else:
                            sample = throughput(service.url, call, clients, REQUESTS, pid=pid)
                        samples.setdefault((op, name), []).append(sample)
            for op in operations("", []):
                row = {}
                for name in running:
                    rates, server_ms, client_ms = zip(*samples[op, name], strict=True)
                    row[name] = statistics.median(rates)
                    row[f"{name} cpu ms"] = statistics.median(server_ms)
                    row[f"{name} client cpu ms"] = statistics.median(client_ms)
                row["ratio"] = row["emulator"] / row["localstripe"]
                results[f"{op}, {label}"] = row
    return results


def growth(folder: Path) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for stored in GROWTH:
        with servers(folder, stored) as running:
            pools = {
                name: [create(stripe_client(s.url)) for _ in range(POOL)]
                for name, s in running.items()
            }
            samples: dict[tuple[str, str], list[float]] = {}
            for _ in range(GROWTH_ROUNDS):
                for name, service in running.items():
                    for op, call in operations(name, pools[name]).items():
                        if op == "create+confirm":
                            continue
                        rate = throughput(service.url, call, 1, REQUESTS, GROWTH_SECONDS)
                        samples.setdefault((op, name), []).append(rate)
            for op in ("create", "retrieve", "list"):
                row = {name: statistics.median(samples[op, name]) for name in running}
                row["ratio"] = row["emulator"] / row["localstripe"]
                results[f"{op}, {stored:,} stored"] = row
    return results


def show(title: str, results: dict[str, dict[str, float]]) -> None:
    cpu = any("emulator cpu ms" in row for row in results.values())
    extra = f"{'CPU ms/request: server':>26}{'client':>15}" if cpu else ""
    print(f"{title:<30}{'emulator':>10}{'localstripe':>13}{'ratio':>7}{extra}  target")
    for label, row in results.items():
        target = TARGETS.get(label.split(",")[0]) if "client" in label else None
        wanted = f"    >= {target:g}" if target else ""
        missed = " (missed)" if target and row["ratio"] < target else ""
        cells = ""
        if cpu:
            cells = (
                f"{row['emulator cpu ms']:>18.2f} /{row['localstripe cpu ms']:>5.2f}"
                f"{row['emulator client cpu ms']:>9.2f} /{row['localstripe client cpu ms']:>5.2f}"
            )
        print(
            f"{label:<30}{row['emulator']:>10.0f}{row['localstripe']:>13.0f}"
            f"{row['ratio']:>7.2f}{cells}{wanted}{missed}"
        )


def main() -> dict:
    with tempfile.TemporaryDirectory(prefix="bookpay-peer-") as name:
        folder = Path(name)
        main_results = side_by_side(folder)
        show("requests per second", main_results)
        print(f"medians of {ROUNDS} alternating rounds of {REQUESTS} requests\n")
        grown = growth(folder)
        show("1 client, requests per second", grown)
        print(
            f"medians of {GROWTH_ROUNDS} alternating rounds of at most {REQUESTS} requests or"
            f" {GROWTH_SECONDS:g} s"
        )
    rounded = {k: {n: round(v, 3) for n, v in row.items()} for k, row in main_results.items()}
    return {
        "side_by_side": rounded,
        "growth": {k: {n: round(v, 3) for n, v in row.items()} for k, row in grown.items()},
    }


if __name__ == "__main__":
    main()
