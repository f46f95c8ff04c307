"""Every object the emulator answers with, held to stripe-python's typed resource classes.

Realistic objects from every flow (succeeded, declined, 3-D Secure, canceled, refunded,
disputed, authorized and captured intents; customers, endpoints; tax calculations for every kind
of place, transactions and reversals; every event type the emulator emits) are fetched through
the real stripe-python client and checked field by field: every required field present, null
only where the annotation is Optional; optional fields (stripe-node's `name?:`) absent unless set,
as Stripe answers; values of the declared type and Literal set, expandable fields an id unless
expanded (stripe_oracle.Checker).
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import stripe
from stripe_oracle import OBJECTS, RESOURCES, Checker, flag, presence

from bookpay.emulator import EmulatorOptions, params, render, start_emulator
from bookpay.emulator.events import EMITTED

RETURN = "https://shop.example/success"


@dataclass
class Collected:
    """Objects to check: (label, object, expanded paths)."""

    items: list[tuple[str, dict[str, Any], tuple[str, ...]]] = field(default_factory=list)

    def add(self, label: str, obj: dict[str, Any], *expanded: str) -> dict[str, Any]:
        self.items.append((label, obj, expanded))
        return obj


class Api:
    """Plain JSON through stripe-python's raw requests (what bookpay's gateway does)."""

    def __init__(self, client: stripe.StripeClient, url: str = "") -> None:
        self.client = client
        self.url = url

    def advance(self, **units: float) -> None:
        """Move the emulator's clock on (its control endpoint), doing what falls due."""
        request = urllib.request.Request(
            f"{self.url}/_emulator/clock",
            data=json.dumps(units).encode(),
            headers={"Authorization": "Bearer sk_test_x", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert answer.status == 200

    def __call__(self, method: str, path: str, **params: Any) -> dict[str, Any]:
        try:
            return json.loads(self.client.raw_request(method, path, **params).body)
        except stripe.StripeError as exc:
            return {"error": exc.json_body["error"] if exc.json_body else str(exc)}

    def wait(self, check: Callable[[], Any], timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            time.sleep(0.02)
        raise AssertionError("condition not reached in time")


@pytest.fixture(scope="module")
def api() -> Iterator[Api]:
    options = EmulatorOptions(retry_schedule=(0.05,), delivery_timeout=1, async_delay=0.05)
    with start_emulator(options=options) as emu:
        client = stripe.StripeClient("sk_test_x", base_addresses={"api": emu.url})
        yield Api(client, emu.url)


def paid(api: Api, card: str, **extra: Any) -> dict[str, Any]:
    """Create and confirm a $25 intent with a test card (as a server with a return_url)."""
    params = {"amount": 2500, "currency": "usd", "confirm": True, "payment_method": card}
    return api("post", "/v1/payment_intents", **params, return_url=RETURN, **extra)


def card_only(api: Api, **extra: Any) -> dict[str, Any]:
    """An intent limited to cards: a server may confirm it without a return_url."""
    types = {"allowed_payment_method_types": ["card"]}
    return api("post", "/v1/payment_intents", amount=1000, currency="usd", **types, **extra)


def settled(api: Api, path: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The object at `path` once the emulator's clock has moved it on."""
    return api.wait(lambda: (lambda obj: obj if done(obj) else None)(api("get", path)))


def first_dispute(api: Api, pi: dict[str, Any]) -> dict[str, Any]:
    return api.wait(lambda: api("get", "/v1/disputes", payment_intent=pi["id"])["data"])[0]


DISPUTE_CARDS = [
    ("pm_card_createDispute", "winning_evidence"),
    ("pm_card_createDisputeProductNotReceived", "losing_evidence"),
    ("pm_card_createDisputeInquiry", "escalate_inquiry_evidence"),
    ("pm_card_createCe3EligibleDispute", None),
    ("pm_card_createComplianceDispute", None),
    ("pm_card_createMastercardComplianceDispute", None),
]
ADDRESS = {"line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH",
           "country": "GB"}  # fmt: skip
CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2040, "cvc": "123"}


def intents(api: Api, got: Collected) -> dict[str, Any]:
    """PaymentIntents in each state, and their charges; returns the paid one."""
    got.add("pi requires_payment_method", api("post", "/v1/payment_intents", amount=1000,
                                              currency="usd"))  # fmt: skip
    ok = got.add("pi succeeded", paid(api, "pm_card_visa"))
    expand = ["latest_charge", "payment_method", "latest_charge.payment_intent"]
    got.add("pi expanded", api("get", f"/v1/payment_intents/{ok['id']}", expand=expand), *expand)
    declined = paid(api, "pm_card_visa_chargeDeclined")["error"]
    got.add("pi declined (402 body)", declined["payment_intent"])
    got.add("pm on a decline (402 body)", declined["payment_method"])
    got.add("charge failed", api("get", f"/v1/charges/{declined['charge']}"))
    redirect = got.add("pi 3-D Secure (redirect)", paid(api, "pm_card_authenticationRequired"))
    assert redirect["next_action"]["type"] == "redirect_to_url"
    pi = card_only(api)
    sdk = api("post", f"/v1/payment_intents/{pi['id']}/confirm",
              payment_method="pm_card_threeDSecure2Required")  # fmt: skip
    assert got.add("pi 3-D Secure (use_stripe_sdk)", sdk)["next_action"]["type"] == "use_stripe_sdk"
    canceled = api("post", "/v1/payment_intents", amount=1000, currency="usd")
    got.add("pi canceled", api("post", f"/v1/payment_intents/{canceled['id']}/cancel",
                               cancellation_reason="abandoned"))  # fmt: skip
    manual = card_only(api, confirmation_method="manual")
    confirm = f"/v1/payment_intents/{manual['id']}/confirm"
    waiting = api("post", confirm, payment_method="pm_card_authenticationRequired")
    got.add("pi manual confirmation", waiting)
    # Manual capture: authorized, captured in part, released.
    auth = got.add("pi requires_capture", paid(api, "pm_card_visa", capture_method="manual"))
    charge = f"/v1/charges/{auth['latest_charge']}"
    got.add("charge uncaptured", api("get", charge))
    got.add("pi captured in part", api("post", f"/v1/payment_intents/{auth['id']}/capture",
                                       amount_to_capture=1500))  # fmt: skip
    got.add("charge captured in part", api("get", charge, expand=["refunds"]), "refunds")
    released = paid(api, "pm_card_visa", capture_method="manual")
    got.add("pi released", api("post", f"/v1/payment_intents/{released['id']}/cancel"))
    expiring = paid(api, "pm_card_visa", capture_method="manual")
    api.advance(days=8)  # past the seven days an authorization holds
    got.add("pi authorization expired", api("get", f"/v1/payment_intents/{expiring['id']}"))
    got.add("charge expired", api("get", f"/v1/charges/{expiring['latest_charge']}"))
    return ok


def refunds(api: Api, got: Collected, ok: dict[str, Any]) -> None:
    """Immediate, pending then succeeded, succeeded then failed."""
    got.add("refund", api("post", "/v1/refunds", payment_intent=ok["id"], amount=500))
    for card in ("pm_card_pendingRefund", "pm_card_refundFail"):
        refund = api("post", "/v1/refunds", payment_intent=paid(api, card)["id"])
        got.add(f"refund ({card})", refund)
        later = settled(api, f"/v1/refunds/{refund['id']}",
                        lambda r, first=refund["status"]: r["status"] != first)  # fmt: skip
        got.add(f"refund later ({card})", later)
    expand = ["refunds", "payment_intent"]
    got.add("charge refunded", api("get", f"/v1/charges/{ok['latest_charge']}", expand=expand),
            *expand)  # fmt: skip


def disputes(api: Api, got: Collected) -> None:
    """A dispute from each dispute card, and their outcomes."""
    for card, outcome in DISPUTE_CARDS:
        pi = paid(api, card)
        dispute = got.add(f"dispute ({card})", first_dispute(api, pi))
        path = f"/v1/disputes/{dispute['id']}"
        if outcome:
            evidence = {"uncategorized_text": outcome, "product_description": "A book"}
            api("post", path, evidence=evidence)
            decided = settled(api, path, lambda d: "review" not in d["status"])
            got.add(f"dispute decided ({outcome})", decided)
        got.add(f"charge disputed ({card})", api("get", f"/v1/charges/{pi['latest_charge']}"))
    inquiry = first_dispute(api, paid(api, "pm_card_createDisputeInquiry"))
    got.add("dispute closed (inquiry)", api("post", f"/v1/disputes/{inquiry['id']}/close"))
    expand = ["charge", "payment_intent"]
    got.add("dispute expanded", api("get", f"/v1/disputes/{inquiry['id']}", expand=expand),
            *expand)  # fmt: skip


def customers_and_methods(api: Api, got: Collected) -> None:
    shipping = {"name": "Ada", "address": {"line1": "1 Road", "country": "GB"}}
    cus = got.add("customer", api("post", "/v1/customers", email="ada@example.com",
                                  name="Ada Lovelace", phone="+44 20 7946 0000",
                                  address=ADDRESS, shipping=shipping))  # fmt: skip
    path = f"/v1/customers/{cus['id']}"
    got.add("customer updated", api("post", path, name="Ada King", metadata={"tier": "gold"}))
    pi = paid(api, "pm_card_visa", customer=cus["id"], setup_future_usage="off_session")
    with_customer = api("get", f"/v1/payment_intents/{pi['id']}", expand=["customer"])
    got.add("pi with customer (expanded)", with_customer, "customer")
    saved = api("get", f"/v1/payment_methods/{pi['payment_method']}", expand=["customer"])
    got.add("pm saved for a customer (expanded)", saved, "customer")
    lists = ["sources", "subscriptions", "tax_ids"]
    got.add("customer with lists", api("get", path, expand=lists), *lists)
    billing = {"name": "Ada", "email": "ada@example.com", "address": {"country": "GB"}}
    got.add("pm from card data", api("post", "/v1/payment_methods", type="card", card=CARD,
                                     billing_details=billing))  # fmt: skip
    got.add("pm from a token", api("get", "/v1/payment_methods/pm_card_mastercard"))
    got.add("customer deleted", api("delete", path))


def endpoints_and_lists(api: Api, got: Collected) -> None:
    we = api("post", "/v1/webhook_endpoints", url="http://127.0.0.1:9/hook",
             enabled_events=["charge.succeeded"])  # fmt: skip
    got.add("endpoint created", we)
    got.add("endpoint", api("get", f"/v1/webhook_endpoints/{we['id']}"))
    got.add("endpoint deleted", api("delete", f"/v1/webhook_endpoints/{we['id']}"))
    for kind in ("payment_intents", "charges", "refunds", "disputes", "customers", "events",
                 "webhook_endpoints"):  # fmt: skip
        got.add(f"list {kind}", api("get", f"/v1/{kind}", limit=5))


US_ADDRESS = {
    "line1": "354 Oyster Point Blvd",
    "city": "South San Francisco",
    "state": "CA",
    "postal_code": "94080",
    "country": "US",
}
BOOK_LINES = [
    {"amount": 2300, "reference": "1", "tax_code": "txcd_35010000"},
    {
        "amount": 5000,
        "quantity": 2,
        "reference": "2",
        "tax_code": "txcd_35010000",
        "metadata": {"title": "Two copies"},
    },
]
DEEP = ["line_items.data.tax_breakdown", "shipping_cost.tax_breakdown"]
SHIPPED = ["line_items", "shipping_cost.tax_breakdown"]


def calculation(api: Api, address: dict[str, Any], **extra: Any) -> dict[str, Any]:
    params = {
        "currency": "usd",
        "line_items": BOOK_LINES,
        "shipping_cost": {"amount": 500},
        "customer_details": {"address": address, "address_source": "shipping"},
    }
    return api("post", "/v1/tax/calculations", **{**params, **extra})


def reverse(api: Api, original: str, reference: str, **params: Any) -> dict[str, Any]:
    return api(
        "post",
        "/v1/tax/transactions/create_reversal",
        original_transaction=original,
        reference=reference,
        **params,
    )


def taxes(api: Api, got: Collected) -> None:
    """Calculations for every kind of place and reason, transactions and reversals."""
    calc = got.add("calculation (CA, shipping exempt)", calculation(api, US_ADDRESS, expand=DEEP))
    got.add("calculation retrieved", api("get", f"/v1/tax/calculations/{calc['id']}"))
    places = {
        "GB zero-rated": {"country": "GB"},
        "OR no sales tax": {"country": "US", "postal_code": "97201"},
        "BR not registered": {"country": "BR"},
    }
    for label, address in places.items():
        got.add(f"calculation ({label})", calculation(api, address, expand=DEEP))
    inclusive = [{**line, "tax_behavior": "inclusive"} for line in BOOK_LINES]
    shipping = {"amount": 490, "tax_behavior": "inclusive"}
    german = calculation(api, {"country": "DE"}, line_items=inclusive, shipping_cost=shipping)
    got.add("calculation (DE, inclusive)", german)
    exempt = {"address": {"country": "FR"}, "taxability_override": "customer_exempt"}
    got.add("calculation (customer exempt)", calculation(api, {}, customer_details=exempt))
    path = f"/v1/tax/calculations/{calc['id']}/line_items"
    got.add("calculation line items", api("get", path, expand=["data.tax_breakdown"]))
    txn = api(
        "post",
        "/v1/tax/transactions/create_from_calculation",
        calculation=calc["id"],
        reference=f"order-{calc['id']}",
        expand=["line_items"],
    )
    got.add("transaction", txn)
    path = f"/v1/tax/transactions/{txn['id']}"
    got.add("transaction retrieved", api("get", path, expand=["shipping_cost.tax_breakdown"]))
    got.add("transaction line items", api("get", f"{path}/line_items"))
    first = txn["line_items"]["data"][0]
    refund = {"original_line_item": first["id"], "reference": "1", "amount": -1000,
              "amount_tax": -50}  # fmt: skip
    by_line = reverse(api, txn["id"], f"refund-1-{txn['id']}", mode="partial",
                      line_items=[refund], expand=["line_items"])  # fmt: skip
    got.add("reversal by line", by_line)
    flat = reverse(api, txn["id"], f"refund-2-{txn['id']}", mode="partial", flat_amount=-1650,
                   expand=SHIPPED)  # fmt: skip
    got.add("reversal by flat amount", flat)
    undone = reverse(api, by_line["id"], f"undo-{by_line['id']}", mode="full")
    got.add("reversal undone", undone)
    whole = reverse(api, txn["id"], f"refund-all-{txn['id']}", mode="full", expand=SHIPPED)
    got.add("reversal in full", whole)


@pytest.fixture(scope="module")
def collected(api: Api) -> Collected:
    """One run of every flow; the tests below check what it produced."""
    got = Collected()
    ok = intents(api, got)
    refunds(api, got, ok)
    disputes(api, got)
    customers_and_methods(api, got)
    endpoints_and_lists(api, got)
    taxes(api, got)
    return got


def all_events(api: Api) -> list[dict[str, Any]]:
    events, params = [], {"limit": 100}
    while True:
        page = api("get", "/v1/events", **params)
        events += page["data"]
        if not page["has_more"]:
            return events
        params["starting_after"] = page["data"][-1]["id"]


def check_list(checker: Checker, label: str, page: dict[str, Any]) -> None:
    assert page["object"] == "list" and isinstance(page["has_more"], bool), label
    assert page["url"].startswith("/v1/"), label
    for i, item in enumerate(page["data"]):
        checker.check(item, where=f"{label}.data[{i}]")


def test_objects_conform(collected: Collected) -> None:
    checker = Checker()
    for label, obj, expanded in collected.items:
        assert "error" not in obj, f"{label}: {obj}"
        if obj.get("object") == "list":
            check_list(checker, label, obj)
        else:
            checker.check(obj, where=label, expanded=expanded)
    assert checker.problems == []


def test_every_emitted_event_type_conforms(api: Api, collected: Collected) -> None:
    checker = Checker()
    events = all_events(api)
    seen = {e["type"] for e in events}
    assert seen == set(EMITTED), (
        f"never produced: {set(EMITTED) - seen}; unlisted: {seen - set(EMITTED)}"
    )
    for event in events:
        checker.check(event, stripe.Event, where=f"event {event['type']}")
        checker.check(event["data"]["object"], where=f"{event['type']}.data.object")
    assert checker.problems == []


def test_every_served_resource_is_produced(collected: Collected) -> None:
    """The flows above reach every resource the emulator serves (events are checked above)."""
    checker = Checker()
    for label, obj, expanded in collected.items:
        if obj.get("object") == "list":
            check_list(checker, label, obj)
        else:
            checker.check(obj, where=label, expanded=expanded)
    assert set(checker.checked) >= set(RESOURCES) - {"event"}


def test_checker_catches_what_it_must() -> None:
    """The oracle is not a rubber stamp: each kind of deviation is reported."""
    good = {"id": "we_1", "object": "webhook_endpoint", "api_version": None, "application": None,
            "created": 1, "description": None, "enabled_events": ["*"], "livemode": False,
            "metadata": {}, "status": "enabled", "url": "https://x"}  # fmt: skip
    for fine in (good, {**good, "secret": "whsec_1"}):  # `secret?:` absent, or set
        checker = Checker()
        checker.check(fine)
        assert checker.problems == []
    for broken, why in (
        ({**good, "url": None}, "null, but the annotation is not Optional"),
        ({k: v for k, v in good.items() if k != "status"}, "required field missing"),
        ({k: v for k, v in good.items() if k != "description"}, "required field missing"),
        ({**good, "secret": None}, "null, but optional: absent unless set"),
        ({**good, "created": "yesterday"}, "does not match the declared type"),
        ({**good, "object": "webhook"}, "no stripe-python class"),
        ({**good, "surprise": 1}, "undeclared fields"),
    ):
        checker = Checker()
        checker.check(broken)
        assert any(why in p for p in checker.problems), (why, checker.problems)
    padded = (
        {"object": "payment_intent", "hooks": None},
        {"object": "payment_intent", "payment_method_options": {"mb_way": None}},
    )
    for broken in padded:
        checker = Checker()
        checker.check(broken)
        assert any("null, but optional" in p for p in checker.problems), (broken, checker.problems)
    either = {"object": "payment_intent", "transfer_data": None}  # `transfer_data?: T | null`
    for strict, found in (
        (False, []),
        (True, ["payment_intent: transfer_data: null, but optional: absent unless set"]),
    ):
        checker = Checker(unset_absent=strict)
        checker.check(either)
        assert [p for p in checker.problems if "transfer_data" in p] == found
    pi_like = {"object": "payment_intent", "customer": {"id": "cus_1", "object": "customer"}}
    checker = Checker()
    checker.check(pi_like)
    assert any("an object, but not expanded" in p for p in checker.problems)
    checker = Checker()
    checker.check({**pi_like, "capture_method": "whenever"})
    assert any("not in the declared values" in p for p in checker.problems)


def by_label(collected: Collected, label: str) -> dict[str, Any]:
    return next(obj for found, obj, _ in collected.items if found == label)


def test_optional_fields_are_absent_unless_set(api: Api, collected: Collected) -> None:
    """Nothing the emulator answers pads an optional field with null, not even one Stripe
    declares `name?: T | null`: it is left out, as Stripe leaves it out."""
    checker = Checker(unset_absent=True)
    for label, obj, expanded in collected.items:
        if obj.get("object") == "list":
            check_list(checker, label, obj)
        else:
            checker.check(obj, where=label, expanded=expanded)
    for event in all_events(api):
        checker.check(event, where=f"event {event['type']}")
    assert checker.problems == []
    pi = by_label(collected, "pi succeeded")
    assert "hooks" not in pi and "transfer_data" not in pi
    # What Stripe answers for a card PaymentIntent: the card's required options, no other type.
    card = {"installments": None, "mandate_options": None, "network": None,
            "request_three_d_secure": "automatic"}  # fmt: skip
    assert pi["payment_method_options"] == {"card": card}
    assert "refunds" not in by_label(collected, "charge failed")
    assert "line_items" not in by_label(collected, "calculation retrieved")


def test_left_out_until_expanded_means_optional() -> None:
    """The fields the emulator leaves out unless expanded are ones Stripe may leave out."""
    for kind, fields in render.INCLUDABLE.items():
        for name in fields:
            assert flag(kind, name).startswith("?"), (kind, name)
    for kind, paths in render.IN_PLACE.items():
        for path in paths:
            assert flag(kind, path).startswith("?"), (kind, path)


def flat(tree: dict[str, Any], prefix: str = "") -> set[str]:
    """The dotted field paths of a generated table's object tree (`name?` keys unmarked)."""
    out = set()
    for key, value in tree.items():
        path = prefix + key.removesuffix("?")
        out.add(path)
        if isinstance(value, dict):
            out |= flat(value, path + ".")
    return out


def test_presence_reference_matches_stripe_python() -> None:
    """tests/reference/stripe-node is for stripe-python's API version and declares exactly the
    fields stripe-python does, object by object (else regenerate it: see its README)."""
    assert presence()["api_version"] == stripe.api_version
    table = params.declared()["objects"]
    assert set(table) == set(OBJECTS) == set(presence()["objects"])
    for kind, tree in table.items():
        assert flat(tree) == set(presence()["objects"][kind]), kind
