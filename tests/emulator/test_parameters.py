"""Every parameter stripe-python declares, for every operation the emulator serves.

Each declared parameter is either implemented, or refused with a 400 invalid_request_error whose
code is the emulator's own `parameter_unsupported`, naming it; never `parameter_unknown`, which
is kept for names Stripe does not have. The test enumerates the declarations (stripe_oracle) and
asks the running emulator about each one through stripe-python, so a new stripe-python version
shows what is missing. Declared enum values get the same treatment.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import stripe
from stripe_oracle import (
    JSON_PATH,
    OPERATIONS,
    README,
    STRIPE_JS_EXTRAS,
    classify,
    declared_params,
    readme_block,
    rendered,
    route_specs,
    support_markdown,
    walk_declared,
)

from bookpay.emulator import EmulatorOptions, params, start_emulator
from bookpay.emulator.routes import ROUTES

UNSUPPORTED = {"parameter_unsupported", "api_version_unsupported"}
LISTS = {"enabled_events", "allowed_payment_method_types", "excluded_payment_method_types"}
# Values Stripe accepts only from Stripe.js (raw card details), so stripe-python does not list
# them: the emulator implements these and none of the declared ones.
STRIPE_JS_VALUES = {"payment_method_data[type]": {"card"}}


@pytest.fixture(scope="module")
def client() -> Iterator[stripe.StripeClient]:
    with start_emulator(options=EmulatorOptions(retry_schedule=(), async_delay=60)) as emu:
        yield stripe.StripeClient(
            "sk_test_x", base_addresses={"api": emu.url}, max_network_retries=0
        )


def ask(client: stripe.StripeClient, op: str, sent: dict[str, Any]) -> dict[str, Any] | None:
    """The error the emulator answers (None when it accepts the request)."""
    method, path = op.split(" ", 1)
    try:
        client.raw_request(method.lower(), path.replace("{id}", "obj_probe"), **sent)
    except stripe.StripeError as exc:
        return (exc.json_body or {}).get("error", {})
    return None


def nested(path: str, value: Any) -> dict[str, Any]:
    """`a[b][c]` -> {"a": {"b": {"c": value}}}."""
    parts = path.replace("]", "").split("[")
    for part in reversed(parts[1:]):
        value = {part: value}
    return {parts[0]: value}


def test_every_route_is_mapped_to_its_declaration() -> None:
    assert {route.op for route in ROUTES} == set(OPERATIONS)


def test_generated_table_is_current() -> None:
    """`bookpay/emulator/stripe_params.json` is what stripe-python, stripe-node's presence
    reference (tests/reference/stripe-node) and the specs say today (regenerate with
    `.venv/bin/python tests/emulator/stripe_oracle.py --write`)."""
    assert JSON_PATH.read_text(encoding="utf-8") == rendered()


def test_readme_lists_what_is_supported() -> None:
    """The README's table of implemented and unsupported parameters is today's (the same
    command regenerates it)."""
    assert readme_block(README.read_text(encoding="utf-8")) == support_markdown()


def test_api_version_is_stripe_pythons() -> None:
    assert params.api_version() == stripe.api_version


def test_specs_hold_only_declared_names() -> None:
    """What an emulator spec implements, Stripe declares (or Stripe.js sends undeclared)."""
    for op, spec in route_specs().items():
        declared = {path for path, _ in walk_declared(declared_params(op))}

        def walk(spec: dict[str, Any], prefix: str) -> Iterator[str]:
            for name, sub in spec.items():
                path = f"{prefix}[{name}]" if prefix else name
                yield path
                if isinstance(sub, dict):
                    yield from walk(sub, path)

        for path in walk(spec, ""):
            leaf = path.replace("]", "").split("[")[-1]
            assert path in declared or leaf in STRIPE_JS_EXTRAS, f"{op}: {path}"


@pytest.mark.parametrize("op", sorted(OPERATIONS))
def test_declared_parameters_are_implemented_or_refused_as_unsupported(
    client: stripe.StripeClient, op: str
) -> None:
    found = classify(op)
    refused_at = set()
    for path in found["unsupported"]:
        # Asked at the level where the emulator refuses: a parameter whose parent it implements.
        parent = path.rsplit("[", 1)[0] if "[" in path else ""
        if parent in found["unsupported"]:
            continue
        refused_at.add(path)
        error = ask(client, op, nested(path, "x"))
        assert error is not None, f"{op}: {path} was accepted"
        assert (error.get("type"), error.get("code"), error.get("param")) == (
            "invalid_request_error",
            "parameter_unsupported",
            path,
        ), f"{op}: {path}: {error}"
        assert path in error["message"] and "does not support" in error["message"]
    for path in found["implemented"]:
        error = ask(client, op, nested(path, "x")) or {}
        if error.get("param") == path:
            assert error.get("code") not in ("parameter_unknown", "parameter_unsupported"), (
                f"{op}: {path}: {error}"
            )


def test_unknown_names_stay_parameter_unknown(client: stripe.StripeClient) -> None:
    error = ask(client, "POST /v1/payment_intents", {"amount": 1000, "bogus": "1"})
    assert (error["code"], error["param"]) == ("parameter_unknown", "bogus")
    assert error["message"] == "Received unknown parameter: bogus"
    error = ask(client, "POST /v1/payment_intents", {"shipping": {"address": {"planet": "x"}}})
    assert (error["code"], error["param"]) == ("parameter_unknown", "shipping[address][planet]")


def test_issue_examples_are_refused_as_unsupported(client: stripe.StripeClient) -> None:
    """The two the issue found claiming Stripe would refuse them."""
    error = ask(
        client,
        "POST /v1/payment_intents",
        {"amount": 1000, "currency": "usd", "confirm": True, "return_url": "https://x.example",
         "payment_method_data": {"type": "sepa_debit"}},
    )  # fmt: skip
    assert (error["code"], error["param"]) == ("parameter_unsupported", "payment_method_data[type]")
    assert "payment_method_data[type]=sepa_debit" in error["message"]
    error = ask(client, "POST /v1/payment_intents", {"amount": 1000, "mandate_data": {"a": "b"}})
    assert (error["code"], error["param"]) == ("parameter_unsupported", "mandate_data")


# --- declared enum values -----------------------------------------------------------------


def _intent(client: stripe.StripeClient, **extra: Any) -> str:
    body = client.raw_request(
        "post", "/v1/payment_intents", amount=1000, currency="usd", **extra
    ).body
    return json.loads(body)["id"]


def _endpoint(client: stripe.StripeClient) -> str:
    body = client.raw_request(
        "post", "/v1/webhook_endpoints", url="http://127.0.0.1:9/x", enabled_events=["*"]
    ).body
    return json.loads(body)["id"]


CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2040, "cvc": "123"}


TAX_LINE = {"amount": 2300, "reference": "1", "tax_code": "txcd_35010000"}
TAX_CALCULATION = {
    "currency": "usd",
    "line_items": [TAX_LINE],
    "shipping_cost": {"amount": 500},
    "customer_details": {"address": {"country": "US", "postal_code": "10001"}},
}


def _tax_transaction(client: stripe.StripeClient) -> dict[str, Any]:
    calc = json.loads(client.raw_request("post", "/v1/tax/calculations", **TAX_CALCULATION).body)
    body = client.raw_request(
        "post",
        "/v1/tax/transactions/create_from_calculation",
        calculation=calc["id"],
        reference=f"order-{calc['id']}",
    ).body
    return json.loads(body)


def base(
    client: stripe.StripeClient, op: str, param: str, value: str = ""
) -> tuple[str, dict[str, Any]]:
    """A request that is valid up to the parameter being probed (with ``value``), and the path
    it goes to."""
    path = op.split(" ", 1)[1]
    if op == "POST /v1/tax/calculations":
        return path, dict(TAX_CALCULATION)
    if op == "POST /v1/tax/transactions/create_reversal":
        txn = _tax_transaction(client)
        sent = {"original_transaction": txn["id"], "reference": f"refund-{txn['id']}"}
        return path, {**sent, "flat_amount": -100} if value == "partial" else sent
    confirming = param.startswith("payment_method_data") or param == "off_session"
    if op == "POST /v1/payment_intents":
        sent: dict[str, Any] = {"amount": 1000, "currency": "usd"}
        if confirming:
            sent |= {"confirm": True, "return_url": "https://shop.example/r"}
        if param.startswith("payment_method_data"):
            sent["payment_method_data"] = {"type": "card", "card": CARD}
        elif param == "off_session":
            sent["payment_method"] = "pm_card_visa"
        return path, sent
    if op in ("POST /v1/payment_intents/{id}", "POST /v1/payment_intents/{id}/confirm"):
        limited = {"allowed_payment_method_types": ["card"]} if "types" in param else {}
        sent = {"payment_method_data": {"type": "card", "card": CARD}}
        if op.endswith("confirm"):
            sent["return_url"] = "https://shop.example/r"
        if param == "off_session":
            sent = {"payment_method": "pm_card_visa", "return_url": "https://shop.example/r"}
        return path.replace("{id}", _intent(client, **limited)), sent
    if op == "POST /v1/payment_intents/{id}/cancel":
        return path.replace("{id}", _intent(client)), {}
    if op == "POST /v1/payment_methods":
        return path, {"type": "card", "card": CARD}
    if op == "POST /v1/refunds":
        pi = _intent(client, confirm=True, payment_method="pm_card_visa",
                     return_url="https://shop.example/r")  # fmt: skip
        return path, {"payment_intent": pi, "amount": 100}
    if op == "POST /v1/webhook_endpoints":
        return path, {"url": "http://127.0.0.1:9/x", "enabled_events": ["*"]}
    if op == "POST /v1/webhook_endpoints/{id}":
        return path.replace("{id}", _endpoint(client)), {}
    raise AssertionError(f"no base request for {op}")


def merge(sent: Any, probe: Any) -> Any:
    """``probe`` laid over ``sent``: hashes merged key by key, a hash laid over a list of hashes
    going into its first one (`line_items[tax_behavior]` probes the first line item)."""
    if isinstance(sent, dict) and isinstance(probe, dict):
        return {**sent, **{k: merge(sent.get(k), v) for k, v in probe.items()}}
    if isinstance(sent, list) and sent and isinstance(probe, dict):
        return [merge(sent[0], probe), *sent[1:]]
    return probe


ENUMS = [
    (op, param)
    for op, entry in sorted(params.declared()["operations"].items())
    for param in sorted(entry["enums"])
]


@pytest.mark.parametrize(("op", "param"), ENUMS)
def test_declared_values_are_implemented_or_refused_as_unsupported(
    client: stripe.StripeClient, op: str, param: str
) -> None:
    values = params.declared()["operations"][op]["enums"][param]
    listed = param in LISTS
    accepted = 0
    for value in values:
        path, sent = base(client, op, param, value)
        merged = merge(sent, nested(param, [value] if listed else value))
        try:
            body = json.loads(client.raw_request(op.split()[0].lower(), path, **merged).body)
            accepted += 1
            if body.get("object") == "webhook_endpoint" and op == "POST /v1/webhook_endpoints":
                client.raw_request("delete", f"/v1/webhook_endpoints/{body['id']}")
        except stripe.StripeError as exc:
            error = (exc.json_body or {}).get("error", {})
            if error.get("param", "").startswith(param.split("[")[0]):
                assert error.get("code") in UNSUPPORTED, f"{op} {param}={value}: {error}"
                assert value in error["message"], error
            else:  # refused for another reason than this value (a decline, a state)
                assert error.get("type") == "card_error", f"{op} {param}={value}: {error}"
                accepted += 1
    assert accepted or param in STRIPE_JS_VALUES, f"{op}: no declared value of {param} works"
