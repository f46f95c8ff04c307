import json

import pytest

from bookpay.catalog import Catalog
from bookpay.covers import cover_svg
from bookpay.errors import ConfigError, NotFound
from bookpay.money import (
    MIN_AMOUNTS,
    amount_problem,
    charge_problem,
    exponent,
    format_amount,
    min_amount,
)


def test_default_catalog_is_the_original_shop():
    books = [(b.id, b.title, b.author, b.amount, b.currency) for b in Catalog.default()]
    assert books == [
        ("1", "The Art of Doing Science and Engineering", "Richard Hamming", 2300, "usd"),
        ("2", "The Making of Prince of Persia: Journals 1985-1993", "Jordan Mechner", 2500, "usd"),
        (
            "3",
            "Working in Public: The Making and Maintenance of Open Source",
            "Nadia Eghbal",
            2800,
            "usd",
        ),
    ]
    assert all(b.description.endswith(".") for b in Catalog.default())


def test_unknown_book_names_the_list_command():
    with pytest.raises(NotFound) as info:
        Catalog.default().get("9")
    assert "bookpay catalog list" in info.value.hint


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (2300, "usd", "$23.00"),
        (5, "usd", "$0.05"),
        (2300, "jpy", "¥2,300"),
        (123456, "eur", "€1,234.56"),
        (1500, "chf", "15.00 CHF"),
        (1234, "kwd", "1.234 KWD"),
        (500, "krw", "500 KRW"),
        # ISK and UGX: whole units for people, whatever Stripe's two-decimal form (250000 is
        # 2,500 ISK); an amount Stripe never charges (Stripe Tax's 371.20 ISK) keeps its cents.
        (250000, "isk", "2,500 ISK"),
        (-250000, "isk", "-2,500 ISK"),
        (100, "UGX", "1 UGX"),
        (0, "isk", "0 ISK"),
        (37120, "isk", "371.20 ISK"),
        (-5, "ugx", "-0.05 UGX"),
    ],
)
def test_format_amount(amount, currency, text):
    assert format_amount(amount, currency) == text


def test_isk_and_ugx_keep_stripes_two_decimals_for_the_api():
    """Only what people read drops the decimals: Stripe's amounts, and what checks them, stay
    in hundredths (its "Special cases")."""
    assert (exponent("isk"), exponent("ugx")) == (2, 2)
    assert amount_problem(1050, "isk") == (
        "must end in 00: Stripe charges ISK in whole units, written with two decimals"
        " (500 for 5.00 ISK)"
    )


# A catalog in another currency than the built-in rates' dollars names rates of its own.
RATE = {
    "id": "post",
    "display_name": "Post",
    "currency": "jpy",
    "countries": ["*"],
    "min_days": 2,
    "max_days": 5,
}


def test_load_json_and_toml(tmp_path):
    json_file = tmp_path / "books.json"
    book = {"id": "a", "title": "T", "author": "A", "amount": 900, "currency": "JPY"}
    json_file.write_text(json.dumps({"books": [book], "shipping_rates": [{**RATE, "amount": 800}]}))
    book = Catalog.load(json_file).get("a")
    assert (book.amount, book.currency, book.price) == (900, "jpy", "¥900")

    toml_file = tmp_path / "books.toml"
    toml_file.write_text(
        '[[books]]\nid = "x"\ntitle = "X"\nauthor = "Y"\namount = 1000\ncurrency = "eur"\n'
        '[[shipping_rates]]\nid = "post"\ndisplay_name = "Post"\namount = 500\n'
        'currency = "eur"\ncountries = ["*"]\nmin_days = 2\nmax_days = 5\n'
    )
    assert Catalog.load(toml_file).get("x").price == "€10.00"


