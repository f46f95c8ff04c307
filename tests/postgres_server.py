"""A PostgreSQL server for the tests, and a schema of its own for each test (dropped after it in
a thread of its own, ``Dropper``: the test's teardown does not wait for the server to drop it).

Where the server comes from, in order:

1. ``BOOKPAY_TEST_DATABASE_URL``;
2. the machine's server on 127.0.0.1:5432, database ``test`` (trust authentication, as in CI);
3. a throwaway cluster started from Debian's ``postgresql`` binaries, if installed (initdb runs
   as an unprivileged user when the tests run as root);
4. none: the PostgreSQL tests are skipped with a one-line reason, or fail under ``CI=true``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import queue
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
from urllib.parse import quote

# Read once at import: the suite's autouse fixture removes BOOKPAY_* from each test's environment.
CONFIGURED = os.environ.get("BOOKPAY_TEST_DATABASE_URL")
LOCAL_URLS = ("postgresql://127.0.0.1:5432/test", "postgresql://postgres@127.0.0.1:5432/test")


def _answers(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


class Server:
    """A reachable PostgreSQL (``url``), and the cluster we started for it, if any."""

    def __init__(self, url: str, cluster: str | None = None, runas: str | None = None) -> None:
        self.url = url
        self.cluster = cluster
        self.runas = runas
        self.dropper = Dropper(url)

    def stop(self) -> None:
        try:
            self.dropper.finish()
        finally:
            self._stop_cluster()

    def _stop_cluster(self) -> None:
        if self.cluster is None:
            return
        pg_ctl = _binary("pg_ctl")
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            _run([pg_ctl, "-D", self.cluster, "-m", "immediate", "stop"], self.runas)
        shutil.rmtree(os.path.dirname(self.cluster), ignore_errors=True)


def find_server() -> tuple[Server | None, str]:
    """A server to test against, or None and why there is none."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return None, "psycopg is not installed"
    if CONFIGURED:
        if _answers(CONFIGURED):
            return Server(CONFIGURED), ""
        return None, "BOOKPAY_TEST_DATABASE_URL is set but does not answer"
    for url in LOCAL_URLS:
        if _answers(url):
            return Server(url), ""
    try:
        return _throwaway_cluster(), ""
    except (OSError, subprocess.SubprocessError, LookupError) as exc:
        return None, f"no PostgreSQL on 127.0.0.1:5432 and no throwaway cluster ({exc})"


def _binary(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise LookupError(f"Debian's postgresql package is not installed (no {name})")
    return found[-1]


def _run(command: list[str], runas: str | None) -> None:
    if runas:
        command = ["runuser", "-u", runas, "--", *command]
    subprocess.run(command, check=True, capture_output=True, timeout=120)


def _throwaway_cluster() -> Server:
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    runas = None
    folder = tempfile.mkdtemp(prefix="bookpay-pg-")
    if os.geteuid() == 0:  # initdb refuses root: run it as the postgres (or nobody) user
        import pwd

        for user in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                entry = pwd.getpwnam(user)
                os.chown(folder, entry.pw_uid, entry.pw_gid)
                runas = user
                break
    data = os.path.join(folder, "data")
    _run([initdb, "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"], runas)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off"
    _run([pg_ctl, "-D", data, "-o", options, "-w", "-l", f"{folder}/log", "start"], runas)
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    return Server(url, cluster=data, runas=runas)


@contextlib.contextmanager
def own_schema(server: Server, owner: str = ""):
    """A URL whose tables live in a new schema, dropped afterwards (by the server's Dropper;
    ``owner``, the test, is named if the drop fails)."""
    import psycopg

    url = server.url
    name = "bookpay_test_" + secrets.token_hex(6)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    separator = "&" if "?" in url else "?"
    try:
        yield f"{url}{separator}options={quote(f'-csearch_path={name}')}"
    finally:
        server.dropper.drop(name, owner)


# Seconds a drop waits for its locks (a connection a test left open in a transaction would hold
# them for ever), and the session's end for the schemas still to drop.
DROP_LOCK_WAIT = 60.0
DROP_WAIT = 2 * DROP_LOCK_WAIT


class Dropper:
    """Drops the tests' schemas, one after another, in a thread of its own: dropping a
    schema's tables took a tenth of a second of a PostgreSQL test's teardown, several on a
    loaded machine. ``finish`` (at the session's end) waits for the last, and fails naming
    the tests whose schema could not be dropped."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._failed: list[str] = []

    def drop(self, name: str, owner: str = "") -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="drop-test-schemas", daemon=True
                )
                self._thread.start()
        self._queue.put((name, owner))

    def _run(self) -> None:
        import psycopg

        conn: psycopg.Connection | None = None
        while (item := self._queue.get()) is not None:
            name, owner = item
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.url, autocommit=True)
                    conn.execute(f"SET lock_timeout = '{int(DROP_LOCK_WAIT * 1000)}ms'")
                conn.execute(f"DROP SCHEMA {name} CASCADE")
            except psycopg.Error as exc:
                self._failed.append(f"{name} ({owner or 'a test'}): {exc}")
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def finish(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(None)
        thread.join(DROP_WAIT)
        failed, self._failed = self._failed, []
        if thread.is_alive():
            failed.append(f"dropping the tests' schemas took more than {DROP_WAIT:g} s")
        assert not failed, "PostgreSQL test schemas not dropped: " + "; ".join(failed)
