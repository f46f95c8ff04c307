"""What `bookpay serve` shows on its console, kept readable under load.

Below: the request and webhook lines (and their text and JSON forms). First: repeated warnings
are rate-limited.

Under a burst, waitress warns "Task queue depth is N" for every request that has to wait for a
thread and "total open connections reached the connection limit" each time the limit is hit:
thousands of lines in half a minute, burying everything else. ``RepeatFilter`` lets the first
record of each kind through, holds back the repeats for ``window`` seconds, and says how many it
held back on the next one it lets through.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable


class RepeatFilter(logging.Filter):
    """At most one record per (logger, message template) every ``window`` seconds.

    Records are told apart by their template (``record.msg``), not their text, so "Task queue
    depth is 3" and "... is 4" are the same kind. Errors and worse always pass, and so does a
    record logged with ``extra={"each": True}``: a line about one thing of many that each
    matter (what became of one payment: ``bookpay.siblings``), not a repeat.
    """

    def __init__(self, window: float = 10.0, *, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._kinds: dict[tuple[str, str], list] = {}  # kind -> [passed_at, held back]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR or getattr(record, "each", False):
            return True
        kind = (record.name, str(record.msg))
        now = self._clock()
        with self._lock:
            seen = self._kinds.get(kind)
            if seen is not None and now - seen[0] < self.window:
                seen[1] += 1
                return False
            held = seen[1] if seen is not None else 0
            self._kinds[kind] = [now, 0]
        if held:
            # Add the count to the text itself, so any formatter shows it.
            record.msg = f"{record.getMessage()} (and {held} more like it since the last shown)"
            record.args = None
        return True


class ConsoleHandler(logging.StreamHandler):
    """A StreamHandler for a console that may go away: a reader that exits (`bookpay serve |
    head -1`), a stream closed from the start (`>&-`). From the first line that cannot be written
    on, its lines are dropped (``gone_warning``, if any, said once on stderr) and the stream is
    pointed at /dev/null, so neither a later write nor the flush at exit fails: no traceback per
    line, and the server keeps serving. ``say`` writes a line as it is (the start-up banner)."""

    def __init__(self, stream, *, gone_warning: str | None = None) -> None:
        super().__init__(stream)
        self.stream = stream  # None (a closed stream): not sys.stderr, StreamHandler's default
        self.gone = False
        self._gone_warning = gone_warning

    def emit(self, record: logging.LogRecord) -> None:
        if self.stream is None:
            self._went()
        if not self.gone:
            super().emit(record)

    def say(self, line: str) -> None:
        if self.stream is None:
            self._went()
        if self.gone:
            return
        with self.lock:
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except (OSError, ValueError) as exc:
                if not self._broken(exc):
                    raise
                self._went()

    def handleError(self, record: logging.LogRecord) -> None:
        import sys

        if self._broken(sys.exc_info()[1]):
            self._went()
        else:
            super().handleError(record)

    def _broken(self, exc: BaseException | None) -> bool:
        """Whether writing failed for the stream's sake (a broken pipe, a terminal gone, a closed
        file), not a record's (a message that cannot be formatted still shows its error)."""
        closed = isinstance(exc, ValueError) and getattr(self.stream, "closed", False)
        return isinstance(exc, OSError) or bool(closed)

    def _went(self) -> None:
        import contextlib
        import os

        if self.gone:
            return
        self.gone = True
        with contextlib.suppress(AttributeError, OSError, ValueError):  # no descriptor: fine
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, self.stream.fileno())
            finally:
                os.close(null)
        if self._gone_warning:
            logging.getLogger("bookpay").warning("%s", self._gone_warning)


# What `bookpay serve` shows as it runs ----------------------------------------------------------
#
# One line per request (method, path, status, milliseconds) and one per webhook received (type,
# event id, PaymentIntent, what came of it), coloured at a terminal as `stripe listen` colours
# its lines, or one JSON object a line for log shippers (`--log-format json`). They go through
# the logger ``bookpay.access`` (see ``bookpay.commands.serve``), warnings and errors through
# ``bookpay`` and ``waitress`` with the RepeatFilter above; both pass every line through
# ``redact`` and, for a terminal, ``printable``.

ACCESS = "bookpay.access"
_access = logging.getLogger(ACCESS)

