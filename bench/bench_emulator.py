"""The emulator's throughput through stripe-python, next to the floor of the same server.

The floor is a trivial JSON endpoint served by waitress with the emulator's own settings, called
through the same stripe-python client (``raw_request``), so the ratio isolates the emulator's
work: form decoding, validation, SQLite, events. Sequential and with 4 concurrent clients, in one
run. Target: PaymentIntent create reaches at least 60% of the floor's requests per second.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import stripe
from waitress import create_server

from bookpay.emulator import EmulatorOptions, start_emulator

REQUESTS = 400  # per scenario and concurrency level, split across the clients
CREATE = {
    "amount": 2300,
    "currency": "usd",
    "automatic_payment_methods": {"enabled": True},
    "metadata": {"item_id": "1", "integration": "bookpay"},
}


def floor_app(environ, start_response):
    body = json.dumps({"object": "ping", "livemode": False}).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


class Floor:
    """The trivial endpoint on waitress, configured as the emulator's server is."""

    def __init__(self, threads: int) -> None:
        self.server = create_server(
            floor_app,
            host="127.0.0.1",
            port=0,
            threads=threads,
            ident="floor",
            asyncore_use_poll=True,
        )
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.close()


def client_for(url: str) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_bench", base_addresses={"api": url}, max_network_retries=0)


def measure(url: str, operation: Callable[[stripe.StripeClient], int], clients: int) -> float:
    """Requests per second for REQUESTS requests spread over ``clients`` threads."""
    per_client = REQUESTS // clients
    barrier = threading.Barrier(clients + 1)
    counts = [0] * clients

    def work(index: int) -> None:
        client = client_for(url)
        operation(client)  # warm the connection pool outside the timed part
        barrier.wait()
        done = 0
        while done < per_client:
            done += operation(client)
        counts[index] = done

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - started)


def ping(client: stripe.StripeClient) -> int:
    client.raw_request("get", "/v1/ping")
    return 1


def create(client: stripe.StripeClient) -> int:
    client.v1.payment_intents.create(params=CREATE)
    return 1


def create_and_confirm(client: stripe.StripeClient) -> int:
    intent = client.v1.payment_intents.create(params=CREATE)
    client.v1.payment_intents.confirm(intent.id, {"payment_method": "pm_card_visa"})
    return 2


def main() -> dict:
    options = EmulatorOptions()
    floor = Floor(options.threads)
    emulator = start_emulator("127.0.0.1", 0, options)
    results: dict[str, dict[str, float]] = {}
    try:
        for clients in (1, 4):
            row = {
                "floor": measure(floor.url, ping, clients),
                "create": measure(emulator.url, create, clients),
                "create+confirm": measure(emulator.url, create_and_confirm, clients),
            }
            results[f"{clients} client{'s' if clients > 1 else ''}"] = row
    finally:
        emulator.stop()
        floor.stop()
    header = ("floor req/s", "create req/s", "create+confirm req/s", "create/floor")
    print(f"{'':<12}{header[0]:>12}{header[1]:>14}{header[2]:>22}{header[3]:>14}")
    for label, row in results.items():
        ratio = row["create"] / row["floor"]
        row["create_over_floor"] = ratio
        print(
            f"{label:<12}{row['floor']:>12.0f}{row['create']:>14.0f}{row['create+confirm']:>22.0f}"
            f"{ratio:>13.0%}"
        )
    print("target: create at least 60% of the floor")
    return {label: {k: round(v, 3) for k, v in row.items()} for label, row in results.items()}


if __name__ == "__main__":
    main()
