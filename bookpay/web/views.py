"""Rendering helpers: the template loader, page data read from a PaymentIntent, safe JSON."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import bottle

from bookpay.address import address_lines
from bookpay.catalog import Book
from bookpay.ledger.model import amount_captured
from bookpay.money import format_amount, released_text
from bookpay.quote import Quote
from bookpay.shipping import ShippingOption


class Templates:
    """SimpleTemplate files looked up in our own folder only: no global TEMPLATE_PATH edits.

    ``context``, when given, is called at each render for what every page shows (the header's
    cart count); it must not raise.
    """

    def __init__(self, folder: Path, context=None, **defaults) -> None:
        self._lookup = [str(folder)]
        self._cache: dict[str, bottle.SimpleTemplate] = {}
        self._defaults = defaults
        self._context = context

    def render(self, name: str, **context) -> str:
        template = self._cache.get(name)
        if template is None:
            template = bottle.SimpleTemplate(name=name, lookup=self._lookup)
            self._cache[name] = template
        shared = self._context() if self._context is not None else {}
        return template.render(**{**self._defaults, **shared, **context})


def checkout_href(book: Book) -> str:
    return f"/checkout?item={quote(book.id, safe='')}"


def script_json(data: dict) -> str:
    """JSON safe inside <script type="application/json">: no "</script>" can close it early."""
    text = json.dumps(data)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def line_views(lines: list[dict], currency: str) -> list[dict]:
    """Ledger-shaped lines (``item_id``, ``title``, ``quantity``, ``unit_amount``,
    ``line_amount``) with their amounts as text, for templates."""
    return [
        {
            **line,
            "unit": format_amount(line["unit_amount"], currency),
            "amount": format_amount(line["line_amount"], currency),
            "image": f"/covers/{quote(line['item_id'], safe='')}.svg",
            "action": f"/cart/items/{quote(line['item_id'], safe='')}",  # the line's form
        }
        for line in lines
    ]


def quote_json(quote: Quote) -> dict:
    """A quote as the checkout page's script shows it: minor units, and the same as text;
    ``priced`` says whether shipping and tax are worked out for an address yet."""
    data = quote.to_dict()
    for line in data["lines"]:
        line["unitText"] = format_amount(line["unitAmount"], quote.currency)
        line["lineText"] = format_amount(line["lineAmount"], quote.currency)
    for name in ("subtotal", "shipping", "tax", "total"):
        data[name + "Text"] = format_amount(data[name], quote.currency)
    data["priced"] = quote.priced
    data["shippingRate"] = quote.shipping_rate
    return data


def options_json(options: list[ShippingOption]) -> list[dict]:
    """The shipping rates an order may use, as the checkout page lists them."""
    return [
        {
            "id": option.rate.id,
            "displayName": option.rate.display_name,
            "amount": option.amount,
            "amountText": (
                "Free" if option.amount == 0 else format_amount(option.amount, option.rate.currency)
            ),
            "delivery": option.rate.delivery,
            "free": option.free,
        }
        for option in options
    ]


def totals_view(quote: dict | None) -> dict | None:
    """A recorded quote's subtotal, shipping (its rate's name), tax and total, as text, for the
    success page; None when there is no quote or nothing but books in it."""
    if not quote or not (quote.get("address") or quote["shipping"] or quote["tax"]):
        return None
    currency = quote["currency"]
    return {
        "subtotal": format_amount(quote["subtotal"], currency),
        "shipping": format_amount(quote["shipping"], currency),
        "shipping_rate": quote.get("shipping_rate_name") or quote.get("shipping_rate") or "",
        "tax": format_amount(quote["tax"], currency),
        "total": format_amount(quote["total"], currency),
    }


def receipt(intent: dict, lines: list[dict], retry_href: str) -> dict:
    """What the success page shows, read from the retrieved PaymentIntent and its lines.

    ``released``: after a partial capture (``amount_received`` less than ``amount``), what was
    authorized and what of it was released, in the receipt's words (``money.released_text``),
    so that a total charged below the quote's subtotal, shipping and tax is explained."""
    charge = intent.get("latest_charge")
    charge = charge if isinstance(charge, dict) else {}
    billing = charge.get("billing_details") or {}
    receipt_url = charge.get("receipt_url") or ""
    error = intent.get("last_payment_error") or {}
    amount = intent.get("amount_received") or intent.get("amount") or 0
    currency = intent.get("currency") or "usd"
    metadata = intent.get("metadata") or {}
    return {
        "status": intent.get("status"),
        "lines": line_views(lines, currency),
        "what": _what(lines),
        "order_id": metadata.get("order_id") or "",
        "intent_id": intent["id"],
        "total": format_amount(amount, currency),
        "released": released_text(intent.get("amount"), amount_captured(intent), currency) or "",
        "email": intent.get("receipt_email") or billing.get("email") or "",
        "shipping": address_lines(intent.get("shipping")),
        "receipt_url": receipt_url if receipt_url.startswith(("https://", "http://")) else "",
        "reason": shopper_message(error) if error else "",
        "retry_href": retry_href,
    }


