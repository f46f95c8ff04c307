import pytest

from bookpay.config import Settings, mask
from bookpay.errors import ConfigError

SK = "sk_test_51HxAbCdEfGhIjKlMnOpQrStUvWxYz0123"
PK = "pk_test_51HxAbCdEfGhIjKlMnOpQrStUvWxYz9876"


def test_defaults_mean_the_emulator(tmp_path):
    settings = Settings.from_env({"HOME": str(tmp_path)})
    assert settings.mode == "emulator"
    assert settings.emulator_url == "http://127.0.0.1:12111"
    assert settings.data_dir == tmp_path / ".local" / "share" / "bookpay"
    assert settings.problems() == []


def test_secret_key_means_stripe_test_mode():
    settings = Settings.from_env({"STRIPE_SECRET_KEY": SK, "STRIPE_PUBLISHABLE_KEY": PK})
    assert settings.mode == "stripe"
    assert settings.problems() == []


def test_process_environment_wins_over_dotenv(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"STRIPE_SECRET_KEY={SK}\nBOOKPAY_BASE_URL=http://file.example\n")
    settings = Settings.from_env({"BOOKPAY_BASE_URL": "http://env.example"}, dotenv_path=dotenv)
    assert settings.secret_key == SK
    assert settings.base_url == "http://env.example"
    assert settings.sources["BOOKPAY_BASE_URL"] == "environment"
    assert settings.sources["STRIPE_SECRET_KEY"] == str(dotenv)


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        (
            {"STRIPE_SECRET_KEY": SK, "STRIPE_PUBLISHABLE_KEY": "pk_live_abcdefghijklmnop"},
            "same mode",
        ),
        (
            {
                "STRIPE_SECRET_KEY": "sk_live_abcdefghijklmnop",
                "STRIPE_PUBLISHABLE_KEY": "pk_live_abcdefghijklmnop",
            },
            "live keys are refused",
        ),
        ({"STRIPE_SECRET_KEY": PK, "STRIPE_PUBLISHABLE_KEY": PK}, "must be a secret key"),
        ({"STRIPE_SECRET_KEY": SK}, "STRIPE_PUBLISHABLE_KEY is not set"),
        ({"STRIPE_PUBLISHABLE_KEY": PK}, "without STRIPE_SECRET_KEY"),
        ({"STRIPE_WEBHOOK_SECRET": "abc123"}, "must start with whsec_"),
        ({"STRIPE_SECRET_KEY": "hello", "STRIPE_PUBLISHABLE_KEY": PK}, "must be a secret key"),
    ],
)
def test_problems(env, problem):
    settings = Settings.from_env(env)
    found = settings.problems(serving=True)
    assert any(problem in p for p in found), found
    with pytest.raises(ConfigError):
        settings.check()


def test_live_keys_allowed_only_when_asked():
    env = {
        "STRIPE_SECRET_KEY": "sk_live_abcdefghijklmnop",
        "STRIPE_PUBLISHABLE_KEY": "pk_live_abcdefghijklmnop",
    }
    assert Settings.from_env(env, allow_live=True).problems() == []
    assert Settings.from_env({**env, "BOOKPAY_ALLOW_LIVE": "1"}).problems() == []


def test_restricted_key_and_several_webhook_secrets():
    settings = Settings.from_env(
        {
            "STRIPE_SECRET_KEY": "rk_test_abcdefghijklmnop",
            "STRIPE_PUBLISHABLE_KEY": PK,
            "STRIPE_WEBHOOK_SECRET": "whsec_old111111111, whsec_new222222222",
        }
    )
    assert settings.problems() == []
    assert settings.webhook_secrets == ("whsec_old111111111", "whsec_new222222222")


def test_mask_never_shows_the_secret():
    assert mask(SK) == "sk_test_...0123"
    assert mask("whsec_abcdefghijklmnop") == "whsec_...mnop"
    assert mask("sk_test_short") == "sk_test_..."
    assert mask(None) == "(not set)"


