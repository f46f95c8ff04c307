"""The emulator for tests: started in-process on a free port, driven over HTTP like Stripe.

Everything here talks to the emulator the way a client talks to Stripe (the API) or a test to
its control endpoints (``/_emulator/faults``, ``/_emulator/clock``, ``/_emulator/reset``), so
the same ``StripeEmulator`` can wrap one started elsewhere (``StripeEmulator(url)``).
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

# Any sk_test_/pk_test_ key works with the emulator; these say where a request came from.
SECRET_KEY = "sk_test_bookpay_testing"
PUBLISHABLE_KEY = "pk_test_bookpay_testing"
# Local and quick: never through an HTTP(S)_PROXY from the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class HttpError(Exception):
    """An error answer: ``status``, the JSON ``body`` and its error ``code``; ``message``, when
    given, is what the error says instead of the status and the body's message."""

    def __init__(self, status: int | None, body: Any, message: str | None = None) -> None:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        error = error if isinstance(error, dict) else {}
        super().__init__(message or f"{status}: {error.get('message') or body}")
        self.status = status
        self.body = body
        self.code = error.get("code")


class EmulatorError(HttpError):
    """A control or API call the emulator refused; or one no emulator answered (``status``
    None: nothing listening at its URL, or no answer in time), or that another server
    answered, not in the emulator's JSON (its ``status``, ``body`` None): the message names
    the URL and what to do."""


# What to do when no emulator answers at a StripeEmulator's URL.
START_ONE = (
    "start one with `bookpay emulator` (or `with bookpay.testing.emulator() as emu:`), or give"
    " StripeEmulator the URL where one runs."
)


@contextmanager
def emulator(**options: Any) -> Iterator[StripeEmulator]:
    """Start an emulator in memory on a free port for the ``with`` block; stop it after.

    ``options`` are ``bookpay.emulator.EmulatorOptions`` fields: ``faults="500=5%"``, ``seed``,
    ``latency`` and ``latency_max`` (seconds), ``async_delay`` (what Stripe does "some time
    later", 2 s), ``retry_schedule`` (Stripe test mode's three retries over a few hours by default;
    ``bookpay.emulator.STRIPE_LIVE_RETRY_SCHEDULE`` for live mode's three days; advance the clock).
    """
    from bookpay.emulator import start_emulator

    running = start_emulator("127.0.0.1", 0, emulator_options(**options))
    try:
        yield StripeEmulator(running.url, running=running)
    finally:
        running.stop()


def emulator_options(**options: Any) -> Any:
    """``EmulatorOptions`` from these, checked first: ValueError, naming the option and what it
    takes, for an unknown name or a bad value (not a traceback from deep in the emulator)."""
    import os
    from dataclasses import fields

    from bookpay.emulator import EmulatorOptions
    from bookpay.emulator.faults import MAX_LATENCY_MS, parse_rates

    known = sorted(f.name for f in fields(EmulatorOptions))
    for name, value in options.items():
        if name not in known:
            raise ValueError(f"unknown option {name!r} (the options: {', '.join(known)})")
        said = f"{name}={value!r}"
        if name in _SECONDS:
            most = MAX_LATENCY_MS / 1000 if name.startswith("latency") else None
            if name == "latency_max" and value is None:
                continue
            if not _number(value) or value < 0 or (most is not None and value > most):
                upto = f" to {most:g}" if most is not None else ""
                raise ValueError(f"{said} is not seconds from 0{upto}")
        elif name in ("seed", "threads"):
            if value is None and name == "seed":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < (name == "threads"):
                low = "1" if name == "threads" else "0"
                raise ValueError(f"{said} is not a whole number from {low}")
        elif name == "faults":
            if not isinstance(value, str):
                raise ValueError(f'{said} is not a string such as "500=5%,429=2%"')
            try:
                parse_rates(value)
            except ValueError as exc:
                raise ValueError(f"{said}: {exc}") from None
        elif name == "retry_schedule" and not (
            isinstance(value, (list, tuple)) and all(_number(v) and v >= 0 for v in value)
        ):
            raise ValueError(f"{said} is not a list of seconds, such as (300, 1800)")
        elif name == "db_path" and not (value is None or isinstance(value, (str, os.PathLike))):
            raise ValueError(f"{said} is not a file path (None: in memory)")
    low, high = options.get("latency", 0.0), options.get("latency_max")
    if high is not None and high < low:
        raise ValueError(
            f"latency_max={high!r} is less than latency={low!r}: a latency drawn from "
            "latency to latency_max (seconds)"
        )
    return EmulatorOptions(**options)


