"""The PostgreSQL ledger never waits without end: a lock held by another session, or a pool
with no free connection, makes it unavailable (a 503 at the server, exit 5 at the CLI) after a
few seconds, instead of holding a request (or a webhook Stripe gave up on) for minutes."""

from __future__ import annotations

import time

import psycopg
import pytest
from stripe_fakes import intent

from bookpay.config import Settings
from bookpay.ledger import open_ledger, postgres
from bookpay.ledger.errors import LedgerUnavailable
from bookpay.ledger.location import locate


def test_a_table_locked_by_another_session_is_unavailable_after_the_lock_timeout(
    postgres_url, tmp_path, monkeypatch
):
    monkeypatch.setattr(postgres, "LOCK_TIMEOUT", 0.3)
    settings = Settings(data_dir=tmp_path / "data", database_url=postgres_url)
    with open_ledger(settings) as ledger:
        ledger.record_intent(intent("pi_locked"))
        with psycopg.connect(postgres_url) as other:  # the URL holds the test's own schema
            other.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")  # until the rollback
            started = time.monotonic()
            with pytest.raises(LedgerUnavailable, match="lock timeout"):
                ledger.find_order("pi_locked")
            assert time.monotonic() - started < 3
            other.rollback()
        assert ledger.find_order("pi_locked")["payment_intent"] == "pi_locked"  # and it recovers


def test_a_pool_with_no_free_connection_is_unavailable_after_a_few_seconds(
    postgres_url, tmp_path, monkeypatch
):
    monkeypatch.setattr(postgres, "POOL_WAIT", 0.3)
    backend = postgres.PostgresBackend(locate(postgres_url, tmp_path), pool_size=1)
    try:
        with backend.pool.connection():  # the only one, held
            started = time.monotonic()
            with pytest.raises(LedgerUnavailable, match="Cannot reach the ledger database"):
                backend.schema_version()
            assert time.monotonic() - started < 3
        backend.schema_version()  # free again
    finally:
        backend.close()
