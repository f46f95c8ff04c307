"""How the CLI prints: data to stdout, diagnostics to stderr, JSON when asked.

Tables and detail views are laid out here, the same way at a terminal and in a pipe: columns
separated by two spaces, as `gh` and `docker` print them. In a pipe nothing is wrapped (one
record per line, easy to grep). At a terminal the layout fits the width: the columns that
identify or classify (ids, statuses, event types, amounts, times) are never cut or wrapped; free
text (a book's title, a receiver's answer) wraps inside its column, or moves to an indented line
under its row when the rest leaves it too little room. Rich is imported only to colour a
terminal's output (it honours NO_COLOR and TERM=dumb).

Every cell, label and message goes through ``printable``: text from outside never reaches the
terminal with its control characters.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Annotated, Any

import typer

from bookpay.terminal import printable

# Every read command's --json flag.
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

# A cell is plain text, or (text, rich style) where colour helps a reader at a terminal.
Cell = str | tuple[str, str]

SEPARATOR = "  "
MIN_WRAP = 24  # narrower than this, free text moves under its row instead of wrapping
DETAIL_INDENT = "    "


def emit_json(data: Any) -> None:
    """Plain JSON on stdout and nothing else there."""
    import json  # only --json needs it: a table starts faster without

    from bookpay.terminal import json_safe

    sys.stdout.write(json_safe(json.dumps(data, indent=2, ensure_ascii=False, default=str)) + "\n")


# The most characters of one piece of outside text a table or a detail view shows (JSON has it
# all): a 10,000-character description must not fill the screen or push the table apart.
MAX_TEXT = 200


def clipped(text: object, limit: int = MAX_TEXT) -> str:
    """``text`` cut after ``limit`` of its characters, with how many it has, then made
    printable: ``BBB… (10,000 characters)``. The value is counted and cut, not its escapes: a
    control character is one character however long its escape is, and a cut never falls
    inside an escape."""
    value = "" if text is None else text if isinstance(text, str) else str(text)
    if len(value) <= limit:
        return printable(value)
    return f"{printable(value[:limit])}… ({len(value):,} characters)"


def is_terminal(stream=None) -> bool:
    stream = stream or sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def info(message: str) -> None:
    """A diagnostic for the person at the terminal, on stderr."""
    sys.stderr.write(printable(message, keep_newlines=True) + "\n")


# Times -------------------------------------------------------------------------------------------


# Whether this invocation shows times in UTC (`bookpay --utc`); the root callback sets it.
_UTC: ContextVar[bool] = ContextVar("bookpay_utc", default=False)


def show_times_in_utc(utc: bool) -> None:
    _UTC.set(utc)


def _wants_utc() -> bool:
    return _UTC.get()


def human_time(value: int | float | str | None, *, utc: bool | None = None) -> str:
    """One form for every time shown to a person: ``2024-05-01 14:03``, local or (--utc) UTC.

    ``value`` is a Unix timestamp (Stripe's) or an ISO 8601 string (the ledger's); JSON and CSV
    keep the ISO 8601 UTC form, this is only for tables and detail views.
    """
    from datetime import datetime, timezone

    if value is None or value == "":
        return "-"
    try:
        if isinstance(value, (int, float)):
            moment = datetime.fromtimestamp(value, tz=timezone.utc)
        else:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
    except (ValueError, OverflowError, OSError):
        return printable(str(value))
    use_utc = _wants_utc() if utc is None else utc
    suffix = ""
    try:
        moment = moment.astimezone(timezone.utc) if use_utc else moment.astimezone()
    except OverflowError:  # the local time is past the calendar's end (year 1 or 9999)
        try:
            moment, suffix = moment.astimezone(timezone.utc), " UTC"
        except OverflowError:  # so is UTC: say it as it was given
            return printable(str(value))
    # Not strftime: its %Y writes year 1 as "1" (glibc), not "0001".
    return moment.replace(tzinfo=None).isoformat(sep=" ", timespec="minutes") + suffix


# Layout ------------------------------------------------------------------------------------------


def width_of(text: str) -> int:
    """Columns a string takes at a terminal (wide East Asian characters take two)."""
    if text.isascii():
        return len(text)
    import unicodedata

    total = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        total += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return total


def _pad(text: str, width: int, right: bool) -> str:
    gap = " " * max(0, width - width_of(text))
    return gap + text if right else text + gap


def wrap(text: str, width: int, *, break_words: bool = True) -> list[str]:
    """Lines of at most ``width`` columns, broken at spaces; a longer word is cut only if asked."""
    width = max(1, width)
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        candidate = f"{line} {word}" if line else word
        if width_of(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = word
        while break_words and width_of(line) > width:
            cut = 0
            while cut < len(line) and width_of(line[: cut + 1]) <= width:
                cut += 1
            lines.append(line[: max(cut, 1)])
            line = line[max(cut, 1) :]
    lines.append(line)
    return lines


def _terminal_width() -> int | None:
    """The terminal's width, or None (no limit) when stdout is not a terminal."""
    if not is_terminal():
        return None
    from rich.console import Console

    return Console().width


# A laid-out line: segments of (text, rich style).
Line = list[tuple[str, str]]


