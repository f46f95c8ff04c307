"""bookpay's CLI in-process for tests, isolated from the developer's environment.

Each call runs ``bookpay ARGS`` through Typer's ``CliRunner`` with every ``STRIPE_*`` and
``BOOKPAY_*`` variable of the process removed, ``BOOKPAY_EMULATOR_URL`` and ``BOOKPAY_DATA_DIR``
set, and an empty working folder (so no stray ``.env`` is read).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_cwd_lock = threading.Lock()  # the working folder is the process's: one call at a time


@dataclass
class CliResult:
    """What a command did: ``exit_code``, ``stdout``, ``stderr``; ``json``: stdout parsed."""

    args: list[str]
    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None = field(default=None, repr=False)

    @property
    def json(self) -> Any:
        """stdout as JSON (for ``--json`` commands); ValueError, saying what came, otherwise."""
        try:
            return json.loads(self.stdout)
        except ValueError:
            raise ValueError(
                f"`bookpay {' '.join(self.args)}` did not print JSON (exit {self.exit_code}): "
                f"{self.stdout[:200]!r}; stderr: {self.stderr[:200]!r}"
            ) from None


def cli(
    emulator: Any = None, data_dir: Path | str | None = None, *, env: dict | None = None
) -> Cli:
    """A ``Cli`` against ``emulator`` (a StripeEmulator, or None for the settings' default),
    keeping its files in ``data_dir`` (a temporary folder when not given; a relative one is
    taken from the working folder now, not the CLI's own)."""
    return Cli(emulator.url if emulator is not None else None, data_dir, env=env)


class Cli:
    """``cli("intent", "create", "--item", "1", "--json")`` -> CliResult."""

    def __init__(
        self, emulator_url: str | None, data_dir: Path | str | None, *, env: dict | None = None
    ) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="bookpay-cli-")
        self.workdir = Path(self._folder.name) / "cwd"
        self.workdir.mkdir()
        # Absolute now: each call runs in a working folder of its own.
        self.data_dir = (
            Path(data_dir).expanduser().absolute() if data_dir else Path(self._folder.name) / "data"
        )
        self.env = {"BOOKPAY_DATA_DIR": str(self.data_dir), "NO_COLOR": "1", **(env or {})}
        if emulator_url:
            self.env["BOOKPAY_EMULATOR_URL"] = emulator_url

    def __call__(self, *args: Any, input: str | None = None, env: dict | None = None) -> CliResult:
        from typer.testing import CliRunner

        from bookpay.cli import app

        words = [str(arg) for arg in (args[0] if len(args) == 1 and _listy(args[0]) else args)]
        _refuse_servers(words)
        isolated: dict[str, str | None] = {
            name: None for name in os.environ if name.startswith(("STRIPE_", "BOOKPAY_"))
        }
        isolated.update(self.env)
        isolated.update(env or {})
        with _cwd_lock:
            before = os.getcwd()
            os.chdir(self.workdir)
            try:
                result = CliRunner().invoke(
                    app, words, input=input, env=isolated, prog_name="bookpay"
                )
            finally:
                os.chdir(before)
        crash = None if isinstance(result.exception, SystemExit) else result.exception
        return CliResult(words, result.exit_code, result.stdout, result.stderr, crash)

    def close(self) -> None:
        self._folder.cleanup()

    def __enter__(self) -> Cli:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# The commands that run until Ctrl-C or SIGTERM (in-process, they would hold the test forever),
# and what a test uses instead.
_SERVERS = {
    "serve": "the bookpay_shop fixture (bookpay.testing.shop)",
    "emulator": "the stripe_emulator fixture (bookpay.testing.emulator)",
    "worker": "`worker --once`, which sends what is due and exits",
}


def _refuse_servers(words: list[str]) -> None:
    """ValueError for ``serve``, ``emulator`` and ``worker`` without ``--once`` (not for their
    ``--help``): run in-process, they would wait for a Ctrl-C that never comes."""
    at = 0
    while at < len(words) and words[at].startswith("-"):
        at += 2 if words[at] == "--catalog" else 1  # the root's one option with a value
    if at >= len(words) or {"-h", "--help", "--version"} & set(words):
        return
    command, rest = words[at], words[at + 1 :]
    if command in _SERVERS and not (command == "worker" and "--once" in rest):
        raise ValueError(
            f"`bookpay {command}` runs until it is stopped: bookpay_cli would wait for it "
            f"forever. Use {_SERVERS[command]}."
        )


def _listy(value: Any) -> bool:
    return isinstance(value, (list, tuple))
