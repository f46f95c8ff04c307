"""Pooled PostgreSQL connections the server ended (a restart, pg_terminate_backend, an idle
timeout) fail no request: the pool's dead connections are replaced where they are borrowed,
without a round trip per borrow; a database that is really down is still unavailable within
POOL_WAIT, not retried in a loop."""

from __future__ import annotations

import contextlib
import secrets
import socket
import struct
import tempfile
import threading
import time

import psycopg
import pytest
from stripe_fakes import intent

from bookpay.ledger import postgres
from bookpay.ledger.errors import LedgerUnavailable
from bookpay.ledger.ledger import Ledger
from bookpay.ledger.location import locate


def _tagged(url: str) -> tuple[str, str]:
    """``url`` with an application_name of its own, naming this test's connections only."""
    tag = "bookpay_pool_" + secrets.token_hex(6)
    return f"{url}&application_name={tag}", tag


def _end_connections(url: str, tag: str) -> int:
    """What a restart does to the ledger's connections: each backend ended (waiting until it
    has exited); how many there were."""
    with psycopg.connect(url, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            (tag,),
        ).fetchone()
    return row[0]


def _ledger(url: str, data_dir, pool_size: int = postgres.POOL_SIZE) -> Ledger:
    backend = postgres.PostgresBackend(locate(url, data_dir), pool_size=pool_size)
    backend.migrate()
    return Ledger(backend, data_dir)


def test_reads_and_writes_go_through_after_the_server_ended_every_pooled_connection(
    postgres_url, tmp_path, caplog
):
    url, tag = _tagged(postgres_url)
    with _ledger(url, tmp_path) as ledger:
        ledger.record_intent(intent("pi_before"))
        held = [ledger.backend.pool.getconn() for _ in range(3)]  # the pool grows to three
        for conn in held:
            ledger.backend.pool.putconn(conn)
        assert _end_connections(postgres_url, tag) >= 3

        assert ledger.find_order("pi_before")["status"] == "paid"  # a read
        ledger.record_intent(intent("pi_after"))  # a transaction
        assert ledger.receive_event("evt_after", "payment_intent.succeeded", "pi_after") == "new"
        with ledger.handling("evt_unit", "payment_intent.succeeded", "pi_after"):  # a unit
            ledger.record_intent(intent("pi_after"))
            ledger.finish_event("evt_unit", handled=True, outcome="fulfilled")
        assert ledger.get_event("evt_unit")["outcome"] == "fulfilled"
        assert ledger.find_order("pi_after")["status"] == "paid"
    # Each dropped connection was a bare "discarding closed connection: <psycopg.Connection
    # [BAD] ...>" on serve's stderr (no time, no rate limit): replaced without failing anything.
    said = [r.getMessage() for r in caplog.records if r.name == "psycopg.pool"]
    assert not [line for line in said if "discarding" in line], said


def test_a_read_or_a_transaction_that_finds_its_connection_ended_is_sent_once_more(
    postgres_url, tmp_path, monkeypatch
):
    # The server's goodbye not yet on the socket when the connection is borrowed (it was
    # ended a moment before, or the network lost it): the first statement is what fails.
    monkeypatch.setattr(postgres, "_ended", lambda conn: conn.closed)
    url, tag = _tagged(postgres_url)
    with _ledger(url, tmp_path, pool_size=1) as ledger:
        ledger.record_intent(intent("pi_before"))

        assert _end_connections(postgres_url, tag) == 1
        assert ledger.find_order("pi_before")["payment_intent"] == "pi_before"
        assert _end_connections(postgres_url, tag) == 1
        assert ledger.record_intent(intent("pi_after"))["status"] == "paid"
        assert _end_connections(postgres_url, tag) == 1
        assert ledger.backend.schema_version() > 0

        # A lone autocommit write is not sent twice: its failure cannot say it did nothing.
        assert _end_connections(postgres_url, tag) == 1
        with pytest.raises(LedgerUnavailable, match="terminating connection"):
            ledger.receive_event("evt_x", "payment_intent.succeeded", "pi_after")
        assert ledger.get_event("evt_x") is None  # and the next borrow is a working connection


