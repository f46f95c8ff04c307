"""The sales report: what sold, per period or per book, from the ledger alone.

A sale is a fulfilled order, dated by its fulfilment (UTC). Per order:

    gross    = the amount paid (the quote's total; what a partial capture took of it, the
               rest of the hold released: never the customer's money, so no refund)
    refunded = what Stripe says was refunded of it (at most the gross; all of it once the
               order is ``refunded``); a refund that failed is not refunded
    disputed = what its open disputes hold (each Dispute's amount, what Stripe took back
               while it is decided, refunds made before it or not; at most the gross)
    lost     = the same of its lost disputes: net goes below 0 when a dispute took back what a
               refund had given already, as Stripe's own figures do
    net      = gross - refunded - disputed - lost

A dispute recorded without an amount, or a status with no dispute recorded, counts what is left
of the order (gross - refunded).

A dispute the shop won counts as nothing: the sale stands, as paid or refunded as the Charge
says. One more column, ``tax_unreported``, is tax that Stripe Tax was told was refunded when it
was not: the reversal of a refund that failed afterwards (Stripe documents no way to undo a
reversal, so a person corrects it in Stripe Tax; ``bookpay.ledger.taxrecords``). It is that
reversal's share of the order's tax (all of it for a full reversal); not part of the net.

Refunds and disputes count against the period of the sale they undo (the ledger keeps how much
of an order was refunded, not when). Per book, an order's gross, refunded and disputed amounts
are shared among its lines in proportion to the lines' amounts, to the cent (in ISK and UGX to
the whole unit, in a three-decimal currency to ten of its minor unit: ``money.charge_step``, what
Stripe charges), so that the books' figures add up to the period's exactly. Amounts stay in
minor units, one report per currency.

Two more columns say what the gross holds besides books: the shipping the orders paid and the
tax collected (their quotes' shipping and tax, as Stripe Tax calculated it), gross figures like
the gross itself (a refund is not split into books, shipping and tax). Per book they are shared
like the rest. After a partial capture the quote's books, shipping and tax are scaled to what
was captured (``quote_parts``): the money taken is shared among them in proportion to the
quote, to the cent (the shipping in ``charge_step``s), so shipping and tax never exceed what
was taken, and the tax is what the Stripe Tax reversal of the released rest (a refund to
Stripe, in proportion too) leaves, to the minor unit as Stripe Tax keeps it (hundredths of an
ISK too: 61.03 ISK of 1,000 taken from 3,408 with 208 tax). Only that tax, and the tax
unreported shared from it, can leave a book's share a fraction of a ``charge_step``.

Only the ledger is read, through the index on ``orders.fulfilled_at``: a report of a period
costs what that period's orders cost, however large the ledger; and it holds its rows, never
its orders (``iter_fulfilled`` reads them a batch at a time; a row counts an order once by
remembering only the last it saw, as an order's lines come together).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from bookpay.errors import UsageError
from bookpay.ledger.model import DISPUTE_OPEN
from bookpay.ledger.taxrecords import over_reversed
from bookpay.money import charge_step, chargeable

PERIODS = ("day", "week", "month")
GROUPINGS = (*PERIODS, "book")
MAX_FILLED = 1000  # empty periods shown between sales, at most (a chart's worth)


@dataclass
class Row:
    key: str  # the period ("2026-01-31", "2026-W05", "2026-01") or the book's id
    label: str  # what a person reads: the period again, or the book's title
    orders: int = 0
    copies: int = 0
    gross: int = 0
    refunded: int = 0
    disputed: int = 0
    lost: int = 0  # to disputes lost
    shipping: int = 0  # of the gross: what the orders paid for shipping
    tax: int = 0  # of the gross: the tax collected
    tax_unreported: int = 0  # reversed in Stripe Tax for refunds that failed afterwards
    # An order's lines come one after the other: the last order counted is all a row needs to
    # count each once (a set of every order's id held 150 MB for a million orders).
    _last_order: str | None = field(default=None, repr=False)

    @property
    def net(self) -> int:
        return self.gross - self.refunded - self.disputed - self.lost

    def add(
        self,
        order_id: str,
        copies: int,
        gross: int,
        refunded: int,
        disputed: int,
        lost: int = 0,
        shipping: int = 0,
        tax: int = 0,
        tax_unreported: int = 0,
    ) -> None:
        if order_id != self._last_order:
            self._last_order = order_id
            self.orders += 1
        self.copies += copies
        self.gross += gross
        self.refunded += refunded
        self.disputed += disputed
        self.lost += lost
        self.shipping += shipping
        self.tax += tax
        self.tax_unreported += tax_unreported

    def to_dict(self) -> dict:
        return {
            "key": self.key,
            "label": self.label,
            "orders": self.orders,
            "copies": self.copies,
            "gross": self.gross,
            "refunded": self.refunded,
            "disputed": self.disputed,
            "lost": self.lost,
            "net": self.net,
            "shipping": self.shipping,
            "tax": self.tax,
            "tax_unreported": self.tax_unreported,
        }


@dataclass
class CurrencyReport:
    currency: str
    rows: list[Row]
    orders: int  # in all (an order of several books is in several books' rows)

    @property
    def total(self) -> Row:
        total = Row("total", "Total")
        total.orders = self.orders
        for row in self.rows:
            total.copies += row.copies
            total.gross += row.gross
            total.refunded += row.refunded
            total.disputed += row.disputed
            total.lost += row.lost
            total.shipping += row.shipping
            total.tax += row.tax
            total.tax_unreported += row.tax_unreported
        return total

    def to_dict(self) -> dict:
        return {
            "currency": self.currency,
            "rows": [row.to_dict() for row in self.rows],
            "total": self.total.to_dict(),
        }


@dataclass
class SalesReport:
    by: str
    since: datetime | None
    until: datetime | None
    currencies: list[CurrencyReport]

    def to_dict(self) -> dict:
        return {
            "by": self.by,
            "since": _iso(self.since),
            "until": _iso(self.until),
            "currencies": [report.to_dict() for report in self.currencies],
        }


def order_amounts(order: dict) -> tuple[int, int, int, int]:
    """(gross, refunded, disputed, lost) of one fulfilled order, in its currency's minor unit."""
    gross = order["amount"] or 0
    if isinstance(order.get("amount_captured"), int):  # a partial capture released the rest
        gross = min(max(order["amount_captured"], 0), gross)
    refunded = min(max(order["amount_refunded"] or 0, 0), gross)
    if order["status"] == "refunded":  # Stripe said refunded in full
        refunded = gross
    if order["status"] not in ("disputed", "dispute_lost"):
        return gross, refunded, 0, 0
    disputes = order.get("disputes") or []
    if not disputes:  # none recorded (a status set without one): what is left of it
        left = gross - refunded
        return (gross, refunded, *((left, 0) if order["status"] == "disputed" else (0, left)))
    disputed = lost = 0
    for dispute in disputes:
        # What Stripe took back: the Dispute's amount, refunds made first or not (a dispute
        # recorded without one: what was left of the order).
        amount = dispute.get("amount")
        amount = min(max(amount, 0), gross) if isinstance(amount, int) else gross - refunded
        if dispute["status"].startswith("warning_"):
            continue  # an inquiry: Stripe takes nothing back unless it becomes a chargeback
        if dispute["status"] in DISPUTE_OPEN:
            disputed += amount
        elif dispute["status"] == "lost":
            lost += amount
    # Never more than the order's gross in all (one Charge, disputed once).
    lost = min(lost, gross)
    disputed = min(disputed, gross - lost)
    return gross, refunded, disputed, lost


