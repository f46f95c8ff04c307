"""Receipts: rendered into the ledger's outbox at fulfilment, sent later by a worker thread.

The fulfilment transaction inserts a pending ``receipts`` row; ``ReceiptMailer`` claims due rows
(so two processes on one ledger never send the same row at the same time; a claim held by a
process that died is taken over at once, see ``Ledger.claim_receipts``), sends each through its
transport, then marks it sent. Nothing slow runs inside a webhook request. When nothing is due
the worker sleeps until the next receipt is due, or until a fulfilment wakes it, and looks every
IDLE_LOOK (30 s) meanwhile for what another process queued (or claimed, and died).

The worker keeps off the writers' way: woken, it waits a moment (``GATHER``) so that the
receipts of fulfilments committing meanwhile come along, then claims them together and marks
them together, two write transactions a batch. Marks wait for the end of the batch only where
sending again is harmless (the outbox folder, whose file cannot be written twice); over SMTP
each receipt is marked as soon as it is sent.

An address that no mail header can carry (a line break, a control character, not one plain
``local@domain``, an RFC 2047 encoded-word) is never queued and never put in a header (an
internationalized domain is written in its ASCII form first, ``ascii_domain``): the receipt is
recorded ``undeliverable`` with the reason, which ``bookpay orders show`` prints.
Text from outside in the body (the shipping name and address, titles, the rate's name) goes
through ``header_text`` too: one line each, so none can add a line to the receipt.

How many receipts a customer gets, per transport:

- the outbox folder (no ``BOOKPAY_SMTP_URL``): exactly one ``outbox/<payment_intent>.eml``. The
  file is written under a temporary name and hard-linked into place, which fails if the name
  exists, so a retry after a crash finds the file and only marks the row sent.
- SMTP: at least once, and once in practice. If the process dies after the server accepted the
  message but before the row is marked sent, the message is sent again at the next start; SMTP
  has no way to ask a server whether it already has a message. Every copy carries the same
  ``Message-ID`` (derived from the PaymentIntent), which lets mail systems drop the duplicate.
  Stopping cuts a send off at once only before the server has the whole message (it delivers
  none whose data did not end); after, it waits STOP_GRACE for the server's answer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import smtplib
import socket
import ssl
import tempfile
import threading
import time
from datetime import datetime, timezone
from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.utils import format_datetime, formataddr, getaddresses
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from bookpay.address import address_lines
from bookpay.errors import ConfigError
from bookpay.ids import is_intent_id
from bookpay.ledger.outbox import CLAIM_BATCH, CLAIM_LEASE, due_in
from bookpay.ledger.process import pid_alive
from bookpay.money import format_amount, released_text
from bookpay.privatefiles import private_dir
from bookpay.terminal import plain_line, printable
from bookpay.worker import Worker

log = logging.getLogger("bookpay.mailer")
# What became of each receipt is a line of its own: never held back as a repeat of the last one
# (serve's log rate-limits repeated lines by their template: bookpay.web.logs.RepeatFilter).
EACH = {"each": True}

DEFAULT_SENDER = "bookpay receipts <receipts@bookpay.localhost>"
RETRY_DELAYS = (5.0, 30.0, 120.0, 600.0)  # then every RETRY_DELAYS[-1] seconds
# With nothing pending the worker sleeps until a fulfilment wakes it. It still looks this often,
# for receipts queued by another process on the same ledger (one that died before sending them,
# a `serve --no-worker`): one read (``send_due`` claims nothing, no write, when nothing is due),
# as ``bookpay.siblings``.
IDLE_LOOK = 30.0
# Due receipts that another live process is sending: look again after this, doubling to the cap.
BUSY_WAIT = (0.5, 5.0)
GATHER = 0.05  # seconds a woken worker waits for more receipts before claiming a batch
SMTP_TIMEOUT = 30.0  # seconds for each read from an SMTP server
SEND_DEADLINE = 60.0  # seconds for one whole SMTP send, however the server trickles
# Seconds a stopping shop waits for the server's answer to a message it has whole (sent to its
# last line): cut off before that line, a message is not delivered, so that send stops at once.
STOP_GRACE = 5.0
MAX_REPLY = 64 * 1024  # bytes of one SMTP reply, all its lines: a longer one is cut off
TEMP_PREFIX = ".writing-"
# A plain addr-spec (RFC 5321/5322 dot-atom): what a To header and an SMTP RCPT carry safely.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ADDRESS = re.compile(
    rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_UTF8 = Charset("utf-8")
_UTF8.body_encoding = QP  # readable where the text is ASCII (the default is base64)
_ASCII_QP = Charset("us-ascii")
_ASCII_QP.body_encoding = QP
MAX_LINE = 998  # characters in a line of a message, RFC 5322 2.1.1
_LINE_END = re.compile(rb"\r\n|\r|\n")  # each made CRLF for SMTP (a bare LF or CR is refused)


def address_problem(address: str) -> str | None:
    """Why ``address`` cannot go into a mail header, or None when it can."""
    if _CONTROL.search(address):
        return "the e-mail address contains a line break or control character"
    if len(address) > 254:
        return "the e-mail address is longer than 254 characters"
    if not _ADDRESS.fullmatch(address):
        return f"{address!r} is not a plain e-mail address (local@domain, ASCII)"
    if "=?" in address:  # a dot-atom, yet readers decode it (RFC 2047): a line break, say
        return f"{address!r} holds an encoded-word (=?...?=), which mail readers would decode"
    if len(address.rpartition("@")[0]) > 64:
        return "the e-mail address's local part is longer than 64 characters"
    return None


def ascii_domain(address: str | None) -> str | None:
    """``address`` with an internationalized domain (``bücher.example``) in its ASCII form
    (``xn--bcher-kva.example``, RFC 5890), which any mail server takes; else as it is. Only
    where the ASCII form reads back as the same domain: Python's IDNA 2003 writes ``straße`` as
    ``strasse``, another domain (that address stays as it is, which ``address_problem`` refuses).
    """
    if not address or address.isascii():
        return address
    local, at, domain = address.rpartition("@")
    if not at or not local.isascii() or domain.isascii():
        return address
    try:
        encoded = domain.encode("idna").decode("ascii")
        same = encoded.encode("ascii").decode("idna") == domain.lower()
    except UnicodeError:  # an empty label, one too long, a character IDNA refuses
        return address
    return f"{local}@{encoded}" if same else address


def intent_id_problem(intent_id: object) -> str | None:
    """Why a receipt's PaymentIntent id (Stripe's answer) cannot name its ``.eml`` file and its
    Message-ID, or None: only a Stripe id (``pi_`` and letters and digits) can, not ``../x``."""
    if is_intent_id(intent_id):
        return None
    return f"{printable(intent_id)!r} is not a Stripe PaymentIntent id"


def header_text(text: str) -> str:
    """Text from outside on one line, for a header we write ourselves (a subject) or a line of
    a receipt's body (a shipping name, a title): line breaks, control characters, bidirectional
    overrides become spaces (``plain_line``), so it can neither add a header nor forge a line."""
    return plain_line(text)


MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip


def paid_on(value: object) -> str:
    """When an order was paid, for a person: ``7 December 2026, 19:15 UTC`` from the ledger's
    ``2026-12-07T19:15:54.115Z``. To the minute, as the CLI's times (``human_time``), but with
    the month by name, which no reader takes for another date (12/07 or 07/12), and in UTC, said
    so: the shop does not know the shopper's zone, nor should its own zone decide. Not strftime:
    its month names follow the locale. A value that is not a time is shown as it is, on one
    line."""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return header_text(str(value))
    try:
        if moment.tzinfo is None:  # the ledger's times are UTC
            moment = moment.replace(tzinfo=timezone.utc)
        moment = moment.astimezone(timezone.utc)
    except OverflowError:  # past the calendar's end in UTC
        return header_text(str(value))
    return f"{moment.day} {MONTHS[moment.month - 1]} {moment.year}, {moment:%H:%M} UTC"


def receipt_lines(lines: list[dict], currency: str) -> list[str]:
    """One line of text per order line: ``2 x The Art of ... (1)   at $23.00   $46.00``."""
    shown = []
    for line in lines:
        unit = format_amount(line["unit_amount"], currency)
        amount = format_amount(line["line_amount"], currency)
        title = header_text(line["title"])  # text from the catalog, on one line
        shown.append(f"{line['quantity']} x {title} (book {header_text(line['item_id'])})")
        shown.append(f"    at {unit} each: {amount}")
    return shown


def quote_lines(quote: dict | None) -> list[str]:
    """Subtotal, shipping (with its rate) and tax, for a quote priced for an address."""
    if not quote or not (quote.get("address") or quote.get("shipping") or quote.get("tax")):
        return []
    currency = quote["currency"]
    name = quote.get("shipping_rate_name") or quote.get("shipping_rate")
    rate = f" ({header_text(name)})" if name else ""
    return [
        f"Subtotal:       {format_amount(quote['subtotal'], currency)}",
        f"Shipping:       {format_amount(quote['shipping'], currency)}{rate}",
        f"Tax:            {format_amount(quote['tax'], currency)}",
    ]


def released_lines(order: dict) -> list[str]:
    """The amount authorized and what of it was released, for an order a partial capture took
    less of (``amount_captured``); none for an order paid in full."""
    said = released_text(order.get("amount"), order.get("amount_captured"), order["currency"])
    return [f"Authorized:     {said}"] if said else []


def permanent_refusal(exc: BaseException) -> str | None:
    """Why an SMTP server refused a message for good (a 5xx reply to its recipient or its
    data, RFC 5321 4.2.1), or None when trying again may succeed: a 4xx, a lost connection,
    or a refusal of the sender or the login (the shop's settings, which will be fixed)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        if codes and all(500 <= code < 600 for code in codes):
            return "refused by the mail server: " + "; ".join(
                f"{code} {_reply_text(reply)}" for code, reply in exc.recipients.values()
            )
    if isinstance(exc, smtplib.SMTPDataError) and 500 <= exc.smtp_code < 600:
        return f"refused by the mail server: {exc.smtp_code} {_reply_text(exc.smtp_error)}"
    return None


def _reply_text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return " ".join(text.split())[:200]


class NoRecipient(Exception):
    """The order has no email address, so SMTP has nowhere to send its receipt."""


class SendStopped(Exception):
    """The shop stopped during a send and cut it off. ``maybe_sent``: the server had the whole
    message but had not answered within STOP_GRACE, or before a second stop (it may deliver
    it); else it had not the
    end of it, and a server delivers no message whose data did not end (RFC 5321 4.1.1.4)."""

    def __init__(self, maybe_sent: bool) -> None:
        self.maybe_sent = maybe_sent
        super().__init__(
            "the shop stopped before the mail server answered the whole message, which it may "
            "deliver"
            if maybe_sent
            else "the shop stopped before the mail server had the whole message: not sent"
        )


def build_message(receipt: dict, sender: str) -> Message:
    """The receipt as a plain-text message, every header value checked before it is set.

    Built with the ``compat32`` ``Message``: ``EmailMessage`` parses every header value it is
    given back into a structure (0.9 ms a receipt, a fifth of a webhook's CPU in the server's
    process, against 0.13 ms). What that parse would catch, a line break in a value, is refused
    here (ValueError), so no value can add a header; the subject is encoded (RFC 2047) only when
    it cannot go as it is (``_plain_subject``), and a body that is not ASCII is quoted-printable
    UTF-8, readable as text.
    """
    problem = intent_id_problem(receipt["payment_intent"])
    if problem:  # it makes the Message-ID, and a file's name
        raise ValueError(problem)
    message = Message()
    message["From"] = _header(sender)
    if receipt.get("recipient"):
        message["To"] = _header(receipt["recipient"])
    subject = header_text(receipt["subject"])
    message["Subject"] = (
        subject if _plain_subject(subject) else Header(subject, "utf-8", header_name="Subject")
    )
    message["Date"] = format_datetime(datetime.now(timezone.utc))
    message["Message-ID"] = _header(f"<receipt.{receipt['payment_intent']}@bookpay.localhost>")
    message["X-Bookpay-Payment-Intent"] = _header(receipt["payment_intent"])
    message["X-Bookpay-Order"] = _header(receipt["order_id"])
    message["MIME-Version"] = "1.0"
    body = receipt["body"]
    if not body.isascii():
        charset = _UTF8
    elif any(len(line) > MAX_LINE for line in body.splitlines()):
        charset = _ASCII_QP  # a line longer than RFC 5322 allows: soft-wrapped, the same text
    else:
        charset = "us-ascii"
    message.set_payload(body, charset)
    return message


def _plain_subject(subject: str) -> bool:
    """Whether a subject can go as it is, else it is encoded (RFC 2047), which keeps any text
    intact: ASCII, with nothing a mail reader would decode as an encoded-word (``=?``: a title
    could show as other text, line breaks included), and no word too long for a line once
    folded at spaces (RFC 5322 2.1.1)."""
    longest = MAX_LINE - len("Subject: ")
    return (
        subject.isascii()
        and "=?" not in subject
        and all(len(word) <= longest for word in subject.split(" "))
    )


def message_bytes(message: Message) -> bytes:
    """``bytes(message)``, for a message of ``build_message``, without the email package's cost.

    The usual receipt (plain ASCII headers and body, ``7bit``) is written here: headers folded at
    spaces to 78 characters, as RFC 5322 asks, then the body as it is. Folding every header
    through ``email.header`` took 0.3 ms of the receipt worker's 1 ms, in the process whose GIL
    the webhook requests need. Anything else (an encoded subject, a quoted-printable body) goes
    through the email package's generator.
    """
    headers = message.items()
    body = message.get_payload()
    plain = message.get("Content-Transfer-Encoding") == "7bit" and isinstance(body, str)
    if not plain or not all(isinstance(v, str) and v.isascii() for _, v in headers):
        return bytes(message)
    lines = [_folded(name, value) for name, value in headers]
    return ("\n".join(lines) + "\n\n" + body).encode("ascii")


def _folded(name: str, value: str, width: int = 78) -> str:
    """``Name: value``, broken before spaces of the value into lines of at most ``width`` where
    it can be: unfolding (removing each line break) gives the line back."""
    words = value.split(" ")
    current = f"{name}: {words[0]}"
    parts = []
    for word in words[1:]:
        if len(current) + 1 + len(word) > width:
            parts.append(current)
            current = " " + word
        else:
            current = f"{current} {word}"
    parts.append(current)
    return "\n".join(parts)


def _header(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("Header values may not contain line breaks or control characters")
    return value


class OutboxTransport:
    """One ``.eml`` file per PaymentIntent in a folder; writing it twice is impossible."""

    idempotent = True  # sending a receipt again finds its file and writes nothing

    def __init__(self, folder: Path, sender: str = DEFAULT_SENDER) -> None:
        self.folder = Path(folder)
        self.sender = sender

    def path_for(self, intent_id: str) -> Path:
        problem = intent_id_problem(intent_id)
        if problem:  # ``../x`` would name a file outside the folder
            raise ValueError(problem)
        return self.folder / f"{intent_id}.eml"

    def clean(self) -> int:
        """Remove temporary files that a process left when it died mid-write; how many.

        Each temporary name carries its writer's pid, so another process writing into the same
        folder right now keeps its file.
        """
        removed = 0
        for temp in self.folder.glob(f"{TEMP_PREFIX}*.eml"):
            pid = temp.name[len(TEMP_PREFIX) :].partition("-")[0]
            if pid.isdigit() and pid_alive(int(pid)):
                continue
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
                removed += 1
        return removed

    def send(self, receipt: dict) -> str:
        """Write one receipt's file; its path."""
        [result] = self.send_all([receipt])
        if isinstance(result, Exception):
            raise result
        return result

    def send_all(self, receipts: list[dict]) -> list[str | Exception]:
        """Write each receipt's file: its path, or the error that kept it from being written.

        In three passes over the batch: every file under a temporary name, then each one
        flushed to the disk, then each linked to its final name. Flushing a new file also
        writes its folder (ext4), which the next file's creation then waited for: one file at
        a time cost the receipt worker about 370 µs of CPU a receipt, against 280 µs in passes
        over 25 (medians of 8 alternating runs on this machine). What a crash can leave is as
        before: a file is on the disk before its final name exists, so a final file is whole,
        and the temporary files are ``clean``'s.
        """
        if not receipts:  # nothing due: not even the folder is made
            return []
        try:
            private_dir(self.folder)
        except OSError as exc:  # a file in its place, say: each receipt fails, tried later
            return [exc for _ in receipts]
        results: list[str | Exception] = []
        written: list[tuple[int, str, Path]] = []  # (its result's index, temporary, final)
        for receipt in receipts:
            try:
                final = self.path_for(receipt["payment_intent"])  # ValueError: not a Stripe id
                if not final.exists():
                    written.append((len(results), self._write(receipt), final))
                results.append(str(final))
            except Exception as exc:
                results.append(exc)
        for index, temp, _ in written:
            try:
                _flush_to_disk(temp)
            except Exception as exc:
                results[index] = exc
        for index, temp, final in written:
            try:
                if not isinstance(results[index], Exception):
                    _link(temp, final)
            except Exception as exc:
                results[index] = exc
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp)
        return results

    def _write(self, receipt: dict) -> str:
        """The receipt under a temporary name, handed to the OS (not yet on the disk)."""
        data = message_bytes(build_message(receipt, self.sender))
        # mkstemp makes the file 0600, and the hard link keeps that mode. The name carries the
        # pid, so that clean() in another process leaves it alone.
        prefix = f"{TEMP_PREFIX}{os.getpid()}-"
        fd, temp = tempfile.mkstemp(dir=self.folder, prefix=prefix, suffix=".eml")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        except BaseException:
            os.unlink(temp)
            raise
        return temp


def _flush_to_disk(path: str) -> None:
    """The file's data on the disk (fdatasync: with its size, all that reading it back needs)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def _link(temp: str, final: Path) -> None:
    """``temp`` under the name ``final`` too, unless a file has it already: a whole file
    appears under the final name, or nothing does; never two."""
    try:
        os.link(temp, final)
    except FileExistsError:
        pass
    except OSError:
        # A filesystem without hard links, or a folder with no room for a new name (ENOSPC):
        # renamed, which is whole or nothing. A copy could leave a part of the file (or an
        # empty one) under the final name, which the next attempt would take for the receipt.
        if not final.exists():  # only this receipt's claim holder writes it
            os.rename(temp, final)


def sender_header(sender: str) -> str:
    """BOOKPAY_SMTP_URL's ``from=`` as a From header: one address, with or without a display
    name, the name alone encoded (RFC 2047) when it is not ASCII; ConfigError for anything else
    (``Books, Ltd <shop@...>`` is two mailboxes, and ``MAIL FROM:<Books>`` is refused)."""
    if _CONTROL.search(sender):
        raise ConfigError("BOOKPAY_SMTP_URL's from= holds a line break or control character.")
    mailboxes = getaddresses([sender])
    if len(mailboxes) != 1 or address_problem(mailboxes[0][1]):
        raise ConfigError(
            "BOOKPAY_SMTP_URL's from= must be one e-mail address, with a display name or not "
            f'(quoted if it holds a comma: "Books, Ltd" <shop@example.com>), got {sender!r}.'
        )
    return formataddr(mailboxes[0], charset="utf-8")


class SmtpTransport:
    """``smtp://user:pass@host:port`` (plain), ``smtp+starttls://...`` or ``smtps://...``.

    ``?from=`` sets the sender address.
    """

    idempotent = False  # a server cannot be asked whether it already has a message

    def __init__(self, url: str) -> None:
        from bookpay.config import smtp_url_problem

        problem = smtp_url_problem(url)  # cannot be parsed, no host, a port out of range
        parts = urlsplit(url) if not problem else None
        if parts is None or parts.scheme not in ("smtp", "smtps", "smtp+starttls"):
            raise ConfigError(
                "BOOKPAY_SMTP_URL must look like smtp://user:password@host:port "
                "(or smtps://, smtp+starttls://)."
            )
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (465 if parts.scheme == "smtps" else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.sender = sender_header(parse_qs(parts.query).get("from", [DEFAULT_SENDER])[0])
        self.envelope_sender = getaddresses([self.sender])[0][1]  # MAIL FROM: the address alone

        self._stopping = threading.Event()  # ``stop``: no send starts, the one under way ends
        self._hurry = threading.Event()  # ``stop(now=True)``: nor is its answer waited for
        self._sends: set[_Send] = set()
        self._lock = threading.Lock()

    def send(self, receipt: dict) -> str:
        """Send one receipt; its server's address. At most SEND_DEADLINE seconds in all, from
        the connection to the answer to QUIT: a server that trickles its answers a byte at a
        time is cut off, not waited on for ever (its socket timeout only bounds each read).
        Once ``stop`` is called, SendStopped (see there)."""
        if not receipt.get("recipient"):
            raise NoRecipient("the order has no email address")
        message = build_message(receipt, self.sender)
        # Not connected yet: the greeting (and smtps's handshake) count against the deadline.
        if self.scheme == "smtps":
            client = _SMTPS(timeout=SMTP_TIMEOUT, context=ssl.create_default_context())
        else:
            client = _SMTP(timeout=SMTP_TIMEOUT)
        send = _Send(client)
        with self._lock:
            self._sends.add(send)
        watchdog = threading.Thread(target=self._watch, args=(send,), daemon=True)
        watchdog.start()
        try:
            try:
                if self._stopping.is_set():
                    raise SendStopped(maybe_sent=False)
                code, greeting = client.connect(self.host, self.port)
                if code != 220:  # smtplib checks it only when connecting in SMTP()
                    raise smtplib.SMTPConnectError(code, greeting)
                if self.scheme == "smtp+starttls":
                    client.starttls(context=ssl.create_default_context())
                if self.username:
                    client.login(self.username, self.password or "")
                # The bytes the outbox would write, not ``send_message``'s: its generator
                # quotes a line starting "From " as ">From " (mbox), which changed the text.
                data = _LINE_END.sub(b"\r\n", message_bytes(message))
                client.sendmail(self.envelope_sender, [receipt["recipient"]], data)
            except BaseException as exc:
                client.close()
                if send.stopped and not isinstance(exc, SendStopped):
                    raise SendStopped(maybe_sent=client.data_ended) from exc
                raise
            # The server has the message (250 to DATA): it is sent, whatever QUIT gets back
            # (RFC 5321 4.1.1.5), or however late; a failing QUIT must not send it again.
            with contextlib.suppress(smtplib.SMTPException, OSError):
                client.quit()
            client.close()
        finally:
            with self._lock:
                self._sends.discard(send)
            send.finished.set()
            send.nudge.set()
        return f"smtp://{self.host}:{self.port}"

    def stop(self, now: bool = False) -> str | None:
        """No send starts from now on; one under way is cut off at once unless the server has
        the whole message, whose answer it is given STOP_GRACE seconds for, or, ``now`` (a
        second stop), not waited for either. What it did, for the log (None: no send was under
        way)."""
        if now:
            self._hurry.set()
        self._stopping.set()
        with self._lock:
            sends = list(self._sends)
        said = None
        for send in sends:
            with send.client.guard:
                if not send.client.data_ended:
                    said = "cut off the send under way (the mail server had not the whole message)"
                elif now:
                    said = (
                        "cut off the send under way without its answer (the mail server has "
                        "the message and may deliver it)"
                    )
                else:
                    said = (
                        f"waiting up to {STOP_GRACE:g} s for the mail server's answer to the "
                        "message it has"
                    )
            send.nudge.set()
        return said

    def _watch(self, send: _Send) -> None:
        """Until the send ends: at its deadline, or once ``stop`` is called (at once before the
        end of the message, after STOP_GRACE after it), shut its connection down, so the read
        it is blocked in ends at once. Closing it from this thread would not: the close waits
        for that read to return. Again and again, as the connection may not exist yet (still
        connecting)."""
        deadline = time.monotonic() + SEND_DEADLINE
        grace_ends = None
        while not send.finished.is_set():
            cut, by_stop = deadline, False
            if self._stopping.is_set():
                with send.client.guard:
                    if not send.client.data_ended:
                        send.client.stopped = True  # the message's end is not sent now
                        cut, by_stop = 0.0, True
                    else:
                        if self._hurry.is_set():  # stopped again: no answer waited for
                            grace_ends = time.monotonic()
                        elif grace_ends is None:
                            grace_ends = time.monotonic() + STOP_GRACE
                        cut, by_stop = min(cut, grace_ends), grace_ends <= deadline
            remaining = cut - time.monotonic()
            if remaining > 0:
                send.nudge.wait(remaining)
                send.nudge.clear()
                continue
            send.stopped = send.stopped or by_stop
            sock = send.client.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            send.finished.wait(0.05)


class _Send:
    """One send under way: its client, and what its watchdog waits on."""

    def __init__(self, client: _Guarded) -> None:
        self.client = client
        self.finished = threading.Event()
        self.nudge = threading.Event()  # set when the send ends or ``stop`` is called
        self.stopped = False  # the stop, not the deadline, cuts it off


class _Guarded:
    """``smtplib.SMTP`` knowing whether the server may have the whole message (its last line
    was sent: ``data_ended``), which a stop must not cut off unanswered without need, and
    reading at most MAX_REPLY bytes of one reply (a server answering one endless multi-line
    reply filled the memory until the deadline)."""

    data_ended = False
    stopped = False  # set under ``guard``: the message's last line must not be sent now

    def __init__(self, *args, **kwargs) -> None:
        self.guard = threading.Lock()
        super().__init__(*args, **kwargs)

    def data(self, msg):
        """``smtplib.SMTP.data``, sending the line ending the message on its own, once the
        rest is sent and only if the shop is not stopping."""
        self.putcmd("data")
        code, reply = self.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
        if isinstance(msg, str):
            msg = smtplib._fix_eols(msg).encode("ascii")
        body = smtplib._quote_periods(msg)
        if body[-2:] != smtplib.bCRLF:
            body += smtplib.bCRLF
        self.send(body)
        with self.guard:
            if self.stopped:
                raise SendStopped(maybe_sent=False)
            self.data_ended = True
        self.send(b"." + smtplib.bCRLF)
        code, reply = self.getreply()
        # Any 2xx is the server taking the message (RFC 5321 4.2.1): sendmail wants 250.
        return (250 if 200 <= code < 300 else code), reply

    def getreply(self):
        """``smtplib.SMTP.getreply``, cut off (SMTPResponseException, code -1) past MAX_REPLY
        bytes."""
        if self.file is None:
            self.file = self.sock.makefile("rb")
        lines, size = [], 0
        while True:
            try:
                line = self.file.readline(smtplib._MAXLINE + 1)
            except OSError as exc:
                self.close()
                raise smtplib.SMTPServerDisconnected(
                    f"Connection unexpectedly closed: {exc}"
                ) from exc
            if not line:
                self.close()
                raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
            size += len(line)
            if len(line) > smtplib._MAXLINE or size > MAX_REPLY:
                self.close()
                raise smtplib.SMTPResponseException(-1, b"reply too long")
            lines.append(line[4:].strip(b" \t\r\n"))
            try:
                code = int(line[:3])
            except ValueError:
                return -1, b"\n".join(lines)
            if line[3:4] != b"-":
                return code, b"\n".join(lines)


class _SMTP(_Guarded, smtplib.SMTP):
    pass


class _SMTPS(_Guarded, smtplib.SMTP_SSL):
    pass


class ReceiptMailer(Worker):
    """Renders receipts and sends the ledger's pending ones from a background thread."""

    thread_name = "bookpay-receipts"
    what = "sending receipts"
    # Closing waits for a send's answer (STOP_GRACE), then for its fate to be written.
    stop_wait = STOP_GRACE + 10.0

    def __init__(self, ledger, transport) -> None:
        super().__init__()
        self.ledger = ledger
        self.transport = transport
        self._busy_wait = BUSY_WAIT[0]

    @classmethod
    def from_settings(cls, settings, ledger) -> ReceiptMailer:
        if settings.smtp_url:
            return cls(ledger, SmtpTransport(settings.smtp_url))
        return cls(ledger, OutboxTransport(Path(settings.data_dir) / "outbox"))

    def render(self, order: dict, lines: list[dict]) -> tuple[str | None, str, str]:
        """(recipient, subject, body) of an order's receipt, listing its ``lines`` (ledger rows
        with titles: ``bookpay.orderlines``) and, from the quote the order carries (``quote``,
        recorded by the checkout), the subtotal, shipping and tax that make up the total.

        The total paid is what was taken: after a partial capture (``amount_captured``) that is
        less than the amount authorized, whose rest was released, never charged."""
        currency = order["currency"]
        captured = order.get("amount_captured")
        paid = format_amount(order["amount"] if captured is None else captured, currency)
        body = [
            "Thank you for your order!",
            "",
            f"Order:          {order['id']}",
            f"Payment:        {order['payment_intent']}",
            f"Paid on:        {paid_on(order.get('paid_at') or order['fulfilled_at'])}",
            "",
            *receipt_lines(lines, currency),
            "",
            *quote_lines(order.get("quote")),
            *released_lines(order),
            f"Total paid:     {paid}",
        ]
        # The shopper's name and address, as the PaymentIntent has them: each part one line.
        place = [text for text in map(header_text, address_lines(order.get("shipping"))) if text]
        if place:
            body += ["", "Shipping to:", *(f"  {p}" for p in place)]
        body += ["", "Keep this email as your receipt.", "bookpay"]
        if len(lines) == 1 and lines[0]["quantity"] == 1:
            what = lines[0]["title"]
        else:
            what = f"{sum(line['quantity'] for line in lines)} books"
        subject = header_text(f"Your bookpay receipt: {what} ({paid})")
        return ascii_domain(order.get("email")), subject, "\n".join(body) + "\n"

    # The worker -------------------------------------------------------------------------------

    def start(self) -> None:
        outbox = isinstance(self.transport, OutboxTransport) and self.transport.folder.is_dir()
        if self._thread is None and outbox:
            self.transport.clean()  # what a process that died while writing left
        super().start()

    def work(self) -> int:
        return self.send_due()

    def interrupt(self) -> None:
        """Stopping: the send under way is cut off, or waited for (``SmtpTransport.stop``)."""
        stop = getattr(self.transport, "stop", None)
        said = stop() if stop is not None else None
        if said:
            log.info("stopping: %s", said)

    def hurry(self) -> None:
        """Stopping, again: the answer to a message the server has is not waited for."""
        stop = getattr(self.transport, "stop", None)
        said = stop(now=True) if stop is not None else None
        if said:
            log.info("stopping again: %s", said)

    def woken(self) -> None:
        self._stop.wait(GATHER)  # receipts of fulfilments committing meanwhile come along

    def due_now(self) -> bool:
        """Whether a receipt is pending (``drain`` waits for those due later too)."""
        return self.ledger.next_receipt_due() is not None

    def send_due(self) -> int:
        """Send every due receipt this process can claim, in this thread; how many it handled."""
        handled = 0
        flush_each = not getattr(self.transport, "idempotent", False)
        batched = hasattr(self.transport, "send_all")  # the outbox: a batch at a time
        # One by one (SMTP), a claim holds only as many as can surely be sent within its
        # lease: a claim that expired mid-batch would let another worker send the rest again.
        limit = CLAIM_BATCH if batched else max(1, int(CLAIM_LEASE / SEND_DEADLINE / 2))
        # A read first: a worker looking every --poll seconds (or IDLE_LOOK) at an outbox with
        # nothing due takes no write lock for it (SQLite's is the whole database's, which the
        # webhooks wait for). A receipt whose fate the ledger failed to write is still pending
        # and due (it was claimed due), so that fate is written at the claim, as before.
        wait = due_in(self.ledger.next_receipt_due())
        if wait is None or wait > 0:
            return 0
        while not self._stop.is_set():
            with self.ledger.claim_receipts(limit=limit) as claims:
                if batched:
                    self._send_batch(claims)
                else:
                    self._send_each(claims, flush_each)
            # Counted from the claim: a fate written again after its claim failed counts too.
            handled += claims.handled
            if len(claims) < limit:  # that was all that is due
                break
        return handled

    def _send_each(self, claims, flush_each: bool) -> None:
        """The receipts of ``claims`` one by one. ``flush_each``: each fate is written before
        the next send, so a crash resends at most one."""
        for receipt in claims:
            if self._stop.is_set():  # closing: the rest stay pending for next time
                break
            self._send_one(claims, receipt)
            if flush_each:
                claims.flush()

    def _send_batch(self, claims) -> None:
        """Every deliverable receipt of ``claims`` written at once (``send_all``). Each fate is
        recorded as ``_send_one`` records it."""
        if self._stop.is_set():  # closing: they stay pending for next time
            return
        deliverable = [receipt for receipt in claims if not self._undeliverable(claims, receipt)]
        results = self.transport.send_all(deliverable)
        for receipt, result in zip(deliverable, results, strict=True):
            if isinstance(result, Exception):
                self._failed(claims, receipt, result)
            else:
                claims.sent(receipt, location=result)

    def _send_one(self, claims, receipt: dict) -> None:
        if self._undeliverable(claims, receipt):
            return
        try:
            location = self.transport.send(receipt)
        except NoRecipient as exc:
            claims.sent(receipt, location=str(exc), status="skipped")
            return
        except SendStopped as exc:
            order = f"receipt for order {receipt.get('order_id')} ({receipt['payment_intent']})"
            if not exc.maybe_sent:  # left pending, claimed by none: sent at the next start
                log.info("stopping: %s not sent, sent at the next start", order, extra=EACH)
                return
            log.warning(
                "stopping: %s: %s; sent again at the next start (the same Message-ID)",
                order,
                exc,
                extra=EACH,
            )
            claims.failed(receipt, f"SendStopped: {exc}", retry_in=0)
            return
        except Exception as exc:  # any transport failure: keep the row and retry later
            refusal = permanent_refusal(exc)
            if refusal:  # the server will never take this message: trying again cannot help
                log.warning(
                    "receipt for order %s (%s) refused for good: %s",
                    receipt.get("order_id"),
                    receipt["payment_intent"],
                    refusal,
                    extra=EACH,
                )
                claims.undeliverable(receipt, refusal)
                return
            self._failed(claims, receipt, exc)
            return
        claims.sent(receipt, location=location)
        if self._stop.is_set():  # its answer came while stopping: the log says so
            log.info(
                "stopping: receipt for order %s (%s) sent",
                receipt.get("order_id"),
                receipt["payment_intent"],
                extra=EACH,
            )

    @staticmethod
    def _undeliverable(claims, receipt: dict) -> bool:
        """Record a receipt whose address no header can carry (queued by an older bookpay,
        before addresses were checked), or whose PaymentIntent id is no Stripe id (which names
        its file and its Message-ID), as undeliverable; whether it was one."""
        recipient = receipt.get("recipient")
        problem = intent_id_problem(receipt["payment_intent"])
        problem = problem or (address_problem(recipient) if recipient else None)
        if problem:
            claims.undeliverable(receipt, problem)
        return problem is not None

    @staticmethod
    def _failed(claims, receipt: dict, exc: Exception) -> None:
        """Keep the row, to be tried again after a delay that grows with its attempts."""
        delay = RETRY_DELAYS[min(receipt["attempts"], len(RETRY_DELAYS) - 1)]
        log.warning(
            "receipt for order %s (%s) not sent (%s: %s); retrying in %ss",
            receipt.get("order_id"),
            receipt["payment_intent"],
            type(exc).__name__,
            exc,
            delay,
            extra=EACH,
        )
        claims.failed(receipt, f"{type(exc).__name__}: {exc}", retry_in=delay)

    def _idle_wait(self, handled: int) -> float:
        """How long to sleep: until the next receipt is due, or until woken."""
        try:
            wait = due_in(self.ledger.next_receipt_due())
        except Exception:
            return 1.0
        if wait is None:
            return IDLE_LOOK
        if wait > 0:
            self._busy_wait = BUSY_WAIT[0]
            return min(wait, IDLE_LOOK)
        # Due now, yet this process got none of them: another process is sending them.
        if handled:
            self._busy_wait = BUSY_WAIT[0]
            return 0.0
        wait, self._busy_wait = self._busy_wait, min(self._busy_wait * 2, BUSY_WAIT[1])
        return wait
