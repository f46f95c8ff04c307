"""Confirming a PaymentIntent: Stripe's rules for it, 3-D Secure next actions, the charge."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from . import capture, cards, disputes, methods, objects, render, validate
from . import intent_base as intents
from .context import Ctx
from .params import choice
from .wire import DOCS, ApiError, invalid, malformed, new_id

CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
# Parameters that only make sense when confirming (on create, only with confirm=true).
CONFIRMING = {
    "payment_method_data": methods.PM_DATA_SPEC,
    "return_url": None,
    "off_session": None,
    "error_on_requires_action": None,
    "use_stripe_sdk": None,
}
CONFIRM_SPEC = {
    **CONFIRMING,
    "allowed_payment_method_types": None,
    "excluded_payment_method_types": None,
    "payment_method": None,
    "receipt_email": None,
    "shipping": validate.SHIPPING_SPEC,
    "setup_future_usage": None,
    "capture_method": None,
    "expand": None,
    # Stripe.js sends these with a publishable key.
    "client_secret": None,
    "expected_payment_method_type": None,
    "save_payment_method": None,
    "_stripe_version": None,
}
# What a publishable key (Stripe.js, with the client secret) may send on confirm: the confirm
# params @stripe/stripe-js declares (PaymentIntentConfirmParams, ConfirmCardPaymentData,
# ConfirmPaymentData) and what Stripe.js adds itself. The rest (capture_method, off_session,
# error_on_requires_action, the payment method type lists, mandate, ...) is set by the server,
# with its secret key.
PUBLISHABLE_PARAMS = frozenset(
    {
        "payment_method",
        "payment_method_data",
        "payment_method_options",
        "confirmation_token",
        "return_url",
        "receipt_email",
        "setup_future_usage",
        "shipping",
        "mandate_data",
        "save_payment_method",
        "expand",
        "client_secret",
        "use_stripe_sdk",
        "expected_payment_method_type",
        "_stripe_version",
    }
)
AUTH_FAILED = (
    "The provided PaymentMethod has failed authentication. You can provide payment_method_data"
    " or a new PaymentMethod to attempt to fulfill this PaymentIntent again."
)
RETURN_URL_REQUIRED = (
    "A `return_url` must be specified because this Payment Intent is configured to automatically"
    " accept the payment methods enabled in the Dashboard, some of which may require a full page"
    " redirect to succeed. If you do not want to accept redirect-based payment methods, set"
    " `automatic_payment_methods[enabled]` to `true` and"
    " `automatic_payment_methods[allow_redirects]` to `never` when creating Setup Intents and"
    " Payment Intents."
)
# Stripe's refusal of a customer's saved card on an intent that is not that customer's (its
# wording, as integrations quote it).
ANOTHER_CUSTOMERS = (
    "The `payment_method` parameter supplied {pm} belongs to the Customer {customer}. Please"
    " include the Customer in the `customer` parameter on the PaymentIntent."
)
MANUAL_WITH_PUBLISHABLE = (
    "This PaymentIntent's confirmation_method is manual: it can only be confirmed with a secret"
    " key, on your server."
)


def confirm(ctx: Ctx, pi_id: str) -> dict[str, Any]:
    pi = intents.load(ctx, pi_id)
    if pi["status"] == "succeeded":
        raise intents.unexpected_state(
            ctx,
            pi,
            "You cannot confirm this PaymentIntent because it has already succeeded after being"
            " previously confirmed.",
        )
    if pi["status"] not in CONFIRMABLE:
        raise intents.unexpected_state(
            ctx,
            pi,
            f"You cannot confirm this PaymentIntent because it has a status of {pi['status']}."
            " Only a PaymentIntent with one of the following statuses may be confirmed:"
            f" {', '.join(CONFIRMABLE)}.",
        )
    if ctx.publishable and pi["confirmation_method"] == "manual":
        raise invalid(MANUAL_WITH_PUBLISHABLE)
    intents.apply_common(ctx, pi, ctx.params)
    return run(ctx, pi, ctx.params)


def _return_url(value: Any) -> str | None:
    """Somewhere the customer can be sent back to: an http(s) URL or, as Stripe documents, an
    application URI (`bookshop://payment/done`). A URL with no host (`https:///x`, `http:foo`),
    a malformed port or scheme is Stripe's 400 `url_invalid`, "Not a valid URL", never a 500."""
    return validate.url(value, "return_url", validate.NOT_A_URL, app=True)