def quote_parts(order: dict, gross: int) -> tuple[int, int]:
    """(shipping, tax) of one fulfilled order's ``gross`` (``order_amounts``'): its quote's,
    or, when a partial capture took less than the order's amount, the quote's books, shipping
    and tax scaled to the gross (``share``): the tax to the minor unit, as Stripe Tax keeps it
    once the released rest is reversed (hundredths of an ISK too); the shipping in what the
    currency is charged in (``charge_step``: whole ISK and UGX, tens of a KWD's fils), never
    more than the tax leaves. The books have the rest, so the three add up to the gross."""
    shipping, tax = order.get("shipping") or 0, order.get("tax") or 0
    amount = order["amount"] or 0
    if gross >= amount:
        return shipping, tax
    books = max(amount - shipping - tax, 0)
    currency = order.get("currency") or "usd"
    weights = [books, shipping, tax]
    tax = share(gross, weights)[2]
    shipping = share(gross, weights, charge_step(currency))[1]
    return min(shipping, chargeable(gross - tax, currency)), tax


def tax_unreported(order: dict) -> int:
    """The tax of ``order`` reversed in Stripe Tax for refunds that failed afterwards, less
    what later refunds' reversals took into account (``over_reversed`` of its reversals,
    ``failed_reversals``): that amount's share of the order's tax."""
    tax, total = order.get("tax") or 0, order["amount"] or 0
    if total <= 0 or not order.get("failed_reversals"):
        return 0
    return min(over_reversed(order["failed_reversals"], total), total) * tax // total


