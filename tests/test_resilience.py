"""A slow or hung Stripe must not freeze the shop: the breaker, the bulkhead, the call budget,
/readyz, and the whole shop with its emulator stopped (SIGSTOP) under 60 concurrent checkouts.

Timed assertions are generous (the machine is shared); the precise figures are measured by
``python -m bench resilience``.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from urllib.parse import urlsplit

import pytest
from processes import counts_open_fds, open_fds, settled

from bookpay.config import Settings, StripeLimits
from bookpay.errors import NotFound, PaymentError, StripeUnavailable
from bookpay.payments import Gateway
from bookpay.resilience import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    Busy,
    CachedCheck,
    CircuitBreaker,
    CircuitOpen,
    Guard,
)
from bookpay.server import create_app

SLACK = 6.0  # seconds of grace on every timed assertion, for a loaded machine
PAGE_TARGET = 1.0  # seconds: pages that do not need Stripe, while Stripe hangs (issue 8)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# The breaker ---------------------------------------------------------------------------------


def test_the_breaker_opens_after_consecutive_failures_and_fails_fast():
    clock = Clock()
    breaker = CircuitBreaker(3, 5.0, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == CLOSED
    breaker.record_success()  # a success in between: the count starts again
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == OPEN
    assert not breaker.allow()
    clock.now += 4.0
    assert not breaker.allow()
    assert breaker.retry_after() == pytest.approx(1.0)


def test_after_the_cooldown_one_probe_passes_and_its_success_closes_the_breaker():
    clock = Clock()
    breaker = CircuitBreaker(1, 5.0, clock=clock)
    breaker.record_failure()
    clock.now += 5.0
    assert breaker.state == HALF_OPEN
    probe = breaker.allow()
    assert probe  # the probe
    assert not breaker.allow()  # everyone else while it runs
    breaker.record_success(probe)
    assert breaker.state == CLOSED
    assert all(breaker.allow() for _ in range(10))


def test_a_failed_probe_opens_the_breaker_for_another_cooldown():
    clock = Clock()
    breaker = CircuitBreaker(5, 5.0, clock=clock)
    for _ in range(5):
        breaker.record_failure()
    clock.now += 5.0
    probe = breaker.allow()
    assert probe
    breaker.record_failure(probe)  # one failure is enough in half-open
    assert breaker.state == OPEN
    assert not breaker.allow()
    clock.now += 5.0
    assert breaker.allow()


def test_a_call_that_fails_late_does_not_let_a_second_probe_through():
    """A call that went ahead before the breaker opened, failing while the probe is in flight,
    is counted but settles nothing: one cool-down later the probe still has the only way in."""
    clock = Clock()
    guard = Guard("Stripe", max_concurrent=8, failure_threshold=2, cooldown=5, clock=clock)
    stale = guard.call()
    stale.__enter__()  # a call that is still waiting when the breaker opens
    for _ in range(2):
        with pytest.raises(StripeUnavailable), guard.call():
            raise StripeUnavailable("Could not reach Stripe.")
    assert guard.breaker.state == OPEN
    clock.now += 5
    probe = guard.call()
    probe.__enter__()  # the one probe, which hangs
    with pytest.raises(CircuitOpen), guard.call():
        pytest.fail("one probe at a time")
    late = StripeUnavailable("Could not reach Stripe.")
    assert stale.__exit__(StripeUnavailable, late, None) is False  # the old call fails now
    for _ in range(3):
        clock.now += 5
        with pytest.raises(CircuitOpen), guard.call():
            pytest.fail("a second probe went through while the first is in flight")
    assert probe.__exit__(None, None, None) is False  # the probe's answer closes it
    assert guard.breaker.state == CLOSED
    with guard.call():
        pass
    assert guard.bulkhead.in_use == 0


def test_an_interrupted_call_that_was_not_the_probe_does_not_free_its_place():
    clock = Clock()
    breaker = CircuitBreaker(1, 5.0, clock=clock)
    stale = breaker.allow()
    breaker.record_failure(breaker.allow())
    clock.now += 5
    probe = breaker.allow()
    assert probe and probe is not stale
    breaker.abandon(stale)  # Ctrl-C in a call from before the breaker opened
    breaker.record_success(stale)  # nor does an old call's answer settle the probe's question
    assert not breaker.allow()
    assert breaker.retry_after() > 0
    breaker.abandon(probe)  # the probe interrupted: the next call is the probe
    assert breaker.allow()


def test_the_guard_counts_only_unavailability_as_failure():
    guard = Guard("Stripe", max_concurrent=4, failure_threshold=2, cooldown=60)
    for _ in range(3):  # Stripe answering "no such thing" is Stripe answering
        with pytest.raises(NotFound), guard.call():
            raise NotFound("No such payment_intent")
    assert guard.breaker.state == CLOSED
    for _ in range(2):
        with pytest.raises(StripeUnavailable), guard.call():
            raise StripeUnavailable("Could not reach Stripe.")
    with pytest.raises(CircuitOpen) as caught, guard.call():
        pytest.fail("an open breaker must not let the call through")
    assert caught.value.http_status == 503 and caught.value.exit_code == 4
    assert 1 <= caught.value.retry_after <= 60
    assert guard.bulkhead.in_use == 0


def test_the_bulkhead_refuses_one_call_more_at_once_and_frees_its_slots():
    guard = Guard("Stripe", max_concurrent=2, failure_threshold=5, cooldown=5)
    with guard.call(), guard.call():
        assert guard.bulkhead.in_use == 2
        with pytest.raises(Busy) as caught, guard.call():
            pytest.fail("a full bulkhead must not let the call through")
        assert caught.value.retry_after == 1
        assert caught.value.code == "stripe_busy"
    assert guard.bulkhead.in_use == 0
    assert guard.breaker.state == CLOSED  # being busy is not Stripe failing


# The cached check behind /readyz ---------------------------------------------------------------


def test_a_hung_check_runs_once_and_nobody_waits_longer_than_the_bound():
    release = threading.Event()
    calls = []

    def hung():
        calls.append(1)
        release.wait(30)

    check = CachedCheck(hung, ttl=5, wait=0.2)
    answers = []

    def ask():
        started = time.monotonic()
        answers.append((check.result(), time.monotonic() - started))

    threads = [threading.Thread(target=ask) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SLACK)
    release.set()
    assert len(calls) == 1
    assert len(answers) == 20
    assert all(not result.ok for result, _ in answers)
    assert max(elapsed for _, elapsed in answers) < 0.2 + SLACK


def test_a_check_result_is_cached_for_its_ttl():
    clock = Clock()
    calls = []
    check = CachedCheck(lambda: calls.append(1), ttl=5, wait=5, clock=clock)
    assert check.result().ok
    assert check.result().ok
    assert len(calls) == 1
    clock.now += 6
    assert check.result().ok
    assert len(calls) == 2


def test_a_failing_check_says_why():
    def down():
        raise StripeUnavailable("Could not reach Stripe.")

    result = CachedCheck(down, wait=5, describe=lambda e: e.message).result()
    assert (result.ok, result.detail) == (False, "Could not reach Stripe.")


@counts_open_fds
def test_readiness_pings_leave_no_connection_open(tmp_path, emulator):
    """Each ping runs on a thread of its own: its keep-alive connection goes when it ends (one
    left per ping ran a polled /readyz out of file descriptors)."""
    gateway = Gateway(Settings(data_dir=tmp_path, emulator_url=emulator.url))
    check = CachedCheck(gateway.ping, ttl=0, wait=SLACK)
    assert check.result().ok
    time.sleep(0.2)
    before = open_fds()
    for _ in range(60):
        assert check.result().ok
    assert settled(open_fds, before + 3, within=SLACK) <= before + 3
    # The last ping's thread may still be ending as its answer comes back.
    assert settled(lambda: len(gateway._http._transport._all), 1, within=SLACK) <= 1
    gateway.close()


# The gateway's budget against a server that accepts and never answers --------------------------


@pytest.fixture
def black_hole():
    """A port that accepts connections (the kernel does) and never answers: a hung Stripe."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


