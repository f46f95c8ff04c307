"""Behind a replayed 500 on a PaymentIntent's creation the gateway lists the PaymentIntents the
key may have made: the whole list gets one call's budget (``StripeLimits.total_timeout``), not
one per page. A list it cannot finish in time leaves the outcome unknown: StripeUnavailable
(retryable: HTTP 503, exit 4), never the key's next generation, which would make a second
PaymentIntent for the attempt; the next try goes on with the list where the last one stopped.
The emulator's latency makes Stripe slow: no sleeps."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid

import pytest
import stripe
from test_payments_faults import BOOK, paid

from bookpay import payments
from bookpay.config import Settings, StripeLimits
from bookpay.errors import StripeUnavailable
from bookpay.payments import CLOCK_MARGIN, KEY_LIFE, Gateway, _Walk, _Walks

# Every call answers in LATENCY; a call's budget (and so the walk's) fits one page and a bit:
# after the first page less than MIN_ATTEMPT (0.5 s) is left, so a second page is not started.
LATENCY_MS = 600
BUDGET = 1.0


@pytest.fixture(scope="module")
def module_emulator():
    from bookpay import testing

    with testing.emulator() as running:
        yield running


@pytest.fixture
def emu(module_emulator):
    module_emulator.reset()
    yield module_emulator
    module_emulator.faults.clear()


@pytest.fixture
def gateway(emu, tmp_path):
    limits = StripeLimits(total_timeout=BUDGET)
    made = Gateway(Settings(data_dir=tmp_path / "data", emulator_url=emu.url, stripe_limits=limits))
    yield made
    made.close()


def intents(emu) -> list[str]:
    """Every PaymentIntent's id, newest first."""
    found: list[str] = []
    params: dict = {"limit": 100}
    while True:
        page = emu.api("GET", "/v1/payment_intents", params)
        found += [intent["id"] for intent in page["data"]]
        if not page["has_more"]:
            return found
        params["starting_after"] = found[-1]


def made_long_ago(emu, gateway, others: int = 150) -> tuple[str, dict]:
    """A checkout attempt whose creation was answered 500 (its key keeps the 500), then 150
    other PaymentIntents: the attempt's is on the list's second page now (with 250, its third),
    as after a reload hours later in a busy shop."""
    attempt = str(uuid.uuid4())
    emu.faults.fail("500", path="/v1/payment_intents", method="POST", times=1)
    first = gateway.create_intent(BOOK, attempt_id=attempt)
    assert emu.faults.injected == {"500": 1}
    for n in range(others):
        emu.api("POST", "/v1/payment_intents", {"amount": 100 + n, "currency": "usd"})
    assert intents(emu).index(first["id"]) >= others // 100 * 100
    return attempt, first


def spied(gateway, monkeypatch) -> list[str | None]:
    """Where each list the gateway starts begins: ``starting_after`` (None: the newest)."""
    starts: list[str | None] = []
    iter_intents = gateway.iter_intents

    def spy(**kwargs):
        starts.append(kwargs.get("starting_after"))
        return iter_intents(**kwargs)

    monkeypatch.setattr(gateway, "iter_intents", spy)
    return starts


def listed_in_log(caplog) -> list[int]:
    """How many PaymentIntents each look that ran out had read, as the server's log says."""
    return [
        int(record.getMessage().split("stopped after ")[1].split()[0])
        for record in caplog.records
        if record.name == "bookpay.payments" and "stopped after" in record.getMessage()
    ]


def test_a_list_longer_than_its_budget_is_unavailable_and_makes_no_second_intent(
    emu, gateway, caplog
):
    attempt, first = made_long_ago(emu, gateway)
    before = intents(emu)
    emu.faults.rates(latency=str(LATENCY_MS))  # Stripe slow: one page of the list fits the budget
    started = time.monotonic()
    with pytest.raises(StripeUnavailable) as unavailable:
        gateway.create_intent(BOOK, attempt_id=attempt)
    took = time.monotonic() - started
    emu.faults.clear()
    # Not taken for "nothing was made": the key's next generation made no second intent.
    assert intents(emu) == before
    assert getattr(unavailable.value, "outcome_unknown", False)
    assert not getattr(unavailable.value, "replayed", False)
    # How many it read (how many PaymentIntents the shop made lately) is for the log only: the
    # message is what a shopper's browser is sent.
    assert unavailable.value.message == (
        f"The emulator at {emu.url} answered the PaymentIntent's creation with a 500, and "
        f"listing the PaymentIntents it may have made took more than {BUDGET:g} s: whether it "
        "was made is not known yet (the next try goes on from there)."
    )
    assert listed_in_log(caplog) == [100]
    assert unavailable.value.hint.startswith("Try again in a moment")
    assert unavailable.value.http_status == 503 and unavailable.value.exit_code == 4
    # The creation (a replayed 500, not retried) and one page, then no page more.
    assert took < 2 * LATENCY_MS / 1000 + BUDGET
    # Once Stripe answers in time, the same attempt finds its PaymentIntent: still one.
    again = gateway.create_intent(BOOK, attempt_id=attempt)
    assert again["id"] == first["id"]
    assert intents(emu) == before


