"""Shipping rates in the catalog: the built-in ones, catalog files, and what an order may use."""

import json

import pytest
from typer.testing import CliRunner

from bookpay.catalog import Catalog
from bookpay.cli import app
from bookpay.errors import ConfigError, NotFound
from bookpay.shipping import DEFAULT_SHIPPING_RATES, ShippingRate, options_for

BOOK = {"id": "b", "title": "T", "author": "A", "amount": 2000, "currency": "eur"}
RATE = {
    "id": "eu",
    "display_name": "EU post",
    "amount": 700,
    "currency": "eur",
    "countries": ["DE", "fr"],
    "min_days": 2,
    "max_days": 4,
}


def ids(options):
    return [(option.rate.id, option.amount) for option in options]


def test_built_in_rates_serve_the_us_and_the_rest_of_the_world():
    catalog = Catalog.default()
    assert catalog.shipping_rates == DEFAULT_SHIPPING_RATES
    assert ids(catalog.shipping_options("US", 2300, "usd")) == [
        ("standard", 500),
        ("express", 1500),
    ]
    assert ids(catalog.shipping_options("de", 2300, "usd")) == [("international", 2500)]
    assert catalog.shipping_rate("express").delivery == "1-2 business days"


def test_free_from_makes_a_rate_free_at_the_threshold_and_above():
    catalog = Catalog.default()
    below = catalog.shipping_options("US", 4999, "usd")
    at = catalog.shipping_options("US", 5000, "usd")
    assert ids(below)[0] == ("standard", 500) and not below[0].free
    assert ids(at)[0] == ("standard", 0) and at[0].free
    assert at[0].to_dict() == {
        "id": "standard",
        "display_name": "Standard shipping",
        "amount": 0,
        "currency": "usd",
        "list_amount": 500,
        "free": True,
        "min_days": 3,
        "max_days": 5,
    }


def test_cheapest_first_then_fastest():
    slow = ShippingRate("slow", "Slow", 300, "usd", ("US",), 5, 9)
    fast = ShippingRate("fast", "Fast", 300, "usd", ("US",), 1, 2)
    dear = ShippingRate("dear", "Dear", 900, "usd", ("US",), 1, 1)
    cheap = ShippingRate("cheap", "Cheap", 900, "usd", ("US",), 9, 9, free_from=100)
    assert ids(options_for([dear, slow, cheap, fast], "US", 50, "usd")) == [
        ("fast", 300),
        ("slow", 300),
        ("dear", 900),
        ("cheap", 900),
    ]
    assert ids(options_for([dear, slow, cheap, fast], "US", 100, "usd"))[0] == ("cheap", 0)


def test_rest_of_the_world_is_every_country_no_other_rate_of_that_currency_names():
    rates = [
        ShippingRate("us", "US", 500, "usd", ("US",), 3, 5),
        ShippingRate("ca", "Canada", 800, "usd", ("CA",), 3, 5),
        ShippingRate("world", "World", 2500, "usd", ("*",), 5, 10),
        ShippingRate("eu-de", "DE in euro", 400, "eur", ("DE",), 1, 2),
    ]
    assert ids(options_for(rates, "CA", 0, "usd")) == [("ca", 800)]
    # DE is named only by a euro rate: for an order in dollars it is the rest of the world.
    assert ids(options_for(rates, "DE", 0, "usd")) == [("world", 2500)]
    assert ids(options_for(rates, "DE", 0, "EUR")) == [("eu-de", 400)]
    assert options_for(rates, "JP", 0, "eur") == []


@pytest.mark.parametrize("country", ["", None, "  "])
def test_no_country_no_rates(country):
    assert Catalog.default().shipping_options(country, 1000, "usd") == []


def test_unknown_rate_names_the_list_command():
    with pytest.raises(NotFound) as info:
        Catalog.default().shipping_rate("teleport")
    assert info.value.code == "unknown_shipping_rate"
    assert "bookpay catalog list" in info.value.hint


def test_json_catalog_with_rates(tmp_path):
    path = tmp_path / "shop.json"
    path.write_text(json.dumps({"books": [BOOK], "shipping_rates": [RATE]}))
    catalog = Catalog.load(path)
    (rate,) = catalog.shipping_rates
    assert rate == ShippingRate("eu", "EU post", 700, "eur", ("DE", "FR"), 2, 4)
    assert ids(catalog.shipping_options("FR", 100, "eur")) == [("eu", 700)]
    assert catalog.shipping_options("US", 100, "eur") == []


def test_toml_catalog_with_rates(tmp_path):
    path = tmp_path / "shop.toml"
    path.write_text(
        '[[books]]\nid = "b"\ntitle = "T"\nauthor = "A"\namount = 2000\ncurrency = "eur"\n\n'
        '[[shipping_rates]]\nid = "world"\ndisplay_name = "Anywhere"\namount = 900\n'
        'currency = "eur"\ncountries = ["*"]\nmin_days = 4\nmax_days = 8\nfree_from = 6000\n'
    )
    (rate,) = Catalog.load(path).shipping_rates
    assert (rate.countries, rate.free_from, rate.delivery) == (("*",), 6000, "4-8 business days")


