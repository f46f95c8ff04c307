"""Telling Stripe Tax what was sold and refunded: the ledger's owed tax records, sent by a worker.

Fulfilment records the order's tax transaction as owed in its own transaction, and the handling of
a refund records a reversal per refund (``bookpay.ledger.taxrecords``); nothing calls Stripe
while the ledger is being written. ``TaxRecorder`` then makes the calls from a thread of its own,
the way receipts are sent: ``POST /v1/tax/transactions/create_from_calculation`` (the order id
as reference) for a transaction, ``create_reversal`` (the refund's id as reference; full, or the
amount refunded, or, for the refund completing a full refund, what is left of the transaction,
which it retrieves for that) for a reversal, and marks each record done with Stripe's id. A
reversal whose refund failed before any try sent it (before its amount was worked out) is
skipped, never sent; one tried already (its answer lost: Stripe Tax may have it) is sent as
worked out, under its key, and recorded with Stripe's id, for the refund's failure to be
reported. When Stripe cannot be reached (or answers 5xx, 409 or 429), the record stays owed with
the error and is tried again later, with backoff: nothing is lost, and ``bookpay orders show``
says what is still owed and why. A request Stripe refuses for good (another 4xx: a calculation
expired, say) would be refused again: the record is ``refused``, with Stripe's answer, for a
person to record by hand, and so are the reversals of a transaction refused.

Once, however often it runs: each call's idempotency key is the calculation's (or the refund's),
so a repeat (two processes on one ledger, a crash between Stripe's answer and the ledger's mark)
gets Stripe's first answer back, and a record already done is never sent again. A reversal's
amount is worked out once, at its first try, one order's reversals one at a time across processes
(``TaxRecordStore.plan_tax_reversal``), so every try sends the same body under its key. A reversal
waits for its order's transaction (it needs the transaction's id), looking again every
WAIT_FOR_TRANSACTION; once the transaction is done with, the reversals waiting for it are due at
once (``TaxRecordStore.tax_reversals_due_now``), and the same round sends them right after it.
"""

from __future__ import annotations

import logging
import re

from bookpay.errors import BookpayError, PaymentError, refused_outright
from bookpay.ledger.outbox import due_in
from bookpay.ledger.taxrecords import refunds_reach, transaction_id
from bookpay.worker import Worker

log = logging.getLogger("bookpay.taxrecords")

RETRY_DELAYS = (5.0, 30.0, 120.0, 600.0)  # then every RETRY_DELAYS[-1] seconds
WAIT_FOR_TRANSACTION = 5.0  # a reversal whose transaction is not recorded yet looks again
# (waiting is not a try: RETRY_DELAYS still starts from its first step afterwards)
IDLE_LOOK = 600.0  # nothing owed: look again this often (another process may have queued some)
BATCH = 100
_TRANSACTION_ID = re.compile(r"\btax_[A-Za-z0-9]+\b")


