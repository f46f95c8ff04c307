"""`bookpay report`: what sold, from the orders ledger alone (no Stripe calls)."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from bookpay.cli import state
from bookpay.commands import paging
from bookpay.commands.output import (
    JsonOption,
    clipped,
    emit_json,
    info,
    is_terminal,
    print_table,
)
from bookpay.terminal import printable

app = typer.Typer(help="Reports from the orders ledger.", no_args_is_help=True)

AMOUNTS = ("gross", "refunded", "disputed", "lost", "net", "shipping", "tax")
# Tax reversed in Stripe Tax for refunds that failed afterwards: a line under the table.
CSV_COLUMNS = ("currency", "key", "label", "orders", "copies", *AMOUNTS, "tax_unreported")


class By(str, Enum):
    day = "day"
    week = "week"
    month = "month"
    book = "book"


@app.command("sales", short_help="Orders, copies and money per period or per book.")
def sales(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="DATE",
            help="Only sales fulfilled at or after DATE (YYYY-MM-DD or ISO 8601; UTC unless "
            "it says).",
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until",
            metavar="DATE",
            help="Only sales fulfilled before DATE (a bare date includes that whole day).",
        ),
    ] = None,
    by: Annotated[By, typer.Option("--by", help="One row per day, week, month or book.")] = By.day,
    chart: Annotated[
        Path | None,
        typer.Option(
            "--chart",
            metavar="FILE",
            help="Also write the net revenue as a bar chart to FILE (.svg or .png).",
        ),
    ] = None,
    as_json: JsonOption = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV instead of a table.")] = False,
) -> None:
    """Orders, copies sold, gross, refunded, disputed, lost and net, per period or per book.

    A sale is a fulfilled order, dated by its fulfilment (UTC days, ISO weeks, months).
    Refunds and disputes count against the sale they undo: Disputed is money in disputes still
    open, Lost in disputes lost; a dispute won costs nothing. Tax reversed in Stripe Tax for
    refunds that failed afterwards (tax_unreported) is said under the table. Amounts are in
    each currency's minor unit in JSON and CSV; one table per currency. At a terminal the net
    revenue is drawn as a bar chart; --chart writes one to a file.

    Example: bookpay report sales --since 2026-01-01 --by week --chart sales.svg
    """
    from bookpay.ledger import LedgerMissing, locate, open_ledger
    from bookpay.report import SalesReport, sales_report

    if as_json and as_csv:
        raise typer.BadParameter("choose one of --json and --csv.", param_hint="--csv")
    if chart is not None and chart.suffix.lower() not in (".svg", ".png"):
        raise typer.BadParameter(
            "the chart's file name must end in .svg or .png.", param_hint="--chart"
        )
    start, end = paging.moments(since, until)
    st = state(ctx)
    no_ledger = False
    try:
        ledger = open_ledger(st.settings, create=False)
    except LedgerMissing:
        where = locate(st.settings.database_url, st.settings.data_dir).masked
        info(f"No sales: there is no ledger at {where} yet.")
        report = SalesReport(by.value, start, end, [])
        no_ledger = True
    else:
        with ledger:
            report = sales_report(ledger, by=by.value, since=start, until=end, catalog=st.catalog())
    if chart is not None:
        from bookpay.commands.chart import write_chart

        write_chart(report, chart)
        info(f"Wrote the chart to {chart}")
    if as_json:
        emit_json(report.to_dict())
    elif as_csv:
        _csv(report)
    elif not no_ledger:  # that was said already
        _tables(report)


class TaxStatus(str, Enum):
    refused = "refused"
    pending = "pending"
    skipped = "skipped"
    recorded = "recorded"


@app.command("tax", short_help="Stripe Tax records that need a person, with why.")
def tax(
    ctx: typer.Context,
    status: Annotated[
        list[TaxStatus] | None,
        typer.Option(
            "--status",
            help="Only records in this status (repeatable; default: refused, pending, and "
            "recorded reversals Stripe Tax under-reports).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The Stripe Tax records a person should know of: those Stripe Tax refused for good
    (to record there by hand), then those still owed, then the reversals Stripe Tax has whose
    refund failed afterwards, no later refund's reversal having taken them into account (tax
    it under-reports: to correct there), each with its order and why.

    Example: bookpay report tax --status refused --json
    """
    from bookpay.commands.ledgerview import under_reported
    from bookpay.commands.orders import TAX_RECORD_FIELDS
    from bookpay.ledger import LedgerMissing, locate, open_ledger

    wanted = [s.value for s in status] if status else ["refused", "pending"]
    st = state(ctx)
    no_ledger = False
    try:
        ledger = open_ledger(st.settings, create=False)
    except LedgerMissing:
        where = locate(st.settings.database_url, st.settings.data_dir).masked
        info(f"No tax records: there is no ledger at {where} yet.")
        if not as_json:
            return
        records, settled, no_ledger = [], set(), True
    else:
        with ledger:
            records = ledger.tax_records_with_status(wanted, refund_failed=not status)
            settled = _settled_orders(ledger, records)
    if not status:  # what needs a person: not tax a later refund's reversal took into account
        records = [r for r in records if r["status"] != "recorded" or r["order_id"] not in settled]
    if as_json:
        fields = ("order_id", *TAX_RECORD_FIELDS)
        emit_json(
            [
                {
                    **{name: record[name] for name in fields},
                    "under_reported": under_reported(record, settled=record["order_id"] in settled),
                }
                for record in records
            ]
        )
    elif records:
        _tax_table(records, settled)
    if not records and not no_ledger:  # on stderr with --json too: stdout stays `[]`
        said = " or ".join(wanted) if status else "refused, pending or under-reported"
        info(f"No tax records {said}.")


