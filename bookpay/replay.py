"""Replaying webhook events: load them as Stripe sent them, sign each at send time, POST them.

The body of a delivery is the exact bytes of the event as it was captured (a whole single-event
file, or the exact span of one element of an array or one line of JSON Lines), because that is
what Stripe signs and what a receiver verifies. Only ``new_event_id`` changes an event, and then
it is re-serialised the way Stripe writes events (two-space indented JSON).

Deliveries go out over ``http.client`` keep-alive connections, one per worker thread; a request
written whole is never sent again (``Replayer._deliver``), and a run told to stop (Ctrl-C) starts
no other delivery and waits for those under way. Redirects are never followed (Stripe does not
follow them either), so a 3xx counts as a failed delivery.
Informational answers (1xx but 101: 100 Continue, 103 Early Hints) are read past to the final one.
"""

from __future__ import annotations

import base64
import functools
import http.client
import io
import itertools
import json
import random
import re
import secrets as _secrets
import socket
import ssl
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from bookpay.errors import ConfigError, UsageError
from bookpay.ledger.location import mask_url
from bookpay.transport import dropped
from bookpay.webhooks import sign

DEFAULT_URL = "http://127.0.0.1:4242/webhook"
_UNSENDABLE = re.compile(r"[\x00-\x20\x7f]")  # in a request line or a Host header
USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
ORDERS = ("as-is", "reverse", "shuffle")
EVENT_SUFFIXES = (".json", ".jsonl", ".ndjson")
FIXTURES_DIR = Path(__file__).parent / "assets" / "fixtures"
# `bookpay serve` keeps its secret in the data folder as webhook_secret.<its port>, mode 0600,
# so that several servers on one data folder each keep theirs; webhook_secret is an older
# bookpay's single file, still read.
SECRET_FILE = "webhook_secret"
_BAD_SECRET = "whsec_bookpay_replay_deliberately_wrong"
# A connection closed under a request: raised while writing it on a reused connection, the
# request goes once more on a new one; raised after it was written whole, it is NO_ANSWER.
_RETRYABLE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
NO_ANSWER = "connection closed without an answer (after the whole event was sent)"
# Bounds on one run. Each delivery leaves a Result behind (the summary and --json need them all),
# so a run's size is its memory: a million stays well under a gigabyte. The rest keep each value
# within what threads, sockets and time.sleep accept.
MAX_REPEAT = 100_000
MAX_DELIVERIES = 1_000_000
MAX_CONCURRENCY = 256
MAX_SECONDS = 3600.0  # --delay and --timeout
# What is read of a receiver's answer, and kept of its reason: an answer that goes on (a huge,
# or endless, body) is cut there and its connection closed, not read to its end.
MAX_ANSWER = 64 * 1024  # bytes
MAX_REASON = 500  # characters, as of the answer kept
MAX_INPUT = 100 * 1024 * 1024  # bytes of event files (and standard input) in all, per run
# 9999-12-31T23:59:59Z: a later time (or one before 1970) is no moment a signature was made at.
LAST_TIMESTAMP = 253_402_300_799

FIXTURE_NOTES = {
    "payment_intent.succeeded": "a paid order (fulfils it, if Stripe knows the intent)",
    "payment_intent.processing": "a payment still processing",
    "payment_intent.payment_failed": "a declined card (insufficient_funds)",
    "payment_intent.canceled": "a canceled PaymentIntent",
    "charge.refunded.full": "a charge refunded in full",
    "charge.refunded.partial": "a charge refunded in part",
    "charge.dispute.created": "a dispute (chargeback) opened",
    "charge.dispute.closed.won": "a dispute closed, won (the order is paid again)",
    "charge.dispute.closed.lost": "a dispute closed, lost (the order is dispute_lost)",
    "refund.failed": "a refund that failed after it succeeded (the money is back)",
}


@dataclass(frozen=True, slots=True)  # a run may hold a million
class Delivery:
    index: int
    event_id: str
    type: str
    body: bytes
    source: str


@dataclass
class Result:
    index: int
    event_id: str
    type: str
    source: str
    status: int | None
    ok: bool
    latency_ms: float
    answer: str
    error: str | None = None
    location: str | None = None
    # What the delivery came to (see ``outcome_of``) and why, in full.
    outcome: str = ""
    reason: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


# What a delivery can come to, in the order a summary lists them. A bookpay receiver says what it
# did in its JSON answer; any other receiver's 2xx is "accepted".
OUTCOMES = ("fulfilled", "updated", "duplicate", "ignored", "accepted", "refused", "failed")
ALWAYS_COUNTED = ("fulfilled", "duplicate", "ignored", "refused", "failed")


