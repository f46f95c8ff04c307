"""Receipts over SMTP, against a scripted server on this machine: a message the server accepted
is sent whatever QUIT answers; a permanent refusal is final (undeliverable), a temporary one is
tried again; a server that trickles is cut off; a claim holds no more than its lease allows."""

from __future__ import annotations

import contextlib
import smtplib
import socketserver
import threading
import time
from pathlib import Path

import pytest
from test_receipts import intent, render

from bookpay import mailer
from bookpay.config import Settings
from bookpay.ledger import open_ledger
from bookpay.ledger.model import now_iso
from bookpay.mailer import ReceiptMailer, SmtpTransport

RECEIPT = {
    "recipient": "jenny@example.com",
    "subject": "Your receipt",
    "body": "Thank you\n",
    "payment_intent": "pi_1",
    "order_id": "ord_1",
}


class Script:
    """How the server answers: the reply to RCPT and to QUIT, and where it trickles (``trickle``:
    the greeting, or the reply to a verb such as ``"MAIL"``)."""

    def __init__(self, rcpt: str = "250 ok", quit: str = "221 bye", trickle: str | None = None):
        self.rcpt, self.quit, self.trickle = rcpt, quit, trickle
        self.messages: list[bytes] = []
        self.verbs: list[bytes] = []  # what the client said, in order
        self.commands: list[bytes] = []  # the same, whole lines
        self.stall: str | None = None  # a verb (or "END", the message's end) never answered
        self.end_reply = "250 queued"  # the answer to the message's end
        self.end_delay = 0.0  # seconds before it
        self.ended_at = 0.0  # when the message's end came (time.monotonic())
        self.flood: str | None = None  # a verb answered by 1 MB of continuation lines
        self.greeting = "220 test ESMTP"


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        script: Script = self.server.script
        if script.trickle == "greeting":
            return self.drip()
        self.say(script.greeting)
        data: list[bytes] = []
        in_data = False
        for line in self.rfile:
            if in_data:
                if line in (b".\r\n", b".\n"):
                    in_data = False
                    script.ended_at = time.monotonic()
                    script.messages.append(b"".join(data))
                    if script.stall == "END":
                        return self.hang()
                    time.sleep(script.end_delay)
                    self.say(script.end_reply)
                else:
                    data.append(line)
                continue
            verb = line[:4].upper()
            script.verbs.append(verb)
            script.commands.append(line.rstrip(b"\r\n"))
            if script.trickle and verb == script.trickle.encode():
                return self.drip()
            if script.stall and verb == script.stall.encode():
                return self.hang()
            if script.flood and verb == script.flood.encode():
                with contextlib.suppress(OSError):  # the client hangs up on it
                    for _ in range(1024):
                        self.wfile.write(b"250-" + b"x" * 1020 + b"\r\n")
                    self.wfile.flush()
                return self.hang()
            if verb in (b"EHLO", b"HELO"):
                self.say("250 test")
            elif verb == b"MAIL":
                self.say("250 ok")
            elif verb == b"RCPT":
                self.say(script.rcpt)
            elif verb == b"DATA":
                in_data = True
                self.say("354 go ahead")
            elif verb == b"QUIT":
                self.say(script.quit)
                return
            else:
                self.say("250 ok")

    def drip(self) -> None:
        """A byte of a reply every 0.2 s for 10 s, never the whole line: each read gets
        something well within its timeout (until the client hangs up)."""
        with contextlib.suppress(OSError):
            for _ in range(50):
                self.wfile.write(b"2")
                self.wfile.flush()
                time.sleep(0.2)

    def hang(self) -> None:
        """Answer nothing, until the client hangs up."""
        with contextlib.suppress(OSError):
            self.rfile.read()

    def say(self, text: str) -> None:
        self.wfile.write(text.encode() + b"\r\n")
        self.wfile.flush()


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def smtp():
    """A scripted SMTP server; its ``script`` says how it answers."""
    server = Server(("127.0.0.1", 0), Handler)
    server.script = Script()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def url(server) -> str:
    return f"smtp://127.0.0.1:{server.server_address[1]}"


def test_a_message_the_server_accepted_is_sent_whatever_quit_answers(smtp):
    smtp.script.quit = "421 bye-ish"  # not the 221 smtplib's context manager insists on
    assert SmtpTransport(url(smtp)).send(RECEIPT) == url(smtp)
    assert len(smtp.script.messages) == 1


@pytest.fixture
def ledger(tmp_path):
    opened = open_ledger(Settings(data_dir=tmp_path / "data", shop_id="shop_test"))
    yield opened
    opened.close()


