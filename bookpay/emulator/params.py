"""Parameters: implemented by the emulator, known to Stripe but not supported yet, or unknown.

Each operation declares the parameters it implements as a spec: a dict of name -> None (a
scalar, at most MAX_STRING characters), an int (a string with that limit instead), ANY (a
free-form hash such as metadata), or a nested spec (a hash, or a list of hashes). What Stripe
itself declares comes from `stripe_params.json`, generated from the pinned stripe-python by
`tests/emulator/stripe_oracle.py` and checked by a test, so it cannot drift; the emulator never
imports stripe-python. A name Stripe declares but the spec lacks is refused with the emulator's
own code `parameter_unsupported`; only a name Stripe does not have is `parameter_unknown`, as
Stripe answers it.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from .wire import MAX_STRING, ApiError, invalid, malformed, too_long

ANY = "any"
DECLARED = Path(__file__).with_name("stripe_params.json")
UNSUPPORTED = "parameter_unsupported"


@functools.cache
def declared() -> dict[str, Any]:
    """The generated table: the API version, and per operation the declared names and enums."""
    return json.loads(DECLARED.read_text(encoding="utf-8"))


def api_version() -> str:
    return declared()["api_version"]


def known_versions() -> frozenset[str]:
    """Stripe's API versions, as stripe-python lists them for a webhook endpoint's api_version."""
    ops = declared()["operations"]
    listed = ops["POST /v1/webhook_endpoints"]["enums"].get("api_version", ())
    return frozenset({*listed, api_version()})


def answer_version(requested: str | None, param: str | None = None) -> str:
    """The version a request is answered in. Stripe refuses versions that do not exist; the
    emulator renders one major version's shapes (stripe-python's), so it accepts that major's
    monthly releases (which only add) and refuses the other majors as not supported yet."""
    if not requested:
        return api_version()
    if requested not in known_versions():
        raise invalid(f"Invalid Stripe API version: {requested[:80]}", param)
    major = api_version().split(".", 1)[1]
    if requested.partition(".")[2] != major:
        raise ApiError(
            400,
            f"The bookpay emulator does not support Stripe API version {requested} yet: it"
            f" answers as {api_version()} (stripe-python's), and accepts the {major} versions.",
            param=param,
            code="api_version_unsupported",
        )
    return requested


def unsupported(name: str, value: str | None = None) -> ApiError:
    what = name if value is None else f"{name}={value}"
    return ApiError(
        400,
        f"The bookpay emulator does not support {what} yet. Stripe accepts it: leave it out"
        " here, or run against Stripe test mode.",
        param=name,
        code=UNSUPPORTED,
    )


# Top-level parameters the API version no longer takes, with Stripe's own refusal of them.
NO_LONGER = {
    "payment_method_types": (
        "payment_method_types_no_longer_supported",
        "The payment_method_types parameter is not supported on this API version. Use"
        " allowed_payment_method_types or excluded_payment_method_types instead, or dynamic"
        " payment methods.",
        ("POST /v1/payment_intents", "POST /v1/payment_intents/{id}",
         "POST /v1/payment_intents/{id}/confirm"),
    ),
}  # fmt: skip


def unknown(name: str) -> ApiError:
    return invalid(f"Received unknown parameter: {name}", name, "parameter_unknown")


def check_publishable(params: dict[str, Any], allowed: frozenset[str] | None) -> None:
    """A publishable key may send only what Stripe.js sends (`allowed`; None: whatever the
    operation takes). Stripe's parameters are per key: as a secret key's `client_secret` is
    Stripe's "Received unknown parameter: client_secret", a publishable key's `capture_method`
    is refused the same way, before anything else is checked."""
    if allowed is None:
        return
    for name in params:
        if name not in allowed:
            raise unknown(name)


def check(params: dict[str, Any], spec: dict[str, Any], op: str) -> None:
    """Refuse what the operation does not implement, naming the full bracket path."""
    for name, (code, message, ops) in NO_LONGER.items():
        if name in params and op in ops:
            raise malformed(message, name, code)
    table = declared()["operations"].get(op, {}).get("params", {})
    _walk(params, spec, table, "", "")


def _walk(params: dict[str, Any], spec: dict[str, Any], table: dict, node: str, prefix: str):
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else key
        path = f"{node}[{key}]" if node else key
        if key not in spec:
            if key in table.get(node, ()):
                raise unsupported(name)
            raise unknown(name)
        sub = spec[key]
        if sub is ANY:
            continue
        limit = sub if isinstance(sub, int) else MAX_STRING
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, dict):
                if not isinstance(sub, dict):
                    raise malformed(f"Invalid string: {item}", name, "parameter_invalid_string")
                _walk(item, sub, table, path, name)
            elif isinstance(item, str) and len(item) > limit:
                raise too_long(item, name, limit)


def choice(value: Any, param: str, supported: tuple[str, ...], op: str) -> str:
    """One of the values this emulator supports; a value Stripe has but the emulator does not
    is refused as unsupported, anything else as Stripe refuses an invalid enum value."""
    if isinstance(value, str) and value in supported:
        return value
    known = declared()["operations"].get(op, {}).get("enums", {}).get(_node_of(param), ())
    if isinstance(value, str) and value in known:
        raise unsupported(param, value)
    allowed = sorted({*supported, *known})
    raise malformed(f"Invalid {param}: must be one of {', '.join(allowed)}", param)


def _node_of(param: str) -> str:
    """`payment_method_data[billing_details][0]` names the node without list indices."""
    parts = param.replace("]", "").split("[")
    return parts[0] + "".join(f"[{p}]" for p in parts[1:] if not p.isdigit())
