"""Migration 3 on a ledger written by the previous version (schema 2), on both backends: every
order keeps its data and gets one line; and the sales report reads a period through its index."""

from __future__ import annotations

import json
import sqlite3

import pytest
from typer.testing import CliRunner

from bookpay.catalog import Catalog
from bookpay.cli import app
from bookpay.config import Settings
from bookpay.ledger import SCHEMA_VERSION, open_ledger
from bookpay.ledger.location import locate
from bookpay.ledger.migrations import MIGRATIONS
from bookpay.orderlines import lines_of_intent, order_of_intent, titled
from bookpay.quote import Quote, QuoteLine

# Rows as bookpay 0.1 (schema 2) wrote them: one book per order.
OLD_ORDERS = [
    ("ord_a1", "pi_a1", "1", 2300, "usd", "a@example.com", "paid", "2026-01-02T10:00:00.000Z"),
    ("ord_a2", "pi_a2", "3", 2800, "usd", "b@example.com", "refunded", "2026-01-03T10:00:00.000Z"),
    ("ord_a3", "pi_a3", "9", 1500, "eur", "c@example.com", "pending", "2026-01-04T10:00:00.000Z"),
    ("ord_a4", "pi_a4", None, None, None, None, "pending", "2026-01-05T10:00:00.000Z"),
]


def write_schema_2(settings: Settings) -> None:
    """A ledger exactly as the previous version left it: migrations 1 and 2, and its rows."""
    location = locate(settings.database_url, settings.data_dir)
    kind = location.kind
    statements = [s for m in MIGRATIONS[:2] for s in m.statements(kind)]
    insert = (
        "INSERT INTO orders (id, payment_intent, item_id, amount, currency, email, status,"
        " created, updated, fulfilled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    rows = [
        (*row, row[-1], row[-1] if row[6] in ("paid", "refunded") else None) for row in OLD_ORDERS
    ]
    if kind == "sqlite":
        location.path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(location.path) as conn:
            for statement in statements:
                conn.execute(statement)
            conn.executemany(insert, rows)
            conn.execute("PRAGMA user_version = 2")
        return
    import psycopg

    with psycopg.connect(location.url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)
        conn.execute("CREATE TABLE bookpay_schema (version INTEGER)")
        conn.execute("INSERT INTO bookpay_schema (version) VALUES (2)")
        with conn.cursor() as cursor:
            cursor.executemany(insert.replace("?", "%s"), rows)


@pytest.fixture
def settings(tmp_path, database_url):
    return Settings(data_dir=tmp_path / "data", database_url=database_url)


def test_an_old_ledger_migrates_and_each_order_becomes_one_line(settings):
    write_schema_2(settings)
    with open_ledger(settings, migrate=False) as old:
        assert old.schema_version == 2
    with open_ledger(settings) as ledger:
        assert ledger.schema_version == SCHEMA_VERSION == 14
        orders = {order["id"]: order for order in ledger.iter_orders()}
        # Migration 5: no order had a dispute recorded on its own row before.
        assert {order["dispute_status"] for order in orders.values()} == {None}
        assert set(orders) == {row[0] for row in OLD_ORDERS}  # none lost
        assert orders["ord_a2"]["status"] == "refunded" and orders["ord_a2"]["amount"] == 2800
        lines = ledger.lines_for_orders(orders)
        assert set(lines) == {"ord_a1", "ord_a2", "ord_a3"}  # ord_a4 never named a book
        assert lines["ord_a1"] == [
            {
                "order_id": "ord_a1",
                "position": 0,
                "item_id": "1",
                "title": None,
                "quantity": 1,
                "unit_amount": 2300,
                "line_amount": 2300,
            }
        ]
        # The title comes from the catalog while it sells the book; else the line says its id.
        shown = titled(lines["ord_a1"] + lines["ord_a3"], Catalog.default())
        assert [line["title"] for line in shown] == [
            "The Art of Doing Science and Engineering",
            "Book 9",
        ]
        assert ledger.counts()["order_lines"] == 3


