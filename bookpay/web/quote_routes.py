"""``POST /checkout/quote``: shipping and tax for the address the shopper typed.

JSON in: ``attemptId``, ``address`` (Stripe's shape: ``line1, line2, city, state, postal_code,
country``), ``name`` (who it ships to, with the address in the PaymentIntent's ``shipping``: not
blank), ``shippingRate`` (a rate id; none or one that does not serve the address: the
cheapest), and from the checkout page also ``version`` (its quotes' order). JSON out:
``subtotal``, ``shipping``, ``tax``, ``total`` (minor units), ``currency`` and ``shippingRates``
(what the order may use there, cheapest first), with the rate chosen, the version applied and
the quote as the page shows it.

The order's lines are the attempt's, priced from the catalog now: the cart's (by its cookie) or
the one book of "Buy now". Every refusal is a 4xx JSON error: a malformed request (400), an
unknown attempt or another cart's than the cookie's (404), a stale version or a payment already
confirmed (409), an address no rate serves (422), too many quotes for one attempt (429).
"""

from __future__ import annotations

import bottle

from bookpay.address import InvalidAddress, ShippingAddress
from bookpay.checkout import NO_PAYMENT_TO_QUOTE, AttemptNotFound, Destination, check_owner
from bookpay.quote import quote_items
from bookpay.web import inputs
from bookpay.web.ratelimit import RateLimiter
from bookpay.web.views import options_json, quote_json


def install(app: bottle.Bottle, services, cart_of, limiter: RateLimiter) -> None:
    @app.post("/checkout/quote")
    def checkout_quote():
        data = inputs.read_json_object(bottle.request)
        attempt = inputs.attempt_id(data.get("attemptId"))
        limiter.check(attempt, "quotes")
        if data.get("address") is None:
            raise InvalidAddress("'address' is missing: send the shipping address to quote.")
        address = ShippingAddress.parse(data["address"])
        destination = Destination(
            address,
            inputs.shipping_rate_id(data.get("shippingRate")),
            inputs.ship_to(data.get("name")),
        )
        version = inputs.quote_version(data.get("version"))
        recorded = services.ledger.quote_for_attempt(attempt)
        if recorded is None:
            raise AttemptNotFound(NO_PAYMENT_TO_QUOTE)
        if recorded["cart_id"] is not None:  # only the cart's own cookie quotes its attempt
            check_owner(recorded, (cart_of.find() or {}).get("id"), None, NO_PAYMENT_TO_QUOTE)
        if version is None:  # a caller that does not number its quotes: the next one
            version = recorded["version"] + 1
        with cart_of.settled_when_paid():
            if recorded["cart_id"] is None:  # "Buy now": the same book, priced now
                pairs = [(line["item_id"], line["quantity"]) for line in recorded["lines"]]
                lines, cart_id = quote_items(services.catalog, pairs), None
            else:  # a cart emptied by this attempt's payment (another tab) answers that: a 409
                lines, cart_id = cart_of.quote_for(attempt)
            held, priced = services.checkout.quote(
                attempt, lines, destination, version=version, cart_id=cart_id
            )
        quote = held.quote
        return {
            **quote.amounts(),
            "shippingRates": options_json(priced.options),
            "shippingRate": quote.shipping_rate,
            "taxCalculation": quote.tax_calculation,
            "version": held.version,
            "paymentIntentId": held.intent["id"],
            "quote": quote_json(quote),
        }
