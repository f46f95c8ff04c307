"""Refund updates, cancellation and asynchronous outcomes; Customers. Through stripe-python."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import stripe

Client = stripe.StripeClient


def types_for(client: Client, object_id: str) -> list[str]:
    found = client.v1.events.list(params={"limit": 100}).data
    return [e.type for e in reversed(found) if e.data.object.to_dict().get("id") == object_id]


def pay(client: Client, card: str) -> stripe.PaymentIntent:
    return client.v1.payment_intents.create(
        params={"amount": 2000, "currency": "usd", "confirm": True, "payment_method": card,
                "return_url": "https://shop.example/r"}
    )  # fmt: skip


# --- 8. refunds -----------------------------------------------------------------------------


def test_update_refund_metadata(client: Client, paid_intent: Callable[..., Any]) -> None:
    refund = client.v1.refunds.create(
        params={"payment_intent": paid_intent(client).id, "metadata": {"ticket": "1"}}
    )
    updated = client.v1.refunds.update(refund.id, params={"metadata": {"ticket": "", "by": "ada"}})
    assert updated.metadata.to_dict() == {"by": "ada"}
    assert client.v1.refunds.retrieve(refund.id).metadata.to_dict() == {"by": "ada"}
    assert types_for(client, refund.id) == [
        "refund.created", "refund.updated", "charge.refund.updated",
    ]  # fmt: skip
    events = client.v1.events.list(params={"type": "charge.refund.updated"}).data
    # Only the metadata keys that changed: the one removed with its old value, the one added as
    # null (not the whole old hash).
    previous = events[0].data.previous_attributes.to_dict()
    assert previous == {"metadata": {"ticket": "1", "by": None}}
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.update(refund.id, params={"amount": 5})
    assert caught.value.code == "parameter_unknown"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.update("re_missing", params={"metadata": {"a": "b"}})
    assert caught.value.http_status == 404


def test_a_refund_update_that_changes_nothing_sends_no_event(
    client: Client, paid_intent: Callable[..., Any]
) -> None:
    """As for a customer: an update that leaves the refund as it was is no change, so no
    `refund.updated` or `charge.refund.updated` (and a change's previous_attributes name only
    what it changed)."""
    refund = client.v1.refunds.create(
        params={"payment_intent": paid_intent(client).id, "metadata": {"ticket": "1"}}
    )
    client.v1.refunds.update(refund.id, params={"metadata": {"ticket": "1"}})
    client.v1.refunds.update(refund.id, params={"metadata": {"absent": ""}})
    assert types_for(client, refund.id) == ["refund.created"]


def test_charge_refunded_names_only_what_changed(
    client: Client, paid_intent: Callable[..., Any]
) -> None:
    """A partial refund leaves the charge not refunded: `charge.refunded`'s previous_attributes
    hold its `amount_refunded` alone; the refund of the rest changes `refunded` too."""
    pi = paid_intent(client)

    def previous() -> dict[str, Any]:
        found = client.v1.events.list(params={"type": "charge.refunded", "limit": 100}).data
        event = next(e for e in found if e.data.object.id == pi.latest_charge)
        return event.data.previous_attributes.to_dict()

    client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 300})
    assert previous() == {"amount_refunded": 0}
    client.v1.refunds.create(params={"payment_intent": pi.id})
    assert previous() == {"amount_refunded": 300, "refunded": False}


def test_a_partial_capture_releases_the_rest_naming_only_what_changed(client: Client) -> None:
    """The uncaptured rest of a partial capture is refunded: `charge.refunded` names the
    `amount_refunded` it changed, and not `refunded`, which stays false."""
    pi = client.v1.payment_intents.create(
        params={"amount": 2000, "currency": "usd", "confirm": True, "capture_method": "manual",
                "payment_method": "pm_card_visa", "return_url": "https://shop.example/r"}
    )  # fmt: skip
    client.v1.payment_intents.capture(pi.id, params={"amount_to_capture": 1500})
    found = client.v1.events.list(params={"type": "charge.refunded", "limit": 100}).data
    event = next(e for e in found if e.data.object.id == pi.latest_charge)
    assert event.data.object.refunded is False
    assert event.data.previous_attributes.to_dict() == {"amount_refunded": 0}


def test_card_refunds_cannot_be_canceled(client: Client, paid_intent: Callable[..., Any]) -> None:
    refund = client.v1.refunds.create(params={"payment_intent": paid_intent(client).id})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.cancel(refund.id)
    assert caught.value.http_status == 400
    assert "status of succeeded" in caught.value.user_message
    assert "requires_action" in caught.value.user_message
    assert client.v1.refunds.retrieve(refund.id).status == "succeeded"


def test_refund_failure_card(client: Client, eventually: Callable[..., Any]) -> None:
    for card in ("pm_card_refundFail", "4000000000005126"):
        if card.isdigit():
            pi = client.v1.payment_intents.create(
                params={"amount": 2000, "currency": "usd", "confirm": True,
                        "return_url": "https://shop.example/r",
                        "payment_method_data": {"type": "card", "card": {
                            "number": card, "exp_month": 12, "exp_year": 2040, "cvc": "123"}}}
            )  # fmt: skip
        else:
            pi = pay(client, card)
        refund = client.v1.refunds.create(params={"payment_intent": pi.id})
        assert refund.status == "succeeded"  # at first
        charge = client.v1.charges.retrieve(pi.latest_charge)
        # The failure comes 2 s later: on a loaded machine it may already have. Still succeeded
        # when read after the charge, it was when the charge was read, which shows it refunded.
        if client.v1.refunds.retrieve(refund.id).status == "succeeded":
            assert (charge.amount_refunded, charge.refunded) == (2000, True)
        failed = eventually(
            lambda r=refund: (x := client.v1.refunds.retrieve(r.id)).status == "failed" and x
        )
        assert failed.failure_reason == "expired_or_canceled_card"
        assert failed.failure_balance_transaction.startswith("txn_")
        charge = client.v1.charges.retrieve(pi.latest_charge)
        assert (charge.amount_refunded, charge.refunded) == (0, False)  # the money is owed again
        eventually(lambda r=refund: len(types_for(client, r.id)) >= 4)
        kinds = types_for(client, refund.id)
        assert kinds == [
            "refund.created",
            "refund.failed",
            "refund.updated",
            "charge.refund.updated",
        ]
        again = client.v1.refunds.create(params={"payment_intent": pi.id})
        assert again.amount == 2000


def test_pending_refund_card(client: Client, eventually: Callable[..., Any]) -> None:
    pi = pay(client, "pm_card_pendingRefund")
    refund = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 500})
    assert (refund.status, refund.pending_reason) == ("pending", "processing")
    done = eventually(
        lambda: (x := client.v1.refunds.retrieve(refund.id)).status == "succeeded" and x
    )
    assert "pending_reason" not in done  # optional: absent once there is no reason
    assert types_for(client, refund.id)[-2:] == ["refund.updated", "charge.refund.updated"]


def test_ordinary_refunds_do_not_change(
    client: Client, paid_intent: Callable[..., Any], eventually: Callable[..., Any]
) -> None:
    refund = client.v1.refunds.create(params={"payment_intent": paid_intent(client).id})
    failing = client.v1.refunds.create(
        params={"payment_intent": pay(client, "pm_card_refundFail").id}
    )
    eventually(lambda: client.v1.refunds.retrieve(failing.id).status == "failed")
    assert client.v1.refunds.retrieve(refund.id).status == "succeeded"
    assert types_for(client, refund.id) == ["refund.created"]


# --- 9. customers ---------------------------------------------------------------------------

ADDRESS = {"line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH",
           "country": "GB"}  # fmt: skip


def test_customer_crud(client: Client) -> None:
    cus = client.v1.customers.create(
        params={"email": "ada@example.com", "name": "Ada Lovelace", "address": ADDRESS,
                "metadata": {"tier": "gold"}}
    )  # fmt: skip
    assert cus.id.startswith("cus_") and cus.email == "ada@example.com"
    assert cus.address.to_dict() == {**ADDRESS, "line2": None, "state": None}
    assert client.v1.customers.retrieve(cus.id).name == "Ada Lovelace"
    updated = client.v1.customers.update(
        cus.id, params={"name": "Ada King", "address": "", "phone": "+44 20 7946 0000"}
    )
    assert (updated.name, updated.phone) == ("Ada King", "+44 20 7946 0000")
    assert "address" not in updated  # unset: an optional field is absent, not null
    assert types_for(client, cus.id) == ["customer.created", "customer.updated"]
    event = client.v1.events.list(params={"type": "customer.updated"}).data[0]
    assert event.data.previous_attributes.name == "Ada Lovelace"
    listed = client.v1.customers.list(params={"email": "ada@example.com"}).data
    assert cus.id in [c.id for c in listed]
    assert all(c.email == "ada@example.com" for c in listed)
    deleted = client.v1.customers.delete(cus.id)
    assert (deleted.id, deleted.deleted) == (cus.id, True)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.customers.update(cus.id, params={"name": "Ada"})
    assert caught.value.user_message == f"No such customer: '{cus.id}'"


def test_a_metadata_change_names_only_the_keys_it_changed(client: Client) -> None:
    """`customer.updated`'s previous_attributes hold, of a hash that is still a hash, only its
    keys that changed (as Stripe's, e.g. `{"metadata": {"tier": null}}` for a key added): a key
    changed or removed with its old value, a key added as null, one left alone not at all; a
    hash unset whole is there whole."""
    cus = client.v1.customers.create(
        params={"address": ADDRESS, "metadata": {"tier": "gold", "since": "2020", "ref": "7"}}
    )

    def update(params: dict[str, Any]) -> dict[str, Any]:
        client.v1.customers.update(cus.id, params=params)
        found = client.v1.events.list(params={"type": "customer.updated", "limit": 100}).data
        event = next(e for e in found if e.data.object.id == cus.id)
        return event.data.previous_attributes.to_dict()

    changed = update({"metadata": {"tier": "platinum", "since": "", "team": "blue"}})
    assert changed == {"metadata": {"tier": "gold", "since": "2020", "team": None}}
    moved = update({"address": {**ADDRESS, "city": "Bath", "postal_code": "BA1 1LT"}})
    assert moved == {"address": {"city": "London", "postal_code": "SW1Y 4JH"}}
    unset = update({"metadata": ""})
    assert unset == {"metadata": {"tier": "platinum", "ref": "7", "team": "blue"}}


def test_a_deleted_customer_is_retrieved_as_deleted(client: Client, call: Any) -> None:
    """Stripe's Retrieve a customer: "If it's for a deleted Customer, a subset of the customer's
    information is returned, including a deleted property that's set to true" (stripe-python's
    DeletedCustomer: id, object, deleted). It is no longer listed, nor taken as a reference; a
    PaymentIntent that had it expands it as deleted."""
    cus = client.v1.customers.create(params={"email": "gone@example.com"})
    pi = client.v1.payment_intents.create(
        params={"amount": 1000, "currency": "usd", "customer": cus.id}
    )
    client.v1.customers.delete(cus.id)
    gone = call("GET", f"/v1/customers/{cus.id}")
    assert gone.status == 200, gone.body
    assert gone.json() == {"id": cus.id, "object": "customer", "deleted": True}
    assert client.v1.customers.retrieve(cus.id).deleted is True
    listed = client.v1.customers.list(params={"email": "gone@example.com"}).data
    assert cus.id not in [c.id for c in listed]
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.create(
            params={"amount": 1000, "currency": "usd", "customer": cus.id}
        )
    assert caught.value.user_message == f"No such customer: '{cus.id}'"
    expanded = client.v1.payment_intents.retrieve(pi.id, params={"expand": ["customer"]})
    assert expanded.customer.to_dict() == {"id": cus.id, "object": "customer", "deleted": True}
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.customers.delete(cus.id)
    assert caught.value.http_status == 404


def test_a_deleted_customer_expands_nothing(client: Client) -> None:
    """A deleted customer retrieved with expand[] is still only its stub (Stripe's
    deleted_customer holds id, object and deleted, nothing else): no `tax_ids` or other list
    beside it, and a path a customer takes is no error though the stub has nothing there. A path
    no customer takes is refused as on a live one."""
    cus = client.v1.customers.create(params={"email": "gone@example.com"})
    pi = client.v1.payment_intents.create(
        params={"amount": 1000, "currency": "usd", "customer": cus.id}
    )
    client.v1.customers.delete(cus.id)
    stub = {"id": cus.id, "object": "customer", "deleted": True}
    paths = ["tax_ids", "sources", "subscriptions", "default_source", "test_clock",
             "invoice_settings.default_payment_method", "tax_ids.data.customer"]  # fmt: skip
    for path in paths:
        got = client.v1.customers.retrieve(cus.id, params={"expand": [path]})
        assert got.to_dict() == stub, path
        expanded = client.v1.payment_intents.retrieve(
            pi.id, params={"expand": [f"customer.{path}"]}
        )
        assert expanded.customer.to_dict() == stub, path
    # Through a kind the emulator does not hold (a card): as when one is there, unsupported.
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.customers.retrieve(cus.id, params={"expand": ["default_source.customer"]})
    assert caught.value.code == "parameter_unsupported"
    for path in ("invoice_settings", "tax_ids.data", "no_such"):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.customers.retrieve(cus.id, params={"expand": [path]})
        assert caught.value.user_message == f"This property cannot be expanded ({path}).", path


def test_customer_validation(client: Client) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.customers.create(params={"email": "not an address"})
    assert (caught.value.code, caught.value.param) == ("email_invalid", "email")
    # A control character anywhere (an escape sequence, a NUL, a C1 control): the emulator
    # took these, and a receipt's To header could not carry them.
    for email in ("reader\x1b[31m@example.com", "reader@exa\x00mple.com", "r\x85@example.com"):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.customers.create(params={"email": email})
        assert caught.value.code == "email_invalid", email
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.payment_intents.create(
                params={"amount": 1000, "currency": "usd", "receipt_email": email}
            )
        assert caught.value.code == "email_invalid", email
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.customers.create(params={"shipping": {"address": ADDRESS}})
    assert caught.value.param == "shipping[name]"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.customers.create(params={"tax_exempt": "exempt"})
    assert caught.value.code == "parameter_unsupported"


def test_customer_on_a_payment_intent(client: Client) -> None:
    cus = client.v1.customers.create(params={"email": "reader@example.com"})
    pi = client.v1.payment_intents.create(
        params={"amount": 1000, "currency": "usd", "customer": cus.id}
    )
    assert pi.customer == cus.id
    expanded = client.v1.payment_intents.retrieve(pi.id, params={"expand": ["customer"]})
    assert expanded.customer.email == "reader@example.com"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.create(
            params={"amount": 1000, "currency": "usd", "customer": "cus_doesnotexist"}
        )
    assert (caught.value.code, caught.value.param) == ("resource_missing", "customer")


@pytest.mark.parametrize(
    ("currency", "amount", "refunded"),
    [
        ("kwd", 5120, "0.010 KWD"),
        ("jpy", 1500, "¥10"),
        ("aud", 1500, "A$0.10"),  # not "$0.10", which is USD's
        ("usd", 1500, "$0.10"),
    ],
)
def test_the_receipt_page_says_the_currency_of_what_was_refunded(
    client: stripe.StripeClient, paid_intent: Any, call: Any, currency, amount, refunded
) -> None:
    """0.010 alone could be any currency's; the refunded amount is written as the charge's."""
    pi = paid_intent(client, amount=amount, currency=currency)
    client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 10})
    page = call("GET", f"/receipts/{pi.latest_charge}").body.decode()
    assert f"<p>Refunded: {refunded}</p>" in page
