"""An order's lines, wherever they are shown: the success page, the receipt, the CLI, exports.

The ledger holds each order's lines (recorded with its quote). Two kinds of payment have none
there, and get them from what the PaymentIntent says instead:

- a PaymentIntent made by an earlier bookpay: one copy of ``metadata.item_id``, at the amount;
- one made where this ledger did not see it (`bookpay intent create` against another data
  folder): its ``metadata.lines`` summary, priced from the catalog (when the catalog's currency
  is the intent's).

A line a migration made from an earlier order has no title: the catalog's is shown while it
still sells the book.
"""

from __future__ import annotations

from collections.abc import Iterable

from bookpay.quote import Quote, QuoteLine, parse_line_summary


def titled(lines: list[dict], catalog) -> list[dict]:
    """``lines`` (ledger rows) with every title filled in, from the catalog where missing."""
    shown = []
    for line in lines:
        title = line.get("title")
        if not title:
            item = line["item_id"]
            title = catalog.get(item).title if item in catalog else f"Book {item}"
        shown.append({**line, "title": title})
    return shown


def rows_of(lines: Iterable[QuoteLine]) -> list[dict]:
    """Quote lines as the ledger's rows (what templates and the CLI show)."""
    return [
        {
            "position": position,
            "item_id": line.item_id,
            "title": line.title,
            "quantity": line.quantity,
            "unit_amount": line.unit_amount,
            "line_amount": line.line_amount,
        }
        for position, line in enumerate(lines)
    ]


def quote_from_metadata(intent: dict, catalog) -> Quote | None:
    """What a PaymentIntent's metadata says it pays for, priced from the catalog now, or None
    when it cannot be known (a cut summary, a book no longer sold, mixed currencies)."""
    metadata = intent.get("metadata") or {}
    pairs = parse_line_summary(metadata.get("lines"))
    if pairs is None and metadata.get("item_id"):
        pairs = [(metadata["item_id"], 1)]  # an earlier version's: one copy of one book
    if not pairs or any(item not in catalog for item, _ in pairs):
        return None
    books = [(catalog.get(item), quantity) for item, quantity in pairs]
    currencies = {book.currency for book, _ in books}
    if len(currencies) != 1:
        return None
    lines = tuple(QuoteLine(book.id, book.title, qty, book.amount) for book, qty in books)
    return Quote(lines, currencies.pop())


def order_of_intent(intent: dict, ledger) -> tuple[str | None, str | None]:
    """(order id, another PaymentIntent): the id of the PaymentIntent's order in the ledger, else
    the one its metadata names; and the PaymentIntent whose order the metadata's order id is,
    when that is another payment's, else None.

    Two PaymentIntents can name one order id: one of a checkout attempt whose creation lost its
    answer names the order of the one answered to the shopper (its own order, if an event
    recorded one, has an id of its own), and a PaymentIntent made by hand may name any order.
    """
    named = (intent.get("metadata") or {}).get("order_id")
    if ledger is None:
        return named, None
    own = ledger.find_order(intent["id"])
    if own is not None and own["id"] == named:
        return named, None
    # An order id is ord_...: a metadata value of pi_... would be read as a PaymentIntent's id.
    other = ledger.find_order(named) if named and not named.startswith("pi_") else None
    if other is not None and other["payment_intent"] == intent["id"]:
        other = None
    return (own["id"] if own is not None else named), (other and other["payment_intent"])


def lines_of_intent(intent: dict, ledger, catalog) -> list[dict]:
    """The lines a PaymentIntent pays for: its order's in the ledger, else what its metadata
    says. Never another payment's order's lines, whose id its metadata may name
    (``order_of_intent``)."""
    metadata = intent.get("metadata") or {}
    own = ledger.find_order(intent["id"]) if ledger is not None else None
    if own is not None:
        recorded = ledger.order_lines(own["id"])
        if recorded:
            return titled(recorded, catalog)
    quote = quote_from_metadata(intent, catalog)
    # The catalog's prices are in its own currency: they price no intent in another one.
    if quote is not None and quote.currency == str(intent.get("currency") or "").lower():
        return rows_of(quote.lines)
    item = metadata.get("item_id")
    if item:  # a book no longer sold: its line as the PaymentIntent names it
        amount = intent.get("amount") or 0
        title = metadata.get("book_title") or f"Book {item}"
        return [
            {
                "position": 0,
                "item_id": item,
                "title": title,
                "quantity": 1,
                "unit_amount": amount,
                "line_amount": amount,
            }
        ]
    return []


def summary(lines: list[dict]) -> str:
    """``2 x 1, 1 x 3``: quantities and book ids in a few characters (tables)."""
    return ", ".join(f"{line['quantity']} x {line['item_id']}" for line in lines)


def named_quote(quote: dict | None, catalog) -> dict | None:
    """A recorded quote with ``shipping_rate_name``: its rate's display name from the catalog
    (the id, for a rate the catalog no longer has)."""
    if quote is None:
        return None
    rate = quote.get("shipping_rate")
    known = {r.id: r.display_name for r in catalog.shipping_rates} if rate else {}
    return {**quote, "shipping_rate_name": known.get(rate, rate)}