def test_a_list_that_ends_in_its_budget_finds_the_attempts_intent(emu, gateway):
    attempt, first = made_long_ago(emu, gateway)
    count = len(intents(emu))
    found = gateway.create_intent(BOOK, attempt_id=attempt)  # a reload: the key replays its 500
    assert found["id"] == first["id"]
    assert found["metadata"]["attempt_id"] == attempt
    assert len(intents(emu)) == count


def test_a_cli_creation_behind_a_500_lists_only_from_its_own_start(emu, gateway, monkeypatch):
    """Its key is new to the call: nothing older than the call can have been made under it."""
    listed: list[dict] = []
    iter_intents = gateway.iter_intents

    def spy(**kwargs):
        listed.append(kwargs.get("created") or {})
        return iter_intents(**kwargs)

    monkeypatch.setattr(gateway, "iter_intents", spy)
    emu.faults.fail("500", path="/v1/payment_intents", method="POST", times=1)
    started = int(time.time())
    created = gateway.create_intent(BOOK)
    assert emu.faults.injected == {"500": 1}
    assert intents(emu) == [created["id"]]
    assert len(listed) == 1
    assert started - CLOCK_MARGIN <= listed[0]["gte"] <= int(time.time()) - CLOCK_MARGIN


def test_the_checkout_answers_503_while_the_list_is_too_slow_then_the_same_intent(emu, caplog):
    """The shop's own path: the attempt's creation answered 500 and the look behind it failed
    (the shopper saw a 503), and the shop took 150 orders since; its reload behind the
    replayed 500 is a 503 while Stripe stays slow, its intent once Stripe is fast again."""
    from bookpay import testing

    with testing.shop(emu, stripe_limits=StripeLimits(total_timeout=BUDGET)) as shop:
        attempt = str(uuid.uuid4())
        body = {"item": "1", "attemptId": attempt}
        emu.faults.fail("500", path="/v1/payment_intents", method="POST", times=1)
        # The look's 500 asks a wait its budget cannot afford: it fails at once.
        emu.faults.fail("500", path="/v1/payment_intents", method="GET", times=1, retry_after=30)
        assert shop.request("POST", "/create-payment-intent", body).status == 503
        emu.faults.clear()
        made = intents(emu)
        assert len(made) == 1  # the 500 came after the creation ran
        for n in range(150):
            emu.api("POST", "/v1/payment_intents", {"amount": 100 + n, "currency": "usd"})
        before = intents(emu)
        emu.faults.rates(latency=str(LATENCY_MS))
        answer = shop.request("POST", "/create-payment-intent", body)
        emu.faults.clear()
        assert answer.status == 503
        assert int(answer.headers["Retry-After"]) >= 1
        error = answer.json()["error"]
        assert error["code"] == "stripe_unavailable"
        assert "is not known yet" in error["message"]
        assert "whether it was made is not known yet" in caplog.text  # the log says why
        # How many PaymentIntents the shop made in a day is none of a browser's business.
        assert "listed" not in error["message"] and "100" not in json.dumps(answer.json())
        assert listed_in_log(caplog) == [100]  # the server's log has it
        assert intents(emu) == before  # no second PaymentIntent under the key's next generation
        created = shop.checkout("1", attempt_id=attempt)  # the page's "Try again"
        assert created["paymentIntentId"] == made[0]
        assert intents(emu) == before


