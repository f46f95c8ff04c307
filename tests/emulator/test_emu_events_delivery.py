"""`GET /v1/events?delivery_success=...`: the events Stripe lists as delivered, or not.

Stripe: "Set to false to retrieve events that were unsuccessfully delivered to at least one of
your webhook endpoints". An event sent to no endpoint is in neither list.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import stripe

from bookpay.emulator import EmulatorOptions, start_emulator

DEAD = "http://127.0.0.1:9/closed"  # nothing listens on the discard port: every attempt fails


def listed(client: stripe.StripeClient, **params: Any) -> set[str]:
    return {e.id for e in client.v1.events.list(params={"limit": 100, **params}).data}


def newest(client: stripe.StripeClient, kind: str) -> str:
    return client.v1.events.list(params={"type": kind, "limit": 1}).data[0].id


def settled(client: stripe.StripeClient, event_id: str) -> None:
    deadline = time.monotonic() + 5
    while client.v1.events.retrieve(event_id).pending_webhooks:
        assert time.monotonic() < deadline, f"{event_id} still pending"
        time.sleep(0.02)


def test_delivery_success_lists_pending_and_failed_apart_from_delivered(receiver: Any) -> None:
    # One retry an hour later: the clock is advanced past it to fail a delivery for good.
    options = EmulatorOptions(retry_schedule=(3600,), delivery_timeout=1, async_delay=0.05)
    with start_emulator(options=options) as emu:
        client = stripe.StripeClient("sk_test_x", base_addresses={"api": emu.url})
        ok = {"url": receiver.url, "enabled_events": ["customer.updated"]}
        client.v1.webhook_endpoints.create(params=ok)
        a = client.v1.customers.create(params={})  # customer.created: sent to no endpoint
        unsent = newest(client, "customer.created")
        client.v1.customers.update(a.id, params={"name": "A"})
        delivered = newest(client, "customer.updated")
        settled(client, delivered)

        dead = {"url": DEAD, "enabled_events": ["customer.updated", "customer.deleted"]}
        client.v1.webhook_endpoints.create(params=dead)
        client.v1.customers.delete(a.id)
        failed = newest(client, "customer.deleted")
        deadline = time.monotonic() + 5
        while not emu.app.delivery_attempts(failed):
            assert time.monotonic() < deadline, "no first attempt"
            time.sleep(0.02)
        emu.app.clock.advance(3601)  # its one retry fails too: failed for good
        settled(client, failed)

        b = client.v1.customers.create(params={})
        client.v1.customers.update(b.id, params={"name": "B"})  # delivered to one, not the other
        mixed = newest(client, "customer.updated")
        receiver.wait_for(2)
        client.v1.customers.delete(b.id)
        pending = newest(client, "customer.deleted")
        assert client.v1.events.retrieve(pending).pending_webhooks == 1

        assert listed(client, delivery_success=False) == {failed, mixed, pending}
        assert listed(client, delivery_success=True) == {delivered}
        assert unsent in listed(client)  # listed without the filter
        assert listed(client, delivery_success=False, type="customer.updated") == {mixed}
        assert listed(client, delivery_success=False, types=["customer.deleted"]) == {
            failed,
            pending,
        }
        page = client.v1.events.list(params={"delivery_success": False, "limit": 2})
        assert page.has_more and len(page.data) == 2  # pages as any list does
        rest = client.v1.events.list(
            params={"delivery_success": False, "starting_after": page.data[-1].id}
        )
        assert {e.id for e in [*page.data, *rest.data]} == {failed, mixed, pending}


def test_delivery_success_of_a_deleted_endpoints_events_is_false(receiver: Any) -> None:
    """A delivery abandoned because its endpoint was deleted was not a success."""
    options = EmulatorOptions(retry_schedule=(3600,), delivery_timeout=1, async_delay=0.05)
    with start_emulator(options=options) as emu:
        client = stripe.StripeClient("sk_test_x", base_addresses={"api": emu.url})
        we = client.v1.webhook_endpoints.create(
            params={"url": DEAD, "enabled_events": ["customer.created"]}
        )
        client.v1.customers.create(params={})
        abandoned = newest(client, "customer.created")
        client.v1.webhook_endpoints.delete(we.id)
        assert listed(client, delivery_success=False) == {abandoned}
        assert listed(client, delivery_success=True) == set()


@pytest.mark.parametrize("value", ["maybe", "1", ""])
def test_delivery_success_must_be_a_boolean(call: Any, value: str) -> None:
    answer = call("GET", "/v1/events", {"delivery_success": value})
    assert answer.status == 400
    error = answer.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "delivery_success")
    assert error["message"] == f"Invalid boolean: {value}"
