"""`bookpay orders export` when its options or its output go wrong, and at a terminal.

Every option is checked before anything is written; --output is replaced only by a complete
export; a path that cannot be written says so in one line with the contract's exit code; and
a terminal gets the shoppers' control characters as escapes, while files and pipes get the
bytes as they are. On SQLite and on PostgreSQL, as tests/test_cli_orders.py.
"""

from __future__ import annotations

import pytest
from hostile_orders import fill_hostile, fill_plain
from test_cli_orders import intent, invoke, ledger_for

HOSTILE = "\x1b[2J\x9b31m\u202eevil\u2028@example.com"


@pytest.fixture
def env(tmp_path, database_url):
    values = {"BOOKPAY_DATA_DIR": str(tmp_path / "data")}
    if database_url:
        values["BOOKPAY_DATABASE_URL"] = database_url
    return values


@pytest.fixture
def shop(env):
    """Plain orders, then hostile ones (escape sequences, C1 controls, bidi overrides)."""
    order = intent("pi_hostile", "succeeded")
    order["receipt_email"] = HOSTILE
    order["shipping"] = {"name": "\x1b]0;owned\x07Jenny\x1b[2J", "address": {"city": "\rParis"}}
    with ledger_for(env) as ledger:
        fill_hostile(ledger, 24)
        fill_plain(ledger)
        ledger.record_intent(order)
    return env


@pytest.fixture
def kept(tmp_path):
    """A folder of its own holding an earlier export that must survive a failed one."""
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "keep.csv").write_text("precious\n")
    return folder


# Options checked before anything is written ------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
def test_an_unknown_status_leaves_the_output_file_as_it_was(shop, kept, fmt):
    target = kept / "keep.csv"
    args = ("--status", "bogus", "--format", fmt, "--output", str(target))
    result = invoke(shop, "orders", "export", *args)
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: Unknown status 'bogus'")
    assert target.read_text() == "precious\n"
    assert [p.name for p in kept.iterdir()] == ["keep.csv"]


def test_an_unknown_status_prints_nothing_on_stdout(shop):
    result = invoke(shop, "orders", "export", "--status", "bogus")
    assert result.exit_code == 2
    assert result.stdout == ""


# --output replaced only by a complete export ----------------------------------------------------


def test_a_failure_mid_export_leaves_the_old_file_and_no_temporary_one(shop, kept, monkeypatch):
    from bookpay.commands import orders as command
    from bookpay.ledger.queries import OrderQueries

    monkeypatch.setattr(command, "EXPORT_BATCH", 5)
    page = OrderQueries._page
    calls = []

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("the database went away")
        return page(self, *args, **kwargs)

    monkeypatch.setattr(OrderQueries, "_page", failing)
    result = invoke(shop, "orders", "export", "--output", str(kept / "keep.csv"))
    assert result.exit_code == 1
    assert "the database went away" in result.stderr
    assert (kept / "keep.csv").read_text() == "precious\n"
    assert [p.name for p in kept.iterdir()] == ["keep.csv"]


def test_a_complete_export_replaces_the_file_through_its_link(shop, kept):
    (kept / "link.csv").symlink_to("keep.csv")
    result = invoke(
        shop, "orders", "export", "--format", "jsonl", "--output", str(kept / "link.csv")
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == f"Wrote 33 orders to {kept / 'link.csv'}\n"
    assert (kept / "link.csv").is_symlink()
    assert (kept / "keep.csv").read_text().count("\n") == 33
    assert (kept / "keep.csv").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in kept.iterdir()) == ["keep.csv", "link.csv"]


def test_a_device_is_written_in_place(shop):
    result = invoke(shop, "orders", "export", "--output", "/dev/null")
    assert result.exit_code == 0, result.output
    assert result.stderr == "Wrote 33 orders to /dev/null\n"


# Paths that cannot be written --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "code", "message"),
    [
        ("", 2, "--output needs a file name; it was empty."),
        ("out", 2, "--output {path} is a folder: give the name of a file in it."),
        ("out/", 2, "--output {path} is a folder: give the name of a file in it."),
        ("missing/x.csv", 5, "Cannot write the export to {path}: No such file or directory."),
    ],
)
def test_an_unusable_output_path_says_why_in_one_line(shop, kept, name, code, message):
    path = str(kept.parent / name) if name else ""
    if name.endswith("/"):
        path += "/"
    result = invoke(shop, "orders", "export", "--output", path)
    assert (result.exit_code, result.stdout) == (code, "")
    assert result.stderr == f"Error: {message.format(path=path)}\n"
    assert [p.name for p in kept.iterdir()] == ["keep.csv"]