def _settled_orders(ledger, records: list[dict]) -> set[str]:
    """The orders of ``records`` whose reversals of refunds that failed were taken into account
    by later refunds' reversals (``tax_settled``, as `orders show` tells), read at once."""
    from bookpay.commands.ledgerview import tax_settled

    failed = {r["order_id"]: r["payment_intent"] for r in records if r["refund_failed_at"]}
    if not failed:
        return set()
    reversals = ledger.tax_reversals_for_orders(failed)
    quotes = ledger.quotes_for_intents(failed.values())
    return {
        order
        for order, intent in failed.items()
        if tax_settled(reversals.get(order, []), (quotes.get(intent) or {}).get("total"))
    }


def _tax_table(records: list[dict], settled: set[str]) -> None:
    from bookpay.commands.ledgerview import tax_record_state
    from bookpay.money import format_amount

    rows = []
    for record in records:
        what = "transaction"
        if record["kind"] == "reversal":
            amount = record["amount"]
            given = (
                "in full" if amount is None else format_amount(amount, record["currency"] or "usd")
            )
            what = f"reversal of {record['refund']} ({given})"
        shown = tax_record_state(record, settled=record["order_id"] in settled)
        rows.append([record["order_id"], what, record["status"], shown])
    print_table(
        ["Order", "Record", "Status", "State"],
        rows,
        title="Stripe Tax records",
        wrap_columns=["State"],
    )


def _csv(report) -> None:
    from bookpay.csvsafe import SafeWriter

    writer = SafeWriter(sys.stdout, CSV_COLUMNS)
    for part in report.currencies:
        for row in [*part.rows, part.total]:
            data = row.to_dict()
            writer.writerow([part.currency, *(data[name] for name in CSV_COLUMNS[1:])])


def _tables(report) -> None:
    from bookpay.money import format_amount

    if not report.currencies:
        info("No sales in that period." if report.since or report.until else "No sales yet.")
        return
    first = "Book" if report.by == "book" else report.by.capitalize()
    columns = [first, *(["Title"] if report.by == "book" else []), "Orders", "Copies"]
    columns += [name.capitalize() for name in AMOUNTS]
    for n, part in enumerate(report.currencies):
        rows = []
        total = part.total
        for row in [*part.rows, total]:
            data = row.to_dict()
            # The total by what it is, not by its key: a book's id may be "total" too.
            cells = [clipped(row.key) if row is not total else "Total"]
            if report.by == "book":
                cells.append(clipped(row.label) if row is not total else "")
            cells += [str(row.orders), str(row.copies)]
            cells += [format_amount(data[name], part.currency) for name in AMOUNTS]
            rows.append(cells)
        if n:
            sys.stdout.write("\n")
        print_table(
            columns,
            rows,
            title=f"Sales in {part.currency.upper()}",
            justify_right=["Orders", "Copies", *(c.capitalize() for c in AMOUNTS)],
            wrap_columns=["Title"],
            # At a narrow terminal these go under their row, whole, as many as it takes (from
            # Refunded on); Gross and Net stay in the table.
            detail_columns=["Refunded", "Disputed", "Lost", "Shipping", "Tax"],
        )
        if total.tax_unreported:
            unreported = format_amount(total.tax_unreported, part.currency)
            sys.stdout.write(
                f"Tax unreported: {unreported} reversed in Stripe Tax for refunds that failed"
                " afterwards (correct it in Stripe Tax; `bookpay orders show` names them).\n"
            )
        if is_terminal():
            sys.stdout.write("\n")
            bar_chart(part, report.by)


# A bar's eighths, for a smooth end at a terminal.
_EIGHTHS = " ▏▎▍▌▋▊▉"


def bar_chart(part, by: str, *, width: int | None = None) -> None:
    """The net revenue of each row as a horizontal bar (Rich; red where it is negative)."""
    from rich.console import Console
    from rich.text import Text

    from bookpay.commands.output import width_of, wrap
    from bookpay.money import format_amount

    console = Console(highlight=False)
    width = width or console.width
    labels = [printable(row.key if by != "book" else row.label) for row in part.rows]
    amounts = [format_amount(row.net, part.currency) for row in part.rows]
    amount_width = max(map(width_of, amounts), default=0)
    # Labels give way to the bars (at least 10 columns) before a line outgrows the terminal.
    label_width = min(max(map(width_of, labels), default=0), 30)
    label_width = max(min(label_width, width - amount_width - 4 - 10), 2)
    room = max(10, width - label_width - amount_width - 4)
    top = max((abs(row.net) for row in part.rows), default=0) or 1
    text = Text()
    text.append(f"Net revenue per {by}, {part.currency.upper()}\n", style="bold")
    for label, amount, row in zip(labels, amounts, part.rows, strict=True):
        eighths = round(abs(row.net) * room * 8 / top)
        bar = "█" * (eighths // 8) + (_EIGHTHS[eighths % 8] if eighths % 8 else "")
        # Cut by columns, not characters: a wide (CJK) character takes two.
        shown = label if width_of(label) <= label_width else wrap(label, label_width - 1)[0] + "…"
        text.append(shown + " " * (label_width - width_of(shown)) + "  ")
        text.append(bar, style="red" if row.net < 0 else "green")
        text.append(" " * (room - len(bar) + 1) + amount.rjust(amount_width) + "\n")
    console.print(text, end="", soft_wrap=True)
