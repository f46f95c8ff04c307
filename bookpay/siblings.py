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
(``bookpay.ledger.cancels``), so two processes do not both work on one.

Each sibling is looked at on its own: one Stripe does not know (404: an emulator reset, another
account's) has nothing to cancel; one Stripe cannot be reached for, or refuses to answer about,
keeps none of the others waiting, and the row stays owed, its ``last_error`` naming it and
Stripe's words. Such a row is tried again with a back-off growing to ten minutes
(``RETRY_DELAYS``), and never given up: Stripe documents no end to an incomplete PaymentIntent
(only an uncaptured one is canceled, after 7 days), so a tab left on its 3-D Secure page can be
charged for as long as Stripe keeps it, and a shop whose Stripe is down for an afternoon must
still cancel it afterwards. `bookpay ledger check` warns of a row tried for long.
"""

from __future__ import annotations

import logging

from bookpay.errors import BookpayError, NotFound, PaymentError
from bookpay.ledger.errors import LedgerUnavailable
from bookpay.ledger.outbox import due_in
from bookpay.worker import Worker

log = logging.getLogger("bookpay.siblings")
# What became of each payment is a line of its own: never held back as a repeat of the last one
# (serve's log rate-limits repeated lines by their template: bookpay.web.logs.RepeatFilter).
EACH = {"each": True}

# Stripe cancels a PaymentIntent in these (and requires_capture, an authorization: a person
# decides about that one, it is not canceled here).
CANCELABLE = frozenset({"requires_payment_method", "requires_confirmation", "requires_action"})
# After the first failed try, the second...; then every RETRY_DELAYS[-1] seconds, for as long as
# the row is owed: never given up (see the module).
RETRY_DELAYS = (5.0, 30.0, 120.0, 600.0)
# Nothing owed: look again this often. Another process on the ledger may have settled a cart
# and not canceled (stopped since, or a `serve --no-worker` with no worker running), and a tab
# left on its 3-D Secure page can be passed at any moment: one read of an index each time.
IDLE_LOOK = 30.0
BATCH = 100
NOTHING_TO_CANCEL = "Stripe has no %s (beside the paid %s): nothing to cancel"


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
        except SiblingsLeft as exc:  # Stripe unreachable, or refusing, for some of them
            why, retry_after = str(exc), exc.retry_after
        except Exception as exc:  # a defect: said in full, and tried again like the others
            log.exception("canceling the payments beside %s failed", intent_id)
            why, retry_after = f"{type(exc).__name__}: {exc}", None
        else:
            self.ledger.sibling_cancel_done(intent_id)
            return
        delay = retry_delay(row["attempts"], retry_after)
        log.warning(
            "canceling the payments beside %s: not all done (try %d), trying again in %s: %s",
            intent_id,
            row["attempts"] + 1,
            _seconds(delay),
            why,
            extra=EACH,
        )
        self.ledger.sibling_cancel_failed(intent_id, why, retry_in=delay)

    def cancel_beside(self, intent_id: str) -> list[str]:
        """Cancel the PaymentIntents of the other attempts beside ``intent_id``'s that are still
        cancelable; the ids canceled. Each is looked at on its own: one Stripe does not know
        has nothing to cancel; one Stripe cannot be reached for (or refuses to answer about)
        keeps none of the others waiting, and ``SiblingsLeft`` says which, once all were
        looked at. A ledger failing (``LedgerUnavailable``) ends it at once."""
        canceled, left = [], {}
        retry_after = None
        for beside in self.ledger.each_attempt_beside(intent_id):
            other = beside["payment_intent"]
            try:
                if self._cancel_one(other, intent_id):
                    canceled.append(other)
            except LedgerUnavailable:  # a BookpayError too, but the ledger's: not a try
                raise
            except BookpayError as exc:
                left[other] = exc.message or type(exc).__name__
                wait = getattr(exc, "retry_after", None)
                if wait is not None:
                    retry_after = max(retry_after or 0, wait)
        if left:
            raise SiblingsLeft(left, retry_after=retry_after)
        return canceled

    def _cancel_one(self, other: str, paid: str) -> bool:
        """Cancel ``other`` if Stripe has it cancelable; whether this did. ``BookpayError``
        when Stripe cannot say (or cancel it while it is still cancelable)."""
        try:
            intent = self.gateway.retrieve_intent(other, expand=())
        except NotFound:
            # An emulator reset, another account's keys: no PaymentIntent to charge the cart.
            log.info(NOTHING_TO_CANCEL, other, paid, extra=EACH)
            return False
        status = intent.get("status")
        if status == "canceled":  # by Stripe or a page: not asked again
            self.ledger.mark_canceled(other)
        if status not in CANCELABLE:
            return False
        try:
            self.gateway.cancel_intent(other, reason="duplicate")
        except NotFound:
            log.info(NOTHING_TO_CANCEL, other, paid, extra=EACH)
            return False
        except PaymentError as exc:  # confirmed or paid since it was retrieved, or refused
            now = self.gateway.retrieve_intent(other, expand=()).get("status")
            if now == "canceled":
                self.ledger.mark_canceled(other)
                return False
            if now in CANCELABLE:  # still chargeable: this cancel was refused for another reason
                raise
            log.warning(
                "could not cancel %s beside the paid %s: %s", other, paid, exc.message, extra=EACH
            )
            return False
        self.ledger.mark_canceled(other)
        log.info("canceled %s: its cart was paid by %s", other, paid, extra=EACH)
        return True


class SiblingsLeft(Exception):
    """Some PaymentIntents beside a paid one could not be looked at or canceled: why, by id;
    ``retry_after``, the longest a rate limit asked to wait, if any did."""

    def __init__(self, left: dict[str, str], *, retry_after: float | None = None) -> None:
        super().__init__("; ".join(f"{other}: {why}" for other, why in left.items()))
        self.left = left
        self.retry_after = retry_after


def retry_delay(attempts: int, retry_after: float | None = None) -> float:
    """Seconds before the next try of a row tried ``attempts`` times before this failed one:
    ``RETRY_DELAYS``, growing, then its last, for good; longer if Stripe asked to wait."""
    delay = RETRY_DELAYS[min(attempts, len(RETRY_DELAYS) - 1)]
    if retry_after is not None:
        delay = max(delay, min(float(retry_after), RETRY_DELAYS[-1]))
    return delay


def _seconds(delay: float) -> str:
    return f"{delay:g} s"