def test_a_cli_creation_whose_list_hangs_says_where_to_look(emu, gateway):
    """A new key per CLI call: trying again would make another PaymentIntent, so the error says
    where to look first."""
    emu.faults.fail("500", path="/v1/payment_intents", method="POST", times=1)
    emu.faults.fail("timeout", path="/v1/payment_intents", method="GET", seconds=5)
    started = time.monotonic()
    with pytest.raises(StripeUnavailable) as unavailable:
        gateway.create_intent(BOOK)
    # The creation's budget (a retry of the 500 and its back-off), then the list's: never the
    # 5 s the list's page hangs.
    assert time.monotonic() - started < 3 * BUDGET
    assert "whether it was made is not known yet" in unavailable.value.message
    assert unavailable.value.hint == (
        "It may have been made all the same: see `bookpay intent list` before creating it again."
    )


def test_each_try_goes_on_with_the_list_where_the_last_one_stopped(emu, gateway, caplog):
    """More PaymentIntents since the attempt's than one budget lists (one page here: the
    attempt's is on the third): each try lists the next page, not the first one again, and
    the third finds the attempt's PaymentIntent while Stripe is still slow."""
    attempt, first = made_long_ago(emu, gateway, others=250)
    before = intents(emu)
    emu.faults.rates(latency=str(LATENCY_MS))
    said: list[str] = []
    found = None
    for _ in range(5):
        try:
            found = gateway.create_intent(BOOK, attempt_id=attempt)
            break
        except StripeUnavailable as unavailable:
            assert getattr(unavailable, "outcome_unknown", False)
            said.append(unavailable.message)
    emu.faults.clear()
    assert found is not None and found["id"] == first["id"]
    # A page a try (a loaded machine may list none in one): never from the newest again.
    listed = listed_in_log(caplog)
    assert len(listed) == len(said) >= 2 and listed == sorted(listed) and listed[-1] == 200
    assert listed[0] == 100
    assert all(message.endswith("(the next try goes on from there).") for message in said)
    assert intents(emu) == before  # never a second PaymentIntent


def test_a_look_that_finds_the_intent_as_the_keys_bound_runs_out_answers_it(
    emu, gateway, monkeypatch
):
    """The page holding the attempt's PaymentIntent comes back with less of the key's bound
    left than a call takes (a slow Stripe, a loaded machine): that page is the answer. Fetched
    again, the PaymentIntent's call was cut short by the bound and failed the try that had
    found it, and the look, over, forgot its place: the next try listed from the newest again,
    and a Stripe slow enough never got back to it."""
    # The creation's replayed 500 and a page leave 0.4 s of the bound: a call takes 0.6.
    monkeypatch.setattr(payments, "KEYED_BUDGETS", 1.6)
    attempt, first = made_long_ago(emu, gateway, others=0)
    emu.faults.rates(latency=str(LATENCY_MS))
    found = gateway.create_intent(BOOK, attempt_id=attempt)
    emu.faults.clear()
    assert found["id"] == first["id"]
    assert found["metadata"]["attempt_id"] == attempt
    assert found["status"] == "requires_payment_method"
    assert intents(emu) == [first["id"]]


def test_two_threads_looking_for_one_attempt_at_once_both_get_its_intent(emu, gateway):
    """Two requests of one attempt at once (a double click), each behind the replayed 500, on
    one gateway: each try goes on from where either got to, and both get the one intent. (One
    may meet the other's request still executing under the key, a 409 as Stripe answers: it
    tries again in the next round, from the newest once the other's look has found it.)"""
    attempt, first = made_long_ago(emu, gateway, others=250)
    before = intents(emu)
    emu.faults.rates(latency=str(LATENCY_MS))
    got: dict[int, str] = {}
    failures: list[BaseException] = []

    def one_try(n: int, start: threading.Barrier) -> None:
        start.wait()
        try:
            got[n] = gateway.create_intent(BOOK, attempt_id=attempt)["id"]
        except StripeUnavailable:
            pass
        except Exception as exc:  # failed in its thread: the test says so
            failures.append(exc)

    for _ in range(8):
        waiting = [n for n in range(2) if n not in got]
        start = threading.Barrier(len(waiting))
        threads = [threading.Thread(target=one_try, args=(n, start)) for n in waiting]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        if len(got) == 2:
            break
    emu.faults.clear()
    assert not failures
    assert got == {0: first["id"], 1: first["id"]}
    assert intents(emu) == before


