"""`bookpay webhook`: replay captured events to a receiver, list the bundled ones, sign payloads."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from bookpay.cli import state
from bookpay.commands.output import JsonOption, emit_json, is_terminal, print_lines, print_table
from bookpay.commands.params import complete_fixtures, seconds_from
from bookpay.terminal import printable

app = typer.Typer(help="Replay, list and sign webhook events.", no_args_is_help=True)


def _secret_option(saved: str) -> typer.Option:
    """--secret, its default said as the command finds it (``resolve_secret``)."""
    return typer.Option(
        "--secret",
        help="Signing secret (whsec_...). Default: the first STRIPE_WEBHOOK_SECRET, else the "
        f"one `bookpay serve` saved{saved}.",
        show_default=False,
    )


# replay signs with the secret of the server at --to's port; sign has no --to, so with the only
# one saved (several: it asks for --secret).
ReplaySecretOption = Annotated[str | None, _secret_option(" for --to's port (else the only one)")]
SignSecretOption = Annotated[str | None, _secret_option(", if only one server saved one")]
PROGRESS_FROM = 20  # deliveries; shorter runs finish before a bar would help


class Order(str, Enum):
    as_is = "as-is"
    reverse = "reverse"
    shuffle = "shuffle"


@app.command("replay", short_help="Send saved events, signed, to a webhook endpoint.")
def replay(
    ctx: typer.Context,
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="PATH",
            help="Event files (a JSON event, a JSON array, JSON Lines), folders of them, a "
            "bundled fixture's name (see `bookpay webhook fixtures`), or - for stdin.",
            autocompletion=complete_fixtures,
        ),
    ],
    to: Annotated[
        str,
        typer.Option("--to", help="Receiver URL; also 4242, /webhook or localhost:5000/hooks."),
    ] = "http://127.0.0.1:4242/webhook",
    secret: ReplaySecretOption = None,
    repeat: Annotated[
        int,
        typer.Option(
            "--repeat",
            min=1,
            max=100_000,
            help="Send every event N times (duplicates); at most 100,000, and 1,000,000 "
            "deliveries in all.",
        ),
    ] = 1,
    order: Annotated[Order, typer.Option("--order", help="Delivery order.")] = Order.as_is,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed for --order shuffle (repeatable runs).")
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option("--concurrency", min=1, max=256, help="Deliveries in flight at once."),
    ] = 1,
    delay: Annotated[
        float,
        typer.Option(
            "--delay",
            callback=seconds_from(0, 3600),
            help="Seconds to wait between deliveries, from 0 to 3600.",
        ),
    ] = 0.0,
    new_event_id: Annotated[
        bool,
        typer.Option(
            "--new-event-id",
            help="Give each delivery a fresh evt_ id (the body is serialised again).",
        ),
    ] = False,
    timestamp_offset: Annotated[
        int,
        typer.Option(
            "--timestamp-offset",
            help="Shift the signature's timestamp by SECONDS (-600: ten minutes old, expired); "
            "the time signed at is kept from 1970 to the end of year 9999, as for `sign`.",
        ),
    ] = 0,
    bad_signature: Annotated[
        bool, typer.Option("--bad-signature", help="Sign with a wrong secret on purpose.")
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            callback=seconds_from(0.1, 3600),
            help="Seconds to wait for each answer, from 0.1 to 3600.",
        ),
    ] = 30.0,
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="Print only the summary and the failed deliveries."),
    ] = False,
    failures_only: Annotated[
        bool,
        typer.Option(
            "--failures-only", help="List only the deliveries that did not get a 2xx answer."
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Sign and POST captured Stripe events to a webhook endpoint; exit 6 if any is not 2xx.

    Bodies are the exact bytes captured (stripe listen --format JSON, stripe events retrieve).
    Each is signed at send time, as Stripe signs it; redirects are not followed.

    Each delivery's outcome is read from the answer: fulfilled, updated (the order changed),
    duplicate, ignored (with the receiver's reason), accepted (a receiver that says no more),
    refused (a 4xx, with its reason) or failed (no answer, a redirect, a 5xx).

    Example: bookpay webhook replay events.jsonl --to 4242 --repeat 2
    """
    from bookpay.errors import DeliveryFailed
    from bookpay.replay import (
        Replayer,
        load_events,
        normalize_url,
        offset_time,
        plan,
        resolve_secret,
    )

    to = normalize_url(to)  # a bad --to, or --timestamp-offset, is said before any event is read
    offset_time(timestamp_offset)
    skipped: dict[str, int] = {}
    events = load_events(paths, stdin=_stdin() if "-" in paths else None, skipped=skipped)
    for source, count in skipped.items():  # stripe listen's own lines, among the events
        lines = f"{count:,} line{'s' if count != 1 else ''}"
        sys.stderr.write(printable(f"{source}: skipped {lines} stripe listen printed.") + "\n")
    deliveries = plan(
        events, repeat=repeat, order=order.value, seed=seed, new_event_id=new_event_id
    )
    # Read whether or not a secret is taken from them: a bad .env is exit 5 for every replay.
    settings = state(ctx).settings
    signing = "" if bad_signature else resolve_secret(settings, secret, to)
    replayer = Replayer(
        to,
        signing,
        concurrency=concurrency,
        delay=delay,
        timestamp_offset=timestamp_offset,
        bad_signature=bad_signature,
        timeout=timeout,
    )
    started = time.perf_counter()
    stop = threading.Event()
    with _ctrl_c_stops(stop):
        if is_terminal(sys.stderr) and len(deliveries) >= PROGRESS_FROM:
            results = _with_progress(replayer, deliveries, stop)
        else:
            results = replayer.run(deliveries, stop=stop)
    elapsed = time.perf_counter() - started
    # Ctrl-C stopped the run if it kept a delivery from being made.
    interrupted = len(results) < len(deliveries)
    failed = [result for result in results if not result.ok]
    listed = failed if failures_only or quiet else results
    if as_json:
        emit_json([result.to_dict() for result in listed])
    else:
        if quiet:
            for result in listed:
                sys.stdout.write(
                    printable(
                        f"#{result.index + 1} {result.event_id} {result.type}: {result.outcome}: "
                        f"{result.reason}"
                    )
                    + "\n"
                )
        elif listed:
            _print_results(listed)
        _print_summary(
            results,
            replayer.url,
            elapsed,
            blank_line=bool(listed),
            planned=len(deliveries) if interrupted else None,
        )
    if interrupted:
        # Typer's own code for Ctrl-C, after what was delivered has been said.
        n, planned = len(results), len(deliveries)
        sys.stderr.write(
            f"Interrupted (Ctrl-C) after {n:,} of {planned:,} deliveries: the other "
            f"{planned - n:,} were not sent"
            + (f"; {len(failed):,} did not get a 2xx answer" if failed else "")
            + ".\n"
        )
        raise typer.Exit(130)
    if failed:
        raise DeliveryFailed(
            f"{len(failed)} of {len(results)} deliveries did not get a 2xx answer."
        )


