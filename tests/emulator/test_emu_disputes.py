"""Disputes from Stripe's dispute test cards, through stripe-python: opening, evidence, outcomes.

The emulator's clock runs "some time later" every 0.05 s here (conftest), so each step is waited
for, never slept on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import stripe

Client = stripe.StripeClient

# Card, token, reason, case type, initial status (docs.stripe.com/testing#disputes).
CARDS = [
    ("4000000000000259", "pm_card_createDispute", "fraudulent", "chargeback", "needs_response"),
    ("4000000000002685", "pm_card_createDisputeProductNotReceived", "product_not_received",
     "chargeback", "needs_response"),
    ("4000000000001976", "pm_card_createDisputeInquiry", "fraudulent", "inquiry",
     "warning_needs_response"),
    ("4000000404000038", "pm_card_createCe3EligibleDispute", "fraudulent", "chargeback",
     "needs_response"),
    ("4000008400000779", "pm_card_createComplianceDispute", "noncompliant", "compliance",
     "needs_response"),
    ("5105008400000002", "pm_card_createMastercardComplianceDispute", "noncompliant",
     "compliance", "needs_response"),
]  # fmt: skip


def pay(
    client: Client, card: str, amount: int = 3000, currency: str = "usd"
) -> stripe.PaymentIntent:
    params: dict[str, Any] = {"amount": amount, "currency": currency, "confirm": True,
                              "return_url": "https://shop.example/r"}  # fmt: skip
    if card.startswith("pm_"):
        params["payment_method"] = card
    else:
        params["payment_method_data"] = {
            "type": "card",
            "card": {"number": card, "exp_month": 12, "exp_year": 2040, "cvc": "123"},
        }
    pi = client.v1.payment_intents.create(params=params)
    assert pi.status == "succeeded"
    return pi


def opened(client: Client, pi: Any, eventually: Callable[..., Any], count: int = 1) -> list:
    def disputes() -> list[Any]:
        found = client.v1.disputes.list(params={"payment_intent": pi.id}).data
        return found if len(found) >= count else []

    return eventually(disputes)


def types_for(client: Client, dispute_id: str) -> list[str]:
    found = client.v1.events.list(params={"limit": 100, "type": "charge.dispute.*"}).data
    return [e.type for e in reversed(found) if e.data.object.id == dispute_id]


@pytest.mark.parametrize(("number", "token", "reason", "case", "status"), CARDS)
def test_dispute_cards_open_a_dispute(
    client: Client, eventually: Callable[..., Any], number: str, token: str, reason: str,
    case: str, status: str,
) -> None:  # fmt: skip
    for card in (number, token):
        pi = pay(client, card)
        charge = client.v1.charges.retrieve(pi.latest_charge)
        dispute = opened(client, pi, eventually)[0]
        assert (dispute.charge, dispute.payment_intent, dispute.amount) == (charge.id, pi.id, 3000)
        assert (dispute.reason, dispute.status) == (reason, status)
        assert dispute.payment_method_details.card.case_type == case
        assert dispute.evidence_details.has_evidence is False
        assert client.v1.charges.retrieve(charge.id).disputed is True
        expected = ["charge.dispute.created"]
        if case != "inquiry":
            expected.append("charge.dispute.funds_withdrawn")
            assert [t.amount for t in dispute.balance_transactions] == [-3000]
            assert dispute.is_charge_refundable is False
        else:
            assert dispute.balance_transactions == [] and dispute.is_charge_refundable is True
        eventually(lambda d=dispute, e=expected: types_for(client, d.id) == e)


@pytest.mark.parametrize(
    ("currency", "amount", "settled", "rate"),
    [
        ("usd", 5000, -5000, None),
        ("jpy", 5000, -3350, 0.0067),  # the emulator's fixed TEST rates (emulator/fx.py)
        ("kwd", 5120, -1664, 3.25),
        ("isk", 50000, -360, 0.0072),
    ],
)
def test_a_disputes_balance_transaction_is_in_usd_with_the_15_dollar_fee(
    client: Client, eventually: Callable[..., Any], currency, amount, settled, rate
) -> None:
    """A US account's balance is in usd: the money a dispute withdraws is converted at an
    exchange rate, and the dispute fee is $15.00 whatever the payment's currency."""
    pi = pay(client, "pm_card_createDispute", amount, currency)
    dispute = opened(client, pi, eventually)[0]
    assert (dispute.amount, dispute.currency) == (amount, currency)
    dispute = eventually(
        lambda: (d := client.v1.disputes.retrieve(dispute.id)).balance_transactions and d
    )
    (txn,) = dispute.balance_transactions
    assert isinstance(txn, stripe.BalanceTransaction)
    assert (txn.amount, txn.currency, txn.exchange_rate) == (settled, "usd", rate)
    assert (txn.fee, txn.net) == (1500, settled - 1500)
    assert [(f.amount, f.currency, f.type) for f in txn.fee_details] == [
        (1500, "usd", "stripe_fee")
    ]
    assert set(txn.to_dict()) == set(stripe.BalanceTransaction.__annotations__) - {"OBJECT_NAME"}


