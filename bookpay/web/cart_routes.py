"""The cart's routes: ``GET /cart``, ``POST /cart/items`` and ``POST /cart/items/<item>``.

Each works as a plain HTML form (a 303 back to the page, or the cart page again with the
reason when a change is refused) and, sent as JSON by the pages' scripts, answers the cart as
JSON. The cart is found by its cookie (``CartCookie``): ``HttpOnly`` (no script reads it),
``SameSite=Lax`` (no other site's POST carries it) and, when the shop is on HTTPS, ``Secure``
and named with the ``__Host-`` prefix (no sibling subdomain or plain-http man-in-the-middle can
plant it). A cart is made only when something is first added to it.

Over HTTPS, a cart the plain-named cookie finds (one made before the prefix) moves once to the
prefixed cookie under a new token (``Carts.move``), and the plain cookie is expired; a token
made for the prefixed cookie finds nothing under the plain name, so a planted plain cookie
never leads a shopper into someone else's cart. A second request bringing the same plain cookie
within ``MOVE_GRACE`` seconds (the page and its fetch) gets the same cart and new cookie.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import bottle

from bookpay.cart import COOKIE, COOKIE_MAX_AGE, cookie_name, plausible_token
from bookpay.checkout import AttemptFinished, CartPaidElsewhere
from bookpay.errors import UsageError
from bookpay.orderlines import rows_of
from bookpay.quote import Quote, check_quantity
from bookpay.web import inputs
from bookpay.web.assets import PAGE_SCRIPTS
from bookpay.web.views import line_views

# Where a form may send the shopper back to: the shop's own pages only, never a URL it names.
RETURN_PAGES = ("/cart", "/checkout", "/")
_ENVIRON_KEY = "bookpay.cart"
MAX_NAMESAKES = 4  # cart cookies of one name tried per request (each a look-up in the ledger)


class CartCookie:
    """The request's cart, found by its cookie once per request."""

    def __init__(self, services, *, secure: bool) -> None:
        self.services = services
        self.secure = secure
        self.name = cookie_name(secure)

    def find(self) -> dict | None:
        environ = bottle.request.environ
        if _ENVIRON_KEY not in environ:
            cart = self._first(self._found, self.name)
            if self.name != COOKIE and inputs.cookie_values(bottle.request, COOKIE):
                cart = cart or self._first(self._moved, COOKIE)
                bottle.response.delete_cookie(
                    COOKIE, path="/", secure=True, httponly=True, samesite="lax"
                )
            environ[_ENVIRON_KEY] = cart
        return environ[_ENVIRON_KEY]

    def _first(self, lookup, name: str) -> dict | None:
        """The cart that one of the cookies named ``name`` finds through ``lookup``, the last
        sent first: browsers send a longer ``Path`` first, so ours (``Path=/``) comes after any
        namesake another app on this host set deeper, which must neither hide it nor, finding
        nothing, start a new cart on every request. Only the last ``MAX_NAMESAKES`` are tried."""
        tokens = [t for t in inputs.cookie_values(bottle.request, name) if plausible_token(t)]
        for token in reversed(tokens[-MAX_NAMESAKES:]):
            cart = lookup(token, self.name)
            if cart is not None:
                return cart
        return None

    def _found(self, token: str, cookie: str) -> dict | None:
        return self.services.carts.find(token, cookie)  # the ledger opened only for a token

    def _moved(self, token: str, cookie: str) -> dict | None:
        """The cart a plain-named cookie found, moved to the prefixed one (``Carts.move``)."""
        moved = self.services.carts.move(token, cookie)
        if moved is None:
            return None
        cart, new_token = moved
        self._set(new_token)
        return cart

    def _set(self, token: str) -> None:
        bottle.response.set_cookie(
            self.name,
            token,
            path="/",
            max_age=COOKIE_MAX_AGE,
            httponly=True,
            samesite="lax",
            secure=self.secure,
        )

    def quote_for(self, attempt_id: str) -> tuple[Quote, str]:
        """The cart's quote for ``attempt_id`` to pay, and the cart's id.

        A cart with nothing to pay for (emptied by this very attempt's payment, in another tab)
        first asks the attempt: paid or under way is what the page must hear (a 409), not that
        the cart is empty. Only an attempt of this cart is asked (``Checkout.check_cart_attempt``).
        """
        view = self.services.carts.view(self.find())
        try:
            return view.require_quote(), view.cart["id"]
        except UsageError:
            if view.cart is not None:
                self.services.checkout.check_cart_attempt(attempt_id, view.cart["id"])
            raise

    @contextmanager
    def settled_when_paid(self) -> Iterator[None]:
        """A request that learns its attempt is paid (``AttemptFinished``, from the PaymentIntent
        as Stripe gave it) takes what was paid out of the cart, as fulfilment would: the page
        that asked may be the only one to come back before the webhook (a second tab's Pay or
        quote), and what is paid must not be paid for a second time. So too one that learns
        another attempt of the cart succeeded (``CartPaidElsewhere``)."""
        try:
            yield
        except AttemptFinished as finished:
            if finished.status == "succeeded":
                self.services.fulfiller.settle_cart(finished.intent_id)
            raise
        except CartPaidElsewhere as elsewhere:
            # Another tab's attempt succeeded (as Stripe has it) and its webhook is late or
            # lost: settled here, or "reload" would find the same cart, and this answer, again.
            if elsewhere.paid_by:
                self.services.fulfiller.settle_cart(elsewhere.paid_by)
            raise

    def find_or_create(self, item_id: str, quantity: int) -> dict:
        """The request's cart, made (and its cookie set) only for a change an empty cart takes:
        ``quantity`` copies of a book the catalog sells. A refused change makes no cart."""
        cart = self.find()
        if cart is None:
            check_quantity(quantity)
            self.services.catalog.get(item_id)
            cart, token = self.services.carts.create(self.name)
            bottle.request.environ[_ENVIRON_KEY] = cart
            self._set(token)
        return cart


