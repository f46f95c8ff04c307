"""How a Stripe shipping address (``{name, address: {line1, ..., country}}``) is written out,
and how one a browser sends is checked.

One shape for every place that shows one: the success page, the receipt and the CLI. Stripe
stores the country as an ISO 3166-1 code ("FR"); people read its name ("France"). An address the
checkout prices shipping and tax for (``ShippingAddress``) has Stripe's shape, every part plain
text of bounded length.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from bookpay.errors import UsageError

# ISO 3166-1 short names (the common name where there is one: "South Korea", "Vietnam"), from
# Debian's iso-codes; the offline Stripe.js offers the same names in its country list. And the
# three codes outside ISO's assigned ones that Stripe's Address Element offers and Stripe ships
# to: XK Kosovo (user-assigned), AC Ascension Island and TA Tristan da Cunha (reserved).
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


# --- an address a shopper typed, as the checkout prices shipping and tax for it ---------------

ADDRESS_FIELDS = ("line1", "line2", "city", "state", "postal_code", "country")
MAX_FIELD = 200  # characters; Stripe's Address Element fields are far shorter in practice
_CONTROL_CHARS = frozenset(chr(c) for c in (*range(0x20), *range(0x7F, 0xA0)))


def _unencodable(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate (JSON's ``"\\ud800"``): no UTF-8 form, so it
    could be neither sent to Stripe Tax nor stored."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class InvalidAddress(UsageError):
    code = "invalid_address"


@dataclass(frozen=True)
class ShippingAddress:
    """An address in Stripe's shape (``line1, line2, city, state, postal_code, country``), each
    part stripped, the country an upper-case ISO 3166-1 code."""

    country: str
    line1: str = ""
    line2: str = ""
    city: str = ""
    state: str = ""
    postal_code: str = ""

    @classmethod
    def parse(cls, value: object) -> ShippingAddress:
        """The address a browser sent, or InvalidAddress saying what is wrong with its shape."""
        if not isinstance(value, dict):
            raise InvalidAddress(
                "'address' must be an object: {line1, line2, city, state, postal_code, country}."
            )
        unknown = sorted(str(key) for key in value if key not in ADDRESS_FIELDS)
        if unknown:
            raise InvalidAddress(f"'address' has unknown fields: {', '.join(unknown)}.")
        parts: dict[str, str] = {}
        for name in ADDRESS_FIELDS:
            part = value.get(name)
            if part is None:
                part = ""
            if not isinstance(part, str):
                raise InvalidAddress(f"'address.{name}' must be text.")
            if len(part) > MAX_FIELD or _CONTROL_CHARS.intersection(part) or _unencodable(part):
                raise InvalidAddress(
                    f"'address.{name}' must be at most {MAX_FIELD} characters of plain text."
                )
            parts[name] = part.strip()
        country = parts.pop("country").upper()
        if not country:
            raise InvalidAddress("'address.country' is missing: say which country to ship to.")
        if not is_country_code(country):
            raise InvalidAddress("'address.country' must be an ISO 3166-1 code, such as US or FR.")
        return cls(country=country, **parts)

    def to_dict(self) -> dict[str, str | None]:
        """Stripe's shape, with empty parts as null (as Stripe returns them)."""
        return {name: getattr(self, name) or None for name in ADDRESS_FIELDS}

    def same_place(self, address: dict | None) -> bool:
        """Whether ``address`` (Stripe's shape) is this one for tax: same country, state and
        postal code, compared as people type them (case and spaces aside)."""
        if not isinstance(address, dict):
            return False

        def norm(text: object) -> str:
            return "".join(str(text or "").split()).upper()

        return all(
            norm(getattr(self, name)) == norm(address.get(name))
            for name in ("country", "state", "postal_code")
        )
