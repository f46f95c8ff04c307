"""bookpay's pytest plugin: Stripe's test mode, offline, for your tests and bookpay's.

pytest loads it through the ``pytest11`` entry point (``-p no:bookpay`` turns it off).
Importing it loads nothing but pytest: a fixture imports what it needs when a test uses it, so
a test run that uses none of them starts as fast as without bookpay.

Fixtures:

- ``stripe_emulator``: bookpay's emulator in memory on a free port (``StripeEmulator``: ``url``,
  ``secret_key``, ``publishable_key``, ``client``, ``events()``, ``deliveries()``, ``faults``,
  ``clock``). One for the session, reset before each test that uses it; one per test with
  ``--bookpay-emulator=test`` (ini ``bookpay_emulator = test``), or with options of its own
  through ``@pytest.mark.bookpay_emulator(faults="500=5%", seed=7, ...)``.
- ``bookpay_shop``: bookpay's checkout server against it, its webhook registered (``Shop``).
- ``bookpay_cli``: ``bookpay_cli("orders", "list", "--json")`` in-process, isolated (``CliResult``).
- ``webhook_sender``: signs and posts events, to the test's ``bookpay_shop`` or ``to=URL``.
- ``bookpay_data_dir``: the folder the shop and the CLI share (ledger, outbox).
"""

from __future__ import annotations

import pytest

SCOPES = ("session", "test")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bookpay", "bookpay's Stripe emulator")
    group.addoption(
        "--bookpay-emulator",
        choices=SCOPES,
        default=None,
        help="session: one emulator, reset before each test (the default); test: one per test.",
    )
    parser.addini(
        "bookpay_emulator", "session (one emulator, reset per test) or test", default="session"
    )


def pytest_configure(config: pytest.Config) -> None:
    _one_per_test(config)  # a bad ini value is the run's usage error, not each test's
    config.addinivalue_line(
        "markers",
        "bookpay_emulator(**options): a fresh emulator for this test, with these "
        "emulator options by name (faults, seed, latency in seconds, async_delay, ... as "
        "EmulatorOptions takes them)",
    )


def _one_per_test(config: pytest.Config) -> bool:
    chosen = config.getoption("--bookpay-emulator") or config.getini("bookpay_emulator")
    if chosen not in SCOPES:
        raise pytest.UsageError(f"bookpay_emulator must be session or test, not {chosen!r}")
    return chosen == "test"


class _SessionEmulator:
    """The session's emulator, reset for each test; started again when a test stopped it (or
    it died), so that one test's doing does not fail every test after it."""

    def __init__(self) -> None:
        from contextlib import ExitStack

        self._started = ExitStack()
        self._current = None

    def fresh(self):
        from bookpay.testing import EmulatorError, emulator

        if self._current is not None:
            try:
                self._current.reset()
                return self._current
            except EmulatorError as exc:
                if exc.status is not None:  # an answer, if an error one: not a dead emulator
                    raise
                self._current.running.stop()
        self._current = self._started.enter_context(emulator())
        return self._current

    def close(self) -> None:
        self._started.close()


@pytest.fixture(scope="session")
def _bookpay_session_emulator():
    shared = _SessionEmulator()
    try:
        yield shared
    finally:
        shared.close()


@pytest.fixture
def stripe_emulator(request: pytest.FixtureRequest):
    """bookpay's Stripe emulator, as new: no objects, no faults, its clock at real time."""
    marker = request.node.get_closest_marker("bookpay_emulator")
    if marker is not None or _one_per_test(request.config):
        from bookpay.testing import emulator

        options = _marker_options(marker) if marker is not None else {}
        with emulator(**options) as running:
            yield running
        return
    yield request.getfixturevalue("_bookpay_session_emulator").fresh()


def _marker_options(marker: pytest.Mark) -> dict:
    """The marker's options, checked: a bad one fails the test in one line (pytrace=False),
    saying which and why, rather than with a traceback from inside the emulator."""
    from bookpay.testing._emulator import emulator_options

    if marker.args:
        pytest.fail(
            f"bookpay_emulator takes options by name, as in "
            f'@pytest.mark.bookpay_emulator(faults="500=5%"), not {marker.args!r}',
            pytrace=False,
        )
    try:
        emulator_options(**marker.kwargs)
    except ValueError as exc:
        problem = str(exc)
    else:
        return marker.kwargs
    pytest.fail(f"@pytest.mark.bookpay_emulator: {problem}", pytrace=False)  # not chained


@pytest.fixture
def bookpay_data_dir(tmp_path):
    """The data folder of the test's shop and CLI (the orders ledger, receipts outbox)."""
    return tmp_path / "bookpay-data"


@pytest.fixture
def bookpay_shop(stripe_emulator, bookpay_data_dir):
    """bookpay's shop on a free port against ``stripe_emulator``, its webhook registered."""
    from bookpay.testing import shop

    with shop(stripe_emulator, data_dir=bookpay_data_dir) as running:
        try:
            yield running
        finally:
            _clear_faults(stripe_emulator)


def _clear_faults(emulator) -> None:
    """Before the shop stops (it disables its webhook endpoint through the API): no fault the
    test left in place, so that its teardown takes no longer than a perfect Stripe's. The
    emulator is the test's own, or the session's, reset before the next test anyway."""
    from contextlib import suppress

    from bookpay.testing import EmulatorError

    with suppress(EmulatorError):  # stopped by the test, say: the shop's stop does what it can
        emulator.faults.clear()


@pytest.fixture
def bookpay_cli(stripe_emulator, bookpay_data_dir):
    """``bookpay_cli(*args)`` runs the CLI in-process against ``stripe_emulator``."""
    from bookpay.testing import cli

    with cli(stripe_emulator, bookpay_data_dir) as runner:
        yield runner


@pytest.fixture
def webhook_sender(request: pytest.FixtureRequest):
    """``webhook_sender(event)`` signs and posts an event: a bundled fixture's name, a file or
    a dict; to the test's ``bookpay_shop`` if it has one, else ``to=URL, secret=...``."""
    from bookpay.testing import webhook_sender as make

    shop = None
    if "bookpay_shop" in request.fixturenames:
        shop = request.getfixturevalue("bookpay_shop")
    return make(shop)