def outcome_of(status: int | None, body: bytes, error: str | None) -> tuple[str, str]:
    """(outcome, reason) of one delivery, from the HTTP status and the receiver's answer.

    refused: a 4xx (a bad signature, a malformed event), with the receiver's message;
    failed: no answer, a redirect, a 5xx. For a 2xx, bookpay's receiver answers
    ``{"duplicate", "handled", "outcome"}``: duplicate, ignored (not handled, with why),
    fulfilled (the order was fulfilled, now or before) or updated (the order changed).
    A reason is kept to its first ``MAX_REASON`` characters (every delivery keeps its own).
    """
    outcome, reason = _outcome_of(status, body, error)
    return outcome, reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 1] + "\u2026"


def _outcome_of(status: int | None, body: bytes, error: str | None) -> tuple[str, str]:
    text = body.decode("utf-8", "replace").strip()
    try:
        answer = json.loads(text) if text else None
    except ValueError:
        answer = None
    answer = answer if isinstance(answer, dict) else {}
    problem = answer.get("error") if isinstance(answer.get("error"), dict) else {}
    message = str(problem.get("message") or " ".join(text.split()))
    if status is None or error:
        return "failed", error or message
    if 400 <= status < 500:
        return "refused", f"{status}: {message}" if message else str(status)
    if not 200 <= status < 300:
        return "failed", f"{status}: {message}" if message else str(status)
    said = str(answer.get("outcome") or "")
    if answer.get("duplicate") is True:
        return "duplicate", "already received" + (
            ", and handled" if answer.get("handled") else ", never handled"
        )
    if answer.get("handled") is False:
        return "ignored", said.removeprefix("ignored: ") or "not handled"
    if answer.get("handled") is True:
        if said.startswith(("fulfilled", "already_fulfilled")):
            return "fulfilled", said.replace("_", " ")
        return "updated", said
    return "accepted", " ".join(text.split())


def summarize(results: Sequence[Result]) -> dict:
    """Counts per outcome (the five named always), and how often each reason came up."""
    counts = {name: 0 for name in ALWAYS_COUNTED}
    reasons: dict[str, dict[str, int]] = {}
    for result in results:
        counts[result.outcome] = counts.get(result.outcome, 0) + 1
        if result.outcome in ("ignored", "refused", "failed"):
            seen = reasons.setdefault(result.outcome, {})
            seen[result.reason] = seen.get(result.reason, 0) + 1
    ordered = {name: counts[name] for name in OUTCOMES if name in counts}
    return {"counts": ordered, "reasons": reasons}


# Where to ----------------------------------------------------------------------------------------


def normalize_url(target: str | None) -> str:
    """Shorthands in the style of the Stripe CLI's ``--forward-to``, made for the shop: ``4242``
    (localhost:4242/webhook), ``/webhook`` (the shop's port, 4242), ``host:port/path``. The CLI
    itself takes ``4242`` for localhost:4242/ and ``/webhook`` for localhost:80/webhook.

    The port is checked here, before any event is loaded: urlsplit only finds a bad one when
    ``.port`` is read, as a ValueError that would otherwise surface as an unexpected error.
    ``None`` is the shop's own endpoint; a blank one (an empty shell variable) is refused, as
    a blank ``--secret`` is, never taken for it.
    """
    if target is not None and not target.strip():
        raise UsageError(
            "--to is blank.",
            hint="Pass the receiver's URL, port or path, or leave --to out to send to "
            f"{DEFAULT_URL}.",
        )
    given = (DEFAULT_URL if target is None else target).strip()
    target = given
    if target.isdigit():
        if not target.isascii():  # urlsplit would take full-width digits for a host name
            raise UsageError(f"--to {given!r}: write the port in ASCII digits (0-9).")
        target = f"http://localhost:{target}/webhook"
    elif target.startswith("/"):
        target = f"http://localhost:4242{target}"
    elif "://" not in target:
        target = f"http://{target}"
    # A password given in the URL is never shown (nor anything else the URL's masking hides),
    # not even in a shorthand without its scheme (shop:secret@host:4242/webhook).
    shown = repr(mask_url(given))
    if given != target:
        masked = mask_url(target)
        written = masked.removeprefix("http://") if target == f"http://{given}" else given
        shown = f"{mask_url(written)!r} ({masked})"
    try:
        parts = urlsplit(target)
    except ValueError as exc:
        raise UsageError(f"--to {shown} is not a valid URL: {exc}.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--to must be an http(s) URL, a port or a path, got {target!r}.")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise UsageError(f"--to {shown}: the port must be a number from 1 to 65535.")
    # What http.client would refuse, or fail on in the middle of the run, is said here.
    sent = parts.netloc + parts.path + parts.query
    if _UNSENDABLE.search(sent) or not (parts.path + parts.query).isascii():
        raise UsageError(
            f"--to {shown}: a URL cannot hold spaces or control characters, nor a path other than "
            "ASCII (percent-encode them: %20, %C3%A9)."
        )
    try:
        parts.hostname.encode("idna")
    except UnicodeError:
        raise UsageError(
            f"--to {shown}: {parts.hostname!r} is not a host name (a part of it is empty or "
            "longer than 63 characters)."
        ) from None
    return target


