"""The PostgreSQL backend: psycopg 3 with its connection pool, for several shop processes.

Imported only when ``BOOKPAY_DATABASE_URL`` names PostgreSQL, so the SQLite path (and
`bookpay catalog list`) never pays for psycopg. Every connection is in autocommit mode and a
write is an explicit transaction, so nothing holds a snapshot or a lock between requests.

Migrations run under a transaction-scoped advisory lock keyed by the schema: several processes
starting at once against a new database migrate it once, and the others find it done. DDL is
transactional in PostgreSQL, so a migration and its version number commit together or not at
all.
"""

from __future__ import annotations

import itertools
import logging
import select
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from functools import lru_cache
from typing import TypeVar

import psycopg
from psycopg.rows import dict_row, tuple_row
from psycopg_pool import ConnectionPool, PoolTimeout

from bookpay.errors import UsageError
from bookpay.ledger.errors import (
    LedgerConflict,
    LedgerContention,
    LedgerMissing,
    LedgerUnavailable,
    too_new,
)
from bookpay.ledger.location import Location, hide_passwords
from bookpay.ledger.migrations import MIGRATIONS, SCHEMA_VERSION
from bookpay.ledger.units import Units

POOL_SIZE = 10  # per process: a write holds a connection for milliseconds
CONNECT_TIMEOUT = 5  # seconds, unless the URL says otherwise
# Seconds a statement waits for a lock another session holds (a table locked by hand, a
# stuck transaction) before the ledger is "unavailable" (a 503, and Stripe retries the
# webhook): bookpay's own transactions hold their row locks for milliseconds.
LOCK_TIMEOUT = 5.0
# Seconds a request waits for a free connection of the pool (all busy, or the database down).
POOL_WAIT = 5.0
# Seconds the pool goes on trying to open one connection (psycopg_pool's ``reconnect_timeout``)
# before it gives that one up; a borrow that finds none starts another. Its tries are 1 s, 2 s,
# 4 s ... apart: with the default (5 minutes) a database that was down for two minutes was tried
# again up to a minute after its return, and every request failed meanwhile after POOL_WAIT.
# Under POOL_WAIT, a borrow waiting for the pool outlives the attempt, and the next starts afresh:
# tried every second or so, the database is used again within about a second of its return.
RECONNECT_TIMEOUT = 2.0
POOL_NAME = "bookpay-ledger"
# pg_advisory_xact_lock(ADVISORY_CLASS, hashtext(schema)): one migration at a time per schema.
ADVISORY_CLASS = 0x626B7079  # "bkpy"
# pg_advisory_xact_lock(ADVISORY_ORDERS, hashtext(order id)): see lines.lock_order_id.
ADVISORY_ORDERS = ADVISORY_CLASS + 1
# SQLSTATEs of a transaction the server ended so that another could go on: nothing of it was
# written, and running it again is the cure (``LedgerContention``).
DEADLOCK_DETECTED = "40P01"
SERIALIZATION_FAILURE = "40001"
CONTENTION = (DEADLOCK_DETECTED, SERIALIZATION_FAILURE)

T = TypeVar("T")


class Tx:
    """A connection inside a transaction (or autocommit reads): rows come back as dicts."""

    def __init__(self, conn: psycopg.Connection, lease: _Lease | None = None) -> None:
        self.conn = conn
        # An autocommit read's lease, until its first statement has gone through (_Lease.first).
        self._lease = lease

    def all(self, sql: str, params: Sequence = ()) -> list[dict]:
        return self._execute(sql, params).fetchall()

    def one(self, sql: str, params: Sequence = ()) -> dict | None:
        return self._execute(sql, params).fetchone()

    def tuples(self, sql: str, params: Sequence = ()) -> list[tuple]:
        return self._execute(sql, params, tuple_row).fetchall()

    def run(self, sql: str, params: Sequence = ()) -> int:
        """Execute a statement; the number of rows it changed."""
        return self._execute(sql, params).rowcount

    execute = run

    def many(self, sql: str, rows: Sequence[Sequence]) -> None:
        with self.conn.cursor() as cursor:
            cursor.executemany(_sql(sql), rows)

    def _execute(self, sql: str, params: Sequence, rows=dict_row) -> psycopg.Cursor:
        if self._lease is None:
            return self.conn.cursor(row_factory=rows).execute(_sql(sql), params)
        lease, self._lease = self._lease, None
        try:
            return lease.first(
                lambda conn: conn.cursor(row_factory=rows).execute(_sql(sql), params)
            )
        finally:
            self.conn = lease.conn


