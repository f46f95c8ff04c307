"""The gateway's Stripe Tax calls, against the emulator through stripe-python over real HTTP.

Amounts come from the emulator's TEST rates (a stand-in, not tax advice): New York 4%, the
United Kingdom 0% on books.
"""

import dataclasses
import uuid

import pytest

from bookpay.errors import ConfigError, NotFound, PaymentError, UsageError
from bookpay.payments import Gateway, TaxLine

NEW_YORK = {"line1": "20 W 34th St", "line2": "", "city": "New York", "state": "NY",
            "postal_code": "10001", "country": "US"}  # fmt: skip
LINES = [TaxLine("1", 2300), TaxLine("3", 5600, quantity=2)]


@pytest.fixture
def gateway(settings):
    return Gateway(settings)


def calculate(gateway, address=NEW_YORK, **kwargs):
    options = {"currency": "usd", "address": address, "shipping_amount": 500, **kwargs}
    return gateway.create_tax_calculation(LINES, **options)


def test_a_calculation_of_a_quotes_lines_shipping_and_address(gateway):
    calc = calculate(gateway)
    items = calc["line_items"]["data"]
    assert [(i["reference"], i["amount"], i["quantity"]) for i in items] == [
        ("1", 2300, 1),
        ("3", 5600, 2),
    ]
    assert {(i["tax_code"], i["tax_behavior"]) for i in items} == {("txcd_35010000", "exclusive")}
    assert [i["amount_tax"] for i in items] == [92, 224]  # 4%
    assert calc["shipping_cost"]["amount"] == 500 and calc["shipping_cost"]["amount_tax"] == 20
    assert calc["amount_total"] == 2300 + 5600 + 500 + 336
    address = calc["customer_details"]["address"]
    assert address == {**NEW_YORK, "line2": None}
    assert calc["customer_details"]["address_source"] == "shipping"


def test_the_same_attempt_and_quote_get_the_same_calculation(gateway):
    attempt = str(uuid.uuid4())
    first = calculate(gateway, attempt_id=attempt)
    assert calculate(gateway, attempt_id=attempt)["id"] == first["id"]
    assert calculate(gateway, attempt_id=attempt, shipping_amount=1500)["id"] != first["id"]
    assert calculate(gateway, attempt_id=str(uuid.uuid4()))["id"] != first["id"]
    assert calculate(gateway)["id"] != calculate(gateway)["id"]


def test_prices_that_include_tax(gateway):
    calc = calculate(gateway, {"country": "DE"}, tax_behavior="inclusive")
    assert calc["tax_amount_exclusive"] == 0 and calc["tax_amount_inclusive"] > 0
    assert calc["amount_total"] == 2300 + 5600 + 500


def test_an_address_stripe_cannot_place(gateway):
    with pytest.raises(PaymentError) as info:
        calculate(gateway, {"country": "US", "state": "NY"})
    assert info.value.stripe_code == "customer_tax_location_invalid"
    assert info.value.http_status == 400
    assert "could not determine the customer's tax location" in info.value.message


def test_no_calculation_when_tax_is_off(settings):
    gateway = Gateway(dataclasses.replace(settings, tax="off"))
    with pytest.raises(ConfigError, match="BOOKPAY_TAX=off"):
        calculate(gateway)


def test_one_transaction_per_calculation_with_the_order_as_reference(gateway):
    calc = calculate(gateway)
    txn = gateway.create_tax_transaction(calc["id"], order_id="ord_tax_1")
    assert (txn["type"], txn["reference"]) == ("transaction", "ord_tax_1")
    assert [i["reference"] for i in txn["line_items"]["data"]] == ["1", "3"]
    # A duplicate webhook: the same calculation, the same transaction.
    assert gateway.create_tax_transaction(calc["id"], order_id="ord_tax_1")["id"] == txn["id"]
    # Another order id for the same calculation is refused, not a second transaction.
    with pytest.raises(PaymentError) as info:
        gateway.create_tax_transaction(calc["id"], order_id="ord_tax_2")
    assert info.value.error_type == "idempotency_error"
    assert gateway.retrieve_tax_transaction(txn["id"])["line_items"]["data"][0]["amount"] == 2300
    assert gateway.retrieve_tax_calculation(calc["id"])["id"] == calc["id"]
    with pytest.raises(NotFound):
        gateway.retrieve_tax_calculation("taxcalc_nope")


def test_reversals_full_and_partial_one_per_refund(gateway):
    txn = gateway.create_tax_transaction(calculate(gateway)["id"], order_id="ord_tax_3")
    partial = gateway.create_tax_reversal(txn["id"], refund_id="re_tax_1", amount=1040)
    assert (partial["type"], partial["reference"]) == ("reversal", "re_tax_1")
    assert partial["reversal"] == {"original_transaction": txn["id"]}
    lines = partial["line_items"]["data"]
    shipping = partial["shipping_cost"]
    total = sum(i["amount"] + i["amount_tax"] for i in lines) + shipping["amount"]
    assert total + shipping["amount_tax"] == -1040
    assert partial["metadata"] == {"refund": "re_tax_1"}
    again = gateway.create_tax_reversal(txn["id"], refund_id="re_tax_1", amount=1040)
    assert again["id"] == partial["id"]
    full = gateway.create_tax_reversal(txn["id"], refund_id="re_tax_2")
    assert [i["amount"] for i in full["line_items"]["data"]] == [-2300, -5600]
    with pytest.raises(UsageError):
        gateway.create_tax_reversal(txn["id"], refund_id="re_tax_3", amount=0)
    with pytest.raises(PaymentError, match="fully reversed"):
        gateway.create_tax_reversal(txn["id"], refund_id="re_tax_4", amount=100)