def resolve_secret(settings, explicit: str | None = None, url: str | None = None) -> str:
    """The secret to sign with: --secret, STRIPE_WEBHOOK_SECRET, or the one `serve` saved.

    Of the secrets servers saved, the one of the server at ``url``'s port (``--to``); else an
    older bookpay's single file; else the only one saved. Several, none of them the target's, is
    a ConfigError naming their ports. A value without the whsec_ prefix, or with a space, a
    control character or anything outside ASCII in it, is refused as `bookpay config check`
    refuses it: signed with it, no server would take the signature. A blank ``--secret`` (an
    empty shell variable) is refused too, never taken for "the default one".
    """
    from bookpay.config import key_character_problem, webhook_secret_problem

    def problem_of(value: str, name: str):
        return webhook_secret_problem(value, name) or key_character_problem(value, name)

    if explicit is not None:
        if not explicit.strip():
            raise UsageError(
                "--secret is blank.",
                hint="Pass the whsec_... secret, or leave --secret out to sign with "
                "STRIPE_WEBHOOK_SECRET or the one `bookpay serve` saved.",
            )
        problem = problem_of(explicit, "--secret")
        if problem:
            raise UsageError(f"{problem.message}.", hint=f"Fix: {problem.fix}.")
        return explicit
    if settings.webhook_secrets:
        problem = problem_of(settings.webhook_secrets[0], "STRIPE_WEBHOOK_SECRET")
        if problem:
            raise ConfigError(f"{problem.message}.", hint=f"Fix: {problem.fix}.")
        return settings.webhook_secrets[0]
    data_dir = Path(settings.data_dir)
    try:
        saved = saved_secrets(data_dir)
        legacy = _read_secret(data_dir / SECRET_FILE)
    except OSError as exc:  # a folder on the way that cannot be looked into (no permission)
        raise ConfigError(
            f"Cannot look for the webhook secrets `bookpay serve` saved in {data_dir}: "
            f"{exc.strerror or exc}.",
            hint="Pass --secret whsec_..., or set BOOKPAY_DATA_DIR to the folder the server uses.",
        ) from None
    port = port_of(url) if url else None
    if port in saved:
        return saved[port]
    if legacy:
        return legacy
    if len(saved) == 1:
        return next(iter(saved.values()))
    if saved:
        ports = ", ".join(str(p) for p in sorted(saved))
        where = f"servers on ports {ports} saved their webhook secrets in {data_dir}"
        raise ConfigError(
            f"No webhook secret saved for port {port} (--to); {where}: replay --to one of "
            "them, or pass --secret whsec_...."
            if port
            else f"Which secret to sign with? {where[0].upper()}{where[1:]}: pass --secret "
            "whsec_...."
        )
    if settings.is_emulated:
        raise ConfigError(
            "No webhook secret to sign with: pass --secret whsec_... (the secret the server "
            "verifies with) or set STRIPE_WEBHOOK_SECRET. In emulator mode the emulator issues "
            f"a secret to `bookpay serve`, which keeps it in {secret_path(data_dir, 'PORT')} "
            "while it runs."
        )
    raise ConfigError(
        "No webhook secret to sign with: set STRIPE_WEBHOOK_SECRET (the whsec_... secret "
        "`stripe listen` prints) or pass --secret whsec_...."
    )


def port_of(url: str) -> int:
    """The port a URL names, or its scheme's (80, 443)."""
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def secret_path(data_dir: Path, port: int | str) -> Path:
    """Where the server listening on ``port`` keeps its secret (webhook_secret.4242)."""
    return Path(data_dir) / f"{SECRET_FILE}.{port}"


def saved_secrets(data_dir: Path) -> dict[int, str]:
    """The secrets running servers saved in ``data_dir``, by their port."""
    found = {}
    for path in Path(data_dir).glob(f"{SECRET_FILE}.*"):
        suffix = path.name[len(SECRET_FILE) + 1 :]
        if suffix.isascii() and suffix.isdigit():
            secret = _read_secret(path)
            if secret:
                found[int(suffix)] = secret
    return found


def _read_secret(path: Path) -> str | None:
    """The whsec_ secret in ``path``, if it is a private file that holds one."""
    if not (path.is_file() and _private(path)):
        return None
    try:
        value = path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return value if value.startswith("whsec_") else None


def _private(path: Path) -> bool:
    """Only trust a secret file nobody else can read or have written."""
    try:
        info = path.stat()
    except OSError:
        return False
    import os

    owned = not hasattr(os, "getuid") or info.st_uid == os.getuid()
    return owned and not info.st_mode & 0o077