def test_a_permanent_refusal_is_undeliverable_and_never_tried_again(smtp, ledger):
    smtp.script.rcpt = "550 5.1.1 no such user"
    ledger.record_fulfilment(intent(), render)
    ReceiptMailer(ledger, SmtpTransport(url(smtp))).send_due()
    receipt = ledger.receipt_for("pi_1")
    assert receipt["status"] == "undeliverable"
    assert "550 5.1.1 no such user" in receipt["last_error"]
    assert ledger.next_receipt_due() is None


def test_a_temporary_refusal_is_tried_again(smtp, ledger):
    smtp.script.rcpt = "451 4.3.0 try later"
    ledger.record_fulfilment(intent(), render)
    ReceiptMailer(ledger, SmtpTransport(url(smtp))).send_due()
    receipt = ledger.receipt_for("pi_1")
    assert (receipt["status"], receipt["attempts"]) == ("pending", 1)
    assert "451" in receipt["last_error"]
    assert ledger.next_receipt_due() is not None


@pytest.mark.parametrize("where", ["greeting", "EHLO", "MAIL", "DATA"])
def test_a_server_that_trickles_is_cut_off_at_the_send_deadline(smtp, monkeypatch, where):
    """Closing the connection from another thread waited for the read it was to end (the
    greeting was not even under the deadline): each of these took the server's 10 s."""
    monkeypatch.setattr(mailer, "SEND_DEADLINE", 0.5)
    smtp.script.trickle = where
    started = time.monotonic()
    with pytest.raises((smtplib.SMTPException, OSError)):
        SmtpTransport(url(smtp)).send(RECEIPT)
    assert time.monotonic() - started < 3
    assert smtp.script.messages == []


def test_a_trickled_answer_to_quit_is_cut_off_and_the_message_is_sent(smtp, monkeypatch):
    """QUIT was outside the deadline: a server answering it a byte at a time held the worker
    (and the receipt's claim) for as long as it liked."""
    monkeypatch.setattr(mailer, "SEND_DEADLINE", 0.5)
    smtp.script.trickle = "QUIT"
    started = time.monotonic()
    assert SmtpTransport(url(smtp)).send(RECEIPT) == url(smtp)
    assert time.monotonic() - started < 3
    assert len(smtp.script.messages) == 1


def test_receipts_sent_one_by_one_are_claimed_a_few_at_a_time(ledger, monkeypatch):
    """A claim's lease must outlast its sends: claimed 100 at once over a slow server, the last
    ones outlived the lease and another worker sent them again."""
    for n in range(12):
        ledger.record_fulfilment(intent(f"pi_{n}"), render)
    limits = []
    claim = ledger.claim_receipts

    def spy(*, limit):
        limits.append(limit)
        return claim(limit=limit)

    monkeypatch.setattr(ledger, "claim_receipts", spy)

    class OneByOne:
        def send(self, receipt):
            return "sent"

    assert ReceiptMailer(ledger, OneByOne()).send_due() == 12
    assert limits and max(limits) * mailer.SEND_DEADLINE * 2 <= mailer.CLAIM_LEASE


def test_a_line_longer_than_a_message_may_hold_is_soft_wrapped_the_same_text():
    """RFC 5322 2.1.1: at most 998 characters a line (a 1,500-character shipping name made a
    7bit line servers may refuse, and a refusal is now final)."""
    import email

    body = "Shipping to " + "x" * 1500 + "\nThank you\n"
    sent = mailer.message_bytes(mailer.build_message({**RECEIPT, "body": body}, "shop@example.com"))
    assert max(len(line) for line in sent.splitlines()) <= 998
    assert email.message_from_bytes(sent).get_payload(decode=True).decode() == body


@pytest.mark.parametrize("text", ["\r\n", "\n", "\r", "\v", "\x1e", "\x85", "\u2028", "\x9b"])
def test_a_shipping_name_cannot_add_lines_to_the_mail_sent(smtp, tmp_path, text):
    """The mail as the server gets it, from an order whose shipping name and address carry line
    breaks: fulfilled, queued and sent as a shop does it."""
    import email
    from email.policy import default

    from test_orders import FakeGateway
    from test_receipts import assert_one_line_each, hostile_intent

    from bookpay.catalog import Catalog
    from bookpay.fulfilment import Fulfiller

    settings = Settings(data_dir=tmp_path / "data", smtp_url=url(smtp), shop_id="shop_test")
    with open_ledger(settings) as ledger:
        gateway = FakeGateway(hostile_intent(text))
        fulfiller = Fulfiller(ledger, gateway, Catalog.default(), settings)
        try:
            assert fulfiller.fulfil("pi_1").outcome == "fulfilled"
            assert fulfiller.drain(5)
        finally:
            fulfiller.close()
        assert ledger.receipt_for("pi_1")["status"] == "sent"
    [sent] = smtp.script.messages
    message = email.message_from_bytes(sent.replace(b"\r\n", b"\n"), policy=default)
    assert_one_line_each(message.get_content())


