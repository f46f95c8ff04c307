"""The store's queries: lookups by field, pages by cursor, conditions taken literally."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bookpay.emulator.store import Store, any_of, created_is, field_is, field_starts


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store(None)
    try:
        yield s
    finally:
        s.close()


def thing(n: int, **fields: object) -> dict[str, object]:
    return {"id": f"th_{n}", "object": "thing", "created": 100 + n, **fields}


def test_find_by_column_and_by_json(store: Store) -> None:
    for n in range(4):
        store.save(thing(n, charge=f"ch_{n % 2}", payment_intent=None, type=f"k{n}"))
    store.save({"id": "other_1", "object": "other", "created": 1, "charge": "ch_0"})
    assert [o["id"] for o in store.find("thing", "charge", "ch_0")] == ["th_2", "th_0"]
    assert [o["id"] for o in store.find("thing", "charge", "ch_0", limit=1)] == ["th_2"]
    assert [o["id"] for o in store.find("thing", "type", "k3")] == ["th_3"]
    assert store.find("thing", "payment_intent", "pi_x") == []
    # Saving again moves the reference, and keeps the object's place.
    store.save(thing(0, charge="ch_1"))
    assert [o["id"] for o in store.find("thing", "charge", "ch_1")] == ["th_3", "th_1", "th_0"]


def test_non_string_values_match_nothing(store: Store) -> None:
    store.save(thing(1, charge="ch_1"))
    assert store.select("thing", [field_is("charge", ["ch_1"])]) == []


def test_prefixes_are_literal(store: Store) -> None:
    store.save(thing(1, type="a_b.c"))
    store.save(thing(2, type="aXb.c"))
    store.save(thing(3, type="a%b.c"))
    assert [o["id"] for o in store.select("thing", [field_starts("type", "a_b.")])] == ["th_1"]
    assert [o["id"] for o in store.select("thing", [field_starts("type", "a%")])] == ["th_3"]
    either = any_of([field_is("type", "aXb.c"), field_starts("type", "a_")])
    assert [o["id"] for o in store.select("thing", [either])] == ["th_2", "th_1"]
    assert store.select("thing", [any_of([])]) == []


def test_pages(store: Store) -> None:
    for n in range(6):
        store.save(thing(n, charge="ch_even" if n % 2 == 0 else "ch_odd"))
    evens = [field_is("charge", "ch_even")]
    assert store.seq_of("th_1", "thing", evens) is None
    assert store.seq_of("th_1", "other") is None
    items, more = store.page("thing", evens, 2)
    assert [o["id"] for o in items] == ["th_4", "th_2"] and more is True
    items, more = store.page("thing", evens, 2, after=store.seq_of("th_2", "thing", evens))
    assert [o["id"] for o in items] == ["th_0"] and more is False
    items, more = store.page("thing", evens, 1, before=store.seq_of("th_0", "thing", evens))
    assert [o["id"] for o in items] == ["th_2"] and more is True
    items, more = store.page("thing", [created_is(">=", 103)], 10)
    assert [o["id"] for o in items] == ["th_5", "th_4", "th_3"] and more is False
    with pytest.raises(ValueError):
        created_is("!=", 1)


def test_an_attempt_ending_after_its_endpoint_was_deleted_owes_nothing_more(store: Store) -> None:
    """An event owed to two endpoints: one is deleted while its attempt is under way. The
    deletion took it off what the event is owed; the attempt, ending after, must not take the
    other endpoint's off too, nor make the deleted one's pending again."""
    store.save({"id": "evt_1", "object": "event", "created": 1, "pending_webhooks": 2})
    store.add_delivery("evt_1", "we_slow")
    store.add_delivery("evt_1", "we_other")
    in_flight = next(r for r in store.pending_deliveries() if r["endpoint_id"] == "we_slow")
    store.abandon_deliveries("we_slow")  # the endpoint deleted mid-attempt
    assert store.get("evt_1", "event")["pending_webhooks"] == 1
    store.finish_attempt(in_flight, "http://127.0.0.1:9/hook", 200, None, "succeeded", 0.0)
    assert store.get("evt_1", "event")["pending_webhooks"] == 1
    store.finish_attempt(in_flight, "http://127.0.0.1:9/hook", 500, "HTTP 500", "pending", 9.0)
    assert [r["endpoint_id"] for r in store.pending_deliveries()] == ["we_other"]
    assert store.get("evt_1", "event")["pending_webhooks"] == 1
    assert len(store.attempts("evt_1")) == 2  # the attempts were made: they are listed
