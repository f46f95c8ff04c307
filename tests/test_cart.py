"""The cart and the quote in the core, on both ledger backends: bounds, currencies, books that
leave the catalog, settling after a payment, and fulfilment against the recorded quote."""

from __future__ import annotations

import threading

import pytest
from test_orders import SHOP, FakeGateway, intent

from bookpay.cart import COOKIE_MAX_AGE, HOST_COOKIE, MOVE_GRACE, Carts, token_hash
from bookpay.catalog import Book, Catalog
from bookpay.config import Settings
from bookpay.errors import NotFound
from bookpay.fulfilment import Fulfiller
from bookpay.ledger import open_ledger
from bookpay.ledger.errors import LedgerConflict
from bookpay.ledger.model import now_iso
from bookpay.quote import (
    MAX_LINES,
    MixedCurrency,
    QuantityOutOfRange,
    Quote,
    QuoteLine,
    TooManyLines,
    parse_line_summary,
    quote_items,
)


def book(book_id: str, amount: int = 1000, currency: str = "usd") -> Book:
    return Book(book_id, f"Title {book_id}", "Author", amount, currency, "")


# 60 books in dollars and one in euros: enough to fill a cart.
CATALOG = Catalog([*(book(str(n), 1000 + n) for n in range(1, 61)), book("eur1", 900, "eur")])


@pytest.fixture
def ledger(tmp_path, database_url):
    opened = open_ledger(
        Settings(data_dir=tmp_path / "data", database_url=database_url, shop_id=SHOP)
    )
    yield opened
    opened.close()


@pytest.fixture
def carts(ledger):
    return Carts(ledger, CATALOG)


@pytest.fixture
def cart(carts):
    made, _ = carts.create()
    return made


def quantities(carts, cart) -> dict[str, int]:
    return {line.item_id: line.quantity for line in carts.view(cart).lines}


def test_a_cart_is_found_by_its_token_only(carts):
    cart, token = carts.create()
    assert carts.find(token)["id"] == cart["id"]
    assert carts.find(token + "x") is None
    assert carts.find("") is None and carts.find(None) is None
    assert carts.find("\x00" * 30) is None  # junk never reaches a query
    # Only the token's hash is stored.
    assert carts.ledger.find_cart(token_hash(token))["id"] == cart["id"]
    assert carts.ledger.find_cart(token) is None


def test_a_token_made_for_the_prefixed_cookie_finds_nothing_in_the_plain_one(carts):
    cart, token = carts.create(HOST_COOKIE)
    assert carts.find(token, HOST_COOKIE)["id"] == cart["id"]
    assert carts.find(token) is None  # planted under the plain name, it finds nothing
    assert carts.move(token) is None
    _, plain_token = carts.create()
    assert carts.find(plain_token, HOST_COOKIE) is None


def test_a_cart_made_under_the_plain_name_moves_once_to_a_new_token(carts):
    cart, old = carts.create()
    carts.add(cart, "1", 2)
    moved, new = carts.move(old)
    assert moved["id"] == cart["id"] and new != old
    assert carts.find(new, HOST_COOKIE)["id"] == cart["id"]
    assert quantities(carts, carts.find(new, HOST_COOKIE)) == {"1": 2}
    assert carts.find(old) is None and carts.find(old, HOST_COOKIE) is None
    assert carts.move("") is None and carts.move("\x00" * 30) is None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_same_old_token_moved_again_within_the_grace_gets_the_same_cart_and_token(carts):
    """A page and its fetch bring the old cookie at once: the second must not lose the cart."""
    carts.clock = clock = Clock()
    cart, old = carts.create()
    carts.add(cart, "1", 2)
    moved, new = carts.move(old)
    carts.add(moved, "2")
    clock.now += MOVE_GRACE - 1
    again, same = carts.move(old)
    assert again["id"] == cart["id"] and same == new
    assert quantities(carts, again) == {"1": 2, "2": 1}
    assert carts.find(old) is None  # the old token itself still finds nothing
    other = Carts(carts.ledger, CATALOG)  # another process knows nothing of this move
    assert other.move(old) is None
    clock.now += 2  # past the grace: once for good
    assert carts.move(old) is None
    assert carts.find(new, HOST_COOKIE)["id"] == cart["id"]


