"""The pytest plugin's fixtures, as a project using them sees them: each case is a test file
run by pytester in a fresh folder, with bookpay's plugin loaded through its entry point."""

from __future__ import annotations

import sys

import pytest


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", "-q", *args)


def test_the_plugin_is_registered_and_documents_its_fixtures(pytester):
    result = pytester.runpytest("--fixtures", "-p", "no:cacheprovider")
    out = result.stdout.str()
    for name in ("stripe_emulator", "bookpay_shop", "bookpay_cli", "webhook_sender"):
        assert name in out
    assert "bookpay's Stripe emulator, as new" in out
    assert "--bookpay-emulator" in pytester.runpytest("--help").stdout.str()


def test_stripe_emulator_offers_keys_a_client_events_faults_and_the_clock(pytester):
    pytester.makepyfile(
        """
        import stripe

        def test_it(stripe_emulator):
            assert stripe_emulator.secret_key.startswith("sk_test_")
            assert stripe_emulator.publishable_key.startswith("pk_test_")
            assert stripe_emulator.url.startswith("http://127.0.0.1:")
            client = stripe_emulator.client
            assert isinstance(client, stripe.StripeClient)
            pi = client.v1.payment_intents.create(params={"amount": 500, "currency": "eur"})
            assert [e["type"] for e in stripe_emulator.events()] == ["payment_intent.created"]
            created = stripe_emulator.events("payment_intent.created")[0]
            assert created["data"]["object"]["id"] == pi.id

            stripe_emulator.faults.fail("429", path="/v1/payment_intents/{id}", times=1)
            raw = stripe_emulator.client_for(max_network_retries=0)
            try:
                raw.v1.payment_intents.retrieve(pi.id)
            except stripe.RateLimitError:
                pass
            else:
                raise AssertionError("no 429")
            assert stripe_emulator.faults.injected == {"429": 1}

            key = {"idempotency_key": "k1"}
            params = {"amount": 100, "currency": "eur"}
            first = client.v1.payment_intents.create(params=params, options=key)
            stripe_emulator.clock.advance(hours=25)
            second = client.v1.payment_intents.create(params=params, options=key)
            assert first.id != second.id  # the key expired on the emulator's clock
            assert stripe_emulator.clock.now() > first.created + 25 * 3600 - 5
        """
    )
    run(pytester).assert_outcomes(passed=1)


def test_stripe_emulator_shows_its_webhook_deliveries_and_notifications(pytester):
    pytester.makepyfile(
        """
        import socket

        def closed_port_url():
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                return f"http://127.0.0.1:{probe.getsockname()[1]}/hook"

        def test_it(stripe_emulator):
            url = closed_port_url()
            client = stripe_emulator.client
            endpoint = client.v1.webhook_endpoints.create(
                params={"url": url, "enabled_events": ["customer.created"]}
            )
            client.v1.customers.create(params={"email": "ada@example.com"})
            event = stripe_emulator.events("customer.created")[0]
            first = stripe_emulator.wait_for(
                lambda: stripe_emulator.deliveries(event["id"]), what="the first attempt"
            )
            assert [(a["url"], a["status"]) for a in first] == [(url, None)]
            assert first[0]["endpoint_id"] == endpoint.id
            said = type(stripe_emulator).deliveries.__doc__
            assert [key for key in first[0] if f"``{key}``" not in said] == []  # as documented
            assert first[0]["error"]
            assert stripe_emulator.deliveries("evt_other") == []
            assert stripe_emulator.notifications() == []

            stripe_emulator.clock.advance(days=3)
            assert len(stripe_emulator.deliveries(event["id"])) > 1  # Stripe's retries
            notices = stripe_emulator.notifications()
            assert [(n["type"], n["url"]) for n in notices] == [("webhook_endpoint.failing", url)]
        """
    )
    run(pytester).assert_outcomes(passed=1)


def test_one_emulator_for_the_session_reset_before_each_test(pytester):
    pytester.makepyfile(
        """
        seen = []

        def test_first(stripe_emulator):
            seen.append(stripe_emulator.url)
            stripe_emulator.client.v1.customers.create(params={"email": "a@example.com"})
            stripe_emulator.faults.fail("500", path="/v1/customers")
            stripe_emulator.clock.advance(days=3)

        def test_second(stripe_emulator):
            assert stripe_emulator.url == seen[0]
            assert stripe_emulator.events() == []
            assert stripe_emulator.faults.state()["rules"] == []
            assert stripe_emulator.control("GET", "clock")["offset"] == 0
            stripe_emulator.client.v1.customers.create(params={"email": "b@example.com"})
        """
    )
    run(pytester).assert_outcomes(passed=2)


