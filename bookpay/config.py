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

from bookpay.errors import ConfigError

DEFAULT_EMULATOR_URL = "http://127.0.0.1:12111"
# The emulator accepts any test key; these make its mode obvious in logs and in the dashboard-less
# world of local testing.
EMULATOR_SECRET_KEY = "sk_test_bookpay_emulator"
EMULATOR_PUBLISHABLE_KEY = "pk_test_bookpay_emulator"

ENV_VARS = (
    "STRIPE_SECRET_KEY",
    "STRIPE_PUBLISHABLE_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "BOOKPAY_DATA_DIR",
    "BOOKPAY_EMULATOR_URL",
    "BOOKPAY_BASE_URL",
    "BOOKPAY_ALLOW_LIVE",
    "BOOKPAY_CATALOG",
    "BOOKPAY_SMTP_URL",
    "BOOKPAY_DATABASE_URL",
    "BOOKPAY_SHOP_ID",
    "BOOKPAY_DEBUG",
)
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


def mask(secret: str | None) -> str:
    """``sk_test_51Hx...abcd``: the key's kind and its last four characters, never the rest."""
    if not secret:
        return "(not set)"
    head, sep, rest = secret.rpartition("_")
    prefix = head + sep if sep else ""
    if len(rest) <= 8:  # too short to show any of it without giving most of it away
        return f"{prefix}..." if prefix else "..."
    return f"{prefix}...{rest[-4:]}"


