"""Stripe Tax transactions and reversals in the emulator, through stripe-python's typed services.

The figures follow Stripe's "Collect taxes" guide: a transaction per calculation, reversals with
negative amounts, a flat amount spread over what each line has left (the guide's 10 USD and 20 USD
items taxed at 10%, here Australia's GST in the emulator's TEST rates).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import stripe

BOOK = "txcd_35010000"
_refs = itertools.count()


def ref(prefix: str = "ref") -> str:
    return f"{prefix}-{next(_refs)}-{id(_refs)}"


def calculation(
    client: stripe.StripeClient,
    *amounts: int,
    country: str = "AU",
    shipping: int | None = None,
) -> stripe.tax.Calculation:
    params: dict[str, Any] = {
        "currency": "usd",
        "line_items": [
            {"amount": amount, "reference": f"L{i}", "tax_code": BOOK}
            for i, amount in enumerate(amounts, start=1)
        ],
        "customer_details": {"address": {"country": country}, "address_source": "billing"},
    }
    if shipping is not None:
        params["shipping_cost"] = {"amount": shipping}
    return client.v1.tax.calculations.create(params=params)  # type: ignore[arg-type]


def record(
    client: stripe.StripeClient, calc: stripe.tax.Calculation, reference: str | None = None
) -> stripe.tax.Transaction:
    return client.v1.tax.transactions.create_from_calculation(
        params={
            "calculation": calc.id,
            "reference": reference or ref("order"),
            "expand": ["line_items"],
        }
    )


def reverse(client: stripe.StripeClient, original: str, **params: Any) -> stripe.tax.Transaction:
    return client.v1.tax.transactions.create_reversal(
        params={
            "original_transaction": original,
            "reference": ref("refund"),
            "expand": ["line_items"],
            **params,
        }
    )


def refused(call: Any, *args: Any, **kwargs: Any) -> stripe.StripeError:
    with pytest.raises(stripe.StripeError) as info:
        call(*args, **kwargs)
    assert info.value.http_status == 400
    return info.value


def amounts(txn: stripe.tax.Transaction) -> list[tuple[int, int]]:
    return [(li.amount, li.amount_tax) for li in txn.line_items.data]


def test_a_transaction_records_the_calculation(client: stripe.StripeClient) -> None:
    calc = calculation(client, 1000, 2000, shipping=500)
    txn = record(client, calc, "ord_123")
    assert (txn.object, txn.type, txn.reference, txn.reversal) == (
        "tax.transaction",
        "transaction",
        "ord_123",
        None,
    )
    assert txn.id.startswith("tax_") and txn.currency == "usd"
    assert amounts(txn) == [(1000, 100), (2000, 200)]
    assert [(li.reference, li.type, li.tax_code) for li in txn.line_items.data] == [
        ("L1", "transaction", BOOK),
        ("L2", "transaction", BOOK),
    ]
    assert (txn.shipping_cost.amount, txn.shipping_cost.amount_tax) == (500, 50)
    assert txn.tax_date == calc.tax_date and txn.posted_at == txn.created
    assert txn.customer_details.to_dict() == calc.customer_details.to_dict()
    got = client.v1.tax.transactions.retrieve(txn.id)
    assert "line_items" not in got and "tax_breakdown" not in got.shipping_cost
    listed = client.v1.tax.transactions.line_items.list(txn.id, params={"limit": 1})
    assert [li.id for li in listed.data] == [txn.line_items.data[0].id] and listed.has_more


def test_one_transaction_per_calculation(client: stripe.StripeClient) -> None:
    calc = calculation(client, 1000)
    first = record(client, calc)
    error = refused(record, client, calc)
    assert (error.code, error.param) == ("resource_already_exists", "calculation")
    assert first.id in error.user_message
    # The same request with the same idempotency key is the first answer again.
    params = {"calculation": calculation(client, 1000).id, "reference": ref()}
    options = {"idempotency_key": f"tax-{params['calculation']}"}
    create = client.v1.tax.transactions.create_from_calculation
    once = create(params=params, options=options)  # type: ignore[arg-type]
    assert create(params=params, options=options).id == once.id  # type: ignore[arg-type]


def test_references_are_unique_across_transactions_and_reversals(client: stripe.StripeClient):
    txn = record(client, calculation(client, 1000), "ord_unique")
    error = refused(record, client, calculation(client, 1000), "ord_unique")
    assert (error.code, error.param) == ("resource_already_exists", "reference")
    reversal = reverse(client, txn.id, mode="full", reference="re_unique")
    error = refused(record, client, calculation(client, 1000), reversal.reference)
    assert (error.code, error.param) == ("resource_already_exists", "reference")


def test_an_unknown_calculation_makes_no_transaction(client) -> None:
    # An expired one: test_emu_clock.py, which moves an emulator's clock past its expiry.
    error = refused(record, client, type("Calc", (), {"id": "taxcalc_nope"}))
    assert (error.code, error.param) == ("resource_missing", "calculation")


def test_a_full_reversal_takes_everything_back_once(client: stripe.StripeClient) -> None:
    txn = record(client, calculation(client, 1000, 2000, shipping=500))
    reversal = reverse(client, txn.id, mode="full", metadata={"refund": "re_1"})
    assert (reversal.type, reversal.reversal.original_transaction) == ("reversal", txn.id)
    assert amounts(reversal) == [(-1000, -100), (-2000, -200)]
    assert [li.reversal.original_line_item for li in reversal.line_items.data] == [
        li.id for li in txn.line_items.data
    ]
    assert (reversal.shipping_cost.amount, reversal.shipping_cost.amount_tax) == (-500, -50)
    assert reversal.metadata.to_dict() == {"refund": "re_1"}
    for params in ({"mode": "full"}, {"mode": "partial", "flat_amount": -1}):
        error = refused(reverse, client, txn.id, **params)
        assert error.param == "original_transaction" and "fully reversed" in error.user_message


def test_a_partial_reversal_by_line_takes_at_most_what_is_left(client: stripe.StripeClient):
    txn = record(client, calculation(client, 1000, 2000))
    line = txn.line_items.data[0]

    def back(amount: int, tax: int, **extra: Any) -> stripe.tax.Transaction:
        item = {"original_line_item": line.id, "reference": ref("L1"), "amount": amount,
                "amount_tax": tax, **extra}  # fmt: skip
        return reverse(client, txn.id, mode="partial", line_items=[item])

    half = back(-500, -50, quantity=1, metadata={"why": "damaged"})
    assert amounts(half) == [(-500, -50)]
    assert half.line_items.data[0].metadata.to_dict() == {"why": "damaged"}
    error = refused(back, -501, -50)
    assert error.param == "line_items[0][amount]" and "(-501)" in error.user_message
    error = refused(back, -500, -51)
    assert error.param == "line_items[0][amount_tax]"
    assert amounts(back(-500, -50)) == [(-500, -50)]  # exactly what was left
    assert refused(back, -1, 0).param == "line_items[0][amount]"
    assert refused(back, 1, 0).user_message == "This value must be less than or equal to 0."
    unknown = {"original_line_item": "tax_li_nope", "reference": "x", "amount": -1,
               "amount_tax": 0}  # fmt: skip
    error = refused(reverse, client, txn.id, mode="partial", line_items=[unknown])
    assert (error.code, error.param) == ("resource_missing", "line_items[0][original_line_item]")


def test_a_flat_amount_is_spread_as_stripe_documents(client: stripe.StripeClient) -> None:
    txn = record(client, calculation(client, 1000, 2000))  # 11.00 and 22.00 with 10% tax
    assert amounts(reverse(client, txn.id, mode="partial", flat_amount=-1650)) == [
        (-500, -50),
        (-1000, -100),
    ]
    again = record(client, calculation(client, 1000, 2000))
    first = again.line_items.data[0]
    whole_line = {"original_line_item": first.id, "reference": "L1", "amount": -1000,
                  "amount_tax": -100}  # fmt: skip
    reverse(client, again.id, mode="partial", line_items=[whole_line])
    # What is left is the 20 USD item: the 16.50 USD all goes to it.
    assert amounts(reverse(client, again.id, mode="partial", flat_amount=-1650)) == [
        (0, 0),
        (-1500, -150),
    ]
    error = refused(reverse, client, again.id, mode="partial", flat_amount=-551)
    assert error.param == "flat_amount" and "(-550)" in error.user_message


def test_a_flat_amount_covers_the_shipping_and_adds_up(client: stripe.StripeClient) -> None:
    txn = record(client, calculation(client, 999, 333, shipping=101))
    reversal = reverse(client, txn.id, mode="partial", flat_amount=-1001,
                       expand=["line_items", "shipping_cost.tax_breakdown"])  # fmt: skip
    shipping = reversal.shipping_cost
    total = sum(a + t for a, t in amounts(reversal)) + shipping.amount + shipping.amount_tax
    assert total == -1001
    breakdown = shipping.tax_breakdown[0]
    assert (breakdown.amount, breakdown.taxable_amount) == (shipping.amount_tax, shipping.amount)


def test_a_partial_reversal_of_the_shipping(client: stripe.StripeClient) -> None:
    txn = record(client, calculation(client, 1000, shipping=500))
    reversal = reverse(client, txn.id, mode="partial",
                       shipping_cost={"amount": -500, "amount_tax": -50})  # fmt: skip
    assert reversal.line_items.data == []
    assert (reversal.shipping_cost.amount, reversal.shipping_cost.amount_tax) == (-500, -50)
    error = refused(reverse, client, txn.id, mode="partial",
                    shipping_cost={"amount": -1, "amount_tax": 0})  # fmt: skip
    assert error.param == "shipping_cost[amount]"
    without = record(client, calculation(client, 1000))
    error = refused(reverse, client, without.id, mode="partial",
                    shipping_cost={"amount": -1, "amount_tax": 0})  # fmt: skip
    assert error.param == "shipping_cost"


@pytest.mark.parametrize(
    ("params", "param", "code"),
    [
        ({"mode": "partial"}, "line_items", "parameter_missing"),
        ({"mode": "partial", "flat_amount": 100}, "flat_amount", None),
        (
            {"mode": "partial", "flat_amount": -1, "line_items": [{"amount": -1}]},
            "flat_amount",
            None,
        ),
        ({"mode": "full", "flat_amount": -1}, "flat_amount", None),
        ({"mode": "sideways"}, "mode", None),
        (
            {"mode": "full", "original_transaction": "tax_nope"},
            "original_transaction",
            "resource_missing",
        ),
    ],
)
def test_reversal_requests_stripe_refuses(client, params, param, code) -> None:
    txn = record(client, calculation(client, 1000))
    error = refused(reverse, client, txn.id, **params)
    assert (error.param, error.code) == (param, code)


def test_undoing_a_partial_reversal_gives_its_amounts_back(client: stripe.StripeClient) -> None:
    txn = record(client, calculation(client, 1000))
    partial = reverse(client, txn.id, mode="partial", flat_amount=-1100)
    assert refused(reverse, client, txn.id, mode="partial", flat_amount=-1).param == "flat_amount"
    error = refused(reverse, client, partial.id, mode="partial", flat_amount=-1)
    assert "can only be reversed in full" in error.user_message
    undo = reverse(client, partial.id, mode="full")
    assert amounts(undo) == [(1000, 100)]
    assert amounts(reverse(client, txn.id, mode="partial", flat_amount=-1100)) == [(-1000, -100)]
    error = refused(reverse, client, undo.id, mode="full")
    assert error.param == "original_transaction" and "undoes a reversal" in error.user_message


def test_at_most_30_partial_reversals(client: stripe.StripeClient) -> None:
    txn = record(client, calculation(client, 9000))
    for _ in range(30):
        reverse(client, txn.id, mode="partial", flat_amount=-1)
    error = refused(reverse, client, txn.id, mode="partial", flat_amount=-1)
    assert error.param == "original_transaction" and "30 partial reversals" in error.user_message
    assert reverse(client, txn.id, mode="full").type == "reversal"
