"""An order exists, ``pending``, from the moment its PaymentIntent is created and its quote
recorded (`bookpay intent create`, the checkout), not only once a webhook event about it comes.

The CLI and the checkout against the session's emulator; the ledger on SQLite, then PostgreSQL
(``database_url``), except the shop with its webhooks, which runs on SQLite.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import uuid

import pytest
from test_cart_server import Shopper
from test_ledger_migrations import env_for, old_ledger, version_of
from test_server import PUBLIC_URL
from typer.testing import CliRunner

from bookpay.cli import app
from bookpay.config import Settings
from bookpay.ledger import SCHEMA_VERSION, open_ledger
from bookpay.ledger.check import check_ledger
from bookpay.ledger.lines import QuoteFrozen
from bookpay.quote import Quote, QuoteLine
from bookpay.server import create_app

runner = CliRunner()
ONE = Quote((QuoteLine("1", "One", 1, 2300),), "usd")
TWO = Quote((QuoteLine("1", "One", 2, 2300), QuoteLine("3", "Three", 1, 2800)), "usd")
ORD_1 = "ord_" + "1" * 16  # as the checkout names them (``model.ORDER_ID``)
THREE = Quote((QuoteLine("3", "Three", 1, 2800),), "usd")


@pytest.fixture
def settings(tmp_path, emulator, database_url) -> Settings:
    return Settings(
        data_dir=tmp_path / "data", emulator_url=emulator.url, database_url=database_url
    )


@pytest.fixture
def env(settings) -> dict[str, str]:
    """What a user sets to point the CLI at ``settings``' emulator and ledger."""
    values = {
        "BOOKPAY_EMULATOR_URL": settings.emulator_url,
        "BOOKPAY_DATA_DIR": str(settings.data_dir),
    }
    if settings.database_url:
        values["BOOKPAY_DATABASE_URL"] = settings.database_url
    return values


def bookpay(env, *args):
    return runner.invoke(app, list(args), env=env)


