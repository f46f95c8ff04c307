"""The shape of a Stripe event, checked before anything reads it.

A valid signature says who sent the bytes, not that they make sense: a leaked secret, a proxy that
rewrites bodies or a bug can still deliver ``data`` that is a string, an id with a lone surrogate,
a ``created`` of 10^20, JSON nested thousands deep or a key twice in one object. ``parse`` turns
the raw body into an ``Event`` whose every field bookpay reads has been checked for type and
bounds, or raises ``InvalidEvent`` saying why (with the event's id and type when they are usable,
so the refusal can be recorded against them). Nothing here trusts the event for state: the
handlers ask Stripe.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from bookpay.errors import UsageError

MAX_ID = 255  # Stripe's ids are far shorter; anything longer is not one
# Printable ASCII without spaces: every Stripe id is [A-Za-z0-9_]; this also keeps control
# characters and lone surrogates (which SQLite cannot even store) out of the ledger.
_ID = re.compile(rf"[\x21-\x7e]{{1,{MAX_ID}}}")
# An event type, printable ASCII without spaces as an id is: Stripe's are dotted lowercase words,
# some with brackets (``v2.core.account[configuration.merchant].updated``). Only the types bookpay
# handles are compared with anything; the ledger and the log take any such text.
_TYPE = re.compile(rf"[\x21-\x7e]{{1,{MAX_ID}}}")
MAX_TIMESTAMP = 10**11  # seconds: the year 5138; Stripe's are 10 digits
MAX_AMOUNT = 10**12  # minor units; Stripe's own limit is eight digits
MAX_TEXT = 5000


class InvalidEvent(UsageError):
    """A signed body that is not a usable Stripe event (HTTP 400).

    ``event_id`` and ``kind`` are set when the event's id and type were usable, so the refusal
    can be recorded in the ledger under them.
    """

    code = "invalid_event"

    def __init__(self, reason: str, *, event_id: str | None = None, kind: str | None = None):
        super().__init__(f"The webhook body is not a valid Stripe event: {reason}.")
        self.reason = reason
        self.event_id = event_id
        self.kind = kind


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    created: int | None  # None: an event bookpay does not handle, with no Unix timestamp
    livemode: bool | None
    object: dict[str, Any]  # data.object, its fields checked for the event's type
    object_id: str | None  # data.object.id
    # The PaymentIntent its copy names: where the ledger files it until the handler has
    # retrieved Stripe's objects, which then decide (an edited copy can name another order).
    intent_id: str | None


def is_id(value: object) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def object_id(value: object) -> str | None:
    """The id in an expandable field: an id string, or an expanded object's ``id``; else None."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if is_id(value) else None


