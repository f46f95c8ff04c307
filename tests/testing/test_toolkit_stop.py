"""A shop's start and stop under the faults a test scripts: the test's faults never meet the
shop's own start-up calls, and faults a test leaves in place (a failed assertion before its
``faults.clear()``) never make its teardown wait for Stripe's timeouts."""

from __future__ import annotations

import time

import pytest
import stripe

from bookpay import testing
from tests.testing.test_toolkit_fixtures import run


def endpoints(emu: testing.StripeEmulator) -> list[dict]:
    return emu.api("GET", "/v1/webhook_endpoints")["data"]


def test_faults_a_failed_test_leaves_do_not_keep_its_shop_from_stopping(pytester):
    """Each test fails before it clears its faults: every call refused with a 429 (nothing
    done: the endpoint's disable at stop would never happen), a 30 s hold of each call. The
    fixture clears them before its shop stops: the endpoint is disabled and kept, at once."""
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def after_the_shop(stripe_emulator):
            # Set up before bookpay_shop, so torn down after it: what its stop did.
            yield
            stripe_emulator.faults.clear()
            found = stripe_emulator.api("GET", "/v1/webhook_endpoints")["data"]
            assert [e["status"] for e in found] == ["disabled"]
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize(
            "fault", [{"fault": "429"}, {"fault": "timeout"}, {"rates": "500=100%"}]
        )
        def test_it(after_the_shop, bookpay_shop, stripe_emulator, fault):
            stripe_emulator.control("POST", "faults", fault)
            assert False, "the test fails before its faults.clear()"
        """
    )
    started = time.monotonic()
    result = run(pytester)
    took = time.monotonic() - started
    result.assert_outcomes(failed=3)  # and no error: each endpoint disabled in its teardown
    assert "the test fails before its faults.clear()" in result.stdout.str()
    assert took < 10  # the 30 s hold alone took 15 s (the gateway's budget for the disable)


@pytest.mark.parametrize("fault", ["timeout", "429", "500"])
def test_a_shops_stop_gives_its_endpoints_disable_two_seconds(tmp_path, fault):
    """``bookpay serve`` (and ``testing.shop`` outside pytest, which leaves the emulator's
    faults alone) against an emulator failing every call to the endpoint: the disable is tried
    for two seconds, not a shopper's call's 15 s; the endpoint's record is kept all the same,
    and the next start adopts the endpoint, with the same secret."""
    data = tmp_path / "shop"
    with testing.emulator() as emu:
        with testing.shop(emu, data_dir=data) as shop:
            [endpoint] = endpoints(emu)
            secret = shop.webhook_secret
            path = "/v1/webhook_endpoints/{id}"
            emu.faults.fail(fault, path=path, method="POST", retry_after=5)
            started = time.monotonic()
        took = time.monotonic() - started
        assert took < 4, took  # two seconds, and the rest of the stop
        emu.faults.clear()
        assert [e["id"] for e in endpoints(emu)] == [endpoint["id"]]
        with testing.shop(emu, data_dir=data) as again:
            assert again.webhook_secret == secret
            [adopted] = endpoints(emu)
            assert (adopted["id"], adopted["status"]) == (endpoint["id"], "enabled")
            assert adopted["url"] == again.webhook_url
            intent = again.pay("1")
            assert again.wait_for_order(intent["id"], "paid")["status"] == "paid"


def test_the_block_starts_once_the_shops_start_up_calls_are_done():
    """The shop's catch-up lists the events at start, in a thread. The block starts after it:
    the one 500 a test scripts for the events list is its own call's, never the catch-up's
    (and no catch-up call is held by a test's `timeout` when the shop stops)."""
    with testing.emulator(latency=0.3) as emu, testing.shop(emu):
        emu.faults.fail("500", path="/v1/events", method="GET", times=1)
        raw = emu.client_for(max_network_retries=0)
        with pytest.raises(stripe.APIError):
            raw.v1.events.list()
        assert emu.faults.injected == {"500": 1}
