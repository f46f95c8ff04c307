"""Disputes, as Stripe's dispute test cards produce them (docs.stripe.com/testing#disputes).

A charge paid with a dispute card succeeds; some time later (the clock) a Dispute opens with
`charge.dispute.created`, and for a chargeback the funds are withdrawn
(`charge.dispute.funds_withdrawn`). Evidence is staged or submitted with
POST /v1/disputes/{id}; Stripe's test evidence values in `uncategorized_text` then decide the
outcome some time later: `winning_evidence` wins (funds reinstated), `losing_evidence` loses (an
inquiry closes without escalation), `escalate_inquiry_evidence` turns an inquiry into a
chargeback. Anything else stays under review, as in Stripe's test mode. Closing a dispute
accepts it as lost.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from . import fx, render, validate
from .cards import behavior
from .clock import handles
from .context import Ctx
from .events import changed
from .params import ANY
from .store import field_is
from .wire import ApiError, invalid, malformed, new_id, no_such, now

# Stripe's dispute fee for a US account: $15.00, in the settlement currency whatever the
# dispute's (as its test-mode disputes show).
FEE = 1500


@dataclass(frozen=True)
class Kind:
    reason: str
    case_type: str  # chargeback, inquiry or compliance
    network_reason_code: str
    eligibility: tuple[str, ...] = ()
    again: str | None = None  # the kind of a second dispute on the same charge


KINDS = {
    "fraudulent": Kind("fraudulent", "chargeback", "10.4"),
    "product_not_received": Kind("product_not_received", "chargeback", "13.1"),
    "inquiry": Kind("fraudulent", "inquiry", "10.4"),
    "multiple": Kind("fraudulent", "chargeback", "10.4", again="product_not_received"),
    "visa_ce3": Kind("fraudulent", "chargeback", "10.4", ("visa_compelling_evidence_3",)),
    "visa_compliance": Kind("noncompliant", "compliance", "", ("visa_compliance",)),
    "mastercard_compliance": Kind("noncompliant", "compliance", "", ("mastercard_compliance",)),
}
OPEN = ("needs_response", "warning_needs_response")
REVIEW = ("under_review", "warning_under_review")

# Evidence fields Stripe takes as text; the others are File ids, and the emulator has no files.
TEXT_EVIDENCE = (
    "access_activity_log", "billing_address", "cancellation_policy_disclosure",
    "cancellation_rebuttal", "customer_email_address", "customer_name", "customer_purchase_ip",
    "duplicate_charge_explanation", "duplicate_charge_id", "product_description",
    "refund_policy_disclosure", "refund_refusal_explanation", "service_date", "shipping_address",
    "shipping_carrier", "shipping_date", "shipping_tracking_number", "uncategorized_text",
)  # fmt: skip
EVIDENCE_FIELD_LIMIT = 20_000  # Stripe's limit on one evidence field, in characters
EVIDENCE_LIMIT = 150_000  # and on the text evidence fields together

LIST_SPEC = {**render.LIST_SPEC, "charge": None, "payment_intent": None}
RETRIEVE_SPEC = {"expand": None}
UPDATE_SPEC = {
    "evidence": dict.fromkeys(TEXT_EVIDENCE, EVIDENCE_FIELD_LIMIT),
    "metadata": ANY,
    "submit": None,
    "expand": None,
}
CLOSE_SPEC = {"expand": None}


def after_capture(ctx: Ctx, ch: dict[str, Any], pm: dict[str, Any]) -> None:
    """A dispute card's captured charge: schedule its dispute."""
    kind = behavior(pm.get("_number", "")).dispute
    if kind:
        ctx.store.save({**ch, "_dispute_kind": kind})
        ctx.schedule("dispute.open", ch["id"])


@handles("dispute.open")
def _open(ctx: Ctx, ch_id: str) -> None:
    ch = ctx.store.get(ch_id, "charge")
    if ch is None or not ch.get("_dispute_kind"):
        return
    kind = KINDS[ch["_dispute_kind"]]
    if kind.again:
        ch["_dispute_kind"] = kind.again  # the next one opens one delay later
        ctx.schedule("dispute.open", ch_id)
    else:
        ch.pop("_dispute_kind")
    ch["disputed"] = True
    ctx.store.save(ch)
    dispute = _dispute(ch, kind)
    ctx.store.save(dispute)
    ctx.emit("charge.dispute.created", dispute)
    if kind.case_type != "inquiry":
        _withdraw(ctx, dispute)


