"""Help renders as written at 80 columns, and the shell completion bookpay offers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_cli import all_commands
from typer.testing import CliRunner

from bookpay.cli import app

runner = CliRunner()
COMMANDS = all_commands()


def flat(text: str) -> str:
    return " ".join(text.split())


def whole(word: str, text: str) -> bool:
    """``word`` appears in ``text`` with no letter, digit, _ or - glued to either side."""
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


@pytest.mark.parametrize(
    ("path", "command"), COMMANDS, ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_help_at_80_columns_shows_every_default_and_choice_whole(path, command):
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    out = result.stdout
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    text = flat(out)
    with command.make_context("bookpay", [], resilient_parsing=True) as ctx:
        for param in command.params:
            record = param.get_help_record(ctx)
            if record is None:
                continue
            # What Click means to print for the option, every word of it, in order.
            assert flat(record[1]) in text, (param.name, record[1])
            for documented in re.findall(r"\[default: [^\]]*\]", param.help or ""):
                assert flat(documented) in text
            for choice in getattr(param.type_descriptor, "choices", None) or []:
                value = getattr(choice, "value", choice)
                assert whole(value, text), (param.name, value)
    # Command lists keep each summary whole (Click cuts a long one with "...").
    assert not [line for line in lines if line.endswith("...") and line.startswith("  ")]
    # An example is a command line to copy: on one line, as written.
    for example in re.findall(r"Example: (bookpay .*)", command.help or ""):
        assert any(line.strip() == f"Example: {example}" for line in lines), example


def test_the_cases_that_were_broken_render_whole():
    serve = runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "80"}).stdout
    assert "[default: the port in BOOKPAY_EMULATOR_URL, 12111]" in flat(serve)
    listing = runner.invoke(app, ["intent", "list", "--help"], env={"COLUMNS": "80"}).stdout
    for status in ("requires_payment_method", "requires_confirmation", "requires_capture"):
        assert whole(status, listing)


def test_each_webhook_command_says_which_secret_it_signs_with_by_default():
    """sign has no --to: its help once said its default was "the one for --to's port"."""
    sign = flat(runner.invoke(app, ["webhook", "sign", "--help"], env={"COLUMNS": "80"}).stdout)
    assert "--to" not in sign
    assert "else the one `bookpay serve` saved, if only one server saved one." in sign
    replay = runner.invoke(app, ["webhook", "replay", "--help"], env={"COLUMNS": "80"}).stdout
    assert "saved for --to's port (else the only one)." in flat(replay)


# Completion --------------------------------------------------------------------------------------


def complete_bash(words: str, env=None) -> list[str]:
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    result = runner.invoke(
        app,
        [],
        prog_name="bookpay",
        env={
            "_BOOKPAY_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(cword),
            **(env or {}),
        },
    )
    assert result.exit_code == 0, result.output
    return result.stdout.split()


def test_completion_of_book_ids_statuses_and_fixtures(tmp_path):
    assert complete_bash("bookpay catalog show ") == ["1", "2", "3"]
    assert complete_bash("bookpay intent create --item ") == ["1", "2", "3"]
    assert complete_bash("bookpay intent list --status requires_c") == [
        "requires_confirmation",
        "requires_capture",
    ]
    assert complete_bash("bookpay orders list --status p") == [
        "pending",
        "processing",
        "paid",
        "partially_refunded",
    ]
    assert complete_bash("bookpay webhook replay charge.ref") == [
        "charge.refunded.full",
        "charge.refunded.partial",
    ]
    assert complete_bash("bookpay web") == ["webhook"]


def test_book_ids_come_from_the_catalog_in_use(tmp_path):
    books = tmp_path / "books.json"
    books.write_text(
        '[{"id": "kokoro", "title": "Kokoro", "author": "Soseki", "amount": 1500, '
        '"currency": "usd"}]'
    )
    assert complete_bash("bookpay catalog show ", env={"BOOKPAY_CATALOG": str(books)}) == ["kokoro"]
    assert complete_bash(f"bookpay --catalog {books} intent create --item k") == ["kokoro"]


@pytest.mark.parametrize(
    ("shell", "env"),
    [
        (
            "zsh",
            {"_BOOKPAY_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "bookpay catalog show "},
        ),
        (
            "fish",
            {
                "_BOOKPAY_COMPLETE": "complete_fish",
                "_TYPER_COMPLETE_ARGS": "bookpay catalog show ",
                "_TYPER_COMPLETE_FISH_ACTION": "get-args",
            },
        ),
    ],
)
def test_zsh_and_fish_complete_book_ids_with_their_titles(shell, env):
    result = runner.invoke(app, [], prog_name="bookpay", env=env)
    assert result.exit_code == 0
    assert "The Art of Doing Science and Engineering" in result.stdout
    assert "1" in re.findall(r"\b\d\b", result.stdout)


@pytest.mark.parametrize(
    ("shell", "marker", "installed"),
    [
        (
            "bash",
            "complete -o default -F _bookpay_completion bookpay",
            ".bash_completions/bookpay.sh",
        ),
        ("zsh", "compdef _bookpay_completion bookpay", ".zshrc"),
        ("fish", "complete --command bookpay", ".config/fish/completions/bookpay.fish"),
    ],
)
def test_show_and_install_completion_for_each_shell(shell, marker, installed, monkeypatch):
    import typer._completion_shared
    import typer.completion

    monkeypatch.setattr(typer.completion, "_get_shell_name", lambda: shell)
    monkeypatch.setattr(typer._completion_shared, "_get_shell_name", lambda: shell)
    shown = runner.invoke(app, ["--show-completion"], prog_name="bookpay")
    assert shown.exit_code == 0
    assert marker in shown.stdout and "_BOOKPAY_COMPLETE" in shown.stdout
    home = Path.home()  # a temporary folder (tests/conftest.py)
    done = runner.invoke(app, ["--install-completion"], prog_name="bookpay")
    assert done.exit_code == 0, done.output
    assert f"{shell} completion installed in" in done.stdout
    assert (home / installed).exists()


# Bounds ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "option", "value", "shown"),
    [
        (["serve"], "--threads", "99999999999999999999", "2<=x<=1024"),
        (["serve"], "--connection-limit", "100001", "1<=x<=100000"),
        (["serve"], "--idle-timeout", "99999999999999999999", "1<=x<=3600"),
        (["webhook", "replay", "x.json"], "--repeat", "99999999999999999999", "1<=x<=100000"),
    ],
)
def test_options_with_a_maximum_show_it_and_refuse_more_with_exit_2(path, option, value, shown):
    """Before anything starts: no thread, socket or list is made for an absurd value.

    A live key (and a missing event file) would stop the command too, later: should the bound
    be lost, the test fails on the message instead of starting a server or filling the memory.
    """
    help_text = runner.invoke(app, [*path[:2], "--help"], env={"COLUMNS": "80"}).stdout
    assert f"{shown}]" in flat(help_text)  # each range is the only one of its command
    result = runner.invoke(app, [*path, option, value], env={"STRIPE_SECRET_KEY": "sk_live_x"})
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.stderr
    assert "Traceback" not in result.output


README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ["serve", "worker", "emulator"])
def test_the_readme_row_of_a_single_command_names_every_option_its_help_has(name):
    """Both halves of a flag pair too: `serve --help` has `--worker / --no-worker`; and the short
    ones (`serve -q`)."""
    [command] = [command for path, command in COMMANDS if path == [name]]
    options = {
        option
        for param in command.params
        for option in (*param.opts, *param.secondary_opts)
        if option.startswith("-") and option not in ("--help", "-h")
    }
    row = re.search(rf"^\| `bookpay {name}((?: [^`]*)?)` \|", README, re.MULTILINE)
    assert row, f"no row for `bookpay {name}` in the README's commands table"
    assert set(re.findall(r"(?<![\w-])--?[a-z][a-z0-9-]*", row.group(1))) == options


def test_the_readme_row_of_webhook_replay_names_its_short_flags_timeout_and_json():
    """The row names the options a run is shaped by; the rest are in "Replaying webhooks"."""
    row = re.search(r"^\| `bookpay webhook replay ([^`]*)` \|", README, re.MULTILINE)
    assert row
    named = set(re.findall(r"(?<![\w-])--?[a-z][a-z0-9-]*", row.group(1)))
    assert {"--to", "--secret", "--timeout", "-q", "--quiet", "--failures-only", "--json"} <= named
