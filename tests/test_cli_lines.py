"""Order lines in the CLI: `intent create --item ID[:QTY]...`, `intent show`, `orders show`,
`orders list` and `orders export --lines`, against the session's emulator."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from bookpay.cli import app
from bookpay.config import Settings
from bookpay.ledger import open_ledger
from bookpay.payments import Gateway

runner = CliRunner()


@pytest.fixture
def bookpay(cli_env):
    def invoke(*args):
        return runner.invoke(app, list(args), env=cli_env)

    return invoke


@pytest.fixture
def settings(cli_env):
    return Settings(
        data_dir=cli_env["BOOKPAY_DATA_DIR"], emulator_url=cli_env["BOOKPAY_EMULATOR_URL"]
    )


def test_create_several_books_with_quantities(bookpay, settings):
    result = bookpay("intent", "create", "--item", "1:2", "--item", "3", "--json")
    assert result.exit_code == 0, result.output
    intent = json.loads(result.stdout)
    assert (intent["amount"], intent["currency"]) == (2 * 2300 + 2800, "usd")
    metadata = intent["metadata"]
    assert (metadata["lines"], metadata["item_count"]) == ("1x2,3x1", "3")
    assert "item_id" not in metadata  # one book, one copy only
    with open_ledger(settings) as ledger:  # recorded, as the checkout records its quotes
        quote = ledger.quote_for(intent["id"])
    assert (quote["order_id"], quote["total"]) == (metadata["order_id"], 7400)
    assert [(x["item_id"], x["quantity"]) for x in quote["lines"]] == [("1", 2), ("3", 1)]
    human = bookpay("intent", "create", "--item", "2:3")
    assert "Amount:         $75.00" in human.stdout
    assert "3 x The Making of Prince of Persia: Journals 1985-1993 (2)" in human.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--item", "1:11"], "quantity from 1 to 10"),
        (["--item", "1:0"], "quantity from 1 to 10"),
        (["--item", "1:x"], "expected ID or ID:QTY"),
        (["--item", ":2"], "expected ID or ID:QTY"),
        (["--item", "1:\u0663"], "expected ID or ID:QTY"),  # an Arabic-Indic three
        (["--item", "1:\u00b2"], "expected ID or ID:QTY"),  # a superscript two
    ],
)
def test_bad_items_are_usage_errors(bookpay, args, message):
    result = bookpay("intent", "create", *args)
    assert result.exit_code == 2
    assert message in result.stderr


@pytest.fixture
def colon_catalog(tmp_path):
    """Book ids holding a colon, as a catalog may have them (any character but `.` and `..`)."""
    books = [
        {"id": id_, "title": f"Book {id_}", "author": "A. Writer", "amount": amount,
         "currency": "usd"}
        for id_, amount in [("vol", 1000), ("vol:2", 2000), ("isbn:0451450523", 3000)]
    ]  # fmt: skip
    path = tmp_path / "colons.json"
    path.write_text(json.dumps(books))
    return str(path)


@pytest.mark.parametrize(
    ("items", "lines"),
    [
        (["isbn:0451450523"], [("isbn:0451450523", 1)]),  # was "quantity from 1 to 10"
        (["isbn:0451450523:3"], [("isbn:0451450523", 3)]),
        (["vol:2:1"], [("vol:2", 1)]),
        (["vol:3", "vol"], [("vol", 4)]),  # vol:3 is no book: three copies of vol
    ],
)
def test_a_book_id_holding_a_colon_is_read_whole(bookpay, settings, colon_catalog, items, lines):
    args = [arg for item in items for arg in ("--item", item)]
    result = bookpay("--catalog", colon_catalog, "intent", "create", *args, "--json")
    assert result.exit_code == 0, result.output
    with open_ledger(settings) as ledger:
        quote = ledger.quote_for(json.loads(result.stdout)["id"])
    assert [(x["item_id"], x["quantity"]) for x in quote["lines"]] == lines


def test_an_item_that_names_two_books_is_refused_naming_both(bookpay, colon_catalog):
    """`--item vol:2` made "2 x vol" though the catalog has a book vol:2: either may be meant."""
    before = bookpay("intent", "list", "--limit", "100", "--json").stdout
    result = bookpay("--catalog", colon_catalog, "intent", "create", "--item", "vol:2")
    assert result.exit_code == 2, result.output
    assert (
        "Invalid value for '--item': 'vol:2' is the book 'vol:2' or 2 copies of the book 'vol': "
        "write vol:2:1 for one copy of 'vol:2', or give --item vol 2 times." in result.stderr
    )
    assert bookpay("intent", "list", "--limit", "100", "--json").stdout == before


def test_an_unknown_book_or_too_many_copies_in_all_exit_2(bookpay):
    unknown = bookpay("intent", "create", "--item", "99")
    assert unknown.exit_code == 2 and "No book with id '99'" in unknown.stderr
    too_many = bookpay("intent", "create", "--item", "1:6", "--item", "1:5")
    assert too_many.exit_code == 2 and "1 to 10 copies" in too_many.stderr


def test_show_and_orders_give_the_lines_and_the_order_both_ways(bookpay, settings):
    intent = json.loads(
        bookpay("intent", "create", "--item", "1:2", "--item", "2", "--json").stdout
    )
    order_id = intent["metadata"]["order_id"]
    assert bookpay("intent", "confirm", intent["id"]).exit_code == 0
    # The webhook would do this in a running shop: fulfil from the retrieved intent.
    from bookpay.catalog import Catalog
    from bookpay.fulfilment import Fulfiller

    with open_ledger(settings) as ledger:
        fulfiller = Fulfiller(ledger, Gateway(settings), Catalog.default(), settings)
        try:
            assert fulfiller.fulfil(intent["id"]).outcome == "fulfilled"
        finally:
            fulfiller.close()

    shown = json.loads(bookpay("intent", "show", intent["id"], "--json").stdout)
    assert shown["order"]["id"] == order_id
    assert [(x["item_id"], x["quantity"]) for x in shown["order"]["lines"]] == [("1", 2), ("2", 1)]
    human = bookpay("intent", "show", intent["id"]).stdout
    assert f"Order:           {order_id}" in human

    by_order = json.loads(bookpay("orders", "show", order_id, "--json").stdout)
    assert by_order["payment_intent"] == intent["id"]  # and back
    assert [x["title"] for x in by_order["lines"]] == [
        "The Art of Doing Science and Engineering",
        "The Making of Prince of Persia: Journals 1985-1993",
    ]
    table = bookpay("orders", "show", intent["id"]).stdout.splitlines()
    # The Item field names the lines as the list's column does, not nothing.
    assert "Item:           2 x 1, 1 x 2" in table
    at = table.index("Lines")
    assert table[at + 1].split() == ["Item", "Title", "Qty", "Unit", "Amount"]
    assert table[at + 2].split()[-3:] == ["2", "$23.00", "$46.00"]
    listed = bookpay("orders", "list").stdout.splitlines()
    assert listed[1].split()[:5] == [order_id, intent["id"], "2", "x", "1,"]  # "2 x 1, 1 x 2"

    exported = bookpay("orders", "export", "--lines").stdout
    rows = list(csv.DictReader(io.StringIO(exported)))
    mine = [row for row in rows if row["order_id"] == order_id]
    assert [(r["item_id"], r["quantity"], r["unit_amount"], r["line_amount"]) for r in mine] == [
        ("1", "2", "2300", "4600"),
        ("2", "1", "2500", "2500"),
    ]
    assert mine[0]["payment_intent"] == intent["id"] and mine[0]["status"] == "paid"
    jsonl = bookpay("orders", "export", "--lines", "--format", "jsonl").stdout.splitlines()
    assert json.loads(jsonl[0])["title"] == "The Art of Doing Science and Engineering"
    assert len(json.loads(bookpay("orders", "export", "--lines", "--format", "json").stdout)) == 2


def test_show_of_a_payment_naming_another_payments_order_shows_its_own_lines(bookpay, settings):
    """A PaymentIntent whose metadata names another payment's order (a stray of one checkout
    attempt, or one made by hand) was shown with that order's lines and receipt, as if it had
    bought them. It shows what its metadata says it buys, and whose the order is."""
    from bookpay.quote import Quote, QuoteLine

    first = json.loads(bookpay("intent", "create", "--item", "1", "--json").stdout)
    order_id = first["metadata"]["order_id"]
    assert bookpay("intent", "confirm", first["id"]).exit_code == 0
    two = Quote((QuoteLine("2", "Two", 2, 2500),), "usd")
    other = Gateway(settings).create_intent(two, order_id=order_id)  # never recorded here
    shown = json.loads(bookpay("intent", "show", other["id"], "--json").stdout)
    assert (shown["order"]["id"], shown["order"]["another_payment"]) == (order_id, first["id"])
    assert [(x["item_id"], x["quantity"]) for x in shown["order"]["lines"]] == [("2", 2)]
    human = bookpay("intent", "show", other["id"]).stdout.splitlines()
    [row] = [line for line in human if line.startswith("Order:")]
    assert row.split(None, 1)[1] == f"{order_id} (another payment's order: {first['id']})"
    lines = human[human.index("Lines") + 2 :]
    assert [line.split()[0] for line in lines] == ["2"]
    mine = json.loads(bookpay("intent", "show", first["id"], "--json").stdout)["order"]
    assert (mine["id"], mine["another_payment"]) == (order_id, None)
    assert [(x["item_id"], x["quantity"]) for x in mine["lines"]] == [("1", 1)]


def test_export_lines_neutralises_formulas(tmp_path):
    from bookpay.quote import Quote, QuoteLine

    settings = Settings(data_dir=tmp_path / "data")
    quote = Quote((QuoteLine("=1+1", "@SUM(A1)", 1, 100),), "usd")
    with open_ledger(settings) as ledger:
        ledger.record_quote("pi_x", "ord_00000000000000ab", quote)
        ledger.record_intent(
            {"id": "pi_x", "status": "succeeded", "amount": 100, "currency": "usd",
             "metadata": {"order_id": "ord_00000000000000ab"}}
        )  # fmt: skip
    out = runner.invoke(
        app, ["orders", "export", "--lines"], env={"BOOKPAY_DATA_DIR": str(tmp_path / "data")}
    ).stdout
    row = next(csv.DictReader(io.StringIO(out)))
    assert (row["item_id"], row["title"]) == ("'=1+1", "'@SUM(A1)")
