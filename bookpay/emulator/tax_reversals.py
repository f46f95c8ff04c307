"""Stripe Tax reversals: a transaction taken back in full, by line item, or by a flat amount.

A reversal takes amounts back with negative signs. A full one reverses the whole original,
whatever partial reversals came before (as Stripe documents); partial ones take at most what they
left, at most 30 of them per transaction. Fully reversing a reversal undoes it: what it took back
may be reversed again; an undoing itself is final.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

from . import tax_calculations, tax_transactions, validate
from .context import Ctx
from .params import ANY, choice
from .wire import invalid, malformed, missing, no_such

MAX_PARTIAL = 30
REVERSAL_SPEC = {
    "mode": None,
    "original_transaction": None,
    "reference": 500,
    "line_items": {
        "original_line_item": None,
        "reference": 500,
        "amount": None,
        "amount_tax": None,
        "quantity": None,
        "metadata": ANY,
    },
    "flat_amount": None,
    "shipping_cost": {"amount": None, "amount_tax": None},
    "metadata": ANY,
    "expand": None,
}


def create_reversal(ctx: Ctx) -> dict[str, Any]:
    tax_transactions.required(ctx, "mode", "original_transaction", "reference")
    p = ctx.params
    mode = choice(p["mode"], "mode", ("full", "partial"), ctx.op)
    original = ctx.store.get(p["original_transaction"], "tax.transaction")
    if original is None:
        raise no_such("tax.transaction", p["original_transaction"], "original_transaction", 400)
    if original["_fully_reversed"]:
        raise invalid(
            f"The transaction {original['id']} has already been fully reversed (by"
            f" {original['_fully_reversed']}).",
            "original_transaction",
        )
    if _undoes_a_reversal(ctx, original):
        raise invalid(
            f"{original['id']} undoes a reversal: it cannot be reversed in turn.",
            "original_transaction",
        )
    tax_transactions.check_reference(ctx)
    if mode == "full":
        reversal = _full(ctx, original)
    else:
        reversal = _partial(ctx, original)
        original["_partials"] += 1
    ctx.store.save(original)
    return ctx.store.save(reversal)


def _full(ctx: Ctx, original: dict[str, Any]) -> dict[str, Any]:
    given = [name for name in ("line_items", "flat_amount", "shipping_cost") if name in ctx.params]
    if given:
        raise malformed(f"{given[0]} can only be given when mode is partial.", given[0])
    lines = [
        tax_transactions.line(
            li,
            -li["amount"],
            -li["amount_tax"],
            "reversal",
            reversal={"original_line_item": li["id"]},
        )
        for li in original["_lines"]
    ]
    cost = original["shipping_cost"]
    shipping = cost and tax_transactions.shipping_cost(cost, -cost["amount"], -cost["amount_tax"])
    reversal = tax_transactions.build(ctx, original, "reversal", lines, shipping, original["id"])
    original["_fully_reversed"] = reversal["id"]
    if original["type"] == "reversal":  # undoing a reversal: what it took back may go again
        _give_back(ctx, original)
    return reversal


def _undoes_a_reversal(ctx: Ctx, original: dict[str, Any]) -> bool:
    if original["type"] != "reversal":
        return False
    first = ctx.store.get(original["reversal"]["original_transaction"], "tax.transaction")
    return first is not None and first["type"] == "reversal"


def _give_back(ctx: Ctx, undone: dict[str, Any]) -> None:
    first = ctx.store.get(undone["reversal"]["original_transaction"], "tax.transaction")
    if first is None:
        return
    if first["_fully_reversed"] == undone["id"]:
        first["_fully_reversed"] = None
    else:
        for li in undone["_lines"]:
            done = first["_reversed"].get(li["reversal"]["original_line_item"])
            if done:
                done[0] -= li["amount"]
                done[1] -= li["amount_tax"]
        cost = undone["shipping_cost"]
        if cost:
            first["_shipping_reversed"][0] -= cost["amount"]
            first["_shipping_reversed"][1] -= cost["amount_tax"]
    ctx.store.save(first)


def _partial(ctx: Ctx, original: dict[str, Any]) -> dict[str, Any]:
    p = ctx.params
    if original["type"] != "transaction":
        raise invalid(
            f"{original['id']} is a reversal: a reversal can only be reversed in full"
            " (mode=full), which undoes it.",
            "original_transaction",
        )
    if original["_partials"] >= MAX_PARTIAL:
        raise invalid(
            f"The transaction {original['id']} already has {MAX_PARTIAL} partial reversals, the"
            " most a transaction can have.",
            "original_transaction",
        )
    if "flat_amount" in p and ("line_items" in p or "shipping_cost" in p):
        other = "line_items" if "line_items" in p else "shipping_cost"
        raise malformed(
            f"You may only specify one of these parameters: flat_amount, {other}.", "flat_amount"
        )
    if "flat_amount" in p:
        lines, shipping = _flat(ctx, original)
    elif "line_items" in p or "shipping_cost" in p:
        lines, shipping = _by_line(ctx, original), _partial_shipping(ctx, original)
    else:
        raise invalid(
            "One of the following params should be provided for this request: flat_amount,"
            " line_items or shipping_cost.",
            "line_items",
            "parameter_missing",
        )
    for li in lines:
        done = original["_reversed"].setdefault(li["reversal"]["original_line_item"], [0, 0])
        done[0] += li["amount"]
        done[1] += li["amount_tax"]
    if shipping:
        original["_shipping_reversed"][0] += shipping["amount"]
        original["_shipping_reversed"][1] += shipping["amount_tax"]
    return tax_transactions.build(ctx, original, "reversal", lines, shipping, original["id"])


def _left(original: dict[str, Any], li: dict[str, Any]) -> tuple[int, int]:
    """What a line has left to reverse after the partial reversals: amount and tax."""
    done = original["_reversed"].get(li["id"], [0, 0])
    return li["amount"] + done[0], li["amount_tax"] + done[1]


def _nonpositive(value: Any, param: str) -> int:
    number = tax_calculations.amount(value, param, -validate.MAX_AMOUNT)
    if number > 0:
        raise malformed("This value must be less than or equal to 0.", param)
    return number


def _check_left(asked: int, left: int, what: str, param: str) -> None:
    if -asked > left:
        raise invalid(
            f"The amount to reverse ({asked}) is more than {what} has left to reverse ({-left}).",
            param,
        )


def _by_line(ctx: Ctx, original: dict[str, Any]) -> list[dict[str, Any]]:
    if "line_items" not in ctx.params:
        return []
    items = tax_calculations._items(ctx.params["line_items"], "line_items")
    by_id = {li["id"]: li for li in original["_lines"]}
    asked: dict[str, list[int]] = {}
    references: set[str] = set()
    lines = []
    for i, item in enumerate(items):
        at = f"line_items[{i}]"
        for name in ("original_line_item", "reference", "amount", "amount_tax"):
            if validate.string(item.get(name), f"{at}[{name}]") is None:
                raise missing(f"{at}[{name}]")
        source = by_id.get(item["original_line_item"])
        if source is None:
            raise no_such(
                "tax.transaction_line_item",
                item["original_line_item"],
                f"{at}[original_line_item]",
                400,
            )
        if item["reference"] in references:
            raise malformed(
                f"The reference '{item['reference']}' is used by more than one line item.",
                f"{at}[reference]",
            )
        references.add(item["reference"])
        amount = _nonpositive(item["amount"], f"{at}[amount]")
        tax = _nonpositive(item["amount_tax"], f"{at}[amount_tax]")
        total = asked.setdefault(source["id"], [0, 0])
        total[0] += amount
        total[1] += tax
        left_amount, left_tax = _left(original, source)
        what = f"line item {source['id']}"
        _check_left(total[0], left_amount, what, f"{at}[amount]")
        _check_left(total[1], left_tax, f"the tax of line item {source['id']}", f"{at}[amount_tax]")
        quantity = item.get("quantity", str(source["quantity"]))
        lines.append(
            tax_transactions.line(
                {
                    **source,
                    "reference": item["reference"],
                    "quantity": tax_calculations.amount(quantity, f"{at}[quantity]", 1),
                    "metadata": validate.metadata(item.get("metadata", {})),
                },
                amount,
                tax,
                "reversal",
                reversal={"original_line_item": source["id"]},
            )
        )
    return lines


def _partial_shipping(ctx: Ctx, original: dict[str, Any]) -> dict[str, Any] | None:
    value = ctx.params.get("shipping_cost")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise malformed("Invalid hash: shipping_cost", "shipping_cost")
    cost = original["shipping_cost"]
    if cost is None:
        raise invalid(f"The transaction {original['id']} has no shipping cost.", "shipping_cost")
    for name in ("amount", "amount_tax"):
        if name not in value:
            raise missing(f"shipping_cost[{name}]")
    amount = _nonpositive(value["amount"], "shipping_cost[amount]")
    tax = _nonpositive(value["amount_tax"], "shipping_cost[amount_tax]")
    done = original["_shipping_reversed"]
    _check_left(amount, cost["amount"] + done[0], "the shipping cost", "shipping_cost[amount]")
    _check_left(tax, cost["amount_tax"] + done[1], "the shipping tax", "shipping_cost[amount_tax]")
    return tax_transactions.shipping_cost(cost, amount, tax)


def _flat(ctx: Ctx, original: dict[str, Any]) -> tuple[list[dict[str, Any]], dict | None]:
    """A flat after-tax amount spread over what each line and the shipping have left, as Stripe
    documents it: in proportion to each part's remaining total, then split between amount and
    tax in proportion to the part's remaining tax."""
    flat = tax_calculations.amount(ctx.params["flat_amount"], "flat_amount", -validate.MAX_AMOUNT)
    if flat >= 0:
        raise malformed("This value must be less than 0.", "flat_amount")
    parts: list[tuple[dict[str, Any] | None, int, int]] = []  # line (None: shipping), left
    for li in original["_lines"]:
        parts.append((li, *_left(original, li)))
    cost = original["shipping_cost"]
    if cost:
        done = original["_shipping_reversed"]
        parts.append((None, cost["amount"] + done[0], cost["amount_tax"] + done[1]))
    totals = [_total(source or cost, amount, tax) for source, amount, tax in parts]
    _check_left(flat, sum(totals), f"the transaction {original['id']}", "flat_amount")
    lines, shipping = [], None
    for (source, _, left_tax), left, share in zip(
        parts, totals, _spread(-flat, totals), strict=True
    ):
        tax = _half_up(Decimal(share) * left_tax / left) if left else 0
        amount = share if (source or cost)["tax_behavior"] == "inclusive" else share - tax
        if source is None:
            shipping = tax_transactions.shipping_cost(cost, -amount, -tax)
        else:
            lines.append(
                tax_transactions.line(
                    source, -amount, -tax, "reversal", reversal={"original_line_item": source["id"]}
                )
            )
    return lines, shipping


def _total(source: dict[str, Any], amount: int, tax: int) -> int:
    """What a part comes to with its tax (an inclusive amount holds it already)."""
    return amount if source["tax_behavior"] == "inclusive" else amount + tax


def _spread(whole: int, weights: list[int]) -> list[int]:
    """``whole`` in integer shares proportional to ``weights`` that add up to it exactly (the
    largest remainders get the units that rounding down leaves over)."""
    total = sum(weights)
    if not total:
        return [0] * len(weights)
    exact = [Fraction(whole * w, total) for w in weights]
    shares = [math.floor(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: exact[i] - shares[i], reverse=True)
    for i in order[: whole - sum(shares)]:
        shares[i] += 1
    return shares


def _half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), ROUND_HALF_UP))