@pytest.mark.parametrize("how", ["option", "ini"])
def test_one_emulator_per_test_when_asked(pytester, how):
    pytester.makepyfile(
        """
        seen = []

        def test_first(stripe_emulator):
            seen.append(stripe_emulator.url)

        def test_second(stripe_emulator):
            assert stripe_emulator.url != seen[0]
        """
    )
    if how == "ini":
        pytester.makeini("[pytest]\nbookpay_emulator = test\n")
        run(pytester).assert_outcomes(passed=2)
    else:
        run(pytester, "--bookpay-emulator=test").assert_outcomes(passed=2)


def test_a_marker_gives_a_test_an_emulator_with_options_of_its_own(pytester):
    pytester.makepyfile(
        """
        import pytest, stripe

        @pytest.mark.bookpay_emulator(faults="500=100%", seed=1)
        def test_faulty(stripe_emulator):
            client = stripe_emulator.client_for(max_network_retries=0)
            with pytest.raises(stripe.APIError):
                client.v1.customers.list()

        def test_perfect(stripe_emulator):
            assert stripe_emulator.client.v1.customers.list().data == []
        """
    )
    run(pytester).assert_outcomes(passed=2)


def test_a_marker_with_options_not_named_is_refused_not_ignored(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.bookpay_emulator("500=100%")
        def test_faulty(stripe_emulator):
            pass
        """
    )
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*bookpay_emulator takes options by name*"])
    assert "bookpay/testing" not in result.stdout.str()  # in one line, no traceback into it


def test_bookpay_shop_pays_fulfils_and_writes_a_receipt_ignoring_the_environment(
    pytester, monkeypatch
):
    # What a developer's machine may hold: neither reaches the shop.
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_live_notforthetests")
    monkeypatch.setenv("BOOKPAY_DATA_DIR", str(pytester.path / "elsewhere"))
    pytester.makefile(".env", **{"": "STRIPE_SECRET_KEY=sk_test_fromdotenvfile\n"})
    pytester.makepyfile(
        """
        def test_it(bookpay_shop, bookpay_data_dir):
            assert bookpay_shop.settings.is_emulated
            assert bookpay_shop.data_dir == bookpay_data_dir
            assert bookpay_shop.webhook_secret.startswith("whsec_")
            intent = bookpay_shop.pay("2", card="4242 4242 4242 4242")
            assert intent["status"] == "succeeded"
            order = bookpay_shop.wait_for_order(intent["id"], "paid")
            assert bookpay_shop.ledger.fulfilment_count(intent["id"]) == 1
            receipts = bookpay_shop.wait_for_receipts(1)
            assert order["id"] in receipts[0].get_payload(decode=True).decode()
            assert (bookpay_shop.outbox / f"{intent['id']}.eml").exists()
            page = bookpay_shop.request("GET", "/checkout?item=2")
            assert page.status == 200 and b"payment-element" in page.body
        """
    )
    run(pytester).assert_outcomes(passed=1)
    assert not (pytester.path / "elsewhere").exists()


def test_a_shop_waiting_for_an_order_says_what_it_saw(pytester):
    pytester.makepyfile(
        """
        import pytest

        def test_it(bookpay_shop):
            created = bookpay_shop.checkout("1")
            with pytest.raises(AssertionError, match="did not reach 'paid' within 0.2 s"):
                bookpay_shop.wait_for_order(created["paymentIntentId"], "paid", timeout=0.2)
        """
    )
    run(pytester).assert_outcomes(passed=1)


def test_bookpay_cli_runs_isolated_and_shares_the_shops_data(pytester, monkeypatch):
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_live_notforthetests")
    pytester.makefile(".env", **{"": "BOOKPAY_EMULATOR_URL=http://127.0.0.1:9\n"})
    pytester.makepyfile(
        """
        def test_it(bookpay_cli, bookpay_shop):
            created = bookpay_cli("intent", "create", "--item", "1", "--json")
            assert created.exit_code == 0, created.stderr
            assert created.json["amount"] == 2300
            bad = bookpay_cli("intent", "show", "xyz")
            assert bad.exit_code == 2 and "pi_" in bad.stderr and bad.stdout == ""
            paid = bookpay_shop.pay("1")
            order = bookpay_shop.wait_for_order(paid["id"], "paid")
            listed = bookpay_cli(["orders", "list", "--json"])
            pending = created.json["metadata"]["order_id"]  # the CLI's, not paid
            assert [(o["id"], o["status"]) for o in listed.json] == [
                (order["id"], "paid"), (pending, "pending")
            ]
            refunded = bookpay_cli("refund", "create", paid["id"], "--json")
            assert refunded.exit_code == 0, refunded.stderr
            bookpay_shop.wait_for_order(paid["id"], "refunded")
        """
    )
    run(pytester).assert_outcomes(passed=1)


def test_the_cli_leaves_no_connection_open_so_warnings_as_errors_pass(pytester):
    """Each command closes its gateway's keep-alive connections: a project running with
    ``-W error`` (or filterwarnings = error) sees no unclosed-socket ResourceWarning."""
    pytester.makepyfile(
        """
        import gc

        def test_it(bookpay_cli):
            for _ in range(3):
                created = bookpay_cli("intent", "create", "--item", "1", "--json")
                assert created.exit_code == 0, created.stderr
            gc.collect()
        """
    )
    # In a process of its own: in this one, a socket some earlier test left to the collector
    # could be collected during the run and fail it, whatever the CLI does.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "-W", "error")
    result.assert_outcomes(passed=1)


def test_the_emulators_clients_ignore_a_proxy_in_the_environment(pytester, monkeypatch):
    """The emulator is on this machine: HTTP(S)_PROXY (set in many CI systems) must not catch
    the fixture's clients' calls to 127.0.0.1."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    pytester.makepyfile(
        """
        def test_it(stripe_emulator):
            assert stripe_emulator.client.v1.customers.list().data == []
            other = stripe_emulator.client_for(max_network_retries=0)
            assert other.v1.customers.list().data == []
        """
    )
    run(pytester).assert_outcomes(passed=1)


