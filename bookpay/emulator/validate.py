"""Parameter coercion and Stripe's validation rules (amounts, currencies, metadata, addresses)."""

from __future__ import annotations

import re
import unicodedata
from typing import Any
from urllib.parse import quote, urlsplit

from bookpay.money import (  # one list of currencies, decimals and minimums: bookpay's
    CURRENCIES,
    MIN_AMOUNTS,
    THREE_DECIMAL,
    WHOLE_UNITS,
    exponent,
)
from bookpay.terminal import printable  # one list of unsafe characters, bookpay's

from .wire import MAX_STRING, invalid, malformed, too_long

# Minimum charge amounts in the smallest unit: Stripe's table, as bookpay checks it (one table).
MINIMUMS = MIN_AMOUNTS

_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "aud": "$", "cad": "$", "nzd": "$"}
MAX_AMOUNT = 99999999

ADDRESS_SPEC = {k: None for k in ("city", "country", "line1", "line2", "postal_code", "state")}
SHIPPING_SPEC = {
    "address": ADDRESS_SPEC,
    "name": None,
    "phone": None,
    "carrier": None,
    "tracking_number": None,
}
BILLING_SPEC = {"address": ADDRESS_SPEC, "email": None, "name": None, "phone": None, "tax_id": None}


def money(amount: int, currency: str) -> str:
    """`$0.50`, as Stripe writes amounts in its messages."""
    symbol = _SYMBOLS.get(currency, "")
    digits = exponent(currency)
    if not digits:
        return f"{symbol}{amount:,}"
    major, minor = divmod(amount, 10**digits)
    return f"{symbol}{major:,}.{minor:0{digits}d}"


INT64 = 2**63


def integer(value: Any, param: str) -> int:
    """A signed 64-bit integer, as Stripe's integer parameters are: ASCII digits only (``\\d``
    would take other scripts' digits, which Stripe refuses and int() reads)."""
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,19}", value.strip()):
        number = int(value)
        if -INT64 <= number < INT64:
            return number
    shown = value if not isinstance(value, str) or len(value) <= 40 else value[:40] + "..."
    raise malformed(f"Invalid integer: {shown}", param, "parameter_invalid_integer")


def boolean(value: Any, param: str) -> bool:
    if value in ("true", "false"):
        return value == "true"
    raise malformed(f"Invalid boolean: {value}", param)


def string(value: Any, param: str, max_length: int = MAX_STRING) -> str | None:
    """A plain string; empty means unset, as in Stripe's form encoding."""
    if isinstance(value, (dict, list)):
        raise malformed(f"Invalid string: {value}", param, "parameter_invalid_string")
    if value and len(value) > max_length:
        raise too_long(value, param, max_length)
    return value or None


NOT_A_URL = "Not a valid URL"  # Stripe's refusal of a return_url (code url_invalid)


def _unsendable(text: str) -> bool:
    """Whitespace (any `str.isspace()`: the ASCII ones, NEL, no-break and ideographic spaces,
    the line and paragraph separators), a control character (C0, DEL, C1) or an invisible
    format character (Unicode category Cf: zero-width spaces and joiners, U+2060, U+FEFF, the
    soft hyphen, and the bidirectional controls `printable` escapes for a terminal): no host has
    one (IDNA makes a no-break space a space, and maps or refuses the format characters, so the
    lookup fails), a URL with one is not what anyone meant to type, and http.client refuses to
    send a request line with an ASCII one."""
    return printable(text) != text or any(
        c.isspace() or unicodedata.category(c) == "Cf" for c in text
    )


def ascii_url(text: str) -> str:
    """A URL (or a request target) as it goes on the wire, in a request line or a Location
    header: a URL may hold non-ASCII characters (`/hooks/café`, `https://例え.テスト/`), which
    HTTP cannot carry, so they go percent-encoded as UTF-8 (as browsers send them; a
    percent-encoded host is decoded and IDNA-encoded by a browser's URL parser)."""
    return "".join(c if c.isascii() else quote(c) for c in text)


WEB_SCHEMES = ("http", "https")
# An application URI scheme (RFC 3986: a letter, then letters, digits, `+`, `-` or `.`), and
# its colon: `bookshop://payment/done`, `com.example.app://return`.
_APP_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
# Schemes a browser runs or reads itself rather than hands to an app: a redirect to one is an
# attack (script in the merchant's name, a local file), not a way back to a mobile app. This is
# our inference; Stripe documents no such list.
_NOT_AN_APP = frozenset({"javascript", "data", "vbscript", "file"})
# `localhost:4242/success` or `shop.example:8080` parses as the scheme `localhost` and a path of
# digits: a web address whose `http://` was forgotten, not an app's URI (also our inference).
_HOST_AND_PORT = re.compile(r"[^:]+:[0-9]+(?:[/?#]|$)")


