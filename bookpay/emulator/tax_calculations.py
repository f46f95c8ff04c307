"""Stripe Tax calculations: create, retrieve, and list a calculation's line items.

Tax comes from the TEST table of tax_rates.py (a stand-in for testing, not tax advice). A
calculation can be retrieved, and one transaction created from it, until it expires 90 days after
it was made, by the emulator's clock (``ctx.now``, which ``/_emulator/clock`` moves on). Stripe
sends no events about calculations.
"""

from __future__ import annotations

import re
from typing import Any

from . import customers, tax_shapes, validate
from .context import Ctx
from .params import ANY, choice
from .tax_rates import DEFAULT_CODE, SHIPPING, Place, locate, rules
from .wire import ApiError, malformed, missing, new_id, no_such

LIFETIME = 90 * 24 * 3600  # seconds a calculation lives: Stripe's 90 days
BEHAVIORS = ("exclusive", "inclusive")
SOURCES = ("billing", "shipping")
OVERRIDES = ("none", "customer_exempt", "reverse_charge")
LOCATION_INVALID = (
    "We could not determine the customer's tax location based on the provided customer address."
)
CREATE_SPEC = {
    "currency": None,
    "line_items": {
        "amount": None,
        "quantity": None,
        "reference": 500,
        "tax_behavior": None,
        "tax_code": None,
        "metadata": ANY,
    },
    "shipping_cost": {"amount": None, "tax_behavior": None, "tax_code": None},
    "customer_details": {
        "address": validate.ADDRESS_SPEC,
        "address_source": None,
        "taxability_override": None,
    },
    "customer": None,
    "expand": None,
}
RETRIEVE_SPEC = tax_shapes.RETRIEVE_SPEC
LINE_ITEMS_SPEC = tax_shapes.LIST_SPEC
_TAX_CODE = re.compile(r"txcd_[0-9]{8}")


def amount(value: Any, param: str, least: int = 0) -> int:
    """An amount in minor units, at least ``least``, at most Stripe's eight digits."""
    number = validate.integer(value, param)
    if number < least:
        raise malformed(f"This value must be greater than or equal to {least}.", param)
    if number > validate.MAX_AMOUNT:
        raise malformed(f"This value must be less than or equal to {validate.MAX_AMOUNT}.", param)
    return number


def tax_code(value: Any, param: str, default: str) -> str:
    code = validate.string(value, param) or default
    if not _TAX_CODE.fullmatch(code):
        raise no_such("tax_code", code, param, 400)
    return code