def save_secret(data_dir: Path, secret: str, port: int) -> Path:
    """Keep the secret the emulator issued to the server listening on ``port``, readable by its
    owner only, beside any other server's (each has a file of its own: ``secret_path``).

    `bookpay webhook replay` and `sign` then sign with it by default. The file is created with
    mode 0600 from the start (never world-readable, not even for a moment).
    """
    import os

    path = secret_path(data_dir, port)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    return path


def forget_secret(data_dir: Path, secret: str, port: int) -> None:
    """Remove the secret a stopping server saved, only if the file still holds it: another
    server's files, and one that has since taken this port, are left as they are."""
    path = secret_path(data_dir, port)
    try:
        if path.read_text().strip() == secret:
            path.unlink()
    except OSError:
        pass


# What ------------------------------------------------------------------------------------------


def load_events(
    paths: Sequence[str],
    stdin: BinaryIO | None = None,
    skipped: dict[str, int] | None = None,
) -> list[Delivery]:
    """Every event in ``paths`` (files, folders of them, fixture names, ``-`` for stdin), in order.

    A bundled fixture is named as `bookpay webhook fixtures` lists it (payment_intent.succeeded);
    a file or folder of that name wins. Only regular files are read (in a folder, the others are
    passed over), ``MAX_INPUT`` bytes in all. ``skipped`` is given, per file, how many of its
    lines were not JSON (``split_document``).
    """
    deliveries: list[Delivery] = []

    def add(events: Iterable[tuple[bytes, dict, str]]) -> None:
        # Counted as they are read: a run of too many is refused at the first one too many,
        # not once every event has been made (a million tiny ones weigh hundreds of MB).
        for body, event, where in events:
            if len(deliveries) >= MAX_DELIVERIES:
                raise UsageError(
                    f"{where}: more than {MAX_DELIVERIES:,} events, more deliveries than one run "
                    "may make; replay them in parts."
                )
            deliveries.append(Delivery(len(deliveries), event["id"], event["type"], body, where))

    budget = [MAX_INPUT]
    for raw in paths:
        if raw == "-":
            if stdin is None:
                raise UsageError("'-' needs events on standard input.")
            add(split_document(read_stdin(stdin, budget), "<stdin>", skipped))
            continue
        if not raw:
            raise UsageError("An empty path names no events.")
        path = Path(raw)
        fixture = FIXTURES_DIR / f"{raw}.json"
        try:
            if path.is_dir():
                files = sorted(
                    p for p in path.iterdir() if p.suffix in EVENT_SUFFIXES and p.is_file()
                )
                if not files:
                    raise UsageError(f"{path} holds no .json or .jsonl files.")
            elif path.is_file():
                files = [path]
            elif path.exists():
                raise UsageError(
                    f"{raw}: not a file or a folder (send a pipe's events on standard input: -)."
                )
            elif "/" not in raw and fixture.is_file():  # a bundled fixture, by name
                files = [fixture]
            else:
                raise UsageError(f"{raw}: no such file, folder or bundled fixture.")
            for file in files:
                with file.open("rb") as handle:
                    data = read_limited(handle, str(file), budget)
                add(split_document(data, str(file), skipped))
        except OSError as exc:
            raise UsageError(
                f"{exc.filename or raw}: cannot read it ({exc.strerror or exc})."
            ) from None
    if not deliveries:
        raise UsageError("No events to replay.")
    return deliveries


