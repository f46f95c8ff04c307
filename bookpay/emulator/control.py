"""The emulator's control endpoints: faults, the clock, a reset. Not Stripe's API.

Paths under ``/_emulator/``, JSON (or a plain form, for curl) in, JSON out. Faults never apply
here. Whatever changes the emulator's behaviour needs a test-mode secret key
(``Authorization: Bearer sk_test_...``): a page's publishable key cannot fault or reset it. The
lists of deliveries and notifications stay readable without one, as before.

- ``GET /_emulator/faults``: the rates, latency, seed, scripted rules and how many of each fault
  were injected. ``POST`` with ``fault`` adds a rule (``method``, ``path``, ``times``,
  ``retry_after``, ``seconds``); ``POST`` with ``rates`` (``"500=5%,429=2%"``), ``latency``
  (``"50-400"`` ms) or ``seed`` changes those. ``DELETE`` clears all of it.
- ``GET /_emulator/clock``: the emulator's time; ``POST`` with ``days``, ``hours``, ``minutes``
  or ``seconds`` advances it, doing what falls due on the way.
- ``POST /_emulator/reset``: forget every object, key, delivery, timer, fault and clock change.
- ``GET /_emulator/deliveries``, ``GET /_emulator/notifications``: webhook attempts, and the
  endpoints Stripe would have told the account are failing.
"""

from __future__ import annotations

import json
import re
from typing import Any

from . import faults
from .wire import ApiError, Response, decode_form, new_request_id

SECRET_NEEDED = (
    "The emulator's control endpoints take a test-mode secret key: send"
    " 'Authorization: Bearer sk_test_...'."
)
READABLE = ("deliveries", "notifications")
UNIT_SECONDS = {"days": 86400.0, "hours": 3600.0, "minutes": 60.0, "seconds": 1.0}
# How far ahead of real time the clock may go: far beyond any test, well short of the dates
# (year 9999) and floats that would overflow where the emulator turns its time into objects.
MAX_AHEAD_DAYS = 36525  # 100 years
# Each endpoint and the methods it takes.
KNOWN = {
    "faults": ("GET", "POST", "DELETE"),
    "clock": ("GET", "POST"),
    "reset": ("POST",),
    "deliveries": ("GET",),
    "notifications": ("GET",),
}
# The fields of a fault rule, and of a change to the rates: any other (a misspelt `times`,
# which would make a rule for every call) is refused rather than ignored.
RULE_FIELDS = ("fault", "method", "path", "times", "retry_after", "seconds")
RATE_FIELDS = ("rates", "latency", "seed")
# A number as JSON writes one, or a form as curl sends it: ASCII digits only (Python's int()
# and float() also take `1_000`, Arabic-Indic digits and surrounding whitespace).
_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def handle(app: Any, environ: dict[str, Any], method: str, name: str) -> Response:
    request_id = new_request_id()
    try:
        answer = _dispatch(app, environ, method, name)
    except ApiError as exc:
        return Response.json(exc.status, exc.envelope(request_id))
    headers = [("Cache-Control", "no-store")]
    if name in READABLE:  # lists a page may read, as it always could
        headers.append(("Access-Control-Allow-Origin", "*"))
    return Response.json(200, answer, headers=headers)


def _dispatch(app: Any, environ: dict[str, Any], method: str, name: str) -> dict[str, Any]:
    if name not in KNOWN:
        raise ApiError(404, f"Unrecognized control endpoint: /_emulator/{name}.")
    if method not in KNOWN[name]:
        raise ApiError(405, f"/_emulator/{name} takes {', '.join(KNOWN[name])}, not {method}.")
    if name == "deliveries":
        return {"data": app.delivery_attempts()}
    if name == "notifications":
        return {"data": list(app.deliverer.notices)}
    _authorize(environ)
    if name == "faults":
        if method == "POST":
            return _change_faults(app.faults, _body(environ))
        if method == "DELETE":
            app.faults.clear()
        return app.faults.describe()
    if name == "clock":
        ran = {}
        if method == "POST":
            ran = app.clock.advance(_seconds(_body(environ), app.clock.offset))
        return {"now": app.clock.now(), "offset": app.clock.offset, "ran": ran}
    app.reset()
    return {"reset": True}


def _authorize(environ: dict[str, Any]) -> None:
    """A test-mode secret key, sent as the API takes it (Bearer, or Basic as curl -u sends)."""
    from .api import FROM_A_PAGE, authenticate

    if environ.get("HTTP_ORIGIN"):  # a page's script: never one to fault, move or reset it
        raise ApiError(403, FROM_A_PAGE)
    if not environ.get("HTTP_AUTHORIZATION"):
        raise ApiError(401, SECRET_NEEDED)
    try:
        key, publishable = authenticate(environ, {})
    except ApiError:
        raise ApiError(403, SECRET_NEEDED) from None
    if publishable or not key.startswith("sk_test_"):
        raise ApiError(403, SECRET_NEEDED)


def _body(environ: dict[str, Any]) -> dict[str, Any]:
    from .api import _body as read

    raw = read(environ).strip()
    if not raw:
        return {}
    if raw.startswith("{"):
        try:
            data = json.loads(raw)
        except ValueError:
            raise ApiError(400, "The body is not valid JSON.") from None
        except RecursionError:  # thousands of nested brackets: refused, never a 500
            raise ApiError(400, "The body is not valid JSON: it is nested too deeply.") from None
        if not isinstance(data, dict):
            raise ApiError(400, "The body must be a JSON object.")
        return data
    return decode_form(raw)


