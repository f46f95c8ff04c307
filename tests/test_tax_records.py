"""Stripe Tax after payment, end to end with the emulator: the order's tax transaction recorded
once however many webhooks arrive, a reversal per refund (partial, then the rest), and nothing
lost while Stripe cannot be reached: what is owed stays in the ledger, is retried, and
`bookpay orders show` says so.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from stripe_fakes import event
from test_cart_server import Shopper
from test_quote_server import SF, buy_now, quote
from test_server import PUBLIC_URL, confirm, emulator_api
from typer.testing import CliRunner

from bookpay import taxrecords
from bookpay.catalog import Book, Catalog, ShippingRate
from bookpay.cli import app as cli
from bookpay.config import Settings
from bookpay.errors import StripeUnavailable
from bookpay.fulfilment import Fulfiller
from bookpay.ledger import open_ledger
from bookpay.ledger.check import check_ledger
from bookpay.payments import Gateway
from bookpay.server import create_app
from bookpay.webhooks import WebhookReceiver, sign

SECRET = "whsec_test_tax"


class CountingGateway(Gateway):
    """The real gateway, counting the tax calls, and failing them while ``down``."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.calls: list[tuple[str, str]] = []
        self.down = False
        self._calls_lock = threading.Lock()

    def _count(self, what: str, key: str) -> None:
        with self._calls_lock:
            self.calls.append((what, key))
        if self.down:
            raise StripeUnavailable("Could not reach the emulator.")

    def create_tax_transaction(self, calculation_id, *, order_id):
        self._count("transaction", calculation_id)
        return super().create_tax_transaction(calculation_id, order_id=order_id)

    def create_tax_reversal(self, transaction_id, *, refund_id, amount=None):
        self._count("reversal", refund_id)
        return super().create_tax_reversal(transaction_id, refund_id=refund_id, amount=amount)


class Shop:
    def __init__(self, settings: Settings, catalog: Catalog | None = None) -> None:
        self.settings = settings
        self.ledger = open_ledger(settings)
        self.gateway = CountingGateway(settings)
        catalog = catalog or Catalog.default()
        self.fulfiller = Fulfiller(self.ledger, self.gateway, catalog, settings)
        self.receiver = WebhookReceiver(settings, self.ledger, self.fulfiller)
        self.app = create_app(
            settings,
            gateway=self.gateway,
            ledger=self.ledger,
            fulfiller=self.fulfiller,
            receiver=self.receiver,
            public_url=PUBLIC_URL,
            catalog=catalog,
        )
        self.shopper = Shopper(self.app)

    def paid_order(self, item: str = "1") -> tuple[str, str]:
        """A checkout quoted for San Francisco and paid: (PaymentIntent id, order id)."""
        attempt, created = buy_now(self.shopper, item)
        assert quote(self.shopper, attempt, name="Ada Lovelace").status == 200
        paid = confirm(self.settings, created["paymentIntentId"], "pm_card_visa")
        assert paid["status"] == "succeeded"
        return paid["id"], created["orderId"]

    def deliver(self, kind: str, obj: dict, event_id: str | None = None) -> dict:
        payload = json.dumps(event(kind, obj, event_id)).encode()
        return self.receiver.handle(payload, sign(payload, SECRET))

    def records(self, order_id: str) -> list[dict]:
        return self.ledger.tax_records_for(order_id)

    def close(self) -> None:
        self.app.close()
        self.fulfiller.close()
        self.ledger.close()


@contextmanager
def open_shop(tmp_path, emulator, database_url, catalog: Catalog | None = None) -> Iterator[Shop]:
    """A shop on the session's emulator, with a data folder (and ledger) of the test's own, and
    the default catalog unless given another."""
    made = Shop(
        Settings(
            data_dir=tmp_path / "data",
            emulator_url=emulator.url,
            webhook_secrets=(SECRET,),
            database_url=database_url,
        ),
        catalog,
    )
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def shop(tmp_path, emulator, database_url):
    with open_shop(tmp_path, emulator, database_url) as made:
        yield made


def api(shop: Shop, method: str, path: str, params: dict | None = None) -> dict:
    return emulator_api(shop.settings, method, path, params)