def period_of(moment: datetime, by: str) -> str:
    if by == "day":
        return moment.strftime("%Y-%m-%d")
    if by == "week":
        year, week, _ = moment.isocalendar()
        return f"{year}-W{week:02d}"
    return moment.strftime("%Y-%m")


def share(amount: int, weights: list[int], step: int = 1) -> list[int]:
    """``amount`` split in proportion to ``weights``, in whole units that add up to it exactly
    (largest remainders get the leftover units; equal weights when they are all zero).

    The units are ``step`` minor units (``money.charge_step``: 100 in ISK and UGX, which have
    no hundredths Stripe charges; 10 in KWD): every part is a multiple of it, but for what of
    ``amount`` is not (tax Stripe Tax calculated to the minor unit), which one part keeps, the
    one furthest below its weight (the first of those)."""
    if not weights:
        return []
    if sum(weights) <= 0:
        weights = [1] * len(weights)
    total = sum(weights)
    units, rest = divmod(amount, step)
    exact = [units * w for w in weights]
    parts = [e // total for e in exact]
    leftover = units - sum(parts)
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] % total), i))
    for i in order[:leftover]:
        parts[i] += 1
    parts = [part * step for part in parts]
    if rest:
        room = [w - part for w, part in zip(weights, parts, strict=True)]
        parts[room.index(max(room))] += rest
    return parts


def line_shares(
    weights: list[int],
    gross: int,
    refunded: int,
    disputed: int,
    lost: int,
    shipping: int,
    tax: int,
    unreported: int,
    step: int = 1,
) -> list[list[int]]:
    """One order's money shared among its lines (``weights``: their amounts), to the cent, or
    in ``step``s of the minor unit (``share``): whole units in ISK and UGX, which Stripe never
    charges hundredths of, and tens in a three-decimal currency.

    The gross is shared in proportion to the lines, and each part of it among the lines'
    shares of what holds it: the refunded among the gross's shares, the disputed and lost among
    what each line has left of its gross (among the gross's shares when a dispute took more
    than the refunds left: the order's net is negative then), the shipping and the tax among
    the gross's shares,
    the tax unreported among the tax's, to the minor unit as the tax is (in steps, a book whose
    tax is 0.19 ISK could be given 0.20 ISK of it). So a line's refunded, disputed and lost never
    exceed its gross (its net is never negative when the order's is not; shared each on its own,
    an order disputed in full could show one book at -0.01 and another at +0.01), nor its
    shipping and tax its gross, nor its tax unreported its tax. In the order of ``build``'s
    amounts: gross, refunded, disputed, lost, shipping, tax, unreported.
    """
    grosses = share(gross, weights, step)
    refunds = share(refunded, grosses, step)
    left = [g - r for g, r in zip(grosses, refunds, strict=True)]
    if max(disputed, lost) > sum(left):  # a dispute of more than a refund left: of the gross
        left = grosses
    shipped = share(shipping, grosses, step)
    taxes = share(tax, [max(g - s, 0) for g, s in zip(grosses, shipped, strict=True)], step)
    return [
        grosses,
        refunds,
        share(disputed, left, step),
        share(lost, left, step),
        shipped,
        taxes,
        share(unreported, taxes),  # to the minor unit: never more than a line's tax
    ]


