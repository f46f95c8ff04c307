"""The catalog: the server-side source of truth for what is sold and at what price.

Every amount charged comes from here, never from a browser. The built-in catalog is the original
shop's three books and three shipping rates; another can be loaded from a JSON or TOML file, and
is validated with messages that say which book (or rate) and which field is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from bookpay.errors import ConfigError, NotFound
from bookpay.money import CURRENCIES, amount_problem, charge_problem, format_amount
from bookpay.shipping import (
    DEFAULT_SHIPPING_RATES,
    ShippingOption,
    ShippingRate,
    options_for,
    text_problems,
    validate_records,
)
from bookpay.shipping import validate_rates as _validate_rates

DEFAULT_COLOR = "#635bff"
_HEX_COLOR = re.compile(r"#(?:[0-9a-fA-F]{3}){1,2}")


def hex_color(text: object) -> str | None:
    """A catalog's ``color`` as a cover takes it, ``#rrggbb`` in lower case, or None when it
    is not one: ``#RRGGBB`` or the CSS shorthand ``#rgb`` (``#abc`` is ``#aabbcc``), spaces
    around it ignored as in every text field. No colour names or ``rgb()``: a cover needs the
    digits to choose a legible ink."""
    if not isinstance(text, str) or not _HEX_COLOR.fullmatch(text.strip()):
        return None
    digits = text.strip()[1:].lower()
    return "#" + (digits if len(digits) == 6 else "".join(d * 2 for d in digits))


@dataclass(frozen=True)
class Book:
    id: str
    title: str
    author: str
    amount: int  # in the currency's minor unit
    currency: str  # lower-case ISO code, as Stripe writes it
    description: str
    color: str = DEFAULT_COLOR  # the cover's background, #rrggbb

    @property
    def price(self) -> str:
        return format_amount(self.amount, self.currency)

    @property
    def image(self) -> str:
        """Path of the cover the checkout server draws for this book (the id percent-encoded:
        it may hold ``/``, ``?``, ``#``, ``%`` or spaces)."""
        return f"/covers/{quote(self.id, safe='')}.svg"

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "title": self.title,
            "author": self.author,
            "amount": self.amount,
            "currency": self.currency,
            "description": self.description,
            "image": self.image,
        }


DEFAULT_BOOKS = (
    Book(
        id="1",
        title="The Art of Doing Science and Engineering",
        author="Richard Hamming",
        amount=2300,
        currency="usd",
        description=(
            "Richard Hamming's lectures on learning to learn, and on how great work in science "
            "and engineering gets done."
        ),
        color="#2f3a2b",
    ),
    Book(
        id="2",
        title="The Making of Prince of Persia: Journals 1985-1993",
        author="Jordan Mechner",
        amount=2500,
        currency="usd",
        description=(
            "Jordan Mechner's journals from the years he spent creating Prince of Persia, from "
            "the first sketches to the game's release and beyond."
        ),
        color="#7a1f2b",
    ),
    Book(
        id="3",
        title="Working in Public: The Making and Maintenance of Open Source",
        author="Nadia Eghbal",
        amount=2800,
        currency="usd",
        description=(
            "Nadia Eghbal's inside look at how open source software is made and maintained "
            "today, and what that means for an internet built by individual creators."
        ),
        color="#19359b",
    ),
)

_REQUIRED = ("id", "title", "author", "amount", "currency")
_KNOWN = (*_REQUIRED, "description", "color")


