"""`bookpay refund`: give money back."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from bookpay.cli import state
from bookpay.commands.output import JsonOption, emit_json, print_fields
from bookpay.commands.params import IntentArg, check_amount, check_request_id, parse_amount
from bookpay.money import format_amount

app = typer.Typer(help="Refund payments.", no_args_is_help=True)


class RefundReason(str, Enum):
    """Stripe's refund reasons a caller may give."""

    duplicate = "duplicate"
    fraudulent = "fraudulent"
    requested_by_customer = "requested_by_customer"


@app.command("create")
def create(
    ctx: typer.Context,
    intent_id: IntentArg,
    amount: Annotated[
        int | None,
        typer.Option(
            "--amount",
            metavar="N",
            parser=parse_amount,
            help="How much to refund, in the currency's minor unit (500 is $5.00, ¥500 or "
            "0.500 KWD); default: all that remains.",
        ),
    ] = None,
    reason: Annotated[
        RefundReason | None,
        typer.Option("--reason", help="Why, as Stripe records it."),
    ] = None,
    request_id: Annotated[
        str | None,
        typer.Option(
            "--request-id",
            callback=check_request_id,
            help="Names this refund request (say, a ticket): one request id is one refund. "
            "Repeating it returns that refund; repeating it with another amount or reason "
            "is refused.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Refund a PaymentIntent in full, or in part with --amount.

    Example: bookpay refund create pi_123 --amount 500 --request-id ticket-42
    """
    from bookpay.payments import RefundRequestReused

    gateway = state(ctx).gateway()
    check_amount(gateway, intent_id, amount)
    try:
        refund = gateway.create_refund(
            intent_id,
            amount=amount,
            reason=reason.value if reason else None,
            request_id=request_id,
        )
    except RefundRequestReused as exc:
        # Say it in the command's words: the option the user typed, never the idempotency key.
        if exc.refund is None:  # the first request under the id was refused: no refund exists
            raise RefundRequestReused(
                f"No refund was made under --request-id {request_id!r}: Stripe refused the "
                "request first made with it, and keeps that refusal for 24 hours.",
                hint="Repeat it exactly to see why, or use a new --request-id.",
                request_id=exc.request_id,
                refund=None,
                error_type=exc.error_type,
            ) from None
        earlier = exc.refund
        made = f" (refund {earlier['id']})" if earlier.get("id") else ""
        raise RefundRequestReused(
            f"--request-id {request_id!r} was already used{made} with another amount or "
            "reason: one request id is one refund.",
            hint="Repeat it exactly to see that refund, or use a new --request-id "
            "for another refund.",
            request_id=exc.request_id,
            refund=exc.refund,
            error_type=exc.error_type,
        ) from None
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
