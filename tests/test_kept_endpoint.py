"""A shop in emulator mode keeps its webhook endpoint between runs, and catches up at start.

Stopping disables the endpoint (it is not removed), and the data folder keeps its id and secret;
the next start adopts it, so the deliveries queued for it meanwhile reach the shop, and handles
at once, in a thread, the events Stripe lists as not delivered and those made while it was
down. In-process shops (``bookpay.testing``, started as `bookpay serve` starts them) against
in-process emulators; shops in processes of their own are in tests/test_several_processes.py.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from processes import free_port, wait_for

from bookpay.config import Settings
from bookpay.emulator import EmulatorOptions, start_emulator
from bookpay.emulator.delivery import DISABLED
from bookpay.errors import StripeUnavailable
from bookpay.ledger import open_ledger
from bookpay.payments import Gateway
from bookpay.testing._shop import shop
from bookpay.web import catchup, kept_endpoint
from bookpay.web.catchup import CatchUp
from bookpay.web.emulator_link import EmulatorLink

RETRY = 300.0  # the first retry of a failed delivery: far beyond the test, unless advanced


def options(db: Path | None = None) -> EmulatorOptions:
    return EmulatorOptions(db_path=db, retry_schedule=(RETRY,) * 3, async_delay=0.05)


def endpoints(emu) -> list[dict]:
    return Gateway(Settings(emulator_url=emu.url)).webhook_endpoints()


def records(data: Path) -> list[Path]:
    return sorted((data / "webhook-endpoints").glob("we_*.json"))


def ledger(data: Path):
    return open_ledger(Settings(data_dir=data))


def succeeded_event(emu, intent_id: str) -> dict:
    listed = Gateway(Settings(emulator_url=emu.url)).iter_events(types=["payment_intent.succeeded"])
    return next(e for e in listed if e["data"]["object"]["id"] == intent_id)


def test_a_delivery_queued_at_stop_is_recorded_after_a_restart_on_the_same_endpoint(tmp_path):
    """A payment that succeeded just before the shop stopped, its delivery not yet made: the
    next run adopts the same endpoint (id and secret), the catch-up records the payment once,
    and the emulator's own delivery, when its retry comes, is a duplicate answered 200."""
    db, data, port = tmp_path / "emulator.sqlite3", tmp_path / "shop", free_port()
    emu = start_emulator(port=port, options=options(db))
    try:
        with shop(emu, data_dir=data) as first:
            [endpoint] = endpoints(emu)
            secret = first.webhook_secret
            emu.app.deliverer.stop()  # what is queued from now on is not sent before the stop
            intent = first.pay()["id"]
        [endpoint] = endpoints(emu)
        assert endpoint["status"] == "disabled"
    finally:
        emu.stop()
    with ledger(data) as book:
        assert book.fulfilment_count(intent) == 0
    [record] = records(data)
    assert json.loads(record.read_text())["secret"] == secret

    emu = start_emulator(port=port, options=options(db))  # its queued delivery resumes
    try:
        event = succeeded_event(emu, intent)["id"]
        # Due at once, to an endpoint still disabled: failed without being sent, retried later.
        wait_for(lambda: emu.app.delivery_attempts(event), 10, "the attempt while disabled")
        assert [a["error"] for a in emu.app.delivery_attempts(event)] == [DISABLED]
        with shop(emu, data_dir=data) as second:
            assert [(e["id"], e["status"]) for e in endpoints(emu)] == [(endpoint["id"], "enabled")]
            assert endpoints(emu)[0]["url"] == second.webhook_url
            assert second.webhook_secret == secret
            second.wait_for_order(intent, "paid")
            wait_for(lambda: any("Caught up with 1 webhook event" in s for s in second.console))
            assert second.ledger.fulfilment_count(intent) == 1
            assert len(second.wait_for_receipts(1)) == 1
            # The retry comes: signed with the kept secret, and a duplicate.
            emu.app.clock.advance(RETRY + 1)
            statuses = [a["status"] for a in emu.app.delivery_attempts(event)]
            assert statuses == [None, 200]
            [recorded] = [e for e in second.ledger.events_for(intent) if e["id"] == event]
            assert recorded["deliveries"] == 2
            assert second.ledger.fulfilment_count(intent) == 1
            assert len(second.receipts()) == 1
    finally:
        emu.stop()