@pytest.mark.parametrize(
    ("sender", "name"),
    [
        ("Librería Ñ <shop@example.com>", "Librería Ñ"),
        ('"Books, Ltd" <shop@example.com>', "Books, Ltd"),
        ("shop@example.com", ""),
    ],
)
def test_the_sender_s_display_name_is_encoded_apart_from_its_address(smtp, sender, name):
    """A display name that is not ASCII encoded the whole From value, address and all (RFC
    2047), so the receipt came from no address at all."""
    import email
    from email.policy import default
    from urllib.parse import quote

    SmtpTransport(f"{url(smtp)}?from={quote(sender)}").send(RECEIPT)
    assert b"mail FROM:<shop@example.com>" in smtp.script.commands  # the address alone
    assert b"rcpt TO:<jenny@example.com>" in smtp.script.commands
    [sent] = smtp.script.messages
    message = email.message_from_bytes(sent.replace(b"\r\n", b"\n"), policy=default)
    [address] = message["From"].addresses
    assert (address.display_name, address.addr_spec) == (name, "shop@example.com")


@pytest.mark.parametrize(
    "sender", ["Books, Ltd <shop@example.com>", "shop@example.com, eve@example.com", "shop"]
)
def test_a_sender_that_is_not_one_address_is_a_config_error(sender):
    """``Books, Ltd <shop@...>`` is two mailboxes: the first, ``Books``, went to the server as
    ``MAIL FROM:<Books>``, which a server refuses, and every receipt was tried for ever."""
    from urllib.parse import quote

    from bookpay.errors import ConfigError

    with pytest.raises(ConfigError, match="from= must be one e-mail address"):
        SmtpTransport(f"smtp://mail.example.com?from={quote(sender)}")


