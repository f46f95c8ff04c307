"""Reading orders a page at a time: filters, a cursor, and streams that never load the ledger.

Newest-first pages read the (created, insertion order) index backwards and resume after a cursor
(an order's created time and insertion order), so a page costs the same at any ledger size; each
filter has an index that starts with its column (migration 2).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any

from bookpay.errors import NotFound, UsageError
from bookpay.ledger.lines import QUOTE_COLUMNS
from bookpay.ledger.model import STATUS_RANK, STATUSES, iso

ORDER_COLUMNS = (
    "id",
    "payment_intent",
    "item_id",
    "amount",
    "currency",
    "email",
    "shipping",
    "status",
    "failure_reason",
    "amount_refunded",
    "charge",
    "note",
    "created",
    "updated",
    "fulfilled_at",
    "dispute_status",
    "amount_captured",
    "not_fulfilled_at",
    "fulfilment_refused",
    "paid_at",
)
_ORDERS = ", ".join(ORDER_COLUMNS)


@dataclass(frozen=True)
class OrderFilter:
    """Which orders: all of them by default. ``since`` is inclusive, ``until`` exclusive."""

    status: str | None = None
    email: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def where(self, table: str = "") -> tuple[list[str], list[Any]]:
        """SQL conditions and their parameters; ``table`` ("orders.") names the columns' table
        where a join makes them ambiguous."""
        clauses: list[str] = []
        params: list[Any] = []
        if self.status is not None:
            if self.status not in STATUS_RANK:
                raise UsageError(
                    f"Unknown status {self.status!r}: use one of {', '.join(STATUSES)}."
                )
            clauses.append(f"{table}status = ?")
            params.append(self.status)
        if self.email:
            # Any case of A to Z, other letters as given, on both backends: SQLite's lower()
            # folds only ASCII, PostgreSQL's folds by the database's locale (É and é, or not),
            # unless under the "C" collation ({ascii}). The first test runs down the index.
            clauses.append(
                f"lower({table}email) = lower(?)"
                f" AND lower({table}email{{ascii}}) = lower(?{{ascii}})"
            )
            params.extend([self.email, self.email])
        if self.since is not None:
            clauses.append(f"{table}created >= ?")
            params.append(iso(self.since))
        if self.until is not None:
            clauses.append(f"{table}created < ?")
            params.append(iso(self.until))
        return clauses, params


class OrderQueries:
    """The order-reading methods of ``Ledger`` (which provides ``backend``, ``_read``, ...)."""

    def list_orders(self, status: str | None = None) -> list[dict]:
        """Every order, newest first, optionally only those with ``status``.

        Loads them all: for anything that may be large, use ``page_orders`` or ``iter_orders``.
        """
        return list(self.iter_orders(OrderFilter(status=status), newest_first=True))

    def page_orders(
        self,
        where: OrderFilter | None = None,
        *,
        limit: int = 50,
        starting_after: str | None = None,
    ) -> list[dict]:
        """One page of orders, newest first, after the order ``starting_after`` (id or pi_)."""
        after = self._cursor_of(starting_after) if starting_after else None
        rows = self._page(where or OrderFilter(), limit, after, newest_first=True)
        return [_order(row) for row in rows]

    def iter_orders(
        self,
        where: OrderFilter | None = None,
        *,
        newest_first: bool = False,
        starting_after: str | None = None,
        batch: int = 1000,
    ) -> Iterator[dict]:
        """Every matching order, a batch at a time: memory stays flat however many there are.

        Each batch is its own short query that resumes after the last row seen (by the same
        index a page uses), so no read transaction stays open while the caller writes them out.
        """
        rows = self.iter_order_rows(
            where, newest_first=newest_first, starting_after=starting_after, batch=batch
        )
        for row in rows:
            yield _order(dict(zip(ORDER_COLUMNS, row, strict=True)))

    def iter_order_rows(
        self,
        where: OrderFilter | None = None,
        *,
        newest_first: bool = False,
        starting_after: str | None = None,
        batch: int = 1000,
    ) -> Iterator[tuple]:
        """As ``iter_orders``, as plain tuples in ``ORDER_COLUMNS`` order with ``shipping`` left
        as its stored JSON text: what an export of millions of rows needs, and no more."""
        batches = self.iter_order_batches(
            where, newest_first=newest_first, starting_after=starting_after, batch=batch
        )
        for rows in batches:
            yield from rows

    def iter_order_batches(
        self,
        where: OrderFilter | None = None,
        *,
        newest_first: bool = False,
        starting_after: str | None = None,
        batch: int = 1000,
        quotes: Sequence[str] = (),
        ahead: bool = False,
    ) -> Iterator[list[tuple]]:
        """``iter_order_rows``'s tuples, a list per query, each followed by the named columns of
        the order's quote (None where it has none): read in the same query (a LEFT JOIN on the
        page of orders), so an export makes one query per batch and one Python call per batch
        rather than per row.

        With ``ahead``, on a backend whose database works in a process of its own, the next
        batch is read by a thread while the caller handles this one: the database's work and
        the caller's overlap instead of taking turns. That thread reads outside any unit of work
        the caller's thread has open, so it does not see the unit's uncommitted writes.
        """
        unknown = [name for name in quotes if name not in QUOTE_COLUMNS]
        if unknown:
            raise ValueError(f"quotes have no column {', '.join(unknown)}")
        batches = self._order_batches(where, newest_first, starting_after, batch, quotes)
        if ahead and self.backend.reads_ahead:
            return _read_ahead(batches)
        return batches

    def _order_batches(self, where, newest_first, starting_after, batch, quotes):
        """The batches ``iter_order_batches`` describes, each read when asked for."""
        where = where or OrderFilter()
        after = self._cursor_of(starting_after) if starting_after else None
        created = ORDER_COLUMNS.index("created")
        without_seq = itemgetter(slice(0, -1))  # the cursor's, not the caller's
        while True:
            rows = self._page(
                where, batch, after, newest_first=newest_first, tuples=True, quotes=quotes
            )
            if rows:
                yield list(map(without_seq, rows))
            if len(rows) < batch:
                return
            after = (rows[-1][created], rows[-1][-1])

    def _cursor_of(self, order_or_pi: str) -> tuple[str, int]:
        column = "payment_intent" if order_or_pi.startswith("pi_") else "id"
        rows = self._read(
            f"SELECT created, {{seq}} AS seq FROM orders WHERE {column} = ?", (order_or_pi,)
        )
        if not rows:
            raise NotFound(
                f"No order {order_or_pi!r} to start after, in the ledger at {self.where}.",
                code="unknown_order",
            )
        return rows[0]["created"], rows[0]["seq"]

    def _page(
        self,
        where: OrderFilter,
        limit: int,
        after: tuple[str, int] | None,
        *,
        newest_first: bool,
        tuples: bool = False,
        quotes: Sequence[str] = (),
    ) -> list:
        # With quotes, the orders' columns are named with their table (quotes has a created
        # too): the page still runs down the orders' own index, each row joined to its quote
        # (quotes.payment_intent is their primary key: at most one per order).
        table = "orders." if quotes else ""
        clauses, params = where.where(table)
        if after is not None:
            clauses.append(
                f"({table}created, {table}{{seq}}) {'<' if newest_first else '>'} (?, ?)"
            )
            params.extend(after)
        direction = "DESC" if newest_first else "ASC"
        columns = ", ".join(
            [
                *(table + name for name in ORDER_COLUMNS),
                *(f"q.{name}" for name in quotes),
                *([f"{table}{{seq}} AS seq"] if tuples else []),
            ]
        )
        joined = " LEFT JOIN quotes AS q ON q.payment_intent = orders.payment_intent"
        sql = (
            f"SELECT {columns} FROM orders"
            + (joined if quotes else "")
            + (" WHERE " + " AND ".join(clauses) if clauses else "")
            + f" ORDER BY {table}created {direction}, {table}{{seq}} {direction} LIMIT ?"
        )
        if tuples:
            with self.backend.read() as tx:
                return tx.tuples(sql, [*params, limit])
        return self._read(sql, [*params, limit])

    def count_orders(self, where: OrderFilter | None = None) -> int:
        clauses, params = (where or OrderFilter()).where()
        sql = "SELECT COUNT(*) FROM orders" + (" WHERE " + " AND ".join(clauses) if clauses else "")
        return self._scalar(sql, params)


def _read_ahead(batches: Iterator[list]) -> Iterator[list]:
    """``batches``, each next one read by a thread while the caller has the one before.

    One read at a time, in order; an error reading reaches the caller where it asks for that
    batch. A caller that stops early waits for the one read under way, no more.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="bookpay-read-ahead") as pool:
        pending = pool.submit(next, batches, None)
        while (batch := pending.result()) is not None:
            pending = pool.submit(next, batches, None)
            yield batch


def _order(row: dict | None) -> dict | None:
    if row is None:
        return None
    order = dict(row)
    order["shipping"] = json.loads(order["shipping"]) if order["shipping"] else None
    return order
