"""`POST /checkout/quote` in-process (WSGI), against the session's emulator and its Stripe Tax.

Shipping from the catalog and tax from a Stripe Tax calculation for the address, the attempt's
PaymentIntent updated to the total (with the calculation in its metadata and the address in its
``shipping``), the quote recorded in the ledger with its version; versions applied in order; and
every refusal a 4xx JSON error, never a 500.
"""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from test_cart_server import ADDRESS, Shopper
from test_server import PUBLIC_URL, complete_3ds, confirm, emulator_api

from bookpay.catalog import Book, Catalog
from bookpay.ledger import open_ledger
from bookpay.quote import quote_items
from bookpay.server import QUOTE_BURST, create_app
from bookpay.shipping import ShippingRate

SF = ADDRESS  # San Francisco
AUSTIN = {**SF, "city": "Austin", "state": "TX", "postal_code": "78701"}
LONDON = {
    "line1": "12 St James's Square",
    "line2": None,
    "city": "London",
    "state": "",
    "postal_code": "SW1Y 4JH",
    "country": "GB",
}
NAME = "Ada Lovelace"  # the Address Element's: the checkout page quotes only with one


@pytest.fixture
def app(settings):
    made = create_app(settings, public_url=PUBLIC_URL)
    yield made
    made.close()


@pytest.fixture
def shopper(app) -> Shopper:
    return Shopper(app)


def buy_now(shopper: Shopper, item: str = "1") -> tuple[str, dict]:
    attempt = str(uuid.uuid4())
    answer = shopper.json("/create-payment-intent", {"item": item, "attemptId": attempt})
    assert answer.status == 200, answer.text
    return attempt, answer.json()


def quote(shopper: Shopper, attempt: str, address=SF, rate=None, version=1, name=NAME, **extra):
    data = {"attemptId": attempt, "address": address, "shippingRate": rate, "version": version}
    return shopper.json("/checkout/quote", {**data, "name": name, **extra})


def intent_of(settings, intent_id: str) -> dict:
    return emulator_api(settings, "GET", f"/v1/payment_intents/{intent_id}")


def test_a_taxed_us_address_gets_shipping_and_tax_and_the_intent_holds_the_total(shopper, settings):
    attempt, created = buy_now(shopper, "1")  # $23.00
    assert created["quoteVersion"] == 0 and created["quote"]["priced"] is False
    answer = quote(shopper, attempt, name="Ada Lovelace")
    assert answer.status == 200, answer.text
    body = answer.json()
    # California: 7.25% on books; shipping separately stated is exempt there.
    assert {k: body[k] for k in ("subtotal", "shipping", "tax", "total", "currency")} == {
        "subtotal": 2300,
        "shipping": 500,
        "tax": 167,
        "total": 2967,
        "currency": "usd",
    }
    assert [(r["id"], r["amount"]) for r in body["shippingRates"]] == [
        ("standard", 500),
        ("express", 1500),
    ]
    assert body["shippingRate"] == "standard" and body["version"] == 1
    assert body["quote"]["totalText"] == "$29.67" and body["quote"]["priced"] is True
    calculation = body["taxCalculation"]
    assert calculation.startswith("taxcalc_")

    intent = intent_of(settings, created["paymentIntentId"])
    assert intent["amount"] == 2967
    assert intent["metadata"]["tax_calculation"] == calculation
    assert intent["shipping"]["name"] == "Ada Lovelace"
    assert intent["shipping"]["address"]["postal_code"] == "94110"
    taxcalc = emulator_api(settings, "GET", f"/v1/tax/calculations/{calculation}")
    assert taxcalc["amount_total"] == 2967
    assert taxcalc["shipping_cost"]["amount"] == 500
    items = emulator_api(settings, "GET", f"/v1/tax/calculations/{calculation}/line_items")
    assert [(i["reference"], i["tax_code"], i["tax_behavior"]) for i in items["data"]] == [
        ("1", "txcd_35010000", "exclusive")
    ]
    with open_ledger(settings) as ledger:
        recorded = ledger.quote_for_attempt(attempt)
    assert (recorded["subtotal"], recorded["shipping"], recorded["tax"], recorded["total"]) == (
        2300,
        500,
        167,
        2967,
    )
    assert recorded["shipping_rate"] == "standard"
    assert recorded["tax_calculation"] == calculation
    assert recorded["version"] == 1
    assert recorded["address"]["state"] == "CA"