def _off_session(value: Any, op: str) -> bool:
    """A boolean, or Stripe's one_off / recurring (both off-session)."""
    if value in ("true", "false"):
        return value == "true"
    return bool(choice(value, "off_session", ("true", "false", "one_off", "recurring"), op))


def needs_return_url(pi: dict[str, Any]) -> bool:
    apm = pi.get("automatic_payment_methods") or {}
    return bool(apm.get("enabled")) and apm.get("allow_redirects") != "never"


def run(ctx: Ctx, pi: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    """Confirm with what the request gives (a server-side confirm, or create with confirm)."""
    pm, how = prepare(ctx, pi, p)
    return finish(ctx, pi, pm, how)


def prepare(
    ctx: Ctx, pi: dict[str, Any], p: dict[str, Any]
) -> tuple[dict[str, Any] | None, dict[str, bool]]:
    """Check a confirmation's parameters and find its payment method, before anything is
    charged (create with confirm=true calls it before it creates the intent: a confirmation
    Stripe refuses creates nothing)."""
    if p.get("payment_method") and p.get("payment_method_data"):
        raise malformed(
            "You may only specify one of these parameters: payment_method, payment_method_data.",
            "payment_method_data",
        )
    if "return_url" in p:
        pi["_return_url"] = _return_url(p["return_url"])
    off_session = _off_session(p["off_session"], ctx.op) if "off_session" in p else False
    strict = validate.boolean(
        p.get("error_on_requires_action", "false"), "error_on_requires_action"
    )
    sdk = validate.boolean(p.get("use_stripe_sdk", "false"), "use_stripe_sdk")
    # Stripe.js (a publishable key) handles redirects itself; a server-side confirmation of an
    # intent that accepts redirect-based methods must say where the customer comes back to.
    if not ctx.publishable and needs_return_url(pi) and not pi.get("_return_url"):
        raise invalid(RETURN_URL_REQUIRED, "return_url")
    if p.get("payment_method_data"):
        pm = methods.from_data(ctx, p["payment_method_data"], "payment_method_data")
    elif p.get("payment_method"):
        pm = methods.resolve(ctx, p["payment_method"], "payment_method")
    elif pi["payment_method"]:
        pm = ctx.store.get(pi["payment_method"], "payment_method")
    else:
        pm = None
    if pm is not None and pm.get("customer") and pm["customer"] != pi.get("customer"):
        message = ANOTHER_CUSTOMERS.format(pm=pm["id"], customer=pm["customer"])
        raise invalid(message, "payment_method")
    return pm, {"off_session": off_session, "strict": strict, "sdk": sdk}


def finish(
    ctx: Ctx, pi: dict[str, Any], pm: dict[str, Any] | None, how: dict[str, bool]
) -> dict[str, Any]:
    """Charge what `prepare` found; with no payment method, the intent waits for one."""
    if pm is None:
        # Refused: the intent stays as it was, without what this request would have set (a
        # receipt_email, a return_url); create with confirm=true has saved it already.
        raise intents.unexpected_state(
            ctx,
            ctx.store.get(pi["id"], "payment_intent") or pi,
            "You cannot confirm this PaymentIntent because it's missing a payment method. You can"
            " either update the PaymentIntent with a payment method and then confirm it again, or"
            " confirm it again directly with a payment method.",
        )
    authenticated = pi.get("_authenticated") == pm["id"]
    return attempt(ctx, pi, pm, authenticated=authenticated, **how)


def _next_action(ctx: Ctx, pi: dict[str, Any], sdk: bool) -> dict[str, Any]:
    """Stripe.js's own action (use_stripe_sdk) when it asked for one or when there is nowhere
    to redirect back to; otherwise a redirect to the challenge page and back to return_url."""
    page = f"{ctx.base_url}/3ds/authenticate/{pi['id']}?client_secret={quote(pi['client_secret'])}"
    if sdk or (not ctx.publishable and not pi.get("_return_url")):
        return {
            "type": "use_stripe_sdk",
            "use_stripe_sdk": {
                "type": "three_d_secure_redirect",
                "stripe_js": page,
                "source": new_id("src"),
            },
        }
    return {
        "type": "redirect_to_url",
        "redirect_to_url": {"url": page, "return_url": pi.get("_return_url")},
    }


def attempt(
    ctx: Ctx,
    pi: dict[str, Any],
    pm: dict[str, Any],
    *,
    authenticated: bool,
    off_session: bool = False,
    strict: bool = False,
    sdk: bool = False,
) -> dict[str, Any]:
    """Charge the card: a challenge first for 3-D Secure cards, then a charge that may decline.
    `off_session` declines what would need the customer, unless the card was set up for it
    (Stripe's "Authenticate unless set up") or counts as set up ("Already set up");
    `strict` (error_on_requires_action) declines what would need the customer on-session: a
    card set up for off-session use still needs authentication on-session."""
    pi["payment_method"] = pm["id"]
    pi["last_payment_error"] = None
    pi["next_action"] = None
    kind = cards.behavior(pm["_number"])
    decline = None
    set_up = off_session and (
        kind.off_session_skips_3ds or (kind.set_up_skips_3ds and pm.get("_set_up") == "off_session")
    )
    if kind.three_ds and not authenticated and not set_up:
        if not (off_session or strict):
            pi["status"] = "requires_action"
            pi["next_action"] = _next_action(ctx, pi, sdk)
            ctx.store.save(pi)
            ctx.emit("payment_intent.requires_action", pi)
            return pi
        decline = cards.DECLINES["authentication_required"]
    elif authenticated:
        decline = cards.DECLINES.get(kind.decline_after_3ds or "")
    else:
        decline = cards.DECLINES.get(kind.decline or "")
        if kind.cvc_check_only and pm["card"]["checks"]["cvc_check"] is None:
            # "Succeeds unless a CVC is entered" (4000 0000 0000 0101): no CVC, nothing to fail.
            decline = None
    manual = pi["capture_method"] == "manual"
    ch = objects.charge(pi, pm, decline, ctx.base_url, authenticated, captured=not manual)
    ctx.store.save(ch)
    pi["latest_charge"] = ch["id"]
    pi.pop("_authenticated", None)
    if decline is not None:
        return _declined(ctx, pi, pm, ch, decline)
    save_for_future(ctx, pi, pm)
    if manual:
        pi["status"] = "requires_capture"
        pi["amount_capturable"] = pi["amount"]
        ctx.store.save(pi)
        capture.hold_until_expiry(ctx, pi, ch)
        ctx.emit("charge.succeeded", ch)
        ctx.emit("payment_intent.amount_capturable_updated", pi, {"amount_capturable": 0})
        return pi
    pi["status"] = "succeeded"
    pi["amount_received"] = pi["amount"]
    ctx.store.save(pi)
    ctx.emit("charge.succeeded", ch)
    ctx.emit("payment_intent.succeeded", pi)
    disputes.after_capture(ctx, ch, pm)
    return pi


def save_for_future(ctx: Ctx, pi: dict[str, Any], pm: dict[str, Any]) -> None:
    """Stripe's save during payment: a payment with `setup_future_usage` that goes through
    (succeeded, or authorized for manual capture) attaches its PaymentMethod to the intent's
    customer (`payment_method.attached`) and sets the card up for that usage; off_session is
    what lets a card that needs authentication until set up be charged off-session without it.
    Without a customer Stripe attaches nothing (the parameter is accepted: "you can still attach
    the payment method to a Customer after the transaction completes")."""
    usage, customer = pi.get("setup_future_usage"), pi.get("customer")
    if not usage or not customer:
        return
    if pm.get("_set_up") != "off_session":
        pm["_set_up"] = usage
    attached = pm.get("customer") != customer
    pm["customer"] = customer
    ctx.store.save(pm)
    if attached:
        ctx.emit("payment_method.attached", pm)


def _declined(ctx: Ctx, pi: dict, pm: dict, ch: dict, decline: cards.Decline) -> dict:
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
            "payment_intent": intents.view(ctx, pi),
            "payment_method": render.complete(ctx.store, pm),
        },
    )


def complete_authentication(ctx: Ctx, pi: dict[str, Any]) -> dict[str, Any]:
    """The customer passed the challenge: charge now, or (confirmation_method=manual) wait in
    requires_confirmation for the server to confirm again."""
    pm = ctx.store.get(pi["payment_method"] or "", "payment_method")
    if pm is None:
        return fail_authentication(ctx, pi)
    if pi["confirmation_method"] == "manual":
        pi["status"] = "requires_confirmation"
        pi["next_action"] = None
        pi["_authenticated"] = pm["id"]
        return ctx.store.save(pi)
    try:
        return attempt(ctx, pi, pm, authenticated=True)
    except ApiError:  # declined after authentication: the intent records it
        return ctx.store.get(pi["id"], "payment_intent") or pi


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
