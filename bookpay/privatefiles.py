"""The data folder and what bookpay writes in it are its owner's alone: folders 0700, files 0600.

The folder holds customers' e-mail and postal addresses (the ledger, the receipts) and the
webhook signing secret, so no other local user may read it, whatever the umask says.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) if missing; a folder created here is 0700.
    NotADirectoryError when something else has the name, or its parent's (a file is never made
    0700): mkdir says "File exists" of a file where the parent folder should be."""
    path = Path(path)
    if not path.is_dir():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise NotADirectoryError(
                errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path.parent)
            ) from None
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=DIR_MODE)
        if not path.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path))
        os.chmod(path, DIR_MODE)  # mkdir's mode is filtered by the umask
    return path


def private_file(path: Path) -> Path:
    """Make sure ``path`` exists and is 0600, creating it empty if needed.

    SQLite gives its -wal and -shm files the mode of the database file, so a database created
    through this stays private with its companions.
    """
    path = Path(path)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        with contextlib.suppress(PermissionError):  # not ours to change: leave it
            if path.stat().st_mode & 0o077:
                os.chmod(path, FILE_MODE)
    return path
