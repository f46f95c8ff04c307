"""`bookpay refund`."""

from __future__ import annotations

import typer

app = typer.Typer(help="Refund payments.", no_args_is_help=True)
