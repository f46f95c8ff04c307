"""`bookpay config check` finds what would break commands later, each once, with its fix."""

from __future__ import annotations

import json
import os
import socket

import pytest
from typer.testing import CliRunner

from bookpay.cli import app

runner = CliRunner()
SK = "sk_test_51HxAbCdEfGhIjKlMnOpQrStUvWxYz0123"
PK = "pk_test_51HxAbCdEfGhIjKlMnOpQrStUvWxYz9876"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check(env, *args):
    result = runner.invoke(app, ["config", "check", *args, "--json"], env=env)
    return result.exit_code, json.loads(result.stdout)


def messages(report, level):
    return [f["message"] for f in report["findings"] if f["level"] == level]


def test_a_running_emulator_and_sound_settings_are_ok(cli_env):
    code, report = check(cli_env)
    assert code == 0 and report["ok"] is True
    assert report["findings"] == []


def test_a_base_url_with_its_default_port_or_an_idn_host_is_accepted_as_browsers_write_it(
    cli_env,
):
    code, report = check({**cli_env, "BOOKPAY_BASE_URL": "https://Bücher.example:443"})
    assert code == 0 and report["findings"] == []
    assert report["settings"]["BOOKPAY_BASE_URL"] == "https://xn--bcher-kva.example"


def test_an_emulator_that_does_not_answer_is_a_warning_with_the_url_and_the_error(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}"
    env = {"BOOKPAY_EMULATOR_URL": url, "BOOKPAY_DATA_DIR": str(tmp_path / "d")}
    code, report = check(env)
    assert code == 0  # `bookpay serve` starts its own: not a problem
    [warning] = report["findings"]
    assert warning["level"] == "warning"
    assert warning["message"] == f"the emulator at {url} cannot be reached (Connection refused)"
    assert "bookpay emulator" in warning["fix"]
    human = runner.invoke(app, ["config", "check"], env=env)
    assert "1 warning:\n" in human.stdout
    assert f"  - the emulator at {url} cannot be reached (Connection refused)\n" in human.stdout
    assert "    Fix: start it with `bookpay emulator`" in human.stdout
    assert human.stdout.endswith("No problems found.\n")
    assert runner.invoke(app, ["config", "check", "--offline"], env=env).stdout.count("warn") == 0


def test_stripe_that_does_not_answer_is_a_problem(tmp_path, monkeypatch):
    # Stripe mode, with its client pointed at a closed port (whether this machine has a network
    # or not).
    import stripe

    from bookpay import payments

    port = closed_port()
    monkeypatch.setattr(
        payments,
        "_client_for",
        lambda settings, *budget: stripe.StripeClient(
            settings.api_key,
            base_addresses={"api": f"http://127.0.0.1:{port}"},
            max_network_retries=0,
        ),
    )
    env = {"STRIPE_SECRET_KEY": SK, "STRIPE_PUBLISHABLE_KEY": PK}
    code, report = check(env)
    assert code == 5
    [problem] = report["problems"]
    assert problem == "Stripe at https://api.stripe.com cannot be reached (Connection refused)"
    [finding] = [f for f in report["findings"] if f["level"] == "problem"]
    assert "status.stripe.com" in finding["fix"]


