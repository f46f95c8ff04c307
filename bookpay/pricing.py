"""Shipping and tax for an order going to an address: the rate, its cost, and Stripe Tax's tax.

The lines of a quote are priced from the catalog (``bookpay.quote``); this adds what the address
decides. The rates come from the catalog (``Catalog.shipping_options``: the ones serving the
address's country, cheapest first), the one asked for if it serves the address, else the
cheapest. The tax comes from a Stripe Tax calculation (``Gateway.create_tax_calculation``) of the
lines, each with the books tax code, and the shipping cost, for that address; prices are before
tax (``tax_behavior: exclusive``), so the tax is added to the total, and the calculation's id
goes with the quote into the PaymentIntent's metadata and the ledger. With BOOKPAY_TAX=off there
is no calculation and no tax.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from bookpay.address import ShippingAddress, country_name
from bookpay.errors import BookpayError, PaymentError, TaxNotActive, UsageError
from bookpay.money import chargeable
from bookpay.quote import Quote
from bookpay.shipping import ShippingOption

TAX_BEHAVIOR = "exclusive"  # catalog prices are before tax, as US prices are
# What to do when Stripe Tax is not active on the account (the server's log, `config check`).
TAX_FIX = (
    "Activate Stripe Tax in the Dashboard (https://dashboard.stripe.com/settings/tax), or set "
    "BOOKPAY_TAX=off to sell without tax."
)


class NoShippingRate(UsageError):
    """No shipping rate serves the address's country: the order cannot ship there."""

    http_status = 422
    code = "no_shipping_rate"


class AddressNotTaxable(UsageError):
    """Stripe Tax cannot place the address (a ZIP code of another state, say)."""

    code = "tax_location_invalid"


class UnknownShippingRate(UsageError):
    code = "unknown_shipping_rate"


@dataclass(frozen=True)
class Priced:
    quote: Quote  # with shipping, tax, the rate, the calculation and the address
    options: list[ShippingOption]  # every rate the order may use there, cheapest first


def shipping_options(catalog, quote: Quote, country: str) -> list[ShippingOption]:
    return catalog.shipping_options(country, quote.subtotal, quote.currency)


def price(
    quote: Quote,
    address: ShippingAddress,
    rate_id: str | None,
    *,
    catalog,
    gateway,
    tax_enabled: bool,
    attempt_id: str | None = None,
) -> Priced:
    """``quote``'s lines shipped to ``address`` by the rate ``rate_id`` (None: the cheapest),
    taxed by Stripe Tax unless ``tax_enabled`` is false.

    Raises UnknownShippingRate for an id the catalog does not have, NoShippingRate when no rate
    serves the country, AddressNotTaxable when Stripe Tax cannot place the address, TaxNotActive
    when Stripe Tax is not active on the account.
    """
    known = {rate.id for rate in catalog.shipping_rates}
    if rate_id is not None and rate_id not in known:
        raise UnknownShippingRate(f"There is no shipping rate {rate_id!r}.")
    options = shipping_options(catalog, quote, address.country)
    if not options:
        raise NoShippingRate(
            f"Sorry, we don't ship to {country_name(address.country)}: choose another address."
        )
    chosen = next((o for o in options if o.rate.id == rate_id), options[0])
    shipped = dataclasses.replace(
        quote,
        shipping=chosen.amount,
        tax=0,
        shipping_rate=chosen.rate.id,
        tax_calculation=None,
        address=address,
    )
    if not tax_enabled:
        return Priced(shipped, options)
    calculation = _calculate(gateway, shipped, attempt_id)
    tax = calculation["tax_amount_exclusive"]
    if calculation["amount_total"] != shipped.total + tax:
        raise BookpayError(
            f"Stripe Tax's total {calculation['amount_total']} for {calculation['id']} is not "
            f"the quote's {shipped.total + tax} (subtotal, shipping and tax)."
        )
    # In a three-decimal currency Stripe charges tens of the minor unit only, in ISK and UGX
    # whole units (hundreds of it): books and rates are priced so, and the tax is rounded down
    # to them (the shop bears the few fils or aurar).
    tax = chargeable(tax, quote.currency)
    taxed = dataclasses.replace(shipped, tax=tax, tax_calculation=calculation["id"])
    return Priced(taxed, options)


def _calculate(gateway, quote: Quote, attempt_id: str | None) -> dict:
    from bookpay.payments import TaxLine  # the gateway's module: imported when tax is on

    lines = [TaxLine(line.item_id, line.line_amount, line.quantity) for line in quote.lines]
    try:
        return gateway.create_tax_calculation(
            lines,
            currency=quote.currency,
            address=quote.address.to_dict(),
            shipping_amount=quote.shipping,
            tax_behavior=TAX_BEHAVIOR,
            attempt_id=attempt_id,
        )
    except PaymentError as exc:
        if exc.stripe_code == "stripe_tax_inactive":
            raise TaxNotActive(
                f"Stripe Tax is not active on this Stripe account ({exc.stripe_code}): no "
                f"checkout can work out its tax. {TAX_FIX}",
                stripe_code=exc.stripe_code,
                error_type=exc.error_type,
                http_status=exc.http_status,
            ) from exc
        if exc.stripe_code != "customer_tax_location_invalid":
            raise
        raise AddressNotTaxable(
            "We can't work out the tax for this address: check the postal code "
            "(and that it belongs to the state)."
        ) from exc
