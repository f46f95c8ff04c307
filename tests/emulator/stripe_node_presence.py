"""Which fields of Stripe's objects may be absent, as stripe-node's TypeScript declarations say.

stripe-python's classes cannot tell "may be absent" from "present, null when unset": both are
`Optional[...]`. stripe-node's declarations can: `name?: T` may be absent, `name: T | null` is
always present. Both are generated from Stripe's OpenAPI spec (`required` and `nullable`), so for
the same API version they describe the same objects. This script reads the declarations out of
the npm package's tarball and writes, for every object the emulator renders, each field path
with its presence, as `tests/reference/stripe-node/presence.json`:

    "" = `name: T` (always present)          "?" = `name?: T` (absent unless set)
    "|null" = `name: T | null` (always present, null when unset)     "?|null" = `name?: T | null`

Paths are dotted through nested objects (and through lists of them); other resources (a
`string | Charge` field) and list objects are not entered: they are checked as their own kind.
The tests read only the JSON. Run by hand to regenerate it for another stripe-node release (the
one whose API version is stripe-python's):

    cd /tmp && npm pack stripe@23.1.0
    .venv/bin/python tests/emulator/stripe_node_presence.py /tmp/stripe-23.1.0.tgz
"""

from __future__ import annotations

import json
import re
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "reference" / "stripe-node" / "presence.json"

# Each object the emulator renders: the declaration file (under esm/) and the interface in it.
ROOTS: dict[str, tuple[str, str]] = {
    "balance_transaction": ("resources/BalanceTransactions.d.ts", "BalanceTransaction"),
    "charge": ("resources/Charges.d.ts", "Charge"),
    "customer": ("resources/Customers.d.ts", "Customer"),
    "dispute": ("resources/Disputes.d.ts", "Dispute"),
    "event": ("resources/Events.d.ts", "EventBase"),
    "payment_intent": ("resources/PaymentIntents.d.ts", "PaymentIntent"),
    "payment_method": ("resources/PaymentMethods.d.ts", "PaymentMethod"),
    "refund": ("resources/Refunds.d.ts", "Refund"),
    "tax.calculation": ("resources/Tax/Calculations.d.ts", "Calculation"),
    "tax.calculation_line_item": ("resources/Tax/CalculationLineItems.d.ts", "CalculationLineItem"),
    "tax.transaction": ("resources/Tax/Transactions.d.ts", "Transaction"),
    "tax.transaction_line_item": ("resources/Tax/TransactionLineItems.d.ts", "TransactionLineItem"),
    "webhook_endpoint": ("resources/WebhookEndpoints.d.ts", "WebhookEndpoint"),
}
SHARED = "shared.d.ts"  # Address and the like: nested objects several resources use

_OPEN = re.compile(r"^\s*(?:export\s+)?(?:declare\s+)?(interface|namespace)\s+(\w+)\b[^{]*\{\s*$")
_FIELD = re.compile(r"^\s*(\w+)(\?)?:\s*(.*?)\s*[;{]\s*$")  # `name?: {` opens an inline hash
_INDEX = re.compile(r"^\s*\[\w+:\s*string\]")


@dataclass
class Field:
    optional: bool
    nullable: bool
    names: list[str]  # the type names it refers to (Array<X> and unions opened)


def parse(text: str) -> dict[str, dict[str, Field] | None]:
    """Every interface of a declaration file by qualified name (`PaymentIntent.NextAction`):
    its fields, or None for a free-form hash (an index signature, or no fields)."""
    out: dict[str, dict[str, Field] | None] = {}
    stack: list[tuple[str, str]] = []  # (kind, name) of each open brace; ("", "") for others
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(("*", "/**", "*/", "//")):
            continue
        opened = _OPEN.match(line)
        if opened:
            stack.append((opened[1], opened[2]))
            if opened[1] == "interface":
                out[_qualified(stack)] = {}
            continue
        interface = stack and stack[-1][0] == "interface"
        if interface and _INDEX.match(line):
            out[_qualified(stack)] = None
        elif interface and (found := _FIELD.match(line)):
            fields = out[_qualified(stack)]
            if fields is not None:
                fields[found[1]] = _field(bool(found[2]), found[3])
        stack.extend([("", "")] * (stripped.count("{") - stripped.count("}")))
        for _ in range(stripped.count("}") - stripped.count("{")):
            stack.pop()
    return {name: (fields or None) for name, fields in out.items()}


