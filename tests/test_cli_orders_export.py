"""`bookpay orders export` when its options or its output go wrong, and at a terminal.

Every option is checked before anything is written; --output is replaced only by a complete
export; a path that cannot be written says so in one line with the contract's exit code; and
a terminal gets the shoppers' control characters as escapes, while files and pipes get the
bytes as they are. On SQLite and on PostgreSQL, as tests/test_cli_orders.py.
"""

from __future__ import annotations

import csv
import errno
import io
import json

import pytest
from hostile_orders import fill_hostile, fill_plain
from test_cli_orders import env, fail_reads, intent, invoke, ledger_for  # noqa: F401

from bookpay.terminal import printable

HOSTILE = "\x1b[2J\x9b31m\u202eevil\u2028@example.com"


@pytest.fixture
def shop(env):  # noqa: F811
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


# `orders export`, held once it has written into its temporary file, until the test's signal.
MID_EXPORT = """
import sys, threading
from bookpay.commands import orders

def held(batches, fmt, out, **kwargs):
    out.write("order_id\\n")
    out.flush()
    print("exporting", file=sys.stderr, flush=True)
    threading.Event().wait(120)

orders._write = held
sys.argv = ["bookpay", "orders", "export", *sys.argv[1:]]
from bookpay.__main__ import main
main()
"""


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGHUP"])
def test_a_kill_mid_export_leaves_the_old_file_and_no_temporary_one(tmp_path, kept, signum):
    """`kill` (SIGTERM), or a terminal closing (SIGHUP), mid-export left `.keep.csv.*.part`,
    customers' addresses in it, beside the file: it stops as Ctrl-C does, the file kept."""
    import os
    import signal
    import subprocess
    import sys

    environment = {**os.environ, "BOOKPAY_DATA_DIR": str(tmp_path / "data")}
    with ledger_for(environment) as ledger:
        fill_plain(ledger)

    def prepare() -> None:  # the test runner may ignore SIGHUP (nohup)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)

    process = subprocess.Popen(
        [sys.executable, "-c", MID_EXPORT, "--output", str(kept / "keep.csv")],
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        preexec_fn=prepare,
    )
    try:
        assert process.stderr.readline() == "exporting\n"
        assert [p.suffix for p in kept.iterdir() if p.name != "keep.csv"] == [".part"]
        process.send_signal(getattr(signal, signum))
        assert process.wait(timeout=60) == 130
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()
    assert (kept / "keep.csv").read_text() == "precious\n"
    assert [p.name for p in kept.iterdir()] == ["keep.csv"]


def fail_reading(monkeypatch, shop_env, lines: bool) -> str:
    """A read of the export fails in the ledger's database: the third batch of orders, or with
    --lines their lines (read once for the first 1000 orders). What the command must say."""
    from bookpay.commands import orders as command

    monkeypatch.setattr(command, "EXPORT_BATCH", 5)
    if lines:
        return fail_reads(monkeypatch, shop_env, "order_lines")
    return fail_reads(monkeypatch, shop_env, "orders", nth=3)


@pytest.mark.parametrize("lines", [False, True], ids=["orders", "lines"])
@pytest.mark.parametrize("to_file", [True, False], ids=["file", "stdout"])
def test_a_ledger_that_fails_mid_export_is_a_read_failure(shop, kept, monkeypatch, lines, to_file):
    """A read of the ledger that fails is not the output's: the ledger is unavailable (exit 5,
    in one line), the old file is kept, and no temporary file is left."""
    said = fail_reading(monkeypatch, shop, lines)
    output = ("--output", str(kept / "keep.csv")) if to_file else ()
    result = invoke(shop, "orders", "export", *(("--lines",) if lines else ()), *output)
    assert result.exit_code == 5, result.output
    assert result.stderr.startswith(f"Error: {said}")
    assert len(result.stderr.splitlines()) == 1
    assert "Cannot write" not in result.stderr
    assert (kept / "keep.csv").read_text() == "precious\n"
    assert [p.name for p in kept.iterdir()] == ["keep.csv"]


