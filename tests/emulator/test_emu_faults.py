"""Faults on demand: scripted at run time, or drawn at seeded rates, for the API only.

A 500 or a dropped connection comes after the request has run (its state change is kept, as at
Stripe): a dropped connection keeps the request's answer under its idempotency key, a 500 keeps
itself there (Stripe replays a 500 as any saved answer); a 429 comes before anything is done.
"""

from __future__ import annotations

import http.client
import json
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import pytest
import stripe
from conftest import raw

from bookpay.emulator import EmulatorOptions, api, faults, start_emulator

KEY = "sk_test_faults"


@pytest.fixture
def emu():
    options = EmulatorOptions(retry_schedule=(), async_delay=60)
    with start_emulator(options=options) as running:
        yield running


def control(url: str, method: str, name: str, body: Any = None, key: str | None = KEY):
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        payload = json.dumps(body).encode() if body is not None else None
        conn.request(method, f"/_emulator/{name}", body=payload, headers=headers)
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        conn.close()


def create(url: str, key: str | None = None, amount: str = "2300"):
    headers = {"Idempotency-Key": key} if key else {}
    return raw(url, "POST", "/v1/payment_intents", {"amount": amount, "currency": "usd"}, headers)


def intent_count(url: str) -> int:
    return len(raw(url, "GET", "/v1/payment_intents", {"limit": "100"}).json()["data"])


def test_the_next_two_creates_answer_500_and_keep_what_they_did(emu):
    status, state = control(
        emu.url,
        "POST",
        "faults",
        {"fault": "500", "method": "POST", "path": "/v1/payment_intents", "times": 2},
    )
    assert status == 200 and state["rule"]["times"] == 2
    first = create(emu.url, "attempt-1")
    assert first.status == 500
    assert first.headers["bookpay-emulator-fault"] == "500"
    assert first.json()["error"]["type"] == "api_error"
    assert first.headers["request-id"].startswith("req_")
    assert create(emu.url, "attempt-2").status == 500
    assert create(emu.url, "attempt-3").status == 200  # the rule is used up
    assert intent_count(emu.url) == 3  # the two 500s were processed all the same
    assert control(emu.url, "GET", "faults")[1]["injected"] == {"500": 2}


def test_a_500_is_saved_under_its_key_and_replayed_as_stripe_does(emu):
    control(emu.url, "POST", "faults", {"fault": "500", "path": "/v1/payment_intents", "times": 1})
    first = create(emu.url, "attempt-1")
    assert first.status == 500
    again = create(emu.url, "attempt-1")  # the client's retry, with its key: the 500 again
    assert again.status == 500
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["original-request"] == first.headers["request-id"]
    assert "bookpay-emulator-fault" not in again.headers  # a replay, not a fault of its own
    assert intent_count(emu.url) == 1  # the 500's creation, made once
    assert create(emu.url, "attempt-1", amount="999").json()["error"]["type"] == (
        "idempotency_error"  # the key is taken, for those parameters
    )
    control(emu.url, "POST", "clock", {"hours": 24, "seconds": 1})
    expired = create(emu.url, "attempt-1")  # the key's life is 24 hours, a 500's too
    assert expired.status == 200 and "idempotent-replayed" not in expired.headers
    assert control(emu.url, "GET", "faults")[1]["injected"] == {"500": 1}


def test_a_saved_500_met_by_another_500_fault_is_still_its_replay(emu):
    # The retry with the key meets a fault too (a rule for two calls, or a rate): its answer is
    # the key's 500 all the same, and Stripe marks every replay. Without the marks a client
    # (bookpay's gateway) takes it for a 500 of its own that another try may get past.
    control(emu.url, "POST", "faults", {"fault": "500", "path": "/v1/payment_intents", "times": 2})
    first = create(emu.url, "attempt-1")
    again = create(emu.url, "attempt-1")
    assert again.status == 500
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["original-request"] == first.headers["request-id"]
    assert again.headers["request-id"] != first.headers["request-id"]
    assert again.json() == first.json()  # the answer kept, not another 500
    assert intent_count(emu.url) == 1


