"""Checkouts in Stripe's bad minutes: every attempt charged once, refunded once, or a clear 503.

Run: ``python -m bench faults`` (``BENCH_FAULT_ATTEMPTS``, default 1,000; ``BENCH_FAULT_SEED``).

`bookpay serve` (its defaults) runs against the emulator in a process of its own, answering
``FAULTS`` (5% 500s and 1% connection resets after the call has run, 2% 429s before it; seeded).
Each checkout attempt, 16 at a time, is what a shopper's browser and the shop do:

1. ``POST /create-payment-intent`` with a new attempt id (the shop's gateway: idempotency key
   from the attempt, stripe-python's retries), and again, as a reload of the page would: the
   same PaymentIntent both times;
2. a confirm with ``pm_card_visa`` through bookpay's gateway (as ``bookpay intent confirm``:
   a key of its own, retried);
3. a refund request (``bookpay refund create --request-id``), made twice, as an impatient
   support engineer would.

Then, with the faults cleared, the emulator is asked what happened. Targets: at least 99% of
the attempts succeed; the emulator holds exactly one PaymentIntent per attempt (none for an
attempt whose create failed is allowed, never two); every paid charge has exactly one refund;
every failure is a 503 with a JSON error and Retry-After (or the gateway's StripeUnavailable).
The same attempts against a perfect emulator run first, side by side, for the time it costs.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import local

from bench.common import Client, emulator_process, shop_process

FAULTS = "500=5%,429=2%,reset=1%"
ATTEMPTS = int(os.environ.get("BENCH_FAULT_ATTEMPTS", "1000"))
SEED = int(os.environ.get("BENCH_FAULT_SEED", "7"))
CONCURRENCY = 16
SUCCESS_TARGET = 0.99
KEY = "sk_test_bench_faults"


def attempt_ids(count: int, seed: int) -> list[str]:
    """Attempt ids as the page makes them (UUID4), from the seed: the same run every time."""
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]


def run_checkouts(
    shop_url: str, emulator_url: str, attempts: list[str], *, concurrency: int = CONCURRENCY
) -> dict:
    """Each attempt: create through the shop, confirm and refund (twice) through the gateway.

    Returns what each attempt came to: ``{"paid": [...], "failures": [(step, what)], ...}``.
    """
    from bookpay.config import Settings
    from bookpay.errors import BookpayError
    from bookpay.payments import Gateway

    with tempfile.TemporaryDirectory() as folder:
        gateway = Gateway(Settings(data_dir=Path(folder), emulator_url=emulator_url))
        clients = local()

        def one(attempt: str) -> tuple[str, str | None, str | None]:
            """(attempt, the PaymentIntent if paid, what failed otherwise)."""
            if not hasattr(clients, "shop"):
                clients.shop = Client(shop_url)
            body = {"item": "1", "attemptId": attempt}
            status, headers, answer, _ = clients.shop.request(
                "POST", "/create-payment-intent", body
            )
            if status != 200:
                return (
                    attempt,
                    None,
                    f"create: {status} {_error_code(answer)}"
                    + ("" if headers.get("Retry-After") else " (no Retry-After)"),
                )
            intent = json.loads(answer)["paymentIntentId"]
            # The shopper reloads the page: the same attempt must get the same PaymentIntent.
            status, _, again, _ = clients.shop.request("POST", "/create-payment-intent", body)
            if status == 200 and json.loads(again)["paymentIntentId"] != intent:
                return attempt, None, "reload: another PaymentIntent for the same attempt"
            try:
                confirmed = gateway.confirm_intent(intent, payment_method="pm_card_visa")
            except BookpayError as exc:
                return attempt, None, f"confirm: {type(exc).__name__} {exc.code}"
            if confirmed["status"] != "succeeded":
                return attempt, None, f"confirm: {confirmed['status']}"
            refund_failure = None
            for _ in range(2):  # the same refund request, twice
                try:
                    gateway.create_refund(intent, request_id=f"refund-{attempt}")
                except BookpayError as exc:
                    refund_failure = f"refund: {type(exc).__name__} {exc.code}"
            return attempt, intent, refund_failure

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            outcomes = list(pool.map(one, attempts))
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "paid": {attempt: intent for attempt, intent, _ in outcomes if intent},
        "failures": [(attempt, what) for attempt, _, what in outcomes if what],
    }


def what_stripe_holds(emulator_url: str, attempts: list[str]) -> dict:
    """PaymentIntents per attempt and refunds per charge, read with the faults cleared."""
    _control(emulator_url, "DELETE", "faults")
    wanted = set(attempts)
    per_attempt: Counter[str] = Counter()
    refunds_per_intent: Counter[str] = Counter()
    for intent in _every(emulator_url, "/v1/payment_intents"):
        attempt = (intent.get("metadata") or {}).get("attempt_id")
        if attempt in wanted:
            per_attempt[attempt] += 1
    for refund in _every(emulator_url, "/v1/refunds"):
        refunds_per_intent[refund["payment_intent"]] += 1
    return {"intents_per_attempt": per_attempt, "refunds_per_intent": refunds_per_intent}


def judge(attempts: list[str], ran: dict, held: dict) -> dict:
    """The figures and whether each target is met."""
    per_attempt = held["intents_per_attempt"]
    refunds = held["refunds_per_intent"]
    paid = ran["paid"]
    failed_creates = {a for a, what in ran["failures"] if what.startswith("create")}
    unavailable = ("StripeUnavailable", "Busy", "CircuitOpen")
    clear = all(
        (
            what.startswith("create: 503 stripe_")
            or what.split(": ", 1)[-1].split(" ")[0] in unavailable
        )
        and what.split(": ", 1)[0] in ("create", "confirm", "refund")
        and "no Retry-After" not in what
        for _, what in ran["failures"]
    )
    return {
        "attempts": len(attempts),
        "succeeded": len(paid),
        "success_rate": len(paid) / len(attempts),
        "failures": Counter(what for _, what in ran["failures"]),
        "failures_are_clear_503s": clear,
        "attempts_with_two_or_more_intents": sum(1 for a in attempts if per_attempt[a] > 1),
        "attempts_without_intent": sorted(a for a in attempts if per_attempt[a] == 0),
        "attempts_without_intent_that_had_failed": all(
            a in failed_creates for a in attempts if per_attempt[a] == 0
        ),
        "paid_without_one_refund": sum(1 for intent in paid.values() if refunds[intent] != 1),
        "double_refunds": sum(1 for intent in paid.values() if refunds[intent] > 1),
        "seconds": ran["seconds"],
    }


def _error_code(answer: bytes) -> str:
    try:
        return str(json.loads(answer)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "(no JSON error)"


def _every(emulator_url: str, path: str):
    params = "limit=100"
    while True:
        page = _get(emulator_url, f"{path}?{params}")
        yield from page["data"]
        if not page["has_more"]:
            return
        params = f"limit=100&starting_after={page['data'][-1]['id']}"


def _get(emulator_url: str, path: str) -> dict:
    request = urllib.request.Request(
        emulator_url + path, headers={"Authorization": f"Bearer {KEY}"}
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


def _control(emulator_url: str, method: str, name: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{emulator_url}/_emulator/{name}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


def _one_run(label: str, options: str, attempts: list[str]) -> dict:
    with (
        tempfile.TemporaryDirectory() as folder,
        emulator_process(options) as (_, emulator_url),
        shop_process(emulator_url, Path(folder) / "shop", "--quiet") as shop,
    ):
        ran = run_checkouts(shop.url, emulator_url, attempts)
        injected = _control(emulator_url, "GET", "faults")["injected"]
        held = what_stripe_holds(emulator_url, attempts)
    figures = judge(attempts, ran, held)
    figures["injected"] = injected
    print(
        f"{label:<22}{figures['succeeded']:>6}/{figures['attempts']:<6}"
        f"{figures['success_rate']:>8.1%}{figures['attempts_with_two_or_more_intents']:>7}"
        f"{figures['double_refunds']:>8}{figures['seconds']:>9.1f}  "
        f"{', '.join(f'{k} {v}' for k, v in sorted(injected.items())) or '-'}"
    )
    return figures


def main() -> dict:
    attempts = attempt_ids(ATTEMPTS, SEED)
    print(f"{ATTEMPTS} checkout attempts, {CONCURRENCY} at a time; faults {FAULTS}, seed {SEED}")
    print(
        f"{'emulator':<22}{'paid':>13}{'rate':>8}{'2+ PIs':>7}{'2 refs':>8}{'seconds':>9}  injected"
    )
    perfect = _one_run("perfect", "", attempt_ids(ATTEMPTS, SEED + 1))
    faulty = _one_run("with faults", f"faults={FAULTS!r}, seed={SEED}", attempts)
    for what, count in sorted(faulty["failures"].items()):
        print(f"  failed: {count} x {what}")
    met = (
        faulty["success_rate"] >= SUCCESS_TARGET
        and faulty["attempts_with_two_or_more_intents"] == 0
        and faulty["attempts_without_intent_that_had_failed"]
        and faulty["double_refunds"] == 0
        and faulty["paid_without_one_refund"] == 0
        and faulty["failures_are_clear_503s"]
    )
    ratio = faulty["seconds"] / perfect["seconds"]
    print(
        f"success {faulty['success_rate']:.1%} (target >= {SUCCESS_TARGET:.0%}); one PaymentIntent "
        f"per attempt: {faulty['attempts_with_two_or_more_intents'] == 0}; double refunds: "
        f"{faulty['double_refunds']}; failures clear 503s: {faulty['failures_are_clear_503s']}; "
        f"time with faults / without: {ratio:.2f}; targets {'met' if met else 'NOT met'}"
    )
    keep = ("attempts", "succeeded", "success_rate", "attempts_with_two_or_more_intents",
            "double_refunds", "paid_without_one_refund", "failures_are_clear_503s", "seconds",
            "injected")  # fmt: skip
    return {
        "faults": FAULTS,
        "seed": SEED,
        "concurrency": CONCURRENCY,
        "perfect": {k: perfect[k] for k in keep},
        "with_faults": {**{k: faulty[k] for k in keep}, "failures": dict(faulty["failures"])},
        "time_ratio": round(ratio, 2),
        "targets_met": met,
    }


if __name__ == "__main__":
    main()
