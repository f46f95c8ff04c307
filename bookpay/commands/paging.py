"""Paging for list commands: a page costs the same however long the list, `--all` streams.

`orders list` and `intent list` share these options and this output: ``--limit`` (default 50),
a cursor ``--starting-after ID`` (the last id of the previous page, as Stripe's API does), and
``--all``, which streams every match instead: JSON as one array written item by item, tables
1,000 rows at a time. Nothing is held in memory beyond one chunk.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime, timedelta, timezone
from itertools import chain, islice
from typing import Annotated, Any

import typer

from bookpay.commands.output import Cell, info, print_table
from bookpay.terminal import json_safe

PAGE = 50
CHUNK = 1000

EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(9999, 1, 1, tzinfo=timezone.utc)
_END = object()
MAX_LIMIT = 1_000_000  # more than that is `orders export`'s job
LimitOption = Annotated[
    int,
    typer.Option(
        "--limit", min=1, max=MAX_LIMIT, help="How many to show (one page).", show_default=True
    ),
]


def not_blank(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
    """An option's value that may not be blank: an empty shell variable (``--email "$E"``,
    ``--starting-after "$LAST"``, ``--card "$CARD"``) is a mistake, never "no filter", "the
    first page" or "the default card"."""
    if value is None or ctx.resilient_parsing or value.strip():
        return value
    what = {
        "starting_after": "an id",
        "email": "an e-mail address",
        "return_url": "a URL",
        "card": "a card number or a pm_ token",
        "to": "a URL",
        "host": "an address to listen on",
    }
    what = what.get(param.name, "a value")
    raise typer.BadParameter(f"expected {what}, got {value!r}.")


def once(ctx: typer.Context, param: typer.CallbackParam, values: list | None):
    """A filter given at most once (its value is then ``only(values)``): ``--status paid
    --status refunded`` would otherwise list only the refunded ones, as if the first had not
    been given."""
    if values and len(values) > 1 and not ctx.resilient_parsing:
        shown = ", ".join(str(getattr(value, "value", value)) for value in values)
        raise typer.BadParameter(f"give it once (one status a list), got {shown}.")
    return values


def only(values: list | None):
    """The one value of an option that ``once`` checked, or None."""
    return values[0] if values else None


StartingAfterOption = Annotated[
    str | None,
    typer.Option(
        "--starting-after",
        metavar="ID",
        help="Show the page after this id (the last one of the previous page).",
        callback=not_blank,
    ),
]
AllOption = Annotated[
    bool, typer.Option("--all", help="Stream every match instead of one page (ignores --limit).")
]
SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="DATE",
        help="Only those created at or after DATE (YYYY-MM-DD or ISO 8601; UTC unless it says).",
    ),
]
UntilOption = Annotated[
    str | None,
    typer.Option(
        "--until",
        metavar="DATE",
        help="Only those created before DATE (a bare date includes that whole day).",
    ),
]
EmailOption = Annotated[
    str | None,
    typer.Option(
        "--email",
        help="Only those for this e-mail address (A-Z in any case, other letters as given).",
        callback=not_blank,
    ),
]


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def same_email(one: str, other: str) -> bool:
    """Whether two e-mail addresses are the same for ``--email``: in any case of A to Z, other
    letters as given (as the ledger compares them, on SQLite and PostgreSQL alike)."""
    return one.translate(_ASCII_LOWER) == other.translate(_ASCII_LOWER)


def parse_moment(text: str, option: str, *, end_of_day: bool = False) -> datetime:
    """A UTC datetime from ``YYYY-MM-DD`` or ISO 8601; a bare date with ``end_of_day`` is the
    start of the next day, so ``--until 2026-01-31`` includes the 31st, and a week with no day
    (``2026-W05``, as `report sales --by week` names it) the start of the next week."""
    written = text.strip().upper()  # RFC 3339 allows a lower-case t and z (...t09:30:00z)
    try:
        moment = datetime.fromisoformat(written.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a date: use YYYY-MM-DD or an ISO 8601 time such as "
            "2026-01-31T09:30:00Z.",
            param_hint=option,
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    # Stripe's times are Unix seconds, from 1970; the far end leaves room for a report's days
    # and months to be counted past a time without leaving the calendar.
    try:
        if end_of_day and _bare_date(written):
            week = re.fullmatch(r"[0-9]{4}-?W[0-9]{2}", written)
            moment += timedelta(days=7 if week else 1)
        moment = moment.astimezone(timezone.utc)
        # An --until is where a period ends, so 9999-01-01 (--until 9998-12-31) is in range.
        in_range = moment >= EARLIEST and (moment <= LATEST if end_of_day else moment < LATEST)
    except OverflowError:  # a few hours' offset from year 1 or 9999
        in_range = False
    if not in_range:
        raise typer.BadParameter(
            f"{text!r} is out of range: use a time from 1970 to 9998.", param_hint=option
        )
    return moment


def _bare_date(text: str) -> bool:
    """Whether ``text`` is a date with no time: ``2026-01-31``, or ``20260131`` (ISO 8601's
    basic form, which Python reads too), or a week's (``2026-W05``, ``2026-W05-3``)."""
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def moments(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    # An empty DATE is a mistake (an unset shell variable), never "no limit".
    start = parse_moment(since, "--since") if since is not None else None
    end = parse_moment(until, "--until", end_of_day=True) if until is not None else None
    if start and end and start >= end:
        raise typer.BadParameter("--since must be earlier than --until.", param_hint="--since")
    return start, end


def emit(
    items: Iterable[Any],
    *,
    as_json: bool,
    columns: Sequence[str],
    row: Callable[[Any], Sequence[Cell]],
    record: Callable[[Any], Any] = lambda item: item,
    justify_right: Sequence[str] = (),
) -> int:
    """Write ``items`` as a JSON array or as tables, streaming; how many there were."""
    count = 0
    if as_json:
        # "[" only once the first item (or the end) is read: a list that fails at once (an
        # unknown cursor, Stripe unreachable) leaves stdout empty, not a lone "[".
        items = iter(items)
        first = next(items, _END)
        out = sys.stdout
        out.write("[")
        for item in items if first is _END else chain([first], items):
            out.write(("," if count else "") + "\n  ")
            out.write(json_safe(json.dumps(record(item), ensure_ascii=False, default=str)))
            count += 1
        out.write("\n]\n" if count else "]\n")
        return count
    for chunk in chunks(items, CHUNK):
        print_table(columns, [row(item) for item in chunk], justify_right=justify_right)
        count += len(chunk)
    return count


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def nothing(kind: str, starting_after: str | None, status, other_filters) -> str:
    """What a list that matched nothing says on stderr, its stdout left empty (``kind``: the
    items' plural noun; ``status``: the --status given; ``other_filters``: any other)."""
    status = getattr(status, "value", status)
    if starting_after:
        return f"No more {kind} after that one."
    if status and not other_filters:
        return f"No {kind} with status {status}."
    return f"No {kind} match." if status or other_filters else f"No {kind} yet."


def page_note(kind: str, shown: list[Any], more: bool, id_of: Callable[[Any], str]) -> None:
    """On stderr, how to get the next page when there is one (``kind``: one item's noun)."""
    if more and shown:
        noun = kind if len(shown) == 1 else f"{kind}s"
        info(
            f"Showing {len(shown)} {noun}. Next page: --starting-after {id_of(shown[-1])} "
            "(or --all for every one)."
        )
