"""What Stripe Tax's calculations and transactions share: tax breakdowns, customer details,
and lists of line items held by their calculation or transaction."""

from __future__ import annotations

from typing import Any

from . import validate
from .tax_rates import Rule, percentage_text
from .wire import malformed, no_such

LIST_SPEC = {"limit": None, "starting_after": None, "ending_before": None, "expand": None}
RETRIEVE_SPEC = {"expand": None}


def taxable_amount(rule: Rule, amount: int, tax: int, inclusive: bool) -> int:
    """What the tax was worked out on: the amount (less its tax, when it includes it), or
    nothing where no rate applies."""
    if not rule.imposed:
        return 0
    return amount - tax if inclusive else amount


def item_breakdown(rule: Rule, amount: int, tax: int, inclusive: bool) -> list[dict[str, Any]]:
    """A line item's (or shipping's) tax breakdown: one jurisdiction per place in this table."""
    place, j = rule.place, rule.jurisdiction
    details = None
    if rule.imposed and j is not None:
        details = {
            "display_name": j.tax_name,
            "percentage_decimal": percentage_text(rule.percentage),
            "tax_type": j.tax_type,
        }
    return [
        {
            "amount": tax,
            "jurisdiction": {
                "country": place.country,
                "display_name": j.name if j is not None else place.state or place.country,
                "level": "state" if place.state else "country",
                "state": place.state,
            },
            "sourcing": "destination",
            "tax_rate_details": details,
            "taxability_reason": rule.reason,
            "taxable_amount": taxable_amount(rule, amount, tax, inclusive),
        }
    ]


def rate_details(rule: Rule) -> dict[str, Any]:
    """A calculation's tax_breakdown[].tax_rate_details."""
    j = rule.jurisdiction
    return {
        "country": rule.place.country,
        "flat_amount": None,
        "percentage_decimal": percentage_text(rule.percentage),
        "rate_type": "percentage" if rule.imposed else None,
        "state": rule.place.state,
        "tax_type": j.tax_type if j is not None else None,
    }


def scaled_breakdown(original: list[dict[str, Any]] | None, tax: int, taxable: int):
    """A breakdown like ``original`` (one entry) for a reversed part: its tax and taxable
    amount, keeping the jurisdiction and the rate."""
    if not original:
        return original
    entry = original[0]
    return [{**entry, "amount": tax, "taxable_amount": taxable if entry["taxable_amount"] else 0}]


def customer_details(address: dict[str, Any] | None, source: str | None, override: str):
    return {
        "address": address,
        "address_source": source,
        "ip_address": None,
        "tax_ids": [],
        "taxability_override": override,
    }


def embedded_list(items: list[dict[str, Any]], url: str) -> dict[str, Any]:
    """The line items as their calculation or transaction shows them when expanded: the first
    ten, as Stripe shows the lists an object holds."""
    return {"object": "list", "data": items[:10], "has_more": len(items) > 10, "url": url}


def page(items: list[dict[str, Any]], params: dict[str, Any], url: str, kind: str):
    """One page of a held list (in its own order), with Stripe's cursor rules."""
    limit = validate.integer(params.get("limit", "10"), "limit")
    if not 1 <= limit <= 100:
        raise malformed("Invalid limit: must be between 1 and 100", "limit")
    after, before = params.get("starting_after"), params.get("ending_before")
    if after and before:
        raise malformed(
            "You may only specify one of these parameters: ending_before, starting_after.",
            "ending_before",
        )
    ids = [item["id"] for item in items]
    if after:
        if after not in ids:
            raise no_such(kind, str(after), "starting_after", 400)
        start = ids.index(after) + 1
        chosen, more = items[start : start + limit], len(items) > start + limit
    elif before:
        if before not in ids:
            raise no_such(kind, str(before), "ending_before", 400)
        end = ids.index(before)
        chosen, more = items[max(0, end - limit) : end], end - limit > 0
    else:
        chosen, more = items[:limit], len(items) > limit
    return {"object": "list", "data": chosen, "has_more": more, "url": url}
