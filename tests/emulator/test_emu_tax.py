"""Stripe Tax calculations in the emulator, through stripe-python's typed services.

Amounts come from the emulator's TEST rates (bookpay/emulator/tax_rates.py), which are a stand-in
for testing, not tax advice: 6.25% in Texas, 4% in New York, 7.25% in California (shipping
exempt), none in Oregon, 0% on books in the United Kingdom, 7% on books in Germany (19% on other
goods), Brazil not registered.
"""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from bookpay.emulator import wire

BOOK = "txcd_35010000"
TEXAS = {"line1": "1 Congress Ave", "city": "Austin", "state": "TX", "postal_code": "78701",
         "country": "US"}  # fmt: skip
LOCATION_INVALID = (
    "We could not determine the customer's tax location based on the provided customer address."
)


def lines(*amounts: int, code: str = BOOK, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"amount": amount, "reference": f"book-{i}", "tax_code": code, **extra}
        for i, amount in enumerate(amounts, start=1)
    ]


def calculate(
    client: stripe.StripeClient,
    address: dict[str, Any],
    line_items: list[dict[str, Any]] | None = None,
    shipping: int | None = 500,
    **extra: Any,
) -> stripe.tax.Calculation:
    params: dict[str, Any] = {
        "currency": "usd",
        "line_items": line_items or lines(2300, 5000),
        "customer_details": {"address": address, "address_source": "shipping"},
        **extra,
    }
    if shipping is not None:
        params["shipping_cost"] = {"amount": shipping}
    return client.v1.tax.calculations.create(params=params)  # type: ignore[arg-type]


def refused(call: Any, *args: Any, **kwargs: Any) -> stripe.StripeError:
    with pytest.raises(stripe.StripeError) as info:
        call(*args, **kwargs)
    return info.value


def rates(calc: stripe.tax.Calculation) -> list[tuple[str, str, int, int]]:
    return [
        (b.taxability_reason, b.tax_rate_details.percentage_decimal, b.amount, b.taxable_amount)
        for b in calc.tax_breakdown
    ]


def test_a_taxed_us_state_taxes_books_and_shipping(client: stripe.StripeClient) -> None:
    calc = calculate(client, TEXAS, expand=["line_items"])
    # 6.25% of 2300, 5000 and 500, each rounded half up: 143.75, 312.5, 31.25.
    assert [li.amount_tax for li in calc.line_items.data] == [144, 313]
    assert calc.shipping_cost.amount_tax == 31
    assert (calc.tax_amount_exclusive, calc.tax_amount_inclusive) == (488, 0)
    assert calc.amount_total == 2300 + 5000 + 500 + 488
    assert calc.id.startswith("taxcalc_") and calc.object == "tax.calculation"
    assert rates(calc) == [("standard_rated", "6.25", 488, 7800)]
    details = calc.tax_breakdown[0].tax_rate_details
    assert (details.country, details.state, details.tax_type, details.rate_type) == (
        "US",
        "TX",
        "sales_tax",
        "percentage",
    )
    assert calc.customer_details.address.to_dict() == {**TEXAS, "line2": None}
    assert calc.customer_details.address_source == "shipping"
    assert calc.expires_at == calc.tax_date + 90 * 24 * 3600
    assert abs(calc.tax_date - wire.now()) < 60


def test_changing_the_state_changes_the_tax(client: stripe.StripeClient) -> None:
    texas = calculate(client, TEXAS)
    new_york = calculate(client, {"state": "New York", "postal_code": "10001", "country": "US"})
    zip_only = calculate(client, {"postal_code": "10001-1234", "country": "US"})
    assert texas.tax_amount_exclusive == 488
    assert new_york.tax_amount_exclusive == zip_only.tax_amount_exclusive == 312  # 4% of 7800
    assert zip_only.tax_breakdown[0].tax_rate_details.state == "NY"


