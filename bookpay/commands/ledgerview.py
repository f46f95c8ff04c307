"""What `orders show` and `intent show` both print from the ledger: lines, receipt and events."""

from __future__ import annotations

import sys

from bookpay.commands.output import human_time, print_table


def receipt_state(receipt: dict | None) -> str:
    """The receipt in a few words: queued, sent when and where, failed with the error, ..."""
    if receipt is None:
        return "none (the order has not been fulfilled)"
    to = f" to {receipt['recipient']}" if receipt.get("recipient") else ""
    status = receipt.get("status")
    if status == "sent":
        where = f" ({receipt['location']})" if receipt.get("location") else ""
        return f"sent {human_time(receipt.get('sent_at'))}{to}{where}"
    if status == "undeliverable":
        return f"undeliverable{to}: {receipt.get('last_error') or 'no reason recorded'}"
    if status == "skipped":
        return f"not sent: {receipt.get('location') or 'no address to send it to'}"
    if status == "pending" and receipt.get("last_error"):
        tries = receipt.get("attempts") or 0
        return (
            f"failed{to} ({tries} attempt{'s' if tries != 1 else ''}, next "
            f"{human_time(receipt.get('next_attempt_at'))}): {receipt['last_error']}"
        )
    if status == "pending":
        return f"queued{to}"
    return str(status)


def print_events(events: list[dict], *, title: str = "Events received by this shop") -> None:
    """The webhook events the shop received for one PaymentIntent, oldest first."""
    if not events:
        sys.stdout.write("No webhook events received for it.\n")
        return
    rows = [
        [
            human_time(event.get("received_at")),
            event["id"],
            event["type"],
            str(event.get("deliveries") or 1),
            event.get("outcome") or "received, not processed",
        ]
        for event in events
    ]
    print_table(
        ["Received", "Event", "Type", "Deliveries", "Outcome"],
        rows,
        title=title,
        justify_right=["Deliveries"],
        wrap_columns=["Outcome"],
        detail_columns=["Event"],
    )


def print_lines_table(lines: list[dict], currency: str) -> None:
    """An order's lines: book, title, quantity, unit price and amount."""
    from bookpay.money import format_amount

    if not lines:
        sys.stdout.write("No order lines known for it.\n")
        return
    rows = [
        [
            line["item_id"],
            line["title"],
            str(line["quantity"]),
            format_amount(line["unit_amount"], currency),
            format_amount(line["line_amount"], currency),
        ]
        for line in lines
    ]
    print_table(
        ["Item", "Title", "Qty", "Unit", "Amount"],
        rows,
        title="Lines",
        justify_right=["Qty", "Unit", "Amount"],
        wrap_columns=["Title"],
    )