class _Lease:
    """A connection borrowed from the pool for one unit of work (a transaction, a read, one
    statement), given back by ``release``.

    The pool keeps a connection the server ended while it lay idle (a restart,
    ``pg_terminate_backend``, ``idle_session_timeout``, a failover) until something is sent on
    it. Rather than a round trip on every borrow to find out:

    - a connection whose socket already holds the server's goodbye is dropped before anything is
      sent on it (``_ended``: a poll of the socket, answered by this machine's kernel);
    - ``first`` sends the unit's first thing, one that may be sent twice (a BEGIN, a read), and
      where it fails because the connection had ended (nothing was done on it), sends it once
      more on another connection.

    A lone autocommit write is not sent twice: its failure cannot tell whether it committed.
    """

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self.conn: psycopg.Connection | None = None
        self.conn = self._borrow()

    def _borrow(self) -> psycopg.Connection:
        for _ in range(self.pool.max_size):  # at most every connection ended at once
            conn = self.pool.getconn()
            if not _ended(conn):
                return conn
            self._drop(conn)
        return self.pool.getconn()

    def _drop(self, conn: psycopg.Connection) -> None:
        conn.close()
        self._give_back(conn)  # closed: the pool opens another in its place

    def _give_back(self, conn: psycopg.Connection) -> None:
        with _pool_news.giving_back(self.pool.name):
            self.pool.putconn(conn)

    def first(self, action: Callable[[psycopg.Connection], T]) -> T:
        """``action(conn)``, the first thing sent on this lease's connection, which must be
        safe to send twice; sent once more, on another connection, if it found this one ended."""
        try:
            return action(self.conn)
        except psycopg.OperationalError:
            if not self.conn.closed:
                raise  # the statement's own failure (a lock timeout), on a live connection
            conn, self.conn = self.conn, None
            self._drop(conn)
        self.conn = self._borrow()
        return action(self.conn)

    def release(self) -> None:
        if self.conn is not None:
            self._give_back(self.conn)
            self.conn = None


def _ended(conn: psycopg.Connection) -> bool:
    """Whether the server has ended this idle connection, as far as its socket shows without a
    round trip. An idle connection is sent nothing unasked (bookpay LISTENs to nothing), so
    anything to read is the server's goodbye (its FATAL message, its end of the stream)."""
    if conn.closed:
        return True
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    return bool(poller.poll(0))


@lru_cache(maxsize=256)
def _sql(text: str) -> str:
    """The ledger's SQL (``?`` placeholders, ``{seq}`` ...) in psycopg's dialect."""
    text = text.format(
        seq="seq",
        greatest="GREATEST",
        skip_locked=" FOR UPDATE SKIP LOCKED",
        for_update=" FOR UPDATE",
        ascii=' COLLATE "C"',  # lower() folds A to Z alone, whatever the database's locale
        # One writer at a time of what one order id names (its quote, its order rows), for the
        # rest of the transaction: see lines.lock_order_id.
        lock_key=f"pg_advisory_xact_lock({ADVISORY_ORDERS}, hashtext(?))",
    )
    return text.replace("%", "%%").replace("?", "%s")