REAL = "sk_test_51HqLyjWDarjtT1zdp7dcXsNpPS9fLbQbdjFQsHVdQ4bbz6wz"
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIRRIiOKmy"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (REAL + REAL, "sk_test_...z6wz"),  # pasted twice: the first copy was shown whole
        (REAL + "_", "sk_test_...6wz_"),  # a stray "_" at the end: all before it was shown
        (WHSEC + WHSEC, "whsec_...OKmy"),
        (REAL.replace("sk_", "pk_") + "_x", "pk_test_...wz_x"),
        ("rk_live_" + "A" * 30 + "_B_" + "9876", "rk_live_...9876"),
        # Nothing recognised: no prefix, whatever its underscores hold.
        ("my_secret_password_MfKQ9r8GKYqrTwjUPD8", "...UPD8"),
        ("MfKQ9r8GKYqrTwjUPD8ILPZI", "...LPZI"),
        ("sk_sk_test_" + "x" * 30 + "wxyz", "...wxyz"),  # a kind prefix only at the start
        # Too short to show any of it without giving most of it away.
        ("hunter2_passwrd", "..."),
        ("whsec_1234567890", "whsec_..."),
        ("whsec_", "whsec_..."),
    ],
)
def test_mask_shows_at_most_the_kind_and_the_last_four(value, shown):
    """It kept everything before the last "_": a bad paste was shown whole."""
    assert mask(value) == shown


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://shop:hunter2@db:5432/bookpay", "postgresql://shop:***@db:5432/bookpay"),
        ("smtp://user:pass@word@mail.example:587", "smtp://user:***@mail.example:587"),
        ("postgresql://shop:hunter2@[::1", "postgresql://shop:***@[::1"),  # does not parse
        ("http://[::1", "http://[::1"),
        ("sqlite:////abs/ledger.sqlite3", "sqlite:////abs/ledger.sqlite3"),
        ("smtp://user@mail.example:587/x?a=b", "smtp://user@mail.example:587/x?a=b"),
        (
            "postgresql:///bookpay?host=/run/postgresql&password=hunter2#top",
            "postgresql:///bookpay?host=/run/postgresql&password=***#top",
        ),
        ("http://shop:hunter2@host/w?password=hunter2", "http://shop:***@host/w?password=***"),
    ],
)
def test_mask_url_hides_the_password_of_any_url(url, shown):
    from bookpay.ledger.location import mask_url

    assert mask_url(url) == shown


def test_describe_masks_every_secret():
    settings = Settings.from_env(
        {
            "STRIPE_SECRET_KEY": SK,
            "STRIPE_PUBLISHABLE_KEY": PK,
            "STRIPE_WEBHOOK_SECRET": "whsec_abcdefghijklmnopqrst",
            "BOOKPAY_SMTP_URL": "smtp://user:hunter2@mail.example:587",
        }
    )
    text = repr(settings.describe())
    for secret in (SK, PK, "whsec_abcdefghijklmnopqrst", "hunter2"):
        assert secret not in text
    assert "sk_test_...0123" in text


def test_sample_env_lists_every_variable():
    from pathlib import Path

    from bookpay.config import ENV_VARS

    sample = (Path(__file__).parent.parent / "sample.env").read_text()
    listed = {line.split("=")[0] for line in sample.splitlines() if line and line[0] != "#"}
    assert listed == set(ENV_VARS)


def test_dotenv_in_the_working_folder_is_read(tmp_path):
    (tmp_path / ".env").write_text("BOOKPAY_EMULATOR_URL=http://127.0.0.1:5555/\n")
    assert Settings.from_env({}).emulator_url == "http://127.0.0.1:5555"


@pytest.mark.parametrize(
    ("value", "tax", "enabled", "shown"),
    [
        (None, "stripe", True, "stripe: tax from the address, by the emulator's TEST rates"),
        ("stripe", "stripe", True, "stripe: tax from the address, by the emulator's TEST rates"),
        ("OFF", "off", False, "off: no tax is charged"),
    ],
)
def test_tax_mode(value, tax, enabled, shown):
    settings = Settings.from_env({"BOOKPAY_TAX": value} if value else {})
    assert (settings.tax, settings.tax_enabled) == (tax, enabled)
    assert ("BOOKPAY_TAX", shown) in [(name, value) for name, value, _ in settings.describe()]
    assert settings.problems() == []


