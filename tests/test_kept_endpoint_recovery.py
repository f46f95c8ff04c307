"""A running shop whose endpoint went away (the emulator forgot it, or another start disabled
it) catches up once it has it again, as it does at start; the catch-up counts only this shop's
events; the disabled endpoints a wiped data folder kept are removed by its next start, and no
other. In-process shops against in-process emulators, as in tests/test_kept_endpoint.py; the
watcher's looks are taken by the test (``EmulatorLink.look``), never left to its timer.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
import time

import pytest
from processes import free_port

from bookpay.config import Settings
from bookpay.emulator import EmulatorOptions, start_emulator
from bookpay.payments import Gateway
from bookpay.testing._shop import shop
from bookpay.web import catchup
from bookpay.web.catchup import CatchUp, OwnEvents
from bookpay.web.emulator_link import EmulatorLink

RETRY = 300.0  # the first retry of a failed delivery: far beyond the test


def options() -> EmulatorOptions:
    return EmulatorOptions(retry_schedule=(RETRY,) * 3, async_delay=0.05)


def endpoints(emu) -> list[dict]:
    return Gateway(Settings(emulator_url=emu.url)).webhook_endpoints()


def cli(emu, tmp_path) -> Gateway:
    return Gateway(Settings(data_dir=tmp_path / "cli", emulator_url=emu.url))


def succeeded_event(emu, intent_id: str) -> dict:
    listed = cli_events(emu, ["payment_intent.succeeded"])
    return next(e for e in listed if e["data"]["object"]["id"] == intent_id)


def cli_events(emu, types) -> list[dict]:
    return list(Gateway(Settings(emulator_url=emu.url)).iter_events(types=types))


def watched_by_hand(running):
    """The shop's link, its watcher stopped (the test looks instead), its catch-up at start done."""
    link = running._running.link
    link.stop_watching()
    assert running._running.catch_up.done.wait(10)
    return link


def caught_up_lines(running) -> list[str]:
    return [line for line in running.console if line.startswith("Caught up with")]


def test_a_payment_made_while_the_emulator_had_forgotten_the_endpoint_is_caught_up(tmp_path):
    """The endpoint is deleted (an emulator that lost it), a payment completes, and only then
    does the watcher look and register a new endpoint: Stripe never sends that payment's event
    to an endpoint that did not exist when it was made, so the catch-up handles it."""
    with start_emulator(options=options()) as emu, shop(emu, data_dir=tmp_path / "s") as running:
        link = watched_by_hand(running)
        intent = running.checkout()["paymentIntentId"]
        gone = link.endpoint_id
        cli(emu, tmp_path).delete_webhook(gone)
        cli(emu, tmp_path).confirm_intent(intent, payment_method="pm_card_visa")
        assert succeeded_event(emu, intent)["pending_webhooks"] == 0  # sent to no endpoint

        assert link.look() is True
        [endpoint] = endpoints(emu)
        assert endpoint["id"] != gone and endpoint["status"] == "enabled"
        assert running._running.catch_up.done.wait(10)
        assert running.ledger.fulfilment_count(intent) == 1
        assert caught_up_lines(running) == [
            "Caught up with 1 webhook event not delivered to this shop yet."
        ]
        recorded = running.ledger.events_for(intent)
        [event] = [e for e in recorded if e["type"] == "payment_intent.succeeded"]
        assert event["handled"] and event["outcome"] == "fulfilled"


def test_a_payment_made_in_an_emulator_restarted_in_memory_is_caught_up(tmp_path):
    """The emulator stops and another, in memory, answers at its port: a payment made there
    before the watcher registers the shop with it is caught up once it has."""
    port = free_port()
    emu = start_emulator(port=port, options=options())
    again = None
    try:
        with shop(emu, data_dir=tmp_path / "s") as running:
            link = watched_by_hand(running)
            assert link.look() is True
            emu.stop()
            assert link.look() is False
            again = start_emulator(port=port, options=options())
            intent = running.checkout()["paymentIntentId"]  # against the new emulator
            cli(again, tmp_path).confirm_intent(intent, payment_method="pm_card_visa")

            assert link.look(up=False) is True
            assert [e["status"] for e in endpoints(again)] == ["enabled"]
            assert running._running.catch_up.done.wait(10)
            assert running.ledger.fulfilment_count(intent) == 1
            assert caught_up_lines(running) == [
                "Caught up with 1 webhook event not delivered to this shop yet."
            ]
    finally:
        emu.stop()
        if again is not None:
            again.stop()