def test_express_shipping_and_another_state_change_the_total(shopper, settings):
    attempt, created = buy_now(shopper, "2")  # $25.00
    assert quote(shopper, attempt).json()["total"] == 2500 + 500 + 181
    express = quote(shopper, attempt, rate="express", version=2).json()
    assert (express["shipping"], express["shippingRate"]) == (1500, "express")
    # Texas taxes shipping with the goods: 6.25% of $25.00 + $15.00.
    texas = quote(shopper, attempt, address=AUSTIN, rate="express", version=3).json()
    assert (texas["tax"], texas["total"]) == (250, 2500 + 1500 + 250)
    assert intent_of(settings, created["paymentIntentId"])["amount"] == 4250


def test_a_zero_rated_country_pays_no_tax(shopper, settings):
    attempt, _ = buy_now(shopper, "3")
    body = quote(shopper, attempt, address=LONDON).json()
    assert [r["id"] for r in body["shippingRates"]] == ["international"]
    assert (body["shipping"], body["tax"], body["total"]) == (2500, 0, 2800 + 2500)
    assert body["taxCalculation"].startswith("taxcalc_")


def test_with_tax_off_there_is_no_calculation(settings):
    app = create_app(dataclasses.replace(settings, tax="off"), public_url=PUBLIC_URL)
    try:
        shopper = Shopper(app)
        attempt, created = buy_now(shopper, "1")
        body = quote(shopper, attempt).json()
        assert (body["shipping"], body["tax"], body["total"]) == (500, 0, 2800)
        assert body["taxCalculation"] is None
        intent = intent_of(settings, created["paymentIntentId"])
        assert intent["amount"] == 2800 and "tax_calculation" not in intent["metadata"]
    finally:
        app.close()


@pytest.mark.parametrize(
    ("country", "city"),
    [("XK", "Pristina"), ("AC", "Georgetown"), ("TA", "Edinburgh of the Seven Seas")],
)
@pytest.mark.parametrize("tax", ["off", "stripe"])
def test_countries_stripe_ships_to_beyond_iso_3166_are_addresses(settings, country, city, tax):
    # Kosovo (user-assigned), Ascension Island and Tristan da Cunha (exceptionally reserved):
    # Stripe's Address Element offers them and Stripe ships there; they were refused as codes
    # (and, with Stripe Tax, by the emulator's tax calculation: no tax owed there, not refused).
    app = create_app(dataclasses.replace(settings, tax=tax), public_url=PUBLIC_URL)
    try:
        shopper = Shopper(app)
        attempt, created = buy_now(shopper, "1")
        address = {"line1": "1 Main Road", "city": city, "postal_code": "", "country": country}
        answer = quote(shopper, attempt, address=address)
        assert answer.status == 200, answer.text
        body = answer.json()
        assert [r["id"] for r in body["shippingRates"]] == ["international"]
        assert body["total"] == 2300 + body["shipping"]
        assert body.get("tax", 0) == 0
        intent = intent_of(settings, created["paymentIntentId"])
        assert intent["shipping"]["address"]["country"] == country
    finally:
        app.close()


def test_a_cart_changed_after_quoting_keeps_the_address_free_shipping_from_50(shopper, settings):
    shopper.add("1")
    attempt = str(uuid.uuid4())
    created = shopper.pay(attempt).json()
    assert quote(shopper, attempt).json()["shipping"] == 500
    shopper.add("3")  # $23 + $28: past the free-shipping threshold
    again = shopper.pay(attempt).json()
    assert again["changed"] is True
    priced = again["quote"]
    assert (priced["subtotal"], priced["shipping"], priced["priced"]) == (5100, 0, True)
    assert priced["tax"] == 370  # 7.25% of $23.00 and of $28.00, each rounded
    assert [r["amountText"] for r in again["shippingRates"]] == ["Free", "$15.00"]
    intent = intent_of(settings, created["paymentIntentId"])
    assert intent["amount"] == priced["total"]
    assert intent["metadata"]["tax_calculation"].startswith("taxcalc_")
    # Asked again with nothing changed: nothing to update, no new calculation.
    same = shopper.pay(attempt).json()
    assert same["changed"] is False and same["quote"]["total"] == priced["total"]


