"""Tax records owed to Stripe Tax: a transaction per paid order, a reversal per refund.

Stripe Tax reports what a shop collected from the transactions it is told about. Telling it is a
call to Stripe, which the ledger never makes inside a write (and which may fail): so the ledger
records what is owed, in the same transaction as what caused it (the fulfilment; the refund's
handling), and ``bookpay.taxrecords`` tells Stripe later and marks the record done. The record's
id is its business identity (``txn:<order>``, ``rev:<refund>``), so however many deliveries of an
event race, one order owes one transaction and one refund one reversal.

A record's life: ``pending`` (due at ``next_attempt_at``; ``last_error`` says why the last try
failed) -> ``recorded`` (``stripe_id`` is Stripe's transaction, or reversal, id) or ``skipped``
(nothing to report: ``last_error`` says why) or ``refused`` (Stripe refused it for good, an
expired calculation say, or it depends on a record that was: ``last_error`` says why, and a person
must record it in Stripe Tax).

A card refund can fail after it succeeded, and so after its reversal was recorded. Stripe Tax
documents no way to undo a reversal (``create_reversal`` reverses a transaction, and a
calculation makes one transaction only), so the ledger records the fact on the reversal
(``refund_failed_at``): a reversal not tried yet (nothing worked out to send) is then never sent
(skipped); one tried already, whose answer was lost, may be in Stripe Tax and is sent as worked
out under its idempotency key (which makes nothing new if it is), then recorded; and one Stripe
already has is tax Stripe Tax under-reports, which `bookpay orders show`, `bookpay report tax`
and `bookpay report sales` show (``tax_unreported``) until a person corrects it in Stripe Tax,
or a later refund's reversal takes it in: each reversal keeps what it took back (``reversed``),
and takes back its refund's amount less what Stripe Tax holds reversed beyond the refunds that
went back (``over_reversed``).
"""

from __future__ import annotations

from collections.abc import Iterable

from bookpay.ledger.model import now_iso

TAX_COLUMNS = (
    "id",
    "kind",
    "order_id",
    "payment_intent",
    "calculation",
    "refund",
    "amount",
    "status",
    "stripe_id",
    "attempts",
    "next_attempt_at",
    "last_error",
    "created",
    "recorded_at",
    "refund_failed_at",
    "reversed",
    "send_amount",
)
_TAX = ", ".join(TAX_COLUMNS)
TAX_STATUSES = ("pending", "recorded", "skipped", "refused")
TAX_RANK = ("refused", "pending", "skipped", "recorded")  # what needs a person first
_INSERT = f"""INSERT INTO tax_records ({_TAX}) VALUES ({", ".join("?" * len(TAX_COLUMNS))})
    ON CONFLICT (id) DO NOTHING"""


def over_reversed(reversals: Iterable[dict], total: int) -> int:
    """What Stripe Tax has reversed of an order's ``total`` beyond the refunds that went back:
    the reversals it has (each what it ``reversed``; before that was kept, its refund's
    ``amount``, None for all of it) or is being sent (pending, with what it takes back worked
    out: ``plan_reversal``; sent even if its refund failed since), less the refunds of those
    and of the reversals that had nothing left to take back (``reversed`` 0) that did not
    fail. A later refund's reversal takes back
    only what is left of its amount after this, so none takes back too much, nor too little."""
    taken = covered = 0
    for record in reversals:
        own = total if record["amount"] is None else record["amount"]
        if record["status"] == "recorded":
            taken += own if record["reversed"] is None else record["reversed"]
        elif record["status"] == "pending" and record["reversed"] is not None:
            # Worked out: sent with it, however many tries, even once its refund failed (an
            # earlier try may have reached Stripe Tax).
            taken += record["reversed"]
        elif record["status"] != "skipped" or record["reversed"] is None:
            continue  # not sent, or never to be: nothing in Stripe Tax, nothing covered
        if not record["refund_failed_at"]:
            covered += own
    return max(taken - covered, 0)


def refunds_reach(record: dict, records: Iterable[dict], total: int) -> bool:
    """Whether the refunds of an order's reversals (``records``, with ``record``) that did not
    fail give back all of its ``total``: the order is refunded in full, and Stripe Tax must be
    left holding nothing of it."""
    refunded = 0
    for found in [record, *(r for r in records if r["id"] != record["id"])]:
        if found.get("kind", "reversal") == "reversal" and not found["refund_failed_at"]:
            refunded += total if found["amount"] is None else found["amount"]
    return refunded >= total


