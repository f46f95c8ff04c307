"""The pytest plugin and its fixtures given what a hurried or hostile user gives them: a clear
one-line error saying what is wrong, never a traceback into bookpay, a hang or a silent guess."""

from __future__ import annotations

import pytest

from tests.testing.test_toolkit_fixtures import run


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ("nosuch=1", "unknown option 'nosuch' (the options: async_delay, db_path"),
        ("faults='500=banana'", "faults='500=banana': '500=banana' is not a fault rate"),
        ("faults=5", 'faults=5 is not a string such as "500=5%,429=2%"'),
        ("latency=-1", "latency=-1 is not seconds from 0 to 60"),
        ("async_delay=float('nan')", "async_delay=nan is not seconds from 0"),
        ("seed='seven'", "seed='seven' is not a whole number from 0"),
        ("retry_schedule=[-1]", "retry_schedule=[-1] is not a list of seconds"),
        ("db_path=123", "db_path=123 is not a file path (None: in memory)"),
        ("latency=0.5, latency_max=0.1", "latency_max=0.1 is less than latency=0.5"),
    ],
)
def test_a_marker_with_bad_options_is_a_one_line_error(pytester, options, said):
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.bookpay_emulator({options})
        def test_marked(stripe_emulator):
            pass

        def test_unmarked(stripe_emulator):
            pass
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=1, errors=1)
    out = result.stdout.str()
    assert f"@pytest.mark.bookpay_emulator: {said}" in out
    assert "bookpay/testing" not in out  # no traceback into bookpay
    assert "During handling" not in out  # the one line, not chained to the ValueError


def test_a_bad_ini_value_is_a_usage_error_for_the_run(pytester):
    pytester.makeini("[pytest]\nbookpay_emulator = tests\n")
    pytester.makepyfile("def test_it(stripe_emulator):\n    pass\n")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*bookpay_emulator must be session or test, not 'tests'*"])


def test_webhook_sender_sends_bytes_and_events_as_they_are(pytester):
    """A receiver's test sends what an attacker would: bytes that are no JSON, JSON that is no
    object, an event without an id; each is signed and posted, and the shop refuses it."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b"\\xff\\xfe", {"type": "x"}])
        def test_refused(bookpay_shop, webhook_sender, body):
            result = webhook_sender(body)
            assert (result.status, result.outcome) == (400, "refused"), result
            assert result.event_id == ""

        def test_an_unknown_fixture_name_lists_them(bookpay_shop, webhook_sender):
            with pytest.raises(ValueError) as refused:
                webhook_sender("payment_intent.succeded")
            message = str(refused.value)
            assert "payment_intent.succeded: no such file, folder or bundled fixture" in message
            assert "payment_intent.succeeded, payment_intent.processing" in message

        def test_what_is_no_event_is_refused(webhook_sender):
            with pytest.raises(TypeError, match="a file, a dict, a stripe.Event or bytes, not int"):
                webhook_sender(42, to="http://127.0.0.1:9/hook", secret="whsec_x")
        """
    )
    run(pytester).assert_outcomes(passed=6)


@pytest.mark.parametrize(
    "args",
    [("serve",), ("--utc", "emulator", "--ephemeral"), ("--catalog", "c.json", "worker")],
)
def test_bookpay_cli_refuses_the_commands_that_run_until_stopped(pytester, args):
    pytester.makepyfile(
        f"""
        import pytest

        def test_it(bookpay_cli):
            with pytest.raises(ValueError, match="runs until it is stopped"):
                bookpay_cli{args!r}
            assert bookpay_cli("serve", "--help").exit_code == 0
            assert bookpay_cli("worker", "--once").exit_code == 0
        """
    )
    # A bookpay_cli that ran them would wait for Ctrl-C: the run is cut short instead.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", timeout=60)
    result.assert_outcomes(passed=1)


def test_a_test_that_stops_the_session_emulator_does_not_fail_the_next(pytester):
    pytester.makepyfile(
        """
        def test_stops_it(stripe_emulator):
            stripe_emulator.running.stop()

        def test_next(stripe_emulator):
            assert stripe_emulator.client.v1.customers.list().data == []

        def test_and_the_next_share_it(stripe_emulator):
            assert stripe_emulator.events() == []
        """
    )
    run(pytester).assert_outcomes(passed=3)


# --- StripeEmulator(url) where no emulator answers ----------------------------------------------


def test_an_emulator_url_where_nothing_listens_is_a_clear_error():
    """StripeEmulator(url) wraps an emulator started elsewhere: when none answers there, each
    call says so, naming the URL and how to start one, instead of urllib's URLError."""
    from bookpay.testing import EmulatorError, StripeEmulator
    from tests.processes import free_port

    url = f"http://127.0.0.1:{free_port()}"
    emu = StripeEmulator(url)
    for call in (emu.reset, emu.events, emu.deliveries, emu.faults.clear, emu.clock.now):
        with pytest.raises(EmulatorError) as caught:
            call()
        error = caught.value
        assert (error.status, error.body, error.code) == (None, None, None)
        assert str(error) == (
            f"No Stripe emulator answered at {url} (connection refused): start one with"
            " `bookpay emulator` (or `with bookpay.testing.emulator() as emu:`), or give"
            " StripeEmulator the URL where one runs."
        )
        assert error.__suppress_context__  # one message, not chained to urllib's


@pytest.mark.parametrize("status", [200, 404])
def test_an_emulator_url_where_something_else_answers_is_a_clear_error(status):
    """Another server at that URL (a shop, a web page): its answer is not the emulator's JSON."""
    import http.server
    import threading

    from bookpay.testing import EmulatorError, StripeEmulator

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<!doctype html><p>Not an emulator</p>")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        with pytest.raises(EmulatorError) as caught:
            StripeEmulator(url).clock.now()
        assert caught.value.status == status
        assert str(caught.value) == (
            f"{url} answered {status} with something other than the Stripe emulator's JSON:"
            " is the emulator's URL right?"
        )
    finally:
        server.shutdown()
        server.server_close()
