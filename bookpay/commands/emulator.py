"""`bookpay emulator`: run the Stripe test-mode emulator on its own."""

from __future__ import annotations

import threading
from typing import Annotated

import typer

from bookpay.cli import state
from bookpay.commands.output import info


def emulator(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")
    ] = 12111,
    ephemeral: Annotated[
        bool, typer.Option("--ephemeral", help="Keep state in memory, not in BOOKPAY_DATA_DIR.")
    ] = False,
    latency: Annotated[
        float,
        typer.Option(
            "--latency", min=0, help="Milliseconds added to every API call (to test timeouts)."
        ),
    ] = 0.0,
) -> None:
    """Run the Stripe test-mode emulator (Stripe's v1 API, webhooks, offline Stripe.js).

    Example: bookpay emulator --port 12111 --ephemeral
    """
    from bookpay.emulator import EMULATOR_DB, EmulatorOptions, start_emulator
    from bookpay.errors import UsageError

    settings = state(ctx).settings
    db_path = None if ephemeral else settings.data_dir / EMULATOR_DB
    options = EmulatorOptions(db_path=db_path, latency=latency / 1000)
    try:
        running = start_emulator(host, port, options)
    except OSError as exc:
        raise UsageError(
            f"{(exc.strerror or str(exc)).capitalize()}.", hint="Choose another with --port."
        ) from exc
    info(f"Stripe test-mode emulator listening on {running.url}")
    info(f"State: {db_path if db_path else 'in memory (--ephemeral)'}")
    if running.url != settings.emulator_url:
        info(f"Point bookpay at it with: export BOOKPAY_EMULATOR_URL={running.url}")
    else:
        info("bookpay commands use it as they are (BOOKPAY_EMULATOR_URL points here).")
    info("Any sk_test_... key works. Press Ctrl-C to stop.")
    from bookpay.web.launch import _stop_on_sigterm

    try:
        _stop_on_sigterm()  # `kill` stops it as cleanly as Ctrl-C, and says so
        threading.Event().wait()
    except KeyboardInterrupt:
        info("Stopping.")
    finally:
        running.stop()


app = typer.Typer(add_completion=False)
app.command("emulator", short_help="Run the Stripe test-mode emulator.")(emulator)