def key_kind(key: str) -> tuple[str, str] | None:
    """('secret'|'restricted'|'publishable', 'test'|'live') for a Stripe API key, else None."""
    for prefix, kind in (("sk_", "secret"), ("rk_", "restricted"), ("pk_", "publishable")):
        for mode in ("test", "live"):
            if key.startswith(f"{prefix}{mode}_") and len(key) > len(prefix) + len(mode) + 1:
                return kind, mode
    return None


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
    # The ledger: None is SQLite in data_dir; else postgresql://... or sqlite:///path.
    database_url: str | None = None
    # Goes into every PaymentIntent's metadata; a shop fulfils only its own. None: derived
    # from where the ledger is (see __post_init__), so every process sharing a ledger agrees.
    shop_id: str | None = None
    # Where each value came from ("environment", ".env", "default"), for `config check`.
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
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

    def problems(self) -> list[str]:
        """Everything that keeps these settings from working, worded for the user."""
        found: list[str] = []
        secret, public = self.secret_key, self.publishable_key
        secret_kind = key_kind(secret) if secret else None
        public_kind = key_kind(public) if public else None
        if secret and (secret_kind is None or secret_kind[0] == "publishable"):
            found.append(
                "STRIPE_SECRET_KEY must be a secret key (sk_test_... or rk_test_...), "
                f"got {mask(secret)}"
            )
        if public and (public_kind is None or public_kind[0] != "publishable"):
            found.append(
                "STRIPE_PUBLISHABLE_KEY must be a publishable key (pk_test_...), "
                f"got {mask(public)}"
            )
        if secret_kind and public_kind and secret_kind[1] != public_kind[1]:
            found.append(
                f"STRIPE_SECRET_KEY is a {secret_kind[1]} key but STRIPE_PUBLISHABLE_KEY is a "
                f"{public_kind[1]} key: both must come from the same mode"
            )
        if secret and not public and secret_kind:
            found.append(
                "STRIPE_PUBLISHABLE_KEY is not set: the checkout page needs it alongside "
                "STRIPE_SECRET_KEY"
            )
        if public and not secret:
            found.append(
                "STRIPE_PUBLISHABLE_KEY is set without STRIPE_SECRET_KEY: set both, or neither "
                "to use the local emulator"
            )
        if self.livemode and not self.allow_live:
            found.append(
                "live keys are refused: bookpay is a test-mode tool; pass --live or set "
                "BOOKPAY_ALLOW_LIVE=1 if you really mean to charge real cards"
            )
        for secret_value in self.webhook_secrets:
            if not secret_value.startswith("whsec_") or len(secret_value) <= len("whsec_"):
                found.append(
                    f"STRIPE_WEBHOOK_SECRET must start with whsec_, got {mask(secret_value)}"
                )
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            found.append(f"BOOKPAY_BASE_URL must be an http(s) URL, got {self.base_url!r}")
        if not self.emulator_url.startswith(("http://", "https://")):
            found.append(f"BOOKPAY_EMULATOR_URL must be an http(s) URL, got {self.emulator_url!r}")
        return found

    def check(self) -> Settings:
        """These settings, or a ConfigError that lists every problem."""
        found = self.problems()
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
            "BOOKPAY_EMULATOR_URL": self.emulator_url,
            "BOOKPAY_BASE_URL": self.base_url or "(the server's own address)",
            "BOOKPAY_ALLOW_LIVE": "yes" if self.allow_live else "no",
            "BOOKPAY_CATALOG": str(self.catalog_path) if self.catalog_path else "(built in)",
            "BOOKPAY_SMTP_URL": _mask_url(self.smtp_url) if self.smtp_url else "(outbox folder)",
            "BOOKPAY_DATABASE_URL": _mask_url(self.database_url)
            if self.database_url
            else "(SQLite in the data folder)",
            "BOOKPAY_SHOP_ID": self.shop_id
            + ("" if "BOOKPAY_SHOP_ID" in self.sources else " (derived from the ledger's place)"),
        }
        return [(name, value, self.sources.get(name, "")) for name, value in values.items()]

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
        env = dict(os.environ if environ is None else environ)
        dotenv_path = Path(".env") if dotenv_path is None else dotenv_path
        file_values: dict[str, str] = {}
        if dotenv_path.is_file():
            from dotenv import dotenv_values

            file_values = {k: v for k, v in dotenv_values(dotenv_path).items() if v is not None}
        merged: dict[str, str] = {}
        sources: dict[str, str] = {}
        for name in ENV_VARS:
            if env.get(name, "").strip():
                merged[name], sources[name] = env[name].strip(), "environment"
            elif file_values.get(name, "").strip():
                merged[name], sources[name] = file_values[name].strip(), str(dotenv_path)
        secrets = tuple(
            s.strip() for s in merged.get("STRIPE_WEBHOOK_SECRET", "").split(",") if s.strip()
        )
        data_dir = merged.get("BOOKPAY_DATA_DIR")
        catalog = catalog_path or merged.get("BOOKPAY_CATALOG")
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
            allow_live=allow_live or merged.get("BOOKPAY_ALLOW_LIVE", "").lower() in _TRUE,
            catalog_path=Path(catalog) if catalog else None,
            smtp_url=merged.get("BOOKPAY_SMTP_URL"),
            database_url=merged.get("BOOKPAY_DATABASE_URL"),
            shop_id=merged.get("BOOKPAY_SHOP_ID"),
            debug=debug or merged.get("BOOKPAY_DEBUG", "").lower() in _TRUE,
            sources=sources,
        )


def derived_shop_id(database_url: str | None, data_dir: Path) -> str:
    """A shop id that stays the same for as long as the ledger stays where it is.

    Derived from the ledger's place (the SQLite file's absolute path, or the PostgreSQL URL
    without user and password), so every process sharing one ledger gets the same id without
    any setting. Moving the ledger changes it: set BOOKPAY_SHOP_ID to keep it.
    """
    import hashlib

    from bookpay.ledger.location import locate

    try:
        identity = locate(database_url, data_dir).identity
    except ConfigError:  # reported by problems(); any stable text will do meanwhile
        identity = database_url or ""
    return "shop_" + hashlib.sha256(identity.encode()).hexdigest()[:12]


def _mask_url(url: str) -> str:
    """An SMTP or database URL with its password hidden."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if at and ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        return f"{scheme}{sep}{user}:***@{host}"
    return url