def test_an_address_no_rate_serves_is_a_422_that_says_so(settings):
    us_only = Catalog(
        Catalog.default(),
        [ShippingRate("standard", "Standard shipping", 500, "usd", ("US",), 3, 5)],
    )
    app = create_app(settings, public_url=PUBLIC_URL, catalog=us_only)
    try:
        shopper = Shopper(app)
        attempt, created = buy_now(shopper, "1")
        answer = quote(shopper, attempt, address=LONDON)
        assert answer.status == 422
        assert answer.json()["error"] == {
            "message": "Sorry, we don't ship to United Kingdom: choose another address.",
            "code": "no_shipping_rate",
        }
        assert intent_of(settings, created["paymentIntentId"])["amount"] == 2300  # unchanged
    finally:
        app.close()


def test_a_zip_code_of_another_state_is_a_400_from_stripe_tax(shopper):
    attempt, _ = buy_now(shopper)
    answer = quote(shopper, attempt, address={**SF, "state": "NY"})
    assert answer.status == 400
    assert answer.json()["error"]["code"] == "tax_location_invalid"


@pytest.mark.parametrize(
    "address, message",
    [
        ("12 Main St", "'address' must be an object"),
        ([SF], "'address' must be an object"),
        ({**SF, "county": "SF"}, "'address' has unknown fields: county."),
        ({**SF, "postal_code": 94110}, "'address.postal_code' must be text."),
        ({**SF, "country": ""}, "'address.country' is missing"),
        ({k: v for k, v in SF.items() if k != "country"}, "'address.country' is missing"),
        ({**SF, "country": "USA"}, "'address.country' must be an ISO 3166-1 code"),
        ({**SF, "city": "San\nFrancisco"}, "'address.city' must be at most 200 characters"),
        ({**SF, "line1": "x" * 201}, "'address.line1' must be at most 200 characters"),
        # A lone surrogate (JSON's "\ud800") has no UTF-8 form: Stripe Tax could not be sent it.
        ({**SF, "line1": "\ud800"}, "'address.line1' must be at most 200 characters"),
        ({**SF, "city": "S\udfffF"}, "'address.city' must be at most 200 characters"),
    ],
)
def test_bad_address_shapes_are_400s(shopper, address, message):
    attempt, _ = buy_now(shopper)
    answer = quote(shopper, attempt, address=address)
    assert answer.status == 400
    error = answer.json()["error"]
    assert error["code"] == "invalid_address"
    assert error["message"].startswith(message)


@pytest.mark.parametrize(
    "change, status, code",
    [
        ({"address": None}, 400, "invalid_address"),
        ({"shippingRate": "teleport"}, 400, "unknown_shipping_rate"),
        ({"shippingRate": 7}, 400, "invalid_shipping_rate"),
        ({"version": 0}, 400, "invalid_version"),
        ({"version": "2"}, 400, "invalid_version"),
        ({"version": True}, 400, "invalid_version"),
        ({"name": "Ada\x1b[2J"}, 400, "invalid_name"),
        ({"attemptId": "not-a-uuid"}, 400, "invalid_attempt_id"),
        ({"attemptId": str(uuid.uuid4())}, 404, "attempt_not_found"),
    ],
)
def test_bad_requests_are_4xx_json_errors(shopper, change, status, code):
    attempt, _ = buy_now(shopper)
    data = {"attemptId": attempt, "address": SF, "shippingRate": None, "version": 1, **change}
    answer = shopper.json("/checkout/quote", {"name": NAME, **data})
    assert (answer.status, answer.json()["error"]["code"]) == (status, code), answer.text


NO_NAME = object()  # the request has no "name" at all


def shipped(intent: dict) -> tuple[int, str | None, str | None]:
    """What a PaymentIntent charges, and to whom and where it ships."""
    shipping = intent.get("shipping") or {}
    return intent["amount"], shipping.get("name"), (shipping.get("address") or {}).get("city")


