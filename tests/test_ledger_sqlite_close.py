"""Closing a SQLite ledger while another thread uses it (`bookpay serve` stopping while a
request still waits on the ledger): the connection in use is left to its thread, never closed
under a statement (which can crash the process), and closed when that use ends."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from bookpay.config import Settings
from bookpay.ledger import open_ledger


def test_close_leaves_a_connection_in_use_to_its_thread_which_closes_it_after(tmp_path):
    ledger = open_ledger(Settings(data_dir=tmp_path))
    backend = ledger.backend
    with backend.read() as tx:  # this thread's connection, idle once the block ends
        idle = tx.conn
    inside, closed, done = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def reader() -> None:
        with backend.read() as tx:
            seen["conn"] = tx.conn
            inside.set()
            closed.wait(10)
            # Still usable in the block the close came in: nothing was closed under it.
            seen["version"] = tx.one("PRAGMA user_version")
        done.set()

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        assert inside.wait(10)
        ledger.close()
        with pytest.raises(sqlite3.ProgrammingError):  # the idle one is closed at once
            idle.execute("SELECT 1")
    finally:
        closed.set()
        thread.join(10)
    assert done.is_set()
    assert seen["version"]["user_version"] > 0
    with pytest.raises(sqlite3.ProgrammingError):  # and the one in use once its use ended
        seen["conn"].execute("SELECT 1")
    with pytest.raises(RuntimeError, match="the ledger is closed"), backend.read():
        pass
