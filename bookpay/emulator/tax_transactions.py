"""Stripe Tax transactions: one from a calculation, retrieve, and their line items; and the
shapes reversals (tax_reversals.py) share with them.

A calculation makes one transaction, before it expires. Every reference is unique across
transactions and reversals. Stripe sends no events about tax transactions.
"""

from __future__ import annotations

import time
from typing import Any

from . import tax_calculations, tax_shapes, validate, wire
from .context import Ctx
from .params import ANY
from .wire import ApiError, invalid, missing, new_id, no_such

CREATE_SPEC = {"calculation": None, "reference": 500, "metadata": ANY, "expand": None}
RETRIEVE_SPEC = tax_shapes.RETRIEVE_SPEC
LINE_ITEMS_SPEC = tax_shapes.LIST_SPEC


def required(ctx: Ctx, *names: str) -> None:
    for name in names:
        if validate.string(ctx.params.get(name), name) is None:
            raise missing(name)


def check_reference(ctx: Ctx) -> str:
    reference = ctx.params["reference"]
    taken = ctx.store.find("tax.transaction", "reference", reference, limit=1)
    if taken:
        raise ApiError(
            400,
            f"A transaction with the reference '{reference}' already exists ({taken[0]['id']}):"
            " references are unique across all transactions, including reversals.",
            code="resource_already_exists",
            param="reference",
        )
    return reference


def build(ctx: Ctx, source: dict[str, Any], kind: str, lines, shipping, original=None):
    """A transaction (or reversal) of ``source``'s currency, customer and tax date."""
    now = wire.now()
    txn_id = new_id("tax")
    return {
        "id": txn_id,
        "object": "tax.transaction",
        "created": now,
        "currency": source["currency"],
        "customer": source["customer"],
        "customer_details": source["customer_details"],
        "line_items": tax_shapes.embedded_list(lines, f"/v1/tax/transactions/{txn_id}/line_items"),
        "livemode": False,
        "metadata": validate.metadata(ctx.params.get("metadata", {})),
        "posted_at": now,
        "reference": ctx.params["reference"],
        "reversal": None if original is None else {"original_transaction": original},
        "ship_from_details": None,
        "shipping_cost": shipping,
        "tax_date": source["tax_date"],
        "type": kind,
        "_lines": lines,
        "_reversed": {},  # original line item id -> [amount, amount_tax] reversed in part
        "_shipping_reversed": [0, 0],
        "_partials": 0,
        "_fully_reversed": None,  # the full reversal's id
    }


def line(source: dict[str, Any], amount: int, tax: int, kind: str, **extra: Any):
    return {
        "id": new_id("tax_li", 14),
        "object": "tax.transaction_line_item",
        "amount": amount,
        "amount_tax": tax,
        "livemode": False,
        "metadata": source.get("metadata") or {},
        "product": None,
        "quantity": source["quantity"],
        "reference": source["reference"],
        "reversal": None,
        "tax_behavior": source["tax_behavior"],
        "tax_code": source["tax_code"],
        "type": kind,
        **extra,
    }


def shipping_cost(source: dict[str, Any] | None, amount: int, tax: int) -> dict[str, Any] | None:
    if source is None:
        return None
    inclusive = source["tax_behavior"] == "inclusive"
    taxable = amount - tax if inclusive else amount
    return {
        "amount": amount,
        "amount_tax": tax,
        "tax_behavior": source["tax_behavior"],
        "tax_breakdown": tax_shapes.scaled_breakdown(source["tax_breakdown"], tax, taxable),
        "tax_code": source["tax_code"],
    }


# --- create_from_calculation -------------------------------------------------------------


def create_from_calculation(ctx: Ctx) -> dict[str, Any]:
    required(ctx, "calculation", "reference")
    calc_id = ctx.params["calculation"]
    calc = ctx.store.get(calc_id, "tax.calculation")
    if calc is None:
        raise no_such("tax.calculation", calc_id, "calculation", 400)
    if tax_calculations.expired(ctx, calc):
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(calc["expires_at"]))
        raise invalid(
            f"The tax calculation {calc_id} expired at {when}: a transaction can be created from"
            " a calculation for 90 days after it is made. Create a new calculation.",
            "calculation",
        )
    if calc["_transaction"]:
        raise ApiError(
            400,
            f"A transaction ({calc['_transaction']}) has already been created from the tax"
            f" calculation {calc_id}: a calculation makes one transaction.",
            code="resource_already_exists",
            param="calculation",
        )
    check_reference(ctx)
    lines = [line(li, li["amount"], li["amount_tax"], "transaction") for li in calc["_lines"]]
    cost = calc["shipping_cost"]
    shipping = None if cost is None else {**cost}
    txn = build(ctx, calc, "transaction", lines, shipping)
    calc["_transaction"] = txn["id"]
    ctx.store.save(calc)
    return ctx.store.save(txn)


# --- retrieve ---------------------------------------------------------------------------


def _load(ctx: Ctx, txn_id: str) -> dict[str, Any]:
    txn = ctx.store.get(txn_id, "tax.transaction")
    if txn is None:
        raise no_such("tax.transaction", txn_id)
    return txn


def retrieve(ctx: Ctx, txn_id: str) -> dict[str, Any]:
    return _load(ctx, txn_id)


def list_line_items(ctx: Ctx, txn_id: str) -> dict[str, Any]:
    txn = _load(ctx, txn_id)
    url = f"/v1/tax/transactions/{txn_id}/line_items"
    return tax_shapes.page(txn["_lines"], ctx.params, url, "tax.transaction_line_item")
