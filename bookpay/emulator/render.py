"""Turning stored objects into responses: computed fields, `expand[]`, list pages, the pk view."""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterable
from typing import Any

from . import validate
from .objects import public
from .params import declared, unsupported
from .store import Cond, Store, created_is
from .wire import ApiError, malformed, no_such

# What Stripe shows a publishable key (Stripe.js) of a PaymentIntent.
PUBLISHABLE_PI_FIELDS = (
    "id", "object", "amount", "amount_details", "automatic_payment_methods", "canceled_at",
    "cancellation_reason", "capture_method", "client_secret", "confirmation_method", "created",
    "currency", "description", "last_payment_error", "livemode", "next_action",
    "payment_method", "payment_method_types", "processing", "receipt_email", "setup_future_usage",
    "shipping", "status",
)  # fmt: skip

# Fields Stripe leaves out unless asked for with expand[] ("includable"): absent by default
# and, when expanded, a list object of what the emulator holds.
INCLUDABLE: dict[str, dict[str, str]] = {
    "charge": {"refunds": "refund"},
    "customer": {"sources": "", "subscriptions": "", "tax_ids": ""},
}
# Fields an object holds itself that Stripe leaves out unless asked for with expand[] (dotted
# paths, relative to an object of the kind): absent by default, the held value when expanded.
IN_PLACE: dict[str, tuple[str, ...]] = {
    "tax.calculation": ("line_items", "shipping_cost.tax_breakdown"),
    "tax.calculation_line_item": ("tax_breakdown",),
    "tax.transaction": ("line_items", "shipping_cost.tax_breakdown"),
}
MAX_EXPAND_DEPTH = 4


def complete(store: Store | None, obj: dict[str, Any], *, full: bool = True) -> dict[str, Any]:
    """A public copy shaped as Stripe answers it: required fields present (null when the
    emulator has nothing for them), optional ones only when set (see conform; `full=False`
    leaves that to whoever renders the copy later, as for an event's snapshot)."""
    out = public(obj)
    if out.get("deleted") is True:
        return out
    if out.get("object") == "payment_intent" and isinstance(out.get("last_payment_error"), dict):
        lpe = out["last_payment_error"]
        if isinstance(lpe.get("payment_method"), dict):
            lpe["payment_method"] = public(lpe["payment_method"])
    return conform(out) if full else out


def conform(obj: dict[str, Any]) -> dict[str, Any]:
    """Add, as null, each required field the generated table declares that the object lacks,
    and drop each optional field that is null (in nested objects too), as Stripe does: its
    spec lists many fields, most of which only apply to other payment methods or products;
    those it marks required are always there (null when unset), the others only when they have
    a value (stripe-node declares them `name?:`). The builders set every field that has a
    value; required fields that may not be null must be built: the conformance test checks it.

    Only what the object holds is walked (a PaymentIntent declares some sixty payment method
    options and holds one), against shapes compiled once: this runs for every object answered.
    """
    shapes = _shapes()
    kind = obj.get("object")
    if kind not in shapes or obj.get("deleted") is True:
        return obj
    stack: list[tuple[dict[str, Any], _Shape]] = [(obj, shapes[kind])]
    while stack:
        node, (required, optional, nested, holders) = stack.pop()
        unset = []
        for name, value in node.items():
            if isinstance(value, dict):
                sub = nested.get(name)
                if sub is not None:
                    stack.append((value, sub))
                elif name in holders and value.get("object") in shapes:
                    stack.append((value, shapes[value["object"]]))
            elif isinstance(value, list):
                sub = nested.get(name)
                for item in value:
                    if not isinstance(item, dict):
                        continue
                    if sub is not None:
                        stack.append((item, sub))
                    elif name in holders and item.get("object") in shapes:
                        stack.append((item, shapes[item["object"]]))
            elif value is None and name in optional:
                unset.append(name)
        for name in unset:
            del node[name]
        for name in required - node.keys():
            node[name] = None
    return obj


# A declared shape, ready for conform: the names of required and of optional fields (the
# table's `name?` keys); the shapes of nested objects by field name; the names of fields that
# hold other resources (named by their own `object`).
_Shape = tuple[frozenset[str], frozenset[str], dict[str, Any], frozenset[str]]


@functools.cache
def _shapes() -> dict[str, _Shape]:
    def compile_tree(tree: dict[str, Any]) -> _Shape:
        names = {key.removesuffix("?"): value for key, value in tree.items()}
        optional = frozenset(key[:-1] for key in tree if key.endswith("?"))
        nested = {k: compile_tree(v) for k, v in names.items() if isinstance(v, dict)}
        holders = frozenset(k for k, v in names.items() if v == "object")
        return frozenset(names) - optional, optional, nested, holders

    return {kind: compile_tree(tree) for kind, tree in declared()["objects"].items()}