FAST = StripeLimits(
    connect_timeout=0.5,
    read_timeout=0.6,
    total_timeout=1.5,
    max_retries=2,
    max_concurrent=16,
    failure_threshold=3,
    cooldown=2.0,
)


def test_a_hung_stripe_fails_within_the_budget_retries_included(tmp_path, black_hole):
    # Six tries of 2 s each and stripe-python's back-off between them would take over 20 s;
    # the budget ends the call, retries and all, at 2.5 s.
    limits = StripeLimits(connect_timeout=0.5, read_timeout=2.0, total_timeout=2.5, max_retries=5)
    gateway = Gateway(Settings(data_dir=tmp_path, emulator_url=black_hole, stripe_limits=limits))
    started = time.monotonic()
    with pytest.raises(StripeUnavailable) as caught:
        gateway.list_intents()
    elapsed = time.monotonic() - started
    assert "no answer within 2.5 s" in caught.value.message
    assert 2.0 <= elapsed < limits.total_timeout + SLACK


@pytest.fixture
def trickle():
    """A server that answers at once, then its body one byte a second, for a minute."""

    def serve(conn):
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 60\r\n\r\n")
                for _ in range(60):
                    conn.sendall(b" ")
                    time.sleep(1.0)
            except OSError:  # the client gave up
                pass

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)

    def accept():
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def test_a_trickled_answer_fails_within_the_budget(tmp_path, trickle):
    # Every byte comes within the read timeout: only the budget's deadline ends the call.
    limits = StripeLimits(connect_timeout=1.0, read_timeout=2.0, total_timeout=2.0)
    gateway = Gateway(Settings(data_dir=tmp_path, emulator_url=trickle, stripe_limits=limits))
    started = time.monotonic()
    with pytest.raises(StripeUnavailable) as caught:
        gateway.list_intents()
    assert time.monotonic() - started < limits.total_timeout + 2.0  # not the minute it takes
    assert "no answer within 2 s" in caught.value.message


