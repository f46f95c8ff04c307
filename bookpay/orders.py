"""Where the ledger and fulfilment used to live; kept so ``from bookpay.orders import ...`` works.

The ledger is now the package ``bookpay.ledger`` (SQLite or PostgreSQL) and fulfilment the module
``bookpay.fulfilment``. New code imports from those.
"""

from bookpay.fulfilment import Fulfiller, FulfilmentResult, ownership_problem, price_problem
from bookpay.ledger import (
    DB_NAME,
    INTEGRATION,
    STATUS_RANK,
    STATUSES,
    Ledger,
    advance,
    failure_reason,
    intent_fields,
    now_iso,
    open_ledger,
    status_of_intent,
)

__all__ = [
    "DB_NAME",
    "INTEGRATION",
    "STATUSES",
    "STATUS_RANK",
    "Fulfiller",
    "FulfilmentResult",
    "Ledger",
    "advance",
    "failure_reason",
    "intent_fields",
    "now_iso",
    "open_ledger",
    "ownership_problem",
    "price_problem",
    "status_of_intent",
]