def _app_uri(text: str) -> bool:
    """An application URI as a return_url may be one (Stripe's parameter documentation: "If
    you'd prefer to redirect to a mobile application, you can alternatively supply an
    application URI scheme"): a well-formed scheme that is not one of `_NOT_AN_APP`, not a host
    and port without their `http://` (`_HOST_AND_PORT`), and no whitespace, control or format
    character anywhere (`_unsendable`: an app's URI has no host we could check alone, so all of
    it is checked)."""
    scheme = _APP_SCHEME.match(text)
    return (
        bool(scheme)
        and scheme[1].lower() not in _NOT_AN_APP
        and not _HOST_AND_PORT.match(text)
        and not _unsendable(text)
    )


def url(
    value: Any,
    param: str,
    message: str | None = None,
    deliver: bool = False,
    app: bool = False,
) -> str | None:
    """An http(s) URL one can go to: it parses whole (urlsplit refuses `http://[::1`, and
    `.port` refuses `:99999` or `:abc` only when asked, so both are asked here), it names a host
    (`https:///x`, `https://` and `http:foo` name none), and a port other than 0, which nothing
    listens on. Checked before the URL is kept and used: a redirect to it, or (`deliver`) a
    webhook delivery, which also needs a URL with no whitespace, control or format character
    anywhere (`_unsendable`, as a host never has one) and a host without a `%` (an IPv6 zone), as
    http.client sends it. With `app` (a return_url), an application URI (`_app_uri`) is taken
    too, and no whitespace, control or format character is taken anywhere either: the 3-D
    Secure page's redirect puts the URL in a Location header, which one would end or split.
    Refused as Stripe does, a 400 `url_invalid` naming the param; `message` is Stripe's own text
    where it is known, otherwise "Invalid URL: " and the URL."""
    text = string(value, param)
    if text is None:
        return None
    refused = malformed(message or f"Invalid URL: {text}", param, "url_invalid")
    try:
        parts = urlsplit(text)
        web = parts.scheme in WEB_SCHEMES
        port = parts.port if web else None  # raises ValueError: out of range or not a number
        host = parts.hostname
    except ValueError:
        raise refused from None
    if app and not web:
        if _app_uri(text):
            return text
        raise refused
    if not web or not host or port == 0:
        raise refused
    if _unsendable(host) or ((deliver or app) and _unsendable(text)) or (deliver and "%" in host):
        raise refused
    return text


def currency(value: Any) -> str:
    """A currency code in any case, as Stripe reads it (lowercased first: its refusal of `XYZ`
    names `xyz`); kept and answered in lowercase."""
    code = value.lower() if isinstance(value, str) else None
    if code not in CURRENCIES:
        raise malformed(
            f"Invalid currency: {str(value).lower()}. Stripe currently supports these currencies: "
            + ", ".join(sorted(CURRENCIES)),
            "currency",
        )
    return code


def chargeable(number: int, cur: str, param: str) -> int:
    """``number`` if Stripe can charge it in ``cur``. Stripe's "Supported currencies" page: "The
    API supports three-decimal currencies for the standard payment flows, including Payment
    Intents, Refunds, and Disputes. However, to ensure compatibility with Stripe's payments
    partners, these API calls require the least-significant (last) digit to be 0." So a
    PaymentIntent's amount, an `amount_to_capture` and a refund's amount of 5125 KWD are
    refused. Stripe's exact words for this refusal are not published; the message follows the
    one it documents for ISK amounts not divisible by 100 (support.stripe.com, "Deprecation of
    fractional ISK charges and refunds"), with `invalid_charge_amount`, a code of Stripe's.

    ISK and UGX (the page's "Special cases") are written with two decimals, "where the decimal
    amount is always 00": 1050 ISK is refused with the message and code that support article
    gives, for charges, PaymentIntents and refunds alike."""
    if cur in THREE_DECIMAL and number % 10:
        raise invalid(
            f"Invalid amount. Currency {cur.upper()} is a three-decimal currency and amounts must"
            " be evenly divisible by 10. See https://stripe.com/docs/currencies#three-decimal for"
            " more information.",
            param,
            "invalid_charge_amount",
        )
    if cur in WHOLE_UNITS and number % 100:
        raise invalid(
            f"Invalid amount. Currency {cur.upper()} has become effectively zero-decimal and"
            " charged amounts must be evenly divisible by 100. See"
            " https://stripe.com/docs/currencies#special-cases for more information.",
            param,
            "invalid_charge_amount_no_decimal_compatible",
        )
    return number


