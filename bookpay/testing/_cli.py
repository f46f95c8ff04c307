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
    keeping its files in ``data_dir`` (a temporary folder when not given)."""
    return Cli(emulator.url if emulator is not None else None, data_dir, env=env)


class Cli:
    """``cli("intent", "create", "--item", "1", "--json")`` -> CliResult."""

    def __init__(
        self, emulator_url: str | None, data_dir: Path | str | None, *, env: dict | None = None
    ) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="bookpay-cli-")
        self.workdir = Path(self._folder.name) / "cwd"
        self.workdir.mkdir()
        self.data_dir = Path(data_dir) if data_dir else Path(self._folder.name) / "data"
        self.env = {"BOOKPAY_DATA_DIR": str(self.data_dir), "NO_COLOR": "1", **(env or {})}
        if emulator_url:
            self.env["BOOKPAY_EMULATOR_URL"] = emulator_url

    def __call__(self, *args: Any, input: str | None = None, env: dict | None = None) -> CliResult:
        from typer.testing import CliRunner

        from bookpay.cli import app

        words = [str(arg) for arg in (args[0] if len(args) == 1 and _listy(args[0]) else args)]
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


def _listy(value: Any) -> bool:
    return isinstance(value, (list, tuple))
