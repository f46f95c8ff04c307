"""`bookpay orders list | show | export`, through Typer's CliRunner, over a ledger made here.

Each runs on SQLite and on PostgreSQL (``BOOKPAY_DATABASE_URL``), as a user would point it.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bookpay.cli import app
from bookpay.config import Settings
from bookpay.ledger import open_ledger

runner = CliRunner()
ORDER_KEYS = {
    "id",
    "payment_intent",
    "item_id",
    "amount",
    "currency",
    "email",
    "status",
    "created",
    "fulfilled_at",
}


def intent(pi, status, item="1", amount=2300):
    return {
        "id": pi,
        "status": status,
        "amount": amount,
        "currency": "usd",
        "metadata": {"item_id": item, "integration": "bookpay", "shop_id": "shop_test"},
        "receipt_email": f"{pi}@example.com",
        "shipping": {
            "name": "Jenny Rosen",
            "address": {"line1": "1 Main St", "city": "Paris", "country": "FR"},
        },
        "latest_charge": None,
        "last_payment_error": None,
    }


@pytest.fixture
def env(tmp_path, database_url):
    """The environment a user would set: a data folder, and the ledger's URL if not SQLite."""
    values = {"BOOKPAY_DATA_DIR": str(tmp_path / "data")}
    if database_url:
        values["BOOKPAY_DATABASE_URL"] = database_url
    return values


def ledger_for(env):
    settings = Settings(
        data_dir=Path(env["BOOKPAY_DATA_DIR"]), database_url=env.get("BOOKPAY_DATABASE_URL")
    )
    return open_ledger(settings)


@pytest.fixture
def data_dir(env):
    """A ledger with a paid order (with two events) and a processing one."""
    ledger = ledger_for(env)
    ledger.record_fulfilment(intent("pi_paid", "succeeded"), lambda o: (None, "s", "b"))
    ledger.record_intent(intent("pi_wait", "processing", item="2", amount=2500))
    for event_id, kind in (
        ("evt_1", "payment_intent.created"),
        ("evt_2", "payment_intent.succeeded"),
    ):
        ledger.receive_event(event_id, kind, "pi_paid")
    ledger.finish_event("evt_2", handled=True, outcome="fulfilled")
    ledger.close()
    return env


def invoke(env, *args, columns="200"):
    return runner.invoke(app, list(args), env={**env, "COLUMNS": columns})


def fail_reads(monkeypatch, env, table: str | None = None, nth: int = 1) -> str:
    """The ledger's ``nth`` read (of ``table``, or of anything) fails as its database fails
    below bookpay once open: SQLite's disk I/O error, PostgreSQL's connection lost. Returns the
    message the command must say, up to the reason."""
    if env.get("BOOKPAY_DATABASE_URL"):
        import psycopg

        from bookpay.ledger import postgres as backend

        error = psycopg.OperationalError("server closed the connection unexpectedly")
        said = "Cannot reach the ledger database "
    else:
        from bookpay.ledger import sqlite as backend

        error = sqlite3.OperationalError("disk I/O error")
        said = f"Cannot read the orders ledger {Path(env['BOOKPAY_DATA_DIR']) / 'bookpay.sqlite3'}"
    reads = []

    def failing(read):
        def reading(self, sql, params=()):
            if table is None or re.search(rf"\bFROM {table}\b", sql):
                reads.append(sql)
                if len(reads) == nth:
                    raise error
            return read(self, sql, params)

        return reading

    for name in ("all", "one", "tuples"):
        monkeypatch.setattr(backend.Tx, name, failing(getattr(backend.Tx, name)))
    return said


def test_list_json_carries_the_contracts_fields(data_dir):
    result = invoke(data_dir, "orders", "list", "--json")
    assert result.exit_code == 0, result.output
    orders = json.loads(result.stdout)
    assert [o["payment_intent"] for o in orders] == ["pi_wait", "pi_paid"]
    assert all(set(o) >= ORDER_KEYS for o in orders)
    paid = orders[1]
    assert (paid["status"], paid["amount"], paid["item_id"]) == ("paid", 2300, "1")
    assert paid["id"].startswith("ord_") and paid["fulfilled_at"]
    assert paid["shipping"]["address"]["city"] == "Paris"