def test_events_made_while_the_shop_was_down_are_caught_up_at_start(tmp_path):
    """Stripe sends a disabled endpoint nothing, not even later: a payment and a refund made
    while the shop was stopped are handled by the catch-up when it starts again."""
    data = tmp_path / "shop"
    with start_emulator(options=options()) as emu:
        with shop(emu, data_dir=data) as first:
            intent = first.checkout()["paymentIntentId"]
        gateway = Gateway(Settings(data_dir=tmp_path / "cli", emulator_url=emu.url))
        gateway.confirm_intent(intent, payment_method="pm_card_visa")
        gateway.create_refund(intent, amount=500)
        assert succeeded_event(emu, intent)["pending_webhooks"] == 0  # sent to no endpoint
        with shop(emu, data_dir=data) as second:
            order = second.wait_for_order(intent, "partially_refunded")
            assert order["amount_refunded"] == 500
            assert second.ledger.fulfilment_count(intent) == 1
            assert len(second.wait_for_receipts(1)) == 1
            wait_for(lambda: any("Caught up with 2 webhook events" in s for s in second.console))
            assert len(endpoints(emu)) == 1


def test_a_restart_leaves_one_enabled_endpoint_and_nothing_to_catch_up_says_nothing(tmp_path):
    data = tmp_path / "shop"
    with start_emulator(options=options()) as emu:
        for _ in range(3):
            with shop(emu, data_dir=data) as running:
                [endpoint] = endpoints(emu)
                assert (endpoint["status"], endpoint["url"]) == ("enabled", running.webhook_url)
                link = running._running
                assert link.catch_up.done.wait(10)
                assert not [s for s in running.console if "Caught up" in s]
        assert [e["status"] for e in endpoints(emu)] == ["disabled"]
        assert len(records(data)) == 1


def test_a_kept_endpoint_deleted_meanwhile_gives_way_to_a_new_one(tmp_path):
    data = tmp_path / "shop"
    with start_emulator(options=options()) as emu:
        with shop(emu, data_dir=data):
            [old] = endpoints(emu)
        Gateway(Settings(emulator_url=emu.url)).delete_webhook(old["id"])
        with shop(emu, data_dir=data) as again:
            [new] = endpoints(emu)
            assert new["id"] != old["id"] and new["status"] == "enabled"
            assert [p.stem for p in records(data)] == [new["id"]]
            intent = again.pay()["id"]
            again.wait_for_order(intent, "paid")  # its secret is the new endpoint's


def test_an_ephemeral_emulator_that_forgot_the_endpoint_gives_way_to_a_new_one(tmp_path):
    data, port = tmp_path / "shop", free_port()
    with start_emulator(port=port, options=options()) as emu, shop(emu, data_dir=data):
        [old] = endpoints(emu)
    # In memory, on the same port: it knows no endpoint.
    with start_emulator(port=port, options=options()) as emu, shop(emu, data_dir=data) as again:
        [new] = endpoints(emu)
        assert new["id"] != old["id"]
        assert [p.stem for p in records(data)] == [new["id"]]
        intent = again.pay()["id"]
        again.wait_for_order(intent, "paid")


def test_one_run_on_an_ephemeral_emulator_keeps_the_record_of_the_stateful_ones(tmp_path):
    """Stopped on its stateful emulator, a payment completed meanwhile; one run against an
    --ephemeral emulator on the same port (which has not the endpoint) leaves the record; back
    on the stateful emulator the endpoint is adopted and the payment caught up with."""
    db, data, port = tmp_path / "emulator.sqlite3", tmp_path / "shop", free_port()
    with start_emulator(port=port, options=options(db)) as emu:
        with shop(emu, data_dir=data) as first:
            intent = first.checkout()["paymentIntentId"]
        [kept] = endpoints(emu)
        gateway = Gateway(Settings(emulator_url=emu.url))
        gateway.confirm_intent(intent, payment_method="pm_card_visa")
        state = http_json(emu.url + "/healthz")
    assert state["ephemeral"] is False
    with start_emulator(port=port, options=options()) as eph, shop(eph, data_dir=data):
        assert http_json(eph.url + "/healthz")["ephemeral"] is True
    assert kept["id"] in [p.stem for p in records(data)]
    with start_emulator(port=port, options=options(db)) as emu, shop(emu, data_dir=data) as back:
        assert http_json(emu.url + "/healthz")["state"] == state["state"]
        assert back._running.catch_up.done.wait(10)
        assert back.ledger.fulfilment_count(intent) == 1
        assert [(e["id"], e["status"]) for e in endpoints(emu)] == [(kept["id"], "enabled")]


