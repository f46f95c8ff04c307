"""`bookpay ledger copy`: one ledger's rows into another (SQLite to PostgreSQL and back).

Idempotent: each row is upserted by its primary key, the source's values winning, so running the
copy again (say, after the shop took a few more orders) brings the target up to date and adds
nothing twice; the rows the shop deletes (cart items, an order's lines priced again) go from the
target too. Rows are read in batches by their keys and written in batches, so memory stays
flat. The source is read as it was when the copy began (one read transaction), so a shop taking
orders meanwhile never makes a half copy: what it wrote since is copied by running it again.
Receipt claims (and claims of a paid cart's canceling) are not copied: they belong to
processes of the source's shop. Afterwards
the counts of both sides are compared, table by table.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from bookpay.errors import UsageError
from bookpay.ledger.cancels import CANCEL_COLUMNS
from bookpay.ledger.carts import ITEM_COLUMNS
from bookpay.ledger.disputes import DISPUTE_COLUMNS
from bookpay.ledger.errors import LedgerConflict, too_new
from bookpay.ledger.ledger import EVENT_COLUMNS, Ledger
from bookpay.ledger.lines import LINE_COLUMNS, QUOTE_COLUMNS
from bookpay.ledger.migrations import MIGRATIONS, SCHEMA_VERSION, TABLES
from bookpay.ledger.outbox import RECEIPT_COLUMNS
from bookpay.ledger.queries import ORDER_COLUMNS
from bookpay.ledger.taxrecords import TAX_COLUMNS

FULFILMENT_COLUMNS = ("payment_intent", "order_id", "amount", "currency", "fulfilled_at")
CARTS = ("id", "token_hash", "generation", "created", "updated")
CART_ITEMS = ("cart_id", *ITEM_COLUMNS)
# table -> (columns, primary key, the order rows are read in: insertion order where it matters)
LAYOUT = {
    "orders": (ORDER_COLUMNS, ("id",), ("created", "{seq}")),
    "events": (EVENT_COLUMNS, ("id",), ("received_at", "{seq}")),
    "fulfilments": (FULFILMENT_COLUMNS, ("payment_intent",), ("payment_intent",)),
    "receipts": (RECEIPT_COLUMNS, ("payment_intent",), ("payment_intent",)),
    "order_lines": (LINE_COLUMNS, ("order_id", "position"), ("order_id", "position")),
    "quotes": (QUOTE_COLUMNS, ("payment_intent",), ("payment_intent",)),
    "carts": (CARTS, ("id",), ("id",)),
    "cart_items": (CART_ITEMS, ("cart_id", "item_id"), ("cart_id", "item_id")),
    "tax_records": (TAX_COLUMNS, ("id",), ("id",)),
    "disputes": (DISPUTE_COLUMNS, ("id",), ("id",)),
    "sibling_cancels": (CANCEL_COLUMNS, ("payment_intent",), ("payment_intent",)),
}
BATCH = 1000
# Tables whose rows the shop deletes (a book taken out of a cart, or paid for; a quote priced
# again with other lines): table -> (the column naming a row's parent, the source's parents).
# A copy run again deletes from the target the rows of the source's parents that the source
# no longer has; rows of parents the source does not have are left alone (another ledger's).
PRUNED = {
    "order_lines": ("order_id", (("orders", "id"), ("quotes", "order_id"))),
    "cart_items": ("cart_id", (("carts", "id"),)),
}


@dataclass(frozen=True)
class CopyReport:
    copied: dict[str, int]  # rows read from the source and written, per table
    source: dict[str, int]  # counts after the copy
    target: dict[str, int]

    @property
    def matches(self) -> bool:
        return self.source == self.target


def itself() -> UsageError:
    return UsageError("The target is the ledger itself: name another database with --to.")


def copy_ledger(
    source: Ledger, target: Ledger, *, progress: Callable[[str, int], None] | None = None
) -> CopyReport:
    """Copy ``source`` into ``target``, opened unmigrated (``migrate=False``): it is migrated
    here once it is known to be this ledger's, or empty."""
    if source.kind == target.kind and source.backend.fingerprint() == target.backend.fingerprint():
        raise itself()  # the same database under another name (localhost for 127.0.0.1)
    # The source as it is at this moment, whatever the shop writes meanwhile: never a
    # fulfilment without the order it fulfils, and the counts compared are the ones copied.
    with source.snapshot():
        copied = _copy(source, target, progress)
        counts = source.counts()
    return CopyReport(copied, counts, target.counts())


