"""The quote: what a PaymentIntent holds, priced on the server at the moment it is created or
updated.

    lines (book, title, quantity, unit amount) + shipping + tax = total

Prices always come from the catalog, never from a browser or from an earlier quote. Shipping
and tax are zero until the shopper's address is known; then ``bookpay.pricing`` adds them (the
rate chosen and its cost, Stripe Tax's calculation and its tax) and the quote remembers the
address they were priced for. A quote is in one currency: books priced in another are refused
with a message that says so. Its total must be one Stripe can charge (``check_chargeable``):
the shop refuses one below Stripe's minimum for the currency, or above its eight digits, before
Stripe is asked.

The quote also says what a person in Stripe's Dashboard sees of the order: a description and a
few metadata keys (order, cart, number of items, a compact line summary), within Stripe's
limits of 50 keys and 500 characters a value.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from bookpay.address import ShippingAddress
from bookpay.errors import UsageError
from bookpay.money import MAX_AMOUNT, charge_problem, format_amount

# Stripe's metadata limits: 50 keys, keys of up to 40 characters, values of up to 500.
METADATA_VALUE_LIMIT = 500
DESCRIPTION_LIMIT = 1000  # Stripe's limit on a PaymentIntent's description
MAX_QUANTITY = 10  # copies of one book in one order
MAX_LINES = 50  # different books in one order


class MixedCurrency(UsageError):
    code = "mixed_currency"


class EmptyQuote(UsageError):
    code = "cart_empty"


class QuantityOutOfRange(UsageError):
    code = "quantity_out_of_range"


class TooManyLines(UsageError):
    code = "cart_full"


class AmountOutOfRange(UsageError):
    """A total Stripe would refuse to charge: below its minimum for the currency, or above its
    eight digits. The code is Stripe's own for the same refusal."""

    code = "amount_too_small"


@dataclass(frozen=True)
class QuoteLine:
    item_id: str
    title: str
    quantity: int
    unit_amount: int  # minor units, from the catalog

    @property
    def line_amount(self) -> int:
        return self.unit_amount * self.quantity

    def to_dict(self) -> dict:
        return {
            "item": self.item_id,
            "title": self.title,
            "quantity": self.quantity,
            "unitAmount": self.unit_amount,
            "lineAmount": self.line_amount,
        }


@dataclass(frozen=True)
class Quote:
    """Lines in one currency, plus shipping and tax (zero until an address prices them)."""

    lines: tuple[QuoteLine, ...]
    currency: str
    shipping: int = 0
    tax: int = 0
    shipping_rate: str | None = None
    tax_calculation: str | None = None  # Stripe Tax's calculation of ``tax`` (taxcalc_...)
    address: ShippingAddress | None = None  # where shipping and tax were priced for

    @property
    def priced(self) -> bool:
        """Whether shipping (and tax, when on) are priced for an address."""
        return self.address is not None

    @property
    def subtotal(self) -> int:
        return sum(line.line_amount for line in self.lines)

    @property
    def total(self) -> int:
        return self.subtotal + self.shipping + self.tax

    @property
    def item_count(self) -> int:
        """Copies in all (two of one book and one of another: 3)."""
        return sum(line.quantity for line in self.lines)

    @property
    def fingerprint(self) -> str:
        """Equal for equal quotes: what a page shows is what the PaymentIntent holds."""
        data = [
            [(line.item_id, line.quantity, line.unit_amount) for line in self.lines],
            self.currency,
            self.shipping,
            self.tax,
            self.shipping_rate,
            self.tax_calculation,
        ]
        return hashlib.sha256(json.dumps(data).encode()).hexdigest()[:16]

    def amounts(self) -> dict:
        """Minor units, as the checkout's JSON answers carry them."""
        return {
            "subtotal": self.subtotal,
            "shipping": self.shipping,
            "tax": self.tax,
            "total": self.total,
            "currency": self.currency,
        }

    def to_dict(self) -> dict:
        return {
            "lines": [line.to_dict() for line in self.lines],
            **self.amounts(),
            "itemCount": self.item_count,
            "quoteId": self.fingerprint,
        }

    def formatted(self, amount: int) -> str:
        return format_amount(amount, self.currency)

    def description(self) -> str:
        """The PaymentIntent's description: what the Dashboard lists for the payment."""
        if len(self.lines) == 1 and self.lines[0].quantity == 1:
            return self.lines[0].title[:DESCRIPTION_LIMIT]
        titles = "; ".join(f"{line.quantity} x {line.title}" for line in self.lines)
        text = f"{self.item_count} books: {titles}"
        return _clip(text, DESCRIPTION_LIMIT)

    def line_summary(self) -> str:
        """``1x2,3x1``: each book id and its quantity, within one metadata value.

        A summary that does not fit ends in ``...+N`` (N more lines); ``parse_line_summary``
        refuses such a summary, so it is never taken for the whole order.
        """
        parts = [f"{line.item_id}x{line.quantity}" for line in self.lines]
        text = ",".join(parts)
        if len(text) <= METADATA_VALUE_LIMIT:
            return text
        kept: list[str] = []
        for index, part in enumerate(parts):
            tail = f",...+{len(parts) - index}"
            if len(",".join([*kept, part])) + len(tail) > METADATA_VALUE_LIMIT:
                return ",".join(kept) + tail
            kept.append(part)
        return ",".join(kept)  # pragma: no cover (the loop always returns)

    def metadata(
        self, *, order_id: str, cart_id: str | None = None, single_item_keys: bool = True
    ) -> dict[str, str]:
        """What a person in the Dashboard needs for reporting, within Stripe's limits.

        A one-book, one-copy quote also carries ``item_id`` and ``book_title``, as every
        PaymentIntent of earlier versions did; for others those keys are unset ("").
        """
        data = {
            "order_id": order_id,
            "item_count": str(self.item_count),
            "lines": self.line_summary(),
            "cart_id": cart_id or "",
            # Stripe's documented key for the calculation a PaymentIntent's amount comes from.
            "tax_calculation": self.tax_calculation or "",
        }
        single = len(self.lines) == 1 and self.lines[0].quantity == 1
        if single_item_keys:
            data["item_id"] = self.lines[0].item_id if single else ""
            data["book_title"] = self.lines[0].title[:METADATA_VALUE_LIMIT] if single else ""
        return {key: value[:METADATA_VALUE_LIMIT] for key, value in data.items()}