class TaxRecorder(Worker):
    """Sends the ledger's owed tax records to Stripe Tax from a background thread."""

    thread_name = "bookpay-tax"
    what = "sending tax records"

    def __init__(self, ledger, gateway) -> None:
        super().__init__()
        self.ledger = ledger
        self.gateway = gateway

    def work(self) -> int:
        return self.record_due()

    def due_now(self) -> bool:
        wait = due_in(self.ledger.next_tax_record_due())
        return wait is not None and wait <= 0

    def record_due(self) -> int:
        """Send every due record, in this thread; how many were tried."""
        tried = 0
        while not self._stop.is_set():
            due = self.ledger.tax_records_due(BATCH)
            for record in due:
                if self._stop.is_set():
                    break
                self._record(record)
                tried += 1
            # A transaction done with makes the reversals waiting for it due (``_done``): they
            # are looked for again, to be sent right after it, in this round.
            if len(due) < BATCH and not any(found["kind"] == "transaction" for found in due):
                break
        return tried

    def _record(self, record: dict) -> None:
        try:
            if record["kind"] == "transaction":
                self._transaction(record)
            else:
                self._reversal(record)
        except PaymentError as exc:
            if not refused_outright(exc.http_status):
                self._retry(record, exc)
                return
            # The same request would be refused again (a calculation expired, say): a person
            # must record it in Stripe Tax, and `bookpay orders show` says so.
            log.error("tax record %s refused by Stripe Tax: %s", record["id"], exc)
            self._refused(record, _describe(exc))
        except BookpayError as exc:  # unreachable, misconfigured: owed still
            self._retry(record, exc)

    def _done(self, record: dict, **fields) -> None:
        """Mark ``record`` done with (``tax_record_done``). A transaction's reversals waiting
        for it are due now: this round sends them next (``record_due``), not at their next
        look (WAIT_FOR_TRANSACTION, which stays: for a process stopped between the two, say)."""
        self.ledger.tax_record_done(record["id"], **fields)
        if record["kind"] != "transaction":
            return
        try:
            self.ledger.tax_reversals_due_now(record["order_id"])
        except BookpayError as exc:  # done all the same; the reversals' next look finds it
            log.warning(
                "tax record %s recorded; its order's waiting reversals could not be made due "
                "now (%s): they look again within %g s",
                record["id"],
                exc,
                WAIT_FOR_TRANSACTION,
            )

    def _refused(self, record: dict, note: str) -> None:
        """Done with, not recorded: for a person to record in Stripe Tax by hand (``note``)."""
        self._done(record, stripe_id=None, status="refused", note=note)

    def _retry(self, record: dict, exc: BookpayError) -> None:
        delay = RETRY_DELAYS[min(record["attempts"], len(RETRY_DELAYS) - 1)]
        log.warning("tax record %s not sent (%s); retrying in %ss", record["id"], exc, delay)
        self.ledger.tax_record_failed(record["id"], _describe(exc), retry_in=delay)

    def _transaction(self, record: dict) -> None:
        try:
            done = self.gateway.create_tax_transaction(
                record["calculation"], order_id=record["order_id"]
            )
        except PaymentError as exc:
            self._already_made(record, exc, "Stripe Tax already had this order's transaction")
            return
        self._done(record, stripe_id=done["id"])

    def _already_made(
        self, record: dict, exc: PaymentError, note: str, *, reversed: int | None = None
    ) -> None:
        """Stripe refused a record it already has (its reference is taken): made by an earlier
        try whose answer was lost, longer ago than Stripe replays idempotency keys (24 hours).
        Marked recorded, with its id when Stripe's message gives it; any other refusal raises."""
        if exc.stripe_code != "resource_already_exists":
            raise exc
        found = _TRANSACTION_ID.search(exc.message or "")
        self._done(
            record, stripe_id=found.group(0) if found else None, note=note, reversed=reversed
        )

    def _reversal(self, record: dict) -> None:
        if record.get("refund_failed_at") and record.get("reversed") is None:
            self._never_sent(record)
            return
        records = self.ledger.tax_records_for(record["order_id"])
        transaction = next(
            (found for found in records if found["id"] == transaction_id(record["order_id"])),
            None,
        )
        if transaction is not None and transaction["status"] == "refused":
            self._refused(record, "not sent: Stripe Tax refused the order's transaction")
            return
        if transaction is None:
            self._no_transaction(record)
            return
        if transaction["status"] != "recorded":
            self.ledger.tax_record_waiting(
                record["id"],
                "waiting for the order's tax transaction to be recorded",
                look_in=WAIT_FOR_TRANSACTION,
            )
            return
        if not transaction["stripe_id"]:
            self._refused(
                record, "not sent: the order's tax transaction id is not known (reverse it by hand)"
            )
            return
        quote = self.ledger.quote_for(record["payment_intent"])
        total = quote["total"] if quote and isinstance(quote.get("total"), int) else None
        transaction_total = None
        if total is not None and _may_close(record, records, total):
            transaction_total = self._transaction_total(transaction["stripe_id"])
        planned = self.ledger.plan_tax_reversal(
            record["id"], record["order_id"], total, transaction_total
        )
        if planned is None:
            return  # done by another process meanwhile
        if planned["reversed"] is None and planned["refund_failed_at"]:
            self._never_sent(planned)  # the refund failed as it was looked at: not planned
            return
        amount, reversed = planned["send_amount"], planned["reversed"]
        if amount == 0:
            self.ledger.tax_record_done(
                record["id"],
                stripe_id=None,
                status="skipped",
                note="nothing left to reverse: Stripe Tax took it back already, with the"
                " reversal of a refund that failed",
                reversed=0,
            )
            return
        try:
            reversal = self.gateway.create_tax_reversal(
                transaction["stripe_id"], refund_id=record["refund"], amount=amount
            )
        except PaymentError as exc:
            self._already_made(
                record, exc, "Stripe Tax already had this refund's reversal", reversed=reversed
            )
            return
        self.ledger.tax_record_done(record["id"], stripe_id=reversal["id"], reversed=reversed)

    def _transaction_total(self, transaction_id: str) -> int:
        """What a Stripe Tax transaction holds, tax included: its lines and its shipping."""
        found = self.gateway.retrieve_tax_transaction(transaction_id)
        listed = found.get("line_items") or {}
        lines = listed.get("data") or []
        if listed.get("has_more") or not listed:
            lines = self.gateway.tax_transaction_line_items(transaction_id)
        parts = [*lines, *([found["shipping_cost"]] if found.get("shipping_cost") else [])]
        return sum(_with_tax(part) for part in parts)

    def _never_sent(self, record: dict) -> None:
        """The refund failed before its reversal was worked out, so before any try sent it:
        never sent, and Stripe Tax keeps the tax the shop kept. One worked out already may
        have reached Stripe Tax (its answer lost) and is sent as planned instead: under its
        idempotency key that makes nothing new, and its record then says what Stripe Tax has
        (see ledger.taxrecords)."""
        self.ledger.tax_record_done(
            record["id"],
            stripe_id=None,
            status="skipped",
            note="the refund failed before its reversal was sent",
        )

    def _no_transaction(self, record: dict) -> None:
        """A reversal whose order owes no transaction: the fulfilment owes it, in its own write,
        so the order is not fulfilled. One that never will be (refunded in full first, or its
        fulfilment refused: final for a succeeded payment) reported no tax, and has none to take
        back; one that still may be waits for it."""
        order = self.ledger.find_order(record["order_id"])
        if order is not None and order["fulfilled_at"]:
            mine = transaction_id(record["order_id"])
            records = self.ledger.tax_records_for(record["order_id"])
            if any(found["id"] == mine for found in records):
                # The fulfilment (and the transaction it owes, in the same write) committed
                # between the look at the records and the look at the order: left due, so the
                # next round finds the transaction.
                return
            self._refused(
                record, "not sent: the order was fulfilled without a tax transaction to reverse"
            )
            return
        if order is not None and order["status"] == "refunded":
            reason = "no tax transaction: the order was refunded before it was fulfilled"
        elif order is not None and order["not_fulfilled_at"]:
            reason = "no tax transaction: the order was not fulfilled"
        else:
            self.ledger.tax_record_waiting(
                record["id"],
                "waiting for the order to be fulfilled (its tax transaction is owed then)",
                look_in=WAIT_FOR_TRANSACTION,
            )
            return
        self.ledger.tax_record_done(record["id"], stripe_id=None, status="skipped", note=reason)

    def _idle_wait(self, handled: int) -> float:
        try:
            wait = due_in(self.ledger.next_tax_record_due())
        except Exception:
            return 1.0
        if wait is None:
            return IDLE_LOOK
        return min(max(wait, 0.05), IDLE_LOOK)


def _may_close(record: dict, records: list[dict], total: int) -> bool:
    """Whether the reversal may be the one that completes its order's full refund, and so needs
    what the order's transaction holds (``plan_reversal``): the refunds reach the order's total,
    and another reversal may be in Stripe Tax (else it is a full reversal, which needs no
    amount). Looked at before the plan, which decides under the order's lock: a reversal owed
    meanwhile is worked out after this one, so it cannot make this one the last."""
    reversals = [r for r in records if r["kind"] == "reversal"]
    others = [r for r in reversals if r["id"] != record["id"]]
    return bool(others) and refunds_reach(record, reversals, total)


def _with_tax(part: dict) -> int:
    """A transaction line's (or its shipping's) amount with its tax: an inclusive amount holds
    it already."""
    amount = part.get("amount") or 0
    if part.get("tax_behavior") == "inclusive":
        return amount
    return amount + (part.get("amount_tax") or 0)


def _describe(exc: BookpayError) -> str:
    code = getattr(exc, "stripe_code", None) or exc.code
    return f"{code}: {exc.message}" if code else exc.message