class Catalog:
    """An ordered, read-only set of books, looked up by id, and the shipping rates offered."""

    def __init__(
        self, books: Iterable[Book], shipping_rates: Iterable[ShippingRate] | None = None
    ) -> None:
        self._books = {book.id: book for book in books}
        rates = DEFAULT_SHIPPING_RATES if shipping_rates is None else shipping_rates
        self._rates = {rate.id: rate for rate in rates}

    def __iter__(self) -> Iterator[Book]:
        return iter(self._books.values())

    def __contains__(self, book_id: object) -> bool:
        return book_id in self._books

    def get(self, book_id: str) -> Book:
        """The book with this id, or NotFound naming the command that lists the ids."""
        try:
            return self._books[book_id]
        except (KeyError, TypeError):
            raise NotFound(
                f"No book with id {book_id!r}.",
                hint="Run `bookpay catalog list` to see the catalog.",
                code="unknown_item",
            ) from None

    def warnings(self) -> list[str]:
        """What is allowed but will disappoint a shopper: a book priced below Stripe's smallest
        payment in its currency, which cannot be paid for on its own."""
        return [
            f"book {book.id!r}: its price, {book.price}, {problem}: it can only be bought with "
            'other books ("Buy now" is refused)'
            for book in self
            if (problem := charge_problem(book.amount, book.currency))
        ]

    @property
    def shipping_rates(self) -> tuple[ShippingRate, ...]:
        return tuple(self._rates.values())

    def shipping_rate(self, rate_id: str) -> ShippingRate:
        """The shipping rate with this id, or NotFound naming the command that lists them."""
        try:
            return self._rates[rate_id]
        except (KeyError, TypeError):
            raise NotFound(
                f"No shipping rate with id {rate_id!r}.",
                hint="Run `bookpay catalog list` to see the shipping rates.",
                code="unknown_shipping_rate",
            ) from None

    def shipping_options(
        self, country: str | None, subtotal: int, currency: str
    ) -> list[ShippingOption]:
        """The rates that ship to ``country`` for an order of ``subtotal`` (minor units of
        ``currency``), each with what it costs that order, cheapest first."""
        return options_for(self.shipping_rates, country, subtotal, currency)

    @classmethod
    def default(cls) -> Catalog:
        return cls(DEFAULT_BOOKS)

    @classmethod
    def load(cls, path: Path | None) -> Catalog:
        """The catalog in ``path`` (JSON or TOML), or the built-in one when ``path`` is None."""
        if path is None:
            return cls.default()
        books, rates = _read_records(Path(path))
        return cls.from_records(books, source=str(path), shipping_rates=rates)

    @classmethod
    def from_records(
        cls, records: object, *, source: str = "catalog", shipping_rates: object = None
    ) -> Catalog:
        """Validate raw records, collecting every problem before refusing them.

        ``shipping_rates`` are raw records too; None (a file that names none) means the
        built-in rates, which are in US dollars. Every currency the books are priced in needs
        a rate in that currency, or its books could never ship.
        """
        if not isinstance(records, list) or not records:
            raise ConfigError(
                f"{source}: expected a non-empty list of books.",
                problems=[f"{source}: expected a non-empty list of books"],
            )
        books, problems = validate_records(records, f"{source}: book", _validate)
        rates = None
        if shipping_rates is not None:
            currencies = {book.currency for book in books}
            rates, rate_problems = _validate_rates(shipping_rates, source, currencies)
            problems.extend(rate_problems)
        if not problems:
            problems = _unshipped(books, rates, source)
        if problems:
            raise ConfigError(
                f"The catalog in {source} is not valid:\n  " + "\n  ".join(problems),
                problems=problems,
            )
        return cls(books, rates)


def _unshipped(books: list[Book], rates: list[ShippingRate] | None, source: str) -> list[str]:
    """A problem for each currency of the books that no shipping rate is in."""
    shipped = {rate.currency for rate in (DEFAULT_SHIPPING_RATES if rates is None else rates)}
    problems = []
    for currency in sorted({book.currency for book in books} - shipped):
        code = currency.upper()
        ids = ", ".join(repr(book.id) for book in books if book.currency == currency)
        if rates is None:
            problems.append(
                f"{source}: the books priced in {code} ({ids}) have no shipping rates: the "
                f"built-in ones are in USD, so add shipping rates in {code} ('shipping_rates' "
                "in a JSON file, [[shipping_rates]] tables in a TOML one)"
            )
        else:
            problems.append(
                f"{source}: no shipping rate is in {code}, so the books priced in {code} ({ids})"
                f" could never ship: add a shipping rate in {code}"
            )
    return problems


# A catalog of tens of thousands of books is a few MB; more is not a catalog (a device, a log).
MAX_CATALOG_BYTES = 10 * 2**20


