"""The checkout server: a Bottle app built by ``create_app(settings, ...)``, and ``serve()``.

Routes are thin: they validate what the browser sent, ask the core (catalog, gateway, fulfiller,
webhook receiver), and render. Everything a browser can cause to go wrong is a ``BookpayError``,
translated into a status and a JSON body or an HTML page in exactly one place
(``_error_response``, for ``_ErrorPlugin`` and Bottle's own errors alike); nothing answers with a
traceback. Amounts come from the catalog, never from the request, and the ``return_url`` comes
from the settings or the server's own address, never from the Host header.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from pathlib import Path

import bottle

from bookpay.catalog import Catalog
from bookpay.config import Settings
from bookpay.covers import cover_svg
from bookpay.errors import BookpayError, NotFound, PaymentError, StripeUnavailable
from bookpay.fulfilment import ownership_problem
from bookpay.statuses import in_words
from bookpay.web import inputs
from bookpay.web.logs import order_ref
from bookpay.web.security import security_headers, stripe_js_url
from bookpay.web.views import Templates, checkout_href, receipt, script_json

log = logging.getLogger("bookpay.server")

ASSETS = Path(__file__).parent / "assets"
TEMPLATES = ASSETS / "templates"
STATIC = ASSETS / "static"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:4242"
MAX_WEBHOOK_BODY = 512 * 1024  # Stripe events are far smaller; this only bounds memory
API_PATHS = frozenset({"/create-payment-intent", "/webhook", "/healthz", "/readyz"})
# Seconds a client is told to wait when Stripe is unavailable and nothing better is known.
RETRY_AFTER = 5
NO_STORE_PATHS = frozenset({"/checkout", "/success", *API_PATHS})
# An attempt whose PaymentIntent reached one of these can never be paid again.
FINISHED = frozenset({"succeeded", "canceled"})
READY_TTL = 5.0  # seconds a readiness answer is reused
READY_WAIT = 1.0  # seconds /readyz waits for a check before answering "not ready"


class Services:
    """The core objects the routes use, built on first use unless injected.

    Lazy so that the pages work (and tests run) before orders and webhooks are needed, and so
    that creating an app opens no database and makes no network call.
    """

    def __init__(self, settings: Settings, **given) -> None:
        self.settings = settings
        self._given = {name: value for name, value in given.items() if value is not None}
        self._built: dict[str, object] = {}  # what we made, and so must close
        self._lock = threading.RLock()  # building one part may build another

    def _get(self, name: str, build):
        if name not in self._given:
            with self._lock:
                if name not in self._given:
                    self._given[name] = self._built[name] = build()
        return self._given[name]

    @property
    def gateway(self):
        from bookpay.payments import Gateway

        return self._get("gateway", lambda: Gateway(self.settings))

    @property
    def ledger(self):
        from bookpay.ledger import open_ledger

        return self._get("ledger", lambda: open_ledger(self.settings))

    @property
    def fulfiller(self):
        from bookpay.fulfilment import Fulfiller

        return self._get(
            "fulfiller",
            lambda: Fulfiller(self.ledger, self.gateway, self.catalog, self.settings),
        )

    @property
    def receiver(self):
        from bookpay import webhooks

        return self._get(
            "receiver",
            lambda: webhooks.WebhookReceiver(self.settings, self.ledger, self.fulfiller),
        )

    @property
    def catalog(self) -> Catalog:
        return self._get("catalog", lambda: Catalog.load(self.settings.catalog_path))

    @property
    def readiness(self):
        """Whether Stripe answers: one ping at a time, cached briefly, never waited on long."""
        from bookpay.resilience import CachedCheck

        return self._get(
            "readiness",
            lambda: CachedCheck(
                self.gateway.ping,
                ttl=READY_TTL,
                wait=READY_WAIT,
                describe=lambda exc: getattr(exc, "message", None) or type(exc).__name__,
            ),
        )

    def close(self) -> None:
        """Stop what was built here (the receipt mailer's thread, the database)."""
        for name in ("fulfiller", "ledger"):
            part = self._built.get(name)
            if part is not None and hasattr(part, "close"):
                part.close()


class _Lifecycle:
    """A Bottle plugin for its ``close()`` only: ``app.close()`` closes what the app built."""

    name = "bookpay_lifecycle"
    api = 2

    def __init__(self, services: Services) -> None:
        self.services = services

    def apply(self, callback, route):
        return callback

    def close(self) -> None:
        self.services.close()


def _wants_json() -> bool:
    return bottle.request.path in API_PATHS


def _error_response(templates: Templates, status: int, error: dict, message: str) -> str:
    """``error`` as JSON on the API paths; elsewhere the error page, saying ``message``."""
    if _wants_json():
        bottle.response.content_type = "application/json"
        return json.dumps({"error": error})
    bottle.response.content_type = "text/html; charset=UTF-8"
    return templates.render("error", title=_HEADINGS.get(status, "Error"), message=message)


class _ErrorPlugin:
    """Where a BookpayError (or anything unexpected) raised by a route becomes a response."""

    name = "bookpay_errors"
    api = 2

    def __init__(self, templates: Templates) -> None:
        self.templates = templates

    def apply(self, callback, route):
        def wrapper(*args, **kwargs):
            try:
                return callback(*args, **kwargs)
            except bottle.HTTPResponse:
                raise
            except BookpayError as exc:
                if isinstance(exc, StripeUnavailable):
                    # Payments are down for now, not the shop: say when to come back.
                    wait = exc.retry_after or RETRY_AFTER
                    bottle.response.set_header("Retry-After", str(wait))
                return self.respond(exc.http_status, exc.to_dict(), exc.message)
            except Exception:
                log.exception("unexpected error in %s %s", bottle.request.method, route.rule)
                return self.respond(500, _INTERNAL, _INTERNAL["message"])

        return wrapper

    def respond(self, status: int, error: dict, message: str) -> str:
        bottle.response.status = status
        return _error_response(self.templates, status, error, message)


_INTERNAL = {
    "message": "Something went wrong on our side. Please try again.",
    "code": "internal_error",
}
_HEADINGS = {
    400: "That request didn't work",
    403: "Forbidden",
    404: "Page not found",
    405: "Method not allowed",
    413: "Request too large",
    500: "Something went wrong",
    502: "Payments are unavailable",
    503: "Payments are unavailable",
}
_BOTTLE_ERRORS = {
    400: ("That request is not valid.", "bad_request"),
    403: ("You can't see that.", "forbidden"),
    404: ("We couldn't find that page.", "not_found"),
    405: ("That method is not allowed here.", "method_not_allowed"),
    413: ("The request is too large.", "payload_too_large"),
    500: (_INTERNAL["message"], "internal_error"),
}


def create_app(
    settings: Settings,
    *,
    gateway=None,
    catalog: Catalog | None = None,
    ledger=None,
    fulfiller=None,
    receiver=None,
    public_url: str | None = None,
) -> bottle.Bottle:
    """The checkout server's WSGI app for ``settings``.

    ``public_url`` is the server's own address, used for ``return_url`` unless
    ``settings.base_url`` (BOOKPAY_BASE_URL) says where shoppers reach it.
    """
    services = Services(
        settings,
        gateway=gateway,
        catalog=catalog,
        ledger=ledger,
        fulfiller=fulfiller,
        receiver=receiver,
    )
    shop_url = (settings.base_url or public_url or DEFAULT_PUBLIC_URL).rstrip("/")
    return_url = f"{shop_url}/success"
    headers = security_headers(settings)
    templates = Templates(
        TEMPLATES, emulated=settings.is_emulated, live=settings.livemode, scripts=()
    )
    app = bottle.Bottle(catchall=True, autojson=True)
    app.install(_ErrorPlugin(templates))
    app.install(_Lifecycle(services))

    def secure(resp: bottle.BaseResponse) -> None:
        for name, value in headers.items():
            resp.set_header(name, value)
        if bottle.request.path in NO_STORE_PATHS:
            resp.set_header("Cache-Control", "no-store")

    # Bottle's HTTPError replaces the response headers after the hooks ran, so error pages add
    # the security headers themselves.
    app.add_hook("after_request", lambda: secure(bottle.response))

    def on_error(err: bottle.HTTPError):
        secure(bottle.response)
        message, code = _BOTTLE_ERRORS.get(err.status_code, (err.body or "Error", "http_error"))
        return _error_response(
            templates, err.status_code, {"message": message, "code": code}, message
        )

    for status in _BOTTLE_ERRORS:
        app.error(status)(on_error)

    @app.get("/")
    def index():
        books = [(book, checkout_href(book)) for book in services.catalog]
        return templates.render("index", title="Books", books=books)

    @app.get("/covers/<book_id>.svg")
    def cover(book_id: str):
        book = services.catalog.get(book_id)
        bottle.response.content_type = "image/svg+xml; charset=UTF-8"
        bottle.response.set_header("Cache-Control", "public, max-age=3600")
        return cover_svg(book)

    @app.get("/checkout")
    def checkout():
        item = bottle.request.query.getunicode("item") or ""
        if not item:  # a bare /checkout: the shopper has not chosen yet, so let them choose
            raise bottle.HTTPResponse(status=303, Location="/")
        if item not in services.catalog:
            raise NotFound(
                "We don't have that book. Choose one from the list.", code="unknown_item"
            )
        book = services.catalog.get(item)
        config = {
            "publishableKey": settings.client_publishable_key,
            "item": book.id,
            "returnUrl": return_url,
            "createIntentUrl": "/create-payment-intent",
            "payLabel": f"Pay {book.price}",
        }
        return templates.render(
            "checkout",
            title=f"Checkout: {book.title}",
            book=book,
            config_json=script_json(config),
            scripts=(stripe_js_url(settings), "/static/checkout.js"),
        )

    @app.post("/create-payment-intent")
    def create_payment_intent():
        data = inputs.read_json_object(bottle.request)
        book = services.catalog.get(inputs.item_id(data.get("item")))
        attempt = inputs.attempt_id(data.get("attemptId"))
        # The gateway returns the intent's current state, even when Stripe replays the attempt.
        intent = services.gateway.create_intent(book, attempt_id=attempt)
        if intent.get("status") in FINISHED:
            raise inputs.AttemptFinished(
                f"This checkout has already been {in_words(intent['status'])}: "
                "start a new attempt.",
                intent_id=intent["id"],
                status=intent["status"],
            )
        return {
            "clientSecret": intent["client_secret"],
            "paymentIntentId": intent["id"],
            "amount": intent["amount"],
            "currency": intent["currency"],
        }

    @app.get("/success")
    def success():
        query = bottle.request.query
        intent = _shop_intent(
            services,
            query.getunicode("payment_intent") or "",
            query.getunicode("payment_intent_client_secret") or "",
        )
        book = services.catalog.get(intent["metadata"]["item_id"])
        if intent.get("status") == "succeeded":
            try:
                services.fulfiller.fulfil(intent["id"])
            except Exception:  # the shopper has paid: show the receipt; the webhook will retry
                log.exception(
                    "fulfilment of %s failed; the webhook will retry it",
                    order_ref(services.ledger, intent["id"]),
                )
        return templates.render("success", title="Your order", **receipt(intent, book))

    @app.post("/webhook")
    def webhook():
        payload = inputs.read_body(
            bottle.request, MAX_WEBHOOK_BODY, "The webhook payload is too large."
        )
        # The raw WSGI value: Bottle's get_header decodes it as UTF-8, which raises for some bytes;
        # the receiver refuses anything that is not a plain ASCII signature header anyway.
        signature = bottle.request.environ.get("HTTP_STRIPE_SIGNATURE")
        return services.receiver.handle(payload, signature)

    @app.get("/healthz")
    def healthz():
        """Liveness: the process answers. It never asks Stripe (that is /readyz)."""
        return {"ok": True, "mode": settings.mode}

    @app.get("/readyz")
    def readyz():
        """Readiness: whether Stripe answers, from the breaker or a cached, bounded ping."""
        gateway = services.gateway
        guard = getattr(gateway, "guard", None)
        state = guard.status() if guard is not None else {}
        if state.get("circuit") == "open":
            check_ok, detail = False, f"{gateway.where} failed repeatedly (circuit open)"
        else:
            check = services.readiness.result()
            check_ok, detail = check.ok, check.detail
        answer = {"ready": check_ok, "mode": settings.mode, "stripe": {**state, "check": detail}}
        if check_ok:
            return answer
        wait = state.get("retry_after") or RETRY_AFTER
        bottle.response.status = 503
        bottle.response.set_header("Retry-After", str(wait))
        message = f"Payments are unavailable: {detail}."
        return {**answer, "error": {"message": message, "code": "not_ready"}}

    @app.get("/static/<path:path>")
    def static(path: str):
        response = bottle.static_file(path, root=str(STATIC))
        if response.status_code == 200:
            response.set_header("Cache-Control", "public, max-age=300")
        return response

    @app.get("/favicon.ico")
    def favicon():
        return bottle.static_file("favicon.svg", root=str(STATIC), mimetype="image/svg+xml")

    return app


def _shop_intent(services: Services, intent_id: str, client_secret: str) -> dict:
    """The PaymentIntent the return_url names, if the shopper proved they own it and it is ours.

    Every refusal is the same 404, so the page tells a prober nothing about which check failed.
    """
    not_found = NotFound("We couldn't find that payment.", code="not_found")
    if not intent_id.startswith("pi_") or not client_secret:
        raise not_found
    try:
        intent = services.gateway.retrieve_intent(intent_id)
    except (NotFound, PaymentError):  # no such intent, or Stripe refusing a malformed id
        raise not_found from None
    expected = str(intent.get("client_secret") or "")
    if not expected or not hmac.compare_digest(client_secret.encode(), expected.encode()):
        raise not_found
    if (
        ownership_problem(intent, services.settings.shop_id)
        or intent["metadata"]["item_id"] not in services.catalog
    ):
        raise not_found
    return intent
