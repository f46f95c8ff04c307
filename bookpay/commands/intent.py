"""`bookpay intent`."""

from __future__ import annotations

import typer

app = typer.Typer(help="Create, inspect, confirm and cancel PaymentIntents.", no_args_is_help=True)
