"""The ledger's own failures, in bookpay's exception tree."""

from __future__ import annotations

from bookpay.errors import ConfigError


class LedgerMissing(Exception):
    """Opened for reading only where no ledger exists yet (nothing is created)."""


class LedgerUnavailable(ConfigError):
    """The ledger's database cannot be reached (exit 5; HTTP 503, so Stripe retries later)."""

    code = "ledger_unavailable"
