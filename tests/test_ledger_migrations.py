"""A ledger written by an earlier (or a later) bookpay, opened by this one, on both databases."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bookpay.cli import app
from bookpay.ledger import SCHEMA_VERSION
from bookpay.ledger.migrations import MIGRATIONS

runner = CliRunner()
NOW = "2026-01-02T03:04:05.000Z"


def env_for(data_dir: Path, url: str | None) -> dict[str, str]:
    env = {"BOOKPAY_DATA_DIR": str(data_dir)}
    if url:
        env["BOOKPAY_DATABASE_URL"] = url
    return env


def _rows(version: int) -> list[tuple[str, tuple]]:
    """An order of one book, fulfilled with its receipt, as a ledger at ``version`` holds it."""
    rows = [
        (
            "INSERT INTO orders (id, payment_intent, item_id, amount, currency, email, status,"
            " charge, created, updated, fulfilled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                "ord_old",
                "pi_old",
                "1",
                2300,
                "usd",
                "a@example.com",
                "paid",
                "ch_old",
                NOW,
                NOW,
                NOW,
            ),
        ),
        (
            "INSERT INTO fulfilments (payment_intent, order_id, amount, currency, fulfilled_at)"
            " VALUES (?, ?, ?, ?, ?)",
            ("pi_old", "ord_old", 2300, "usd", NOW),
        ),
        (
            "INSERT INTO receipts (payment_intent, order_id, recipient, subject, body, status,"
            " created, next_attempt_at, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ("pi_old", "ord_old", "a@example.com", "Receipt", "body", "sent", NOW, NOW, NOW),
        ),
        (
            "INSERT INTO events (id, type, payment_intent, created, livemode, received_at,"
            " processed_at, handled, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ("evt_old", "payment_intent.succeeded", "pi_old", 1, 0, NOW, NOW, 1, "fulfilled"),
        ),
    ]
    if version >= 4:
        rows.append(
            (
                "INSERT INTO tax_records (id, kind, order_id, payment_intent, refund, amount,"
                " status, next_attempt_at, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                ("rev:re_old", "reversal", "ord_old", "pi_old", "re_old", 500, "pending", NOW, NOW),
            )
        )
    return rows


def old_ledger(data_dir: Path, url: str | None, version: int) -> None:
    """A ledger at schema ``version``, made by the migrations that version had shipped."""
    if url is None:
        data_dir.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(data_dir / "bookpay.sqlite3", isolation_level=None)
        for migration in MIGRATIONS[:version]:
            for statement in migration.sqlite:
                conn.execute(statement)
        for sql, params in _rows(version):
            conn.execute(sql, params)
        conn.execute(f"PRAGMA user_version = {version}")
        conn.close()
        return
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute("CREATE TABLE bookpay_schema (version INTEGER)")
        conn.execute("INSERT INTO bookpay_schema (version) VALUES (%s)", (version,))
        for migration in MIGRATIONS[:version]:
            for statement in migration.postgresql:
                conn.execute(statement)
        for sql, params in _rows(version):
            conn.execute(sql.replace("?", "%s"), params)


def version_of(data_dir: Path, url: str | None) -> int:
    if url is None:
        conn = sqlite3.connect(data_dir / "bookpay.sqlite3")
        try:
            return conn.execute("PRAGMA user_version").fetchone()[0]
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute("SELECT version FROM bookpay_schema").fetchone()[0]


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION))
def test_a_ledger_at_every_earlier_version_migrates_with_its_data(tmp_path, database_url, version):
    env = env_for(tmp_path / "data", database_url)
    old_ledger(tmp_path / "data", database_url, version)
    result = runner.invoke(app, ["orders", "show", "ord_old", "--json"], env=env)
    assert result.exit_code == 0, result.output
    order = json.loads(result.stdout)
    assert (order["payment_intent"], order["status"], order["amount"]) == ("pi_old", "paid", 2300)
    assert version_of(tmp_path / "data", database_url) == SCHEMA_VERSION
    check = runner.invoke(app, ["ledger", "check", "--json"], env=env)
    report = json.loads(check.stdout)
    assert report["schema_version"] == SCHEMA_VERSION
    assert report["counts"]["orders"] == 1 and report["counts"]["receipts"] == 1
    # Before version 3 an order was one copy of one book: it becomes one line.
    assert report["counts"]["order_lines"] == (1 if version < 3 else 0)
    assert report["counts"]["tax_records"] == (1 if version >= 4 else 0)
    assert check.exit_code == 0, check.output


def newer_ledger(data_dir: Path, url: str | None) -> None:
    old_ledger(data_dir, url, SCHEMA_VERSION)
    if url is None:
        conn = sqlite3.connect(data_dir / "bookpay.sqlite3")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        conn.close()
    else:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE bookpay_schema SET version = %s", (SCHEMA_VERSION + 1,))


def test_orders_an_earlier_version_noted_as_never_to_be_fulfilled_keep_it(tmp_path, database_url):
    """Before version 8 only the note said that an order will never be fulfilled (and a later
    event's note erased it): an order whose note still says so keeps the fact from then on."""
    from bookpay.config import Settings
    from bookpay.ledger import open_ledger

    old_ledger(tmp_path / "data", database_url, 7)
    refused = (
        "INSERT INTO orders (id, payment_intent, amount, currency, status, note, created, updated)"
        " VALUES ('ord_refused', 'pi_refused', 2967, 'usd', 'paid',"
        " 'not fulfilled: it ships elsewhere', ?, ?)"
    )
    if database_url is None:
        conn = sqlite3.connect(tmp_path / "data" / "bookpay.sqlite3", isolation_level=None)
        conn.execute(refused, (NOW, NOW))
        conn.close()
    else:
        import psycopg

        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(refused.replace("?", "%s"), (NOW, NOW))
    ledger = open_ledger(Settings(data_dir=tmp_path / "data", database_url=database_url))
    try:
        assert ledger.find_order("ord_refused")["not_fulfilled_at"] == NOW
        assert ledger.find_order("ord_old")["not_fulfilled_at"] is None
    finally:
        ledger.close()


def _insert_orders(data_dir: Path, url: str | None, rows: list[tuple]) -> None:
    """Orders not fulfilled, as an earlier version wrote them: (id, status, note, refused at)."""
    sql = (
        "INSERT INTO orders (id, payment_intent, amount, currency, status, note, created,"
        " updated, not_fulfilled_at) VALUES (?, ?, 2300, 'usd', ?, ?, ?, ?, ?)"
    )
    params = [
        (oid, oid.replace("ord_", "pi_"), status, note, NOW, NOW, at)
        for oid, status, note, at in rows
    ]
    if url is None:
        conn = sqlite3.connect(data_dir / "bookpay.sqlite3", isolation_level=None)
        conn.executemany(sql, params)
        conn.close()
        return
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cursor:
        cursor.executemany(sql.replace("?", "%s"), params)


def test_orders_an_earlier_version_refused_get_why_from_their_note(tmp_path, database_url):
    """Before version 9 only the note said why an order's fulfilment was refused (and a later
    dispute's note replaced it): an order whose note still says so gets the reason; one whose
    note a dispute rewrote keeps that it was refused, with no reason. So `ledger check` still
    finds an order refunded in full first whose refund failed, as it did before."""
    from bookpay.config import Settings
    from bookpay.ledger import open_ledger
    from bookpay.ledger.check import check_ledger

    refunded_first = "not fulfilled: refunded in full before it was fulfilled"
    disputed_first = "not fulfilled: disputed before it was fulfilled"
    mismatch = "not fulfilled: amount 1 usd does not match the recorded quote 2300 usd"
    old_ledger(tmp_path / "data", database_url, 8)
    _insert_orders(
        tmp_path / "data",
        database_url,
        [
            ("ord_refunded", "paid", refunded_first, NOW),  # its refund failed since
            ("ord_disputed", "dispute_lost", disputed_first, NOW),
            ("ord_mismatch", "paid", mismatch, NOW),
            ("ord_rewritten", "paid", "dispute du_1: fraudulent, won", NOW),
            ("ord_waiting", "paid", refunded_first, None),
        ],
    )
    ledger = open_ledger(Settings(data_dir=tmp_path / "data", database_url=database_url))
    try:
        refused = {
            oid: ledger.find_order(oid)["fulfilment_refused"]
            for oid in ("ord_refunded", "ord_disputed", "ord_mismatch", "ord_rewritten", "ord_old")
        }
        assert refused == {
            "ord_refunded": "refunded_first",
            "ord_disputed": "disputed_first",
            "ord_mismatch": "mismatch",
            "ord_rewritten": None,
            "ord_old": None,
        }
        # Not refused (no not_fulfilled_at), whatever its note says: never given a reason.
        assert ledger.find_order("ord_waiting")["fulfilment_refused"] is None
        found = {f.name: f.examples for f in check_ledger(ledger).problems if f.count}
        assert list(found.values()) == [["ord_refunded"]]
        assert next(iter(found)).startswith("orders refunded in full or disputed before")
    finally:
        ledger.close()


def test_the_default_tax_listing_reads_failed_refunds_through_their_index(tmp_path, database_url):
    """`bookpay report tax` lists the refused and owed records and the reversals whose refund
    failed (an OR): a ledger from version 8 gets an index for that second arm, so the query
    reads the few entries of two indexes. Before, SQLite read every recorded record through
    ``tax_records_due`` and PostgreSQL scanned the table (0.5 s and 50 ms at 400,000)."""
    from bookpay.config import Settings
    from bookpay.ledger import open_ledger
    from bookpay.ledger.taxrecords import listing_query

    old_ledger(tmp_path / "data", database_url, 8)
    sql, params = listing_query(("refused", "pending"), 1000, refund_failed=True)
    ledger = open_ledger(Settings(data_dir=tmp_path / "data", database_url=database_url))
    try:
        with ledger.transaction() as tx:  # mostly recorded, as a shop's tax records are
            tx.many(
                "INSERT INTO tax_records (id, kind, order_id, payment_intent, status,"
                " next_attempt_at, created, refund_failed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (f"rev:re_{n}", "reversal", f"ord_{n}", f"pi_{n}", status, NOW, NOW, failed)
                    for n in range(2000)
                    for status in ["pending" if n % 100 == 0 else "recorded"]
                    for failed in [NOW if n % 500 == 1 else None]
                ],
            )
        with ledger.transaction() as tx:
            if ledger.kind == "postgresql":
                tx.run("ANALYZE tax_records")  # as autovacuum does
                # Still a small table, whose sequential scan would be cheapest: what a large
                # one gets is what this plan shows.
                tx.run("SET LOCAL enable_seqscan = off")
                plan = [row[0] for row in tx.tuples(f"EXPLAIN {sql}", params)]
                scan = "Seq Scan on tax_records"
            else:
                plan = [row[3] for row in tx.tuples(f"EXPLAIN QUERY PLAN {sql}", params)]
                scan = "SCAN t"
    finally:
        ledger.close()
    text = "\n".join(plan)
    assert "tax_records_due" in text and "tax_records_refund_failed" in text, text
    assert not any(line.strip().startswith(scan) for line in plan), text


