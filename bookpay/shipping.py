"""Shipping rates: what delivery costs, where it goes and how long it takes.

A rate names the countries it serves by ISO 3166-1 code ("US"), or ``"*"``: every country that no
other rate in the same currency names (the rest of the world). Amounts are in the currency's
minor unit, as book prices are; a rate with ``free_from`` costs nothing for an order whose
subtotal reaches that amount. The catalog holds the rates (``Catalog.shipping_rates``); this
module says which of them an order may use, and what each costs it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bookpay.money import CURRENCIES, amount_problem, format_amount

REST_OF_WORLD = "*"


@dataclass(frozen=True)
class ShippingRate:
    id: str
    display_name: str
    amount: int  # in the currency's minor unit
    currency: str  # lower-case ISO code, as Stripe writes it
    countries: tuple[str, ...]  # upper-case ISO 3166-1 codes, or REST_OF_WORLD
    min_days: int  # the delivery estimate, in business days
    max_days: int
    free_from: int | None = None  # a subtotal of at least this ships free

    @property
    def price(self) -> str:
        return format_amount(self.amount, self.currency)

    @property
    def delivery(self) -> str:
        """The estimate in words: "3-5 business days", "1 business day"."""
        if self.min_days == self.max_days:
            return f"{self.max_days} business day{'' if self.max_days == 1 else 's'}"
        return f"{self.min_days}-{self.max_days} business days"

    def cost(self, subtotal: int) -> int:
        """What an order of ``subtotal`` pays for this rate."""
        return 0 if self.free_from is not None and subtotal >= self.free_from else self.amount

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "display_name": self.display_name,
            "amount": self.amount,
            "currency": self.currency,
            "countries": list(self.countries),
            "min_days": self.min_days,
            "max_days": self.max_days,
            "free_from": self.free_from,
        }


@dataclass(frozen=True)
class ShippingOption:
    """A rate as one order may use it: ``amount`` is what that order pays."""

    rate: ShippingRate
    amount: int

    @property
    def free(self) -> bool:
        """Free because the order reached the rate's ``free_from``."""
        return self.amount == 0 and self.rate.amount > 0

    def to_dict(self) -> dict:
        return {
            "id": self.rate.id,
            "display_name": self.rate.display_name,
            "amount": self.amount,
            "currency": self.rate.currency,
            "list_amount": self.rate.amount,
            "free": self.free,
            "min_days": self.rate.min_days,
            "max_days": self.rate.max_days,
        }


DEFAULT_SHIPPING_RATES = (
    ShippingRate("standard", "Standard shipping", 500, "usd", ("US",), 3, 5, free_from=5000),
    ShippingRate("express", "Express shipping", 1500, "usd", ("US",), 1, 2),
    ShippingRate("international", "International shipping", 2500, "usd", (REST_OF_WORLD,), 5, 10),
)


def options_for(
    rates: Iterable[ShippingRate], country: str | None, subtotal: int, currency: str
) -> list[ShippingOption]:
    """The rates in ``currency`` that ship to ``country``, each with what an order of
    ``subtotal`` pays for it: cheapest first, then fastest, then in the catalog's order."""
    code = (country or "").strip().upper()
    if not code:
        return []
    same = [rate for rate in rates if rate.currency == currency.lower()]
    named = {c for rate in same for c in rate.countries if c != REST_OF_WORLD}
    serving = [
        rate
        for rate in same
        if code in rate.countries or (REST_OF_WORLD in rate.countries and code not in named)
    ]
    options = [ShippingOption(rate, rate.cost(subtotal)) for rate in serving]
    return sorted(options, key=lambda option: (option.amount, option.rate.max_days))


# --- validation of a catalog file's rates -------------------------------------------------

_REQUIRED = ("id", "display_name", "amount", "currency", "countries", "min_days", "max_days")
_KNOWN = (*_REQUIRED, "free_from")


def record_id(record: dict) -> str | None:
    """A catalog record's id as it will be kept (stripped), or None when it has no usable one."""
    value = record.get("id")
    return value.strip() if isinstance(value, str) and value.strip() else None


def text_problems(
    record: dict, names: Iterable[str], where: str, *, lines=(), optional=()
) -> list[str]:
    """A problem for each of ``names`` in ``record`` that is not a non-empty string a page, an
    SVG cover, a receipt and a terminal can all carry: a control character (but a tab or a
    line break in the fields named in ``lines``), half a surrogate pair (no UTF-8 can encode
    it: every page showing it would fail) or U+FFFE/U+FFFF (not allowed in XML) is refused,
    named by its code point. A field missing is left to the caller; one in ``optional`` may
    be null."""
    problems = []
    for name in names:
        value = record.get(name)
        if name not in record or (value is None and name in optional):
            continue
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{where}: {name!r} must be a non-empty string")
            continue
        allowed = "\t\n\r" if name in lines else ""
        for position, char in enumerate(value, start=1):
            code = ord(char)
            if (
                ((code < 0x20 or 0x7F <= code < 0xA0) and char not in allowed)
                or 0xD800 <= code < 0xE000
                or code in (0xFFFE, 0xFFFF)
            ):
                problems.append(
                    f"{where}: {name!r} holds U+{code:04X} at character {position}, which no "
                    "page, cover or receipt can show: remove it"
                )
                break
    return problems


