"""Incoming webhooks: verify the raw body, check its shape, record it, handle it, mark it processed.

Order of work, and why:

1. The signature is checked on the raw bytes before anything is parsed, by stripe-python's own
   verifier (so the header is parsed exactly as Stripe's libraries parse it), against every
   configured secret (``STRIPE_WEBHOOK_SECRET`` may hold several while a secret is rolled, and
   ``bookpay serve`` adds the one the emulator issued). Nothing is recorded for a bad one.
2. The event's shape is checked (``event_shape.parse``): a signed body that is not a usable
   event is refused with a 400, recorded in the ledger as refused (when its id is usable) or
   logged, and never reaches a handler. Nothing a body holds can cause a 500.
3. An event the ledger has already *processed* is a duplicate: 200, the delivery is counted,
   nothing else changes, and Stripe is not asked anything.
4. Handling never trusts the event's copy of anything: it asks Stripe (the gateway) for the
   PaymentIntent, the Charge and its refunds, the Refund or the Dispute, which also rejects forged
   ids (NotFound) and PaymentIntents that are not this shop's (an event of the other mode, live
   or test, is ignored before any of this: Stripe would not know its objects). Nor its type: a
   PaymentIntent event whose type the retrieved PaymentIntent does not bear out (``succeeded``
   for one that has not, ``canceled`` for one that is not) records Stripe's state but is not
   *handled*, so ``ledger check`` holds orders only to what Stripe proved. Every Stripe call
   comes first, before any write, so none is made while a write lock or transaction is held.
5. Then one transaction records the delivery, makes the changes (the order, the fulfilment and
   its queued receipt) and marks the event *processed* (``Ledger.handling``). If handling raises
   (Stripe unreachable, a bug), the delivery is still recorded, as *received* but not processed,
   and the next delivery handles it again: handling is idempotent, so a redelivery can only
   finish the job. A process that dies mid-way commits nothing of it, and Stripe's redelivery
   is a first one. Receipts are sent by the Fulfiller's worker thread, so the answer comes as
   soon as the transaction is committed. The event is filed under the PaymentIntent that
   handling retrieved (the event's copy names one only until something is retrieved).
6. A refund event, a dispute event that recorded the Charge (a closed dispute: a won one
   takes the order back to what the Charge's refunds say), and a ``payment_intent.succeeded``
   that fulfilled its order or found its Charge refunded in full, then re-reads the Charge
   (``_settle_refunds``): two such events handled at once, in this process or another, can
   commit in either order, and the later commit may hold the older Charge; the last to commit
   always re-reads after its commit, so the ledger ends at Stripe's newest state. In the usual
   case this costs one retrieve and no write. An open dispute records no refunds (the order
   shows the dispute whatever they are), so it has nothing to re-read.

   A dispute event that recorded a decided chargeback (won, lost) or an appeal of one re-reads
   the Dispute too (``_settle_dispute``), first: those are the statuses a stale read may write
   over a newer one (lost, appealed, then won: a handler that read ``lost`` and commits after
   one that read ``won`` moves it back, as ``dispute_moves`` must let a missed appeal's decision
   do), so the last to commit reads the Dispute again and, if the ledger's row would take it,
   records it (and the Charge it goes back to, read again in turn). Every other status only
   moves forward (``DISPUTE_RANK``) and none newer can come before it, so a stale one is simply
   not taken: no re-read. In the usual case this costs one retrieve and no write. If Stripe
   cannot be asked after the commit (either re-read), the event is reopened, so its redelivery
   does it again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bookpay.errors import ConfigError, NotFound, UnknownToBookpay, WebhookSignatureError
from bookpay.event_shape import Event, InvalidEvent, amount, object_id, parse
from bookpay.fulfilment import Fulfiller, ownership_problem
from bookpay.ledger import Ledger
from bookpay.ledger.check import EVENT_FLOOR, bears_out
from bookpay.ledger.ledger import EventUnit
from bookpay.ledger.model import (
    DISPUTE_APPEALS,
    DISPUTE_DECIDED,
    DISPUTE_OPEN,
    DISPUTE_RANK,
    charge_refund_status,
    charge_refunded,
    dispute_moves,
    refund_status,
    status_of_intent,
)
from bookpay.statuses import in_words

log = logging.getLogger("bookpay.webhooks")

TOLERANCE = 300  # seconds; stripe-python's default (Webhook.DEFAULT_TOLERANCE)
MAX_HEADER = 8192  # a Stripe-Signature with a few v1 values is ~200 characters

# PaymentIntent events: the order follows the retrieved PaymentIntent's own state.
# (payment_intent.succeeded goes through fulfilment.)
INTENT_EVENTS = (
    "payment_intent.processing",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "payment_intent.amount_capturable_updated",  # manual capture: the payment is authorized
)
# Refund events: the order follows the retrieved Charge and its refunds.
REFUND_EVENTS = ("charge.refunded", "charge.refund.updated", "refund.updated", "refund.failed")
# Dispute events: the order follows the retrieved Dispute (and, once it is won, the Charge).
DISPUTE_EVENTS = ("charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed")
HANDLED = frozenset({"payment_intent.succeeded", *INTENT_EVENTS, *REFUND_EVENTS, *DISPUTE_EVENTS})
# How many times a refund or dispute event re-reads the Charge (or the Dispute) after its commit:
# once in the usual case, again after each correcting write (each of which Stripe's changes
# could outrun).
SETTLE_READS = 4
# The Dispute statuses a stale read can write over a newer one (``dispute_moves`` lets a decided
# chargeback take an appeal or another decision, whose events may be missed): an event that
# recorded one re-reads the Dispute after its commit (``_settle_dispute``).
DISPUTE_RESETTLED = (*DISPUTE_DECIDED, *DISPUTE_APPEALS)


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header value for ``payload``, as Stripe computes it."""
    stamp = int(time.time()) if timestamp is None else int(timestamp)
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256)
    return f"t={stamp},v1={mac.hexdigest()}"