def test_a_migrated_order_shows_its_line_in_the_cli(settings):
    write_schema_2(settings)
    open_ledger(settings).close()
    env = {"BOOKPAY_DATA_DIR": str(settings.data_dir)}
    if settings.database_url:
        env["BOOKPAY_DATABASE_URL"] = settings.database_url
    shown = CliRunner().invoke(app, ["orders", "show", "ord_a2", "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    assert [
        (x["item_id"], x["title"], x["quantity"]) for x in json.loads(shown.stdout)["lines"]
    ] == [("3", "Working in Public: The Making and Maintenance of Open Source", 1)]
    report = CliRunner().invoke(app, ["report", "sales", "--by", "book", "--json"], env=env)
    rows = json.loads(report.stdout)["currencies"][0]["rows"]
    assert {(row["key"], row["copies"], row["net"]) for row in rows} == {
        ("1", 1, 2300),
        ("3", 1, 0),
    }


def test_a_period_of_the_report_is_read_through_the_fulfilment_index(settings):
    open_ledger(settings).close()
    location = locate(settings.database_url, settings.data_dir)
    sql = (
        "SELECT id FROM orders WHERE fulfilled_at IS NOT NULL AND fulfilled_at >= {p} "
        "AND fulfilled_at < {p} ORDER BY fulfilled_at LIMIT 1000"
    )
    if location.kind == "sqlite":
        with sqlite3.connect(location.path) as conn:
            plan = conn.execute(
                "EXPLAIN QUERY PLAN " + sql.format(p="?"), ("2026-01-01", "2026-02-01")
            ).fetchall()
        text = " ".join(str(step[-1]) for step in plan)
    else:
        import psycopg

        with psycopg.connect(location.url, autocommit=True) as conn:
            conn.execute("SET enable_seqscan = off")  # the table is tiny: ask what it would use
            plan = conn.execute(
                "EXPLAIN " + sql.format(p="%s"), ("2026-01-01", "2026-02-01")
            ).fetchall()
        text = " ".join(step[0] for step in plan)
    assert "orders_fulfilled" in text, text
    assert "SCAN orders" not in text.replace("USING INDEX", "")  # never the whole table


def test_a_payment_naming_another_payments_order_never_shows_that_orders_lines(settings):
    """`intent show` of a PaymentIntent whose metadata names the order of another (a stray of
    the same checkout attempt, or one made by hand) showed that order's lines: what another
    payment bought, as if this one had. Its own order's lines are shown, else its metadata's,
    and the order is said to be the other payment's."""
    catalog = Catalog.default()
    ours = "ord_" + "1" * 16
    one = Quote((QuoteLine("1", "One", 1, 2300),), "usd")
    answered = {"id": "pi_a", "amount": 2300, "currency": "usd", "status": "succeeded",
                "metadata": {"order_id": ours, "lines": "1x1"}}  # fmt: skip
    stray = {"id": "pi_b", "amount": 5000, "currency": "usd", "status": "canceled",
             "metadata": {"order_id": ours, "lines": "2x2"}}  # fmt: skip
    with open_ledger(settings) as ledger:

        def shown(intent):
            return [(x["item_id"], x["quantity"]) for x in lines_of_intent(intent, ledger, catalog)]

        ledger.record_quote("pi_a", ours, one)
        assert shown(answered) == [("1", 1)]
        assert order_of_intent(answered, ledger) == (ours, None)
        assert shown(stray) == [("2", 2)]  # its metadata's, not the order's ("1", 1)
        assert order_of_intent(stray, ledger) == (ours, "pi_a")
        # An event records the stray's own order, under an id of its own: still not the other's.
        own = ledger.record_intent(stray)["id"]
        assert own != ours
        assert shown(stray) == [("2", 2)]
        assert order_of_intent(stray, ledger) == (own, "pi_a")
        # Its own order's lines, once it has some (fulfilment records them from its metadata).
        ledger.record_quote("pi_b", own, Quote((QuoteLine("2", "Two", 2, 2500),), "usd"))
        assert shown(stray) == [("2", 2)]
        assert [x["title"] for x in lines_of_intent(stray, ledger, catalog)] == ["Two"]
    assert order_of_intent(stray, None) == (ours, None)  # no ledger here: nothing to tell


def test_a_paid_stray_payments_receipt_lists_what_it_bought_not_the_other_orders_lines(
    settings,
):
    """Fulfilment of a paid PaymentIntent with no quote records its metadata's lines under its
    own order, then listed the lines of the order its metadata names: another payment's."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from stripe_fakes import FakeGateway

    from bookpay.fulfilment import Fulfiller

    catalog = Catalog.default()
    ours = "ord_" + "1" * 16
    book_1, book_2 = catalog.get("1"), catalog.get("2")
    stray = {"id": "pi_b", "object": "payment_intent", "amount": 2 * book_2.amount,
             "currency": "usd", "status": "succeeded", "receipt_email": "b@example.com",
             "metadata": {"order_id": ours, "lines": "2x2", "integration": "bookpay",
                          "shop_id": settings.shop_id}}  # fmt: skip
    with open_ledger(settings) as ledger:
        ledger.record_quote("pi_a", ours, Quote((QuoteLine("1", book_1.title, 1, 2300),), "usd"))
        fulfiller = Fulfiller(ledger, FakeGateway(stray), catalog, settings, workers=False)
        assert fulfiller.fulfil("pi_b").outcome == "fulfilled"
        receipt = ledger.receipt_for("pi_b")
        own = ledger.find_order("pi_b")["id"]
    assert own != ours and receipt["order_id"] == own
    assert book_2.title in receipt["body"] and book_1.title not in receipt["body"]
