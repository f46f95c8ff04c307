"""Turning stored objects into responses: computed fields, `expand[]`, list pages, the pk view."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from . import validate
from .objects import public
from .store import Cond, Store, created_is
from .wire import invalid, no_such

# What Stripe shows a publishable key (Stripe.js) of a PaymentIntent.
PUBLISHABLE_PI_FIELDS = (
    "id", "object", "amount", "amount_details", "automatic_payment_methods", "canceled_at",
    "cancellation_reason", "capture_method", "client_secret", "confirmation_method", "created",
    "currency", "description", "last_payment_error", "livemode", "next_action",
    "payment_method", "payment_method_types", "processing", "receipt_email", "setup_future_usage",
    "shipping", "status",
)  # fmt: skip

_PREFIX_KIND = {
    "pi": "payment_intent",
    "pm": "payment_method",
    "ch": "charge",
    "re": "refund",
    "evt": "event",
    "we": "webhook_endpoint",
}


def complete(store: Store, obj: dict[str, Any]) -> dict[str, Any]:
    """A public copy with fields computed from other objects (a charge's refunds list)."""
    out = public(obj)
    if out.get("object") == "charge":
        refunds = [public(r) for r in store.find("refund", "charge", out["id"], limit=11)]
        out["refunds"] = {
            "object": "list",
            "data": refunds[:10],
            "has_more": len(refunds) > 10,
            "url": f"/v1/charges/{out['id']}/refunds",
        }
    if out.get("object") == "payment_intent" and isinstance(out.get("last_payment_error"), dict):
        lpe = out["last_payment_error"]
        if isinstance(lpe.get("payment_method"), dict):
            lpe["payment_method"] = public(lpe["payment_method"])
    return out


def publishable_view(pi: dict[str, Any]) -> dict[str, Any]:
    return {k: pi.get(k) for k in PUBLISHABLE_PI_FIELDS}


def expand(store: Store, obj: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    """Apply `expand[]` paths (dotted, `data.` for lists) to a rendered object, in place."""
    for path in paths:
        _expand_path(store, obj, path.split("."), path)
    return obj


def _expand_path(store: Store, node: Any, parts: list[str], full: str) -> None:
    if not parts or node is None:
        return
    head, rest = parts[0], parts[1:]
    if isinstance(node, dict) and node.get("object") == "list" and head == "data":
        for item in node["data"]:
            _expand_path(store, item, rest, full)
        return
    if not isinstance(node, dict) or head not in node:
        raise invalid(f"This property cannot be expanded ({full}).", "expand")
    value = node[head]
    if isinstance(value, str):
        target = store.get(value)
        if target is None or value.split("_")[0] not in _PREFIX_KIND:
            raise invalid(f"This property cannot be expanded ({full}).", "expand")
        value = node[head] = complete(store, target)
    _expand_path(store, value, rest, full)


def expand_param(params: dict[str, Any]) -> list[str]:
    return validate.string_list(params.get("expand", []), "expand")


_CREATED_OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _created_conds(value: Any) -> list[Cond]:
    if isinstance(value, str):
        return [created_is("=", validate.integer(value, "created"))]
    if not isinstance(value, dict):
        raise invalid("Invalid created: must be an integer or a hash", "created")
    conds = []
    for op, raw in value.items():
        if op not in _CREATED_OPS:
            raise invalid(
                f"Received unknown parameter: created[{op}]", f"created[{op}]", "parameter_unknown"
            )
        conds.append(created_is(_CREATED_OPS[op], validate.integer(raw, f"created[{op}]")))
    return conds


LIST_SPEC = {"limit": None, "starting_after": None, "ending_before": None, "created": {
    "gt": None, "gte": None, "lt": None, "lte": None}, "expand": None}  # fmt: skip


def page(
    store: Store, kind: str, params: dict[str, Any], url: str, where: Iterable[Cond] = ()
) -> dict[str, Any]:
    """One page of the newest-first list of `kind` objects meeting `where`, with Stripe's cursor
    semantics: a cursor must name an object of that list."""
    limit = validate.integer(params.get("limit", "10"), "limit")
    if not 1 <= limit <= 100:
        raise invalid("Invalid limit: must be between 1 and 100", "limit")
    conds = list(where)
    if "created" in params:
        conds.extend(_created_conds(params["created"]))
    after, before = params.get("starting_after"), params.get("ending_before")
    if after and before:
        raise invalid(
            "You may only specify one of these parameters: ending_before, starting_after.",
            "ending_before",
        )
    after_seq = before_seq = None
    if after:
        after_seq = store.seq_of(after, kind, conds) if isinstance(after, str) else None
        if after_seq is None:
            raise no_such(kind, after, "starting_after", 400)
    elif before:
        before_seq = store.seq_of(before, kind, conds) if isinstance(before, str) else None
        if before_seq is None:
            raise no_such(kind, before, "ending_before", 400)
    chosen, more = store.page(kind, conds, limit, after_seq, before_seq)
    return {
        "object": "list",
        "data": [complete(store, o) for o in chosen],
        "has_more": more,
        "url": url,
    }