def read_limited(stream: BinaryIO, source: str, budget: list[int] | None = None) -> bytes:
    """All of ``stream``, unless the run's events would then be more than ``MAX_INPUT`` bytes
    (``budget``: what is left of them, a list so that several reads share it)."""
    budget = budget if budget is not None else [MAX_INPUT]
    chunks, left = [], budget[0] + 1
    while left > 0:  # in pieces: read(n) would make room for n bytes at once
        chunk = stream.read(min(left, 2**20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    data = b"".join(chunks)
    if len(data) > budget[0]:
        raise UsageError(
            f"{source}: more than {MAX_INPUT // 2**20} MB of events in one run; replay them in "
            "parts."
        )
    budget[0] -= len(data)
    return data


def read_stdin(stdin: BinaryIO, budget: list[int] | None = None) -> bytes:
    """All of standard input (``read_limited``); one that cannot be read (open for writing
    only) is a UsageError naming it, as an event file that cannot be read is."""
    try:
        return read_limited(stdin, "<stdin>", budget)
    except OSError as exc:
        raise UsageError(f"<stdin>: cannot read it ({exc.strerror or exc}).") from None


def split_document(
    data: bytes, source: str, skipped: dict[str, int] | None = None
) -> Iterator[tuple[bytes, dict, str]]:
    """(exact bytes, parsed event, where) for one file: an event, an array, or JSON Lines, each
    as it is read (a problem with the file is raised when the reading comes to it).

    Among JSON Lines, the lines `stripe listen --format JSON --forward-to URL` prints among the
    events it prints (``2026-01-05 10:00:00  <--  [200] POST URL [evt_...]``, ``_LISTEN_LINE``)
    are not events: they are passed over, and counted in ``skipped[source]``. Any other line
    is read as JSON: one that is not (an NBSP before an event, a stray character) is refused,
    naming it, never passed over; one that is JSON but not an event is refused too. A BOM that
    starts a line is not part of the event after it (`cat` of files saved with one)."""
    if data.startswith(b"\xef\xbb\xbf"):  # a BOM is not part of what Stripe signed
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{source} is not UTF-8 text.") from None
    start = _skip_space(text, 0)
    if start == len(text):  # said, as an unreadable file is, rather than passed over
        raise UsageError(f"{source} is empty: it holds no event.")
    array = text.startswith("[", start)
    passed_over = [0]
    items = _array_items(text, start, source) if array else _lines(text, start, source, passed_over)
    first = next(items, None)
    if first is None:  # said, as an empty file is, rather than passed over
        lines = f"{passed_over[0]:,} line" + ("s" if passed_over[0] != 1 else "")
        raise UsageError(f"{source} holds no event: its {lines} of text are not JSON.")
    second = next(items, None)
    if second is None:
        # A single-event file is sent byte for byte, newline and all (a lone element of an
        # array, as it is written in it), unless lines were passed over around it or a BOM
        # started its line after blank ones.
        whole = not (array or passed_over[0] or text.startswith("\ufeff", start))
        yield _event(text if whole else first[0], first[1], source)
    else:
        for number, (span, value) in enumerate(itertools.chain((first, second), items), start=1):
            yield _event(span, value, f"{source} #{number}")
    if skipped is not None and passed_over[0]:  # once the whole file has been read
        skipped[source] = skipped.get(source, 0) + passed_over[0]


def _array_items(text: str, start: int, source: str) -> Iterator[tuple[str, object]]:
    """(exact text, value) of each element of the array at ``start``, then what follows it
    checked."""
    decoder = json.JSONDecoder()
    position, count = _skip_space(text, start + 1), 0
    while not text.startswith("]", position):
        if count:  # after an element, a comma and the next, or the end of the array
            if not text.startswith(",", position):
                raise UsageError(
                    f"{source}: not valid JSON (a ',' or a ']' expected at character "
                    f"{position}, as the array goes on)."
                )
            position = _skip_space(text, position + 1)
        value, end = _decode(decoder, text, position, source)
        yield text[position:end], value
        count += 1
        position = _skip_space(text, end)
    if _skip_space(text, position + 1) < len(text):
        raise UsageError(f"{source}: unexpected text after the JSON array.")
    if not count:  # said, as an empty file is, rather than passed over
        raise UsageError(f"{source} holds an empty array: it holds no event.")


def _lines(
    text: str, start: int, source: str, passed_over: list[int]
) -> Iterator[tuple[str, object]]:
    """(exact text, value) of each JSON value from ``start`` on (JSON Lines, or one event).

    A line stripe listen prints among the events (``_LISTEN_LINE``) is passed over, and counted
    in ``passed_over[0]``; a BOM that starts a line (`cat` of a file saved with one) is not part
    of what follows it. Whether a value starts its line is known as the text is walked (a line
    of many values is read in one pass, not looked back over for each)."""
    decoder = json.JSONDecoder()
    position, line_start = start, True  # only blanks before ``start``
    while position < len(text):
        if line_start:
            if text.startswith("\ufeff", position):
                position += 1
            if not text.startswith(("{", "["), position):  # an event, or a line not JSON
                line_end = text.find("\n", position)
                line_end = len(text) if line_end < 0 else line_end
                if _LISTEN_LINE.match(_ESCAPES.sub("", text[position:line_end]).rstrip()):
                    passed_over[0] += 1
                    position = _skip_space(text, line_end)
                    continue
                try:  # a whole JSON value on its line (not an event, it is refused as such)
                    value, end = decoder.raw_decode(text, position)
                    if text[end:line_end].strip(" \t\r"):
                        raise ValueError("more on its line")
                except ValueError:
                    line = text.count("\n", 0, position) + 1
                    shown = text[position:line_end].rstrip("\r")
                    shown = repr(shown if len(shown) <= 60 else shown[:59] + "\u2026")
                    raise UsageError(
                        f"{source} line {line:,}: not JSON, nor a line stripe listen prints among "
                        f"events: {shown}."
                    ) from None
                yield text[position:end], value
                line_start, position = _after(text, end)
                continue
        value, end = _decode(decoder, text, position, source)
        yield text[position:end], value
        line_start, position = _after(text, end)


# The lines `stripe listen --forward-to URL` prints among the events it prints with --format
# JSON: on stdout, "2026-01-05 10:00:00  <--  [200] POST URL [evt_...]", "... [ERROR] Failed to
# POST: ..." (and "-->" lines, in place of the events, without --format JSON); on stderr, in a
# capture of both, "Getting ready...", "Ready! ...", "Session expired, reconnecting...". Its
# colours and hyperlinks (``_ESCAPES``) are taken out before a line is matched.
_LISTEN_LINE = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[ \t]+(?:<--[ \t]+\[\d{3}\]|-->|\[ERROR\])[ \t]"
    r"|(?:> )?Ready! "
    r"|Getting ready\.\.\.$"
    r"|Session expired, reconnecting\.\.\.$"
)
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


def _after(text: str, end: int) -> tuple[bool, int]:
    """(whether a new line starts there, where) the next value is, after one ending at ``end``."""
    position = _skip_space(text, end)
    return text.find("\n", end, position) >= 0, position


def _event(span: str, value: object, where: str) -> tuple[bytes, dict, str]:
    if not (
        isinstance(value, dict)
        and isinstance(value.get("id"), str)
        and isinstance(value.get("type"), str)
    ):
        raise UsageError(f"{where}: not a Stripe event (it needs an id and a type).")
    return span.encode("utf-8"), value, where


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _decode(decoder: json.JSONDecoder, text: str, position: int, source: str):
    try:
        return decoder.raw_decode(text, position)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{source}: not valid JSON ({exc}).") from None
    except RecursionError:
        raise UsageError(f"{source}: nested too deeply to be an event.") from None
    except ValueError:  # the only other one: an integer of more digits than Python converts
        raise UsageError(f"{source}: holds a number too long to be read.") from None


def plan(
    events: Sequence[Delivery],
    *,
    repeat: int = 1,
    order: str = "as-is",
    seed: int | None = None,
    new_event_id: bool = False,
) -> Plan:
    """The deliveries to make: every event ``repeat`` times (in rounds), then reordered."""
    if not 1 <= repeat <= MAX_REPEAT:
        raise UsageError(f"--repeat must be from 1 to {MAX_REPEAT:,}, not {repeat:,}.")
    if order not in ORDERS:
        raise UsageError(f"--order must be one of {', '.join(ORDERS)}.")
    count = len(events) * repeat
    if count > MAX_DELIVERIES:
        raise UsageError(
            f"{len(events):,} events sent {repeat:,} times make {count:,} deliveries, more than "
            f"the {MAX_DELIVERIES:,} one run may make: lower --repeat."
        )
    return Plan(events, repeat, order, seed, new_event_id)


class Plan(Sequence[Delivery]):
    """The deliveries of a run, each made when it is taken, so that a long run holds its events
    once (and, shuffled, one machine integer per delivery) rather than a list of Deliveries.

    Item ``i`` is the event at position ``i`` of the rounds, reordered; the shuffle is the one a
    list of the deliveries would get from the same seed. With ``new_event_id`` every take draws a
    fresh id (the replayer takes each delivery once).
    """

    def __init__(
        self, events: Iterable[Delivery], repeat: int, order: str, seed: int | None, new_id: bool
    ) -> None:
        self._events = tuple(events)
        self._count = len(self._events) * repeat
        self._reverse = order == "reverse"
        self._positions: array | None = None
        if order == "shuffle":
            self._positions = array("q", range(self._count))
            random.Random(seed).shuffle(self._positions)
        self._new_id = new_id

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError("no such delivery in this plan")
        position = self._count - 1 - index if self._reverse else index
        if self._positions is not None:
            position = self._positions[index]
        delivery = self._events[position % len(self._events)]
        if self._new_id:
            delivery = with_new_id(delivery)
        return replace(delivery, index=index)


def with_new_id(delivery: Delivery) -> Delivery:
    event = json.loads(delivery.body)
    event["id"] = "evt_" + _secrets.token_hex(12)
    body = json.dumps(event, indent=2, ensure_ascii=False).encode("utf-8")
    return replace(delivery, event_id=event["id"], body=body)


def check_timestamp(stamp: int, given: str) -> int:
    """``stamp``, if a signature can be made at it: from 0 (1970) to ``LAST_TIMESTAMP``, the end
    of year 9999 (`webhook sign --timestamp`, and the time --timestamp-offset signs at); else a
    UsageError, ``given`` saying what gave it."""
    if not 0 <= stamp <= LAST_TIMESTAMP:
        raise UsageError(
            f"{given}: a signature's time is from 0 (1970) to {LAST_TIMESTAMP:,} (the end of "
            "year 9999)."
        )
    return stamp


def offset_time(offset: int) -> int:
    """The time a signature made now with --timestamp-offset ``offset`` is made at, if it is one
    a signature can be made at (``check_timestamp``)."""
    stamp = int(time.time()) + offset
    return check_timestamp(stamp, f"--timestamp-offset {offset:,} signs at Unix time {stamp:,}")


# How -------------------------------------------------------------------------------------------


class Replayer:
    """Sends deliveries to one URL, signing each just before it goes out."""

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        concurrency: int = 1,
        delay: float = 0.0,
        timestamp_offset: int = 0,
        bad_signature: bool = False,
        timeout: float = 30.0,
    ) -> None:
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise UsageError(f"--concurrency must be from 1 to {MAX_CONCURRENCY}.")
        if not 0 <= delay <= MAX_SECONDS:
            raise UsageError(f"--delay must be from 0 to {MAX_SECONDS:g} seconds.")
        if not 0 < timeout <= MAX_SECONDS:
            raise UsageError(f"--timeout must be more than 0 and at most {MAX_SECONDS:g} seconds.")
        offset_time(timestamp_offset)
        target = normalize_url(url)
        self.url = mask_url(target)  # what is shown: no password
        parts = urlsplit(target)
        # A user and password in the URL go as Basic authentication, as Stripe sends them to an
        # endpoint whose URL has them.
        self._auth = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self._auth = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.secret = _BAD_SECRET if bad_signature else secret
        self.concurrency = concurrency
        self.delay = delay
        self.timestamp_offset = timestamp_offset
        self.timeout = timeout

    def run(
        self,
        deliveries: Sequence[Delivery],
        progress: Callable[[Result], None] | None = None,
        stop: threading.Event | None = None,
    ) -> list[Result]:
        """The results of the deliveries made, in plan order, ``concurrency`` at a time.

        Deliveries are made in worker threads, the calling thread only waiting for them, so
        that Ctrl-C there can set ``stop``: then no delivery starts (nor waits out --delay), the
        ones under way finish (each within --timeout), and the results are those made.
        """
        stop = stop if stop is not None else threading.Event()
        results: list[Result | None] = [None] * len(deliveries)
        cursor = iter(range(len(deliveries)))
        lock = threading.Lock()
        broke: list[BaseException] = []  # what stopped a worker thread, raised again here

        def work() -> None:
            connection = None
            try:
                while True:
                    with lock:
                        index = None if broke or stop.is_set() else next(cursor, None)
                    if index is None:
                        return
                    if self.delay and index >= self.concurrency and stop.wait(self.delay):
                        return
                    connection, result = self._deliver(connection, deliveries[index])
                    results[index] = result
                    if progress is not None:
                        with lock:
                            progress(result)
            finally:
                if connection is not None:
                    connection.close()

        def guarded() -> None:
            try:
                work()
            except BaseException as exc:  # not lost with its thread: the run stops, and says why
                with lock:
                    broke.append(exc)

        workers = min(self.concurrency, len(deliveries))
        threads = [threading.Thread(target=guarded, daemon=True) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if broke:
            raise broke[0]
        return [result for result in results if result is not None]

    def _connect(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=self.timeout, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)

    def _deliver(
        self, connection: http.client.HTTPConnection | None, delivery: Delivery
    ) -> tuple[http.client.HTTPConnection | None, Result]:
        """One delivery, on ``connection`` if it is still open (kept alive since the last one).

        A request written whole is never sent again: the receiver may have acted on it. So an
        idle connection the receiver has closed meanwhile is noticed before it is used (its
        socket is readable: ``dropped``) and replaced; only a failure while the request was
        being written on a reused connection (closed just then, before it had all of it) sends
        it once more, on a new connection; and a connection closed after the request was
        written, before an answer, is a failed delivery.
        """
        if connection is not None and connection.sock is not None and dropped(connection.sock):
            connection.close()
        reused = connection is not None and connection.sock is not None
        if not reused:
            connection = self._connect()
        started = time.perf_counter()
        written = False
        try:
            try:
                self._send(connection, delivery)
            except _RETRYABLE:
                if not reused:
                    raise
                connection.close()  # closed by the receiver as this request went out
                connection = self._connect()
                started = time.perf_counter()
                self._send(connection, delivery)
            written = True
            status, headers, body = self._answer(connection)
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            if written and isinstance(exc, _RETRYABLE):
                return None, self._failure(delivery, started, NO_ANSWER)
            return None, self._failure(delivery, started, _described(exc, self._host, self._port))
        latency = (time.perf_counter() - started) * 1000
        location = headers.get("Location")
        answer = " ".join(body.decode("utf-8", "replace").split())[:500]
        error = None
        if 300 <= status < 400:
            error = f"redirected to {location or '(no Location)'}: not followed"
        outcome, reason = outcome_of(status, body, error)
        result = Result(
            delivery.index,
            delivery.event_id,
            delivery.type,
            delivery.source,
            status,
            200 <= status < 300,
            round(latency, 2),
            answer,
            error,
            location,
            outcome,
            reason,
        )
        return connection, result

    def _send(self, connection: http.client.HTTPConnection, delivery: Delivery) -> None:
        """Write the request, signed now.

        --timeout bounds the whole delivery, not each read: connecting and sending are given
        what is left of it, and so is every read of the answer (see _Answer)."""
        deadline = time.monotonic() + self.timeout
        if connection.sock is None:
            connection.connect()
        connection.sock.settimeout(max(deadline - time.monotonic(), 0.001))
        connection.response_class = functools.partial(_Answer, deadline=deadline)
        stamp = int(time.time()) + self.timestamp_offset
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            "Accept": "*/*; q=0.5, application/xml",
            "Cache-Control": "no-cache",
            "Stripe-Signature": sign(delivery.body, self.secret, stamp),
        }
        if self._auth:
            headers["Authorization"] = self._auth
        connection.request("POST", self._path, body=delivery.body, headers=headers)

    @staticmethod
    def _answer(connection: http.client.HTTPConnection):
        """(status, headers, the answer's first ``MAX_ANSWER`` bytes) of the request sent."""
        response = connection.getresponse()
        body = response.read(MAX_ANSWER + 1)
        if not response.isclosed():  # an answer that goes on: not read to its end, not reused
            response.close()
            connection.close()
        return response.status, response.headers, body[:MAX_ANSWER]

    @staticmethod
    def _failure(delivery: Delivery, started: float, error: str) -> Result:
        return Result(
            delivery.index,
            delivery.event_id,
            delivery.type,
            delivery.source,
            None,
            False,
            round((time.perf_counter() - started) * 1000, 2),
            "",
            error,
            None,
            "failed",
            error,
        )


