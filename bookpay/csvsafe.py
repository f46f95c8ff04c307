"""CSV that a spreadsheet opens as data, never as formulas: every CSV bookpay writes uses this.

A cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a
formula by Excel, LibreOffice and Google Sheets, so an e-mail address such as
``=cmd|'/C calc'!A0@evil.example`` would run when the export is opened. Their full-width forms
(U+FF1D, U+FF0B, U+FF0D and U+FF20) are too, by Excel in East Asian locales, which reads them as
the ASCII ones: OWASP's testing guide names them beside the others. OWASP's advice (CSV
Injection) is to prefix such a cell with a single quote, which makes it text; the csv module does
the quoting. Numbers are written as numbers: only text from outside can carry a formula.

A cell can also start inside one of ours. Excel opens a ``.csv`` with the list separator of the
user's locale, which is ``;`` across most of continental Europe: a shipping name
``Ann;=cmd|'/C calc'!A0`` is then two cells, the second a formula, and the csv module's quotes do
not help (its quote is no longer at the start of a cell). A reader that splits on ``;`` also
ends a row at a line break inside our quoted cell. So a formula character after a ``;`` or a
line break inside text (quotes between them skipped) is prefixed with a single quote too.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from typing import IO, Any

FORMULA_START = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")  # and full-width =+-@
# Where a cell of the csv module's output may begin with one of FORMULA_START: after the comma
# or line break before it, bare or inside its opening quote. (A cell holding a CR is always
# quoted, CR being in the line terminator, so a bare CR is the end of a row, not a cell.) This
# also matches inside some quoted cells ("a,=b", a line break then "-") and negative numbers:
# those only take the careful path. It never misses a cell that starts with one. The first
# cell of a text has nothing before it: ``SafeWriter.writerows`` puts a line break there.
_MAYBE_FORMULA = re.compile(r'[,;\r\n]"*[=+\-@\t\uff1d\uff0b\uff0d\uff20]|[,\n]"\r')
# A formula character where a ``;``-separated reader starts a cell inside one of ours: after a
# ``;`` or a line break, past any quotes (``neutralise`` puts its single quote there).
_INNER_FORMULA = re.compile('([;\r\n]"*)(?=[=+\\-@\t\uff1d\uff0b\uff0d\uff20])')


def _may_start_a_formula(text: str) -> bool:
    """``_MAYBE_FORMULA.search(text)``, in a few substring searches for the usual text.

    A bare cell starting with a formula character leaves it right after a comma or a line
    break: two-character searches (C, and quick where the character is rare) find it. Only a
    text with a quoted cell needs the regular expression, for cells inside their quotes.
    """
    for char in "=+-@\t\uff1d\uff0b\uff0d\uff20":
        if char in text and ("," + char in text or "\n" + char in text or ";" + char in text):
            return True
    return '"' in text and _MAYBE_FORMULA.search(text) is not None


def neutralise(value: Any) -> Any:
    """``value``, made inert if it is text a spreadsheet would read as a formula: at its start,
    or after a ``;`` or a line break in it (where a ``;``-separated reader starts a cell)."""
    if not isinstance(value, str):
        return value
    if value[:1] in FORMULA_START:
        value = "'" + value
    if ";" in value or "\n" in value or "\r" in value:
        value = _INNER_FORMULA.sub("\\1'", value)
    return value


class SafeWriter:
    """``csv.writer`` whose every cell passes through ``neutralise``."""

    def __init__(self, stream: IO[str], header: Sequence[str]) -> None:
        # RFC 4180's CRLF: with it the csv module also quotes a cell holding a lone CR.
        self._stream = stream
        self._writer = csv.writer(stream, lineterminator="\r\n")
        self._writer.writerow([neutralise(name) for name in header])

    def writerow(self, row: Iterable[Any]) -> None:
        # neutralise() only for text that may need it: this runs for every cell of exports of
        # millions of rows.
        start = FORMULA_START
        self._writer.writerow(
            [
                neutralise(v)
                if v.__class__ is str and (v[:1] in start or ";" in v or "\n" in v or "\r" in v)
                else v
                for v in row
            ]
        )

    def writerows(self, rows: Sequence[Sequence[Any]]) -> None:
        """The same bytes as ``writerow`` for each row, faster for a batch of an export.

        The batch is made into text without the csv module where no cell needs its quoting
        (``_unquoted``), else by it into a buffer (C code either way), and that text searched
        for a cell that may start a formula (C code too). Only when one may be there is the
        batch written again cell by cell through ``neutralise``, so the usual batch costs little
        Python work per row and none per cell.
        """
        text = _unquoted(rows)
        if text is None:
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\r\n").writerows(rows)
            text = buffer.getvalue()
        # The search for formulas needs a line break before the first cell.
        if not _may_start_a_formula("\n" + text):
            self._stream.write(text)
            return
        for row in rows:
            self.writerow(row)


def _unquoted(rows: Sequence[Sequence[Any]]) -> str | None:
    """The csv module's text for ``rows`` where none of their cells needs quoting, else None.

    The csv module writes None as an empty cell and anything else but text as ``str()`` does,
    so a row is ``"%s,%s,...\r\n" % row`` with None made empty: one C call per row instead of
    the module's character-by-character scan of every cell. It quotes a cell holding the
    delimiter, a quote or a line break: the text then has more commas, line breaks or any
    quote at all than its rows and columns account for, and this returns None. (A lone empty
    cell is quoted too: rows of one cell are left to the module.)
    """
    if not rows or len(rows[0]) < 2:
        return None
    width = len(rows[0])
    line = ",".join(("%s",) * width) + "\r\n"
    try:
        text = "".join([line % tuple(["" if v is None else v for v in row]) for row in rows])
    except TypeError:  # a row of another width
        return None
    count = len(rows)
    if (
        '"' in text
        or text.count(",") != (width - 1) * count
        or text.count("\n") != count
        or text.count("\r") != count
    ):
        return None
    return text
