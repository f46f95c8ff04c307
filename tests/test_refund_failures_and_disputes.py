"""Refunds that fail and disputes that close, end to end with the emulator (on both backends):
the emulator does what Stripe's test cards do (4000000000005126: a refund that succeeds, then
fails; 4000000000000259: a dispute, closed by Stripe's test evidence), the shop's webhook gets
each event twice and out of order, and the order, `orders export` and `report sales` agree with
what Stripe says at the end. Tax: a reversal sent for a refund that then failed is shown as
tax unreported; one never tried (nothing worked out to send) is never sent, and one tried
(its answer lost) is sent as worked out and shown as tax unreported.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import threading
import time

import pytest
from test_quote_server import buy_now, quote
from test_server import confirm
from test_tax_records import ELSEWHERE, Shop, _total, api, open_shop
from typer.testing import CliRunner

from bookpay.cli import app as cli

runner = CliRunner()
# What Stripe does "some time later" (a refund failing, a dispute opening or decided) comes this
# many seconds later on the emulator's clock (its async_delay, the default): the tests advance
# the clock by it (``later``) rather than wait for it.
ASYNC_DELAY = 2.0


@pytest.fixture(scope="module")
def emulator():
    """An emulator of this module's own (not the session's, whose clock is shared): its tests
    advance its clock. Webhook retries come within a second, as with the session's."""
    from bookpay import testing

    with testing.emulator(retry_schedule=(0.05, 0.1, 0.2), async_delay=ASYNC_DELAY) as running:
        yield running


def later(shop: Shop) -> None:
    """Now is "some time later": the emulator's clock advanced past what falls due by then
    (which is done, in order, before this returns)."""
    from bookpay.testing import StripeEmulator

    StripeEmulator(shop.settings.emulator_url).clock.advance(seconds=ASYNC_DELAY)


@pytest.fixture
def shop(tmp_path, emulator, database_url):
    with open_shop(tmp_path, emulator, database_url) as made:
        yield made