def test_books_zero_rated_and_reduced_and_shipping_follows_them(client: stripe.StripeClient):
    deep = ["line_items.data.tax_breakdown", "shipping_cost.tax_breakdown"]
    britain = calculate(client, {"country": "GB"}, expand=deep)
    assert britain.amount_total == 7800 and britain.tax_amount_exclusive == 0
    assert rates(britain) == [("zero_rated", "0.0", 0, 7800)]
    assert britain.tax_breakdown[0].tax_rate_details.rate_type == "percentage"
    line = britain.line_items.data[0].tax_breakdown[0]
    assert line.tax_rate_details.to_dict() == {
        "display_name": "VAT",
        "percentage_decimal": "0.0",
        "tax_type": "vat",
    }
    assert line.jurisdiction.to_dict() == {
        "country": "GB",
        "display_name": "United Kingdom",
        "level": "country",
        "state": None,
    }
    germany = calculate(client, {"country": "DE"})
    assert rates(germany) == [("reduced_rated", "7.0", 546, 7800)]  # 161 + 350 + 35
    mixed = [{"amount": 1000, "tax_code": "txcd_99999999"}, {"amount": 1000, "tax_code": BOOK}]
    goods = calculate(client, {"country": "DE"}, mixed)
    # A general good at 19%, a book at 7%; the shipping goes at the higher of the two.
    assert rates(goods) == [("standard_rated", "19.0", 190 + 95, 1500), ("reduced_rated", "7.0",
                            70, 1000)]  # fmt: skip


def test_tax_included_in_the_prices(client: stripe.StripeClient) -> None:
    inclusive = lines(2300, tax_behavior="inclusive")
    calc = calculate(client, {"country": "DE"}, inclusive, shipping=None, expand=["line_items"])
    assert calc.line_items.data[0].amount_tax == 150  # 2300 x 7/107 = 150.47
    assert (calc.amount_total, calc.tax_amount_exclusive, calc.tax_amount_inclusive) == (
        2300,
        0,
        150,
    )
    assert calc.tax_breakdown[0].inclusive is True
    assert calc.tax_breakdown[0].taxable_amount == 2150


def test_where_no_tax_applies(client: stripe.StripeClient) -> None:
    deep = ["shipping_cost.tax_breakdown", "line_items.data.tax_breakdown"]
    california = calculate(client, {"postal_code": "94080", "country": "US"}, expand=deep)
    assert california.shipping_cost.amount_tax == 0
    assert rates(california) == [
        ("standard_rated", "7.25", 167 + 363, 7300),
        ("product_exempt", "0.0", 0, 0),
    ]
    shipping = california.shipping_cost.tax_breakdown[0]
    assert (shipping.taxability_reason, shipping.tax_rate_details) == ("product_exempt", None)
    oregon = calculate(client, {"postal_code": "97201", "country": "US"})
    assert rates(oregon) == [("not_subject_to_tax", "0.0", 0, 0)]
    assert oregon.tax_breakdown[0].tax_rate_details.tax_type is None
    brazil = calculate(client, {"country": "BR"}, expand=deep)
    assert rates(brazil) == [("not_collecting", "0.0", 0, 0)]
    assert brazil.line_items.data[0].tax_breakdown[0].jurisdiction.country == "BR"
    nontaxable = calculate(client, TEXAS, lines(1000, code="txcd_00000000"), shipping=None)
    assert rates(nontaxable) == [("product_exempt", "0.0", 0, 0)]


@pytest.mark.parametrize("override", ["customer_exempt", "reverse_charge"])
def test_taxability_overrides(client: stripe.StripeClient, override: str) -> None:
    calc = calculate(client, {}, customer_details={"address": {"country": "FR"},
                                                    "taxability_override": override})  # fmt: skip
    assert calc.customer_details.taxability_override == override
    assert rates(calc) == [(override, "0.0", 0, 0)]
    assert calc.amount_total == 7800


