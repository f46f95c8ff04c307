"""`bookpay ledger copy | check` and the ledger lines of `bookpay config check`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bookpay.cli import app
from bookpay.config import Settings
from bookpay.ledger import SCHEMA_VERSION, open_ledger
from bookpay.ledger.model import now_iso
from bookpay.quote import Quote, QuoteLine

runner = CliRunner()


def intent(pi, status="succeeded", email=None):
    return {
        "id": pi,
        "status": status,
        "amount": 2300,
        "currency": "usd",
        "metadata": {"item_id": "1", "integration": "bookpay", "shop_id": "shop_test"},
        "receipt_email": email or f"{pi}@example.com",
        "shipping": {"name": "Jenny Rosen", "address": {"city": "Paris", "country": "FR"}},
        "latest_charge": f"ch_{pi}",
        "last_payment_error": None,
    }


def env_for(data_dir: Path, url: str | None) -> dict[str, str]:
    env = {"BOOKPAY_DATA_DIR": str(data_dir)}
    if url:
        env["BOOKPAY_DATABASE_URL"] = url
    return env


def ledger_at(env):
    return open_ledger(
        Settings(
            data_dir=Path(env["BOOKPAY_DATA_DIR"]), database_url=env.get("BOOKPAY_DATABASE_URL")
        )
    )


def fill(env, orders=30):
    """Paid and fulfilled orders (with receipts and events), and pending ones."""
    with ledger_at(env) as ledger:
        for n in range(orders):
            pi = f"pi_{n:03}"
            if n % 3:
                ledger.record_fulfilment(intent(pi), lambda o: (o["email"], "Receipt", "body"))
            else:
                ledger.record_intent(intent(pi, "processing"))
            ledger.receive_event(f"evt_{n}", "payment_intent.succeeded", pi, created=n)
            ledger.finish_event(f"evt_{n}", handled=bool(n % 3), outcome="fulfilled")
        with ledger.transaction() as tx:  # the fulfilled orders' lines (one book each)
            tx.execute(
                """INSERT INTO order_lines (order_id, position, item_id, title, quantity,
                unit_amount, line_amount) SELECT id, 0, item_id, 'One', 1, amount, amount
                FROM orders WHERE fulfilled_at IS NOT NULL"""
            )
        with ledger.transaction() as tx:  # a claim, which is the source's own business
            tx.execute("UPDATE receipts SET claimed_by = 'host/1/1/ab' WHERE order_id IS NOT NULL")
        # A cart with two books, and a checkout's quote of them with its lines (and its order,
        # pending: written with the quote).
        cart = ledger.create_cart("a" * 64)
        ledger.edit_cart(cart["id"], lambda items: {"1": (2, "One", "usd"), "2": (1, "Two", "usd")})
        quote = Quote((QuoteLine("1", "One", 2, 2300), QuoteLine("2", "Two", 1, 2500)), "usd")
        ledger.record_quote("pi_q", "ord_00000000000000aa", quote, cart_id=cart["id"])
        # A tax reversal for a refund of it, recorded with Stripe Tax.
        ledger.owe_tax_reversals("ord_00000000000000aa", "pi_q", [("re_1", 500)])
        ledger.tax_record_done("rev:re_1", stripe_id="tax_rev_1")
        # ... whose refund failed afterwards; and a dispute of a paid order, lost.
        ledger.refunds_failed("ord_00000000000000aa", ["re_1"])
        lost = {"id": "du_1", "status": "lost", "reason": "fraudulent", "amount": 2300}
        ledger.record_dispute(intent("pi_001"), lost)
        # The quote paid, its cart's other payments still to cancel, claimed by a process of
        # the source's (its cart left as it was: the settling's own writes are not the point).
        with ledger.transaction() as tx:
            tx.execute("UPDATE quotes SET settled_at = created WHERE payment_intent = 'pi_q'")
            ledger.owe_sibling_cancel(tx, "pi_q", cart["id"])
            tx.execute("UPDATE sibling_cancels SET claimed_by = 'host/1/1/ab'")
        return ledger.counts()


def invoke(env, *args):
    return runner.invoke(app, list(args), env=env)


def snapshot(env):
    with ledger_at(env) as ledger:
        orders = list(ledger.iter_orders())
        return (
            orders,
            [ledger.events_for(o["payment_intent"]) for o in orders],
            ledger.receipts(),
            ledger.quote_for("pi_q"),
            ledger.cart_items(ledger.find_cart("a" * 64)["id"]),
            ledger.tax_records_for("ord_00000000000000aa"),
            [ledger.disputes_for(o["id"]) for o in orders],
            ledger.sibling_cancels(),
        )


def test_copy_sqlite_to_postgresql_and_back_is_faithful_and_idempotent(tmp_path, postgres_url):
    source = env_for(tmp_path / "data", None)
    counts = fill(source)
    assert counts == {
        "orders": 31,
        "events": 30,
        "fulfilments": 20,
        "receipts": 20,
        "order_lines": 22,
        "quotes": 1,
        "carts": 1,
        "cart_items": 2,
        "tax_records": 1,
        "disputes": 1,
        "sibling_cancels": 1,
    }
    result = invoke(source, "ledger", "copy", "--to", postgres_url, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["matches"] is True
    assert report["to"].startswith("postgresql://") and report["from"].endswith("bookpay.sqlite3")
    assert {t: v["target"] for t, v in report["tables"].items()} == counts

    on_postgres = env_for(tmp_path / "data", postgres_url)
    orders, events, receipts, quote, cart, taxes, disputes, cancels = snapshot(on_postgres)
    s_orders, s_events, s_receipts, s_quote, s_cart, s_taxes, s_disputes, s_cancels = snapshot(
        source
    )
    assert (orders, events, quote, cart, taxes, disputes) == (
        s_orders, s_events, s_quote, s_cart, s_taxes, s_disputes
    )  # fmt: skip
    assert [(t["refund"], t["amount"], t["status"]) for t in taxes] == [("re_1", 500, "recorded")]
    assert taxes[0]["refund_failed_at"] is not None
    lost = next(o for o in orders if o["payment_intent"] == "pi_001")
    assert (lost["status"], lost["dispute_status"]) == ("dispute_lost", "lost")
    assert [d["id"] for found in disputes for d in found] == ["du_1"]
    assert [line["quantity"] for line in quote["lines"]] == [2, 1]
    assert [r["claimed_by"] for r in receipts] == [None] * 20  # claims are not copied
    assert [{**r, "claimed_by": None} for r in s_receipts] == receipts
    assert [(c["payment_intent"], c["status"], c["claimed_by"]) for c in cancels] == [
        ("pi_q", "pending", None)  # owed in the copy too, its claim not copied
    ]
    assert [{**c, "claimed_by": None} for c in s_cancels] == cancels

    again = invoke(source, "ledger", "copy", "--to", postgres_url, "--json")
    assert again.exit_code == 0
    assert {t: v["target"] for t, v in json.loads(again.stdout)["tables"].items()} == counts
    with ledger_at(source) as ledger:  # the shop went on: a copy brings the target up to date
        ledger.record_intent(intent("pi_000"))
    assert invoke(source, "ledger", "copy", "--to", postgres_url).exit_code == 0
    assert snapshot(on_postgres)[0][0]["status"] == "paid"

    back = tmp_path / "back" / "ledger.sqlite3"
    result = invoke(on_postgres, "ledger", "copy", "--to", f"sqlite:///{back}")
    assert result.exit_code == 0, result.output
    assert "the counts match" in result.stderr
    assert (
        snapshot(env_for(tmp_path / "data", f"sqlite:///{back}"))[:2] == snapshot(on_postgres)[:2]
    )


def test_copy_says_how_to_keep_the_shop_id(tmp_path):
    source = env_for(tmp_path / "data", None)
    fill(source, orders=3)
    result = invoke(source, "ledger", "copy", "--to", f"sqlite:///{tmp_path}/copy.sqlite3")
    assert result.exit_code == 0
    shop = Settings(data_dir=tmp_path / "data").shop_id
    assert f"Set BOOKPAY_SHOP_ID={shop} before pointing BOOKPAY_DATABASE_URL" in result.stderr


def test_copy_shows_its_progress_only_at_a_terminal(tmp_path, monkeypatch):
    """Progress is a line rewritten with carriage returns: in a log (stderr not a terminal) it
    was one long line of every table's counts."""
    import bookpay.commands.ledger as command

    source = env_for(tmp_path / "data", None)
    fill(source, orders=3)
    result = invoke(source, "ledger", "copy", "--to", f"sqlite:///{tmp_path}/copy.sqlite3")
    assert result.exit_code == 0, result.output
    assert "\r" not in result.stderr and "Copying to" not in result.stderr
    assert result.stderr.startswith(f"Copied {tmp_path / 'data' / 'bookpay.sqlite3'} to ")
    monkeypatch.setattr(command, "is_terminal", lambda stream=None: True)
    result = invoke(source, "ledger", "copy", "--to", f"sqlite:///{tmp_path}/again.sqlite3")
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"\rCopying to {tmp_path / 'again.sqlite3'}: orders ")


