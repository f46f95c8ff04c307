"""The emulator's throughput through stripe-python, next to a trivial server's (the floor).

The floor is a trivial JSON endpoint (a fixed three-field object for any path) served by waitress
with the emulator's thread count and called with exactly the same stripe-python calls, so the
ratio shows what the emulator costs beyond answering at all: form decoding, validation, SQLite,
events, its fuller answers (and its own HTTP server, which since issue 15 is not waitress). It is
measured for the calls bookpay's gateway makes (stripe-python's raw requests, read as the dicts
stripe-python decodes them into) and for stripe-python's typed services, whose StripeObjects cost
the client more for a full PaymentIntent than for the floor's few fields. Both servers run in
processes of their own, as the emulator does for real, so the client's work is not counted
against the server's; the CPU each side spends per request is measured too. Sequential and with
4 concurrent clients, in one run. Targets: PaymentIntent create reaches at least 60% of the
floor's requests per second, and `list(limit=10)` (the gateway's way) at least 75%. The same
calls against localstripe, and with many stored intents: bench_localstripe.py.
"""

from __future__ import annotations

import os
import statistics
import sys
from collections.abc import Callable

import stripe

from bench.common import Service, free_port, stripe_client, throughput
from bookpay.emulator import EmulatorOptions

# Per scenario, round and concurrency level, split across the clients (BENCH_EMULATOR_REQUESTS).
REQUESTS = int(os.environ.get("BENCH_EMULATOR_REQUESTS") or 200)
# The scenarios alternate round by round; each figure is the median of its rounds (BENCH_ROUNDS).
ROUNDS = int(os.environ.get("BENCH_ROUNDS") or 5)
# Stripe requires a return_url to confirm an intent with automatic payment methods on a server.
CONFIRM = {"payment_method": "pm_card_visa", "return_url": "http://127.0.0.1:4242/success"}
CREATE = {
    "amount": 2300,
    "currency": "usd",
    "automatic_payment_methods": {"enabled": True},
    "metadata": {"item_id": "1", "integration": "bookpay"},
}


FLOOR_SERVER = """
import json, sys
from waitress import serve

BODY = json.dumps({"id": "pi_floor", "object": "payment_intent", "livemode": False}).encode()


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(BODY)))])
    return [BODY]


serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=int(sys.argv[2]),
      asyncore_use_poll=True, _quiet=True)
"""


def measure(
    service: Service, operation: Callable[[stripe.StripeClient], int], clients: int
) -> tuple[float, float, float]:
    """For REQUESTS requests spread over ``clients`` threads: requests per second, and the CPU
    milliseconds per request of the server and of the clients."""
    return throughput(service.url, operation, clients, REQUESTS, pid=service.process.pid)


def typed_create(client: stripe.StripeClient) -> int:
    client.v1.payment_intents.create(params=CREATE)
    return 1


def typed_create_and_confirm(client: stripe.StripeClient) -> int:
    intent = client.v1.payment_intents.create(params=CREATE)
    client.v1.payment_intents.confirm(intent.id, CONFIRM)
    return 2


def raw_create(client: stripe.StripeClient) -> int:
    client.raw_request("post", "/v1/payment_intents", **CREATE)
    return 1


def raw_create_and_confirm(client: stripe.StripeClient) -> int:
    intent = client.raw_request("post", "/v1/payment_intents", **CREATE).data
    confirm = f"/v1/payment_intents/{intent['id']}/confirm"
    client.raw_request("post", confirm, **CONFIRM)
    return 2


def raw_list(client: stripe.StripeClient) -> int:
    """A page of ten, as `bookpay intent list --limit 10` asks for it."""
    client.raw_request("get", "/v1/payment_intents", limit=10)
    return 1


# Two ways of calling through stripe-python: the way bookpay's gateway does (raw requests
# answered as JSON dicts) and stripe-python's typed services (which build StripeObjects).
STYLES = {
    "bookpay's gateway calls": (raw_create, raw_create_and_confirm),
    "stripe-python typed services": (typed_create, typed_create_and_confirm),
}


def main() -> dict:
    threads = EmulatorOptions().threads
    port = free_port()
    floor = Service([sys.executable, "-c", FLOOR_SERVER, str(port), str(threads)], port)
    port = free_port()
    emulator = Service(
        [sys.executable, "-m", "bookpay", "emulator", "--ephemeral", "--port", str(port)], port
    )
    results: dict[str, dict[str, float]] = {}
    try:
        seeder = stripe_client(emulator.url)
        for _ in range(20):  # a list of ten has a full page to show from the first round
            raw_create(seeder)
        for style, (create, create_and_confirm) in STYLES.items():
            scenarios = {
                "floor create": (floor, create),
                "create": (emulator, create),
                "floor create+confirm": (floor, create_and_confirm),
                "create+confirm": (emulator, create_and_confirm),
            }
            if create is raw_create:
                scenarios["floor list"] = (floor, raw_list)
                scenarios["list"] = (emulator, raw_list)
            for clients in (1, 4):
                # Round-robin, so a burst of load from elsewhere on this shared machine hits
                # every scenario alike instead of whichever happened to be running.
                samples: dict[str, list[tuple[float, float, float]]] = {n: [] for n in scenarios}
                for _ in range(ROUNDS):
                    for name, (service, operation) in scenarios.items():
                        samples[name].append(measure(service, operation, clients))
                row = {}
                for name, taken in samples.items():
                    rates, server_ms, client_ms = zip(*taken, strict=True)
                    row[name] = statistics.median(rates)
                    row[f"{name} cpu ms"] = statistics.median(server_ms)
                    row[f"{name} client cpu ms"] = statistics.median(client_ms)
                results[f"{style}, {clients} client{'s' if clients > 1 else ''}"] = row
    finally:
        emulator.stop()
        floor.stop()
    names = ["floor create", "create", "floor create+confirm", "create+confirm"]
    print(f"{'requests per second':<41}" + "".join(f"{n:>21}" for n in names) + "  create/floor")
    for label, row in results.items():
        ratio = row["create"] / row["floor create"]
        cells = "".join(f"{row[n]:>21.0f}" for n in names)
        print(f"{label:<41}{cells}{ratio:>14.0%}")
        row["create_over_floor"] = ratio
        row["create_confirm_over_floor"] = row["create+confirm"] / row["floor create+confirm"]
    print(
        f"\n{'list(limit=10), requests per second':<41}{'floor':>10}{'emulator':>10}  list/floor"
        "   CPU ms/request: server (floor/emulator), clients (floor/emulator)"
    )
    for label, row in results.items():
        if "list" in row:
            row["list_over_floor"] = row["list"] / row["floor list"]
            print(
                f"{label:<41}{row['floor list']:>10.0f}{row['list']:>10.0f}"
                f"{row['list_over_floor']:>12.0%}{row['floor list cpu ms']:>20.2f} /"
                f"{row['list cpu ms']:>5.2f}{row['floor list client cpu ms']:>18.2f} /"
                f"{row['list client cpu ms']:>5.2f}"
            )
    print(
        f"medians of {ROUNDS} alternating rounds; targets: create at least 60% of the floor,"
        " list(limit=10) at least 75%"
    )
    return {label: {k: round(v, 3) for k, v in row.items()} for label, row in results.items()}


if __name__ == "__main__":
    main()
