"""A seeded stateful fuzzer of the emulator's PaymentIntent, refund and dispute state machine.

It drives a real emulator over HTTP through random sequences of calls on a handful of
PaymentIntents (create, update, confirm with the test cards, 3-D Secure completion or failure,
capture, cancel, refunds, dispute evidence, the clock, idempotent replays) and after every step
checks Stripe's rules against a model the test keeps:

- a PaymentIntent only moves along Stripe's documented transitions, and the status is the one
  the model expects for the call;
- amount_capturable, amount_received and the Charge's amount_refunded are never negative and
  agree with each other and with the Refunds listed for the charge;
- a refused call (a 4xx other than a card decline) changes nothing and emits nothing;
- the same idempotency key and body replays the first answer, and a different body under it is
  refused with `idempotency_error`, changing nothing;
- every state change emits Stripe's event for it, once, with the object as it is after the
  change;
- the list endpoints agree with retrieve.

`make test` runs a small seeded run; for long runs:
    EMU_LIFECYCLE_FUZZ_SEEDS=1-50 EMU_LIFECYCLE_FUZZ_STEPS=2000 .venv/bin/python -m pytest \\
        tests/emulator/test_emu_lifecycle_fuzz.py
A failure names the seed and step that reproduce it.
"""

from __future__ import annotations

import http.client
import json
import os
import random
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from conftest import raw

from bookpay.emulator import EmulatorOptions, start_emulator


def _seeds(text: str) -> list[int]:
    if "-" in text:
        low, high = text.split("-", 1)
        return list(range(int(low), int(high) + 1))
    return [int(s) for s in text.split(",") if s.strip()]


SEEDS = _seeds(os.environ.get("EMU_LIFECYCLE_FUZZ_SEEDS", "1"))
STEPS = int(os.environ.get("EMU_LIFECYCLE_FUZZ_STEPS", "300"))
RETURN_URL = "https://shop.example/done"

# Stripe's PaymentIntent lifecycle: where each status may go next.
TRANSITIONS = {
    "requires_payment_method": {
        "requires_payment_method",
        "requires_confirmation",
        "requires_action",
        "processing",
        "requires_capture",
        "succeeded",
        "canceled",
    },
    "requires_confirmation": {
        "requires_payment_method",
        "requires_confirmation",
        "requires_action",
        "processing",
        "requires_capture",
        "succeeded",
        "canceled",
    },
    "requires_action": {
        "requires_payment_method",
        "requires_confirmation",
        "requires_action",
        "processing",
        "requires_capture",
        "succeeded",
        "canceled",
    },
    "processing": {"requires_payment_method", "requires_capture", "succeeded", "canceled"},
    "requires_capture": {"requires_capture", "succeeded", "canceled"},
    "succeeded": {"succeeded"},
    "canceled": {"canceled"},
}
CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
CANCELABLE = (*CONFIRMABLE, "requires_capture", "processing")
# Card token -> what confirming with it does: ok, decline, 3ds, 3ds_decline.
CARDS = {
    "pm_card_visa": "ok",
    "pm_card_mastercard": "ok",
    "pm_card_visa_chargeDeclined": "decline",
    "pm_card_visa_chargeDeclinedInsufficientFunds": "decline",
    "pm_card_chargeDeclinedExpiredCard": "decline",
    "pm_card_chargeDeclinedIncorrectCvc": "decline",
    "pm_card_chargeDeclinedProcessingError": "decline",
    "pm_card_authenticationRequired": "3ds",
    "pm_card_threeDSecure2Required": "3ds",
    "4000008260003178": "3ds_decline",
    "pm_card_createDispute": "ok",
    "pm_card_createDisputeInquiry": "ok",
    "pm_card_createDisputeProductNotReceived": "ok",
    "pm_card_createMultipleDisputes": "ok",
    "pm_card_refundFail": "ok",
    "pm_card_pendingRefund": "ok",
}
STATUS_EVENT = {
    "requires_action": "payment_intent.requires_action",
    "requires_capture": "payment_intent.amount_capturable_updated",
    "succeeded": "payment_intent.succeeded",
    "canceled": "payment_intent.canceled",
}


class Failed(AssertionError):
    pass