@pytest.mark.parametrize("name", [NO_NAME, None, "", "   ", "\t"])
@pytest.mark.parametrize("quoted_before", [False, True])
def test_a_quote_without_a_name_to_ship_to_is_refused_and_changes_nothing(
    shopper, settings, name, quoted_before
):
    """Without a name the PaymentIntent's ``shipping`` cannot hold the address, so it would be
    charged the address's tax and then refused at fulfilment (shipping elsewhere, or nowhere):
    the quote is a 400 and the PaymentIntent keeps what it had."""
    attempt, created = buy_now(shopper, "1")
    intent_id = created["paymentIntentId"]
    if quoted_before:
        assert quote(shopper, attempt, name="Ada Lovelace").status == 200  # San Francisco
    before = intent_of(settings, intent_id)
    expected = (2967, "Ada Lovelace", "San Francisco") if quoted_before else (2300, None, None)
    assert shipped(before) == expected
    data = {"attemptId": attempt, "address": AUSTIN, "shippingRate": "express", "version": 2}
    if name is not NO_NAME:
        data["name"] = name
    answer = shopper.json("/checkout/quote", data)
    assert answer.status == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_name"
    assert error["message"] == "'name' is missing: say who the order ships to."
    after = intent_of(settings, intent_id)
    assert shipped(after) == expected
    assert after["metadata"] == before["metadata"]
    with open_ledger(settings) as ledger:
        recorded = ledger.quote_for_attempt(attempt)
    assert (recorded["version"], recorded["total"]) == ((1, 2967) if quoted_before else (0, 2300))


def test_a_request_that_is_not_json_is_refused(shopper):
    answer = shopper.request("POST", "/checkout/quote", b"attemptId=1", Content_Type="text/plain")
    assert (answer.status, answer.json()["error"]["code"]) == (415, "unsupported_media_type")


def test_quotes_apply_in_order_and_a_stale_one_is_refused(shopper, settings):
    attempt, created = buy_now(shopper, "1")
    assert quote(shopper, attempt, rate="express", version=5).status == 200
    stale = quote(shopper, attempt, rate="standard", version=4)
    assert stale.status == 409
    assert stale.json()["error"]["code"] == "stale_quote"
    assert stale.json()["error"]["version"] == 5
    assert quote(shopper, attempt, rate="standard", version=5).status == 409  # the same: stale too
    intent = intent_of(settings, created["paymentIntentId"])
    assert intent["amount"] == 2300 + 1500 + 167  # still the express quote
    with open_ledger(settings) as ledger:
        assert ledger.quote_for_attempt(attempt)["shipping_rate"] == "express"
    # A quote without a version (a caller that does not number them) is the next one.
    unnumbered = shopper.json(
        "/checkout/quote", {"attemptId": attempt, "address": SF, "name": NAME}
    )
    assert unnumbered.json()["version"] == 6


def test_quoting_is_rate_limited_per_attempt(shopper):
    attempt, _ = buy_now(shopper)
    other, _ = buy_now(shopper, "2")
    bad = {**SF, "country": "??"}  # refused before any Stripe call: only the limit is tested
    answers = [quote(shopper, attempt, address=bad) for _ in range(QUOTE_BURST + 1)]
    assert [a.status for a in answers[:QUOTE_BURST]] == [400] * QUOTE_BURST
    limited = answers[-1]
    assert limited.status == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    assert quote(shopper, other).status == 200  # another attempt is not limited


@pytest.mark.parametrize("card, code", [("pm_card_visa", "attempt_finished")])
def test_a_paid_attempt_cannot_be_quoted(shopper, settings, card, code):
    attempt, created = buy_now(shopper)
    assert quote(shopper, attempt).status == 200
    confirm(settings, created["paymentIntentId"], card)
    answer = quote(shopper, attempt, version=2)
    assert (answer.status, answer.json()["error"]["code"]) == (409, code)


def test_an_authorized_payment_is_in_progress_and_keeps_its_amount(shopper, settings):
    attempt, created = buy_now(shopper)
    assert quote(shopper, attempt).status == 200
    intent_id = created["paymentIntentId"]
    # An authorized payment (manual capture) is confirmed: its amount can no longer change.
    emulator_api(settings, "POST", f"/v1/payment_intents/{intent_id}", {"capture_method": "manual"})
    assert confirm(settings, intent_id, "pm_card_visa")["status"] == "requires_capture"
    answer = quote(shopper, attempt, rate="express", version=2)
    assert (answer.status, answer.json()["error"]["code"]) == (409, "payment_in_progress")
    assert intent_of(settings, intent_id)["amount"] == 2967