@pytest.mark.parametrize(
    "other",
    [
        lambda copy: copy.receive_event("evt_only_in_the_copy", "charge.refunded", None),
        lambda copy: copy.create_cart("b" * 64),  # another shop's cart, and no order
    ],
    ids=["event", "cart"],
)
def test_copy_into_a_ledger_with_rows_of_its_own_is_refused(tmp_path, other):
    source = env_for(tmp_path / "data", None)
    fill(source, orders=3)
    target = f"sqlite:///{tmp_path}/copy.sqlite3"
    with ledger_at(env_for(tmp_path / "data", target)) as copy:
        other(copy)
        before = copy.counts()
    result = invoke(source, "ledger", "copy", "--to", target)
    assert result.exit_code == 1
    assert "which this ledger does not have: it is another ledger's" in result.stderr
    with ledger_at(env_for(tmp_path / "data", target)) as copy:
        assert copy.counts() == before  # nothing merged into it


def test_copy_into_another_ledger_is_refused_before_anything_is_written(tmp_path, database_url):
    source = env_for(tmp_path / "data", None)
    fill(source, orders=3)
    target = database_url or f"sqlite:///{tmp_path}/other.sqlite3"
    fill(env_for(tmp_path / "data", target), orders=5)  # same pi_ ids, other order ids
    with ledger_at(env_for(tmp_path / "data", target)) as other:
        before = other.counts()
    result = invoke(source, "ledger", "copy", "--to", target)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: The target holds order ord_")
    assert "which this ledger does not have: it is another ledger's" in result.stderr
    assert "Copy into an empty database" in result.stderr
    assert "Traceback" not in result.output
    with ledger_at(env_for(tmp_path / "data", target)) as other:
        assert other.counts() == before  # nothing merged into the other shop's ledger