def http_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())


def test_the_same_emulator_state_on_another_port_keeps_the_endpoint(tmp_path):
    """A shop's own emulator started on another --emulator-port, on the same state file: the
    endpoint is there, queued deliveries and all, and is adopted."""
    db, data = tmp_path / "emulator.sqlite3", tmp_path / "shop"
    with start_emulator(options=options(db)) as emu, shop(emu, data_dir=data):
        [old] = endpoints(emu)
    with start_emulator(options=options(db)) as emu, shop(emu, data_dir=data) as again:
        [new] = endpoints(emu)
        assert (new["id"], new["status"]) == (old["id"], "enabled")
        assert new["metadata"]["bookpay_emulator"] == emu.url
        intent = again.pay()["id"]
        again.wait_for_order(intent, "paid")


def test_the_kept_secret_is_the_owners_alone(tmp_path):
    data = tmp_path / "shop"
    with start_emulator(options=options()) as emu, shop(emu, data_dir=data) as running:
        [record] = records(data)
        assert stat.S_IMODE(record.stat().st_mode) == 0o600
        assert stat.S_IMODE(record.parent.stat().st_mode) == 0o700
        assert json.loads(record.read_text())["secret"] == running.webhook_secret


def test_two_shops_on_one_data_folder_each_adopt_their_own(tmp_path):
    """Each running process holds its record: the second to start registers another, and
    after a restart of both each adopts one of the two, with no third."""
    data = tmp_path / "shop"
    with start_emulator(options=options()) as emu:
        with shop(emu, data_dir=data) as one, shop(emu, data_dir=data) as two:
            assert one.webhook_secret != two.webhook_secret
            first = {e["id"] for e in endpoints(emu)}
            assert len(first) == 2
        assert {e["status"] for e in endpoints(emu)} == {"disabled"}
        with shop(emu, data_dir=data) as one, shop(emu, data_dir=data) as two:
            assert {e["id"] for e in endpoints(emu)} == first
            assert {e["status"] for e in endpoints(emu)} == {"enabled"}
            assert {e["url"] for e in endpoints(emu)} == {one.webhook_url, two.webhook_url}
            assert len(records(data)) == 2


def test_a_killed_shops_endpoint_disabled_by_another_folders_start_is_caught_up(tmp_path):
    """Shop A is killed (its endpoint left enabled, its record saying nothing of a disable);
    shop B, of another data folder, starts on A's URL and disables that endpoint; a payment of
    A's completes meanwhile. A's next start adopts the endpoint and catches up with it."""
    folder_a = tmp_path / "a"
    with start_emulator(options=options()) as emu:
        gateway = Gateway(Settings(data_dir=tmp_path / "cli", emulator_url=emu.url))
        with shop(emu, data_dir=folder_a) as a:
            intent = a.checkout()["paymentIntentId"]
            url = a.webhook_url
        # As a SIGKILL leaves it: enabled, and a record with no disabled_at.
        [endpoint] = endpoints(emu)
        gateway.update_webhook(endpoint["id"], disabled=False)
        [record] = records(folder_a)
        body = json.loads(record.read_text())
        record.write_text(json.dumps({**body, "disabled_at": None}))
        b = EmulatorLink(
            Settings(data_dir=tmp_path / "b", emulator_url=emu.url), gateway, url,
            on_secret=lambda _: None, say=lambda _: None,
        )  # fmt: skip
        b._clear_leftovers(keep=None)  # what B's start does first
        [endpoint] = endpoints(emu)
        assert endpoint["status"] == "disabled"
        gateway.confirm_intent(intent, payment_method="pm_card_visa")
        with shop(emu, data_dir=folder_a) as again:
            assert again._running.catch_up.done.wait(10)
            assert again.ledger.fulfilment_count(intent) == 1
            assert again._running.link.since == float(endpoint["metadata"]["bookpay_disabled_at"])
            [endpoint] = endpoints(emu)
            assert endpoint["status"] == "enabled"
            assert "bookpay_disabled_at" not in endpoint["metadata"]