def test_a_file_without_rates_gets_the_built_in_ones(tmp_path):
    path = tmp_path / "books.json"
    path.write_text(json.dumps([{**BOOK, "currency": "usd"}]))
    assert Catalog.load(path).shipping_rates == DEFAULT_SHIPPING_RATES


@pytest.mark.parametrize(
    ("rate", "problem"),
    [
        ({k: v for k, v in RATE.items() if k != "countries"}, "missing field 'countries'"),
        ({**RATE, "speed": "warp"}, "unknown field 'speed'"),
        ({**RATE, "amount": 7.5}, "'amount' must be an integer in the currency's minor unit"),
        ({**RATE, "amount": -1}, "'amount' must not be negative, got -1"),
        ({**RATE, "free_from": 0}, "'free_from' must be positive, got 0"),
        ({**RATE, "currency": "usd"}, "currency 'usd' is not the currency of any book (eur)"),
        ({**RATE, "currency": "zzz"}, "unknown currency code 'zzz'"),
        ({**RATE, "countries": []}, "'countries' must be a non-empty list"),
        ({**RATE, "countries": "DE"}, "'countries' must be a non-empty list"),
        ({**RATE, "countries": ["DE", "XX"]}, "unknown country code 'XX'"),
        ({**RATE, "min_days": 5, "max_days": 3}, "'min_days' (5) is more than 'max_days' (3)"),
        ({**RATE, "display_name": " "}, "'display_name' must be a non-empty string"),
        ({**RATE, "amount": 10**8}, "'amount' 100000000 is more than Stripe's largest amount"),
    ],
)
def test_invalid_rates_are_refused_with_the_reason(rate, problem):
    with pytest.raises(ConfigError) as info:
        Catalog.from_records([BOOK], source="shop.json", shipping_rates=[rate])
    assert any(problem in p for p in info.value.problems), info.value.problems
    assert all(p.startswith("shop.json: shipping rate #1: ") for p in info.value.problems)


def test_every_problem_of_books_and_rates_is_reported_at_once():
    rates = [RATE, {**RATE, "amount": -5, "min_days": 9}, {**RATE}]
    with pytest.raises(ConfigError) as info:
        Catalog.from_records([{**BOOK, "amount": 0}], shipping_rates=rates)
    problems = info.value.problems
    assert any("book #1: 'amount' must be positive" in p for p in problems)
    assert any("shipping rate #2: 'amount' must not be negative" in p for p in problems)
    assert any(
        "shipping rate #2: 'min_days' (9) is more than 'max_days' (4)" in p for p in problems
    )
    # Rate #2 has the id of rate #1 too: a rate with other problems is still a duplicate.
    assert any("shipping rate #2: duplicate id 'eu'" in p for p in problems)
    assert any("shipping rate #3: duplicate id 'eu'" in p for p in problems)
    assert len(problems) == 5
    with pytest.raises(ConfigError, match="non-empty list of shipping rates"):
        Catalog.from_records([BOOK], shipping_rates=[])


def test_amounts_stripe_cannot_charge_are_refused_in_every_currency():
    """Stripe charges at most eight digits of the minor unit, and three-decimal currencies
    (KWD, BHD, JOD, ...) in tens of it: a book or a rate priced otherwise could never be paid
    for. Zero-decimal JPY's largest is 99,999,999 yen; 5.120 KWD and a free rate are fine."""
    books = [
        {**BOOK, "currency": "kwd", "amount": 5125},
        {**BOOK, "id": "c", "currency": "jpy", "amount": 100_000_000},
        {**BOOK, "id": "d", "currency": "kwd", "amount": 5120},
        {**BOOK, "id": "e", "currency": "jpy", "amount": 99_999_999},
        {**BOOK, "id": "f", "currency": "bhd", "amount": 1, "title": 7},
    ]
    rates = [
        {**RATE, "currency": "kwd", "amount": 1505},
        {**RATE, "id": "jp", "currency": "jpy", "amount": 1500},
        {**RATE, "id": "free", "currency": "kwd", "amount": 0},
    ]
    with pytest.raises(ConfigError) as info:
        Catalog.from_records(books, source="shop.json", shipping_rates=rates)
    assert info.value.problems == [
        "shop.json: book #1: 'amount' 5125 must end in 0: KWD is a three-decimal currency, which"
        " Stripe charges in tens of its minor unit (5120 for 5.120 KWD)",
        "shop.json: book #2: 'amount' 100000000 is more than Stripe's largest amount, ¥99,999,999",
        "shop.json: book #5: 'title' must be a non-empty string",  # every problem at once
        "shop.json: book #5: 'amount' 1 must end in 0: BHD is a three-decimal currency, which"
        " Stripe charges in tens of its minor unit (5120 for 5.120 BHD)",
        "shop.json: shipping rate #1: 'amount' 1505 must end in 0: KWD is a three-decimal"
        " currency, which Stripe charges in tens of its minor unit (5120 for 5.120 KWD)",
    ]


