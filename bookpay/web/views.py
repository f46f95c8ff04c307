"""Rendering helpers: the template loader, page data read from a PaymentIntent, safe JSON."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import bottle

from bookpay.address import address_lines
from bookpay.catalog import Book
from bookpay.money import format_amount


class Templates:
    """SimpleTemplate files looked up in our own folder only: no global TEMPLATE_PATH edits."""

    def __init__(self, folder: Path, **defaults) -> None:
        self._lookup = [str(folder)]
        self._cache: dict[str, bottle.SimpleTemplate] = {}
        self._defaults = defaults

    def render(self, name: str, **context) -> str:
        template = self._cache.get(name)
        if template is None:
            template = bottle.SimpleTemplate(name=name, lookup=self._lookup)
            self._cache[name] = template
        return template.render(**{**self._defaults, **context})


def checkout_href(book: Book) -> str:
    return f"/checkout?item={quote(book.id, safe='')}"


def script_json(data: dict) -> str:
    """JSON safe inside <script type="application/json">: no "</script>" can close it early."""
    text = json.dumps(data)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def receipt(intent: dict, book: Book) -> dict:
    """What the success page shows, read from the retrieved PaymentIntent."""
    charge = intent.get("latest_charge")
    charge = charge if isinstance(charge, dict) else {}
    billing = charge.get("billing_details") or {}
    receipt_url = charge.get("receipt_url") or ""
    error = intent.get("last_payment_error") or {}
    amount = intent.get("amount_received") or intent.get("amount") or 0
    return {
        "status": intent.get("status"),
        "book": book,
        "intent_id": intent["id"],
        "total": format_amount(amount, intent.get("currency") or book.currency),
        "email": intent.get("receipt_email") or billing.get("email") or "",
        "shipping": address_lines(intent.get("shipping")),
        "receipt_url": receipt_url if receipt_url.startswith(("https://", "http://")) else "",
        "reason": error.get("message") or "",
        "retry_href": checkout_href(book),
    }
