"""PaymentIntents: create, retrieve, update, cancel, list. Confirmation is in confirmation.py,
capture in capture.py."""

from __future__ import annotations

from typing import Any

from . import capture, confirmation, methods, objects, render, validate
from .context import Ctx
from .intent_base import PM_TYPES, apply_common, load, unexpected_state
from .params import ANY, choice
from .store import field_is
from .wire import malformed, missing, now

UPDATABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
# What an intent takes in any status: what says what the payment was for and where it goes (a
# shipment's carrier and tracking number come once it has shipped). Everything else an update
# sets needs an unconfirmed intent (UPDATABLE), and Stripe refuses it in another status by name:
# "This PaymentIntent's amount could not be updated because it has a status of canceled. You may
# only update the amount of a PaymentIntent with one of the following statuses: ..." (its API's
# answer, quoted in integrations' code), while a succeeded intent's metadata is updated.
ANY_STATUS = frozenset({"metadata", "description", "receipt_email", "shipping", "expand"})
CANCELABLE = (
    "requires_payment_method",
    "requires_capture",
    "requires_confirmation",
    "requires_action",
    "processing",
)
CANCEL_REASONS = ("duplicate", "fraudulent", "requested_by_customer", "abandoned")

_COMMON = {
    "allowed_payment_method_types": None,
    "excluded_payment_method_types": None,
    "metadata": ANY,
    "description": None,
    "receipt_email": None,
    "shipping": validate.SHIPPING_SPEC,
    "payment_method": None,
    "setup_future_usage": None,
    "statement_descriptor": None,
    "statement_descriptor_suffix": None,
    "capture_method": None,
    "customer": None,
    "transfer_group": None,
    "expand": None,
}
CREATE_SPEC = {
    **_COMMON,
    **confirmation.CONFIRMING,
    "amount": None,
    "currency": None,
    "automatic_payment_methods": {"enabled": None, "allow_redirects": None},
    "confirm": None,
    "confirmation_method": None,
}
UPDATE_SPEC = {
    **_COMMON,
    "amount": None,
    "currency": None,
    "payment_method_data": methods.PM_DATA_SPEC,
}
RETRIEVE_SPEC = {"expand": None, "client_secret": None}
CANCEL_SPEC = {"cancellation_reason": None, "expand": None}
LIST_SPEC = {**render.LIST_SPEC, "customer": None}


def create(ctx: Ctx) -> dict[str, Any]:
    p = ctx.params
    if "amount" not in p:
        raise missing("amount")
    if "currency" not in p:
        raise missing("currency")
    cur = validate.currency(p["currency"])
    amt = validate.amount(p["amount"], cur)
    apm_in = p.get("automatic_payment_methods")
    if apm_in is not None and "allowed_payment_method_types" in p:
        raise malformed(
            "You may only specify one of these parameters: allowed_payment_method_types,"
            " automatic_payment_methods.",
            "automatic_payment_methods",
        )
    apm = None
    if "allowed_payment_method_types" not in p:
        # Dynamic payment methods unless the types are limited to a list.
        apm_in = apm_in if isinstance(apm_in, dict) else {}
        param = "automatic_payment_methods"
        if validate.boolean(apm_in.get("enabled", "true"), f"{param}[enabled]"):
            redirects = choice(
                apm_in.get("allow_redirects", "always"),
                f"{param}[allow_redirects]",
                ("always", "never"),
                ctx.op,
            )
            apm = {"allow_redirects": redirects, "enabled": True}
    pi = objects.payment_intent(
        amount=amt,
        currency=cur,
        payment_method_types=list(PM_TYPES),
        automatic_payment_methods=apm,
        capture_method="automatic_async",
    )
    pi["confirmation_method"] = choice(
        p.get("confirmation_method", "automatic"),
        "confirmation_method",
        ("automatic", "manual"),
        ctx.op,
    )
    apply_common(ctx, pi, p)
    confirm = validate.boolean(p.get("confirm", "false"), "confirm")
    if not confirm:
        for param in confirmation.CONFIRMING:
            if param in p:
                raise malformed(f"You can only pass `{param}` when `confirm` is true.", param)
    if p.get("payment_method") and not confirm:
        pm = methods.resolve(ctx, p["payment_method"], "payment_method")
        pi["payment_method"] = pm["id"]
        pi["status"] = "requires_confirmation"
    pm, how = confirmation.prepare(ctx, pi, p) if confirm else (None, {})
    ctx.store.save(pi)
    ctx.emit("payment_intent.created", pi)
    if confirm:
        return confirmation.finish(ctx, pi, pm, how)
    return pi


def retrieve(ctx: Ctx, pi_id: str) -> dict[str, Any]:
    return load(ctx, pi_id)


def update(ctx: Ctx, pi_id: str) -> dict[str, Any]:
    p = ctx.params
    pi = load(ctx, pi_id)
    needs_unconfirmed = [name for name in p if name not in ANY_STATUS]
    if pi["status"] not in UPDATABLE and needs_unconfirmed:
        field = needs_unconfirmed[0]
        raise unexpected_state(
            ctx,
            pi,
            f"This PaymentIntent's {field} could not be updated because it has a status of"
            f" {pi['status']}. You may only update the {field} of a PaymentIntent with one of"
            f" the following statuses: {', '.join(UPDATABLE)}.",
        )
    if p.get("payment_method") and p.get("payment_method_data"):
        raise malformed(
            "You may only specify one of these parameters: payment_method, payment_method_data.",
            "payment_method_data",
        )
    cur = validate.currency(p["currency"]) if "currency" in p else pi["currency"]
    if "amount" in p or "currency" in p:
        pi["amount"] = validate.amount(p.get("amount", str(pi["amount"])), cur)
        pi["currency"] = cur
    apply_common(ctx, pi, p)
    pm = None
    if p.get("payment_method"):
        pm = methods.resolve(ctx, p["payment_method"], "payment_method")
    elif p.get("payment_method_data"):
        pm = methods.from_data(ctx, p["payment_method_data"], "payment_method_data")
    if pm is not None:
        pi["payment_method"] = pm["id"]
        pi["status"] = "requires_confirmation"
        pi["next_action"] = None
    return ctx.store.save(pi)


def cancel(ctx: Ctx, pi_id: str) -> dict[str, Any]:
    pi = load(ctx, pi_id)
    reason = ctx.params.get("cancellation_reason")
    if reason is not None:
        reason = choice(reason, "cancellation_reason", CANCEL_REASONS, ctx.op)
    if pi["status"] not in CANCELABLE:
        raise unexpected_state(
            ctx,
            pi,
            f"You cannot cancel this PaymentIntent because it has a status of {pi['status']}."
            " Only a PaymentIntent with one of the following statuses may be canceled:"
            f" {', '.join(CANCELABLE)}.",
        )
    if pi["status"] == "requires_capture":
        capture.release(ctx, pi)
    pi["status"] = "canceled"
    pi["canceled_at"] = now()
    pi["cancellation_reason"] = reason
    pi["next_action"] = None
    pi["amount_capturable"] = 0
    ctx.store.save(pi)
    ctx.emit("payment_intent.canceled", pi)
    return pi


def list_(ctx: Ctx) -> dict[str, Any]:
    customer = ctx.params.get("customer")
    where = [field_is("customer", customer)] if customer else []
    return render.page(ctx.store, "payment_intent", ctx.params, "/v1/payment_intents", where)