def test_webhook_sender_sends_stripe_pythons_own_events(pytester):
    """An event as stripe-python lists or retrieves it is a ``stripe.Event``, no dict (16.x):
    sent as its ``to_dict()``, the same event as the emulator delivered."""
    pytester.makepyfile(
        """
        def test_it(bookpay_shop, webhook_sender, stripe_emulator):
            paid = bookpay_shop.pay("1")
            bookpay_shop.wait_for_order(paid["id"], "paid")
            client = stripe_emulator.client
            listed = client.v1.events.list(params={"type": "payment_intent.succeeded"}).data[0]
            assert not isinstance(listed, dict)
            assert webhook_sender(listed).outcome == "duplicate"
            retrieved = client.v1.events.retrieve(listed.id)
            assert webhook_sender.send(retrieved).event_id == listed.id
        """
    )
    run(pytester).assert_outcomes(passed=1)


def test_a_declined_card_raises_card_declined_from_bookpay_testing(pytester):
    pytester.makepyfile(
        """
        import pytest

        from bookpay.testing import CardDeclined, Shop

        def test_it(bookpay_shop):
            with pytest.raises(CardDeclined) as declined:
                bookpay_shop.pay("1", card="4000 0000 0000 0002")
            assert declined.value.decline_code == "generic_decline"
            assert "CardDeclined" in Shop.pay.__doc__
            assert bookpay_shop.pay("1", card="4000002760003184")["status"] == "requires_action"
        """
    )
    run(pytester).assert_outcomes(passed=1)


def test_a_relative_data_folder_is_the_same_folder_for_the_shop_and_the_cli(pytester):
    """A conftest's ``bookpay_data_dir`` may be relative: the CLI, which runs in a working
    folder of its own, finds the shop's ledger there all the same."""
    pytester.makeconftest(
        """
        from pathlib import Path

        import pytest

        @pytest.fixture
        def bookpay_data_dir():
            return Path("data")
        """
    )
    pytester.makepyfile(
        """
        from pathlib import Path

        def test_it(bookpay_shop, bookpay_cli):
            assert bookpay_shop.data_dir == Path.cwd() / "data"
            paid = bookpay_shop.pay("1")
            order = bookpay_shop.wait_for_order(paid["id"], "paid")
            shown = bookpay_cli("orders", "show", order["id"], "--json")
            assert shown.exit_code == 0, shown.stderr
            assert shown.json["status"] == "paid"
        """
    )
    run(pytester).assert_outcomes(passed=1)