def _described(exc: BaseException, host: str, port: int) -> str:
    """A failed delivery's reason, in one line: a host name DNS does not know, or a port nothing
    listens on, is said as such (not "gaierror: [Errno -2] ..." or "ConnectionRefusedError:
    [Errno 111] ..."), any other failure as its exception."""
    if isinstance(exc, ConnectionRefusedError):
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"  # an IPv6 address
        return f"{where} refused the connection (is the shop running there?)"
    if isinstance(exc, socket.gaierror):
        unknown = {getattr(socket, name, None) for name in ("EAI_NONAME", "EAI_NODATA")}
        verb = "find" if exc.errno in unknown - {None} else "look up"
        why = exc.strerror or str(exc)
        return f"cannot {verb} the host {host}" + (f" ({why})" if why else "")
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class _Answer(http.client.HTTPResponse):
    """A response read before a deadline: each read from the socket may wait only for the time
    left, so that a receiver that trickles its answer a byte at a time, or sends 100 Continue
    after 100 Continue, cannot hold a delivery longer than --timeout."""

    def __init__(self, sock, *args, deadline: float, **kwargs) -> None:
        super().__init__(_BeforeDeadline(sock, deadline), *args, **kwargs)

    def _read_status(self):
        """The final answer's status line: informational answers (1xx, 103 Early Hints as 100
        Continue) are read past, headers and all, as Stripe reads past them; 101 is final."""
        while True:
            version, status, reason = super()._read_status()
            if not 100 < status < 200 or status == 101:
                return version, status, reason
            http.client.parse_headers(self.fp)


