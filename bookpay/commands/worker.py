"""`bookpay worker`: send receipts, report tax records and cancel a paid cart's other payments,
in a process of its own."""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer

from bookpay.cli import state
from bookpay.commands.output import info
from bookpay.commands.params import seconds_from

POLL_RANGE = (0.05, 60.0)


def worker(
    ctx: typer.Context,
    poll: Annotated[
        float,
        typer.Option(
            "--poll",
            metavar="SECONDS",
            callback=seconds_from(*POLL_RANGE),
            help="Most seconds between two looks at the ledger, from 0.05 to 60 (nothing wakes "
            "a worker in a process of its own). After a failed round (the ledger down, locked or "
            "read-only) the next waits 1 s, doubling to 30 s (or --poll, if longer), while the "
            "ledger is read every --poll seconds (2 at most): one that was down gets a round as "
            "soon as it answers.",
        ),
    ] = 1.0,
    once: Annotated[
        bool,
        typer.Option("--once", help="Send what is due now, then exit (for cron, or a test)."),
    ] = False,
) -> None:
    """Send the receipts, report the Stripe Tax records and cancel the other payments of paid
    carts that shops queue in the ledger.

    `bookpay serve` does this in a thread of its own unless started with --no-worker; then
    run this beside it (or beside several of them, on one PostgreSQL ledger): the work leaves
    the process that answers shoppers and webhooks. Each receipt is claimed before it is sent,
    so any number of workers and shops on one ledger send each receipt once; so is each paid
    cart's canceling.

    Example: bookpay serve --no-worker & bookpay worker --poll 0.5
    """
    from bookpay.commands.serve import _configure_logging, _remove_handler
    from bookpay.ledger import open_ledger
    from bookpay.mailer import ReceiptMailer
    from bookpay.siblings import SiblingCanceler
    from bookpay.taxrecords import TaxRecorder
    from bookpay.web.launch import stop_on_signals

    st = state(ctx)
    settings = st.settings
    handlers = _configure_logging(settings.debug, "text", quiet=True)
    try:
        # `kill` or a closed terminal: as Ctrl-C, from the start (opening the ledger included),
        # with or without --once.
        with stop_on_signals():
            try:
                ledger = open_ledger(settings)
                workers = ()
                try:
                    mailer = ReceiptMailer.from_settings(settings, ledger)
                    gateway = st.gateway()
                    workers = (
                        mailer,
                        TaxRecorder(ledger, gateway),
                        SiblingCanceler(ledger, gateway),
                    )
                    _work(ledger, workers, poll, once)
                finally:
                    # Not under a worker left at work (a SQLite wait for the write lock,
                    # say): closing releases this process's claims, a write that waits
                    # behind that worker's (it holds the writers' turn), and would free a
                    # receipt still being sent. (A connection in use the SQLite ledger never
                    # closes.) The exit ends the worker, and a claim of a process that died
                    # is taken over at once.
                    if not any(each.at_work for each in workers):
                        ledger.close()
            except KeyboardInterrupt:  # while starting up (opening the ledger, say)
                info("Stopping.")
    finally:
        _remove_handler(handlers)


def _work(ledger, workers, poll: float, once: bool) -> None:
    """Each worker in its thread, until Ctrl-C, SIGTERM or SIGHUP (``once``: one round each,
    in turn), looking every ``poll`` s. Stopping, each is closed (``Worker.close``): a send
    under way is cut off or given its answer, its fate written, even on a second interrupt
    (which ``close`` raises again once that is done: all is stopped then)."""
    from bookpay.web.launch import until_interrupted

    mailer, taxes, siblings = workers
    try:
        try:
            if once:
                sent = mailer.run_once()
                recorded = taxes.run_once()
                canceled = siblings.run_once()
                info(
                    f"Receipts handled: {sent}; tax records tried: {recorded}; "
                    f"paid carts' other payments looked at: {canceled}."
                )
                return
            for each in workers:
                each.poll = poll
                each.start()  # also sends what is already due
            info(
                f"bookpay worker: sending receipts and tax records, and canceling paid carts' "
                f"other payments, queued in {ledger.where} "
                f"({ledger.kind}), looking every {poll:g} s. Press Ctrl-C to stop."
            )
            until_interrupted()
        except KeyboardInterrupt:
            with contextlib.suppress(KeyboardInterrupt):  # said once, not again at the top
                info("Stopping.")
    finally:
        for each in workers:  # every one, even when a second interrupt cuts one short
            with contextlib.suppress(KeyboardInterrupt):
                each.close()


app = typer.Typer(add_completion=False)
app.command(
    "worker",
    short_help="Send receipts and tax records, cancel paid carts' other payments.",
)(worker)
