"""`bookpay emulator` as a user runs it: a real process, a real port, Ctrl-C."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(args, env, umask=None):
    def prepare() -> None:
        # The test runner may ignore SIGHUP (nohup); the emulator must get a real hangup.
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        if umask is not None:
            os.umask(umask)

    process = subprocess.Popen(
        [sys.executable, "-m", "bookpay", "emulator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=prepare,
    )
    return process


def wait_healthy(url: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as answer:
                return json.loads(answer.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Console:
    """What an emulator process started by ``start`` writes on stderr, read by a thread as it
    comes, to its end."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line)

    def url(self, timeout: float = 60.0) -> str:
        """The address from its "listening on" line, once it says it (``--port 0``: a port that
        ``free_port`` found free may be another process's before the emulator binds it, and the
        emulator then exits). Fails with what it said if it exits first."""
        deadline = time.monotonic() + timeout
        while not (found := re.search(r"listening on (http://\S+)", "".join(self.lines))):
            if self.process.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"exited {self.process.returncode}: {self.text()}")
            assert time.monotonic() < deadline, f"no 'listening on' line: {self.text()}"
            time.sleep(0.05)
        return found.group(1)

    def text(self, timeout: float = 20.0) -> str:
        """All it said, once it has exited (or what it said so far)."""
        if self.process.poll() is not None:
            self._reader.join(timeout)
        return "".join(self.lines)


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "BOOKPAY_DATA_DIR": str(tmp_path / "data")}


def test_serves_persists_and_stops_on_ctrl_c(env, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start(["--port", str(port)], env)
    try:
        assert wait_healthy(url)["ok"] is True
        request = urllib.request.Request(
            f"{url}/v1/payment_intents",
            data=b"amount=2300&currency=usd",
            headers={"Authorization": "Bearer sk_test_cli"},
        )
        with urllib.request.urlopen(request) as answer:
            created = json.loads(answer.read())
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0
    assert out == ""
    assert f"Stripe test-mode emulator listening on {url}" in err
    assert f"export BOOKPAY_EMULATOR_URL={url}" in err
    assert "Traceback" not in err
    assert (tmp_path / "data" / "emulator.sqlite3").exists()

    process = start(["--port", str(port)], env)
    try:
        wait_healthy(url)
        request = urllib.request.Request(
            f"{url}/v1/payment_intents/{created['id']}",
            headers={"Authorization": "Bearer sk_test_cli"},
        )
        with urllib.request.urlopen(request) as answer:
            assert json.loads(answer.read())["amount"] == 2300
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=10)


def test_its_state_and_the_data_folder_it_creates_are_private_under_the_usual_umask(env, tmp_path):
    """The state holds shoppers' e-mail and postal addresses: the folder 0700 and every file
    0600 (the -wal and -shm that SQLite writes beside the database too), as `serve` keeps them,
    whatever the umask (022 makes files readable by everyone)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data = tmp_path / "data"
    process = start(["--port", str(port)], env, umask=0o022)
    try:
        wait_healthy(url)
        request = urllib.request.Request(  # a write: SQLite has its -wal and -shm open now
            f"{url}/v1/customers",
            data=b"email=jenny%40example.com",
            headers={"Authorization": "Bearer sk_test_cli"},
        )
        urllib.request.urlopen(request, timeout=10).close()
        modes = {p.name: p.stat().st_mode & 0o777 for p in data.iterdir()}
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=10)
    assert process.returncode == 0
    assert data.stat().st_mode & 0o777 == 0o700
    assert modes == {
        "emulator.sqlite3": 0o600,
        "emulator.sqlite3-wal": 0o600,
        "emulator.sqlite3-shm": 0o600,
        "emulator.sqlite3-lock": 0o600,  # which emulator holds it
    }


def test_port_in_use_is_one_line_and_exit_2(env):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        process = start(["--port", str(port), "--ephemeral"], env)
        _, err = process.communicate(timeout=20)
    assert process.returncode == 2
    assert err == (
        f"Error: Cannot start the emulator: 127.0.0.1:{port} is already in use. "
        "Choose another with --port.\n"
    )


@pytest.mark.parametrize("host", ["nosuch.invalid", "192.0.2.1"])
def test_a_host_it_cannot_listen_on_is_one_line_naming_the_cause_and_exit_2(env, host):
    process = start(["--host", host, "--port", "0", "--ephemeral"], env)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert err.startswith(f"Error: Cannot start the emulator on {host}:0: ")
    assert err.endswith(". Choose another with --host.\n")  # not --port: the host is wrong
    assert "errno" not in err.lower() and len(err.splitlines()) == 1


# The emulator's stop, made to wait 3 s as for a request under way: a latency-held call no
# longer keeps it waiting (it is dropped at once), so the wait is made here, in the process.
SLOW_STOP = """
import sys, time
from bookpay.emulator import httpd
stop = httpd.Server.stop
def slow_stop(self, timeout=2.0):
    print("stop waiting", file=sys.stderr, flush=True)
    time.sleep(3)
    stop(self, timeout)