def test_a_statement_failing_on_a_live_connection_is_not_sent_again(
    postgres_url, tmp_path, monkeypatch
):
    monkeypatch.setattr(postgres, "LOCK_TIMEOUT", 0.3)
    sent = []
    real = psycopg.Cursor.execute
    test = threading.current_thread()

    def execute(cursor, query, *args, **kwargs):
        if threading.current_thread() is test:  # not the thread dropping the tests' schemas
            sent.append(query)
        return real(cursor, query, *args, **kwargs)

    with _ledger(postgres_url, tmp_path) as ledger:
        ledger.record_intent(intent("pi_locked"))
        with psycopg.connect(postgres_url) as other:
            other.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")  # until the rollback
            monkeypatch.setattr(psycopg.Cursor, "execute", execute)
            with pytest.raises(LedgerUnavailable, match="lock timeout"):
                ledger.find_order("pi_locked")
            monkeypatch.undo()
            other.rollback()
    assert len(sent) == 1


class _Forwarder:
    """A TCP port in front of the database, which can go down: its connections end and new ones
    are refused, as when the database's machine is gone; and come up again, on the same port.

    Down, the port stays its own: a socket bound to it that does not listen (a connection is
    refused as by no socket at all) and listens once up again. Released, another process's
    connection could take it as its own port meanwhile and the forwarder could not come back up
    ("Address already in use", in a loaded CI run): both hold it with SO_REUSEPORT."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0), reuse_port=True)
        self.port = self.listener.getsockname()[1]
        self._held: socket.socket | None = None  # the port, while down
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def up(self) -> None:
        assert self._held is not None, "up without a down"
        self.listener, self._held = self._held, None
        self.listener.listen()
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self.sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                end.close()

    def down(self) -> None:
        self._held = socket.socket()
        self._held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self._held.bind(("127.0.0.1", self.port))  # before the listener goes: no moment free
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept (closing alone may not)
        self.listener.close()
        for end in self.sockets:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


def test_a_database_that_is_down_is_unavailable_within_the_pool_wait(
    postgres_url, tmp_path, monkeypatch
):
    monkeypatch.setattr(postgres, "POOL_WAIT", 0.5)
    address = psycopg.conninfo.conninfo_to_dict(postgres_url)
    forwarder = _Forwarder(address.get("host", "127.0.0.1"), int(address.get("port", 5432)))
    url = postgres_url.replace(f":{address.get('port', 5432)}/", f":{forwarder.port}/", 1)
    assert url != postgres_url
    with _ledger(url, tmp_path) as ledger:
        ledger.record_intent(intent("pi_before"))
        forwarder.down()
        for attempt in (
            lambda: ledger.find_order("pi_before"),
            lambda: ledger.record_intent(intent("pi_after")),
            lambda: ledger.receive_event("evt_down", "payment_intent.succeeded", "pi_after"),
        ):
            started = time.monotonic()
            with pytest.raises(LedgerUnavailable, match="Cannot reach the ledger database"):
                attempt()
            assert time.monotonic() - started < 2  # one POOL_WAIT, not a loop of them


def test_a_database_back_from_an_outage_is_used_again_within_a_second_or_so(
    postgres_url, tmp_path, monkeypatch, caplog
):
    """psycopg_pool tries to open a connection again after 1 s, 2 s, 4 s ... for 5 minutes by
    default: after a two-minute outage the pool had none for up to a minute more, and every
    request failed meanwhile (after POOL_WAIT). RECONNECT_TIMEOUT ends each attempt in 2 s, and
    the next borrow starts another."""
    monkeypatch.setattr(postgres, "POOL_WAIT", 0.5)
    address = psycopg.conninfo.conninfo_to_dict(postgres_url)
    forwarder = _Forwarder(address.get("host", "127.0.0.1"), int(address.get("port", 5432)))
    url = postgres_url.replace(f":{address.get('port', 5432)}/", f":{forwarder.port}/", 1)
    with _ledger(url, tmp_path) as ledger:
        ledger.record_intent(intent("pi_before"))
        forwarder.down()
        ended = time.monotonic() + 8  # the tries 1, 2, 4 s apart: the next would be at 15 s
        while time.monotonic() < ended:  # the shop goes on asking meanwhile
            with pytest.raises(LedgerUnavailable, match="Cannot reach the ledger database"):
                ledger.find_order("pi_before")
        forwarder.up()
        back = time.monotonic()
        while True:
            try:
                assert ledger.find_order("pi_before")["status"] == "paid"
                break
            except LedgerUnavailable:
                assert time.monotonic() - back < 15
        assert time.monotonic() - back < 2.5
    # Tried every second or so, each try is not a line on stderr (bookpay says it's down).
    said = [r.getMessage() for r in caplog.records if r.name == "psycopg.pool"]
    assert not [line for line in said if "connecting" in line or "reconnection" in line], said


class _TooManyClients:
    """A listener that speaks PostgreSQL as far as refusing every login, as a full server does:
    FATAL 53300 "sorry, too many clients already"."""

    def __init__(self, port: int) -> None:
        # SO_REUSEPORT: beside the socket by which a _Forwarder that is down holds its port.
        self.listener = socket.create_server(("127.0.0.1", port), reuse_port=True)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        fields = b"SFATAL\0VFATAL\0C53300\0Msorry, too many clients already\0\0"
        refusal = b"E" + struct.pack("!I", 4 + len(fields)) + fields
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with client:
                while len(head := client.recv(8, socket.MSG_WAITALL)) == 8:
                    size, code = struct.unpack("!II", head)
                    client.recv(size - 8, socket.MSG_WAITALL)
                    if code not in (80877103, 80877104):  # SSLRequest, GSSENCRequest: "N"
                        client.sendall(refusal)
                        break
                    client.sendall(b"N")

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()


def test_a_database_refusing_the_pool_says_why(postgres_url, tmp_path, monkeypatch, caplog):
    """The pool's own line was the only place libpq's reason appeared ("error connecting in
    ...: FATAL: sorry, too many clients already"), and it is kept off stderr: the ledger's error
    says it, rather than "couldn't get a connection after 5.00 sec" alone."""
    monkeypatch.setattr(postgres, "POOL_WAIT", 0.5)
    address = psycopg.conninfo.conninfo_to_dict(postgres_url)
    forwarder = _Forwarder(address.get("host", "127.0.0.1"), int(address.get("port", 5432)))
    url = postgres_url.replace(f":{address.get('port', 5432)}/", f":{forwarder.port}/", 1)
    with _ledger(url, tmp_path) as ledger:
        ledger.record_intent(intent("pi_before"))
        forwarder.down()
        full = _TooManyClients(forwarder.port)
        try:
            with pytest.raises(LedgerUnavailable) as refused:
                ledger.find_order("pi_before")
        finally:
            full.close()
    said = str(refused.value)
    assert "couldn't get a connection after 0.50 sec" in said, said
    assert "FATAL: sorry, too many clients already" in said, said
    lines = [r.getMessage() for r in caplog.records if r.name == "psycopg.pool"]
    assert not [line for line in lines if "connecting" in line], lines


def test_a_pool_busy_but_connected_says_no_old_reason(postgres_url, tmp_path, monkeypatch):
    """Once the pool connects again, why an earlier try failed is no reason for a wait."""
    monkeypatch.setattr(postgres, "POOL_WAIT", 0.3)
    address = psycopg.conninfo.conninfo_to_dict(postgres_url)
    forwarder = _Forwarder(address.get("host", "127.0.0.1"), int(address.get("port", 5432)))
    url = postgres_url.replace(f":{address.get('port', 5432)}/", f":{forwarder.port}/", 1)
    with _ledger(url, tmp_path, pool_size=1) as ledger:
        ledger.record_intent(intent("pi_before"))
        forwarder.down()
        full = _TooManyClients(forwarder.port)
        with pytest.raises(LedgerUnavailable, match="too many clients"):
            ledger.find_order("pi_before")
        full.close()
        forwarder.up()
        deadline = time.monotonic() + 10
        while True:  # back within a second or so (the test above)
            try:
                ledger.find_order("pi_before")
                break
            except LedgerUnavailable:
                assert time.monotonic() < deadline
        held = ledger.backend.pool.getconn()  # the only one: the next borrow waits it out
        try:
            with pytest.raises(LedgerUnavailable) as busy:
                ledger.find_order("pi_before")
        finally:
            ledger.backend.pool.putconn(held)
    assert "too many clients" not in str(busy.value)


def test_a_request_waiting_when_the_database_returns_is_served(postgres_url, tmp_path, monkeypatch):
    """An attempt to connect gives up after RECONNECT_TIMEOUT (2 s) and psycopg_pool starts
    another only for a borrow that comes after: a request already waiting out its POOL_WAIT
    (5 s) got a 503 though the database was back at 2.6 s. It is served now."""
    monkeypatch.setattr(postgres, "POOL_WAIT", 5.0)
    gave_up = threading.Event()
    try_again = postgres._try_again_if_waited_for

    def seen(pool):
        gave_up.set()
        try_again(pool)

    monkeypatch.setattr(postgres, "_try_again_if_waited_for", seen)
    address = psycopg.conninfo.conninfo_to_dict(postgres_url)
    forwarder = _Forwarder(address.get("host", "127.0.0.1"), int(address.get("port", 5432)))
    url = postgres_url.replace(f":{address.get('port', 5432)}/", f":{forwarder.port}/", 1)
    with _ledger(url, tmp_path) as ledger:
        ledger.record_intent(intent("pi_before"))
        forwarder.down()
        found: list = []
        waiting = threading.Thread(
            target=lambda: found.append(_outcome(lambda: ledger.find_order("pi_before")))
        )
        started = time.monotonic()
        waiting.start()
        assert gave_up.wait(10)  # an attempt given up while the request waits
        forwarder.up()
        back = time.monotonic()
        waiting.join(10)
        assert time.monotonic() - started < postgres.POOL_WAIT + 1
    assert isinstance(found[0], dict), found
    assert found[0]["status"] == "paid"
    assert time.monotonic() - back < 2.5


def _outcome(action):
    try:
        return action()
    except Exception as exc:
        return exc


def test_nothing_is_sent_on_a_borrow_but_the_ledgers_own_statements(postgres_url, tmp_path):
    # A check of each borrowed connection (the pool's check_connection) would be one more
    # round trip per read and per lone write: libpq's trace of the wire says there is none.
    with _ledger(postgres_url, tmp_path, pool_size=1) as ledger, tempfile.TemporaryFile("w+") as f:
        ledger.record_intent(intent("pi_counted"))
        conn = ledger.backend.pool.getconn()  # the only one
        conn.pgconn.trace(f.fileno())
        ledger.backend.pool.putconn(conn)
        for _ in range(20):
            ledger.find_order("pi_counted")
            ledger.reopen_event("evt_none")
        conn.pgconn.untrace()
        f.seek(0)
        sent = [line.split("\t")[3].split(" ")[0] for line in f if line.split("\t")[1] == "F"]
    assert sent.count("Execute") + sent.count("Query") == 40


def test_the_pools_other_warnings_are_serves_one_line_each_repeats_folded(
    postgres_url, tmp_path, capsys
):
    # "rolling back returned connection", "error resetting connection", ...: the pool's warnings
    # the ledger does not answer for reached serve's stderr through logging's last resort, bare
    # (no time, no level, no logger) and once per connection however many times a second.
    from bookpay.commands.serve import _configure_logging, _remove_handler

    handlers = _configure_logging(debug=False)
    try:
        with _ledger(postgres_url, tmp_path, pool_size=2) as ledger:
            for _ in range(5):
                conn = ledger.backend.pool.getconn()
                conn.execute("BEGIN")  # given back inside a transaction: rolled back, warned of
                ledger.backend.pool.putconn(conn)
            ledger.find_order("pi_none")  # the connection rolled back still serves
    finally:
        _remove_handler(handlers)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines  # the four repeats held back, and no traceback
    said = "WARNING psycopg.pool: rolling back returned connection: <psycopg.Connection [INTRANS]"
    assert said in lines[0], lines