def test_adopting_with_no_known_disable_time_catches_up_since_the_last_adoption(tmp_path):
    """Killed, and nobody disabled its endpoint: the catch-up still looks back, from when the
    record was last taken into use, never from nowhere."""
    data = tmp_path / "shop"
    with start_emulator(options=options()) as emu:
        with shop(emu, data_dir=data):
            [endpoint] = endpoints(emu)
        Gateway(Settings(emulator_url=emu.url)).update_webhook(
            endpoint["id"], disabled=False, metadata={"bookpay_disabled_at": ""}
        )
        [record] = records(data)
        body = json.loads(record.read_text())
        record.write_text(json.dumps({**body, "disabled_at": None}))
        with shop(emu, data_dir=data) as again:
            assert again._running.link.since == body["adopted_at"]


ODD_RECORDS = {
    "we_nested.json": lambda p: p.write_bytes(b"[" * 60000),  # RecursionError in json
    "we_fifo.json": os.mkfifo,  # a read would wait for a writer
    "we_dir.json": Path.mkdir,
    "we_link.json": lambda p: p.symlink_to(p.parent / "we_good.json"),
    "we_half.json": lambda p: p.write_bytes(b'{"id": "we_x", "secr'),
    "we_nan.json": lambda p: p.write_text(
        '{"id": "we_nan", "secret": "whsec_x", "emulator": "http://127.0.0.1:1", '
        '"shop": "shop_x", "disabled_at": NaN}'
    ),
    "we_big.json": lambda p: p.write_bytes(b" " * (kept_endpoint.MAX_SIZE + 1) + b"{}"),
}


def odd_records(data: Path) -> Path:
    where = kept_endpoint.folder(data)
    good = {"id": "we_good", "secret": "whsec_g", "emulator": "http://127.0.0.1:1", "shop": "s"}
    (where / "we_good.json").write_text(json.dumps(good))
    for name, make in ODD_RECORDS.items():
        make(where / name)
    return where


def test_records_that_are_not_records_are_skipped_with_a_warning_each(tmp_path):
    where, warned = odd_records(tmp_path), []
    found = []
    for kept in kept_endpoint.unheld(tmp_path, warned.append):
        found.append(kept.id)
        kept.release()
    assert found == ["we_good"]
    assert len(warned) == len(ODD_RECORDS)
    for name in ODD_RECORDS:
        [message] = [m for m in warned if name in m]
        assert "not a webhook endpoint record" in message
    # Corrupt files are removed; what is not a regular file is left alone.
    left = sorted(p.name for p in where.iterdir())
    assert left == ["we_dir.json", "we_fifo.json", "we_good.json", "we_link.json"]


def test_a_shop_starts_beside_records_that_are_not_records(tmp_path):
    data = tmp_path / "shop"
    odd_records(data)
    with start_emulator(options=options()) as emu, shop(emu, data_dir=data) as running:
        assert running.request("GET", "/healthz").status == 200
        warned = [line for line in running.console if "not a webhook endpoint record" in line]
        assert len(warned) == len(ODD_RECORDS)
        intent = running.pay()["id"]
        running.wait_for_order(intent, "paid")


# The catch-up on its own ---------------------------------------------------------------------


class FakeGateway:
    """Lists ``pages`` as undelivered, and ``since`` (else ``pages`` too) as made since."""

    def __init__(self, pages=(), error: Exception | None = None, gate=None, since=None) -> None:
        self.pages = list(pages)
        self.since = self.pages if since is None else list(since)
        self.error = error
        self.gate = gate
        self.asked: list[dict] = []

    def iter_events(self, **params):
        self.asked.append(params)
        if self.gate is not None:
            self.gate.wait(10)
        if self.error is not None:
            raise self.error
        yield from self.pages if "delivery_success" in params else self.since


class FakeReceiver:
    def __init__(self, processed=()) -> None:
        self.done = set(processed)
        self.handled: list[str] = []

    def processed(self, event_id):
        return event_id in self.done

    def catch_up(self, event):
        if event["id"] in self.done:
            return None
        self.handled.append(event["id"])
        return {"id": event["id"]}


def test_the_catch_up_asks_for_undelivered_events_of_the_handled_types_oldest_first():
    from bookpay.webhooks import HANDLED

    events = [{"id": f"evt_{n}", "created": 1000 + n} for n in (3, 2, 1)]  # newest first
    gateway, receiver, said = FakeGateway(events), FakeReceiver({"evt_2"}), []
    CatchUp(gateway, receiver, since=900.0, say=said.append, clock=lambda: 10**6).run()
    assert receiver.handled == ["evt_1", "evt_3"]
    assert said == ["Caught up with 2 webhook events not delivered to this shop yet."]
    floor = 10**6 - catchup.WITHIN
    assert gateway.asked == [  # Stripe never sends what was made since: that list first
        {"types": sorted(HANDLED), "created": {"gte": floor}, "page_size": 100},
        {
            "types": sorted(HANDLED),
            "delivery_success": False,
            "created": {"gte": floor},
            "page_size": 100,
        },
    ]


