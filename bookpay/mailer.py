"""Receipts: rendered into the ledger's outbox at fulfilment, sent later by a worker thread.

The fulfilment transaction inserts a pending ``receipts`` row; ``ReceiptMailer`` claims due rows
(with a lease, so two processes on one ledger never send the same row at the same time), sends
each through its transport, then marks it sent. Nothing slow runs inside a webhook request.

How many receipts a customer gets, per transport:

- the outbox folder (no ``BOOKPAY_SMTP_URL``): exactly one ``outbox/<payment_intent>.eml``. The
  file is written under a temporary name and hard-linked into place, which fails if the name
  exists, so a retry after a crash finds the file and only marks the row sent.
- SMTP: at least once, and once in practice. If the process dies after the server accepted the
  message but before the row is marked sent, the message is sent again at the next start; SMTP
  has no way to ask a server whether it already has a message. Every copy carries the same
  ``Message-ID`` (derived from the PaymentIntent), which lets mail systems drop the duplicate.
"""

from __future__ import annotations

import contextlib
import logging
import os
import smtplib
import ssl
import tempfile
import threading
import time
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from bookpay.address import address_lines
from bookpay.errors import ConfigError
from bookpay.money import format_amount

log = logging.getLogger("bookpay.mailer")

DEFAULT_SENDER = "bookpay receipts <receipts@bookpay.localhost>"
RETRY_DELAYS = (5.0, 30.0, 120.0, 600.0)  # then every RETRY_DELAYS[-1] seconds
IDLE_POLL = 30.0  # rows leased by a process that died become due again; look now and then


class NoRecipient(Exception):
    """The order has no email address, so SMTP has nowhere to send its receipt."""


def build_message(receipt: dict, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    if receipt.get("recipient"):
        message["To"] = receipt["recipient"]
    message["Subject"] = receipt["subject"]
    message["Date"] = format_datetime(datetime.now(timezone.utc))
    message["Message-ID"] = f"<receipt.{receipt['payment_intent']}@bookpay.localhost>"
    message["X-Bookpay-Payment-Intent"] = receipt["payment_intent"]
    message["X-Bookpay-Order"] = receipt["order_id"]
    message.set_content(receipt["body"])
    return message


class OutboxTransport:
    """One ``.eml`` file per PaymentIntent in a folder; writing it twice is impossible."""

    def __init__(self, folder: Path, sender: str = DEFAULT_SENDER) -> None:
        self.folder = Path(folder)
        self.sender = sender

    def path_for(self, intent_id: str) -> Path:
        return self.folder / f"{intent_id}.eml"

    def send(self, receipt: dict) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.path_for(receipt["payment_intent"])
        if final.exists():
            return str(final)
        data = bytes(build_message(receipt, self.sender))
        fd, temp = tempfile.mkstemp(dir=self.folder, prefix=".writing-", suffix=".eml")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                # A whole file appears under the final name, or nothing does; never two.
                os.link(temp, final)
            except FileExistsError:
                pass
            except OSError:  # a filesystem without hard links
                with contextlib.suppress(FileExistsError), open(final, "xb") as handle:
                    handle.write(data)
        finally:
            os.unlink(temp)
        return str(final)


class SmtpTransport:
    """``smtp://user:pass@host:port`` (plain), ``smtp+starttls://...`` or ``smtps://...``.

    ``?from=`` sets the sender address.
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps", "smtp+starttls") or not parts.hostname:
            raise ConfigError(
                "BOOKPAY_SMTP_URL must look like smtp://user:password@host:port "
                "(or smtps://, smtp+starttls://)."
            )
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (465 if parts.scheme == "smtps" else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.sender = parse_qs(parts.query).get("from", [DEFAULT_SENDER])[0]

    def send(self, receipt: dict) -> str:
        if not receipt.get("recipient"):
            raise NoRecipient("the order has no email address")
        message = build_message(receipt, self.sender)
        if self.scheme == "smtps":
            client = smtplib.SMTP_SSL(
                self.host, self.port, timeout=30, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=30)
        with client:
            if self.scheme == "smtp+starttls":
                client.starttls(context=ssl.create_default_context())
            if self.username:
                client.login(self.username, self.password or "")
            client.send_message(message)
        return f"smtp://{self.host}:{self.port}"


class ReceiptMailer:
    """Renders receipts and sends the ledger's pending ones from a background thread."""

    def __init__(self, ledger, transport) -> None:
        self.ledger = ledger
        self.transport = transport
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(cls, settings, ledger) -> ReceiptMailer:
        if settings.smtp_url:
            return cls(ledger, SmtpTransport(settings.smtp_url))
        return cls(ledger, OutboxTransport(Path(ledger.data_dir) / "outbox"))

    def render(self, order: dict, book) -> tuple[str | None, str, str]:
        """(recipient, subject, body) of an order's receipt."""
        paid = format_amount(order["amount"], order["currency"])
        lines = [
            "Thank you for your order!",
            "",
            f"Order:          {order['id']}",
            f"Book:           {book.title}, by {book.author}",
            f"Amount paid:    {paid}",
            f"Payment:        {order['payment_intent']}",
            f"Paid on:        {order['fulfilled_at']}",
        ]
        place = address_lines(order.get("shipping"))
        if place:
            lines += ["", "Shipping to:", *(f"  {p}" for p in place)]
        lines += ["", "Keep this email as your receipt.", "bookpay"]
        subject = f"Your bookpay receipt: {book.title} ({paid})"
        return order.get("email"), subject, "\n".join(lines) + "\n"

    # The worker -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="bookpay-receipts", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def send_due(self) -> None:
        """Send every due receipt now, in this thread."""
        while batch := self.ledger.claim_receipts():
            for receipt in batch:
                self._send_one(receipt)

    def _send_one(self, receipt: dict) -> None:
        intent_id = receipt["payment_intent"]
        try:
            location = self.transport.send(receipt)
        except NoRecipient as exc:
            self.ledger.receipt_sent(intent_id, location=str(exc), status="skipped")
            return
        except Exception as exc:  # any transport failure: keep the row and retry later
            delay = RETRY_DELAYS[min(receipt["attempts"], len(RETRY_DELAYS) - 1)]
            log.warning("receipt for %s not sent (%s); retrying in %ss", intent_id, exc, delay)
            self.ledger.receipt_failed(intent_id, f"{type(exc).__name__}: {exc}", retry_in=delay)
            return
        self.ledger.receipt_sent(intent_id, location=location)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.send_due()
            except Exception:  # the ledger is busy or closing: try again at the next wake
                log.exception("sending receipts failed")
            with self._idle:
                self._idle.notify_all()
            self._wake.wait(self._idle_wait())

    def _idle_wait(self) -> float:
        try:
            due = self.ledger.next_receipt_due()
        except Exception:
            return 1.0
        if due is None:
            return IDLE_POLL
        moment = datetime.fromisoformat(due.replace("Z", "+00:00"))
        return min(IDLE_POLL, max(0.05, (moment - datetime.now(timezone.utc)).total_seconds()))

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until no receipt is pending; False if some still are after ``timeout``."""
        deadline = time.monotonic() + timeout
        while self.ledger.next_receipt_due() is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self._thread is None or not self._thread.is_alive():
                self.send_due()
                if self.ledger.next_receipt_due() is not None:
                    time.sleep(min(0.05, remaining))
                continue
            self.wake()
            with self._idle:
                self._idle.wait(min(0.2, remaining))
        return True

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