def wait_for(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def sending(ledger, smtp) -> ReceiptMailer:
    """A receipt queued and its mailer's thread sending it, to ``smtp``."""
    ledger.record_fulfilment(intent(), render)
    worker = ReceiptMailer(ledger, SmtpTransport(url(smtp)))
    worker.start()
    return worker


def closing(worker) -> float:
    """How long the worker took to stop."""
    started = time.monotonic()
    worker.close()
    return time.monotonic() - started


def test_a_stop_cuts_off_a_send_before_the_server_has_the_message_and_keeps_it_pending(
    smtp, ledger, caplog
):
    """A stop waited 5 s for a send stuck on a slow server, then left it running (and its
    claim held) in a thread the exit killed: the server could still get the message, and the
    next start sent it again. A message whose end the server never got is never delivered."""
    smtp.script.stall = "RCPT"
    worker = sending(ledger, smtp)
    wait_for(lambda: b"RCPT" in smtp.script.verbs)
    with caplog.at_level("INFO", logger="bookpay.mailer"):
        assert closing(worker) < 2
    receipt = ledger.receipt_for("pi_1")
    assert (receipt["status"], receipt["attempts"], receipt["claimed_by"]) == ("pending", 0, None)
    assert smtp.script.messages == []
    assert "cut off the send under way" in caplog.text
    assert "pi_1) not sent, sent at the next start" in caplog.text
    smtp.script.stall = None  # the next start sends it, once
    ReceiptMailer(ledger, SmtpTransport(url(smtp))).send_due()
    assert ledger.receipt_for("pi_1")["status"] == "sent"
    assert len(smtp.script.messages) == 1


def test_a_stop_waits_for_the_answer_to_a_message_the_server_has(smtp, ledger, caplog):
    """The server has the whole message: cut off then, it may deliver it and the receipt would
    be sent again; its answer, on its way, is waited for and the receipt marked sent."""
    smtp.script.end_delay = 1.0
    worker = sending(ledger, smtp)
    wait_for(lambda: smtp.script.messages)
    with caplog.at_level("INFO", logger="bookpay.mailer"):
        assert closing(worker) < 3
        # The stop ended with the answer, end_delay after the server had the message's end:
        # counted from then, not from the stop's start, which a loaded machine may begin late.
        assert time.monotonic() - smtp.script.ended_at >= smtp.script.end_delay
    assert ledger.receipt_for("pi_1")["status"] == "sent"
    assert "waiting up to 5 s for the mail server's answer" in caplog.text
    assert "pi_1) sent" in caplog.text


def test_a_stop_waits_a_bounded_time_for_the_answer_then_says_it_may_be_sent(
    smtp, ledger, monkeypatch
):
    """A server that never answers the message's end: the stop waits STOP_GRACE, not the send's
    deadline, and records the receipt as tried (sent again at the next start, at once), its
    claim released, not held for the lease."""
    monkeypatch.setattr(mailer, "STOP_GRACE", 0.5, raising=False)
    smtp.script.stall = "END"
    worker = sending(ledger, smtp)
    wait_for(lambda: smtp.script.messages)
    assert closing(worker) < 2.5
    receipt = ledger.receipt_for("pi_1")
    assert (receipt["status"], receipt["attempts"], receipt["claimed_by"]) == ("pending", 1, None)
    assert "which it may deliver" in receipt["last_error"]
    assert ledger.next_receipt_due() <= now_iso(1)


def test_an_endless_reply_is_cut_off_at_once_and_tried_again(smtp, ledger, monkeypatch):
    """A server answering EHLO with line after line of ``250-``: each line was kept until the
    send's deadline (gigabytes, from a fast server); a reply is read up to MAX_REPLY bytes."""
    monkeypatch.setattr(mailer, "SEND_DEADLINE", 10.0)
    smtp.script.flood = "EHLO"
    ledger.record_fulfilment(intent(), render)
    started = time.monotonic()
    ReceiptMailer(ledger, SmtpTransport(url(smtp))).send_due()
    assert time.monotonic() - started < 3
    receipt = ledger.receipt_for("pi_1")
    assert (receipt["status"], receipt["attempts"]) == ("pending", 1)
    assert "reply too long" in receipt["last_error"]


def test_any_2xx_answer_to_the_message_is_the_message_sent(smtp):
    """RFC 5321 4.2.1: 2yz is a completion; smtplib wants 250, so a server answering 252 to the
    message's end had the receipt tried again, and sent again."""
    smtp.script.end_reply = "252 accepted"
    assert SmtpTransport(url(smtp)).send(RECEIPT) == url(smtp)
    assert len(smtp.script.messages) == 1


@pytest.mark.parametrize("greeting", ["554 no SMTP service here", "421 busy", "hello there"])
def test_a_server_that_greets_with_a_refusal_or_garbage_is_tried_again(smtp, ledger, greeting):
    """Connecting with ``connect()`` (to have the greeting under the deadline) skipped smtplib's
    check of the greeting, made in ``SMTP(host)`` alone: a receipt went on to a server that had
    refused service, and was marked sent if it went on answering 250."""
    smtp.script.greeting = greeting
    ledger.record_fulfilment(intent(), render)
    ReceiptMailer(ledger, SmtpTransport(url(smtp))).send_due()
    receipt = ledger.receipt_for("pi_1")
    assert (receipt["status"], receipt["attempts"]) == ("pending", 1)
    assert receipt["last_error"].startswith("SMTPConnectError")
    assert smtp.script.messages == []


def received(smtp) -> bytes:
    """The one message the server got, as a file holds it: line ends ``\\n``, and the leading
    dot SMTP adds to a line that starts with one (RFC 5321 4.5.2) taken off again."""
    [sent] = smtp.script.messages
    lines = sent.split(b"\r\n")
    return b"\n".join(line[1:] if line.startswith(b".") else line for line in lines)


@pytest.mark.parametrize(
    "body",
    [
        # Soft-wrapped (quoted-printable), a line of the body started with "From ".
        "1 x " + "y" * 70 + " From Here to Eternity (book 1)\nDanke schön\n",
        "From me\n.\n..\n" + "From " * 300 + "\n",
    ],
)
def test_the_mail_sent_is_the_receipt_file_byte_for_byte(smtp, tmp_path, body):
    """smtplib's ``send_message`` wrote a line of the message that started with "From " as
    ">From " (mbox quoting), which changed the text of a receipt sent over SMTP (a title
    soft-wrapped at "From Here to Eternity"); the server gets what the outbox file holds."""
    import email
    from email.policy import default

    receipt = {**RECEIPT, "body": body}
    SmtpTransport(f"{url(smtp)}?from=shop%40example.com").send(receipt)
    written = mailer.OutboxTransport(tmp_path, sender="shop@example.com").send(receipt)
    sent = received(smtp)
    assert email.message_from_bytes(sent, policy=default).get_content() == body
    assert sent.split(b"\n\n", 1)[1] == Path(written).read_bytes().split(b"\n\n", 1)[1]
