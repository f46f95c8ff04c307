"""The canceling owed once a cart is paid: its other attempts' PaymentIntents (schema 11).

``Ledger.settle_cart`` writes one ``sibling_cancels`` row for the PaymentIntent that paid the
cart, in the same transaction as the settling, so what is owed outlives the process: one that
stops (Ctrl-C, a crash) before canceling leaves the row pending, and whichever process runs the
workers next (`bookpay serve`, `bookpay worker`) does it (``bookpay.siblings``).

A row's life: ``pending`` (due at ``next_attempt_at``; ``last_error`` says why the last try
failed) -> ``done`` (each sibling still cancelable was canceled, or found paid, canceled or
unknown to Stripe). A row is never given up now (a sibling can be charged for as long as Stripe
keeps it open): ``given_up`` is what earlier versions wrote after a few tries, which schema 12
makes pending again; `bookpay ledger check` warns of a row still owed an hour on.

A pending row is claimed by one process at a time, its claim marked in the row with the
claiming ledger instance's identity (``claimed_by``) and a lease (``claimed_until``), on both
databases: the work is Stripe calls, which are never made inside a ledger transaction, so the
claim cannot be a transaction's row lock as a receipt's is on PostgreSQL. A mark whose holder
no longer runs (on this host: ``bookpay.ledger.process``) is taken over at once, and the lease
ends any other, a hung holder's or one on another host. Each claim is a compare-and-set of the
mark as it was read, so of two processes claiming at once one gets the row. The work is safe to
repeat anyway (each sibling is retrieved from Stripe first, and one canceled is marked so):
a claim taken over from a holder that was still at work costs Stripe calls, never a charge.
"""

from __future__ import annotations

from bookpay.ledger import process
from bookpay.ledger.model import now_iso

CANCEL_COLUMNS = (
    "payment_intent",
    "cart_id",
    "status",
    "attempts",
    "next_attempt_at",
    "claimed_by",
    "claimed_until",
    "last_error",
    "created",
    "done_at",
)
_CANCELS = ", ".join(CANCEL_COLUMNS)
CANCEL_STATUSES = ("pending", "done", "given_up")
# A claim lasts this long even if its holder's liveness cannot be checked (a hung process, one
# on another host): a round is a few Stripe calls per cart, each with its own timeout.
CANCEL_LEASE = 300.0


class CancelStore:
    """The sibling-cancel methods of ``Ledger`` (which provides ``backend``, ``_read``,
    ``_scalar`` and ``_token``)."""

    _has_claimed_cancels = False  # so that closing a reader takes no write lock

    def owe_sibling_cancel(self, tx, payment_intent: str, cart_id: str | None) -> None:
        """Inside a write transaction (the settling's): the other attempts of the cart paid by
        ``payment_intent`` are to be canceled, once."""
        stamp = now_iso()
        tx.run(
            """INSERT INTO sibling_cancels (payment_intent, cart_id, created, next_attempt_at)
            VALUES (?, ?, ?, ?) ON CONFLICT (payment_intent) DO NOTHING""",
            (payment_intent, cart_id, stamp, stamp),
        )

    def sibling_cancel_for(self, payment_intent: str) -> dict | None:
        rows = self._read(
            f"SELECT {_CANCELS} FROM sibling_cancels WHERE payment_intent = ?", (payment_intent,)
        )
        return rows[0] if rows else None

    def sibling_cancels(self, status: str | None = None) -> list[dict]:
        sql, params = f"SELECT {_CANCELS} FROM sibling_cancels", ()
        if status:
            sql, params = sql + " WHERE status = ?", (status,)
        return self._read(sql + " ORDER BY created, payment_intent", params)

    def next_sibling_cancel_due(self) -> str | None:
        """When the earliest pending row is due (ISO time), or None when none is pending. A row
        another live holder claims is due when its claim ends at the latest (its holder may
        finish it first): a worker does not look again and again meanwhile. One whose holder
        no longer runs is due as if free: ``claim_sibling_cancels`` takes it over at once."""
        free = self._scalar(
            """SELECT MIN(next_attempt_at) FROM sibling_cancels WHERE status = 'pending'
            AND (claimed_by IS NULL OR claimed_by = ? OR claimed_until <= next_attempt_at)""",
            (self._token,),
        )
        held = self._read(
            """SELECT claimed_by, MIN(next_attempt_at) AS due, MIN(claimed_until) AS until
            FROM sibling_cancels WHERE status = 'pending' AND claimed_by IS NOT NULL
            AND claimed_by <> ? AND claimed_until > next_attempt_at GROUP BY claimed_by""",
            (self._token,),
        )
        times = [free] if free is not None else []
        for row in held:  # a few holders: the processes at work on this ledger
            times.append(row["until"] if process.holder_alive(row["claimed_by"]) else row["due"])
        return min(times, default=None)

    def claim_sibling_cancels(self, limit: int = 100) -> list[dict]:
        """Due pending rows, claimed for this ledger instance (see the module): free ones, and
        those whose holder no longer runs, lease or not. Report each one's fate with
        ``sibling_cancel_done`` or ``sibling_cancel_failed``, or ``release_sibling_cancels``."""
        stamp = now_iso()
        # A read first: a worker looking every --poll seconds at a ledger owing nothing takes
        # no write lock for it (SQLite's is the whole database's).
        if not self._read(
            "SELECT 1 AS due FROM sibling_cancels WHERE status = 'pending' "
            "AND next_attempt_at <= ? LIMIT 1",
            (stamp,),
        ):
            return []
        with self.backend.write() as tx:
            claimed = process.claim_due(
                tx,
                "sibling_cancels",
                CANCEL_COLUMNS,
                "payment_intent",
                token=self._token,
                lease=CANCEL_LEASE,
                limit=limit,
                stamp=stamp,
                lock_held=False,
            )
        self._has_claimed_cancels = self._has_claimed_cancels or bool(claimed)
        return claimed

    def sibling_cancel_done(
        self, payment_intent: str, *, status: str = "done", note: str | None = None
    ) -> bool:
        """Mark a row this instance claims done (or ``given_up``, with ``note``), releasing it;
        False if it was not this instance's to mark (its claim was taken over)."""
        return bool(
            self.backend.write_one(
                """UPDATE sibling_cancels SET status = ?, done_at = ?, attempts = attempts + 1,
                last_error = COALESCE(?, last_error), claimed_by = NULL, claimed_until = NULL
                WHERE payment_intent = ? AND status = 'pending' AND claimed_by = ?""",
                (status, now_iso(), note and note[:500], payment_intent, self._token),
            )
        )

    def sibling_cancel_failed(self, payment_intent: str, error: str, *, retry_in: float) -> bool:
        """A try that failed: counted (the back-off grows with it), due again in ``retry_in``,
        released."""
        return bool(
            self.backend.write_one(
                """UPDATE sibling_cancels SET attempts = attempts + 1, last_error = ?,
                next_attempt_at = ?, claimed_by = NULL, claimed_until = NULL
                WHERE payment_intent = ? AND status = 'pending' AND claimed_by = ?""",
                (error[:500], now_iso(retry_in), payment_intent, self._token),
            )
        )

    def release_sibling_cancels(self) -> None:
        """Release every row this instance claims (a round stopped short, the ledger closing):
        due again at once, for the next worker."""
        if not self._has_claimed_cancels:
            return
        self.backend.write_one(
            """UPDATE sibling_cancels SET claimed_by = NULL, claimed_until = NULL
            WHERE claimed_by = ?""",
            (self._token,),
        )
