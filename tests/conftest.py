"""Fixtures shared by the whole suite.

Every test runs in its own empty working folder with the developer's STRIPE_* and BOOKPAY_*
variables removed, so a real key or a local .env can never leak into a test (or a test into them).
"""

from __future__ import annotations

import os
import signal

import pytest

from bookpay.config import Settings

# A shell without job control starts a background command (`make test &` in a script) with
# Ctrl-C ignored, and every process after it inherits that: then the suite's own bookpay
# processes would ignore the SIGINT the Ctrl-C tests send them (as bookpay should: an ignored
# SIGINT is how a shell says "not yours"). Handled here, it is the default again in each child.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# pytester runs pytest inside a test: the testing toolkit's own suite (tests/testing/) and the
# README's examples run under it, with bookpay's plugin loaded as any project would load it.
pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith(("STRIPE_", "BOOKPAY_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def emulator():
    """One in-memory Stripe emulator on a free port for the session, never reset: tests make
    objects of their own. Webhook retries come within a second, not over Stripe's three days.
    (Tests that script faults or move the clock use the plugin's ``stripe_emulator``, reset
    before each test, or an emulator of their own.)"""
    from bookpay import testing

    with testing.emulator(retry_schedule=(0.05, 0.1, 0.2)) as running:
        yield running


@pytest.fixture
def settings(tmp_path, emulator) -> Settings:
    """Emulator-mode settings with a data folder of the test's own."""
    return Settings(data_dir=tmp_path / "data", emulator_url=emulator.url)


@pytest.fixture
def cli_env(emulator, tmp_path) -> dict[str, str]:
    """Environment for CliRunner tests that talk to the session's emulator."""
    return {"BOOKPAY_EMULATOR_URL": emulator.url, "BOOKPAY_DATA_DIR": str(tmp_path / "data")}


# PostgreSQL -------------------------------------------------------------------------------------
# The ledger's tests run on both backends. Where PostgreSQL comes from: tests/postgres_server.py.


@pytest.fixture(scope="session")
def postgres_server():
    from postgres_server import find_server

    server, reason = find_server()
    if server is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL is required in CI: {reason}", pytrace=False)
        pytest.skip(f"PostgreSQL tests skipped: {reason}")
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server, request):
    """A PostgreSQL URL whose tables live in a schema of this test's own, dropped afterwards."""
    from postgres_server import own_schema

    with own_schema(postgres_server, request.node.nodeid) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request):
    """Each ledger test runs twice: on SQLite in the data folder (None), then on PostgreSQL."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres_url")
