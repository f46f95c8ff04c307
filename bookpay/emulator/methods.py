"""PaymentMethods: cards from numbers, `pm_card_*` test tokens, retrieve."""

from __future__ import annotations

import datetime as dt
from typing import Any

from . import cards, objects, validate
from .context import Ctx
from .params import ANY, choice
from .wire import ApiError, invalid, malformed, missing, no_such

# Raw card details, as Stripe.js sends them with a publishable key.
CARD_SPEC = {"number": None, "exp_month": None, "exp_year": None, "cvc": None}
# Stripe.js adds tracking fields to payment_method_data; Stripe accepts them, so do we.
PM_DATA_SPEC = {
    "type": None,
    "card": CARD_SPEC,
    "billing_details": validate.BILLING_SPEC,
    "metadata": ANY,
    "allow_redisplay": None,
    "payment_user_agent": None,
    "time_on_page": None,
    "guid": None,
    "muid": None,
    "sid": None,
    "referrer": None,
    "client_attribution_metadata": ANY,
}
CREATE_SPEC = {**PM_DATA_SPEC, "expand": None}
RETRIEVE_SPEC = {"expand": None}
REDISPLAY = ("always", "limited", "unspecified")


def at(prefix: str, *parts: str) -> str:
    """A parameter's bracket name under `prefix` ("" or "payment_method_data")."""
    head, rest = (prefix, parts) if prefix else (parts[0], parts[1:])
    return head + "".join(f"[{part}]" for part in rest)


def _card_error(message: str, code: str, param: str) -> ApiError:
    return ApiError(402, message, type="card_error", code=code, param=param)


def from_card_params(
    card: Any, billing: Any, metadata: Any, allow_redisplay: str, prefix: str
) -> dict[str, Any]:
    """Validate card fields as Stripe does and build (not save) a card PaymentMethod."""
    if not isinstance(card, dict):
        raise missing(at(prefix, "card"))
    number = str(card.get("number") or "").replace(" ", "")
    if not number:
        raise missing(at(prefix, "card", "number"))
    if not cards.luhn_ok(number):
        raise _card_error(
            "Your card number is incorrect.", "incorrect_number", at(prefix, "card", "number")
        )
    for field in ("exp_month", "exp_year"):
        if not card.get(field):
            raise missing(at(prefix, "card", field))
    month = validate.integer(card["exp_month"], at(prefix, "card", "exp_month"))
    year = validate.integer(card["exp_year"], at(prefix, "card", "exp_year"))
    year = year + 2000 if year < 100 else year
    today = dt.date.today()
    if not 1 <= month <= 12:
        raise _card_error(
            "Your card's expiration month is invalid.",
            "invalid_expiry_month",
            at(prefix, "card", "exp_month"),
        )
    if year < today.year or year > today.year + 50:
        raise _card_error(
            "Your card's expiration year is invalid.",
            "invalid_expiry_year",
            at(prefix, "card", "exp_year"),
        )
    if year == today.year and month < today.month:
        raise _card_error(
            "Your card's expiration month is invalid.",
            "invalid_expiry_month",
            at(prefix, "card", "exp_month"),
        )
    cvc = str(card.get("cvc") or "")
    if cvc and (not cvc.isdigit() or len(cvc) not in (3, 4)):
        raise _card_error(
            "Your card's security code is invalid.", "invalid_cvc", at(prefix, "card", "cvc")
        )
    return objects.payment_method(
        number=number,
        exp_month=month,
        exp_year=year,
        cvc_given=bool(cvc),
        billing_details=validate.billing_details(billing),
        metadata=validate.metadata(metadata or {}),
        allow_redisplay=allow_redisplay,
    )


def from_data(ctx: Ctx, data: Any, prefix: str) -> dict[str, Any]:
    """`payment_method_data` (confirm) or the create body: type card only."""
    if not isinstance(data, dict):
        raise malformed(f"Invalid hash: {prefix}", prefix)
    kind = data.get("type")
    if not kind:
        raise missing(at(prefix, "type"))
    choice(kind, at(prefix, "type"), ("card",), ctx.op)
    redisplay = choice(
        data.get("allow_redisplay", "unspecified"),
        at(prefix, "allow_redisplay"),
        REDISPLAY,
        ctx.op,
    )
    pm = from_card_params(
        data.get("card"), data.get("billing_details"), data.get("metadata"), redisplay, prefix
    )
    return ctx.store.save(pm)


def from_token(ctx: Ctx, token: str) -> dict[str, Any]:
    """A test token materialises a fresh PaymentMethod each time, as Stripe does."""
    today = dt.date.today()
    pm = objects.payment_method(
        number=cards.TOKENS[token],
        exp_month=today.month,
        exp_year=today.year + 1,
        cvc_given=True,
        billing_details=validate.billing_details({}),
        metadata={},
    )
    return ctx.store.save(pm)


def resolve(ctx: Ctx, ref: Any, param: str) -> dict[str, Any]:
    """A PaymentMethod id or a `pm_card_*` token."""
    if not isinstance(ref, str) or not ref:
        raise invalid(f"Invalid string: {ref}", param, "parameter_invalid_string")
    if ref in cards.TOKENS:
        return from_token(ctx, ref)
    pm = ctx.store.get(ref, "payment_method")
    if pm is None:
        raise no_such("PaymentMethod", ref, param, 400)
    return pm


def create(ctx: Ctx) -> dict[str, Any]:
    return from_data(ctx, ctx.params, "")


def retrieve(ctx: Ctx, pm_id: str) -> dict[str, Any]:
    if pm_id in cards.TOKENS:
        return from_token(ctx, pm_id)
    pm = ctx.store.get(pm_id, "payment_method")
    if pm is None:
        raise no_such("payment_method", pm_id)
    return pm