def test_copy_into_a_database_another_app_uses_is_refused_and_left_alone(tmp_path, database_url):
    """No bookpay schema version there, but a table of one of bookpay's names (another app's
    orders): refused as another database's, not a failed CREATE TABLE half way."""
    source = env_for(tmp_path / "data", None)
    fill(source, orders=1)
    target = database_url or f"sqlite:///{tmp_path}/app.sqlite3"
    statements = (
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, what TEXT)",
        "INSERT INTO orders VALUES (1, 'someone else''s')",
    )
    if database_url:
        import psycopg

        with psycopg.connect(database_url, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)
        tables = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    else:
        import sqlite3

        conn = sqlite3.connect(tmp_path / "app.sqlite3", isolation_level=None)
        for statement in statements:
            conn.execute(statement)
        conn.close()
        tables = "SELECT name FROM sqlite_master"

    def state():
        if database_url:
            with psycopg.connect(database_url) as conn:
                found = sorted(row[0] for row in conn.execute(tables))
                return found, conn.execute("SELECT * FROM orders").fetchall()
        conn = sqlite3.connect(tmp_path / "app.sqlite3")
        try:
            found = sorted(row[0] for row in conn.execute(tables))
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            return found, version, conn.execute("SELECT * FROM orders").fetchall()
        finally:
            conn.close()

    before = state()
    assert before[0] == ["customers", "orders"]
    result = invoke(source, "ledger", "copy", "--to", target)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: The target holds another database's tables (orders)")
    assert "nothing was copied" in result.stderr and "Copy into an empty database" in result.stderr
    assert "OperationalError" not in result.output and "Traceback" not in result.output
    assert state() == before  # nothing created, migrated or written


def test_a_copy_into_a_ledger_with_one_more_order_is_refused_too(tmp_path):
    source = env_for(tmp_path / "data", None)
    fill(source, orders=3)
    target = f"sqlite:///{tmp_path}/copy.sqlite3"
    assert invoke(source, "ledger", "copy", "--to", target).exit_code == 0
    with ledger_at(env_for(tmp_path / "data", target)) as copy:
        copy.record_intent(intent("pi_only_in_the_copy"))
    again = invoke(source, "ledger", "copy", "--to", target)
    assert again.exit_code == 1 and "which this ledger does not have" in again.stderr


def test_copy_refuses_to_copy_onto_itself_or_from_nothing(tmp_path):
    source = env_for(tmp_path / "data", None)
    itself = f"sqlite:///{tmp_path / 'data' / 'bookpay.sqlite3'}"
    result = invoke(source, "ledger", "copy", "--to", itself)
    assert (result.exit_code, result.stderr.split(":")[0]) == (2, "Error")
    assert "There is no ledger at" in result.stderr
    fill(source, orders=1)
    result = invoke(source, "ledger", "copy", "--to", itself)
    assert result.exit_code == 2
    assert "the ledger itself" in result.stderr


