"""What `orders show` and `intent show` both print from the ledger: lines, receipt, events, the
quote's totals and what Stripe Tax has been told."""

from __future__ import annotations

import sys
from collections.abc import Collection

from bookpay.commands.output import clipped, human_time, print_table


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
            clipped(line["item_id"]),
            clipped(line["title"]),
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


QUOTE_FIELDS = (
    "subtotal",
    "shipping",
    "shipping_rate",
    "tax",
    "tax_calculation",
    "total",
    "currency",
    "address",
)


def quote_record(quote: dict | None) -> dict | None:
    """The recorded quote's amounts, rate, Stripe Tax calculation and address (JSON)."""
    return None if quote is None else {name: quote.get(name) for name in QUOTE_FIELDS}


def quote_fields(quote: dict | None) -> list[tuple[str, str]]:
    """Subtotal, shipping (with its rate), tax (with Stripe Tax's calculation) and total of a
    recorded quote priced for an address; none for a quote of books alone."""
    from bookpay.money import format_amount

    if not quote or not (quote.get("address") or quote["shipping"] or quote["tax"]):
        return []
    currency = quote["currency"]
    rate = quote.get("shipping_rate_name") or quote.get("shipping_rate")
    calculation = quote.get("tax_calculation")
    return [
        ("Subtotal", format_amount(quote["subtotal"], currency)),
        ("Shipping", format_amount(quote["shipping"], currency) + (f" ({rate})" if rate else "")),
        (
            "Tax",
            format_amount(quote["tax"], currency) + (f" ({calculation})" if calculation else ""),
        ),
        ("Total", format_amount(quote["total"], currency)),
    ]


# An open dispute needs a person; a lost one is money gone; a won one is only history.
DISPUTE_STYLES = {"won": "green", "warning_closed": "green", "prevented": "green", "lost": "red"}


def dispute_cell(dispute: dict) -> tuple[str, str]:
    """A dispute the ledger recorded, for `orders show`: id, status in words, reason, amount."""
    from bookpay.money import format_amount
    from bookpay.statuses import in_words

    text = f"{dispute['id']}: {in_words(dispute['status'])}"
    if dispute.get("reason"):
        text += f", {dispute['reason']}"
    if isinstance(dispute.get("amount"), int) and dispute.get("currency"):
        text += f" ({format_amount(dispute['amount'], dispute['currency'])})"
    return (text, DISPUTE_STYLES.get(dispute["status"], "bold red"))


def tax_record_fields(
    records: list[dict], quote: dict | None, currency: str, releases: Collection[str] = ()
) -> list[tuple[str, str]]:
    """What Stripe Tax has been told of the order: its transaction, then a reversal per refund,
    each recorded (with Stripe's id) or still owed (with why the last try failed). A reversal
    of one of ``releases`` (Refunds that only let a hold go: a partial capture's rest) is a
    release's, not a refund's: no money went back."""
    if not records:
        if quote and quote.get("tax_calculation"):
            return [("Stripe Tax", "nothing recorded yet (the order is not fulfilled)")]
        return []
    total = quote.get("total") if quote else None
    settled = tax_settled([record for record in records if record["kind"] == "reversal"], total)
    fields = []
    for record in records:
        label = "Stripe Tax" if record["kind"] == "transaction" else "Tax reversal"
        what = "" if record["kind"] == "transaction" else _reversal_of(record, currency, releases)
        fields.append((label, what + tax_record_state(record, settled=settled)))
    return fields


def tax_settled(reversals: list[dict], total: int | None) -> bool:
    """Whether an order's reversals (``reversals``, of an order of ``total``) of refunds that
    failed were taken into account by later refunds' reversals: each of those took back less by
    what a failed refund's reversal took, so none of that is under-reported any more. Not
    without the order's total (no quote recorded)."""
    from bookpay.ledger.taxrecords import over_reversed

    return isinstance(total, int) and over_reversed(reversals, total) == 0


def under_reported(record: dict, *, settled: bool) -> bool:
    """Whether ``record`` is tax Stripe Tax under-reports, for a person to correct there: a
    reversal it has whose refund failed afterwards, not taken into account by a later one."""
    return record["status"] == "recorded" and bool(record.get("refund_failed_at")) and not settled


def ledger_releases(order: dict, records: list[dict]) -> set[str]:
    """The refund whose reversal is of what a partial capture released, as the ledger alone
    tells it (`orders show`): the oldest reversal of the rest's amount (the release is made at
    the capture, before any refund can be; ``intent.release_ids`` from Stripe's Refunds)."""
    amount, captured = order.get("amount"), order.get("amount_captured")
    if not isinstance(amount, int) or not isinstance(captured, int) or captured >= amount:
        return set()
    hold = amount - captured
    reversals = [record for record in records if record["kind"] == "reversal"]
    oldest = reversals[0] if reversals else None  # tax_records_for: oldest first
    return {oldest["refund"]} if oldest is not None and oldest["amount"] == hold else set()


def _reversal_of(record: dict, currency: str, releases: Collection[str] = ()) -> str:
    from bookpay.money import format_amount

    amount = "in full" if record["amount"] is None else format_amount(record["amount"], currency)
    what = "release" if record["refund"] in releases else "refund"
    return f"{what} {record['refund']} ({amount}): "


def tax_record_state(record: dict, *, settled: bool = False) -> str:
    """A record's state in words; ``settled``: its order's reversals of refunds that failed
    were taken into account by later refunds' reversals."""
    if record["status"] == "recorded":
        kind = "transaction" if record["kind"] == "transaction" else "reversal"
        found = f" {record['stripe_id']}" if record.get("stripe_id") else ""
        text = f"{kind}{found} recorded {human_time(record.get('recorded_at'))}"
        if record.get("refund_failed_at") and settled:
            text += (
                f"; the refund failed {human_time(record['refund_failed_at'])}, and a later"
                " refund's reversal took it into account"
            )
        elif record.get("refund_failed_at"):
            # Stripe Tax has no way to undo a reversal: a person must correct it there.
            text += (
                f"; the refund failed {human_time(record['refund_failed_at'])}: Stripe Tax"
                " under-reports this tax (correct it in Stripe Tax)"
            )
        return text
    if record["status"] == "skipped":
        return f"nothing to record: {record.get('last_error') or 'no reason recorded'}"
    if record["status"] == "refused":
        return (
            f"refused, not recorded (record it in Stripe Tax by hand): "
            f"{record.get('last_error') or 'no reason recorded'}"
        )
    tries = record.get("attempts") or 0
    if not tries and record.get("last_error"):  # waiting (for its transaction): not a try
        text = (
            f"owed, not recorded yet (next {human_time(record.get('next_attempt_at'))}): "
            f"{record['last_error']}"
        )
    elif not tries:
        text = "owed, not recorded yet (queued)"
    else:
        text = (
            f"owed, not recorded yet ({tries} attempt{'s' if tries != 1 else ''}, next "
            f"{human_time(record.get('next_attempt_at'))}): {record.get('last_error') or ''}"
        )
    if record.get("refund_failed_at"):
        failed = f"; the refund failed {human_time(record['refund_failed_at'])}"
        text = text.rstrip(" .:")  # an error's last sentence goes on with this
        if record.get("reversed") is None:  # never worked out, so never sent
            text += f"{failed} before it was sent: it will not be sent"
        else:
            text += (
                f"{failed}: it is sent as worked out (Stripe Tax may have it from the try whose"
                " answer was lost), "
                + (
                    "and a later refund's reversal took it into account"
                    if settled
                    else "then Stripe Tax under-reports this tax (correct it in Stripe Tax)"
                )
            )
    return text