@pytest.mark.parametrize(
    ("records", "problem"),
    [
        (
            [
                {"id": "1", "title": "A", "author": "B", "amount": 100, "currency": "usd"},
                {"id": "1", "title": "C", "author": "D", "amount": 100, "currency": "usd"},
            ],
            "book #2: duplicate id '1'",
        ),
        ([{"id": "1", "title": "A", "amount": 100, "currency": "usd"}], "missing field 'author'"),
        (
            [{"id": "1", "title": "A", "author": "B", "amount": 0, "currency": "usd"}],
            "'amount' must be positive, got 0",
        ),
        (
            [{"id": "1", "title": "A", "author": "B", "amount": -5, "currency": "usd"}],
            "'amount' must be positive, got -5",
        ),
        (
            [{"id": "1", "title": "A", "author": "B", "amount": 23.5, "currency": "usd"}],
            "'amount' must be an integer",
        ),
        (
            [{"id": "1", "title": "A", "author": "B", "amount": "2300", "currency": "usd"}],
            "'amount' must be an integer",
        ),
        (
            [{"id": "1", "title": "A", "author": "B", "amount": 100, "currency": "xyz"}],
            "unknown currency code 'xyz'",
        ),
        ([], "expected a non-empty list of books"),
        (
            [{"id": " .. ", "title": "A", "author": "B", "amount": 100, "currency": "usd"}],
            "book #1: 'id' '..' cannot be in a page's address",
        ),
        (
            [{"id": ".", "title": "A", "author": "B", "amount": 100, "currency": "usd"}],
            "book #1: 'id' '.' cannot be in a page's address",
        ),
    ],
)
def test_invalid_catalogs_are_refused_with_the_reason(records, problem):
    with pytest.raises(ConfigError) as info:
        Catalog.from_records(records, source="books.json")
    assert any(problem in p for p in info.value.problems), info.value.problems


def test_every_problem_is_reported_at_once():
    records = [
        {"id": "1", "title": "A", "author": "B", "amount": 0, "currency": "usd"},
        {"id": "2", "title": "A", "author": "B", "amount": 100, "currency": "zzz"},
    ]
    with pytest.raises(ConfigError) as info:
        Catalog.from_records(records)
    assert len(info.value.problems) == 2


def test_a_duplicate_id_is_reported_even_when_the_first_book_has_other_problems():
    records = [
        {"id": "1", "title": "A", "author": "B", "amount": -5, "currency": "usd"},
        {"id": " 1 ", "title": "C", "author": "D", "amount": 100, "currency": "usd"},
    ]
    with pytest.raises(ConfigError) as info:
        Catalog.from_records(records, source="books.json")
    assert info.value.problems == [
        "books.json: book #1: 'amount' must be positive, got -5",
        "books.json: book #2: duplicate id '1'",
    ]


def test_unreadable_catalog_file(tmp_path):
    bad = tmp_path / "books.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        Catalog.load(bad)
    with pytest.raises(ConfigError, match=r"must end in \.json or \.toml"):
        Catalog.load(tmp_path / "books.yaml")


def refused_within(path, timeout=60.0) -> tuple[int, str]:
    """(exit code, stderr) of `catalog list` with BOOKPAY_CATALOG=path, run in a thread: a
    command that blocked on the file would hang the test run, not fail it."""
    import threading

    from typer.testing import CliRunner

    from bookpay.cli import app

    outcome = []
    env = {"BOOKPAY_CATALOG": str(path)}
    worker = threading.Thread(
        target=lambda: outcome.append(CliRunner().invoke(app, ["catalog", "list"], env=env)),
        daemon=True,
    )
    worker.start()
    worker.join(timeout)
    assert outcome, f"`catalog list` still reading {path} after {timeout} s"
    return outcome[0].exit_code, outcome[0].stderr


def test_a_catalog_file_that_is_a_fifo_is_refused_not_waited_on(tmp_path):
    """Opening a FIFO for reading waits for a writer: every command, and the server's start,
    blocked for ever."""
    import contextlib
    import os

    fifo = tmp_path / "books.json"
    os.mkfifo(fifo)
    try:
        code, err = refused_within(fifo)
    finally:
        with contextlib.suppress(OSError):  # a reader still blocked on it is let go
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    assert code == 5
    assert err == (
        f"Error: The catalog file {fifo} is a FIFO (a named pipe), not a regular file: give a "
        "JSON or TOML file.\n"
    )


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda path: path.symlink_to("/dev/zero"), "a character device"),
        (lambda path: path.mkdir(), "a folder"),
    ],
)
def test_a_catalog_file_that_is_not_a_regular_file_is_refused(tmp_path, make, kind):
    """A link to /dev/zero was read until memory ran out; a folder was an unexpected error."""
    path = tmp_path / "books.json"
    make(path)
    with pytest.raises(ConfigError) as refused:
        Catalog.load(path)
    assert refused.value.message == (
        f"The catalog file {path} is {kind}, not a regular file: give a JSON or TOML file."
    )
    code, err = refused_within(path)
    assert code == 5 and err.startswith(f"Error: The catalog file {path} is {kind}")