def fulfilment_view(order: dict | None, quote: dict | None) -> dict:
    """What the success page says of a paid order the shop refused to fulfil (the ledger's
    ``fulfilment_refused``: ``mismatch``, ``refunded_first`` or ``disputed_first``): ``refused``
    ('' when it was not), and ``priced_to``, the lines of the address its recorded quote priced
    shipping and tax for, which a refused order shows instead of the PaymentIntent's shipping
    (for a mismatch, somewhere it was not priced for and will not go)."""
    refused = (order or {}).get("fulfilment_refused") or ""
    priced = (quote or {}).get("address") if refused else None
    return {
        "refused": refused,
        "priced_to": address_lines({"address": priced}) if isinstance(priced, dict) else [],
    }


def result_title(shown: dict) -> str:
    """The return page's <title>: where the shopper is, as its heading says, and the order paid."""
    status = shown.get("status")
    if status == "succeeded" and shown.get("refused"):
        order = shown.get("order_id")
        return f"Order {order} not shipped" if order else "Order not shipped"
    if status == "succeeded":
        order = shown.get("order_id")
        return f"Order {order} paid" if order else "Order paid"
    if status == "requires_payment_method" and shown.get("reason"):
        return "Payment failed"
    return _RESULT_TITLES.get(status, "Payment not completed")


_RESULT_TITLES = {
    "processing": "Payment processing",
    "requires_capture": "Payment authorized",
    "requires_action": "Payment needs your confirmation",
    "canceled": "Payment canceled",
}


def _what(lines: list[dict]) -> str:
    """What was bought, in a few words for a sentence: the title, or "3 books"."""
    if len(lines) == 1 and lines[0]["quantity"] == 1:
        return lines[0]["title"]
    copies = sum(line["quantity"] for line in lines)
    return f"your {copies} books" if copies != 1 else "your book"


# Stripe.js's own wording for a failed 3-D Secure check; the API's message is for developers.
AUTHENTICATION_FAILED = (
    "We are unable to authenticate your payment method. "
    "Please choose a different payment method and try again."
)
GENERIC_FAILURE = "Your payment could not be completed. Please try again."
# Stripe's shopper wording, for a card_error that arrives without a message.
_CARD_MESSAGES = {
    "card_declined": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
    "lost_card": "Your card was declined.",
    "stolen_card": "Your card was declined.",
    "generic_decline": "Your card was declined.",
    "expired_card": "Your card has expired.",
    "incorrect_cvc": "Your card's security code is incorrect.",
    "incorrect_number": "Your card number is incorrect.",
    "processing_error": "An error occurred while processing your card. Try again in a little bit.",
}


def shopper_message(error: dict) -> str:
    """Why a payment failed, in words for the shopper: never the API's text for developers.

    Not ``orders.failure_reason``, which keeps the codes and the API's text for the ledger.

    A card_error's message is written for shoppers (Stripe shows it as is); every other type
    (invalid_request_error for a failed 3-D Secure check, api_error, ...) is not.
    """
    code = error.get("code") or ""
    if code == "payment_intent_authentication_failure":
        return AUTHENTICATION_FAILED
    message = error.get("message")
    if error.get("type") == "card_error" and isinstance(message, str) and message.strip():
        return message
    return (
        _CARD_MESSAGES.get(error.get("decline_code") or "")
        or _CARD_MESSAGES.get(code)
        or GENERIC_FAILURE
    )
