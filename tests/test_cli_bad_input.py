"""Bad input at the command line: one line, the contract's exit code, nothing created or lost.

Each case here was once a traceback, an exit 1 ("unexpected"), or worse (a PaymentIntent made and
never shown); DESIGN.md's exit codes: 2 usage, 5 configuration.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bookpay.cli import app

runner = CliRunner()


def run(env, *args):
    return runner.invoke(app, list(args), env=env)


def intents_now(cli_env) -> set[str]:
    listed = run(cli_env, "intent", "list", "--limit", "100", "--json")
    assert listed.exit_code == 0, listed.output
    return {intent["id"] for intent in json.loads(listed.stdout)}


@pytest.mark.parametrize("where", ["folder", "file-as-folder"])
def test_a_ledger_that_cannot_be_opened_stops_intent_create_before_anything_is_made(
    cli_env, tmp_path, where
):
    before = intents_now(cli_env)
    if where == "folder":  # the database's path is a folder
        env = {**cli_env, "BOOKPAY_DATABASE_URL": f"sqlite:///{tmp_path}"}
    else:  # the data folder is a file
        (tmp_path / "afile").write_text("x")
        env = {**cli_env, "BOOKPAY_DATA_DIR": str(tmp_path / "afile")}
    result = run(env, "intent", "create", "--item", "1")
    assert result.exit_code == 5, result.output
    assert result.stderr.startswith("Error: The orders ledger ")
    assert "cannot be opened" in result.stderr and len(result.stderr.splitlines()) == 1
    assert intents_now(cli_env) == before  # no PaymentIntent left behind, unseen


@pytest.mark.parametrize("url", ["postgresql://u:p@[::1/db", "postgresql://u:p@db:99999/bookpay"])
@pytest.mark.parametrize(
    "args",
    [("orders", "list"), ("config", "check", "--offline"), ("intent", "create", "--item", "1")],
)
def test_a_database_url_that_is_not_a_url_is_one_line_and_exit_5(cli_env, url, args):
    result = run({**cli_env, "BOOKPAY_DATABASE_URL": url}, *args)
    assert result.exit_code == 5, result.output
    assert "Traceback" not in result.output and "unexpected" not in result.output
    assert "p@" not in result.output  # the password never shows


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999", "http://[::1", "http://:8080"])
def test_an_emulator_url_with_no_usable_host_or_port_is_a_configuration_problem(cli_env, url):
    result = run({**cli_env, "BOOKPAY_EMULATOR_URL": url}, "intent", "list")
    assert result.exit_code == 5, result.output
    assert "BOOKPAY_EMULATOR_URL must be an http(s) URL with a host" in result.stderr
    assert "unexpected" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ("orders", "list", "--until", "9999-12-31"),
        ("orders", "list", "--since", "0001-01-01T00:00+01:00"),
        ("intent", "list", "--since", "9999-12-31T23:00-05:00"),
        ("report", "sales", "--since", "1969-12-31"),
        ("orders", "export", "--until", "9999-12-31"),
    ],
)
def test_times_off_the_calendar_are_usage_errors(cli_env, args):
    result = run(cli_env, *args)
    assert result.exit_code == 2, result.output
    assert "is out of range: use a time from 1970 to 9998" in result.output


INTENT_STATUSES = (
    "requires_payment_method, requires_confirmation, requires_action, processing, "
    "requires_capture, canceled, succeeded"
)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["intent", "cancel", "pi_1", "--reason", "bad"],
            "'--reason': 'bad' is not one of duplicate, fraudulent, requested_by_customer, "
            "abandoned.",
        ),
        (
            ["refund", "create", "pi_1", "--reason", "changed_mind"],
            "'--reason': 'changed_mind' is not one of duplicate, fraudulent, "
            "requested_by_customer.",
        ),
        (
            ["orders", "export", "--format", "xml"],
            "'--format': 'xml' is not one of csv, json, jsonl.",
        ),
        (
            ["report", "sales", "--by", "year"],
            "'--by': 'year' is not one of day, week, month, book.",
        ),
        (
            ["report", "tax", "--status", "bogus"],
            "'--status': 'bogus' is not one of refused, pending, skipped, recorded.",
        ),
        (
            ["intent", "list", "--status", "paid"],
            f"'--status': 'paid' is not one of {INTENT_STATUSES}.",
        ),
        (["intent", "list", "--status", ""], f"'--status': '' is not one of {INTENT_STATUSES}."),
    ],
    ids=[
        "intent-cancel",
        "refund-create",
        "orders-export",
        "report-sales",
        "report-tax",
        "intent-list",
        "intent-list-blank",
    ],
)
def test_a_value_that_is_not_one_of_the_choices_is_said_plainly(tmp_path, args, said):
    """One line naming the choices, not pydantic's "Value error, ..." with every one quoted."""
    result = run({"BOOKPAY_DATA_DIR": str(tmp_path / "data")}, *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-1] == f"Error: Invalid value for {said}"
    assert result.stdout == ""
    assert not (tmp_path / "data").exists()  # refused before anything is opened


@pytest.mark.parametrize("command", [("orders", "list"), ("intent", "list")])
def test_a_limit_beyond_the_maximum_is_a_usage_error(cli_env, command):
    result = run(cli_env, *command, "--limit", "9223372036854775807")
    assert result.exit_code == 2, result.output
    assert "1000000" in result.output


