"""`bookpay orders`: the local orders ledger, as the webhook receiver and the checkout left it."""

from __future__ import annotations

import csv
import io
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from bookpay.address import one_line
from bookpay.cli import state
from bookpay.commands.output import (
    Cell,
    JsonOption,
    emit_json,
    human_time,
    print_fields,
    print_table,
)
from bookpay.commands.params import check_order_or_intent_id, complete_order_statuses

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
    "shipping",
)
STATUS_STYLE = {
    "paid": "green",
    "processing": "yellow",
    "pending": "dim",
    "failed": "red",
    "canceled": "dim",
    "refunded": "magenta",
    "partially_refunded": "magenta",
    "disputed": "bold red",
}


class Format(str, Enum):
    csv = "csv"
    json = "json"


def _ledger(ctx: typer.Context):
    from bookpay.orders import Ledger

    return Ledger.open(state(ctx).settings.data_dir)


def _price(order: dict) -> str:
    from bookpay.money import format_amount

    if order["amount"] is None or not order["currency"]:
        return ""
    return format_amount(order["amount"], order["currency"])


def _status(order: dict) -> Cell:
    return (order["status"], STATUS_STYLE.get(order["status"], ""))


def _record(order: dict) -> dict:
    return {name: order.get(name) for name in COLUMNS}


@app.command("list")
def list_orders(
    ctx: typer.Context,
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            help="Only orders with this status (paid, refunded, ...).",
            autocompletion=complete_order_statuses,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List the orders, newest first.

    Example: bookpay orders list --status paid --json
    """
    with _ledger(ctx) as ledger:
        orders = ledger.list_orders(status)
    if as_json:
        emit_json([_record(order) for order in orders])
        return
    if not orders:
        sys.stderr.write("No orders" + (f" with status {status}." if status else " yet.") + "\n")
        return
    rows = [
        [
            order["id"],
            order["payment_intent"],
            order["item_id"] or "",
            _price(order),
            order["email"] or "",
            _status(order),
            human_time(order["created"]),
            human_time(order["fulfilled_at"]) if order["fulfilled_at"] else "",
        ]
        for order in orders
    ]
    print_table(
        ["Order", "PaymentIntent", "Item", "Amount", "Email", "Status", "Created", "Fulfilled"],
        rows,
        justify_right=["Amount"],
        detail_columns=["PaymentIntent", "Email", "Fulfilled"],
    )


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
    """Show one order, its receipt and the timeline of webhook events received for it.

    Example: bookpay orders show pi_3PgafyB7WZ01zgkW1kM1aBcD
    """
    from bookpay.commands.ledgerview import print_events, receipt_of, receipt_state

    with _ledger(ctx) as ledger:
        order = ledger.get_order(order_or_pi)
        events = ledger.events_for(order["payment_intent"])
        receipt = receipt_of(ledger, order["payment_intent"])
    if as_json:
        emit_json({**_record(order), "receipt": receipt, "events": events})
        return
    fields: list[tuple[str, Cell]] = [
        ("Order", order["id"]),
        ("PaymentIntent", order["payment_intent"]),
        ("Status", _status(order)),
        ("Item", order["item_id"] or ""),
        ("Amount", _price(order)),
        ("Email", order["email"] or ""),
        ("Ship to", one_line(order["shipping"])),
        ("Created", human_time(order["created"])),
        ("Updated", human_time(order["updated"])),
        ("Fulfilled", human_time(order["fulfilled_at"]) if order["fulfilled_at"] else "not yet"),
        ("Receipt", receipt_state(receipt)),
    ]
    if order["amount_refunded"]:
        refunded = dict(order, amount=order["amount_refunded"])
        fields.append(("Refunded", _price(refunded)))
    if order["failure_reason"]:
        fields.append(("Failure", order["failure_reason"]))
    if order["note"]:
        fields.append(("Note", order["note"]))
    print_fields(fields)
    sys.stdout.write("\n")
    print_events(events, title="Events")


@app.command("export")
def export_orders(
    ctx: typer.Context,
    fmt: Annotated[Format, typer.Option("--format", help="csv or json.")] = Format.csv,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to FILE instead of stdout.")
    ] = None,
) -> None:
    """Export every order (oldest first) as CSV or JSON.

    Example: bookpay orders export --format csv --output orders.csv
    """
    with _ledger(ctx) as ledger:
        orders = [_record(order) for order in reversed(ledger.list_orders())]
    if fmt is Format.json:
        text = json.dumps(orders, indent=2, ensure_ascii=False) + "\n"
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for order in orders:
            shipping = order["shipping"]
            writer.writerow({**order, "shipping": json.dumps(shipping) if shipping else ""})
        text = buffer.getvalue()
    if output is None:
        sys.stdout.write(text)
        return
    output.write_text(text, encoding="utf-8")
    sys.stderr.write(f"Wrote {len(orders)} order{'s' if len(orders) != 1 else ''} to {output}\n")
