"""CSV that a spreadsheet opens as data, never as formulas: every CSV bookpay writes uses this.

A cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a
formula by Excel, LibreOffice and Google Sheets, so an e-mail address such as
``=cmd|'/C calc'!A0@evil.example`` would run when the export is opened. OWASP's advice (CSV
Injection) is to prefix such a cell with a single quote, which makes it text; the csv module does
the quoting. Numbers are written as numbers: only text from outside can carry a formula.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from typing import IO, Any

FORMULA_START = frozenset("=+-@\t\r")


def neutralise(value: Any) -> Any:
    """``value``, made inert if it is text a spreadsheet would read as a formula."""
    if isinstance(value, str) and value[:1] in FORMULA_START:
        return "'" + value
    return value


class SafeWriter:
    """``csv.writer`` whose every cell passes through ``neutralise``."""

    def __init__(self, stream: IO[str], header: Sequence[str]) -> None:
        # RFC 4180's CRLF: with it the csv module also quotes a cell holding a lone CR.
        self._writer = csv.writer(stream, lineterminator="\r\n")
        self._writer.writerow([neutralise(name) for name in header])

    def writerow(self, row: Iterable[Any]) -> None:
        # neutralise(), inlined: this runs for every cell of exports of millions of rows.
        start = FORMULA_START
        self._writer.writerow(
            ["'" + v if v.__class__ is str and v[:1] in start else v for v in row]
        )