def _stdin():
    """Standard input's bytes. Closed from the start (`<&-`), Python leaves ``sys.stdin`` None:
    said as for an event file that cannot be read (exit 2), not as an unexpected error."""
    from bookpay.errors import UsageError

    if sys.stdin is None:
        raise UsageError("<stdin>: cannot read it (standard input is closed).")
    return sys.stdin.buffer


@contextlib.contextmanager
def _ctrl_c_stops(stop: threading.Event):
    """The first Ctrl-C sets ``stop`` (no delivery starts; those under way finish, and what was
    delivered is said); a second one stops at once, as Ctrl-C does anywhere else. Left as it
    is when SIGINT is not Python's own handler: ignored (a background job's), or someone's."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return

    def first(_signum, _frame) -> None:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        stop.set()

    signal.signal(signal.SIGINT, first)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _with_progress(replayer, deliveries, stop):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("Delivering", total=len(deliveries))
        return replayer.run(deliveries, progress=lambda _result: bar.advance(task), stop=stop)


OUTCOME_STYLE = {
    "fulfilled": "green",
    "updated": "green",
    "accepted": "green",
    "duplicate": "cyan",
    "ignored": "yellow",
    "refused": "red",
    "failed": "bold red",
}


def _print_results(results) -> None:
    rows = [
        [
            str(result.index + 1),
            result.event_id,
            result.type,
            (str(result.status) if result.status is not None else "-",
             "green" if result.ok else "red"),
            (result.outcome, OUTCOME_STYLE.get(result.outcome, "")),
            f"{result.latency_ms:.1f} ms",
            result.reason,
        ]
        for result in results
    ]  # fmt: skip
    print_table(
        ["#", "Event", "Type", "Status", "Outcome", "Latency", "Reason"],
        rows,
        justify_right=["#", "Latency"],
        wrap_columns=["Reason"],
        detail_columns=["Event"],
    )


def _print_summary(
    results, url: str, elapsed: float, *, blank_line: bool, planned: int | None = None
) -> None:
    """One line of counts, then each reason for ignoring, refusing or failing, with its count.

    ``planned``: the deliveries the run was to make, when Ctrl-C stopped it before the end."""
    from bookpay.replay import summarize

    summary = summarize(results)
    counts = ", ".join(f"{n} {name}" for name, n in summary["counts"].items())
    n = len(results)
    made = f"{n} deliver{'ies' if n != 1 else 'y'}"
    if planned is not None:
        made = f"{n} of {planned} deliveries (interrupted by Ctrl-C)"
    lines = [f"{made} to {url} in {elapsed:.2f}s: {counts}"]
    for outcome, reasons in summary["reasons"].items():
        lines.append(f"{outcome.capitalize()}:")
        for reason, times in sorted(reasons.items(), key=lambda item: -item[1]):
            lines.append(f"  {times:>4} x {reason}")
    if blank_line:
        sys.stdout.write("\n")
    print_lines(lines, indent=4)


@app.command("fixtures", short_help="List the bundled example events.")
def fixtures(as_json: JsonOption = False) -> None:
    """List the example events bundled with bookpay, one per event type it handles.

    Example: bookpay webhook fixtures --json
    """
    from bookpay.replay import FIXTURES_DIR, list_fixtures

    found = list_fixtures()
    if as_json:
        emit_json(found)
        return
    rows = [
        [f["name"], f["type"], f["payment_intent"] or "", f["item_id"] or "", f["description"]]
        for f in found
    ]
    print_table(["Name", "Type", "PaymentIntent", "Item", "Description"], rows)
    sys.stderr.write(f"\nReplay them with: bookpay webhook replay {FIXTURES_DIR}\n")


@app.command("sign")
def sign_payload(
    ctx: typer.Context,
    file: Annotated[
        str, typer.Argument(metavar="FILE", help="The exact body to sign, or - for stdin.")
    ],
    secret: SignSecretOption = None,
    timestamp: Annotated[
        int | None,
        typer.Option(
            "--timestamp",
            help="Unix time to sign at, from 0 (1970) to the end of year 9999 (default: now).",
        ),
    ] = None,
) -> None:
    """Print a Stripe-Signature header value for a payload, for curl.

    Example: bookpay webhook sign event.json --timestamp 1700000000
    """
    from bookpay.errors import UsageError
    from bookpay.replay import check_timestamp, read_limited, read_stdin, resolve_secret
    from bookpay.webhooks import sign

    if timestamp is not None:
        check_timestamp(timestamp, f"--timestamp {timestamp:,}")
    signing = resolve_secret(state(ctx).settings, secret)
    if file == "-":
        payload = read_stdin(_stdin())
    else:
        path = Path(file)
        if path.exists() and not path.is_file():
            raise UsageError(f"{file}: not a file (send a pipe's contents on standard input: -).")
        if not path.is_file():
            raise UsageError(f"{file}: no such file.")
        try:
            with path.open("rb") as handle:
                payload = read_limited(handle, file)
        except OSError as exc:
            raise UsageError(f"{file}: cannot read it ({exc.strerror or exc}).") from None
    header = sign(payload, signing, timestamp)
    sys.stdout.write(header + "\n")