def test_a_planted_prefixed_token_finds_nothing_however_often_it_is_moved(carts):
    _, token = carts.create(HOST_COOKIE)
    assert carts.move(token) is None and carts.move(token) is None


def test_racing_moves_of_one_old_token_all_get_the_same_cart_and_token(carts):
    cart, old = carts.create()
    carts.add(cart, "1")
    start = threading.Barrier(6)
    results = []

    def move() -> None:
        start.wait()
        results.append(carts.move(old))

    threads = [threading.Thread(target=move) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert None not in results
    assert {(moved["id"], new) for moved, new in results} == {(cart["id"], results[0][1])}


def test_a_cart_older_than_the_cookie_lives_does_not_move(carts):
    """No browser still holds a cookie older than its Max-Age: such a token is someone else's."""
    cart, old = carts.create()
    carts.ledger.backend.write_one(
        "UPDATE carts SET created = ? WHERE id = ?", (now_iso(-COOKIE_MAX_AGE - 60), cart["id"])
    )
    assert carts.move(old) is None
    assert carts.find(old)["id"] == cart["id"]  # still there for a plain-HTTP shop


def test_adding_the_same_book_adds_copies_up_to_ten(carts, cart):
    carts.add(cart, "1")
    carts.add(cart, "1", 8)
    assert quantities(carts, cart) == {"1": 9}
    carts.add(cart, "1")
    with pytest.raises(QuantityOutOfRange, match="at most 10 copies of 'Title 1'; your cart"):
        carts.add(cart, "1")
    assert quantities(carts, cart) == {"1": 10}  # the refused change wrote nothing


@pytest.mark.parametrize("quantity", [0, -1, 11, 1.5, "2", True])
def test_a_quantity_outside_one_to_ten_is_refused(carts, cart, quantity):
    with pytest.raises(QuantityOutOfRange):
        carts.add(cart, "1", quantity)
    assert quantities(carts, cart) == {}


def test_setting_a_quantity_and_zero_removes(carts, cart):
    carts.add(cart, "1")
    carts.add(cart, "2")
    carts.set_quantity(cart, "1", 7)
    assert quantities(carts, cart) == {"1": 7, "2": 1}
    with pytest.raises(QuantityOutOfRange):
        carts.set_quantity(cart, "1", 11)
    carts.set_quantity(cart, "2", 0)
    assert quantities(carts, cart) == {"1": 7}
    carts.set_quantity(cart, "2", 0)  # removing what is not there is no error
    assert [line.item_id for line in carts.view(cart).lines] == ["1"]


def test_at_most_fifty_books_in_a_cart(carts, cart):
    for n in range(1, MAX_LINES + 1):
        carts.add(cart, str(n))
    with pytest.raises(TooManyLines, match="holds 50 different books"):
        carts.add(cart, "51")
    carts.add(cart, "50", 2)  # more copies of a book already there is fine
    assert len(carts.view(cart).lines) == MAX_LINES


def test_an_unknown_book_is_not_found(carts, cart):
    with pytest.raises(NotFound):
        carts.add(cart, "nope")


def test_one_currency_per_cart(carts, cart):
    carts.add(cart, "1")
    with pytest.raises(MixedCurrency, match="in USD, and 'Title eur1' is priced in EUR"):
        carts.add(cart, "eur1")
    carts.set_quantity(cart, "1", 0)
    carts.add(cart, "eur1")  # an empty cart takes any currency
    assert carts.view(cart).quote.currency == "eur"


def test_concurrent_adds_never_pass_the_bounds(carts, cart):
    barrier = threading.Barrier(12)
    refused = []

    def add():
        barrier.wait()
        try:
            carts.add(cart, "1")
        except QuantityOutOfRange:
            refused.append(1)

    threads = [threading.Thread(target=add) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert quantities(carts, cart) == {"1": 10}
    assert len(refused) == 2


def test_the_view_prices_from_the_catalog_now_and_drops_books_no_longer_sold(ledger, cart):
    Carts(ledger, CATALOG).add(cart, "1", 2)
    Carts(ledger, CATALOG).add(cart, "2")
    cheaper = Catalog([book("1", 500)])  # book 2 is gone, book 1 costs less now
    view = Carts(ledger, cheaper).view(cart)
    assert [(line.item_id, line.quantity, line.unit_amount) for line in view.lines] == [
        ("1", 2, 500)
    ]
    assert view.quote.total == 1000
    assert view.notice() == "'Title 2' is no longer sold: removed from your cart."
    again = Carts(ledger, cheaper).view(cart)
    assert again.notice() == "" and again.count == 2  # dropped once, said once


def test_a_cart_whose_books_changed_currency_cannot_be_paid_as_it_is(ledger, cart):
    Carts(ledger, CATALOG).add(cart, "1")
    Carts(ledger, CATALOG).add(cart, "2")
    changed = Catalog([book("1"), book("2", currency="gbp")])
    view = Carts(ledger, changed).view(cart)
    with pytest.raises(MixedCurrency, match="GBP and USD"):
        view.require_quote()


def test_quotes_price_from_the_catalog_in_one_currency():
    quote = quote_items(CATALOG, [("1", 2), ("3", 1), ("1", 1)])
    assert [(line.item_id, line.quantity) for line in quote.lines] == [("1", 3), ("3", 1)]
    assert (quote.subtotal, quote.shipping, quote.tax) == (3 * 1001 + 1003, 0, 0)
    assert quote.total == quote.subtotal and quote.item_count == 4
    with pytest.raises(MixedCurrency):
        quote_items(CATALOG, [("1", 1), ("eur1", 1)])
    with pytest.raises(QuantityOutOfRange):
        quote_items(CATALOG, [("1", 6), ("1", 5)])


def test_metadata_stays_within_stripes_limits_however_large_the_order():
    long_ids = Catalog([book(f"{n:03}-" + "x" * 36) for n in range(50)])
    quote = quote_items(long_ids, [(b.id, 10) for b in long_ids])
    metadata = quote.metadata(order_id="ord_0123456789abcdef", cart_id="cart_0123456789abcdef")
    assert len(metadata) <= 50
    assert all(len(key) <= 40 and len(value) <= 500 for key, value in metadata.items())
    assert metadata["item_count"] == "500"
    assert metadata["lines"].endswith(tuple(f",...+{n}" for n in range(1, 50)))
    assert parse_line_summary(metadata["lines"]) is None  # a cut summary is never the order
    assert len(quote.description()) <= 1000
    small = quote_items(CATALOG, [("1", 2), ("3", 1)])
    assert parse_line_summary(small.line_summary()) == [("1", 2), ("3", 1)]


def test_paying_settles_the_cart_once_keeping_what_was_added_meanwhile(carts, cart):
    carts.add(cart, "1", 2)
    carts.add(cart, "2")
    quote = carts.view(cart).quote
    carts.ledger.record_quote("pi_paid", "ord_00000000000000aa", quote, cart_id=cart["id"])
    carts.add(cart, "1")  # another tab, while paying
    carts.add(cart, "3")
    assert carts.ledger.settle_cart("pi_paid") is True
    assert carts.ledger.settle_cart("pi_paid") is False  # once
    assert quantities(carts, cart) == {"1": 1, "3": 1}
    assert carts.ledger.get_cart(cart["id"])["generation"] == 1  # the next checkout is new
    # Its other attempts' canceling owed with the settling, once (bookpay.siblings does it).
    owed = carts.ledger.sibling_cancels()
    assert [(o["payment_intent"], o["cart_id"], o["status"]) for o in owed] == [
        ("pi_paid", cart["id"], "pending")
    ]


def test_the_attempts_beside_one_are_those_of_the_same_payment_of_its_cart(carts, cart):
    """Tabs a and b pay the cart; a's payment settles it; c and d are its next checkout's. A
    quote settled between two attempts' first quotes parts them; a settled one is not beside."""
    carts.add(cart, "1")
    quote = carts.view(cart).quote
    ledger = carts.ledger
    other, _ = carts.create(HOST_COOKIE)
    carts.add(other, "1")
    for n, (attempt, owner) in enumerate([("a", cart), ("b", cart), ("x", other)]):
        ledger.record_quote(f"pi_{attempt}", f"ord_{n:016x}", quote, attempt_id=attempt,
                            cart_id=owner["id"])  # fmt: skip
    ledger.settle_cart("pi_a")
    for n, attempt in enumerate("cd", start=3):
        ledger.record_quote(f"pi_{attempt}", f"ord_{n:016x}", quote, attempt_id=attempt,
                            cart_id=cart["id"])  # fmt: skip
    # The clock's milliseconds may not tell them apart: each its own moment, in that order.
    moments = {"a": 1, "b": 2, "x": 2, "c": 4, "d": 5}
    with ledger.backend.write() as tx:
        for attempt, second in moments.items():
            tx.run(
                "UPDATE quotes SET created = ? WHERE attempt_id = ?",
                (f"2030-01-01T00:00:0{second}.000Z", attempt),
            )
        tx.run(
            "UPDATE quotes SET settled_at = ? WHERE attempt_id = 'a'", ("2030-01-01T00:00:03.000Z",)
        )

    def beside(intent_id):
        return [row["payment_intent"] for row in ledger.attempts_beside(intent_id)]

    assert beside("pi_a") == ["pi_b"]  # what the payment of the cart leaves to cancel
    assert beside("pi_b") == []  # a is paid and settled: nothing to wait for beside b
    assert beside("pi_c") == ["pi_d"]
    assert beside("pi_d") == ["pi_c"]
    assert beside("pi_x") == []  # another cart's
    assert [r["payment_intent"] for r in ledger.attempts_beside("pi_c", limit=0)] == []


def test_the_attempts_beside_one_follow_the_carts_payments_not_the_clocks(carts, cart):
    """a and b pay the cart's first payment, c its next (recorded after a's payment settled
    it), each dated by a clock that says otherwise: b after the settling, c before it. The
    generation decides; a quote from before the ledger kept it (NULL) goes by the times; one
    the ledger knows canceled is left out."""
    carts.add(cart, "1")
    quote = carts.view(cart).quote
    ledger = carts.ledger
    for n, attempt in enumerate("ab"):
        ledger.record_quote(f"pi_{attempt}", f"ord_{n:016x}", quote, attempt_id=attempt,
                            cart_id=cart["id"])  # fmt: skip
    ledger.settle_cart("pi_a")
    ledger.record_quote("pi_c", "ord_0000000000000002", quote, attempt_id="c", cart_id=cart["id"])
    assert [ledger.quote_for(f"pi_{a}")["generation"] for a in "abc"] == [0, 0, 1]
    moments = {"a": "00:01", "b": "00:05", "c": "00:02"}  # settled at 00:03
    with ledger.backend.write() as tx:
        for attempt, moment in moments.items():
            tx.run(
                "UPDATE quotes SET created = ? WHERE attempt_id = ?",
                (f"2030-01-01T00:{moment}.000Z", attempt),
            )
        tx.run("UPDATE quotes SET settled_at = '2030-01-01T00:00:03.000Z' WHERE attempt_id = 'a'")

    def beside(intent_id):
        return [row["payment_intent"] for row in ledger.attempts_beside(intent_id)]

    assert beside("pi_a") == ["pi_b"]  # not c, the next payment, dated before the settling
    assert beside("pi_c") == []  # not b, left open from the payment before
    with ledger.backend.write() as tx:  # as an earlier version recorded b: by the times
        tx.run("UPDATE quotes SET generation = NULL WHERE attempt_id = 'b'")
    assert beside("pi_a") == []  # settled between a's first quote and b's
    with ledger.backend.write() as tx:
        tx.run("UPDATE quotes SET generation = 0 WHERE attempt_id = 'b'")
    assert beside("pi_a") == ["pi_b"]
    ledger.mark_canceled("pi_b")
    assert beside("pi_a") == []  # known canceled: not retrieved again


# Fulfilment against the recorded quote -----------------------------------------------------------


def paid(pi: str, order_id: str, amount: int, **extra) -> dict:
    found = intent(pi, amount=amount, **extra)
    found["metadata"] = {
        "integration": "bookpay",
        "shop_id": SHOP,
        "order_id": order_id,
        "lines": "1x2,3x1",
    }
    return found


@pytest.fixture
def fulfil(ledger, tmp_path):
    made = []

    def run(found: dict, catalog=CATALOG):
        settings = Settings(data_dir=tmp_path / "data", shop_id=SHOP)
        fulfiller = Fulfiller(ledger, FakeGateway(found), catalog, settings)
        made.append(fulfiller)
        return fulfiller.fulfil(found["id"])

    yield run
    for fulfiller in made:
        fulfiller.close()


QUOTE = Quote((QuoteLine("1", "Title 1", 2, 1001), QuoteLine("3", "Title 3", 1, 1003)), "usd")


def test_fulfilment_checks_the_recorded_quote_not_todays_catalog(ledger, fulfil):
    ledger.record_quote("pi_q", "ord_000000000000000a", QUOTE)
    dearer = Catalog([book("1", 5000), book("3", 5000)])
    result = fulfil(paid("pi_q", "ord_000000000000000a", QUOTE.total), dearer)
    assert result.outcome == "fulfilled"
    assert result.order["id"] == "ord_000000000000000a"  # the id the metadata named
    lines = ledger.order_lines("ord_000000000000000a")
    assert [(x["item_id"], x["quantity"], x["line_amount"]) for x in lines] == [
        ("1", 2, 2002),
        ("3", 1, 1003),
    ]
    receipt = ledger.receipt_for("pi_q")
    assert "2 x Title 1 (book 1)" in receipt["body"]
    assert "at $10.01 each: $20.02" in receipt["body"]
    assert "Total paid:     $30.05" in receipt["body"]
    assert receipt["subject"] == "Your bookpay receipt: 3 books ($30.05)"


def test_a_payment_that_differs_from_the_recorded_quote_is_not_fulfilled(ledger, fulfil):
    ledger.record_quote("pi_q", "ord_000000000000000b", QUOTE)
    result = fulfil(paid("pi_q", "ord_000000000000000b", QUOTE.total - 1))
    assert result.outcome == "rejected"
    assert "does not match the recorded quote 3005 usd" in result.reason
    assert ledger.fulfilment_count() == 0
    other = paid("pi_q", "ord_00000000000000ff", QUOTE.total)
    assert "is not the order ord_000000000000000b quoted" in fulfil(other).reason


def test_without_a_recorded_quote_the_metadata_lines_are_priced_and_recorded(ledger, fulfil):
    result = fulfil(paid("pi_cli", "ord_000000000000000c", 3 * 1001 + 1003 - 1001))
    assert result.outcome == "fulfilled"
    assert [x["quantity"] for x in ledger.order_lines("ord_000000000000000c")] == [2, 1]
    assert fulfil(paid("pi_bad", "ord_000000000000000d", 1)).outcome == "rejected"


def test_racing_writers_of_one_quote_neither_fail_nor_mix_their_lines(ledger):
    barrier = threading.Barrier(10)
    errors = []

    def record():
        barrier.wait()
        try:
            ledger.record_quote("pi_race", "ord_000000000000000e", QUOTE)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=record) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [x["quantity"] for x in ledger.order_lines("ord_000000000000000e")] == [2, 1]
    with pytest.raises(LedgerConflict):  # another payment claiming the same order
        ledger.record_quote("pi_other", "ord_000000000000000e", QUOTE)
    assert ledger.quote_for("pi_race")["total"] == QUOTE.total