def test_a_look_that_found_the_intent_forgets_where_it_was(emu, gateway, monkeypatch):
    """The first try stops after a page; the next goes on from there and finds the attempt's
    PaymentIntent; the look is over: the one after that (the 500 is still replayed) starts
    from the newest again."""
    attempt, first = made_long_ago(emu, gateway)
    starts = spied(gateway, monkeypatch)
    emu.faults.rates(latency=str(LATENCY_MS))
    with pytest.raises(StripeUnavailable):
        gateway.create_intent(BOOK, attempt_id=attempt)
    emu.faults.clear()
    assert gateway.create_intent(BOOK, attempt_id=attempt)["id"] == first["id"]
    assert gateway.create_intent(BOOK, attempt_id=attempt)["id"] == first["id"]
    assert starts[0] is None
    assert starts[1] == intents(emu)[99]  # the last one the first try read
    assert starts[2] is None


def test_a_look_whose_place_stripe_no_longer_knows_starts_from_the_newest(
    emu, gateway, monkeypatch
):
    """Stripe forgot the PaymentIntent a look stopped at (the emulator reset: in Stripe, test
    data deleted): Stripe refuses it as ``starting_after`` (400, resource_missing), and the
    look starts again from the newest, instead of failing the checkout with a 404."""
    attempt, _ = made_long_ago(emu, gateway)
    emu.faults.rates(latency=str(LATENCY_MS))
    with pytest.raises(StripeUnavailable):
        gateway.create_intent(BOOK, attempt_id=attempt)
    emu.faults.clear()
    emu.reset()  # every object and key gone: the next creation runs, and its 500 is kept again
    starts = spied(gateway, monkeypatch)
    emu.faults.fail("500", path="/v1/payment_intents", method="POST", times=1)
    again = gateway.create_intent(BOOK, attempt_id=attempt)
    assert emu.faults.injected == {"500": 1}
    assert intents(emu) == [again["id"]]
    assert again["metadata"]["attempt_id"] == attempt
    assert len(starts) == 2 and starts[0] is not None and starts[1] is None


def test_the_looks_kept_are_bounded_and_die_with_their_key():
    """At most so many keys, the least recently kept dropped; none older than a key's life;
    a later generation's look is not gone on with from an earlier one's place (a PaymentIntent
    made under the later generation may be newer than that look's start)."""
    walks = _Walks(size=2)
    now = time.time()
    for key in ("a", "b", "c"):
        walks.keep(key, _Walk(generation=0, since=0, started=now, cursor=f"pi_{key}"))
    assert "a" not in walks and "b" in walks and "c" in walks
    walks.keep("old", _Walk(generation=0, since=0, started=now - KEY_LIFE - 1, cursor="pi_o"))
    assert walks.resume("old", 0) is None
    assert "b" in walks  # the expired one took no one's place
    walks.keep("b", None)
    assert "b" not in walks
    walks.keep("g", _Walk(generation=1, since=0, started=now, cursor="pi_g"))
    assert walks.resume("g", 0).cursor == "pi_g"  # begun after the later 500: it covers both
    assert walks.resume("g", 1).cursor == "pi_g"
    assert walks.resume("g", 2) is None


def breaker_outcomes(gateway, monkeypatch) -> list[str]:
    """What the circuit breaker is told of each call, in order."""
    told: list[str] = []
    breaker = gateway.guard.breaker
    for name in ("record_success", "record_failure", "abandon"):
        method = getattr(breaker, name)

        def spy(permit=None, _name=name, _method=method):
            told.append(_name)
            return _method(permit)

        monkeypatch.setattr(breaker, name, spy)
    return told


def test_a_page_cut_short_by_the_walks_own_deadline_is_no_failure_of_stripes(
    emu, tmp_path, monkeypatch
):
    """Stripe answers every page in a second; the walk's budget leaves 0.9 s for its second:
    the page is cut by bookpay's own deadline, which says nothing of Stripe. The breaker
    counts it neither way (a half-open probe it were would have reopened the breaker)."""
    latency = 1.0  # a floor: the second page cannot come back before the walk's deadline
    limits = StripeLimits(total_timeout=2 * latency - 0.1)
    made = Gateway(Settings(data_dir=tmp_path / "d", emulator_url=emu.url, stripe_limits=limits))
    try:
        attempt, _ = made_long_ago(emu, made)
        told = breaker_outcomes(made, monkeypatch)
        emu.faults.rates(latency=str(int(latency * 1000)))
        with pytest.raises(StripeUnavailable) as unavailable:
            made.create_intent(BOOK, attempt_id=attempt)
        emu.faults.clear()
    finally:
        made.close()
    assert "took more than 1.9 s" in unavailable.value.message
    # The creation's replayed 500 (Stripe failing), the first page (Stripe answering), the
    # second page cut short: neither.
    assert told == ["record_failure", "record_success", "abandon"]


