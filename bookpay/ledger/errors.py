"""The ledger's own failures, in bookpay's exception tree."""

from __future__ import annotations

from bookpay.errors import BookpayError, ConfigError


class LedgerMissing(Exception):
    """Opened for reading only where no ledger exists yet (nothing is created)."""


class LedgerUnavailable(ConfigError):
    """The ledger's database cannot be reached (exit 5; HTTP 503, so Stripe retries later)."""

    code = "ledger_unavailable"


class LedgerConflict(BookpayError):
    """A write broke a unique or foreign-key constraint that bookpay's own writes never break:
    rows from another ledger (``bookpay ledger copy`` into the wrong database)."""

    code = "ledger_conflict"
