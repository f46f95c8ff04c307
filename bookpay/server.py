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
from bookpay.errors import (
    BookpayError,
    CardDeclined,
    ConfigError,
    NotFound,
    PaymentError,
    StripeUnavailable,
    TaxNotActive,
)
from bookpay.fulfilment import ownership_problem
from bookpay.ids import is_intent_id
from bookpay.ledger.errors import LedgerUnavailable
from bookpay.orderlines import lines_of_intent, named_quote, rows_of
from bookpay.origins import normal_url
from bookpay.quote import quote_items
from bookpay.web import cart_routes, inputs, quote_routes
from bookpay.web.assets import PAGE_SCRIPTS, InlineScript, StaticFiles
from bookpay.web.csrf import check_origin
from bookpay.web.logs import order_ref
from bookpay.web.ratelimit import RateLimiter
from bookpay.web.security import security_headers, stripe_js_url
from bookpay.web.views import (
    Templates,
    checkout_href,
    fulfilment_view,
    line_views,
    options_json,
    quote_json,
    receipt,
    result_title,
    script_json,
    totals_view,
)

log = logging.getLogger("bookpay.server")

ASSETS = Path(__file__).parent / "assets"
TEMPLATES = ASSETS / "templates"
STATIC = ASSETS / "static"
# The checkout's first request, inlined in its <head> (bookpay.web.assets).
# The page scripts' fetch helper, then the checkout's first request, which uses it.
EARLY_SCRIPT = InlineScript(STATIC / "fetch-answer.js", ASSETS / "inline" / "checkout-early.js")
DEFAULT_PUBLIC_URL = "http://127.0.0.1:4242"
MAX_WEBHOOK_BODY = 512 * 1024  # Stripe events are far smaller; this only bounds memory
API_PATHS = frozenset(
    {"/create-payment-intent", "/checkout/quote", "/webhook", "/healthz", "/readyz"}
)
JSON = "application/json"
# Seconds a client is told to wait when Stripe is unavailable and nothing better is known.
RETRY_AFTER = 5
NO_STORE_PATHS = frozenset({"/checkout", "/success", "/cart", *API_PATHS})
READY_TTL = 5.0  # seconds a readiness answer is reused
READY_WAIT = 1.0  # seconds /readyz waits for a check before answering "not ready"
# Quotes per checkout attempt: a burst, then a steady rate (a person typing stays far below).
QUOTE_BURST = 30
QUOTE_RATE = 5.0
# POST /create-payment-intent per attempt, in a bucket of its own: each asks Stripe (a retrieve,
# an update), and a page asks once or twice an attempt (a reload, a second tab, Pay's last look).
INTENT_BURST = 30
INTENT_RATE = 5.0


