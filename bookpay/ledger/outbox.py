"""The receipts outbox: rows queued by fulfilment, claimed and sent by ``bookpay.mailer``.

A receipt is claimed by one sender at a time, and a claim never outlives its holder: each row
is marked with the claiming ledger instance's identity, committed before anything is sent; a
mark whose process no longer runs is taken over at once (``bookpay.ledger.process``), and a
lease ends even a hung holder's claim (or that of a holder on another machine, which cannot be
checked from here). On PostgreSQL the claiming transaction skips rows another is claiming
(``FOR UPDATE SKIP LOCKED``).

The claim is not a row lock held while the receipt is sent (as it was on PostgreSQL): a lock
ends with its connection, which the server may end mid-send (a restart, ``pg_terminate_backend``,
``idle_in_transaction_session_timeout``), and another worker then sent the receipt again. A
mark outlives the connection that wrote it. A fate written for a receipt whose claim was lost
all the same (its lease ran out, its holder was thought dead) is logged, as the receipt may
have been sent twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bookpay.ledger import process
from bookpay.ledger.errors import LedgerUnavailable
from bookpay.ledger.model import now_iso, parse_iso

RECEIPT_COLUMNS = (
    "payment_intent",
    "order_id",
    "recipient",
    "subject",
    "body",
    "status",
    "created",
    "attempts",
    "next_attempt_at",
    "claimed_until",
    "claimed_by",
    "last_error",
    "sent_at",
    "location",
)
_RECEIPTS = ", ".join(RECEIPT_COLUMNS)
# A claim marked in the row (SQLite) lasts this long even if its holder's liveness cannot be
# checked (a hung process): the last resort, not the way crashed claims come back.
CLAIM_LEASE = 600.0
CLAIM_BATCH = 100  # receipts claimed at once
# Seconds between the tries of writing receipts' fates that the ledger failed to write (locked
# past its timeout, a lost connection): a short blip neither holds a sent receipt's claim for
# the lease nor lets it be sent again. Still failing, they are written before the next claim.
FATE_RETRIES = (0.1, 0.5, 2.0)

log = logging.getLogger("bookpay.mailer")


class Outbox:
    """The receipt methods of ``Ledger`` (which provides ``backend`` and ``_read``)."""

    def receipts(self, status: str | None = None) -> list[dict]:
        sql, params = f"SELECT {_RECEIPTS} FROM receipts", ()
        if status:
            sql, params = sql + " WHERE status = ?", (status,)
        return self._read(sql + " ORDER BY created", params)

    def receipt_for(self, intent_id: str) -> dict | None:
        rows = self._read(
            f"SELECT {_RECEIPTS} FROM receipts WHERE payment_intent = ?", (intent_id,)
        )
        return rows[0] if rows else None

    def next_receipt_due(self) -> str | None:
        """When the earliest pending receipt is due (ISO time), or None when none is pending."""
        return self._scalar("SELECT MIN(next_attempt_at) FROM receipts WHERE status = 'pending'")

    @contextmanager
    def claim_receipts(self, *, limit: int = CLAIM_BATCH) -> Iterator[ReceiptClaims]:
        """Due receipts, held for this caller alone while it sends them.

        Each row is marked with this instance's identity and a lease, committed before the
        block begins (see the module): other senders skip it, whatever becomes of this one's
        connection, until its fate is written, the block releases it, or its holder is found
        dead (``bookpay.ledger.process``) or its lease ends.

        The fates reported (``sent``, ``failed``, ``undeliverable``) are written together at the
        end of the block, or when the caller says ``flush()``: a batch costs the writers two
        turns at the write lock (claim, then finish), not one per receipt.
        """
        # Fates an earlier claim could not write (the ledger was unavailable) first: this
        # process knows those receipts' fates, so it must not claim (and send) them again.
        self._write_fates([])
        claims = ReceiptClaims(self, self._mark_claims(limit))
        try:
            yield claims
        finally:
            # What was sent, and the release of what was not, in one transaction.
            release = [
                (
                    """UPDATE receipts SET claimed_by = NULL, claimed_until = NULL
                    WHERE payment_intent = ? AND claimed_by = ?""",
                    (intent_id, self._token),
                )
                for intent_id in claims.unfinished
            ]
            claims.flush(release)

    def _mark_claims(self, limit: int) -> list[dict]:
        stamp = now_iso()
        with self.backend.write() as tx:
            claimed = process.claim_due(
                tx,
                "receipts",
                RECEIPT_COLUMNS,
                "payment_intent",
                token=self._token,
                lease=CLAIM_LEASE,
                limit=limit,
                stamp=stamp,
                lock_held=True,
            )
            self._has_claimed = self._has_claimed or bool(claimed)
        return claimed

    def _write_fates(self, statements: list) -> None:
        """Write ``statements`` (receipts' fates, releases of claims) after those that could
        not be written before, in one transaction, tried again after each of FATE_RETRIES
        while the ledger is unavailable; still failing, they are kept (for the next claim, or
        for closing) and LedgerUnavailable is raised. A fate whose claim was lost is logged
        (``_write_fate``) once it is committed."""
        statements = [*self._unwritten_fates, *statements]
        self._unwritten_fates = []
        if not statements:
            return
        for delay in (*FATE_RETRIES, None):
            lost: list[str] = []
            try:
                with self.backend.write() as tx:
                    for statement in statements:
                        if isinstance(statement, Fate):
                            lost.append(self._write_fate(tx, statement))
                        else:
                            tx.run(*statement)
            except LedgerUnavailable as exc:
                for statement in statements:  # their commit may have gone through
                    if isinstance(statement, Fate):
                        statement.tried = True
                if delay is None:
                    self._unwritten_fates = statements
                    raise
                log.warning("%s Trying again in %g s.", exc, delay)
                time.sleep(delay)
                continue
            for said in lost:
                if said:
                    log.warning("%s", said, extra={"each": True})  # never held back as a repeat
            return

    def _write_fate(self, tx, fate: Fate) -> str | None:
        """Write a receipt's fate where its row still holds this instance's claim; where the
        claim was lost (its lease ran out, its holder was thought dead, and another sender took
        it), what to log. A final fate (sent, skipped, undeliverable) is written all the same
        while the receipt is pending, so it is not sent yet again; one to try again later is
        left to the claim's new holder."""
        row = tx.one(
            "SELECT status, claimed_by FROM receipts WHERE payment_intent = ?{for_update}",
            (fate.intent_id,),
        )
        if row is None:
            return None
        unclaimed = row["status"] == "pending" and row["claimed_by"] is None
        if fate.tried and not fate.final and unclaimed:
            # A fate to try again later clears the claim: this is how its earlier try, whose
            # commit's answer was lost, left the row (written again, it would count twice).
            return None
        mine = row["claimed_by"] == self._token
        if row["status"] == "pending" and (mine or row["claimed_by"] is None or fate.final):
            tx.run(fate.sql, fate.params)
        if mine and row["status"] == "pending":
            return None
        if row["status"] != "pending" and fate.tried:
            return None  # written by this fate's earlier try, whose commit's answer was lost
        order = f"receipt for order {fate.order_id} ({fate.intent_id})"
        if row["status"] != "pending":
            return (
                f"{order} {fate.what}, but its claim had been lost: another sender recorded "
                f"it {row['status']} first, so it may have been sent twice."
            )
        holder = row["claimed_by"] or "no one"
        kept = "recorded all the same" if fate.final else f"left to {holder}"
        return (
            f"{order} {fate.what}, but its claim had been lost (now held by {holder}, which "
            f"may send it too): {kept}."
        )

    def _release_claims(self) -> None:
        if self._unwritten_fates:  # what was sent is not sent again at the next start
            self._write_fates([])
        if self._has_claimed:
            with self.backend.write() as tx:
                tx.run(
                    """UPDATE receipts SET claimed_by = NULL, claimed_until = NULL
                    WHERE claimed_by = ?""",
                    (self._token,),
                )


@dataclass
class Fate:
    """A receipt's fate, to be written where its row is still claimed (``_write_fate``)."""

    intent_id: str
    order_id: str | None
    what: str  # "sent", "failed" ...: for the log
    final: bool  # sent, skipped or undeliverable: never to be sent again
    sql: str
    params: tuple
    tried: bool = False  # in a transaction whose commit failed: it may have been written


class ReceiptClaims:
    """Receipts claimed by ``Ledger.claim_receipts``; report each one's fate here."""

    def __init__(self, ledger: Outbox, receipts: list[dict]) -> None:
        self.ledger = ledger
        self.receipts = receipts
        self.unfinished = {r["payment_intent"] for r in receipts}
        self._done: list = []  # fates reported, not yet written

    def __iter__(self):
        return iter(self.receipts)

    def __len__(self) -> int:
        return len(self.receipts)

    @property
    def handled(self) -> int:
        """How many of the receipts have had their fate reported."""
        return len(self.receipts) - len(self.unfinished)

    def _finish(self, receipt: dict, what: str, sql: str, params: tuple) -> None:
        intent_id = receipt["payment_intent"]
        # Only a pending row: a fate written again (its first commit's outcome unknown) is
        # written once.
        sql += (
            ", claimed_by = NULL, claimed_until = NULL WHERE payment_intent = ?"
            " AND status = 'pending'"
        )
        final = what != "failed"
        fate = Fate(intent_id, receipt.get("order_id"), what, final, sql, (*params, intent_id))
        self._done.append(fate)
        self.unfinished.discard(intent_id)

    def flush(self, more: list[tuple[str, tuple]] = ()) -> None:
        """Write the fates reported so far (and ``more`` statements) now, in one transaction
        (tried again a few times, else kept: ``Outbox._write_fates``).

        A sender whose sending cannot be repeated harmlessly (SMTP) flushes after each receipt,
        so a crash resends at most the one it was sending.
        """
        statements, self._done = [*self._done, *more], []
        self.ledger._write_fates(statements)

    def sent(self, receipt: dict, *, location: str | None, status: str = "sent") -> None:
        self._finish(
            receipt,
            status,
            "UPDATE receipts SET status = ?, sent_at = ?, location = ?, attempts = attempts + 1",
            (status, now_iso(), location),
        )

    def failed(self, receipt: dict, error: str, *, retry_in: float) -> None:
        self._finish(
            receipt,
            "failed",
            "UPDATE receipts SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?",
            (error[:500], now_iso(retry_in)),
        )

    def undeliverable(self, receipt: dict, reason: str) -> None:
        """An address no mail header can carry: recorded with the reason, never retried."""
        self._finish(
            receipt,
            "undeliverable",
            "UPDATE receipts SET status = 'undeliverable', last_error = ?",
            (reason[:500],),
        )


def due_in(due: str | None) -> float | None:
    """Seconds until an ISO time from the ledger (negative when past), or None."""
    if due is None:
        return None
    return (parse_iso(due) - parse_iso(now_iso())).total_seconds()
