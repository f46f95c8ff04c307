"""`bookpay catalog`: the books, their server-side prices, and the shipping rates."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from bookpay.cli import state
from bookpay.commands.output import JsonOption, emit_json, print_fields, print_table
from bookpay.commands.params import complete_book_ids
from bookpay.money import format_amount

app = typer.Typer(
    help="Show the books for sale, their prices and the shipping rates.", no_args_is_help=True
)


@app.command("list")
def list_books(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List the books for sale, then the shipping rates.

    --json prints {"books": [...], "shipping_rates": [...]}.

    Example: bookpay catalog list --json
    """
    catalog = state(ctx).catalog()
    if as_json:
        emit_json(
            {
                "books": [book.to_dict() for book in catalog],
                "shipping_rates": [rate.to_dict() for rate in catalog.shipping_rates],
            }
        )
        return
    rows = [[book.id, book.title, book.author, book.price] for book in catalog]
    print_table(["ID", "Title", "Author", "Price"], rows, justify_right=["Price"])
    sys.stdout.write("\n")
    rates = [
        [
            rate.id,
            rate.display_name,
            ", ".join("rest of the world" if c == "*" else c for c in rate.countries),
            rate.delivery,
            rate.price,
            format_amount(rate.free_from, rate.currency) if rate.free_from is not None else "-",
        ]
        for rate in catalog.shipping_rates
    ]
    print_table(
        ["Shipping", "Name", "Countries", "Delivery", "Price", "Free from"],
        rates,
        justify_right=["Price", "Free from"],
        wrap_columns=["Countries"],
    )


@app.command("show")
def show_book(
    ctx: typer.Context,
    book_id: Annotated[
        str,
        typer.Argument(metavar="ID", help="The book's id.", autocompletion=complete_book_ids),
    ],
    as_json: JsonOption = False,
) -> None:
    """Show one book.

    Example: bookpay catalog show 1
    """
    book = state(ctx).catalog().get(book_id)
    if as_json:
        emit_json(book.to_dict())
        return
    print_fields(
        [
            ("ID", book.id),
            ("Title", book.title),
            ("Author", book.author),
            ("Price", book.price),
            ("Amount", f"{book.amount} {book.currency}"),
            ("Description", book.description),
        ]
    )