def test_a_500_over_a_refusal_that_never_began_keeps_nothing_under_the_key(emu):
    control(emu.url, "POST", "faults", {"fault": "500", "path": "/v1/payment_intents", "times": 1})
    params = {"amount": "100", "currency": "usd", "colour": "red"}  # no such parameter
    refused = raw(emu.url, "POST", "/v1/payment_intents", params, {"Idempotency-Key": "bad"})
    assert refused.status == 500
    # The parameters failed validation: execution never began, nothing was saved under the key.
    retried = raw(emu.url, "POST", "/v1/payment_intents", params, {"Idempotency-Key": "bad"})
    assert retried.status == 400 and "idempotent-replayed" not in retried.headers
    assert retried.json()["error"]["code"] == "parameter_unknown"


def test_a_500_on_a_replay_leaves_the_saved_answer_as_it_was(emu):
    assert create(emu.url, "done").status == 200
    control(emu.url, "POST", "faults", {"fault": "500", "path": "/v1/payment_intents", "times": 1})
    assert create(emu.url, "done").status == 500
    replay = create(emu.url, "done")
    assert replay.status == 200 and replay.headers["idempotent-replayed"] == "true"
    assert intent_count(emu.url) == 1


def test_every_refund_call_answers_429_with_retry_after_until_cleared(emu, paid_intent):
    client = stripe.StripeClient(KEY, base_addresses={"api": emu.url}, max_network_retries=0)
    pi = paid_intent(client)
    control(emu.url, "POST", "faults", {"fault": "429", "path": "/v1/refunds*", "retry_after": 2})
    for _ in range(3):
        limited = raw(emu.url, "POST", "/v1/refunds", {"payment_intent": pi.id})
        assert limited.status == 429
        assert limited.headers["retry-after"] == "2"
        assert limited.json()["error"]["code"] == "rate_limit"
    assert raw(emu.url, "GET", "/v1/refunds", {"payment_intent": pi.id}).status == 429
    with pytest.raises(stripe.RateLimitError):
        client.v1.refunds.create(params={"payment_intent": pi.id})
    charge = raw(emu.url, "GET", f"/v1/charges/{pi.latest_charge}").json()
    assert charge["amount_refunded"] == 0  # a 429 is refused before anything is done
    assert (
        raw(emu.url, "POST", "/v1/payment_intents", {"amount": "100", "currency": "usd"}).status
        == 200
    )
    assert control(emu.url, "DELETE", "faults")[0] == 200
    assert raw(emu.url, "POST", "/v1/refunds", {"payment_intent": pi.id}).status == 200


def test_a_429_keeps_nothing_under_the_idempotency_key(emu):
    control(emu.url, "POST", "faults", {"fault": "429", "times": 1})
    assert create(emu.url, "limited", amount="100").status == 429
    # Not replayed, and not an idempotency error with other parameters: the key is unused.
    assert create(emu.url, "limited", amount="200").json()["amount"] == 200


def test_a_reset_after_processing_drops_the_connection_but_keeps_the_charge(emu):
    control(
        emu.url, "POST", "faults", {"fault": "reset", "path": "/v1/payment_intents", "times": 1}
    )
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        create(emu.url, "dropped")
    assert intent_count(emu.url) == 1  # it happened: the client just could not know
    replay = create(emu.url, "dropped")
    assert replay.headers["idempotent-replayed"] == "true"
    assert intent_count(emu.url) == 1


def test_a_timeout_holds_the_connection_then_drops_it(emu):
    control(emu.url, "POST", "faults", {"fault": "timeout", "seconds": 0.5, "times": 1})
    started = time.monotonic()
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        create(emu.url, "slow")
    assert time.monotonic() - started >= 0.5
    assert intent_count(emu.url) == 1


def test_stripe_python_retries_make_one_intent_through_resets(emu):
    client = stripe.StripeClient(KEY, base_addresses={"api": emu.url}, max_network_retries=2)
    control(
        emu.url, "POST", "faults", {"fault": "reset", "path": "/v1/payment_intents", "times": 2}
    )
    created = client.v1.payment_intents.create(params={"amount": 2300, "currency": "usd"})
    assert created.status == "requires_payment_method"
    assert intent_count(emu.url) == 1  # three tries, one key, one PaymentIntent
    assert control(emu.url, "GET", "faults")[1]["injected"] == {"reset": 2}