def test_a_write_failure_mid_export_is_still_the_outputs(shop, kept, monkeypatch):
    from bookpay.commands import orders as command
    from bookpay.csvsafe import SafeWriter

    monkeypatch.setattr(command, "EXPORT_BATCH", 5)
    write = SafeWriter.writerows
    calls = []

    def full(self, rows):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return write(self, rows)

    monkeypatch.setattr(SafeWriter, "writerows", full)
    target = kept / "keep.csv"
    result = invoke(shop, "orders", "export", "--output", str(target))
    assert (result.exit_code, result.stdout) == (1, "")
    message = f"Cannot write the export to {target}: No space left on device."
    assert result.stderr == f"Error: {message}\n"
    assert target.read_text() == "precious\n"
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
        ("missing/x.csv", 1, "Cannot write the export to {path}: No such file or directory."),
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


# At a terminal -----------------------------------------------------------------------------------


def at_a_terminal(monkeypatch):
    from bookpay.commands import orders as command

    monkeypatch.setattr(command, "is_terminal", lambda stream=None: True, raising=False)


def test_csv_at_a_terminal_shows_control_characters_as_escapes(shop, monkeypatch, tmp_path):
    """Each cell is the file's cell through ``printable``: neutralised as in the file, and no
    control character reaches the terminal."""
    target = tmp_path / "orders.csv"
    assert invoke(shop, "orders", "export", "--output", str(target)).exit_code == 0
    piped = invoke(shop, "orders", "export").stdout
    assert "\x1b" in piped  # a pipe gets the bytes as they are
    at_a_terminal(monkeypatch)
    shown = invoke(shop, "orders", "export").stdout_bytes.decode()  # .stdout has \r\n as \n
    assert not any(printable(char) != char for char in shown.replace("\r\n", ""))
    assert "\\x1b]0;owned\\x07Jenny\\x1b[2J" in shown and "'\\rParis" in shown
    filed = list(csv.reader(io.StringIO(target.read_bytes().decode())))
    assert list(csv.reader(io.StringIO(shown))) == [[printable(c) for c in row] for row in filed]


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_json_at_a_terminal_escapes_what_json_dumps_leaves(shop, monkeypatch, fmt):
    """C1 controls, bidi overrides and line separators become JSON escapes: the same data."""
    piped = invoke(shop, "orders", "export", "--format", fmt).stdout
    assert "\u202e" in piped
    at_a_terminal(monkeypatch)
    shown = invoke(shop, "orders", "export", "--format", fmt).stdout
    assert not any(printable(char) != char for char in shown.replace("\n", ""))

    def parsed(text):
        return json.loads(text) if fmt == "json" else [json.loads(s) for s in text.split("\n")[:-1]]

    assert parsed(shown) == parsed(piped)
    [hostile] = [order for order in parsed(shown) if order["payment_intent"] == "pi_hostile"]
    assert hostile["email"] == HOSTILE


def test_csv_at_a_real_terminal(shop):
    """Through a pseudo-terminal, as `script -qc "bookpay orders export" /dev/null` shows it."""
    from test_cli import run_in_terminal

    shown = run_in_terminal(["orders", "export"], shop)
    assert "\x1b" not in shown and "\\x1b[2J\\x9b31m\\u202eevil\\u2028@example.com" in shown


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_lines_at_a_terminal_show_control_characters_as_escapes(env, monkeypatch, fmt):  # noqa: F811
    from bookpay.quote import Quote, QuoteLine

    quote = Quote((QuoteLine("=1", "\x1b[2JTitle\u202e", 1, 100),), "usd")
    with ledger_for(env) as ledger:
        ledger.record_quote("pi_x", "ord_00000000000000ab", quote)
        ledger.record_intent(
            {"id": "pi_x", "status": "succeeded", "amount": 100, "currency": "usd",
             "receipt_email": HOSTILE, "metadata": {"order_id": "ord_00000000000000ab"}}
        )  # fmt: skip
    at_a_terminal(monkeypatch)
    shown = invoke(env, "orders", "export", "--lines", "--format", fmt).stdout_bytes.decode()
    assert not any(printable(char) != char for char in shown.replace("\r\n", "").strip())
    if fmt == "csv":
        [row] = csv.DictReader(io.StringIO(shown))
        assert (row["item_id"], row["title"]) == ("'=1", "\\x1b[2JTitle\\u202e")
        assert row["email"] == printable(HOSTILE)
    else:
        assert json.loads(shown)["title"] == "\x1b[2JTitle\u202e"
