"""An order's disputes, each at the status Stripe last gave it, and what they make of the order.

A dispute's status only moves forward (``model.DISPUTE_RANK``): an inquiry may escalate to a
chargeback, and both end closed (won, lost, an inquiry closed, or prevented). So however Stripe's
events arrive (``charge.dispute.created`` after ``charge.dispute.closed``, a delivery twice, two
handlers racing with Dispute objects retrieved a moment apart), the row keeps the latest status
any handler saw, and a closed dispute does not reopen, but for one exception
(``model.dispute_moves``): a chargeback won or lost may be appealed (``appeal_needs_response``,
``appeal_under_review``: open again), and decided again, so lost then won is won. (So a stale
decision or appeal can be taken too, if its handler commits last: the webhook handler reads the
Dispute again after its commit and records it again, ``WebhookReceiver._settle_dispute``.) The
order then
follows all its disputes (``model.dispute_overlay``): ``disputed`` while one is open (an appeal
too), ``dispute_lost`` once one is lost and none is open, and otherwise (won, an inquiry closed
or prevented) what the Charge's refunds say. Its note and ``dispute_status`` tell of the dispute
that decides (``model.deciding_dispute``), not of the last one an event named."""

from __future__ import annotations

from collections.abc import Iterable

from bookpay.ledger.model import (
    DISPUTE_OPEN,
    DISPUTE_RANK,
    REFUND_STATUSES,
    advance,
    charge_refund_status,
    charge_refunded,
    deciding_dispute,
    dispute_moves,
    dispute_overlay,
    intent_fields,
    now_iso,
    status_of_intent,
)
from bookpay.statuses import in_words

DISPUTE_COLUMNS = (
    "id",
    "order_id",
    "payment_intent",
    "status",
    "reason",
    "amount",
    "currency",
    "created",
    "updated",
)
_DISPUTES = ", ".join(DISPUTE_COLUMNS)


def _after_disputes(current: str, overlay: str | None, charged: str | None) -> str:
    """The order's status once its disputes say ``overlay`` (None: all closed, not lost)."""
    settled = (*REFUND_STATUSES, "disputed", "dispute_lost")
    if overlay is not None:
        return overlay if current in settled else advance(current, overlay)
    if charged is None:  # no Charge to go back to: leave the status as it is
        return current
    return charged if current in settled else advance(current, charged)


def dispute_note(dispute: dict) -> str:
    """The order's note for the dispute that decides it: its id, reason and, once closed, how."""
    note = f"dispute {dispute['id']}: {dispute.get('reason') or 'no reason given'}"
    if dispute["status"] not in DISPUTE_OPEN:
        note += f", {in_words(dispute['status'])}"
    return note


def _text(value) -> str | None:
    return value if isinstance(value, str) and value.isprintable() and len(value) <= 100 else None


class DisputeStore:
    """The dispute methods of ``Ledger`` (which provides ``backend``, ``_read``, ``_upsert``)."""

    def record_dispute(self, intent: dict, dispute: dict, charge: dict | None = None) -> dict:
        """Record the retrieved ``dispute`` (its status moving forward only, or a decided
        chargeback's appeal: ``model.dispute_moves``) and set the order from all its disputes,
        its note from the one that decides (``dispute_note``); ``charge`` (retrieved) says what
        a won dispute goes back to."""
        status = dispute["status"]
        if status not in DISPUTE_RANK:
            raise ValueError(f"unknown dispute status {status!r}")
        fields = intent_fields(intent)
        charged = charge_refund_status(charge) if charge is not None else None
        refunded = charge_refunded(charge) if charge is not None else None
        with self.backend.write() as tx:
            order = self._upsert(tx, fields, status_of_intent(intent))
            stamp = now_iso()
            inserted = tx.run(
                f"""INSERT INTO disputes ({_DISPUTES}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (id) DO NOTHING""",
                (
                    dispute["id"],
                    order["id"],
                    order["payment_intent"],
                    status,
                    _text(dispute.get("reason")),
                    dispute.get("amount") if isinstance(dispute.get("amount"), int) else None,
                    dispute.get("currency") if isinstance(dispute.get("currency"), str) else None,
                    stamp,
                    stamp,
                ),
            )
            if not inserted:
                known = tx.one(
                    "SELECT status FROM disputes WHERE id = ?{for_update}", (dispute["id"],)
                )
                if dispute_moves(known["status"], status):
                    tx.run(
                        "UPDATE disputes SET status = ?, updated = ? WHERE id = ?",
                        (status, stamp, dispute["id"]),
                    )
            disputes = tx.all(
                "SELECT id, status, reason FROM disputes WHERE order_id = ? ORDER BY created, id",
                (order["id"],),
            )
            deciding = deciding_dispute(disputes)
            overlay = dispute_overlay([row["status"] for row in disputes])
            return self._upsert(
                tx,
                fields,
                order["status"],
                amount_refunded=refunded,
                note=dispute_note(deciding),
                rule=lambda current: _after_disputes(current, overlay, charged),
                dispute_status=deciding["status"],
            )

    def disputes_for_orders(self, order_ids: Iterable[str]) -> dict[str, list[dict]]:
        """The disputes of several orders at once (status and amount), by order id, oldest
        first: one query per few hundred orders (``bookpay.report``'s batches)."""
        found: dict[str, list[dict]] = {}
        ids = list(dict.fromkeys(order_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = self._read(
                f"""SELECT order_id, status, amount FROM disputes
                WHERE order_id IN ({", ".join("?" * len(chunk))}) ORDER BY created, id""",
                chunk,
            )
            for row in rows:
                found.setdefault(row["order_id"], []).append(row)
        return found

    def disputes_for(self, order_id: str) -> list[dict]:
        """An order's disputes, oldest first, each at the status Stripe last gave it."""
        return self._read(
            f"SELECT {_DISPUTES} FROM disputes WHERE order_id = ? ORDER BY created, id",
            (order_id,),
        )
