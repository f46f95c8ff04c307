"""`bookpay intent`: PaymentIntents, for developers and support engineers."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from itertools import islice
from typing import Annotated

import typer

from bookpay.address import one_line
from bookpay.cli import state
from bookpay.commands import paging
from bookpay.commands.ledgerview import (
    DISPUTE_STYLES,
    print_events,
    print_lines_table,
    quote_fields,
    quote_record,
    receipt_state,
    tax_record_fields,
)
from bookpay.commands.output import (
    Cell,
    JsonOption,
    clipped,
    emit_json,
    human_time,
    info,
    print_fields,
    print_table,
)
from bookpay.commands.params import BookOption, IntentArg, check_amount, check_email, parse_amount
from bookpay.money import format_amount

app = typer.Typer(
    help="Create, inspect, confirm, capture and cancel PaymentIntents.", no_args_is_help=True
)

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
    rows += _next_action_fields(intent)
    error = intent.get("last_payment_error")
    if error:
        rows.append(("Last error", clipped(_error_text(error))))
    print_fields(rows)


# Where a next_action of each type sends the customer (Stripe's hosted pages).
_ACTION_URLS = ("url", "hosted_verification_url", "hosted_instructions_url", "hosted_voucher_url")


def _next_action_fields(intent: dict) -> list[tuple[str, Cell]]:
    """What the customer must do next: "Authenticate at" a 3-D Secure page, else the action's
    type in words with the Stripe page that shows the customer how (microdeposits to verify, a
    bank transfer's instructions, ...); nothing when no action is waiting."""
    action = intent.get("next_action")
    if not isinstance(action, dict) or not action.get("type"):
        return []
    kind = str(action["type"])
    details = action.get(kind)
    details = details if isinstance(details, dict) else {}
    url = next((details[key] for key in _ACTION_URLS if isinstance(details.get(key), str)), None)
    if kind == "redirect_to_url" and url:
        return [("Authenticate at", url)]
    text = kind.replace("_", " ")
    if url:
        text += f": {url}"
    elif kind == "use_stripe_sdk":
        text += " (the customer's page finishes it with Stripe.js)"
    return [("Next action", text)]


def _error_text(error: dict) -> str:
    """Stripe's message and codes; its type in words when it gave no message (a message is
    optional in a last_payment_error, its type is not)."""
    from bookpay.errors import stripe_codes

    codes = stripe_codes(error.get("code"), error.get("decline_code"))
    message = error.get("message") or (error.get("type") or "error").replace("_", " ")
    return f"{message} ({codes})" if codes else message


@app.command("create", short_help="Create a PaymentIntent for books, priced from the catalog.")
def create(
    ctx: typer.Context,
    item: BookOption,
    email: Annotated[
        str | None,
        typer.Option("--email", callback=check_email, help="Where Stripe sends the receipt."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a PaymentIntent for one or more books, priced from the catalog.

    The quote (its lines and total) is recorded in this shop's ledger under the order id the
    PaymentIntent's metadata names, as the checkout records it, with the order, pending until
    the payment's webhook events move it on: `bookpay orders show ORDER` finds it at once.

    Example: bookpay intent create --item 1:2 --item 3 --email reader@example.com
    """
    from bookpay.commands.params import parse_items
    from bookpay.ledger import open_ledger
    from bookpay.quote import check_chargeable, new_order_id, quote_items

    st = state(ctx)
    catalog = st.catalog()
    quote = check_chargeable(quote_items(catalog, parse_items(item, catalog)))
    order_id = new_order_id()
    # The ledger first: one that cannot be opened stops the command before anything is created
    # (exit 5), rather than after a PaymentIntent nobody was shown.
    with open_ledger(st.settings) as ledger:
        intent = st.gateway().create_intent(quote, email=email, order_id=order_id)
        _record_quote(ledger, intent["id"], order_id, quote, email)
    if as_json:
        emit_json(intent)
    else:
        _summary(intent)
        info(f"Order {order_id}: {summary_of(quote)}.")
        info(f"Confirm it with: bookpay intent confirm {intent['id']} --card 4242424242424242")


def summary_of(quote) -> str:
    return ", ".join(f"{line.quantity} x {line.title} ({line.item_id})" for line in quote.lines)


def _record_quote(ledger, intent_id: str, order_id: str, quote, email: str | None) -> None:
    """The quote into the ledger, so that fulfilment checks the payment against it, and the
    order with it (pending). The PaymentIntent exists by now and is shown whatever happens
    here: without its quote it still works (fulfilment then prices its metadata's lines, and
    its first webhook event writes the order)."""
    try:
        ledger.record_quote(intent_id, order_id, quote, email=email)
    except Exception as exc:  # the database went away in between: say so, show the intent
        reason = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        info(f"Warning: the quote was not recorded in the ledger: {reason}")


@app.command("show", short_help="Show a PaymentIntent, its totals, receipt and events.")
def show(ctx: typer.Context, intent_id: IntentArg, as_json: JsonOption = False) -> None:
    """Show a PaymentIntent: status, totals, book, customer, charge, refunds, dispute, receipt.

    The totals are what a customer asks about: the amount, what was refunded in all, what the
    shop keeps (net), and a dispute if there is one. The receipt and the webhook events come from
    this shop's orders ledger.

    Example: bookpay intent show pi_3MtwBwLkdIwHu7ix28a3tqPa
    """
    st = state(ctx)
    gateway = st.gateway()
    intent = gateway.retrieve_intent(intent_id)
    refunds = gateway.list_refunds(intent_id)
    latest = intent.get("latest_charge")
    charge = latest if isinstance(latest, dict) else ({"id": latest} if latest else None)
    # Disputes are asked for only when the charge says there is one, or cannot say (an id only).
    unknown = isinstance(latest, str) and bool(latest)
    disputes = gateway.list_disputes(intent_id) if unknown or (charge or {}).get("disputed") else []
    timeline, receipt, lines, quote, taxes, (order_id, other) = _local_records(st, intent)
    if as_json:
        emit_json(
            {
                "payment_intent": intent,
                "order": {
                    "id": order_id,
                    "another_payment": other,
                    "lines": lines,
                    "quote": quote_record(quote),
                },
                "refunds": refunds,
                "disputes": disputes,
                "totals": totals(intent, refunds, charge, disputes),
                "receipt": receipt,
                "events": timeline if timeline is not None else [],
            }
        )
        return
    billing = (charge or {}).get("billing_details") or {}
    money = totals(intent, refunds, charge, disputes)
    currency = intent["currency"]
    rows: list[tuple[str, Cell]] = [
        ("PaymentIntent", intent["id"]),
        ("Status", status_cell(intent["status"])),
        ("Amount", format_amount(intent["amount"], currency)),
    ]
    if money["received"] != intent["amount"]:
        rows.append(("Received", format_amount(money["received"], currency)))
    if intent["status"] == "requires_capture":
        capturable = intent.get("amount_capturable") or 0
        rows.append(("Capturable", format_amount(capturable, currency)))
    if money["received"]:
        rows.append(("Refunded", format_amount(money["refunded"], currency)))
        if money["lost_to_disputes"]:
            rows.append(("Lost to disputes", format_amount(money["lost_to_disputes"], currency)))
        rows.append(("Net", format_amount(money["net"], currency)))
    if order_id:
        rows.append(("Order", _order_text(intent, order_id, other)))
    rows += quote_fields(quote)
    rows += [
        ("Email", clipped(intent.get("receipt_email") or billing.get("email") or "-")),
        ("Shipping", clipped(one_line(intent.get("shipping")))),
        ("Created", human_time(intent.get("created"))),
    ]
    if charge:
        details = ", ".join(
            part for part in (charge.get("status"), clipped(method_text(charge))) if part
        )
        rows.append(("Latest charge", f"{charge['id']} ({details})" if details else charge["id"]))
        if charge.get("receipt_url"):
            rows.append(("Stripe receipt", charge["receipt_url"]))
    rows += refund_fields(refunds, charge, currency)
    for dispute in disputes:
        style = DISPUTE_STYLES.get(dispute.get("status"), "bold red")
        rows.append(("Dispute", (dispute_text(dispute), style)))
    if charge and charge.get("disputed") and not disputes:
        rows.append(("Dispute", ("the charge is disputed", "bold red")))
    rows += _next_action_fields(intent)
    error = intent.get("last_payment_error")
    if error:
        rows.append(("Last payment error", (clipped(_error_text(error)), "red")))
    if intent.get("cancellation_reason"):
        rows.append(("Canceled because", intent["cancellation_reason"]))
    if timeline is not None:
        rows.append(("Receipt", receipt_state(receipt)))
        rows += tax_record_fields(taxes, quote, currency, release_ids(refunds, charge))
    print_fields(rows)
    print()
    print_lines_table(lines, currency)
    if timeline:
        print()
        print_events(timeline)


def refund_fields(
    refunds: list[dict], charge: dict | None, currency: str
) -> list[tuple[str, Cell]]:
    """A row per refund, but for what only let a hold go: "Released", as the totals count it.

    Stripe releases what a manual capture did not take (a partial capture's rest, a canceled or
    expired authorization) as "refunded" on the Charge, and may list a Refund for it (the
    emulator does, and an expired one's reason is ``expired_uncaptured_charge``); that money was
    never taken. A Refund of a Charge never captured is such a release, and so is the oldest
    Refund of a partially captured one when its amount is the rest (the release is made at the
    capture, before any refund can be). A release Stripe lists no Refund for is shown from the
    Charge (``ledger.model.released``); ``--json`` keeps the Refunds as Stripe sends them."""
    from bookpay.ledger.model import released

    charge = charge or {}
    hold = released(charge)
    releases = release_ids(refunds, charge)
    rows: list[tuple[str, Cell]] = []
    for refund in refunds:
        amount = format_amount(refund["amount"], refund["currency"])
        if refund["id"] in releases:
            rows.append(("Released", f"{refund['id']}: {amount} ({_release_text(charge)})"))
            continue
        reason = f", {refund['reason']}" if refund.get("reason") else ""
        status = refund.get("status") or "status unknown"  # Stripe's may be null
        rows.append(("Refund", f"{refund['id']}: {amount} ({status}{reason})"))
    # Released as Stripe's amount_refunded says (an authorization still held has released
    # nothing), where no Refund stands for it.
    let_go = min(hold, charge.get("amount_refunded") or 0)
    if let_go > 0 and not releases:
        rows.append(("Released", f"{format_amount(let_go, currency)} ({_release_text(charge)})"))
    return rows


def release_ids(refunds: list[dict], charge: dict | None) -> set[str]:
    """The Refunds that only let a hold go (``refund_fields``), by id."""
    from bookpay.ledger.model import released

    charge = charge or {}
    hold = released(charge)
    own = [r for r in refunds if r.get("charge") in (None, charge.get("id"))]
    releases: set[str] = set()
    if charge.get("captured") is False:
        releases = {r["id"] for r in own}
    elif hold:
        oldest = min(reversed(own), key=lambda r: r.get("created") or 0, default=None)
        if oldest is not None and oldest["amount"] == hold:
            releases.add(oldest["id"])
    releases |= {r["id"] for r in own if r.get("reason") == "expired_uncaptured_charge"}
    return releases


def _release_text(charge: dict) -> str:
    whole = charge.get("captured") is False
    return f"{'the whole' if whole else 'the rest of the'} hold, not a refund"


def method_text(charge: dict) -> str:
    """How a Charge was paid, in a few words: ``visa ending 4242`` for a card, else the payment
    method's type with its bank and last four digits where it has them (``us_bank_account
    STRIPE TEST BANK ending 6789``, ``sepa_debit ending 3000``, ``link``)."""
    details = charge.get("payment_method_details")
    if not isinstance(details, dict) or not details.get("type"):
        return ""
    kind = str(details["type"])
    own = details.get(kind) if isinstance(details.get(kind), dict) else {}
    parts = [own.get("brand") or "card"] if kind == "card" else [kind, own.get("bank_name")]
    if own.get("last4"):
        parts.append(f"ending {own['last4']}")
    return " ".join(str(part) for part in parts if part)


def totals(
    intent: dict, refunds: list[dict], charge: dict | None, disputes: list[dict] = ()
) -> dict:
    """Amount, received, refunded in all (pending refunds included, as Stripe counts them), lost
    to disputes, and net: what the shop keeps.

    Minor units, in the intent's currency. What a partial capture or a cancellation released was
    never received, so it is not refunded (``charge_refunded``), though Stripe counts it in the
    Charge's ``amount_refunded``. A lost dispute's amount is the customer's for good; an open
    one's may yet come back, so it is not taken from the net (the dispute is shown beside it),
    as `report sales` counts them.
    """
    from bookpay.ledger.model import charge_refunded

    received = intent.get("amount_received") or 0
    if charge and isinstance(charge.get("amount_refunded"), int):
        refunded = charge_refunded(charge)
    else:
        refunded = sum(r["amount"] for r in refunds if r.get("status") in ("succeeded", "pending"))
    lost = sum(d.get("amount") or 0 for d in disputes if d.get("status") == "lost")
    return {
        "amount": intent["amount"],
        "received": received,
        "refunded": refunded,
        "lost_to_disputes": lost,
        "net": received - refunded - lost,
        "currency": intent["currency"],
    }


def dispute_text(dispute: dict) -> str:
    amount = format_amount(dispute["amount"], dispute["currency"])
    text = f"{dispute['id']}: {amount}, {dispute.get('reason') or 'no reason given'}"
    text += f", {dispute.get('status', '').replace('_', ' ')}"
    due = (dispute.get("evidence_details") or {}).get("due_by")
    if due and dispute.get("status") in ("needs_response", "warning_needs_response"):
        text += f" (evidence due by {human_time(due)})"
    return text


def _order_text(intent: dict, order_id: str, other: str | None) -> str:
    """The order row: its id, and when the metadata's order id is another payment's order, so
    (each id cut, as any value from the metadata is shown)."""
    if other is None:
        return clipped(order_id)
    named = (intent.get("metadata") or {}).get("order_id")
    if named == order_id:
        return f"{clipped(order_id)} (another payment's order: {clipped(other)})"
    return (
        f"{clipped(order_id)} (its metadata names {clipped(named)}, another payment's order: "
        f"{clipped(other)})"
    )


def _local_records(st, intent: dict) -> tuple:
    """From this shop's ledger: the events its webhook received for the intent, its receipt,
    the order's lines (else what the intent's metadata says it buys), its recorded quote, its
    Stripe Tax records, and (order id, another PaymentIntent), as ``order_of_intent`` says.

    No events or receipt (None, None), no quote and no tax records when there is no ledger
    here: it says so, and nothing is created.
    """
    from bookpay.ledger import LedgerMissing, locate, open_ledger
    from bookpay.orderlines import lines_of_intent, named_quote, order_of_intent

    catalog = st.catalog()
    try:
        ledger = open_ledger(st.settings, create=False)  # a read: never create one
    except LedgerMissing:
        where = locate(st.settings.database_url, st.settings.data_dir).masked
        info(f"No orders ledger at {where}: events this shop received are not shown.")
        lines = lines_of_intent(intent, None, catalog)
        return None, None, lines, None, [], order_of_intent(intent, None)
    with ledger:
        quote = named_quote(ledger.quote_for(intent["id"]), catalog)
        return (
            ledger.events_for(intent["id"]),
            ledger.receipt_for(intent["id"]),
            lines_of_intent(intent, ledger, catalog),
            quote,
            ledger.tax_records_for(quote["order_id"]) if quote else [],
            order_of_intent(intent, ledger),
        )


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
    limit: paging.LimitOption = paging.PAGE,
    starting_after: paging.StartingAfterOption = None,
    every: paging.AllOption = False,
    status: Annotated[
        list[Status] | None,
        typer.Option(
            "--status",
            metavar="STATUS",
            help=f"Only intents with this status: {', '.join(s.value for s in Status)}.",
            callback=paging.once,
        ),
    ] = None,
    email: paging.EmailOption = None,
    since: paging.SinceOption = None,
    until: paging.UntilOption = None,
    as_json: JsonOption = False,
) -> None:
    """List PaymentIntents, newest first, a page at a time.

    Example: bookpay intent list --limit 5 --status succeeded --since 2026-01-01
    """
    wanted: Status | None = paging.only(status)
    gateway = state(ctx).gateway()
    start, end = paging.moments(since, until)
    # Stripe's created is whole seconds: a moment within a second is rounded up, as a whole
    # second c is at or after x, or before x, exactly when it is so of ceil(x).
    created = {}
    if start:
        created["gte"] = math.ceil(start.timestamp())
    if end:
        created["lt"] = math.ceil(end.timestamp())
    # Stripe filters by date itself; status and e-mail are checked here, page by page.
    filtered = every or wanted is not None or email is not None
    intents = gateway.iter_intents(
        page_size=100 if filtered else min(limit + 1, 100),
        starting_after=starting_after,
        created=created or None,
    )
    matching = (
        i
        for i in intents
        if (wanted is None or i["status"] == wanted.value)
        and (email is None or paging.same_email(_email_of(i), email))
    )
    columns = ["PaymentIntent", "Status", "Amount", "Book", "Created"]
    if every:
        count = paging.emit(
            matching, as_json=as_json, columns=columns, row=_row, justify_right=["Amount"]
        )
    else:
        page = list(islice(matching, limit + 1))
        more, page = len(page) > limit, page[:limit]
        count = len(page)
        if as_json:
            emit_json(page)
        elif page:
            print_table(
                columns,
                [_row(i) for i in page],
                justify_right=["Amount"],
                wrap_columns=["Book"],
                detail_columns=["Book", "Created"],
            )
        paging.page_note("PaymentIntent", page, more, lambda i: i["id"])
    if not count:  # on stderr with --json too: stdout stays `[]` for scripts
        info(paging.nothing("PaymentIntents", starting_after, wanted, email or since or until))


def _email_of(intent: dict) -> str:
    return intent.get("receipt_email") or (intent.get("metadata") or {}).get("email") or ""


def _row(i: dict) -> list[Cell]:
    return [
        i["id"],
        status_cell(i["status"]),
        format_amount(i["amount"], i["currency"]),
        clipped((i.get("metadata") or {}).get("book_title") or i.get("description") or "-"),
        human_time(i.get("created")),
    ]


class CancelReason(str, Enum):
    """Stripe's cancellation_reason values a caller may give."""

    duplicate = "duplicate"
    fraudulent = "fraudulent"
    requested_by_customer = "requested_by_customer"
    abandoned = "abandoned"


class ThreeDS(str, Enum):
    complete = "complete"
    fail = "fail"


# The card `intent confirm` confirms with when --card names none.
DEFAULT_CARD = "4242424242424242"


@app.command("confirm", short_help="Confirm a PaymentIntent with a test card.")
def confirm(
    ctx: typer.Context,
    intent_id: IntentArg,
    card: Annotated[
        str | None,
        typer.Option(
            "--card",
            callback=paging.not_blank,
            help="A test card number, a pm_card_... token or a pm_ id (default: "
            f"{DEFAULT_CARD}, unless --3ds finishes a challenge already waiting).",
        ),
    ] = None,
    return_url: Annotated[
        str | None,
        typer.Option(
            "--return-url",
            callback=paging.not_blank,
            help="Where 3-D Secure returns to (default: the shop's /success page, from"
            " BOOKPAY_BASE_URL or http://127.0.0.1:4242).",
        ),
    ] = None,
    three_ds: Annotated[
        ThreeDS | None,
        typer.Option(
            "--3ds",
            help="Finish a 3-D Secure challenge: complete or fail (emulator only; in Stripe "
            "test mode the URL to open is printed). Without --card, the challenge the "
            "PaymentIntent is waiting on, without confirming it again.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Confirm a PaymentIntent with a test card (test mode and the emulator only).

    A declined card, or a failed 3-D Secure authentication, exits with status 3 and Stripe's
    reason. Stripe requires a return_url when confirming on the server; without --return-url the
    shop's success page is sent. --3ds given to a confirmation that brings no challenge exits
    with status 2 (the confirmation stands, and is shown).

    Example: bookpay intent confirm pi_123 --card 4000002760003184 --3ds complete
    """
    from bookpay.errors import UsageError

    st = state(ctx)
    gateway = st.gateway()
    if three_ds is not None and card is None:
        # Finish the challenge the intent is waiting on: confirming again would start over,
        # with another card, and no challenge at all for the default one.
        intent = gateway.retrieve_intent(intent_id, expand=())
        if _challenge_url(intent) is None:
            raise UsageError(
                f"{intent_id} has no 3-D Secure challenge waiting (status "
                f"{intent['status']}), so --3ds {three_ds.value} has nothing to finish.",
                hint="Confirm it with a 3-D Secure card and --3ds: bookpay intent confirm "
                f"{intent_id} --card 4000002760003184 --3ds {three_ds.value}",
            )
    else:
        method = gateway.payment_method_for(DEFAULT_CARD if card is None else card)
        with _done_already(intent_id, "confirm", CONFIRMED):
            intent = gateway.confirm_intent(intent_id, payment_method=method, return_url=return_url)
    challenge = _challenge_url(intent)
    if three_ds is not None and challenge and st.settings.is_emulated:
        from bookpay.commands.challenge import finish_challenge

        finish_challenge(challenge, st.settings.emulator_url, three_ds.value)
        intent = gateway.retrieve_intent(intent_id, expand=())
        _raise_if_failed(intent)
    elif three_ds is not None and challenge:
        info("--3ds drives the emulator's challenge page only: open the URL to authenticate.")
    if as_json:
        emit_json(intent)
    else:
        _summary(intent)
        if _challenge_url(intent) and three_ds is None:
            info(_follow_up(intent["id"], st.settings.is_emulated))
    if three_ds is not None and challenge is None:
        raise UsageError(
            f"--3ds {three_ds.value} was not used: {intent['id']} needed no 3-D Secure "
            f"authentication (status {intent['status']}); the confirmation stands."
        )


# What a confirmation that went through leaves a PaymentIntent in: Stripe confirms none again.
CONFIRMED = ("succeeded", "requires_capture", "processing")


@contextmanager
def _done_already(intent_id: str, verb: str, statuses: tuple[str, ...]) -> Iterator[None]:
    """Stripe's refusal to ``verb`` ("confirm", "cancel") an intent by its state, when an
    earlier one did it (the intent in ``statuses``: say, a run whose answer was lost, which
    said that running it again is safe), in those words rather than Stripe's list of statuses.
    Still a refusal (exit 3): nothing was done this time."""
    from bookpay.errors import PaymentError

    try:
        yield
    except PaymentError as exc:
        status = (exc.payment_intent or {}).get("status")
        if exc.stripe_code != "payment_intent_unexpected_state" or status not in statuses:
            raise
        done = f"{verb}ed"
        said = "" if status == done else f" (status {status})"
        exc.message = (
            f"{intent_id} has been {done} already{said}, so Stripe refused to {verb} it: "
            f"see `bookpay intent show {intent_id}`."
        )
        raise


def _challenge_url(intent: dict) -> str | None:
    """The 3-D Secure page a customer must authenticate at, when the intent waits on one."""
    if intent.get("status") != "requires_action":
        return None
    action = intent.get("next_action") or {}
    url = (action.get("redirect_to_url") or {}).get("url")
    return url if isinstance(url, str) and url else None


def _follow_up(intent_id: str, emulated: bool) -> str:
    """What to run once a confirmation is waiting for 3-D Secure."""
    if emulated:
        return f"Finish it with: bookpay intent confirm {intent_id} --3ds complete (or --3ds fail)"
    return (
        f"Open that URL to authenticate, then see the outcome with: bookpay intent show {intent_id}"
    )


def _raise_if_failed(intent: dict) -> None:
    """A challenge that ended in a decline or a failed authentication is a rejection (exit 3)."""
    from bookpay.errors import CardDeclined

    error = intent.get("last_payment_error")
    if intent["status"] == "requires_payment_method" and error:
        raise CardDeclined(
            error.get("message") or "The payment was not authenticated.",
            error_type=error.get("type"),
            stripe_code=error.get("code"),
            decline_code=error.get("decline_code"),
            payment_intent=intent,
        )


@app.command("capture", short_help="Capture an authorized PaymentIntent, in full or in part.")
def capture(
    ctx: typer.Context,
    intent_id: IntentArg,
    amount: Annotated[
        int | None,
        typer.Option(
            "--amount",
            metavar="N",
            parser=parse_amount,
            help="Capture this much, in the currency's minor unit (1500 is $15.00, ¥1,500 or "
            "1.500 KWD), and release the rest.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Capture an authorized PaymentIntent (one created with capture_method=manual).

    Example: bookpay intent capture pi_123 --amount 1500
    """
    gateway = state(ctx).gateway()
    check_amount(gateway, intent_id, amount)
    intent = gateway.capture_intent(intent_id, amount=amount)
    if as_json:
        emit_json(intent)
    else:
        _summary(intent)


@app.command("cancel")
def cancel(
    ctx: typer.Context,
    intent_id: IntentArg,
    reason: Annotated[
        CancelReason | None,
        typer.Option("--reason", help="Why, as Stripe records it."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a PaymentIntent that has not succeeded.

    Example: bookpay intent cancel pi_123 --reason abandoned
    """
    gateway = state(ctx).gateway()
    with _done_already(intent_id, "cancel", ("canceled",)):
        intent = gateway.cancel_intent(intent_id, reason=reason.value if reason else None)
    if as_json:
        emit_json(intent)
    else:
        _summary(intent)
