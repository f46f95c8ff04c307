"""Once a cart is paid, its other checkout attempts' payments are canceled.

Each tab of a checkout is an attempt with its own PaymentIntent. When one of them pays the cart
(settled: ``Ledger.settle_cart``), the others of the same payment of the cart must never be
charged as well: one left waiting for 3-D Secure would be, the moment its challenge is passed.
So each of those PaymentIntents still cancelable and not paid is canceled, as Stripe has it now
(retrieved first, never an event's copy). Pay's last look refuses a tab whose cart has a
confirmed payment beside it (``Checkout.check_paid_beside``); this covers the tab already past
it, on its challenge.

The calls are made from a thread of its own, woken once the settling is committed: a webhook's
answer, or a page, never waits for them. Stripe unreachable, a PaymentIntent is tried again a
few times with backoff, then left (and said in the log). What is queued lives in this process:
a process that stops first leaves those PaymentIntents as they are.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from bookpay.errors import PaymentError, StripeUnavailable
from bookpay.worker import Worker

log = logging.getLogger("bookpay.siblings")

# Stripe cancels a PaymentIntent in these (and requires_capture, an authorization: a person
# decides about that one, it is not canceled here).
CANCELABLE = frozenset({"requires_payment_method", "requires_confirmation", "requires_action"})
RETRY_DELAYS = (5.0, 30.0, 120.0)  # then given up
IDLE = 3600.0


class SiblingCanceler(Worker):
    """Cancels the other attempts' PaymentIntents of each cart settled in this process."""

    thread_name = "bookpay-siblings"
    what = "canceling the other payments of a paid cart"

    def __init__(self, ledger, gateway) -> None:
        super().__init__()
        self.ledger = ledger
        self.gateway = gateway
        self._lock = threading.Lock()
        self._due: deque[tuple[float, int, str]] = deque()  # (due at, tries, settled intent)
        self._working = 0  # taken from the queue, not done yet (``drain`` waits for those too)

    def settled(self, intent_id: str) -> None:
        """The cart paid by ``intent_id`` was settled (committed): cancel its siblings soon."""
        with self._lock:
            self._due.append((time.monotonic(), 0, intent_id))
        self.start()
        self.wake()

    def due_now(self) -> bool:
        with self._lock:
            return self._working > 0 or any(due <= time.monotonic() for due, _, _ in self._due)

    def _idle_wait(self, handled: int) -> float:
        with self._lock:
            if not self._due:
                return IDLE
            return max(0.0, min(due for due, _, _ in self._due) - time.monotonic())

    def work(self) -> int:
        now = time.monotonic()
        with self._lock:
            ready = [entry for entry in self._due if entry[0] <= now]
            for entry in ready:
                self._due.remove(entry)
            self._working += 1
        try:
            self._cancel_all(ready)
        finally:
            with self._lock:
                self._working -= 1
        return len(ready)

    def _cancel_all(self, ready: list[tuple[float, int, str]]) -> None:
        for _, tries, intent_id in ready:
            if self._stop.is_set():
                break
            try:
                self.cancel_beside(intent_id)
            except StripeUnavailable as exc:
                if tries >= len(RETRY_DELAYS):
                    log.warning("gave up canceling the payments beside %s: %s", intent_id, exc)
                    continue
                again = time.monotonic() + RETRY_DELAYS[tries]
                with self._lock:
                    self._due.append((again, tries + 1, intent_id))
            except Exception:  # the ledger closing, Stripe refusing a retrieve: the next ones go on
                log.exception("canceling the payments beside %s failed", intent_id)

    def cancel_beside(self, intent_id: str) -> list[str]:
        """Cancel the PaymentIntents of the other attempts beside ``intent_id``'s that are still
        cancelable; the ids canceled."""
        canceled = []
        for beside in self.ledger.attempts_beside(intent_id):
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