def test_tax_mode_in_stripe_test_mode_and_a_wrong_one():
    settings = Settings.from_env({"STRIPE_SECRET_KEY": SK, "STRIPE_PUBLISHABLE_KEY": PK})
    rows = {name: value for name, value, _ in settings.describe()}
    assert rows["BOOKPAY_TAX"] == "stripe: Stripe Tax works out the tax from the address"
    wrong = Settings.from_env({"BOOKPAY_TAX": "sometimes"})
    assert not wrong.tax_enabled
    assert wrong.problems() == ["BOOKPAY_TAX must be stripe or off, got 'sometimes'"]
    with pytest.raises(ConfigError):
        wrong.check()


@pytest.mark.parametrize("name", ["BOOKPAY_DEBUG", "BOOKPAY_ALLOW_LIVE"])
def test_a_yes_no_setting_that_says_neither_is_a_problem(name):
    settings = Settings.from_env({name: "yes please"})
    assert settings.problems() == [
        f"{name} must be 1 or 0 (or true/false, yes/no, on/off), got 'yes please'"
    ]
    assert (settings.debug, settings.allow_live) == (False, False)
    with pytest.raises(ConfigError):
        settings.check(serving=False)
    for value, meant in (("TRUE", True), ("on", True), ("0", False), ("No", False)):
        settings = Settings.from_env({name: value})
        assert settings.problems() == []
        assert (settings.debug if name == "BOOKPAY_DEBUG" else settings.allow_live) is meant


def test_a_webhook_secret_set_to_commas_only_is_a_problem():
    settings = Settings.from_env({"STRIPE_WEBHOOK_SECRET": ",, ,"})
    assert settings.webhook_secrets == ()
    assert settings.problems(serving=True) == [
        "STRIPE_WEBHOOK_SECRET is set but names no secret, got ',, ,'"
    ]


@pytest.mark.parametrize(
    ("name", "value", "said", "blocks_commands"),
    [
        ("STRIPE_SECRET_KEY", SK[:20] + "\x1b[31m" + SK[20:], "'\\x1b'", True),
        ("STRIPE_SECRET_KEY", SK[:20] + "\r" + SK[20:], "'\\r'", True),
        ("STRIPE_PUBLISHABLE_KEY", PK[:20] + " " + PK[20:], "a space", False),
        ("STRIPE_WEBHOOK_SECRET", "whsec_abcdef\x7fghijklmnop", "'\\x7f'", False),
    ],
)
def test_a_key_or_secret_holding_a_space_or_a_control_character_is_a_problem(
    name, value, said, blocks_commands
):
    settings = Settings.from_env(
        {"STRIPE_SECRET_KEY": SK, "STRIPE_PUBLISHABLE_KEY": PK, name: value}
    )
    problem = f"{name} holds {said}, which no Stripe key or secret does"
    assert [p for p in settings.problems(serving=True) if p.startswith(problem)], problem
    assert bool(settings.problems(serving=False)) is blocks_commands