class _PoolNews(logging.Filter):
    """What psycopg_pool says of the ledger's pools, kept off stderr, and the one thing of it
    bookpay needs: why the last try to connect failed.

    The pool warns of each failed try to connect ("error connecting in 'bookpay-ledger-1':
    FATAL: sorry, too many clients already") and of each attempt given up: tried every second or
    so while the database is down, they were two lines a second on stderr, with no time and no
    rate limit. Dropped here, and the reason of the last failed try (libpq's, the only place it
    appears) is remembered per pool until one succeeds, for ``PostgresBackend._unavailable`` to
    say: "couldn't get a connection after 5.00 sec" alone cannot tell a database that is down
    from one refusing this role, this password or more clients.

    It also drops "discarding closed connection" for a connection the ledger gives back closed
    (``_Lease``): one the server ended, replaced by the pool, and bookpay says what it came to
    where it matters (a 503, a worker's "... failed: Cannot reach the ledger database ...").
    Other pools' lines are left alone.
    """

    QUIET = (
        "error connecting in %r: %s",
        "reconnection attempt in pool %r failed after %s sec",
    )
    GIVEN_BACK = "discarding closed connection: %s"

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._failures: dict[str, str | None] = {}  # pool name -> the last try's reason
        self._giving_back = threading.local()  # the pool this thread is giving a connection to

    def watch(self, pool_name: str) -> None:
        with self._lock:
            self._failures[pool_name] = None

    def forget(self, pool_name: str) -> None:
        with self._lock:
            self._failures.pop(pool_name, None)

    def connected(self, pool_name: str) -> None:
        with self._lock:
            if pool_name in self._failures:
                self._failures[pool_name] = None

    def last_failure(self, pool_name: str) -> str | None:
        """Why the pool's last try to connect failed, unless one has succeeded since."""
        with self._lock:
            return self._failures.get(pool_name)

    @contextmanager
    def giving_back(self, pool_name: str) -> Iterator[None]:
        """A connection given back to the pool in the block: ``putconn`` returns it to the
        pool in this thread (the pool has no ``reset`` function)."""
        self._giving_back.pool = pool_name
        try:
            yield
        finally:
            self._giving_back.pool = None

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        if record.msg == self.GIVEN_BACK:
            return getattr(self._giving_back, "pool", None) is None
        if record.msg not in self.QUIET or not args:
            return True
        with self._lock:
            if args[0] not in self._failures:
                return True  # not a ledger's pool
            if record.msg == self.QUIET[0] and len(args) > 1:
                self._failures[args[0]] = " ".join(str(args[1]).split()) or type(args[1]).__name__
        return False


_pool_news = _PoolNews()
logging.getLogger("psycopg.pool").addFilter(_pool_news)
_pool_numbers = itertools.count(1)


def _set_lock_timeout(conn: psycopg.Connection) -> None:
    """Lock waits end after LOCK_TIMEOUT (unless the URL sets its own, with
    ``options=-c lock_timeout=...``)."""
    conn.execute(f"SET lock_timeout = '{int(LOCK_TIMEOUT * 1000)}ms'")


def _try_again_if_waited_for(pool: ConnectionPool) -> None:
    """psycopg_pool's ``reconnect_failed``: an attempt to open a connection gave up after
    RECONNECT_TIMEOUT. The pool starts another only for a borrow that comes after; one already
    waiting (up to POOL_WAIT) would wait out its time though the database came back meanwhile.
    While a borrow waits and the pool has nothing for it, another attempt starts now (``check``
    grows an empty pool): tried every second or so, the database is used within about a second
    of its return by a request already waiting as well as by a new one."""
    if pool.closed:
        return
    stats = pool.get_stats()
    if stats.get("requests_waiting") and not stats.get("pool_available"):
        pool.check()


