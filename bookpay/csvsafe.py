"""CSV that a spreadsheet opens as data, never as formulas: every CSV bookpay writes uses this.

A cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a
formula by Excel, LibreOffice and Google Sheets, so an e-mail address such as
``=cmd|'/C calc'!A0@evil.example`` would run when the export is opened. OWASP's advice (CSV
Injection) is to prefix such a cell with a single quote, which makes it text; the csv module does
the quoting. Numbers are written as numbers: only text from outside can carry a formula.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from typing import IO, Any

FORMULA_START = frozenset("=+-@\t\r")
# Where a cell of the csv module's output may begin with one of FORMULA_START: after the comma
# or line break before it, bare or inside its opening quote. (A cell holding a CR is always
# quoted, CR being in the line terminator, so a bare CR is the end of a row, not a cell.) This
# also matches inside some quoted cells ("a,=b", a line break then "-") and negative numbers:
# those only take the careful path. It never misses a cell that starts with one. The first
# cell of a text has nothing before it: ``SafeWriter.writerows`` puts a line break there.
_MAYBE_FORMULA = re.compile(r'[,\n](?:[=+\-@\t]|"[=+\-@\t\r])')


def _may_start_a_formula(text: str) -> bool:
    """``_MAYBE_FORMULA.search(text)``, in a few substring searches for the usual text.

    A bare cell starting with a formula character leaves it right after a comma or a line
    break: two-character searches (C, and quick where the character is rare) find it. Only a
    text with a quoted cell needs the regular expression, for cells inside their quotes.
    """
    for char in "=+-@\t":
        if char in text and ("," + char in text or "\n" + char in text):
            return True
    return '"' in text and _MAYBE_FORMULA.search(text) is not None


def neutralise(value: Any) -> Any:
    """``value``, made inert if it is text a spreadsheet would read as a formula."""
    if isinstance(value, str) and value[:1] in FORMULA_START:
        return "'" + value
    return value


class SafeWriter:
    """``csv.writer`` whose every cell passes through ``neutralise``."""

    def __init__(self, stream: IO[str], header: Sequence[str]) -> None:
        # RFC 4180's CRLF: with it the csv module also quotes a cell holding a lone CR.
        self._stream = stream
        self._writer = csv.writer(stream, lineterminator="\r\n")
        self._writer.writerow([neutralise(name) for name in header])

    def writerow(self, row: Iterable[Any]) -> None:
        # neutralise(), inlined: this runs for every cell of exports of millions of rows.
        start = FORMULA_START
        self._writer.writerow(
            ["'" + v if v.__class__ is str and v[:1] in start else v for v in row]
        )

    def writerows(self, rows: Sequence[Sequence[Any]]) -> None:
        """The same bytes as ``writerow`` for each row, faster for a batch of an export.

        The batch is written as is to a buffer (the csv module's C code) and that text searched
        for a cell that may start a formula (C code too). Only when one may be there is the
        batch written again cell by cell through ``neutralise``, so the usual batch costs no
        Python work per cell.
        """
        buffer = io.StringIO()
        buffer.write("\n")  # what the search for formulas needs before the first cell
        csv.writer(buffer, lineterminator="\r\n").writerows(rows)
        text = buffer.getvalue()
        if not _may_start_a_formula(text):
            self._stream.write(text[1:])
            return
        for row in rows:
            self.writerow(row)