def test_a_payment_waiting_for_3ds_keeps_the_amount_its_challenge_shows(shopper, settings):
    """Pay, 3-D Secure pending (or abandoned: Back); the attempt picks Express: Stripe would
    take the new amount without a new authentication, so the shop cancels the payment instead
    (409 attempt_finished: the page starts a new attempt) and the challenge charges nothing."""
    attempt, created = buy_now(shopper)
    assert quote(shopper, attempt).json()["total"] == 2967
    intent_id = created["paymentIntentId"]
    pending = confirm(settings, intent_id, "pm_card_authenticationRequired")
    assert (pending["status"], pending["amount"]) == ("requires_action", 2967)
    answer = quote(shopper, attempt, rate="express", version=2)
    assert (answer.status, answer.json()["error"]["code"]) == (409, "attempt_finished")
    assert answer.json()["error"]["status"] == "canceled"
    assert intent_of(settings, intent_id)["amount"] == 2967
    with open_ledger(settings) as ledger:
        assert (
            ledger.quote_for_attempt(attempt)["total"],
            ledger.quote_for_attempt(attempt)["version"],
        ) == (2967, 1)
    done = complete_3ds(settings, pending)
    assert (done["status"], done["amount_received"]) == ("canceled", 0)


def test_a_quote_from_another_site_is_refused(app):
    attempt, _ = buy_now(Shopper(app))
    other = Shopper(app, origin="https://evil.example")
    answer = quote(other, attempt)
    assert (answer.status, answer.json()["error"]["code"]) == (403, "cross_origin")


def test_shipping_and_tax_that_take_the_total_past_stripes_maximum_are_refused(settings):
    from test_cart_server import _priced_app

    app, gateway = _priced_app(settings, ("gold", 99_999_000))
    shopper = Shopper(app)
    attempt, created = buy_now(shopper, "gold")  # within Stripe's eight digits
    refused = quote(shopper, attempt)  # $5.00 shipping and California's tax: past them
    assert refused.status == 400
    error = refused.json()["error"]
    assert error["code"] == "amount_too_large"
    assert "the largest payment Stripe takes in USD" in error["message"]
    assert gateway.writes == 1  # only the creation: the update was never sent
    assert intent_of(settings, created["paymentIntentId"])["amount"] == 99_999_000
    app.close()


def test_a_cart_grown_past_stripes_maximum_is_refused_before_stripe_tax_is_asked(settings):
    from test_cart_server import _priced_app

    app, gateway = _priced_app(settings, ("gold", 60_000_000))
    shopper = Shopper(app)
    shopper.add("gold")
    attempt = str(uuid.uuid4())
    created = shopper.pay(attempt).json()
    assert quote(shopper, attempt).status == 200
    assert (gateway.writes, gateway.calculations) == (2, 1)
    shopper.add("gold")  # $1,200,000.00 of books, for the address already quoted
    refused = shopper.pay(attempt)
    assert refused.status == 400
    assert refused.json()["error"]["code"] == "amount_too_large"
    assert (gateway.writes, gateway.calculations) == (2, 1)
    assert intent_of(settings, created["paymentIntentId"])["amount"] > 60_000_000
    app.close()


def test_tax_in_a_three_decimal_currency_is_rounded_down_to_what_stripe_charges(settings):
    """Stripe charges KWD in tens of the fils: California's 7.25% of 5.120 KWD of books is
    0.371 KWD, which would make a total Stripe refuses (6.741 KWD). The shopper pays 0.370 KWD
    of it; the calculation stays Stripe Tax's own."""
    kwd = Catalog(
        [Book(id="k1", title="Kuwait", author="A", amount=5120, currency="kwd", description="")],
        [ShippingRate("post", "Post", 1250, "kwd", ("*",), 2, 5)],
    )
    app = create_app(settings, public_url=PUBLIC_URL, catalog=kwd)
    try:
        shopper = Shopper(app)
        attempt, created = buy_now(shopper, "k1")
        body = quote(shopper, attempt).json()
        assert (body["subtotal"], body["shipping"], body["tax"], body["total"]) == (
            5120,
            1250,
            370,
            6740,
        )
        assert (body["quote"]["taxText"], body["quote"]["totalText"]) == ("0.370 KWD", "6.740 KWD")
        calculation = emulator_api(
            settings, "GET", f"/v1/tax/calculations/{body['taxCalculation']}"
        )
        assert calculation["tax_amount_exclusive"] == 371
        assert intent_of(settings, created["paymentIntentId"])["amount"] == 6740
    finally:
        app.close()


