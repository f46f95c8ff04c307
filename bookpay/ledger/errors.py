"""The ledger's own failures, in bookpay's exception tree."""

from __future__ import annotations

from bookpay.errors import BookpayError, ConfigError


class LedgerMissing(Exception):
    """Opened for reading only where no ledger exists yet (nothing is created)."""


class LedgerUnavailable(ConfigError):
    """The ledger's database cannot be reached (exit 5; HTTP 503, so Stripe retries later)."""

    code = "ledger_unavailable"


class LedgerContention(LedgerUnavailable):
    """PostgreSQL ended a transaction that met another one's locks in the opposite order (a
    deadlock) or, at a stricter isolation level, another's writes (a serialization failure):
    nothing of it was written, and running it again is the cure. Outside a unit, the ledger
    runs such a transaction again itself (``Units.retried``); what is left of it is a 503, so
    a shopper or Stripe tries again, but not "Cannot reach the ledger": it was reached."""

    code = "ledger_contention"


class LedgerTooNew(ConfigError):
    """A ledger whose schema a newer bookpay wrote: refused before anything is written to it
    (exit 5; HTTP 503), never "migrated" down."""

    code = "ledger_too_new"


def too_new(where: str, version: int) -> LedgerTooNew:
    return LedgerTooNew(
        f"The orders ledger {where} was written by a newer bookpay (schema {version}); this "
        "one reads schemas up to its own and changed nothing.",
        hint="Upgrade bookpay to use it.",
    )


class LedgerConflict(BookpayError):
    """A write broke a unique or foreign-key constraint that bookpay's own writes never break:
    rows from another ledger (``bookpay ledger copy`` into the wrong database)."""

    code = "ledger_conflict"


def reason_of(exc: BaseException) -> str:
    """What went wrong, for a one-line message: an OSError's own words ("Input/output error"),
    else the exception's text on one line, without a full stop of its own."""
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return " ".join(str(text).split()).rstrip(".") or type(exc).__name__


def unavailable(where: str, doing: str, exc: BaseException) -> LedgerUnavailable:
    """The ledger at ``where`` failed while bookpay was using it ("read" or "write"): a disk
    I/O error, a damaged file, a lock held too long."""
    return LedgerUnavailable(f"Cannot {doing} the orders ledger {where}: {reason_of(exc)}.")