def test_relative_data_folders_are_taken_from_the_working_folder_when_given(tmp_path, monkeypatch):
    """Without pytest: ``shop(emu, data_dir="reldata")`` and ``cli(emu, "reldata")`` name the
    folder under the working folder they were given in, whatever it is later."""
    from bookpay import testing

    monkeypatch.chdir(tmp_path)
    with testing.emulator() as emu, testing.shop(emu, data_dir="reldata") as shop:
        assert shop.data_dir == tmp_path / "reldata"
        with testing.cli(emu, "reldata") as bookpay:
            monkeypatch.chdir(tmp_path.parent)
            paid = shop.pay("1")
            order = shop.wait_for_order(paid["id"], "paid")
            assert shop.wait_for_receipts(1)  # the outbox under tmp_path, still
            with testing.cli(emu, shop.data_dir) as again:
                for runner in (bookpay, again):
                    shown = runner("orders", "show", order["id"], "--json")
                    assert shown.exit_code == 0, shown.stderr
                    assert shown.json["status"] == "paid"


def test_webhook_sender_signs_and_posts_fixtures_dicts_and_files(pytester):
    pytester.makepyfile(
        """
        import json, pytest

        def test_to_the_shop(bookpay_shop, webhook_sender, stripe_emulator, tmp_path):
            unknown = webhook_sender("payment_intent.succeeded")  # a bundled fixture
            assert (unknown.status, unknown.outcome) == (200, "ignored")
            assert "Stripe does not know" in unknown.reason
            paid = bookpay_shop.pay("1")
            bookpay_shop.wait_for_order(paid["id"], "paid")
            event = stripe_emulator.events("payment_intent.succeeded")[-1]
            assert webhook_sender(event).outcome == "duplicate"
            path = tmp_path / "event.json"
            path.write_text(json.dumps(event))
            assert webhook_sender(path).outcome == "duplicate"
            forged = webhook_sender(event, bad_signature=True)
            assert (forged.status, forged.outcome) == (400, "refused")
            stale = webhook_sender(event, timestamp_offset=-3600)
            assert stale.outcome == "refused"
            intent = {"id": "pi_nope", "object": "payment_intent"}
            made = webhook_sender.event("payment_intent.succeeded", intent)
            assert webhook_sender(made).outcome == "ignored"

        def test_without_a_shop_say_where(webhook_sender):
            with pytest.raises(ValueError, match="say where"):
                webhook_sender("payment_intent.succeeded")
        """
    )
    run(pytester).assert_outcomes(passed=2)


def test_loading_the_plugin_imports_nothing_heavy(pytester):
    """A project with bookpay installed pays nothing at start-up for fixtures it does not use."""
    pytester.makeconftest(
        """
        import sys

        def pytest_sessionfinish(session):
            with open("modules.txt", "w") as out:
                out.write("\\n".join(sorted(sys.modules)))
        """
    )
    pytester.makepyfile("def test_plain():\n    assert True\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1)
    modules = set((pytester.path / "modules.txt").read_text().split())
    assert "bookpay.testing.plugin" in modules  # loaded through its entry point
    ours = {m for m in modules if m.startswith("bookpay")}
    assert ours == {"bookpay", "bookpay.testing", "bookpay.testing.plugin"}
    heavy = {"stripe", "bottle", "waitress", "typer", "rich", "sqlite3", "psycopg", "requests"}
    assert not {m.split(".")[0] for m in modules} & heavy


def test_the_plugin_can_be_turned_off(pytester):
    pytester.makepyfile("def test_it(stripe_emulator):\n    pass\n")
    result = run(pytester, "-p", "no:bookpay")
    result.assert_outcomes(errors=1)
    assert "fixture 'stripe_emulator' not found" in result.stdout.str()


def test_context_managers_work_without_pytest(pytester):
    pytester.makepyfile(
        test_unit="""
        import unittest

        from bookpay import testing


        class ShopTest(unittest.TestCase):
            def test_a_payment_is_fulfilled(self):
                with testing.emulator() as emu, testing.shop(emu) as shop:
                    paid = shop.pay("3")
                    order = shop.wait_for_order(paid["id"], "paid")
                    with testing.cli(emu, shop.data_dir) as cli:
                        shown = cli("orders", "show", order["id"], "--json")
                    self.assertEqual(shown.json["status"], "paid")
                    sender = testing.webhook_sender(shop)
                    self.assertEqual(sender("payment_intent.succeeded").outcome, "ignored")


        if __name__ == "__main__":
            unittest.main()
        """
    )
    result = pytester.run(sys.executable, "-m", "unittest", "-v", "test_unit", timeout=120)
    assert result.ret == 0, result.stderr.str()
    assert "test_a_payment_is_fulfilled" in result.stderr.str()
