"""`bookpay worker`: send receipts and report tax records, in a process of its own."""

from __future__ import annotations

import threading
from typing import Annotated

import typer

from bookpay.cli import state
from bookpay.commands.output import info


def worker(
    ctx: typer.Context,
    poll: Annotated[
        float,
        typer.Option(
            "--poll",
            metavar="SECONDS",
            min=0.05,
            max=60,
            help="Most seconds between two looks at the ledger (nothing wakes a worker in a "
            "process of its own).",
        ),
    ] = 1.0,
    once: Annotated[
        bool,
        typer.Option("--once", help="Send what is due now, then exit (for cron, or a test)."),
    ] = False,
) -> None:
    """Send the receipts and report the Stripe Tax records that shops queue in the ledger.

    `bookpay serve` does this in a thread of its own unless started with --no-worker; then
    run this beside it (or beside several of them, on one PostgreSQL ledger): the work leaves
    the process that answers shoppers and webhooks. Each receipt is claimed before it is sent,
    so any number of workers and shops on one ledger send each receipt once.

    Example: bookpay serve --no-worker & bookpay worker --poll 0.5
    """
    from bookpay.commands.serve import _configure_logging, _remove_handler
    from bookpay.ledger import open_ledger
    from bookpay.mailer import ReceiptMailer
    from bookpay.taxrecords import TaxRecorder

    st = state(ctx)
    settings = st.settings
    handlers = _configure_logging(settings.debug, "text", quiet=True)
    try:
        with open_ledger(settings) as ledger:
            mailer = ReceiptMailer.from_settings(settings, ledger)
            taxes = TaxRecorder(ledger, st.gateway())
            if once:
                sent, recorded = mailer.send_due(), taxes.record_due()
                info(f"Receipts handled: {sent}; tax records tried: {recorded}.")
                return
            _run(ledger, (mailer, taxes), poll)
    finally:
        _remove_handler(handlers)


def _run(ledger, workers, poll: float) -> None:
    """Until Ctrl-C, SIGTERM or SIGHUP: each worker in its thread, looking every ``poll`` s."""
    from bookpay.web.launch import stop_on_signals

    with stop_on_signals():  # `kill` or a closed terminal: as Ctrl-C, from the first thread on
        try:
            for each in workers:
                each.poll = poll
                each.start()  # also sends what is already due
            info(
                f"bookpay worker: sending receipts and tax records queued in {ledger.where} "
                f"({ledger.kind}), looking every {poll:g} s. Press Ctrl-C to stop."
            )
            threading.Event().wait()
        except KeyboardInterrupt:
            info("Stopping.")
        finally:
            for each in workers:
                each.close()


app = typer.Typer(add_completion=False)
app.command("worker", short_help="Send receipts and tax records (beside serve --no-worker).")(
    worker
)