def new_order_id() -> str:
    """An order id for a payment made outside a checkout attempt (the CLI)."""
    return "ord_" + secrets.token_hex(8)


def order_id_for(attempt_id: str, shop_id: str | None) -> str:
    """The order id of a checkout attempt: the same attempt always names the same order, so a
    repeated creation (the same idempotency key) sends the same metadata."""
    digest = hashlib.sha256(f"order\x1f{shop_id or ''}\x1f{attempt_id}".encode()).hexdigest()
    return "ord_" + digest[:16]


def quote_items(
    catalog, items: Iterable[tuple[str, int]], *, currency_hint: str | None = None
) -> Quote:
    """A quote for ``(book id, quantity)`` pairs, priced from ``catalog`` now.

    The same book twice is one line with the quantities added. Unknown books raise NotFound (the
    catalog's); quantities outside 1..MAX_QUANTITY, more than MAX_LINES books, and books in
    another currency than the first one are refused with a message that says so.
    """
    quantities: dict[str, int] = {}
    for item_id, quantity in items:
        check_quantity(quantity)
        quantities[item_id] = quantities.get(item_id, 0) + quantity
    if not quantities:
        raise EmptyQuote("Your cart is empty: add a book first.")
    if len(quantities) > MAX_LINES:
        raise TooManyLines(f"An order can hold at most {MAX_LINES} different books.")
    lines = []
    currency = currency_hint
    for item_id, quantity in quantities.items():
        check_quantity(quantity)
        book = catalog.get(item_id)
        currency = currency or book.currency
        if book.currency != currency:
            raise mixed_currency(currency, book)
        lines.append(QuoteLine(book.id, book.title, quantity, book.amount))
    return Quote(tuple(lines), currency)


def check_chargeable(quote: Quote, *, minimum: bool = True) -> Quote:
    """``quote``, or AmountOutOfRange when Stripe could not charge its total in one payment.

    ``minimum=False`` checks only the maximum: for lines whose shipping and tax are still to be
    added (they can only raise the total), before Stripe Tax is asked about them.
    """
    total = quote.total
    if not minimum and total <= MAX_AMOUNT:
        return quote
    problem = charge_problem(total, quote.currency)
    if problem is None:
        return quote
    if total > MAX_AMOUNT:
        raise AmountOutOfRange(
            f"Your order's total, {quote.formatted(total)}, {problem}: remove some books, "
            "and pay for them in another order.",
            code="amount_too_large",
        )
    raise AmountOutOfRange(
        f"Your order's total, {quote.formatted(total)}, {problem}: add a book to reach it."
    )


def check_quantity(quantity: object, *, allow_zero: bool = False) -> int:
    low = 0 if allow_zero else 1
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise QuantityOutOfRange(
            f"The quantity must be a whole number from {low} to {MAX_QUANTITY}."
        )
    if not low <= quantity <= MAX_QUANTITY:
        raise QuantityOutOfRange(
            f"You can order from 1 to {MAX_QUANTITY} copies of a book"
            + (" (0 removes it)." if allow_zero else ".")
        )
    return quantity


def mixed_currency(currency: str, book) -> MixedCurrency:
    return MixedCurrency(
        f"Your order is in {currency.upper()}, and {book.title!r} is priced in "
        f"{book.currency.upper()}: one order holds one currency. Pay for these books first, "
        "or remove them."
    )


def parse_line_summary(text: str | None) -> list[tuple[str, int]] | None:
    """The ``(book id, quantity)`` pairs of a whole ``line_summary``; None when it is cut short
    or not one (an earlier version's PaymentIntent, or someone else's)."""
    if not text or "..." in text:
        return None
    pairs = []
    for part in text.split(","):
        item_id, sep, count = part.rpartition("x")
        if not sep or not item_id or not count.isdigit():
            return None
        pairs.append((item_id, int(count)))
    return pairs


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