def _prepare(source: Ledger, target: Ledger) -> None:
    """Refuse a target that is not this ledger's (a newer schema, another shop's orders,
    another application's tables) while it is as it was, then migrate it: another shop's
    older bookpay would refuse its own ledger once migrated."""
    version = target.schema_version
    if version > SCHEMA_VERSION:
        raise too_new(target.where, version)
    if not version:  # no ledger there, so no table of its names: a migration would fail
        taken = _taken_names(target)
        if taken:
            raise LedgerConflict(
                f"The target holds another database's tables ({', '.join(taken)}) and no "
                "ledger: it is another application's, and nothing was copied.",
                hint="Copy into an empty database, or into an earlier copy of this ledger.",
            )
    else:
        foreign = _foreign_row(source, target, version)
        if foreign is not None:
            raise LedgerConflict(
                f"The target holds {foreign}, which this ledger does not have: it is "
                "another ledger's, and nothing was copied.",
                hint="Copy into an empty database, or into an earlier copy of this ledger.",
            )
    target.backend.migrate()


# What the migrations create: tables and indexes share one namespace (SQLite's, and a
# PostgreSQL schema's), so a name another application took makes a migration fail half way.
_CREATED = re.compile(r"CREATE\s+(?:UNIQUE\s+)?(?:TABLE|INDEX)\s+(?!IF\s)(\w+)", re.IGNORECASE)


def _taken_names(target: Ledger) -> list[str]:
    """The names the migrations would create that the target already has (its own tables of
    those names: an application's ``orders``), for a target at schema version 0."""
    names = sorted(
        {
            name.lower()
            for migration in MIGRATIONS
            for statement in migration.statements(target.kind)
            for name in _CREATED.findall(statement)
        }
    )
    marks = ", ".join("?" * len(names))
    if target.kind == "sqlite":  # names in any case: SQLite's are case-insensitive
        sql = f"SELECT name AS n FROM sqlite_master WHERE lower(name) IN ({marks})"
    else:  # relations and types (a table is a type too) in the schema the URL names
        sql = (
            "SELECT relname AS n FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace "
            f"WHERE s.nspname = current_schema() AND relname IN ({marks}) "
            "UNION SELECT typname FROM pg_type t JOIN pg_namespace s ON s.oid = t.typnamespace "
            f"WHERE s.nspname = current_schema() AND typname IN ({marks})"
        )
        names = names * 2
    found = {row["n"] for row in target._read(sql, names)}
    # The tables first, in the order the ledger names them; then any index.
    tables = [table for table in TABLES if any(n.lower() == table for n in found)]
    return tables + sorted(n for n in found if n.lower() not in tables)


def _copy(source: Ledger, target: Ledger, progress) -> dict[str, int]:
    _prepare(source, target)
    copied = {}
    for table in TABLES:
        copied[table] = 0
        for rows in _batches(source, table):
            try:
                _upsert(target, table, rows)
            except LedgerConflict as exc:
                exc.hint = (
                    "The target holds another ledger's rows: copy into an empty database, "
                    "or into an earlier copy of this ledger."
                )
                raise
            copied[table] += len(rows)
            if progress:
                progress(table, copied[table])
        if table in PRUNED:
            _prune(source, target, table)
    return copied


