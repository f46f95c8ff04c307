"""`bookpay orders list | show | export`, through Typer's CliRunner, over a ledger made here."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from bookpay.cli import app
from bookpay.orders import Ledger

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
        "metadata": {"item_id": item, "integration": "bookpay"},
        "receipt_email": f"{pi}@example.com",
        "shipping": {
            "name": "Jenny Rosen",
            "address": {"line1": "1 Main St", "city": "Paris", "country": "FR"},
        },
        "latest_charge": None,
        "last_payment_error": None,
    }


@pytest.fixture
def data_dir(tmp_path):
    """A ledger with a paid order (with two events) and a processing one."""
    folder = tmp_path / "data"
    ledger = Ledger.open(folder)
    ledger.record_fulfilment(intent("pi_paid", "succeeded"), lambda o: (None, "s", "b"))
    ledger.record_intent(intent("pi_wait", "processing", item="2", amount=2500))
    for event_id, kind in (
        ("evt_1", "payment_intent.created"),
        ("evt_2", "payment_intent.succeeded"),
    ):
        ledger.receive_event(event_id, kind, "pi_paid")
    ledger.finish_event("evt_2", handled=True, outcome="fulfilled")
    ledger.close()
    return folder


def invoke(data_dir, *args):
    return runner.invoke(app, list(args), env={"BOOKPAY_DATA_DIR": str(data_dir)})


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


def test_list_of_an_empty_ledger(tmp_path):
    result = invoke(tmp_path / "empty", "orders", "list")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "No orders yet.\n")
    result = invoke(tmp_path / "empty", "orders", "list", "--json")
    assert (result.exit_code, result.stdout) == (0, "[]\n")


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


def test_export_csv_to_stdout(data_dir):
    result = invoke(data_dir, "orders", "export")
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["payment_intent"] for r in rows] == ["pi_paid", "pi_wait"]  # oldest first
    assert set(rows[0]) >= ORDER_KEYS
    assert rows[0]["amount"] == "2300"
    assert json.loads(rows[0]["shipping"])["name"] == "Jenny Rosen"


def test_export_json_to_a_file(data_dir, tmp_path):
    target = tmp_path / "orders.json"
    result = invoke(data_dir, "orders", "export", "--format", "json", "--output", str(target))
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == f"Wrote 2 orders to {target}\n"
    assert [o["status"] for o in json.loads(target.read_text())] == ["paid", "processing"]


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
