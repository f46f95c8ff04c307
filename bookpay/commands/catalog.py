"""`bookpay catalog`: the books and their server-side prices."""

from __future__ import annotations

from typing import Annotated

import typer

from bookpay.cli import state
from bookpay.commands.output import JsonOption, emit_json, print_fields, print_table
from bookpay.commands.params import complete_book_ids

app = typer.Typer(help="Show the books for sale and their prices.", no_args_is_help=True)


@app.command("list")
def list_books(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List the books for sale.

    Example: bookpay catalog list --json
    """
    catalog = state(ctx).catalog()
    if as_json:
        emit_json([book.to_dict() for book in catalog])
        return
    rows = [[book.id, book.title, book.author, book.price] for book in catalog]
    print_table(["ID", "Title", "Author", "Price"], rows, justify_right=["Price"])


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