def test_quotes_of_an_earlier_version_have_no_generation_and_are_found_through_their_cart(
    tmp_path, database_url
):
    """A ledger from version 9: its quotes were not told which payment of their cart they are
    for (NULL: the attempts beside one go by the times, as before), and the attempts of a
    cart are read through the new index on (cart_id, generation), not the whole table."""
    from bookpay.config import Settings
    from bookpay.ledger import open_ledger

    old_ledger(tmp_path / "data", database_url, 9)
    quote_sql = (
        "INSERT INTO quotes (payment_intent, order_id, attempt_id, cart_id, currency, subtotal,"
        " total, created, updated) VALUES (?, ?, ?, 'cart_1', 'usd', 2300, 2300, ?, ?)"
    )
    with contextlib.ExitStack() as stack:
        if database_url is None:
            conn = sqlite3.connect(tmp_path / "data" / "bookpay.sqlite3", isolation_level=None)
            stack.callback(conn.close)
            run = conn.execute
        else:
            import psycopg

            conn = stack.enter_context(psycopg.connect(database_url, autocommit=True))

            def run(sql, params):
                return conn.execute(sql.replace("?", "%s"), params)

        for n in range(2):
            run(quote_sql, (f"pi_q{n}", f"ord_q{n}", f"att_{n}", NOW, NOW))
    ledger = open_ledger(Settings(data_dir=tmp_path / "data", database_url=database_url))
    try:
        assert ledger.quote_for("pi_q0")["generation"] is None
        assert [row["payment_intent"] for row in ledger.attempts_beside("pi_q0")] == ["pi_q1"]
        sql = "SELECT payment_intent FROM quotes WHERE cart_id = ? AND generation = ?"
        with ledger.transaction() as tx:
            if ledger.kind == "postgresql":
                tx.run("SET LOCAL enable_seqscan = off")  # a small table: as a large one is
                plan = "\n".join(row[0] for row in tx.tuples(f"EXPLAIN {sql}", ("cart_1", 0)))
            else:
                rows = tx.tuples(f"EXPLAIN QUERY PLAN {sql}", ("cart_1", 0))
                plan = "\n".join(row[3] for row in rows)
        assert "quotes_cart_generation" in plan, plan
    finally:
        ledger.close()


