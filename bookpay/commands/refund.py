"""`bookpay refund`: give money back."""

from __future__ import annotations

from typing import Annotated

import typer

from bookpay.cli import state
from bookpay.commands.output import JsonOption, emit_json, print_fields
from bookpay.commands.params import IntentArg
from bookpay.money import format_amount

app = typer.Typer(help="Refund payments.", no_args_is_help=True)


@app.command("create")
def create(
    ctx: typer.Context,
    intent_id: IntentArg,
    amount: Annotated[
        int | None,
        typer.Option(
            "--amount", min=1, help="Minor units (cents) to refund; default: all that remains."
        ),
    ] = None,
    reason: Annotated[
        str | None,
        typer.Option("--reason", help="duplicate, fraudulent or requested_by_customer."),
    ] = None,
    request_id: Annotated[
        str | None,
        typer.Option(
            "--request-id",
            help="Names this refund request (say, a ticket): repeating it never refunds twice.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Refund a PaymentIntent in full, or in part with --amount.

    Example: bookpay refund create pi_123 --amount 500 --request-id T-1234
    """
    refund = (
        state(ctx)
        .gateway()
        .create_refund(intent_id, amount=amount, reason=reason, request_id=request_id)
    )
    if as_json:
        emit_json(refund)
        return
    print_fields(
        [
            ("Refund", refund["id"]),
            ("Status", refund["status"]),
            ("Amount", format_amount(refund["amount"], refund["currency"])),
            ("PaymentIntent", refund.get("payment_intent") or intent_id),
            ("Reason", refund.get("reason") or "-"),
        ]
    )