def test_a_payment_made_while_another_start_had_disabled_the_endpoint_is_caught_up(tmp_path):
    """Another data folder's start took this shop for a dead one and disabled its endpoint; a
    payment completes meanwhile (Stripe sends a disabled endpoint nothing, not even later).
    The watcher enables it again, and the catch-up handles that payment."""
    with start_emulator(options=options()) as emu, shop(emu, data_dir=tmp_path / "s") as running:
        link = watched_by_hand(running)
        intent = running.checkout()["paymentIntentId"]
        metadata = {"bookpay_disabled_at": repr(time.time())}
        cli(emu, tmp_path).update_webhook(link.endpoint_id, disabled=True, metadata=metadata)
        cli(emu, tmp_path).confirm_intent(intent, payment_method="pm_card_visa")

        assert link.look() is True
        assert [(e["id"], e["status"]) for e in endpoints(emu)] == [(link.endpoint_id, "enabled")]
        assert running._running.catch_up.done.wait(10)
        assert running.ledger.fulfilment_count(intent) == 1
        assert caught_up_lines(running) == [
            "Caught up with 1 webhook event not delivered to this shop yet."
        ]


def test_a_look_that_finds_the_endpoint_in_place_starts_no_catch_up(tmp_path):
    with start_emulator(options=options()) as emu, shop(emu, data_dir=tmp_path / "s") as running:
        link = watched_by_hand(running)
        catch_up = running._running.catch_up
        assert link.look() is True
        assert catch_up.done.is_set() and catch_up.passes == 1


def test_a_payment_made_after_the_stop_is_caught_up_though_the_kept_endpoint_was_deleted(
    tmp_path,
):
    """Stopped, its endpoint disabled and kept; the endpoint is deleted, and a payment of the
    shop's completes. The next start cannot adopt it and registers another, and catches up with
    what was made since the kept one was disabled, as an adoption would."""
    folder = tmp_path / "shop"
    with start_emulator(options=options()) as emu:
        with shop(emu, data_dir=folder) as first:
            intent = first.checkout()["paymentIntentId"]
            old = first._running.link.endpoint_id
        cli(emu, tmp_path).delete_webhook(old)
        cli(emu, tmp_path).confirm_intent(intent, payment_method="pm_card_visa")
        with shop(emu, data_dir=folder) as again:
            assert again._running.link.endpoint_id != old
            assert again._running.catch_up.done.wait(10)
            assert again.ledger.fulfilment_count(intent) == 1
            assert caught_up_lines(again) == [
                "Caught up with 1 webhook event not delivered to this shop yet."
            ]


def test_the_catch_up_counts_and_says_only_this_shops_events(tmp_path):
    """Shop A is stopped; shop B, on the same emulator, is paid (and refunds, and is disputed)
    meanwhile, and one payment of A's completes. A's catch-up at its next start handles A's
    payment, and neither handles nor counts B's events (nor records them: they are B's)."""
    with start_emulator(options=options()) as emu:
        with shop(emu, data_dir=tmp_path / "a") as a:
            own = a.checkout()["paymentIntentId"]
        with shop(emu, data_dir=tmp_path / "b") as b:
            theirs = b.pay()["id"]
            b.wait_for_order(theirs, "paid")
            cli(emu, tmp_path).create_refund(theirs, amount=500)
            disputed = b.pay(card="4000000000000259")["id"]
            b.wait_for_order(disputed, "disputed")
        cli(emu, tmp_path).confirm_intent(own, payment_method="pm_card_visa")
        kinds = {e["type"] for e in cli_events(emu, ["charge.refunded", "charge.dispute.created"])}
        assert kinds == {"charge.refunded", "charge.dispute.created"}

        with shop(emu, data_dir=tmp_path / "a") as again:
            catch_up = again._running.catch_up
            assert catch_up.done.wait(10)
            assert again.ledger.fulfilment_count(own) == 1
            assert catch_up.caught_up == 1
            assert caught_up_lines(again) == [
                "Caught up with 1 webhook event not delivered to this shop yet."
            ]
            assert again.ledger.events_for(theirs) == []
            assert again.ledger.events_for(disputed) == []