def test_a_windows_env_file_s_carriage_returns_and_spaces_around_values_are_dropped(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_bytes(
        f"STRIPE_SECRET_KEY={SK} \r\nSTRIPE_PUBLISHABLE_KEY={PK}\r\n"
        "STRIPE_WEBHOOK_SECRET=whsec_abcdefghijklmnop\r\n".encode()
    )
    settings = Settings.from_env({}, dotenv_path=dotenv)
    assert (settings.secret_key, settings.publishable_key) == (SK, PK)
    assert settings.webhook_secrets == ("whsec_abcdefghijklmnop",)
    assert settings.problems(serving=True) == []


def test_a_dotenv_file_saved_with_a_byte_order_mark_keeps_its_first_variable(tmp_path):
    """Windows editors start a UTF-8 file with U+FEFF: read as part of the first name, that
    name would be ignored and the shop run quietly on the emulator (python-dotenv drops it)."""
    dotenv = tmp_path / ".env"
    dotenv.write_bytes(f"\ufeffSTRIPE_SECRET_KEY={SK}\nSTRIPE_PUBLISHABLE_KEY={PK}\n".encode())
    settings = Settings.from_env({}, dotenv_path=dotenv)
    assert settings.secret_key == SK and not settings.is_emulated


def test_a_dotenv_file_that_cannot_be_read_is_a_configuration_problem(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from bookpay.cli import app

    dotenv = tmp_path / ".env"
    dotenv.write_bytes(b"BOOKPAY_SHOP_ID=caf\xe9\n")  # Latin-1, as an old editor saves it
    with pytest.raises(ConfigError, match=r"^Cannot read .*\.env: it is not UTF-8 text \(byte "
                       r"0xe9 at offset 19\)\.$"):  # fmt: skip
        Settings.from_env({}, dotenv_path=dotenv)
    monkeypatch.chdir(tmp_path)
    for args in (["catalog", "list"], ["config", "check", "--offline"]):
        result = CliRunner().invoke(app, args, env={"BOOKPAY_DATA_DIR": str(tmp_path / "d")})
        assert result.exit_code == 5, result.output
        assert result.stderr.startswith("Error: Cannot read .env: it is not UTF-8 text")
        assert "Traceback" not in result.output and "unexpected" not in result.output

    from pathlib import Path

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(dotenv))

    monkeypatch.setattr(Path, "read_text", refused)
    with pytest.raises(ConfigError, match=r"^Cannot read .*\.env: Permission denied\.$"):
        Settings.from_env({}, dotenv_path=dotenv)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (f'STRIPE_SECRET_KEY="{SK}\nBOOKPAY_TAX=off\n', "line 1 (STRIPE_SECRET_KEY)"),
        (f"BOOKPAY_TAX=off\nexport STRIPE_SECRET_KEY='{SK}\n", "line 2 (STRIPE_SECRET_KEY)"),
        (f'STRIPE_SECRET_KEY="{SK}" pasted\n', "line 1 (STRIPE_SECRET_KEY)"),
        # A key pasted where a name goes: the line's number alone, the key never shown.
        (f"BOOKPAY_TAX=off\n{SK} pasted\n\n{SK}='x\n", "lines 2, 4"),
        ("set -a\nBOOKPAY_TAX=off\n", "line 1"),
    ],
)
def test_a_dotenv_line_that_cannot_be_parsed_is_a_configuration_problem(
    tmp_path, monkeypatch, text, said
):
    """python-dotenv skips such a line, saying "could not parse statement starting at line 1"
    without the file's name: the key in it was lost and bookpay ran on the emulator, `config
    check` finding no problem. It is named, file and line, and its value never shown."""
    from typer.testing import CliRunner

    from bookpay.cli import app

    dotenv = tmp_path / ".env"
    dotenv.write_text(text)
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({}, dotenv_path=dotenv)
    assert refused.value.message.startswith(f"Cannot read {dotenv}: {said} cannot be parsed")
    setting = "(" in said  # a line that starts like a setting: its quotes are the likely fault
    assert ("a quote left open" in refused.value.message) == setting
    assert ("not shell commands" in refused.value.message) == (not setting)
    monkeypatch.chdir(tmp_path)
    for args in (["config", "check", "--offline"], ["intent", "list"]):
        result = CliRunner().invoke(app, args, env={"BOOKPAY_DATA_DIR": str(tmp_path / "d")})
        assert result.exit_code == 5, result.output
        assert result.stderr.startswith(f"Error: Cannot read .env: {said} cannot be parsed")
        assert SK[8:] not in result.output and "python-dotenv" not in result.output