class Rendered(bytes):
    """An object already rendered as JSON, as a list without expand[] shows it."""


# Stored JSON text -> its rendering (see `rendered`). Rendering depends on nothing but the
# object, so the cache is keyed by its content and shared by every emulator in the process; a
# changed object is a new key. Bounded: a list page holds at most 100 objects.
_VIEWS: dict[str, Rendered] = {}
_VIEWS_MAX = 2048
_views_lock = threading.Lock()


def rendered(text: str) -> Rendered:
    """A stored object (its JSON text) as an answer shows it with nothing expanded: public,
    shaped as Stripe answers it (see conform), includable and IN_PLACE fields left out.
    Cached: lists ask for the same objects again and again, and decoding, completing and
    encoding them is most of a list's cost."""
    found = _VIEWS.get(text)
    if found is not None:
        return found
    obj = _leave_out(complete(None, json.loads(text)), {})
    found = Rendered(json.dumps(obj, separators=(",", ":")).encode())
    with _views_lock:
        if len(_VIEWS) >= _VIEWS_MAX:
            del _VIEWS[next(iter(_VIEWS))]
        _VIEWS[text] = found
    return found


def encode(body: dict[str, Any]) -> bytes:
    """An answer's JSON: a list page of rendered objects is put together as it is."""
    data = body.get("data")
    if body.get("object") != "list" or not data or not isinstance(data[0], Rendered):
        return json.dumps(body, separators=(",", ":")).encode()
    fields = (
        json.dumps(key).encode()
        + b":"
        + (b"[" + b",".join(data) + b"]" if key == "data" else json.dumps(value).encode())
        for key, value in body.items()
    )
    return b"{" + b",".join(fields) + b"}"


def publishable_view(pi: dict[str, Any]) -> dict[str, Any]:
    return {k: pi[k] for k in PUBLISHABLE_PI_FIELDS if k in pi}


def expand_param(params: dict[str, Any]) -> list[str]:
    """The expand[] paths, refused when longer than Stripe allows (before anything runs)."""
    paths = validate.string_list(params.get("expand", []), "expand")
    for path in paths:
        if len(path.split(".")) > MAX_EXPAND_DEPTH:
            shown = path if len(path) <= 200 else path[:200] + "..."
            raise ApiError(
                400,
                f"You cannot expand more than {MAX_EXPAND_DEPTH} levels of a property."
                f" Property: {shown}",
                code="property_expansion_max_depth",
            )
    return paths