def _dispute(ch: dict[str, Any], kind: Kind) -> dict[str, Any]:
    created = now()
    card = ch["payment_method_details"]["card"]
    inquiry = kind.case_type == "inquiry"
    eligibility: dict[str, Any] = {}
    if "visa_compelling_evidence_3" in kind.eligibility:
        eligibility["visa_compelling_evidence_3"] = {
            "required_actions": ["missing_prior_undisputed_transactions"],
            "status": "requires_action",
        }
    for name in ("visa_compliance", "mastercard_compliance"):
        if name in kind.eligibility:
            eligibility[name] = {"status": "requires_fee_acknowledgement"}
    return {
        "id": new_id("du"),
        "object": "dispute",
        "amount": ch["amount_captured"],
        "balance_transactions": [],
        "charge": ch["id"],
        "created": created,
        "currency": ch["currency"],
        "enhanced_eligibility_types": list(kind.eligibility),
        "evidence": {"enhanced_evidence": {}},
        "evidence_details": {
            "due_by": created + 7 * 24 * 3600,
            "enhanced_eligibility": eligibility,
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
            "submission_method": "not_submitted",
        },
        "intended_submission_method": None,
        "is_charge_refundable": inquiry,
        "livemode": False,
        "metadata": {},
        "network_reason_code": kind.network_reason_code or None,
        "payment_intent": ch["payment_intent"],
        "payment_method_details": {
            "card": {
                "brand": card["brand"],
                "case_type": kind.case_type,
                "network": card["network"] or card["brand"],
                "network_reason_code": kind.network_reason_code or None,
            },
            "type": "card",
        },
        "reason": kind.reason,
        "status": "warning_needs_response" if inquiry else "needs_response",
    }


def _balance_transaction(dispute: dict[str, Any], amount: int, fee: int, category: str):
    """The money a dispute moves (``amount``, in the dispute's currency) and its ``fee``, as
    Stripe writes them in the account's balance: in its settlement currency (usd), converted at
    the ``exchange_rate`` (fx: fixed TEST rates)."""
    settled = fx.settle(amount, dispute["currency"])
    return {
        "id": new_id("txn"),
        "object": "balance_transaction",
        "amount": settled,
        "available_on": now(),
        "balance_type": "payments",
        "created": now(),
        "currency": fx.SETTLEMENT,
        "description": f"Chargeback {'reversal ' if amount > 0 else ''}for {dispute['charge']}",
        "exchange_rate": fx.rate(dispute["currency"]),
        "fee": fee,
        "fee_details": [
            {
                "amount": fee,
                "application": None,
                "currency": fx.SETTLEMENT,
                "description": "Dispute fee",
                "type": "stripe_fee",
            }
        ]
        if fee
        else [],
        "net": settled - fee,
        "reporting_category": category,
        "source": dispute["id"],
        "status": "available",
        "type": "adjustment",
    }


def _withdraw(ctx: Ctx, dispute: dict[str, Any]) -> None:
    txn = _balance_transaction(dispute, -dispute["amount"], FEE, "dispute")
    dispute["balance_transactions"].append(txn)
    dispute["is_charge_refundable"] = False
    ctx.store.save(dispute)
    ctx.emit("charge.dispute.funds_withdrawn", dispute)


def _fully_refunded(ctx: Ctx, dispute: dict[str, Any]) -> bool:
    ch = ctx.store.get(dispute["charge"], "charge")
    return ch is not None and ch["amount_refunded"] >= ch["amount"]


def _reinstate(ctx: Ctx, dispute: dict[str, Any]) -> None:
    txn = _balance_transaction(dispute, dispute["amount"], -FEE, "dispute_reversal")
    dispute["balance_transactions"].append(txn)
    ctx.store.save(dispute)
    ctx.emit("charge.dispute.funds_reinstated", dispute)


def _load(ctx: Ctx, dispute_id: str) -> dict[str, Any]:
    dispute = ctx.store.get(dispute_id, "dispute")
    if dispute is None:
        raise no_such("dispute", dispute_id)
    return dispute


def retrieve(ctx: Ctx, dispute_id: str) -> dict[str, Any]:
    return _load(ctx, dispute_id)


def list_(ctx: Ctx) -> dict[str, Any]:
    p = ctx.params
    where = [field_is(f, p[f]) for f in ("charge", "payment_intent") if p.get(f)]
    return render.page(ctx.store, "dispute", p, "/v1/disputes", where)