_SECONDS = ("latency", "latency_max", "async_delay", "delivery_timeout", "fault_hang")


def _number(value: Any) -> bool:
    import math

    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class StripeEmulator:
    """A running emulator: ``url``, test keys, ``client``, events, deliveries, faults, clock."""

    def __init__(self, url: str, *, running: Any = None, secret_key: str = SECRET_KEY) -> None:
        self.url = url.rstrip("/")
        self.running = running
        self.secret_key = secret_key
        self.publishable_key = PUBLISHABLE_KEY
        self.faults = Faults(self)
        self.clock = Clock(self)
        self._client: Any = None

    def __repr__(self) -> str:
        return f"<StripeEmulator {self.url}>"

    @property
    def stripe_js_url(self) -> str:
        """The emulator's offline Stripe.js (what a page loads instead of js.stripe.com)."""
        return f"{self.url}/v3/"

    # stripe-python ---------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """A ``stripe.StripeClient`` for this emulator (network retries on, as Stripe advises)."""
        if self._client is None:
            self._client = self.client_for()
        return self._client

    def client_for(self, **options: Any) -> Any:
        """A new ``stripe.StripeClient`` for this emulator; ``options`` are StripeClient's."""
        import stripe

        options.setdefault("max_network_retries", 2)
        if "http_client" not in options:
            options["http_client"] = _direct_http_client()
        return stripe.StripeClient(
            options.pop("api_key", self.secret_key), base_addresses={"api": self.url}, **options
        )

    # What it did -----------------------------------------------------------------------------

    def events(self, type: str | None = None) -> list[dict[str, Any]]:
        """Every event the emulator emitted, oldest first (only of ``type``, if given)."""
        found: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 100}
        if type:
            params["type"] = type
        while True:
            page = self.api("GET", "/v1/events", params)
            found += page["data"]
            if not page["has_more"]:
                return found[::-1]
            params["starting_after"] = page["data"][-1]["id"]

    def deliveries(self, event_id: str | None = None) -> list[dict[str, Any]]:
        """Every webhook attempt (of ``event_id``'s, if given), oldest first: ``id``,
        ``delivery_id`` (one for an event's attempts at one endpoint, retries included),
        ``event_id``, ``endpoint_id`` (a ``we_`` id), ``url``, ``status`` (None: no answer),
        ``error``, ``attempted_at`` (the emulator's clock, Unix seconds)."""
        attempts = self.control("GET", "deliveries")["data"]
        return [a for a in attempts if event_id is None or a["event_id"] == event_id]

    def notifications(self) -> list[dict[str, Any]]:
        """What Stripe would have told the account: endpoints failing once retries ran out."""
        return self.control("GET", "notifications")["data"]

    def wait_for(self, check: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
        """What ``check()`` returns once it is truthy; AssertionError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            found = check()
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"not reached within {timeout:g} s: {what or check}")
            time.sleep(0.02)

    def reset(self) -> None:
        """Forget every object, key, delivery and timer; faults and the clock as started."""
        self.control("POST", "reset")

    # HTTP ------------------------------------------------------------------------------------

    def api(self, method: str, path: str, params: dict[str, Any] | None = None) -> Any:
        """A plain call to the emulator's Stripe API with the secret key; the JSON answer."""
        query = _form(params or {})
        data = None
        if method == "GET" and query:
            path = f"{path}?{query}"
        elif query:
            data = query.encode()
        return self._call(method, path, data, "application/x-www-form-urlencoded")

    def control(self, method: str, name: str, body: dict[str, Any] | None = None) -> Any:
        """A call to a control endpoint, ``/_emulator/NAME``; the JSON answer."""
        data = json.dumps(body).encode() if body is not None else None
        return self._call(method, f"/_emulator/{name}", data, "application/json")

    def _call(self, method: str, path: str, data: bytes | None, content_type: str) -> Any:
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.secret_key}", "Content-Type": content_type},
        )
        try:
            with _opener.open(request, timeout=300) as answer:
                status, text = answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read()
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            # URLError: nothing listening, no such host; OSError: a timeout or a dropped
            # connection while reading; HTTPException: an answer that is not HTTP.
            reason = getattr(exc, "reason", exc)
            said = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
            message = f"No Stripe emulator answered at {self.url} ({said.lower()}): {START_ONE}"
            raise EmulatorError(None, None, message) from None
        try:
            body = json.loads(text)
        except ValueError:
            message = (
                f"{self.url} answered {status} with something other than the Stripe emulator's"
                " JSON: is the emulator's URL right?"
            )
            raise EmulatorError(status, None, message) from None
        if status >= 400:
            raise EmulatorError(status, body)
        return body