HINT = "It may have been made all the same: see `bookpay intent list` before creating it again."


@pytest.mark.parametrize(
    ("fault", "cause", "code"),
    [
        ("500", "could not handle the request (500: An unknown error occurred)", None),
        ("429", "is limiting the rate of requests (429: Request rate limit exceeded", None),
        ("breaker", "failed repeatedly; not trying again for", "stripe_circuit_open"),
    ],
)
def test_a_cli_creation_whose_list_fails_says_where_to_look(emu, tmp_path, fault, cause, code):
    """Its list failing (not running out) leaves it as unknown: the CLI's next try is a new
    creation (a key of its own), so the error says where to look first, whatever failed."""
    limits = StripeLimits(total_timeout=BUDGET, failure_threshold=1 if fault == "breaker" else 5)
    made = Gateway(Settings(data_dir=tmp_path / "d", emulator_url=emu.url, stripe_limits=limits))
    emu.faults.fail("500", path="/v1/payment_intents", method="POST", times=1)
    if fault == "500":
        emu.faults.fail("500", path="/v1/payment_intents", method="GET")
    elif fault == "429":
        emu.faults.fail("429", path="/v1/payment_intents", method="GET", retry_after=30)
    try:
        with pytest.raises(StripeUnavailable) as unavailable:
            made.create_intent(BOOK)
    finally:
        made.close()
        emu.faults.clear()
    assert len(intents(emu)) == 1  # it was made
    failed = unavailable.value
    assert failed.message.startswith(
        f"The emulator at {emu.url} answered the PaymentIntent's creation with a 500, and "
        "listing the PaymentIntents it may have made failed: whether it was made is not known "
        "yet. The emulator at "
    )
    assert cause in failed.message  # what failed the list, kept
    assert isinstance(failed.__cause__, StripeUnavailable)
    assert failed.hint == HINT
    assert getattr(failed, "outcome_unknown", False) and failed.exit_code == 4
    assert failed.code == (code or "stripe_unavailable")
    assert failed.retry_after == (30 if fault == "429" else failed.__cause__.retry_after)


def test_the_cli_exits_4_with_the_hint_when_the_list_fails(emu, tmp_path):
    from typer.testing import CliRunner

    from bookpay.cli import app

    emu.faults.fail("500", path="/v1/payment_intents", method="POST", times=1)
    emu.faults.fail("500", path="/v1/payment_intents", method="GET")
    env = {"BOOKPAY_EMULATOR_URL": emu.url, "BOOKPAY_DATA_DIR": str(tmp_path)}
    result = CliRunner().invoke(app, ["intent", "create", "--item", "1"], env=env)
    assert result.exit_code == 4
    assert "whether it was made is not known yet" in result.stderr
    assert "see `bookpay intent list` before creating it again" in result.stderr


def test_a_checkout_whose_list_fails_says_so_and_keeps_the_failures_code(emu, tmp_path):
    """A checkout's next try is the same creation (the attempt's key): its error says the
    outcome is not known yet, to try again, and keeps the code the page acts on."""
    limits = StripeLimits(total_timeout=BUDGET, failure_threshold=1)
    made = Gateway(Settings(data_dir=tmp_path / "d", emulator_url=emu.url, stripe_limits=limits))
    emu.faults.fail("500", path="/v1/payment_intents", method="POST", times=1)
    try:
        with pytest.raises(StripeUnavailable) as unavailable:
            made.create_intent(BOOK, attempt_id=str(uuid.uuid4()))
    finally:
        made.close()
    failed = unavailable.value
    assert "listing the PaymentIntents it may have made failed: whether it was made is not " in (
        failed.message
    )
    assert failed.code == "stripe_circuit_open" and failed.http_status == 503
    assert failed.hint.startswith("Try again in a moment")


