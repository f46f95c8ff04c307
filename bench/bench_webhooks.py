"""Webhook ingestion and replay throughput, over HTTP into the real checkout server.

Setup: the emulator runs in its own process (Stripe is a remote service; in this process it would
share the GIL with the server), and 400 PaymentIntents are created and confirmed in it through
the gateway (pm_card_visa). Each is turned into a signed ``payment_intent.succeeded`` event.
The checkout server (create_app on waitress) receives them: each event is verified, recorded,
its PaymentIntent retrieved (the receiver never trusts the event's copy), the order fulfilled and
the event marked processed; the receipt worker writes the .eml files meanwhile.

Figures:

1. ingestion, bookpay alone: 8 concurrent keep-alive senders (in a process of their own, using
   the replay engine); the gateway is a fake that returns
   the succeeded intents captured from the emulator, so the figure is bookpay's own cost
   (HTTP, signature, ledger, fulfilment), which is what the target is about;
2. ingestion, end to end: the same with the real gateway, one stripe-python retrieval from the
   emulator per event (on a 2-core machine the emulator process competes for the same cores);
3. replay: `bookpay webhook replay` as a subprocess (the real CLI, start-up included) sending
   1,000 events (the captured ones again, each under a fresh id so each is handled in full) into
   the end-to-end server, with --concurrency 8.

Targets on a 2-core machine: >= 200 events/s ingested; 1,000 replayed within 10 s.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import emulator_process

INTENTS = 400
REPLAYED = 1000
SENDERS = 8
SECRET = "whsec_bench_secret"
INGEST_TARGET = 200.0  # events per second
REPLAY_TARGET = 10.0  # seconds for REPLAYED events


class CapturedGateway:
    """Answers retrieve_intent with intents captured from the emulator beforehand."""

    def __init__(self, intents: list[dict]) -> None:
        self.intents = {intent["id"]: intent for intent in intents}

    def retrieve_intent(self, intent_id, *, expand=("latest_charge",)):
        return copy.deepcopy(self.intents[intent_id])


class Shop:
    """The checkout server on a free port over its own ledger."""

    def __init__(self, settings, gateway) -> None:
        from bookpay.catalog import Catalog
        from bookpay.orders import Fulfiller, Ledger
        from bookpay.server import create_app
        from bookpay.web import runner
        from bookpay.webhooks import WebhookReceiver

        self.settings = settings
        self.ledger = Ledger.open(settings.data_dir)
        self.fulfiller = Fulfiller(self.ledger, gateway, Catalog.default(), settings)
        receiver = WebhookReceiver(settings, self.ledger, self.fulfiller)
        self.server = runner.start(
            lambda url: create_app(
                settings,
                gateway=gateway,
                ledger=self.ledger,
                fulfiller=self.fulfiller,
                receiver=receiver,
                public_url=url,
            ),
            background=True,
        )
        self.url = self.server.url + "/webhook"

    def receipts(self) -> int:
        self.fulfiller.drain(30)
        return len(list((self.settings.data_dir / "outbox").glob("*.eml")))

    def close(self) -> None:
        self.server.stop()
        self.fulfiller.close()
        self.ledger.close()


def _event(intent: dict, number: int) -> bytes:
    event = {
        "id": f"evt_bench{number:06d}",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()),
        "data": {"object": intent},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": "payment_intent.succeeded",
    }
    return json.dumps(event, indent=2).encode()


# The senders run in a process of their own, as Stripe does: in the server's process they would
# take the GIL from the very server being measured.
SENDER = """
import json, sys, time
from bookpay.replay import Delivery, Replayer
url, secret, path, senders = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
bodies = open(path, "rb").read().splitlines()
deliveries = [
    Delivery(n, json.loads(body)["id"], "payment_intent.succeeded", body, "bench")
    for n, body in enumerate(bodies)
]
started = time.perf_counter()
results = Replayer(url, secret, concurrency=senders).run(deliveries)
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "failed": sum(not r.ok for r in results)}))
"""


def _ingest(shop: Shop, bodies: list[bytes], folder: Path) -> float:
    """Events per second for one signed delivery of each body, SENDERS at a time."""
    path = folder / f"ingest-{id(shop)}.jsonl"
    path.write_bytes(b"\n".join(json.dumps(json.loads(body)).encode() for body in bodies))
    command = [sys.executable, "-c", SENDER, shop.url, SECRET, str(path), str(SENDERS)]
    done = subprocess.run(command, capture_output=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ingestion senders failed: {done.stderr.decode()[-500:]}")
    report = json.loads(done.stdout)
    fulfilled = shop.ledger.fulfilment_count()
    if report["failed"] or fulfilled != len(bodies):
        raise RuntimeError(f"ingestion: {report['failed']} failed, {fulfilled} fulfilled")
    return len(bodies) / report["seconds"]


def _replay(shop: Shop, bodies: list[bytes], folder: Path) -> float:
    """Seconds for `bookpay webhook replay` to deliver REPLAYED events."""
    capture = folder / "captured.jsonl"
    lines = [json.dumps(json.loads(body)).encode() for body in bodies]
    capture.write_bytes(b"\n".join((lines * (REPLAYED // len(lines) + 1))[:REPLAYED]))
    command = [
        sys.executable, "-m", "bookpay", "webhook", "replay", str(capture), "--to", shop.url,
        "--secret", SECRET, "--new-event-id", "--concurrency", str(SENDERS), "--json",
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, timeout=120, check=False)
    seconds = time.perf_counter() - started
    replayed = json.loads(done.stdout) if done.stdout else []
    if done.returncode != 0 or len(replayed) != REPLAYED:
        raise RuntimeError(f"replay exited {done.returncode}: {done.stderr.decode()[-500:]}")
    if shop.ledger.fulfilment_count() != len(bodies):
        raise RuntimeError("the replay fulfilled an order twice")
    return seconds


def main() -> dict:
    from bookpay.catalog import Catalog
    from bookpay.config import Settings
    from bookpay.payments import Gateway

    shops: list[Shop] = []
    try:
        with emulator_process() as (_, emulator_url), tempfile.TemporaryDirectory() as name:
            folder = Path(name)

            def settings(sub: str) -> Settings:
                return Settings(
                    data_dir=folder / sub,
                    emulator_url=emulator_url,
                    webhook_secrets=(SECRET,),
                    shop_id="shop_bench",  # one shop: its intents are created by "setup"
                )

            gateway = Gateway(settings("setup"))
            books = list(Catalog.default())

            def paid(number: int) -> dict:
                intent = gateway.create_intent(books[number % len(books)])
                gateway.confirm_intent(intent["id"], payment_method="pm_card_visa")
                return gateway.retrieve_intent(intent["id"])

            with ThreadPoolExecutor(SENDERS) as pool:
                intents = list(pool.map(paid, range(INTENTS)))
            bodies = [_event(intent, n) for n, intent in enumerate(intents)]

            alone = Shop(settings("alone"), CapturedGateway(intents))
            shops.append(alone)
            alone_rate = _ingest(alone, bodies, folder)
            alone_receipts = alone.receipts()

            end_to_end = Shop(settings("e2e"), Gateway(settings("e2e")))
            shops.append(end_to_end)
            e2e_rate = _ingest(end_to_end, bodies, folder)
            replay_seconds = _replay(end_to_end, bodies, folder)
            e2e_receipts = end_to_end.receipts()
            for shop in shops:
                shop.close()
            shops.clear()
    finally:
        for shop in shops:
            shop.close()

    figures = {
        "ingest_events": INTENTS,
        "ingest_senders": SENDERS,
        "ingest_events_per_second": round(alone_rate, 1),
        "ingest_target_met": alone_rate >= INGEST_TARGET,
        "ingest_end_to_end_events_per_second": round(e2e_rate, 1),
        "replay_events": REPLAYED,
        "replay_seconds": round(replay_seconds, 3),
        "replay_target_met": replay_seconds <= REPLAY_TARGET,
        "receipts": [alone_receipts, e2e_receipts],
    }
    print("bench_webhooks: signed payment_intent.succeeded events over HTTP into the server")
    print(
        f"  ingestion (bookpay alone, captured intents): {alone_rate:.0f} events/s "
        f"({INTENTS} events, {SENDERS} senders; target >= {INGEST_TARGET:.0f})"
    )
    print(f"  ingestion (end to end, retrieved from the emulator process): {e2e_rate:.0f} events/s")
    print(
        f"  replay: `bookpay webhook replay` of {REPLAYED} events, --concurrency {SENDERS}: "
        f"{replay_seconds:.2f}s ({REPLAYED / replay_seconds:.0f} events/s; "
        f"target <= {REPLAY_TARGET:.0f}s)"
    )
    print(f"  receipts: {alone_receipts} and {e2e_receipts} .eml files for {INTENTS} orders each")
    return figures


if __name__ == "__main__":
    main()
