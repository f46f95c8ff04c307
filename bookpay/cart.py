"""The cart: books and quantities a shopper collects before paying, kept on the server.

A cart lives in the ledger's database and is found by a random token the shopper's browser
holds in a cookie (only the token's hash is stored): ``COOKIE`` over plain HTTP, ``HOST_COOKIE``
(the ``__Host-`` prefix) over HTTPS, each token hashed under the name it was given in. Its
bounds are checked inside the transaction that changes it: 1 to ``MAX_QUANTITY`` copies a line,
at most ``MAX_LINES`` lines, and one currency, the first book's. Prices are never kept: a cart
is priced from the catalog each time it is shown or paid for (``bookpay.quote``), and a book the
catalog no longer sells is dropped from it, with a notice naming it.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field

from bookpay.errors import BookpayError
from bookpay.ledger.model import now_iso
from bookpay.quote import (
    MAX_LINES,
    MAX_QUANTITY,
    EmptyQuote,
    MixedCurrency,
    QuantityOutOfRange,
    Quote,
    QuoteLine,
    TooManyLines,
    check_quantity,
    mixed_currency,
)

COOKIE = "bookpay_cart"
# Over HTTPS: browsers take a __Host- cookie only Secure, Path=/, without Domain and from the
# shop's own HTTPS origin, so no sibling subdomain and no man-in-the-middle on http:// can plant
# one (cookie tossing: a shopper filling a cart whose token the planter holds).
HOST_COOKIE = "__Host-" + COOKIE
COOKIE_MAX_AGE = 30 * 24 * 3600  # a cart left alone for a month is forgotten by the browser
# A page and the fetch it starts may both bring a plain cookie: for this long, a second move of
# the same token gets the cart and the new token the first gave (``Carts.move``).
MOVE_GRACE = 10  # seconds


def cookie_name(secure: bool) -> str:
    """The cart cookie's name: prefixed when the shop is on HTTPS (browsers refuse the prefix
    without ``Secure``)."""
    return HOST_COOKIE if secure else COOKIE


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str, cookie: str = COOKIE) -> str:
    """What the ledger keeps of a token: its SHA-256, the cookie's name included for
    ``HOST_COOKIE`` (a token made for the prefixed cookie finds nothing in the plain one)."""
    return hashlib.sha256((token if cookie == COOKIE else f"{cookie}={token}").encode()).hexdigest()


def plausible_token(token: str | None) -> bool:
    """Whether a cookie value can be one of our tokens (so that junk never reaches a query)."""
    return bool(token) and 20 <= len(token) <= 64 and token.isascii() and token.isprintable()


@dataclass(frozen=True)
class CartView:
    """A cart as priced now: its lines, the quote (None when empty), and what was dropped."""

    cart: dict | None
    lines: tuple[QuoteLine, ...] = ()
    dropped: tuple[str, ...] = ()  # titles of books the catalog no longer sells
    problem: BookpayError | None = None  # a cart that cannot be paid for as it is
    quote: Quote | None = field(default=None)

    @property
    def count(self) -> int:
        return sum(line.quantity for line in self.lines)

    @property
    def empty(self) -> bool:
        return not self.lines

    def require_quote(self) -> Quote:
        """The quote to pay, or the reason there is none (an empty cart, mixed currencies)."""
        if self.problem is not None:
            raise self.problem
        if self.quote is None:
            raise EmptyQuote("Your cart is empty: add a book first.")
        return self.quote

    def notice(self) -> str:
        if not self.dropped:
            return ""
        names = ", ".join(repr(title) for title in self.dropped)
        verb = "is" if len(self.dropped) == 1 else "are"
        return f"{names} {verb} no longer sold: removed from your cart."


class Carts:
    """Carts over the ledger, priced from the catalog."""

    def __init__(self, ledger, catalog) -> None:
        self.ledger = ledger
        self.catalog = catalog
        self.clock = time.monotonic
        # The moves of the last MOVE_GRACE seconds: (old token's hash, cookie) -> (until, new
        # token). In this process's memory only: the ledger keeps no token, and has no column
        # to keep one for a while.
        self._moves: dict[tuple[str, str], tuple[float, str]] = {}
        self._moving = threading.Lock()

    def find(self, token: str | None, cookie: str = COOKIE) -> dict | None:
        """The cart ``token`` finds when it comes in the cookie named ``cookie``."""
        if not plausible_token(token):
            return None
        return self.ledger.find_cart(token_hash(token, cookie))

    def create(self, cookie: str = COOKIE) -> tuple[dict, str]:
        """A new, empty cart and the token that finds it in the cookie named ``cookie``."""
        token = new_token()
        return self.ledger.create_cart(token_hash(token, cookie)), token

    def move(self, token: str | None, cookie: str = HOST_COOKIE) -> tuple[dict, str] | None:
        """The cart a plain-``COOKIE`` token finds, moved to a new token for ``cookie``; None
        when there is none to move.

        Only a cart made under the plain name moves (a token made for the prefixed cookie, as
        an attacker gets one from an HTTPS shop, finds nothing there), and only one made less
        than ``COOKIE_MAX_AGE`` ago (no browser still holds an older cookie). The old token
        finds nothing afterwards, so whoever else held it cannot read the cart any more, but
        for ``MOVE_GRACE`` seconds: a second request bringing it then (the page and its fetch,
        sent at once) gets the same cart and the same new token, not a cart of its own. Only
        the moves this process made are remembered (another process's second request finds
        nothing, as before).
        """
        if not plausible_token(token):
            return None
        key = (token_hash(token), cookie)
        with self._moving:  # one move at a time: a racing second one waits for the first's token
            now = self.clock()
            for old in [old for old, (until, _) in self._moves.items() if until <= now]:
                del self._moves[old]
            if key in self._moves:
                new = self._moves[key][1]
                cart = self.find(new, cookie)
                return (cart, new) if cart is not None else None
            cart = self.find(token)
            if cart is None or cart["created"] < now_iso(-COOKIE_MAX_AGE):
                return None
            new = new_token()
            if not self.ledger.rekey_cart(cart["id"], key[0], token_hash(new, cookie)):
                return None  # another process moved it first
            self._moves[key] = (now + MOVE_GRACE, new)
            return cart, new

    def count(self, cart: dict | None) -> int:
        return self.ledger.cart_count(cart["id"]) if cart else 0

    def add(self, cart: dict, item_id: str, quantity: int = 1) -> list[dict]:
        """Add ``quantity`` copies of a book (to the copies already there)."""
        check_quantity(quantity)
        book = self.catalog.get(item_id)

        def edit(items: list[dict]) -> dict:
            current = next((i for i in items if i["item_id"] == book.id), None)
            total = quantity + (current["quantity"] if current else 0)
            if total > MAX_QUANTITY:
                have = current["quantity"] if current else 0
                raise QuantityOutOfRange(
                    f"You can order at most {MAX_QUANTITY} copies of {book.title!r}; your cart "
                    f"already has {have}."
                )
            if current is None and len(items) >= MAX_LINES:
                raise TooManyLines(
                    f"Your cart is full: it holds {MAX_LINES} different books, the most one "
                    "order can. Pay for these first, or remove one."
                )
            others = {i["currency"] for i in items if i["item_id"] != book.id}
            if others and book.currency not in others:
                raise mixed_currency(sorted(others)[0], book)
            return {book.id: (total, book.title, book.currency)}

        return self.ledger.edit_cart(cart["id"], edit)

    def set_quantity(self, cart: dict, item_id: str, quantity: int) -> list[dict]:
        """Set a line's quantity; 0 removes it. A book not in the cart is added."""
        check_quantity(quantity, allow_zero=True)

        def edit(items: list[dict]) -> dict:
            current = next((i for i in items if i["item_id"] == item_id), None)
            if quantity == 0:
                return {item_id: (0, "", "")} if current else {}
            if current is not None and item_id not in self.catalog:
                return {item_id: (0, "", "")}  # no longer sold: the view says so
            book = self.catalog.get(item_id)
            if current is None and len(items) >= MAX_LINES:
                raise TooManyLines(f"Your cart is full: it holds {MAX_LINES} different books.")
            others = {i["currency"] for i in items if i["item_id"] != book.id}
            if others and book.currency not in others:
                raise mixed_currency(sorted(others)[0], book)
            return {book.id: (quantity, book.title, book.currency)}

        return self.ledger.edit_cart(cart["id"], edit)

    def view(self, cart: dict | None) -> CartView:
        """The cart priced from the catalog now. Books it no longer sells are taken out of the
        cart (once: the view that drops them names them)."""
        if cart is None:
            return CartView(None)
        items = self.ledger.cart_items(cart["id"])
        gone = [item for item in items if item["item_id"] not in self.catalog]
        if gone:
            ids = {item["item_id"] for item in gone}

            def drop(current: list[dict]) -> dict:
                return {i["item_id"]: (0, "", "") for i in current if i["item_id"] in ids}

            self.ledger.edit_cart(cart["id"], drop)
        lines = []
        for item in items:
            if item["item_id"] in self.catalog:
                book = self.catalog.get(item["item_id"])
                lines.append(QuoteLine(book.id, book.title, item["quantity"], book.amount))
        dropped = tuple(item["title"] for item in gone)
        if not lines:
            return CartView(cart, dropped=dropped)
        currencies = {self.catalog.get(line.item_id).currency for line in lines}
        if len(currencies) > 1:  # the catalog changed a price's currency under the cart
            problem = MixedCurrency(
                "Your cart holds books priced in "
                + " and ".join(sorted(c.upper() for c in currencies))
                + ": one order holds one currency. Remove the books you do not want now."
            )
            return CartView(cart, tuple(lines), dropped, problem)
        quote = Quote(tuple(lines), currencies.pop())
        return CartView(cart, tuple(lines), dropped, quote=quote)
