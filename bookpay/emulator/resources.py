"""Charges, refunds, events and webhook endpoints."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from . import events, objects, render, validate
from .context import Ctx
from .store import any_of, field_is
from .wire import ANY, ApiError, check_params, invalid, missing, no_such

REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")


def _get(ctx: Ctx, kind: str, obj_id: str, label: str | None = None) -> dict[str, Any]:
    obj = ctx.store.get(obj_id, kind)
    if obj is None:
        raise no_such(label or kind, obj_id)
    return obj


# --- charges ------------------------------------------------------------------------------


def charge_retrieve(ctx: Ctx, ch_id: str) -> dict[str, Any]:
    check_params(ctx.params, {"expand": None})
    return _get(ctx, "charge", ch_id)


def charge_list(ctx: Ctx) -> dict[str, Any]:
    check_params(ctx.params, {**render.LIST_SPEC, "payment_intent": None, "customer": None})
    pi = ctx.params.get("payment_intent")
    where = [field_is("payment_intent", pi)] if pi else []
    return render.page(ctx.store, "charge", ctx.params, "/v1/charges", where)


# --- refunds ------------------------------------------------------------------------------

REFUND_SPEC = {
    "charge": None,
    "payment_intent": None,
    "amount": None,
    "reason": None,
    "metadata": ANY,
    "instructions_email": None,
    "expand": None,
}


def _refundable_charge(ctx: Ctx) -> dict[str, Any]:
    p = ctx.params
    if p.get("charge") and p.get("payment_intent"):
        raise invalid(
            "You may only specify one of these parameters: charge, payment_intent.", "charge"
        )
    if p.get("charge"):
        ch = ctx.store.get(p["charge"], "charge")
        if ch is None:
            raise no_such("charge", p["charge"], "charge", 400)
        if ch["status"] != "succeeded":
            raise invalid(f"Charge {ch['id']} has not succeeded; it cannot be refunded.", "charge")
        return ch
    if p.get("payment_intent"):
        pi = ctx.store.get(p["payment_intent"], "payment_intent")
        if pi is None:
            raise no_such("payment_intent", p["payment_intent"], "payment_intent", 400)
        ch = ctx.store.get(pi["latest_charge"] or "", "charge")
        if pi["status"] != "succeeded" or ch is None or ch["status"] != "succeeded":
            raise invalid(
                f"This PaymentIntent ({pi['id']}) does not have a successful charge to refund.",
                "payment_intent",
            )
        return ch
    raise invalid(
        "One of the following params should be provided for this request: payment_intent or"
        " charge.",
        "payment_intent",
        "parameter_missing",
    )


def refund_create(ctx: Ctx) -> dict[str, Any]:
    p = ctx.params
    check_params(p, REFUND_SPEC)
    ch = _refundable_charge(ctx)
    remaining = ch["amount_captured"] - ch["amount_refunded"]
    if remaining <= 0:
        raise ApiError(
            400,
            f"Charge {ch['id']} has already been refunded.",
            code="charge_already_refunded",
            param="charge" if p.get("charge") else "payment_intent",
        )
    amount = remaining
    if "amount" in p:
        amount = validate.integer(p["amount"], "amount")
        if amount < 1:
            raise invalid("This value must be greater than or equal to 1.", "amount")
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
    reason = p.get("reason")
    if reason is not None:
        validate.enum(reason, "reason", REFUND_REASONS)
    refund = objects.refund(ch, amount, reason, validate.metadata(p.get("metadata", {})))
    ctx.store.save(refund)
    previous = {"amount_refunded": ch["amount_refunded"], "refunded": ch["refunded"]}
    ch["amount_refunded"] += amount
    ch["refunded"] = ch["amount_refunded"] >= ch["amount_captured"]
    ctx.store.save(ch)
    ctx.emit("refund.created", refund)
    ctx.emit("charge.refunded", ch, previous)
    return refund


def refund_retrieve(ctx: Ctx, re_id: str) -> dict[str, Any]:
    check_params(ctx.params, {"expand": None})
    return _get(ctx, "refund", re_id)


def refund_list(ctx: Ctx) -> dict[str, Any]:
    p = ctx.params
    check_params(p, {**render.LIST_SPEC, "payment_intent": None, "charge": None})

    where = [field_is(f, p[f]) for f in ("payment_intent", "charge") if p.get(f)]
    return render.page(ctx.store, "refund", p, "/v1/refunds", where)


# --- events -------------------------------------------------------------------------------


def event_retrieve(ctx: Ctx, evt_id: str) -> dict[str, Any]:
    check_params(ctx.params, {"expand": None})
    return _get(ctx, "event", evt_id)


def event_list(ctx: Ctx) -> dict[str, Any]:
    p = ctx.params
    check_params(p, {**render.LIST_SPEC, "type": None, "types": None, "delivery_success": None})
    if p.get("type") and p.get("types"):
        raise invalid("You may only specify one of these parameters: type, types.", "type")
    patterns = validate.string_list(p.get("types") or p.get("type") or [], "types")
    if len(patterns) > 20:
        raise invalid("You may pass up to 20 types.", "types")
    where = [any_of([events.type_matches(pat) for pat in patterns])] if patterns else []
    return render.page(ctx.store, "event", p, "/v1/events", where)


# --- webhook endpoints --------------------------------------------------------------------

ENDPOINT_SPEC = {
    "url": None,
    "enabled_events": None,
    "description": None,
    "metadata": ANY,
    "api_version": None,
    "connect": None,
    "expand": None,
}


def _url(value: Any) -> str:
    url = validate.string(value, "url")
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise invalid(f"Invalid URL: {url}", "url", "url_invalid")
    return url or ""


def _enabled_events(value: Any) -> list[str]:
    kinds = validate.string_list(value, "enabled_events")
    if not kinds:
        raise missing("enabled_events")
    for i, kind in enumerate(kinds):
        if kind != "*" and kind not in events.KNOWN:
            # Stripe lists every event type here; naming the bad value says more, shorter.
            raise invalid(
                f"Invalid enabled_events[{i}]: must be one of * or a Stripe event type, not"
                f" '{kind}'",
                f"enabled_events[{i}]",
            )
    return kinds


def endpoint_create(ctx: Ctx) -> dict[str, Any]:
    p = ctx.params
    check_params(p, ENDPOINT_SPEC)
    if "url" not in p:
        raise missing("url")
    if "enabled_events" not in p:
        raise missing("enabled_events")
    endpoint = objects.webhook_endpoint(
        _url(p["url"]),
        _enabled_events(p["enabled_events"]),
        validate.string(p.get("description"), "description"),
        validate.metadata(p.get("metadata", {})),
    )
    endpoint["api_version"] = validate.string(p.get("api_version"), "api_version")
    ctx.store.save(endpoint)
    # Only the creation response reveals the signing secret, as with Stripe.
    return {**endpoint, "secret": endpoint["_secret"]}


def endpoint_retrieve(ctx: Ctx, we_id: str) -> dict[str, Any]:
    check_params(ctx.params, {"expand": None})
    return _get(ctx, "webhook_endpoint", we_id)


def endpoint_update(ctx: Ctx, we_id: str) -> dict[str, Any]:
    p = ctx.params
    check_params(p, {**ENDPOINT_SPEC, "disabled": None})
    endpoint = _get(ctx, "webhook_endpoint", we_id)
    if "url" in p:
        endpoint["url"] = _url(p["url"])
    if "enabled_events" in p:
        endpoint["enabled_events"] = _enabled_events(p["enabled_events"])
    if "description" in p:
        endpoint["description"] = validate.string(p["description"], "description")
    if "metadata" in p:
        endpoint["metadata"] = validate.metadata(p["metadata"], endpoint["metadata"])
    if "disabled" in p:
        disabled = validate.boolean(p["disabled"], "disabled")
        endpoint["status"] = "disabled" if disabled else "enabled"
    return ctx.store.save(endpoint)


def endpoint_delete(ctx: Ctx, we_id: str) -> dict[str, Any]:
    check_params(ctx.params, {})
    _get(ctx, "webhook_endpoint", we_id)
    ctx.store.delete(we_id)
    ctx.store.abandon_deliveries(we_id)
    return {"id": we_id, "object": "webhook_endpoint", "deleted": True}


def endpoint_list(ctx: Ctx) -> dict[str, Any]:
    check_params(ctx.params, render.LIST_SPEC)
    return render.page(ctx.store, "webhook_endpoint", ctx.params, "/v1/webhook_endpoints")