def test_a_catalog_s_problems_are_listed_one_a_line(cli_env, tmp_path):
    catalog = tmp_path / "catalog.json"
    catalog.write_text('{"books": [{"id": "1", "title": "T\\u001b[2J"}]}')
    result = run(cli_env, "--catalog", str(catalog), "catalog", "list")
    assert result.exit_code == 5, result.output
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Error: The catalog in ") and lines[0].endswith("is not valid:")
    assert len(lines) > 2 and all(line.startswith("  ") for line in lines[1:])
    assert "missing field 'author'" in result.stderr
    assert "\x1b" not in result.stderr


@pytest.mark.skipif(
    __import__("sys").platform != "linux",
    reason="a file name of any bytes is POSIX's (macOS: UTF-8)",
)
def test_a_data_folder_whose_name_is_not_utf8_holds_the_ledger(cli_env, tmp_path):
    """A POSIX path is bytes: /tmp/caf\\xe9 (Latin-1) reaches Python as 'caf\\udce9'. The shop
    id derived from it and the ledger's file: URI both encoded it as UTF-8, so every command
    was an unexpected UnicodeEncodeError (exit 1)."""
    import os

    data = os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9")
    env = {**cli_env, "BOOKPAY_DATA_DIR": data}
    made = CliRunner().invoke(app, ["intent", "create", "--item", "1"], env=env)
    assert made.exit_code == 0, made.output
    assert os.path.isfile(os.fsencode(tmp_path) + b"/caf\xe9/bookpay.sqlite3")
    checked = CliRunner().invoke(app, ["config", "check", "--offline"], env=env)
    assert checked.exit_code == 0, checked.output
    assert "shop_" in checked.stdout and "ledger schema" in checked.stdout
    listed = CliRunner().invoke(app, ["orders", "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    assert [order["status"] for order in json.loads(listed.stdout)] == ["pending"]


@pytest.mark.parametrize("card", ["٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢", "４２４２４２４２４２４２４２４２"])
def test_a_card_number_in_other_digits_than_0_9_is_a_usage_error_and_pays_nothing(cli_env, card):
    """Arabic-Indic or full-width digits are digits to str.isdigit(): the emulator was sent
    them, read them as 4242..., and the payment succeeded."""
    created = run(cli_env, "intent", "create", "--item", "1", "--json")
    intent_id = json.loads(created.stdout)["id"]
    result = run(cli_env, "intent", "confirm", intent_id, "--card", card)
    assert result.exit_code == 2, result.output
    assert "is neither a card number nor a PaymentMethod id or token" in result.stderr
    shown = json.loads(run(cli_env, "intent", "show", intent_id, "--json").stdout)
    assert shown["payment_intent"]["status"] == "requires_payment_method"


@pytest.mark.parametrize("email", ["", "  ", "reader\x1b[31m@example.com", "reader", "a b@x.io"])
def test_an_email_that_is_not_one_address_is_a_usage_error_and_creates_nothing(cli_env, email):
    """`--email "$EMAIL"` with EMAIL unset made a PaymentIntent that sends no receipt; one with
    an escape sequence in it went to Stripe (the emulator took it)."""
    before = intents_now(cli_env)
    result = run(cli_env, "intent", "create", "--item", "1", "--email", email)
    assert result.exit_code == 2, result.output
    assert "expected one e-mail address (name@example.com)" in result.output
    assert "\x1b" not in result.output
    assert intents_now(cli_env) == before


@pytest.mark.parametrize("login", ["u:secretpw@", "secretpw@"])
@pytest.mark.parametrize("args", [("intent", "list"), ("--debug", "intent", "list")])
def test_an_emulator_url_with_a_login_is_refused_without_showing_it(cli_env, login, args):
    """It was used as it was (the emulator takes no login), and printed whole in "Could not
    reach the emulator at http://u:secretpw@..." (twice with --debug)."""
    url = cli_env["BOOKPAY_EMULATOR_URL"].replace("://", f"://{login}")
    result = run({**cli_env, "BOOKPAY_EMULATOR_URL": url}, *args)
    assert result.exit_code == 5, result.output
    assert "secretpw" not in result.output
    assert "BOOKPAY_EMULATOR_URL has a user name or password" in result.stderr
    assert "which the emulator does not take: give its address alone" in result.stderr
    checked = run({**cli_env, "BOOKPAY_EMULATOR_URL": url}, "config", "check", "--json")
    assert checked.exit_code == 5, checked.output
    assert "secretpw" not in checked.output
    report = json.loads(checked.stdout)
    [finding] = [f for f in report["findings"] if "BOOKPAY_EMULATOR_URL has" in f["message"]]
    assert finding["level"] == "problem"
    assert (
        finding["fix"] == "set it to the emulator's address alone, such as http://127.0.0.1:12111"
    )
    assert "secretpw" not in report["settings"]["BOOKPAY_EMULATOR_URL"]


@pytest.mark.parametrize("host", ["", " "])
@pytest.mark.parametrize(
    "command", [["emulator", "--ephemeral"], ["serve", "--emulator-port", "0"]], ids=lambda c: c[0]
)
def test_a_blank_host_is_a_usage_error_never_every_interface(tmp_path, command, host):
    """`--host "$HOST"` with HOST unset listened on every interface (0.0.0.0)."""
    from processes import Process, clean_environment, stop_all, wait_for

    env = clean_environment(BOOKPAY_DATA_DIR=str(tmp_path / "data"))
    process = Process([*command, "--host", host, "--port", "0"], env)
    try:
        wait_for(
            lambda: not process.alive or process.saw("listening on|serving the shop at"),
            timeout=60,
            what="an exit or a listening server",
        )
        assert not process.alive, process.lines  # listening: on 0.0.0.0
        assert process.wait() == 2, process.lines
    finally:
        stop_all()
    said = "\n".join(process.lines)
    assert f"Invalid value for '--host': expected an address to listen on, got {host!r}." in said