class PostgresBackend(Units):
    kind = "postgresql"
    # The server makes a batch's rows while this process writes out the batch before: a
    # thread waiting for them holds no GIL (``OrderQueries.iter_order_batches``).
    reads_ahead = True

    def __init__(
        self, location: Location, *, create: bool = True, pool_size: int = POOL_SIZE
    ) -> None:
        self.location = location
        self._init_units()
        options = {"autocommit": True, "row_factory": dict_row}
        if "connect_timeout" not in location.url:
            options["connect_timeout"] = CONNECT_TIMEOUT
        self._options = options
        with self.connect() as conn:  # fails here, with libpq's reason, if unreachable
            if not create and _version(conn) is None:
                raise LedgerMissing(location.masked)
        self._lock_timeout = "lock_timeout" not in location.url
        # A name of its own: what the pool says of a failed try to connect is this pool's.
        self.pool_name = f"{POOL_NAME}-{next(_pool_numbers)}"
        _pool_news.watch(self.pool_name)
        self.pool = ConnectionPool(
            location.url,
            min_size=1,
            max_size=pool_size,
            kwargs=options,
            open=False,
            name=self.pool_name,
            timeout=POOL_WAIT,
            reconnect_timeout=RECONNECT_TIMEOUT,
            reconnect_failed=_try_again_if_waited_for,
            configure=self._configure,
        )
        try:
            self.pool.open(wait=True, timeout=CONNECT_TIMEOUT * 2)
        except PoolTimeout as exc:
            self.close()
            raise self._unavailable(exc) from exc

    def _configure(self, conn: psycopg.Connection) -> None:
        """Each new pooled connection, once: the pool can connect again (what it said of a
        failed try is past), and its lock waits are bounded."""
        _pool_news.connected(self.pool_name)
        if self._lock_timeout:
            _set_lock_timeout(conn)

    def connect(self) -> psycopg.Connection:
        """A connection of its own, outside the pool (migrations, ledger copy)."""
        try:
            return psycopg.connect(self.location.url, **self._options)
        except psycopg.Error as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: Exception) -> LedgerUnavailable:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        failure = _pool_news.last_failure(self.pool_name) if isinstance(exc, PoolTimeout) else None
        if failure:  # why: down, or refusing this role, password, database, more clients ...
            reason = f"{reason.rstrip('.')}: {failure}"
        reason = hide_passwords(reason, self.location.url)
        return LedgerUnavailable(
            f"Cannot reach the ledger database {self.location.masked}: {reason.rstrip('.')}.",
            hint="Check BOOKPAY_DATABASE_URL with `bookpay config check`.",
        )

    @contextmanager
    def _pooled(self) -> Iterator[_Lease]:
        """A lease on a connection of the pool (see ``_Lease`` for connections the server
        ended); a connection that fails, or none free within POOL_WAIT, is LedgerUnavailable."""
        try:
            lease = _Lease(self.pool)
            try:
                yield lease
            finally:
                lease.release()
        except psycopg.errors.ReadOnlySqlTransaction as exc:  # SQLSTATE 25006
            raise self._read_only(exc) from exc
        except (psycopg.OperationalError, PoolTimeout) as exc:
            if getattr(exc, "sqlstate", None) in CONTENTION:
                raise self._contention(exc) from exc
            raise self._unavailable(exc) from exc

    def _read_only(self, exc: psycopg.Error) -> LedgerUnavailable:
        """A write refused because the server's transactions are read-only: a standby, or
        ``default_transaction_read_only`` set for the database, role or URL. Nothing can be
        written until that changes, which the ledger cannot do itself."""
        reason = exc.diag.message_primary or type(exc).__name__
        return LedgerUnavailable(
            f"The ledger database {self.location.masked} is read-only ({reason.rstrip('.')}): "
            "nothing can be written to it. A standby, or default_transaction_read_only set "
            "for the database, its role or the URL?",
            hint="Point BOOKPAY_DATABASE_URL at the primary, or set "
            "default_transaction_read_only = off.",
        )

    def _contention(self, exc: psycopg.Error) -> LedgerContention:
        reason = exc.diag.message_primary or type(exc).__name__  # not DETAIL's pids and xids
        reason = hide_passwords(reason, self.location.url)
        return LedgerContention(
            f"The ledger database {self.location.masked} ended this change, which met another "
            f"one at the same moment, and wrote nothing of it ({reason.rstrip('.')}).",
            hint="Try again: it is safe.",
        )

    @contextmanager
    def _transaction(self) -> Iterator[Tx]:
        # Row locks and unique indexes make writers of every process wait for each other only
        # where they touch the same rows, so writers in this one need no turn of their own.
        try:
            with self._pooled() as lease, ExitStack() as stack:
                stack.push(lease.first(_begin))  # commits, or rolls back on an exception
                yield Tx(lease.conn)
        except psycopg.IntegrityError as exc:
            reason = " ".join(str(exc).split())
            raise LedgerConflict(
                f"The ledger at {self.location.masked} refused a row: {reason}."
            ) from exc

    @contextmanager
    def read(self) -> Iterator[Tx]:
        joined = self._open_unit() or getattr(self._units, "snapshot", None)
        if joined is not None:  # this thread's unit: its own writes, and no second connection
            yield joined
            return
        with self._pooled() as lease:
            yield Tx(lease.conn, lease)

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """This thread's reads in the block all see the ledger as it was when it began (one
        REPEATABLE READ transaction: other sessions go on writing), for `ledger copy`."""
        with self._pooled() as lease, ExitStack() as stack:
            stack.push(lease.first(_begin))
            lease.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            self._units.snapshot = Tx(lease.conn)
            try:
                yield
            finally:
                self._units.snapshot = None

    def _autocommit(self, sql: str, params: Sequence) -> int:
        """One statement, its own transaction (autocommit: one round trip, no BEGIN/COMMIT).
        Not sent a second time where it finds its connection ended (``_Lease``)."""
        try:
            with self._pooled() as lease:
                return lease.conn.execute(_sql(sql), params).rowcount
        except psycopg.IntegrityError as exc:
            reason = " ".join(str(exc).split())
            raise LedgerConflict(
                f"The ledger at {self.location.masked} refused a row: {reason}."
            ) from exc

    def schema_version(self) -> int:
        with self._pooled() as lease:
            return lease.first(_version) or 0

    def migrate(self) -> None:
        with self._pooled() as lease:
            found = lease.first(_version)
            if found == SCHEMA_VERSION:
                return  # the usual case: no lock, no waiting behind a migrating process
            if found is not None and found > SCHEMA_VERSION:  # refused before any lock
                raise too_new(self.location.masked, found)
            conn = lease.conn
            with conn.transaction():
                # Another process may be migrating: wait for it as long as it takes.
                conn.execute("SET LOCAL lock_timeout = 0")
                conn.execute(
                    "SELECT pg_advisory_xact_lock(%s, hashtext(COALESCE(current_schema(), '')))",
                    (ADVISORY_CLASS,),
                )
                if conn.execute("SELECT current_schema() AS s").fetchone()["s"] is None:
                    raise UsageError(
                        f"The schema named by {self.location.masked} does not exist: create it "
                        "first (CREATE SCHEMA ...), or leave search_path out of the URL."
                    )
                conn.execute("CREATE TABLE IF NOT EXISTS bookpay_schema (version INTEGER)")
                version = _version(conn)
                if version is None:
                    conn.execute("INSERT INTO bookpay_schema (version) VALUES (0)")
                    version = 0
                if version > SCHEMA_VERSION:
                    raise too_new(self.location.masked, version)
                for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
                    for statement in migration.postgresql:
                        conn.execute(statement)
                    conn.execute("UPDATE bookpay_schema SET version = %s", (number,))

    def fingerprint(self) -> tuple:
        """What tells this schema from any other, whatever host name or address the URL
        gives its server: the server's start, the database and the schema."""
        with self._pooled() as lease:
            row = lease.first(
                lambda conn: conn.execute(
                    """SELECT pg_postmaster_start_time()::text AS started,
                    (SELECT oid FROM pg_database WHERE datname = current_database())::bigint
                    AS db, current_schema() AS schema"""
                ).fetchone()
            )
        return (row["started"], row["db"], row["schema"])

    def integrity_problems(self) -> list[str]:
        """PostgreSQL enforces constraints itself; what can still be wrong is an index or a
        constraint left invalid (an interrupted CREATE INDEX CONCURRENTLY, NOT VALID)."""
        with self._pooled() as lease:
            return lease.first(_integrity_problems)

    def close(self) -> None:
        self.pool.close()
        _pool_news.forget(self.pool_name)


def _begin(conn: psycopg.Connection) -> psycopg.Transaction:
    """A transaction begun on ``conn`` (BEGIN is sent now); its ``__exit__`` ends it."""
    transaction = conn.transaction()
    transaction.__enter__()
    return transaction


def _integrity_problems(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        """SELECT c.relname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = current_schema() AND NOT (i.indisvalid AND i.indisready)"""
    ).fetchall()
    found = [f"index {row['name']} is not valid: rebuild it (REINDEX)" for row in rows]
    rows = conn.execute(
        """SELECT conname AS name FROM pg_constraint c
        JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE n.nspname = current_schema() AND NOT c.convalidated"""
    ).fetchall()
    found += [f"constraint {row['name']} is not validated" for row in rows]
    return found


def _version(conn: psycopg.Connection) -> int | None:
    """The schema version, or None where bookpay never created a ledger."""
    found = conn.execute("SELECT to_regclass('bookpay_schema') AS t").fetchone()
    if found["t"] is None:
        return None
    row = conn.execute("SELECT version FROM bookpay_schema").fetchone()
    return row["version"] if row else None