def amount(value: Any, cur: str, param: str = "amount") -> int:
    """A PaymentIntent's amount in ``cur``: at least 1 and Stripe's minimum, at most its
    largest amount, and one Stripe can charge (`chargeable`).

    Below the minimum or over the largest amount is a range its parameters fail, whatever is
    stored: refused before the request executes (`malformed`), so its idempotency key keeps
    nothing and the corrected request may use it (Stripe's Advanced error handling: "most 400s
    that sent invalid parameters" do not hold a key)."""
    number = integer(value, param)
    if number < 1:
        raise malformed("This value must be greater than or equal to 1.", param)
    minimum = MINIMUMS.get(cur, 1)
    if number < minimum:
        raise malformed(
            f"Amount must be at least {money(minimum, cur)} {cur}", param, "amount_too_small"
        )
    if number > MAX_AMOUNT:
        raise malformed(
            f"Amount must be no more than {money(MAX_AMOUNT, cur)}", param, "amount_too_large"
        )
    return chargeable(number, cur, param)


def metadata(value: Any, current: dict[str, str] | None = None) -> dict[str, str]:
    """Merge as Stripe does: an empty value unsets a key, an empty string unsets them all."""
    merged = dict(current or {})
    if value == "":
        return {}
    if not isinstance(value, dict):
        raise malformed("Invalid metadata: must be a hash", "metadata")
    for key, val in value.items():
        if not isinstance(val, str):
            raise malformed(f"Invalid metadata[{key}]: must be a string", f"metadata[{key}]")
        if len(key) > 40:
            raise malformed(
                f"Metadata keys can have a maximum length of 40 characters. '{key}' is too long.",
                f"metadata[{key}]",
            )
        if len(val) > 500:
            raise malformed(
                "Metadata values can have up to 500 characters, but you passed in a value that is"
                f" {len(val)} characters. Invalid value: {val[:40]}...",
                f"metadata[{key}]",
            )
        if val == "":
            merged.pop(key, None)
        else:
            merged[key] = val
    if len(merged) > 50:
        refused = malformed if not current else invalid  # with the keys it has: an answer
        raise refused("You can have up to 50 metadata keys.", "metadata")
    return merged


def email(value: Any, param: str) -> str | None:
    text = string(value, param)
    # No white space and no control character anywhere (Stripe refuses an address a mail
    # header could not carry).
    if text is not None and not re.fullmatch(
        r"[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s\x00-\x1f\x7f-\x9f]+\.[^@\s\x00-\x1f\x7f-\x9f]+", text
    ):
        raise malformed(f"Invalid email address: {text}", param, "email_invalid")
    return text


def address(value: Any) -> dict[str, Any]:
    value = value if isinstance(value, dict) else {}
    return {k: (value.get(k) or None) for k in ADDRESS_SPEC}


def shipping(value: Any, param: str = "shipping") -> dict[str, Any] | None:
    if value in ("", None):
        return None
    if not isinstance(value, dict):
        raise malformed(f"Invalid hash: {param}", param)
    if not value.get("name"):
        raise malformed(
            f"Missing required param: {param}[name].", f"{param}[name]", "parameter_missing"
        )
    if not isinstance(value.get("address"), dict):
        raise malformed(
            f"Missing required param: {param}[address].", f"{param}[address]", "parameter_missing"
        )
    return {
        "address": address(value.get("address")),
        "carrier": value.get("carrier") or None,
        "name": value["name"],
        "phone": value.get("phone") or None,
        "tracking_number": value.get("tracking_number") or None,
    }


def billing_details(value: Any) -> dict[str, Any]:
    value = value if isinstance(value, dict) else {}
    return {
        "address": address(value.get("address")),
        "email": value.get("email") or None,
        "name": value.get("name") or None,
        "phone": value.get("phone") or None,
        "tax_id": value.get("tax_id") or None,
    }


INVALID_ARRAY = "Invalid array"  # Stripe's whole message for a non-list given as a list


def string_list(value: Any, param: str) -> list[str]:
    """A list of strings (`a[]=x`, `a[0]=x`); empty (`a=`) is none. One string (`a=x`) is not
    a list: Stripe's "Invalid array", naming the parameter."""
    if value == "":
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise malformed(INVALID_ARRAY, param)
    return value