def amount(value: object) -> int | None:
    """A non-negative amount in minor units, or None when ``value`` is not one."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_AMOUNT:
        return value
    return None


# What each check accepts; None (JSON null) is accepted wherever Stripe's field is nullable.
def _reference(value: object) -> bool:
    return value is None or object_id(value) is not None


def _amount(value: object) -> bool:
    return amount(value) is not None


def _object_or_null(value: object) -> bool:
    return value is None or isinstance(value, dict)


def _text_or_null(value: object) -> bool:
    return value is None or (
        isinstance(value, str) and len(value) <= MAX_TEXT and _encodable(value)
    )


def _flag(value: object) -> bool:
    return isinstance(value, bool)


# The fields bookpay reads of each kind of object, when present (Stripe always sends them; the
# checks are for what is sent, so a trimmed event still passes if what it has is right).
FIELDS: dict[str, dict[str, Callable[[object], bool]]] = {
    "payment_intent": {
        "amount": _amount,
        "amount_received": _amount,
        "amount_capturable": _amount,
        "status": _text_or_null,
        "last_payment_error": _object_or_null,
        "latest_charge": _reference,
        "metadata": _object_or_null,
    },
    "charge": {
        "amount": _amount,
        "amount_captured": _amount,
        "amount_refunded": _amount,
        "refunded": _flag,
        "payment_intent": _reference,
    },
    "refund": {
        "amount": _amount,
        "charge": _reference,
        "payment_intent": _reference,
        "status": _text_or_null,
    },
    "dispute": {
        "amount": _amount,
        "charge": _reference,
        "payment_intent": _reference,
        "reason": _text_or_null,
    },
}


def object_kind(event_type: str) -> str | None:
    """The kind of ``data.object`` an event type carries, for the types bookpay handles."""
    for prefix, kind in (
        ("payment_intent.", "payment_intent"),
        ("charge.dispute.", "dispute"),
        ("charge.refund.", "refund"),
        ("refund.", "refund"),
        ("charge.", "charge"),
    ):
        if event_type.startswith(prefix):
            return kind
    return None


def parse(payload: bytes, handled: Collection[str]) -> Event:
    """The event in ``payload`` (already verified), checked; InvalidEvent otherwise.

        Events of a type in ``handled`` must carry the object that type is about, with every field
        bookpay reads well-formed; others need only their id and type, since nothing reads the rest.
    Whatever its type, a body with a key twice in one object is refused (``_unique``).
    """
    try:
        event = json.loads(payload, object_pairs_hook=_unique)
    except RecursionError:
        raise InvalidEvent("its JSON is nested too deeply") from None
    except _DuplicateKey as exc:
        raise InvalidEvent(f"it has the key {exc} twice in one object") from None
    except ValueError:  # not JSON, not UTF-8, or an integer too long to convert
        raise InvalidEvent("it is not JSON") from None
    if not isinstance(event, dict):
        raise InvalidEvent("it is not a JSON object")
    event_id, kind = event.get("id"), event.get("type")
    if not is_id(event_id):
        raise InvalidEvent("its id is missing or not a Stripe id")
    if not isinstance(kind, str) or _TYPE.fullmatch(kind) is None:
        raise InvalidEvent("its type is missing or not an event type", event_id=event_id)

    def refuse(reason: str) -> InvalidEvent:
        return InvalidEvent(reason, event_id=event_id, kind=kind)

    created, livemode = event.get("created"), event.get("livemode")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if kind not in handled:
        # Nothing reads it but its id and type (and where its copy says it belongs), so nothing
        # else of it can be wrong: a thin event (an ISO 8601 ``created``, no ``data``) or one
        # shaped as a newer API shapes it is acknowledged, never refused, which would only have
        # Stripe send it again for days.
        obj = obj if isinstance(obj, dict) else {}
        return Event(
            id=event_id,
            type=kind,
            created=created if _timestamp(created) else None,
            livemode=livemode if isinstance(livemode, bool) else None,
            object=obj,
            object_id=object_id(obj.get("id")),
            intent_id=_intent_of(obj),
        )
    if not _timestamp(created):
        raise refuse("created is not a Unix timestamp")
    if livemode is not None and not isinstance(livemode, bool):
        raise refuse("livemode is not true or false")
    if not isinstance(obj, dict):
        raise refuse("data.object is not an object")
    expected = object_kind(kind)
    if expected is not None:
        if obj.get("object") != expected:
            raise refuse(f"data.object is not a {expected}")
        if not is_id(obj.get("id")):
            raise refuse(f"data.object.id is not a {expected} id")
        for name, check in FIELDS[expected].items():
            if name in obj and not check(obj[name]):
                raise refuse(f"data.object.{name} is malformed")
    return Event(
        id=event_id,
        type=kind,
        created=created,
        livemode=livemode,
        object=obj,
        object_id=object_id(obj.get("id")),
        intent_id=_intent_of(obj),
    )


class _DuplicateKey(ValueError):
    pass


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused if it has a key twice: Stripe never sends one, and a body that does
    reads two ways (``json`` keeps the last, other parsers the first), so which event, or which
    object, it names would depend on who reads it."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _DuplicateKey(json.dumps(key[:40]))  # quoted, its control characters escaped
        found[key] = value
    return found


def _timestamp(value: object) -> bool:
    """Whether ``value`` is a Unix timestamp in seconds, as a v1 event's ``created`` is."""
    return amount(value) is not None and value <= MAX_TIMESTAMP


def _intent_of(obj: dict[str, Any]) -> str | None:
    if obj.get("object") == "payment_intent":
        return object_id(obj.get("id"))
    return object_id(obj.get("payment_intent"))


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True