def test_isk_and_ugx_amounts_must_be_whole_units():
    """Stripe writes ISK and UGX amounts with two decimals but charges whole units only (its
    "Special cases"): 10.50 ISK could never be paid for, 10.00 ISK and 5.00 UGX can. HUF and
    TWD take any two-decimal amount (their special case is payouts)."""
    books = [
        {**BOOK, "currency": "isk", "amount": 1050},
        {**BOOK, "id": "c", "currency": "ugx", "amount": 5},
        {**BOOK, "id": "d", "currency": "isk", "amount": 1000},
        {**BOOK, "id": "e", "currency": "ugx", "amount": 500},
        {**BOOK, "id": "f", "currency": "huf", "amount": 17505},
        {**BOOK, "id": "g", "currency": "twd", "amount": 1005},
    ]
    rates = [
        {**RATE, "currency": "isk", "amount": 150},
        {**RATE, "id": "ug", "currency": "ugx", "amount": 200},
        {**RATE, "id": "hu", "currency": "huf", "amount": 105},
        {**RATE, "id": "tw", "currency": "twd", "amount": 105},
    ]
    with pytest.raises(ConfigError) as info:
        Catalog.from_records(books, source="shop.json", shipping_rates=rates)
    assert info.value.problems == [
        "shop.json: book #1: 'amount' 1050 must end in 00: Stripe charges ISK in whole units,"
        " written with two decimals (500 for 5.00 ISK)",
        "shop.json: book #2: 'amount' 5 must end in 00: Stripe charges UGX in whole units,"
        " written with two decimals (500 for 5.00 UGX)",
        "shop.json: shipping rate #1: 'amount' 150 must end in 00: Stripe charges ISK in whole"
        " units, written with two decimals (500 for 5.00 ISK)",
    ]


def test_a_duplicate_rate_id_is_reported_even_when_the_first_rate_has_other_problems():
    rates = [{**RATE, "amount": -5}, {**RATE}]
    with pytest.raises(ConfigError) as info:
        Catalog.from_records([BOOK], source="shop.json", shipping_rates=rates)
    assert info.value.problems == [
        "shop.json: shipping rate #1: 'amount' must not be negative, got -5",
        "shop.json: shipping rate #2: duplicate id 'eu'",
    ]


def test_catalog_list_shows_a_files_rates_and_refuses_a_bad_one(tmp_path):
    runner = CliRunner()
    path = tmp_path / "shop.json"
    path.write_text(json.dumps({"books": [BOOK], "shipping_rates": [{**RATE, "free_from": 5000}]}))
    result = runner.invoke(app, ["--catalog", str(path), "catalog", "list"])
    assert result.exit_code == 0, result.output
    last = "eu        EU post  DE, FR     2-4 business days  €7.00     €50.00"
    assert result.stdout.splitlines()[-1] == last
    listed = runner.invoke(app, ["--catalog", str(path), "catalog", "list", "--json"])
    as_json = json.loads(listed.stdout)
    assert as_json["shipping_rates"] == [{**RATE, "countries": ["DE", "FR"], "free_from": 5000}]
    path.write_text(
        json.dumps({"books": [BOOK], "shipping_rates": [{**RATE, "countries": ["ZZ"]}]})
    )
    result = runner.invoke(app, ["--catalog", str(path), "catalog", "list"])
    assert result.exit_code == 5
    assert "unknown country code 'ZZ'" in result.stderr


def test_a_file_in_another_currency_without_rates_is_refused_saying_what_to_add(tmp_path):
    """The built-in rates are in dollars: a euro shop without rates of its own could ship
    nothing, so it is refused at load (catalog list, serve, config check) with what to add."""
    path = tmp_path / "books.json"
    path.write_text(json.dumps([BOOK, {**BOOK, "id": "u", "currency": "usd"}]))
    with pytest.raises(ConfigError) as info:
        Catalog.load(path)
    assert info.value.problems == [
        f"{path}: the books priced in EUR ('b') have no shipping rates: the built-in ones are in "
        "USD, so add shipping rates in EUR ('shipping_rates' in a JSON file, [[shipping_rates]] "
        "tables in a TOML one)"
    ]
    result = CliRunner().invoke(app, ["--catalog", str(path), "catalog", "list"])
    assert result.exit_code == 5
    assert "add shipping rates in EUR" in result.stderr and "Traceback" not in result.output
    path.write_text(json.dumps({"books": [BOOK], "shipping_rates": [RATE]}))
    assert Catalog.load(path).shipping_rates[0].currency == "eur"


def test_every_currency_the_books_sell_in_needs_a_rate():
    books = [BOOK, {**BOOK, "id": "j", "currency": "jpy"}, {**BOOK, "id": "k", "currency": "jpy"}]
    with pytest.raises(ConfigError) as info:
        Catalog.from_records(books, source="shop.json", shipping_rates=[RATE])
    assert info.value.problems == [
        "shop.json: no shipping rate is in JPY, so the books priced in JPY ('j', 'k') could never"
        " ship: add a shipping rate in JPY"
    ]
