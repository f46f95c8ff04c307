"""The CLI shell: conventions every command follows (help, --json, exit codes, masking)."""

import json
import os
import re
import subprocess
import sys

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from bookpay import __version__
from bookpay.cli import app

runner = CliRunner()


def all_commands():
    """(path, click command) for every command, groups included (loading the lazy ones)."""
    found = []

    def walk(command, path, ctx):
        found.append((path, command))
        if hasattr(command, "list_commands"):
            for name in command.list_commands(ctx):
                walk(command.get_command(ctx, name), [*path, name], ctx)

    root = get_command(app)
    with root.make_context("bookpay", ["--help"], resilient_parsing=True) as ctx:
        walk(root, [], ctx)
    return found


def test_every_command_of_the_contract_is_there():
    paths = {" ".join(path) for path, _ in all_commands()}
    assert {
        "serve",
        "emulator",
        "catalog list",
        "catalog show",
        "intent create",
        "intent show",
        "intent list",
        "intent confirm",
        "intent cancel",
        "refund create",
        "orders list",
        "orders show",
        "orders export",
        "ledger copy",
        "ledger check",
        "webhook replay",
        "webhook fixtures",
        "webhook sign",
        "config check",
    } <= paths


def test_a_mistyped_command_gets_a_suggestion():
    result = runner.invoke(app, ["catalg", "list"])
    assert result.exit_code == 2
    assert "Did you mean 'catalog'?" in result.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"bookpay {__version__}\n"


def test_help_lists_every_group():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for group in (
        "serve",
        "emulator",
        "catalog",
        "intent",
        "refund",
        "orders",
        "ledger",
        "webhook",
        "config",
    ):
        assert group in result.stdout


