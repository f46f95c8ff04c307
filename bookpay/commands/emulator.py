"""`bookpay emulator`: run the Stripe test-mode emulator on its own."""

from __future__ import annotations

import typer


def emulator(ctx: typer.Context) -> None:
    """Run the Stripe test-mode emulator.

    Example: bookpay emulator --port 12111
    """
    raise typer.Exit(1)