# Secrets and card data never reach a log line, whatever an exception's text holds: API keys,
# webhook secrets, client secrets, a URL's password, and runs of digits as long as card numbers.
# A key is removed up to the first character no key or secret holds (config._KEY_CHARACTERS):
# one pasted twice, or ending in a stray "_", goes whole, not only its first run of letters.
_SECRETS = re.compile(
    r"\b(?:sk|rk|pk|whsec)_(?:test_|live_)?[A-Za-z0-9][A-Za-z0-9_+/=]{5,}"
    r"|\bpi_[A-Za-z0-9]+_secret_[A-Za-z0-9]+"
)
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@/\s]+@")
# A card number: 13 to 19 digits, spaces or dashes allowed between them, that pass the Luhn
# check. A run of digits is removed whole when any 13 to 19 of its digits in a row pass (a card
# followed by its CVC or its expiry's month is one run), unless it is an id's: a word of a
# lowercase prefix, "_" and letters and digits, a letter among them (``ord_67107876212546f7``,
# ``pi_3Qx...``), whose digits are random, not typed.
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_ID_WORD = re.compile(r"[a-z]{1,12}_(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]+")
_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def _luhn(digits: str) -> bool:
    total = 0
    for place, digit in enumerate(reversed(digits)):
        value = int(digit) * (2 if place % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _in_an_id(text: str, start: int, end: int) -> bool:
    while start and text[start - 1] in _WORD_CHARS:
        start -= 1
    while end < len(text) and text[end] in _WORD_CHARS:
        end += 1
    return _ID_WORD.fullmatch(text, start, end) is not None


def _card(match: re.Match) -> str:
    found = match.group()
    digits = "".join(c for c in found if c.isdigit())
    if found.isdigit() and _in_an_id(match.string, match.start(), match.end()):
        return found
    for size in range(13, min(len(digits), 19) + 1):
        for at in range(len(digits) - size + 1):
            if _luhn(digits[at : at + size]):
                return "[card number removed]"
    return found


def redact(text: str) -> str:
    """``text`` without anything secret (keys, passwords) or a card number in it."""
    text = _SECRETS.sub(lambda m: m.group(0).split("_", 1)[0] + "_[redacted]", text)
    text = _URL_PASSWORD.sub(r"\1***@", text)
    return _CARD.sub(_card, text)


def log_request(method: str, path: str, status: int, ms: float) -> None:
    _access.info(
        "%s %s %s %.0f ms",
        method,
        path,
        status,
        ms,
        extra={"kind": "request", "method": method, "path": path, "status": status, "ms": ms},
    )


def log_webhook(kind: str, event_id: str, intent: str | None, outcome: str, reason: str) -> None:
    shown = outcome if not reason or reason == outcome else f"{outcome}: {reason}"
    _access.info(
        "--> %s [%s] %s %s",
        kind,
        event_id,
        intent or "-",
        shown,
        extra={
            "kind": "webhook",
            "type": kind,
            "event": event_id,
            "payment_intent": intent,
            "outcome": outcome,
            "reason": reason,
        },
    )


class RequestLog:
    """WSGI middleware: a line per request, once the app has answered (the body still to go).

    Only the path is logged, never the query string (a return URL carries a client secret) or
    a body (card data never reaches the shop anyway).
    """

    def __init__(self, app: Callable) -> None:
        self.app = app

    def __call__(self, environ: dict, start_response: Callable):
        started = time.perf_counter()
        seen: list[str] = []

        def start(status: str, headers: list, exc_info=None):
            seen.append(status)
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, start)
        finally:
            code = int(seen[-1].split(" ", 1)[0]) if seen else 500
            path = environ.get("PATH_INFO") or "/"
            log_request(environ.get("REQUEST_METHOD", "?"), path, code, _ms(started))

    def close(self) -> None:
        close = getattr(self.app, "close", None)
        if close is not None:
            close()


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


class LoggedReceiver:
    """The shop's webhook receiver, saying what each event came to (and passing the rest on)."""

    def __init__(self, receiver, ledger=None) -> None:
        self._receiver = receiver
        self._ledger = ledger

    def __getattr__(self, name: str):
        return getattr(self._receiver, name)

    def handle(self, payload: bytes, signature_header: str | None) -> dict:
        from bookpay.errors import BookpayError

        try:
            answer = self._receiver.handle(payload, signature_header)
        except BookpayError as exc:
            self._say(payload, exc.http_status, {"error": exc.to_dict()})
            raise
        except Exception as exc:
            self._say(payload, 500, {"error": {"message": f"{type(exc).__name__}: {exc}"}})
            raise
        self._say(payload, 200, answer)
        return answer

    def _say(self, payload: bytes, status: int, answer: dict) -> None:
        import json

        from bookpay.replay import outcome_of

        if hasattr(answer, "payment_intent"):  # the receiver's Answer: the body is read already
            kind, event_id = str(answer["type"])[:100], str(answer["id"])[:100]
            intent = answer.payment_intent
        else:  # refused or failed: only the body can say what it was
            kind, event_id, intent = _event_fields(payload)
        body = json.dumps(answer).encode()
        outcome, reason = outcome_of(status, body, None)
        if outcome == "fulfilled" and reason == "fulfilled":  # say which order
            order_id = getattr(answer, "order_id", None)
            if order_id and intent:  # known to the handling: no need to ask the ledger
                reason = f"order {order_id} ({intent})"
            else:
                reason = order_ref(self._ledger, intent)
        log_webhook(kind, event_id, intent, outcome, reason)
        if outcome == "failed":
            logging.getLogger("bookpay.webhooks").error(
                "handling %s (%s) for %s failed: %s; Stripe will send it again",
                event_id,
                kind,
                order_ref(self._ledger, intent),
                reason,
            )


