"""`bookpay serve`: the checkout server."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from bookpay.cli import state


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port for the shop.", min=0, max=65535)] = 4242,
    emulator_port: Annotated[
        int | None,
        typer.Option(
            help="Port of the local Stripe emulator (emulator mode only) "
            "[default: the port in BOOKPAY_EMULATOR_URL, 12111].",
            min=0,
            max=65535,
            show_default=False,
        ),
    ] = None,
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the shop in a web browser.")
    ] = False,
    threads: Annotated[
        int,
        typer.Option(
            help="Requests handled at once. At most two thirds may wait on Stripe at once; "
            "the rest always serve pages, static files, /healthz and webhooks.",
            min=2,
        ),
    ] = 48,
    connection_limit: Annotated[
        int,
        typer.Option(
            help="Open connections (idle keep-alive ones included) before new clients wait.",
            min=1,
        ),
    ] = 1000,
    idle_timeout: Annotated[
        int, typer.Option(help="Seconds before an idle connection is closed.", min=1)
    ] = 30,
) -> None:
    """Serve the bookshop: catalog, Elements checkout, success page and /webhook.

    Without STRIPE_SECRET_KEY it runs in local test mode, starting bookpay's Stripe emulator
    (or using one already running) so that no Stripe account or network is needed.

    Example: bookpay serve --port 4242 --threads 48 --connection-limit 1000
    """
    settings = state(ctx).settings  # checked by the launcher, before anything starts
    from bookpay.web.launch import serve as run
    from bookpay.web.runner import Capacity

    def say(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    handler = _configure_logging(settings.debug)
    try:
        run(
            settings,
            host=host,
            port=port,
            emulator_port=emulator_port,
            open_browser=open_browser,
            capacity=Capacity(threads, connection_limit, idle_timeout),
            say=say,
        )
    finally:
        _remove_handler(handler)


LOGGERS = ("bookpay", "waitress")
HANDLER_NAME = "bookpay-serve"


def _configure_logging(debug: bool) -> logging.Handler:
    """bookpay's own warnings (a failed fulfilment) on stderr; waitress only when it matters.

    One handler, named, on the sys.stderr of this run: serve runs more than once in one process
    (tests invoke it in-process), and an earlier run's handler would write to a closed stream.
    Repeats are rate-limited: under load waitress warns once per queued request.
    """
    from bookpay.web.logs import RepeatFilter

    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.addFilter(RepeatFilter())
    handler.setFormatter(_PrintableFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if h.get_name() == HANDLER_NAME]:
            logger.removeHandler(old)
        logger.addHandler(handler)
    logging.getLogger("bookpay").setLevel(logging.DEBUG if debug else logging.INFO)
    logging.getLogger("waitress").setLevel(logging.INFO if debug else logging.WARNING)
    return handler


class _PrintableFormatter(logging.Formatter):
    """Log lines quote outside text (an e-mail address in a failed receipt, an event id): it
    reaches the terminal with its control characters escaped, as everything bookpay prints."""

    def format(self, record: logging.LogRecord) -> str:
        from bookpay.terminal import printable

        return printable(super().format(record), keep_newlines=True)


def _remove_handler(handler: logging.Handler) -> None:
    for name in LOGGERS:
        logging.getLogger(name).removeHandler(handler)


app = typer.Typer(add_completion=False)
app.command("serve", short_help="Serve the bookshop (checkout, webhooks).")(serve)