def test_list_filters_by_status(data_dir):
    result = invoke(data_dir, "orders", "list", "--status", "processing", "--json")
    assert [o["payment_intent"] for o in json.loads(result.stdout)] == ["pi_wait"]


def test_list_with_an_unknown_status_exits_2(data_dir):
    result = invoke(data_dir, "orders", "list", "--status", "shipped")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: Unknown status 'shipped': use one of pending,")


def test_list_prints_a_table(data_dir):
    result = invoke(data_dir, "orders", "list")
    assert result.exit_code == 0
    header, first, second = result.stdout.splitlines()
    assert header.split() == [
        "Order",
        "PaymentIntent",
        "Item",
        "Amount",
        "Email",
        "Status",
        "Created",
        "Fulfilled",
    ]
    assert first.split()[1:6] == ["pi_wait", "2", "$25.00", "pi_wait@example.com", "processing"]
    assert second.split()[1:6] == ["pi_paid", "1", "$23.00", "pi_paid@example.com", "paid"]


def test_list_with_no_ledger_says_where_it_looked_and_creates_nothing(tmp_path):
    env = {"BOOKPAY_DATA_DIR": str(tmp_path / "empty")}
    result = invoke(env, "orders", "list")
    expected = f"No orders: there is no ledger at {tmp_path / 'empty' / 'bookpay.sqlite3'} yet.\n"
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", expected)
    result = invoke(env, "orders", "list", "--json")
    assert (result.exit_code, result.stdout) == (0, "[]\n")
    result = invoke(env, "orders", "show", "pi_1")  # one line, not a note and then an error
    where = tmp_path / "empty" / "bookpay.sqlite3"
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"Error: No order 'pi_1': there is no ledger at {where} yet.\n"
    assert invoke(env, "orders", "export").exit_code == 0
    # A status no order can have is refused as it is with a ledger, not "no orders".
    for args in (["list"], ["list", "--json"], ["export"]):
        result = invoke(env, "orders", *args, "--status", "")
        assert (result.exit_code, result.stdout) == (2, ""), args
        assert result.stderr.startswith("Error: Unknown status '': use one of pending, ")
    assert not (tmp_path / "empty").exists()


def test_list_with_no_ledger_on_postgresql_creates_no_tables(postgres_url, tmp_path):
    import psycopg

    env = {"BOOKPAY_DATA_DIR": str(tmp_path / "d"), "BOOKPAY_DATABASE_URL": postgres_url}
    result = invoke(env, "orders", "list")
    assert result.exit_code == 0
    assert result.stderr.startswith("No orders: there is no ledger at postgresql://")
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT to_regclass('orders')").fetchone()[0] is None


def test_list_of_an_empty_ledger(env):
    ledger_for(env).close()
    result = invoke(env, "orders", "list")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "No orders yet.\n")


def test_show_by_order_id_or_payment_intent_with_the_timeline(data_dir):
    by_pi = invoke(data_dir, "orders", "show", "pi_paid", "--json")
    assert by_pi.exit_code == 0
    order = json.loads(by_pi.stdout)
    assert set(order) >= ORDER_KEYS
    assert [e["id"] for e in order["events"]] == ["evt_1", "evt_2"]
    assert order["events"][1]["outcome"] == "fulfilled"
    by_id = invoke(data_dir, "orders", "show", order["id"], "--json")
    assert json.loads(by_id.stdout) == order


def test_show_prints_fields_and_events(data_dir):
    result = invoke(data_dir, "orders", "show", "pi_paid")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[1].split() == ["PaymentIntent:", "pi_paid"]
    assert lines[2].split() == ["Status:", "paid"]
    assert "Ship to:        Jenny Rosen, 1 Main St, Paris, France" in lines
    assert "Events" in lines
    assert lines[-2].split()[2:] == ["evt_1", "payment_intent.created", "1", "received,", "not",
                                     "processed"]  # fmt: skip
    assert lines[-1].split()[2:] == ["evt_2", "payment_intent.succeeded", "1", "fulfilled"]


