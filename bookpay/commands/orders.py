"""`bookpay orders`: the local orders ledger, as the webhook receiver and the checkout left it.

Read-only: these commands never create a ledger. Where there is none yet they say where they
looked. Their cost follows the page, not the ledger: `list` reads one page through an index,
`export` streams.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from contextlib import contextmanager, suppress
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from bookpay.address import one_line
from bookpay.cli import state
from bookpay.commands import paging
from bookpay.commands.output import (
    Cell,
    JsonOption,
    emit_json,
    human_time,
    info,
    is_terminal,
    print_fields,
    print_table,
)
from bookpay.commands.params import check_order_or_intent_id, complete_order_statuses
from bookpay.errors import OutputUnwritable, UsageError
from bookpay.terminal import json_safe, printable

app = typer.Typer(help="Inspect and export the orders ledger.", no_args_is_help=True)

COLUMNS = (
    "id",
    "payment_intent",
    "item_id",
    "amount",
    "currency",
    "email",
    "status",
    "created",
    "updated",
    "fulfilled_at",
    "amount_refunded",
    "failure_reason",
    "charge",
    "note",
    "dispute_status",
    "shipping",
)
# Columns added since, after every other one (the quote's too, in an export), so that the
# columns a spreadsheet or a script already reads by position stay where they were.
LATER_COLUMNS = ("amount_captured",)  # what a partial capture took (None: all of the amount)
# The CSV export writes the shipping address as columns, not as one JSON cell.
SHIPPING_COLUMNS = (
    ("ship_name", None, "name"),
    ("ship_line1", "address", "line1"),
    ("ship_line2", "address", "line2"),
    ("ship_city", "address", "city"),
    ("ship_state", "address", "state"),
    ("ship_postal_code", "address", "postal_code"),
    ("ship_country", "address", "country"),
)
# The quote the order paid: export name -> the recorded quote's field (none for an order whose
# quote this ledger did not record).
QUOTE_COLUMNS = (
    ("subtotal", "subtotal"),
    ("shipping_amount", "shipping"),
    ("shipping_rate", "shipping_rate"),
    ("tax", "tax"),
    ("tax_calculation", "tax_calculation"),
    ("total", "total"),
)
QUOTE_EXPORT = tuple(name for name, _ in QUOTE_COLUMNS)
# Orders per query of an export: fewer round trips, while memory stays a few MB.
EXPORT_BATCH = 5000
CSV_COLUMNS = (
    *COLUMNS[:-1],
    *(name for name, _, _ in SHIPPING_COLUMNS),
    *QUOTE_EXPORT,
    *LATER_COLUMNS,
)
JSON_COLUMNS = (*COLUMNS, *QUOTE_EXPORT, *LATER_COLUMNS)
ADDRESS_KEYS = tuple(key for _, part, key in SHIPPING_COLUMNS if part == "address")
STATUS_STYLE = {
    "paid": "green",
    "processing": "yellow",
    "authorized": "cyan",
    "pending": "dim",
    "failed": "red",
    "canceled": "dim",
    "refunded": "magenta",
    "partially_refunded": "magenta",
    "disputed": "bold red",
    "dispute_lost": "red",
}
TABLE = ["Order", "PaymentIntent", "Item", "Amount", "Email", "Status", "Created", "Fulfilled"]
LINE_FIELDS = ("position", "item_id", "title", "quantity", "unit_amount", "line_amount")
# `orders export --lines`: one row per order line, with the order's own columns first.
LINE_EXPORT_COLUMNS = (
    "order_id",
    "payment_intent",
    "status",
    "created",
    "fulfilled_at",
    "currency",
    "email",
    *LINE_FIELDS,
)


class Format(str, Enum):
    csv = "csv"
    json = "json"
    jsonl = "jsonl"


@contextmanager
def _ledger(ctx: typer.Context, *, needed_for: str | None = None):
    """The ledger, or None (and a note on stderr) when none exists yet: nothing is created.
    ``needed_for`` (what was asked: "No order 'pi_...'"): NotFound saying so instead, the one
    line said."""
    from bookpay.errors import NotFound
    from bookpay.ledger import LedgerMissing, locate, open_ledger

    settings = state(ctx).settings
    try:
        ledger = open_ledger(settings, create=False)
    except LedgerMissing:
        where = locate(settings.database_url, settings.data_dir).masked
        if needed_for is not None:
            raise NotFound(f"{needed_for}: there is no ledger at {where} yet.") from None
        sys.stderr.write(f"No orders: there is no ledger at {printable(where)} yet.\n")
        yield None
        return
    with ledger:
        yield ledger


def _price(order: dict, amount: int | None = None) -> str:
    from bookpay.money import format_amount

    amount = order["amount"] if amount is None else amount
    if amount is None or not order["currency"]:
        return ""
    return format_amount(amount, order["currency"])


def _status(order: dict) -> Cell:
    return (order["status"], STATUS_STYLE.get(order["status"], ""))


def _record(order: dict) -> dict:
    return {name: order.get(name) for name in (*COLUMNS, *LATER_COLUMNS)}


def _row(order: dict) -> list[Cell]:
    return [
        order["id"],
        order["payment_intent"],
        order["item_id"] or order.get("items") or "",
        _amount(order),
        order["email"] or "",
        _status(order),
        human_time(order["created"]),
        human_time(order["fulfilled_at"]) if order["fulfilled_at"] else "",
    ]


def _with_items(ledger, orders):
    """Orders with ``items``, a summary of their lines (``2 x 1, 1 x 3``) for the Item column of
    those paying for more than one copy; the lines of a batch are read in one query."""
    from bookpay.commands.paging import chunks
    from bookpay.orderlines import summary

    for batch in chunks(orders, 1000):
        lines = ledger.lines_for_orders(o["id"] for o in batch if not o["item_id"])
        for order in batch:
            found = lines.get(order["id"])
            yield {**order, "items": summary(found)} if found else order


def _filter(status, email, since, until):
    from bookpay.ledger import OrderFilter

    start, end = paging.moments(since, until)
    return OrderFilter(status=paging.only(status), email=email, since=start, until=end)


StatusOption = Annotated[
    list[str] | None,
    typer.Option(
        "--status",
        metavar="STATUS",
        help="Only orders with this status (paid, refunded, ...).",
        autocompletion=complete_order_statuses,
        callback=paging.once,
    ),
]


@app.command("list")
def list_orders(
    ctx: typer.Context,
    limit: paging.LimitOption = paging.PAGE,
    starting_after: paging.StartingAfterOption = None,
    every: paging.AllOption = False,
    status: StatusOption = None,
    email: paging.EmailOption = None,
    since: paging.SinceOption = None,
    until: paging.UntilOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the orders, newest first, a page at a time.

    Example: bookpay orders list --status paid --since 2026-01-01 --json
    """
    where = _filter(status, email, since, until)
    where.where()  # refuses an unknown status with no ledger too, not "no orders"
    with _ledger(ctx) as ledger:
        if ledger is None:
            if as_json:
                emit_json([])
            return
        if every:
            orders = ledger.iter_orders(where, newest_first=True, starting_after=starting_after)
            orders = _with_items(ledger, orders) if not as_json else orders
            count = paging.emit(
                orders, as_json=as_json, columns=TABLE, row=_row, record=_record,
                justify_right=["Amount"],
            )  # fmt: skip
        else:
            page = ledger.page_orders(where, limit=limit + 1, starting_after=starting_after)
            more, page = len(page) > limit, page[:limit]
            count = len(page)
            if as_json:
                emit_json([_record(order) for order in page])
            elif page:
                print_table(
                    TABLE,
                    [_row(order) for order in _with_items(ledger, page)],
                    justify_right=["Amount"],
                    detail_columns=["PaymentIntent", "Email", "Fulfilled"],
                )
            paging.page_note("order", page, more, lambda order: order["id"])
    if not count:  # on stderr with --json too: stdout stays `[]` for scripts
        info(paging.nothing("orders", starting_after, where.status, email or since or until))


