"""The emulator webhook endpoints a shop's data folder keeps between runs, and who holds each.

Stripe shows an endpoint's signing secret only in the answer that creates it, so a shop that
means to use its endpoint again after a restart (and the deliveries queued for it meanwhile)
keeps the id and the secret itself: one record per endpoint in ``webhook-endpoints/`` of the
private data folder (0700), a 0600 JSON file named after the endpoint.

Several `bookpay serve` processes may share one data folder, each with an endpoint of its own,
so a record is held by one running process at a time: an ``flock`` of its file, taken without
waiting and let go when the process stops or dies. A process starting adopts a record nobody
holds; the others skip it. Where files cannot be locked (Windows), nothing is kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import secrets
import socket
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bookpay.privatefiles import FILE_MODE, private_dir

try:
    import fcntl
except ImportError:  # Windows: no locks, so no records either
    fcntl = None

FOLDER = "webhook-endpoints"
SUPPORTED = fcntl is not None
MAX_SIZE = 65536  # bytes: a record is a few hundred
# Never through a link, and never waiting on a FIFO: a record is a regular file.
_OPEN_FLAGS = os.O_RDWR | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
log = logging.getLogger("bookpay.kept_endpoint")


@dataclass
class Kept:
    """One record, held (locked) by this process until ``release``."""

    path: Path
    fd: int
    id: str
    secret: str
    emulator: str
    shop: str
    disabled_at: float | None = None  # when its process disabled it at stop
    adopted_at: float | None = None  # when a process last took it into use (kept or adopted)
    mtime: float | None = None  # of the file when it was held: adopted_at for older records
    state: str | None = None  # the emulator state that has it (its /healthz "state")
    ephemeral: bool | None = None  # whether that state was in memory, gone with its process

    def save(self, **changes) -> None:
        """Write the record again with ``changes``, holding on to it."""
        for name, value in changes.items():
            setattr(self, name, value)
        body = json.dumps(
            {
                "id": self.id,
                "secret": self.secret,
                "emulator": self.emulator,
                "shop": self.shop,
                "disabled_at": self.disabled_at,
                "adopted_at": self.adopted_at,
                "state": self.state,
                "ephemeral": self.ephemeral,
            }
        ).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, body, 0)

    def release(self) -> None:
        """Let go of the record (kept for the next process to adopt)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def discard(self) -> None:
        """Remove the record (its endpoint is gone, or is not this shop's), then let go."""
        with contextlib.suppress(OSError):
            self.path.unlink()
        self.release()


def folder(data_dir: Path) -> Path:
    return private_dir(private_dir(Path(data_dir)) / FOLDER)


def folder_tag(data_dir: Path) -> str:
    """A name of the data folder (of its host and absolute path, hashed): an endpoint kept for
    this folder carries it (``metadata[bookpay_folder]``), so that its start can tell its own
    kept endpoints whose record is gone (the folder wiped) from another folder's."""
    where = f"{socket.gethostname()}\0{Path(data_dir).resolve()}"
    return hashlib.sha256(where.encode()).hexdigest()[:16]


def recorded(data_dir: Path, endpoint_id: str) -> bool:
    """Whether the data folder has anything under the record name of ``endpoint_id`` (held by a
    process or not, a record or not): an endpoint that has one is never taken for an orphan."""
    if not _name_ok(endpoint_id):
        return True  # no record could have its name: not this folder's to judge
    return os.path.lexists(folder(data_dir) / f"{endpoint_id}.json")


def _name_ok(endpoint_id: str) -> bool:
    return endpoint_id.replace("_", "").isalnum()


def unheld(data_dir: Path, warn: Callable[[str], None] | None = None) -> Iterator[Kept]:
    """The records no running process holds, oldest first, each held by this process as it is
    yielded (release or discard it, or keep it). What is not a record is skipped, with a
    ``warn``ing (a logged one by default): never the end of a start."""
    if not SUPPORTED:
        return
    where = folder(data_dir)
    paths = sorted(where.glob("we_*.json"), key=lambda p: (_mtime(p), p.name))
    for path in paths:
        kept = _hold(path, warn or log.warning)
        if kept is not None:
            yield kept


def held_elsewhere(data_dir: Path, endpoint_id: str) -> bool:
    """Whether another process holds the record of ``endpoint_id`` (it is adopting it)."""
    if not SUPPORTED or not _name_ok(endpoint_id):
        return False
    path = folder(data_dir) / f"{endpoint_id}.json"
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # lets go of the lock if it was taken
    return False


def keep(
    data_dir: Path,
    endpoint: dict,
    *,
    emulator: str,
    shop: str,
    state: str | None = None,
    ephemeral: bool | None = None,
) -> Kept | None:
    """A new record of a just created ``endpoint`` (with its ``secret``), held by this process;
    None where nothing can be kept. The file is complete and held before it has its name, so
    no other process can take it half written."""
    if not SUPPORTED or not _name_ok(endpoint["id"]):
        return None
    where = folder(data_dir)
    temporary = where / f".new-{os.getpid()}-{secrets.token_hex(4)}"
    fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        kept = Kept(where / f"{endpoint['id']}.json", fd, endpoint["id"], endpoint["secret"],
                    emulator, shop, adopted_at=time.time(), state=state,
                    ephemeral=ephemeral)  # fmt: skip
        kept.save()
        os.replace(temporary, kept.path)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    return kept


def _hold(path: Path, warn: Callable[[str], None]) -> Kept | None:
    """The record at ``path``, held; None when another process holds it or it is gone. What
    is not a record is skipped with a warning: a regular file that is not one (corrupt) is
    removed, anything else (a FIFO, a folder, a link) is left alone."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:  # taken and discarded by another process meanwhile
        return None
    except OSError as exc:  # a link (O_NOFOLLOW), a folder, no permission
        warn(f"skipped {path}, not a webhook endpoint record: {exc.strerror or exc}.")
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    try:
        status = os.fstat(fd)
        if status.st_nlink == 0:  # discarded between our open and our lock
            os.close(fd)
            return None
        if not stat.S_ISREG(status.st_mode):
            raise OSError(f"not a regular file ({stat.filemode(status.st_mode)})")
        body = os.pread(fd, MAX_SIZE + 1, 0)
    except OSError as exc:
        os.close(fd)
        warn(f"skipped {path}, not a webhook endpoint record: {exc.strerror or exc}.")
        return None
    try:
        if len(body) > MAX_SIZE:
            raise ValueError(f"larger than {MAX_SIZE} bytes")
        kept = _parse(path, fd, json.loads(body))
        kept.mtime = status.st_mtime
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)
        reason = "nested too deeply" if isinstance(exc, RecursionError) else "unreadable"
        warn(f"removed {path}, not a webhook endpoint record ({reason}).")
        return None
    return kept


def _parse(path: Path, fd: int, data) -> Kept:
    if not isinstance(data, dict):
        raise TypeError("not a record")
    kept = Kept(path, fd, data["id"], data["secret"], data["emulator"], data["shop"],
                data.get("disabled_at"), data.get("adopted_at"), state=data.get("state"),
                ephemeral=data.get("ephemeral"))  # fmt: skip
    if not all(isinstance(v, str) for v in (kept.id, kept.secret, kept.emulator, kept.shop)):
        raise TypeError("not a record")
    if not (_time_or_none(kept.disabled_at) and _time_or_none(kept.adopted_at)):
        raise TypeError("not a record")
    if not isinstance(kept.state, (str, type(None))) or kept.ephemeral not in (True, False, None):
        raise TypeError("not a record")
    return kept


def _time_or_none(value) -> bool:
    if value is None:
        return True
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()
