"""`bookpay orders`: the local orders ledger (being written; see issue 5)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Inspect and export the orders ledger.", no_args_is_help=True)