def show(env, order_or_pi: str) -> dict:
    result = bookpay(env, "orders", "show", order_or_pi, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def listed(env, *args) -> list[str]:
    result = bookpay(env, "orders", "list", *args, "--json")
    assert result.exit_code == 0, result.output
    return [order["id"] for order in json.loads(result.stdout)]


def intent(pi: str, order_id: str, status: str, amount: int, **extra) -> dict:
    """A PaymentIntent as Stripe has it (retrieved), for the ledger's webhook path."""
    metadata = {"order_id": order_id, "integration": "bookpay", "shop_id": "shop_test"}
    return {
        "id": pi,
        "status": status,
        "amount": amount,
        "currency": "usd",
        "metadata": metadata,
        "receipt_email": "reader@example.com",
        "latest_charge": None,
        "last_payment_error": None,
        **extra,
    }


# The CLI -----------------------------------------------------------------------------------


def test_intent_create_makes_its_order_at_once_pending_found_by_either_id(env):
    created = bookpay(env, "intent", "create", "--item", "3", "--email", "reader@example.com")
    assert created.exit_code == 0, created.output
    order_id = re.search(r"Order (ord_[0-9a-f]{16}): 1 x ", created.stderr).group(1)
    intent_id = re.search(r"PaymentIntent:\s+(pi_\w+)", created.stdout).group(1)

    order = show(env, order_id)
    assert show(env, intent_id) == order
    assert (order["id"], order["payment_intent"], order["status"]) == (
        order_id,
        intent_id,
        "pending",
    )
    assert (order["amount"], order["currency"], order["item_id"]) == (2800, "usd", "3")
    assert order["email"] == "reader@example.com"
    assert (order["fulfilled_at"], order["receipt"], order["events"]) == (None, None, [])
    assert [(line["item_id"], line["quantity"]) for line in order["lines"]] == [("3", 1)]
    assert order["quote"]["total"] == 2800

    human = bookpay(env, "orders", "show", order_id)
    assert human.exit_code == 0, human.output
    assert re.search(r"^Status:\s+pending$", human.stdout, re.M)
    assert re.search(r"^Receipt:\s+none \(the order has not been fulfilled\)$", human.stdout, re.M)
    assert "No webhook events received for it." in human.stdout

    assert listed(env, "--status", "pending") == [order_id]
    assert listed(env, "--status", "pending", "--all") == [order_id]
    assert listed(env, "--status", "paid") == []
    assert listed(env, "--email", "reader@example.com") == [order_id]

    export = bookpay(env, "orders", "export")
    assert export.exit_code == 0, export.output
    [row] = list(csv.DictReader(io.StringIO(export.stdout)))
    assert (row["id"], row["status"], row["amount"], row["total"]) == (
        order_id,
        "pending",
        "2800",
        "2800",
    )
    assert row["fulfilled_at"] == ""

    # A pending order is no inconsistency, and no sale.
    check = bookpay(env, "ledger", "check", "--json")
    assert check.exit_code == 0, check.output
    assert json.loads(check.stdout)["counts"]["orders"] == 1
    sales = bookpay(env, "report", "sales", "--json")
    assert sales.exit_code == 0, sales.output
    assert all(part["total"]["orders"] == 0 for part in json.loads(sales.stdout)["currencies"])


def test_the_cli_orders_of_several_books_are_pending_with_their_lines(env):
    created = bookpay(env, "intent", "create", "--item", "1:2", "--item", "3", "--json")
    assert created.exit_code == 0, created.output
    payment = json.loads(created.stdout)
    order = show(env, payment["id"])
    assert order["id"] == payment["metadata"]["order_id"]
    assert (order["status"], order["amount"], order["item_id"], order["email"]) == (
        "pending",
        7400,
        None,
        None,
    )
    assert [(line["item_id"], line["quantity"]) for line in order["lines"]] == [("1", 2), ("3", 1)]
    table = bookpay(env, "orders", "list", "--status", "pending")
    assert table.exit_code == 0, table.output
    assert order["id"] in table.stdout and "2 x 1, 1 x 3" in table.stdout


# The checkout ------------------------------------------------------------------------------


def test_a_checkouts_order_is_pending_from_its_creation_and_follows_its_cart(settings, env):
    made = create_app(settings, public_url=PUBLIC_URL)
    try:
        shopper = Shopper(made)
        assert shopper.add("1").status == 200
        attempt = str(uuid.uuid4())
        first = shopper.pay(attempt)
        assert first.status == 200, first.body
        answer = first.json()
        order = show(env, answer["orderId"])
        assert show(env, answer["paymentIntentId"]) == order
        assert (order["status"], order["amount"], order["item_id"]) == ("pending", 2300, "1")
        assert listed(env, "--status", "pending") == [answer["orderId"]]

        again = shopper.pay(attempt)  # a reload: the same quote
        assert again.status == 200 and again.json()["changed"] is False
        assert show(env, answer["orderId"]) == order

        # The cart changes before the payment is confirmed: one order, at the new quote.
        assert shopper.add("3").status == 200
        changed = shopper.pay(attempt)
        assert changed.status == 200, changed.body
        assert changed.json()["paymentIntentId"] == answer["paymentIntentId"]
        assert changed.json()["amount"] == 5100
        order = show(env, answer["orderId"])
        assert (order["status"], order["amount"], order["item_id"]) == ("pending", 5100, None)
        assert [line["item_id"] for line in order["lines"]] == ["1", "3"]
        assert listed(env) == [answer["orderId"]]
    finally:
        made.close()


def test_a_checkouts_pending_order_is_paid_and_fulfilled_once_by_its_webhooks(
    bookpay_shop, bookpay_cli
):
    created = bookpay_shop.checkout("2")
    order_id, intent_id = created["orderId"], created["paymentIntentId"]
    pending = bookpay_shop.order(order_id)
    assert pending is not None, "no order right after the PaymentIntent was created"
    assert (pending["payment_intent"], pending["status"], pending["amount"]) == (
        intent_id,
        "pending",
        2500,
    )
    shown = bookpay_cli("orders", "show", intent_id, "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["status"] == "pending"

    method = bookpay_shop.gateway.payment_method_for("4242424242424242")
    bookpay_shop.gateway.confirm_intent(intent_id, payment_method=method)
    bookpay_shop.wait_for_receipts(1)
    paid = bookpay_shop.wait_for_order(order_id, "paid")
    assert (paid["id"], paid["payment_intent"], paid["amount"]) == (order_id, intent_id, 2500)
    assert paid["fulfilled_at"] is not None
    assert bookpay_shop.ledger.fulfilment_count(intent_id) == 1
    assert bookpay_shop.ledger.count_orders() == 1
    assert len(bookpay_shop.receipts()) == 1
    listing = bookpay_cli("orders", "list", "--status", "pending", "--json")
    assert json.loads(listing.stdout) == []


# The ledger --------------------------------------------------------------------------------


@pytest.fixture
def ledger(settings):
    with open_ledger(settings) as opened:
        yield opened


def test_a_quote_writes_its_order_once_and_a_new_quote_reprices_it(ledger):
    ledger.record_quote("pi_1", ORD_1, ONE, attempt_id="att_1")
    ledger.record_quote("pi_1", ORD_1, ONE, attempt_id="att_1")  # a reload
    [order] = ledger.list_orders()
    assert (order["id"], order["payment_intent"], order["status"]) == (ORD_1, "pi_1", "pending")
    assert (order["amount"], order["currency"], order["item_id"]) == (2300, "usd", "1")

    ledger.record_quote("pi_1", ORD_1, TWO, attempt_id="att_1")
    [order] = ledger.list_orders()
    assert (order["id"], order["amount"], order["item_id"]) == (ORD_1, 7400, None)
    assert [line["quantity"] for line in ledger.order_lines(ORD_1)] == [2, 1]

    # Declined (an event), then re-priced: the order follows the quote still.
    declined = intent("pi_1", ORD_1, "requires_payment_method", 7400)
    declined["last_payment_error"] = {"code": "card_declined", "message": "Declined."}
    assert ledger.record_intent(declined)["status"] == "failed"
    ledger.record_quote("pi_1", ORD_1, THREE, attempt_id="att_1", version=1)
    [order] = ledger.list_orders()
    assert (order["status"], order["amount"], order["item_id"]) == ("failed", 2800, "3")
    assert ledger.count_orders() == 1


def test_events_move_a_pending_order_forward_and_fulfil_it_once(ledger):
    ledger.record_quote("pi_1", ORD_1, ONE)
    assert ledger.record_intent(intent("pi_1", ORD_1, "processing", 2300))["status"] == (
        "processing"
    )
    # A late copy of the PaymentIntent as it was created does not take it back.
    assert ledger.record_intent(intent("pi_1", ORD_1, "requires_payment_method", 2300))[
        "status"
    ] == ("processing")
    paid = intent("pi_1", ORD_1, "succeeded", 2300)
    render = lambda order: (order["email"], "Receipt", "body")  # noqa: E731
    order, done = ledger.record_fulfilment(paid, render)
    assert done and (order["id"], order["status"], order["email"]) == (
        ORD_1,
        "paid",
        "reader@example.com",
    )
    assert ledger.record_fulfilment(paid, render)[1] is False
    assert ledger.fulfilment_count("pi_1") == 1 and len(ledger.receipts()) == 1
    with pytest.raises(QuoteFrozen):  # what was paid stays the order's
        ledger.record_quote("pi_1", ORD_1, TWO)
    [order] = ledger.list_orders()
    assert (order["status"], order["amount"], order["item_id"]) == ("paid", 2300, "1")


def test_a_paid_orders_quote_recorded_late_leaves_the_order_as_stripe_has_it(ledger):
    """Fulfilment records the quote of a paid PaymentIntent that had none (from its metadata):
    the order is the PaymentIntent's, not taken back to pending nor re-priced."""
    paid = intent("pi_1", ORD_1, "succeeded", 2300, metadata={"order_id": ORD_1})
    ledger.record_intent(paid)
    ledger.record_quote("pi_1", ORD_1, TWO)
    [order] = ledger.list_orders()
    assert (order["status"], order["amount"]) == ("paid", 2300)


def test_an_event_for_a_payment_naming_another_payments_order_gets_an_order_of_its_own(ledger):
    """Two PaymentIntents of one attempt name one order id (the first's answer was lost and
    another was created): the one whose quote was recorded has the order; an event about the
    other (canceled from the Dashboard, say) records it under an id of its own, and fails not."""
    ledger.record_quote("pi_2", ORD_1, ONE, attempt_id="att_1")
    stray = ledger.record_intent(intent("pi_1", ORD_1, "canceled", 2300))
    assert stray["payment_intent"] == "pi_1" and stray["status"] == "canceled"
    assert stray["id"] != ORD_1 and stray["id"].startswith("ord_")
    order = ledger.get_order(ORD_1)
    assert (order["payment_intent"], order["status"]) == ("pi_2", "pending")


def test_the_quote_answered_takes_its_order_id_from_a_stray_payments_order(ledger):
    """An attempt's first PaymentIntent was created, its answer lost (never recorded), then
    canceled: its event wrote the order under the id its metadata names. The shopper tries
    again with another cart, and a second PaymentIntent of the attempt names the same id:
    the quote answered to the shopper owns it. The stray's order moves to an id of its own;
    the order the shopper was told of is the one paid, with its lines, fulfilled."""
    ledger.record_intent(intent("pi_1", ORD_1, "canceled", 2300))
    ledger.record_quote("pi_2", ORD_1, TWO, attempt_id="att_1")
    order = ledger.get_order(ORD_1)
    assert (order["payment_intent"], order["status"], order["amount"]) == ("pi_2", "pending", 7400)
    assert ledger.find_order("pi_2") == order
    stray = ledger.find_order("pi_1")
    assert stray["id"] not in (ORD_1, None) and stray["id"].startswith("ord_")
    assert (stray["status"], stray["amount"]) == ("canceled", 2300)
    assert ledger.order_lines(stray["id"]) == []
    # A later event about either one keeps each where it is.
    assert ledger.record_intent(intent("pi_1", ORD_1, "canceled", 2300))["id"] == stray["id"]
    render = lambda order: (order["email"], "Receipt", "body")  # noqa: E731
    paid, done = ledger.record_fulfilment(intent("pi_2", ORD_1, "succeeded", 7400), render)
    assert done and (paid["id"], paid["status"], paid["fulfilled_at"] is not None) == (
        ORD_1,
        "paid",
        True,
    )
    assert [line["quantity"] for line in ledger.order_lines(ORD_1)] == [2, 1]
    assert ledger.count_orders() == 2
    assert check_ledger(ledger).ok


def test_an_event_takes_the_order_id_of_its_payments_quote(ledger):
    """The order id of a PaymentIntent whose quote is recorded is the quote's, whatever its
    metadata says (none, here, as an earlier version's)."""
    ledger.record_quote("pi_2", ORD_1, TWO, attempt_id="att_1")
    with ledger.transaction() as tx:  # as the merged version left it: the order of another
        tx.execute("DELETE FROM orders WHERE payment_intent = 'pi_2'")
    unnamed = intent("pi_2", ORD_1, "processing", 7400, metadata={"integration": "bookpay"})
    order = ledger.record_intent(unnamed)
    assert (order["id"], order["payment_intent"], order["status"]) == (ORD_1, "pi_2", "processing")


def test_a_paid_payments_event_takes_its_quotes_order_id_back_from_a_stray(ledger):
    """A ledger the merged version left wrong (the stray had the id, the quote's payment no
    order): the paid payment's event moves the stray and is recorded under the quote's id,
    with the quote's lines."""
    ledger.record_quote("pi_2", ORD_1, TWO, attempt_id="att_1")
    with ledger.transaction() as tx:
        tx.execute(
            "UPDATE orders SET payment_intent = 'pi_1', status = 'canceled' "
            "WHERE payment_intent = 'pi_2'"
        )
    render = lambda order: (order["email"], "Receipt", "body")  # noqa: E731
    paid, done = ledger.record_fulfilment(intent("pi_2", ORD_1, "succeeded", 7400), render)
    assert done and (paid["id"], paid["payment_intent"]) == (ORD_1, "pi_2")
    assert [line["quantity"] for line in ledger.order_lines(paid["id"])] == [2, 1]
    assert ledger.find_order("pi_1")["id"] != ORD_1


@pytest.mark.parametrize("status", ["processing", "requires_capture"])
def test_a_stray_payment_confirmed_elsewhere_moves_and_both_are_fulfilled_once(
    ledger, settings, status
):
    """A stray confirmed from the Dashboard or the CLI (processing, or authorized with manual
    capture) moves off the answered quote's id all the same, not yet fulfilled: once it
    succeeds it is fulfilled under its own id (it was refused, LedgerConflict at every
    delivery, when it kept the id the quote had taken), and the answered one under its."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from stripe_fakes import FakeGateway

    from bookpay.catalog import Catalog
    from bookpay.fulfilment import Fulfiller

    catalog = Catalog.default()
    book = next(iter(catalog))
    one = Quote((QuoteLine(book.id, book.title, 1, book.amount),), book.currency)

    def stripe_has(pi: str, status: str) -> dict:
        made = intent(pi, ORD_1, status, book.amount, capture_method="manual")
        made["metadata"].update(item_id=book.id, shop_id=settings.shop_id)
        made["currency"] = book.currency
        return made

    ledger.record_intent(stripe_has("pi_1", status))
    ledger.record_quote("pi_2", ORD_1, one, attempt_id="att_1")
    assert ledger.get_order(ORD_1)["payment_intent"] == "pi_2"
    stray = ledger.find_order("pi_1")
    assert stray["id"] != ORD_1 and stray["status"] in ("processing", "authorized")
    for pi in ("pi_1", "pi_2"):
        paid = FakeGateway(stripe_has(pi, "succeeded"))
        Fulfiller(ledger, paid, catalog, settings, workers=False).fulfil(pi)
    assert ledger.find_order("pi_1")["id"] == stray["id"]
    assert ledger.find_order("pi_2")["id"] == ORD_1
    assert all(ledger.find_order(pi)["fulfilled_at"] for pi in ("pi_1", "pi_2"))
    assert check_ledger(ledger).ok


def test_a_fulfilled_order_is_not_moved_for_a_quote(ledger):
    render = lambda order: (order["email"], "Receipt", "body")  # noqa: E731
    ledger.record_fulfilment(intent("pi_1", ORD_1, "succeeded", 2300), render)
    with pytest.raises(QuoteFrozen):
        ledger.record_quote("pi_2", ORD_1, TWO, attempt_id="att_1")
    assert ledger.get_order(ORD_1)["payment_intent"] == "pi_1"
    assert ledger.find_order("pi_2") is None


# The migration -----------------------------------------------------------------------------


def test_quotes_without_an_order_of_an_earlier_version_get_one_pending(tmp_path, database_url):
    """Before schema 13 an order was written only by a webhook event: a checkout abandoned had
    a quote and no order. Each gets one, pending (canceled when the shop saw it canceled)."""
    data_dir = tmp_path / "data"
    old_ledger(data_dir, database_url, 12)  # ord_old, paid and fulfilled
    quotes = [
        # payment_intent, order_id, total, canceled_at
        ("pi_left", "ord_left", 2300, None),
        ("pi_gone", "ord_gone", 7400, "2026-01-02T04:00:00.000Z"),
        ("pi_other", "ord_old", 2300, None),  # its order id is another payment's order
    ]
    lines = [
        ("ord_left", 0, "1", 1, 2300),
        ("ord_gone", 0, "1", 2, 2300),
        ("ord_gone", 1, "3", 1, 2800),
    ]
    quote_sql = (
        "INSERT INTO quotes (payment_intent, order_id, currency, subtotal, total, created,"
        " updated, canceled_at) VALUES (?, ?, 'usd', ?, ?, '2026-01-02T03:04:05.000Z',"
        " '2026-01-02T03:05:00.000Z', ?)"
    )
    line_sql = (
        "INSERT INTO order_lines (order_id, position, item_id, title, quantity, unit_amount,"
        " line_amount) VALUES (?, ?, ?, NULL, ?, ?, ?)"
    )
    quote_rows = [(pi, order, total, total, canceled) for pi, order, total, canceled in quotes]
    line_rows = [(*line, line[3] * line[4]) for line in lines]
    if database_url is None:
        conn = sqlite3.connect(data_dir / "bookpay.sqlite3", isolation_level=None)
        conn.executemany(quote_sql, quote_rows)
        conn.executemany(line_sql, line_rows)
        conn.close()
    else:
        import psycopg

        with psycopg.connect(database_url, autocommit=True) as conn, conn.cursor() as cursor:
            cursor.executemany(quote_sql.replace("?", "%s"), quote_rows)
            cursor.executemany(line_sql.replace("?", "%s"), line_rows)

    env = env_for(data_dir, database_url)
    left = show(env, "ord_left")
    assert version_of(data_dir, database_url) == SCHEMA_VERSION
    assert show(env, "pi_left") == left
    assert (left["payment_intent"], left["status"], left["amount"], left["item_id"]) == (
        "pi_left",
        "pending",
        2300,
        "1",
    )
    assert (left["created"], left["updated"]) == (
        "2026-01-02T03:04:05.000Z",
        "2026-01-02T03:05:00.000Z",
    )
    gone = show(env, "pi_gone")
    assert (gone["id"], gone["status"], gone["amount"], gone["item_id"]) == (
        "ord_gone",
        "canceled",
        7400,
        None,
    )
    old = show(env, "ord_old")
    assert (old["payment_intent"], old["status"]) == ("pi_old", "paid")
    missing = bookpay(env, "orders", "show", "pi_other")
    assert missing.exit_code == 2
    assert listed(env, "--status", "pending") == ["ord_left"]
    check = bookpay(env, "ledger", "check")
    assert check.exit_code == 0, check.output