def _change_faults(state: faults.Faults, body: dict[str, Any]) -> dict[str, Any]:
    fields = RULE_FIELDS if "fault" in body else RATE_FIELDS
    unknown = sorted(set(body) - set(fields), key=str)
    if unknown:
        shown = ", ".join(_shown(name) for name in unknown)
        raise ApiError(
            400,
            f"Unknown field {shown}: {'a rule takes' if 'fault' in body else 'a change takes'}"
            f" {', '.join(fields)}.",
        )
    if "fault" in body:
        rule = state.add_rule(_rule(body))
        return {**state.describe(), "rule": rule.to_dict()}
    if not {"rates", "latency", "seed"} & set(body):
        raise ApiError(400, "Say what to change: fault (a rule), or rates, latency or seed.")
    try:
        rates = _rates(body["rates"]) if "rates" in body else None
        latency = faults.parse_latency(str(body["latency"])) if "latency" in body else None
    except ValueError as exc:
        raise ApiError(400, f"{str(exc)[0].upper()}{str(exc)[1:]}.") from None
    seed = _number(body, "seed", int) if "seed" in body else None
    state.configure(rates, latency, seed)
    return state.describe()


def _rates(value: Any) -> dict[str, float]:
    if isinstance(value, str):
        return faults.parse_rates(value)
    if isinstance(value, dict):
        spec = ",".join(f"{kind}={percent}%" for kind, percent in value.items())
        return faults.parse_rates(spec)
    raise ValueError('rates are "500=5%,429=2%" or {"500": 5, "429": 2} (percentages)')


def _rule(body: dict[str, Any]) -> faults.Rule:
    kind = str(body["fault"])
    if kind not in faults.KINDS:
        raise ApiError(400, f"Unknown fault {kind!r}: the faults are {', '.join(faults.KINDS)}.")
    method = body.get("method")
    if method is not None:
        method = str(method).upper()
        if method not in ("GET", "POST", "DELETE"):
            raise ApiError(400, f"method must be GET, POST or DELETE, not {method!r}.")
    path = body.get("path")
    if path is not None and not (isinstance(path, str) and path.startswith("/v1/")):
        raise ApiError(400, "path must be an API path such as /v1/refunds: faults apply to /v1.")
    times = _number(body, "times", int) if body.get("times") is not None else None
    if times is not None and times < 1:
        raise ApiError(400, "times must be at least 1 (leave it out for every call).")
    retry_after = _number(body, "retry_after", int) if body.get("retry_after") is not None else None
    if retry_after is not None and retry_after < 0:
        raise ApiError(400, "retry_after cannot be negative.")
    seconds = _number(body, "seconds", float) if "seconds" in body else faults.DEFAULT_HANG
    if not 0 <= seconds <= 600:
        raise ApiError(400, "seconds (how long a timeout holds the connection) is 0 to 600.")
    return faults.Rule(kind, method, path, times, retry_after, seconds)


def _seconds(body: dict[str, Any], offset: float = 0.0) -> float:
    """The advance asked for, checked whole: each number is finite, but their sum (1e308 days
    in seconds) may not be, and time past MAX_AHEAD_DAYS overflows later (JSON's Infinity, a
    tax calculation's date), so an advance that takes the clock that far is refused."""
    unknown = set(body) - set(UNIT_SECONDS)
    if unknown or not body:
        raise ApiError(400, "Advance the clock by days, hours, minutes and/or seconds.")
    amounts = {unit: _number(body, unit, float) for unit in body}
    if any(amount < 0 for amount in amounts.values()):
        raise ApiError(400, "The clock only moves forward: no unit may be negative.")
    total = sum(amount * UNIT_SECONDS[unit] for unit, amount in amounts.items())
    if not offset + total <= MAX_AHEAD_DAYS * UNIT_SECONDS["days"]:  # NaN fails too
        raise ApiError(
            400,
            f"The clock goes at most {MAX_AHEAD_DAYS} days (100 years) ahead of real time;"
            f" it is {offset / UNIT_SECONDS['days']:.2f} days ahead now.",
        )
    return total


def _number(body: dict[str, Any], name: str, kind: type) -> Any:
    """A JSON number, or its text in a form (`_NUMBER`); for an int, a whole one (2.0 is 2,
    1.5 is refused rather than cut to 1)."""
    value = body[name]
    if isinstance(value, bool) or not (
        isinstance(value, (int, float)) or (isinstance(value, str) and _NUMBER.fullmatch(value))
    ):
        raise ApiError(400, f"{name} must be a number, not {_shown(value)}.")
    if kind is int and (
        isinstance(value, int) or (isinstance(value, str) and value.lstrip("-").isdigit())
    ):
        return int(value)  # exact, however long
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        number = float("inf")
    if number != number or number in (float("inf"), float("-inf")):  # NaN, infinities
        raise ApiError(400, f"{name} must be a finite number.")
    if kind is float:
        return number
    if not number.is_integer():
        raise ApiError(400, f"{name} must be a whole number, not {_shown(value)}.")
    return int(number)


def _shown(value: Any) -> str:
    """A refused value as the message quotes it: a long one cut short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
