"""`bookpay webhook`."""

from __future__ import annotations

import typer

app = typer.Typer(help="Replay, list and sign webhook events.", no_args_is_help=True)
