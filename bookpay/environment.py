"""bookpay's variables, read from the process environment over ``.env``.

``Settings.from_env`` builds everything from what ``read`` returns. This module is apart from
``config`` so that a command needing one value (`catalog list` needs only BOOKPAY_CATALOG) can
read it without building ``Settings``: config defines dataclasses, and a dataclass costs its
generated methods' compilation at every start-up.
"""

from __future__ import annotations

import os
import re
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
    """A ``.env`` file's values; one that cannot be read, is not UTF-8, or has a line
    python-dotenv cannot parse (which it would skip, saying so without the file's name) is a
    configuration problem, not a crash or a setting quietly lost. (python-dotenv drops a
    byte-order mark at its start itself.)"""
    import io

    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    from bookpay.errors import ConfigError

    try:
        text = path.read_text(encoding="utf-8")
        unparsed = [b.original for b in parse_stream(io.StringIO(text)) if b.error]
        if not unparsed:
            values = dotenv_values(stream=io.StringIO(text))
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"Cannot read {path}: it is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
            f"offset {exc.start}).",
            hint="Save it as UTF-8, or remove it: bookpay reads .env in the working folder.",
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"Cannot read {path}: {exc.strerror or exc}.",
            hint="Make it readable, or remove it: bookpay reads .env in the working folder.",
        ) from None
    if unparsed:
        # The line's number and the name it sets, if it starts like a setting: never its value
        # (a key, as often as not), nor a "name" of lower-case letters (a pasted key).
        said = [_line_of(o) for o in unparsed]
        lines = f"line {said[0]}" if len(said) == 1 else f"lines {', '.join(said)}"
        # A line that starts like a setting most likely has a quote left open; another (a
        # shell command such as `set -a`, a key pasted alone) is no setting at all.
        why = (
            "a quote left open, or something after the closing one?"
            if any(_SETTING_NAME.match(o.string) for o in unparsed)
            else "a .env file holds settings only, not shell commands"
        )
        message = f"Cannot read {path}: {lines} cannot be parsed as NAME=value ({why})."
        raise ConfigError(
            message,
            problems=[message.removesuffix(".")],
            hint="Write each setting as NAME=value, a quoted value's quotes closed, or remove "
            "the file: bookpay reads .env in the working folder.",
        )
    return {k: v for k, v in values.items() if v is not None}


# How a line setting a variable starts (``export`` allowed, as python-dotenv takes it).
_SETTING_NAME = re.compile(r"\s*(?:export\s+)?([A-Z_][A-Z0-9_]{0,99})\s*=")


def _line_of(statement) -> str:
    """Where a statement python-dotenv could not parse starts: its first line that is not blank
    (python-dotenv counts from the blank lines before it), with the name it sets, if any."""
    text = statement.string
    blank = text[: len(text) - len(text.lstrip())]
    line = statement.line + blank.count("\n")
    name = _SETTING_NAME.match(text)
    return f"{line} ({name[1]})" if name else str(line)