def build(
    orders: Iterable[dict],
    *,
    by: str,
    since: datetime | None = None,
    until: datetime | None = None,
    titles: dict[str, str] | None = None,
) -> SalesReport:
    """The report of ``orders`` (``Ledger.iter_fulfilled``'s: each with its ``lines``)."""
    if by not in GROUPINGS:
        raise UsageError(f"Group by one of {', '.join(GROUPINGS)}, not {by!r}.")
    titles = titles or {}
    tables: dict[str, dict[str, Row]] = {}
    counts: dict[str, int] = {}
    for order in orders:
        gross, refunded, disputed, lost = order_amounts(order)
        shipping, tax = quote_parts(order, gross)
        unreported = tax_unreported(order)
        currency = order["currency"] or "usd"
        rows = tables.setdefault(currency, {})
        counts[currency] = counts.get(currency, 0) + 1
        lines = order["lines"]
        copies = sum(line["quantity"] for line in lines)
        if by != "book":
            key = period_of(_moment(order["fulfilled_at"]), by)
            row = rows.setdefault(key, Row(key, key))
            row.add(order["id"], copies, gross, refunded, disputed, lost, shipping, tax, unreported)
            continue
        if not lines:  # an order whose lines are unknown still counts, as an unknown book
            lines = [{"item_id": "-", "title": "(unknown)", "quantity": 0, "line_amount": gross}]
        shares = line_shares(
            [line["line_amount"] for line in lines],
            gross,
            refunded,
            disputed,
            lost,
            shipping,
            tax,
            unreported,
            charge_step(currency),
        )
        for line, *parts in zip(lines, *shares, strict=True):
            key = line["item_id"]
            label = line.get("title") or titles.get(key) or f"Book {key}"
            rows.setdefault(key, Row(key, label)).add(order["id"], line["quantity"], *parts)
    reports = []
    for currency in sorted(tables):
        rows = tables[currency]
        if by == "book":
            ordered = sorted(rows.values(), key=lambda row: (-row.net, row.key))
        else:
            ordered = _with_empty_periods(rows, by, since, until)
        reports.append(CurrencyReport(currency, ordered, counts[currency]))
    return SalesReport(by, since, until, reports)


def sales_report(
    ledger,
    *,
    by: str = "day",
    since: datetime | None = None,
    until: datetime | None = None,
    catalog=None,
) -> SalesReport:
    """The sales report of the ledger's fulfilled orders in [since, until)."""
    orders = ledger.iter_fulfilled(_iso(since), _iso(until))
    titles = {book.id: book.title for book in catalog} if catalog is not None else {}
    return build(orders, by=by, since=since, until=until, titles=titles)


def _with_empty_periods(
    rows: dict[str, Row], by: str, since: datetime | None, until: datetime | None
) -> list[Row]:
    """The periods with sales, and the empty ones between them (from ``since`` to ``until``
    when given), so that a chart shows the quiet days too."""
    if not rows:
        return []
    first = _utc(since).date() if since else _start_of(min(rows), by)
    last = (_utc(until) - timedelta(microseconds=1)).date() if until else None
    last = last or _start_of(max(rows), by)
    keys: list[str] = []
    day = first
    while day <= last and len(keys) <= MAX_FILLED:  # one more says the span is too long
        key = period_of(datetime(day.year, day.month, day.day), by)
        if not keys or keys[-1] != key:
            keys.append(key)
        day = _next(day, by)
    if len(keys) > MAX_FILLED or not set(rows) <= set(keys):  # only the periods with sales
        return [rows[key] for key in sorted(rows)]
    return [rows.get(key) or Row(key, key) for key in keys]


def _start_of(key: str, by: str) -> date:
    if by == "day":
        return date.fromisoformat(key)
    if by == "week":
        year, week = key.split("-W")
        return date.fromisocalendar(int(year), int(week), 1)
    return date.fromisoformat(key + "-01")


def _next(day: date, by: str) -> date:
    if by == "day":
        return day + timedelta(days=1)
    if by == "week":
        return day + timedelta(days=7 - day.weekday())
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive one is UTC already, as ``iso`` (the ledger's query) reads it,
    never the local time zone's."""
    return moment.astimezone(timezone.utc) if moment.tzinfo else moment


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    from bookpay.ledger.model import iso

    return iso(moment)