def verify(
    payload: bytes, header: str | None, secrets: Sequence[str], tolerance: int = TOLERANCE
) -> None:
    """Raise WebhookSignatureError unless ``header`` signs ``payload`` with one of ``secrets``.

    stripe-python's check (any of several ``v1`` signatures, timestamps older than the
    tolerance refused), plus one it leaves out: a timestamp more than the tolerance in the
    future is refused too, so a signature cannot be made to outlive its window. The timestamp
    for that check is the one stripe-python's parser read, never a second parse of our own.
    """
    from stripe import SignatureVerificationError, WebhookSignature

    if not header:
        raise WebhookSignatureError("Missing Stripe-Signature header.", code="missing_signature")
    # A Stripe-Signature is short printable ASCII; anything else cannot be one (and non-ASCII
    # text would make the constant-time comparison raise TypeError instead of failing).
    if len(header) > MAX_HEADER or not header.isascii() or not header.isprintable():
        raise WebhookSignatureError("Invalid Stripe-Signature: not a signature header.")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookSignatureError("The webhook body is not UTF-8.") from None
    failure: Exception | None = None
    for secret in secrets:
        try:
            WebhookSignature.verify_header(text, header, secret, tolerance)
        except SignatureVerificationError as exc:
            failure = exc
            continue
        stamp, _ = WebhookSignature._get_timestamp_and_signatures(
            header, WebhookSignature.EXPECTED_SCHEME
        )
        if stamp > time.time() + tolerance:
            raise WebhookSignatureError(
                f"Timestamp outside the tolerance zone ({stamp}): it is in the future."
            )
        return
    message = str(getattr(failure, "user_message", None) or failure)
    raise WebhookSignatureError(f"Invalid Stripe-Signature: {message}")


class Answer(dict):
    """The receiver's answer: the dict is what the sender is answered (JSON). Beside it, for the
    shop's log line, what the handling already knows and the log would otherwise read again (the
    body parsed a second time, the order looked up in the ledger): the PaymentIntent the event is
    filed under (the one retrieved from Stripe, not the one the event's copy names) and the order
    it fulfilled. Neither is part of the JSON."""

    def __init__(self, fields: dict, *, payment_intent: str | None, order_id: str | None = None):
        super().__init__(fields)
        self.payment_intent = payment_intent
        self.order_id = order_id