def test_a_hung_name_resolution_fails_within_the_budget(tmp_path, monkeypatch):
    resolve = socket.getaddrinfo
    release = threading.Event()

    def hung(host, *args, **kwargs):
        if host == "stripe-dns.test":
            release.wait(10)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hung)
    limits = StripeLimits(connect_timeout=0.5, read_timeout=1.0, total_timeout=2.0)
    settings = Settings(data_dir=tmp_path, emulator_url="http://stripe-dns.test:80")
    gateway = Gateway(dataclasses.replace(settings, stripe_limits=limits))
    started = time.monotonic()
    with pytest.raises(StripeUnavailable) as caught:
        gateway.list_intents()
    release.set()
    assert time.monotonic() - started < limits.total_timeout + 2.0  # not the resolver's 10 s
    assert "no answer within 2 s" in caught.value.message


def test_the_default_limits_are_sized_for_a_checkout():
    limits = Settings().stripe_limits
    assert limits.total_timeout <= 20  # not stripe-python's 80 s per try, 3 tries
    assert limits.connect_timeout < limits.read_timeout <= limits.total_timeout
    assert limits.max_retries >= 1
    assert Settings(stripe_limits=StripeLimits(max_concurrent=0)).problems()


def test_the_gateway_opens_its_breaker_and_then_fails_fast(tmp_path, black_hole):
    gateway = Gateway(Settings(data_dir=tmp_path, emulator_url=black_hole, stripe_limits=FAST))
    for _ in range(FAST.failure_threshold):
        with pytest.raises(StripeUnavailable):
            gateway.ping()
    started = time.monotonic()
    with pytest.raises(CircuitOpen):
        gateway.ping()
    assert time.monotonic() - started < FAST.read_timeout  # no network call at all


def test_requests_refused_outright_are_not_stripe_failing(tmp_path, emulator):
    """A 414 in plain text (a URL too long) is the request's fault: a refusal (exit 3), never
    StripeUnavailable, so any number of them leaves the breaker closed for everyone else."""
    gateway = Gateway(Settings(data_dir=tmp_path, emulator_url=emulator.url, stripe_limits=FAST))
    for _ in range(FAST.failure_threshold + 2):
        with pytest.raises(PaymentError, match=r"refused the request \(414: ") as refused:
            gateway.retrieve_intent("pi_" + "a" * 70_000)
        assert not isinstance(refused.value, StripeUnavailable)
        assert refused.value.exit_code == 3
    with pytest.raises(NotFound):  # answered by the emulator: the breaker is still closed
        gateway.retrieve_intent("pi_missing")


# The shop with its emulator stopped ------------------------------------------------------------

# The emulator in a child process, so it can be stopped with SIGSTOP as a hung Stripe would be:
# connections are still accepted by the kernel, but nothing ever answers.
EMULATOR = """
import sys
from bookpay.emulator import EmulatorOptions, start_emulator
running = start_emulator("127.0.0.1", 0, EmulatorOptions())
print(running.url, flush=True)
sys.stdin.read()
running.stop()
"""

HUNG = StripeLimits(
    connect_timeout=1.0,
    read_timeout=1.5,
    total_timeout=3.0,
    max_retries=1,
    max_concurrent=16,
    failure_threshold=3,
    cooldown=3.0,
)


