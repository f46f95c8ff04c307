"""Settings: read once at the edge from the environment and ``.env``, then passed down.

The core never reads ``os.environ``; the CLI and the server build one ``Settings`` and hand it to
everything else. Nothing here prints a secret: ``mask`` is the only way a key leaves this module
in human-readable form.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bookpay import environment
from bookpay.environment import ENV_VARS as ENV_VARS  # still importable from here
from bookpay.errors import ConfigError

DEFAULT_EMULATOR_URL = "http://127.0.0.1:12111"
# The emulator accepts any test key; these make its mode obvious in logs and in the dashboard-less
# world of local testing.
EMULATOR_SECRET_KEY = "sk_test_bookpay_emulator"
EMULATOR_PUBLISHABLE_KEY = "pk_test_bookpay_emulator"

TAX_MODES = ("stripe", "off")
_TRUE = {"1", "true", "yes", "on"}


def default_data_dir(environ: Mapping[str, str]) -> Path:
    """The user's data folder, as each platform names it."""
    home = Path(environ.get("HOME") or Path.home())
    if sys.platform == "win32":
        base = environ.get("LOCALAPPDATA") or str(home / "AppData" / "Local")
        return Path(base) / "bookpay"
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "bookpay"
    return Path(environ.get("XDG_DATA_HOME") or home / ".local" / "share") / "bookpay"


# What `mask` shows of a secret: the prefix that says its kind (``sk_test_``, ``whsec_``), which
# every key of that kind shares, and the last few characters, to tell two apart -- and those only
# when enough stays hidden.
WEBHOOK_SECRET_PREFIX = "whsec_"
_MASK_SHOWS = 4
_MASK_HIDES_AT_LEAST = 12


def secret_prefix(value: str) -> str:
    """The prefix that says what ``value`` is, when it starts with one bookpay knows (a Stripe
    API key's, as ``key_kind`` reads it, or a webhook signing secret's), else ""."""
    kind = key_kind(value)
    if kind:
        return f"{value[:3]}{kind[1]}_"
    return WEBHOOK_SECRET_PREFIX if value.startswith(WEBHOOK_SECRET_PREFIX) else ""


def mask(secret: str | None) -> str:
    """``sk_test_...abcd``: the key's kind and its last four characters, never the rest.

    The one way a key or secret is shown. Only a known kind's prefix is kept (a key pasted twice,
    or with a stray "_", is ``sk_test_...`` and four characters like any other); a value of no
    known kind is ``...abcd``; a value too short to show four characters of without giving away
    much of it is shown as ``...`` (after its kind's prefix) alone.
    """
    if not secret:
        return "(not set)"
    prefix = secret_prefix(secret)
    rest = secret[len(prefix) :]
    if len(rest) < _MASK_SHOWS + _MASK_HIDES_AT_LEAST:
        return f"{prefix}..."
    return f"{prefix}...{rest[-_MASK_SHOWS:]}"


SMTP_SCHEMES = ("smtp", "smtps", "smtp+starttls")


@dataclass(frozen=True)
class Finding:
    """One thing `config check` reports: what is wrong, and what to do about it.

    ``level`` is "problem" (config check exits 5) or "warning". ``blocks`` says what it stops:
    "commands" (every command that calls Stripe, and serve), "serve" (only the checkout server),
    or "" (nothing refuses to start, but something fails later: receipts, the ledger).
    """

    message: str
    fix: str
    level: str = "problem"
    blocks: str = "commands"

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, str]:
        return {"level": self.level, "message": self.message, "fix": self.fix}


def webhook_secret_missing(webhook_url: str) -> Finding:
    """The warning for Stripe mode with no STRIPE_WEBHOOK_SECRET: `serve` says it at start with
    its own ``webhook_url``, `config check` lists it with serve's default one. (The emulator
    registers the shop's endpoint itself: it needs no secret from the user.)"""
    return Finding(
        "STRIPE_WEBHOOK_SECRET is not set: /webhook will refuse every event (503) and orders are "
        "fulfilled only from the success page",
        f"run `stripe listen --forward-to {webhook_url}` and set the whsec_ secret it prints",
        level="warning",
        blocks="",
    )