@app.command("show", short_help="Show an order, its receipt and its events.")
def show_order(
    ctx: typer.Context,
    order_or_pi: Annotated[
        str,
        typer.Argument(
            metavar="ORDER_OR_PI",
            help="An order id (ord_...) or pi_... id.",
            callback=check_order_or_intent_id,
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Show one order, its totals, its receipt, what Stripe Tax has been told of it, and the
    timeline of webhook events received for it.

    Example: bookpay orders show pi_3PgafyB7WZ01zgkW1kM1aBcD
    """
    from bookpay.commands.ledgerview import (
        dispute_cell,
        ledger_releases,
        print_events,
        print_lines_table,
        quote_fields,
        quote_record,
        receipt_state,
        tax_record_fields,
    )
    from bookpay.orderlines import named_quote, summary, titled

    with _ledger(ctx, needed_for=f"No order {order_or_pi!r}") as ledger:
        order = ledger.get_order(order_or_pi)
        events = ledger.events_for(order["payment_intent"])
        receipt = ledger.receipt_for(order["payment_intent"])
        catalog = state(ctx).catalog()
        lines = titled(ledger.order_lines(order["id"]), catalog)
        quote = named_quote(ledger.quote_for(order["payment_intent"]), catalog)
        taxes = ledger.tax_records_for(order["id"])
        disputes = ledger.disputes_for(order["id"])
    if as_json:
        emit_json(
            {
                **_record(order),
                "lines": [_line_record(line) for line in lines],
                "quote": quote_record(quote),
                "tax_records": [_tax_record(record) for record in taxes],
                "disputes": [_dispute_record(dispute) for dispute in disputes],
                "receipt": _receipt_record(receipt),
                "events": events,
            }
        )
        return
    fields: list[tuple[str, Cell]] = [
        ("Order", order["id"]),
        ("PaymentIntent", order["payment_intent"]),
        ("Status", _status(order)),
        ("Item", order["item_id"] or summary(lines)),
        ("Amount", _price(order)),
        *_captured_fields(order),
        *quote_fields(quote),
        ("Email", order["email"] or ""),
        ("Ship to", one_line(order["shipping"])),
        ("Created", human_time(order["created"])),
        ("Updated", human_time(order["updated"])),
        ("Fulfilled", human_time(order["fulfilled_at"]) if order["fulfilled_at"] else "not yet"),
        ("Receipt", receipt_state(receipt)),
        *tax_record_fields(taxes, quote, order["currency"] or "usd", ledger_releases(order, taxes)),
    ]
    if order["amount_refunded"]:
        fields.append(("Refunded", _price(order, order["amount_refunded"])))
    fields += [("Dispute", dispute_cell(dispute)) for dispute in disputes]
    if order["failure_reason"]:
        fields.append(("Failure", order["failure_reason"]))
    if order["note"]:
        fields.append(("Note", order["note"]))
    print_fields(fields)
    sys.stdout.write("\n")
    print_lines_table(lines, order["currency"] or "usd")
    sys.stdout.write("\n")
    print_events(events, title="Events")


def _amount(order: dict) -> str:
    """The order's amount, or what a partial capture took of it: "$15.00 of $29.67"."""
    captured = order.get("amount_captured")
    return _price(order) if captured is None else f"{_price(order, captured)} of {_price(order)}"


def _captured_fields(order: dict) -> list[tuple[str, Cell]]:
    """What a partial capture took of the order's amount, when it took less than all of it
    (the rest of the hold was released: never the customer's money)."""
    if order.get("amount_captured") is None:
        return []
    return [("Captured", f"{_amount(order)} (the rest released)")]


def _line_record(line: dict) -> dict:
    return {name: line[name] for name in LINE_FIELDS}


TAX_RECORD_FIELDS = (
    "kind",
    "status",
    "calculation",
    "refund",
    "amount",
    "stripe_id",
    "attempts",
    "next_attempt_at",
    "last_error",
    "recorded_at",
    "refund_failed_at",
)
DISPUTE_FIELDS = ("id", "status", "reason", "amount", "currency", "updated")


def _dispute_record(dispute: dict) -> dict:
    return {name: dispute[name] for name in DISPUTE_FIELDS}


def _tax_record(record: dict) -> dict:
    return {name: record[name] for name in TAX_RECORD_FIELDS}


def _receipt_record(receipt: dict | None) -> dict | None:
    if receipt is None:
        return None
    keys = ("status", "recipient", "attempts", "sent_at", "next_attempt_at", "last_error")
    return {**{key: receipt[key] for key in keys}, "location": receipt["location"]}


@app.command("export", short_help="Export the orders as CSV, JSON or JSON Lines, streamed.")
def export_orders(
    ctx: typer.Context,
    fmt: Annotated[
        Format,
        typer.Option("--format", help="csv, json (one array) or jsonl (one order per line)."),
    ] = Format.csv,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write to FILE instead of stdout (replaced only once the export is complete).",
        ),
    ] = None,
    status: StatusOption = None,
    email: paging.EmailOption = None,
    since: paging.SinceOption = None,
    until: paging.UntilOption = None,
    lines: Annotated[
        bool,
        typer.Option(
            "--lines", help="One row per order line (book, title, quantity, amounts) instead."
        ),
    ] = False,
) -> None:
    """Export the orders (oldest first) as CSV, JSON or JSON Lines, streamed.

    The CSV has one column per part of the shipping address, then the quote the order paid
    (subtotal, shipping amount and rate, tax and its Stripe Tax calculation, total), then the
    amount a partial capture took (empty when the order's amount was taken in full, or nothing
    yet), and text that a spreadsheet would run as a formula is prefixed with a quote. With
    --lines, each row is one line of an order (the order's id, status, dates, currency and
    e-mail, then the book, its title, quantity, unit and line amounts). Memory use stays flat
    however many orders there are.

    Example: bookpay orders export --format csv --output orders.csv
    """
    where = _filter(status, email, since, until)
    where.where()  # refuses an unknown status now, before anything is written, not mid-export
    terminal = output is None and is_terminal()
    with _destination(output) as out, _ledger(ctx) as ledger:
        if ledger is None:
            batches = iter(())
        elif lines:
            batches = ledger.iter_order_batches(where, batch=EXPORT_BATCH)
        else:
            # Each order with the quote it paid, read in the same query.
            quotes = tuple(field for _, field in QUOTE_COLUMNS)
            batches = ledger.iter_order_batches(
                where, batch=EXPORT_BATCH, quotes=quotes, ahead=True
            )
        if lines:
            rows = (row for batch in batches for row in batch)
            if ledger is not None:
                rows = _line_rows(ledger, rows, state(ctx).catalog())
            count = _write_lines(rows, fmt, out, terminal=terminal)
        else:
            count = _write(batches, fmt, out, terminal=terminal)
    if output is not None:
        what = "line" if lines else "order"
        info(f"Wrote {count} {what}{'s' if count != 1 else ''} to {output}")


@contextmanager
def _destination(output: str | None):
    """Where the export goes: stdout, or a temporary file beside ``output`` that replaces it
    only once the export is complete, so a failure half-way, Ctrl-C, `kill` or a terminal
    closing leaves the old file as it was (and no temporary one). A file that cannot be
    written is OutputUnwritable (exit 1, as for `report sales --chart`), saying why in one
    line. The ledger's read failures reach here already
    said as the ledger's (LedgerUnavailable, from its backend), not as the file's."""
    if output is None:
        yield sys.stdout
        return
    _check_output(output)
    try:
        if os.path.exists(output) and not os.path.isfile(output):
            # A device or a pipe (/dev/null, /dev/stdout): written in place, as asked.
            with open(output, "w", encoding="utf-8", newline="") as out:
                yield out
            return
        path = Path(os.path.realpath(output))  # through a symbolic link, which stays
        if path.exists() and not os.access(path, os.W_OK):
            # A rename over it needs only the folder's permission: keep a read-only file so.
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        from bookpay.web.launch import stop_on_signals

        # `kill` or a terminal closing stops it as Ctrl-C does: the temporary file, customers'
        # addresses in it, is removed, not left beside FILE.
        with stop_on_signals():
            temp, out = _temporary_beside(path)
            try:
                with out:
                    yield out
                os.replace(temp, path)
            except BaseException:
                with suppress(OSError):
                    os.unlink(temp)
                raise
    except OSError as exc:
        message = f"Cannot write the export to {output}: {exc.strerror or exc}."
        raise OutputUnwritable(message) from exc


def _check_output(output: str) -> None:
    """A name that cannot be a file's is a usage error (exit 2), found before anything is
    written."""
    if not output:
        raise UsageError("--output needs a file name; it was empty.")
    if output.endswith(("/", os.sep)) or os.path.isdir(output):
        raise UsageError(f"--output {output} is a folder: give the name of a file in it.")


def _temporary_beside(path: Path):
    """A new private file in ``path``'s folder, and its name (a rename within a file system is
    atomic)."""
    import tempfile

    from bookpay.privatefiles import FILE_MODE

    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.fchmod(fd, FILE_MODE)  # customers' addresses: as private as the ledger they come from
    return temp, os.fdopen(fd, "w", encoding="utf-8", newline="")


def _line_rows(ledger, rows, catalog):
    """Tuples in LINE_EXPORT_COLUMNS order, from ``iter_order_rows``'s tuples: the lines of a
    batch of orders are read in one query, so this streams as the orders do."""
    from bookpay.commands.paging import chunks
    from bookpay.ledger.queries import ORDER_COLUMNS
    from bookpay.orderlines import titled

    at = {name: ORDER_COLUMNS.index(name) for name in ORDER_COLUMNS}
    head = [at["id"], *(at[name] for name in LINE_EXPORT_COLUMNS[1:7])]
    for batch in chunks(rows, 1000):
        found = ledger.lines_for_orders(row[at["id"]] for row in batch)
        for row in batch:
            for line in titled(found.get(row[at["id"]], []), catalog):
                yield (*(row[i] for i in head), *(line[name] for name in LINE_FIELDS))


def _write_lines(rows, fmt: Format, out, *, terminal: bool = False) -> int:
    count = 0
    if fmt is Format.csv:
        from bookpay.csvsafe import SafeWriter

        writer = SafeWriter(out, LINE_EXPORT_COLUMNS)
        for row in rows:
            writer.writerow(_shown(row) if terminal else row)
            count += 1
        return count
    records = (dict(zip(LINE_EXPORT_COLUMNS, row, strict=True)) for row in rows)
    return _write_json(records, fmt, out, terminal=terminal)


def _shown(row):
    """A CSV row for a terminal: each text cell neutralised as the file has it, then with its
    control characters shown as escapes, so a shopper's text cannot drive the terminal."""
    from bookpay.csvsafe import neutralise

    return [printable(neutralise(cell)) if isinstance(cell, str) else cell for cell in row]


def _write(batches, fmt: Format, out, *, terminal: bool = False) -> int:
    """Write ``iter_order_batches``' lists of tuples (orders, then QUOTE_COLUMNS); how many.

    To a terminal, control characters in the cells are shown as escapes (``terminal``).
    """
    from bookpay.ledger.queries import ORDER_COLUMNS

    shipping_at = ORDER_COLUMNS.index("shipping")
    quoted_at = len(ORDER_COLUMNS)
    loads = _json_reader()
    if fmt is Format.csv:
        from operator import itemgetter

        from bookpay.csvsafe import SafeWriter

        count = 0
        writer = SafeWriter(out, CSV_COLUMNS)
        plain = itemgetter(*(ORDER_COLUMNS.index(name) for name in COLUMNS[:-1]))
        # The quote's columns (after the order's in each row), then the later order columns.
        quoted = range(quoted_at, quoted_at + len(QUOTE_EXPORT))
        tail = itemgetter(*quoted, *(ORDER_COLUMNS.index(name) for name in LATER_COLUMNS))
        empty: dict = {}
        with _no_cycle_collection():
            for batch in batches:
                cells = []
                add = cells.append
                for row in batch:
                    shipping = loads(row[shipping_at]) if row[shipping_at] else empty
                    address = shipping.get("address") or empty
                    add(
                        (
                            *plain(row),
                            shipping.get("name"),
                            *map(address.get, ADDRESS_KEYS),
                            *tail(row),
                        )
                    )
                writer.writerows([_shown(row) for row in cells] if terminal else cells)
                count += len(cells)
        return count

    def records():
        for batch in batches:
            for row in batch:
                order = dict(zip((*ORDER_COLUMNS, *QUOTE_EXPORT), row, strict=True))
                order["shipping"] = loads(row[shipping_at]) if row[shipping_at] else None
                yield {name: order[name] for name in JSON_COLUMNS}

    return _write_json(records(), fmt, out, terminal=terminal)


@contextmanager
def _no_cycle_collection():
    """The cyclic garbage collector paused while an export runs.

    An export makes millions of tuples and dicts that refer to no cycle and live for one
    batch: reference counting frees them, and the collector's passes over each new batch of
    them (about 6% of the export's instructions) find nothing to collect.
    """
    import gc

    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _json_reader():
    """``json.loads`` for the ledger's stored JSON, without its per-call wrapping.

    The decoder's scanner parses the text; what it does not take whole (surrounding
    whitespace, trailing data, an error, bytes) goes to ``json.loads``, which accepts or refuses
    it exactly as it always did.
    """
    from json.scanner import make_scanner

    scan = make_scanner(json.JSONDecoder())

    def loads(text):
        try:
            value, end = scan(text, 0)
        except (StopIteration, ValueError, TypeError):
            return json.loads(text)
        return value if end == len(text) else json.loads(text)

    return loads


def _write_json(records, fmt: Format, out, *, terminal: bool = False) -> int:
    """One JSON array written item by item, or JSON Lines; how many records."""
    count = 0
    for record in records:
        line = json.dumps(record, ensure_ascii=False)
        if terminal:
            line = json_safe(line)
        if fmt is Format.jsonl:
            out.write(line + "\n")
        else:
            out.write(("[\n" if not count else ",\n") + line)
        count += 1
    if fmt is Format.json:
        out.write("\n]\n" if count else "[]\n")
    return count