def intent_event(n: int, shop_id: str, created: int) -> dict:
    metadata = {"integration": "bookpay", "order_id": f"ord_{n}", "shop_id": shop_id}
    copy = {"object": "payment_intent", "id": f"pi_{n}", "metadata": metadata}
    return {"id": f"evt_{n}", "type": "payment_intent.succeeded", "created": created,
            "data": {"object": copy}}  # fmt: skip


class ListingGateway:
    def __init__(self, events: list[dict]) -> None:
        self.events = events

    def iter_events(self, **params):
        yield from [] if "delivery_success" in params else self.events

    def retrieve_intent(self, intent_id, expand=()):
        raise AssertionError("every copy here names its shop")


class Receiver:
    def __init__(self) -> None:
        self.handled: list[str] = []

    def processed(self, _event_id):
        return False

    def catch_up(self, event):
        self.handled.append(event["id"])
        return {"id": event["id"]}


def test_other_shops_events_neither_count_toward_the_bound_nor_are_handled(caplog):
    """Another shop's events, not processed here (they are not this shop's to process), fill
    the list beyond the bound: this shop's one event is still handled, the only one said."""
    others = [intent_event(n, "shop_other", 5000 - n) for n in range(catchup.LIMIT + 50)]
    mine = intent_event(9999, "shop_me", 10)
    gateway, receiver, said = ListingGateway([*others, mine]), Receiver(), []
    own = OwnEvents("shop_me", gateway, ledger=None)
    with caplog.at_level(logging.WARNING, logger="bookpay.catchup"):
        CatchUp(gateway, receiver, since=0.0, say=said.append, clock=lambda: 10**4, ours=own).run()
    assert receiver.handled == ["evt_9999"]
    assert said == ["Caught up with 1 webhook event not delivered to this shop yet."]
    assert caplog.records == []


# Kept endpoints nobody can adopt any more ------------------------------------------------------


def by_id(emu) -> dict[str, str]:
    return {e["id"]: e["status"] for e in endpoints(emu)}


def test_the_endpoint_a_wiped_data_folder_kept_is_removed_at_its_next_start(tmp_path):
    """The data folder (its record, so the endpoint's secret) is gone: nobody can use that
    disabled endpoint again. The next start of a shop on that folder removes it, and says so;
    another folder's kept endpoint (the same shop id, a shared ledger) is left alone."""
    folder, other = tmp_path / "shop", tmp_path / "other"
    with start_emulator(options=options()) as emu:
        with shop(emu, data_dir=folder, shop_id="shop_same"):
            [wiped] = endpoints(emu)
        with shop(emu, data_dir=other, shop_id="shop_same") as running:
            theirs = running._running.link.endpoint_id
        shutil.rmtree(folder)

        with shop(emu, data_dir=folder, shop_id="shop_same") as again:
            new = again._running.link.endpoint_id
            assert by_id(emu) == {theirs: "disabled", new: "enabled"}
            removed = [line for line in again.console if wiped["id"] in line]
            assert removed == [
                f"Removed webhook endpoint {wiped['id']} ({wiped['url']}), disabled and kept "
                "for this data folder, whose record of it is gone: nothing can use it again."
            ]
        with shop(emu, data_dir=other, shop_id="shop_same") as back:
            assert back._running.link.endpoint_id == theirs  # adopted, as ever


def test_a_running_shops_disabled_endpoint_is_never_removed(tmp_path):
    """Two processes on one data folder: the first's endpoint disabled (another start took it
    for a dead shop's) is held by it, record and all; the second's start leaves it alone."""
    folder = tmp_path / "shop"
    with start_emulator(options=options()) as emu, shop(emu, data_dir=folder) as first:
        link = watched_by_hand(first)
        cli(emu, tmp_path).update_webhook(link.endpoint_id, disabled=True)
        with shop(emu, data_dir=folder) as second:
            assert by_id(emu) == {
                link.endpoint_id: "disabled",
                second._running.link.endpoint_id: "enabled",
            }
            assert link.look() is True
            assert by_id(emu)[link.endpoint_id] == "enabled"