class _BeforeDeadline:
    """The little of a socket an HTTPResponse uses (``makefile``): a reader whose every read
    waits only for the time left."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_ReadBeforeDeadline(self._sock, self._deadline))


class _ReadBeforeDeadline(io.RawIOBase):
    """The socket's own unbuffered reader (``makefile``: it keeps the socket open while the
    answer is read, even once the connection lets go of it on a "Connection: close" answer),
    each read given the time left before the deadline, and none once it has passed."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        self._sock.settimeout(left)
        return self._raw.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


# The bundled fixtures --------------------------------------------------------------------------


def list_fixtures() -> list[dict]:
    """The event fixtures bundled with bookpay, one per handled case."""
    fixtures = []
    for path in sorted(FIXTURES_DIR.glob("*.json")):
        event = json.loads(path.read_bytes())
        obj = event["data"]["object"]
        intent = obj["id"] if obj.get("object") == "payment_intent" else obj.get("payment_intent")
        fixtures.append(
            {
                "name": path.stem,
                "type": event["type"],
                "event": event["id"],
                "payment_intent": intent,
                "item_id": (obj.get("metadata") or {}).get("item_id"),
                "description": FIXTURE_NOTES.get(path.stem, ""),
                "path": str(path),
            }
        )
    return fixtures
