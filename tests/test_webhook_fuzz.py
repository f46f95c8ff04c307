"""Fuzzing POST /webhook: validly signed random and hostile bodies and headers, never a 5xx.

The app runs in-process (WSGI) over a real ledger and a fake Stripe that knows a few objects, so
mutated events reach every handler. Every case is built from its own seed, ``SEED:INDEX``: a
failure names it, and ``WEBHOOK_FUZZ_SEED=SEED pytest tests/test_webhook_fuzz.py`` replays the
run (``WEBHOOK_FUZZ_CASES`` sets how many cases).
"""

from __future__ import annotations

import copy
import json
import os
import random
import time

import pytest
from stripe_fakes import FakeGateway, charge, dispute, event, intent
from wsgi import call

from bookpay.catalog import Catalog
from bookpay.config import Settings
from bookpay.orders import Fulfiller, Ledger
from bookpay.replay import FIXTURES_DIR
from bookpay.server import create_app
from bookpay.webhooks import HANDLED, WebhookReceiver, sign

SECRET = "whsec_fuzz"
SEED = int(os.environ.get("WEBHOOK_FUZZ_SEED", "20260108"))
CASES = int(os.environ.get("WEBHOOK_FUZZ_CASES", "2400"))

HOSTILE_VALUES = [
    None,
    True,
    0,
    -1,
    10**20,
    -(10**20),
    2**63,
    1.5,
    float("inf"),
    "",
    "x",
    "pi_1",
    "ch_pi_1",
    "evt_\ud800",
    "\udfff",
    "\x00\x1b[2J\x07",
    "\u202e" * 3,
    "a" * 5000,
    "=cmd|'/C calc'!A0",
    [],
    [1, "2", None],
    {},
    {"id": None},
    {"id": "pi_1"},
    {"id": ["pi_1"]},
    {"object": "payment_intent", "id": "pi_1"},
]
FIELDS = [
    "id",
    "object",
    "type",
    "created",
    "livemode",
    "data",
    "amount",
    "amount_refunded",
    "amount_captured",
    "refunded",
    "payment_intent",
    "charge",
    "last_payment_error",
    "latest_charge",
    "metadata",
    "status",
    "reason",
    "item_id",
    "integration",
]


def base_events() -> list[dict]:
    """Well-formed events of every handled type about objects the fake Stripe knows."""
    refund = {"id": "re_1", "object": "refund", "charge": "ch_pi_1", "amount": 500}
    events = [
        event(kind, intent()) for kind in sorted(HANDLED) if kind.startswith("payment_intent.")
    ]
    events += [
        event("charge.refunded", charge(refunded=500)),
        event("charge.refund.updated", refund),
        event("refund.updated", refund),
        event("refund.failed", refund),
        event("charge.dispute.created", dispute(pi="pi_1")),
        event("customer.created", {"id": "cus_1", "object": "customer"}),
    ]
    events += [json.loads(path.read_text()) for path in sorted(FIXTURES_DIR.glob("*.json"))]
    return events


