"""stripe-python as the oracle: what Stripe declares for each operation and each object.

stripe-python (the version pinned in pyproject.toml) ships, for one API version, a typed class
per resource (fields with Optional, Literal and ExpandableField annotations) and a TypedDict of
parameters per operation. This module reads both, for the conformance tests and to generate
`bookpay/emulator/stripe_params.json`, the emulator's copy of the declared parameter names (the
emulator must not import stripe-python). Regenerate that file after changing an emulator spec
or upgrading stripe-python:

    .venv/bin/python tests/emulator/stripe_oracle.py --write
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import json
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import stripe
import typing_extensions as te
from stripe._request_options import RequestOptions
from stripe._stripe_object import StripeObject

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from bookpay.emulator import params as emu_params  # noqa: E402
from bookpay.emulator.routes import ROUTES  # noqa: E402

JSON_PATH = ROOT / "bookpay" / "emulator" / "stripe_params.json"

# Each route the emulator serves, and the TypedDict stripe-python declares for its parameters.
OPERATIONS: dict[str, str] = {
    "GET /v1/payment_intents": "PaymentIntentListParams",
    "POST /v1/payment_intents": "PaymentIntentCreateParams",
    "GET /v1/payment_intents/{id}": "PaymentIntentRetrieveParams",
    "POST /v1/payment_intents/{id}": "PaymentIntentUpdateParams",
    "POST /v1/payment_intents/{id}/confirm": "PaymentIntentConfirmParams",
    "POST /v1/payment_intents/{id}/capture": "PaymentIntentCaptureParams",
    "POST /v1/payment_intents/{id}/cancel": "PaymentIntentCancelParams",
    "POST /v1/payment_methods": "PaymentMethodCreateParams",
    "GET /v1/payment_methods/{id}": "PaymentMethodRetrieveParams",
    "GET /v1/charges": "ChargeListParams",
    "GET /v1/charges/{id}": "ChargeRetrieveParams",
    "GET /v1/refunds": "RefundListParams",
    "POST /v1/refunds": "RefundCreateParams",
    "GET /v1/refunds/{id}": "RefundRetrieveParams",
    "POST /v1/refunds/{id}": "RefundUpdateParams",
    "POST /v1/refunds/{id}/cancel": "RefundCancelParams",
    "GET /v1/customers": "CustomerListParams",
    "POST /v1/customers": "CustomerCreateParams",
    "GET /v1/customers/{id}": "CustomerRetrieveParams",
    "POST /v1/customers/{id}": "CustomerUpdateParams",
    "DELETE /v1/customers/{id}": "CustomerDeleteParams",
    "GET /v1/disputes": "DisputeListParams",
    "GET /v1/disputes/{id}": "DisputeRetrieveParams",
    "POST /v1/disputes/{id}": "DisputeUpdateParams",
    "POST /v1/disputes/{id}/close": "DisputeCloseParams",
    "GET /v1/events": "EventListParams",
    "GET /v1/events/{id}": "EventRetrieveParams",
    "GET /v1/webhook_endpoints": "WebhookEndpointListParams",
    "POST /v1/webhook_endpoints": "WebhookEndpointCreateParams",
    "GET /v1/webhook_endpoints/{id}": "WebhookEndpointRetrieveParams",
    "POST /v1/webhook_endpoints/{id}": "WebhookEndpointUpdateParams",
    "DELETE /v1/webhook_endpoints/{id}": "WebhookEndpointDeleteParams",
}

# The resources the emulator serves, by their `object` name.
RESOURCES: dict[str, type] = {
    "payment_intent": stripe.PaymentIntent,
    "payment_method": stripe.PaymentMethod,
    "charge": stripe.Charge,
    "refund": stripe.Refund,
    "dispute": stripe.Dispute,
    "customer": stripe.Customer,
    "event": stripe.Event,
    "webhook_endpoint": stripe.WebhookEndpoint,
}

# Every object the emulator renders: its resources, and the objects embedded in them.
OBJECTS: dict[str, type] = {**RESOURCES, "balance_transaction": stripe.BalanceTransaction}

# Parameters Stripe accepts that stripe-python does not declare: what Stripe.js sends with a
# publishable key, and what it adds to payment_method_data. The emulator accepts these too.
STRIPE_JS_EXTRAS = {
    "key",
    "client_secret",
    "expected_payment_method_type",
    "save_payment_method",
    "_stripe_version",
    "payment_user_agent",
    "time_on_page",
    "guid",
    "muid",
    "sid",
    "referrer",
    "client_attribution_metadata",
    "card",  # payment_method_data[card][number]: raw card details, as Stripe.js sends them
    "number",
    "exp_month",
    "exp_year",
    "cvc",
    "networks",
}


# --- parameters ---------------------------------------------------------------------------


@dataclass
class Param:
    """A declared parameter: its sub-parameters (a hash), its Literal values, or neither."""

    children: dict[str, Param] | None = None
    values: list[str] = field(default_factory=list)
    is_map: bool = False  # Dict[str, str]: free-form keys (metadata)


def _resolve(t: Any, module: types.ModuleType) -> Any:
    if isinstance(t, str):
        return eval(t, vars(module))
    if isinstance(t, typing.ForwardRef):
        return eval(t.__forward_arg__, vars(module))
    return t


def _param(t: Any, module: types.ModuleType) -> Param:
    t = _resolve(t, module)
    origin = te.get_origin(t)
    if origin in (te.NotRequired, te.Required):
        return _param(te.get_args(t)[0], module)
    if origin in (typing.Union, types.UnionType):
        merged = Param()
        for arg in te.get_args(t):
            sub = _param(arg, module)
            merged.children = merged.children or sub.children
            merged.values += [v for v in sub.values if v not in merged.values]
            merged.is_map = merged.is_map or sub.is_map
        return merged
    if origin in (list, typing.List):  # noqa: UP006
        return _param(te.get_args(t)[0], module)
    if origin in (dict, typing.Dict):  # noqa: UP006
        return Param(is_map=True)
    if origin is te.Literal or origin is typing.Literal:
        return Param(values=[v for v in te.get_args(t) if isinstance(v, str) and v != ""])
    if te.is_typeddict(t):
        return Param(children=param_tree(t))
    return Param()


def param_tree(td: type) -> dict[str, Param]:
    """The parameters a stripe-python TypedDict declares (request options left out)."""
    module = sys.modules[td.__module__]
    own = {k: v for k, v in td.__annotations__.items() if k not in RequestOptions.__annotations__}
    return {name: _param(t, module) for name, t in own.items()}


@functools.cache
def declared_params(op: str) -> dict[str, Param]:
    return param_tree(getattr(stripe.params, OPERATIONS[op]))


def walk_declared(tree: dict[str, Param], prefix: str = "") -> typing.Iterator[tuple[str, Param]]:
    """Every declared parameter, depth first, as (bracket path, Param)."""
    for name, param in tree.items():
        path = f"{prefix}[{name}]" if prefix else name
        yield path, param
        if param.children:
            yield from walk_declared(param.children, path)


def route_specs() -> dict[str, dict[str, Any]]:
    return {route.op: route.spec for route in ROUTES}


def classify(op: str) -> dict[str, list[str]]:
    """Each declared parameter of an operation as implemented, unsupported (refused by the
    emulator as not supported yet, itself or through its parent) or missing (neither)."""
    spec = route_specs()[op]
    out: dict[str, list[str]] = {"implemented": [], "unsupported": [], "missing": []}

    def visit(tree: dict[str, Param], spec: Any, prefix: str, refused: bool) -> None:
        for name, param in tree.items():
            path = f"{prefix}[{name}]" if prefix else name
            inside = isinstance(spec, dict) and name in spec
            if refused or not inside:
                out["unsupported"].append(path)
                if param.children:
                    visit(param.children, None, path, True)
                continue
            sub = spec[name]
            out["implemented"].append(path)
            if param.children:
                if sub is emu_params.ANY:
                    for child, _ in walk_declared(param.children, path):
                        out["implemented"].append(child)
                else:
                    visit(param.children, sub, path, False)

    visit(declared_params(op), spec, "", False)
    return out


# --- the generated table ------------------------------------------------------------------


def _table_for(op: str) -> dict[str, Any]:
    """The declared names at every node the emulator's spec implements as a hash, and the
    declared values of every implemented parameter that has a Literal set."""
    names: dict[str, list[str]] = {}
    enums: dict[str, list[str]] = {}

    def visit(tree: dict[str, Param], spec: dict[str, Any], node: str) -> None:
        names[node] = sorted(tree)
        for name, param in tree.items():
            if name not in spec:
                continue
            path = f"{node}[{name}]" if node else name
            sub = spec[name]
            if param.values and not isinstance(sub, dict) and sub is not emu_params.ANY:
                enums[path] = sorted(param.values)
            if param.children and isinstance(sub, dict):
                visit(param.children, sub, path)

    visit(declared_params(op), route_specs()[op], "")
    return {"class": OPERATIONS[op], "params": names, "enums": enums}


def _expandable(cls: type, prefix: str = "", seen: frozenset = frozenset()) -> dict[str, list]:
    """Dotted paths of a resource's ExpandableField fields (into its nested classes, not into
    other resources), each with the object names it expands to."""
    out: dict[str, list[str]] = {}
    for name, ann in fields_of(cls).items():
        path = f"{prefix}{name}"
        shape = shape_of(ann, cls)
        if shape.expandable:
            out[path] = sorted(c.OBJECT_NAME for c in shape.classes if hasattr(c, "OBJECT_NAME"))
        for nested in shape.classes:
            if _is_nested(nested) and nested not in seen:
                out.update(_expandable(nested, f"{path}.", seen | {nested}))
    return out


def _field_tree(cls: type, seen: frozenset = frozenset()) -> dict[str, Any]:
    """A class's declared fields: None for a value, a subtree for a nested class (or a list of
    them). Other resources are not entered: they carry their own `object` name."""
    out: dict[str, Any] = {}
    for name, ann in fields_of(cls).items():
        shape = shape_of(ann, cls)
        if shape.item is not None:
            shape = shape.item
        nested = [c for c in shape.classes if _is_nested(c) and c not in seen]
        if nested and not shape.expandable:
            out[name] = _field_tree(nested[0], seen | {nested[0]})
        elif shape.any or any(_is_resource(c) for c in shape.classes):
            out[name] = "object"  # holds a resource, named by its own `object`
        else:
            out[name] = None
    return out


def generate() -> dict[str, Any]:
    event_types = sorted(shape_of(fields_of(stripe.Event)["type"], stripe.Event).values)
    return {
        "note": "Generated by tests/emulator/stripe_oracle.py from stripe-python; do not edit.",
        "stripe_python": stripe.VERSION,
        "api_version": stripe.api_version,
        "operations": {op: _table_for(op) for op in sorted(OPERATIONS)},
        "expandable": {kind: _expandable(cls) for kind, cls in sorted(RESOURCES.items())},
        "objects": {kind: _field_tree(cls) for kind, cls in sorted(OBJECTS.items())},
        "event_types": event_types,
    }


def rendered() -> str:
    return json.dumps(generate(), indent=1, sort_keys=True) + "\n"


# --- objects ------------------------------------------------------------------------------


@dataclass
class Shape:
    """What an annotation allows: null, scalar types, Literal values, classes, a list, ids."""

    nullable: bool = False
    scalars: set[type] = field(default_factory=set)
    values: list[Any] = field(default_factory=list)
    classes: list[type] = field(default_factory=list)
    item: Shape | None = None  # List[...]
    mapping: bool = False  # Dict / UntypedStripeObject: free-form keys
    expandable: bool = False  # str (an id) or one of `classes`
    list_object: type | None = None  # ListObject["Refund"]
    any: bool = False


@functools.cache
def _namespace(module_name: str) -> dict[str, Any]:
    """A module's globals plus what it imports only under TYPE_CHECKING (forward references)."""
    module = importlib.import_module(module_name)
    ns = dict(vars(module))
    tree = ast.parse(inspect.getsource(module))
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            exec(compile(ast.Module(body=node.body, type_ignores=[]), module_name, "exec"), ns)
    return ns


