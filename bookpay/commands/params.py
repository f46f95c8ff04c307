"""Arguments shared by several commands: ids checked before any request, and shell completion.

An id that cannot be one (``''``, ``xyz``, a client secret) is a usage error (exit 2) that says
what is expected, before anything is sent to Stripe. Completion values are computed only when
the shell asks for them (``_BOOKPAY_COMPLETE`` set), so they cost nothing at start-up.
"""

from __future__ import annotations

import re
from typing import Annotated

import typer

from bookpay.ids import INTENT_ID, ORDER_ID


def _expected(what: str, value: str) -> typer.BadParameter:
    if "_secret_" in value:
        return typer.BadParameter(
            f"expected {what}, got a client secret; pass the part before _secret_."
        )
    return typer.BadParameter(f"expected {what}, got {value!r}.")


def check_intent_id(ctx: typer.Context, value: str | None) -> str | None:
    if value is None or ctx.resilient_parsing or re.fullmatch(INTENT_ID, value):
        return value
    raise _expected("a PaymentIntent id (pi_...)", value)


def check_order_or_intent_id(ctx: typer.Context, value: str | None) -> str | None:
    if value is None or ctx.resilient_parsing:
        return value
    if re.fullmatch(ORDER_ID, value) or re.fullmatch(INTENT_ID, value):
        return value
    raise _expected("an order id (ord_...) or a PaymentIntent id (pi_...)", value)


def check_amount(gateway, intent_id: str, amount: int | None) -> None:
    """Refuse ``--amount`` before Stripe is asked when Stripe could never take it in the
    PaymentIntent's currency: in a three-decimal one (KWD, ...) an amount not ending in 0, in
    ISK or UGX one not ending in 00 (`bookpay.money.amount_problem`)."""
    if amount is None:
        return
    from bookpay.errors import UsageError
    from bookpay.money import amount_problem

    currency = gateway.retrieve_intent(intent_id, expand=())["currency"]
    problem = amount_problem(amount, currency)
    if problem:
        raise UsageError(f"--amount {amount} {problem}.")


# Completion -------------------------------------------------------------------------------------