def test_one_tax_transaction_per_order_under_duplicate_and_racing_webhooks(shop):
    intent_id, order_id = shop.paid_order()
    calculation = shop.ledger.quote_for(intent_id)["tax_calculation"]
    obj = {"id": intent_id, "object": "payment_intent"}
    # The same event delivered again and again, and Stripe's distinct events, all at once.
    deliveries = [None, None, None, "evt_again_1", "evt_again_2", "evt_again_3"]
    threads = [
        threading.Thread(target=shop.deliver, args=("payment_intent.succeeded", obj, e))
        for e in deliveries
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert shop.fulfiller.taxes.drain(10)
    records = shop.records(order_id)
    assert [(r["kind"], r["status"], r["calculation"]) for r in records] == [
        ("transaction", "recorded", calculation)
    ]
    assert shop.gateway.calls == [("transaction", calculation)]  # the ledger let one through
    transaction = api(shop, "GET", f"/v1/tax/transactions/{records[0]['stripe_id']}")
    assert (transaction["type"], transaction["reference"]) == ("transaction", order_id)
    assert shop.ledger.fulfilment_count(intent_id) == 1
    # Later deliveries (Stripe retrying for days) change nothing.
    shop.deliver("payment_intent.succeeded", obj, "evt_much_later")
    assert shop.fulfiller.taxes.drain(10)
    assert len(shop.gateway.calls) == 1 and len(shop.records(order_id)) == 1


def test_a_partial_refund_then_the_rest_each_record_one_reversal(shop):
    intent_id, order_id = shop.paid_order("1")  # $23.00 + $5.00 + $1.67 tax = $29.67
    shop.deliver("payment_intent.succeeded", {"id": intent_id, "object": "payment_intent"})
    assert shop.fulfiller.taxes.drain(10)
    transaction_id = shop.records(order_id)[0]["stripe_id"]

    first = api(shop, "POST", "/v1/refunds", {"payment_intent": intent_id, "amount": "1000"})
    charge = {"id": first["charge"], "object": "charge"}
    for event_id in ("evt_refund_1", "evt_refund_1", "evt_refund_1_again"):  # duplicates
        shop.deliver("charge.refunded", charge, event_id)
    assert shop.fulfiller.taxes.drain(10)
    reversals = [r for r in shop.records(order_id) if r["kind"] == "reversal"]
    assert [(r["refund"], r["amount"], r["status"]) for r in reversals] == [
        (first["id"], 1000, "recorded")
    ]
    reversal = api(shop, "GET", f"/v1/tax/transactions/{reversals[0]['stripe_id']}")
    assert reversal["type"] == "reversal"
    assert reversal["reversal"]["original_transaction"] == transaction_id
    assert reversal["reference"] == first["id"]
    assert _total(shop, reversal) == -1000  # a flat amount, tax included

    rest = api(shop, "POST", "/v1/refunds", {"payment_intent": intent_id})
    shop.deliver("charge.refunded", charge, "evt_refund_2")
    assert shop.fulfiller.taxes.drain(10)
    reversals = [r for r in shop.records(order_id) if r["kind"] == "reversal"]
    assert [(r["refund"], r["status"]) for r in reversals] == [
        (first["id"], "recorded"),
        (rest["id"], "recorded"),
    ]
    second = api(shop, "GET", f"/v1/tax/transactions/{reversals[1]['stripe_id']}")
    assert _total(shop, second) == -(2967 - 1000)
    assert [what for what, _ in shop.gateway.calls] == ["transaction", "reversal", "reversal"]


def test_a_full_refund_is_a_full_reversal(shop):
    intent_id, order_id = shop.paid_order("2")
    shop.deliver("payment_intent.succeeded", {"id": intent_id, "object": "payment_intent"})
    refund = api(shop, "POST", "/v1/refunds", {"payment_intent": intent_id})
    shop.deliver("charge.refunded", {"id": refund["charge"], "object": "charge"})
    assert shop.fulfiller.taxes.drain(10)
    reversal = shop.records(order_id)[1]
    assert (reversal["refund"], reversal["amount"], reversal["status"]) == (
        refund["id"],
        None,
        "recorded",
    )
    shown = api(shop, "GET", f"/v1/tax/transactions/{reversal['stripe_id']}")
    assert _total(shop, shown) == -(2500 + 500 + 181)


def stripe_tax_left(shop: Shop, records: list[dict]) -> dict[str, tuple[int, int]]:
    """What Stripe Tax holds of an order (its records, transaction and reversals): each line
    (by the transaction's line item id) and the shipping with (amount, tax) not reversed."""
    left: dict[str, list[int]] = {}
    for record in records:
        one = api(shop, "GET", f"/v1/tax/transactions/{record['stripe_id']}")
        items = api(shop, "GET", f"/v1/tax/transactions/{one['id']}/line_items")["data"]
        cost = one.get("shipping_cost") or {"amount": 0, "amount_tax": 0}
        for item in [*items, {**cost, "id": "shipping"}]:
            source = (item.get("reversal") or {}).get("original_line_item") or item["id"]
            part = left.setdefault(source, [0, 0])
            part[0] += item["amount"]
            part[1] += item["amount_tax"]
    return {source: (a, t) for source, (a, t) in left.items() if (a, t) != (0, 0)}


def one_book(currency: str, book: int, shipping: int) -> Catalog:
    return Catalog(
        [Book(id="b1", title="Priced", author="A", amount=book, currency=currency, description="")],
        [ShippingRate("post", "Post", shipping, currency, ("*",), 2, 5)],
    )


@pytest.mark.parametrize(
    ("catalog", "charged", "first", "taken"),
    [
        # California's 7.25% of 5.120 KWD is 0.3712: 0.370 charged, 0.371 in Stripe Tax.
        (one_book("kwd", 5120, 1250), 6740, 1000, 6741),
        # 7.25% of 5,120.00 ISK is 371.20: 371.00 charged, 371.20 in Stripe Tax.
        (one_book("isk", 512000, 125000), 674100, 100000, 674120),
        # Two decimals: nothing rounded, each reversal is exactly its refund.
        (None, 2967, 1000, 2967),
    ],
    ids=["kwd", "isk", "usd"],
)
def test_refunded_in_full_in_two_refunds_leaves_nothing_in_stripe_tax(
    tmp_path, emulator, database_url, catalog, charged, first, taken
):
    """The tax a three-decimal (or whole-unit) currency's order is charged is rounded down,
    Stripe Tax's transaction is not: the refund that completes a full refund reverses what is
    left of the transaction (its total less the earlier reversals), not its own amount, so the
    order nets to zero in Stripe Tax as it does in money."""
    with open_shop(tmp_path, emulator, database_url, catalog) as shop:
        item = "1" if catalog is None else "b1"
        intent_id, order_id = shop.paid_order(item)
        assert shop.ledger.quote_for(intent_id)["total"] == charged
        shop.deliver("payment_intent.succeeded", {"id": intent_id, "object": "payment_intent"})
        assert shop.fulfiller.taxes.drain(10)
        transaction = api(
            shop, "GET", f"/v1/tax/transactions/{shop.records(order_id)[0]['stripe_id']}"
        )
        assert _total(shop, transaction) == taken

        refund = api(shop, "POST", "/v1/refunds", {"payment_intent": intent_id, "amount": first})
        charge = {"id": refund["charge"], "object": "charge"}
        shop.deliver("charge.refunded", charge, "evt_first")
        api(shop, "POST", "/v1/refunds", {"payment_intent": intent_id})
        shop.deliver("charge.refunded", charge, "evt_rest")
        assert shop.fulfiller.taxes.drain(10)
        assert shop.ledger.get_order(intent_id)["status"] == "refunded"
        records = shop.records(order_id)
        assert [(r["kind"], r["status"]) for r in records] == [
            ("transaction", "recorded"),
            ("reversal", "recorded"),
            ("reversal", "recorded"),
        ]
        shown = [api(shop, "GET", f"/v1/tax/transactions/{r['stripe_id']}") for r in records]
        totals = [_total(shop, one) for one in shown]
        assert totals == [taken, -first, -(taken - first)]
        assert stripe_tax_left(shop, records) == {}  # every line and the shipping, and tax
        # The ledger keeps what each reversal took back of the money refunded.
        assert [r["reversed"] for r in records[1:]] == [first, charged - first]


def test_stripe_unreachable_keeps_what_is_owed_and_it_is_sent_later(shop, monkeypatch):
    monkeypatch.setattr(taxrecords, "RETRY_DELAYS", (0.2,))
    shop.gateway.down = True
    intent_id, order_id = shop.paid_order("3")
    outcome = shop.deliver(
        "payment_intent.succeeded", {"id": intent_id, "object": "payment_intent"}
    )
    assert outcome["handled"] is True  # the order is fulfilled: Stripe Tax is told later
    shop.fulfiller.taxes.wake()
    record = _wait_for(lambda: (r := shop.records(order_id)[0])["attempts"] >= 1 and r)
    assert record["status"] == "pending"
    assert record["last_error"] == "stripe_unavailable: Could not reach the emulator."

    env = {"BOOKPAY_DATA_DIR": str(shop.settings.data_dir), "BOOKPAY_EMULATOR_URL": "x"}
    if shop.settings.database_url:
        env["BOOKPAY_DATABASE_URL"] = shop.settings.database_url
    shown = CliRunner().invoke(cli, ["orders", "show", order_id], env=env)
    assert shown.exit_code == 0, shown.output
    assert "Stripe Tax:     owed, not recorded yet" in shown.stdout
    assert "Could not reach the emulator." in shown.stdout

    shop.gateway.down = False
    record = _wait_for(lambda: (r := shop.records(order_id)[0])["status"] == "recorded" and r)
    assert record["stripe_id"].startswith("tax_") and record["last_error"] is None
    as_json = CliRunner().invoke(cli, ["orders", "show", order_id, "--json"], env=env)
    taxes = json.loads(as_json.stdout)["tax_records"]
    assert [(t["kind"], t["status"], t["stripe_id"]) for t in taxes] == [
        ("transaction", "recorded", record["stripe_id"])
    ]


def test_an_order_without_tax_owes_nothing(tmp_path, emulator):
    settings = Settings(
        data_dir=tmp_path / "data",
        emulator_url=emulator.url,
        webhook_secrets=(SECRET,),
        tax="off",
    )
    shop = Shop(settings)
    try:
        intent_id, order_id = shop.paid_order("1")
        assert shop.ledger.quote_for(intent_id)["total"] == 2800  # shipping, no tax
        shop.deliver("payment_intent.succeeded", {"id": intent_id, "object": "payment_intent"})
        refund = api(shop, "POST", "/v1/refunds", {"payment_intent": intent_id})
        shop.deliver("charge.refunded", {"id": refund["charge"], "object": "charge"})
        assert shop.records(order_id) == [] and shop.gateway.calls == []
    finally:
        shop.close()


def _total(shop: Shop, transaction: dict) -> int:
    items = api(shop, "GET", f"/v1/tax/transactions/{transaction['id']}/line_items")
    cost = transaction.get("shipping_cost") or {"amount": 0, "amount_tax": 0}
    lines = sum(item["amount"] + item["amount_tax"] for item in items["data"])
    return lines + cost["amount"] + cost["amount_tax"]


def _wait_for(check, timeout: float = 10.0):
    from processes import wait_for

    return wait_for(check, timeout=timeout, what="the tax record")


def test_the_quote_the_intent_and_the_ledger_agree_everywhere(shop):
    from test_server import success_url

    intent_id, order_id = shop.paid_order("1")  # San Francisco, standard shipping
    shop.deliver("payment_intent.succeeded", {"id": intent_id, "object": "payment_intent"})
    assert shop.fulfiller.drain(10) and shop.fulfiller.taxes.drain(10)
    quote = shop.ledger.quote_for(intent_id)
    calculation = quote["tax_calculation"]
    intent = api(shop, "GET", f"/v1/payment_intents/{intent_id}")
    assert intent["amount_received"] == quote["total"] == 2967
    assert intent["metadata"]["tax_calculation"] == calculation

    # The success page.
    page = shop.shopper.get(success_url(intent_id, intent["client_secret"])).shown
    for found in (
        '<dd id="receipt-subtotal">$23.00</dd>',
        "<dt>Shipping (Standard shipping)</dt>",
        '<dd id="receipt-shipping-amount">$5.00</dd>',
        '<dd id="receipt-tax">$1.67</dd>',
        '<dd id="receipt-amount">$29.67</dd>',
    ):
        assert found in page
    # The receipt.
    receipt = (shop.settings.data_dir / "outbox" / f"{intent_id}.eml").read_text()
    for found in (
        "Subtotal:       $23.00",
        "Shipping:       $5.00 (Standard shipping)",
        "Tax:            $1.67",
        "Total paid:     $29.67",
    ):
        assert found in receipt

    env = {
        "BOOKPAY_DATA_DIR": str(shop.settings.data_dir),
        "BOOKPAY_EMULATOR_URL": shop.settings.emulator_url,
    }
    if shop.settings.database_url:
        env["BOOKPAY_DATABASE_URL"] = shop.settings.database_url
    runner = CliRunner()
    # orders show and intent show.
    for args in (["orders", "show", order_id], ["intent", "show", intent_id]):
        shown = runner.invoke(cli, args, env=env)
        assert shown.exit_code == 0, shown.output
        for found in (
            "Subtotal:",
            "$23.00",
            "$5.00 (Standard shipping)",
            f"$1.67 ({calculation})",
            "$29.67",
        ):
            assert found in shown.stdout, (args, found)
    intent_json = json.loads(
        runner.invoke(cli, ["intent", "show", intent_id, "--json"], env=env).stdout
    )
    assert intent_json["order"]["quote"] == {
        "subtotal": 2300,
        "shipping": 500,
        "shipping_rate": "standard",
        "tax": 167,
        "tax_calculation": calculation,
        "total": 2967,
        "currency": "usd",
        "address": SF,  # the address it was quoted for
    }
    # orders export, CSV and JSON.
    exported = runner.invoke(cli, ["orders", "export", "--format", "csv"], env=env).stdout
    rows = list(csv.DictReader(io.StringIO(exported)))
    mine = next(row for row in rows if row["id"] == order_id)
    assert {
        k: mine[k] for k in ("subtotal", "shipping_amount", "shipping_rate", "tax", "total")
    } == {
        "subtotal": "2300",
        "shipping_amount": "500",
        "shipping_rate": "standard",
        "tax": "167",
        "total": "2967",
    }
    assert mine["tax_calculation"] == calculation and mine["amount"] == "2967"
    records = json.loads(
        runner.invoke(cli, ["orders", "export", "--format", "json"], env=env).stdout
    )
    mine = next(record for record in records if record["id"] == order_id)
    assert (mine["shipping_amount"], mine["tax"], mine["total"]) == (500, 167, 2967)
    # report sales: the tax collected and the shipping revenue.
    sales = json.loads(runner.invoke(cli, ["report", "sales", "--json"], env=env).stdout)
    total = sales["currencies"][0]["total"]
    assert (total["gross"], total["shipping"], total["tax"]) == (2967, 500, 167)


# A shipping address other than the San Francisco one a test's quote is priced for: confirmed
# with it, a payment ships elsewhere than its shipping and tax were worked out for.
ELSEWHERE = {
    "shipping[name]": "Ada Lovelace",
    "shipping[address][line1]": "1 Congress Ave",
    "shipping[address][city]": "Austin",
    "shipping[address][state]": "TX",
    "shipping[address][postal_code]": "78701",
    "shipping[address][country]": "US",
}


def test_a_payment_shipped_elsewhere_than_its_quote_is_not_fulfilled(shop):
    attempt, created = buy_now(shop.shopper, "1")
    assert quote(shop.shopper, attempt, name="Ada Lovelace").status == 200  # San Francisco
    # Confirmed with another address than the one its shipping and tax were priced for.
    paid = confirm(shop.settings, created["paymentIntentId"], "pm_card_visa", **ELSEWHERE)
    assert paid["status"] == "succeeded" and paid["amount"] == 2967
    outcome = shop.deliver(
        "payment_intent.succeeded", {"id": paid["id"], "object": "payment_intent"}
    )
    assert outcome["handled"] is False
    assert outcome["outcome"] == (
        "rejected: it ships to another place than the one its shipping and tax were priced for "
        "(94110, CA, US)"
    )
    assert shop.ledger.fulfilment_count(paid["id"]) == 0
    assert shop.records(created["orderId"]) == []  # nothing told to Stripe Tax


def test_a_charge_refunded_more_than_ten_times_owes_a_reversal_for_each_refund(shop):
    """Stripe's expanded ``refunds`` of a Charge holds 10: the rest are read from its list, so
    refunds made before the first of their events is handled each owe a reversal too."""
    intent_id, order_id = shop.paid_order("1")
    shop.deliver("payment_intent.succeeded", {"id": intent_id, "object": "payment_intent"})
    assert shop.fulfiller.taxes.drain(10)
    made = [
        api(shop, "POST", "/v1/refunds", {"payment_intent": intent_id, "amount": "100"})
        for _ in range(11)
    ]
    shop.deliver("charge.refunded", {"id": made[0]["charge"], "object": "charge"})
    assert shop.fulfiller.taxes.drain(10)
    reversals = [r for r in shop.records(order_id) if r["kind"] == "reversal"]
    assert sorted((r["refund"], r["amount"], r["status"]) for r in reversals) == sorted(
        (refund["id"], 100, "recorded") for refund in made
    )
    assert shop.ledger.get_order(intent_id)["amount_refunded"] == 1100


@pytest.fixture
def clocked_shop(tmp_path, stripe_emulator, database_url, monkeypatch):
    """A shop on an emulator of the test's own (reset: its faults and clock are the test's),
    retrying what it could not send after 0.2 s."""
    monkeypatch.setattr(taxrecords, "RETRY_DELAYS", (0.2,))
    with open_shop(tmp_path, stripe_emulator, database_url) as made:
        yield made


def test_a_reversal_whose_answer_was_lost_for_more_than_a_day_is_marked_recorded(
    clocked_shop, stripe_emulator
):
    """Stripe made the reversal but its answer never came; by the next try Stripe's 24 hours of
    idempotency are over and it refuses the reference as taken: the reversal is recorded (with
    the id Stripe's message gives), not tried again for ever."""
    shop = clocked_shop
    intent_id, order_id = shop.paid_order("1")
    shop.deliver("payment_intent.succeeded", {"id": intent_id, "object": "payment_intent"})
    assert shop.fulfiller.taxes.drain(10)
    stripe_emulator.faults.fail("reset", path="/v1/tax/transactions/create_reversal")
    refund = api(shop, "POST", "/v1/refunds", {"payment_intent": intent_id, "amount": "1000"})
    shop.deliver("charge.refunded", {"id": refund["charge"], "object": "charge"})
    _wait_for(lambda: shop.records(order_id)[1]["attempts"] >= 1)
    stripe_emulator.faults.clear()
    stripe_emulator.clock.advance(days=2)
    record = _wait_for(lambda: (r := shop.records(order_id)[1])["status"] != "pending" and r)
    assert (record["status"], record["last_error"]) == (
        "recorded",
        "Stripe Tax already had this refund's reversal",
    )
    reversal = api(shop, "GET", f"/v1/tax/transactions/{record['stripe_id']}")
    assert (reversal["type"], reversal["reference"]) == ("reversal", refund["id"])
    assert _total(shop, reversal) == -1000


def test_a_calculation_expired_before_its_transaction_is_refused_not_retried_for_ever(
    clocked_shop, stripe_emulator
):
    """Stripe Tax was down until the calculation had expired (90 days): Stripe refuses the
    transaction (a 400) and would refuse it again, so the record is refused, with Stripe's
    reason, and so is a later refund's reversal; `orders show` and `ledger check` say so."""
    shop = clocked_shop
    shop.gateway.down = True
    intent_id, order_id = shop.paid_order("1")
    shop.deliver("payment_intent.succeeded", {"id": intent_id, "object": "payment_intent"})
    _wait_for(lambda: shop.records(order_id)[0]["attempts"] >= 1)
    stripe_emulator.clock.advance(days=91)
    shop.gateway.down = False
    record = _wait_for(lambda: (r := shop.records(order_id)[0])["status"] != "pending" and r)
    assert (record["status"], record["stripe_id"]) == ("refused", None)
    assert record["last_error"].startswith("payment_rejected: The tax calculation")
    assert "expired" in record["last_error"]
    refund = api(shop, "POST", "/v1/refunds", {"payment_intent": intent_id, "amount": "1000"})
    shop.deliver("charge.refunded", {"id": refund["charge"], "object": "charge"})
    assert shop.fulfiller.taxes.drain(10)  # nothing left owed, nothing waiting
    reversal = shop.records(order_id)[1]
    assert (reversal["status"], reversal["last_error"]) == (
        "refused",
        "not sent: Stripe Tax refused the order's transaction",
    )
    tried = [what for what, _ in shop.gateway.calls]
    shop.fulfiller.taxes.wake()
    assert shop.fulfiller.taxes.drain(10)
    assert [what for what, _ in shop.gateway.calls] == tried
    assert "reversal" not in tried

    env = {"BOOKPAY_DATA_DIR": str(shop.settings.data_dir), "BOOKPAY_EMULATOR_URL": "x"}
    if shop.settings.database_url:
        env["BOOKPAY_DATABASE_URL"] = shop.settings.database_url
    shown = CliRunner().invoke(cli, ["orders", "show", order_id], env=env)
    assert shown.exit_code == 0, shown.output
    assert "Stripe Tax:     refused, not recorded (record it in Stripe Tax by hand)" in (
        shown.stdout
    )
    report = check_ledger(shop.ledger)
    assert report.ok, report
    (refused,) = [w for w in report.warnings if w.name.startswith("tax records Stripe Tax refused")]
    assert (refused.count, refused.examples) == (2, [order_id, order_id])

    # `bookpay report tax` lists them, each with Stripe's (or bookpay's) reason.
    listed = CliRunner().invoke(cli, ["report", "tax", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    assert [
        (r["order_id"], r["kind"], r["status"], r["last_error"][:40])
        for r in json.loads(listed.stdout)
    ] == [
        (order_id, "transaction", "refused", "payment_rejected: The tax calculation ta"),
        (order_id, "reversal", "refused", "not sent: Stripe Tax refused the order's"),
    ]
    table = CliRunner().invoke(cli, ["report", "tax"], env={**env, "COLUMNS": "300"})
    assert table.exit_code == 0, table.output
    assert f"reversal of {refund['id']} ($10.00)" in table.stdout
    assert "refused, not recorded (record it in Stripe Tax by hand): payment_rejected: The" in (
        table.stdout
    )
    assert "not sent: Stripe Tax refused the order's transaction" in table.stdout
    assert table.stdout.count(order_id) == 2


def _env(shop: Shop) -> dict:
    env = {"BOOKPAY_DATA_DIR": str(shop.settings.data_dir), "BOOKPAY_EMULATOR_URL": "x"}
    if shop.settings.database_url:
        env["BOOKPAY_DATABASE_URL"] = shop.settings.database_url
    return env


def _shipped_elsewhere(shop: Shop) -> tuple[str, str]:
    """A paid checkout whose fulfilment is refused (it ships elsewhere than its quote): (PI id,
    order id). Its order is never fulfilled, so it never owes a tax transaction."""
    attempt, created = buy_now(shop.shopper, "1")
    assert quote(shop.shopper, attempt, name="Ada Lovelace").status == 200  # San Francisco
    paid = confirm(shop.settings, created["paymentIntentId"], "pm_card_visa", **ELSEWHERE)
    outcome = shop.deliver(
        "payment_intent.succeeded", {"id": paid["id"], "object": "payment_intent"}
    )
    assert outcome["outcome"].startswith("rejected:")
    return paid["id"], created["orderId"]


def test_a_refund_of_an_order_whose_fulfilment_was_refused_owes_no_reversal(shop):
    """No transaction will ever be recorded for an order whose fulfilment was refused: a
    (partial) refund's reversal has nothing to reverse, is resolved, not owed for ever, and
    `orders show` says why."""
    intent_id, order_id = _shipped_elsewhere(shop)
    refund = api(shop, "POST", "/v1/refunds", {"payment_intent": intent_id, "amount": "1000"})
    shop.deliver("charge.refunded", {"id": refund["charge"], "object": "charge"})
    record = _wait_for(lambda: (r := shop.records(order_id)[0])["status"] != "pending" and r, 3)
    assert (record["kind"], record["status"], record["stripe_id"]) == ("reversal", "skipped", None)
    assert record["last_error"] == "no tax transaction: the order was not fulfilled"
    assert shop.gateway.calls == []
    shown = CliRunner().invoke(cli, ["orders", "show", order_id], env=_env(shop))
    assert shown.exit_code == 0, shown.output
    assert "nothing to record: no tax transaction: the order was not fulfilled" in shown.stdout


def test_a_refund_before_the_fulfilment_waits_for_the_transaction_then_is_sent(shop):
    """A partial refund handled before the payment's success: the order may still be
    fulfilled, so its reversal waits (and `orders show` says for what), then is sent once the
    transaction is recorded."""
    attempt, created = buy_now(shop.shopper, "1")
    assert quote(shop.shopper, attempt, name="Ada Lovelace").status == 200
    paid = confirm(shop.settings, created["paymentIntentId"], "pm_card_visa")
    intent_id, order_id = paid["id"], created["orderId"]
    refund = api(shop, "POST", "/v1/refunds", {"payment_intent": intent_id, "amount": "1000"})
    shop.deliver("charge.refunded", {"id": refund["charge"], "object": "charge"})
    record = _wait_for(lambda: (r := shop.records(order_id)[0])["last_error"] and r)
    assert (record["status"], record["last_error"], record["attempts"]) == (
        "pending",
        "waiting for the order to be fulfilled (its tax transaction is owed then)",
        0,  # waiting is not a try
    )
    shown = CliRunner().invoke(cli, ["orders", "show", order_id], env=_env(shop))
    assert "owed, not recorded yet (next " in shown.stdout
    assert "): waiting for the order to be fulfilled" in shown.stdout
    shop.deliver("payment_intent.succeeded", {"id": intent_id, "object": "payment_intent"})
    reversal = _wait_for(lambda: (r := shop.records(order_id)[1])["status"] == "recorded" and r, 15)
    assert (reversal["refund"], reversal["amount"]) == (refund["id"], 1000)


WAITING_FOR = {
    "the fulfilment": "waiting for the order to be fulfilled (its tax transaction is owed then)",
    "the transaction": "waiting for the order's tax transaction to be recorded",
}


@pytest.mark.parametrize("waits_for", WAITING_FOR)
def test_a_waiting_reversal_is_sent_right_after_its_transaction(shop, monkeypatch, waits_for):
    """A reversal waiting for its order's fulfilment, or for its transaction to be recorded
    (Stripe Tax could not be reached), is due once the transaction is recorded: sent right
    after it, in the same round, not at its next look (WAIT_FOR_TRANSACTION, here a minute)."""
    monkeypatch.setattr(taxrecords, "WAIT_FOR_TRANSACTION", 60.0)
    monkeypatch.setattr(taxrecords, "RETRY_DELAYS", (0.2,))
    attempt, created = buy_now(shop.shopper, "1")
    assert quote(shop.shopper, attempt, name="Ada Lovelace").status == 200
    intent_id = confirm(shop.settings, created["paymentIntentId"], "pm_card_visa")["id"]
    order_id = created["orderId"]
    succeeded = {"id": intent_id, "object": "payment_intent"}
    if waits_for == "the transaction":
        shop.gateway.down = True  # Stripe Tax cannot be told of the transaction yet
        shop.deliver("payment_intent.succeeded", succeeded)
    refund = api(shop, "POST", "/v1/refunds", {"payment_intent": intent_id, "amount": "1000"})
    shop.deliver("charge.refunded", {"id": refund["charge"], "object": "charge"})
    waiting = _wait_for(lambda: (r := shop.records(order_id)[-1])["last_error"] and r)
    assert (waiting["kind"], waiting["last_error"]) == ("reversal", WAITING_FOR[waits_for])
    if waits_for == "the transaction":
        shop.gateway.down = False  # the transaction's next try (in 0.2 s) records it
    else:
        shop.deliver("payment_intent.succeeded", succeeded)
    transaction, reversal = _wait_for(
        lambda: (found := shop.records(order_id))[-1]["status"] == "recorded" and found, 5
    )
    assert (transaction["status"], reversal["refund"]) == ("recorded", refund["id"])
    assert reversal["recorded_at"] >= transaction["recorded_at"]
    assert shop.gateway.calls.count(("reversal", refund["id"])) == 1


class UnreachableTax:
    """A gateway to a Stripe Tax that cannot be reached."""

    def __init__(self) -> None:
        self.calls = 0

    def create_tax_reversal(self, transaction_id, *, refund_id, amount=None):
        self.calls += 1
        raise StripeUnavailable("Could not reach Stripe.")


def test_waiting_for_the_transaction_is_not_a_try_so_the_first_failure_backs_off_5s(
    tmp_path, database_url, monkeypatch
):
    """A reversal looks again every 5 s while its order is not fulfilled, then while its
    transaction is not recorded: those looks are not tries, so when Stripe then cannot be
    reached it is tried again after 5 s (the README's first step), not after 10 minutes."""
    from bookpay.ledger.model import now_iso
    from bookpay.quote import Quote, QuoteLine

    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    order_id, intent_id, reversal_id = "ord_00000000000000aa", "pi_wait", "rev:re_1"
    with open_ledger(settings) as ledger:
        quoted = Quote((QuoteLine("1", "One", 1, 2300),), "usd")
        ledger.record_quote(intent_id, order_id, quoted)
        ledger.owe_tax_reversals(order_id, intent_id, [("re_1", 1000)])
        gateway = UnreachableTax()
        worker = taxrecords.TaxRecorder(ledger, gateway)
        delays: list[float] = []
        failed = ledger.tax_record_failed

        def counted(record_id, error, *, retry_in):
            delays.append(retry_in)
            failed(record_id, error, retry_in=retry_in)

        monkeypatch.setattr(ledger, "tax_record_failed", counted)

        def reversal() -> dict:
            return next(r for r in ledger.tax_records_for(order_id) if r["id"] == reversal_id)

        def look(reason: str) -> None:
            worker._record(reversal())
            waiting = reversal()
            assert (waiting["status"], waiting["attempts"]) == ("pending", 0)
            assert waiting["last_error"] == reason
            assert now_iso(4) < waiting["next_attempt_at"] <= now_iso(5)

        for _ in range(3):  # the order is not fulfilled yet: its transaction is not owed
            look("waiting for the order to be fulfilled (its tax transaction is owed then)")
        with ledger.backend.write() as tx:  # fulfilled: its transaction owed, not recorded yet
            ledger.owe_tax_transaction(tx, order_id, intent_id, "taxcalc_1")
        for _ in range(3):
            look("waiting for the order's tax transaction to be recorded")
        assert (delays, gateway.calls) == ([], 0)

        ledger.tax_record_done(f"txn:{order_id}", stripe_id="tax_1")
        worker._record(reversal())  # its first try: Stripe cannot be reached
        assert (delays, gateway.calls) == ([taxrecords.RETRY_DELAYS[0]], 1)
        tried = reversal()
        assert (tried["status"], tried["attempts"]) == ("pending", 1)
        assert tried["last_error"] == "stripe_unavailable: Could not reach Stripe."
        assert now_iso(4) < tried["next_attempt_at"] <= now_iso(5)
        # Tried, it keeps its back-off: only the reversals waiting (never tried) are made due.
        assert ledger.tax_reversals_due_now(order_id) == 0
        assert reversal()["next_attempt_at"] == tried["next_attempt_at"]


def test_a_ledger_failing_to_wake_the_reversals_leaves_the_recorded_transaction_alone(
    tmp_path, database_url, monkeypatch, caplog
):
    """Making an order's waiting reversals due is a hurry-up, not part of recording its
    transaction: a ledger failing it then neither tries the recorded transaction again nor
    says it was not sent; the reversal's own look (WAIT_FOR_TRANSACTION) still finds it."""
    from bookpay.ledger.errors import LedgerUnavailable
    from bookpay.quote import Quote, QuoteLine

    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    order_id, intent_id = "ord_00000000000000ab", "pi_wake"
    with open_ledger(settings) as ledger:
        ledger.record_quote(intent_id, order_id, Quote((QuoteLine("1", "One", 1, 2300),), "usd"))
        with ledger.backend.write() as tx:
            ledger.owe_tax_transaction(tx, order_id, intent_id, "taxcalc_1")
        transaction = next(r for r in ledger.tax_records_for(order_id))
        retried = []
        monkeypatch.setattr(ledger, "tax_record_failed", lambda *a, **k: retried.append(a))

        def unavailable(order_id):
            raise LedgerUnavailable("The ledger is busy.")

        monkeypatch.setattr(ledger, "tax_reversals_due_now", unavailable)

        class RecordingTax:
            def create_tax_transaction(self, calculation_id, *, order_id):
                return {"id": "tax_1"}

        caplog.set_level(logging.INFO, logger="bookpay.taxrecords")
        taxrecords.TaxRecorder(ledger, RecordingTax())._record(transaction)
        recorded = next(r for r in ledger.tax_records_for(order_id))
        assert (recorded["status"], recorded["stripe_id"]) == ("recorded", "tax_1")
        assert retried == []
        assert "not sent" not in caplog.text
        assert "could not be made due now (The ledger is busy.)" in caplog.text
