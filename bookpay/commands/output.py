"""How the CLI prints: data to stdout, diagnostics to stderr, JSON when asked.

Rich is imported only when something is drawn for a person at a terminal; when stdout is a pipe
or a file, tables are plain aligned text (easy to grep, and quick to start), like `gh` and `docker`
do. Rich itself honours NO_COLOR and turns colour off when the stream is not a terminal.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer

# Every read command's --json flag.
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

# A cell is plain text, or (text, rich style) where colour helps a reader at a terminal.
Cell = str | tuple[str, str]


def emit_json(data: Any) -> None:
    """Plain JSON on stdout and nothing else there."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def is_terminal(stream=None) -> bool:
    stream = stream or sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _text(cell: Cell) -> str:
    return cell[0] if isinstance(cell, tuple) else cell


def print_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    *,
    title: str | None = None,
    justify_right: Sequence[str] = (),
) -> None:
    if is_terminal():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for index, column in enumerate(columns):
            # The first column holds the id a reader copies: never wrap it across lines.
            justify = "right" if column in justify_right else "left"
            table.add_column(column, justify=justify, no_wrap=index == 0)
        for row in rows:
            table.add_row(
                *(
                    f"[{c[1]}]{_escape(c[0])}[/]" if isinstance(c, tuple) else _escape(c)
                    for c in row
                )
            )
        Console().print(table)
        return
    texts = [[_text(cell) for cell in row] for row in rows]
    widths = [
        max([len(column)] + [len(row[i]) for row in texts]) for i, column in enumerate(columns)
    ]
    lines = []
    if title:
        lines.append(title)
    for row in [list(columns), *texts]:
        cells = [
            cell.rjust(width) if columns[i] in justify_right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    sys.stdout.write("\n".join(lines) + "\n")


def print_fields(fields: Sequence[tuple[str, Cell]], *, title: str | None = None) -> None:
    """A two-column "label: value" view of one object."""
    if is_terminal():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, title_justify="left", show_header=False, box=None)
        table.add_column(style="bold")
        table.add_column()
        for label, value in fields:
            shown = (
                f"[{value[1]}]{_escape(value[0])}[/]"
                if isinstance(value, tuple)
                else _escape(value)
            )
            table.add_row(_escape(label), shown)
        Console().print(table)
        return
    width = max((len(label) for label, _ in fields), default=0)
    lines = [title] if title else []
    lines += [f"{label + ':':<{width + 1}}  {_text(value)}".rstrip() for label, value in fields]
    sys.stdout.write("\n".join(lines) + "\n")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def info(message: str) -> None:
    """A diagnostic for the person at the terminal, on stderr."""
    sys.stderr.write(message + "\n")