def _event_fields(payload: bytes) -> tuple[str, str, str | None]:
    """(type, id, PaymentIntent) of an event body, as far as it can be read; for the log only."""
    import json

    from bookpay.event_shape import object_id

    try:
        event = json.loads(payload)
    except (ValueError, RecursionError):  # RecursionError: '[' nested thousands deep
        return "(not JSON)", "-", None
    if not isinstance(event, dict):
        return "(not an event)", "-", None
    obj = (event.get("data") or {}).get("object") if isinstance(event.get("data"), dict) else None
    intent = None
    if isinstance(obj, dict):
        if obj.get("object") == "payment_intent":
            intent = object_id(obj)
        else:
            intent = object_id(obj.get("payment_intent"))
    return str(event.get("type") or "(no type)")[:100], str(event.get("id") or "-")[:100], intent


def order_ref(ledger, intent_id: str | None) -> str:
    """ "order ord_... (pi_...)" for a log line, or the PaymentIntent alone when there is no
    order for it (yet), or when the ledger cannot say."""
    if not intent_id:
        return "no PaymentIntent"
    try:
        order = ledger.find_order(intent_id) if ledger is not None else None
    except Exception:  # the ledger is what failed: the PaymentIntent still names the payment
        order = None
    return f"order {order['id']} ({intent_id})" if order else intent_id


# Formatting --------------------------------------------------------------------------------

_GREEN, _YELLOW, _RED, _CYAN, _DIM, _BOLD, _RESET = (
    "\x1b[32m",
    "\x1b[33m",
    "\x1b[31m",
    "\x1b[36m",
    "\x1b[2m",
    "\x1b[1m",
    "\x1b[0m",
)
_OUTCOME_COLOURS = {
    "fulfilled": _GREEN,
    "updated": _GREEN,
    "accepted": _GREEN,
    "duplicate": _CYAN,
    "ignored": _YELLOW,
    "refused": _RED,
    "failed": _RED,
}


def _status_colour(status: int) -> str:
    if status >= 500:
        return _RED
    if status >= 400:
        return _YELLOW
    if status >= 300:
        return _CYAN
    return _GREEN


class TextFormatter(logging.Formatter):
    """`2026-01-05 14:03:07  POST /checkout 200 3 ms`, coloured at a terminal; outside text made
    printable, secrets and card numbers redacted, before any colour is added."""

    def __init__(self, *, color: bool = False) -> None:
        super().__init__()
        self.color = color

    def format(self, record: logging.LogRecord) -> str:
        kind = getattr(record, "kind", None)
        if kind == "message":
            return _clean(record.getMessage())
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        if kind == "request":
            text = self._request(record)
        elif kind == "webhook":
            text = self._webhook(record)
        else:
            # One line for the message (its arguments may be outside text); a traceback keeps
            # its own lines, each indented, so neither can pass for a line of the log.
            text = _clean(f"{record.levelname} {record.name}: {record.getMessage()}")
            if record.exc_info:
                trace = _clean(self.formatException(record.exc_info), keep_newlines=True)
                text += "".join(f"\n    {line}" for line in trace.splitlines())
            text = self._paint(text, _RED if record.levelno >= logging.ERROR else _YELLOW)
        return f"{self._paint(stamp, _DIM)}  {text}"

    def _paint(self, text: str, colour: str) -> str:
        return f"{colour}{text}{_RESET}" if self.color and colour else text

    def _request(self, record: logging.LogRecord) -> str:
        status = record.status
        return (
            f"{self._paint(_clean(record.method), _BOLD)} {_clean(record.path)} "
            f"{self._paint(str(status), _status_colour(status))} "
            f"{self._paint(f'{record.ms:.0f} ms', _DIM)}"
        )

    def _webhook(self, record: logging.LogRecord) -> str:
        outcome = record.outcome
        shown = (
            outcome
            if not record.reason or record.reason == outcome
            else (f"{outcome}: {record.reason}")
        )
        return (
            f"{self._paint('-->', _BOLD)} {self._paint(_clean(record.type), _BOLD)} "
            f"[{_clean(record.event)}] {_clean(record.payment_intent or '-')} "
            f"{self._paint(_clean(shown), _OUTCOME_COLOURS.get(outcome, ''))}"
        )


def _clean(text: object, *, keep_newlines: bool = False) -> str:
    """Outside text for a terminal: secrets redacted, control characters (newlines too, unless
    kept) shown as escapes, so a request's path or an event's id cannot add a line of its own."""
    from bookpay.terminal import printable

    return printable(redact(str(text)), keep_newlines=keep_newlines)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, and the line's fields, for log shippers."""

    FIELDS = (
        "kind",
        "method",
        "path",
        "status",
        "ms",
        "type",
        "event",
        "payment_intent",
        "outcome",
        "reason",
    )

    def format(self, record: logging.LogRecord) -> str:
        import json

        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line: dict = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        for name in self.FIELDS:
            if hasattr(record, name):
                value = getattr(record, name)
                line[name] = round(value, 1) if name == "ms" else value
        if getattr(record, "kind", None) not in ("request", "webhook"):
            line["message"] = record.getMessage()
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return redact(json.dumps(line))
