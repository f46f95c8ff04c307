"""Once a cart is paid, its other checkout attempts' payments are canceled.

Each tab of a checkout is an attempt with its own PaymentIntent. When one of them pays the cart
(settled: ``Ledger.settle_cart``), the others of the same payment of the cart must never be
charged as well: one left waiting for 3-D Secure would be, the moment its challenge is passed.
So each of those PaymentIntents still cancelable and not paid is canceled, as Stripe has it now
(retrieved first, never an event's copy). Pay's last look refuses a tab whose cart has a
confirmed payment beside it (``Checkout.check_paid_beside``); this covers the tab already past
it, on its challenge.

What is owed is in the ledger: ``Ledger.settle_cart`` records it (``sibling_cancels``) in the
same transaction as the settling, so a process that stops (Ctrl-C, a crash) before canceling
leaves it pending, and whichever process runs the workers next (`bookpay serve`, `bookpay
worker`) does it. The calls are made from a thread of its own, woken once the settling is
committed: a webhook's answer, or a page, never waits for them. Each row is claimed first
(``bookpay.ledger.cancels``), so two processes do not both work on one. Stripe unreachable (or
refusing a retrieve), a row is tried again a few times with backoff (``RETRY_DELAYS``), then
given up (said in the log, and by `bookpay ledger check`).
"""

from __future__ import annotations

import logging

from bookpay.errors import PaymentError, StripeUnavailable
from bookpay.ledger.errors import LedgerUnavailable
from bookpay.ledger.outbox import due_in
from bookpay.worker import Worker

log = logging.getLogger("bookpay.siblings")

# Stripe cancels a PaymentIntent in these (and requires_capture, an authorization: a person
# decides about that one, it is not canceled here).
CANCELABLE = frozenset({"requires_payment_method", "requires_confirmation", "requires_action"})
RETRY_DELAYS = (5.0, 30.0, 120.0)  # after the first try, the second... then given up
IDLE_LOOK = 600.0  # nothing owed: look again this often (another process may have settled one)
BATCH = 100


class SiblingCanceler(Worker):
    """Cancels the other attempts' PaymentIntents of each settled cart the ledger owes."""

    thread_name = "bookpay-siblings"
    what = "canceling the other payments of a paid cart"

    def __init__(self, ledger, gateway) -> None:
        super().__init__()
        self.ledger = ledger
        self.gateway = gateway

    def settled(self, intent_id: str) -> None:
        """The cart paid by ``intent_id`` was settled (committed, with what it owes): cancel
        its siblings soon."""
        self.start()
        self.wake()

    def due_now(self) -> bool:
        wait = due_in(self.ledger.next_sibling_cancel_due())
        return wait is not None and wait <= 0

    def _idle_wait(self, handled: int) -> float:
        try:
            wait = due_in(self.ledger.next_sibling_cancel_due())
        except Exception:
            return 1.0
        if wait is None:
            return IDLE_LOOK
        return min(max(wait, 0.05), IDLE_LOOK)

    def work(self) -> int:
        """Cancel beside every due row, in this thread; how many rows were tried."""
        tried = 0
        while not self._stop.is_set():
            claimed = self.ledger.claim_sibling_cancels(BATCH)
            try:
                for row in claimed:
                    if self._stop.is_set():
                        break
                    self._cancel(row)
                    tried += 1
            finally:
                # Those a stop left untried (or whose fate could not be written): due again at
                # once, for the next round or process.
                self.ledger.release_sibling_cancels()
            if len(claimed) < BATCH:
                break
        return tried

    def _cancel(self, row: dict) -> None:
        intent_id = row["payment_intent"]
        try:
            self.cancel_beside(intent_id)
        except LedgerUnavailable:  # locked, or down: not a try; the round ends, and is retried
            raise
        except Exception as exc:  # Stripe unreachable or refusing a retrieve
            tries = row["attempts"] + 1
            if isinstance(exc, StripeUnavailable):
                log.warning("canceling the payments beside %s failed: %s", intent_id, exc)
            else:
                log.exception("canceling the payments beside %s failed", intent_id)
            why = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            if tries > len(RETRY_DELAYS):
                log.warning(
                    "gave up canceling the payments beside %s after %d tries: %s",
                    intent_id,
                    tries,
                    why,
                )
                self.ledger.sibling_cancel_done(intent_id, status="given_up", note=why)
                return
            self.ledger.sibling_cancel_failed(intent_id, why, retry_in=RETRY_DELAYS[tries - 1])
            return
        self.ledger.sibling_cancel_done(intent_id)

    def cancel_beside(self, intent_id: str) -> list[str]:
        """Cancel the PaymentIntents of the other attempts beside ``intent_id``'s that are still
        cancelable; the ids canceled."""
        canceled = []
        for beside in self.ledger.each_attempt_beside(intent_id):
            other = beside["payment_intent"]
            intent = self.gateway.retrieve_intent(other, expand=())
            if intent.get("status") == "canceled":  # by Stripe or a page: not asked again
                self.ledger.mark_canceled(other)
            if intent.get("status") not in CANCELABLE:
                continue
            try:
                self.gateway.cancel_intent(other, reason="duplicate")
            except PaymentError as exc:  # confirmed or paid since it was retrieved
                log.warning("could not cancel %s beside the paid %s: %s", other, intent_id, exc)
                continue
            self.ledger.mark_canceled(other)
            log.info("canceled %s: its cart was paid by %s", other, intent_id)
            canceled.append(other)
        return canceled
