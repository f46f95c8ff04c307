"""Several `bookpay serve` processes: one PostgreSQL ledger, and shops sharing one emulator.

These start real processes (tests/processes.py), as an operator would behind a load balancer.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import pytest
from processes import Emulator, Shop, free_port, http, stop_all, succeeded_event, wait_for

from bookpay.catalog import Catalog
from bookpay.config import Settings
from bookpay.ledger import open_ledger
from bookpay.payments import Gateway
from bookpay.webhooks import sign

SECRET = "whsec_several_processes"
BOOK = Catalog.default().get("1")


@pytest.fixture(autouse=True)
def _stop_everything():
    yield
    stop_all()


def deliver(shop_url: str, payload: bytes) -> int:
    status, _ = http(
        "POST",
        f"{shop_url}/webhook",
        payload,
        {"Content-Type": "application/json", "Stripe-Signature": sign(payload, SECRET)},
    )
    return status


def test_three_processes_on_one_postgresql_fulfil_each_paid_order_once(tmp_path, postgres_url):
    emulator = Emulator(tmp_path / "emulator")
    shops = [
        Shop(
            tmp_path / f"shop{n}",
            BOOKPAY_EMULATOR_URL=emulator.url,
            BOOKPAY_DATABASE_URL=postgres_url,
            STRIPE_WEBHOOK_SECRET=SECRET,
        )
        for n in range(3)
    ]
    settings = Settings(
        data_dir=tmp_path / "client", emulator_url=emulator.url, database_url=postgres_url
    )
    assert all(shop.saw(f"Shop id: {settings.shop_id};") for shop in shops)  # one shop, 3 procs
    gateway = Gateway(settings)
    paid, declined = [], []
    for n in range(10):
        intent = gateway.create_intent(BOOK, attempt_id=str(uuid.uuid4()))
        card = "pm_card_visa" if n < 8 else "pm_card_visa_chargeDeclined"
        try:
            gateway.confirm_intent(intent["id"], payment_method=card)
            paid.append(gateway.retrieve_intent(intent["id"]))
        except Exception:  # the declined ones
            declined.append(intent["id"])
    assert (len(paid), len(declined)) == (8, 2)

    # The storm: every paid intent's event to every process, twice under the same id and once
    # under a new id each, and its success page on every process, all at once and shuffled.
    jobs = []
    for intent in paid:
        same = succeeded_event(intent, f"evt_same_{intent['id']}")
        for shop in shops:
            jobs += [("webhook", shop.url, same)] * 2
            jobs.append(("webhook", shop.url, succeeded_event(intent, f"evt_{uuid.uuid4().hex}")))
            query = urlencode(
                {
                    "payment_intent": intent["id"],
                    "payment_intent_client_secret": intent["client_secret"],
                }
            )
            jobs.append(("success", f"{shop.url}/success?{query}", None))
    random.Random(12).shuffle(jobs)

    def run(job):
        kind, url, payload = job
        if kind == "webhook":
            return kind, deliver(url, payload), ""
        status, page = http("GET", url)
        return kind, status, page

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(run, jobs))
    assert {status for _, status, _ in answers} == {200}
    assert all("Thank you for your order" in page for kind, _, page in answers if kind == "success")

    with open_ledger(settings) as ledger:
        wait_for(
            lambda: ledger.fulfilment_count() == 8 and ledger.next_receipt_due() is None,
            what="every receipt sent",
        )
        time.sleep(1.0)  # the emulator's own deliveries may still be arriving: let them
        assert ledger.fulfilment_count() == 8
        assert {ledger.fulfilment_count(i["id"]) for i in paid} == {1}
        assert all(ledger.fulfilment_count(pi) == 0 for pi in declined)
        receipts = ledger.receipts()
        assert sorted(r["payment_intent"] for r in receipts) == sorted(i["id"] for i in paid)
        assert {r["status"] for r in receipts} == {"sent"}
        from bookpay.ledger.check import check_ledger

        assert check_ledger(ledger).ok
    written = [p.name for shop in shops for p in (shop.data_dir / "outbox").glob("*.eml")]
    assert sorted(written) == sorted(f"{i['id']}.eml" for i in paid)  # one file per order

    for shop in shops:
        shop.terminate()
    for shop in shops:
        assert shop.wait(30) == 0
    # Each process disabled its own endpoint, kept for its next run.
    assert [e["status"] for e in emulator.endpoints()] == ["disabled"] * 3


# Shops sharing one emulator -----------------------------------------------------------------------


def create_checkout(shop: Shop) -> dict:
    body = json.dumps({"item": "1", "attemptId": str(uuid.uuid4())}).encode()
    status, text = http(
        "POST", f"{shop.url}/create-payment-intent", body, {"Content-Type": "application/json"}
    )
    assert status == 200, text
    return json.loads(text)


def ledger_of(shop: Shop):
    return open_ledger(Settings(data_dir=shop.data_dir))


def test_two_shops_on_one_emulator_each_fulfil_only_their_own(tmp_path):
    emulator = Emulator(tmp_path / "emulator")
    one = Shop(tmp_path / "one", BOOKPAY_EMULATOR_URL=emulator.url)
    two = Shop(tmp_path / "two", BOOKPAY_EMULATOR_URL=emulator.url)
    assert len(emulator.endpoints()) == 2
    gateway = Gateway(Settings(data_dir=tmp_path / "client", emulator_url=emulator.url))
    mine = create_checkout(one)["paymentIntentId"]
    theirs = create_checkout(two)["paymentIntentId"]
    for pi in (mine, theirs):
        gateway.confirm_intent(pi, payment_method="pm_card_visa")

    for shop, own, other in ((one, mine, theirs), (two, theirs, mine)):
        with ledger_of(shop) as ledger:
            wait_for(lambda ledger=ledger, own=own: ledger.fulfilment_count(own) == 1)

            def succeeded(ledger=ledger, other=other):
                return [
                    e
                    for e in ledger.events_for(other)
                    if e["type"] == "payment_intent.succeeded" and e["processed_at"]
                ]

            [event] = wait_for(succeeded)
            assert event["outcome"].startswith("ignored: not ours: created by shop shop_")
            assert event["handled"] is False
            assert ledger.find_order(other) is None
            assert ledger.fulfilment_count() == 1
            wait_for(lambda ledger=ledger: ledger.next_receipt_due() is None)
        assert [p.name for p in (shop.data_dir / "outbox").iterdir()] == [f"{own}.eml"]


def test_a_shop_keeps_its_endpoint_across_restarts_and_never_enables_a_second(tmp_path):
    """Stopped, a shop disables its endpoint; started again (killed, even), it adopts the same
    one at its new URL. Two processes on one data folder each adopt one of theirs."""
    emulator = Emulator(tmp_path / "emulator")
    other = Shop(tmp_path / "other", BOOKPAY_EMULATOR_URL=emulator.url)
    shop = Shop(tmp_path / "shop", BOOKPAY_EMULATOR_URL=emulator.url)
    shop_id = Settings(data_dir=tmp_path / "shop").shop_id

    def endpoints_of(shop_id):
        found = [e for e in emulator.endpoints() if e["metadata"].get("bookpay_shop") == shop_id]
        return [(e["id"], e["status"], e["url"]) for e in found]

    [(kept, _, url)] = endpoints_of(shop_id)
    assert url == f"{shop.url}/webhook"
    shop.terminate()
    assert shop.wait(30) == 0
    assert endpoints_of(shop_id) == [(kept, "disabled", url)]  # kept for the next run

    crashed = Shop(tmp_path / "shop", BOOKPAY_EMULATOR_URL=emulator.url)
    assert endpoints_of(shop_id) == [(kept, "enabled", f"{crashed.url}/webhook")]
    crashed.kill()  # no chance to clean up: its endpoint stays enabled
    restarted = Shop(tmp_path / "shop", BOOKPAY_EMULATOR_URL=emulator.url)
    assert endpoints_of(shop_id) == [(kept, "enabled", f"{restarted.url}/webhook")]
    second = Shop(tmp_path / "shop", BOOKPAY_EMULATOR_URL=emulator.url)  # same data folder
    [added] = [e for e in endpoints_of(shop_id) if e[0] != kept]
    assert added[1:] == ("enabled", f"{second.url}/webhook")
    for process in (restarted, second):
        process.terminate()
    for process in (restarted, second):
        assert process.wait(30) == 0
    again = [Shop(tmp_path / "shop", BOOKPAY_EMULATOR_URL=emulator.url) for _ in range(2)]
    found = endpoints_of(shop_id)
    assert {(id_, status) for id_, status, _ in found} == {(kept, "enabled"), (added[0], "enabled")}
    assert {url for _, _, url in found} == {f"{process.url}/webhook" for process in again}
    assert len(emulator.endpoints()) == 3  # the other shop's is untouched
    assert other.alive


def test_the_shop_that_started_the_emulator_keeps_it_for_the_others(tmp_path):
    port = free_port()
    owner = Shop(tmp_path / "owner", "--emulator-port", str(port))
    assert owner.saw(r"Stripe emulator at http://127\.0\.0\.1:\d+ \(started here\)")
    url = f"http://127.0.0.1:{port}"
    guest = Shop(tmp_path / "guest", BOOKPAY_EMULATOR_URL=url)
    assert guest.saw(r"\(already running\)")

    owner.terminate()
    owner.wait_for_line(r"keeps running for 1 other shop")
    time.sleep(2)
    assert owner.alive
    create_checkout(guest)  # the guest still takes payments

    guest.terminate()
    assert guest.wait(30) == 0
    assert owner.wait(30) == 0  # the last other shop went: the owner stops the emulator
    assert owner.saw("No other shop is registered with the emulator: stopping it.")


def test_a_shop_whose_emulator_goes_away_says_so_and_recovers(tmp_path):
    port = free_port()
    first = Emulator(tmp_path / "emulator", port)
    shop = Shop(tmp_path / "shop", BOOKPAY_EMULATOR_URL=first.url)
    first.terminate()
    first.wait(30)
    shop.wait_for_line(rf"the Stripe emulator at {first.url} is not answering")
    status, _ = http("POST", f"{shop.url}/create-payment-intent", b"{}")
    assert status >= 400  # no payments meanwhile, but the shop is up

    second = Emulator(tmp_path / "emulator", port)  # ephemeral: it knows no endpoint
    shop.wait_for_line(rf"The Stripe emulator at {second.url} is answering again")
    shop.wait_for_line(r"Registered this shop's webhook endpoint with it again")
    assert len(second.endpoints()) == 1
    pi = create_checkout(shop)["paymentIntentId"]
    Gateway(Settings(data_dir=tmp_path / "c", emulator_url=second.url)).confirm_intent(
        pi, payment_method="pm_card_visa"
    )
    with ledger_of(shop) as ledger:
        wait_for(lambda: ledger.fulfilment_count(pi) == 1, what="the webhook after recovery")
