"""PaymentIntents: create, retrieve, update, confirm, cancel, list, and the payment attempt."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from . import cards, methods, objects, render, validate
from .context import Ctx
from .store import field_is
from .wire import ANY, DOCS, ApiError, check_params, invalid, missing, no_such, now

UPDATABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
CANCELABLE = (
    "requires_payment_method",
    "requires_capture",
    "requires_confirmation",
    "requires_action",
    "processing",
)
CANCEL_REASONS = ("duplicate", "fraudulent", "requested_by_customer", "abandoned")
AUTH_FAILED = (
    "The provided PaymentMethod has failed authentication. You can provide payment_method_data"
    " or a new PaymentMethod to attempt to fulfill this PaymentIntent again."
)

_COMMON = {
    "metadata": ANY,
    "description": None,
    "receipt_email": None,
    "shipping": validate.SHIPPING_SPEC,
    "payment_method": None,
    "payment_method_types": None,
    "setup_future_usage": None,
    "statement_descriptor": None,
    "statement_descriptor_suffix": None,
    "payment_method_options": ANY,
    "expand": None,
}
_CONFIRMING = {
    "payment_method_data": methods.PM_DATA_SPEC,
    "return_url": None,
    "off_session": None,
    "error_on_requires_action": None,
    "mandate_data": ANY,
    "use_stripe_sdk": None,
}
CREATE_SPEC = {
    **_COMMON,
    **_CONFIRMING,
    "amount": None,
    "currency": None,
    "automatic_payment_methods": {"enabled": None, "allow_redirects": None},
    "confirm": None,
    "customer": None,
    "capture_method": None,
    "confirmation_method": None,
    "transfer_group": None,
}
UPDATE_SPEC = {**_COMMON, "amount": None, "currency": None}
CONFIRM_SPEC = {
    **_CONFIRMING,
    "payment_method": None,
    "receipt_email": None,
    "shipping": validate.SHIPPING_SPEC,
    "setup_future_usage": None,
    "payment_method_options": ANY,
    "capture_method": None,
    "expand": None,
    # Stripe.js sends these with a publishable key.
    "client_secret": None,
    "expected_payment_method_type": None,
    "save_payment_method": None,
    "_stripe_version": None,
}
CANCEL_SPEC = {"cancellation_reason": None, "expand": None}
LIST_SPEC = {**render.LIST_SPEC, "customer": None}


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
        if secret != pi["client_secret"]:
            raise invalid(
                "The client_secret provided does not match the client_secret associated with the"
                " PaymentIntent.",
                "client_secret",
            )
    return pi


def _return_url(value: Any) -> str | None:
    url = validate.string(value, "return_url")
    if url is not None and urlsplit(url).scheme not in ("http", "https"):
        raise invalid(f"Invalid URL: {url}", "return_url", "url_invalid")
    return url


def _apply_common(ctx: Ctx, pi: dict[str, Any], p: dict[str, Any]) -> None:
    if "metadata" in p:
        pi["metadata"] = validate.metadata(p["metadata"], pi["metadata"])
    for field in ("description", "statement_descriptor", "statement_descriptor_suffix"):
        if field in p:
            pi[field] = validate.string(p[field], field)
    if "receipt_email" in p:
        pi["receipt_email"] = validate.email(p["receipt_email"], "receipt_email")
    if "shipping" in p:
        pi["shipping"] = validate.shipping(p["shipping"])
    if "setup_future_usage" in p:
        pi["setup_future_usage"] = (
            validate.enum(
                p["setup_future_usage"], "setup_future_usage", ("on_session", "off_session", "")
            )
            or None
        )
    if "payment_method_types" in p:
        types = validate.string_list(p["payment_method_types"], "payment_method_types")
        for t in types:
            if t not in ("card", "link"):
                raise invalid(
                    f"The payment method type provided: {t} is invalid. Please ensure the provided"
                    " type is activated in your dashboard (https://dashboard.stripe.com/account/"
                    "payments/settings) and your account is enabled for any preview features that"
                    " you are trying to use.",
                    "payment_method_types",
                    "payment_method_invalid_parameter",
                )
        pi["payment_method_types"] = types or ["card"]


def create(ctx: Ctx) -> dict[str, Any]:
    p = ctx.params
    check_params(p, CREATE_SPEC)
    if "amount" not in p:
        raise missing("amount")
    if "currency" not in p:
        raise missing("currency")
    cur = validate.currency(p["currency"])
    amt = validate.amount(p["amount"], cur)
    apm_in = p.get("automatic_payment_methods")
    if apm_in is not None and "payment_method_types" in p:
        raise invalid(
            "You may only specify one of these parameters: automatic_payment_methods,"
            " payment_method_types.",
            "automatic_payment_methods",
        )
    apm = None
    if "payment_method_types" not in p:
        # Recent API versions enable automatic payment methods unless types are listed.
        apm_in = apm_in if isinstance(apm_in, dict) else {}
        param = "automatic_payment_methods"
        if validate.boolean(apm_in.get("enabled", "true"), f"{param}[enabled]"):
            redirects = apm_in.get("allow_redirects", "always")
            validate.enum(redirects, f"{param}[allow_redirects]", ("always", "never"))
            apm = {"allow_redirects": redirects, "enabled": True}
    capture = p.get("capture_method", "automatic_async")
    validate.enum(capture, "capture_method", ("automatic", "automatic_async"))
    pi = objects.payment_intent(
        amount=amt,
        currency=cur,
        payment_method_types=["card"],
        automatic_payment_methods=apm,
        capture_method=capture,
    )
    _apply_common(ctx, pi, p)
    pi["customer"] = validate.string(p.get("customer"), "customer")
    pi["transfer_group"] = validate.string(p.get("transfer_group"), "transfer_group")
    confirm = validate.boolean(p.get("confirm", "false"), "confirm")
    if not confirm:
        for param in _CONFIRMING:
            if param in p:
                raise invalid(f"You can only pass `{param}` when `confirm` is true.", param)
    pm = None
    if p.get("payment_method") and not confirm:
        pm = methods.resolve(ctx, p["payment_method"], "payment_method")
        pi["payment_method"] = pm["id"]
        pi["status"] = "requires_confirmation"
    ctx.store.save(pi)
    ctx.emit("payment_intent.created", pi)
    if confirm:
        return _confirm(ctx, pi, p)
    return pi


def retrieve(ctx: Ctx, pi_id: str) -> dict[str, Any]:
    check_params(ctx.params, {"expand": None, "client_secret": None})
    return load(ctx, pi_id)


def update(ctx: Ctx, pi_id: str) -> dict[str, Any]:
    p = ctx.params
    check_params(p, UPDATE_SPEC)
    pi = load(ctx, pi_id)
    if pi["status"] not in UPDATABLE:
        fields = ", ".join(k for k in p if k != "expand") or "fields"
        raise unexpected_state(
            ctx,
            pi,
            f"This PaymentIntent's {fields} could not be updated because it has a status of"
            f" {pi['status']}. You may only update the {fields} of a PaymentIntent with one of"
            f" the following statuses: {', '.join(UPDATABLE)}.",
        )
    cur = validate.currency(p["currency"]) if "currency" in p else pi["currency"]
    if "amount" in p or "currency" in p:
        pi["amount"] = validate.amount(p.get("amount", str(pi["amount"])), cur)
        pi["currency"] = cur
    _apply_common(ctx, pi, p)
    if p.get("payment_method"):
        pm = methods.resolve(ctx, p["payment_method"], "payment_method")
        pi["payment_method"] = pm["id"]
        pi["status"] = "requires_confirmation"
        pi["next_action"] = None
    return ctx.store.save(pi)


def confirm(ctx: Ctx, pi_id: str) -> dict[str, Any]:
    check_params(ctx.params, CONFIRM_SPEC)
    pi = load(ctx, pi_id)
    if pi["status"] == "succeeded":
        raise unexpected_state(
            ctx,
            pi,
            "You cannot confirm this PaymentIntent because it has already succeeded after being"
            " previously confirmed.",
        )
    if pi["status"] not in CONFIRMABLE:
        raise unexpected_state(
            ctx,
            pi,
            f"You cannot confirm this PaymentIntent because it has a status of {pi['status']}."
            " Only a PaymentIntent with one of the following statuses may be confirmed:"
            f" {', '.join(CONFIRMABLE)}.",
        )
    p = ctx.params
    if "receipt_email" in p:
        pi["receipt_email"] = validate.email(p["receipt_email"], "receipt_email")
    if "shipping" in p:
        pi["shipping"] = validate.shipping(p["shipping"])
    return _confirm(ctx, pi, p)


def _confirm(ctx: Ctx, pi: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    if p.get("payment_method") and p.get("payment_method_data"):
        raise invalid(
            "You may only specify one of these parameters: payment_method, payment_method_data.",
            "payment_method_data",
        )
    pi["_return_url"] = (
        _return_url(p.get("return_url")) if "return_url" in p else pi.get("_return_url")
    )
    if p.get("payment_method_data"):
        pm = methods.from_data(ctx, p["payment_method_data"], "payment_method_data[")
    elif p.get("payment_method"):
        pm = methods.resolve(ctx, p["payment_method"], "payment_method")
    elif pi["payment_method"]:
        pm = ctx.store.get(pi["payment_method"], "payment_method")
    else:
        pm = None
    if pm is None:
        ctx.store.save(pi)
        raise unexpected_state(
            ctx,
            pi,
            "You cannot confirm this PaymentIntent because it's missing a payment method. You can"
            " either update the PaymentIntent with a payment method and then confirm it again, or"
            " confirm it again directly with a payment method.",
        )
    return attempt(ctx, pi, pm, authenticated=False)


def attempt(
    ctx: Ctx, pi: dict[str, Any], pm: dict[str, Any], *, authenticated: bool
) -> dict[str, Any]:
    """Charge the card: a challenge first for 3-D Secure cards, then a charge that may decline."""
    pi["payment_method"] = pm["id"]
    pi["last_payment_error"] = None
    pi["next_action"] = None
    kind = cards.behavior(pm["_number"])
    if kind.three_ds and not authenticated:
        page = (
            f"{ctx.base_url}/3ds/authenticate/{pi['id']}?client_secret={quote(pi['client_secret'])}"
        )
        pi["status"] = "requires_action"
        pi["next_action"] = {
            "type": "redirect_to_url",
            "redirect_to_url": {"url": page, "return_url": pi.get("_return_url")},
        }
        ctx.store.save(pi)
        ctx.emit("payment_intent.requires_action", pi)
        return pi
    decline = cards.DECLINES.get((kind.decline_after_3ds if authenticated else kind.decline) or "")
    ch = ctx.store.save(objects.charge(pi, pm, decline, ctx.base_url, authenticated))
    pi["latest_charge"] = ch["id"]
    if decline is None:
        pi["status"] = "succeeded"
        pi["amount_received"] = pi["amount"]
        ctx.store.save(pi)
        ctx.emit("charge.succeeded", ch)
        ctx.emit("payment_intent.succeeded", pi)
        return pi
    pi["status"] = "requires_payment_method"
    pi["payment_method"] = None
    pi["last_payment_error"] = {
        "charge": ch["id"],
        "code": decline.code,
        "decline_code": decline.decline_code,
        "doc_url": DOCS + decline.code.replace("_", "-"),
        "message": decline.message,
        "payment_method": objects.public(pm),
        "type": "card_error",
    }
    ctx.store.save(pi)
    ctx.emit("charge.failed", ch)
    ctx.emit("payment_intent.payment_failed", pi)
    raise ApiError(
        402,
        decline.message,
        type="card_error",
        code=decline.code,
        decline_code=decline.decline_code,
        extra={
            "charge": ch["id"],
            "payment_intent": view(ctx, pi),
            "payment_method": objects.public(pm),
        },
    )


def fail_authentication(ctx: Ctx, pi: dict[str, Any]) -> dict[str, Any]:
    pm = ctx.store.get(pi["payment_method"] or "", "payment_method")
    pi["status"] = "requires_payment_method"
    pi["next_action"] = None
    pi["payment_method"] = None
    pi["last_payment_error"] = {
        "code": "payment_intent_authentication_failure",
        "doc_url": DOCS + "payment-intent-authentication-failure",
        "message": AUTH_FAILED,
        "payment_method": objects.public(pm) if pm else None,
        "type": "invalid_request_error",
    }
    ctx.store.save(pi)
    ctx.emit("payment_intent.payment_failed", pi)
    return pi


def cancel(ctx: Ctx, pi_id: str) -> dict[str, Any]:
    check_params(ctx.params, CANCEL_SPEC)
    pi = load(ctx, pi_id)
    reason = ctx.params.get("cancellation_reason")
    if reason is not None:
        validate.enum(reason, "cancellation_reason", CANCEL_REASONS)
    if pi["status"] not in CANCELABLE:
        raise unexpected_state(
            ctx,
            pi,
            f"You cannot cancel this PaymentIntent because it has a status of {pi['status']}."
            " Only a PaymentIntent with one of the following statuses may be canceled:"
            f" {', '.join(CANCELABLE)}.",
        )
    pi["status"] = "canceled"
    pi["canceled_at"] = now()
    pi["cancellation_reason"] = reason
    pi["next_action"] = None
    ctx.store.save(pi)
    ctx.emit("payment_intent.canceled", pi)
    return pi


def list_(ctx: Ctx) -> dict[str, Any]:
    check_params(ctx.params, LIST_SPEC)
    customer = ctx.params.get("customer")
    where = [field_is("customer", customer)] if customer else []
    return render.page(ctx.store, "payment_intent", ctx.params, "/v1/payment_intents", where)
