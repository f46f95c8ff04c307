"""bookpay's shop for tests: what `bookpay serve` runs, on a free port, against a test emulator.

Started by the same code as `bookpay serve` (``bookpay.web.launch.start_shop``): its webhook
endpoint registered with the emulator and the issued secret in its receiver. Its settings are
built here, never read from the environment or a ``.env`` file, and its data folder (ledger,
receipts outbox, webhook secret) is its own.
"""

from __future__ import annotations

import json
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

from ._emulator import HttpError, _opener

TEST_THREADS = 12  # enough for a test's calls at once; `bookpay serve` has 48
# The longest a start waits for the shop's catch-up with undelivered events (a few list calls,
# at most 300 events handled); past it the test goes on with the catch-up still at work.
CATCH_UP_WAIT = 30.0


class ShopError(HttpError):
    """The shop answered a request with an error (``status``, ``body``, ``code``)."""


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@contextmanager
def shop(emulator: Any, *, data_dir: Path | str | None = None, **settings: Any) -> Iterator[Shop]:
    """Serve bookpay's shop for the ``with`` block against ``emulator`` (a StripeEmulator).

    ``data_dir``: its folder (a temporary one, removed after, when not given; a relative one is
    taken from the working folder now, so ``shop.data_dir`` is absolute). ``settings``: more
    ``bookpay.config.Settings`` fields (``catalog_path``, ``shop_id``, ``stripe_limits``).

    The block starts once the shop has caught up with what the emulator had not delivered (as
    ``bookpay serve`` does at start, in a thread), so that the test's faults and calls never
    meet the shop's own start-up calls. At the end the shop disables its webhook endpoint:
    against faults still in place that takes two seconds at most (the ``bookpay_shop`` fixture
    clears them first, since its emulator is reset before the next test anyway).
    """
    from bookpay.config import Settings
    from bookpay.web.launch import start_shop
    from bookpay.web.runner import Capacity

    folder = tempfile.TemporaryDirectory(prefix="bookpay-shop-") if data_dir is None else None
    path = _absolute(folder.name if folder else data_dir)  # type: ignore[arg-type]
    console: list[str] = []
    try:
        running = start_shop(
            Settings(data_dir=path, emulator_url=emulator.url, **settings),
            capacity=Capacity(threads=TEST_THREADS),
            say=console.append,
            background=True,
        )
        try:
            if running.catch_up is not None:
                running.catch_up.done.wait(CATCH_UP_WAIT)
            yield Shop(running, emulator, console)
        finally:
            running.stop()
    finally:
        if folder is not None:
            folder.cleanup()


def _absolute(folder: Path | str) -> Path:
    """``folder`` with ``~`` expanded, from the working folder now if relative: the CLI runs in
    a working folder of its own, and a test may change its own."""
    return Path(folder).expanduser().absolute()


class Shop:
    """A running shop: ``url``, ``ledger``, ``outbox``, and helpers to buy and to wait."""

    def __init__(self, running: Any, emulator: Any, console: list[str]) -> None:
        self._running = running
        self.emulator = emulator
        self.console = console  # what the shop said on its console (warnings from the link)
        self.url = running.url
        self.settings = running.settings
        self.data_dir = Path(running.settings.data_dir)

    def __repr__(self) -> str:
        return f"<Shop {self.url}>"

    @property
    def gateway(self) -> Any:
        return self._running.services.gateway

    @property
    def ledger(self) -> Any:
        """The orders ledger (``find_order``, ``events_for``, ``fulfilment_count``, ...)."""
        return self._running.services.ledger

    @property
    def outbox(self) -> Path:
        """The folder receipts are written to (one ``<payment_intent>.eml`` each)."""
        return self.data_dir / "outbox"

    @property
    def webhook_url(self) -> str:
        return f"{self._running.own_url}/webhook"

    @property
    def webhook_secret(self) -> str:
        """The ``whsec_`` secret the emulator issued to this shop's endpoint."""
        return self._running.secrets[-1]

    # Shopping --------------------------------------------------------------------------------

    def request(
        self, method: str, path: str, json_body: Any = None, headers: dict | None = None
    ) -> Answer:
        """One HTTP request to the shop; any status is an answer (nothing raised for 4xx)."""
        data = json.dumps(json_body).encode() if json_body is not None else None
        sent = {"Content-Type": "application/json", **(headers or {})} if data else headers or {}
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=sent)
        try:
            with _opener.open(request, timeout=60) as answer:
                return Answer(answer.status, dict(answer.headers), answer.read())
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, dict(exc.headers), exc.read())

    def checkout(self, item: str = "1", attempt_id: str | None = None) -> dict[str, Any]:
        """``POST /create-payment-intent`` as the checkout page does: ``clientSecret``,
        ``paymentIntentId``, ``amount``, ``currency``; ShopError for any other answer."""
        body = {"item": item, "attemptId": attempt_id or str(uuid.uuid4())}
        answer = self.request("POST", "/create-payment-intent", body)
        if answer.status != 200:
            try:
                parsed = answer.json()
            except ValueError:
                parsed = answer.body.decode("utf-8", "replace")
            raise ShopError(answer.status, parsed)
        return answer.json()

    def pay(self, item: str = "1", card: str = "4242424242424242") -> dict[str, Any]:
        """Check out ``item`` and confirm with a test card (number or ``pm_card_`` token): the
        PaymentIntent the confirmation answered (``succeeded``, or ``requires_action`` for a
        3-D Secure card). The order follows from the emulator's webhooks.

        A card the emulator declines raises ``bookpay.testing.CardDeclined`` (``message``,
        Stripe's ``stripe_code`` and ``decline_code``, the ``payment_intent`` when Stripe
        sends it); ShopError when the checkout itself is refused."""
        created = self.checkout(item)
        method = self.gateway.payment_method_for(card)
        return self.gateway.confirm_intent(created["paymentIntentId"], payment_method=method)

    # Waiting ---------------------------------------------------------------------------------

    def order(self, order_or_intent: str) -> dict[str, Any] | None:
        """The order for an ``ord_`` or ``pi_`` id, or None while the ledger has none."""
        return self.ledger.find_order(order_or_intent)

    def wait_for_order(
        self, order_or_intent: str, status: str = "paid", timeout: float = 10.0
    ) -> dict[str, Any]:
        """The order once it has ``status`` (webhooks arrive a moment after a payment)."""
        deadline = time.monotonic() + timeout
        while True:
            order = self.order(order_or_intent)
            if order is not None and order["status"] == status:
                return order
            if time.monotonic() > deadline:
                seen = order["status"] if order else "no order"
                raise AssertionError(
                    f"{order_or_intent} did not reach {status!r} within {timeout:g} s ({seen})"
                )
            time.sleep(0.02)

    def receipts(self) -> list[Message]:
        """The receipts in the outbox, oldest first, as e-mail messages."""
        if not self.outbox.is_dir():
            return []
        # Not the `.writing-*.eml` of a receipt being written: only those renamed into place.
        done = [p for p in self.outbox.glob("*.eml") if not p.name.startswith(".")]
        files = sorted(done, key=lambda p: p.stat().st_mtime)
        return [message_from_bytes(path.read_bytes()) for path in files]

    def wait_for_receipts(self, count: int = 1, timeout: float = 10.0) -> list[Message]:
        """The receipts once there are ``count`` (a worker thread writes them)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.receipts()
            if len(found) >= count or time.monotonic() > deadline:
                if len(found) < count:
                    raise AssertionError(f"{len(found)} receipts, not {count}, in {timeout:g} s")
                return found
            time.sleep(0.02)