def test_a_customer_gives_its_address(client: stripe.StripeClient) -> None:
    shipping = {"name": "Ada", "address": {"line1": "1 Road", "country": "GB"}}
    customer = client.v1.customers.create(params={"shipping": shipping})
    calc = client.v1.tax.calculations.create(
        params={"currency": "usd", "line_items": lines(2300), "customer": customer.id}
    )
    assert calc.customer == customer.id
    assert calc.customer_details.address.country == "GB"
    assert calc.customer_details.address_source == "shipping"
    nowhere = client.v1.customers.create(params={"email": "x@example.com"})
    error = refused(
        client.v1.tax.calculations.create,
        params={"currency": "usd", "line_items": lines(2300), "customer": nowhere.id},
    )
    assert (error.code, error.param) == ("customer_tax_location_invalid", "customer")
    error = refused(
        client.v1.tax.calculations.create,
        params={"currency": "usd", "line_items": lines(2300), "customer": "cus_nobody"},
    )
    assert (error.code, error.http_status) == ("resource_missing", 400)


@pytest.mark.parametrize(
    "address",
    [
        {"country": "US"},  # a US address needs a ZIP code at least
        {"country": "US", "state": "TX"},
        {"country": "US", "postal_code": "7870"},
        {"country": "US", "postal_code": "ABCDE"},
        {"country": "US", "postal_code": "10001", "state": "CA"},  # New York's ZIP code
        {"country": "US", "postal_code": "78701", "state": "Texass"},
        {"country": "US", "postal_code": "00000"},  # no state and an unassigned prefix
        {"country": "CA"},  # Canada: a postal code or a province
        {"country": "CA", "state": "XX"},
        {"country": "CA", "postal_code": "12345"},
        {"country": "XX"},
        {"country": "Germany"},
    ],
)
def test_addresses_too_vague_or_wrong_to_tax(client: stripe.StripeClient, address) -> None:
    error = refused(calculate, client, address)
    assert isinstance(error, stripe.InvalidRequestError)
    assert (error.http_status, error.code, error.param) == (
        400,
        "customer_tax_location_invalid",
        "customer_details[address]",
    )
    assert error.user_message == LOCATION_INVALID


@pytest.mark.parametrize(
    "address",
    [
        {"country": "CA", "postal_code": "K1A 0B1"},
        {"country": "CA", "state": "QC"},
        {"country": "JP"},
        {"country": "us", "postal_code": "99501"},
    ],
)
def test_addresses_precise_enough(client: stripe.StripeClient, address) -> None:
    assert calculate(client, address).amount_total >= 7800


@pytest.mark.parametrize(
    ("params", "code", "param"),
    [
        ({"line_items": lines(100)}, "parameter_missing", "customer_details"),
        (
            {"line_items": lines(100), "customer_details": {"address_source": "billing"}},
            "parameter_missing",
            "customer_details[address]",
        ),
        (
            {"line_items": lines(100), "customer_details": {"address": {"city": "Paris"}}},
            "parameter_missing",
            "customer_details[address][country]",
        ),
        ({"customer_details": {"address": {"country": "GB"}}}, "parameter_missing", "line_items"),
    ],
)
def test_missing_parameters(client: stripe.StripeClient, params, code, param) -> None:
    error = refused(client.v1.tax.calculations.create, params={"currency": "usd", **params})
    assert (error.http_status, error.code, error.param) == (400, code, param)


@pytest.mark.parametrize(
    ("line", "param", "message"),
    [
        ({"amount": -1}, "line_items[0][amount]", "greater than or equal to 0"),
        ({"amount": 100, "quantity": 0}, "line_items[0][quantity]", "greater than or equal to 1"),
        ({"amount": 100, "tax_code": "books"}, "line_items[0][tax_code]", "No such tax_code"),
        (
            {"amount": 100, "tax_behavior": "sometimes"},
            "line_items[0][tax_behavior]",
            "must be one of exclusive, inclusive",
        ),
        ({"amount": 100_000_000}, "line_items[0][amount]", "less than or equal to 99999999"),
    ],
)
def test_invalid_line_items(client: stripe.StripeClient, line, param, message) -> None:
    error = refused(calculate, client, {"country": "GB"}, [line])
    assert error.param == param and message in error.user_message
    assert error.http_status == 400


