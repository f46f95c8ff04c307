"""The SQLite backend: one file, WAL, a connection per thread, writes under BEGIN IMMEDIATE.

Each thread gets its own connection (sqlite3 connections must not be used by two threads at
once); writes take the database lock up front with ``BEGIN IMMEDIATE`` so two writers never
deadlock upgrading a read lock. Writers of one process take turns on a lock of their own first
(``_turn``): a waiting thread wakes the moment the writer before it commits, where SQLite's
busy handler would have it sleep and poll (1, 2, 5 ... 100 ms), which under load made writers
queue behind sleeping ones. Writers of several processes on one ledger (`bookpay serve` with
`bookpay worker` beside it, or several servers) take turns the same way across processes, on an
``flock`` of a file beside the database (``<ledger>-turn``, see ``_across``): a waiting writer
looks every millisecond at most, where SQLite's busy handler would sleep up to 100 ms between
looks; a process that dies lets go of it with its file descriptors. The file only makes the
turns quick: SQLite's own lock is what keeps writes apart, so a process without it (an older
bookpay, the ``sqlite3`` shell) still waits its turn, through ``busy_timeout``, and a writer
that cannot have the file (a read-only folder, a system without ``flock``) goes straight to
SQLite's lock. Rows keep SQLite's implicit ``rowid`` as their insertion order.

A ledger that fails once it is open (a disk I/O error, a damaged file, a lock another process
holds past ``busy_timeout``) is LedgerUnavailable, in one line, wherever
the backend hands out a connection (``_failures``): exit 5 at the command line, a 503 at the
server (so Stripe retries a webhook later). bookpay's own mistakes are not: a constraint broken
(LedgerConflict), SQL SQLite cannot run (its generic SQLITE_ERROR), a misused API.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache

from bookpay.ledger.errors import LedgerConflict, LedgerMissing, too_new, unavailable
from bookpay.ledger.location import Location
from bookpay.ledger.migrations import MIGRATIONS, SCHEMA_VERSION
from bookpay.ledger.units import Units
from bookpay.privatefiles import FILE_MODE, private_dir, private_file

try:
    import fcntl
except ImportError:  # Windows: SQLite's own lock alone
    fcntl = None

BUSY_TIMEOUT = 30.0  # seconds a writer waits for another process's write lock (busy_timeout)
TURN_POLL = 0.001  # seconds between looks at most, while another process has the turn
# A wait for the turn longer than this shortens SQLite's own wait after it (``_turn``).
SHORTEN_AFTER = 0.1


class Tx:
    """A connection inside a transaction (or autocommit reads): rows come back as dicts."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def all(self, sql: str, params: Sequence = ()) -> list[dict]:
        return [dict(row) for row in self.conn.execute(_sql(sql), params).fetchall()]

    def one(self, sql: str, params: Sequence = ()) -> dict | None:
        row = self.conn.execute(_sql(sql), params).fetchone()
        return dict(row) if row is not None else None

    def tuples(self, sql: str, params: Sequence = ()) -> list[tuple]:
        cursor = self.conn.cursor()
        cursor.row_factory = None  # tuples as sqlite3 makes them, not Rows copied into tuples
        return cursor.execute(_sql(sql), params).fetchall()

    def run(self, sql: str, params: Sequence = ()) -> int:
        """Execute a statement; the number of rows it changed."""
        return self.conn.execute(_sql(sql), params).rowcount

    execute = run

    def many(self, sql: str, rows: Sequence[Sequence]) -> None:
        self.conn.executemany(_sql(sql), rows)


@lru_cache(maxsize=256)
def _sql(text: str) -> str:
    # Writers take turns on the whole database: an order id needs no lock of its own.
    return text.format(
        seq="rowid", greatest="MAX", skip_locked="", for_update="", ascii="", lock_key="?"
    )


