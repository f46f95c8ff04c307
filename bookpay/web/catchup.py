"""The catch-up at start: events Stripe has not delivered to the shop, handled at once.

A shop that stopped (or died) with deliveries queued for its endpoint gets them only at their
next retry, up to hours later; events made while its endpoint was disabled are never sent to it
at all (Stripe sends a disabled endpoint nothing). So once its endpoint is registered or
adopted, `bookpay serve` lists, in a thread of its own, the events Stripe has not delivered
(``GET /v1/events`` with ``delivery_success=false``, as Stripe's "Process undelivered events"
guide does) and those made since its endpoint was disabled, of the types it handles and of its
shop (``OwnEvents``: other shops' events are left out, not counted), from the last three days and
a few hundred at most, and hands each, oldest first, to the same handling
as a delivery (``WebhookReceiver.catch_up``: once per event id, the state from the objects
retrieved from Stripe). Their deliveries, when they come, are duplicates. An event the ledger
has processed already is skipped. A failure (Stripe or the emulator not answering) is a
warning: the deliveries still come, and handle what the catch-up did not. The same catch-up
runs again (``CatchUp.again``) when the shop's watcher has its endpoint back after it went away
(``bookpay.web.emulator_link``): what was made meanwhile was never sent to it either.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from bookpay.event_shape import InvalidEvent

log = logging.getLogger("bookpay.catchup")

WITHIN = 3 * 24 * 3600  # seconds back: Stripe's retries last three days (in live mode)
LIMIT = 300  # events not processed yet, at most, both lists together
LOOK = 1000  # events looked at, at most, in each list (ten pages)
MARGIN = 60  # seconds before an endpoint was disabled that the events since it start at
PAGE = 100


def undelivered(
    gateway,
    types: Iterable[str],
    since: float | None,
    now: float,
    processed: Callable[[str], bool] = lambda _id: False,
    ours: Callable[[dict], bool] = lambda _event: True,
) -> list[dict]:
    """The events to catch up with, oldest first, each once: not ``processed`` yet, and
    ``ours`` (this shop's: another shop's events, which it would only ignore, are left out).

    The events made since the endpoint was disabled come first: Stripe never sends them, while
    what its undelivered list holds (other shops' events too) has deliveries still to come.
    Only this shop's events not processed yet count toward LIMIT; each list is looked at up to
    LOOK events.
    """
    kinds = sorted(types)
    floor = int(now) - WITHIN
    lists: list[Iterator[dict]] = []
    if since is not None:
        start = max(floor, int(since) - MARGIN)
        lists.append(gateway.iter_events(types=kinds, created={"gte": start}, page_size=PAGE))
    lists.append(
        gateway.iter_events(
            types=kinds, delivery_success=False, created={"gte": floor}, page_size=PAGE
        )
    )
    found: dict[str, dict] = {}
    cut = False
    for events in lists:
        for looked, event in enumerate(events):
            if looked >= LOOK or len(found) >= LIMIT:
                cut = True
                break
            if not isinstance(event, dict) or not isinstance(event.get("id"), str):
                continue
            if event["id"] in found or processed(event["id"]) or not ours(event):
                continue
            found[event["id"]] = event
    if cut:
        log.warning(
            "the catch-up with undelivered webhook events stopped at its bound (%d events to "
            "handle, %d looked at in each list): older ones come only with their deliveries",
            LIMIT,
            LOOK,
        )
    # Lists come newest first; the oldest is handled first, as its delivery would have been.
    return sorted(reversed(found.values()), key=lambda e: _created(e))


def _created(event: dict) -> int:
    created = event.get("created")
    return created if isinstance(created, int) and not isinstance(created, bool) else 0


class OwnEvents:
    """Whether an event Stripe lists is this shop's (``shop_id``'s), before it is handed to the
    handling: another shop's (one sharing the emulator or the Stripe account) would only be
    ignored there, so the catch-up neither handles nor counts it. Its delivery, when one comes,
    is handled (and ignored) as any delivery is.

    Told by the event's copy of its object, as Stripe lists it: a PaymentIntent or a Charge (which
    carries its PaymentIntent's metadata) by the shop its metadata names; a Refund or a Dispute by
    its PaymentIntent, this shop's when the ledger has its order, else as Stripe has it now
    (retrieved once per PaymentIntent; one Stripe does not know is no shop's). An event whose
    copy names no PaymentIntent is handed on: the handling decides.
    """

    def __init__(self, shop_id: str, gateway, ledger) -> None:
        self.shop_id = shop_id
        self.gateway = gateway
        self.ledger = ledger
        self._intents: dict[str, bool] = {}  # PaymentIntent id: whether it is this shop's

    def __call__(self, event: dict) -> bool:
        from bookpay.event_shape import object_id
        from bookpay.fulfilment import ownership_problem

        copy = (event.get("data") or {}).get("object") if isinstance(event, dict) else None
        if not isinstance(copy, dict):
            return True
        if copy.get("object") in ("payment_intent", "charge"):
            return ownership_problem(copy, self.shop_id) is None
        intent_id = object_id(copy.get("payment_intent"))
        if intent_id is None:
            return True
        if intent_id not in self._intents:
            self._intents[intent_id] = self._intent_is_ours(intent_id)
        return self._intents[intent_id]

    def _intent_is_ours(self, intent_id: str) -> bool:
        from bookpay.errors import NotFound
        from bookpay.fulfilment import ownership_problem

        if self.ledger.find_order(intent_id) is not None:
            return True
        try:
            intent = self.gateway.retrieve_intent(intent_id, expand=())
        except NotFound:
            return False
        return ownership_problem(intent, self.shop_id) is None


class CatchUp:
    """The catch-up, run in a daemon thread (``start``), stopped between two events (``stop``).

    ``again`` asks for one more pass, once the endpoint is back after it went away (the
    emulator forgot it, or another start disabled it): the events since ``since`` too. A pass
    asked for while one is under way follows it, in the same thread, with the earliest time
    asked for; ``done`` is set when no pass is under way or asked for.
    """

    def __init__(
        self,
        gateway,
        receiver,
        *,
        since: float | None = None,
        say: Callable[[str], None] = print,
        clock: Callable[[], float] = time.time,
        ours: Callable[[dict], bool] | None = None,
    ) -> None:
        self.gateway = gateway
        self.receiver = receiver
        self.since = since
        self.ours = ours  # which events are this shop's (``OwnEvents``); None: all of them
        self.say = say
        self.clock = clock
        self.caught_up = 0  # events handled, all passes together
        self.passes = 0  # passes run (or under way)
        self.done = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._wanted = True  # the first pass, with ``since``
        self._wanted_since = since
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._lock:
            self._start()

    def _start(self) -> None:
        """A thread for the passes asked for (with the lock held; none while one runs)."""
        if self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(target=self.run, name="bookpay-catch-up", daemon=True)
            self._thread.start()

    def again(self, since: float | None) -> None:
        """One more pass, with the events made since ``since`` (None: only what Stripe lists
        as undelivered); nothing once stopped."""
        with self._lock:
            if self._stop.is_set():
                return
            if not self._wanted:
                self._wanted, self._wanted_since = True, since
            elif since is not None:
                known = self._wanted_since
                self._wanted_since = since if known is None else min(known, since)
            self.done.clear()
            self._start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop after the event under way; whether the thread has ended within ``timeout``."""
        with self._lock:
            self._stop.set()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def run(self) -> None:
        """The passes asked for, one after the other, until none is (or ``stop``)."""
        while True:
            with self._lock:
                if not self._wanted or self._stop.is_set():
                    self._wanted = False
                    if self._thread is threading.current_thread():
                        self._thread = None
                    self.done.set()
                    return
                since, self._wanted = self._wanted_since, False
                self.passes += 1
            self._pass(since)

    def _pass(self, since: float | None) -> None:
        from bookpay.webhooks import HANDLED

        count = 0
        try:
            ours = self.ours or (lambda _event: True)
            events = undelivered(
                self.gateway, HANDLED, since, self.clock(), self.receiver.processed, ours
            )
            for event in events:
                if self._stop.is_set():
                    break
                try:
                    if self.receiver.catch_up(event) is not None:
                        count += 1
                        self.caught_up += 1
                except InvalidEvent:
                    continue  # said by the receiver, as for a delivery
        except Exception as exc:  # never the shop's end: its deliveries still come
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            log.warning("the catch-up with undelivered webhook events stopped: %s", message)
        finally:
            if count:
                self.say(
                    f"Caught up with {count} webhook event{'s' if count != 1 else ''} "
                    "not delivered to this shop yet."
                )
