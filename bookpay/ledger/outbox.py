"""The receipts outbox: rows queued by fulfilment, claimed and sent by ``bookpay.mailer``.

A receipt is claimed by one sender at a time, and a claim never outlives its holder:

- PostgreSQL: the rows are locked (``FOR UPDATE SKIP LOCKED``) in a transaction that lasts as long
  as the sending, so other processes skip them, and a holder that dies releases them with its
  connection;
- SQLite: each row is marked with the claiming ledger instance's identity; a mark whose process
  no longer runs is taken over at once (``bookpay.ledger.process``), and a lease ends even a
  hung holder's claim.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

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

    @property
    def claim_commits_at_end(self) -> bool:
        """Whether the fates of a claim's receipts are committed only when the claim ends, even
        those ``flush``ed before (PostgreSQL: the claim is the transaction holding the rows'
        locks). A sender that must commit each fate before the next send claims one at a time."""
        return self.backend.locks_rows

    @contextmanager
    def claim_receipts(self, *, limit: int = CLAIM_BATCH) -> Iterator[ReceiptClaims]:
        """Due receipts, held for this caller alone while it sends them.

        PostgreSQL: the rows are locked (``FOR UPDATE SKIP LOCKED``) in a transaction that lasts
        as long as the block, so other processes skip them, and a holder that dies releases them
        with its connection. SQLite: each row is marked with this instance's identity; a mark
        whose process no longer runs is taken over at once (``bookpay.ledger.process``).

        The fates reported (``sent``, ``failed``, ``undeliverable``) are written together at the
        end of the block, or when the caller says ``flush()``: a batch costs the writers two
        turns at the write lock (claim, then finish), not one per receipt.
        """
        # Fates an earlier claim could not write (the ledger was unavailable) first: this
        # process knows those receipts' fates, so it must not claim (and send) them again.
        self._write_fates([])
        if self.backend.locks_rows:
            claims = None
            try:
                with self.backend.write() as tx:
                    rows = tx.all(
                        f"""SELECT {_RECEIPTS} FROM receipts WHERE status = 'pending'
                        AND next_attempt_at <= ?
                        ORDER BY next_attempt_at LIMIT ?{{skip_locked}}""",
                        (now_iso(), limit),
                    )
                    claims = ReceiptClaims(self, rows, tx)
                    yield claims
                    claims.flush()
            except BaseException as exc:
                # The claim's transaction is gone, and with it the fates written in it: those
                # of receipts sent already are written again, in a transaction of their own.
                if claims is None or not claims.in_tx:
                    raise
                self._write_fates(claims.in_tx)
                if not isinstance(exc, LedgerUnavailable):
                    raise
            return
        claims = ReceiptClaims(self, self._mark_claims(limit), None)
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
            free = tx.all(
                f"""SELECT {_RECEIPTS} FROM receipts WHERE status = 'pending'
                AND next_attempt_at <= ? AND (claimed_by IS NULL OR claimed_until <= ?)
                ORDER BY next_attempt_at LIMIT ?""",
                (stamp, stamp, limit),
            )
            if len(free) < limit:  # claims whose holder died are free too, lease or not
                held = tx.all(
                    f"""SELECT {_RECEIPTS} FROM receipts WHERE status = 'pending'
                    AND next_attempt_at <= ? AND claimed_by IS NOT NULL AND claimed_until > ?
                    AND claimed_by <> ? ORDER BY next_attempt_at""",
                    (stamp, stamp, self._token),
                )
                alive: dict[str, bool] = {}
                for row in held:
                    holder = row["claimed_by"]
                    if holder not in alive:
                        alive[holder] = process.holder_alive(holder)
                    if not alive[holder]:
                        free.append(row)
                free = free[:limit]
            until = now_iso(CLAIM_LEASE)
            self._has_claimed = self._has_claimed or bool(free)
            for row in free:
                tx.run(
                    """UPDATE receipts SET claimed_by = ?, claimed_until = ?
                    WHERE payment_intent = ?""",
                    (self._token, until, row["payment_intent"]),
                )
        return free

    def _write_fates(self, statements: list[tuple[str, tuple]]) -> None:
        """Write ``statements`` (receipts' fates, releases of claims) after those that could
        not be written before, in one transaction, tried again after each of FATE_RETRIES
        while the ledger is unavailable; still failing, they are kept (for the next claim, or
        for closing) and LedgerUnavailable is raised."""
        statements = [*self._unwritten_fates, *statements]
        self._unwritten_fates = []
        if not statements:
            return
        for delay in (*FATE_RETRIES, None):
            try:
                with self.backend.write() as tx:
                    for sql, params in statements:
                        tx.run(sql, params)
                return
            except LedgerUnavailable as exc:
                if delay is None:
                    self._unwritten_fates = statements
                    raise
                log.warning("%s Trying again in %g s.", exc, delay)
                time.sleep(delay)

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


class ReceiptClaims:
    """Receipts claimed by ``Ledger.claim_receipts``; report each one's fate here."""

    def __init__(self, ledger: Outbox, receipts: list[dict], tx) -> None:
        self.ledger = ledger
        self.receipts = receipts
        self.unfinished = {r["payment_intent"] for r in receipts}
        self._tx = tx
        self._done: list[tuple[str, tuple]] = []  # fates reported, not yet written
        self.in_tx: list[tuple[str, tuple]] = []  # written in the claim's transaction (PostgreSQL)

    def __iter__(self):
        return iter(self.receipts)

    def __len__(self) -> int:
        return len(self.receipts)

    @property
    def handled(self) -> int:
        """How many of the receipts have had their fate reported."""
        return len(self.receipts) - len(self.unfinished)

    def _finish(self, receipt: dict, sql: str, params: tuple) -> None:
        intent_id = receipt["payment_intent"]
        # Only a pending row: a fate written again (its first commit's outcome unknown) is
        # written once.
        sql += (
            ", claimed_by = NULL, claimed_until = NULL WHERE payment_intent = ?"
            " AND status = 'pending'"
        )
        self._done.append((sql, (*params, intent_id)))
        self.unfinished.discard(intent_id)

    def flush(self, more: list[tuple[str, tuple]] = ()) -> None:
        """Write the fates reported so far (and ``more`` statements) now, in one transaction.

        A sender whose sending cannot be repeated harmlessly (SMTP) flushes after each receipt,
        so a crash resends at most the one it was sending; on PostgreSQL a flush commits nothing
        before the claim ends, so such a sender claims one receipt at a time there
        (``claim_commits_at_end``).
        """
        statements, self._done = [*self._done, *more], []
        if self._tx is not None:  # PostgreSQL: the claim's transaction, committed at its end
            for sql, params in statements:
                self.in_tx.append((sql, params))
                self._tx.run(sql, params)
            return
        self.ledger._write_fates(statements)  # tried again a few times, else kept

    def sent(self, receipt: dict, *, location: str | None, status: str = "sent") -> None:
        self._finish(
            receipt,
            "UPDATE receipts SET status = ?, sent_at = ?, location = ?, attempts = attempts + 1",
            (status, now_iso(), location),
        )

    def failed(self, receipt: dict, error: str, *, retry_in: float) -> None:
        self._finish(
            receipt,
            "UPDATE receipts SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?",
            (error[:500], now_iso(retry_in)),
        )

    def undeliverable(self, receipt: dict, reason: str) -> None:
        """An address no mail header can carry: recorded with the reason, never retried."""
        self._finish(
            receipt,
            "UPDATE receipts SET status = 'undeliverable', last_error = ?",
            (reason[:500],),
        )


def due_in(due: str | None) -> float | None:
    """Seconds until an ISO time from the ledger (negative when past), or None."""
    if due is None:
        return None
    return (parse_iso(due) - parse_iso(now_iso())).total_seconds()