@pytest.mark.parametrize(
    ("to", "said"),
    [
        ("", "Invalid value for '--to': expected a URL, got ''."),
        (" ", "Invalid value for '--to': expected a URL, got ' '."),
        ("mysql://x", "Error: --to must start with postgresql:// or sqlite:///, got 'mysql://x'."),
        ("/srv/copy.sqlite3", "Error: --to must start with postgresql:// or sqlite:///, got '/"),
        ("sqlite://copy.sqlite3", "Error: --to 'sqlite://copy.sqlite3' is not a SQLite URL"),
        ("postgresql://db:99999/shop", "Error: --to postgresql://db:99999/shop is not a URL"),
        ("postgresql://db", "Error: --to postgresql://db names no database"),
    ],
)
def test_a_to_that_names_no_ledger_is_a_usage_error_and_writes_nothing(tmp_path, to, said):
    """A blank --to (an empty shell variable) copied into the default SQLite file in the data
    folder; a URL bookpay cannot use was exit 5, a configuration problem, though it was given
    on the command line."""
    source = {**env_for(tmp_path / "data", None)}
    source["BOOKPAY_DATABASE_URL"] = f"sqlite:///{tmp_path / 'source.sqlite3'}"
    fill(source, orders=1)
    result = invoke(source, "ledger", "copy", "--to", to)
    assert result.exit_code == 2, result.output
    assert said in result.stderr
    assert "Traceback" not in result.output and "BOOKPAY_DATABASE_URL" not in result.output
    assert not (tmp_path / "data" / "bookpay.sqlite3").exists()


# Check -------------------------------------------------------------------------------------------


@pytest.fixture
def checked(tmp_path, database_url):
    env = env_for(tmp_path / "data", database_url)
    fill(env, orders=6)
    return env


def test_check_of_a_sound_ledger(checked):
    result = invoke(checked, "ledger", "check")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].endswith(
        "7 orders, 6 events, 4 fulfilments, 4 receipts, 6 order_lines, 1 quotes, 1 carts,"
        " 2 cart_items, 1 tax_records, 1 disputes, 1 sibling_cancels"
    )
    assert lines[1] == "Database integrity: ok"
    assert all(line.endswith((": ok", ": none")) for line in lines[2:])
    assert json.loads(invoke(checked, "ledger", "check", "--json").stdout)["ok"] is True


BREAKAGES = {
    "fulfilments without a receipt": ["DELETE FROM receipts WHERE payment_intent = 'pi_001'"],
    "fulfilled orders without a fulfilment": [
        "DELETE FROM receipts WHERE payment_intent = 'pi_001'",
        "DELETE FROM fulfilments WHERE payment_intent = 'pi_001'",
    ],
    "fulfilled orders below paid": [
        "UPDATE orders SET status = 'pending' WHERE payment_intent = 'pi_001'"
    ],
    "orders with an unknown status": [
        "UPDATE orders SET status = 'shipped' WHERE payment_intent = 'pi_000'"
    ],
    "orders behind an event they handled": [
        # pi_000 is processing: a handled payment_intent.succeeded would have made it paid.
        "UPDATE events SET handled = 1 WHERE id = 'evt_0'"
    ],
    "disputes with an unknown status": ["UPDATE disputes SET status = 'reopened'"],
    "orders with a dispute that do not show it": [
        "UPDATE orders SET dispute_status = NULL WHERE payment_intent = 'pi_001'"
    ],
    "fulfilments for another amount or currency than the order's": [
        "UPDATE fulfilments SET amount = 1 WHERE payment_intent = 'pi_002'"
    ],
    "orders whose payment's quote (and lines) are another order's": [
        "UPDATE orders SET id = 'ord_elsewhere' WHERE payment_intent = 'pi_q'"
    ],
    "taxed fulfilments without their tax transaction": [
        """INSERT INTO quotes (payment_intent, order_id, currency, subtotal, total, created,
        updated, tax_calculation) SELECT payment_intent, id, 'usd', 2300, 2300, created, created,
        'taxcalc_1' FROM orders WHERE payment_intent = 'pi_001'"""
    ],
    "tax records with an unknown status": [
        "UPDATE tax_records SET status = 'lost' WHERE id = 'rev:re_1'"
    ],
    "receipts for an unknown order": [
        "UPDATE receipts SET order_id = 'ord_gone' WHERE payment_intent = 'pi_001'"
    ],
    "tax records for an unknown order": ["UPDATE tax_records SET order_id = 'ord_gone'"],
    "disputes for an unknown order": ["UPDATE disputes SET order_id = 'ord_gone'"],
    "paid carts' cancelings with an unknown status": ["UPDATE sibling_cancels SET status = 'lost'"],
    "paid carts' cancelings for a PaymentIntent with no settled quote": [
        "UPDATE quotes SET settled_at = NULL"
    ],
    # One row, however many of its times are in the future, is one example.
    "rows dated in the future": [
        """UPDATE orders SET created = '2999-01-01T00:00:00.000Z',
        updated = '2999-01-01T00:00:00.000Z' WHERE payment_intent = 'pi_000'"""
    ],
}


