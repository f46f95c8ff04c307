"""Refunds: create, retrieve, update (metadata), cancel, list, and Stripe's asynchronous refunds.

A refund of a charge paid with 4000000000005126 (pm_card_refundFail) starts `succeeded` and
fails some time later (`refund.failed`); with 4000000000007726 (pm_card_pendingRefund) it starts
`pending` and succeeds later (`refund.updated`). Card refunds cannot be canceled through the API
(only refunds in `requires_action` can, and card refunds never are), as with Stripe.
"""

from __future__ import annotations

from typing import Any

from . import cards, objects, render, validate
from .clock import handles
from .context import Ctx
from .events import changed
from .params import ANY, choice
from .store import field_is
from .wire import ApiError, invalid, malformed, new_id, no_such

REASONS = ("duplicate", "fraudulent", "requested_by_customer")
CREATE_SPEC = {
    "charge": None,
    "payment_intent": None,
    "amount": None,
    "reason": None,
    "metadata": ANY,
    "expand": None,
}
RETRIEVE_SPEC = {"expand": None}
UPDATE_SPEC = {"metadata": ANY, "expand": None}
CANCEL_SPEC = {"expand": None}
LIST_SPEC = {**render.LIST_SPEC, "payment_intent": None, "charge": None}


def _refundable_charge(ctx: Ctx) -> dict[str, Any]:
    p = ctx.params
    if p.get("charge") and p.get("payment_intent"):
        raise malformed(
            "You may only specify one of these parameters: charge, payment_intent.", "charge"
        )
    if p.get("charge"):
        ch = ctx.store.get(p["charge"], "charge")
        if ch is None:
            raise no_such("charge", p["charge"], "charge", 400)
        if ch["status"] != "succeeded":
            raise invalid(f"Charge {ch['id']} has not succeeded; it cannot be refunded.", "charge")
    elif p.get("payment_intent"):
        pi = ctx.store.get(p["payment_intent"], "payment_intent")
        if pi is None:
            raise no_such("payment_intent", p["payment_intent"], "payment_intent", 400)
        ch = ctx.store.get(pi["latest_charge"] or "", "charge")
        if pi["status"] != "succeeded" or ch is None or ch["status"] != "succeeded":
            raise invalid(
                f"This PaymentIntent ({pi['id']}) does not have a successful charge to refund.",
                "payment_intent",
            )
    else:
        raise malformed(
            "One of the following params should be provided for this request: payment_intent or"
            " charge.",
            "payment_intent",
            "parameter_missing",
        )
    if not ch["captured"]:
        raise invalid(
            f"Charge {ch['id']} has not been captured: cancel its PaymentIntent to release it.",
            "charge",
        )
    if _charged_back(ctx, ch):
        raise ApiError(
            400,
            f"Charge {ch['id']} has been charged back; cannot issue a refund.",
            code="charge_disputed",
            param="charge" if p.get("charge") else "payment_intent",
        )
    return ch


def _charged_back(ctx: Ctx, ch: dict[str, Any]) -> bool:
    return any(not d["is_charge_refundable"] for d in ctx.store.find("dispute", "charge", ch["id"]))


