"""The fault benchmark at a small scale (`python -m bench faults` runs 1,000): 60 seeded
checkout attempts against an emulator answering 5% 500s, 2% 429s and 1% dropped connections.
Each attempt is charged once and refunded once, or fails with a clear 503: a gateway or a shop
that lost its idempotency keys would make a second PaymentIntent or a second refund here."""

from __future__ import annotations

import sys
from pathlib import Path

from bookpay import testing

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the benchmark's own run and checks, not a second version

from bench.bench_faults import FAULTS, attempt_ids, judge, run_checkouts, what_stripe_holds  # noqa: E402

ATTEMPTS = 60
SEED = 7


def test_checkouts_under_faults_charge_once_refund_once_or_fail_clearly(monkeypatch):
    import stripe

    # stripe-python's back-off before a retry (0.5 s, doubling): the run's time went to it. A
    # tenth of it retries the same calls under the same keys; what is judged is what they did.
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.05)
    attempts = attempt_ids(ATTEMPTS, SEED)
    with testing.emulator(faults=FAULTS, seed=SEED) as emulator, testing.shop(emulator) as shop:
        ran = run_checkouts(shop.url, emulator.url, attempts, concurrency=4)
        injected = emulator.faults.injected
        held = what_stripe_holds(emulator.url, attempts)
    figures = judge(attempts, ran, held)
    # The run met faults after calls had run, where only an idempotency key saves the caller.
    assert injected.get("500", 0) + injected.get("reset", 0) >= 5, injected
    assert injected.get("429", 0) >= 1, injected
    assert figures["attempts_with_two_or_more_intents"] == 0
    assert figures["attempts_without_intent_that_had_failed"]
    assert figures["double_refunds"] == 0
    assert figures["paid_without_one_refund"] == 0
    assert figures["failures_are_clear_503s"], figures["failures"]
    assert figures["succeeded"] >= ATTEMPTS - 2, figures["failures"]