def test_a_dotenv_value_quoted_over_several_lines_is_still_read(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text('BOOKPAY_SHOP_ID="shop"\nBOOKPAY_TAX="off" # no tax\nexport X="a\nb"\n')
    settings = Settings.from_env({}, dotenv_path=dotenv)
    assert (settings.shop_id, settings.tax) == ("shop", "off")


@pytest.mark.parametrize(
    ("shop_id", "said"),
    [
        ("shop\nbooks", "holds a control character (shop\\nbooks)"),
        ("shop\x1b[2Jbooks", "holds a control character (shop\\x1b[2Jbooks)"),
        ("s" * 501, "is 501 characters long: Stripe takes at most 500 in a metadata value"),
    ],
)
def test_a_shop_id_stripe_or_the_logs_cannot_take_is_a_problem(shop_id, said):
    settings = Settings.from_env({"BOOKPAY_SHOP_ID": shop_id})
    [problem] = settings.problems()
    assert problem.startswith(f"BOOKPAY_SHOP_ID {said}")
    with pytest.raises(ConfigError):
        settings.check(serving=False)
    assert Settings.from_env({"BOOKPAY_SHOP_ID": "s" * 500}).problems() == []


@pytest.mark.parametrize(
    ("url", "what"),
    [
        ("https://shop.example/?ref=ads", "a query"),
        ("https://shop.example/#top", "a fragment"),
        ("https://admin:hunter2@shop.example", "a user name or password"),
    ],
)
def test_a_base_url_that_cannot_end_in_success_is_a_problem(url, what):
    """Stripe's return_url is BOOKPAY_BASE_URL + "/success": after a query or a fragment that is
    no page of the shop's, and a password in it would be written into every checkout page."""
    settings = Settings.from_env({"BOOKPAY_BASE_URL": url})
    [finding] = [f for f in settings.findings() if "BOOKPAY_BASE_URL" in f.message]
    assert f"BOOKPAY_BASE_URL has {what}" in finding.message
    assert "hunter2" not in finding.message
    assert "https://shop.example" in finding.fix
    assert "hunter2" not in repr(settings.describe())  # `config check`'s table
    with pytest.raises(ConfigError):
        settings.check()


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://127.0.0.1:21000?x=1", "has a query"),
        ("http://127.0.0.1:21000?", "has a query"),
        ("http://127.0.0.1:21000/v1", "has the path /v1"),
        ("http://127.0.0.1:21000/emu/v1/", "has the path /emu/v1"),
        ("http://127.0.0.1:21000/v1/payment_intents", "has the path /v1/payment_intents"),
        ("http://127.0.0.1:21000/#top", "has a fragment"),
        ("http://127.0.0.1:21000/a b", "holds a space"),
        ("http://127.0.0.1:21000/\x1bx", "holds '\\x1b'"),
        ("http://127.0.0.1:21000/a\tb", "holds '\\t'"),  # urlsplit drops a tab unsaid
        ("http://127.0.0.1:\u200b21000", "holds '\\u200b'"),
    ],
)
def test_an_emulator_url_that_is_not_the_emulators_address_alone_is_a_problem(url, said):
    """A path, query or fragment was kept in every request's URL (the emulator answered
    "Unrecognized request URL"), and a space or a control character made every request fail
    as "could not reach", while `config check` found no problem."""
    settings = Settings.from_env({"BOOKPAY_EMULATOR_URL": url})
    [finding] = [f for f in settings.findings() if "BOOKPAY_EMULATOR_URL" in f.message]
    assert finding.message.startswith(f"BOOKPAY_EMULATOR_URL {said} (")
    assert finding.level == "problem" and finding.blocks == "commands"
    assert "http://127.0.0.1:12111" in finding.fix
    with pytest.raises(ConfigError):
        settings.check(serving=False)
    address = Settings.from_env({"BOOKPAY_EMULATOR_URL": "http://127.0.0.1:21000/"})
    assert address.problems() == []


@pytest.mark.parametrize("prefix", ["/emu", "/stripe/", "/a/b"])
def test_an_emulator_behind_a_proxy_under_a_path_is_an_address(prefix):
    """A reverse proxy may serve the emulator under a path (bookpay adds /v1/... to it, and the
    emulator reads SCRIPT_NAME): only a path that already holds the API's /v1 is refused."""
    settings = Settings.from_env({"BOOKPAY_EMULATOR_URL": f"http://127.0.0.1:21000{prefix}"})
    assert settings.problems() == []


