"""csvsafe: a batch written at once is the same bytes as its rows written one by one, formulas
neutralised wherever they are."""

from __future__ import annotations

import io
import itertools

import pytest
from hostile_orders import TEXTS

from bookpay.csvsafe import FORMULA_START, SafeWriter

CELLS = (*TEXTS, 0, 2300, -5, 1.5, "2026-01-01T00:00:00.000Z", "ord_0123", "a-b", "x=y")


def one_by_one(rows) -> str:
    out = io.StringIO()
    writer = SafeWriter(out, ["a", "b", "c"])
    for row in rows:
        writer.writerow(row)
    return out.getvalue()


def batched(rows) -> str:
    out = io.StringIO()
    SafeWriter(out, ["a", "b", "c"]).writerows(rows)
    return out.getvalue()


def test_a_batch_is_the_same_bytes_as_its_rows_one_by_one():
    rows = [list(cells) for cells in itertools.product(CELLS, repeat=3)]
    assert batched(rows) == one_by_one(rows)
    for row in rows:  # and each alone, where nothing else in the batch takes the careful path
        assert batched([row]) == one_by_one([row])


@pytest.mark.parametrize("start", sorted(FORMULA_START))
@pytest.mark.parametrize("column", [0, 1, 2])
def test_a_formula_in_any_cell_of_a_clean_batch_is_neutralised(start, column):
    rows = [["ord_1", "reader@example.com", "2026-01-01T00:00:00.000Z"] for _ in range(50)]
    rows[17][column] = f'{start}HYPERLINK("http://evil")'
    text = batched(rows)
    assert text == one_by_one(rows)
    assert f"'{start}HYPERLINK" in text


def test_a_clean_batch_is_written_as_the_csv_module_writes_it():
    rows = [["ord_1", 2300, "2026-01-01T00:00:00.000Z"], ["ord_2", None, "a-b,c"]]
    assert batched(rows) == 'a,b,c\r\nord_1,2300,2026-01-01T00:00:00.000Z\r\nord_2,,"a-b,c"\r\n'


def test_unquoted_text_is_the_csv_modules_or_none():
    """``_unquoted`` makes the csv module's text where no cell needs quoting, and declines
    (None) every row that does: cells of special characters, numbers, None, in random rows."""
    import csv
    import random

    from bookpay.csvsafe import _unquoted

    chars = ["a", "é", " ", ",", '"', "\r", "\n", "'", "=", "-", "\t", "\x00", "\u2028", "\\"]
    pick = random.Random(12)
    made = 0
    for _ in range(20000):
        cells = [None, "", 0, -1, 1.5, True, *("".join(pick.choices(chars, k=3)),) * 4]
        row = pick.choices(cells, k=pick.randint(2, 4))
        expected = io.StringIO()
        csv.writer(expected, lineterminator="\r\n").writerow(row)
        text = _unquoted([row])
        needs_quotes = any(isinstance(c, str) and any(q in c for q in ',"\r\n') for c in row)
        assert text is None if needs_quotes else text == expected.getvalue(), row
        made += text is not None
    assert made > 5000
    assert _unquoted([["a", "b"], ["c"]]) is None  # rows of other widths
    assert _unquoted([[""]]) is None  # a lone empty cell, which the module quotes


@pytest.mark.parametrize("start", ["\uff1d", "\uff0b", "\uff0d", "\uff20"])
def test_full_width_formula_characters_are_neutralised_too(start):
    """Excel in East Asian locales reads full-width =+-@ as those (OWASP's testing guide names
    them): in a batch of plain cells, in a quoted cell, and alone; a negative number stays a
    number."""
    rows = [["ord_1", "reader@example.com", -1500] for _ in range(20)]
    rows[3][1] = f"{start}HYPERLINK(1)"
    rows[7][0] = f"{start}1,2"  # quoted by the csv module
    text = batched(rows)
    assert text == one_by_one(rows)
    assert f",'{start}HYPERLINK(1)," in text and f'"\'{start}1,2"' in text
    assert text.count(",-1500\r\n") == 20
    assert one_by_one([[start, 1, 2]]).endswith(f"'{start},1,2\r\n")


def semicolon_cells(text: str) -> list[str]:
    """The cells a spreadsheet splitting on ``;`` starts (Excel opens a ``.csv`` with the list
    separator of continental European locales): a row at every line break, even one inside our
    quotes, a cell at every ``;``, its opening quotes skipped."""
    return [
        cell.lstrip('"')
        for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        for cell in line.split(";")
    ]


@pytest.mark.parametrize("write", [one_by_one, batched])
def test_a_formula_after_a_semicolon_or_a_line_break_inside_a_cell_is_neutralised(write):
    """A shipping name ``Ann;=cmd|...`` is two cells to a ``;``-separated reader, the second a
    formula; so is text after a line break in a quoted cell. Each gets its single quote."""
    rows = [
        ["ord_1", "Ann;=cmd|' /C calc'!A0;", "1 Main;-2+3"],
        ["ord_2", 'Bo;"@SUM(1)";x', "line\n=HYPERLINK(1)\r+1"],
        ["ord_3", "a; =1", "plain; text"],
    ]
    text = write(rows)
    assert text == one_by_one(rows)
    started = [cell for cell in semicolon_cells(text) if cell[:1] in FORMULA_START]
    assert started == [], started
    assert "Ann;'=cmd" in text and "Main;'-2+3" in text and "line\n'=HYPERLINK(1)\r'+1" in text
    assert "a; =1" in text and "plain; text" in text  # nothing else changes


def test_no_cell_of_random_text_starts_a_formula_for_either_separator():
    """Random cells of separators, quotes, line breaks and formula characters, written as a
    batch: read with ``,`` (the csv module) or split on ``;``, no cell starts a formula, and the
    batch is the same bytes as its rows one by one. (Each row starts with an order id: a row's
    first cell keeps its quotes when split on ``;`` as with ``,``, which the split above does not
    model.)"""
    import csv
    import random

    chars = ["a", ";", ",", '"', "\n", "\r", " ", "=", "+", "-", "@", "\t", "\uff1d", "'"]
    pick = random.Random(7)
    for _ in range(300):
        rows = [
            ["ord_1", *("".join(pick.choices(chars, k=pick.randint(0, 6))) for _ in range(2))]
            for _ in range(pick.randint(1, 8))
        ]
        text = batched(rows)
        assert text == one_by_one(rows)
        read = [cell for row in csv.reader(io.StringIO(text, newline="")) for cell in row]
        assert not [cell for cell in read if cell[:1] in FORMULA_START], rows
        assert not [c for c in semicolon_cells(text) if c[:1] in FORMULA_START], rows
