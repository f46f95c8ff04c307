"""What several benchmarks share: the emulator and the shop in processes of their own, a
keep-alive HTTP client, percentiles, and the code as it was before a change (``source_tree``),
for figures measured side by side with it in the same run.

The emulator runs in its own process because Stripe is a remote service (in the measuring
process it would share the GIL with what is measured) and so it can be stopped with SIGSTOP, as a
hung Stripe would be. The shop runs as `bookpay serve` does, as a user runs it: its capacity,
its logging and its limits are the product's defaults unless a benchmark passes options.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent

# The emulator in a child process: prints its URL, runs until its stdin closes. Waitress's
# "Task queue depth" warnings (one per queued request) are not what is measured.
EMULATOR = """
import logging, sys
from bookpay.emulator import EmulatorOptions, start_emulator
logging.getLogger("waitress.queue").setLevel(logging.ERROR)
running = start_emulator("127.0.0.1", 0, EmulatorOptions({options}))
print(running.url, flush=True)
sys.stdin.read()
running.stop()
"""


@contextmanager
def emulator_process(options: str = "") -> Iterator[tuple[subprocess.Popen, str]]:
    """(the process, its URL); always resumed (SIGCONT) and stopped at the end. ``options``:
    EmulatorOptions keyword arguments as Python source (``"faults='500=5%', seed=7"``)."""
    process = subprocess.Popen(
        [sys.executable, "-c", EMULATOR.format(options=options)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = process.stdout.readline().strip().rstrip("/")
        if not url.startswith("http"):
            raise RuntimeError("the emulator did not start")
        yield process, url
    finally:
        os.kill(process.pid, signal.SIGCONT)
        process.stdin.close()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class ShopProcess:
    process: subprocess.Popen
    url: str
    stderr: list[str] = field(default_factory=list)


@contextmanager
def shop_process(
    emulator_url: str, data_dir: Path, *options: str, root: Path | None = None
) -> Iterator[ShopProcess]:
    """`bookpay serve --port 0 OPTIONS` against the emulator at ``emulator_url``; with a
    ``root`` (``source_tree``), that tree's bookpay instead of this one.

    Its stderr (warnings, waitress's log) is collected in ``.stderr``, a line at a time.
    """
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "BOOKPAY_"))},
        "BOOKPAY_EMULATOR_URL": emulator_url,
        "BOOKPAY_DATA_DIR": str(data_dir),
    }
    if root is not None:
        env["PYTHONPATH"] = str(root)
    process = subprocess.Popen(
        [sys.executable, "-m", "bookpay", "serve", "--port", "0", *options],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    shop = None
    try:
        first = process.stdout.readline()
        if not first.startswith("bookpay is serving the shop at "):
            raise RuntimeError(f"bookpay serve did not start: {first}{process.stderr.read()}")
        shop = ShopProcess(process, first.rsplit(" ", 1)[1].strip())
        for pipe, sink in ((process.stdout, []), (process.stderr, shop.stderr)):
            threading.Thread(target=lambda p=pipe, s=sink: s.extend(p), daemon=True).start()
        yield shop
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Client:
    """One keep-alive HTTP/1.1 connection; reconnects after an error."""

    def __init__(self, url: str, timeout: float = 60) -> None:
        parts = urlsplit(url)
        self._address = (parts.hostname, parts.port)
        self._timeout = timeout
        self.conn = http.client.HTTPConnection(*self._address, timeout=timeout)

    def request(self, method: str, path: str, body: dict | None = None):
        """(status, headers, body, seconds); status 0 for a connection error."""
        headers = {"Connection": "keep-alive"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        try:
            self.conn.request(method, path, body=data, headers=headers)
            response = self.conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            self.conn = http.client.HTTPConnection(*self._address, timeout=self._timeout)
            return 0, {}, b"", time.perf_counter() - started
        return response.status, dict(response.getheaders()), payload, time.perf_counter() - started

    def close(self) -> None:
        self.conn.close()


def machine_ticks() -> tuple[int, int]:
    """(busy, idle) clock ticks of the whole machine so far."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, idle


def percentile(values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``values`` fall (nearest rank); 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def base_revision() -> str:
    """The commit a change is measured against: ``BENCH_BASE`` (any revision git understands),
    else where this branch left main (``git merge-base HEAD main``)."""
    wanted = os.environ.get("BENCH_BASE") or _git("merge-base", "HEAD", "main").strip()
    return _git("rev-parse", "--verify", f"{wanted}^{{commit}}").strip()


@contextmanager
def source_tree(revision: str) -> Iterator[Path]:
    """The project's files at ``revision`` (``git archive``) in a temporary folder.

    Run code from there with the folder as the working directory (``python -c``) or first on
    ``PYTHONPATH``: its ``bookpay`` then comes before the one installed in the virtual
    environment, and the dependencies stay the environment's.
    """
    with tempfile.TemporaryDirectory(prefix="bookpay-base-") as name:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", revision],
            capture_output=True,
            check=True,
        )
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(name, filter="data")
        yield Path(name)


def _git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


# Servers in processes of their own, called through stripe-python --------------------------------
#
# The emulator benchmarks call every server (the emulator, a trivial floor, localstripe) with the
# same stripe-python client, in processes of their own, so the client's work is not counted
# against the server's.


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """A server in its own process, listening on ``port`` (started by ``argv``); ``stop()``."""

    def __init__(
        self, argv: list[str], port: int, env: dict | None = None, start_timeout: float = 15
    ) -> None:
        import socket

        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{argv[:4]} did not start listening on {port}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def stripe_client(url: str):
    """A StripeClient for a server at ``url``, with no retries (a failure is a failure)."""
    import stripe

    return stripe.StripeClient("sk_test_bench", base_addresses={"api": url}, max_network_retries=0)


def throughput(
    url: str, operation, clients: int, requests: int, seconds: float = 0, pid: int | None = None
) -> float | tuple[float, float, float]:
    """Requests per second for ``requests`` calls of ``operation(client) -> requests made``
    spread over ``clients`` threads (each with its own client, warmed outside the timing); with
    ``seconds``, each thread also stops once that much time has passed. Given the server's
    ``pid``: (requests per second, the server's CPU milliseconds per request, this process's:
    the clients')."""
    per_client = max(1, requests // clients)
    barrier = threading.Barrier(clients + 1)
    counts = [0] * clients
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            client = stripe_client(url)
            operation(client)  # warm the connection pool outside the timed part
        except BaseException as exc:  # said after the barrier, never a hang
            errors.append(exc)
        barrier.wait()
        if errors:
            return
        done = 0
        try:
            while done < per_client and (not deadline or time.perf_counter() < deadline):
                done += operation(client)
        except BaseException as exc:
            errors.append(exc)
        counts[index] = done

    deadline = 0.0
    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    if seconds:
        deadline = started + seconds
    barrier.wait()
    started = time.perf_counter()
    cpu = cpu_seconds(pid) if pid else None
    mine = time.process_time()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"a benchmark request failed against {url}: {errors[0]!r}")
    done = sum(counts)
    if cpu is None:
        return done / elapsed
    per_request = 1000 / max(1, done)
    server_ms = (cpu_seconds(pid) - cpu) * per_request
    return done / elapsed, server_ms, (time.process_time() - mine) * per_request


def throughput_processes(
    url: str, operation, clients: int, requests: int, pid: int
) -> tuple[float, float, float]:
    """``throughput``'s figures with each client a process of its own (forked, so
    ``operation`` may be any callable): clients that are threads of one Python process take
    turns on its interpreter lock, and with several of them the figure can be the clients'
    own limit rather than the server's. (requests per second, the server's CPU milliseconds
    per request, the clients' together.)"""
    import multiprocessing

    fork = multiprocessing.get_context("fork")
    per_client = max(1, requests // clients)
    barrier = fork.Barrier(clients + 1, timeout=120)
    results = fork.Queue()

    def work() -> None:
        try:
            client = stripe_client(url)
            operation(client)  # warm the connection outside the timed part
        except BaseException as exc:
            barrier.abort()
            results.put((0, 0.0, repr(exc)))
            return
        barrier.wait()
        mine, done = time.process_time(), 0
        try:
            while done < per_client:
                done += operation(client)
        except BaseException as exc:
            results.put((done, time.process_time() - mine, repr(exc)))
            return
        results.put((done, time.process_time() - mine, None))

    children = [fork.Process(target=work, daemon=True) for _ in range(clients)]
    for child in children:
        child.start()
    with suppress(threading.BrokenBarrierError):  # a client failed: its error is in the queue
        barrier.wait()
    started = time.perf_counter()
    cpu = cpu_seconds(pid)
    answers = [results.get(timeout=600) for _ in children]
    elapsed = time.perf_counter() - started
    server_cpu = cpu_seconds(pid) - cpu
    for child in children:
        child.join(timeout=10)
    errors = [error for _, _, error in answers if error]
    if errors:
        raise RuntimeError(f"a benchmark request failed against {url}: {errors[0]}")
    done = sum(count for count, _, _ in answers)
    per_request = 1000 / max(1, done)
    client_cpu = sum(seconds for _, seconds, _ in answers)
    return done / elapsed, server_cpu * per_request, client_cpu * per_request


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