def test_references_are_unique_and_default_to_l1_l2(client: stripe.StripeClient) -> None:
    twice = [{"amount": 100, "reference": "a"}, {"amount": 100, "reference": "a"}]
    error = refused(calculate, client, {"country": "GB"}, twice)
    assert error.param == "line_items[1][reference]"
    unnamed = [{"amount": 100}, {"amount": 100, "reference": "L1"}, {"amount": 100}]
    calc = calculate(client, {"country": "GB"}, unnamed, expand=["line_items"])
    assert [li.reference for li in calc.line_items.data] == ["L2", "L1", "L3"]
    assert calc.line_items.data[0].tax_code == "txcd_10000000"  # the preset code, as Stripe's


def test_line_items_and_breakdowns_only_when_expanded(client: stripe.StripeClient) -> None:
    calc = calculate(client, TEXAS)
    assert "line_items" not in calc and "tax_breakdown" not in calc.shipping_cost
    got = client.v1.tax.calculations.retrieve(calc.id, params={"expand": ["line_items"]})
    assert len(got.line_items.data) == 2 and "tax_breakdown" not in got.line_items.data[0]
    assert got.line_items.url == f"/v1/tax/calculations/{calc.id}/line_items"
    deep = client.v1.tax.calculations.retrieve(
        calc.id, params={"expand": ["line_items.data.tax_breakdown"]}
    )
    assert deep.line_items.data[1].tax_breakdown[0].amount == 313
    assert "tax_breakdown" not in deep.shipping_cost
    for path in ("line_items.data.bogus", "shipping_cost.tax_breakdown.amount", "tax_date"):
        error = refused(client.v1.tax.calculations.retrieve, calc.id, params={"expand": [path]})
        assert error.param == "expand" and "cannot be expanded" in error.user_message


def test_line_items_list_pages_in_order(client: stripe.StripeClient) -> None:
    many = lines(*range(100, 1300, 100))  # twelve lines
    calc = calculate(client, {"country": "GB"}, many, expand=["line_items"])
    assert len(calc.line_items.data) == 10 and calc.line_items.has_more
    service = client.v1.tax.calculations.line_items
    first = service.list(calc.id, params={"limit": 5})
    rest = service.list(calc.id, params={"limit": 10, "starting_after": first.data[-1].id})
    assert [li.amount for li in first.data + rest.data] == list(range(100, 1300, 100))
    assert first.has_more and not rest.has_more
    before = service.list(calc.id, params={"limit": 2, "ending_before": rest.data[0].id})
    assert [li.amount for li in before.data] == [400, 500] and before.has_more
    error = refused(service.list, calc.id, params={"starting_after": "tax_li_nope"})
    assert (error.code, error.param) == ("resource_missing", "starting_after")
    assert [li.object for li in first.data] == ["tax.calculation_line_item"] * 5


def test_idempotent_calculations(client: stripe.StripeClient) -> None:
    params = {"currency": "usd", "line_items": lines(100),
              "customer_details": {"address": {"country": "GB"}}}  # fmt: skip
    first = client.v1.tax.calculations.create(params=params, options={"idempotency_key": "k-tax"})
    again = client.v1.tax.calculations.create(params=params, options={"idempotency_key": "k-tax"})
    assert again.id == first.id
    other = {**params, "currency": "eur"}
    error = refused(
        client.v1.tax.calculations.create, params=other, options={"idempotency_key": "k-tax"}
    )
    assert isinstance(error, stripe.IdempotencyError)


def test_stripe_sends_no_events_for_tax(client: stripe.StripeClient) -> None:
    before = client.v1.events.list(params={"limit": 100}).data
    calculate(client, TEXAS)
    after = client.v1.events.list(params={"limit": 100}).data
    assert [e.id for e in after] == [e.id for e in before]