def webhook_secret_problem(value: str, name: str) -> Finding | None:
    """Why ``value`` cannot be a webhook signing secret, or None."""
    if value.startswith("whsec_") and len(value) > len("whsec_"):
        return None
    shown = mask(value)
    if value == "whsec_":
        said = f"{name} has nothing after whsec_: it is the prefix alone, not a secret"
    else:
        said = f"{name} must start with whsec_, got " + (
            shown if shown != "..." else "another value"
        )
    return Finding(
        said,
        "use the signing secret that `stripe listen` prints, or the endpoint's secret in the "
        "Dashboard (whsec_...)",
        blocks="serve",
    )


def data_dir_problem(path: Path) -> Finding | None:
    """Why bookpay could not keep its files in ``path``, or None."""
    fix = "set BOOKPAY_DATA_DIR to a folder you can write to"
    try:
        if path.exists() and not path.is_dir():
            return Finding(f"BOOKPAY_DATA_DIR {path} is a file, not a folder", fix, blocks="")
        existing = path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        is_dir = existing.is_dir()
    except OSError as exc:  # a folder on the way that cannot be looked into (no permission)
        where = f" on {exc.filename}" if exc.filename and str(exc.filename) != str(path) else ""
        reason = exc.strerror or type(exc).__name__
        return Finding(
            f"BOOKPAY_DATA_DIR {path} cannot be looked into: {reason}{where}", fix, blocks=""
        )
    if not is_dir:
        return Finding(
            f"BOOKPAY_DATA_DIR {path} cannot be created: {existing} is a file", fix, blocks=""
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "is not writable" if existing == path else f"cannot be created in {existing}"
        return Finding(f"BOOKPAY_DATA_DIR {path} {what}", fix, blocks="")
    return None


def require_data_dir(path: Path) -> None:
    """ConfigError (exit 5) with the data folder's problem, for the commands that keep files in
    it from the start (serve, the emulator): said once, with its fix, not as an OSError."""
    problem = data_dir_problem(path)
    if problem:
        raise ConfigError(
            f"Configuration problem: {problem}.",
            problems=[str(problem)],
            hint=f"{problem.fix[0].upper()}{problem.fix[1:]}.",
        )


# What a shop id may hold: it goes into every PaymentIntent's metadata, whose values Stripe
# takes up to 500 characters, and into log lines, which a control character would break.
SHOP_ID_MAX = 500
# Stripe's API keys and webhook signing secrets are ASCII letters, digits and _ (a secret's
# base64 may add + / =): no space or control character, which only a bad paste puts there.
_KEY_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+/=")
_FALSE = {"0", "false", "no", "off"}


def parse_flag(value: str | None) -> bool | None:
    """A yes/no setting: True for 1/true/yes/on, False for 0/false/no/off or unset, else None."""
    if value is None:
        return False
    word = value.strip().lower()
    return True if word in _TRUE else False if word in _FALSE or not word else None


def _bad_character(value: str) -> str | None:
    """The first character of ``value`` a Stripe key or secret cannot hold, shown as an escape
    (a space, a control character, anything outside ASCII), or None."""
    for char in value:
        if char not in _KEY_CHARACTERS:
            return "a space" if char == " " else repr(char)
    return None


def key_character_problem(value: str, name: str, blocks: str = "serve") -> Finding | None:
    """Why ``value`` (a key or secret, from ``name``) holds a character none does, or None."""
    bad = _bad_character(value)
    if not bad:
        return None
    return Finding(
        f"{name} holds {bad}, which no Stripe key or secret does: it was not "
        "copied whole, or something was pasted into it",
        f"copy {name} again from the Dashboard, alone on its line"
        if not name.startswith("--")
        else "pass the secret alone, as `stripe listen` or the Dashboard shows it",
        blocks=blocks,
    )


def shop_id_problem(shop_id: str) -> str | None:
    """Why ``shop_id`` cannot go into a PaymentIntent's metadata and the logs, or None."""
    from bookpay.terminal import printable

    if len(shop_id) > SHOP_ID_MAX:
        return (
            f"is {len(shop_id)} characters long: Stripe takes at most {SHOP_ID_MAX} in a "
            "metadata value"
        )
    if printable(shop_id) != shop_id:
        return (
            f"holds a control character ({printable(shop_id)[:80]}): a shop id is one line of "
            "visible characters"
        )
    return None


def smtp_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be read as an SMTP server's address (host, port), or None."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError when out of range or not a number
    except ValueError as exc:
        return f"is not a URL bookpay can read ({exc})"
    if not parts.hostname:
        return "names no host"
    if port == 0:
        return "has port 0"
    return None


def _is_http_url(url: str) -> bool:
    """An http(s) URL with a host, and a port (if any) from 1 to 65535."""
    if not url.startswith(("http://", "https://")):
        return False
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError when out of range or not a number
    except ValueError:
        return False
    return bool(parts.hostname) and port != 0


def _has_login(url: str) -> bool:
    """Whether the http(s) URL ``url`` holds a user name or password (``http://user:pw@host``)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.username is not None or parts.password is not None


def _url_character(url: str) -> str | None:
    """The first character of ``url`` no address bookpay uses may hold, shown as an escape
    (whitespace, a control character, an invisible format character such as U+200B, as the
    emulator refuses them in a return_url), or None. A request line cannot carry one, and
    python's URL parsing drops a tab or a newline without a word."""
    import unicodedata

    host = _host_span(url)
    for index, char in enumerate(url):
        category = unicodedata.category(char)
        if category == "Cf" and host[0] <= index < host[1]:
            # A joiner IDNA allows where a script needs it (Persian's U+200C): the host's
            # punycode is plain ASCII. One that cannot be is refused below all the same.
            from bookpay.origins import ascii_host

            if ascii_host(url[host[0] : host[1]]) is not None:
                continue
        if char.isspace() or category in ("Cc", "Cf"):
            return "a space" if char == " " else repr(char)
    return None


def _host_span(url: str) -> tuple[int, int]:
    """Where the host name is in ``url`` (start, end), read as written (urlsplit would drop a
    tab or a line break first); (0, 0) when there is none."""
    start = url.find("://")
    if start < 0:
        return (0, 0)
    start += 3
    end = len(url)
    for mark in "/?#":
        found = url.find(mark, start)
        if found >= 0:
            end = min(end, found)
    start = max(start, url.rfind("@", start, end) + 1)
    if url.startswith("[", start):  # an IPv6 address: no names there
        return (0, 0)
    colon = url.find(":", start, end)
    return (start, colon if colon >= 0 else end)


def _emulator_url_extra(url: str) -> str | None:
    """What the emulator's address holds besides where the emulator is (a path holding the
    API's own /v1, a query, a fragment), or None: bookpay adds /v1/... to it. A path of its
    own is a proxy's that serves the emulator under it (the emulator reads SCRIPT_NAME)."""
    from urllib.parse import urlsplit

    path = urlsplit(url).path
    if "v1" in path.strip("/").split("/"):  # a path under a proxy is its own; the API's is not
        return f"the path {path}"
    for what, mark in (("a query", "?"), ("a fragment", "#")):
        if mark in url:
            return what
    return None


def _base_url_extra(url: str) -> tuple[str, str] | None:
    """What a shop's base URL holds besides where the shop is (a user name or password, a query,
    a fragment), and why it cannot: Stripe's return_url is the URL with "/success" appended; or
    None."""
    if _has_login(url):
        return (
            "a user name or password",
            "it would be written into every checkout page and sent to Stripe in the return_url",
        )
    for what, mark in (("a query", "?"), ("a fragment", "#")):
        if mark in url:
            return (
                what,
                "Stripe's return_url, this address followed by /success, would not be the "
                "shop's return page",
            )
    return None


def key_kind(key: str) -> tuple[str, str] | None:
    """('secret'|'restricted'|'publishable', 'test'|'live') for a Stripe API key, else None."""
    for prefix, kind in (("sk_", "secret"), ("rk_", "restricted"), ("pk_", "publishable")):
        for mode in ("test", "live"):
            if key.startswith(f"{prefix}{mode}_") and len(key) > len(prefix) + len(mode) + 1:
                return kind, mode
    return None


@dataclass(frozen=True)
class StripeLimits:
    """How long a call to Stripe may take and how many may wait at once.

    Sized for a checkout: a shopper waits for the answer, so a hung Stripe must become an error
    (HTTP 503, exit 4) within ``total_timeout`` seconds, retries and their back-off included,
    never the 80 s per try stripe-python allows by default.
    """

    connect_timeout: float = 3.0  # one lost SYN is retransmitted after 1 s; two would be 3 s
    read_timeout: float = 10.0  # per attempt: the longest a PaymentIntent call normally takes
    total_timeout: float = 15.0  # per call: every attempt and back-off sleep together
    max_retries: int = 2  # stripe-python's network retries, same idempotency key
    max_concurrent: int = 32  # calls waiting on Stripe at once (the bulkhead); more get a 503
    failure_threshold: int = 5  # consecutive failures that open the circuit breaker
    cooldown: float = 5.0  # seconds the open breaker fails fast before one probe call

    def problems(self) -> list[str]:
        found = []
        for name in ("connect_timeout", "read_timeout", "total_timeout", "cooldown"):
            if not getattr(self, name) > 0:
                found.append(f"the Stripe limit {name} must be more than 0")
        for name in ("max_concurrent", "failure_threshold"):
            if getattr(self, name) < 1:
                found.append(f"the Stripe limit {name} must be at least 1")
        if self.max_retries < 0:
            found.append("the Stripe limit max_retries must not be negative")
        return found


@dataclass(frozen=True)
class Settings:
    secret_key: str | None = None
    publishable_key: str | None = None
    webhook_secrets: tuple[str, ...] = ()
    data_dir: Path = Path(".bookpay")
    emulator_url: str = DEFAULT_EMULATOR_URL
    base_url: str | None = None
    allow_live: bool = False
    catalog_path: Path | None = None
    smtp_url: str | None = None
    debug: bool = False
    stripe_limits: StripeLimits = field(default_factory=StripeLimits)
    # The ledger: None is SQLite in data_dir; else postgresql://... or sqlite:///path.
    database_url: str | None = None
    # Goes into every PaymentIntent's metadata; a shop fulfils only its own. None: derived
    # from where the ledger is (see __post_init__), so every process sharing a ledger agrees.
    shop_id: str | None = None
    # "stripe": Stripe Tax works out the tax from the shipping address; "off": no tax (for a
    # Stripe account without Stripe Tax). Anything else is a problem `findings` reports.
    tax: str = "stripe"
    # Where each value came from ("environment", ".env", "default"), for `config check`.
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    # Settings that are set but say nothing bookpay can read (BOOKPAY_DEBUG=maybe, a
    # STRIPE_WEBHOOK_SECRET of commas only), with what they say: each a problem `findings`
    # reports, never silently taken as unset (or as yes).
    unreadable: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.base_url and not _url_character(self.base_url):
            # As browsers write its origin (``https://shop.example:443`` is
            # ``https://shop.example``, ``bücher.example`` is ``xn--bcher-kva.example``): the
            # return_url and the checks of each POST's Origin then name the shop as pages do.
            # (Not one with a tab or a line break, which urlsplit would drop unsaid: `findings`
            # names it as it was given.)
            from bookpay.origins import normal_url

            object.__setattr__(self, "base_url", normal_url(self.base_url))
        if not self.shop_id:
            object.__setattr__(self, "shop_id", derived_shop_id(self.database_url, self.data_dir))

    @property
    def mode(self) -> str:
        """'stripe' when a secret key is configured, else 'emulator'."""
        return "stripe" if self.secret_key else "emulator"

    @property
    def mode_label(self) -> str:
        """The mode in words; live mode is never allowed to look like a test."""
        if self.is_emulated:
            return "local emulator"
        if self.livemode:
            return "Stripe LIVE mode: real cards, real money"
        return "Stripe test mode"

    @property
    def tax_enabled(self) -> bool:
        """Whether orders are taxed through Stripe Tax (BOOKPAY_TAX=stripe)."""
        return self.tax == "stripe"

    @property
    def is_emulated(self) -> bool:
        return self.mode == "emulator"

    @property
    def api_key(self) -> str:
        return self.secret_key or EMULATOR_SECRET_KEY

    @property
    def client_publishable_key(self) -> str:
        return self.publishable_key or EMULATOR_PUBLISHABLE_KEY

    @property
    def livemode(self) -> bool:
        return any(
            (kind := key_kind(key)) is not None and kind[1] == "live"
            for key in (self.secret_key, self.publishable_key)
            if key
        )

    def findings(self) -> list[Finding]:
        """Everything wrong or doubtful in these settings, each once, with its fix.

        What the network says (can Stripe or the emulator be reached, does it take the key) is
        added by `bookpay config check`, which may make requests; this only looks at the values
        and the data folder.
        """
        found: list[Finding] = []
        secret, public = self.secret_key, self.publishable_key
        secret_kind = key_kind(secret) if secret else None
        public_kind = key_kind(public) if public else None
        if secret and (secret_kind is None or secret_kind[0] == "publishable"):
            found.append(
                Finding(
                    "STRIPE_SECRET_KEY must be a secret key (sk_test_... or rk_test_...), "
                    f"got {mask(secret)}",
                    "copy the secret or restricted key from the Dashboard's API keys page",
                )
            )
        if public and (public_kind is None or public_kind[0] != "publishable"):
            found.append(
                Finding(
                    "STRIPE_PUBLISHABLE_KEY must be a publishable key (pk_test_...), "
                    f"got {mask(public)}",
                    "copy the publishable key from the Dashboard's API keys page",
                    blocks="serve",
                )
            )
        if secret_kind and public_kind and secret_kind[1] != public_kind[1]:
            found.append(
                Finding(
                    f"STRIPE_SECRET_KEY is a {secret_kind[1]} key but STRIPE_PUBLISHABLE_KEY is "
                    f"a {public_kind[1]} key: both must come from the same mode",
                    "take both keys from the same mode (test or live) of the same account",
                    blocks="serve",
                )
            )
        if secret_kind and secret_kind[0] != "publishable" and not public:
            found.append(
                Finding(
                    "STRIPE_PUBLISHABLE_KEY is not set: `bookpay serve` needs it for the "
                    "checkout page (every other command works without it)",
                    "set STRIPE_PUBLISHABLE_KEY=pk_test_... from the same account",
                    level="warning",
                    blocks="serve",
                )
            )
        if public and not secret:
            found.append(
                Finding(
                    "STRIPE_PUBLISHABLE_KEY is set without STRIPE_SECRET_KEY",
                    "set both to use Stripe test mode, or neither to use the local emulator",
                    blocks="serve",
                )
            )
        if self.livemode and not self.allow_live:
            found.append(
                Finding(
                    "live keys are refused: bookpay is a test-mode tool",
                    "use test keys, or pass --live (BOOKPAY_ALLOW_LIVE=1) if you really mean to "
                    "charge real cards",
                )
            )
        for name, value, blocks in (
            ("STRIPE_SECRET_KEY", secret, "commands"),
            ("STRIPE_PUBLISHABLE_KEY", public, "serve"),
            *(("STRIPE_WEBHOOK_SECRET", value, "serve") for value in self.webhook_secrets),
        ):
            problem = key_character_problem(value, name, blocks) if value else None
            if problem:
                found.append(problem)
        if "STRIPE_WEBHOOK_SECRET" in self.unreadable:
            found.append(
                Finding(
                    "STRIPE_WEBHOOK_SECRET is set but names no secret, got "
                    f"{self.unreadable['STRIPE_WEBHOOK_SECRET']!r}",
                    "set it to the whsec_... secret (several: comma-separated), or unset it",
                    blocks="serve",
                )
            )
        for secret_value in self.webhook_secrets:
            problem = webhook_secret_problem(secret_value, "STRIPE_WEBHOOK_SECRET")
            if problem:
                found.append(problem)
        if (
            not self.is_emulated
            and not self.webhook_secrets
            and "STRIPE_WEBHOOK_SECRET" not in self.unreadable  # said above, as a problem
        ):
            found.append(webhook_secret_missing("localhost:4242/webhook"))  # serve's default
        for name in ("BOOKPAY_ALLOW_LIVE", "BOOKPAY_DEBUG"):
            if name in self.unreadable:
                found.append(
                    Finding(
                        f"{name} must be 1 or 0 (or true/false, yes/no, on/off), got "
                        f"{self.unreadable[name]!r}",
                        f"set {name}=1 to turn it on, or unset it",
                    )
                )
        if self.shop_id:
            shop_problem = shop_id_problem(self.shop_id)
            if shop_problem:
                found.append(
                    Finding(
                        f"BOOKPAY_SHOP_ID {shop_problem}",
                        f"set it to one line of at most {SHOP_ID_MAX} characters, such as "
                        "shop_books, or unset it to derive one from where the ledger is",
                    )
                )
        if self.base_url and (bad := _url_character(self.base_url)):
            found.append(
                Finding(
                    f"BOOKPAY_BASE_URL holds {bad} ({_mask_login_url(self.base_url)}): Stripe "
                    "refuses a return_url with whitespace or a control character in it",
                    "set it to the shop's public address, such as https://shop.example "
                    "(a space in its path written %20)",
                )
            )
        elif self.base_url and not _is_http_url(self.base_url):
            found.append(
                Finding(
                    "BOOKPAY_BASE_URL must be an http(s) URL with a host (and a port from 1 to "
                    f"65535), got {_mask_login_url(self.base_url)!r}",
                    "set it to the shop's public address, such as https://shop.example",
                )
            )
        elif self.base_url and (extra := _base_url_extra(self.base_url)):
            found.append(
                Finding(
                    f"BOOKPAY_BASE_URL has {extra[0]} ({_mask_login_url(self.base_url)}): "
                    f"{extra[1]}",
                    "set it to the shop's public address alone, such as https://shop.example",
                )
            )
        if bad := _url_character(self.emulator_url):
            found.append(
                Finding(
                    f"BOOKPAY_EMULATOR_URL holds {bad} "
                    f"({_mask_login_url(self.emulator_url)}): no request can be sent to it",
                    f"set it to the emulator's address alone, such as {DEFAULT_EMULATOR_URL}",
                )
            )
        elif not _is_http_url(self.emulator_url):
            found.append(
                Finding(
                    "BOOKPAY_EMULATOR_URL must be an http(s) URL with a host (and a port from 1 to "
                    f"65535), got {_mask_login_url(self.emulator_url)!r}",
                    f"unset it for the default, {DEFAULT_EMULATOR_URL}",
                )
            )
        elif _has_login(self.emulator_url):
            found.append(
                Finding(
                    "BOOKPAY_EMULATOR_URL has a user name or password "
                    f"({_mask_login_url(self.emulator_url)}), which the emulator does not take: "
                    "give its address alone",
                    f"set it to the emulator's address alone, such as {DEFAULT_EMULATOR_URL}",
                )
            )
        elif extra := _emulator_url_extra(self.emulator_url):
            found.append(
                Finding(
                    f"BOOKPAY_EMULATOR_URL has {extra} ({_mask_login_url(self.emulator_url)}): "
                    "bookpay adds the API's own path (/v1/...) to the emulator's address",
                    f"set it to the emulator's address (with the path a proxy serves it under, "
                    f"if one does), such as {DEFAULT_EMULATOR_URL}",
                )
            )
        if self.smtp_url:
            scheme = self.smtp_url.partition("://")[0].lower() if "://" in self.smtp_url else ""
            if scheme not in SMTP_SCHEMES:
                what = f"the unknown scheme {scheme!r}" if scheme else "no scheme"
                found.append(
                    Finding(
                        f"BOOKPAY_SMTP_URL has {what} ({_mask_url(self.smtp_url)}): receipts "
                        "cannot be sent",
                        "use smtp+starttls://user:password@host:587, smtps://...:465 or "
                        "smtp://... (plain, unencrypted); or unset it to write receipts to the "
                        "outbox folder",
                        blocks="",
                    )
                )
            elif problem := smtp_url_problem(self.smtp_url):
                shown = _mask_url(self.smtp_url)
                shown = f" ({shown})"
                found.append(
                    Finding(
                        f"BOOKPAY_SMTP_URL {problem}{shown}: receipts cannot be sent",
                        "use smtp+starttls://user:password@host:587, with a host and a port "
                        "from 1 to 65535 (URL-encode a password holding @ : / or [); or unset it "
                        "to write receipts to the outbox folder",
                        blocks="",
                    )
                )
        if self.tax not in TAX_MODES:
            found.append(
                Finding(
                    f"BOOKPAY_TAX must be stripe or off, got {self.tax!r}",
                    "set BOOKPAY_TAX=stripe (Stripe Tax works out the tax from the address) or "
                    "off (no tax: for a Stripe account without Stripe Tax)",
                )
            )
        data_dir = data_dir_problem(self.data_dir)
        if data_dir:
            found.append(data_dir)
        found.extend(
            Finding(problem, "use the defaults of bookpay.config.StripeLimits")
            for problem in self.stripe_limits.problems()
        )
        return found

    def problems(self, *, serving: bool = False) -> list[str]:
        """What keeps these settings from working for the API commands (and `serve`, if asked)."""
        blocking = ("commands", "serve") if serving else ("commands",)
        return [str(f) for f in self.findings() if f.blocks in blocking]

    def check(self, *, serving: bool = True) -> Settings:
        """These settings, or a ConfigError that lists every problem.

        ``serving=False`` for the commands that only call the API: a secret key is enough.
        """
        found = self.problems(serving=serving)
        if found:
            raise ConfigError(
                "Configuration problem: " + "; ".join(found) + ".",
                problems=found,
                hint="Run `bookpay config check` to see the effective settings.",
            )
        return self

    def describe(self) -> list[tuple[str, str, str]]:
        """(variable, masked value, source) rows for `bookpay config check`."""
        values = {
            "mode": self.mode_label,
            "STRIPE_SECRET_KEY": mask(self.secret_key),
            # A publishable key is public by design, but it need not be printed whole either.
            "STRIPE_PUBLISHABLE_KEY": mask(self.publishable_key),
            "STRIPE_WEBHOOK_SECRET": ", ".join(mask(s) for s in self.webhook_secrets)
            or "(not set)",
            "BOOKPAY_DATA_DIR": str(self.data_dir),
            "BOOKPAY_EMULATOR_URL": _mask_login_url(self.emulator_url),
            "BOOKPAY_BASE_URL": _mask_login_url(self.base_url)
            if self.base_url
            else "(the server's own address)",
            "BOOKPAY_ALLOW_LIVE": "yes" if self.allow_live else "no",
            "BOOKPAY_CATALOG": str(self.catalog_path) if self.catalog_path else "(built in)",
            "BOOKPAY_SMTP_URL": _mask_url(self.smtp_url) if self.smtp_url else "(outbox folder)",
            "BOOKPAY_DATABASE_URL": _mask_url(self.database_url)
            if self.database_url
            else "(SQLite in the data folder)",
            "BOOKPAY_SHOP_ID": self.shop_id
            + ("" if "BOOKPAY_SHOP_ID" in self.sources else " (derived from the ledger's place)"),
            "BOOKPAY_TAX": self._tax_label(),
        }
        return [(name, value, self.sources.get(name, "")) for name, value in values.items()]

    def _tax_label(self) -> str:
        if self.tax == "off":
            return "off: no tax is charged"
        if self.tax != "stripe":
            return f"{self.tax!r} (not a mode: stripe or off)"
        if self.is_emulated:
            return "stripe: tax from the address, by the emulator's TEST rates"
        return "stripe: Stripe Tax works out the tax from the address"

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        dotenv_path: Path | None = None,
        allow_live: bool = False,
        catalog_path: Path | None = None,
        debug: bool = False,
    ) -> Settings:
        """Build settings from ``environ`` (default: the process environment) over ``.env``.

        The process environment wins over the file, as python-dotenv does by default.
        """
        env = os.environ if environ is None else environ
        merged, sources = environment.read(env, dotenv_path=dotenv_path)
        secrets = tuple(
            s.strip() for s in merged.get("STRIPE_WEBHOOK_SECRET", "").split(",") if s.strip()
        )
        unreadable = {}
        if "STRIPE_WEBHOOK_SECRET" in merged and not secrets:
            unreadable["STRIPE_WEBHOOK_SECRET"] = merged["STRIPE_WEBHOOK_SECRET"]
        flags = {}
        for name in ("BOOKPAY_ALLOW_LIVE", "BOOKPAY_DEBUG"):
            flags[name] = parse_flag(merged.get(name))
            if flags[name] is None:
                unreadable[name] = merged[name]
        data_dir = merged.get("BOOKPAY_DATA_DIR")
        if catalog_path:
            sources["BOOKPAY_CATALOG"] = "--catalog"
        if allow_live:
            sources["BOOKPAY_ALLOW_LIVE"] = "--live"
        return cls(
            secret_key=merged.get("STRIPE_SECRET_KEY"),
            publishable_key=merged.get("STRIPE_PUBLISHABLE_KEY"),
            webhook_secrets=secrets,
            data_dir=Path(data_dir).expanduser() if data_dir else default_data_dir(env),
            emulator_url=merged.get("BOOKPAY_EMULATOR_URL", DEFAULT_EMULATOR_URL).rstrip("/"),
            base_url=(merged.get("BOOKPAY_BASE_URL") or "").rstrip("/") or None,
            allow_live=allow_live or bool(flags["BOOKPAY_ALLOW_LIVE"]),
            catalog_path=environment.catalog_path(merged, catalog_path),
            smtp_url=merged.get("BOOKPAY_SMTP_URL"),
            database_url=merged.get("BOOKPAY_DATABASE_URL"),
            shop_id=merged.get("BOOKPAY_SHOP_ID"),
            tax=merged.get("BOOKPAY_TAX", "stripe").lower(),
            debug=debug or bool(flags["BOOKPAY_DEBUG"]),
            sources=sources,
            unreadable=unreadable,
        )