def _owner_module(cls: type) -> str:
    return cls.__module__


def fields_of(cls: type) -> dict[str, Any]:
    """A class's declared fields (wire names), excluding private and class-level names."""
    own = inspect.get_annotations(cls)
    remap = cls.__dict__.get("_field_remappings", {}) or {}
    out = {}
    for name, ann in own.items():
        if name.startswith("_") or name.isupper() or te.get_origin(ann) is typing.ClassVar:
            continue
        out[remap.get(name, name)] = ann
    return out


def _lookup(name: str, owner: type) -> Any:
    scope: dict[str, Any] = {}
    for cls in _enclosing(owner):
        scope.update(vars(cls))
    scope.update({k: v for k, v in _namespace(_owner_module(owner)).items() if k not in scope})
    return eval(name, scope)


def _enclosing(owner: type) -> list[type]:
    """The class and the classes it is nested in (innermost first), for name lookup."""
    module = sys.modules[owner.__module__]
    chain: list[type] = []
    node: Any = module
    for part in owner.__qualname__.split("."):
        node = getattr(node, part)
        chain.append(node)
    return list(reversed(chain))


def shape_of(ann: Any, owner: type) -> Shape:
    if isinstance(ann, str):
        ann = _lookup(ann, owner)
    if isinstance(ann, typing.ForwardRef):
        ann = _lookup(ann.__forward_arg__, owner)
    origin = te.get_origin(ann)
    if ann is Any:
        return Shape(any=True)
    if ann is type(None):
        return Shape(nullable=True)
    if origin in (typing.Union, types.UnionType):
        merged = Shape()
        args = te.get_args(ann)
        for arg in args:
            sub = shape_of(arg, owner)
            merged.nullable |= sub.nullable
            merged.scalars |= sub.scalars
            merged.values += sub.values
            merged.classes += sub.classes
            merged.item = merged.item or sub.item
            merged.mapping |= sub.mapping
            merged.list_object = merged.list_object or sub.list_object
            merged.any |= sub.any
        # ExpandableField[X] is Union[str, X]: an id, or the object when expanded.
        if str in merged.scalars and any(_is_resource(c) for c in merged.classes):
            merged.expandable = True
        return merged
    if origin is te.Literal or origin is typing.Literal:
        return Shape(values=list(te.get_args(ann)))
    if origin in (list, typing.List):  # noqa: UP006
        return Shape(item=shape_of(te.get_args(ann)[0], owner))
    if origin in (dict, typing.Dict):  # noqa: UP006
        return Shape(mapping=True)
    if inspect.isclass(origin) and issubclass(origin, stripe.ListObject):
        target = te.get_args(ann)[0]
        return Shape(list_object=shape_of(target, owner).classes[0])
    if inspect.isclass(origin) and origin.__name__ == "UntypedStripeObject":
        return Shape(mapping=True, any=te.get_args(ann)[0] is Any)
    if ann is StripeObject:
        return Shape(mapping=True)
    if inspect.isclass(ann) and issubclass(ann, StripeObject):
        return Shape(classes=[ann])
    if ann in (str, int, float, bool):
        return Shape(scalars={ann})
    raise TypeError(f"unhandled annotation {ann!r} in {owner.__qualname__}")


