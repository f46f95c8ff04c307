"""Held payments (capture_method=manual) whose authorization is released, end to end with the
emulator on both backends: the shop's checkout, a PaymentIntent switched to manual capture and
authorized, then `bookpay intent cancel` or `bookpay intent capture --amount` (less than held),
and every event the emulator made for it delivered to the shop's webhook, signed, as Stripe
sends them. A released authorization is shown by Stripe as refunded on the Charge
(``charge.refunded``), but no money the customer paid went back: a canceled hold stays
canceled, and after a partial capture only refunds of the captured money count.
"""

from __future__ import annotations

import csv
import io
import json

import pytest
from test_quote_server import buy_now, quote
from test_refund_failures_and_disputes import wait_for
from test_server import confirm
from test_tax_records import SECRET, Shop, api, one_book, open_shop, stripe_tax_left
from typer.testing import CliRunner

from bookpay.cli import app as cli
from bookpay.ledger.check import check_ledger
from bookpay.webhooks import sign

runner = CliRunner()
STREAM = ("payment_intent.*", "charge.*", "refund.*")


@pytest.fixture
def shop(tmp_path, emulator, database_url, monkeypatch):
    # A partial capture's release is a refund whose tax reversal is owed before the order's
    # tax transaction is recorded: it is sent right after the transaction, never at its next
    # look (WAIT_FOR_TRANSACTION, here a minute).
    monkeypatch.setattr("bookpay.taxrecords.WAIT_FOR_TRANSACTION", 60.0)
    with open_shop(tmp_path, emulator, database_url) as made:
        yield made