def wait_for(found, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


def paid(shop: Shop, card: str) -> tuple[str, str]:
    """A checkout quoted for San Francisco (so taxed), paid with ``card`` and fulfilled."""
    attempt, created = buy_now(shop.shopper, "1")
    assert quote(shop.shopper, attempt, name="Ada Lovelace").status == 200
    intent = confirm(shop.settings, created["paymentIntentId"], card)
    assert intent["status"] == "succeeded"
    shop.deliver("payment_intent.succeeded", {"id": intent["id"], "object": "payment_intent"})
    assert shop.fulfiller.taxes.drain(10)
    return intent["id"], created["orderId"]


def bookpay(shop: Shop, *args: str) -> str:
    env = {"BOOKPAY_DATA_DIR": str(shop.settings.data_dir)}
    if shop.settings.database_url:
        env["BOOKPAY_DATABASE_URL"] = shop.settings.database_url
    result = runner.invoke(cli, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def exported(shop: Shop, intent_id: str) -> dict:
    rows = csv.DictReader(io.StringIO(bookpay(shop, "orders", "export", "--format", "csv")))
    return next(row for row in rows if row["payment_intent"] == intent_id)


def sales_total(shop: Shop) -> dict:
    report = json.loads(bookpay(shop, "report", "sales", "--json"))
    return report["currencies"][0]["total"]


def failed_refund(shop: Shop, refund_id: str) -> dict:
    later(shop)
    return wait_for(
        lambda: (r := api(shop, "GET", f"/v1/refunds/{refund_id}"))["status"] == "failed" and r
    )


def test_a_refund_that_fails_puts_the_order_back_to_paid_and_its_tax_is_unreported(shop):
    intent_id, order_id = paid(shop, "pm_card_refundFail")
    gross = shop.ledger.get_order(intent_id)["amount"]
    refund = api(shop, "POST", "/v1/refunds", {"payment_intent": intent_id})
    assert refund["status"] == "succeeded"  # at first
    charge = {"id": refund["charge"], "object": "charge"}
    shop.deliver("charge.refunded", charge, "evt_refunded")
    assert shop.fulfiller.taxes.drain(10)
    order = shop.ledger.get_order(intent_id)
    assert (order["status"], order["amount_refunded"]) == ("refunded", gross)
    assert sales_total(shop)["refunded"] == gross

    failed = failed_refund(shop, refund["id"])
    assert failed["failure_reason"] == "expired_or_canceled_card"
    refund_obj = {"id": refund["id"], "object": "refund"}
    # Stripe's events for the failure, each twice, then the first event again, late.
    for kind, event_id in [
        ("refund.failed", "evt_failed"),
        ("charge.refund.updated", "evt_updated"),
        ("refund.failed", "evt_failed"),
        ("charge.refund.updated", "evt_updated"),
        ("charge.refunded", "evt_refunded_late"),
    ]:
        obj = charge if kind == "charge.refunded" else refund_obj
        answer = shop.deliver(kind, obj, event_id)
        assert answer["received"] is True
    order = shop.ledger.get_order(intent_id)
    assert (order["status"], order["amount_refunded"]) == ("paid", 0)

    row = exported(shop, intent_id)
    assert (row["status"], row["amount_refunded"]) == ("paid", "0")
    total = sales_total(shop)
    assert (total["gross"], total["refunded"], total["net"]) == (gross, 0, gross)
    # The reversal Stripe Tax has gave back tax the shop kept: recorded once, shown.
    reversal = next(r for r in shop.records(order_id) if r["kind"] == "reversal")
    assert reversal["status"] == "recorded" and reversal["refund_failed_at"] is not None
    tax = shop.ledger.quote_for(intent_id)["tax"]
    assert total["tax_unreported"] == tax > 0
    shown = bookpay(shop, "orders", "show", intent_id)
    assert "the refund failed" in shown and "Stripe Tax under-reports this tax" in shown
    assert [what for what, _ in shop.gateway.calls] == ["transaction", "reversal"]


def test_an_order_refunded_in_full_first_is_fulfilled_once_when_its_refund_fails(shop):
    """Refunded in full before its payment's success was handled (the endpoint down a while):
    not fulfilled. The refund then fails and the shop keeps the money: the refund event fulfils
    the order, once (one receipt, one Stripe Tax transaction, no reversal), and `ledger check`
    has nothing to say of it."""
    from bookpay.ledger.check import check_ledger

    attempt, created = buy_now(shop.shopper, "1")
    assert quote(shop.shopper, attempt, name="Ada Lovelace").status == 200
    intent = confirm(shop.settings, created["paymentIntentId"], "pm_card_refundFail")
    intent_id, order_id = intent["id"], created["orderId"]
    refund = api(shop, "POST", "/v1/refunds", {"payment_intent": intent_id})
    answer = shop.deliver("payment_intent.succeeded", {"id": intent_id, "object": "payment_intent"})
    assert answer["outcome"] == "refunded: refunded in full before it was fulfilled"
    charge = {"id": refund["charge"], "object": "charge"}
    shop.deliver("charge.refunded", charge, "evt_refunded")
    assert shop.ledger.get_order(intent_id)["fulfilled_at"] is None

    failed_refund(shop, refund["id"])
    refund_obj = {"id": refund["id"], "object": "refund"}
    for kind, event_id in [
        ("refund.failed", "evt_failed"),
        ("charge.refund.updated", "evt_updated"),
        ("refund.failed", "evt_failed"),
        ("charge.refunded", "evt_refunded_late"),
    ]:
        shop.deliver(kind, charge if kind == "charge.refunded" else refund_obj, event_id)
    order = shop.ledger.get_order(intent_id)
    assert (order["status"], order["amount_refunded"]) == ("paid", 0)
    assert order["fulfilled_at"] is not None and order["not_fulfilled_at"] is None
    assert shop.ledger.fulfilment_count(intent_id) == 1
    assert [r["order_id"] for r in shop.ledger.receipts()] == [order_id]
    assert shop.fulfiller.taxes.drain(10)
    records = {r["kind"]: r for r in shop.records(order_id)}
    assert records["transaction"]["status"] == "recorded"
    assert records["reversal"]["status"] == "skipped"
    assert [what for what, _ in shop.gateway.calls] == ["transaction"]
    report = check_ledger(shop.ledger)
    assert report.ok and not [w.name for w in report.warnings if w.count]
    shown = bookpay(shop, "orders", "show", intent_id)
    assert "fulfilled after its refund in full failed" in shown
    total = sales_total(shop)
    assert (total["orders"], total["refunded"], total["net"]) == (1, 0, order["amount"])


def test_a_partial_refund_that_fails_before_its_reversal_was_tried_is_never_sent(shop, monkeypatch):
    """Stripe Tax cannot be reached, so the order's transaction is not recorded and the
    refund's reversal waits for it (tried, but nothing worked out to send, so never sent);
    the refund fails meanwhile: the reversal is skipped, never sent."""
    from bookpay import taxrecords

    monkeypatch.setattr(taxrecords, "RETRY_DELAYS", (0.2,))
    monkeypatch.setattr(taxrecords, "WAIT_FOR_TRANSACTION", 0.2)
    attempt, created = buy_now(shop.shopper, "1")
    assert quote(shop.shopper, attempt, name="Ada Lovelace").status == 200
    intent_id = confirm(shop.settings, created["paymentIntentId"], "pm_card_refundFail")["id"]
    order_id = created["orderId"]
    shop.gateway.down = True  # Stripe Tax cannot be told of the transaction yet
    shop.deliver("payment_intent.succeeded", {"id": intent_id, "object": "payment_intent"})
    refund = api(shop, "POST", "/v1/refunds", {"payment_intent": intent_id, "amount": "1000"})
    charge = {"id": refund["charge"], "object": "charge"}
    shop.deliver("charge.refunded", charge)
    order = shop.ledger.get_order(intent_id)
    assert (order["status"], order["amount_refunded"]) == ("partially_refunded", 1000)
    assert exported(shop, intent_id)["status"] == "partially_refunded"
    waiting = wait_for(lambda: (r := shop.records(order_id)[1])["last_error"] and r)
    assert waiting["last_error"] == "waiting for the order's tax transaction to be recorded"

    failed_refund(shop, refund["id"])
    shop.deliver("charge.refund.updated", {"id": refund["id"], "object": "refund"})
    order = shop.ledger.get_order(intent_id)
    assert (order["status"], order["amount_refunded"]) == ("paid", 0)
    shop.gateway.down = False
    shop.fulfiller.taxes.wake()
    wait_for(lambda: all(r["status"] != "pending" for r in shop.records(order_id)))
    transaction, reversal = shop.records(order_id)
    assert transaction["status"] == "recorded"
    assert (reversal["status"], reversal["stripe_id"]) == ("skipped", None)
    assert "the refund failed before its reversal was sent" in reversal["last_error"]
    assert ("reversal", refund["id"]) not in shop.gateway.calls
    assert sales_total(shop)["tax_unreported"] == 0


@pytest.mark.parametrize(("refunded", "left"), [("2967", 1967), ("2500", 1500)])
def test_a_refund_after_one_that_failed_reverses_only_what_stripe_tax_has_not(shop, refunded, left):
    """A partial refund's reversal was recorded, then the refund failed: Stripe Tax holds $10.00
    reversed that was not refunded. A later refund's reversal takes that into account: not the
    whole transaction again (a full reversal), nor more than it has left (which Stripe
    refuses), so Stripe Tax ends with exactly what was refunded reversed."""
    intent_id, order_id = paid(shop, "pm_card_refundFail")
    first = api(shop, "POST", "/v1/refunds", {"payment_intent": intent_id, "amount": "1000"})
    charge = {"id": first["charge"], "object": "charge"}
    shop.deliver("charge.refunded", charge, "evt_first")
    assert shop.fulfiller.taxes.drain(10)
    failed_refund(shop, first["id"])
    shop.deliver("charge.refund.updated", {"id": first["id"], "object": "refund"}, "evt_failed")
    assert sales_total(shop)["tax_unreported"] > 0

    later = api(shop, "POST", "/v1/refunds", {"payment_intent": intent_id, "amount": refunded})
    assert later["status"] == "succeeded"
    shop.deliver("charge.refunded", charge, "evt_later")
    assert shop.fulfiller.taxes.drain(10)
    records = {r["refund"]: r for r in shop.records(order_id) if r["kind"] == "reversal"}
    record = records[later["id"]]
    assert (record["status"], record["reversed"]) == ("recorded", left)
    reversals = [
        _total(shop, api(shop, "GET", f"/v1/tax/transactions/{r['stripe_id']}"))
        for r in (records[first["id"]], record)
    ]
    assert reversals == [-1000, -left]
    assert -sum(reversals) == int(refunded)  # what was refunded, no more
    assert sales_total(shop)["tax_unreported"] == 0
    shown = bookpay(shop, "orders", "show", intent_id)
    assert "a later refund's reversal took it into account" in shown


def disputed(shop: Shop) -> tuple[str, dict]:
    intent_id, _ = paid(shop, "pm_card_createDispute")
    later(shop)
    found = wait_for(lambda: api(shop, "GET", f"/v1/disputes?payment_intent={intent_id}")["data"])
    return intent_id, found[0]


def close(shop: Shop, dispute_id: str, evidence: str) -> dict:
    api(shop, "POST", f"/v1/disputes/{dispute_id}", {"evidence[uncategorized_text]": evidence})
    later(shop)
    return wait_for(
        lambda: (
            (d := api(shop, "GET", f"/v1/disputes/{dispute_id}"))["status"] in ("won", "lost") and d
        )
    )


@pytest.mark.parametrize(
    ("evidence", "outcome", "status"),
    [("winning_evidence", "won", "paid"), ("losing_evidence", "lost", "dispute_lost")],
)
def test_a_dispute_closes_won_or_lost_whatever_order_its_events_come_in(
    shop, evidence, outcome, status
):
    intent_id, dispute = disputed(shop)
    obj = {"id": dispute["id"], "object": "dispute"}
    shop.deliver("charge.dispute.created", obj, "evt_created")
    order = shop.ledger.get_order(intent_id)
    assert (order["status"], order["dispute_status"]) == ("disputed", "needs_response")
    gross = order["amount"]
    assert sales_total(shop)["disputed"] == gross

    assert close(shop, dispute["id"], evidence)["status"] == outcome
    # Closed first, then created late (a redelivery of an old event), each twice.
    for event_id in ("evt_closed", "evt_created_late", "evt_closed", "evt_created_late"):
        kind = "charge.dispute.closed" if "closed" in event_id else "charge.dispute.created"
        assert shop.deliver(kind, obj, event_id)["received"] is True
    order = shop.ledger.get_order(intent_id)
    assert (order["status"], order["dispute_status"]) == (status, outcome)
    assert [(d["id"], d["status"]) for d in shop.ledger.disputes_for(order["id"])] == [
        (dispute["id"], outcome)
    ]
    row = exported(shop, intent_id)
    assert (row["status"], row["dispute_status"]) == (status, outcome)
    total = sales_total(shop)
    lost = gross if outcome == "lost" else 0
    assert (total["disputed"], total["lost"], total["net"]) == (0, lost, gross - lost)
    listed = bookpay(shop, "orders", "list")
    assert status in listed
    shown = bookpay(shop, "orders", "show", intent_id)
    assert f"{dispute['id']}: {outcome}, fraudulent" in shown


def test_a_dispute_does_not_make_a_never_fulfilled_orders_reversal_wait_for_ever(shop, monkeypatch):
    """A refund handled before its payment's success: its reversal waits for the fulfilment.
    The fulfilment is refused (it ships elsewhere than its quote): the order will never be
    fulfilled, so the reversal has no tax to take back. A dispute handled before the reversal
    is looked at again rewrites the order's note; the reversal is still resolved (skipped),
    not left waiting for ever for a fulfilment that will never come."""
    from bookpay import taxrecords

    monkeypatch.setattr(taxrecords, "WAIT_FOR_TRANSACTION", 60.0)  # looked at again on cue
    attempt, created = buy_now(shop.shopper, "1")
    assert quote(shop.shopper, attempt, name="Ada Lovelace").status == 200  # San Francisco
    intent = confirm(
        shop.settings, created["paymentIntentId"], "pm_card_createDispute", **ELSEWHERE
    )
    intent_id, order_id = intent["id"], created["orderId"]
    refund = api(shop, "POST", "/v1/refunds", {"payment_intent": intent_id, "amount": "1000"})
    shop.deliver("charge.refunded", {"id": refund["charge"], "object": "charge"})
    record = wait_for(lambda: (r := shop.records(order_id)[0])["last_error"] and r, 5)
    assert record["last_error"].startswith("waiting for the order to be fulfilled")
    outcome = shop.deliver(
        "payment_intent.succeeded", {"id": intent_id, "object": "payment_intent"}
    )
    assert outcome["outcome"].startswith("rejected:")
    later(shop)
    found = wait_for(lambda: api(shop, "GET", f"/v1/disputes?payment_intent={intent_id}")["data"])
    shop.deliver("charge.dispute.created", {"id": found[0]["id"], "object": "dispute"})
    assert shop.ledger.get_order(intent_id)["note"].startswith(f"dispute {found[0]['id']}")

    shop.ledger.tax_record_waiting(record["id"], "looked at again now", look_in=0)
    shop.fulfiller.taxes.wake()
    record = wait_for(lambda: (r := shop.records(order_id)[0])["status"] != "pending" and r, 5)
    assert (record["status"], record["stripe_id"]) == ("skipped", None)
    assert record["last_error"] == "no tax transaction: the order was not fulfilled"
    assert shop.gateway.calls == []


def _over_reversed_by_a_failed_refund(shop: Shop) -> tuple[str, str]:
    """A taxed order whose first refund ($10.00) had its reversal recorded, then failed: Stripe
    Tax holds $10.00 reversed that was not refunded. (PI id, order id)."""
    intent_id, order_id = paid(shop, "pm_card_refundFail")
    first = api(shop, "POST", "/v1/refunds", {"payment_intent": intent_id, "amount": "1000"})
    shop.deliver("charge.refunded", {"id": first["charge"], "object": "charge"}, "evt_first")
    assert shop.fulfiller.taxes.drain(10)
    failed_refund(shop, first["id"])
    shop.deliver("charge.refund.updated", {"id": first["id"], "object": "refund"}, "evt_failed")
    assert sales_total(shop)["tax_unreported"] > 0
    return intent_id, order_id


def report_tax(shop: Shop, *args: str):
    """`bookpay report tax ARGS` on a wide terminal (each state on one line): the result."""
    env = {"BOOKPAY_DATA_DIR": str(shop.settings.data_dir), "COLUMNS": "400"}
    if shop.settings.database_url:
        env["BOOKPAY_DATABASE_URL"] = shop.settings.database_url
    result = runner.invoke(cli, ["report", "tax", *args], env=env)
    assert result.exit_code == 0, result.output
    return result


def test_report_tax_lists_tax_under_reported_until_a_later_refund_takes_it_in(shop):
    """A reversal Stripe Tax has whose refund then failed needs a person (Stripe Tax
    under-reports that tax): `report tax` lists it by default, with why. Once a later refund's
    reversal has taken it into account it is no longer listed, and `--status recorded` says
    so rather than that Stripe Tax under-reports it."""
    intent_id, order_id = _over_reversed_by_a_failed_refund(shop)
    (failed,) = [r for r in shop.records(order_id) if r["kind"] == "reversal"]
    listed = json.loads(report_tax(shop, "--json").stdout)
    assert [(r["order_id"], r["refund"], r["status"], r["under_reported"]) for r in listed] == [
        (order_id, failed["refund"], "recorded", True)
    ]
    table = report_tax(shop).stdout
    assert f"reversal of {failed['refund']} ($10.00)" in table
    assert "the refund failed" in table
    assert "Stripe Tax under-reports this tax (correct it in Stripe Tax)" in table

    later = api(shop, "POST", "/v1/refunds", {"payment_intent": intent_id, "amount": "2000"})
    shop.deliver("charge.refunded", {"id": later["charge"], "object": "charge"}, "evt_later")
    assert shop.fulfiller.taxes.drain(10)
    assert sales_total(shop)["tax_unreported"] == 0
    nothing = report_tax(shop)
    assert (nothing.stdout, nothing.stderr) == (
        "",
        "No tax records refused, pending or under-reported.\n",
    )
    assert json.loads(report_tax(shop, "--json").stdout) == []
    recorded = report_tax(shop, "--status", "recorded")
    assert "a later refund's reversal took it into account" in recorded.stdout
    assert "under-reports" not in recorded.stdout
    shown = json.loads(report_tax(shop, "--status", "recorded", "--json").stdout)
    assert {r["refund"]: r["under_reported"] for r in shown if r["kind"] == "reversal"} == {
        failed["refund"]: False,
        later["id"]: False,
    }


def _in_stripe_tax(shop: Shop, order_id: str) -> int:
    """What Stripe Tax holds reversed of the order, from its reversals' line items."""
    return -sum(
        _total(shop, api(shop, "GET", f"/v1/tax/transactions/{r['stripe_id']}"))
        for r in shop.records(order_id)
        if r["kind"] == "reversal" and r["status"] == "recorded"
    )


@pytest.fixture
def faulty_shop(tmp_path, stripe_emulator, database_url, monkeypatch):
    """A shop on an emulator of the test's own (its faults are the test's), retrying what it
    could not send after 0.2 s."""
    from bookpay import taxrecords

    monkeypatch.setattr(taxrecords, "RETRY_DELAYS", (0.2,))
    with open_shop(tmp_path, stripe_emulator, database_url) as made:
        yield made


def test_a_reversal_tried_again_sends_what_it_sent_first(faulty_shop, stripe_emulator):
    """A reversal's first try reached Stripe Tax but its answer was lost. Before the next try,
    another refund's reversal was done, which changes what the first would work out to take
    back: the next try sends what the first sent (one body under its idempotency key, which
    Stripe would otherwise refuse), and Stripe Tax ends with exactly what was refunded."""
    shop = faulty_shop
    intent_id, order_id = _over_reversed_by_a_failed_refund(shop)
    stripe_emulator.faults.fail("reset", path="/v1/tax/transactions/create_reversal")
    first = api(shop, "POST", "/v1/refunds", {"payment_intent": intent_id, "amount": "1500"})
    charge = {"id": first["charge"], "object": "charge"}
    shop.deliver("charge.refunded", charge, "evt_1500")
    wait_for(lambda: shop.records(order_id)[2]["attempts"] >= 1)
    second = api(shop, "POST", "/v1/refunds", {"payment_intent": intent_id, "amount": "400"})
    shop.deliver("charge.refunded", charge, "evt_400")
    wait_for(lambda: len(shop.records(order_id)) == 4 and shop.records(order_id)[3]["attempts"])
    stripe_emulator.faults.clear()
    wait_for(lambda: all(r["status"] != "pending" for r in shop.records(order_id)))
    records = {r["refund"]: r for r in shop.records(order_id) if r["kind"] == "reversal"}
    assert [records[r["id"]]["status"] for r in (first, second)] == ["recorded", "recorded"]
    assert records[first["id"]]["reversed"] == 500  # what its first try sent
    # The failed refund's $10.00 and these two: exactly what went back.
    assert _in_stripe_tax(shop, order_id) == 1500 + 400
    assert sales_total(shop)["tax_unreported"] == 0


def test_a_reversal_whose_answer_was_lost_is_sent_as_planned_after_its_refund_failed(
    faulty_shop, stripe_emulator, monkeypatch
):
    """Stripe Tax made a partial refund's reversal, but every answer was lost; then the refund
    failed. Stripe Tax may have the reversal (it does), so it is not skipped as never sent: it
    is sent as worked out under its key, recorded with Stripe Tax's id, shown as tax
    under-reported, and a later refund of it all takes it into account."""
    from bookpay import taxrecords

    shop = faulty_shop
    monkeypatch.setattr(taxrecords, "RETRY_DELAYS", (600.0,))  # tried again when the test says
    intent_id, order_id = paid(shop, "pm_card_refundFail")
    total = shop.ledger.quote_for(intent_id)["total"]
    # Made, answered 500 (kept under its key), then every later answer lost (not a 500 of
    # each next key's own: that would stand under those keys too).
    stripe_emulator.faults.fail("500", path="/v1/tax/transactions/create_reversal", times=1)
    stripe_emulator.faults.fail("reset", path="/v1/tax/transactions/create_reversal")
    refund = api(shop, "POST", "/v1/refunds", {"payment_intent": intent_id, "amount": "500"})
    charge = {"id": refund["charge"], "object": "charge"}
    shop.deliver("charge.refunded", charge, "evt_500")
    lost = wait_for(lambda: (r := shop.records(order_id)[1])["attempts"] >= 1 and r)
    assert (lost["status"], lost["reversed"], lost["send_amount"]) == ("pending", 500, 500)
    failed_refund(shop, refund["id"])
    shop.deliver("charge.refund.updated", {"id": refund["id"], "object": "refund"}, "evt_failed")
    # Still owed, as `report tax` says, and why it is sent after its refund failed.
    owed = report_tax(shop).stdout
    assert "owed, not recorded yet (1 attempt" in owed
    assert "; the refund failed " in owed
    assert "sent as worked out (Stripe Tax may have it from the try whose answer was lost)" in owed
    stripe_emulator.faults.clear()
    shop.ledger.tax_record_failed(lost["id"], "looked at again now", retry_in=0)
    shop.fulfiller.taxes.wake()
    record = wait_for(lambda: (r := shop.records(order_id)[1])["status"] != "pending" and r)
    assert (record["status"], record["reversed"]) == ("recorded", 500)
    assert record["refund_failed_at"] is not None
    reversal = api(shop, "GET", f"/v1/tax/transactions/{record['stripe_id']}")
    assert (reversal["type"], reversal["reference"]) == ("reversal", refund["id"])
    assert _total(shop, reversal) == -500
    tax = shop.ledger.quote_for(intent_id)["tax"]
    assert sales_total(shop)["tax_unreported"] == 500 * tax // total > 0
    shown = bookpay(shop, "orders", "show", intent_id)
    assert "the refund failed" in shown and "Stripe Tax under-reports this tax" in shown
    assert shop.ledger.failed_reversals_for_orders([order_id])

    later = api(shop, "POST", "/v1/refunds", {"payment_intent": intent_id})
    shop.deliver("charge.refunded", charge, "evt_later")
    wait_for(lambda: all(r["status"] != "pending" for r in shop.records(order_id)))
    record = shop.records(order_id)[2]
    assert (record["refund"], record["status"]) == (later["id"], "recorded")
    assert (record["send_amount"], record["reversed"]) == (total - 500, total - 500)
    assert _in_stripe_tax(shop, order_id) == total  # what was refunded, no more
    assert sales_total(shop)["tax_unreported"] == 0


def test_two_recorders_send_one_orders_reversals_at_once_without_the_offset_twice(
    shop, monkeypatch
):
    """Two processes (each its own ledger connection and tax recorder) send the two reversals
    of one order at the same moment, after a failed refund's reversal left $10.00 too much
    reversed in Stripe Tax: only one of them takes that into account, so Stripe Tax ends with
    exactly what was refunded reversed."""
    from test_tax_records import CountingGateway

    from bookpay.ledger import open_ledger
    from bookpay.ledger import taxrecords as ledger_taxrecords
    from bookpay.taxrecords import TaxRecorder

    intent_id, order_id = _over_reversed_by_a_failed_refund(shop)
    shop.fulfiller.taxes.close()  # the two recorders below are the only ones
    refunds = [
        api(shop, "POST", "/v1/refunds", {"payment_intent": intent_id, "amount": amount})
        for amount in ("1500", "1200")
    ]
    shop.deliver("charge.refunded", {"id": refunds[0]["charge"], "object": "charge"}, "evt_2")
    owed = [r for r in shop.records(order_id) if r["status"] == "pending"]
    assert sorted(r["refund"] for r in owed) == sorted(r["id"] for r in refunds)

    # Each works out its amount at the same moment as the other, unless the ledger makes one
    # wait for the other (then the barrier gives up after a second), and both send at once.
    both_planning, both_sending = threading.Barrier(2), threading.Barrier(2)
    plan = ledger_taxrecords.plan_reversal

    def plan_together(*args):
        with contextlib.suppress(threading.BrokenBarrierError):
            both_planning.wait(timeout=1)
        return plan(*args)

    monkeypatch.setattr(ledger_taxrecords, "plan_reversal", plan_together)

    class TogetherGateway(CountingGateway):
        def create_tax_reversal(self, transaction_id, *, refund_id, amount=None):
            with contextlib.suppress(threading.BrokenBarrierError):  # send at once
                both_sending.wait(timeout=3)
            return super().create_tax_reversal(transaction_id, refund_id=refund_id, amount=amount)

    gateway = TogetherGateway(shop.settings)
    ledgers = [open_ledger(shop.settings) for _ in owed]
    try:
        recorders = [TaxRecorder(ledger, gateway) for ledger in ledgers]
        threads = [
            threading.Thread(target=recorder._record, args=(record,))
            for recorder, record in zip(recorders, owed, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
    finally:
        for ledger in ledgers:
            ledger.close()
    assert [r["status"] for r in shop.records(order_id)] == ["recorded"] * 4
    assert _in_stripe_tax(shop, order_id) == 1500 + 1200  # what went back, no less
    assert sales_total(shop)["tax_unreported"] == 0
