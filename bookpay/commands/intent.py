"""`bookpay intent`: PaymentIntents, for developers and support engineers."""

from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from itertools import islice
from typing import Annotated

import typer

from bookpay.address import one_line
from bookpay.cli import state
from bookpay.commands.output import Cell, JsonOption, emit_json, info, print_fields, print_table
from bookpay.money import format_amount

app = typer.Typer(
    help="Create, inspect, confirm, capture and cancel PaymentIntents.", no_args_is_help=True
)

IntentArg = Annotated[str, typer.Argument(metavar="PI", help="A PaymentIntent id (pi_...).")]

STATUS_STYLES = {
    "succeeded": "bold green",
    "processing": "cyan",
    "requires_payment_method": "yellow",
    "requires_confirmation": "yellow",
    "requires_action": "yellow",
    "requires_capture": "cyan",
    "canceled": "dim",
}


def status_cell(status: str) -> Cell:
    return (status, STATUS_STYLES.get(status, ""))


def when(timestamp: int | None) -> str:
    if not timestamp:
        return "-"
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _summary(intent: dict) -> None:
    """What a create, confirm or cancel did, in one short view."""
    rows: list[tuple[str, Cell]] = [
        ("PaymentIntent", intent["id"]),
        ("Status", status_cell(intent["status"])),
        ("Amount", format_amount(intent["amount"], intent["currency"])),
    ]
    if intent["status"] == "requires_capture":
        rows.append(("Capturable", format_amount(intent["amount_capturable"], intent["currency"])))
    received = intent.get("amount_received") or 0
    if intent["status"] == "succeeded" and received != intent["amount"]:
        rows.append(("Captured", format_amount(received, intent["currency"])))
    action = intent.get("next_action") or {}
    redirect = action.get("redirect_to_url") or {}
    if redirect.get("url"):
        rows.append(("Authenticate at", redirect["url"]))
    error = intent.get("last_payment_error")
    if error:
        rows.append(("Last error", _error_text(error)))
    print_fields(rows)


def _error_text(error: dict) -> str:
    codes = "/".join(c for c in (error.get("code"), error.get("decline_code")) if c)
    return f"{error.get('message', '')} ({codes})" if codes else error.get("message", "")