def test_tax_in_isk_is_rounded_down_to_whole_kronur(settings):
    """Stripe charges ISK in whole krónur written with two decimals (an amount ends in 00):
    California's 7.25% of 5,120.00 ISK of books is 371.20 ISK, which would make a total Stripe
    refuses. The shopper pays 371.00 ISK of it; the calculation stays Stripe Tax's own."""
    isk = Catalog(
        [Book(id="i1", title="Iceland", author="A", amount=512000, currency="isk", description="")],
        [ShippingRate("post", "Post", 125000, "isk", ("*",), 2, 5)],
    )
    app = create_app(settings, public_url=PUBLIC_URL, catalog=isk)
    try:
        shopper = Shopper(app)
        attempt, created = buy_now(shopper, "i1")
        body = quote(shopper, attempt).json()
        assert (body["subtotal"], body["shipping"], body["tax"], body["total"]) == (
            512000,
            125000,
            37100,
            674100,
        )
        # Shown in whole krónur (the Pay button's "Pay 6,741 ISK"), Stripe's form in numbers.
        assert (body["quote"]["taxText"], body["quote"]["totalText"]) == ("371 ISK", "6,741 ISK")
        calculation = emulator_api(
            settings, "GET", f"/v1/tax/calculations/{body['taxCalculation']}"
        )
        assert calculation["tax_amount_exclusive"] == 37120
        assert intent_of(settings, created["paymentIntentId"])["amount"] == 674100
    finally:
        app.close()


def test_the_checkout_refuses_to_price_an_address_without_a_name_before_asking_anyone():
    """The core's own guard, whatever its caller: neither the ledger nor Stripe is asked."""
    from bookpay.address import ShippingAddress
    from bookpay.checkout import Checkout, Destination
    from bookpay.errors import UsageError

    checkout = Checkout(ledger=None, gateway=None, shop_id=None)
    lines = quote_items(Catalog.default(), [("1", 1)])
    for name in (None, ""):
        with pytest.raises(UsageError) as refused:
            checkout.quote(
                str(uuid.uuid4()),
                lines,
                Destination(ShippingAddress.parse(SF), None, name),
                version=1,
                cart_id=None,
            )
        assert refused.value.code == "invalid_name"


def test_the_success_page_of_a_paid_order_refused_as_not_priced_says_it_was_not_shipped(
    shopper, settings
):
    """Paid with a shipping address other than the one its quote priced (as Stripe.js sends the
    Address Element's, from a tab that quoted another address): fulfilment refuses the order
    (``mismatch``), and its page says the payment was received but nothing ships, and shows the
    address the quote priced, not the one that would not have been shipped to."""
    attempt, created = buy_now(shopper, "1")
    assert quote(shopper, attempt).status == 200  # San Francisco: $29.67
    austin = {
        "shipping[name]": NAME,
        "shipping[address][line1]": AUSTIN["line1"],
        "shipping[address][city]": AUSTIN["city"],
        "shipping[address][state]": AUSTIN["state"],
        "shipping[address][postal_code]": AUSTIN["postal_code"],
        "shipping[address][country]": "US",
    }
    intent_id = created["paymentIntentId"]
    assert confirm(settings, intent_id, "pm_card_visa", **austin)["status"] == "succeeded"

    page = shopper.request(
        "GET",
        f"/success?payment_intent={intent_id}&payment_intent_client_secret="
        f"{created['clientSecret']}&redirect_status=succeeded",
    )
    assert page.status == 200
    with open_ledger(settings) as ledger:
        assert ledger.find_order(intent_id)["fulfilment_refused"] == "mismatch"
    text = page.text
    assert "on its way" not in text and "Success!" not in text
    assert "Payment received, order not shipped" in text
    assert "Nothing has been shipped. We will contact you" in text
    assert "<title>Order ord_" in text and " not shipped" in text
    assert "Priced for delivery to" in text and "San Francisco, CA 94110" in text
    assert "Austin" not in text and "Shipping to" not in text
    assert "$29.67" in text  # what was charged
