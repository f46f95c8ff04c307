"""Refresh docs/screenshots/sales.svg and the report shown in the README.

Builds a demo ledger (three weeks of a small shop's sales, seeded, with refunds and a dispute,
each order shipped by the cheapest US rate and taxed at a flat 7.25% on its books, as California
would) in a temporary folder, then runs
`bookpay report sales --by day --chart docs/screenshots/sales.svg` and prints the per-book table
for the README.

Usage: .venv/bin/python scripts/report_chart.py
"""

from __future__ import annotations

import dataclasses
import random
import sys
import tempfile
from pathlib import Path

from typer.testing import CliRunner

from bookpay.catalog import Catalog
from bookpay.cli import app
from bookpay.config import Settings
from bookpay.ledger import open_ledger
from bookpay.quote import quote_items

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "docs" / "screenshots" / "sales.svg"


def demo_ledger(data_dir: Path) -> None:
    rng = random.Random(13)
    catalog = Catalog.default()
    books = [book.id for book in catalog]
    with open_ledger(Settings(data_dir=data_dir)) as ledger:
        n = 0
        for day in range(1, 22):
            for _ in range(rng.randint(1, 6) + (4 if day % 7 in (5, 6) else 0)):
                n += 1
                chosen = rng.sample(books, rng.randint(1, 3))
                quote = quote_items(catalog, [(b, rng.choice((1, 1, 1, 2, 3))) for b in chosen])
                quote = shipped_and_taxed(catalog, quote)
                order_id, pi = f"ord_{n:016x}", f"pi_demo{n:08d}"
                ledger.record_quote(pi, order_id, quote)
                intent = {"id": pi, "status": "succeeded", "amount": quote.total,
                          "currency": "usd", "metadata": {"order_id": order_id}}  # fmt: skip
                ledger.record_fulfilment(intent, lambda order: (None, "Receipt", ""))
                roll = rng.random()
                if roll < 0.08:
                    ledger.record_intent(intent, status="refunded", amount_refunded=quote.total)
                elif roll < 0.15:
                    part = quote.lines[0].unit_amount
                    ledger.record_intent(intent, status="partially_refunded", amount_refunded=part)
                elif roll < 0.17:
                    ledger.record_intent(intent, status="disputed")
                stamp = (
                    f"2026-03-{day:02d}T{rng.randint(8, 21):02d}:{rng.randint(0, 59):02d}:00.000Z"
                )
                with ledger.transaction() as tx:
                    tx.execute("UPDATE orders SET fulfilled_at = ? WHERE id = ?", (stamp, order_id))


def shipped_and_taxed(catalog, quote):
    """The demo's shipping (the cheapest US rate) and tax (7.25% of each line, half up)."""
    option = catalog.shipping_options("US", quote.subtotal, quote.currency)[0]
    tax = sum((line.line_amount * 725 + 5000) // 10000 for line in quote.lines)
    return dataclasses.replace(quote, shipping=option.amount, shipping_rate=option.rate.id, tax=tax)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        demo_ledger(Path(folder))
        env = {"BOOKPAY_DATA_DIR": folder, "COLUMNS": "100"}
        runner = CliRunner()
        result = runner.invoke(
            app, ["report", "sales", "--by", "day", "--chart", str(CHART)], env=env
        )
        if result.exit_code:
            sys.exit(result.output)
        print(runner.invoke(app, ["report", "sales", "--by", "book"], env=env).stdout)
        print(runner.invoke(app, ["report", "sales", "--by", "week"], env=env).stdout)