class CountingClient(stripe.RequestsClient):
    """stripe-python's own HTTP client, counting the requests it sends (its retries too)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []

    def request(self, method, url, headers, post_data=None):
        self.sent.append(f"{method.upper()} {urlsplit(url).path}")
        return super().request(method, url, headers, post_data)


def test_stripe_python_does_not_retry_a_500_its_key_keeps_as_against_stripe(emu):
    """Stripe answers a 500 it keeps under the key with `Stripe-Should-Retry: false` (a retry
    would only replay it), which stripe-python honours before it looks at the status: one try,
    where without the header it would try three times for the same 500."""
    sent = CountingClient()
    client = stripe.StripeClient(
        KEY, base_addresses={"api": emu.url}, max_network_retries=2, http_client=sent
    )
    control(emu.url, "POST", "faults", {"fault": "500", "path": "/v1/payment_intents", "times": 1})
    with pytest.raises(stripe.APIError) as raised:
        client.v1.payment_intents.create(params={"amount": 2300, "currency": "usd"})
    assert raised.value.http_status == 500
    assert raised.value.headers["stripe-should-retry"] == "false"
    assert sent.sent == ["POST /v1/payment_intents"]
    assert intent_count(emu.url) == 1  # it ran all the same
    assert control(emu.url, "GET", "faults")[1]["injected"] == {"500": 1}


def test_stripe_python_retries_a_500_nothing_keeps_as_against_stripe(emu):
    # A read's 500 is kept under no key: nothing says a retry would be in vain.
    sent = CountingClient()
    client = stripe.StripeClient(
        KEY, base_addresses={"api": emu.url}, max_network_retries=2, http_client=sent
    )
    control(emu.url, "POST", "faults", {"fault": "500", "method": "GET", "times": 1})
    assert client.v1.payment_intents.list().data == []
    assert sent.sent == ["GET /v1/payment_intents"] * 2


def test_stripe_should_retry_is_false_only_on_a_500_a_key_keeps(emu):
    control(emu.url, "POST", "faults", {"fault": "500", "path": "/v1/payment_intents", "times": 2})
    first = create(emu.url, "kept")
    replay = create(emu.url, "kept")
    assert first.headers["stripe-should-retry"] == replay.headers["stripe-should-retry"] == "false"
    assert replay.headers["idempotent-replayed"] == "true"
    assert "Stripe-Should-Retry" in first.headers["access-control-expose-headers"]
    # Not on a 500 nothing keeps: a read's, one without a key, one over a refusal that never
    # began, one over a replay of another answer; nor on a 429 (a retry may well pass).
    assert create(emu.url, "fine").status == 200
    control(emu.url, "POST", "faults", {"fault": "500", "times": 4})
    unkept = [
        raw(emu.url, "GET", "/v1/payment_intents"),
        create(emu.url),
        raw(emu.url, "POST", "/v1/payment_intents", {"amount": "1", "colour": "red"}),
        create(emu.url, "fine"),  # over the replay of a 200, which the key keeps
    ]
    control(emu.url, "POST", "faults", {"fault": "429", "times": 1})
    unkept.append(create(emu.url, "limited"))
    assert [answer.status for answer in unkept] == [500, 500, 500, 500, 429]
    assert [answer.headers.get("stripe-should-retry") for answer in unkept] == [None] * 5


def test_a_kept_500_that_asks_for_a_wait_does_not_say_never_to_retry(emu):
    # Stripe's invariant (stripe-node #692): an answer with Retry-After is never also
    # Stripe-Should-Retry: false. Its replays, which ask for no wait, say false.
    rule = {"fault": "500", "path": "/v1/payment_intents", "times": 1, "retry_after": 2}
    control(emu.url, "POST", "faults", rule)
    first = create(emu.url, "waits")
    assert first.headers["retry-after"] == "2" and "stripe-should-retry" not in first.headers
    replay = create(emu.url, "waits")
    assert replay.headers["stripe-should-retry"] == "false"


def test_faults_never_touch_the_control_endpoint_stripe_js_or_pages(emu):
    control(emu.url, "POST", "faults", {"rates": "500=100%"})
    assert raw(emu.url, "GET", "/v1/payment_intents").status == 500
    assert raw(emu.url, "GET", "/v3/", key=None).status == 200
    assert raw(emu.url, "GET", "/healthz", key=None).status == 200
    assert raw(emu.url, "GET", "/_emulator/deliveries", key=None).status == 200
    assert control(emu.url, "GET", "faults")[0] == 200
    assert control(emu.url, "DELETE", "faults")[0] == 200
    assert raw(emu.url, "GET", "/v1/payment_intents").status == 200


@pytest.mark.parametrize(
    ("key", "status"),
    [(None, 401), ("pk_test_page", 403), ("sk_live_real", 403), ("rk_test_x", 403)],
)
def test_only_a_test_secret_key_may_change_faults_or_the_clock(emu, key, status):
    for method, name, body in [
        ("POST", "faults", {"fault": "500"}),
        ("DELETE", "faults", None),
        ("POST", "clock", {"days": 1}),
        ("POST", "reset", None),
    ]:
        got, answer = control(emu.url, method, name, body, key=key)
        assert got == status, (method, name)
        assert "sk_test_" in answer["error"]["message"]
    assert control(emu.url, "GET", "faults")[1]["rules"] == []
    assert control(emu.url, "GET", "clock")[1]["offset"] == 0


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"fault": "503"}, "Unknown fault '503'"),
        ({"fault": "500", "path": "/healthz"}, "faults apply to /v1"),
        ({"fault": "500", "times": 0}, "times must be at least 1"),
        ({"fault": "500", "times": "two"}, "times must be a number"),
        ({"fault": "timeout", "seconds": 9999}, "0 to 600"),
        ({"rates": "500=5"}, "KIND=PERCENT%"),
        ({"rates": "500=60%,429=60%"}, "more than 100%"),
        ({"latency": "400-50"}, "ends before it starts"),
        ({"latency": "99999999999999999999"}, "is more than 60,000 ms"),
        ({}, "Say what to change"),
    ],
)
def test_bad_fault_requests_are_400s_that_say_why(emu, body, says):
    status, answer = control(emu.url, "POST", "faults", body)
    assert status == 400
    assert says in answer["error"]["message"]


def statuses(url: str, count: int) -> list[int]:
    return [raw(url, "GET", "/v1/payment_intents").status for _ in range(count)]


def test_rates_with_a_seed_give_the_same_faults_every_run():
    options = EmulatorOptions(faults="500=30%,429=20%", seed=7, retry_schedule=())
    with start_emulator(options=options) as one, start_emulator(options=options) as two:
        first, second = statuses(one.url, 40), statuses(two.url, 40)
        control(one.url, "POST", "faults", {"seed": 8})
        other = statuses(one.url, 40)
    assert first == second
    assert {500, 429, 200} <= set(first)
    assert other != first


def test_drawn_rates_come_out_as_asked():
    state = faults.Faults(faults.parse_rates("500=5%,429=2%,reset=1%,timeout=1%"), seed=1)
    drawn = Counter(
        fault.kind if (fault := state.pick("GET", "/v1/x")) else "ok" for _ in range(20_000)
    )
    assert 900 < drawn["500"] < 1100
    assert 320 < drawn["429"] < 480
    assert 140 < drawn["reset"] < 260
    assert 140 < drawn["timeout"] < 260
    assert state.describe()["injected"]["500"] == drawn["500"]


def test_latency_ranges_are_drawn_within_their_bounds():
    state = faults.Faults(latency=faults.parse_latency("50-400"), seed=3)
    delays = [state.delay() for _ in range(500)]
    assert all(0.05 <= d <= 0.4 for d in delays)
    assert max(delays) - min(delays) > 0.2
    assert faults.parse_latency("200") == (0.2, 0.2)
    assert faults.Faults(latency=(0.2, 0.2)).delay() == 0.2


def test_latency_is_bounded_where_it_is_parsed_and_where_it_is_set():
    assert faults.parse_latency("60000") == (60.0, 60.0)
    with pytest.raises(ValueError, match="more than 60,000 ms"):
        faults.parse_latency("60000.5")
    for latency in ((0.0, 1e17), (-1.0, 0.0), (0.3, 0.2)):
        with pytest.raises(ValueError, match="0 to 60,000 ms"):
            faults.Faults(latency=latency)
    with pytest.raises(ValueError, match="0 to 60,000 ms"):
        faults.Faults.from_options(EmulatorOptions(latency=1e17))


def test_a_latency_range_slows_each_api_call():
    # Wide margins: the machine running the suite may be busy, which only ever adds time.
    options = EmulatorOptions(latency=0.5, latency_max=0.7, seed=1, retry_schedule=())
    with start_emulator(options=options) as slow:
        started = time.monotonic()
        assert raw(slow.url, "GET", "/v1/payment_intents").status == 200
        assert time.monotonic() - started >= 0.5
        started = time.monotonic()
        assert raw(slow.url, "GET", "/healthz", key=None).status == 200
        assert time.monotonic() - started < 0.5


@pytest.mark.parametrize(
    ("pattern", "path", "hit"),
    [
        ("/v1/refunds", "/v1/refunds", True),
        ("/v1/refunds", "/v1/refunds/re_1", False),
        ("/v1/refunds*", "/v1/refunds/re_1/cancel", True),
        ("/v1/payment_intents/{id}/confirm", "/v1/payment_intents/pi_1/confirm", True),
        ("/v1/payment_intents/{id}/confirm", "/v1/payment_intents/pi_1/capture", False),
        ("/v1/payment_intents/{id}", "/v1/payment_intents/pi_1/confirm", False),
        # A rule's final slash is no part of its path: a call matches with or without one.
        ("/v1/customers/", "/v1/customers", True),
        ("/v1/customers/", "/v1/customers/", True),
        ("/v1/customers/", "/v1/customers/cus_1", False),
        ("/v1/payment_intents/{id}/", "/v1/payment_intents/pi_1", True),
        ("/v1/customers/*", "/v1/customers/cus_1", True),
        ("/v1/customers/*", "/v1/customers", False),
    ],
)
def test_rule_paths(pattern, path, hit):
    assert faults.Rule("500", path=pattern).matches("POST", path) is hit


def test_no_fault_configured_means_the_fault_path_is_never_taken(emu, monkeypatch):
    def never(*args):
        raise AssertionError("the fault path ran with nothing configured")

    monkeypatch.setattr(api.Emulator, "_api_faulty", never)
    assert emu.app.faults.active is False
    assert raw(emu.url, "GET", "/v1/payment_intents").status == 200
    control(emu.url, "POST", "faults", {"fault": "500", "times": 1})
    assert emu.app.faults.active is True
    with pytest.raises(AssertionError, match="the fault path ran"):
        emu.app._route({"REQUEST_METHOD": "GET", "PATH_INFO": "/v1/payment_intents"})
    control(emu.url, "DELETE", "faults")
    assert emu.app.faults.active is False


def test_no_page_may_call_the_control_endpoints_but_one_may_call_the_api(emu):
    preflight = raw(emu.url, "OPTIONS", "/_emulator/reset", key=None)
    assert "access-control-allow-origin" not in preflight.headers
    api_preflight = raw(emu.url, "OPTIONS", "/v1/payment_intents", key=None)
    assert api_preflight.headers["access-control-allow-origin"] == "*"
    listed = raw(emu.url, "GET", "/_emulator/deliveries", key=None)
    assert listed.headers["access-control-allow-origin"] == "*"


def test_under_waitress_a_reset_drops_the_connection_too():
    """create_app() is a WSGI app any server may run: waitress closes the connection as well."""
    from bookpay.emulator import EmulatorOptions, create_app
    from bookpay.web import runner

    app = create_app(EmulatorOptions(faults="reset=100%"))
    # The shop's runner: it stops waitress's loop before closing its sockets (closing them
    # under a running select() ends the server thread with EBADF).
    running = runner.start(lambda own: app, background=True)
    try:
        with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
            create(running.url, "dropped")
        control(running.url, "DELETE", "faults")  # rates cleared: the next call answers
        assert intent_count(running.url) == 1
    finally:
        running.stop()
        app.close()


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"fault": "500", "path": "/v1/refunds", "tims": 2}, "Unknown field 'tims'"),
        ({"fault": "500", "rates": "500=5%"}, "Unknown field 'rates'"),
        ({"rates": "500=5%", "laytency": "50"}, "Unknown field 'laytency'"),
        ({"fault": "500", "times": 1.5}, "times must be a whole number"),
        ({"fault": "500", "times": "1_0"}, "times must be a number"),
        ({"fault": "429", "retry_after": "\u0661\u0662"}, "retry_after must be a number"),
        ({"fault": "timeout", "seconds": "1_0"}, "seconds must be a number"),
        ({"seed": "7.5"}, "seed must be a whole number"),
    ],
)
def test_fault_requests_with_unknown_fields_or_odd_numbers_are_400s(emu, body, says):
    """A misspelt field once made a rule for every call (times left out); a number Python
    reads but nobody writes (1_0, Arabic-Indic digits, 1.5 times) was taken as some number."""
    status, answer = control(emu.url, "POST", "faults", body)
    assert status == 400, answer
    assert says in answer["error"]["message"]
    assert control(emu.url, "GET", "faults")[1]["rules"] == []


def test_whole_numbers_may_be_written_as_json_floats(emu):
    status, answer = control(emu.url, "POST", "faults", {"fault": "500", "times": 2.0})
    assert status == 200 and answer["rule"]["times"] == 2


@pytest.mark.parametrize("name", ["deliveries", "notifications"])
def test_the_readable_lists_answer_405_to_other_methods(emu, name):
    status, answer = control(emu.url, "POST", name, {})
    assert status == 405 and f"/_emulator/{name} takes GET" in answer["error"]["message"]


def test_a_latency_range_leaves_a_seeds_faults_as_they_were():
    rates = faults.parse_rates("500=20%,429=10%,reset=5%")
    plain = faults.Faults(rates, seed=7)
    slowed = faults.Faults(rates, latency=(0.05, 0.4), seed=7)

    def kinds(state: faults.Faults) -> list[str]:
        met = []
        for _ in range(200):
            state.delay()  # as the request path does, before it picks
            fault = state.pick("GET", "/v1/payment_intents")
            met.append(fault.kind if fault else "ok")
        return met

    assert kinds(slowed) == kinds(plain)
    slowed.reset()  # and again from the start, the same latencies too
    delays = [slowed.delay() for _ in range(5)]
    slowed.reset()
    assert [slowed.delay() for _ in range(5)] == delays


def test_the_same_seed_meets_the_same_faults_with_or_without_latency():
    plain = EmulatorOptions(faults="500=30%,429=20%", seed=7, retry_schedule=())
    slowed = EmulatorOptions(
        faults="500=30%,429=20%", seed=7, latency=0.001, latency_max=0.003, retry_schedule=()
    )
    with start_emulator(options=plain) as one, start_emulator(options=slowed) as two:
        assert statuses(two.url, 30) == statuses(one.url, 30)


def test_a_client_waiting_longer_than_the_hold_sees_a_dropped_connection(emu):
    # stripe-python waits 80 s by default, longer than a `timeout` holds (30 s unless set): it
    # sees the connection closed with no answer once the hold ends, not a timeout of its own.
    client = stripe.StripeClient(KEY, base_addresses={"api": emu.url}, max_network_retries=0)
    control(emu.url, "POST", "faults", {"fault": "timeout", "seconds": 0.5, "times": 1})
    started = time.monotonic()
    with pytest.raises(stripe.APIConnectionError):
        client.v1.payment_intents.create(params={"amount": 2300, "currency": "usd"})
    assert 0.5 <= time.monotonic() - started < 30
    assert intent_count(emu.url) == 1
