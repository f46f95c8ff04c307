"""PaymentIntent helpers the handlers share: loading (with the client secret), the caller's
view, Stripe's state error, and the fields several operations set the same way."""

from __future__ import annotations

from typing import Any

from . import customers, render, validate
from .context import Ctx
from .params import choice, declared, unsupported
from .wire import ApiError, invalid, malformed, missing, no_such, same_secret

CAPTURE_METHODS = ("automatic", "automatic_async", "manual")
PM_TYPES = ("card",)  # the payment method types this emulator's "Dashboard" has enabled


def unexpected_state(ctx: Ctx, pi: dict[str, Any], message: str) -> ApiError:
    return ApiError(
        400,
        message,
        code="payment_intent_unexpected_state",
        extra={"payment_intent": view(ctx, pi)},
    )


def view(ctx: Ctx, pi: dict[str, Any]) -> dict[str, Any]:
    """The PaymentIntent as this caller may see it."""
    full = render.complete(ctx.store, pi)
    return render.publishable_view(full) if ctx.publishable else full


def load(ctx: Ctx, pi_id: str) -> dict[str, Any]:
    pi = ctx.store.get(pi_id, "payment_intent")
    if pi is None:
        raise no_such("payment_intent", pi_id, "intent")
    if ctx.publishable:
        secret = ctx.params.get("client_secret")
        if not secret:
            raise missing("client_secret")
        if not same_secret(secret, pi["client_secret"]):
            raise invalid(
                "The client_secret provided does not match the client_secret associated with the"
                " PaymentIntent.",
                "client_secret",
            )
    return pi


# Stripe's refusal of a statement_descriptor on a PaymentIntent that may take cards (since
# January 2024; its parameter docs: "Setting this value for a card charge returns an error"),
# as its API words it (quoted in integrations' issues).
STATEMENT_DESCRIPTOR_FOR_CARDS = (
    "The statement_descriptor parameter is not supported for the payment_method_type `card`. To"
    " continue supporting payment_method_type `card`, please pass in `statement_descriptor_suffix`"
    " or remove the `statement_descriptor` parameter altogether. Please see"
    " https://support.stripe.com/questions/use-of-the-statement-descriptor-parameter-on-"
    "paymentintents-for-card-charges for additional details."
)


def statement_descriptors(pi: dict[str, Any], p: dict[str, Any]) -> None:
    """Set statement_descriptor and _suffix (at most 22 characters) as create, update and
    capture take them: a card payment takes only the suffix (every PaymentIntent here does)."""
    for field in ("statement_descriptor", "statement_descriptor_suffix"):
        if field in p:
            value = validate.string(p[field], field, max_length=22)
            if value and field == "statement_descriptor" and "card" in pi["payment_method_types"]:
                raise invalid(STATEMENT_DESCRIPTOR_FOR_CARDS, field)
            pi[field] = value


def apply_common(ctx: Ctx, pi: dict[str, Any], p: dict[str, Any]) -> None:
    if "metadata" in p:
        pi["metadata"] = validate.metadata(p["metadata"], pi["metadata"])
    for field in ("description", "transfer_group"):
        if field in p:
            pi[field] = validate.string(p[field], field)
    statement_descriptors(pi, p)
    if "receipt_email" in p:
        pi["receipt_email"] = validate.email(p["receipt_email"], "receipt_email")
    if "shipping" in p:
        pi["shipping"] = validate.shipping(p["shipping"])
    if "setup_future_usage" in p:
        usage = p["setup_future_usage"]
        usages = ("on_session", "off_session")
        usage = None if usage == "" else choice(usage, "setup_future_usage", usages, ctx.op)
        current = pi.get("setup_future_usage")
        # Stripe's rule (its setup_future_usage docs): once set, a publishable key may only move
        # it from on_session to off_session. Its wording of the refusal is not documented.
        if ctx.publishable and current and usage != current and usage != "off_session":
            raise invalid(
                f"This PaymentIntent's setup_future_usage is {current}: with a publishable key it"
                " can only be changed from on_session to off_session.",
                "setup_future_usage",
            )
        pi["setup_future_usage"] = usage
    if "capture_method" in p:
        method = choice(p["capture_method"], "capture_method", CAPTURE_METHODS, ctx.op)
        pi["capture_method"] = method
    if "customer" in p:
        pi["customer"] = customers.reference(ctx, p["customer"], "customer")
    if "allowed_payment_method_types" in p or "excluded_payment_method_types" in p:
        _types(ctx, pi, p)


def _types(ctx: Ctx, pi: dict[str, Any], p: dict[str, Any]) -> None:
    """allowed_payment_method_types limits the types (incompatible ones silently dropped, as
    Stripe does); excluded_payment_method_types removes some from the dynamic set."""
    allowed, excluded = "allowed_payment_method_types", "excluded_payment_method_types"
    if allowed in p and excluded in p:
        raise malformed(
            f"You may only specify one of these parameters: {allowed}, {excluded}.", allowed
        )
    name = allowed if allowed in p else excluded
    given = validate.string_list(p[name], name)
    known = declared()["operations"].get(ctx.op, {}).get("enums", {}).get(name, ())
    for i, kind in enumerate(given):
        if kind not in known:
            raise malformed(
                f"Invalid {name}[{i}]: must be one of {', '.join(known)}", f"{name}[{i}]"
            )
    if name == allowed:
        if (pi.get("automatic_payment_methods") or {}).get("enabled"):
            raise invalid(
                f"You may only specify one of these parameters: {allowed},"
                " automatic_payment_methods.",
                allowed,
            )
        types = [kind for kind in PM_TYPES if kind in given]
    else:
        types = [kind for kind in PM_TYPES if kind not in given]
    if given and not types:
        raise unsupported(name, ",".join(given))
    pi[allowed] = given or None if name == allowed else pi.get(allowed)
    pi[excluded] = given or None if name == excluded else pi.get(excluded)
    pi["payment_method_types"] = types or list(PM_TYPES)
