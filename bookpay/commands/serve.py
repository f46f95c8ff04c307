"""`bookpay serve`: the checkout server."""

from __future__ import annotations

import enum
import logging
import sys
from typing import Annotated

import typer

from bookpay.cli import state
from bookpay.commands.paging import not_blank


class LogFormat(str, enum.Enum):
    text = "text"
    json = "json"


def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help="Address to listen on.", callback=not_blank)
    ] = "127.0.0.1",
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
            max=1024,
        ),
    ] = 48,
    connection_limit: Annotated[
        int,
        typer.Option(
            help="Open connections (idle keep-alive ones included) before new clients wait.",
            min=1,
            max=100_000,
        ),
    ] = 1000,
    idle_timeout: Annotated[
        int, typer.Option(help="Seconds before an idle connection is closed.", min=1, max=3600)
    ] = 30,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            "-q",
            help="No line per request or webhook; the start, warnings and errors still show.",
        ),
    ] = False,
    worker: Annotated[
        bool,
        typer.Option(
            "--worker/--no-worker",
            help="Send receipts, report tax records and cancel paid carts' other payments in "
            "this process (the default), or leave them in the ledger for `bookpay worker` "
            "running beside it (a cart this process settles still has its other payments "
            "canceled here at once).",
        ),
    ] = True,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            "--log-format",
            help="text: lines for a person, coloured at a terminal (NO_COLOR is honoured); "
            "json: one JSON object a line, for log shippers.",
        ),
    ] = LogFormat.text,
) -> None:
    """Serve the bookshop: catalog, Elements checkout, success page and /webhook.

    Without STRIPE_SECRET_KEY it runs in local test mode, starting bookpay's Stripe emulator
    (or using one already running) so that no Stripe account or network is needed.

    While it runs it shows one line per request (method, path, status, milliseconds) and one
    per webhook received (type, event id, PaymentIntent, what came of it) on stdout; warnings
    and errors on stderr.

    Example: bookpay serve --port 4242 --threads 48 --connection-limit 1000
    """
    settings = state(ctx).settings  # checked by the launcher, before anything starts
    from bookpay.web.launch import serve as run
    from bookpay.web.runner import Capacity

    handlers = _configure_logging(settings.debug, log_format.value, quiet)
    if log_format is LogFormat.json:

        def say(line: str) -> None:
            logging.getLogger(ACCESS).info("%s", line, extra={"kind": "message"})

    else:
        say = handlers[1].say  # the banner as it is (its test card numbers), on stdout

    try:
        run(
            settings,
            host=host,
            port=port,
            emulator_port=emulator_port,
            open_browser=open_browser,
            capacity=Capacity(threads, connection_limit, idle_timeout),
            say=say,
            log_requests=not quiet,
            workers=worker,
        )
    finally:
        _remove_handler(handlers)


# psycopg's and its pool's ("psycopg.pool": "rolling back returned connection", "error resetting
# connection", ...) would otherwise reach stderr through logging's last resort: bare, with no
# time, and once per connection under load.
LOGGERS = ("bookpay", "waitress", "psycopg")
HANDLER_NAME = "bookpay-serve"
ACCESS = "bookpay.access"  # bookpay.web.logs.ACCESS, named here so --help stays light
STDOUT_GONE = (
    "stdout is closed (its reader went away): the shop keeps serving, without its request and "
    "webhook lines"
)


def _configure_logging(
    debug: bool, log_format: str = "text", quiet: bool = False
) -> list[logging.Handler]:
    """Requests and webhooks on stdout; bookpay's warnings (a failed fulfilment), waitress's and
    psycopg's (a PostgreSQL ledger's pool), when they matter, on stderr; in text for a person or
    JSON for a log shipper.

    Named handlers on the streams of this run: serve runs more than once in one process (tests
    invoke it in-process), and an earlier run's handler would write to a closed stream. Repeated
    warnings are rate-limited (under load waitress warns once per queued request); request and
    webhook lines never are, and --quiet drops them.
    """
    from bookpay.web.logs import ConsoleHandler, JsonFormatter, RepeatFilter, TextFormatter

    def formatter(stream) -> logging.Formatter:
        if log_format == "json":
            return JsonFormatter()
        return TextFormatter(color=_colour(stream))

    errors = ConsoleHandler(sys.stderr)
    errors.set_name(HANDLER_NAME)
    errors.addFilter(RepeatFilter())
    errors.setFormatter(formatter(sys.stderr))
    # A reader of stdout that goes away (`bookpay serve | head -1`) leaves the shop serving.
    access = ConsoleHandler(sys.stdout, gone_warning=STDOUT_GONE)
    access.set_name(HANDLER_NAME)
    access.setFormatter(formatter(sys.stdout))
    targets = [(name, errors) for name in LOGGERS] + [(ACCESS, access)]
    for name, handler in targets:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if h.get_name() == HANDLER_NAME]:
            logger.removeHandler(old)
        logger.addHandler(handler)
    access_logger = logging.getLogger(ACCESS)
    access_logger.propagate = False  # never on stderr as well
    access_logger.setLevel(logging.INFO)
    # --quiet keeps the start-up lines (said through the access logger in JSON) and drops the
    # request and webhook lines.
    access.addFilter(lambda record: not quiet or getattr(record, "kind", None) == "message")
    logging.getLogger("bookpay").setLevel(logging.DEBUG if debug else logging.INFO)
    logging.getLogger("waitress").setLevel(logging.INFO if debug else logging.WARNING)
    # Warnings only, even with --debug: the pool says INFO for every connection it lends.
    logging.getLogger("psycopg").setLevel(logging.WARNING)
    return [errors, access]


def _colour(stream) -> bool:
    """Colours only for a terminal, and never when NO_COLOR is set (no-color.org)."""
    import os

    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and not os.environ.get("NO_COLOR")


def _remove_handler(handlers) -> None:
    if isinstance(handlers, logging.Handler):
        handlers = [handlers]
    for name in (*LOGGERS, ACCESS):
        for handler in handlers:
            logging.getLogger(name).removeHandler(handler)


app = typer.Typer(add_completion=False)
app.command("serve", short_help="Serve the bookshop (checkout, webhooks).")(serve)