class _Ignored(Exception):
    """Handling stops here: the event is recorded as handled=False with this reason."""


@dataclass
class _Job:
    """What handling one event learns on the way: where to file it (the PaymentIntent
    retrieved from Stripe), and the Charge (and Dispute) to re-read once it is committed, if it
    recorded one."""

    unit: EventUnit | None = None
    settle: tuple[dict, str] | None = None  # (the retrieved intent, its Charge's id)
    # (the Dispute's id, the retrieved intent, its Charge's id, the order's id)
    dispute: tuple[str, dict, str | None, str] | None = None
    order_id: str | None = None  # the order a payment_intent.succeeded fulfilled (for the log)

    def found(self, intent_id: str | None) -> None:
        """Stripe's objects lead to ``intent_id`` (or to none): the event is filed there."""
        if self.unit is not None:
            self.unit.file_under(intent_id)


class WebhookReceiver:
    """Turns one webhook request (raw body + Stripe-Signature) into ledger changes."""

    def __init__(
        self,
        settings,
        ledger: Ledger,
        fulfiller: Fulfiller,
        *,
        secrets: Sequence[str] = (),
        tolerance: int = TOLERANCE,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.fulfiller = fulfiller
        self.tolerance = tolerance
        self._lock = threading.Lock()
        self._secrets = tuple(dict.fromkeys([*settings.webhook_secrets, *secrets]))
        import stripe  # noqa: F401  (imported now so the first request does not pay for it)

    def add_secret(self, secret: str) -> None:
        """Accept events signed with ``secret`` too (the emulator's endpoint secret)."""
        with self._lock:
            if secret not in self._secrets:
                self._secrets = (*self._secrets, secret)

    @property
    def secrets(self) -> tuple[str, ...]:
        return self._secrets

    @property
    def gateway(self):
        return self.fulfiller.gateway

    def handle(self, payload: bytes, signature_header: str | None) -> Answer:
        secrets = self._secrets
        if not secrets:
            where = (
                "the emulator has not issued one yet (`bookpay serve` registers the endpoint)"
                if self.settings.is_emulated
                else "run `stripe listen` and set the whsec_... secret it prints"
            )
            raise ConfigError(
                f"No webhook signing secret is configured: set STRIPE_WEBHOOK_SECRET; {where}."
            )
        verify(payload, signature_header, secrets, self.tolerance)
        return self._process(payload)

    def processed(self, event_id: str) -> bool:
        """Whether the ledger has processed the event ``event_id`` already (a read: no lock)."""
        recorded = self.ledger.get_event(event_id)
        return recorded is not None and bool(recorded["processed_at"])

    def catch_up(self, event: dict) -> Answer | None:
        """Handle an event listed by Stripe (``GET /v1/events``) that was not delivered to this
        shop, exactly as its delivery would be; None, with nothing recorded, when the ledger has
        processed it already (no delivery came to count). Stripe's later delivery of it is then
        a duplicate. Raises what handling a delivery raises (InvalidEvent, Stripe unreachable)."""
        payload = json.dumps(event).encode()
        return self._process(payload, skip_processed=True)

    def _process(self, payload: bytes, *, skip_processed: bool = False) -> Answer | None:
        """An event's body (verified, or retrieved from Stripe): checked, recorded, handled."""
        try:
            event = parse(payload, HANDLED)
        except InvalidEvent as exc:
            self._refused(exc)
            raise
        answer = {"received": True, "id": event.id, "type": event.type, "duplicate": False}
        recorded = self.ledger.get_event(event.id)  # a read: no lock
        if recorded is not None and recorded["processed_at"]:
            if skip_processed:
                return None
            self.ledger.receive_event(  # counts the delivery
                event.id, event.type, event.intent_id, created=event.created
            )
            return Answer(
                {**answer, "duplicate": True, "handled": bool(recorded["handled"])},
                payment_intent=recorded["payment_intent"],  # as its handling filed it
            )
        job = _Job()
        with self.ledger.handling(
            event.id, event.type, event.intent_id, created=event.created, livemode=event.livemode
        ) as unit:
            job.unit = unit
            handled, outcome = self.dispatch(event, job)
            self.ledger.finish_event(event.id, handled=handled, outcome=outcome)
        if job.dispute is not None:  # first: a Dispute it records again reads the Charge again
            self._settle_dispute(event.id, job)
        if job.settle is not None:
            self._settle_refunds(event.id, *job.settle)
        return Answer(
            {**answer, "handled": handled, "outcome": outcome},
            payment_intent=unit.intent_id,  # the one retrieved from Stripe, once it was
            order_id=job.order_id,
        )

    def _refused(self, exc: InvalidEvent) -> None:
        """Leave a trace of a signed event refused for its shape: the ledger, or the log."""
        if exc.event_id is None:
            log.warning("refused a signed webhook event: %s", exc.reason)
            return
        kind = exc.kind or "(invalid)"
        log.warning("refused signed webhook event %s (%s): %s", exc.event_id, kind, exc.reason)
        if self.ledger.receive_event(exc.event_id, kind, None) != "duplicate":
            self.ledger.finish_event(exc.event_id, handled=False, outcome=f"refused: {exc.reason}")

    # Handling ---------------------------------------------------------------------------------

    def dispatch(self, event: Event, job: _Job | None = None) -> tuple[bool, str]:
        """(handled, outcome) for one verified event; raises only when it should be retried."""
        job = job or _Job()
        if event.type not in HANDLED:
            return False, "ignored: not an event bookpay handles"
        other_mode = _other_mode(event.livemode, self.settings.livemode)
        if other_mode:
            return False, f"ignored: {other_mode}"
        try:
            if event.type == "payment_intent.succeeded":
                return self._succeeded(event.object_id, job)
            if event.type in INTENT_EVENTS:
                return self._intent_changed(event, job)
            if event.type in REFUND_EVENTS:
                return self._refunded(event, job)
            order, fulfilled = self._disputed(event.object_id, job)
        except _Ignored as why:
            return False, f"ignored: {why}"
        outcome = f"order {order['id']} is {in_words(order['status'])}"
        return True, outcome + (f"; fulfilled: {fulfilled}" if fulfilled else "")

    def _succeeded(self, intent_id: str, job: _Job) -> tuple[bool, str]:
        try:
            result = self.fulfiller.fulfil(intent_id)
        except NotFound:
            return False, f"ignored: Stripe does not know {intent_id}"
        if result.fulfilled and result.order is not None:
            job.order_id = result.order["id"]
        charge_id = object_id((result.intent or {}).get("latest_charge"))
        if result.outcome == "refunded" and charge_id:
            # It wrote the Charge's refunds as they were when the PaymentIntent was retrieved:
            # a refund event may have read a newer Charge (the refund failed) and committed
            # first (``_settle_refunds``). A fulfilment writes no refunds, and one refunded or
            # disputed meanwhile is refused on the locked row (``Fulfiller._refusal``): the
            # usual event costs no second read.
            job.settle = (result.intent, charge_id)
        if result.outcome == "rejected" and result.order is None:
            return False, f"ignored: {result.reason}"
        return result.fulfilled, result.outcome + (f": {result.reason}" if result.reason else "")

    def _intent_changed(self, event: Event, job: _Job) -> tuple[bool, str]:
        """The order as Stripe's PaymentIntent has it, whatever the event's type says. An event
        that PaymentIntent does not bear out (``canceled`` for one that is not, say: forged, or
        meant for a PaymentIntent since gone) is not handled, as a ``succeeded`` one is not when
        the PaymentIntent has not succeeded: `ledger check` holds an order to what the events it
        handled prove (``check.bears_out``)."""
        intent = self._intent(event.object_id, job)
        order = self.ledger.record_intent(intent)
        if intent.get("status") == "canceled":
            # Stripe's, retrieved: its attempt is no longer one of its cart's payments to cancel
            # (``attempts_beside``), nor asked of Stripe again. Once: a second delivery, or a
            # cancel the shop made and marked already, keeps the first time.
            self.ledger.mark_canceled(intent["id"])
        outcome = f"order {order['id']} is {in_words(order['status'])}"
        if bears_out(event.type, status_of_intent(intent)):
            return True, outcome
        claim = in_words(EVENT_FLOOR[event.type])
        return (
            False,
            f"not {claim}: the PaymentIntent is {in_words(intent.get('status'))}; {outcome}",
        )

    def _intent(self, intent_id: str | None, job: _Job) -> dict:
        """The PaymentIntent as Stripe has it, if it is one of this shop's."""
        if not intent_id:
            raise _Ignored("no PaymentIntent")
        intent = _retrieve(self.fulfiller.retrieve, intent_id)
        job.found(object_id(intent.get("id")))
        problem = ownership_problem(intent, self.settings.shop_id)
        if problem:
            raise _Ignored(problem)
        return intent

    def _refunded(self, event: Event, job: _Job) -> tuple[bool, str]:
        """The order as refunded as Stripe's Charge says: the money it took that went back and
        its refunded flag, up or down (a refund that fails gives the money back:
        ``Ledger.record_refunds``). What a partial capture released was never taken, so it is
        no refund (``model.charge_refunded``).

        A Charge that was never captured took no money: its "refund" is the release of an
        authorization (a held payment canceled, or expired). The order follows the PaymentIntent
        (canceled), and the event is not handled, as a PaymentIntent event its PaymentIntent
        does not bear out is not (``_intent_changed``), so `ledger check` holds the order to no
        floor of ``paid`` that Stripe did not prove.

        A refund event names a Refund; the Charge is the one Stripe's own Refund points to.
        Once committed, the Charge is read again (``_settle_refunds``).

        An order refunded in full before it was fulfilled, whose Charge is not refunded in full
        any more (a refund failed: the shop keeps the money), is fulfilled now, once, from the
        retrieved objects (``Fulfiller.kept``): no ``succeeded`` event will come again for it.
        """
        charge_id = event.object_id
        if event.object.get("object") == "refund":
            refund = _retrieve(self.gateway.retrieve_refund, event.object_id)
            job.found(object_id(refund.get("payment_intent")))
            charge_id = object_id(refund.get("charge"))
            if not charge_id:
                raise _Ignored(f"refund {event.object_id} has no charge")
        charge = _retrieve(self.gateway.retrieve_charge, charge_id)
        job.found(object_id(charge.get("payment_intent")))
        intent = self._intent(object_id(charge.get("payment_intent")), job)
        if charge.get("captured") is False:
            order = self.ledger.record_intent(intent)
            return False, (
                "not refunded: the Charge was never captured, so no money it took went back"
                f" (the PaymentIntent is {in_words(intent.get('status'))});"
                f" order {order['id']} is {in_words(order['status'])}"
            )
        order, fulfilled = self._record_refunds(intent, charge)
        job.settle = (intent, charge_id)
        outcome = f"order {order['id']} is {in_words(order['status'])}"
        return True, outcome + (f"; fulfilled: {fulfilled}" if fulfilled else "")

    def _record_refunds(self, intent: dict, charge: dict) -> tuple[dict, str | None]:
        """The order as the Charge's refunds leave it, and why this fulfilled it, if it did (a
        refund in full before the fulfilment failed: ``Fulfiller.kept``)."""
        # Nothing refunded (any more) is news too: a refund that failed gives the money back.
        refunded = amount(charge.get("amount_refunded")) or 0
        order = self.ledger.record_refunds(intent, {**charge, "amount_refunded": refunded})
        self.fulfiller.refunded(intent, charge)  # the tax reversals its refunds owe, once each
        return self._kept(order, intent, charge)

    def _kept(self, order: dict, intent: dict, charge: dict) -> tuple[dict, str | None]:
        """``order`` and None, or the order ``Fulfiller.kept`` fulfilled (refunded in full
        before its fulfilment, that refund failed since; or disputed first, the dispute won
        since) and why (``Fulfiller.kept``'s reason)."""
        kept = self.fulfiller.kept(intent, charge)
        if kept is not None and kept.newly_fulfilled and kept.order is not None:
            return kept.order, kept.reason
        return order, None

    def _settle_refunds(self, event_id: str, intent: dict, charge_id: str) -> None:
        """Once a refund event (or a dispute event that recorded the Charge) is committed, read
        the Charge again and record its refunds until the order agrees with it. Another handler
        may have read the Charge before a newer refund and committed after this one; whoever
        commits last reads after its own commit, so the ledger ends at Stripe's newest state,
        across processes too, with no Stripe call made inside a transaction. If Stripe cannot be
        asked, the event is reopened so that its redelivery does this again."""

        def settled() -> bool:
            charge = self.gateway.retrieve_charge(charge_id)
            if _agrees(self.ledger.find_order(intent["id"]), charge):
                return True
            with self.ledger.together():
                self._record_refunds(intent, charge)
            return False

        self._settle(
            event_id,
            settled,
            f"the refunds of {charge_id} kept changing while event {event_id} was handled; the "
            "next refund or dispute event records them",
        )

    def _settle(self, event_id: str, settled: Callable[[], bool], unsettled: str) -> None:
        """``settled()`` (one read of Stripe after the event's commit: True when the ledger
        agrees with it, else it recorded what it read) until it is True, ``SETTLE_READS`` times
        at most (then ``unsettled`` is logged); if it raises (Stripe unreachable, mostly), the
        event is reopened, so that its redelivery does this again."""
        try:
            for _ in range(SETTLE_READS):
                if settled():
                    return
        except Exception:
            self.ledger.reopen_event(event_id)
            raise
        log.warning("%s", unsettled)

    def _settle_dispute(self, event_id: str, job: _Job) -> None:
        """Once a dispute event that recorded a decided chargeback or an appeal
        (``DISPUTE_RESETTLED``) is committed, read the Dispute again and record it until the
        ledger's row would not take it (``dispute_moves``). Another handler may have read it
        before a newer decision and committed after this one (lost, appealed and won: a stale
        ``lost`` committed last would stand); whoever commits last reads after its own commit,
        as ``_settle_refunds`` does for the Charge. A closed Dispute recorded again is recorded
        with its Charge read now (a won one goes back to its refunds, and fulfils an order
        ``Fulfiller.kept`` owes), which is then read again after it (``job.settle``). If Stripe
        cannot be asked, the event is reopened so that its redelivery does this again."""
        dispute_id, intent, charge_id, order_id = job.dispute

        def settled() -> bool:
            dispute = self.gateway.retrieve_dispute(dispute_id)
            status = _known_status(dispute, dispute_id)
            if not dispute_moves(self._dispute_status(order_id, dispute_id), status):
                return True
            charge = None
            if status not in DISPUTE_OPEN and charge_id:
                charge = self.gateway.retrieve_charge(charge_id)
            with self.ledger.together():
                order = self.ledger.record_dispute(intent, dispute, charge)
                if charge is not None:
                    self._kept(order, intent, charge)
            if charge is not None:
                job.settle = (intent, charge_id)
            return False

        self._settle(
            event_id,
            settled,
            f"dispute {dispute_id} kept changing while event {event_id} was handled; the next "
            "dispute event records it",
        )

    def _dispute_status(self, order_id: str, dispute_id: str) -> str | None:
        """The status the ledger keeps for one of an order's disputes (None: none yet)."""
        rows = self.ledger.disputes_for(order_id)
        return next((row["status"] for row in rows if row["id"] == dispute_id), None)

    def _disputed(self, dispute_id: str | None, job: _Job) -> tuple[dict, str | None]:
        """The order as Stripe's Dispute leaves it (found by its charge if need be): disputed
        while it is open (or appealed), dispute_lost once lost, and once won (or an inquiry
        closed, or prevented) what its Charge's refunds say. Whichever event this is, the
        retrieved Dispute decides, so a ``created`` that arrives after ``closed`` does not reopen
        it (``Ledger.record_dispute``). A status bookpay does not know (one Stripe added since)
        raises ``UnknownToBookpay`` (503): the event stays unprocessed, Stripe redelivers it, and
        nothing is recorded from a guess. A Charge it records is
        read again once committed (``_settle_refunds``), as a refund event's is; a decided
        chargeback or an appeal it records, the Dispute too (``_settle_dispute``). Once won, an
        order refunded in full before its fulfilment whose refund failed meanwhile is fulfilled
        (``Fulfiller.kept``; True with the order)."""
        dispute = _retrieve(self.gateway.retrieve_dispute, dispute_id)
        job.found(object_id(dispute.get("payment_intent")))
        status = _known_status(dispute, dispute_id)
        intent_id = object_id(dispute.get("payment_intent"))
        charge_id = object_id(dispute.get("charge"))
        charge = None
        if not intent_id and charge_id:  # older API versions: only the charge
            charge = _retrieve(self.gateway.retrieve_charge, charge_id)
            intent_id = object_id(charge.get("payment_intent"))
            job.found(intent_id)
        intent = self._intent(intent_id, job)
        charge_id = charge_id or object_id(intent.get("latest_charge"))
        if status not in DISPUTE_OPEN and charge is None:
            # Closed: a won dispute goes back to what the Charge's refunds say.
            charge = _retrieve(self.gateway.retrieve_charge, charge_id)
        order = self.ledger.record_dispute(intent, dispute, charge)
        if status in DISPUTE_RESETTLED:
            job.dispute = (dispute["id"], intent, charge_id, order["id"])
        if charge is None:
            return order, False
        job.settle = (intent, charge_id)
        return self._kept(order, intent, charge)


def _other_mode(event_live: bool | None, shop_live: bool) -> str | None:
    """Why an event of the other mode (a live event reaching a test-mode shop, or a test event a
    live one) is none of this shop's, or None. Stripe keeps the two modes' objects apart: asking
    with this shop's keys would only get a 404 ("Stripe does not know pi_..."), which hides the
    real reason, and costs a call. An event that does not say its mode is taken as the shop's."""
    if event_live is None or event_live == shop_live:
        return None
    mode, keys = ("live", "test") if event_live else ("test", "live")
    return (
        f"a {mode}-mode event, and this shop uses {keys}-mode keys "
        "(Stripe keeps live and test objects apart)"
    )


def _known_status(dispute: dict, dispute_id: str | None) -> str:
    """The retrieved Dispute's status, one bookpay knows (``DISPUTE_RANK``); else, logged as an
    error, ``UnknownToBookpay`` (503: the event stays unprocessed and Stripe redelivers it)."""
    status = dispute.get("status")
    if isinstance(status, str) and status in DISPUTE_RANK:
        return status
    shown = repr(status)[:40] if isinstance(status, str) else "none"
    log.error(
        "dispute %s has status %s, which this bookpay does not know: upgrade bookpay; "
        "the event stays unprocessed and Stripe redelivers it",
        dispute_id,
        shown,
    )
    raise UnknownToBookpay(
        f"dispute {dispute_id} has status {shown}, which this bookpay does not know",
        hint="upgrade bookpay; Stripe redelivers the event until it is handled",
    )


def _agrees(order: dict | None, charge: dict) -> bool:
    """Whether recording ``charge``'s refunds would leave ``order`` as it is."""
    if order is None:
        return False
    refunded = charge_refunded({**charge, "amount_refunded": amount(charge.get("amount_refunded"))})
    status = refund_status(order["status"], charge_refund_status(charge))
    return (order["amount_refunded"], order["status"]) == (refunded, status)


def _retrieve(fetch: Callable[[str], dict], wanted: str | None) -> dict:
    """``fetch(wanted)``, with "Stripe does not know it" turned into an ignored event."""
    if not wanted:
        raise _Ignored("no object id")
    try:
        return fetch(wanted)
    except NotFound:
        raise _Ignored(f"Stripe does not know {wanted}") from None