def test_multiple_disputes_card(client: Client, eventually: Callable[..., Any]) -> None:
    pi = pay(client, "pm_card_createMultipleDisputes")
    both = opened(client, pi, eventually, count=2)
    assert {d.reason for d in both} == {"fraudulent", "product_not_received"}


def test_winning_evidence_wins(client: Client, eventually: Callable[..., Any]) -> None:
    dispute = opened(client, pay(client, "pm_card_createDispute"), eventually)[0]
    updated = client.v1.disputes.update(
        dispute.id,
        params={"evidence": {"uncategorized_text": "winning_evidence",
                             "customer_email_address": "ada@example.com"},
                "metadata": {"case": "42"}},
    )  # fmt: skip
    assert updated.status == "under_review" and updated.evidence_details.submission_count == 1
    assert updated.evidence.customer_email_address == "ada@example.com"
    assert updated.metadata.to_dict() == {"case": "42"}
    won = eventually(lambda: (d := client.v1.disputes.retrieve(dispute.id)).status == "won" and d)
    assert [t.amount for t in won.balance_transactions] == [-3000, 3000]
    assert types_for(client, dispute.id) == [
        "charge.dispute.created", "charge.dispute.funds_withdrawn", "charge.dispute.updated",
        "charge.dispute.closed", "charge.dispute.funds_reinstated",
    ]  # fmt: skip
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.disputes.update(dispute.id, params={"evidence": {"uncategorized_text": "x"}})
    assert "status of won" in caught.value.user_message


def test_losing_evidence_loses(client: Client, eventually: Callable[..., Any]) -> None:
    dispute = opened(client, pay(client, "pm_card_createDispute"), eventually)[0]
    client.v1.disputes.update(
        dispute.id, params={"evidence": {"uncategorized_text": "losing_evidence"}}
    )
    lost = eventually(lambda: (d := client.v1.disputes.retrieve(dispute.id)).status == "lost" and d)
    assert [t.amount for t in lost.balance_transactions] == [-3000]
    assert types_for(client, dispute.id)[-1] == "charge.dispute.closed"


def test_other_evidence_stays_under_review(client: Client, eventually: Callable[..., Any]) -> None:
    dispute = opened(client, pay(client, "pm_card_createDispute"), eventually)[0]
    client.v1.disputes.update(
        dispute.id, params={"evidence": {"uncategorized_text": "It shipped."}}
    )
    # The decision is taken at the clock's next tick: the same tick as this later dispute's.
    other = opened(client, pay(client, "pm_card_createDispute"), eventually)[0]
    assert other.status == "needs_response"
    assert client.v1.disputes.retrieve(dispute.id).status == "under_review"


def test_staged_evidence_is_not_submitted(client: Client, eventually: Callable[..., Any]) -> None:
    dispute = opened(client, pay(client, "pm_card_createDispute"), eventually)[0]
    staged = client.v1.disputes.update(
        dispute.id, params={"evidence": {"product_description": "A book"}, "submit": False}
    )
    assert (staged.status, staged.evidence_details.has_evidence) == ("needs_response", True)
    assert staged.evidence_details.submission_count == 0


def test_a_dispute_update_names_only_what_changed(
    client: Client, eventually: Callable[..., Any]
) -> None:
    """`charge.dispute.updated` names in previous_attributes only what the update changed, and
    an update that changes nothing sends none."""
    dispute = opened(client, pay(client, "pm_card_createDispute"), eventually)[0]
    client.v1.disputes.update(dispute.id, params={"metadata": {"case": "7"}, "submit": False})
    client.v1.disputes.update(dispute.id, params={"metadata": {"case": "7"}})
    client.v1.disputes.update(
        dispute.id, params={"evidence": {"product_description": ""}, "submit": False}
    )
    found = client.v1.events.list(params={"type": "charge.dispute.updated", "limit": 100}).data
    mine = [e for e in found if e.data.object.id == dispute.id]
    assert [e.data.previous_attributes.to_dict() for e in mine] == [{"metadata": {"case": None}}]


def test_inquiry_escalates_or_closes(client: Client, eventually: Callable[..., Any]) -> None:
    inquiry = opened(client, pay(client, "pm_card_createDisputeInquiry"), eventually)[0]
    client.v1.disputes.update(
        inquiry.id, params={"evidence": {"uncategorized_text": "escalate_inquiry_evidence"}}
    )
    escalated = eventually(
        lambda: (d := client.v1.disputes.retrieve(inquiry.id)).status == "needs_response" and d
    )
    assert escalated.payment_method_details.card.case_type == "chargeback"
    assert [t.amount for t in escalated.balance_transactions] == [-3000]
    other = opened(client, pay(client, "pm_card_createDisputeInquiry"), eventually)[0]
    client.v1.disputes.update(
        other.id, params={"evidence": {"uncategorized_text": "losing_evidence"}}
    )
    closed = eventually(
        lambda: (d := client.v1.disputes.retrieve(other.id)).status == "warning_closed" and d
    )
    assert closed.balance_transactions == []  # closed without escalation: no money moved