def test_show_unknown_exits_2(data_dir):
    result = invoke(data_dir, "orders", "show", "pi_nope")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "No order 'pi_nope'" in result.stderr
    assert "bookpay orders list" in result.stderr


def test_export_csv_to_stdout_with_the_address_in_columns(data_dir):
    result = invoke(data_dir, "orders", "export")
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["payment_intent"] for r in rows] == ["pi_paid", "pi_wait"]  # oldest first
    assert set(rows[0]) >= ORDER_KEYS
    assert rows[0]["amount"] == "2300"
    assert "shipping" not in rows[0]
    address = {key: value for key, value in rows[0].items() if key.startswith("ship_")}
    assert address == {
        "ship_name": "Jenny Rosen",
        "ship_line1": "1 Main St",
        "ship_line2": "",
        "ship_city": "Paris",
        "ship_state": "",
        "ship_postal_code": "",
        "ship_country": "FR",
    }
    assert rows[0]["created"].endswith("Z")  # ISO 8601, UTC


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_export_csv_neutralises_formulas(env, start):
    """OWASP CSV injection: text from shoppers never becomes a live formula in a spreadsheet."""
    hostile = intent("pi_evil", "succeeded")
    hostile["receipt_email"] = f"{start}cmd|'/C calc'!A0@evil.example"
    hostile["shipping"] = {"name": f'{start}HYPERLINK("http://evil")', "address": {}}
    with ledger_for(env) as ledger:
        ledger.record_intent(hostile)
    rows = list(csv.DictReader(io.StringIO(invoke(env, "orders", "export").stdout)))
    assert rows[0]["email"] == f"'{start}cmd|'/C calc'!A0@evil.example"
    assert rows[0]["ship_name"] == f'\'{start}HYPERLINK("http://evil")'
    assert rows[0]["amount"] == "2300"  # numbers stay numbers


def test_export_json_lines_and_filters(data_dir):
    result = invoke(data_dir, "orders", "export", "--format", "jsonl", "--status", "paid")
    assert result.exit_code == 0
    [line] = result.stdout.splitlines()
    order = json.loads(line)
    assert (order["payment_intent"], order["shipping"]["name"]) == ("pi_paid", "Jenny Rosen")


def test_export_json_to_a_private_file(data_dir, tmp_path):
    target = tmp_path / "orders.json"
    result = invoke(data_dir, "orders", "export", "--format", "json", "--output", str(target))
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == f"Wrote 2 orders to {target}\n"
    assert [o["status"] for o in json.loads(target.read_text())] == ["paid", "processing"]
    assert target.stat().st_mode & 0o777 == 0o600


def test_export_with_an_unknown_format_exits_2(data_dir):
    assert invoke(data_dir, "orders", "export", "--format", "xml").exit_code == 2


@pytest.mark.parametrize(
    "command",
    [
        ["orders", "list"],
        ["orders", "show"],
        ["orders", "export"],
        ["webhook", "replay"],
        ["webhook", "fixtures"],
        ["webhook", "sign"],
    ],
)
def test_every_command_has_help_with_an_example(command):
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "Example: bookpay " + " ".join(command) in result.stdout


# Paging and filters -------------------------------------------------------------------------------


@pytest.fixture
def many(env):
    """Seven orders created a day apart (2026-01-01 ... 2026-01-07), one email in capitals."""
    with ledger_for(env) as ledger:
        for day in range(1, 8):
            order = ledger.record_intent(intent(f"pi_{day}", "succeeded"))
            with ledger.transaction() as tx:
                tx.execute(
                    "UPDATE orders SET created = ? WHERE id = ?",
                    (f"2026-01-0{day}T12:00:00.000Z", order["id"]),
                )
        with ledger.transaction() as tx:
            tx.execute(
                "UPDATE orders SET email = ? WHERE payment_intent = ?",
                ("Reader@Example.COM", "pi_3"),
            )
    return env


