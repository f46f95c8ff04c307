"""`bookpay emulator`: run the Stripe test-mode emulator on its own."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from enum import Enum
from typing import Annotated

import typer

from bookpay.cli import state
from bookpay.commands.paging import not_blank


class Retries(str, Enum):
    test = "test"
    live = "live"


def emulator(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option("--host", help="Interface to listen on.", callback=not_blank)
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")
    ] = 12111,
    ephemeral: Annotated[
        bool, typer.Option("--ephemeral", help="Keep state in memory, not in BOOKPAY_DATA_DIR.")
    ] = False,
    latency: Annotated[
        str,
        typer.Option(
            "--latency",
            metavar="MS|MIN-MAX",
            help="Milliseconds added to every API call: a number, or a range drawn from per "
            "call (50-400); at most 60000.",
        ),
    ] = "0",
    faults: Annotated[
        str,
        typer.Option(
            "--faults",
            metavar="KIND=PCT%,...",
            help="Faults drawn at random per API call: 500 (after the call has run), 429 (before "
            "it runs), reset (the connection dropped after it has run), timeout (held 30 s, then "
            "dropped; a client waiting longer, as Stripe's Python library does by default, sees a "
            'reset). Example: "500=5%,429=2%,reset=1%,timeout=1%".',
        ),
    ] = "",
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed", help="Seed for the faults and latencies drawn: same seed, same run."
        ),
    ] = None,
    webhook_retries: Annotated[
        Retries,
        typer.Option(
            "--webhook-retries",
            help="Stripe's webhook retry schedule to follow: test mode's (3 retries over a few "
            "hours) or live mode's (up to 3 days).",
        ),
    ] = Retries.test,
) -> None:
    """Run the Stripe test-mode emulator (Stripe's v1 API, webhooks, offline Stripe.js).

    Faults and latency apply to the API only (never to Stripe.js or the control endpoints);
    tests script more at run time through /_emulator/faults and move its clock through
    /_emulator/clock (see the README).

    Example: bookpay emulator --ephemeral --faults "500=5%,429=2%" --seed 7
    """
    from bookpay.emulator import RETRY_SCHEDULES, EmulatorOptions, StateInUse, start_emulator
    from bookpay.emulator.faults import parse_latency, parse_rates
    from bookpay.errors import UsageError
    from bookpay.web.emulator_link import emulator_state

    try:
        low, high = parse_latency(latency)
        parse_rates(faults)
    except ValueError as exc:
        raise UsageError(f"{str(exc)[0].upper()}{str(exc)[1:]}.") from None
    settings = state(ctx).settings
    if not ephemeral:  # its state is kept there: a folder it cannot use is not a port's fault
        from bookpay.config import require_data_dir

        require_data_dir(settings.data_dir)
    db_path = None if ephemeral else emulator_state(settings.data_dir)
    from bookpay.web.launch import stop_on_signals, until_interrupted

    handler = _warnings_handler()
    say = _say_on(handler)
    options = EmulatorOptions(
        db_path=db_path,
        latency=low,
        latency_max=high,
        faults=faults,
        seed=seed,
        retry_schedule=RETRY_SCHEDULES[webhook_retries.value],
    )
    # `kill` (or a closed terminal) stops it as cleanly as Ctrl-C, and says so, from the start.
    with stop_on_signals():
        try:
            running = start_emulator(host, port, options)
        except KeyboardInterrupt:  # Ctrl-C before it was listening
            _remove(handler)
            say("Stopping.")
            return
        except StateInUse as exc:
            _remove(handler)
            raise UsageError(
                f"Cannot start the emulator: its state, {exc.path}, is in use by {exc.holder}.",
                hint="Use that one, or start this one with --ephemeral or another "
                "BOOKPAY_DATA_DIR.",
                code="emulator_state_in_use",
            ) from None
        except OSError as exc:
            _remove(handler)
            raise _cannot_start(exc, host, port) from exc
        try:
            _say_listening(
                say, running, settings, db_path, faults, low, high, seed, webhook_retries
            )
            until_interrupted()
        except KeyboardInterrupt:
            say("Stopping.")
        finally:
            with contextlib.suppress(KeyboardInterrupt):  # again while stopping: it has stopped
                running.stop()
            _remove(handler)


def _cannot_start(exc: OSError, host: str, port: int):
    """A port in use, or the cause in the socket's own words (not "[Errno -2] name or ...")
    with the option to change: --host for a name that does not resolve or is not this machine's.
    """
    import errno
    import socket

    from bookpay.errors import UsageError

    if exc.errno == errno.EADDRINUSE:
        message = f"Cannot start the emulator: {host}:{port} is already in use."
        return UsageError(message, hint="Choose another with --port.")
    cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
    reason = " ".join(str(cause.strerror or cause).split())
    wrong_host = isinstance(cause, socket.gaierror) or cause.errno == errno.EADDRNOTAVAIL
    return UsageError(
        f"Cannot start the emulator on {host}:{port}: {reason}.",
        hint=f"Choose another with {'--host' if wrong_host else '--port'}.",
    )


def _say_listening(
    say, running, settings, db_path, faults: str, low: float, high: float, seed, retries: Retries
) -> None:
    say(f"Stripe test-mode emulator listening on {running.url}")
    say(f"State: {db_path if db_path else 'in memory (--ephemeral)'}")
    if faults or high:
        shown = f"{low * 1000:g}-{high * 1000:g} ms" if high != low else f"{low * 1000:g} ms"
        say(
            f"Faults: {faults or 'none'}; latency: {shown if high else 'none'}"
            + (f"; seed {seed}" if seed is not None else "")
            + " (the API only)."
        )
    if retries is Retries.live:
        say("Webhook retries: live mode's schedule, for up to three days.")
    if running.url != settings.emulator_url:
        say(f"Point bookpay at it with: export BOOKPAY_EMULATOR_URL={running.url}")
    else:
        say("bookpay commands use it as they are (BOOKPAY_EMULATOR_URL points here).")
    say("Any sk_test_... key works. Press Ctrl-C to stop.")


# The loggers whose warnings the emulator's console shows: its own (a full connection limit, a
# failed webhook timer) and waitress's, should an app on it log there.
LOGGERS = ("bookpay", "waitress")


def _warnings_handler() -> logging.Handler:
    """Warnings and errors on stderr, repeated ones held back as `bookpay serve` holds them
    (bookpay.web.logs.RepeatFilter): under a burst the same warning comes once per request.

    The console may go away (`bookpay emulator 2>&1 | head -1`, `2>&-`): as `bookpay serve`'s
    (bookpay.web.logs.ConsoleHandler), its lines are then dropped and the emulator keeps serving.
    """
    from bookpay.web.logs import ConsoleHandler, RepeatFilter, TextFormatter

    handler = ConsoleHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.addFilter(RepeatFilter())
    isatty = getattr(sys.stderr, "isatty", None)
    color = bool(isatty and isatty()) and not os.environ.get("NO_COLOR")
    handler.setFormatter(TextFormatter(color=color))
    for name in LOGGERS:
        logging.getLogger(name).addHandler(handler)
    return handler


def _say_on(handler):
    """The emulator's own lines (its banner, "Stopping."), on the console ``handler`` writes to,
    made printable; nothing once that console has gone."""
    from bookpay.terminal import printable

    def say(line: str) -> None:
        handler.say(printable(line, keep_newlines=True))

    return say


def _remove(handler: logging.Handler) -> None:
    for name in LOGGERS:
        logging.getLogger(name).removeHandler(handler)


app = typer.Typer(add_completion=False)
app.command("emulator", short_help="Run the Stripe test-mode emulator.")(emulator)