def _is_resource(cls: type) -> bool:
    return hasattr(cls, "OBJECT_NAME")


def _is_nested(cls: type) -> bool:
    return issubclass(cls, StripeObject) and not _is_resource(cls)


def class_for(object_name: str) -> type | None:
    from stripe._object_classes import get_object_class

    cls = get_object_class("V1", object_name)
    return cls if _is_resource(cls) else None


class Checker:
    """Checks rendered objects against stripe-python's classes and counts what it checked."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.checked: dict[str, set[str]] = {}  # object name -> declared field paths seen

    def check(self, obj: Any, cls: type | None = None, where: str = "", expanded=()) -> None:
        """`expanded`: dotted paths (relative to obj) the request expanded."""
        if not isinstance(obj, dict):
            self.problems.append(f"{where or '<root>'}: not an object: {obj!r:.80}")
            return
        if cls is None:
            cls = class_for(obj.get("object", ""))
            if cls is None:
                self.problems.append(f"{where}: no stripe-python class for {obj.get('object')}")
                return
        if obj.get("deleted") is True:  # a deletion answer: id, object, deleted
            for key in ("id", "object"):
                if not isinstance(obj.get(key), str):
                    self.problems.append(f"{where}.{key}: missing on a deleted object")
            extra = set(obj) - {"id", "object", "deleted"}
            if extra:
                self.problems.append(f"{where}: undeclared fields {sorted(extra)}")
            return
        self._fields(obj, cls, where, set(expanded), cls.OBJECT_NAME, "")

    def _fields(self, obj: dict, cls: type, where: str, expanded: set, kind: str, rel: str):
        declared = fields_of(cls)
        seen = self.checked.setdefault(kind, set())
        for name, ann in declared.items():
            path = f"{where}.{name}" if where else name
            relpath = f"{rel}{name}"
            seen.add(relpath)
            if name not in obj:
                self.problems.append(f"{kind}: {path}: declared field missing")
                continue
            self._value(obj[name], shape_of(ann, cls), path, expanded, kind, relpath)
        extra = sorted(set(obj) - set(declared))
        if extra:
            self.problems.append(f"{kind}: {where or '<root>'}: undeclared fields {extra}")

    def _value(self, value: Any, shape: Shape, path: str, expanded: set, kind: str, rel: str):
        if shape.any:
            return
        if value is None:
            if not shape.nullable:
                self.problems.append(f"{kind}: {path}: null, but the annotation is not Optional")
            return
        if shape.expandable:
            if isinstance(value, str):
                if rel in expanded:
                    self.problems.append(f"{kind}: {path}: expanded, but still an id")
                return
            if rel not in expanded:
                self.problems.append(f"{kind}: {path}: an object, but not expanded")
                return
            inner = {e[len(rel) + 1 :] for e in expanded if e.startswith(rel + ".")}
            self._resource(value, shape.classes, path, inner)
            return
        if shape.list_object is not None:
            self._list(value, shape.list_object, path)
            return
        if shape.mapping:
            if not isinstance(value, dict):
                self.problems.append(f"{kind}: {path}: expected a hash, got {value!r:.60}")
            return
        if shape.item is not None:
            if not isinstance(value, list):
                self.problems.append(f"{kind}: {path}: expected a list, got {value!r:.60}")
                return
            for i, item in enumerate(value):
                self._value(item, shape.item, f"{path}[{i}]", expanded, kind, rel)
            return
        if shape.values and isinstance(value, (str, bool)) and not isinstance(value, int):
            if value not in shape.values:
                self.problems.append(
                    f"{kind}: {path}: {value!r} not in the declared values {shape.values}"
                )
            return
        if shape.values and value in shape.values:
            return
        if shape.classes and isinstance(value, dict):
            nested = [c for c in shape.classes if _is_nested(c)]
            if nested:
                self._fields(value, nested[0], path, expanded, kind, rel + ".")
            else:
                self._resource(value, shape.classes, path)
            return
        if _scalar_ok(value, shape.scalars):
            return
        self.problems.append(f"{kind}: {path}: {value!r:.60} does not match the declared type")

    def _resource(self, value: Any, classes: list[type], path: str, expanded=()) -> None:
        if not isinstance(value, dict):
            self.problems.append(f"{path}: expected an object, got {value!r:.60}")
            return
        match = [c for c in classes if getattr(c, "OBJECT_NAME", None) == value.get("object")]
        if not match:
            self.problems.append(f"{path}: object {value.get('object')!r} is not a declared type")
            return
        self.check(value, match[0], path, expanded)

    def _list(self, value: Any, item_cls: type, path: str) -> None:
        if not isinstance(value, dict) or value.get("object") != "list":
            self.problems.append(f"{path}: expected a list object, got {value!r:.60}")
            return
        for key, kind in (("data", list), ("has_more", bool), ("url", str)):
            if not isinstance(value.get(key), kind):
                self.problems.append(f"{path}.{key}: missing or not a {kind.__name__}")
        for i, item in enumerate(value.get("data") or []):
            self.check(item, item_cls, f"{path}.data[{i}]")


def _scalar_ok(value: Any, scalars: set[type]) -> bool:
    if isinstance(value, bool):
        return bool in scalars
    if isinstance(value, int):
        return int in scalars or float in scalars
    if isinstance(value, float):
        return float in scalars
    return any(isinstance(value, s) for s in scalars)


def declared_fields(cls: type, seen: frozenset = frozenset()) -> list[str]:
    """Every declared field path of a resource, into its nested classes."""
    out = []
    for name, ann in fields_of(cls).items():
        out.append(name)
        for nested in shape_of(ann, cls).classes:
            if _is_nested(nested) and nested not in seen:
                out += [f"{name}.{sub}" for sub in declared_fields(nested, seen | {nested})]
    return out


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(
            "usage: stripe_oracle.py --write   (regenerates bookpay/emulator/stripe_params.json)"
        )
    JSON_PATH.write_text(rendered(), encoding="utf-8")
    print(f"wrote {JSON_PATH.relative_to(ROOT)}")