def pis(result):
    return [order["payment_intent"] for order in json.loads(result.stdout)]


def test_list_pages_with_a_cursor(many):
    first = invoke(many, "orders", "list", "--limit", "3", "--json")
    assert pis(first) == ["pi_7", "pi_6", "pi_5"]
    last_id = json.loads(first.stdout)[-1]["id"]
    assert first.stderr == (
        f"Showing 3 orders. Next page: --starting-after {last_id} (or --all for every one).\n"
    )
    second = invoke(many, "orders", "list", "--limit", "3", "--starting-after", last_id, "--json")
    assert pis(second) == ["pi_4", "pi_3", "pi_2"]
    after = json.loads(second.stdout)[-1]["id"]
    third = invoke(many, "orders", "list", "--limit", "3", "--starting-after", after, "--json")
    assert (pis(third), third.stderr) == (["pi_1"], "")


def test_a_page_of_one_says_one_order(many):
    one = invoke(many, "orders", "list", "--limit", "1", "--json")
    assert pis(one) == ["pi_7"]
    assert one.stderr.startswith("Showing 1 order. Next page: --starting-after ord_")
    assert invoke(many, "orders", "list", "--starting-after", "ord_nope").exit_code == 2


def test_list_defaults_to_a_page_of_fifty(env):
    with ledger_for(env) as ledger:
        for n in range(55):
            ledger.record_intent(intent(f"pi_{n:02}", "processing"))
    result = invoke(env, "orders", "list", "--json")
    assert len(json.loads(result.stdout)) == 50
    assert "Next page: --starting-after" in result.stderr
    assert len(json.loads(invoke(env, "orders", "list", "--all", "--json").stdout)) == 55


def test_list_all_streams_every_order_as_json_and_as_tables(many):
    result = invoke(many, "orders", "list", "--all", "--json")
    assert pis(result) == [f"pi_{day}" for day in range(7, 0, -1)]
    assert result.stderr == ""
    table = invoke(many, "orders", "list", "--all").stdout.splitlines()
    assert [line.split()[1] for line in table[1:]] == [f"pi_{day}" for day in range(7, 0, -1)]


def test_list_filters_by_email_in_any_case(many):
    assert pis(invoke(many, "orders", "list", "--email", "reader@example.com", "--json")) == [
        "pi_3"
    ]


STORED_EMAILS = [
    "reader@example.com",
    "a_b@example.com",
    "axb@example.com",
    "100%@example.com",
    "100x@example.com",
    "ÉLOISE@exemple.fr",
    "o'brien@example.com",
]
SOUGHT_EMAILS = [
    ("Reader@EXAMPLE.com", ["reader@example.com"]),
    ("a_b@example.com", ["a_b@example.com"]),  # no LIKE: _ and % are themselves
    ("100%@example.com", ["100%@example.com"]),
    ("O'Brien@example.com", ["o'brien@example.com"]),
    ("ÉLOISE@EXEMPLE.FR", ["ÉLOISE@exemple.fr"]),
    ("éloise@exemple.fr", []),  # A to Z in any case, other letters as given
    ("Éloise@exemple.fr", ["ÉLOISE@exemple.fr"]),
]