def test_a_ledger_from_a_newer_bookpay_is_refused_and_left_alone(tmp_path, database_url):
    env = env_for(tmp_path / "data", database_url)
    newer_ledger(tmp_path / "data", database_url)
    for command in (["orders", "list"], ["ledger", "check"]):
        result = runner.invoke(app, command, env=env)
        assert result.exit_code == 5, result.output
        assert result.stderr.startswith("Error: The orders ledger ")
        assert f"was written by a newer bookpay (schema {SCHEMA_VERSION + 1})" in result.stderr
        assert "Upgrade bookpay" in result.stderr and "Traceback" not in result.output
    assert version_of(tmp_path / "data", database_url) == SCHEMA_VERSION + 1


def test_a_copy_into_a_ledger_from_a_newer_bookpay_is_refused(tmp_path, postgres_url):
    source = env_for(tmp_path / "data", None)
    old_ledger(tmp_path / "data", None, SCHEMA_VERSION)
    newer_ledger(tmp_path / "target", postgres_url)
    result = runner.invoke(app, ["ledger", "copy", "--to", postgres_url], env=source)
    assert result.exit_code == 5, result.output
    assert "was written by a newer bookpay" in result.stderr
    assert version_of(tmp_path / "target", postgres_url) == SCHEMA_VERSION + 1