@pytest.mark.parametrize("broken", list(BREAKAGES))
def test_check_finds_each_broken_invariant(checked, broken):
    with ledger_at(checked) as ledger, ledger.transaction() as tx:
        for statement in BREAKAGES[broken]:
            tx.execute(statement)
    result = invoke(checked, "ledger", "check", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    found = {name for name, finding in report["problems"].items() if finding["count"]}
    # A fulfilled order set back to pending is also behind the succeeded event it handled.
    also = {"orders behind an event they handled"} if "below paid" in broken else set()
    assert found == {broken} | also
    assert len(report["problems"][broken]["examples"]) == 1


def test_check_finds_an_orders_not_fulfilled_date_in_the_future(checked):
    with ledger_at(checked) as ledger, ledger.transaction() as tx:
        tx.execute(
            "UPDATE orders SET not_fulfilled_at = '2999-01-01T00:00:00.000Z' "
            "WHERE payment_intent = 'pi_000'"
        )
    result = invoke(checked, "ledger", "check", "--json")
    assert result.exit_code == 1
    found = json.loads(result.stdout)["problems"]["rows dated in the future"]
    assert found["count"] == 1


def test_check_sets_no_floor_for_a_handled_payment_failed_or_processing(checked):
    """The PaymentIntent may have been confirmed again since (requires_action: pending), and
    the handler records what it retrieved."""
    with ledger_at(checked) as ledger:
        ledger.record_intent(intent("pi_again", "requires_action"))
        for n, kind in enumerate(["payment_intent.payment_failed", "payment_intent.processing"]):
            ledger.receive_event(f"evt_again_{n}", kind, "pi_again")
            ledger.finish_event(f"evt_again_{n}", handled=True, outcome="order is pending")
    result = invoke(checked, "ledger", "check")
    assert result.exit_code == 0, result.output


def test_check_reports_the_databases_own_integrity_problems(checked):
    with ledger_at(checked) as ledger:
        if ledger.kind == "sqlite":
            with ledger.transaction() as tx:  # a dangling reference, with the checks off
                tx.execute("PRAGMA foreign_keys = OFF")
            conn = ledger.backend._connection()
            conn.execute("PRAGMA foreign_keys = OFF")
            conn.execute("DELETE FROM fulfilments WHERE payment_intent = 'pi_001'")
            expected = "foreign key broken: receipts"
        else:
            with ledger.transaction() as tx:
                tx.execute(
                    "ALTER TABLE orders ADD CONSTRAINT positive CHECK (amount > 0) NOT VALID"
                )
            expected = "constraint positive is not validated"
    result = invoke(checked, "ledger", "check")
    assert result.exit_code == 1
    assert expected in result.stdout


def test_check_warns_about_tax_records_still_owed(checked):
    with ledger_at(checked) as ledger:
        ledger.owe_tax_reversals("ord_00000000000000aa", "pi_q", [("re_2", 700)])
    result = invoke(checked, "ledger", "check")
    assert result.exit_code == 0
    assert "warning: tax records not yet told to Stripe Tax" in result.stdout


def test_check_warns_about_fulfilled_orders_with_no_lines(checked):
    """A paid order put under an id of its own while its quote's lines stayed under the id
    answered to the shopper (as the PaymentIntent of a stray checkout attempt took it) was
    fulfilled without lines, and the check said nothing."""
    warning = (
        "fulfilled orders with no lines (their receipt lists no book; the sales report counts "
        "them as an unknown book)"
    )
    result = invoke(checked, "ledger", "check", "--json")
    assert json.loads(result.stdout)["warnings"][warning]["count"] == 0
    with ledger_at(checked) as ledger, ledger.transaction() as tx:
        tx.execute(
            "DELETE FROM order_lines WHERE order_id = "
            "(SELECT id FROM orders WHERE payment_intent = 'pi_002')"
        )
    result = invoke(checked, "ledger", "check", "--json")
    assert result.exit_code == 0
    found = json.loads(result.stdout)["warnings"][warning]
    assert found["count"] == 1 and len(found["examples"]) == 1


def test_check_warns_about_paid_orders_not_fulfilled(checked):
    with ledger_at(checked) as ledger:
        ledger.record_intent(intent("pi_late"))  # paid, the succeeded event not handled yet
    result = invoke(checked, "ledger", "check")
    assert result.exit_code == 0
    assert "warning: paid orders not fulfilled" in result.stdout


def test_check_warns_about_a_paid_carts_canceling_still_owed_an_hour_on(checked):
    """Stripe down for long (tried again every ten minutes, never given up), or no worker
    running: the shop still owes it, and a person may cancel those still open by hand."""
    owed = (
        "paid carts whose other payments are still not all canceled an hour after the payment "
        "(tried again every 10 minutes: the log says why; is a worker running? Cancel those "
        "still open in the Dashboard)"
    )
    result = invoke(checked, "ledger", "check", "--json")
    assert json.loads(result.stdout)["warnings"][owed]["count"] == 0  # owed a moment ago
    with ledger_at(checked) as ledger, ledger.transaction() as tx:
        tx.execute(
            "UPDATE sibling_cancels SET created = ?, attempts = 9, last_error = 'pi_x: 429'",
            (now_iso(-3700),),
        )
    result = invoke(checked, "ledger", "check", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["warnings"][owed] == {"count": 1, "examples": ["pi_q"]}
    with ledger_at(checked) as ledger, ledger.transaction() as tx:  # as earlier versions left it
        tx.execute("UPDATE sibling_cancels SET status = 'given_up'")
    result = invoke(checked, "ledger", "check", "--json")
    assert json.loads(result.stdout)["warnings"][owed]["count"] == 1
    with ledger_at(checked) as ledger, ledger.transaction() as tx:
        tx.execute("UPDATE sibling_cancels SET status = 'done'")
    result = invoke(checked, "ledger", "check", "--json")
    assert json.loads(result.stdout)["warnings"][owed]["count"] == 0


def test_check_finds_a_cart_paid_twice_naming_both_payments(checked):
    """Two attempts of one payment of a cart both settled: the cart was charged twice (a tab
    left open on 3-D Secure, passed after the other paid): one is to be refunded."""
    twice = "carts paid twice (two payments of one checkout of the cart: refund one)"
    with ledger_at(checked) as ledger:
        cart = ledger.find_cart("a" * 64)
        quote = Quote((QuoteLine("1", "One", 2, 2300),), "usd")
        ledger.record_quote("pi_q2", "ord_00000000000000bb", quote, cart_id=cart["id"])
        with ledger.transaction() as tx:
            tx.execute(
                "UPDATE quotes SET generation = (SELECT generation FROM quotes "
                "WHERE payment_intent = 'pi_q') WHERE payment_intent = 'pi_q2'"
            )
        result = invoke(checked, "ledger", "check", "--json")
        assert result.exit_code == 0, result.output  # open beside it: not paid
        ledger.settle_cart("pi_q2")
    result = invoke(checked, "ledger", "check", "--json")
    assert result.exit_code == 1, result.output
    found = {n: f for n, f in json.loads(result.stdout)["problems"].items() if f["count"]}
    assert found == {twice: {"count": 1, "examples": ["pi_q and pi_q2"]}}
    result = invoke(checked, "ledger", "check")
    assert "pi_q and pi_q2" in result.stdout


def test_check_finds_orders_refunded_first_whose_refund_failed(checked):
    """As earlier versions left them: refunded in full before the fulfilment, which was given
    up, then the refund failed and the shop kept the money, the order never fulfilled."""
    kept = (
        "orders refunded in full or disputed before they were fulfilled whose refund failed or "
        "dispute was won (the money kept; send their payment_intent.succeeded event again)"
    )
    refunded = {"id": "ch_pi_kept", "amount": 2300, "amount_refunded": 2300, "refunded": True}
    with ledger_at(checked) as ledger:
        ledger.record_intent(
            intent("pi_kept"),
            status="refunded",
            amount_refunded=2300,
            note="not fulfilled: refunded in full before it was fulfilled",
            refused="refunded_first",
        )
        failed = {**refunded, "amount_refunded": 0, "refunded": False}  # the refund failed
        ledger.record_refunds(intent("pi_kept"), failed)
        order_id = ledger.get_order("pi_kept")["id"]
    result = invoke(checked, "ledger", "check", "--json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    found = {name: f for name, f in report["problems"].items() if f["count"]}
    assert found == {kept: {"count": 1, "examples": [order_id]}}
    with ledger_at(checked) as ledger:  # fulfilled after all: no longer "never fulfilled"
        ledger.record_fulfilment(intent("pi_kept"), lambda o: (o["email"], "Receipt", "body"))
        order = ledger.get_order("pi_kept")
    assert order["not_fulfilled_at"] is None and order["fulfilment_refused"] is None
    assert order["note"] == "fulfilled after its refund in full failed: the shop kept the money"
    result = invoke(checked, "ledger", "check")
    assert result.exit_code == 0, result.output


# config check ------------------------------------------------------------------------------------


def test_config_check_reports_the_ledger(tmp_path, postgres_url):
    env = env_for(tmp_path / "data", None)
    result = invoke(env, "config", "check")
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert f"ledger sqlite: {tmp_path / 'data' / 'bookpay.sqlite3'}" in lines
    assert "ledger schema none yet (`bookpay serve` creates it)" in lines
    assert "ledger reachable yes" in lines
    assert not (tmp_path / "data").exists()

    host = postgres_url.split("//", 1)[1].split("/", 1)[0].rpartition("@")[2]
    with_password = postgres_url.replace(host, f"shop:hunter2@{host}", 1)
    result = invoke(env_for(tmp_path / "data", with_password), "config", "check", "--json")
    report = json.loads(result.stdout)
    assert report["ledger"]["where"].startswith(f"postgresql://shop:***@{host}/")
    assert report["settings"]["BOOKPAY_DATABASE_URL"].startswith("postgresql://shop:***@")
    assert "hunter2" not in result.stdout + result.stderr

    env = env_for(tmp_path / "data", postgres_url)
    fill(env, orders=1)
    ledger = json.loads(invoke(env, "config", "check", "--json").stdout)["ledger"]
    assert ledger["backend"] == "postgresql"
    assert (ledger["reachable"], ledger["schema_version"], ledger["problem"]) == (
        True,
        SCHEMA_VERSION,
        None,
    )


def test_config_check_shows_a_database_url_as_it_is_set(tmp_path):
    # The setting shown is the one in effect: sqlite:////abs/path was shown as sqlite://abs/path
    # (a host 'abs') and sqlite:///rel/path as sqlite:/rel/path (an absolute path).
    absolute = f"sqlite:///{tmp_path / 'abs.sqlite3'}"
    for url in (absolute, "sqlite:///rel/ledger.sqlite3"):
        report = json.loads(
            invoke(env_for(tmp_path / "data", url), "config", "check", "--offline", "--json").stdout
        )
        assert report["settings"]["BOOKPAY_DATABASE_URL"] == url
    socket_url = "postgresql:///bookpay?host=/run/postgresql&password=hunter2"
    result = invoke(env_for(tmp_path / "data", socket_url), "config", "check", "--json")
    report = json.loads(result.stdout)
    expected = "postgresql:///bookpay?host=/run/postgresql&password=***"
    assert report["settings"]["BOOKPAY_DATABASE_URL"] == expected
    assert "hunter2" not in result.stdout + result.stderr


def test_config_check_says_when_the_database_cannot_be_reached(tmp_path):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://shop:hunter2@127.0.0.1:{port}/bookpay"
    result = invoke(env_for(tmp_path / "data", url), "config", "check")
    assert result.exit_code == 5
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert f"ledger postgresql: postgresql://shop:***@127.0.0.1:{port}/bookpay" in lines
    assert any(line.startswith("ledger reachable no: Cannot reach the ledger") for line in lines)
    assert any("the orders ledger: Cannot reach" in line for line in lines)
    assert "hunter2" not in result.stdout + result.stderr


def test_a_copy_while_the_shop_writes_copies_one_moment_of_the_ledger(tmp_path, database_url):
    """The shop fulfils an order between the copy's orders and its fulfilments: the copy holds
    the ledger as it was when it started (no fulfilment of an order it has not copied), says
    the counts match, and a copy run again brings the rest."""
    from bookpay.ledger.copy import copy_ledger

    source = env_for(tmp_path / "data", database_url)
    fill(source, orders=3)
    target = env_for(tmp_path / "data", f"sqlite:///{tmp_path}/copy.sqlite3")
    writes = []

    def shop_writes(table, count):
        if table == "orders" and not writes:
            with ledger_at(source) as shop:  # another connection: as `bookpay serve` would
                shop.record_fulfilment(intent("pi_new"), lambda o: (o["email"], "R", "b"))
            writes.append(table)

    with ledger_at(source) as ledger, ledger_at(target) as copy:
        report = copy_ledger(ledger, copy, progress=shop_writes)
        assert writes and report.matches
        assert report.source["orders"] == report.target["orders"] == 4
        assert copy.find_order("pi_new") is None
    assert invoke(target, "ledger", "check").exit_code == 0
    again = invoke(source, "ledger", "copy", "--to", target["BOOKPAY_DATABASE_URL"], "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["tables"]["orders"]["target"] == 5


def test_copy_refuses_the_ledger_itself_under_another_name(tmp_path, database_url):
    """A hard link to the SQLite file (two WAL files for one database), or the same PostgreSQL
    schema through another host name: the ledger itself, refused before it is opened twice."""
    source = env_for(tmp_path / "data", database_url)
    fill(source, orders=1)
    if database_url is None:
        other = tmp_path / "link.sqlite3"
        other.hardlink_to(tmp_path / "data" / "bookpay.sqlite3")
        to = f"sqlite:///{other}"
    else:
        to = database_url.replace("//127.0.0.1:", "//localhost:", 1)
        assert to != database_url
    result = invoke(source, "ledger", "copy", "--to", to)
    assert result.exit_code == 2, result.output
    assert "the ledger itself" in result.stderr
    if database_url is None:
        assert not (tmp_path / "link.sqlite3-wal").exists()


@pytest.mark.parametrize(
    "to",
    [
        "sqlite://shop:hunter2@host/ledger.sqlite3",  # not a SQLite URL bookpay reads
        "postgresql://shop:hunter2%ZZ@127.0.0.1:5432/test",  # libpq quotes the bad token
        "postgresql://127.0.0.1:5432/test?password=hunter2%ZZ",
    ],
)
def test_copy_never_shows_the_targets_password(tmp_path, to):
    source = env_for(tmp_path / "data", None)
    fill(source, orders=1)
    result = invoke(source, "ledger", "copy", "--to", to)
    # A URL bookpay cannot read is a bad --to (2); one the database's client refuses, 5.
    assert result.exit_code == (2 if to.startswith("sqlite") else 5), result.output
    assert result.stderr.startswith("Error: ") and "***" in result.stderr
    assert "BOOKPAY_DATABASE_URL" not in result.stderr  # the URL given to --to is at fault
    assert "hunter2" not in result.output and "Traceback" not in result.output


def test_a_copy_interrupted_half_way_finishes_when_run_again(tmp_path, database_url, monkeypatch):
    from bookpay.ledger import copy

    source = env_for(tmp_path / "data", None)
    counts = fill(source, orders=9)
    to = database_url or f"sqlite:///{tmp_path}/copy.sqlite3"
    upsert, calls = copy._upsert, []

    def interrupted(target, table, rows):
        calls.append(table)
        if len(calls) == 4:
            raise KeyboardInterrupt  # Ctrl-C, between two batches of events
        upsert(target, table, rows)

    monkeypatch.setattr(copy, "BATCH", 4)
    monkeypatch.setattr(copy, "_upsert", interrupted)
    result = invoke(source, "ledger", "copy", "--to", to)
    assert result.exit_code not in (0, None), result.output
    assert "counts match" not in result.output and "Traceback" not in result.output
    monkeypatch.setattr(copy, "_upsert", upsert)
    again = invoke(source, "ledger", "copy", "--to", to, "--json")
    assert again.exit_code == 0, again.output
    assert {t: v["target"] for t, v in json.loads(again.stdout)["tables"].items()} == counts
    assert snapshot(env_for(tmp_path / "data", to))[:2] == snapshot(source)[:2]


def test_a_copy_into_another_shops_older_ledger_leaves_its_schema_alone(tmp_path, database_url):
    """Refused before the target is migrated: the other shop's older bookpay would then refuse
    its own ledger as written by a newer one."""
    from test_ledger_migrations import old_ledger, version_of

    source = env_for(tmp_path / "data", None)
    fill(source, orders=1)
    other = tmp_path / "other"
    old_ledger(other, database_url, 3)  # holds the other shop's order ord_old
    to = database_url or f"sqlite:///{other / 'bookpay.sqlite3'}"
    result = invoke(source, "ledger", "copy", "--to", to)
    assert result.exit_code == 1, result.output
    assert "The target holds order ord_old" in result.stderr
    assert version_of(other, database_url) == 3
    # An empty older ledger is migrated, then copied into.
    empty = tmp_path / "empty"
    old_ledger(empty, None, 3)
    with __import__("sqlite3").connect(empty / "bookpay.sqlite3") as conn:
        for table in ("receipts", "fulfilments", "events", "orders"):
            conn.execute(f"DELETE FROM {table}")
    result = invoke(source, "ledger", "copy", "--to", f"sqlite:///{empty / 'bookpay.sqlite3'}")
    assert result.exit_code == 0, result.output
    assert version_of(empty, None) == SCHEMA_VERSION


def test_a_copy_run_again_drops_what_the_shop_removed_since(tmp_path, database_url):
    """A book taken out of a cart, a quote priced again with fewer lines: the rows the shop
    deleted go from the copy too (it said the counts differ, and kept the order's old line)."""
    source = env_for(tmp_path / "data", None)
    fill(source, orders=3)
    to = database_url or f"sqlite:///{tmp_path}/copy.sqlite3"
    assert invoke(source, "ledger", "copy", "--to", to).exit_code == 0
    with ledger_at(source) as ledger:
        cart = ledger.find_cart("a" * 64)["id"]
        ledger.edit_cart(cart, lambda items: {"2": (0, "Two", "usd")})
        quote = Quote((QuoteLine("1", "One", 2, 2300),), "usd")
        ledger.record_quote("pi_q", "ord_00000000000000aa", quote, cart_id=cart)
    again = invoke(source, "ledger", "copy", "--to", to, "--json")
    assert again.exit_code == 0, again.output
    tables = json.loads(again.stdout)["tables"]
    assert (tables["cart_items"]["target"], tables["order_lines"]["target"]) == (1, 3)
    copied = snapshot(env_for(tmp_path / "data", to))
    assert copied[3:5] == snapshot(source)[3:5]  # the quote with its lines, the cart's items


def test_check_reports_a_receipt_for_an_unknown_order_once(tmp_path):
    """Nor as a receipt without a fulfilment: the database's own check names the broken key."""
    env = env_for(tmp_path / "data", None)
    fill(env, orders=3)
    with ledger_at(env) as ledger:
        conn = ledger.backend._connection()
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute(
            "INSERT INTO receipts (payment_intent, order_id, subject, body, created,"
            " next_attempt_at) VALUES ('pi_gone', 'ord_gone', 'R', 'b', '2020', '2020')"
        )
    result = invoke(env, "ledger", "check", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    found = {name: f["examples"] for name, f in report["problems"].items() if f["count"]}
    assert found == {"receipts for an unknown order": ["pi_gone"]}
    assert [problem.split(" row ")[0] for problem in report["integrity"]] == [
        "foreign key broken: receipts"
    ]