@pytest.mark.parametrize(("sought", "found"), SOUGHT_EMAILS)
def test_email_filter_is_the_same_on_sqlite_postgresql_and_stripes_side(env, sought, found):
    from bookpay.commands.paging import same_email

    with ledger_for(env) as ledger:
        for n, email in enumerate(STORED_EMAILS):
            ledger.record_intent({**intent(f"pi_{n}", "succeeded"), "receipt_email": email})
    listed = json.loads(invoke(env, "orders", "list", "--email", sought, "--json").stdout)
    assert sorted(order["email"] for order in listed) == sorted(found)
    # `intent list` checks the e-mails of Stripe's pages itself: by the same rule.
    assert [email for email in STORED_EMAILS if same_email(email, sought)] == found


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--since", "2026-01-05"], ["pi_7", "pi_6", "pi_5"]),
        (["--until", "2026-01-02"], ["pi_2", "pi_1"]),  # a bare date includes that day
        (["--since", "2026-01-02T12:00:00Z", "--until", "2026-01-04T12:00:00Z"], ["pi_3", "pi_2"]),
        (["--since", "2026-01-03T13:00:00+01:00", "--until", "2026-01-03"], ["pi_3"]),
        # A week as `report sales --by week` names it: --until includes the whole week.
        (["--until", "2026-W01"], ["pi_4", "pi_3", "pi_2", "pi_1"]),
        (["--since", "2026-W01-7", "--until", "2026-W01-7"], ["pi_4"]),
        (["--since", "2026-W02"], ["pi_7", "pi_6", "pi_5"]),
        (["--since", "2026-01-03t12:00:00z", "--until", "2026-01-04t12:00Z"], ["pi_3"]),
    ],
)
def test_list_filters_by_date(many, args, expected):
    assert pis(invoke(many, "orders", "list", *args, "--json")) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "is not a date"),
        (["--since", "2026-02-01", "--until", "2026-01-01"], "--since must be earlier"),
    ],
)
def test_list_refuses_bad_dates(many, args, message):
    result = invoke(many, "orders", "list", *args)
    assert result.exit_code == 2
    assert message in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["orders", "list", "--email", ""],
        ["orders", "list", "--email", " "],
        ["orders", "list", "--starting-after", ""],
        ["orders", "list", "--all", "--starting-after", ""],
        ["orders", "export", "--email", ""],
    ],
)
def test_a_blank_email_or_cursor_is_a_usage_error_not_no_filter(many, args):
    # An empty shell variable (--email "$E") would otherwise list every order.
    result = invoke(many, *args, "--json" if args[1] == "list" else "--format=json")
    assert (result.exit_code, result.stdout) == (2, "")
    expected = r"Invalid value for '--(email|starting-after)': expected an (e-mail address|id)"
    assert re.search(expected, result.stderr)


@pytest.mark.parametrize("command", ["list", "export"])
def test_a_status_given_twice_is_refused_not_the_last_one_taken(many, command):
    result = invoke(many, "orders", command, "--status", "paid", "--status", "pending")
    assert (result.exit_code, result.stdout) == (2, "")
    assert "'--status': give it once (one status a list), got paid, pending." in result.stderr


def test_all_as_json_after_an_unknown_order_writes_no_half_array(many):
    result = invoke(many, "orders", "list", "--all", "--json", "--starting-after", "ord_nope")
    assert (result.exit_code, result.stdout) == (2, "")
    assert "No order 'ord_nope' to start after" in result.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--email", "nobody@example.com"], "No orders match."),
        (["--status", "refunded"], "No orders with status refunded."),
        (["--all", "--status", "refunded"], "No orders with status refunded."),
        (["--all", "--email", "nobody@example.com"], "No orders match."),
    ],
)
def test_list_with_filters_that_match_nothing(many, args, said):
    result = invoke(many, "orders", "list", *args)
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", f"{said}\n")
    # --json: `[]` alone on stdout for scripts, and the same words on stderr (README, Paging).
    as_json = invoke(many, "orders", "list", *args, "--json")
    assert (as_json.exit_code, as_json.stdout, as_json.stderr) == (0, "[]\n", f"{said}\n")


# Receipts in `orders show` -----------------------------------------------------------------------


def test_show_says_what_became_of_the_receipt(env):
    from bookpay.mailer import address_problem

    with ledger_for(env) as ledger:
        bad = intent("pi_bad", "succeeded")
        bad["receipt_email"] = "jenny@example.com\r\nBcc: everyone@example.com"
        for item in (intent("pi_good", "succeeded"), bad):
            ledger.record_fulfilment(
                item, lambda o: (o["email"], "Receipt", "body"), recipient_problem=address_problem
            )
    good = json.loads(invoke(env, "orders", "show", "pi_good", "--json").stdout)
    assert good["receipt"]["status"] == "pending"
    shown = invoke(env, "orders", "show", "pi_bad")
    [receipt] = [line for line in shown.stdout.splitlines() if line.startswith("Receipt:")]
    assert receipt.split(None, 1)[1].startswith("undeliverable to jenny@example.com\\r\\nBcc")
    assert receipt.endswith(": the e-mail address contains a line break or control character")
    data = json.loads(invoke(env, "orders", "show", "pi_bad", "--json").stdout)
    assert data["receipt"]["status"] == "undeliverable"