@pytest.fixture
def emulator_process():
    process = subprocess.Popen(
        [sys.executable, "-c", EMULATOR],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    url = process.stdout.readline().strip()
    assert url.startswith("http://"), url
    yield process, url
    os.kill(process.pid, signal.SIGCONT)
    process.stdin.close()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def request(
    url: str, method: str, path: str, body: dict | None = None, headers: dict | None = None
):
    """(status, headers, body, seconds) for one request on a fresh connection."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    started = time.monotonic()
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {**({"Content-Type": "application/json"} if body else {}), **(headers or {})}
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        return response.status, dict(response.getheaders()), payload, time.monotonic() - started
    finally:
        conn.close()


def create(url: str):
    return request(
        url, "POST", "/create-payment-intent", {"item": "1", "attemptId": str(uuid.uuid4())}
    )


@pytest.fixture
def hung_shop(tmp_path, emulator_process):
    from bookpay.web import runner

    process, emulator_url = emulator_process
    settings = Settings(
        data_dir=tmp_path / "data",
        emulator_url=emulator_url,
        stripe_limits=HUNG,
        webhook_secrets=("whsec_hung",),
    )
    gateway = Gateway(settings)
    apps = []

    def make_app(own_url):
        apps.append(create_app(settings, gateway=gateway, public_url=own_url))
        return apps[-1]

    server = runner.start(make_app, background=True)
    yield server.url, gateway, process
    server.stop()
    apps[0].close()


def test_a_hung_stripe_does_not_freeze_the_shop(hung_shop):
    url, gateway, process = hung_shop
    assert create(url)[0] == 200  # warm: imports, the first connection
    os.kill(process.pid, signal.SIGSTOP)
    stopped = True
    try:
        answers: list[tuple] = []
        lock = threading.Lock()
        start = threading.Barrier(61)

        def shopper():
            start.wait()
            answer = create(url)
            with lock:
                answers.append(answer)

        threads = [threading.Thread(target=shopper, daemon=True) for _ in range(60)]
        for thread in threads:
            thread.start()
        start.wait()
        # While the creates that got a slot wait on the stopped emulator, everything that does
        # not need Stripe still answers.
        deadline = time.monotonic() + SLACK
        while gateway.guard.bulkhead.in_use < HUNG.max_concurrent:
            assert time.monotonic() < deadline, "the creates never filled the bulkhead"
            time.sleep(0.01)
        # The benchmark holds the figure (p99 under 1 s); here each page's median must be
        # under it too, with slack only for the slowest answer on a loaded machine.
        for path in ("/", "/checkout?item=1", "/static/checkout.js", "/healthz", "/favicon.ico"):
            times = []
            for _ in range(5):
                status, _, _, seconds = request(url, "GET", path)
                assert status == 200, path
                times.append(seconds)
            assert statistics.median(times) < PAGE_TARGET, (path, times)
            assert max(times) < SLACK, (path, times)
        # Webhook signatures are still checked (and forgeries refused) without asking Stripe.
        forged = {"Stripe-Signature": f"t={int(time.time())},v1={'0' * 64}"}
        status, _, body, seconds = request(url, "POST", "/webhook", {"id": "evt_1"}, forged)
        assert (status, json.loads(body)["error"]["code"]) == (400, "invalid_signature")
        assert seconds < SLACK
        assert gateway.guard.bulkhead.in_use == HUNG.max_concurrent  # still waiting meanwhile

        for thread in threads:
            thread.join(HUNG.total_timeout + 2 * SLACK)
        assert len(answers) == 60
        for status, headers, body, seconds in answers:
            assert status == 503
            assert int(headers["Retry-After"]) >= 1
            error = json.loads(body)["error"]
            assert error["code"] in ("stripe_unavailable", "stripe_busy", "stripe_circuit_open")
            assert seconds < HUNG.total_timeout + SLACK
        codes = [json.loads(body)["error"]["code"] for _, _, body, _ in answers]
        # Those beyond the bulkhead were refused at once instead of waiting for a thread.
        assert codes.count("stripe_busy") >= 60 - HUNG.max_concurrent
        assert codes.count("stripe_unavailable") <= HUNG.max_concurrent

        # The breaker is open now: a create fails at once, without trying the emulator.
        assert gateway.guard.breaker.state == OPEN
        status, headers, body, seconds = create(url)
        assert (status, json.loads(body)["error"]["code"]) == (503, "stripe_circuit_open")
        assert seconds < HUNG.read_timeout + SLACK / 2

        os.kill(process.pid, signal.SIGCONT)
        stopped = False
        resumed = time.monotonic()
        while True:
            status, _, body, _ = create(url)
            if status == 200:
                break
            assert json.loads(body)["error"]["code"] == "stripe_circuit_open", body
            assert time.monotonic() - resumed < HUNG.cooldown + SLACK, "never recovered"
            time.sleep(0.05)
        assert time.monotonic() - resumed < HUNG.cooldown + SLACK
        assert gateway.guard.breaker.state == CLOSED
    finally:
        if stopped:
            os.kill(process.pid, signal.SIGCONT)
