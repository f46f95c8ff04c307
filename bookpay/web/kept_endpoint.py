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
import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bookpay.privatefiles import FILE_MODE, private_dir

try:
    import fcntl
except ImportError:  # Windows: no locks, so no records either
    fcntl = None

FOLDER = "webhook-endpoints"
SUPPORTED = fcntl is not None


@dataclass
class Kept:
    """One record, held (locked) by this process until ``release``."""

    path: Path
    fd: int
    id: str
    secret: str
    emulator: str
    shop: str
    disabled_at: float | None = None

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


def _name_ok(endpoint_id: str) -> bool:
    return endpoint_id.replace("_", "").isalnum()


def unheld(data_dir: Path) -> Iterator[Kept]:
    """The records no running process holds, oldest first, each held by this process as it is
    yielded (release or discard it, or keep it). Records that cannot be read are discarded."""
    if not SUPPORTED:
        return
    where = folder(data_dir)
    paths = sorted(where.glob("we_*.json"), key=lambda p: (_mtime(p), p.name))
    for path in paths:
        kept = _hold(path)
        if kept is not None:
            yield kept


def held_elsewhere(data_dir: Path, endpoint_id: str) -> bool:
    """Whether another process holds the record of ``endpoint_id`` (it is adopting it)."""
    if not SUPPORTED or not _name_ok(endpoint_id):
        return False
    path = folder(data_dir) / f"{endpoint_id}.json"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # lets go of the lock if it was taken
    return False


def keep(data_dir: Path, endpoint: dict, *, emulator: str, shop: str) -> Kept | None:
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
                    emulator, shop)  # fmt: skip
        kept.save()
        os.replace(temporary, kept.path)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    return kept


def _hold(path: Path) -> Kept | None:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:  # taken and discarded by another process meanwhile
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    if os.fstat(fd).st_nlink == 0:  # discarded between our open and our lock
        os.close(fd)
        return None
    try:
        data = json.loads(os.pread(fd, 65536, 0))
        kept = Kept(path, fd, data["id"], data["secret"], data["emulator"], data["shop"],
                    data.get("disabled_at"))  # fmt: skip
        if not all(isinstance(v, str) for v in (kept.id, kept.secret, kept.emulator, kept.shop)):
            raise TypeError("not a record")
        if not isinstance(kept.disabled_at, (int, float, type(None))):
            raise TypeError("not a record")
    except (ValueError, KeyError, TypeError):
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)
        return None
    return kept


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()