def _qualified(stack: list[tuple[str, str]]) -> str:
    return ".".join(name for _, name in stack if name)


def _field(optional: bool, type_text: str) -> Field:
    parts = [p.strip() for p in type_text.split("|")]
    names = []
    for part in parts:
        inner = re.fullmatch(r"Array<(.+)>", part)
        part = inner[1] if inner else part
        if re.fullmatch(r"[A-Z][\w.]*", part):
            names.append(part)
    return Field(optional, "null" in parts, names)


class Declarations:
    """One file's interfaces, resolved the way TypeScript looks names up: from the innermost
    namespace outwards, then the shared declarations."""

    def __init__(self, own: dict, shared: dict) -> None:
        self.own, self.shared = own, shared

    def nested(self, name: str, scope: str) -> str | None:
        """The nested object a type name refers to from `scope`, or None: another resource (a
        top-level interface of its own), a list object, a library type or a free-form hash."""
        parts = scope.split(".")
        for depth in range(len(parts), -1, -1):
            candidate = ".".join([*parts[:depth], name])
            if candidate in self.own:
                return candidate if "." in candidate and self.own[candidate] else None
        return name if self.shared.get(name) else None

    def fields(self, interface: str) -> dict[str, Field]:
        return self.own.get(interface) or self.shared.get(interface) or {}

    def paths(self, interface: str, prefix: str = "", seen: frozenset = frozenset()) -> dict:
        """Each field path below `interface` with its presence flag (see the module's doc)."""
        out: dict[str, str] = {}
        for name, field in self.fields(interface).items():
            path = prefix + name
            out[path] = ("?" if field.optional else "") + ("|null" if field.nullable else "")
            found = [n for ref in field.names if (n := self.nested(ref, interface))]
            if found and found[0] not in seen:
                out.update(self.paths(found[0], path + ".", seen | {found[0]}))
        return out


def generate(tarball: Path) -> dict:
    with tarfile.open(tarball) as tar:

        def read(name: str) -> str:
            member = tar.extractfile(f"package/esm/{name}")
            assert member is not None, name
            return member.read().decode("utf-8")

        version = json.loads(tar.extractfile("package/package.json").read())["version"]
        api = re.search(r"ApiVersion = '([^']+)'", read("apiVersion.js"))
        shared = parse(read(SHARED))
        objects = {}
        for kind, (path, interface) in sorted(ROOTS.items()):
            objects[kind] = Declarations(parse(read(path)), shared).paths(interface)
    return {
        "note": "Generated by tests/emulator/stripe_node_presence.py from the npm package; do not"
        " edit. '?': may be absent; '|null': null when unset.",
        "stripe_node": version,
        "api_version": api[1] if api else None,
        "objects": objects,
    }


def dumps(data: dict) -> str:
    """One line per object kind: compact, yet a diff shows which kinds changed."""
    lines = [f" {json.dumps(k)}: {json.dumps(v)}," for k, v in data.items() if k != "objects"]
    objects = data["objects"].items()
    kinds = [f"  {json.dumps(k)}: {json.dumps(v, sort_keys=True)}" for k, v in objects]
    return "{\n" + "\n".join(lines) + '\n "objects": {\n' + ",\n".join(kinds) + "\n }\n}\n"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: stripe_node_presence.py STRIPE_NODE_TARBALL  (from `npm pack stripe@X`)")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(dumps(generate(Path(sys.argv[1]))), encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")