def random_json(rng: random.Random, depth: int = 0):
    roll = rng.random()
    if depth > 4 or roll < 0.5:
        return copy.deepcopy(rng.choice(HOSTILE_VALUES))  # a copy: mutate() edits in place
    if roll < 0.75:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(FIELDS): random_json(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def mutate(rng: random.Random, value, depth: int = 0):
    """``value`` with one field somewhere in it replaced, removed or added."""
    if isinstance(value, dict) and value and depth < 6:
        key = rng.choice(sorted(value, key=str))
        roll = rng.random()
        if roll < 0.45:
            value[key] = mutate(rng, value[key], depth + 1)
        elif roll < 0.75:
            value[key] = random_json(rng)
        elif roll < 0.85:
            del value[key]
        else:
            value[rng.choice(FIELDS)] = random_json(rng)
        return value
    if isinstance(value, list) and value and depth < 6:
        index = rng.randrange(len(value))
        value[index] = mutate(rng, value[index], depth + 1)
        return value
    return random_json(rng)


def deeply_nested(rng: random.Random) -> bytes:
    depth = rng.choice([500, 1000, 2000, 5000])
    opener, closer = rng.choice([(b"[", b"]"), (b'{"data": ', b"}")])
    inner = opener * depth + b"1" + closer * depth
    return b'{"id": "evt_deep", "type": "charge.refunded", "data": ' + inner + b"}"


def make_body(rng: random.Random, bases: list[dict]) -> bytes:
    roll = rng.random()
    if roll < 0.6:
        evt = json.loads(json.dumps(rng.choice(bases)))
        evt["id"] = f"evt_fuzz_{rng.randrange(10**9)}"  # mostly new events, handled in full
        for _ in range(rng.randint(0, 3)):  # 0: a well-formed event, handled in full
            evt = mutate(rng, evt)
        return json.dumps(evt, ensure_ascii=rng.random() < 0.7).encode("utf-8", "surrogatepass")
    if roll < 0.8:
        return json.dumps(random_json(rng)).encode()
    if roll < 0.9:
        return deeply_nested(rng)
    return bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))


def make_header(rng: random.Random, body: bytes) -> str:
    """Mostly a valid signature; sometimes one bent the ways real headers get bent."""
    stamp = int(time.time())
    good = sign(body, SECRET, stamp)
    sig = good.split("v1=", 1)[1]
    roll = rng.random()
    if roll < 0.8:
        return good
    variants = [
        f"t={stamp}=1,v1={sig}",
        f"t={stamp},t={stamp + 1},v1={sig}",
        f"t=x,t={stamp},v1={sig}",
        f"v1={sig},t={stamp}",
        f"t={stamp},v1=\u00e9{sig},v1={sig}",
        f"t={stamp},v1={sig},,,",
        f"t={'9' * 400},v1={sig}",
        f"t=-{stamp},v1={sig}",
        "t=,v1=",
        "",
        ",".join(["t=1"] * 2000),
        "".join(chr(rng.randrange(256)) for _ in range(rng.randint(1, 80))),
    ]
    return rng.choice(variants)


@pytest.fixture
def shop(tmp_path):
    gateway = FakeGateway(intent())
    gateway.charges["ch_pi_1"] = charge(refunded=500)
    gateway.refunds["re_1"] = {"id": "re_1", "object": "refund", "charge": "ch_pi_1"}
    gateway.disputes["dp_1"] = dispute(pi="pi_1")
    settings = Settings(data_dir=tmp_path / "data", webhook_secrets=(SECRET,))
    ledger = Ledger.open(settings.data_dir)
    fulfiller = Fulfiller(ledger, gateway, Catalog.default(), settings)
    receiver = WebhookReceiver(settings, ledger, fulfiller)
    app = create_app(
        settings, gateway=gateway, ledger=ledger, fulfiller=fulfiller, receiver=receiver
    )
    yield app, ledger
    fulfiller.close()
    ledger.close()


def test_no_signed_body_or_header_makes_the_webhook_answer_5xx(shop):
    app, ledger = shop
    bases = base_events()
    statuses: dict[int, int] = {}
    for index in range(CASES):
        rng = random.Random(f"{SEED}:{index}")
        body = make_body(rng, bases)
        header = make_header(rng, body)
        response = call(app, "POST", "/webhook", body, {"Stripe-Signature": header})
        statuses[response.status] = statuses.get(response.status, 0) + 1
        assert response.status < 500, (
            f"case {SEED}:{index} answered {response.status}: {response.body[:300]!r}\n"
            f"body: {body[:300]!r}\nheader: {header[:200]!r}\n"
            f"replay: WEBHOOK_FUZZ_SEED={SEED} pytest {__file__}"
        )
        error = response.json().get("error")
        assert error is None or set(error) >= {"message", "code"}
    # The run must have reached the handlers, not only the signature check.
    assert statuses.get(200, 0) > CASES // 5, statuses
    assert statuses.get(400, 0) > CASES // 5, statuses
    assert ledger.event_count() > CASES // 5
