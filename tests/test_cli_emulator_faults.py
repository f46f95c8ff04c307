"""`bookpay emulator --faults ... --latency MIN-MAX --seed N`, as a developer runs it."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "BOOKPAY_DATA_DIR": str(tmp_path / "data")}


def run(args, env, timeout=30):
    return subprocess.run(
        [sys.executable, "-m", "bookpay", "emulator", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def started(args, env):
    """The emulator process, its URL and what it said on stderr until it was ready."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bookpay", "emulator", "--port", "0", "--ephemeral", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    said = []
    for line in process.stderr:
        said.append(line)
        if "Press Ctrl-C" in line:
            break
    assert "listening on" in said[0], "".join(said)
    return process, said[0].rsplit(" ", 1)[1].strip(), "".join(said)


def status_of(url, path, key="sk_test_cli"):
    request = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_faults_and_a_latency_range_apply_to_the_api_only(env):
    process, url, said = started(
        ["--faults", "500=100%", "--latency", "100-150", "--seed", "3"], env
    )
    try:
        began = time.monotonic()
        assert status_of(url, "/v1/payment_intents") == 500
        assert time.monotonic() - began >= 0.1
        assert status_of(url, "/v3/") == 200
        assert status_of(url, "/healthz") == 200
        with urllib.request.urlopen(
            urllib.request.Request(
                url + "/_emulator/faults", headers={"Authorization": "Bearer sk_test_cli"}
            ),
            timeout=10,
        ) as answer:
            state = json.loads(answer.read())
        assert state["rates"] == {"500": 100.0}
        assert state["latency_ms"] == [100.0, 150.0]
        assert state["seed"] == 3
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)
    assert "Faults: 500=100%; latency: 100-150 ms; seed 3 (the API only)." in said


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--faults", "500=5"], "'500=5' is not a fault rate: write KIND=PERCENT%"),
        (["--faults", "502=5%"], "Unknown fault '502': the kinds are 500, 429, reset, timeout."),
        (["--faults", "500=70%,429=40%"], "The fault rates add up to more than 100%."),
        (["--latency", "400-50"], "The latency range '400-50' ends before it starts."),
        (["--latency", "fast"], "'fast' is not a latency"),
        (
            ["--latency", "99999999999999999999"],
            "A latency of 99999999999999999999 ms is more than 60,000 ms.",
        ),
        (["--latency", "50-60001"], "A latency of 50-60001 ms is more than 60,000 ms."),
    ],
)
def test_a_bad_fault_or_latency_is_a_usage_error(env, args, message):
    done = run([*args, "--ephemeral", "--port", "0"], env)
    assert done.returncode == 2
    assert done.stderr.startswith("Error: ")
    assert message in done.stderr
    assert "Traceback" not in done.stderr