@pytest.mark.parametrize(
    ("path", "command"), all_commands(), ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_every_command_has_help_with_a_summary(path, command):
    assert command.help or command.short_help, f"bookpay {' '.join(path)} has no help"
    if not hasattr(command, "commands"):
        assert "Example: bookpay " in command.help, f"bookpay {' '.join(path)} has no example"
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.stdout


def test_catalog_list_table():
    result = runner.invoke(app, ["catalog", "list"])
    assert result.exit_code == 0
    pad = " " * 12
    assert result.stdout.splitlines() == [
        f"ID  Title{pad}{' ' * 45}Author            Price",
        f"1   The Art of Doing Science and Engineering{pad}{' ' * 10}Richard Hamming  $23.00",
        f"2   The Making of Prince of Persia: Journals 1985-1993{pad}Jordan Mechner   $25.00",
        "3   Working in Public: The Making and Maintenance of Open Source  Nadia Eghbal     $28.00",
        "",
        "Shipping       Name                    Countries          Delivery             Price"
        "  Free from",
        "standard       Standard shipping       US                 3-5 business days    $5.00"
        "     $50.00",
        "express        Express shipping        US                 1-2 business days   $15.00"
        "          -",
        "international  International shipping  rest of the world  5-10 business days  $25.00"
        "          -",
    ]


def test_catalog_list_json_is_only_json():
    result = runner.invoke(app, ["catalog", "list", "--json"])
    assert result.exit_code == 0
    catalog = json.loads(result.stdout)
    books = catalog["books"]
    assert [set(b) for b in books] == [
        {"id", "title", "author", "amount", "currency", "description", "image"}
    ] * 3
    assert books[0]["amount"] == 2300 and books[0]["currency"] == "usd"
    assert books[0]["image"] == "/covers/1.svg"
    assert catalog["shipping_rates"][0] == {
        "id": "standard",
        "display_name": "Standard shipping",
        "amount": 500,
        "currency": "usd",
        "countries": ["US"],
        "min_days": 3,
        "max_days": 5,
        "free_from": 5000,
    }
    assert [r["id"] for r in catalog["shipping_rates"]] == ["standard", "express", "international"]


def test_catalog_show():
    result = runner.invoke(app, ["catalog", "show", "2"])
    assert result.exit_code == 0
    assert "Title:        The Making of Prince of Persia: Journals 1985-1993\n" in result.stdout
    assert "Price:        $25.00\n" in result.stdout
    as_json = json.loads(runner.invoke(app, ["catalog", "show", "2", "--json"]).stdout)
    assert as_json["author"] == "Jordan Mechner"


def test_unknown_book_exits_2_and_names_the_list_command():
    result = runner.invoke(app, ["catalog", "show", "42"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        "Error: No book with id '42'. Run `bookpay catalog list` to see the catalog.\n"
    )


def test_custom_catalog_from_option_and_env(tmp_path):
    path = tmp_path / "books.json"
    book = {"id": "j1", "title": "Kokoro", "author": "Soseki", "amount": 1500, "currency": "jpy"}
    rate = {
        "id": "post",
        "display_name": "Post",
        "amount": 800,
        "currency": "jpy",
        "countries": ["*"],
        "min_days": 2,
        "max_days": 5,
    }
    path.write_text(json.dumps({"books": [book], "shipping_rates": [rate]}))
    result = runner.invoke(app, ["--catalog", str(path), "catalog", "list"])
    assert result.exit_code == 0
    assert "j1  Kokoro  Soseki  ¥1,500\n" in result.stdout
    result = runner.invoke(app, ["catalog", "list", "--json"], env={"BOOKPAY_CATALOG": str(path)})
    assert json.loads(result.stdout)["books"][0]["id"] == "j1"


def test_invalid_catalog_exits_5_with_the_reason(tmp_path):
    path = tmp_path / "books.json"
    path.write_text(
        json.dumps([{"id": "1", "title": "A", "author": "B", "amount": 0, "currency": "usd"}])
    )
    result = runner.invoke(app, ["--catalog", str(path), "catalog", "list"])
    assert result.exit_code == 5
    assert "'amount' must be positive, got 0" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("given", ["", " "])
def test_a_blank_catalog_is_a_usage_error_saying_so(given):
    """`--catalog "$FILE"` with FILE unset said "The catalog file . must end in .json or
    .toml" (exit 5): a blank name read as the current folder."""
    result = runner.invoke(app, ["--catalog", given, "catalog", "list"])
    assert (result.exit_code, result.stdout) == (2, "")
    assert (
        f"Invalid value for '--catalog': expected a catalog file (JSON or TOML), got {given!r}."
        in result.stderr
    )


def test_config_check_ok_in_emulator_mode():
    result = runner.invoke(app, ["config", "check"])
    assert result.exit_code == 0
    assert "mode                    local emulator" in result.stdout
    assert result.stdout.endswith("No problems found.\n")


def test_config_check_lists_problems_masks_secrets_and_exits_5():
    secret = "sk_live_51SuperSecretValue1234"
    result = runner.invoke(
        app,
        ["config", "check"],
        env={"STRIPE_SECRET_KEY": secret, "STRIPE_WEBHOOK_SECRET": "nope"},
    )
    assert result.exit_code == 5
    assert secret not in result.output
    assert "sk_live_...1234" in result.stdout
    assert "live keys are refused" in result.stdout
    assert "STRIPE_WEBHOOK_SECRET must start with whsec_" in result.stdout
    assert "2 problems:" in result.stdout
    # Only serve needs the publishable key: for everything else its absence is a warning.
    assert "1 warning:" in result.stdout
    assert "STRIPE_PUBLISHABLE_KEY is not set: `bookpay serve` needs it" in result.stdout


def test_config_check_json():
    result = runner.invoke(
        app,
        ["--live", "config", "check", "--offline", "--json"],
        env={
            "STRIPE_SECRET_KEY": "sk_live_51SuperSecretValue1234",
            "STRIPE_PUBLISHABLE_KEY": "pk_live_51PublicValue98765",
        },
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["mode"] == "stripe" and report["ok"] is True
    assert report["settings"]["STRIPE_SECRET_KEY"] == "sk_live_...1234"
    assert report["settings"]["BOOKPAY_ALLOW_LIVE"] == "yes"


def test_live_key_refused_before_talking_to_stripe():
    result = runner.invoke(
        app,
        ["intent", "list"],
        env={
            "STRIPE_SECRET_KEY": "sk_live_51SuperSecretValue1234",
            "STRIPE_PUBLISHABLE_KEY": "pk_live_51PublicValue98765",
        },
    )
    assert result.exit_code == 5
    assert "live keys are refused" in result.stderr
    assert "51SuperSecretValue" not in result.output


def test_unexpected_errors_are_one_line_without_debug(monkeypatch):
    from bookpay import catalog

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(catalog.Catalog, "load", boom)
    result = runner.invoke(app, ["catalog", "list"])
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: unexpected RuntimeError: disk on fire "
        "(run with --debug or BOOKPAY_DEBUG=1 for the traceback)\n"
    )
    debug = runner.invoke(app, ["--debug", "catalog", "list"])
    assert isinstance(debug.exception, RuntimeError)


def test_usage_errors_exit_2():
    result = runner.invoke(app, ["catalog", "show"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["intent", "list", "--limit", "0"])
    assert result.exit_code == 2


def run_in_terminal(args, env_extra):
    """Run bookpay with stdout on a pseudo-terminal, as a person at a terminal sees it."""
    import os
    import pty
    import subprocess
    import sys

    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm-256color", **env_extra}
    if "NO_COLOR" not in env_extra:
        env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "bookpay", *args],
        stdout=follower,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=30)
    os.close(leader)
    return b"".join(chunks).decode()


COLOUR = re.compile(r"\x1b\[[0-9;]*(3[0-9]|9[0-7])[0-9;]*m")  # a foreground colour


def test_terminal_gets_a_rich_table_in_colour_unless_no_color(settings, cli_env):
    from bookpay.catalog import Catalog
    from bookpay.payments import Gateway

    gateway = Gateway(settings)
    intent = gateway.create_intent(Catalog.default().get("1"))
    gateway.confirm_intent(intent["id"], payment_method="pm_card_visa")

    coloured = run_in_terminal(["intent", "list", "--limit", "3"], cli_env)
    assert "\x1b[1mPaymentIntent" in coloured  # a bold header, drawn by Rich
    assert intent["id"] in coloured
    assert COLOUR.search(coloured)  # the succeeded status is green

    plain = run_in_terminal(["intent", "list", "--limit", "3"], {**cli_env, "NO_COLOR": "1"})
    assert intent["id"] in plain
    assert not COLOUR.search(plain)


def test_debug_keeps_the_exit_code_of_expected_errors():
    result = runner.invoke(app, ["--debug", "catalog", "show", "9"])
    assert result.exit_code == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.endswith(
        "Error: No book with id '9'. Run `bookpay catalog list` to see the catalog.\n"
    )
    result = runner.invoke(app, ["catalog", "show", "9"], env={"BOOKPAY_DEBUG": "1"})
    assert result.exit_code == 2


def test_live_mode_never_looks_like_a_test():
    result = runner.invoke(
        app,
        ["--live", "config", "check", "--offline"],
        env={
            "STRIPE_SECRET_KEY": "sk_live_51SuperSecretValue1234",
            "STRIPE_PUBLISHABLE_KEY": "pk_live_51PublicValue98765",
        },
    )
    assert result.exit_code == 0
    assert "mode                    Stripe LIVE mode: real cards, real money" in result.stdout
    assert "test mode" not in result.stdout


def _run_with_closed(fd: int, *args: str, data_dir) -> subprocess.CompletedProcess[str]:
    """`bookpay ARGS >&-` (fd 1) or `2>&-` (fd 2), as a shell starts it: the descriptor closed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "BOOKPAY_"))}
    env["BOOKPAY_DATA_DIR"] = str(data_dir)
    env["BOOKPAY_EMULATOR_URL"] = "http://127.0.0.1:9"  # nothing answers: exit 4, at once
    return subprocess.run(
        [sys.executable, "-m", "bookpay", *args],
        stdout=None if fd == 1 else subprocess.PIPE,
        stderr=None if fd == 2 else subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=lambda: os.close(fd),
        timeout=60,
        check=False,
    )


def test_a_command_started_with_its_stdout_closed_says_so_in_one_line(tmp_path):
    done = _run_with_closed(1, "catalog", "list", data_dir=tmp_path)
    assert done.returncode == 1
    assert done.stderr == "Error: cannot write the output: standard output is closed.\n"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full (Linux has one)")
@pytest.mark.parametrize("args", [("catalog", "list"), ("orders", "export", "--format", "json")])
def test_a_command_whose_output_cannot_be_written_says_why_in_one_line(tmp_path, args):
    """`> /dev/full` (a full disk): an unexpected OSError (exit 1, "run with --debug") before;
    now the write error `cat` would give, still exit 1."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "BOOKPAY_"))}
    env["BOOKPAY_DATA_DIR"] = str(tmp_path)
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "bookpay", *args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    assert done.stderr.endswith("\nError: cannot write the output: No space left on device.\n") or (
        done.stderr == "Error: cannot write the output: No space left on device.\n"
    )
    assert "unexpected" not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "code"),
    [(("catalog", "show", "no-such-book"), 2), (("intent", "show", "pi_123"), 4)],
)
def test_a_command_started_with_its_stderr_closed_keeps_the_exit_code_of_the_contract(
    tmp_path, args, code
):
    done = _run_with_closed(2, *args, data_dir=tmp_path)
    assert done.returncode == code
    assert done.stdout == ""


CTRL_C_DURING_IMPORT = """
import sys
from importlib.metadata import entry_points


class CtrlC:  # a Ctrl-C that arrives while bookpay.cli (Typer, Click, ...) is being imported
    def find_spec(self, name, path=None, target=None):
        if name == "bookpay.cli":
            raise KeyboardInterrupt


sys.meta_path.insert(0, CtrlC())
(script,) = entry_points(group="console_scripts", name="bookpay")
sys.exit(script.load()())  # what the installed `bookpay` script does
"""


def test_ctrl_c_while_the_command_is_still_importing_ends_it_as_ctrl_c_does_later():
    """Exit code 130 and nothing said, as a Ctrl-C during a command: no traceback of an import."""
    done = subprocess.run(
        [sys.executable, "-c", CTRL_C_DURING_IMPORT], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stderr, done.stdout) == (130, "", "")
