"""The data folder and its files: created private, and a file in the way said as such."""

from __future__ import annotations

import errno

import pytest
from typer.testing import CliRunner

from bookpay.cli import app
from bookpay.privatefiles import private_dir


@pytest.mark.parametrize("below", ["sub", "sub/deeper"])
def test_a_folder_below_a_file_is_not_a_directory(tmp_path, below):
    """A file as the folder's parent made mkdir say "File exists" (its grandparent, "Not a
    directory"): the same mistake, said two ways."""
    afile = tmp_path / "afile"
    afile.write_text("not a folder\n")
    with pytest.raises(NotADirectoryError) as refused:
        private_dir(afile / below)
    assert refused.value.errno == errno.ENOTDIR
    assert afile.read_text() == "not a folder\n"


def test_a_command_that_creates_the_ledger_below_a_file_says_not_a_directory(tmp_path, cli_env):
    """README: a path through a file is `... cannot be opened: Not a directory.`"""
    afile = tmp_path / "afile"
    afile.write_text("")
    data = afile / "sub"
    result = CliRunner().invoke(
        app, ["intent", "create", "--item", "1"], env={**cli_env, "BOOKPAY_DATA_DIR": str(data)}
    )
    assert result.exit_code == 5, result.output
    ledger = data / "bookpay.sqlite3"
    assert result.stderr == (
        f"Error: The orders ledger {ledger} cannot be opened: Not a directory.\n"
    )