def test_list_all_starting_after_an_order(many):
    first = json.loads(invoke(many, "orders", "list", "--limit", "2", "--json").stdout)
    rest = invoke(many, "orders", "list", "--all", "--starting-after", first[-1]["id"], "--json")
    assert pis(rest) == ["pi_5", "pi_4", "pi_3", "pi_2", "pi_1"]


@pytest.mark.parametrize("args", [[], ["--status", "paid"], ["--since", "2026-03-01"]])
def test_export_csv_matches_a_row_by_row_rendering_of_hostile_orders(
    env, monkeypatch, tmp_path, args
):
    """The export (batched, quotes joined, neutralised only where a formula may start) writes
    the same bytes as the plain way: each order, its quote read alone, every cell through
    neutralise, one csv row at a time. Batches of 7 put ties in creation time across their
    boundaries."""
    from datetime import datetime, timezone

    from hostile_orders import fill_hostile

    from bookpay.commands import orders as command
    from bookpay.csvsafe import neutralise
    from bookpay.ledger import OrderFilter

    monkeypatch.setattr(command, "EXPORT_BATCH", 7)
    with ledger_for(env) as ledger:
        fill_hostile(ledger, 240)
        where = OrderFilter(
            status="paid" if "paid" in args else None,
            since=datetime(2026, 3, 1, tzinfo=timezone.utc) if "--since" in args else None,
        )
        expected = io.StringIO()
        writer = csv.writer(expected, lineterminator="\r\n")
        writer.writerow(command.CSV_COLUMNS)
        for order in ledger.iter_orders(where):
            shipping = order["shipping"] or {}
            address = shipping.get("address") or {}
            quote = ledger.quote_for(order["payment_intent"]) or {}
            cells = [
                *(order[name] for name in command.COLUMNS[:-1]),
                shipping.get("name"),
                *(address.get(key) for key in command.ADDRESS_KEYS),
                *(quote.get(field) for _, field in command.QUOTE_COLUMNS),
                *(order[name] for name in command.LATER_COLUMNS),
            ]
            writer.writerow([neutralise(cell) for cell in cells])
    target = tmp_path / "orders.csv"
    result = invoke(env, "orders", "export", *args, "--output", str(target))
    assert result.exit_code == 0, result.output
    exported = target.read_bytes().decode()
    assert exported == expected.getvalue()
    assert exported.count("\r\n") > 20 and "'=" in exported


def test_export_csv_is_the_pinned_bytes(env, monkeypatch, tmp_path):
    """The export's exact bytes, as the row-by-row export (bookpay before batching and before
    ``csvsafe._unquoted``) wrote them: hostile orders (formulas, quotes, line breaks, NULLs,
    odd shipping JSON), then in batches of their own orders that need nothing done and orders
    whose cells need only quoting, on both backends."""
    from hostile_orders import fill_hostile, fill_plain

    from bookpay.commands import orders as command

    monkeypatch.setattr(command, "EXPORT_BATCH", 4)
    with ledger_for(env) as ledger:
        fill_hostile(ledger, 12)
        fill_plain(ledger)
    target = tmp_path / "orders.csv"
    result = invoke(env, "orders", "export", "--output", str(target))
    assert result.exit_code == 0, result.output
    pinned = Path(__file__).parent / "reference" / "orders-export.csv"
    assert target.read_bytes() == pinned.read_bytes()