class Faults:
    """Stripe's bad minutes on demand (``/_emulator/faults``); they apply to the API only.

    ``fail("500", path="/v1/payment_intents", method="POST", times=2)``: the next two creates
    answer 500 after they have run; ``fail("429", path="/v1/refunds*", retry_after=2)``: every
    refund call answers 429 until ``clear()``; ``fail("reset", ...)``: the connection dropped
    after the call has run; ``fail("timeout", seconds=5)``: held, then dropped.
    ``rates("500=5%,429=2%", seed=7)`` draws faults at random for every call.
    """

    def __init__(self, emulator: StripeEmulator) -> None:
        self._emulator = emulator

    def fail(
        self,
        fault: str,
        *,
        path: str | None = None,
        method: str | None = None,
        times: int | None = None,
        retry_after: int | None = None,
        seconds: float | None = None,
    ) -> dict[str, Any]:
        rule: dict[str, Any] = {"fault": str(fault)}
        for name, value in (
            ("path", path),
            ("method", method),
            ("times", times),
            ("retry_after", retry_after),
            ("seconds", seconds),
        ):
            if value is not None:
                rule[name] = value
        return self._emulator.control("POST", "faults", rule)["rule"]

    def rates(
        self,
        spec: str | dict[str, float] | None = None,
        *,
        seed: int | None = None,
        latency: str | None = None,
    ) -> dict[str, Any]:
        """Faults drawn at these rates (``"500=5%,429=2%"`` or ``{"500": 5}``, percentages),
        a latency (``"50-400"`` ms) and a seed for the draws."""
        body: dict[str, Any] = {}
        if spec is not None:
            body["rates"] = spec
        if seed is not None:
            body["seed"] = seed
        if latency is not None:
            body["latency"] = latency
        return self._emulator.control("POST", "faults", body)

    def clear(self) -> None:
        """No rules, no rates, no latency: the emulator answers perfectly again."""
        self._emulator.control("DELETE", "faults")

    def state(self) -> dict[str, Any]:
        return self._emulator.control("GET", "faults")

    @property
    def injected(self) -> dict[str, int]:
        """How many of each fault were injected (since the start or the last reset)."""
        return self.state()["injected"]


class Clock:
    """The emulator's clock (``/_emulator/clock``): advancing it does what falls due on the way
    (timers, webhook attempts and retries), in order, before it returns."""

    def __init__(self, emulator: StripeEmulator) -> None:
        self._emulator = emulator

    def advance(
        self, *, days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0
    ) -> dict[str, Any]:
        body = {"days": days, "hours": hours, "minutes": minutes, "seconds": seconds}
        return self._emulator.control("POST", "clock", body)

    def now(self) -> float:
        """The emulator's time (Unix seconds): real time plus what it was advanced by."""
        return self._emulator.control("GET", "clock")["now"]


def _form(params: dict[str, Any], prefix: str = "") -> str:
    """Stripe's bracket form encoding, for the few plain calls made here."""
    pairs: list[tuple[str, str]] = []

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict):
            for name, inner in value.items():
                walk(inner, f"{key}[{name}]" if key else str(name))
        elif isinstance(value, (list, tuple)):
            for index, inner in enumerate(value):
                walk(inner, f"{key}[{index}]")
        elif value is not None:
            pairs.append((key, str(value).lower() if isinstance(value, bool) else str(value)))

    walk(params, prefix)
    return urlencode(pairs)


def _direct_http_client() -> Any:
    """stripe-python's own HTTP client, blind to ``HTTP(S)_PROXY`` in the environment: the
    emulator is on this machine, and a proxy from the environment would catch 127.0.0.1 too
    (bookpay's gateway does the same for the emulator)."""
    import requests  # stripe-python's dependency, and its default client's
    import stripe

    session = requests.Session()
    session.trust_env = False
    return stripe.RequestsClient(session=session)