def _closes(record: dict, others: list[dict], total: int) -> bool:
    """Whether ``record`` is the reversal that completes its order's full refund: the refunds
    reach the total, and every other reversal of a refund that did not fail is in Stripe Tax,
    being sent or done with (so none will be worked out after it). One refused, for a person
    to record by hand, leaves it a reversal of its own amount."""
    if not refunds_reach(record, others, total):
        return False
    for other in others:
        if other["refund_failed_at"] or other["status"] in ("recorded", "skipped"):
            continue
        if other["status"] != "pending" or other["reversed"] is None:
            return False
    return True


def _sent(record: dict, transaction_total: int) -> int:
    """What a reversal in Stripe Tax (or being sent) took of its transaction: what it sends
    (``send_amount``), all of it for a full reversal (its refund's ``amount`` None), or, for one
    worked out before ``send_amount`` was kept, what it took back."""
    if record["send_amount"] is not None:
        return record["send_amount"]
    if record["amount"] is None:
        return transaction_total
    return record["amount"] if record["reversed"] is None else record["reversed"]


def plan_reversal(
    record: dict, records: Iterable[dict], total: int | None, transaction_total: int | None = None
) -> tuple:
    """What to send for a reversal (a flat amount; None for a full reversal; 0 for nothing)
    and what it takes back of the money refunded: its refund's amount, less what the order's
    other reversals (``records``) took back beyond the refunds that went back
    (``over_reversed``), so that Stripe Tax never holds more reversed than was refunded, in
    whatever order the reversals are sent. A full reversal only when no other reversal of the
    order is in Stripe Tax or being sent (it reverses the whole transaction, whatever partial
    reversals came before). Without the order's ``total`` (no quote recorded), the refund's
    amount as it is.

    The Stripe Tax transaction holds the calculation's tax, which in a three-decimal currency
    (or ISK, UGX) is more than the tax charged (rounded down to what Stripe charges): its
    ``transaction_total`` is more than the order's ``total``. So the reversal that completes a
    full refund (``_closes``) sends what is left of the transaction, its total less what the
    other reversals sent, and Stripe Tax nets to zero as the money does."""
    if total is None:
        return record["amount"], record["amount"]
    others = [r for r in records if r["kind"] == "reversal" and r["id"] != record["id"]]
    own = total if record["amount"] is None else record["amount"]
    reversed = max(own - over_reversed(others, total), 0)
    in_stripe_tax = [
        r
        for r in others
        if r["status"] == "recorded" or (r["status"] == "pending" and r["reversed"] is not None)
    ]
    if transaction_total is not None and _closes(record, others, total):
        if not in_stripe_tax:
            return None, reversed
        left = transaction_total - sum(_sent(r, transaction_total) for r in in_stripe_tax)
        return (left, reversed) if left > 0 else (0, 0)
    if record["amount"] is None and not in_stripe_tax:
        return None, reversed
    return reversed, reversed


def listing_query(
    statuses: Iterable[str], limit: int, *, refund_failed: bool = False
) -> tuple[str, tuple] | None:
    """The SQL and parameters of ``tax_records_with_status`` (None: nothing to list). Each arm
    of its OR has an index (``tax_records_due``; the reversals whose refund failed, a few among
    many, ``tax_records_refund_failed``, partial), so it reads no record it does not list."""
    wanted = [status for status in TAX_STATUSES if status in set(statuses)]
    if not wanted and not refund_failed:
        return None
    where = [f"t.status IN ({', '.join('?' * len(wanted))})"] if wanted else []
    if refund_failed:
        where.append(
            "(t.status = 'recorded' AND t.kind = 'reversal' AND t.refund_failed_at IS NOT NULL)"
        )
    rank = " ".join(f"WHEN '{status}' THEN {n}" for n, status in enumerate(TAX_RANK))
    columns = ", ".join(f"t.{name}" for name in TAX_COLUMNS)
    return (
        f"""SELECT {columns}, o.currency FROM tax_records t
        LEFT JOIN orders o ON o.id = t.order_id
        WHERE {" OR ".join(where)}
        ORDER BY CASE t.status {rank} END, t.created, t.id LIMIT ?""",
        (*wanted, limit),
    )


def transaction_id(order_id: str) -> str:
    return f"txn:{order_id}"


def reversal_id(refund_id: str) -> str:
    return f"rev:{refund_id}"


def _row(
    record_id: str,
    kind: str,
    order_id: str,
    payment_intent: str,
    *,
    calculation: str | None = None,
    refund: str | None = None,
    amount: int | None = None,
) -> tuple:
    """A new pending record, due now, in TAX_COLUMNS order."""
    stamp = now_iso()
    pending = ("pending", None, 0, stamp, None)  # status, stripe_id, attempts, due, last_error
    created = (stamp, None, None, None, None)  # created, recorded_at, refund_failed_at, reversed,
    # send_amount
    return (record_id, kind, order_id, payment_intent, calculation, refund, amount, *pending,
            *created)  # fmt: skip