def _items(value: Any, param: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
        raise malformed(validate.INVALID_ARRAY, param)
    return value


def _line_items(ctx: Ctx, value: Any) -> list[dict[str, Any]]:
    lines = []
    references: set[str] = set()
    for i, item in enumerate(_items(value, "line_items")):
        at = f"line_items[{i}]"
        if "amount" not in item:
            raise missing(f"{at}[amount]")
        reference = validate.string(item.get("reference"), f"{at}[reference]")
        if reference in references:
            raise malformed(
                f"The reference '{reference}' is used by more than one line item: references"
                " must be unique within a calculation.",
                f"{at}[reference]",
            )
        behavior = choice(
            item.get("tax_behavior", "exclusive"), f"{at}[tax_behavior]", BEHAVIORS, ctx.op
        )
        lines.append(
            {
                "amount": amount(item["amount"], f"{at}[amount]"),
                "quantity": amount(item.get("quantity", "1"), f"{at}[quantity]", 1),
                "reference": reference,
                "tax_behavior": behavior,
                "tax_code": tax_code(item.get("tax_code"), f"{at}[tax_code]", DEFAULT_CODE),
                "metadata": validate.metadata(item.get("metadata", {})),
            }
        )
        if reference is not None:
            references.add(reference)
    # Lines without a reference are named L1, L2, ... as Stripe's tax exports show them.
    n = 0
    for line in lines:
        while line["reference"] is None:
            n += 1
            if f"L{n}" not in references:
                line["reference"] = f"L{n}"
                references.add(line["reference"])
    return lines


def _shipping(ctx: Ctx, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise malformed("Invalid hash: shipping_cost", "shipping_cost")
    if "amount" not in value:
        raise missing("shipping_cost[amount]")
    return {
        "amount": amount(value["amount"], "shipping_cost[amount]"),
        "tax_behavior": choice(
            value.get("tax_behavior", "exclusive"), "shipping_cost[tax_behavior]", BEHAVIORS, ctx.op
        ),
        "tax_code": tax_code(value.get("tax_code"), "shipping_cost[tax_code]", SHIPPING),
    }


def _location(ctx: Ctx) -> tuple[dict[str, Any], Place, str | None, str, str | None]:
    """The address, its place, its source, the taxability override and the customer id."""
    p = ctx.params
    details = p.get("customer_details", {})
    if not isinstance(details, dict):
        raise malformed("Invalid hash: customer_details", "customer_details")
    cus_id = customers.reference(ctx, p["customer"], "customer") if "customer" in p else None
    override = choice(
        details.get("taxability_override", "none"),
        "customer_details[taxability_override]",
        OVERRIDES,
        ctx.op,
    )
    source = details.get("address_source")
    if source is not None:
        source = choice(source, "customer_details[address_source]", SOURCES, ctx.op)
    raw = details.get("address")
    param = "customer_details[address]"
    if raw is None and cus_id is not None:
        # The customer's shipping address, else its address, as Stripe takes them.
        customer = ctx.store.get(cus_id, "customer") or {}
        shipping = (customer.get("shipping") or {}).get("address")
        raw, source = (shipping, "shipping") if shipping else (customer.get("address"), "billing")
        param = "customer"
        if raw is None:
            raise ApiError(400, LOCATION_INVALID, code="customer_tax_location_invalid", param=param)
    if raw is None:
        raise missing(
            "customer_details[address]" if "customer_details" in p else "customer_details"
        )
    if not isinstance(raw, dict):
        raise malformed(f"Invalid hash: {param}", param)
    if not raw.get("country") and param != "customer":
        raise missing("customer_details[address][country]")
    place = locate(raw)
    if place is None:
        raise ApiError(400, LOCATION_INVALID, code="customer_tax_location_invalid", param=param)
    return validate.address(raw), place, source, override, cus_id


def create(ctx: Ctx) -> dict[str, Any]:
    p = ctx.params
    if "currency" not in p:
        raise missing("currency")
    currency = validate.currency(p["currency"])
    if "line_items" not in p:
        raise missing("line_items")
    lines = _line_items(ctx, p["line_items"])
    shipping = _shipping(ctx, p.get("shipping_cost"))
    address, place, source, override, cus_id = _location(ctx)
    codes = [line["tax_code"] for line in lines] + ([shipping["tax_code"]] if shipping else [])
    found = rules(place, codes, override)
    calc_id = new_id("taxcalc")
    items, parts = [], []
    for line, rule in zip(lines, found, strict=False):
        inclusive = line["tax_behavior"] == "inclusive"
        tax = rule.tax_on(line["amount"], inclusive)
        items.append(
            {
                "id": new_id("tax_li", 14),
                "object": "tax.calculation_line_item",
                "amount": line["amount"],
                "amount_tax": tax,
                "livemode": False,
                "metadata": line["metadata"],
                "performance_location": None,
                "product": None,
                "quantity": line["quantity"],
                "reference": line["reference"],
                "tax_behavior": line["tax_behavior"],
                "tax_breakdown": tax_shapes.item_breakdown(rule, line["amount"], tax, inclusive),
                "tax_code": line["tax_code"],
            }
        )
        parts.append((rule, line["amount"], tax, inclusive))
    shipping_cost = None
    if shipping:
        rule, inclusive = found[-1], shipping["tax_behavior"] == "inclusive"
        tax = rule.tax_on(shipping["amount"], inclusive)
        shipping_cost = {
            "amount": shipping["amount"],
            "amount_tax": tax,
            "tax_behavior": shipping["tax_behavior"],
            "tax_breakdown": tax_shapes.item_breakdown(rule, shipping["amount"], tax, inclusive),
            "tax_code": shipping["tax_code"],
        }
        parts.append((rule, shipping["amount"], tax, inclusive))
    exclusive = sum(tax for _, _, tax, inclusive in parts if not inclusive)
    # The date whose rates apply, and the expiry, are on the emulator's clock (tests move it).
    today = int(ctx.now())
    url = f"/v1/tax/calculations/{calc_id}/line_items"
    calc = {
        "id": calc_id,
        "object": "tax.calculation",
        "amount_total": sum(amount for _, amount, _, _ in parts) + exclusive,
        "currency": currency,
        "customer": cus_id,
        "customer_details": tax_shapes.customer_details(address, source, override),
        "expires_at": today + LIFETIME,
        "line_items": tax_shapes.embedded_list(items, url),
        "livemode": False,
        "ship_from_details": None,
        "shipping_cost": shipping_cost,
        "tax_amount_exclusive": exclusive,
        "tax_amount_inclusive": sum(tax for _, _, tax, inclusive in parts if inclusive),
        "tax_breakdown": _breakdown(parts),
        "tax_date": today,
        "_lines": items,
        "_transaction": None,
    }
    return ctx.store.save(calc)


def _breakdown(parts: list[tuple[Any, int, int, bool]]) -> list[dict[str, Any]]:
    """The calculation's tax_breakdown: the parts' taxes summed by rate, reason and whether
    they are included in the amounts, in the order they first appear."""
    found: dict[tuple, dict[str, Any]] = {}
    for rule, amount_, tax, inclusive in parts:
        details = tax_shapes.rate_details(rule)
        key = (inclusive, rule.reason, *details.values())
        entry = found.setdefault(
            key,
            {
                "amount": 0,
                "inclusive": inclusive,
                "tax_rate_details": details,
                "taxability_reason": rule.reason,
                "taxable_amount": 0,
            },
        )
        entry["amount"] += tax
        entry["taxable_amount"] += tax_shapes.taxable_amount(rule, amount_, tax, inclusive)
    return list(found.values())


def expired(ctx: Ctx, calc: dict[str, Any]) -> bool:
    return ctx.now() >= calc["expires_at"]


def _load(ctx: Ctx, calc_id: str) -> dict[str, Any]:
    """A calculation that has not expired: Stripe keeps none after that."""
    calc = ctx.store.get(calc_id, "tax.calculation")
    if calc is None or expired(ctx, calc):
        raise no_such("tax.calculation", calc_id)
    return calc


def retrieve(ctx: Ctx, calc_id: str) -> dict[str, Any]:
    return _load(ctx, calc_id)


def list_line_items(ctx: Ctx, calc_id: str) -> dict[str, Any]:
    calc = _load(ctx, calc_id)
    url = f"/v1/tax/calculations/{calc_id}/line_items"
    return tax_shapes.page(calc["_lines"], ctx.params, url, "tax.calculation_line_item")