@pytest.mark.parametrize(
    "url", ["https://\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645.example/shop"]
)
def test_a_base_url_host_with_a_joiner_idna_allows_is_an_address(url):
    """IDNA 2008 allows the zero-width joiners (U+200C, U+200D) in a host name where a script
    needs them (Persian's "mi-khaham"): its punycode is plain ASCII, a return_url Stripe takes."""
    assert Settings.from_env({"BOOKPAY_BASE_URL": url}).problems() == []


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://x/a b", "holds a space"),
        ("https://shop.example/\x7f", "holds '\\x7f'"),
        ("https://shop.example/a\nb", "holds '\\n'"),
        ("https://shop.example/a\u00a0b", "holds '\\xa0'"),
        ("https://shop.example/a\u200cb", "holds '\\u200c'"),  # in the path: no host's joiner
    ],
)
def test_a_base_url_with_whitespace_or_a_control_character_is_a_problem(url, said):
    """Stripe refuses such a return_url ("Not a valid URL"): every confirmation failed, while
    `config check` found no problem."""
    settings = Settings.from_env({"BOOKPAY_BASE_URL": url})
    [finding] = [f for f in settings.findings() if "BOOKPAY_BASE_URL" in f.message]
    assert finding.message.startswith(f"BOOKPAY_BASE_URL {said} (")
    assert "https://shop.example" in finding.fix
    with pytest.raises(ConfigError):
        settings.check(serving=False)
    assert Settings.from_env({"BOOKPAY_BASE_URL": "https://shop.example/a%20b"}).problems() == []


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("BOOKPAY_EMULATOR_URL", "http://u:hunter2@127.0.0.1:1"),
        ("BOOKPAY_EMULATOR_URL", "http://hunter2@127.0.0.1:1"),  # a token as the user name
        ("BOOKPAY_EMULATOR_URL", "ftp://u:hunter2@127.0.0.1:1"),
        ("BOOKPAY_EMULATOR_URL", "http://u:hunter2@127.0.0.1:99999"),
        ("BOOKPAY_BASE_URL", "https://hunter2@shop.example"),
    ],
)
def test_a_login_in_the_emulator_or_base_url_is_refused_and_never_shown(name, url):
    """BOOKPAY_EMULATOR_URL was used and shown as it was, login and all; a user name alone (a
    token, as often as not) was shown in BOOKPAY_BASE_URL's."""
    settings = Settings.from_env({name: url})
    [finding] = [f for f in settings.findings() if name in f.message]
    assert finding.level == "problem" and finding.blocks == "commands"
    assert "hunter2" not in finding.message
    assert "hunter2" not in repr(settings.describe())
    with pytest.raises(ConfigError) as refused:
        settings.check(serving=False)
    assert "hunter2" not in str(refused.value)


def test_a_base_url_that_is_not_a_url_never_shows_its_password():
    settings = Settings.from_env({"BOOKPAY_BASE_URL": "ftp://admin:hunter2@shop.example"})
    [problem] = settings.problems()
    assert "must be an http(s) URL" in problem
    assert "hunter2" not in problem


@pytest.mark.parametrize(
    ("url", "as_browsers_write_it"),
    [
        ("https://shop.example:443", "https://shop.example"),
        ("http://shop.example:80/", "http://shop.example"),
        ("HTTPS://Shop.Example:8443/books/", "https://shop.example:8443/books"),
        ("https://Bücher.example", "https://xn--bcher-kva.example"),
        # UTS #46 as current browsers map it (IDNA 2003 made it "strasse.example")
        ("https://straße.example", "https://xn--strae-oqa.example"),
        ("http://[::1]:80", "http://[::1]"),
    ],
)
def test_a_base_url_is_written_as_browsers_write_its_origin(url, as_browsers_write_it):
    """Browsers leave the default port out of Origin and send a host in punycode: the base URL
    as it was set made every POST a 403 and the return_url not the pages' own address."""
    settings = Settings.from_env({"BOOKPAY_BASE_URL": url})
    assert settings.base_url == as_browsers_write_it
    assert settings.problems() == []