def update(ctx: Ctx, dispute_id: str) -> dict[str, Any]:
    p = ctx.params
    dispute = _load(ctx, dispute_id)
    keys = ("metadata", "evidence", "status")
    before = {key: copy.deepcopy(dispute[key]) for key in keys}
    if "metadata" in p:
        dispute["metadata"] = validate.metadata(p["metadata"], dispute["metadata"])
    submit = validate.boolean(p.get("submit", "true"), "submit")
    if "evidence" in p or "submit" in p:
        if dispute["status"] not in OPEN:
            raise _closed(dispute, "its evidence can no longer be changed")
        _stage(dispute, p.get("evidence", {}))
        if submit:
            details = dispute["evidence_details"]
            details["submission_count"] += 1
            details["submission_method"] = "manual"
            inquiry = dispute["status"] == "warning_needs_response"
            dispute["status"] = "warning_under_review" if inquiry else "under_review"
            ctx.schedule("dispute.decide", dispute["id"])
    ctx.store.save(dispute)
    previous = changed(dispute, before)  # only what changed; nothing changed, no event
    if previous:
        ctx.emit("charge.dispute.updated", dispute, previous)
    return dispute


def _stage(dispute: dict[str, Any], given: Any) -> None:
    if not isinstance(given, dict):
        raise malformed("Invalid hash: evidence", "evidence")
    evidence = dispute["evidence"]
    for name, value in given.items():
        text = validate.string(value, f"evidence[{name}]", EVIDENCE_FIELD_LIMIT)
        if text is None:  # unset: absent, as it was before it was given (answered as null)
            evidence.pop(name, None)
        else:
            evidence[name] = text
    total = sum(len(evidence.get(name) or "") for name in TEXT_EVIDENCE)
    if total > EVIDENCE_LIMIT:
        raise invalid(
            f"The evidence text fields together can have up to {EVIDENCE_LIMIT} characters;"
            f" these have {total}.",
            "evidence",
        )
    has = any(evidence.get(name) for name in TEXT_EVIDENCE)
    dispute["evidence_details"]["has_evidence"] = has


def _closed(dispute: dict[str, Any], what: str) -> ApiError:
    return invalid(f"This dispute has a status of {dispute['status']}: {what}.", "dispute")


@handles("dispute.decide")
def _decide(ctx: Ctx, dispute_id: str) -> None:
    dispute = ctx.store.get(dispute_id, "dispute")
    if dispute is None or dispute["status"] not in REVIEW:
        return
    text = (dispute["evidence"].get("uncategorized_text") or "").strip()
    inquiry = dispute["status"] == "warning_under_review"
    previous = {"status": dispute["status"]}
    if text == "escalate_inquiry_evidence" and inquiry:
        dispute["status"] = "needs_response"
        dispute["payment_method_details"]["card"]["case_type"] = "chargeback"
        refunded = _fully_refunded(ctx, dispute)
        if refunded:
            # Stripe (Dispute.is_charge_refundable): once the payment has been fully refunded,
            # no further funds are withdrawn as a result of this dispute. Set before the event,
            # which shows the dispute as it is after the change.
            previous["is_charge_refundable"] = dispute["is_charge_refundable"]
            dispute["is_charge_refundable"] = False
        ctx.store.save(dispute)
        ctx.emit("charge.dispute.updated", dispute, previous)
        if not refunded:
            _withdraw(ctx, dispute)
        return
    if text not in ("winning_evidence", "losing_evidence"):
        return  # stays under review, as in Stripe's test mode
    won = text == "winning_evidence"
    if inquiry:
        dispute["status"] = "warning_closed"
    else:
        dispute["status"] = "won" if won else "lost"
    ctx.store.save(dispute)
    ctx.emit("charge.dispute.closed", dispute, previous)
    if won and not inquiry:
        _reinstate(ctx, dispute)


def close(ctx: Ctx, dispute_id: str) -> dict[str, Any]:
    dispute = _load(ctx, dispute_id)
    if dispute["status"] not in OPEN:
        raise _closed(dispute, "only a dispute that needs a response can be closed")
    previous = {"status": dispute["status"]}
    inquiry = dispute["status"] == "warning_needs_response"
    dispute["status"] = "warning_closed" if inquiry else "lost"
    ctx.store.save(dispute)
    ctx.emit("charge.dispute.closed", dispute, previous)
    return dispute