def derived_shop_id(database_url: str | None, data_dir: Path) -> str:
    """A shop id that stays the same for as long as the ledger stays where it is.

    Derived from the ledger's place (the SQLite file's absolute path, or the PostgreSQL URL
    without user and password), so every process sharing one ledger gets the same id without
    any setting. Moving the ledger changes it: set BOOKPAY_SHOP_ID to keep it.
    """
    import hashlib

    from bookpay.ledger.location import DB_NAME, locate

    try:
        identity = locate(database_url, data_dir).identity
    except ConfigError:  # reported by problems(); any stable text will do meanwhile
        identity = database_url or ""
    except OSError:  # a folder on the way cannot be looked into: reported by findings()
        identity = f"sqlite:{(Path(data_dir) / DB_NAME).absolute()}"
    # A path is bytes on POSIX: one that is not UTF-8 comes with surrogate escapes.
    return "shop_" + hashlib.sha256(identity.encode("utf-8", "surrogateescape")).hexdigest()[:12]


def _mask_url(url: str) -> str:
    """An SMTP or database URL with its password hidden, in ``user:pass@`` and in
    ``?password=`` alike: the ledger's masking, one for every URL bookpay shows."""
    from bookpay.ledger.location import mask_url

    return mask_url(url)


def _mask_login_url(url: str) -> str:
    """``_mask_url``, with a user name given alone hidden too (``http://***@host``): in a URL
    that should hold no login (BOOKPAY_BASE_URL, BOOKPAY_EMULATOR_URL), ``token@`` is as likely
    a secret as ``user:password@``."""
    masked = _mask_url(url)
    start = masked.find("//")
    if start == -1:
        return masked
    start += 2
    end = min((i for i in (masked.find(c, start) for c in "/?#") if i != -1), default=len(masked))
    userinfo, at, hostinfo = masked[start:end].rpartition("@")
    if at and ":" not in userinfo:
        return f"{masked[:start]}***@{hostinfo}{masked[end:]}"
    return masked