def test_a_catalog_file_over_the_size_limit_is_refused_unread(tmp_path):
    path = tmp_path / "books.json"
    with path.open("wb") as handle:  # sparse: no disk used
        handle.truncate(10 * 2**20 + 1)
    with pytest.raises(ConfigError) as refused:
        Catalog.load(path)
    assert refused.value.message == (
        f"The catalog file {path} is larger than 10 MB: a catalog is at most that."
    )
    link = tmp_path / "link.json"  # a link to a regular file is read as the file
    path.write_text(json.dumps([{"id": "a", "title": "A", "author": "B", "amount": 100,
                                 "currency": "usd"}]))  # fmt: skip
    link.symlink_to(path)
    assert Catalog.load(link).get("a").title == "A"


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("title", "Bad \ud800 half", "'title' holds U+D800 at character 5"),
        ("title", "Tab\there", "'title' holds U+0009 at character 4"),
        ("author", "A\x0bB", "'author' holds U+000B at character 2"),
        ("id", "1\x00", "'id' holds U+0000 at character 2"),
        ("description", "Not XML \uffff", "'description' holds U+FFFF at character 9"),
        ("description", "C1 \x85 next line", "'description' holds U+0085 at character 4"),
        ("title", None, "'title' must be a non-empty string"),  # was an unexpected error
    ],
)
def test_text_no_page_cover_or_receipt_can_show_is_refused_at_load(field, value, problem):
    """A lone surrogate made every page showing the book a 500 (UTF-8 cannot encode it), and a
    control character made its cover SVG malformed XML (a broken image)."""
    record = {"id": "1", "title": "A", "author": "B", "amount": 100, "currency": "usd"}
    with pytest.raises(ConfigError) as info:
        Catalog.from_records([{**record, field: value}], source="books.json")
    assert info.value.problems == [f"books.json: book #1: {problem}, which no page, cover or "
                                   "receipt can show: remove it" if "U+" in problem
                                   else f"books.json: book #1: {problem}"]  # fmt: skip


def test_a_description_may_have_lines_and_tabs_and_its_cover_is_well_formed_xml():
    import xml.etree.ElementTree as ElementTree

    book = Catalog.from_records(
        [{"id": "1", "title": "Ünïcode \u202e and ✓", "author": "B", "amount": 100,
          "currency": "usd", "description": "One\nTwo\r\n\tThree", "color": None}]
    ).get("1")  # fmt: skip
    assert book.description == "One\nTwo\r\n\tThree"
    ElementTree.fromstring(cover_svg(book).encode("utf-8"))


@pytest.mark.parametrize(
    ("color", "fill"),
    [("#2F3A2B", "#2f3a2b"), (" #ff0000 ", "#ff0000"), ("#abc", "#aabbcc"), (None, "#635bff")],
)
def test_a_cover_colour_is_six_hex_digits_and_three_are_expanded(color, fill):
    record = {"id": "1", "title": "A", "author": "B", "amount": 100, "currency": "usd"}
    book = Catalog.from_records([{**record, "color": color}]).get("1")
    assert book.color == fill
    assert f'<rect width="300" height="450" fill="{fill}"/>' in cover_svg(book)


def test_a_cover_colour_that_is_not_hex_is_refused_with_every_other_problem():
    """ "red" or "rgb(1,2,3)" was accepted, and the cover silently drawn in the default colour."""
    books = [
        {"id": str(n), "title": "A", "author": "B", "amount": 100, "currency": "usd", "color": c}
        for n, c in enumerate(["red", "rgb(1,2,3)", "#ff00001", "#abcd", "ff0000", "#ggg"], 1)
    ]
    books.append({"id": "7", "title": "A", "author": "B", "amount": -5, "currency": "usd"})
    books.append({**books[-1], "id": "8", "amount": 100, "color": 5})  # one problem, not two
    with pytest.raises(ConfigError) as info:
        Catalog.from_records(books, source="books.json")
    expected = "must be a colour written #rrggbb (or #rgb), as '#2f3a2b'"
    assert info.value.problems == [
        *(
            f"books.json: book #{n}: 'color' {expected}, got {c!r}"
            for n, c in enumerate(["red", "rgb(1,2,3)", "#ff00001", "#abcd", "ff0000", "#ggg"], 1)
        ),
        "books.json: book #7: 'amount' must be positive, got -5",
        "books.json: book #8: 'color' must be a non-empty string",
    ]