def bookpay(shop: Shop, *args: str) -> str:
    env = {
        "BOOKPAY_DATA_DIR": str(shop.settings.data_dir),
        "BOOKPAY_EMULATOR_URL": shop.settings.emulator_url,
    }
    if shop.settings.database_url:
        env["BOOKPAY_DATABASE_URL"] = shop.settings.database_url
    result = runner.invoke(cli, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def held(shop: Shop, item: str = "1") -> tuple[str, int]:
    """A checkout (taxed, so quoted) whose PaymentIntent is authorized only: (its id, amount)."""
    attempt, created = buy_now(shop.shopper, item)
    assert quote(shop.shopper, attempt, name="Ada Lovelace").status == 200
    intent_id = created["paymentIntentId"]
    api(shop, "POST", f"/v1/payment_intents/{intent_id}", {"capture_method": "manual"})
    intent = confirm(shop.settings, intent_id, "pm_card_visa")
    assert intent["status"] == "requires_capture", intent
    return intent_id, intent["amount"]


def events_of(shop: Shop, intent_id: str, since: set[str] = frozenset()) -> list[dict]:
    """The emulator's events about ``intent_id`` (its PaymentIntent, Charge and Refunds), oldest
    first, leaving out those in ``since`` (already delivered)."""
    query = "&".join(f"types[]={kind}" for kind in STREAM)
    page = api(shop, "GET", f"/v1/events?limit=100&{query}")["data"]
    mine = [
        event
        for event in page
        if intent_id in (event["data"]["object"].get(key) for key in ("id", "payment_intent"))
        and event["id"] not in since
    ]
    return list(reversed(mine))


def deliver(shop: Shop, events: list[dict]) -> dict[str, dict]:
    """Each event to the shop's webhook, signed as Stripe signs it; the answers by type."""
    answers = {}
    for event in events:
        payload = json.dumps(event).encode()
        answers[event["type"]] = shop.receiver.handle(payload, sign(payload, SECRET))
    return answers


def assert_checks_clean(shop: Shop, order_id: str) -> None:
    """`ledger check` finds nothing, once Stripe Tax has been told of what the order owes (a
    reversal owed before the order's transaction is recorded waits for it, and is retried)."""
    wait_for(lambda: all(r["status"] == "recorded" for r in shop.records(order_id)))
    report = check_ledger(shop.ledger)
    assert report.ok, report
    assert [(w.name, w.examples) for w in report.warnings if w.count] == []


def sales_total(shop: Shop) -> dict:
    report = json.loads(bookpay(shop, "report", "sales", "--json"))
    return report["currencies"][0]["total"]


@pytest.mark.parametrize("first", ["charge.refunded", "payment_intent.canceled"])
def test_a_canceled_hold_stays_canceled_whatever_order_its_events_come_in(shop, first):
    intent_id, _ = held(shop)
    authorized = events_of(shop, intent_id)
    deliver(shop, authorized)
    assert shop.ledger.get_order(intent_id)["status"] == "authorized"

    bookpay(shop, "intent", "cancel", intent_id)
    released = events_of(shop, intent_id, {event["id"] for event in authorized})
    assert {"charge.refunded", "payment_intent.canceled"} <= {e["type"] for e in released}
    released.sort(key=lambda event: event["type"] != first)
    answers = deliver(shop, released + released)  # and each again

    order = shop.ledger.get_order(intent_id)
    assert (order["status"], order["amount_refunded"]) == ("canceled", 0)
    refunded = shop.ledger.get_event(answers["charge.refunded"]["id"])
    assert refunded["handled"] == 0
    assert refunded["outcome"].startswith("not refunded: the Charge was never captured")
    assert refunded["outcome"].endswith(f"order {order['id']} is canceled")
    assert shop.ledger.get_event(answers["payment_intent.canceled"]["id"])["handled"] == 1
    assert_checks_clean(shop, order["id"])


def captured(shop: Shop, part: int, item: str = "1") -> tuple[str, int, set[str]]:
    """A held checkout captured in part through `bookpay intent capture --amount`, with all its
    events delivered: (its id, the amount held, the events delivered)."""
    intent_id, amount = held(shop, item)
    bookpay(shop, "intent", "capture", intent_id, "--amount", str(part))
    events = events_of(shop, intent_id)
    assert "charge.refunded" in {event["type"] for event in events}  # the release
    answers = deliver(shop, events)
    assert answers["payment_intent.succeeded"]["handled"] is True  # fulfilled
    assert shop.fulfiller.taxes.drain(10)
    return intent_id, amount, {event["id"] for event in events}


def test_a_partial_capture_releases_the_rest_and_the_order_is_paid(shop):
    intent_id, amount, _ = captured(shop, 1500)
    charge = api(shop, "GET", f"/v1/payment_intents/{intent_id}?expand[]=latest_charge")
    charge = charge["latest_charge"]
    assert (charge["amount_captured"], charge["amount_refunded"]) == (1500, amount - 1500)

    order = shop.ledger.get_order(intent_id)
    assert (order["status"], order["amount_refunded"]) == ("paid", 0)
    assert order["fulfilled_at"] is not None
    total = sales_total(shop)  # the money taken; the rest of the hold was never the shop's
    assert (total["gross"], total["refunded"], total["net"]) == (1500, 0, 1500)
    assert_checks_clean(shop, order["id"])


def test_refunds_after_a_partial_capture_count_only_the_money_captured(shop):
    intent_id, _, delivered = captured(shop, 1500)

    bookpay(shop, "refund", "create", intent_id, "--amount", "500")
    refund_events = events_of(shop, intent_id, delivered)
    deliver(shop, refund_events)
    delivered |= {event["id"] for event in refund_events}
    order = shop.ledger.get_order(intent_id)
    assert (order["status"], order["amount_refunded"]) == ("partially_refunded", 500)
    total = sales_total(shop)
    assert (total["gross"], total["refunded"], total["net"]) == (1500, 500, 1000)

    bookpay(shop, "refund", "create", intent_id)  # the rest of what was captured
    deliver(shop, events_of(shop, intent_id, delivered))
    order = shop.ledger.get_order(intent_id)
    assert (order["status"], order["amount_refunded"]) == ("refunded", 1500)
    total = sales_total(shop)
    assert (total["gross"], total["refunded"], total["net"]) == (1500, 1500, 0)
    assert_checks_clean(shop, order["id"])


def test_a_kwd_order_captured_in_part_then_refunded_leaves_nothing_in_stripe_tax(
    tmp_path, emulator, database_url, monkeypatch
):
    """6.740 KWD held (tax 0.3712 rounded down to 0.370; Stripe Tax holds 6.741), 3.000
    captured: the reversals of the release and of the refund of what was captured take back
    what they gave back, but the one worked out last, completing the full refund, takes what is
    left of the transaction (one fils more)."""
    monkeypatch.setattr("bookpay.taxrecords.WAIT_FOR_TRANSACTION", 60.0)  # as in ``shop``
    with open_shop(tmp_path, emulator, database_url, one_book("kwd", 5120, 1250)) as kwd:
        intent_id, amount, delivered = captured(kwd, 3000, "b1")
        assert amount == 6740
        bookpay(kwd, "refund", "create", intent_id)  # all that was captured
        deliver(kwd, events_of(kwd, intent_id, delivered))
        order = kwd.ledger.get_order(intent_id)
        assert (order["status"], order["amount_refunded"]) == ("refunded", 3000)
        assert_checks_clean(kwd, order["id"])
        records = kwd.records(order["id"])
        assert [(r["kind"], r["amount"], r["reversed"]) for r in records] == [
            ("transaction", None, None),
            ("reversal", 3740, 3740),
            ("reversal", 3000, 3000),
        ]
        # Whichever is worked out last (the release's waits for the transaction) takes what
        # the other left of the 6.741 KWD Stripe Tax holds.
        assert sum(r["send_amount"] for r in records[1:]) == 6741
        assert stripe_tax_left(kwd, records) == {}
        assert tax_kept(kwd, order["id"]) == 0


def test_a_partially_captured_order_says_what_was_captured_everywhere(shop):
    """Not only the report: the export (CSV and JSON, its last column), `orders list` (table and
    --json), `orders show` (text and --json) and the receipt say the 1500 taken of the 2967
    held."""
    intent_id, amount, _ = captured(shop, 1500)
    assert amount == 2967

    rows = list(csv.DictReader(io.StringIO(bookpay(shop, "orders", "export"))))
    (row,) = [row for row in rows if row["payment_intent"] == intent_id]
    assert (row["amount"], row["amount_refunded"], row["amount_captured"]) == ("2967", "0", "1500")
    assert list(row)[-1] == "amount_captured"  # after every column exported before it
    for fmt in ("json", "jsonl"):
        text = bookpay(shop, "orders", "export", "--format", fmt)
        (exported,) = json.loads(text) if fmt == "json" else map(json.loads, text.splitlines())
        assert (exported["amount"], exported["amount_captured"]) == (2967, 1500)
    (listed,) = json.loads(bookpay(shop, "orders", "list", "--json"))
    assert (listed["amount"], listed["amount_captured"]) == (2967, 1500)
    (row,) = [line for line in bookpay(shop, "orders", "list").splitlines() if listed["id"] in line]
    assert "$15.00 of $29.67" in row  # the Amount column: taken, of what was held
    shown = json.loads(bookpay(shop, "orders", "show", intent_id, "--json"))
    assert (shown["amount"], shown["amount_captured"]) == (2967, 1500)
    text = bookpay(shop, "orders", "show", intent_id)
    assert "Captured:       $15.00 of $29.67 (the rest released)" in text.splitlines()

    receipt = shop.ledger.receipt_for(intent_id)
    body = receipt["body"].splitlines()
    assert [line for line in body if line.startswith("Total")] == ["Total paid:     $15.00"]
    assert "Authorized:     $29.67, of which $14.67 was released, not charged" in body
    assert receipt["subject"].endswith("($15.00)")


def test_the_success_page_after_a_partial_capture_says_what_was_released(shop):
    """The page the shopper returns to shows the quote's subtotal, shipping and tax (29.67) and
    the 15.00 charged: it says, in the receipt's words, what of the hold was released."""
    from test_server import success_url

    intent_id, _, _ = captured(shop, 1500)
    secret = api(shop, "GET", f"/v1/payment_intents/{intent_id}")["client_secret"]
    page = shop.shopper.get(success_url(intent_id, secret)).shown
    assert '<dd id="receipt-amount">$15.00</dd>' in page
    assert (
        '<dt>Authorized</dt><dd id="receipt-released">$29.67, of which $14.67 was released,'
        " not charged</dd>"
    ) in page
    full, _ = held(shop)  # captured in full: nothing released, nothing said
    api(shop, "POST", f"/v1/payment_intents/{full}/capture", {})
    secret = api(shop, "GET", f"/v1/payment_intents/{full}")["client_secret"]
    page = shop.shopper.get(success_url(full, secret)).shown
    assert '<dd id="receipt-amount">$29.67</dd>' in page and "receipt-released" not in page


def tax_kept(shop: Shop, order_id: str) -> int:
    """The tax Stripe Tax holds for an order: its transaction's, less its reversals'."""
    total = 0
    for record in shop.records(order_id):
        transaction = api(shop, "GET", f"/v1/tax/transactions/{record['stripe_id']}")
        items = api(shop, "GET", f"/v1/tax/transactions/{record['stripe_id']}/line_items")
        total += sum(item["amount_tax"] for item in items["data"])
        total += (transaction.get("shipping_cost") or {}).get("amount_tax") or 0
    return total


@pytest.mark.parametrize(
    ("part", "shipping", "tax"),
    [(300, 50, 17), (1500, 253, 84)],  # of 2300 + 500 shipping + 167 tax, shared to the cent
)
def test_the_report_scales_shipping_and_tax_to_what_a_partial_capture_took(
    shop, part, shipping, tax
):
    """The gross is what was captured, so its shipping and tax are the quote's in proportion
    (never the whole quote's 500 and 167 out of 300 taken): they add up with the books' share
    to the gross, and the tax is what Stripe Tax keeps once the released rest is reversed."""
    intent_id, amount, _ = captured(shop, part)
    assert amount == 2967
    order = shop.ledger.get_order(intent_id)
    assert_checks_clean(shop, order["id"])  # the release's tax reversal recorded
    total = sales_total(shop)
    assert (total["gross"], total["shipping"], total["tax"]) == (part, shipping, tax)
    assert abs(tax_kept(shop, order["id"]) - tax) <= 1
    books = json.loads(bookpay(shop, "report", "sales", "--by", "book", "--json"))
    (book,) = books["currencies"][0]["rows"]
    assert (book["gross"], book["shipping"], book["tax"]) == (part, shipping, tax)


def test_the_tax_reversal_of_a_released_rest_is_a_release_not_a_refund(shop):
    """`orders show` and `intent show` name the reversal of what a partial capture released
    "release re_...", as the refunds list calls it Released: no money went back. A refund of
    the money captured, afterwards, is a refund."""
    intent_id, amount, delivered = captured(shop, 300)
    bookpay(shop, "refund", "create", intent_id, "--amount", "100")
    deliver(shop, events_of(shop, intent_id, delivered))
    order = shop.ledger.get_order(intent_id)
    assert_checks_clean(shop, order["id"])
    refunds = api(shop, "GET", f"/v1/refunds?payment_intent={intent_id}")["data"]
    release, refund = sorted(refunds, key=lambda r: r["amount"], reverse=True)
    assert (release["amount"], refund["amount"]) == (amount - 300, 100)
    for command in ("orders", "intent"):
        shown = " ".join(bookpay(shop, command, "show", intent_id).split())  # however wrapped
        assert f"Tax reversal: release {release['id']} ($26.67): reversal " in shown, command
        assert f"Tax reversal: refund {refund['id']} ($1.00): reversal " in shown, command
        assert f"refund {release['id']}" not in shown, command
