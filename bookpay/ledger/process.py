"""Who holds a claim, and whether they still live: a process's identity on this machine.

A receipt claimed by a process that then crashed must be taken over at once, not after a lease
runs out. A claim therefore names its holder (host, the process table it lives in, pid, the
pid's start time, and the ledger instance); another process that shares that process table can
tell whether that holder is still running. The start time guards against a recycled pid. The
process table is this boot of the machine and its pid namespace: containers sharing a host name
(`--network host`, `--uts=host`) or cloned machines with one name each have their own pids, where
a live holder's pid may not exist. A holder whose process table is not ours cannot be checked
from here, so its claim lasts until its lease ends (on PostgreSQL, a holder on another machine
that dies leaves its claims for the lease's 10 minutes: a claim that ended with its holder's
connection let another send a receipt still being sent).

``claim_due`` claims the due rows of a table whose rows are claimed so (receipts, sibling
cancels): free ones, and those whose holder is known to have died, lease or not.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
from collections.abc import Sequence
from functools import lru_cache

from bookpay.ledger.model import now_iso


@lru_cache(maxsize=1)
def _host() -> str:
    return socket.gethostname()


@lru_cache(maxsize=1)
def _process_table() -> str:
    """This boot of this machine and this pid namespace, hashed: two processes see each other's
    pids exactly when theirs are the same. "-" where unknown (no /proc): the host name decides."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            boot = handle.read().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return "-"
    return hashlib.sha256(f"{boot} {namespace}".encode()).hexdigest()[:16]


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), or None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode(errors="replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def new_token() -> str:
    """An identity for one holder (a ledger instance) in this process."""
    pid = os.getpid()
    return f"{_host()}/{_process_table()}/{pid}/{start_time(pid) or '-'}/{secrets.token_hex(4)}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but someone else's
        return True
    return True


def holder_alive(token: str) -> bool:
    """Whether the holder named by ``token`` may still be working. Unknown shapes (those of an
    earlier bookpay's claims too, which did not name the process table): assume so."""
    parts = token.split("/")
    if len(parts) != 5 or not parts[2].isdigit():
        return True
    host, table, pid, started, _ = parts
    if host != _host() or table != _process_table():
        return True  # its pids are not ours to look at: the lease decides
    if not pid_alive(int(pid)):
        return False
    return started in ("-", start_time(int(pid)) or "-")


def of_dead_holders(rows: list) -> list:
    """The claimed rows (``claimed_by``) whose holder is known to have died, each holder looked
    at once: their claims are free before their leases end."""
    alive: dict[str, bool] = {}
    for row in rows:
        holder = row["claimed_by"]
        if holder not in alive:
            alive[holder] = holder_alive(holder)
    return [row for row in rows if not alive[row["claimed_by"]]]


def claim_due(
    tx,
    table: str,
    columns: Sequence[str],
    key: str,
    *,
    token: str,
    lease: float,
    limit: int,
    stamp: str,
    lock_held: bool,
) -> list[dict]:
    """Inside the write transaction ``tx``: claim for ``token`` (for ``lease`` seconds) at most
    ``limit`` of ``table``'s pending rows due at ``stamp``, the earliest due first; the rows
    claimed (``columns``; ``key`` names a row), with their claim as now written.

    Free rows (unclaimed, or their lease ended) are read ``FOR UPDATE SKIP LOCKED`` on
    PostgreSQL: rows another transaction is claiming at this moment are skipped (SQLite's write
    transactions take turns). Short of ``limit``, rows held by others' live leases are read, and
    those whose holder died are claimed too. With ``lock_held`` (receipts) these are read so as
    well, and every row read is this transaction's to mark; without (sibling cancels) they are
    read unlocked, and each claim is a compare-and-set of the claim as it was read: of two
    processes claiming a row at once, one gets it.
    """
    listed, held_lock = ", ".join(columns), "{skip_locked}" if lock_held else ""
    due = tx.all(
        f"""SELECT {listed} FROM {table} WHERE status = 'pending'
        AND next_attempt_at <= ? AND (claimed_by IS NULL OR claimed_until <= ?)
        ORDER BY next_attempt_at LIMIT ?{{skip_locked}}""",
        (stamp, stamp, limit),
    )
    if len(due) < limit:  # claims whose holder died are free too, lease or not
        held = tx.all(
            f"""SELECT {listed} FROM {table} WHERE status = 'pending'
            AND next_attempt_at <= ? AND claimed_by IS NOT NULL AND claimed_until > ?
            AND claimed_by <> ? ORDER BY next_attempt_at{held_lock}""",
            (stamp, stamp, token),
        )
        due.extend(of_dead_holders(held))
        due = due[:limit]
    until = now_iso(lease)
    claimed = []
    for row in due:
        if lock_held:
            same, params = "", ()
        elif row["claimed_by"] is None:
            same, params = " AND status = 'pending' AND claimed_by IS NULL", ()
        else:
            same = " AND status = 'pending' AND claimed_by = ? AND claimed_until = ?"
            params = (row["claimed_by"], row["claimed_until"])
        if tx.run(
            f"UPDATE {table} SET claimed_by = ?, claimed_until = ? WHERE {key} = ?{same}",
            (token, until, row[key], *params),
        ):
            claimed.append({**row, "claimed_by": token, "claimed_until": until})
    return claimed