def expand(store: Store, obj: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    """Apply expand[] paths (dotted; `data.` inside lists) to a rendered object, and leave out
    the IN_PLACE fields they do not name.

    What may be expanded is what stripe-python declares as ExpandableField (from the generated
    table), plus the includable and IN_PLACE fields above; anything else is Stripe's "cannot be
    expanded".
    """
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        for part in path.split("."):
            node = node.setdefault(part, {})
    _apply(store, obj, tree, "", obj.get("object", ""), "")
    return _leave_out(obj, tree)


def _leave_out(node: Any, tree: dict[str, Any]) -> Any:
    """``node`` without the IN_PLACE fields that were not expanded, and with those that were
    gone into; what changes is copied (it may be the stored object's own)."""
    if isinstance(node, list):
        return [_leave_out(item, tree) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("object") == "list":
        return {**node, "data": _leave_out(node.get("data"), tree.get("data", {}))}
    paths = IN_PLACE.get(node.get("object", ""))
    return _without(node, [p.split(".") for p in paths], tree) if paths else node


def _without(node: dict[str, Any], paths: list[list[str]], tree: dict[str, Any]) -> dict[str, Any]:
    out = dict(node)
    heads: dict[str, list[list[str]]] = {}
    for head, *rest in paths:
        heads.setdefault(head, []).append(rest)
    for head, rests in heads.items():
        sub = tree.get(head)
        if head not in out:
            continue
        if [] in rests:
            if sub is None:
                del out[head]
            else:
                out[head] = _leave_out(out[head], sub)
        elif isinstance(out[head], dict):
            out[head] = _without(out[head], rests, sub or {})
    return out


def _cannot(path: str) -> ApiError:
    return malformed(f"This property cannot be expanded ({path}).", "expand")


def _apply(store: Store, node: Any, tree: dict, prefix: str, owner: str, rel: str) -> None:
    if not isinstance(node, dict):  # through a null there is nothing to expand
        return
    if node.get("deleted") is True:
        # A deleted object is answered as its stub (Stripe's deleted_customer: id, object,
        # deleted, and nothing else): nothing in it to expand or include. A path its kind takes
        # is no error; one it never takes is refused, as on the live object.
        _check_paths([owner], tree, prefix)
        return
    expandable = declared()["expandable"]
    for head, sub in tree.items():
        full = prefix + head
        if isinstance(node, dict) and node.get("object") == "list" and not rel:
            if head != "data" or not sub:
                raise _cannot(full)
            for item in node["data"]:
                _apply(store, item, sub, full + ".", item.get("object", ""), "")
            continue
        key = rel + head
        if not rel and head in INCLUDABLE.get(owner, {}):
            node[head] = _included(store, node, owner, head)
            if sub:
                _apply(store, node[head], sub, full + ".", "list", "")
            continue
        if key in expandable.get(owner, {}):
            value = node.get(head)
            if value is None and sub:  # nothing to expand, but the path must still be valid
                _check_paths(expandable[owner][key], sub, full + ".")
            if isinstance(value, str):
                target = store.get(value)
                if target is None:
                    raise unsupported(f"expand[]={full}")
                value = node[head] = complete(store, target)
            if isinstance(value, dict) and sub:
                _apply(store, value, sub, full + ".", value.get("object", ""), "")
            continue
        value = node.get(head)
        if key in IN_PLACE.get(owner, ()):
            if isinstance(value, dict) and value.get("object") == "list" and sub:
                _apply(store, value, sub, full + ".", "list", "")
            elif sub:
                raise _cannot(f"{full}.{next(iter(sub))}")
            continue
        if isinstance(value, dict) and "object" not in value and sub:
            _apply(store, value, sub, full + ".", owner, key + ".")
            continue
        if (
            value is None
            and sub
            and any(p.startswith(key + ".") for p in expandable.get(owner, {}))
        ):
            # A null hash holding expandables (`transfer_data.destination` with no transfer):
            # nothing to expand, but the path must still be one the kind takes.
            _check_paths([owner], sub, full + ".", key + ".")
            continue
        raise _cannot(full)


def _check_paths(kinds: list[str], tree: dict, prefix: str, rel: str = "") -> None:
    """Refuse paths, below a null field or in a deleted object's stub, that no object of its
    possible kinds could expand (``rel``: the dotted path inside such an object, as in
    `invoice_settings.default_payment_method`)."""
    expandable = declared()["expandable"]
    if tree and not any(kind in expandable or kind in INCLUDABLE for kind in kinds):
        # Kinds the emulator does not hold (a card, a balance transaction): it cannot tell
        # their paths from others, as when such an object is there (see _apply).
        raise unsupported(f"expand[]={prefix}{next(iter(tree))}")
    for head, sub in tree.items():
        key = rel + head
        targets = [
            target
            for kind in kinds
            for path, found in expandable.get(kind, {}).items()
            if path == key
            for target in found
        ]
        included = not rel and any(head in INCLUDABLE.get(kind, {}) for kind in kinds)
        nested = any(p.startswith(key + ".") for k in kinds for p in expandable.get(k, {}))
        if not (targets or included or nested) or not (targets or included or sub):
            raise _cannot(prefix + head)  # nothing of that name, or a hash holding expandables
        if included:
            # A list: only its `data` goes further, as when it is there (see _apply).
            for name, below in sub.items():
                if name != "data" or not below:
                    raise _cannot(f"{prefix}{head}.{name}")
        elif sub and targets:
            _check_paths(targets, sub, prefix + head + ".")
        elif sub:
            _check_paths(kinds, sub, prefix + head + ".", key + ".")


def _included(store: Store, node: dict[str, Any], owner: str, field: str) -> dict[str, Any]:
    kind = INCLUDABLE[owner][field]
    items = []
    if kind:
        found = store.find(kind, owner, node["id"], limit=11)
        items = [complete(store, o) for o in found]
    return {
        "object": "list",
        "data": items[:10],
        "has_more": len(items) > 10,
        "url": f"/v1/{owner}s/{node['id']}/{field}",
    }


_CREATED_OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _created_conds(value: Any) -> list[Cond]:
    if isinstance(value, str):
        return [created_is("=", validate.integer(value, "created"))]
    if not isinstance(value, dict):
        raise malformed("Invalid created: must be an integer or a hash", "created")
    conds = []
    for op, raw in value.items():
        if op not in _CREATED_OPS:
            raise malformed(
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
        raise malformed("Invalid limit: must be between 1 and 100", "limit")
    conds = list(where)
    if "created" in params:
        conds.extend(_created_conds(params["created"]))
    after, before = params.get("starting_after"), params.get("ending_before")
    if after and before:
        raise malformed(
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
    if "expand" in params:
        chosen, more = store.page(kind, conds, limit, after_seq, before_seq)
        data: list[Any] = [complete(store, o) for o in chosen]
    else:  # the common case: each object as stored, rendered once
        texts, more = store.page(kind, conds, limit, after_seq, before_seq, decode=False)
        data = [rendered(text) for text in texts]
    return {
        "object": "list",
        "data": data,
        "has_more": more,
        "url": url,
    }