def test_an_inquiry_refunded_in_full_withdraws_nothing_when_it_escalates(
    client: Client, eventually: Callable[..., Any]
) -> None:
    """Stripe (Dispute.is_charge_refundable): after the payment has been fully refunded, no
    further funds are withdrawn as a result of the dispute."""
    pi = pay(client, "pm_card_createDisputeInquiry")
    inquiry = opened(client, pi, eventually)[0]
    assert inquiry.is_charge_refundable is True
    client.v1.refunds.create(params={"payment_intent": pi.id})
    client.v1.disputes.update(
        inquiry.id, params={"evidence": {"uncategorized_text": "escalate_inquiry_evidence"}}
    )
    escalated = eventually(
        lambda: (d := client.v1.disputes.retrieve(inquiry.id)).status == "needs_response" and d
    )
    assert escalated.payment_method_details.card.case_type == "chargeback"
    assert (escalated.balance_transactions, escalated.is_charge_refundable) == ([], False)
    assert "charge.dispute.funds_withdrawn" not in types_for(client, inquiry.id)
    # The event of the escalation shows the dispute as it is after it.
    found = client.v1.events.list(params={"limit": 100, "type": "charge.dispute.updated"}).data
    updated = [e for e in found if e.data.object.id == inquiry.id]  # newest first
    shown = updated[0].data.object
    assert (shown.status, shown.is_charge_refundable) == ("needs_response", False)
    assert updated[0].data.previous_attributes["is_charge_refundable"] is True


def test_close_accepts_the_loss(client: Client, eventually: Callable[..., Any]) -> None:
    dispute = opened(client, pay(client, "pm_card_createDispute"), eventually)[0]
    closed = client.v1.disputes.close(dispute.id)
    assert closed.status == "lost"
    assert types_for(client, dispute.id)[-1] == "charge.dispute.closed"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.disputes.close(dispute.id)
    assert "status of lost" in caught.value.user_message
    inquiry = opened(client, pay(client, "pm_card_createDisputeInquiry"), eventually)[0]
    assert client.v1.disputes.close(inquiry.id).status == "warning_closed"


def test_charged_back_charge_cannot_be_refunded(
    client: Client, eventually: Callable[..., Any]
) -> None:
    pi = pay(client, "pm_card_createDispute")
    opened(client, pi, eventually)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.create(params={"payment_intent": pi.id})
    assert caught.value.code == "charge_disputed"
    assert caught.value.user_message == (
        f"Charge {pi.latest_charge} has been charged back; cannot issue a refund."
    )


def test_list_retrieve_and_errors(client: Client, eventually: Callable[..., Any]) -> None:
    pi = pay(client, "pm_card_createDispute")
    dispute = opened(client, pi, eventually)[0]
    assert [d.id for d in client.v1.disputes.list(params={"charge": pi.latest_charge}).data] == [
        dispute.id
    ]
    assert dispute.id in [d.id for d in client.v1.disputes.list(params={"limit": 100}).data]
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.disputes.retrieve("du_missing")
    assert (caught.value.http_status, caught.value.code) == (404, "resource_missing")
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.disputes.update(dispute.id, params={"evidence": {"receipt": "file_123"}})
    assert (caught.value.code, caught.value.param) == ("parameter_unsupported", "evidence[receipt]")
    too_long = {"evidence": {"uncategorized_text": "x" * 20_001}}
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.disputes.update(dispute.id, params=too_long)
    assert caught.value.param == "evidence[uncategorized_text]"
    assert "must be at most 20000 characters" in caught.value.user_message
    fields = ("access_activity_log", "billing_address", "cancellation_rebuttal", "customer_name",
              "product_description", "refund_policy_disclosure", "service_date",
              "uncategorized_text")  # fmt: skip
    too_much = {"evidence": dict.fromkeys(fields, "x" * 19_000)}
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.disputes.update(dispute.id, params=too_much)
    assert caught.value.param == "evidence"
    assert "up to 150000 characters" in caught.value.user_message
    assert client.v1.disputes.retrieve(dispute.id).evidence.uncategorized_text is None


def test_ordinary_cards_are_never_disputed(
    client: Client, paid_intent: Callable[..., Any], eventually: Callable[..., Any]
) -> None:
    pi = paid_intent(client)
    # A dispute card paid after it has its dispute by the time this one would have had its own.
    opened(client, pay(client, "pm_card_createDispute"), eventually)
    assert client.v1.disputes.list(params={"payment_intent": pi.id}).data == []
    assert client.v1.charges.retrieve(pi.latest_charge).disputed is False