def refusing_api(status: int, message: str):
    """A local HTTP server that answers every request with one Stripe error."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = json.dumps({"error": {"type": "invalid_request_error", "message": message}}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_a_key_the_api_refuses_is_a_problem(tmp_path):
    server, url = refusing_api(401, "Invalid API Key provided: sk_test_***1234")
    try:
        code, report = check({"BOOKPAY_EMULATOR_URL": url, "BOOKPAY_DATA_DIR": str(tmp_path)})
    finally:
        server.shutdown()
    assert code == 5
    assert report["problems"] == [
        f"the emulator at {url} refused the API key: Invalid API Key provided: sk_test_***1234"
    ]
    assert "STRIPE_SECRET_KEY" in report["findings"][0]["fix"]


@pytest.mark.parametrize("extra", ["?x=1", "/v1", "#top", "/a b"])
def test_an_emulator_url_with_more_than_the_address_is_a_problem_for_every_command(cli_env, extra):
    """`config check` said "No problems found" (with a warning to check the key's permissions,
    which the emulator has none of) while every command failed with "Unrecognized request URL"
    (exit 3) or "could not reach" (exit 4)."""
    env = {**cli_env, "BOOKPAY_EMULATOR_URL": cli_env["BOOKPAY_EMULATOR_URL"] + extra}
    code, report = check(env)
    assert code == 5
    [problem] = report["problems"]
    assert problem.startswith("BOOKPAY_EMULATOR_URL ")
    assert report["warnings"] == []
    listed = runner.invoke(app, ["intent", "list"], env=env)
    assert listed.exit_code == 5
    assert "BOOKPAY_EMULATOR_URL" in listed.stderr


def test_a_server_refusing_the_emulators_requests_is_not_said_to_be_about_key_permissions(
    tmp_path,
):
    """The emulator takes any test key, to read anything: a refusal at BOOKPAY_EMULATOR_URL
    says another server answers there, not that the key lacks a permission."""
    server, url = refusing_api(404, "Unrecognized request URL (GET: /v1/payment_intents).")
    try:
        code, report = check({"BOOKPAY_EMULATOR_URL": url, "BOOKPAY_DATA_DIR": str(tmp_path)})
    finally:
        server.shutdown()
    assert code == 0  # a warning, as when nothing answers there
    [warning] = report["findings"]
    assert warning["message"].startswith(
        f"the emulator at {url} refused a request to list PaymentIntents: Unrecognized request"
    )
    assert "BOOKPAY_EMULATOR_URL is the emulator's address" in warning["fix"]
    assert "permission" not in warning["fix"] and "key may" not in warning["fix"]


def test_a_data_folder_that_is_a_file_is_a_problem(tmp_path, cli_env):
    target = tmp_path / "not-a-folder"
    target.write_text("")
    code, report = check({**cli_env, "BOOKPAY_DATA_DIR": str(target)})
    assert code == 5
    assert report["problems"] == [f"BOOKPAY_DATA_DIR {target} is a file, not a folder"]
    assert report["findings"][0]["fix"] == "set BOOKPAY_DATA_DIR to a folder you can write to"
    inside = target / "data"
    code, report = check({**cli_env, "BOOKPAY_DATA_DIR": str(inside)})
    assert report["problems"] == [
        f"BOOKPAY_DATA_DIR {inside} cannot be created: {target} is a file"
    ]


def test_a_data_folder_that_is_not_writable_is_a_problem(tmp_path, cli_env, monkeypatch):
    folder = tmp_path / "read-only"
    folder.mkdir()
    real = os.access
    # Tests may run as root, for whom every folder is writable: deny this one by hand.
    monkeypatch.setattr(
        os, "access", lambda path, mode: False if str(path) == str(folder) else real(path, mode)
    )
    code, report = check({**cli_env, "BOOKPAY_DATA_DIR": str(folder)})
    assert code == 5
    assert report["problems"] == [f"BOOKPAY_DATA_DIR {folder} is not writable"]
    code, report = check({**cli_env, "BOOKPAY_DATA_DIR": str(folder / "sub")})
    assert report["problems"] == [
        f"BOOKPAY_DATA_DIR {folder / 'sub'} cannot be created in {folder}"
    ]


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("smtpx://user:hunter2@mail.example:587", "the unknown scheme 'smtpx'"),
        ("mail.example:25", "no scheme"),
    ],
)
def test_an_smtp_url_with_an_unknown_scheme_is_a_problem(cli_env, url, said):
    code, report = check({**cli_env, "BOOKPAY_SMTP_URL": url})
    assert code == 5
    [problem] = report["findings"]
    assert problem["message"].startswith(f"BOOKPAY_SMTP_URL has {said} (")
    assert "hunter2" not in json.dumps(report)
    assert "smtps://" in problem["fix"]
    # Port 587 is STARTTLS's: the fix never pairs it with plain smtp://, which sends the
    # password unencrypted.
    assert "smtp+starttls://user:password@host:587" in problem["fix"]
    assert "smtp://user:password@host:587" not in problem["fix"]


def test_known_smtp_schemes_are_fine(cli_env):
    for url in ("smtp://u:p@mail.example:587", "smtps://mail.example", "smtp+starttls://m.example"):
        assert check({**cli_env, "BOOKPAY_SMTP_URL": url})[0] == 0


def test_each_finding_is_stated_once_with_its_fix(cli_env):
    env = {**cli_env, "STRIPE_WEBHOOK_SECRET": "nope,whsec_good_one_1234", "STRIPE_SECRET_KEY": SK}
    result = runner.invoke(app, ["config", "check", "--offline"], env=env)
    assert result.exit_code == 5
    lines = result.stdout.splitlines()
    stated = [line for line in lines if line.startswith("  - ")]
    assert len(stated) == len(set(stated)) == 2
    assert lines.count("1 problem:") == 1 and lines.count("1 warning:") == 1
    assert all(lines[lines.index(line) + 1].startswith("    Fix: ") for line in stated)


def test_secret_key_alone_is_only_a_warning_for_serve(tmp_path):
    code, report = check(
        {
            "STRIPE_SECRET_KEY": SK,
            "STRIPE_WEBHOOK_SECRET": "whsec_abc123",
            "BOOKPAY_DATA_DIR": str(tmp_path / "d"),
        },
        "--offline",
    )
    assert code == 0
    assert messages(report, "warning") == [
        "STRIPE_PUBLISHABLE_KEY is not set: `bookpay serve` needs it for the checkout page "
        "(every other command works without it)"
    ]


WEBHOOK_SECRET_WARNING = (
    "STRIPE_WEBHOOK_SECRET is not set: /webhook will refuse every event (503) and orders are "
    "fulfilled only from the success page"
)


def test_stripe_test_mode_without_a_webhook_secret_is_a_warning_as_serve_gives_it(tmp_path):
    env = {"STRIPE_SECRET_KEY": SK, "STRIPE_PUBLISHABLE_KEY": PK, "BOOKPAY_DATA_DIR": str(tmp_path)}
    code, report = check(env, "--offline")
    assert code == 0 and report["ok"] is True  # a warning: serve starts, and says it too
    assert report["findings"] == [
        {
            "level": "warning",
            "message": WEBHOOK_SECRET_WARNING,
            "fix": "run `stripe listen --forward-to localhost:4242/webhook` and set the whsec_ "
            "secret it prints",
        }
    ]
    human = runner.invoke(app, ["config", "check", "--offline"], env=env)
    assert human.exit_code == 0
    assert f"1 warning:\n  - {WEBHOOK_SECRET_WARNING}\n" in human.stdout
    assert "    Fix: run `stripe listen --forward-to localhost:4242/webhook`" in human.stdout
    # With the secret set, or in local test mode (the emulator registers the shop's endpoint
    # and its secret itself), there is nothing to say.
    assert check({**env, "STRIPE_WEBHOOK_SECRET": "whsec_abc123"}, "--offline")[1]["findings"] == []
    assert check({"BOOKPAY_DATA_DIR": str(tmp_path)}, "--offline")[1]["findings"] == []


def test_the_tax_mode_in_effect_and_a_wrong_one(cli_env):
    code, report = check(cli_env, "--offline")
    assert (code, report["tax"]) == (0, "stripe")
    assert report["settings"]["BOOKPAY_TAX"].startswith("stripe: tax from the address")
    human = runner.invoke(
        app, ["config", "check", "--offline"], env={**cli_env, "BOOKPAY_TAX": "off"}
    )
    assert "BOOKPAY_TAX             off: no tax is charged" in human.stdout
    code, report = check({**cli_env, "BOOKPAY_TAX": "yes"}, "--offline")
    assert code == 5 and report["tax"] == "yes"
    assert report["problems"] == ["BOOKPAY_TAX must be stripe or off, got 'yes'"]


def test_a_book_priced_below_stripes_minimum_is_a_warning(cli_env, tmp_path):
    path = tmp_path / "books.json"
    path.write_text(
        json.dumps(
            [
                {"id": "pin", "title": "A pin", "author": "X", "amount": 30, "currency": "usd"},
                {"id": "ok", "title": "A book", "author": "X", "amount": 50, "currency": "usd"},
            ]
        )
    )
    code, report = check({**cli_env, "BOOKPAY_CATALOG": str(path)}, "--offline")
    assert code == 0, report
    assert messages(report, "warning") == [
        "the catalog: book 'pin': its price, $0.30, is less than $0.50, the smallest payment "
        'Stripe takes in USD: it can only be bought with other books ("Buy now" is refused)'
    ]


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("smtp://user:hunter2@[::1", "is not a URL bookpay can read (Invalid IPv6 URL)"),
        ("smtps://user:hunter2@mail.example:99999", "is not a URL bookpay can read (Port out"),
        ("smtp+starttls://user:hunter2@:587", "names no host (smtp+starttls://user:***@:587)"),
        ("smtp://user:hunter2@mail.example:0", "has port 0 (smtp://user:***@mail.example:0)"),
    ],
)
def test_an_smtp_url_that_cannot_be_read_is_a_problem(cli_env, url, said):
    code, report = check({**cli_env, "BOOKPAY_SMTP_URL": url}, "--offline")
    assert code == 5
    [problem] = report["findings"]
    assert problem["message"].startswith(f"BOOKPAY_SMTP_URL {said}")
    assert problem["message"].endswith(": receipts cannot be sent")
    assert "a port from 1 to 65535" in problem["fix"]
    assert "hunter2" not in json.dumps(report)


@pytest.mark.parametrize(
    ("sender", "said"),
    [
        ("a,b@example.com", "BOOKPAY_SMTP_URL's from= must be one e-mail address"),
        ("Books%0AX-Evil: 1 <shop@example.com>", "BOOKPAY_SMTP_URL's from= holds a line break"),
    ],
)
def test_a_from_address_the_receipt_sender_refuses_is_a_problem(cli_env, sender, said):
    url = f"smtp://user:hunter2@mail.example:25?from={sender}"
    code, report = check({**cli_env, "BOOKPAY_SMTP_URL": url}, "--offline")
    assert code == 5
    [problem] = report["findings"]
    assert problem["message"].startswith(said)
    assert "correct BOOKPAY_SMTP_URL" in problem["fix"]
    assert "hunter2" not in json.dumps(report)


@pytest.fixture
def unreadable_folder(tmp_path, monkeypatch):
    """A folder whose inside cannot be looked into, as /proc/1/root for a process that may not
    trace PID 1: a link that cannot be read, and a stat that fails with EACCES. Root may look
    into any folder it can make, so the refusal is simulated."""
    import errno

    (tmp_path / "target").mkdir()
    folder = tmp_path / "locked"
    folder.symlink_to(tmp_path / "target")
    real_stat, real_readlink = os.stat, os.readlink

    def refuse(real):
        def call(path, *args, **kwargs):
            text = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else ""
            if text == str(folder) or text.startswith(str(folder) + os.sep):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(folder))
            return real(path, *args, **kwargs)

        return call

    monkeypatch.setattr(os, "stat", refuse(real_stat))
    monkeypatch.setattr(os, "readlink", refuse(real_readlink))
    return folder


@pytest.mark.parametrize(
    "args",
    [
        ("config", "check", "--offline"),
        ("orders", "list"),
        ("emulator", "--port", "0"),
        ("serve", "--port", "0"),
    ],
)
def test_a_data_folder_that_cannot_be_looked_into_is_a_problem_in_every_command(
    cli_env, unreadable_folder, args
):
    data_dir = unreadable_folder / "data"
    result = runner.invoke(app, list(args), env={**cli_env, "BOOKPAY_DATA_DIR": str(data_dir)})
    assert result.exit_code == 5, result.output
    assert "unexpected" not in result.output and "Traceback" not in result.output
    if args[0] == "config":
        said = f"BOOKPAY_DATA_DIR {data_dir} cannot be looked into: Permission denied on "
        assert f"  - {said}{unreadable_folder}\n" in result.stdout
        assert "Fix: set BOOKPAY_DATA_DIR to a folder you can write to" in result.stdout
    elif args[0] == "orders":
        assert result.stderr == (
            f"Error: The orders ledger {data_dir / 'bookpay.sqlite3'} cannot be opened: "
            "Permission denied.\n"
        )
    else:
        assert result.stderr == (
            f"Error: Configuration problem: BOOKPAY_DATA_DIR {data_dir} cannot be looked into: "
            f"Permission denied on {unreadable_folder}. Set BOOKPAY_DATA_DIR to a folder you can "
            "write to.\n"
        )


@pytest.mark.parametrize("command", ["replay", "sign"])
def test_replay_and_sign_in_a_data_folder_that_cannot_be_looked_into_exit_5(
    cli_env, unreadable_folder, tmp_path, command
):
    event = tmp_path / "event.json"
    event.write_text('{"id": "evt_1", "type": "payment_intent.succeeded"}')
    data_dir = unreadable_folder / "data"
    args = ["webhook", command, str(event)] + (["--to", "4242"] if command == "replay" else [])
    result = runner.invoke(app, args, env={**cli_env, "BOOKPAY_DATA_DIR": str(data_dir)})
    assert result.exit_code == 5, result.output
    assert result.stderr == (
        f"Error: Cannot look for the webhook secrets `bookpay serve` saved in {data_dir}: "
        "Permission denied. Pass --secret whsec_..., or set BOOKPAY_DATA_DIR to the folder the "
        "server uses.\n"
    )


REAL = "sk_test_51HqLyjWDarjtT1zdp7dcXsNpPS9fLbQbdjFQsHVdQ4bbz6wz"
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIRRIiOKmy"


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("STRIPE_SECRET_KEY", REAL + REAL, "sk_test_...z6wz"),
        ("STRIPE_SECRET_KEY", REAL + "_", "sk_test_...6wz_"),
        ("STRIPE_SECRET_KEY", "my_own_secret_51HqLyjWDarjtT1zdp7dcXsN", "...cXsN"),
        ("STRIPE_WEBHOOK_SECRET", WHSEC + WHSEC, "whsec_...OKmy"),
        ("STRIPE_WEBHOOK_SECRET", "MfKQ9r8G_KYqrTwjUPD8ILPZIRRIiOKmy", "...OKmy"),
    ],
)
def test_config_check_never_prints_a_bad_paste_whole(tmp_path, name, value, shown):
    """A key pasted twice, with a stray "_" at its end, or with no prefix it is known by was
    shown up to its last "_": the first copy whole, in the table, the findings and --json."""
    env = {name: value, "BOOKPAY_DATA_DIR": str(tmp_path)}
    human = runner.invoke(app, ["config", "check", "--offline"], env=env)
    _, report = check(env, "--offline")
    assert report["settings"][name] == shown
    assert f" {shown} " in human.stdout  # the table's row
    # Nothing of what mask hides shows, in any ten characters in a row.
    hidden = value.removeprefix(shown.partition("...")[0])[:-4]
    for output in (human.output, json.dumps(report)):
        shown_runs = [hidden[i : i + 10] for i in range(len(hidden) - 9)]
        assert [run for run in shown_runs if run in output] == []
