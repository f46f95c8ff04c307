"""Reading orders a page at a time: filters, a cursor, and streams that never load the ledger.

Newest-first pages read the (created, insertion order) index backwards and resume after a cursor
(an order's created time and insertion order), so a page costs the same at any ledger size; each
filter has an index that starts with its column (migration 2).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bookpay.errors import NotFound, UsageError
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
)
_ORDERS = ", ".join(ORDER_COLUMNS)


@dataclass(frozen=True)
class OrderFilter:
    """Which orders: all of them by default. ``since`` is inclusive, ``until`` exclusive."""

    status: str | None = None
    email: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def where(self) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if self.status is not None:
            if self.status not in STATUS_RANK:
                raise UsageError(
                    f"Unknown status {self.status!r}: use one of {', '.join(STATUSES)}."
                )
            clauses.append("status = ?")
            params.append(self.status)
        if self.email:
            clauses.append("lower(email) = lower(?)")
            params.append(self.email)
        if self.since is not None:
            clauses.append("created >= ?")
            params.append(iso(self.since))
        if self.until is not None:
            clauses.append("created < ?")
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
        where = where or OrderFilter()
        after = self._cursor_of(starting_after) if starting_after else None
        created = ORDER_COLUMNS.index("created")
        while True:
            rows = self._page(where, batch, after, newest_first=newest_first, tuples=True)
            for row in rows:
                yield row[:-1]  # without the seq the cursor needs
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
    ) -> list:
        clauses, params = where.where()
        if after is not None:
            clauses.append(f"(created, {{seq}}) {'<' if newest_first else '>'} (?, ?)")
            params.extend(after)
        direction = "DESC" if newest_first else "ASC"
        columns = _ORDERS + (", {seq} AS seq" if tuples else "")
        sql = (
            f"SELECT {columns} FROM orders"
            + (" WHERE " + " AND ".join(clauses) if clauses else "")
            + f" ORDER BY created {direction}, {{seq}} {direction} LIMIT ?"
        )
        if tuples:
            with self.backend.read() as tx:
                return tx.tuples(sql, [*params, limit])
        return self._read(sql, [*params, limit])

    def count_orders(self, where: OrderFilter | None = None) -> int:
        clauses, params = (where or OrderFilter()).where()
        sql = "SELECT COUNT(*) FROM orders" + (" WHERE " + " AND ".join(clauses) if clauses else "")
        return self._scalar(sql, params)


def _order(row: dict | None) -> dict | None:
    if row is None:
        return None
    order = dict(row)
    order["shipping"] = json.loads(order["shipping"]) if order["shipping"] else None
    return order