class TaxRecordStore:
    """The tax record methods of ``Ledger`` (which provides ``backend`` and ``_read``)."""

    def owe_tax_transaction(self, tx, order_id: str, payment_intent: str, calculation: str) -> None:
        """Inside a write transaction (the fulfilment's): the order's transaction is owed."""
        record = transaction_id(order_id)
        tx.run(
            _INSERT, _row(record, "transaction", order_id, payment_intent, calculation=calculation)
        )

    def owe_tax_reversals(
        self, order_id: str, payment_intent: str, refunds: Iterable[tuple[str, int | None]]
    ) -> int:
        """A reversal owed for each ``(refund id, amount refunded or None for all of it)``,
        once per refund; how many were new."""
        rows = [
            _row(reversal_id(r), "reversal", order_id, payment_intent, refund=r, amount=amount)
            for r, amount in refunds
        ]
        if not rows:
            return 0
        new = 0
        with self.backend.write() as tx:
            for row in rows:
                new += tx.run(_INSERT, row)
        return new

    def refunds_failed(self, order_id: str, refund_ids: Iterable[str]) -> int:
        """Note on each of these refunds' reversals that the refund failed, once; how many
        were new (the tax worker skips a pending one; a recorded one is tax under-reported)."""
        ids = [reversal_id(refund) for refund in refund_ids]
        if not ids:
            return 0
        with self.backend.write() as tx:
            return sum(
                tx.run(
                    """UPDATE tax_records SET refund_failed_at = ? WHERE id = ? AND order_id = ?
                    AND kind = 'reversal' AND refund_failed_at IS NULL""",
                    (now_iso(), record, order_id),
                )
                for record in ids
            )

    def tax_records_for(self, order_id: str) -> list[dict]:
        """An order's tax records: its transaction first, then its reversals, oldest first."""
        return self._read(
            f"""SELECT {_TAX} FROM tax_records WHERE order_id = ?
            ORDER BY CASE kind WHEN 'transaction' THEN 0 ELSE 1 END, created, id""",
            (order_id,),
        )

    def tax_records_with_status(
        self, statuses: Iterable[str], limit: int = 1000, *, refund_failed: bool = False
    ) -> list[dict]:
        """Every order's records in one of ``statuses`` (refused ones first, then owed, ...),
        oldest first, each with its order's ``currency``: what `bookpay report tax` lists.
        ``refund_failed``: and the reversals Stripe Tax has whose refund failed afterwards
        (recorded), which may be tax it under-reports."""
        query = listing_query(statuses, limit, refund_failed=refund_failed)
        return self._read(*query) if query else []

    def tax_reversals_for_orders(self, order_ids: Iterable[str]) -> dict[str, list[dict]]:
        """The reversals of several orders at once (all of them, in every status), by order id:
        what ``over_reversed`` needs to tell whether one's failed refund was taken into
        account."""
        ids = list(dict.fromkeys(order_ids))
        found: dict[str, list[dict]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = self._read(
                f"""SELECT {_TAX} FROM tax_records WHERE kind = 'reversal'
                AND order_id IN ({", ".join("?" * len(chunk))}) ORDER BY created, id""",
                chunk,
            )
            for row in rows:
                found.setdefault(row["order_id"], []).append(row)
        return found

    def failed_reversals_for_orders(self, order_ids: Iterable[str]) -> dict[str, list]:
        """Per order that has a reversal Stripe Tax has whose refund failed afterwards (tax
        reported as refunded that was not), its reversals done: what ``over_reversed`` needs."""
        ids = list(order_ids)
        found: dict[str, list] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = self._read(
                f"""SELECT order_id, amount, reversed, status, refund_failed_at FROM tax_records
                WHERE kind = 'reversal' AND status IN ('recorded', 'skipped')
                AND order_id IN (SELECT order_id FROM tax_records WHERE kind = 'reversal'
                AND status = 'recorded' AND refund_failed_at IS NOT NULL
                AND order_id IN ({", ".join("?" * len(chunk))})) ORDER BY id""",
                chunk,
            )
            for row in rows:
                found.setdefault(row["order_id"], []).append(row)
        return found

    def plan_tax_reversal(
        self,
        record_id: str,
        order_id: str,
        total: int | None,
        transaction_total: int | None = None,
    ) -> dict | None:
        """The pending reversal ``record_id`` with what it sends Stripe Tax (``send_amount``,
        None for a full reversal) and takes back (``reversed``): worked out at its first try
        (``plan_reversal``) and kept for every later one, so each try sends one body under
        its one idempotency key. None if it is no longer pending (done by another process);
        not worked out (``reversed`` None) if its refund failed first: never to be sent.
        ``transaction_total``: what the order's Stripe Tax transaction holds, for the reversal
        that completes a full refund to take what is left of it (``plan_reversal``).

        One order's reversals are worked out one at a time, across processes (PostgreSQL:
        its transaction's record is locked; SQLite: the write lock is the database's), each
        counting those worked out before it as sent: two sent at once never both take back
        the same offset."""
        with self.backend.write() as tx:
            order_lock = transaction_id(order_id)
            tx.one("SELECT id FROM tax_records WHERE id = ?{for_update}", (order_lock,))
            records = tx.all(
                f"""SELECT {_TAX} FROM tax_records WHERE order_id = ? AND kind = 'reversal'
                ORDER BY created, id""",
                (order_id,),
            )
            record = next((found for found in records if found["id"] == record_id), None)
            if record is None or record["status"] != "pending":
                return None
            if record["reversed"] is not None or record["refund_failed_at"]:
                return record  # worked out before; or never to be sent, nor worked out
            send, reversed = plan_reversal(record, records, total, transaction_total)
            tx.run(
                """UPDATE tax_records SET send_amount = ?, reversed = ?
                WHERE id = ? AND status = 'pending'""",
                (send, reversed, record_id),
            )
            return {**record, "send_amount": send, "reversed": reversed}

    def tax_records_due(self, limit: int = 100) -> list[dict]:
        """Pending records due now: transactions first (a reversal needs its transaction)."""
        return self._read(
            f"""SELECT {_TAX} FROM tax_records WHERE status = 'pending' AND next_attempt_at <= ?
            ORDER BY CASE kind WHEN 'transaction' THEN 0 ELSE 1 END, next_attempt_at LIMIT ?""",
            (now_iso(), limit),
        )

    def next_tax_record_due(self) -> str | None:
        return self._scalar("SELECT MIN(next_attempt_at) FROM tax_records WHERE status = 'pending'")

    def tax_record_done(
        self,
        record_id: str,
        *,
        stripe_id: str | None,
        status: str = "recorded",
        note: str | None = None,
        reversed: int | None = None,
    ) -> bool:
        """Mark a pending record recorded (or skipped or refused, with ``note``; a reversal
        with what it ``reversed`` in Stripe Tax, else what was worked out is kept); False if
        it was not pending (another process finished it first)."""
        return bool(
            self.backend.write_one(
                """UPDATE tax_records SET status = ?, stripe_id = ?, last_error = ?,
                recorded_at = ?, reversed = COALESCE(?, reversed), attempts = attempts + 1
                WHERE id = ? AND status = 'pending'""",
                (status, stripe_id, note, now_iso(), reversed, record_id),
            )
        )

    def tax_reversals_due_now(self, order_id: str) -> int:
        """The order's reversals waiting for its transaction (never tried, due later) due now,
        once the transaction is done with (``bookpay.taxrecords``): sent right after it, not
        at their next look. How many. One at a time, each its own write: a write holding one
        reversal while it waits for another could deadlock with a refund event's (PostgreSQL),
        and one that is lost is still looked at again in WAIT_FOR_TRANSACTION."""
        stamp = now_iso()
        waiting = self._read(
            """SELECT id FROM tax_records WHERE order_id = ? AND kind = 'reversal'
            AND status = 'pending' AND attempts = 0 AND next_attempt_at > ? ORDER BY id""",
            (order_id, stamp),
        )
        return sum(
            self.backend.write_one(
                """UPDATE tax_records SET next_attempt_at = ? WHERE id = ? AND status = 'pending'
                AND attempts = 0 AND next_attempt_at > ?""",
                (stamp, found["id"], stamp),
            )
            for found in waiting
        )

    def tax_record_failed(self, record_id: str, error: str, *, retry_in: float) -> None:
        """A try that failed: counted (the back-off grows with it), due again in ``retry_in``."""
        self.backend.write_one(
            """UPDATE tax_records SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?
            WHERE id = ? AND status = 'pending'""",
            (error[:500], now_iso(retry_in), record_id),
        )

    def tax_record_waiting(self, record_id: str, reason: str, *, look_in: float) -> None:
        """A record not sent yet for ``reason`` (a reversal waiting for its order's
        transaction): due again in ``look_in``, not counted as a try, so its first real
        failure backs off from the start."""
        self.backend.write_one(
            """UPDATE tax_records SET last_error = ?, next_attempt_at = ?
            WHERE id = ? AND status = 'pending'""",
            (reason[:500], now_iso(look_in), record_id),
        )
