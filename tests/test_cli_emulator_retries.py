"""`bookpay emulator --webhook-retries test|live`: test mode's schedule unless live is asked for."""

import json
import os
import signal
import socket
import time
import urllib.parse
import urllib.request

import pytest
from test_cli_emulator_faults import started


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "BOOKPAY_DATA_DIR": str(tmp_path / "data")}


def call(url, method, path, data=None, json_body=None):
    headers = {"Authorization": "Bearer sk_test_cli"}
    body = None
    if json_body is not None:
        body, headers["Content-Type"] = json.dumps(json_body).encode(), "application/json"
    elif data is not None:
        body = urllib.parse.urlencode(data).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(url + path, data=body, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/webhook"  # nothing listens: every attempt fails


def failing_after_three_hours(url) -> list:
    """The failing-endpoint notices once an event's deliveries have failed for three hours."""
    endpoint = {"url": closed_port_url(), "enabled_events[]": "customer.created"}
    call(url, "POST", "/v1/webhook_endpoints", endpoint)
    call(url, "POST", "/v1/customers", {"email": "ada@example.com"})
    deadline = time.monotonic() + 10
    while not call(url, "GET", "/_emulator/deliveries")["data"]:  # the first attempt, at once
        assert time.monotonic() < deadline, "no first attempt"
        time.sleep(0.05)
    call(url, "POST", "/_emulator/clock", json_body={"hours": 3})
    return call(url, "GET", "/_emulator/notifications")["data"]


@pytest.mark.parametrize(
    ("args", "failing", "says"),
    [
        ([], True, False),  # three retries over a few hours, then the endpoint is failing
        (["--webhook-retries", "live"], False, True),  # retries go on for three days
    ],
)
def test_webhook_retries_follow_test_mode_unless_live_is_asked_for(env, args, failing, says):
    process, url, said = started(args, env)
    try:
        notices = failing_after_three_hours(url)
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)
    assert bool(notices) is failing, notices
    assert ("Webhook retries: live mode's schedule, for up to three days." in said) is says