def _bookpay(env: dict[str, str], *args: str, code: str | None = None) -> subprocess.Popen:
    command = [sys.executable, "-m", "bookpay", *args] if code is None else [
        sys.executable, "-c", code, *args
    ]  # fmt: skip
    return subprocess.Popen(
        command,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_processes_opening_an_old_ledger_at_once_migrate_it_once(tmp_path, database_url):
    env = env_for(tmp_path / "data", database_url)
    old_ledger(tmp_path / "data", database_url, 1)
    processes = [_bookpay(env, "orders", "list", "--json") for _ in range(4)]
    for process in processes:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        assert [o["id"] for o in json.loads(out)] == ["ord_old"]
    assert version_of(tmp_path / "data", database_url) == SCHEMA_VERSION
    result = runner.invoke(app, ["ledger", "check", "--json"], env=env)
    assert json.loads(result.stdout)["counts"]["order_lines"] == 1  # migration 3 ran once


# In a process of its own: migrations from 2 on, where the process dies after the first
# statements of migration 5 (the others not yet run, nothing committed).
KILLED_HALF_WAY = """
import os, sys
from bookpay.ledger import migrations, sqlite, postgres

class Dying:
    def __init__(self, migration):
        self.migration = migration

    def statements(self, kind):
        yield from self.migration.statements(kind)[:2]
        os._exit(9)

    @property
    def sqlite(self):
        return self.statements("sqlite")

    @property
    def postgresql(self):
        return self.statements("postgresql")

dying = (*migrations.MIGRATIONS[:4], Dying(migrations.MIGRATIONS[4]), *migrations.MIGRATIONS[5:])
sqlite.MIGRATIONS = postgres.MIGRATIONS = dying
from bookpay.cli import app
app(["orders", "list"])
"""


def test_a_migration_killed_half_way_leaves_the_old_version(tmp_path, database_url):
    env = env_for(tmp_path / "data", database_url)
    old_ledger(tmp_path / "data", database_url, 2)
    process = _bookpay(env, code=KILLED_HALF_WAY)
    process.communicate(timeout=60)
    assert process.returncode == 9
    assert version_of(tmp_path / "data", database_url) == 2
    result = runner.invoke(app, ["orders", "show", "ord_old", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert version_of(tmp_path / "data", database_url) == SCHEMA_VERSION
    assert json.loads(runner.invoke(app, ["ledger", "check", "--json"], env=env).stdout)["ok"]


def _run_on(stack, tmp_path, database_url):
    """A runner of statements (``?`` marks) straight on an old ledger's database."""
    if database_url is None:
        conn = sqlite3.connect(tmp_path / "data" / "bookpay.sqlite3", isolation_level=None)
        stack.callback(conn.close)
        return conn.execute
    import psycopg

    conn = stack.enter_context(psycopg.connect(database_url, autocommit=True))
    return lambda sql, params=(): conn.execute(sql.replace("?", "%s"), params)


def test_carts_paid_in_the_last_week_before_schema_11_owe_their_siblings_canceling(
    tmp_path, database_url
):
    """A ledger from version 10 never owed the canceling: the carts it settled in the last 7
    days with another attempt of that payment still open owe it after the upgrade (the
    canceler retrieves each and decides); those older, alone, with their others all canceled,
    or of another payment of the cart, do not."""
    from bookpay.config import Settings
    from bookpay.ledger import open_ledger
    from bookpay.ledger.model import now_iso, parse_iso

    old_ledger(tmp_path / "data", database_url, 10)
    day, week = now_iso(-86400), now_iso(-8 * 86400)
    quotes = [  # PaymentIntent, cart, generation, settled, canceled
        ("pi_paid", "cart_1", 0, day, None),
        ("pi_open", "cart_1", 0, None, None),  # on its 3-D Secure page, say
        ("pi_next", "cart_1", 1, None, None),  # the cart's next payment: not a sibling
        ("pi_long_ago", "cart_2", 0, week, None),
        ("pi_long_open", "cart_2", 0, None, None),
        ("pi_alone", "cart_3", 0, day, None),
        ("pi_next3", "cart_3", 1, None, None),
        ("pi_tidy", "cart_4", 0, day, None),
        ("pi_tidied", "cart_4", 0, None, day),
        ("pi_older", "cart_5", None, day, None),  # from before generations: the canceler decides
        ("pi_older_open", "cart_5", None, None, None),
    ]
    sql = (
        "INSERT INTO quotes (payment_intent, order_id, attempt_id, cart_id, currency, subtotal,"
        " total, created, updated, generation, settled_at, canceled_at)"
        " VALUES (?, ?, ?, ?, 'usd', 2300, 2300, ?, ?, ?, ?, ?)"
    )
    with contextlib.ExitStack() as stack:
        run = _run_on(stack, tmp_path, database_url)
        for pi, cart, generation, settled, canceled in quotes:
            row = (pi, f"ord_{pi}", f"att_{pi}", cart, week, week, generation, settled, canceled)
            run(sql, row)
    with open_ledger(Settings(data_dir=tmp_path / "data", database_url=database_url)) as ledger:
        owed = {row["payment_intent"]: row for row in ledger.sibling_cancels()}
        assert sorted(owed) == ["pi_older", "pi_paid"]
        row = owed["pi_paid"]
        assert (row["cart_id"], row["status"], row["attempts"]) == ("cart_1", "pending", 0)
        assert parse_iso(row["next_attempt_at"]) <= parse_iso(now_iso())  # due at once
        assert ledger.next_sibling_cancel_due() is not None
    assert version_of(tmp_path / "data", database_url) == SCHEMA_VERSION


def test_cancelings_an_earlier_version_gave_up_are_owed_again(tmp_path, database_url):
    """Version 11 gave a row up after a few tries while Stripe was unavailable: its siblings
    may still be open and chargeable, so it is pending again, due at once (done ones stay)."""
    from bookpay.config import Settings
    from bookpay.ledger import open_ledger

    old_ledger(tmp_path / "data", database_url, 11)
    sql = (
        "INSERT INTO sibling_cancels (payment_intent, cart_id, status, attempts, next_attempt_at,"
        " last_error, created, done_at) VALUES (?, 'cart_1', ?, 4, ?, ?, ?, ?)"
    )
    with contextlib.ExitStack() as stack:
        run = _run_on(stack, tmp_path, database_url)
        run(sql, ("pi_given_up", "given_up", NOW, "Could not reach Stripe.", NOW, NOW))
        run(sql, ("pi_done", "done", NOW, None, NOW, NOW))
    with open_ledger(Settings(data_dir=tmp_path / "data", database_url=database_url)) as ledger:
        rows = {row["payment_intent"]: row for row in ledger.sibling_cancels()}
        again = rows["pi_given_up"]
        assert (again["status"], again["done_at"], again["attempts"]) == ("pending", None, 4)
        assert again["last_error"] == "Could not reach Stripe."
        assert (rows["pi_done"]["status"], rows["pi_done"]["done_at"]) == ("done", NOW)
        assert [r["payment_intent"] for r in ledger.claim_sibling_cancels()] == ["pi_given_up"]
        ledger.release_sibling_cancels()