@dataclass
class Intent:
    id: str
    status: str
    amount: int
    currency: str
    manual_capture: bool
    manual_confirmation: bool
    card: str | None = None  # the test card of the last confirmation
    has_return_url: bool = False
    authenticated: bool = False  # 3-D Secure passed, waiting for a manual confirmation


@dataclass
class Fuzz:
    url: str
    rng: random.Random
    seed: int
    intents: list[Intent] = field(default_factory=list)
    # (key, path, params, status, body, when in hours of the emulator's clock)
    keys: list[tuple[str, str, list[tuple[str, str]], int, bytes, int]] = field(
        default_factory=list
    )
    hours: int = 0
    seen_events: set[str] = field(default_factory=set)
    step: int = 0
    log: list[str] = field(default_factory=list)
    conn: http.client.HTTPConnection | None = None  # one kept-alive connection
    last: dict[str, Any] | None = None  # the snapshot after the last step

    # --- HTTP ---------------------------------------------------------------------------

    def call(
        self, method: str, path: str, params: list[tuple[str, str]] | None = None, key: str = ""
    ) -> tuple[int, Any, dict[str, str]]:
        headers = {"Authorization": "Bearer sk_test_fuzz"}
        if key:
            headers["Idempotency-Key"] = key
        query = urlencode(params or [])
        if method == "GET" and query:
            path, query = f"{path}?{query}", ""
        if method == "POST":
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if self.conn is None:
            parts = urlsplit(self.url)
            self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        self.conn.request(method, path, body=query.encode() if query else None, headers=headers)
        resp = self.conn.getresponse()
        data = resp.read()
        status = resp.status
        got = {k.lower(): v for k, v in resp.getheaders()}
        body = json.loads(data) if data.startswith(b"{") else data
        if status >= 500:
            self.fail(f"{method} {path} {params} answered {status}: {data[:300]!r}")
        return status, body, got

    def get(self, path: str, params: list[tuple[str, str]] | None = None) -> Any:
        status, body, _ = self.call("GET", path, params)
        if status != 200:
            self.fail(f"GET {path} answered {status}: {body}")
        return body

    def fail(self, message: str) -> None:
        raise Failed(
            f"seed {self.seed}, step {self.step}: {message}\n"
            f"reproduce: EMU_LIFECYCLE_FUZZ_SEEDS={self.seed} EMU_LIFECYCLE_FUZZ_STEPS={STEPS}\n"
            "last steps:\n  " + "\n  ".join(self.log[-12:])
        )

    def check(self, ok: bool, message: str) -> None:
        if not ok:
            self.fail(message)

    # --- state snapshots ----------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Every intent, its charge and its refunds and disputes, as retrieve answers."""
        snap: dict[str, Any] = {}
        for it in self.intents:
            pi = self.get(f"/v1/payment_intents/{it.id}")
            snap[it.id] = pi
            ch_id = pi["latest_charge"]
            if ch_id:
                snap[ch_id] = self.get(f"/v1/charges/{ch_id}")
                for r in self.get("/v1/refunds", [("charge", ch_id), ("limit", "100")])["data"]:
                    snap[r["id"]] = r
                for d in self.get("/v1/disputes", [("charge", ch_id), ("limit", "100")])["data"]:
                    snap[d["id"]] = d
        return snap

    def new_events(self) -> list[dict[str, Any]]:
        page = self.get("/v1/events", [("limit", "100")])["data"]
        fresh = [e for e in page if e["id"] not in self.seen_events]
        self.check(len(fresh) < 100, "too many events in one step to check")
        self.seen_events.update(e["id"] for e in fresh)
        return list(reversed(fresh))  # oldest first

    # --- invariants ---------------------------------------------------------------------

    def invariants(self, before: dict[str, Any], after: dict[str, Any]) -> None:
        listed = {p["id"]: p for p in self.get("/v1/payment_intents", [("limit", "100")])["data"]}
        for it in self.intents:
            pi = after[it.id]
            old = before.get(it.id)
            if old is not None:
                self.check(
                    pi["status"] in TRANSITIONS[old["status"]],
                    f"{it.id} went from {old['status']} to {pi['status']}",
                )
            self.check(pi["status"] == it.status, f"{it.id} is {pi['status']}, not {it.status}")
            self.check(
                (pi["amount"], pi["currency"]) == (it.amount, it.currency),
                f"{it.id} amount {pi['amount']} {pi['currency']}, not {it.amount} {it.currency}",
            )
            if it.id in listed:
                self.check(listed[it.id] == pi, f"{it.id}: the list and retrieve disagree")
            cap, rec = pi["amount_capturable"], pi["amount_received"]
            self.check(cap >= 0 and rec >= 0, f"{it.id}: negative amounts {cap} {rec}")
            if pi["status"] == "requires_capture":
                self.check(cap == pi["amount"], f"{it.id}: capturable {cap} of {pi['amount']}")
            else:
                self.check(cap == 0, f"{it.id} is {pi['status']} with amount_capturable {cap}")
            if pi["status"] != "succeeded":
                self.check(rec == 0, f"{it.id} is {pi['status']} with amount_received {rec}")
            else:
                self.check(0 < rec <= pi["amount"], f"{it.id}: amount_received {rec}")
            ch = after.get(pi["latest_charge"] or "")
            if ch is None:
                continue
            charges = self.get("/v1/charges", [("payment_intent", it.id), ("limit", "100")])
            self.check(
                [c for c in charges["data"] if c["id"] == ch["id"]] == [ch],
                f"{ch['id']}: the list and retrieve disagree",
            )
            self.check(ch["payment_intent"] == it.id, f"{ch['id']} names another intent")
            refunded = ch["amount_refunded"]
            self.check(0 <= refunded <= ch["amount"], f"{ch['id']}: amount_refunded {refunded}")
            self.check(
                ch["refunded"] == (refunded == ch["amount"]),
                f"{ch['id']}: refunded={ch['refunded']} with {refunded} of {ch['amount']}",
            )
            refunds = [
                o for o in after.values() if o.get("object") == "refund" and o["charge"] == ch["id"]
            ]
            live = sum(r["amount"] for r in refunds if r["status"] in ("succeeded", "pending"))
            self.check(
                live == refunded,
                f"{ch['id']}: amount_refunded {refunded}, its refunds come to {live}",
            )
            if pi["status"] == "succeeded":
                self.check(ch["captured"], f"{ch['id']} of a succeeded intent is not captured")
                self.check(
                    ch["amount_captured"] == rec,
                    f"{ch['id']}: captured {ch['amount_captured']}, intent received {rec}",
                )
                self.check(
                    refunded >= ch["amount"] - rec,
                    f"{ch['id']}: {ch['amount'] - rec} released but only {refunded} refunded",
                )
            if pi["status"] == "requires_capture":
                self.check(not ch["captured"], f"{ch['id']} captured before its capture")
            for r in refunds:
                self.check(r["amount"] > 0, f"{r['id']} of {r['amount']}")
                got = self.get(f"/v1/refunds/{r['id']}")
                self.check(got == r, f"{r['id']}: the list and retrieve disagree")

    def events_match(self, events: list[dict[str, Any]], after: dict[str, Any]) -> None:
        """Each intent's status change has Stripe's event, once, with the object after it."""
        by_intent: dict[str, list[dict[str, Any]]] = {}
        for e in events:
            obj = e["data"]["object"]
            if obj.get("object") == "payment_intent":
                by_intent.setdefault(obj["id"], []).append(e)
        for pi_id, evs in by_intent.items():
            kinds = [e["type"] for e in evs]
            for kind in set(kinds):
                if kind != "payment_intent.payment_failed":
                    self.check(kinds.count(kind) == 1, f"{pi_id}: {kinds} in one step")
            if pi_id in after:
                last = evs[-1]["data"]["object"]
                now = after[pi_id]
                for f in ("status", "amount", "amount_capturable", "amount_received"):
                    self.check(
                        last[f] == now[f],
                        f"{pi_id}: {evs[-1]['type']} has {f}={last[f]!r}, retrieve {now[f]!r}",
                    )

    def objects_match(self, events: list[dict[str, Any]], after: dict[str, Any]) -> None:
        """The last event about a charge, refund or dispute shows it as retrieve does; each
        refund is created once, with one charge.refunded."""
        fields = {
            "charge": ("status", "amount_refunded", "refunded", "captured", "amount_captured"),
            "refund": ("status", "amount"),
            "dispute": ("status", "amount", "is_charge_refundable"),
        }
        last: dict[str, dict[str, Any]] = {}
        for e in events:
            obj = e["data"]["object"]
            if obj.get("object") in fields:
                last[obj["id"]] = e
        for obj_id, e in last.items():
            if obj_id not in after:
                continue
            obj, now = e["data"]["object"], after[obj_id]
            for f in fields[obj["object"]]:
                self.check(
                    obj[f] == now[f],
                    f"{obj_id}: {e['type']} has {f}={obj[f]!r}, retrieve {now[f]!r}",
                )
        created = [e["data"]["object"]["id"] for e in events if e["type"] == "refund.created"]
        self.check(len(created) == len(set(created)), f"refund.created twice: {created}")
        refunded = [e for e in events if e["type"] == "charge.refunded"]
        self.check(
            len(refunded) == len(created),
            f"{len(created)} refund.created but {len(refunded)} charge.refunded",
        )

    def status_events(
        self, before: dict[str, Any], after: dict[str, Any], events: list[dict[str, Any]]
    ) -> None:
        for it in self.intents:
            old = before.get(it.id)
            new = after[it.id]
            if old is None or old["status"] == new["status"]:
                continue
            wanted = STATUS_EVENT.get(new["status"])
            if wanted is None:
                continue
            got = [
                e for e in events if e["type"] == wanted and e["data"]["object"].get("id") == it.id
            ]
            self.check(len(got) == 1, f"{it.id} became {new['status']} with {len(got)} {wanted}")
            obj = got[0]["data"]["object"]
            self.check(obj["status"] == new["status"], f"{wanted} has status {obj['status']}")

    # --- actions ------------------------------------------------------------------------

    def pick(self, *statuses: str) -> Intent | None:
        pool = [i for i in self.intents if not statuses or i.status in statuses]
        return self.rng.choice(pool) if pool else None

    def maybe_key(self) -> str:
        return f"fuzz-{self.seed}-{self.step}" if self.rng.random() < 0.3 else ""

    def post(
        self, path: str, params: list[tuple[str, str]], expect: str, saved: bool = True
    ) -> tuple[int, Any]:
        """POST and check the expected kind of answer: ok, refused (4xx), declined (402).
        Not ``saved``: refused for its parameters alone, which Stripe keeps nothing of under
        the key (a request failing validation)."""
        key = self.maybe_key()
        status, body, _ = self.call("POST", path, params, key)
        self.log.append(f"{self.step}: POST {path} {params} -> {status} (expected {expect})")
        kind = "ok" if status == 200 else "declined" if status == 402 else "refused"
        if kind != expect:
            self.fail(f"POST {path} {params} answered {status}, expected {expect}: {body}")
        if key and status < 500 and saved:
            answer = json.dumps(body, sort_keys=True).encode()
            self.keys.append((key, path, params, status, answer, self.hours))
        return status, body

    def act_create(self) -> None:
        rng = self.rng
        currency = rng.choice(["usd", "eur", "jpy"])
        amount = rng.choice([100, 999, 1000, 2500, 12345])
        manual_capture = rng.random() < 0.4
        manual_confirmation = rng.random() < 0.2
        params = [("amount", str(amount)), ("currency", currency)]
        if manual_capture:
            params.append(("capture_method", "manual"))
        if manual_confirmation:
            params.append(("confirmation_method", "manual"))
        confirm = rng.random() < 0.5
        card = rng.choice(list(CARDS)) if confirm else None
        with_url = rng.random() < 0.85
        if confirm:
            params.append(("confirm", "true"))
            params.extend(self.card_params(card))
            if with_url:
                params.append(("return_url", RETURN_URL))
        if confirm and not with_url:
            self.post("/v1/payment_intents", params, "refused")  # Stripe wants a return_url
            return
        outcome = CARDS[card] if card else None
        expect = "declined" if outcome == "decline" else "ok"
        status, body = self.post("/v1/payment_intents", params, expect)
        pi = body if status == 200 else body["error"]["payment_intent"]
        it = Intent(pi["id"], "", amount, currency, manual_capture, manual_confirmation, card)
        it.has_return_url = confirm and with_url
        it.status = (
            self.after_confirm(outcome, it.manual_capture) if card else "requires_payment_method"
        )
        self.intents.append(it)

    def card_params(self, card: str | None) -> list[tuple[str, str]]:
        if card and not card.startswith("pm_"):
            return [
                ("payment_method_data[type]", "card"),
                ("payment_method_data[card][number]", card),
                ("payment_method_data[card][exp_month]", "12"),
                ("payment_method_data[card][exp_year]", "2040"),
                ("payment_method_data[card][cvc]", "123"),
            ]
        return [("payment_method", card)] if card else []

    def after_confirm(self, outcome: str | None, manual_capture: bool) -> str:
        if outcome in ("decline",):
            return "requires_payment_method"
        if outcome in ("3ds", "3ds_decline"):
            return "requires_action"
        return "requires_capture" if manual_capture else "succeeded"

    def act_confirm(self) -> None:
        it = self.pick()
        if it is None:
            return
        card = self.rng.choice([*CARDS, None])
        params = self.card_params(card)
        with_url = self.rng.random() < 0.8
        if with_url:
            params.append(("return_url", RETURN_URL))
        if self.rng.random() < 0.3:  # kept by a confirmation, never by a refused one
            params.append(("receipt_email", f"step{self.step}@example.com"))
        path = f"/v1/payment_intents/{it.id}/confirm"
        has_pm = card is not None or it.status == "requires_confirmation"
        if it.status == "requires_action" and card is None:
            has_pm = True
        if it.status not in CONFIRMABLE or not (with_url or it.has_return_url) or not has_pm:
            self.post(path, params, "refused")
            return
        reuse = card is None
        if card is None:
            card = it.card
        outcome = CARDS[card or "pm_card_visa"]
        if it.authenticated and reuse:  # confirmed again after 3-D Secure, with its card
            outcome = {"3ds": "ok", "3ds_decline": "decline"}.get(outcome, outcome)
        expect = "declined" if outcome == "decline" else "ok"
        self.post(path, params, expect)
        it.card = card
        it.authenticated = False
        it.has_return_url = it.has_return_url or with_url
        it.status = self.after_confirm(outcome, it.manual_capture)

    def act_update(self) -> None:
        it = self.pick()
        if it is None:
            return
        params: list[tuple[str, str]] = [("metadata[step]", str(self.step))]
        amount, currency = it.amount, it.currency
        if self.rng.random() < 0.5:
            amount = self.rng.choice([150, 777, 5000])
            params.append(("amount", str(amount)))
        if self.rng.random() < 0.2:
            currency = self.rng.choice(["usd", "eur", "jpy", "gbp"])
            params.append(("currency", currency))
        card = None
        if self.rng.random() < 0.3:
            card = self.rng.choice([c for c in CARDS if c.startswith("pm_")])
            params.append(("payment_method", card))
        path = f"/v1/payment_intents/{it.id}"
        # Only what needs an unconfirmed intent is refused by status: metadata alone is taken.
        if it.status not in CONFIRMABLE and len(params) > 1:
            self.post(path, params, "refused")
            return
        self.post(path, params, "ok")
        it.amount, it.currency = amount, currency
        if card:
            it.card = card
            it.authenticated = False
            it.status = "requires_confirmation"

    def act_capture(self) -> None:
        it = self.pick()
        if it is None:
            return
        path = f"/v1/payment_intents/{it.id}/capture"
        params: list[tuple[str, str]] = []
        choice = self.rng.random()
        too_much = out_of_range = False
        if choice < 0.3:
            params.append(("amount_to_capture", str(max(1, it.amount // 3))))
        elif choice < 0.4:
            params.append(("amount_to_capture", str(it.amount + 1)))
            too_much = True
        elif choice < 0.45:
            params.append(("amount_to_capture", self.rng.choice(["0", "-5"])))
            out_of_range = True
        if out_of_range:
            self.post(path, params, "refused", saved=False)
            return
        if it.status != "requires_capture" or too_much:
            self.post(path, params, "refused")
            return
        self.post(path, params, "ok")
        it.status = "succeeded"

    def act_cancel(self) -> None:
        it = self.pick()
        if it is None:
            return
        params = []
        if self.rng.random() < 0.5:
            params.append(("cancellation_reason", "requested_by_customer"))
        path = f"/v1/payment_intents/{it.id}/cancel"
        if it.status not in CANCELABLE:
            self.post(path, params, "refused")
            return
        self.post(path, params, "ok")
        it.status = "canceled"

    def act_refund(self, snap: dict[str, Any]) -> None:
        it = self.pick()
        if it is None:
            return
        pi = snap[it.id]
        ch = snap.get(pi["latest_charge"] or "")
        by_charge = ch is not None and self.rng.random() < 0.3
        params = [("charge", ch["id"])] if by_charge else [("payment_intent", it.id)]
        left = ch["amount"] - ch["amount_refunded"] if ch else 0
        roll = self.rng.random()
        amount = None
        if roll < 0.4:
            amount = max(1, left // 2)
        elif roll < 0.55:
            amount = left + 1
        elif roll < 0.6:
            amount = self.rng.choice([0, -1])
        if amount is not None:
            params.append(("amount", str(amount)))
        charged_back = any(
            o.get("object") == "dispute"
            and ch
            and o["charge"] == ch["id"]
            and not o["is_charge_refundable"]
            for o in snap.values()
        )
        ok = (
            ch is not None
            and (pi["status"] == "succeeded" or by_charge)
            and ch["status"] == "succeeded"
            and ch["captured"]
            and left > 0
            and (amount is None or 0 < amount <= left)
            and not charged_back
        )
        # An amount under 1 fails validation: refused before anything else, and not saved.
        out_of_range = amount is not None and amount < 1
        self.post("/v1/refunds", params, "ok" if ok else "refused", saved=not out_of_range)

    def act_3ds(self) -> None:
        it = self.pick("requires_action")
        if it is None:
            return
        pi = self.get(f"/v1/payment_intents/{it.id}")
        action = pi["next_action"]
        url = (
            action["use_stripe_sdk"]["stripe_js"]
            if action["type"] == "use_stripe_sdk"
            else action["redirect_to_url"]["url"]
        )
        parts = urlsplit(url)
        secret = parse_qs(parts.query)["client_secret"][0]
        complete = self.rng.random() < 0.7
        form = {"client_secret": secret, "action": "complete" if complete else "fail"}
        resp = raw(self.url, "POST", parts.path, form, key=None)
        self.log.append(f"{self.step}: 3DS {form['action']} {it.id} -> {resp.status}")
        self.check(resp.status in (200, 303), f"3DS page answered {resp.status}")
        if not complete:
            it.status = "requires_payment_method"
        elif it.manual_confirmation:
            it.status = "requires_confirmation"
            it.authenticated = True
        elif CARDS[it.card or ""] == "3ds_decline":
            it.status = "requires_payment_method"
        else:
            it.status = "requires_capture" if it.manual_capture else "succeeded"

    def act_clock(self) -> dict[str, Any]:
        days = self.rng.random() < 0.15
        body = {"days": 8} if days else {"hours": 1}
        resp = raw(self.url, "POST", "/_emulator/clock", body, key="sk_test_fuzz")
        self.log.append(f"{self.step}: clock {body} -> {resp.status}")
        self.check(resp.status == 200, f"clock answered {resp.status}")
        # Idempotency keys expire after 24 hours of the emulator's time.
        self.hours += 192 if days else 1
        self.keys = [k for k in self.keys if self.hours - k[5] < 24]
        if days:
            for it in self.intents:
                if it.status == "requires_capture":
                    it.status = "canceled"
        return body

    def act_evidence(self, snap: dict[str, Any]) -> None:
        disputes = [o for o in snap.values() if o.get("object") == "dispute"]
        if not disputes:
            return
        waiting = [
            d for d in disputes if d["status"] in ("needs_response", "warning_needs_response")
        ]
        d = self.rng.choice(waiting if waiting and self.rng.random() < 0.8 else disputes)
        texts = ["winning_evidence", "losing_evidence", "escalate_inquiry_evidence"]
        if d["status"] == "warning_needs_response":  # an inquiry: mostly escalated
            texts += ["escalate_inquiry_evidence"] * 3
        text = self.rng.choice(texts)
        params = [("evidence[uncategorized_text]", text), ("submit", "true")]
        open_ = d["status"] in ("needs_response", "warning_needs_response")
        self.post(f"/v1/disputes/{d['id']}", params, "ok" if open_ else "refused")

    def act_replay(self) -> None:
        if not self.keys:
            return
        key, path, params, status, body, _ = self.rng.choice(self.keys)
        same = self.rng.random() < 0.6 or not params
        # Another body: the last value changed (a parameter the call takes, so that only the
        # key can refuse it).
        sent = params if same else [*params[:-1], (params[-1][0], params[-1][1] + "1")]
        got, answer, headers = self.call("POST", path, sent, key)
        self.log.append(f"{self.step}: replay {key} same={same} -> {got}")
        if same:
            self.check(got == status, f"replay of {key} answered {got}, first {status}")
            again = json.dumps(answer, sort_keys=True).encode()
            self.check(again == body, f"replay of {key} answered {again!r}, first {body!r}")
            self.check(headers.get("idempotent-replayed") == "true", "no Idempotent-Replayed")
        else:
            self.check(got == 400, f"a different body under {key} answered {got}")
            self.check(answer["error"]["type"] == "idempotency_error", f"{answer}")

    def run_step(self) -> None:
        self.step += 1
        # A handful of intents: the oldest finished ones leave the pool.
        while len(self.intents) > 6:
            done = [i for i in self.intents if i.status in ("succeeded", "canceled")]
            if not done:
                break
            self.intents.remove(done[0])
        # Nothing moves between steps (only the fuzzer moves the clock): the last snapshot holds.
        before = self.last if self.last is not None else self.snapshot()
        live = [i for i in self.intents if i.status not in ("succeeded", "canceled")]
        weights = {
            "create": 3 if len(live) < 4 else 0.5,
            "confirm": 3,
            "update": 1.5,
            "capture": 2,
            "cancel": 1,
            "refund": 2.5,
            "3ds": 2,
            "clock": 1,
            "evidence": 2,
            "replay": 1.5,
        }
        action = self.rng.choices(list(weights), list(weights.values()))[0]
        act = getattr(self, f"act_{action}")
        if action in ("refund", "evidence"):  # these two compare with the state before
            act(before)
        else:
            act()
        last = self.log[-1] if self.log else ""
        mine = last.startswith(f"{self.step}: ")  # this step logged a call
        refused_expected = mine and last.endswith("(expected refused)")
        events = self.new_events()
        after = self.snapshot()
        replayed = mine and last.startswith(f"{self.step}: replay")
        if refused_expected or replayed:
            self.check(
                not events, f"a refused or replayed call emitted {[e['type'] for e in events]}"
            )
            changed = sorted(k for k in after if after[k] != before.get(k))
            self.check(not changed, f"a refused or replayed call changed {changed}")
        declined = mine and last.endswith("(expected declined)")
        failed_3ds = mine and "3DS fail" in last
        if declined or failed_3ds:  # Stripe's events for a failed payment, once each
            kinds = [e["type"] for e in events]
            self.check(
                kinds.count("payment_intent.payment_failed") == 1,
                f"a failed payment emitted {kinds}",
            )
            self.check(
                kinds.count("charge.failed") == (1 if declined else 0),
                f"a failed payment emitted {kinds}",
            )
        self.last = after
        self.invariants(before, after)
        self.events_match(events, after)
        self.objects_match(events, after)
        self.status_events(before, after, events)


@pytest.mark.parametrize("seed", SEEDS)
def test_lifecycle_fuzz(seed: int) -> None:
    # Nothing happens "some time later" on its own: the fuzzer moves the clock.
    options = EmulatorOptions(async_delay=600, retry_schedule=(0.05,), delivery_timeout=1)
    with start_emulator(options=options) as emu:
        fuzz = Fuzz(emu.url, random.Random(seed), seed)
        try:
            for _ in range(STEPS):
                fuzz.run_step()
        finally:
            if fuzz.conn is not None:
                fuzz.conn.close()