class Services:
    """The core objects the routes use, built on first use unless injected.

    Lazy so that the pages work (and tests run) before orders and webhooks are needed, and so
    that creating an app opens no database and makes no network call.
    """

    def __init__(self, settings: Settings, *, workers: bool = True, **given) -> None:
        self.settings = settings
        self.workers = workers  # False: receipts and tax records are sent by `bookpay worker`
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
            lambda: Fulfiller(
                self.ledger, self.gateway, self.catalog, self.settings, workers=self.workers
            ),
        )

    @property
    def receiver(self):
        from bookpay import webhooks

        return self._get(
            "receiver",
            lambda: webhooks.WebhookReceiver(self.settings, self.ledger, self.fulfiller),
        )

    @property
    def carts(self):
        from bookpay.cart import Carts

        return self._get("carts", lambda: Carts(self.ledger, self.catalog))

    @property
    def checkout(self):
        from bookpay.checkout import Checkout

        return self._get(
            "checkout",
            lambda: Checkout(
                self.ledger,
                self.gateway,
                self.settings.shop_id,
                catalog=self.catalog,
                tax_enabled=self.settings.tax_enabled,
            ),
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

    def close(self, *, ledger_in_use: bool = False) -> None:
        """Stop what was built here (the receipt mailer's thread, the database, the connections
        to Stripe). ``ledger_in_use``: a request thread may still be using the ledger, which
        is then left open (as for a worker still at work) for the process's exit to close."""
        fulfiller = self._built.get("fulfiller")
        try:
            if fulfiller is not None:
                fulfiller.close()
        finally:  # a second interrupt during the workers' stop closes the rest all the same
            # But not the ledger under a worker left at work (a SQLite wait for the write lock,
            # say): closing a connection in use can crash the process, whose exit ends it.
            busy = ledger_in_use or getattr(fulfiller, "at_work", False) is True
            for name in ("gateway",) if busy else ("ledger", "gateway"):
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
    """API paths answer JSON; so does any route asked in JSON (the pages' scripts)."""
    request = bottle.request
    if request.path in API_PATHS:
        return True
    content_type = request.content_type.split(";", 1)[0].strip().lower()
    return content_type == "application/json" or request.get_header("Accept") == JSON


class _OriginCheck:
    """Every state-changing request (a POST, but the webhook's, which is signed) must come from
    the shop's own pages (``web.csrf``)."""

    name = "bookpay_origin"
    api = 2

    def __init__(self, shop_url: str | None) -> None:
        self.shop_url = shop_url

    def apply(self, callback, route):
        if route.method != "POST" or route.rule == "/webhook":
            return callback

        def wrapper(*args, **kwargs):
            check_origin(bottle.request, self.shop_url)
            return callback(*args, **kwargs)

        return wrapper


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
                if isinstance(exc, (StripeUnavailable, LedgerUnavailable)):
                    # Payments or the ledger are down for now, not the shop: say when to come
                    # back (Stripe redelivers a webhook answered 503 later, as it should).
                    wait = getattr(exc, "retry_after", None) or RETRY_AFTER
                    bottle.response.set_header("Retry-After", str(wait))
                elif getattr(exc, "retry_after", None):  # a rate limit
                    bottle.response.set_header("Retry-After", str(exc.retry_after))
                error, message = _shown(exc, route.rule)
                return self.respond(exc.http_status, error, message)
            except Exception:
                log.exception("unexpected error in %s %s", bottle.request.method, route.rule)
                return self.respond(500, _INTERNAL, _INTERNAL["message"])

        return wrapper

    def respond(self, status: int, error: dict, message: str) -> str:
        bottle.response.status = status
        return _error_response(self.templates, status, error, message)


def _shown(exc: BookpayError, rule: str) -> tuple[dict, str]:
    """``exc`` as the browser is told it: its JSON error, and the message its page says.

    What failed behind the shop (Stripe unreachable, refusing the shop's request, the ledger
    down, the settings) is said in the shopper's words, its code kept; what it said, which
    names where the shop reaches Stripe or its database, goes to the log. A webhook's answer
    is for Stripe and whoever replays events: it says what failed, as the CLI does.
    """
    if rule == "/webhook":
        return exc.to_dict(), exc.message
    if isinstance(exc, StripeUnavailable):
        said = UNKNOWN_OUTCOME if getattr(exc, "outcome_unknown", False) else UNAVAILABLE
    elif isinstance(exc, ConfigError):  # a LedgerUnavailable too
        said = SHOP_UNAVAILABLE
    elif isinstance(exc, TaxNotActive):
        said = TAX_NOT_SET_UP  # the shop's set-up: no retry of the shopper's can help
    elif isinstance(exc, PaymentError) and not isinstance(exc, CardDeclined):
        said = NOT_SET_UP  # Stripe's words for developers, and where it was reached
    else:
        return exc.to_dict(), exc.message
    request = bottle.request
    log.warning("%s %s answered %d: %s", request.method, rule, exc.http_status, exc.message)
    return {**exc.to_dict(), "message": said}, said


UNAVAILABLE = "Payments are unavailable right now. Please try again in a moment."
UNKNOWN_OUTCOME = (
    "Payments are unavailable right now, and whether your payment was set up is not known yet. "
    "Please try again in a moment: you will not be charged twice."
)
SHOP_UNAVAILABLE = "The shop can't take orders right now. Please try again in a moment."
NOT_SET_UP = "Your payment could not be set up. Please try again."
TAX_NOT_SET_UP = (
    "This shop can't take payments yet: it can't work out the tax on orders. "
    "Please let the shop know."
)
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
    416: "Range not satisfiable",
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
    416: ("That part of the file does not exist.", "range_not_satisfiable"),
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
    # As browsers write its origin (Settings writes BOOKPAY_BASE_URL so; ``public_url`` too).
    shop_url = normal_url((settings.base_url or public_url or DEFAULT_PUBLIC_URL).rstrip("/"))
    return_url = f"{shop_url}/success"
    https = shop_url.startswith("https://")
    headers = security_headers(settings, (EARLY_SCRIPT.csp_source,), https=https)
    files = StaticFiles(STATIC)
    cart_of = cart_routes.CartCookie(services, secure=https)

    def shared() -> dict:
        """What every page shows: the header's cart count (none when it cannot be read)."""
        try:
            cart = cart_of.find()  # no cookie, no cart: the ledger is not even opened
            return {"cart_count": services.carts.count(cart) if cart else 0}
        except Exception:  # an error page must render even when the ledger cannot be read
            log.debug("no cart count for the header", exc_info=True)
            return {"cart_count": None}

    templates = Templates(
        TEMPLATES,
        shared,
        emulated=settings.is_emulated,
        live=settings.livemode,
        # Every page shows the header's cart count, which cart.js keeps true when the page is
        # shown again from the browser's history; the checkout page has scripts of its own.
        scripts=PAGE_SCRIPTS,
        static=files.url,
    )
    app = bottle.Bottle(catchall=True, autojson=True)
    app.install(_ErrorPlugin(templates))
    app.install(_Lifecycle(services))
    app.install(_OriginCheck(settings.base_url or public_url))

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
    # Any other status too (a static file's 416): Bottle's own page would echo the request's URL,
    # Host header and all.
    app.default_error_handler = on_error

    @app.get("/")
    def index():
        books = [(book, checkout_href(book)) for book in services.catalog]
        return templates.render("index", title="Books", books=books, scripts=PAGE_SCRIPTS)

    # A book id may hold "/" (sent as %2F, which the server decodes): :path takes it whole.
    @app.get("/covers/<book_id:path>.svg")
    def cover(book_id: str):
        book = services.catalog.get(book_id)
        bottle.response.content_type = "image/svg+xml; charset=UTF-8"
        bottle.response.set_header("Cache-Control", "public, max-age=3600")
        return cover_svg(book)

    cart_routes.install(app, services, templates, cart_of)
    quote_routes.install(app, services, cart_of, RateLimiter(rate=QUOTE_RATE, burst=QUOTE_BURST))

    @app.get("/checkout")
    def checkout():
        """``?item=ID`` buys one copy of one book ("Buy now"); without it, the cart."""
        query = bottle.request.query
        # Bottle answers "" for a value that is not UTF-8, and "" is the cart: None here.
        item = query.getunicode("item", default=None) if "item" in query else ""
        if item == "":
            return _cart_checkout()
        if item is None or item not in services.catalog:
            raise NotFound(
                "We don't have that book. Choose one from the list.", code="unknown_item"
            )
        quote = quote_items(services.catalog, [(item, 1)])
        book = services.catalog.get(item)
        return _checkout_page(quote, title=f"Checkout: {book.title}", item=book.id, scope=book.id)

    def _cart_checkout():
        view = services.carts.view(cart_of.find())
        if view.empty:  # nothing to pay for: the cart page says so and leads back to the books
            bottle.response.status = 303
            bottle.response.set_header("Location", "/cart")
            return ""
        quote = view.require_quote()
        scope = f"cart.{view.cart['id']}.{view.cart['generation']}"
        return _checkout_page(quote, title="Checkout", item=None, scope=scope, notice=view.notice())

    def _checkout_page(quote, *, title: str, item: str | None, scope: str, notice: str = ""):
        config = {
            "publishableKey": settings.client_publishable_key,
            "item": item,
            "attemptScope": scope,
            "returnUrl": return_url,
            "createIntentUrl": "/create-payment-intent",
            "quoteUrl": "/checkout/quote",
            "cartItemsUrl": "/cart/items",
            "quote": quote_json(quote),
            "taxEnabled": settings.tax_enabled,
        }
        return templates.render(
            "checkout",
            title=title,
            lines=line_views(rows_of(quote.lines), quote.currency),
            quote=quote,
            editable=item is None,
            tax_enabled=settings.tax_enabled,
            notice=notice,
            # First in the <head>: the configuration, then the inline script that asks for the
            # attempt's PaymentIntent at once, before the stylesheet and the scripts load.
            head_json=("checkout-config", script_json(config)),
            head_script=EARLY_SCRIPT.text,
            scripts=(stripe_js_url(settings), ("checkout.js", "async")),
        )

    intent_limiter = RateLimiter(rate=INTENT_RATE, burst=INTENT_BURST)

    @app.post("/create-payment-intent")
    def create_payment_intent():
        data = inputs.read_json_object(bottle.request)
        attempt = inputs.attempt_id(data.get("attemptId"))
        intent_limiter.check(attempt, "payment requests")
        with cart_of.settled_when_paid():
            if data.get("item") is not None:  # "Buy now": one copy of one book
                quote = quote_items(services.catalog, [(inputs.item_id(data.get("item")), 1)])
                cart_id = None
            else:  # a cart emptied by this attempt's payment (another tab) answers that: a 409
                quote, cart_id = cart_of.quote_for(attempt)
            # The attempt's PaymentIntent, created or brought up to this quote; its current
            # state, even when Stripe replays the attempt.
            held = services.checkout.intent_for(attempt, quote, cart_id=cart_id)
        intent, quote = held.intent, held.quote  # priced for the attempt's address, if any
        answer = {
            "clientSecret": intent["client_secret"],
            "paymentIntentId": intent["id"],
            "orderId": held.order_id,
            "amount": intent["amount"],
            "currency": intent["currency"],
            "changed": held.changed,
            "quote": quote_json(quote),
            "quoteVersion": held.version,
            # Where the held quote priced shipping and tax: a tab whose own quote was replaced
            # by another tab's (the version differs) compares it with its own address.
            "quoteAddress": quote.address.to_dict() if quote.address is not None else None,
        }
        if quote.address is not None:
            options = services.catalog.shipping_options(
                quote.address.country, quote.subtotal, quote.currency
            )
            answer["shippingRates"] = options_json(options)
        return answer

    @app.get("/success")
    def success():
        query = bottle.request.query
        try:
            intent = _shop_intent(
                services,
                query.getunicode("payment_intent") or "",
                query.getunicode("payment_intent_client_secret") or "",
            )
        except StripeUnavailable as exc:
            return _payment_unchecked(exc)
        if intent.get("status") == "succeeded":
            try:
                services.fulfiller.fulfil(intent["id"])
            except Exception:  # the shopper has paid: show the receipt; the webhook will retry
                log.exception(
                    "fulfilment of %s failed; the webhook will retry it",
                    order_ref(services.ledger, intent["id"]),
                )
            try:
                services.fulfiller.settle_cart(intent["id"])  # what was paid leaves the cart
            except Exception:
                log.exception("the cart paid by %s was not settled", intent["id"])
        lines = lines_of_intent(intent, services.ledger, services.catalog)
        quote = named_quote(services.ledger.quote_for(intent["id"]), services.catalog)
        metadata = intent.get("metadata") or {}
        # A cart's payment (a one-copy cart's names its book too) is tried again from the cart;
        # only a Buy now's from its book's own checkout.
        single = None if metadata.get("cart_id") else metadata.get("item_id")
        retry = (
            checkout_href(services.catalog.get(single))
            if single in services.catalog
            else "/checkout"
        )
        order = services.ledger.find_order(intent["id"])
        shown = {**receipt(intent, lines, retry), **fulfilment_view(order, quote)}
        return templates.render(
            "success", title=result_title(shown), totals=totals_view(quote), **shown
        )

    def _payment_unchecked(exc: StripeUnavailable) -> str:
        """The return page while Stripe cannot say how the payment went. The shopper may well
        have paid (the webhook will fulfil the order), so the page says so and offers a reload;
        what failed, with its internal addresses, goes to the log only."""
        log.warning("the return page could not check a payment: %s", exc.message)
        bottle.response.status = 503
        bottle.response.set_header("Retry-After", str(exc.retry_after or RETRY_AFTER))
        reload_href = "/success?" + bottle.request.query_string
        return templates.render(
            "unchecked", title="Payment not checked yet", reload_href=reload_href
        )

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
        detail = detail.rstrip()
        # One full stop: the ping's reason is often a sentence of its own.
        message = f"Payments are unavailable: {detail}" + ("" if detail.endswith(".") else ".")
        return {**answer, "error": {"message": message, "code": "not_ready"}}

    @app.get("/static/<path:path>")
    def static(path: str):
        response = bottle.static_file(path, root=str(STATIC))
        if response.status_code in (200, 304):
            version = bottle.request.query.getunicode("v") or ""
            response.set_header("Cache-Control", files.cache_control(path, version))
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
    # A client secret is its intent's id, "_secret_" and more (Stripe.js refuses any other): one
    # that cannot be this intent's is refused without asking Stripe.
    if not is_intent_id(intent_id) or not client_secret.startswith(f"{intent_id}_secret_"):
        raise not_found
    try:
        intent = services.gateway.retrieve_intent(intent_id)
    except (NotFound, PaymentError):  # no such intent, or Stripe refusing a malformed id
        raise not_found from None
    expected = str(intent.get("client_secret") or "")
    if not expected or not hmac.compare_digest(client_secret.encode(), expected.encode()):
        raise not_found
    if ownership_problem(intent, services.settings.shop_id):
        raise not_found
    return intent