def complete_book_ids(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """The catalog's book ids (the --catalog file's, or the built-in one), with their titles."""
    from bookpay import environment
    from bookpay.catalog import Catalog
    from bookpay.errors import BookpayError

    given = ctx.find_root().params.get("catalog")
    try:
        catalog = Catalog.load(environment.catalog_path(environment.read()[0], given))
    except BookpayError:
        return []
    return [(book.id, book.title) for book in catalog if book.id.startswith(incomplete)]


def complete_order_statuses(incomplete: str) -> list[str]:
    from bookpay.orders import STATUSES

    return [status for status in STATUSES if status.startswith(incomplete)]


def complete_fixtures(incomplete: str) -> list[tuple[str, str]]:
    """The bundled event fixtures by name (files and folders complete as well, see webhook)."""
    from bookpay.replay import list_fixtures

    return [
        (fixture["name"], fixture["description"] or fixture["type"])
        for fixture in list_fixtures()
        if fixture["name"].startswith(incomplete)
    ]


IntentArg = Annotated[
    str,
    typer.Argument(metavar="PI", help="A PaymentIntent id (pi_...).", callback=check_intent_id),
]


def _read_item(value: str, catalog) -> tuple[str, int]:
    """``ID`` or ``ID:QTY`` -> (book id, quantity). A book id may hold a colon itself: a value
    that is a book's id whole is that book, once (``isbn:0451450523``), unless it also reads as
    ID:QTY of another book (``vol:2`` with books ``vol`` and ``vol:2``), which is refused."""
    head, colon, tail = value.rpartition(":")
    # ASCII digits: int() would also read '٣' (an Arabic-Indic three) as 3.
    counted = bool(colon) and bool(re.fullmatch(r"[0-9]{1,2}", tail)) and 1 <= int(tail) <= 10
    if value in catalog:
        if counted and head in catalog:
            raise typer.BadParameter(
                f"{value!r} is the book {value!r} or {int(tail)} copies of the book {head!r}: "
                f"write {value}:1 for one copy of {value!r}, or give --item {head} "
                f"{int(tail)} times."
            )
        return value, 1
    if not colon:
        head, tail, counted = value, "1", True
    if not head or not counted:
        raise typer.BadParameter(
            f"expected ID or ID:QTY with a quantity from 1 to 10, got {value!r}."
        )
    return head, int(tail)


def check_items(ctx: typer.Context, values: list[str] | None) -> list[str] | None:
    """``ID`` or ``ID:QTY`` each, read against the catalog (``_read_item``); an id that names
    no book is the catalog's to refuse."""
    if not values or ctx.resilient_parsing:
        return values
    from bookpay.cli import state

    catalog = state(ctx).catalog()
    for value in values:
        _read_item(value, catalog)
    return values


def check_request_id(ctx: typer.Context, value: str | None) -> str | None:
    """A refund request id: some printable text, at most 200 characters (it is kept in the
    refund's metadata and makes its idempotency key). A blank one (an empty shell variable)
    would otherwise mean "a new refund" on every run."""
    if value is None or ctx.resilient_parsing:
        return value
    if not value.strip() or len(value) > 200 or not value.isprintable():
        raise typer.BadParameter(
            f"expected a request id of 1 to 200 printable characters, got {value!r}."
        )
    return value


def seconds_from(low: float, high: float):
    """A callback for an option of seconds from ``low`` to ``high``: nan and the infinities are
    said to be no number of seconds (Typer's own range check called nan "more than 3600")."""
    import math

    def check(value: float | None) -> float | None:
        if value is None or (math.isfinite(value) and low <= value <= high):
            return value
        raise typer.BadParameter(
            f"must be a number of seconds from {low:g} to {high:g}, got {value:g}."
        )

    return check


# More digits than any amount Stripe takes (at most 12 in the most generous currency), and than
# int() reads safely: the rest is Stripe's to refuse.
AMOUNT_DIGITS = 18


def parse_amount(value: str) -> int:
    """An amount in the currency's minor unit (cents, yen, fils), 1 or more, in the digits 0-9.

    Typer's own int would read ``1_000`` as 1000, `` 100`` as 100 and ``+5`` as 5: a sum of
    money is taken only as it is plainly written, or refused before anything is sent to Stripe.
    """
    if not re.fullmatch(rf"[0-9]{{1,{AMOUNT_DIGITS}}}", value) or int(value) < 1:
        shown = value if len(value) <= 40 else f"{value[:40]}... ({len(value):,} characters)"
        raise typer.BadParameter(
            "expected a whole number in the currency's minor unit (500 for $5.00 or ¥500) "
            f"from 1, in the digits 0-9 and at most {AMOUNT_DIGITS} of them, got {shown!r}."
        )
    return int(value)


def check_email(ctx: typer.Context, value: str | None) -> str | None:
    """One e-mail address for a receipt: something@somewhere, no space or control character
    in it. A blank one (an empty shell variable) would otherwise mean "no receipt"."""
    if value is None or ctx.resilient_parsing:
        return value
    if len(value) > 512 or not value.isprintable() or not re.fullmatch(r"[^@\s]+@[^@\s]+", value):
        shown = value if len(value) <= 80 else f"{value[:80]}... ({len(value):,} characters)"
        raise typer.BadParameter(f"expected one e-mail address (name@example.com), got {shown!r}.")
    return value


def parse_items(values: list[str], catalog) -> list[tuple[str, int]]:
    """``["1:2", "3"]`` -> ``[("1", 2), ("3", 1)]`` (checked by ``check_items``)."""
    return [_read_item(value, catalog) for value in values]


BookOption = Annotated[
    list[str],
    typer.Option(
        "--item",
        metavar="ID[:QTY]",
        help="A book's id (see `bookpay catalog list`), with :QTY for several copies (1 to 10)."
        " An id holding a colon is read whole (isbn:0451450523; :QTY after it for copies)."
        " Repeat it for several books.",
        autocompletion=complete_book_ids,
        callback=check_items,
    ),
]