def create(ctx: Ctx) -> dict[str, Any]:
    p = ctx.params
    asked = None  # checked before the charge's state, as Stripe validates before it executes
    if "amount" in p:
        asked = validate.integer(p["amount"], "amount")
        if asked < 1:
            raise malformed("This value must be greater than or equal to 1.", "amount")
    reason = p.get("reason")
    if reason is not None:
        reason = choice(reason, "reason", REASONS, ctx.op)
    ch = _refundable_charge(ctx)
    remaining = ch["amount"] - ch["amount_refunded"]
    if remaining <= 0:
        raise ApiError(
            400,
            f"Charge {ch['id']} has already been refunded.",
            code="charge_already_refunded",
            param="charge" if p.get("charge") else "payment_intent",
        )
    amount = remaining
    if asked is not None:
        amount = asked
        if amount > remaining:
            cur = ch["currency"]
            if ch["amount_refunded"]:
                message = (
                    f"Refund amount ({validate.money(amount, cur)}) is greater than unrefunded"
                    f" amount on charge ({validate.money(remaining, cur)})"
                )
            else:
                message = (
                    f"Refund amount ({validate.money(amount, cur)}) is greater than charge amount"
                    f" ({validate.money(remaining, cur)})"
                )
            raise invalid(message, "amount")
        validate.chargeable(amount, ch["currency"], "amount")
    refund = objects.refund(ch, amount, reason, validate.metadata(p.get("metadata", {})))
    pm = ctx.store.get(ch["payment_method"] or "", "payment_method") or {}
    later = cards.behavior(pm.get("_number", "")).refund
    if later == "pending":
        refund["status"] = "pending"
        refund["pending_reason"] = "processing"
        ctx.schedule("refund.succeed", refund["id"])
    elif later == "fail":
        ctx.schedule("refund.fail", refund["id"])
    ctx.store.save(refund)
    before = {"amount_refunded": ch["amount_refunded"], "refunded": ch["refunded"]}
    ch["amount_refunded"] += amount
    ch["refunded"] = ch["amount_refunded"] >= ch["amount"]
    ctx.store.save(ch)
    ctx.emit("refund.created", refund)
    ctx.emit("charge.refunded", ch, changed(ch, before))
    return refund


def _load(ctx: Ctx, re_id: str) -> dict[str, Any]:
    refund = ctx.store.get(re_id, "refund")
    if refund is None:
        raise no_such("refund", re_id)
    return refund


def retrieve(ctx: Ctx, re_id: str) -> dict[str, Any]:
    return _load(ctx, re_id)


def update(ctx: Ctx, re_id: str) -> dict[str, Any]:
    refund = _load(ctx, re_id)
    if "metadata" in ctx.params:
        before = {"metadata": refund["metadata"]}
        refund["metadata"] = validate.metadata(ctx.params["metadata"], refund["metadata"])
        previous = changed(refund, before)
        if previous:  # an update that changes nothing is no event, as for a customer
            ctx.store.save(refund)
            _updated(ctx, refund, previous)
    return refund


def cancel(ctx: Ctx, re_id: str) -> dict[str, Any]:
    refund = _load(ctx, re_id)
    if refund["status"] != "requires_action":
        raise invalid(
            f"This refund cannot be canceled because it has a status of {refund['status']}."
            " Only a refund with a status of requires_action can be canceled through the API;"
            " a card refund can be canceled only in the Dashboard.",
            "refund",
        )
    return refund  # unreachable for card refunds, the only kind the emulator makes


def list_(ctx: Ctx) -> dict[str, Any]:
    p = ctx.params
    where = [field_is(f, p[f]) for f in ("payment_intent", "charge") if p.get(f)]
    return render.page(ctx.store, "refund", p, "/v1/refunds", where)


def _updated(ctx: Ctx, refund: dict[str, Any], previous: dict[str, Any]) -> None:
    ctx.emit("refund.updated", refund, previous)
    ctx.emit("charge.refund.updated", refund, previous)


@handles("refund.succeed")
def _succeed(ctx: Ctx, re_id: str) -> None:
    refund = ctx.store.get(re_id, "refund")
    if refund is None or refund["status"] != "pending":
        return
    refund["status"] = "succeeded"
    refund.pop("pending_reason", None)  # optional: Stripe leaves it out once there is none
    ctx.store.save(refund)
    _updated(ctx, refund, {"status": "pending", "pending_reason": "processing"})


@handles("refund.fail")
def _fail(ctx: Ctx, re_id: str) -> None:
    """The card could not take the money back: the refund fails and the charge owes it again."""
    refund = ctx.store.get(re_id, "refund")
    if refund is None or refund["status"] != "succeeded":
        return
    refund["status"] = "failed"
    refund["failure_reason"] = "expired_or_canceled_card"
    refund["failure_balance_transaction"] = new_id("txn")
    ctx.store.save(refund)
    ch = ctx.store.get(refund["charge"] or "", "charge")
    if ch is not None:
        ch["amount_refunded"] = max(0, ch["amount_refunded"] - refund["amount"])
        ch["refunded"] = ch["amount_refunded"] >= ch["amount"]
        ctx.store.save(ch)
    ctx.emit("refund.failed", refund, {"status": "succeeded"})
    _updated(ctx, refund, {"status": "succeeded", "failure_reason": None})