def _prune(source: Ledger, target: Ledger, table: str) -> None:
    """Delete the target's rows of ``table`` that the source deleted (see PRUNED)."""
    columns, key, _ = LAYOUT[table]
    parent, parents = PRUNED[table]
    at = [columns.index(column) for column in key]
    for rows in _batches(target, table):
        keys = {tuple(row[i] for i in at) for row in rows}
        ids = sorted({row[columns.index(parent)] for row in rows})
        marks = ", ".join("?" * len(ids))
        known = {
            row["p"]
            for owner, column in parents
            for row in source._read(
                f"SELECT {column} AS p FROM {owner} WHERE {column} IN ({marks})", ids
            )
        }
        kept = {
            tuple(row[column] for column in key)
            for row in source._read(
                f"SELECT {', '.join(key)} FROM {table} WHERE {parent} IN ({marks})", ids
            )
        }
        gone = [k for k in keys - kept if k[key.index(parent)] in known]
        if gone:
            where = " AND ".join(f"{column} = ?" for column in key)
            with target.transaction() as tx:
                tx.many(f"DELETE FROM {table} WHERE {where}", gone)


# Tables whose rows the source never deletes, each with its one-column key, what one row is
# called, and the schema version that added it: a row of the target the source does not have
# is another ledger's.
OWNED = {
    "orders": ("id", "order", 1),
    "events": ("id", "event", 1),
    "fulfilments": ("payment_intent", "a fulfilment of", 1),
    "receipts": ("payment_intent", "a receipt for", 1),
    "quotes": ("payment_intent", "a quote for", 3),
    "carts": ("id", "cart", 3),
    "tax_records": ("id", "tax record", 4),
    "disputes": ("id", "dispute", 5),
    "sibling_cancels": ("payment_intent", "the canceling beside", 11),
}


def _foreign_row(source: Ledger, target: Ledger, version: int) -> str | None:
    """A row of the target that the source does not have ("order ord_..."), or None: checked
    before anything is written, so a copy never merges two shops' ledgers (a rerun of an
    interrupted copy finds only the source's own rows there)."""
    for table, (key, noun, since) in OWNED.items():
        if version < since:
            continue
        after = ""
        while True:
            ids = [
                row["k"]
                for row in target._read(
                    f"SELECT {key} AS k FROM {table} WHERE {key} > ? ORDER BY {key} LIMIT ?",
                    [after, BATCH],
                )
            ]
            if not ids:
                break
            marks = ", ".join("?" * len(ids))
            known = {
                row["k"]
                for row in source._read(
                    f"SELECT {key} AS k FROM {table} WHERE {key} IN ({marks})", ids
                )
            }
            for found in ids:
                if found not in known:
                    return f"{noun} {found}"
            after = ids[-1]
    return None


def _batches(ledger: Ledger, table: str):
    columns, _, order = LAYOUT[table]
    keys = ", ".join(f"{column} AS k{i}" for i, column in enumerate(order))
    select = f"SELECT {', '.join(columns)}, {keys} FROM {table}"
    order_by = ", ".join(order)
    after: list | None = None
    while True:
        where = ""
        if after is not None:
            where = f" WHERE ({order_by}) > ({', '.join('?' * len(order))})"
        rows = ledger._read(f"{select}{where} ORDER BY {order_by} LIMIT ?", [*(after or []), BATCH])
        if not rows:
            return
        after = [rows[-1][f"k{i}"] for i in range(len(order))]
        yield [[row[column] for column in columns] for row in rows]
        if len(rows) < BATCH:
            return


def _upsert(target: Ledger, table: str, rows: list[list]) -> None:
    columns, key, _ = LAYOUT[table]
    if table in ("receipts", "sibling_cancels"):  # claims belong to the source's processes
        claimed = (columns.index("claimed_by"), columns.index("claimed_until"))
        rows = [[None if i in claimed else v for i, v in enumerate(row)] for row in rows]
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )
    with target.transaction() as tx:
        tx.many(sql, rows)
