"""Real `bookpay serve` and `bookpay emulator` processes for the tests that need several.

Each runs as a user would start it, with its own environment (none of the developer's
STRIPE_*/BOOKPAY_* variables) and free ports; what it prints is collected so a test can wait for
a line. Everything started is stopped by ``stop_all``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition, timeout: float = 30.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None):
    """(status, text) of one request; never raises for an HTTP status."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with _opener.open(request, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def clean_environment(**values: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "BOOKPAY_"))}
    env.update({k: v for k, v in values.items() if v is not None})
    env["PYTHONUNBUFFERED"] = "1"
    return env


RUNNING: list[Process] = []


class Process:
    """A bookpay command in a process of its own; its output lines collected as they come."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.args = args
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bookpay", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        RUNNING.append(self)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def saw(self, pattern: str) -> re.Match | None:
        for line in list(self.lines):
            if found := re.search(pattern, line):
                return found
        return None

    def wait_for_line(self, pattern: str, timeout: float = 60.0) -> re.Match:
        def found():
            if self.proc.poll() is not None and self.read_all() and not self.saw(pattern):
                raise AssertionError(
                    f"bookpay {' '.join(self.args)} exited {self.proc.returncode}:\n"
                    + "\n".join(self.lines)
                )
            return self.saw(pattern)

        return wait_for(found, timeout, f"{pattern!r} from bookpay {self.args[0]}")

    def read_all(self, timeout: float = 30.0) -> bool:
        """Once the process has exited: whether all it printed is in ``lines``. The reader
        thread reads to the pipe's end on its own time, which a loaded machine puts after the
        exit: a line printed just before it was missing."""
        self._reader.join(timeout)
        return not self._reader.is_alive()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def terminate(self) -> None:
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.alive:
            self.proc.kill()
        self.proc.wait(30)

    def wait(self, timeout: float = 30.0) -> int:
        """The exit code, once the process has exited and all it printed is in ``lines``."""
        code = self.proc.wait(timeout)
        self.read_all(timeout)
        return code


class Emulator(Process):
    def __init__(self, data_dir: Path, port: int = 0, *, ephemeral: bool = True) -> None:
        args = ["emulator", "--port", str(port)] + (["--ephemeral"] if ephemeral else [])
        super().__init__(args, clean_environment(BOOKPAY_DATA_DIR=str(data_dir)))
        self.url = self.wait_for_line(r"listening on (http://\S+)").group(1)

    def endpoints(self) -> list[dict]:
        status, text = http(
            "GET",
            f"{self.url}/v1/webhook_endpoints?limit=100",
            headers={"Authorization": "Bearer sk_test_bookpay_emulator"},
        )
        assert status == 200, text
        return json.loads(text)["data"]


class Shop(Process):
    def __init__(self, data_dir: Path, *args: str, **env: str | None) -> None:
        values = {"BOOKPAY_DATA_DIR": str(data_dir), **env}
        super().__init__(["serve", "--port", "0", *args], clean_environment(**values))
        self.data_dir = data_dir
        self.url = self.wait_for_line(r"serving the shop at (http://\S+)").group(1)
        self.wait_for_line(r"Press Ctrl-C to stop")


def stop_all() -> None:
    for process in RUNNING:
        process.terminate()
    for process in RUNNING:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
    RUNNING.clear()


def succeeded_event(intent: dict, event_id: str | None = None) -> bytes:
    """A ``payment_intent.succeeded`` event's body carrying ``intent``, as Stripe sends one (the
    receiver asks Stripe for the PaymentIntent; this copy only names it)."""
    from bookpay.testing._webhooks import stripe_event

    return json.dumps(stripe_event("payment_intent.succeeded", intent, event_id)).encode()


# Counting this process's open file descriptors needs /proc (Linux): elsewhere the tests that
# count them to find a leak are skipped, saying why.
counts_open_fds = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"),
    reason="counts this process's open file descriptors in /proc/self/fd, which only Linux has",
)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def settled(count, bound: int, within: float = 5.0) -> int:
    """``count()`` once it is at most ``bound`` (the server's ends close a moment after ours),
    or as it is after ``within`` seconds."""
    until = time.monotonic() + within
    while (now := count()) > bound and time.monotonic() < until:
        time.sleep(0.05)
    return now