def test_a_catalog_file_with_a_colour_name_exits_5_naming_the_book(tmp_path):
    from typer.testing import CliRunner

    from bookpay.cli import app

    path = tmp_path / "books.toml"
    path.write_text(
        '[[books]]\nid = "1"\ntitle = "A"\nauthor = "B"\namount = 100\ncurrency = "usd"\n'
        'color = "red"\n'
    )
    result = CliRunner().invoke(app, ["--catalog", str(path), "catalog", "list"])
    assert result.exit_code == 5, result.output
    assert f"{path}: book #1: 'color' must be a colour written #rrggbb" in result.stderr
    assert "Traceback" not in result.output


def test_a_shipping_rate_name_no_page_can_show_is_refused():
    rate = {"id": "std", "display_name": "Standard\x1b[31m", "amount": 500, "currency": "usd",
            "countries": ["US"], "min_days": 1, "max_days": 2}  # fmt: skip
    book = {"id": "1", "title": "A", "author": "B", "amount": 100, "currency": "usd"}
    with pytest.raises(ConfigError) as info:
        Catalog.from_records([book], source="books.json", shipping_rates=[rate])
    assert any("'display_name' holds U+001B at character 9" in p for p in info.value.problems)


def test_cover_is_an_escaped_svg_of_title_and_author():
    book = Catalog.from_records(
        [{"id": "x", "title": "<script>&", "author": "O'Brien", "amount": 100, "currency": "usd"}]
    ).get("x")
    svg = cover_svg(book)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "<script>" not in svg and "&lt;script&gt;&amp;" in svg
    hamming = cover_svg(Catalog.default().get("1"))
    assert "Richard Hamming" in hamming and 'fill="#2f3a2b"' in hamming


@pytest.mark.parametrize(
    ("amount", "currency", "problem"),
    [
        (49, "usd", "is less than $0.50, the smallest payment Stripe takes in USD"),
        (50, "usd", None),
        (29, "GBP", "is less than £0.30, the smallest payment Stripe takes in GBP"),
        (49, "jpy", "is less than ¥50, the smallest payment Stripe takes in JPY"),
        (1, "isk", None),  # not in Stripe's table: the equivalent of $0.50, unknown here
        (99_999_999, "usd", None),
        (100_000_000, "eur", "is more than €999,999.99, the largest payment Stripe takes in EUR"),
    ],
)
def test_stripes_smallest_and_largest_payment(amount, currency, problem):
    assert charge_problem(amount, currency) == problem


@pytest.mark.parametrize(
    ("currency", "largest"),
    [("usd", "$999,999.99"), ("isk", "999,999 ISK"), ("ugx", "999,999 UGX"),
     ("kwd", "99,999.990 KWD"), ("jpy", "¥99,999,999")],
)  # fmt: skip
def test_the_largest_payment_named_is_one_stripe_can_charge(currency, largest):
    """Stripe charges ISK and UGX in whole units (an amount ends in 00) and a three-decimal
    currency in tens of its minor unit: its largest payment there is 99999900 (999,999 ISK) or
    99999990 (99,999.990 KWD), not its eight digits 99999999 (999,999.99 ISK, 99,999.999 KWD),
    which it could never charge."""
    assert charge_problem(120_000_000, currency) == (
        f"is more than {largest}, the largest payment Stripe takes in {currency.upper()}"
    )
    assert amount_problem(120_000_000, currency) == (
        f"is more than Stripe's largest amount, {largest}"
    )


def test_the_emulator_holds_the_shop_to_the_same_minimums():
    from bookpay.emulator import validate

    assert validate.MINIMUMS is MIN_AMOUNTS and min_amount("usd") == 50