def bound_ran_out(url: str, seconds: float) -> str:
    """What a creation says when its key's bound (``seconds`` in all) ran out after a 500."""
    return (
        f"The emulator at {url} answered the PaymentIntent's creation with a 500, and "
        "finding out whether it was made (and making it under the key's next generations) took "
        f"more than {seconds:g} s in all: whether it was made is not known yet."
    )


def test_a_creation_behind_replayed_500s_has_two_budgets_in_all(emu, tmp_path, monkeypatch):
    """Every creation answers 500 (after it ran) and each look finds nothing (as when Stripe's
    500 came before the creation ran: the emulator's never do, so the look is made blind to
    them): without a bound in all, the key's four generations, each a creation retried and a
    look, held the request for four times as long. A budget of its own, with room for a
    creation and a page on a loaded machine (the first must be answered in it)."""
    budget = 2.5
    limits = StripeLimits(total_timeout=budget)
    gateway = Gateway(Settings(data_dir=tmp_path / "d", emulator_url=emu.url, stripe_limits=limits))
    iter_intents = gateway.iter_intents

    def blind(**kwargs):
        # The key's next generation will meet a 500 too (kept: Stripe-Should-Retry: false).
        emu.faults.fail("500", path="/v1/payment_intents", method="POST", times=1)
        pages = iter_intents(**kwargs)
        return (intent for intent in pages if "attempt_id" not in intent["metadata"])

    monkeypatch.setattr(gateway, "iter_intents", blind)
    emu.faults.fail("500", path="/v1/payment_intents", method="POST", times=1)
    emu.faults.rates(latency="800")  # a creation, then a page: ~1.6 s a generation
    started = time.monotonic()
    try:
        with pytest.raises(StripeUnavailable) as unavailable:
            gateway.create_intent(BOOK, attempt_id=str(uuid.uuid4()))
    finally:
        gateway.close()
    took = time.monotonic() - started
    emu.faults.clear()
    assert took < 2 * budget + 0.5  # four generations take about 6.5 s
    assert unavailable.value.message == bound_ran_out(emu.url, 2 * budget)
    assert getattr(unavailable.value, "outcome_unknown", False)
    assert unavailable.value.hint.startswith("Try again in a moment")


def test_a_later_generations_500_the_bound_leaves_no_time_to_retry_is_the_bound_running_out(
    emu, gateway, monkeypatch
):
    """The key's next generation answers 500 with less of the bound left than a retry needs,
    as on a loaded machine: whether the key kept that 500 is not learnt, and the bound ended
    the request. It says so, as any other end of the bound does, not the 500 alone (which
    one it was depended on how slow the machine was)."""
    # The bound ends before the next generation's own call budget does: it is what is left.
    monkeypatch.setattr(payments, "KEYED_BUDGETS", 1.2)
    bound = 1.2 * BUDGET
    started = time.monotonic()

    def nothing_made(**kwargs):
        # The creation's next generation meets a 500 too, answered 0.25 s before the bound ends
        # (one asking a wait: a retry is what would tell whether the key kept it).
        emu.faults.fail("500", path="/v1/payment_intents", method="POST", times=1, retry_after=1)
        left = started + bound - time.monotonic()
        emu.faults.rates(latency=str(max(0, int((left - 0.25) * 1000))))
        return iter(())

    monkeypatch.setattr(gateway, "iter_intents", nothing_made)
    emu.faults.fail("500", path="/v1/payment_intents", method="POST", times=1)
    with pytest.raises(StripeUnavailable) as unavailable:
        gateway.create_intent(BOOK, attempt_id=str(uuid.uuid4()))
    emu.faults.clear()
    assert unavailable.value.message == bound_ran_out(emu.url, bound)
    assert getattr(unavailable.value, "outcome_unknown", False)
    assert unavailable.value.hint.startswith("Try again in a moment")


def test_a_cli_creation_sent_and_not_answered_says_where_to_look(emu, gateway):
    """A 500 its budget cannot retry (it would wait longer than the budget asks): the
    creation ran, and the CLI's next run would be another, so the error says where to look."""
    emu.faults.fail("500", path="/v1/payment_intents", method="POST", times=1, retry_after=30)
    with pytest.raises(StripeUnavailable) as unavailable:
        gateway.create_intent(BOOK)
    assert "could not handle the request (500" in unavailable.value.message
    assert unavailable.value.hint == HINT
    assert len(intents(emu)) == 1  # it was made


