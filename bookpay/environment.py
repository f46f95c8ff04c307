"""bookpay's variables, read from the process environment over ``.env``.

``Settings.from_env`` builds everything from what ``read`` returns. This module is apart from
``config`` so that a command needing one value (`catalog list` needs only BOOKPAY_CATALOG) can
read it without building ``Settings``: config defines dataclasses, and a dataclass costs its
generated methods' compilation at every start-up.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

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
    "BOOKPAY_TAX",
    "BOOKPAY_DEBUG",
)


def read(
    environ: Mapping[str, str] | None = None, *, dotenv_path: Path | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """(values, sources) of bookpay's variables that are set (blank counts as unset).

    The process environment wins over the file, as python-dotenv does by default; a source is
    "environment" or the ``.env`` file's path.
    """
    env = os.environ if environ is None else environ
    dotenv_path = Path(".env") if dotenv_path is None else dotenv_path
    file_values: dict[str, str] = {}
    if dotenv_path.is_file():
        file_values = _read_dotenv(dotenv_path)
    merged: dict[str, str] = {}
    sources: dict[str, str] = {}
    for name in ENV_VARS:
        if env.get(name, "").strip():
            merged[name], sources[name] = env[name].strip(), "environment"
        elif file_values.get(name, "").strip():
            merged[name], sources[name] = file_values[name].strip(), str(dotenv_path)
    return merged, sources


def catalog_path(merged: Mapping[str, str], given: Path | None = None) -> Path | None:
    """The catalog file: ``--catalog`` if given, else BOOKPAY_CATALOG, else None (built in)."""
    catalog = given or merged.get("BOOKPAY_CATALOG")
    return Path(catalog) if catalog else None


def _read_dotenv(path: Path) -> dict[str, str]:
    """A ``.env`` file's values; one that cannot be read, or is not UTF-8, is a configuration
    problem, not a crash. (python-dotenv drops a byte-order mark at its start itself.)"""
    from dotenv import dotenv_values

    try:
        values = dotenv_values(path)
    except UnicodeDecodeError as exc:
        from bookpay.errors import ConfigError

        raise ConfigError(
            f"Cannot read {path}: it is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
            f"offset {exc.start}).",
            hint="Save it as UTF-8, or remove it: bookpay reads .env in the working folder.",
        ) from None
    except OSError as exc:
        from bookpay.errors import ConfigError

        raise ConfigError(
            f"Cannot read {path}: {exc.strerror or exc}.",
            hint="Make it readable, or remove it: bookpay reads .env in the working folder.",
        ) from None
    return {k: v for k, v in values.items() if v is not None}
