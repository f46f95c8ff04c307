"""The orders ledger: SQLite by default, PostgreSQL for several processes.

- ``model``: statuses (forward only) and what the ledger keeps of a PaymentIntent;
- ``location``: ``BOOKPAY_DATABASE_URL`` (or the data folder) to a database, passwords masked;
- ``migrations``: the versioned schema, with each backend's SQL where they differ;
- ``ledger``: the one interface (``Ledger``, ``open_ledger``) and its exactly-once writes;
- ``queries``: orders a page at a time, filtered, or streamed;
- ``outbox``: the receipts queued by fulfilment, and how senders claim them;
- ``lines``: quotes (with their address, version and tax calculation) and order lines;
- ``taxrecords``: the Stripe Tax transactions and reversals owed, until Stripe has them;
- ``sqlite`` / ``postgres``: connections and transactions for each database (psycopg is
  imported only for a PostgreSQL URL);
- ``process``: who holds a receipt claim, and whether it still runs;
- ``copy`` / ``check``: ``bookpay ledger copy`` and ``bookpay ledger check``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# Loaded on first use: `bookpay catalog list` reads settings, which only need ``location``.
_EXPORTS = {
    "LedgerMissing": "errors",
    "LedgerUnavailable": "errors",
    "Ledger": "ledger",
    "OrderFilter": "queries",
    "ReceiptClaims": "outbox",
    "open_ledger": "ledger",
    "DB_NAME": "location",
    "Location": "location",
    "locate": "location",
    "mask_url": "location",
    "SCHEMA_VERSION": "migrations",
    "INTEGRATION": "model",
    "RECEIPT_STATUSES": "model",
    "STATUSES": "model",
    "STATUS_RANK": "model",
    "advance": "model",
    "failure_reason": "model",
    "intent_fields": "model",
    "now_iso": "model",
    "status_of_intent": "model",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"bookpay.ledger.{_EXPORTS[name]}"), name)
