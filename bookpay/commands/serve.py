"""`bookpay serve`: the checkout server."""

from __future__ import annotations

import typer


def serve(ctx: typer.Context) -> None:
    """Serve the bookshop (written with the checkout server, issue 4).

    Example: bookpay serve --port 4242
    """
    raise typer.Exit(1)