def _read_file(path: Path) -> bytes:
    """A catalog file's bytes. As `webhook sign` and `webhook replay` read theirs, only a regular
    file (a link to one is followed), of at most ``MAX_CATALOG_BYTES``: a FIFO would block every
    command and the server's start for ever, and /dev/zero be read until memory ran out. Opened
    without blocking and then looked at, so nothing can take its place in between."""
    import os
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ConfigError(f"Cannot read the catalog file {path}: {exc.strerror}.") from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ConfigError(
                f"The catalog file {path} is {_kind(mode)}, not a regular file: give a JSON or "
                "TOML file."
            )
        with open(fd, "rb", closefd=False) as handle:
            raw = handle.read(MAX_CATALOG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"Cannot read the catalog file {path}: {exc.strerror}.") from exc
    finally:
        os.close(fd)
    if len(raw) > MAX_CATALOG_BYTES:
        raise ConfigError(
            f"The catalog file {path} is larger than {MAX_CATALOG_BYTES // 2**20} MB: a catalog "
            "is at most that."
        )
    return raw


def _kind(mode: int) -> str:
    """What a file that is not a regular one is, in words."""
    import stat

    for test, kind in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (a named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a file"


def _read_records(path: Path) -> tuple[object, object]:
    """The books and the shipping rates (None when the file names none) a file holds."""
    suffix = path.suffix.lower()
    if suffix not in (".json", ".toml"):
        raise ConfigError(f"The catalog file {path} must end in .json or .toml.")
    raw = _read_file(path)
    try:
        if suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib

            data = tomllib.loads(raw.decode("utf-8"))
            return data.get("books"), data.get("shipping_rates")
        import json  # only for a catalog file: the built-in catalog starts without it

        data = json.loads(raw)
        if isinstance(data, dict):
            return data.get("books"), data.get("shipping_rates")
        return data, None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"The catalog file {path} is not valid {suffix[1:].upper()}: {exc}."
        ) from exc


def _validate(record: dict, where: str) -> tuple[Book | None, list[str]]:
    problems = [f"{where}: missing field {name!r}" for name in _REQUIRED if name not in record]
    problems += [f"{where}: unknown field {name!r}" for name in record if name not in _KNOWN]
    fields = ("id", "title", "author", "description")
    problems += text_problems(
        record, fields, where, lines=("description",), optional=("description",)
    )
    color = record.get("color")
    color_problems = text_problems(record, ("color",), where, optional=("color",))
    if color is not None and not color_problems and hex_color(color) is None:
        color_problems.append(
            f"{where}: 'color' must be a colour written #rrggbb (or #rgb), as '#2f3a2b', "
            f"got {color!r}"
        )
    problems += color_problems
    book_id = record.get("id")
    if isinstance(book_id, str) and book_id.strip() in (".", ".."):
        # Browsers resolve "." and ".." (even as %2E) in a URL's path, so the line's form
        # (/cart/items/<id>) could never name it. Any other id, "/" included, is percent-encoded.
        problems.append(
            f"{where}: 'id' {book_id.strip()!r} cannot be in a page's address: choose another id"
        )
    amount = record.get("amount")
    if "amount" in record and (isinstance(amount, bool) or not isinstance(amount, int)):
        problems.append(
            f"{where}: 'amount' must be an integer in the currency's minor unit (2300 for $23.00),"
            f" got {amount!r}"
        )
    elif isinstance(amount, int) and amount <= 0:
        problems.append(f"{where}: 'amount' must be positive, got {amount}")
    currency = record.get("currency")
    if "currency" in record and (
        not isinstance(currency, str) or currency.lower() not in CURRENCIES
    ):
        problems.append(f"{where}: unknown currency code {currency!r}")
    elif currency is not None and (problem := amount_problem(amount, currency)):
        problems.append(f"{where}: 'amount' {amount} {problem}")
    if problems:
        return None, problems
    book = Book(
        id=record["id"].strip(),
        title=record["title"].strip(),
        author=record["author"].strip(),
        amount=amount,
        currency=currency.lower(),
        description=(record.get("description") or "").strip(),
        color=DEFAULT_COLOR if color is None else hex_color(color),
    )
    return book, []
