"""How a Stripe shipping address (``{name, address: {line1, ..., country}}``) is written out.

One shape for every place that shows one: the success page, the receipt and the CLI.
"""

from __future__ import annotations


def address_lines(shipping: dict | None) -> list[str]:
    """Name, street lines, "city, state postal code", country; empty parts left out."""
    if not shipping:
        return []
    address = shipping.get("address") or {}
    # "San Francisco, CA 94110": the city, then the state and postal code, as addresses read.
    region = " ".join(str(p) for p in (address.get("state"), address.get("postal_code")) if p)
    city_line = ", ".join(str(p) for p in (address.get("city"), region) if p)
    parts = (
        shipping.get("name"),
        address.get("line1"),
        address.get("line2"),
        city_line,
        address.get("country"),
    )
    return [str(part) for part in parts if part]


def one_line(shipping: dict | None) -> str:
    """The address on one line, for tables; "-" when there is none."""
    return ", ".join(address_lines(shipping)) or "-"