def test_an_untagged_kept_endpoint_is_removed_only_for_this_shops_own_url(tmp_path):
    """Endpoints from before they named their data folder: a disabled one of this shop, kept,
    for the URL this start registers, with no record here, is removed; one for another URL (a
    stopped process of another folder with the same shop id, maybe), another shop's, or one
    bookpay did not keep, is left alone."""
    url, elsewhere = "http://127.0.0.1:9/webhook", "http://127.0.0.1:7/webhook"
    settings = Settings(data_dir=tmp_path / "shop", shop_id="shop_me")
    with start_emulator(options=options()) as emu:
        gateway = Gateway(dataclasses.replace(settings, emulator_url=emu.url))

        def disabled(at: str, **metadata: str) -> str:
            made = gateway.create_webhook(at, metadata={"bookpay_kept": "true", **metadata})
            gateway.update_webhook(made["id"], disabled=True)
            return made["id"]

        gone = disabled(url, bookpay_shop="shop_me")
        kept = [
            disabled(elsewhere, bookpay_shop="shop_me"),
            disabled(url, bookpay_shop="shop_other"),
            disabled(url, bookpay_shop="shop_me", bookpay_kept="false"),
        ]
        said: list[str] = []
        link = EmulatorLink(
            dataclasses.replace(settings, emulator_url=emu.url), gateway, url,
            on_secret=lambda _: None, say=said.append,
        )  # fmt: skip
        link.register()
        assert gone not in by_id(emu)
        assert all(by_id(emu)[id_] == "disabled" for id_ in kept)
        assert [line for line in said if "Removed" in line] == [
            f"Removed webhook endpoint {gone} ({url}), disabled and kept for this data folder, "
            "whose record of it is gone: nothing can use it again."
        ]
        link.unregister()


# The catch-up asked again, on its own -----------------------------------------------------------


class GatedGateway:
    """Lists nothing, each list once ``gate`` is set; remembers the ``created`` asked for."""

    def __init__(self, gate: threading.Event) -> None:
        self.gate = gate
        self.asked: list[dict] = []
        self.listing = threading.Event()  # set at the first list asked for

    def iter_events(self, **params):
        self.asked.append(params)
        self.listing.set()
        self.gate.wait(10)
        yield from ()


class NoReceiver:
    def processed(self, _event_id):
        return False

    def catch_up(self, _event):
        raise AssertionError("nothing to handle")


def since_lists(gateway: GatedGateway) -> list[int]:
    return [p["created"]["gte"] for p in gateway.asked if "delivery_success" not in p]


def test_a_catch_up_asked_again_while_one_runs_follows_it_from_the_earliest_time_asked():
    now = 10**6
    gate = threading.Event()
    gateway = GatedGateway(gate)
    catch_up = CatchUp(gateway, NoReceiver(), since=None, say=lambda _: None, clock=lambda: now)
    catch_up.start()
    assert gateway.listing.wait(10)  # the first pass is under way
    catch_up.again(now - 500)
    catch_up.again(now - 900)  # asked twice meanwhile: one more pass, from the earlier
    catch_up.again(now - 100)
    assert not catch_up.done.is_set()
    gate.set()
    assert catch_up.done.wait(10)
    assert catch_up.passes == 2
    assert since_lists(gateway) == [now - 900 - catchup.MARGIN]
    catch_up.again(now - 50)  # after it ended: a thread again
    assert catch_up.done.wait(10)
    assert catch_up.passes == 3
    assert since_lists(gateway)[-1] == now - 50 - catchup.MARGIN
    assert catch_up.stop()


def test_a_stopped_catch_up_is_not_run_again():
    gate = threading.Event()
    gate.set()
    gateway = GatedGateway(gate)
    catch_up = CatchUp(gateway, NoReceiver(), say=lambda _: None)
    catch_up.start()
    assert catch_up.done.wait(10)
    assert catch_up.stop()
    catch_up.again(time.time())
    assert catch_up.done.is_set() and catch_up.passes == 1
    assert catch_up._thread is None


@pytest.fixture(autouse=True)
def _quiet_emulator_logs(caplog):
    caplog.set_level(logging.ERROR, logger="bookpay.emulator")
