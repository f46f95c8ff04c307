"""Stripe's ids and bookpay's order ids as they are written: a prefix, an underscore, then letters
and digits (no further underscores). What cannot be one is refused before anything is sent to
Stripe: by the CLI as a usage error, by the shop as a 404.

Patterns, not compiled ones: ``re`` compiles (and caches) them on first use, so what takes no id
(`bookpay catalog list`) does not pay for them at start-up.
"""

from __future__ import annotations

import re

_ID = r"[A-Za-z0-9]{1,250}"
INTENT_ID = rf"pi_{_ID}"
ORDER_ID = rf"ord_{_ID}"


def is_intent_id(value: object) -> bool:
    """Whether ``value`` can be a PaymentIntent's id (a 70,000-character one is not: Stripe
    answers it 414, which a gateway would count as Stripe failing)."""
    return isinstance(value, str) and re.fullmatch(INTENT_ID, value) is not None