def _emit(lines: list[Line]) -> None:
    if not is_terminal():
        sys.stdout.write("".join("".join(t for t, _ in line).rstrip() + "\n" for line in lines))
        return
    from rich.console import Console
    from rich.text import Text

    texts = []
    for line in lines:
        text = Text()
        for segment, style in line:
            text.append(segment, style=style or None)
        text.rstrip()
        texts.append(text)
    Console(highlight=False).print(Text("\n").join(texts), soft_wrap=True)


def _split(cell: Cell) -> tuple[str, str]:
    text, style = cell if isinstance(cell, tuple) else (cell, "")
    return printable(text if text is not None else ""), style


def print_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    *,
    title: str | None = None,
    justify_right: Sequence[str] = (),
    wrap_columns: Sequence[str] = (),
    detail_columns: Sequence[str] = (),
    width: int | None = None,
) -> None:
    """Rows under a header, aligned, fitted to the terminal's width.

    Columns are whole and on one line, except that when the table is too wide ``wrap_columns``
    (free text) wrap inside their column, and ``detail_columns`` (in the order given; then any
    free text not listed) move to an indented "Column: value" line under their row, until the
    rest fits. Cells moved under a row are still never cut; only free text wraps.
    """
    width = width if width is not None else _terminal_width()
    headers = [printable(c) for c in columns]
    cells = [[_split(cell) for cell in row] for row in rows]
    natural = [
        max([width_of(h)] + [width_of(row[i][0]) for row in cells]) for i, h in enumerate(headers)
    ]
    free = [i for i, c in enumerate(columns) if c in wrap_columns]
    movable = [i for i, c in enumerate(columns) if c in detail_columns]
    widths = list(natural)
    below: list[int] = []  # columns moved under their row

    def needed(kept: list[int]) -> int:
        return sum(MIN_WRAP if i in free else natural[i] for i in kept) + len(SEPARATOR) * (
            len(kept) - 1
        )

    shown = list(range(len(columns)))
    if width is not None and sum(natural) + len(SEPARATOR) * (len(columns) - 1) > width:
        # Move columns under their rows, in the order given, until the rest fits.
        for i in [*movable, *(i for i in free if i not in movable)]:
            if needed(shown) <= width:
                break
            below.append(i)
            shown.remove(i)
        wrapped = [i for i in free if i in shown]
        room = width - sum(natural[i] for i in shown if i not in free)
        room -= len(SEPARATOR) * (len(shown) - 1)
        wanted = sum(natural[i] for i in wrapped)
        for i in wrapped:  # share the room among the free columns, by what they hold
            widths[i] = max(MIN_WRAP, min(natural[i], room * natural[i] // wanted))
    right = {i for i, c in enumerate(columns) if c in justify_right}
    lines: list[Line] = []
    if title:
        lines.append([(printable(title), "bold")])
    lines.append(
        [
            (("" if n == 0 else SEPARATOR) + _pad(headers[i], widths[i], i in right), "bold")
            for n, i in enumerate(shown)
        ]
    )
    for row in cells:
        parts = {i: wrap(row[i][0], widths[i]) if i in free else [row[i][0]] for i in shown}
        for k in range(max(len(p) for p in parts.values())):
            line: Line = []
            for n, i in enumerate(shown):
                piece = parts[i][k] if k < len(parts[i]) else ""
                line.append((("" if n == 0 else SEPARATOR), ""))
                line.append((_pad(piece, widths[i], i in right), row[i][1]))
            lines.append(line)
        for i in sorted(below):
            if not row[i][0]:
                continue
            label = f"{headers[i]}: "
            room = (width or 0) - len(DETAIL_INDENT) - width_of(label)
            pieces = wrap(row[i][0], room) if i in free else [row[i][0]]
            for k, piece in enumerate(pieces):
                lead = DETAIL_INDENT + (label if k == 0 else " " * width_of(label))
                lines.append([(lead, "dim" if k == 0 else ""), (piece, row[i][1])])
    _emit(lines)


def print_lines(lines: Sequence[str], *, indent: int = 2) -> None:
    """Lines of text on stdout; at a terminal a long one wraps at spaces, indented under itself."""
    width = _terminal_width()
    out: list[Line] = []
    for line in lines:
        text = printable(line)
        lead = len(text) - len(text.lstrip(" "))
        pieces = [text] if width is None else wrap(text, width - lead - indent, break_words=False)
        for k, piece in enumerate(pieces):
            out.append([(" " * (lead + indent) + piece.lstrip(" ") if k else piece, "")])
    _emit(out)


def print_fields(
    fields: Sequence[tuple[str, Cell]], *, title: str | None = None, width: int | None = None
) -> None:
    """A two-column "label: value" view of one object.

    At a terminal a long value wraps at spaces under itself; a word (an id, a URL) is never cut.
    """
    width = width if width is not None else _terminal_width()
    labels = [printable(label) + ":" for label, _ in fields]
    indent = max((width_of(label) for label in labels), default=0) + len(SEPARATOR)
    lines: list[Line] = [[(printable(title), "bold")]] if title else []
    for label, (_, value) in zip(labels, fields, strict=True):
        text, style = _split(value)
        pieces = [text] if width is None else wrap(text, width - indent, break_words=False)
        for k, piece in enumerate(pieces):
            lead = _pad(label, indent, False) if k == 0 else " " * indent
            lines.append([(lead, "bold" if k == 0 else ""), (piece, style)])
    _emit(lines)
