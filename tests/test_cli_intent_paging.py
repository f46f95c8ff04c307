"""`bookpay intent list` pages like `orders list`: --limit, --starting-after, --all, filters."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bookpay.catalog import Catalog
from bookpay.cli import app
from bookpay.config import Settings
from bookpay.payments import Gateway

runner = CliRunner()


@pytest.fixture(scope="module")
def world():
    """An emulator of this module's own with seven intents, the fourth with an e-mail."""
    from bookpay.emulator import EmulatorOptions, start_emulator

    with start_emulator("127.0.0.1", 0, EmulatorOptions()) as own:
        gateway = Gateway(Settings(emulator_url=own.url))
        book = Catalog.default().get("1")
        made = [
            gateway.create_intent(book, email="Reader@Example.com" if n == 3 else None)["id"]
            for n in range(7)
        ]
        yield own.url, made[::-1]  # newest first, as lists are


def invoke(world, tmp_path, *args):
    env = {"BOOKPAY_EMULATOR_URL": world[0], "BOOKPAY_DATA_DIR": str(tmp_path / "data")}
    return runner.invoke(app, ["intent", "list", *args], env={**env, "COLUMNS": "200"})


def ids(result):
    assert result.exit_code == 0, result.output
    return [intent["id"] for intent in json.loads(result.stdout)]


def test_pages_with_a_cursor_and_says_how_to_get_the_next(world, tmp_path):
    newest = world[1]
    first = invoke(world, tmp_path, "--limit", "3", "--json")
    assert ids(first) == newest[:3]
    assert first.stderr == (
        f"Showing 3 PaymentIntents. Next page: --starting-after {newest[2]} "
        "(or --all for every one).\n"
    )
    second = invoke(world, tmp_path, "--limit", "3", "--starting-after", newest[2], "--json")
    assert ids(second) == newest[3:6]
    last = invoke(world, tmp_path, "--limit", "3", "--starting-after", newest[5], "--json")
    assert (ids(last), last.stderr) == (newest[6:], "")


def test_all_streams_every_one(world, tmp_path):
    assert ids(invoke(world, tmp_path, "--all", "--json")) == world[1]
    table = invoke(world, tmp_path, "--all", "--limit", "1").stdout.splitlines()
    assert [line.split()[0] for line in table[1:]] == world[1]


def test_email_filter_in_any_case(world, tmp_path):
    assert ids(invoke(world, tmp_path, "--email", "reader@example.COM", "--json")) == [world[1][3]]


def test_date_filters_go_to_stripe(world, tmp_path):
    assert ids(invoke(world, tmp_path, "--since", "2000-01-01", "--json")) == world[1][:50]
    assert ids(invoke(world, tmp_path, "--until", "2000-01-01", "--json")) == []
    assert ids(invoke(world, tmp_path, "--since", "2999-01-01", "--json")) == []
    assert invoke(world, tmp_path, "--since", "soon").exit_code == 2


@pytest.mark.parametrize(
    "args", [["--email", ""], ["--starting-after", ""], ["--all", "--starting-after", " "]]
)
def test_a_blank_email_or_cursor_is_a_usage_error(world, tmp_path, args):
    # An empty shell variable would otherwise mean "no e-mail" or "the first page".
    result = invoke(world, tmp_path, *args, "--json")
    assert (result.exit_code, result.stdout) == (2, "")
    assert "expected a" in result.stderr


def test_a_status_given_twice_is_refused_not_the_last_one_taken(world, tmp_path):
    result = invoke(world, tmp_path, "--status", "canceled", "--status", "requires_payment_method")
    assert (result.exit_code, result.stdout) == (2, "")
    assert "give it once (one status a list), got canceled, requires_payment_method" in (
        result.stderr
    )
    only = invoke(world, tmp_path, "--status", "requires_payment_method", "--json")
    assert ids(only) == world[1]


def test_all_as_json_after_an_unknown_intent_writes_no_half_array(world, tmp_path):
    result = invoke(world, tmp_path, "--all", "--json", "--starting-after", "pi_nope")
    assert (result.exit_code, result.stdout) == (2, "")
    assert "No such payment_intent: 'pi_nope'" in result.stderr


def test_a_date_within_a_second_is_read_as_the_ledger_reads_it(world, tmp_path):
    # Stripe's created is whole seconds: one made at second c is before c + 0.5, not after it.
    from datetime import datetime, timezone

    listed = json.loads(invoke(world, tmp_path, "--all", "--json").stdout)
    second = listed[0]["created"]
    at_that_second = [i["id"] for i in listed if i["created"] == second]
    half = datetime.fromtimestamp(second + 0.5, timezone.utc).isoformat()
    until = ids(invoke(world, tmp_path, "--all", "--until", half, "--json"))
    since = ids(invoke(world, tmp_path, "--all", "--since", half, "--json"))
    assert set(at_that_second) <= set(until)
    assert not set(at_that_second) & set(since)


def test_intent_show_says_when_there_is_no_ledger(world, tmp_path):
    env = {"BOOKPAY_EMULATOR_URL": world[0], "BOOKPAY_DATA_DIR": str(tmp_path / "data")}
    result = runner.invoke(app, ["intent", "show", world[1][0], "--json"], env=env)
    assert result.exit_code == 0
    assert json.loads(result.stdout)["events"] == []
    where = tmp_path / "data" / "bookpay.sqlite3"
    assert result.stderr == (
        f"No orders ledger at {where}: events this shop received are not shown.\n"
    )
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--email", "nobody@example.com"], "No PaymentIntents match."),
        (["--all", "--email", "nobody@example.com"], "No PaymentIntents match."),
        (["--status", "succeeded"], "No PaymentIntents with status succeeded."),
        (["--status", "canceled"], "No PaymentIntents with status canceled."),
        (["--all", "--until", "2000-01-01"], "No PaymentIntents match."),
    ],
)
def test_a_list_that_matches_nothing_says_so_as_orders_list_does(world, tmp_path, args, said):
    # Not a table header alone (a page), nor nothing at all (--all): stdout stays empty.
    result = invoke(world, tmp_path, *args)
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", said + "\n")
    # --json: `[]` alone on stdout for scripts, and the same words on stderr (README, Paging).
    as_json = invoke(world, tmp_path, *args, "--json")
    assert (as_json.exit_code, as_json.stdout, as_json.stderr) == (0, "[]\n", said + "\n")


def test_a_last_page_that_is_empty_says_there_are_no_more(world, tmp_path):
    result = invoke(world, tmp_path, "--starting-after", world[1][-1])
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == "No more PaymentIntents after that one.\n"
