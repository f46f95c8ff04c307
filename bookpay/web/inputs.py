"""What the checkout server accepts from a browser, and the errors for what it refuses.

Each check raises a ``UsageError`` subclass whose ``http_status`` and ``code`` become the JSON
error the page shows; nothing here touches Stripe.
"""

from __future__ import annotations

import json
import re
import uuid

import bottle

from bookpay.errors import UsageError
from bookpay.quote import MAX_QUANTITY, QuantityOutOfRange

_DIGITS = re.compile(r"[0-9]{1,6}")  # a quantity as a form sends it
MAX_JSON_BODY = 4 * 1024  # a checkout request is ~100 bytes; anything near this is not ours


class PayloadTooLarge(UsageError):
    http_status = 413
    code = "payload_too_large"


class UnsupportedMediaType(UsageError):
    http_status = 415
    code = "unsupported_media_type"


def read_body(request: bottle.BaseRequest, limit: int, message: str) -> bytes:
    """The raw request body, or PayloadTooLarge(``message``) if it is longer than ``limit`` bytes.

    Checked before reading (the declared length) and after (a chunked body declares none), so no
    more than ``limit + 1`` bytes are ever read.
    """
    if request.content_length > limit:
        raise PayloadTooLarge(message)
    raw = request.body.read(limit + 1)
    if len(raw) > limit:
        raise PayloadTooLarge(message)
    return raw


def read_json_object(request: bottle.BaseRequest) -> dict:
    """The request body as a JSON object, refusing what a checkout page would never send."""
    content_type = request.content_type.split(";", 1)[0].strip().lower()
    if content_type != "application/json":
        raise UnsupportedMediaType("Send the request as JSON (Content-Type: application/json).")
    raw = read_body(
        request, MAX_JSON_BODY, f"The request body is larger than {MAX_JSON_BODY} bytes."
    )
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise UsageError("The request body is not valid JSON.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise UsageError("The request body must be a JSON object.", code="invalid_json")
    return data


def read_form(request: bottle.BaseRequest, names: tuple[str, ...]) -> dict:
    """The posted form's ``names`` fields (None when absent or not UTF-8), refusing a form whose
    fields cannot be read as text at all (a multipart part of bytes no charset decodes)."""
    try:
        forms = request.forms
    except UnicodeDecodeError:
        raise UsageError("The form's fields are not valid text.", code="invalid_form") from None
    return {name: forms.getunicode(name) for name in names}


def cookie_values(request: bottle.BaseRequest, name: str) -> list[str]:
    """Every value the ``Cookie`` header gives the cookie ``name``, in the order it was sent.

    Read as browsers write the header (and werkzeug reads it): pairs split on ``;``, each on its
    first ``=``, spaces stripped, a value's double quotes taken off. Not through Bottle's
    ``get_cookie``: Python's ``SimpleCookie`` gives up on the whole header at the first cookie
    whose value it does not take (``prefs={"theme":"dark"}``, ``flash=Welcome back!``, ``x=é``,
    a name with no value), and any site on the same host, whatever its port, can set one.
    """
    found = []
    for pair in request.environ.get("HTTP_COOKIE", "").split(";"):
        key, eq, value = pair.partition("=")
        if eq and key.strip() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            found.append(value)
    return found


def item_id(value: object) -> str:
    if value is None:
        raise UsageError("Say which book to buy: 'item' is missing.", code="missing_item")
    if not isinstance(value, str) or not value:
        raise UsageError("'item' must be a book id (a string).", code="invalid_item")
    return value


def quantity(value: object, *, default: int | None = None, allow_zero: bool = False) -> int:
    """A quantity from a form (text) or JSON (a whole number); the cart checks its bounds."""
    if value is None or value == "":
        if default is None:
            raise UsageError("Say how many copies: 'quantity' is missing.", code="missing_quantity")
        return default
    # ASCII digits only: str.isdigit() also says yes to '²' and '①', which int() refuses.
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        low = 0 if allow_zero else 1
        raise QuantityOutOfRange(
            f"The quantity must be a whole number from {low} to {MAX_QUANTITY}."
        )
    return value


def attempt_id(value: object) -> str:
    """The page's attempt id: a UUID in its canonical form, so equal attempts are equal keys."""
    if value is None:
        raise UsageError("'attemptId' is missing.", code="missing_attempt_id")
    try:
        parsed = uuid.UUID(value) if isinstance(value, str) and len(value) == 36 else None
    except ValueError:
        parsed = None
    if parsed is None or str(parsed) != value.lower():
        raise UsageError("'attemptId' must be a UUID.", code="invalid_attempt_id")
    return str(parsed)


MAX_VERSION = 2**53 - 1  # what a browser's Number counts exactly
MAX_NAME = 200
SHIP_TO_MISSING = "'name' is missing: say who the order ships to."


def quote_version(value: object) -> int | None:
    """A quote's version: a whole number from 1 (None when the page sent none)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_VERSION:
        raise UsageError("'version' must be a whole number from 1.", code="invalid_version")
    return value


def shipping_rate_id(value: object) -> str | None:
    """The shipping rate asked for, by id (None: the cheapest)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 100:
        raise UsageError(
            "'shippingRate' must be a shipping rate's id.", code="invalid_shipping_rate"
        )
    return value


def ship_to(value: object) -> str:
    """The name to ship to (the Address Element's), for the PaymentIntent's ``shipping``.

    Required, not blank: Stripe's ``shipping`` needs a name, and a PaymentIntent paid without the
    address its tax was priced for is never fulfilled. The checkout page quotes only once the
    Address Element is complete, name included.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        raise UsageError(SHIP_TO_MISSING, code="invalid_name")
    if not isinstance(value, str) or len(value) > MAX_NAME or not value.isprintable():
        raise UsageError(
            f"'name' must be at most {MAX_NAME} characters of plain text.", code="invalid_name"
        )
    return value.strip()