def validate_records(records: list, what: str, validate) -> tuple[list, list[str]]:
    """Each of a catalog file's records through ``validate(record, where) -> (item or None,
    problems)``, with every problem of every record, and ids kept once: a record with other
    problems still claims its id, so a later one with the same id is reported too.
    ``what`` names a record in the problems (``"catalog.json: book"``)."""
    problems: list[str] = []
    items: list = []
    seen: set[str] = set()
    for index, record in enumerate(records, start=1):
        where = f"{what} #{index}"
        if not isinstance(record, dict):
            problems.append(f"{where}: expected a table of fields, got {type(record).__name__}")
            continue
        item, found = validate(record, where)
        problems.extend(found)
        kept_id = record_id(record)
        if kept_id is not None:
            if kept_id in seen:
                problems.append(f"{where}: duplicate id {kept_id!r}")
                continue
            seen.add(kept_id)
        if item is not None:
            items.append(item)
    return items, problems


def validate_rates(
    records: object, source: str, currencies: set[str]
) -> tuple[list[ShippingRate] | None, list[str]]:
    """The rates in a catalog file's ``shipping_rates``, or every problem with them.

    ``currencies`` are the books' currencies: a rate in another one could never be used.
    """
    if not isinstance(records, list) or not records:
        return None, [f"{source}: 'shipping_rates' must be a non-empty list of shipping rates"]
    rates, problems = validate_records(
        records,
        f"{source}: shipping rate",
        lambda record, where: _validate(record, where, currencies),
    )
    return (None if problems else rates), problems


def _integer(record: dict, name: str, where: str, minimum: int) -> list[str]:
    value = record.get(name)
    if name not in record or value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, int):
        unit = " in the currency's minor unit (500 for $5.00)" if "amount" in name else ""
        unit = " in the currency's minor unit (5000 for $50.00)" if name == "free_from" else unit
        return [f"{where}: {name!r} must be an integer{unit}, got {value!r}"]
    if value < minimum:
        least = "positive" if minimum == 1 else "negative"
        return [f"{where}: {name!r} must {'be' if minimum else 'not be'} {least}, got {value}"]
    return []


def _validate(record: dict, where: str, currencies: set[str]) -> tuple[ShippingRate | None, list]:
    from bookpay.address import is_country_code  # reads the country list: only for a file

    problems = [f"{where}: missing field {name!r}" for name in _REQUIRED if name not in record]
    problems += [f"{where}: unknown field {name!r}" for name in record if name not in _KNOWN]
    problems += text_problems(record, ("id", "display_name"), where)
    problems += _integer(record, "amount", where, 0)
    problems += _integer(record, "min_days", where, 0)
    problems += _integer(record, "max_days", where, 0)
    problems += _integer(record, "free_from", where, 1)
    low, high = record.get("min_days"), record.get("max_days")
    days = [d for d in (low, high) if isinstance(d, int) and not isinstance(d, bool)]
    if len(days) == 2 and low > high:
        problems.append(f"{where}: 'min_days' ({low}) is more than 'max_days' ({high})")
    currency = record.get("currency")
    if "currency" in record:
        if not isinstance(currency, str) or currency.lower() not in CURRENCIES:
            problems.append(f"{where}: unknown currency code {currency!r}")
        elif currencies and currency.lower() not in currencies:
            sold = ", ".join(sorted(currencies))
            problems.append(
                f"{where}: currency {currency.lower()!r} is not the currency of any book ({sold})"
            )
        elif problem := amount_problem(record.get("amount"), currency):
            problems.append(f"{where}: 'amount' {record['amount']} {problem}")
    countries = record.get("countries")
    codes: list[str] = []
    if "countries" in record:
        if not isinstance(countries, list) or not countries:
            problems.append(
                f"{where}: 'countries' must be a non-empty list of country codes, such as"
                ' ["US", "CA"], or ["*"] for the rest of the world'
            )
        else:
            for code in countries:
                upper = code.strip().upper() if isinstance(code, str) else code
                if upper != REST_OF_WORLD and not is_country_code(upper):
                    problems.append(
                        f"{where}: unknown country code {code!r} in 'countries' (ISO 3166-1 "
                        'codes such as "US", or "*" for the rest of the world)'
                    )
                elif upper not in codes:
                    codes.append(upper)
    if problems:
        return None, problems
    rate = ShippingRate(
        id=record["id"].strip(),
        display_name=record["display_name"].strip(),
        amount=record["amount"],
        currency=currency.lower(),
        countries=tuple(codes),
        min_days=low,
        max_days=high,
        free_from=record.get("free_from"),
    )
    return rate, []
