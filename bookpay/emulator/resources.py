"""Charges, events and webhook endpoints."""

from __future__ import annotations

from typing import Any

from . import events, objects, render, validate
from .context import Ctx
from .params import ANY, answer_version, choice
from .store import any_of, delivery_success, field_is
from .wire import malformed, missing, no_such

RETRIEVE_SPEC = {"expand": None}
CHARGE_LIST_SPEC = {
    **render.LIST_SPEC,
    "payment_intent": None,
    "customer": None,
    "transfer_group": None,
}
EVENT_LIST_SPEC = {**render.LIST_SPEC, "type": None, "types": None, "delivery_success": None}


def _get(ctx: Ctx, kind: str, obj_id: str, label: str | None = None) -> dict[str, Any]:
    obj = ctx.store.get(obj_id, kind)
    if obj is None:
        raise no_such(label or kind, obj_id)
    return obj


# --- charges ------------------------------------------------------------------------------


def charge_retrieve(ctx: Ctx, ch_id: str) -> dict[str, Any]:
    return _get(ctx, "charge", ch_id)


def charge_list(ctx: Ctx) -> dict[str, Any]:
    p = ctx.params
    fields = ("payment_intent", "customer", "transfer_group")
    where = [field_is(f, p[f]) for f in fields if p.get(f)]
    return render.page(ctx.store, "charge", p, "/v1/charges", where)


# --- events -------------------------------------------------------------------------------


def event_retrieve(ctx: Ctx, evt_id: str) -> dict[str, Any]:
    return _get(ctx, "event", evt_id)


def event_list(ctx: Ctx) -> dict[str, Any]:
    p = ctx.params
    if p.get("type") and p.get("types"):
        raise malformed("You may only specify one of these parameters: type, types.", "type")
    if p.get("type"):  # one event type (or pattern), where types is a list of them
        patterns = [validate.string(p["type"], "type") or ""]
    else:
        patterns = validate.string_list(p.get("types", ""), "types")
    if len(patterns) > 20:
        raise malformed("You may pass up to 20 types.", "types")
    where = [any_of([events.type_matches(pat) for pat in patterns])] if patterns else []
    if "delivery_success" in p:
        where.append(delivery_success(validate.boolean(p["delivery_success"], "delivery_success")))
    return render.page(ctx.store, "event", p, "/v1/events", where)


# --- webhook endpoints --------------------------------------------------------------------

ENDPOINT_CREATE_SPEC = {
    "url": None,
    "enabled_events": None,
    "description": None,
    "metadata": ANY,
    "api_version": None,
    "connect": None,
    "expand": None,
}
ENDPOINT_UPDATE_SPEC = {
    "url": None,
    "enabled_events": None,
    "description": None,
    "metadata": ANY,
    "disabled": None,
    "expand": None,
}
ENDPOINT_LIST_SPEC = {k: v for k, v in render.LIST_SPEC.items() if k != "created"}


def _url(value: Any) -> str:
    """Where deliveries go: refused now, as Stripe does, rather than failing at each attempt."""
    url = validate.url(value, "url", deliver=True)
    if url is None:
        raise malformed("Invalid URL: ", "url", "url_invalid")
    return url


def _enabled_events(value: Any) -> list[str]:
    kinds = validate.string_list(value, "enabled_events")
    if not kinds:
        raise missing("enabled_events")
    known = events.known()
    for i, kind in enumerate(kinds):
        if kind != "*" and kind not in known:
            # Stripe lists every event type here; naming the bad value says more, shorter.
            raise malformed(
                f"Invalid enabled_events[{i}]: must be one of * or a Stripe event type, not"
                f" '{kind}'",
                f"enabled_events[{i}]",
            )
    return kinds


def endpoint_create(ctx: Ctx) -> dict[str, Any]:
    p = ctx.params
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
    if "connect" in p:
        # Connect endpoints (events from connected accounts) are not something the emulator has.
        choice(p["connect"], "connect", ("false",), ctx.op)
    if p.get("api_version"):
        version = validate.string(p["api_version"], "api_version")
        endpoint["api_version"] = answer_version(version, "api_version")
    ctx.store.save(endpoint)
    # Only the creation response reveals the signing secret, as with Stripe.
    return {**endpoint, "secret": endpoint["_secret"]}


def endpoint_retrieve(ctx: Ctx, we_id: str) -> dict[str, Any]:
    return _get(ctx, "webhook_endpoint", we_id)


def endpoint_update(ctx: Ctx, we_id: str) -> dict[str, Any]:
    p = ctx.params
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
    _get(ctx, "webhook_endpoint", we_id)
    ctx.store.delete(we_id)
    ctx.store.abandon_deliveries(we_id)
    return {"id": we_id, "object": "webhook_endpoint", "deleted": True}


def endpoint_list(ctx: Ctx) -> dict[str, Any]:
    return render.page(ctx.store, "webhook_endpoint", ctx.params, "/v1/webhook_endpoints")
