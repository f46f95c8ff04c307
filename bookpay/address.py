"""How a Stripe shipping address (``{name, address: {line1, ..., country}}``) is written out.

One shape for every place that shows one: the success page, the receipt and the CLI. Stripe
stores the country as an ISO 3166-1 code ("FR"); people read its name ("France").
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

# ISO 3166-1 short names (the common name where there is one: "South Korea", "Vietnam"), from
# Debian's iso-codes; the offline Stripe.js offers the same names in its country list.
COUNTRIES_FILE = Path(__file__).parent / "assets" / "countries.json"


@cache
def _countries() -> dict[str, str]:
    return json.loads(COUNTRIES_FILE.read_text(encoding="utf-8"))


def is_country_code(code: object) -> bool:
    """Whether ``code`` is an ISO 3166-1 alpha-2 code ("FR"), upper case, as Stripe writes them."""
    return isinstance(code, str) and code in _countries()


def country_name(code: str | None) -> str:
    """A country code's name ("France" for "FR"); a code it does not know comes back as it was."""
    if not code:
        return ""
    return _countries().get(str(code).upper(), str(code))


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
        country_name(address.get("country")),
    )
    return [str(part) for part in parts if part]


def one_line(shipping: dict | None) -> str:
    """The address on one line, for tables; "-" when there is none."""
    return ", ".join(address_lines(shipping)) or "-"