BOUND_WARNING = (
    "the catch-up with undelivered webhook events stopped at its bound (300 events to handle, "
    "1000 looked at in each list): older ones come only with their deliveries"
)


def test_the_catch_up_is_bounded_and_says_so(caplog):
    events = [{"id": f"evt_{n}", "created": n} for n in range(catchup.LIMIT + 50, 0, -1)]
    receiver = FakeReceiver()
    with caplog.at_level(logging.WARNING, logger="bookpay.catchup"):
        CatchUp(FakeGateway(events), receiver, say=lambda _: None).run()
    assert receiver.handled == [f"evt_{n}" for n in range(51, catchup.LIMIT + 51)]  # newest
    assert [r.getMessage() for r in caplog.records] == [BOUND_WARNING]


def crowd(count: int, created: int = 5000) -> list[dict]:
    """Events the ledger has processed already (another shop's, say), newest first."""
    return [{"id": f"evt_crowd_{n}", "created": created - n} for n in range(count)]


def test_events_made_while_disabled_are_not_crowded_out_by_the_undelivered_list(caplog):
    """Other shops' undelivered events, processed here at an earlier start, fill Stripe's
    undelivered list: the one payment made while this shop was stopped is still caught up."""
    others = crowd(catchup.LIMIT + 50)
    new = {"id": "evt_new", "created": 4000}
    gateway = FakeGateway(others, since=[new])
    receiver = FakeReceiver({e["id"] for e in others})
    with caplog.at_level(logging.WARNING, logger="bookpay.catchup"):
        CatchUp(gateway, receiver, since=3900.0, say=lambda _: None, clock=lambda: 10**4).run()
    assert receiver.handled == ["evt_new"]
    assert caplog.records == []


def test_events_processed_already_do_not_count_toward_the_bound(caplog):
    others = crowd(catchup.LIMIT + 50)
    oldest = {"id": "evt_old", "created": 10}
    receiver = FakeReceiver({e["id"] for e in others})
    with caplog.at_level(logging.WARNING, logger="bookpay.catchup"):
        CatchUp(FakeGateway([*others, oldest]), receiver, say=lambda _: None).run()
    assert receiver.handled == ["evt_old"]
    assert caplog.records == []


def test_the_events_looked_at_are_bounded_and_that_is_said(caplog):
    others = crowd(catchup.LOOK)
    receiver = FakeReceiver({e["id"] for e in others})
    gateway = FakeGateway([*others, {"id": "evt_beyond", "created": 1}])
    with caplog.at_level(logging.WARNING, logger="bookpay.catchup"):
        CatchUp(gateway, receiver, say=lambda _: None).run()
    assert receiver.handled == []
    assert [r.getMessage() for r in caplog.records] == [BOUND_WARNING]


def test_a_catch_up_that_fails_warns_and_says_nothing_else(caplog):
    said: list[str] = []
    gateway = FakeGateway(error=StripeUnavailable("The Stripe emulator is not answering."))
    with caplog.at_level(logging.WARNING, logger="bookpay.catchup"):
        CatchUp(gateway, FakeReceiver(), say=said.append).run()  # does not raise
    assert said == []
    assert [r.getMessage() for r in caplog.records] == [
        "the catch-up with undelivered webhook events stopped: "
        "The Stripe emulator is not answering."
    ]


def test_the_catch_up_runs_in_a_thread_of_its_own():
    gate = threading.Event()
    catch_up = CatchUp(FakeGateway(gate=gate), FakeReceiver(), say=lambda _: None)
    started = time.monotonic()
    catch_up.start()
    assert time.monotonic() - started < 1  # start-up does not wait for Stripe's answer
    assert not catch_up.done.is_set()
    gate.set()
    assert catch_up.done.wait(5)
    assert catch_up.stop()


@pytest.fixture(autouse=True)
def _quiet_emulator_logs(caplog):
    caplog.set_level(logging.ERROR, logger="bookpay.emulator")
