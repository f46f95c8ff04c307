"""A ledger of orders whose every text field is something an export must handle with care.

Formula starts (= + - @ tab CR) at the front and in the middle of cells, quotes, commas, line
breaks, control characters, non-ASCII text, empty strings and NULLs, negative amounts, shipping
JSON of unusual shapes (no address, a null one, numbers, booleans, nesting, leading
whitespace), and quotes (the priced kind) on about half the orders, some of them hostile too.
Rows are written in bulk, as ``bench_ledger`` does, so a test can make thousands quickly.
"""

from __future__ import annotations

import json

TEXTS = (
    "plain",
    "=cmd|'/C calc'!A0",
    "+1",
    "-2",
    "@SUM(A1)",
    "\tTAB",
    "\rCR",
    "a,=b",
    'say "hi"',
    '"=quoted"',
    "two\nlines",
    "\n=after newline",
    "café ünïcode ✓",
    "\x1b[31mred",
    "'already quoted",
    " =leading space",
    "",
    None,
)
SHIPPINGS = (
    None,
    "",
    json.dumps({"name": "Jenny Rosen", "address": {"line1": "1 Main St", "country": "US"}}),
    json.dumps({"name": '=HYPERLINK("http://evil")', "address": None}),
    json.dumps({"name": "-x", "address": {"line1": "@home", "line2": "\tb", "city": "+c"}}),
    json.dumps({"name": 123, "address": {"postal_code": 94110, "state": True, "city": 1.5}}),
    json.dumps({"name": None, "address": {"line1": {"nested": 1}, "line2": ["a", "b"]}}),
    json.dumps({"address": {"country": "FR", "extra": "ignored"}}),
    json.dumps({"name": "ünï ✓", "address": {"city": "São Paulo"}}, ensure_ascii=False),
    json.dumps({"name": "ünï \u2028", "address": {"city": "\r\n"}}),
    '  {"name": "padded", "address": {"city": "Oslo"}}  ',
    json.dumps({}),
)
ORDER_SQL = """INSERT INTO orders (id, payment_intent, item_id, amount, currency, email, shipping,
status, failure_reason, amount_refunded, charge, note, created, updated, fulfilled_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
QUOTE_SQL = """INSERT INTO quotes (payment_intent, order_id, attempt_id, cart_id, currency,
subtotal, shipping, tax, total, shipping_rate, created, updated, settled_at, address,
tax_calculation, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""


def order_id(n: int) -> str:
    return f"ord_{0xF << 60 | n:016x}"  # apart from bench_ledger's ids, to mix the two


def _text(n: int, salt: int) -> str | None:
    return TEXTS[(n * 7 + salt) % len(TEXTS)]


def order_row(n: int) -> tuple:
    # Some creation times repeat, so the export's cursor must break ties by insertion order.
    stamp = f"2026-{1 + n % 12:02d}-{1 + n % 28:02d}T{n % 24:02d}:00:00.{n % 7:03d}Z"
    status = ("paid", "pending", "refunded", "processing", "failed")[n % 5]
    return (
        order_id(n),
        f"pi_hostile{n:08d}",
        _text(n, 1) if n % 9 == 0 else str(1 + n % 3),
        (2300, -5, 0, None)[n % 4],
        "usd" if n % 13 else None,
        _text(n, 2),
        SHIPPINGS[n % len(SHIPPINGS)],
        status,
        _text(n, 3) if status == "failed" else None,
        (0, 100, -1)[n % 3],
        _text(n, 4) if n % 2 else None,
        _text(n, 5),
        stamp,
        stamp,
        stamp if status == "paid" else None,
    )


def quote_row(n: int) -> tuple:
    stamp = f"2026-01-01T00:00:{n % 60:02d}.000Z"
    return (
        f"pi_hostile{n:08d}",
        order_id(n),
        f"att_{n}",
        None,
        "usd",
        2300 + n,
        (500, 0, -1)[n % 3],
        n % 200,
        2800 + n,
        _text(n, 6),
        stamp,
        stamp,
        None,
        SHIPPINGS[(n + 3) % len(SHIPPINGS)] or None,
        _text(n, 7),
        n % 4,
    )


def fill_hostile(ledger, count: int) -> None:
    """``count`` hostile orders, with a quote for every other one."""
    with ledger.transaction() as tx:
        tx.many(ORDER_SQL, [order_row(n) for n in range(count)])
        tx.many(QUOTE_SQL, [quote_row(n) for n in range(0, count, 2)])


def plain_row(n: int, email: str | None, shipping: dict | None, note: str | None = None) -> tuple:
    """An order as the shop makes them, dated after every hostile one (2027)."""
    stamp = f"2027-01-01T00:00:{n:02d}.000Z"
    return (
        f"ord_plain{n:04d}",
        f"pi_plain{n:04d}",
        "1",
        2300 if n % 3 else None,
        "usd",
        email,
        json.dumps(shipping, ensure_ascii=n % 2 == 0) if shipping is not None else None,
        "paid" if n % 2 else "pending",
        None,
        0,
        f"ch_plain{n:04d}",
        note,
        stamp,
        stamp,
        stamp if n % 2 else None,
    )


ADDRESS = {"line1": "1 Main St", "line2": None, "city": "San Francisco", "state": "CA",
           "postal_code": "94110", "country": "US"}  # fmt: skip
# Four orders that need neither quoting nor neutralising, then four whose cells need quoting
# (a comma, a quote, a line break) but start no formula.
PLAIN_ORDERS = (
    plain_row(0, "jenny@example.com", {"name": "Jenny Rosen", "address": ADDRESS}),
    plain_row(1, "zoë@example.com", {"name": "Zoë Ünïcode ✓", "address": {"city": "Zürich"}}),
    plain_row(2, None, None),
    plain_row(3, "a-b@example.com", {"name": None, "address": None}, note="x=y"),
    plain_row(4, "c@example.com", {"name": "Rosen, Jenny", "address": ADDRESS}),
    plain_row(5, "d@example.com", {"name": 'Jenny "JR" Rosen', "address": {"line2": "Apt 4"}}),
    plain_row(6, "e@example.com", {"name": "J", "address": {"line1": "1 Main St\nBack door"}}),
    plain_row(7, "f@example.com", {"name": "K", "address": ADDRESS}, note="done, thanks"),
)


def fill_plain(ledger) -> None:
    with ledger.transaction() as tx:
        tx.many(ORDER_SQL, list(PLAIN_ORDERS))