def test_postgresql_reads_the_next_batch_while_one_is_written(env, monkeypatch):
    """On PostgreSQL the export's queries run in a thread of their own, overlapping the
    writing; on SQLite (whose rows are made in this process) they run where they are asked."""
    import threading

    from hostile_orders import fill_plain

    from bookpay.commands import orders as command
    from bookpay.ledger.queries import OrderQueries

    monkeypatch.setattr(command, "EXPORT_BATCH", 3)
    with ledger_for(env) as ledger:
        fill_plain(ledger)
    readers = []
    page = OrderQueries._page

    def recording(self, *args, **kwargs):
        readers.append(threading.current_thread() is threading.main_thread())
        return page(self, *args, **kwargs)

    monkeypatch.setattr(OrderQueries, "_page", recording)
    result = invoke(env, "orders", "export")
    assert result.exit_code == 0 and result.stdout.count("ord_plain") == 8
    assert len(readers) == 3
    assert not any(readers) if "BOOKPAY_DATABASE_URL" in env else all(readers)


def test_reading_ahead_keeps_the_order_and_the_errors():
    """The thread reading ahead hands batches over in order, an error where it happened, and
    reads no further than one batch beyond what its caller took."""
    from bookpay.ledger.queries import _read_ahead

    read = []

    def batches():
        for n in range(5):
            read.append(n)
            yield [n]
        raise RuntimeError("the database went away")

    ahead = _read_ahead(batches())
    assert [next(ahead), next(ahead)] == [[0], [1]]
    ahead.close()
    assert read == [0, 1, 2]
    read.clear()
    with pytest.raises(RuntimeError, match="went away"):
        list(_read_ahead(batches()))
    assert read == [0, 1, 2, 3, 4]


def test_order_batches_join_only_the_quotes_own_columns(env):
    """The quote columns go into SQL by name: anything but a column of quotes is refused."""
    with ledger_for(env) as ledger, pytest.raises(ValueError, match="no column"):
        next(ledger.iter_order_batches(quotes=("subtotal FROM quotes; --",)))


# A ledger that fails once it is open -------------------------------------------------------------

READ_COMMANDS = [
    ("orders", "list"),
    ("orders", "list", "--all", "--json"),
    ("orders", "show", "pi_paid"),
    ("orders", "export"),
    ("orders", "export", "--lines"),
    ("report", "sales"),
    ("ledger", "check"),
]


@pytest.mark.parametrize("args", READ_COMMANDS, ids=" ".join)
def test_a_ledger_that_fails_when_read_is_unavailable_in_one_line(data_dir, monkeypatch, args):
    """Not an unexpected error (exit 1): the ledger's, as when it cannot be opened (exit 5)."""
    said = fail_reads(monkeypatch, data_dir)
    result = invoke(data_dir, *args)
    assert result.exit_code == 5, result.output
    assert result.stderr.startswith(f"Error: {said}")
    assert len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.output
    if not data_dir.get("BOOKPAY_DATABASE_URL"):
        assert result.stderr.endswith(": disk I/O error.\n")


@pytest.mark.parametrize("args", READ_COMMANDS, ids=" ".join)
def test_a_ledger_path_that_is_a_folder_is_unavailable_not_missing(tmp_path, args):
    """Not "no ledger yet" (exit 0, or 2 for `ledger check`): it cannot be opened (exit 5)."""
    env = {
        "BOOKPAY_DATA_DIR": str(tmp_path / "data"),
        "BOOKPAY_DATABASE_URL": f"sqlite:///{tmp_path}",
    }
    result = invoke(env, *args)
    assert result.exit_code == 5, result.output
    assert (
        result.stderr == f"Error: The orders ledger {tmp_path} cannot be opened: Is a directory.\n"
    )


@pytest.mark.parametrize("args", READ_COMMANDS, ids=" ".join)
def test_a_data_folder_that_is_a_file_is_unavailable_not_missing(tmp_path, args):
    """BOOKPAY_DATA_DIR naming a file: no ledger can ever be in it, so not "no ledger yet"."""
    (tmp_path / "data").write_text("not a folder\n")
    result = invoke({"BOOKPAY_DATA_DIR": str(tmp_path / "data")}, *args)
    assert result.exit_code == 5, result.output
    ledger = tmp_path / "data" / "bookpay.sqlite3"
    said = f"Error: The orders ledger {ledger} cannot be opened: Not a directory.\n"
    assert result.stderr == said