def test_a_cli_creation_whose_look_meets_a_refused_key_keeps_its_exit_code(
    emu, gateway, monkeypatch
):
    """The key refused while the look behind a replayed 500 lists (revoked meanwhile): it may
    have been made, and it is a configuration problem (exit 5), not Stripe unavailable (4)."""
    emu.faults.fail("500", path="/v1/payment_intents", method="POST", times=1)

    def revoked(**kwargs):
        with gateway._translate():
            raise stripe.AuthenticationError(
                "Invalid API Key provided: sk_test_***1234", http_status=401
            )

    monkeypatch.setattr(gateway, "iter_intents", revoked)
    with pytest.raises(StripeUnavailable) as unknown:
        gateway.create_intent(BOOK)
    failed = unknown.value
    assert "whether it was made is not known yet" in failed.message
    assert "refused the API key" in failed.message
    assert failed.exit_code == 5 and failed.code == "configuration_error"
    assert failed.hint.startswith(HINT)
    assert getattr(failed, "outcome_unknown", False)


def test_a_look_cut_by_the_keys_bound_is_outcome_unknown_and_says_its_time(
    emu, tmp_path, monkeypatch
):
    """A refund's look for what its replayed 500 left unknown, cut short by the bound of all
    the key's calls (not by Stripe): that is the bound running out, whether it was done not
    known yet; and the page cut short says the time it had, not the call's whole budget."""
    monkeypatch.setattr(payments, "KEYED_BUDGETS", 1)  # the look starts with less than a call's
    limits = StripeLimits(total_timeout=2.0)
    made = Gateway(Settings(data_dir=tmp_path / "d", emulator_url=emu.url, stripe_limits=limits))
    intent = paid(emu)
    # A 500 asking a second's wait (so not Stripe-Should-Retry: false): retried after it and
    # replayed, the look begins with a second less than the bound.
    emu.faults.fail("500", path="/v1/refunds", method="POST", times=1, retry_after=1)
    find = made.find_refund_request
    looks: list[str] = []

    def look(intent_id: str, request_id: str):
        looks.append(request_id)
        if len(looks) == 2:  # the look behind the 500 (the first: whether it was asked before)
            emu.faults.fail("timeout", path="/v1/refunds", method="GET", seconds=5)
        return find(intent_id, request_id)

    monkeypatch.setattr(made, "find_refund_request", look)
    try:
        with pytest.raises(StripeUnavailable) as unavailable:
            made.create_refund(intent["id"], amount=500, request_id="T-cut")
    finally:
        made.close()
        emu.faults.clear()
    assert len(looks) == 2
    failed = unavailable.value
    assert failed.message == (
        f"The emulator at {emu.url} answered the request with a 500, and finding out whether it "
        "was done (and sending it again under the key's next generations) took more than 2 s in "
        "all: whether it was done is not known yet."
    )
    assert getattr(failed, "outcome_unknown", False)
    cut = failed.__cause__
    assert isinstance(cut, StripeUnavailable) and getattr(cut, "cut_short", False)
    had = float(cut.message.split("no answer within ")[1].split(" s")[0])
    assert had < 2.0, cut.message  # what was left of the bound, not the call's 2 s


def test_a_look_held_to_the_keys_bound_that_runs_out_says_the_bound_ran_out(
    emu, tmp_path, monkeypatch
):
    """The look starts late in the key's bound (the creation and its retry were slow), so the
    bound's deadline comes before the look's own: when it cuts the look, the answer is the
    bound's ("... in all"), whatever the machine's speed, not a look that "took more than" the
    few tenths of a second it was left."""
    limits = StripeLimits(total_timeout=2.0)
    made = Gateway(Settings(data_dir=tmp_path / "d", emulator_url=emu.url, stripe_limits=limits))
    try:
        attempt, _ = made_long_ago(emu, made, others=250)
        walk = made._walk

        @contextlib.contextmanager
        def late(unfinished):  # the look begins with ~0.9 s of the 4 s bound left
            time.sleep(max(0.0, made._budget.left() - 0.9))
            with walk(unfinished):
                yield

        monkeypatch.setattr(made, "_walk", late)
        emu.faults.rates(latency="700")  # one page fits in what is left, not two
        with pytest.raises(StripeUnavailable) as unavailable:
            made.create_intent(BOOK, attempt_id=attempt)
        emu.faults.clear()
    finally:
        made.close()
    assert unavailable.value.message == bound_ran_out(emu.url, 4)