class SqliteBackend(Units):
    kind = "sqlite"
    # sqlite3 makes the rows in this process and lets go of the GIL for each one: a thread
    # reading ahead would wait for the GIL at every row, so batches are read when asked for.
    reads_ahead = False

    def __init__(self, location: Location, *, create: bool = True) -> None:
        self.location = location
        self.path = location.path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        # Connections a thread is using now (how many uses deep): close() leaves those to
        # their thread, which closes its own when its use ends (``_use``).
        self._in_use: dict[sqlite3.Connection, int] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._init_units()
        self._writer = threading.Lock()
        self._turn_fd: int | None = None  # the ``-turn`` file, once a write has opened it
        self._turn_file_failed = False
        # Seconds writers of this process have waited for their turn, in all (for benchmarks).
        self.turn_wait = 0.0
        if self.path.is_dir():  # not a missing ledger: one that cannot be opened (exit 5)
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(self.path))
        if not create and not self.path.exists():
            # Nor is a path through a file (BOOKPAY_DATA_DIR naming a file): no ledger can be
            # there, ever, and saying "none yet" would hide the mistake.
            found = next(folder for folder in self.path.parents if folder.exists())
            if not found.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(found))
            raise LedgerMissing(str(self.path))
        if create:
            private_dir(self.path.parent)
            private_file(self.path)

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError("the ledger is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: we issue BEGIN ourselves, so sqlite3 never opens a
            # deferred transaction behind our back. mode=rw: only ever open an existing file.
            conn = sqlite3.connect(
                f"file:{_quote(self.path)}?mode=rw",
                uri=True,
                timeout=30,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode survives a crash of the process (the case we design for);
            # only a power cut can lose the last commits.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            with self._lock:
                closed = self._closed
                if not closed:
                    self._connections.append(conn)
            if closed:  # by another thread meanwhile
                conn.close()
                raise RuntimeError("the ledger is closed")
            self._local.conn = conn
        return conn

    @contextmanager
    def _use(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, marked in use for the block: ``close()`` from another
        thread never closes a connection under a statement (that can crash the process); the
        last use of one that close() passed over closes it."""
        conn = self._connection()
        with self._lock:
            if self._closed:
                raise RuntimeError("the ledger is closed")
            self._in_use[conn] = self._in_use.get(conn, 0) + 1
        try:
            yield conn
        finally:
            with self._lock:
                left = self._in_use.pop(conn) - 1
                if left:
                    self._in_use[conn] = left
                close = not left and self._closed
            if close:
                conn.close()

    @contextmanager
    def _failures(self, doing: str) -> Iterator[None]:
        """The ledger's own failures in the block (see the module) as LedgerUnavailable:
        "Cannot ``doing`` the orders ledger PATH: reason."."""
        try:
            yield
        except sqlite3.DatabaseError as exc:  # never an OSError: that is the code in the block
            if not _below(exc):
                raise
            raise unavailable(self.location.masked, doing, exc) from exc

    @contextmanager
    def _turn(self, conn: sqlite3.Connection) -> Iterator[None]:
        """This process's writers one at a time, and then one process at a time.

        The wait for another process's turn and then for SQLite's lock (a writer that takes no
        turn: an older bookpay, the ``sqlite3`` shell) share one ``BUSY_TIMEOUT``: after a long
        wait for the turn, ``conn``'s busy_timeout is what is left of it, for this write."""
        asked = time.perf_counter()
        with self._writer:
            fd = self._turn_file()
            waited_across = time.monotonic()
            if fd is not None and not self._across(fd):
                fd = None
            waited_across = time.monotonic() - waited_across
            shortened = waited_across > SHORTEN_AFTER
            try:
                if shortened:
                    left = max(BUSY_TIMEOUT - waited_across, 0.0)
                    conn.execute(f"PRAGMA busy_timeout = {int(left * 1000)}")
                self.turn_wait += time.perf_counter() - asked
                yield
            finally:
                if shortened:
                    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)

    def _turn_file(self) -> int | None:
        """The descriptor of the ``-turn`` file (under ``_writer``), or None without one."""
        if self._turn_fd is None and not self._turn_file_failed and fcntl is not None:
            try:
                self._turn_fd = os.open(
                    f"{self.path}-turn", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE
                )
            except OSError:  # a read-only folder, say: SQLite's lock alone, as before
                self._turn_file_failed = True
        return self._turn_fd

    def _across(self, fd: int) -> bool:
        """Wait for the other processes' writers: looking often (each look is one system call),
        for as long as SQLite's busy_timeout would have waited for their write lock. False when
        the file cannot be locked at all (a filesystem without locks): SQLite's lock alone."""
        deadline = None
        pause = TURN_POLL / 16
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                pass
            except OSError:
                self._turn_file_failed, self._turn_fd = True, None
                os.close(fd)
                return False
            now = time.monotonic()
            deadline = deadline or now + BUSY_TIMEOUT
            if now >= deadline:
                locked = sqlite3.OperationalError("database is locked")
                raise unavailable(self.location.masked, "write", locked)
            time.sleep(pause)
            pause = min(pause * 2, TURN_POLL)

    @contextmanager
    def _transaction(self) -> Iterator[Tx]:
        """A write transaction holding the database's write lock from its first statement.
        A failed COMMIT is rolled back too, so this thread's connection is never left inside
        a transaction (where SQLite has not already rolled it back itself)."""
        with self._failures("write"), self._use() as conn, self._turn(conn):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(conn)
                conn.execute("COMMIT")
            except sqlite3.IntegrityError as exc:
                _rollback(conn)
                raise LedgerConflict(f"The ledger at {self.path} refused a row: {exc}.") from exc
            except BaseException:
                _rollback(conn)
                raise

    @contextmanager
    def read(self) -> Iterator[Tx]:
        with self._failures("read"), self._use() as conn:
            yield Tx(conn)

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """This thread's reads in the block all see the ledger as it was when it began (one
        read transaction: other connections go on writing), for `ledger copy`."""
        with self._use() as conn:
            with self._failures("read"):
                conn.execute("BEGIN")
                try:
                    conn.execute("SELECT COUNT(*) FROM sqlite_master")  # the snapshot starts here
                except BaseException:
                    _rollback(conn)
                    raise
            try:
                yield
            finally:
                _rollback(conn)

    def _autocommit(self, sql: str, params: Sequence) -> int:
        with self._failures("write"), self._use() as conn:
            try:
                with self._turn(conn):
                    return conn.execute(_sql(sql), params).rowcount
            except sqlite3.IntegrityError as exc:
                raise LedgerConflict(f"The ledger at {self.path} refused a row: {exc}.") from exc

    def schema_version(self) -> int:
        with self._failures("read"), self._use() as conn:
            return conn.execute("PRAGMA user_version").fetchone()[0]

    def migrate(self) -> None:
        # The usual case, an up-to-date ledger, needs no write lock: a reader (`bookpay orders
        # list`) must not queue behind a busy server just to learn there is nothing to do.
        version = self.schema_version()
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:  # refused before taking the write lock
            raise too_new(str(self.path), version)
        with self._transaction() as tx:
            # Read inside the write lock: two processes opening a new ledger at once must not
            # both run the same migration.
            version = tx.conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise too_new(str(self.path), version)
            for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in migration.sqlite:
                    tx.conn.execute(statement)
                tx.conn.execute(f"PRAGMA user_version = {number}")

    def fingerprint(self) -> tuple:
        """What tells this database from any other, whatever its path is called."""
        found = os.stat(self.path)
        return (found.st_dev, found.st_ino)

    def integrity_problems(self) -> list[str]:
        with self._failures("read"), self._use() as conn:
            found = [row[0] for row in conn.execute("PRAGMA integrity_check") if row[0] != "ok"]
            found += [
                f"foreign key broken: {row[0]} row {row[1]} points at a missing {row[2]}"
                for row in conn.execute("PRAGMA foreign_key_check")
            ]
            return found

    def close(self) -> None:
        """Close the connections no thread is using; one in use is closed by its thread when
        that use ends (closing a connection under a statement can crash the process)."""
        with self._lock:
            self._closed = True
            idle = [conn for conn in self._connections if conn not in self._in_use]
            self._connections = []
        for conn in idle:
            conn.close()
        # Not under a writer that holds the turn (one left at work, waiting for another
        # process's lock, say): the process's exit closes the file then, and lets go of it.
        if self._writer.acquire(blocking=False):
            try:
                fd, self._turn_fd = self._turn_fd, None
                if fd is not None:
                    os.close(fd)
            finally:
                self._writer.release()


# SQLite's primary result code for SQL it cannot run (a syntax error, no such column): bookpay's
# own mistake, not the ledger's.
SQLITE_ERROR = 1


def _below(exc: sqlite3.DatabaseError) -> bool:
    """Whether ``exc`` is the ledger's failure (its file, its disk, its locks), not bookpay's:
    a plain DatabaseError or OperationalError ("disk I/O error", "database disk image is
    malformed", "database is locked") other than SQLITE_ERROR. IntegrityError (a
    LedgerConflict), ProgrammingError and the other subclasses are bookpay's. SQLite says its
    own failures with these, never with an OSError: an OSError in a read or a transaction
    comes from the code in the block (a file it writes, a mail it sends), and stays its own."""
    if type(exc) not in (sqlite3.DatabaseError, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)  # None: raised by hand, not by SQLite
    return code is None or code & 0xFF != SQLITE_ERROR


def _rollback(conn: sqlite3.Connection) -> None:
    """End the transaction, unless SQLite already rolled it back (after a disk I/O error, a
    full disk): a ROLLBACK then would fail and hide why."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _quote(path: os.PathLike) -> str:
    """The path for a ``file:`` URI: its bytes percent-encoded, so a path that is not UTF-8
    (a POSIX name is bytes: Python holds those as surrogate escapes) opens that very file."""
    from urllib.parse import quote

    return quote(os.fsencode(path))