httpd.Server.stop = slow_stop
sys.argv = ["bookpay", "emulator", *sys.argv[1:]]
from bookpay.__main__ import main
main()
"""


def test_a_second_sigterm_while_it_waits_for_a_request_under_way_still_stops_cleanly(env, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_STOP, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        wait_healthy(url)
        process.send_signal(signal.SIGTERM)  # stopping waits (3 s here)...
        said = []
        while not said or said[-1] != "stop waiting\n":
            said.append(process.stderr.readline())
            assert said[-1], "".join(said)
        process.send_signal(signal.SIGTERM)  # ...and this cuts that wait short
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    err = "".join(said) + err
    assert process.returncode == 0, err
    assert "Stopping.\n" in err
    assert "Traceback" not in err
    assert (tmp_path / "data" / "emulator.sqlite3").exists()
    assert not (tmp_path / "data" / "emulator.sqlite3-wal").exists()  # its store was closed


# A SIGTERM that a thread other than the main one takes (the kernel gives a process's signal to
# any of its threads; one that comes just as the main thread blocks is as lost): the line on
# stdin says when, once the emulator is serving.
THREAD_TAKES_SIGTERM = """
import signal, sys, threading
def take():
    sys.stdin.readline()
    signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
threading.Thread(target=take, daemon=True).start()
sys.argv = ["bookpay", "emulator", *sys.argv[1:]]
from bookpay.__main__ import main
main()
"""


def test_a_sigterm_another_thread_takes_still_stops_it(env):
    """Its main thread waited without end for the KeyboardInterrupt that a SIGTERM's handler
    raises there: a signal that woke no wait was never acted on, and `kill` left it serving (a
    loaded CI run timed out waiting 30 s for it to stop)."""
    process = subprocess.Popen(
        [sys.executable, "-c", THREAD_TAKES_SIGTERM, "--port", "0", "--ephemeral"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    console = Console(process)
    try:
        wait_healthy(console.url())
        process.stdin.write("now\n")
        process.stdin.flush()
        assert process.wait(timeout=10) == 0, console.text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert console.text().splitlines()[-1] == "Stopping."


def test_says_when_bookpay_already_points_at_it(env):
    port = free_port()
    env = {**env, "BOOKPAY_EMULATOR_URL": f"http://127.0.0.1:{port}"}
    process = start(["--port", str(port), "--ephemeral"], env)
    try:
        wait_healthy(f"http://127.0.0.1:{port}")
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=10)
    assert "bookpay commands use it as they are (BOOKPAY_EMULATOR_URL points here)." in err
    assert "State: in memory (--ephemeral)" in err


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_says_stopping_on_sigterm_ctrl_c_and_hangup(env, signum):
    process = start(["--port", "0", "--ephemeral"], env)
    console = Console(process)
    try:
        wait_healthy(console.url())
    finally:
        process.send_signal(signum)
        process.wait(timeout=20)
    err = console.text()
    assert process.returncode == 0
    assert err.splitlines()[-1] == "Stopping."
    assert "Traceback" not in err


@pytest.mark.parametrize("gone", ["before its first line", "after its first line"])
def test_keeps_serving_when_the_reader_of_its_console_goes_away(env, gone):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(  # `bookpay emulator 2>&1 | head -1`
        [sys.executable, "-m", "bookpay", "emulator", "--port", str(port), "--ephemeral"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        if gone == "after its first line":
            assert "emulator listening on" in process.stdout.readline()
        process.stdout.close()  # head has exited: every line from here on has nowhere to go
        assert wait_healthy(url)["ok"] is True
        request = urllib.request.Request(
            f"{url}/v1/customers", data=b"", headers={"Authorization": "Bearer sk_test_cli"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200
    finally:
        process.send_signal(signal.SIGTERM)  # "Stopping." has nowhere to go either
        process.wait(timeout=20)
    assert process.returncode == 0


def test_serves_and_stops_cleanly_with_its_console_closed_from_the_start(env):
    port = free_port()

    def closed_stderr() -> None:
        os.close(2)  # `bookpay emulator 2>&-`

    process = subprocess.Popen(
        [sys.executable, "-m", "bookpay", "emulator", "--port", str(port), "--ephemeral"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=closed_stderr,
    )
    try:
        assert wait_healthy(f"http://127.0.0.1:{port}")["ok"] is True
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=20)
    assert process.returncode == 0
    assert out == ""