def _is_json(request: bottle.BaseRequest) -> bool:
    return request.content_type.split(";", 1)[0].strip().lower() == "application/json"


def _fields(request: bottle.BaseRequest) -> dict:
    """The posted fields: a JSON object, or a form's fields."""
    if _is_json(request):
        return inputs.read_json_object(request)
    return inputs.read_form(request, ("item", "quantity", "next"))


def cart_json(view) -> dict:
    quote = view.quote
    lines = line_views(
        rows_of(view.lines),
        quote.currency if quote else "usd",
    )
    return {
        "count": view.count,
        "lines": [
            {
                "item": line["item_id"],
                "title": line["title"],
                "quantity": line["quantity"],
                "unitAmount": line["unit_amount"],
                "lineAmount": line["line_amount"],
                "unitText": line["unit"],
                "lineText": line["amount"],
            }
            for line in lines
        ],
        "subtotal": quote.subtotal if quote else 0,
        "subtotalText": quote.formatted(quote.subtotal) if quote else "",
        "currency": quote.currency if quote else None,
        "notice": view.notice(),
        "problem": view.problem.message if view.problem else "",
    }


def install(app: bottle.Bottle, services, templates, cart_of: CartCookie) -> None:
    def cart_page(view, *, message: str = "", status: int = 200) -> str:
        bottle.response.status = status
        return templates.render(
            "cart",
            title="Your cart",
            view=view,
            lines=line_views(
                rows_of(view.lines),
                view.quote.currency if view.quote else "usd",
            ),
            message=message or (view.problem.message if view.problem else ""),
            notice=view.notice(),
            scripts=PAGE_SCRIPTS,
        )

    def answer(change) -> object:
        """Make the change; answer JSON, or send a form back where it came from (303), or show
        the cart again with the reason a form's change was refused."""
        request = bottle.request
        as_json = _is_json(request)
        try:
            fields = _fields(request)
            change(fields)
        except UsageError as refused:
            if as_json:
                raise
            view = services.carts.view(cart_of.find())
            return cart_page(view, message=refused.message, status=refused.http_status)
        view = services.carts.view(cart_of.find())
        if as_json:
            return {"cart": cart_json(view)}
        back = fields.get("next") if fields.get("next") in RETURN_PAGES else "/cart"
        bottle.response.status = 303
        bottle.response.set_header("Location", back)
        return ""

    @app.get("/cart")
    def show_cart():
        view = services.carts.view(cart_of.find())
        if bottle.request.get_header("Accept") == "application/json":
            return {"cart": cart_json(view)}
        return cart_page(view)

    @app.post("/cart/items")
    def add_item():
        def add(fields: dict) -> None:
            item = inputs.item_id(fields.get("item"))
            quantity = inputs.quantity(fields.get("quantity"), default=1)
            services.carts.add(cart_of.find_or_create(item, quantity), item, quantity)

        return answer(add)

    @app.post("/cart/items/<item:path>")  # an id may hold "/" (%2F, decoded by the server)
    def set_item(item: str):
        def change(fields: dict) -> None:
            quantity = inputs.quantity(fields.get("quantity"), allow_zero=True)
            cart = cart_of.find() if quantity == 0 else cart_of.find_or_create(item, quantity)
            if cart is not None:
                services.carts.set_quantity(cart, item, quantity)

        return answer(change)