@app.command("create")
def create(
    ctx: typer.Context,
    item: Annotated[
        str, typer.Option("--item", help="The book's id (see `bookpay catalog list`).")
    ],
    email: Annotated[
        str | None, typer.Option("--email", help="Where Stripe sends the receipt.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a PaymentIntent for a book, priced from the catalog.

    Example: bookpay intent create --item 1 --email reader@example.com
    """
    st = state(ctx)
    book = st.catalog().get(item)
    intent = st.gateway().create_intent(book, email=email)
    if as_json:
        emit_json(intent)
    else:
        _summary(intent)
        info(f"Confirm it with: bookpay intent confirm {intent['id']} --card 4242424242424242")


@app.command("show")
def show(ctx: typer.Context, intent_id: IntentArg, as_json: JsonOption = False) -> None:
    """Show a PaymentIntent: status, amount, book, customer, charge, refunds, errors, events.

    Example: bookpay intent show pi_3MtwBwLkdIwHu7ix28a3tqPa
    """
    st = state(ctx)
    gateway = st.gateway()
    intent = gateway.retrieve_intent(intent_id)
    refunds = gateway.list_refunds(intent_id)
    timeline = _local_timeline(st, intent_id)
    if as_json:
        emit_json({"payment_intent": intent, "refunds": refunds, "events": timeline})
        return
    metadata = intent.get("metadata") or {}
    charge = intent.get("latest_charge")
    charge = charge if isinstance(charge, dict) else ({"id": charge} if charge else None)
    billing = (charge or {}).get("billing_details") or {}
    rows: list[tuple[str, Cell]] = [
        ("PaymentIntent", intent["id"]),
        ("Status", status_cell(intent["status"])),
        ("Amount", format_amount(intent["amount"], intent["currency"])),
        ("Book", f"{metadata.get('book_title', '-')} (item {metadata.get('item_id', '-')})"),
        ("Email", intent.get("receipt_email") or billing.get("email") or "-"),
        ("Shipping", one_line(intent.get("shipping"))),
        ("Created", when(intent.get("created"))),
    ]
    if charge:
        details = charge.get("status", "")
        card = ((charge.get("payment_method_details") or {}).get("card")) or {}
        if card.get("last4"):
            details += f", {card.get('brand', 'card')} ending {card['last4']}"
        rows.append(("Latest charge", f"{charge['id']} ({details})" if details else charge["id"]))
        if charge.get("receipt_url"):
            rows.append(("Receipt", charge["receipt_url"]))
    for refund in refunds:
        amount = format_amount(refund["amount"], refund["currency"])
        reason = f", {refund['reason']}" if refund.get("reason") else ""
        rows.append(("Refund", f"{refund['id']}: {amount} ({refund['status']}{reason})"))
    redirect = (intent.get("next_action") or {}).get("redirect_to_url") or {}
    if redirect.get("url"):
        rows.append(("Authenticate at", redirect["url"]))
    error = intent.get("last_payment_error")
    if error:
        rows.append(("Last payment error", (_error_text(error), "red")))
    if intent.get("cancellation_reason"):
        rows.append(("Canceled because", intent["cancellation_reason"]))
    print_fields(rows)
    if timeline:
        print()
        print_table(
            ["Received", "Event", "Type", "Outcome"],
            [
                [e.get("received_at") or "", e["id"], e["type"], e.get("outcome") or "pending"]
                for e in timeline
            ],
            title="Events received by this shop",
        )


def _local_timeline(st, intent_id: str) -> list[dict]:
    """Events this shop's webhook received for the intent, from the local orders ledger."""
    from bookpay.orders import DB_NAME, Ledger

    if not (st.settings.data_dir / DB_NAME).exists():
        return []  # no server has run here yet: nothing received, and nothing to create
    with Ledger.open(st.settings.data_dir) as ledger:
        return ledger.events_for(intent_id)


class Status(str, Enum):
    """A PaymentIntent's status, as Stripe names it."""

    requires_payment_method = "requires_payment_method"
    requires_confirmation = "requires_confirmation"
    requires_action = "requires_action"
    processing = "processing"
    requires_capture = "requires_capture"
    canceled = "canceled"
    succeeded = "succeeded"


@app.command("list")
def list_intents(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100, help="How many to show.")] = 10,
    status: Annotated[
        Status | None, typer.Option("--status", help="Only intents with this status.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List recent PaymentIntents, newest first.

    Example: bookpay intent list --limit 5 --status succeeded
    """
    gateway = state(ctx).gateway()
    if status is None:
        intents = gateway.list_intents(limit=limit)
    else:
        # Stripe's list API cannot filter by status: page through until enough match.
        matching = (i for i in gateway.iter_intents() if i["status"] == status.value)
        intents = list(islice(matching, limit))
    if as_json:
        emit_json(intents)
        return
    rows = [
        [
            i["id"],
            status_cell(i["status"]),
            format_amount(i["amount"], i["currency"]),
            (i.get("metadata") or {}).get("book_title", "-"),
            when(i.get("created")),
        ]
        for i in intents
    ]
    print_table(
        ["PaymentIntent", "Status", "Amount", "Book", "Created"], rows, justify_right=["Amount"]
    )


@app.command("confirm")
def confirm(
    ctx: typer.Context,
    intent_id: IntentArg,
    card: Annotated[
        str,
        typer.Option("--card", help="A test card number, a pm_card_... token or a pm_ id."),
    ] = "4242424242424242",
    return_url: Annotated[
        str | None,
        typer.Option(
            "--return-url",
            help="Where 3-D Secure returns to (default: the shop's /success page, from"
            " BOOKPAY_BASE_URL or http://127.0.0.1:4242).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Confirm a PaymentIntent with a test card (test mode and the emulator only).

    A declined card exits with status 3 and Stripe's reason. Stripe requires a return_url when
    confirming on the server; without --return-url the shop's success page is sent.

    Example: bookpay intent confirm pi_123 --card 4000000000000002
    """
    gateway = state(ctx).gateway()
    method = gateway.payment_method_for(card)
    intent = gateway.confirm_intent(intent_id, payment_method=method, return_url=return_url)
    if as_json:
        emit_json(intent)
    else:
        _summary(intent)


@app.command("capture")
def capture(
    ctx: typer.Context,
    intent_id: IntentArg,
    amount: Annotated[
        int | None,
        typer.Option(
            "--amount",
            min=1,
            help="Capture this much (in the currency's minor unit) and release the rest.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Capture an authorized PaymentIntent (one created with capture_method=manual).

    Example: bookpay intent capture pi_123 --amount 1500
    """
    intent = state(ctx).gateway().capture_intent(intent_id, amount=amount)
    if as_json:
        emit_json(intent)
    else:
        _summary(intent)


@app.command("cancel")
def cancel(
    ctx: typer.Context,
    intent_id: IntentArg,
    reason: Annotated[
        str | None,
        typer.Option("--reason", help="duplicate, fraudulent, requested_by_customer or abandoned."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a PaymentIntent that has not succeeded.

    Example: bookpay intent cancel pi_123 --reason abandoned
    """
    intent = state(ctx).gateway().cancel_intent(intent_id, reason=reason)
    if as_json:
        emit_json(intent)
    else:
        _summary(intent)
