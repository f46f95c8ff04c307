"""The ledger's refund and dispute rules, on both backends: refund statuses and amounts follow
the Charge both ways while everything else moves forward; a dispute's status only moves forward,
and the order follows all its disputes."""

from __future__ import annotations

import pytest

from bookpay.config import Settings
from bookpay.ledger import open_ledger
from bookpay.ledger.model import refund_status


def intent(pi="pi_1", status="succeeded"):
    return {"id": pi, "status": status, "amount": 2300, "currency": "usd", "metadata": {}}


def charge(refunded=0, amount=2300):
    return {"amount_refunded": refunded, "refunded": refunded >= amount}


def dispute(status, du="du_1"):
    return {"id": du, "status": status, "reason": "fraudulent", "amount": 2300, "currency": "usd"}


@pytest.fixture
def ledger(tmp_path, database_url):
    with open_ledger(Settings(data_dir=tmp_path / "data", database_url=database_url)) as opened:
        yield opened


@pytest.mark.parametrize(
    ("current", "charged", "expected"),
    [
        ("refunded", "paid", "paid"),  # the refund failed
        ("refunded", "partially_refunded", "partially_refunded"),
        ("partially_refunded", "paid", "paid"),
        ("paid", "refunded", "refunded"),
        ("disputed", "paid", "disputed"),  # a refund event does not hide a dispute
        ("dispute_lost", "refunded", "dispute_lost"),
        ("pending", "refunded", "refunded"),  # refunded before the succeeded event came
    ],
)
def test_refund_status_follows_the_charge_between_refund_statuses_only(current, charged, expected):
    assert refund_status(current, charged) == expected


def test_refunds_go_up_and_down_with_the_charge(ledger):
    ledger.record_intent(intent())
    assert ledger.record_refunds(intent(), charge(2300))["status"] == "refunded"
    order = ledger.record_refunds(intent(), charge(500))
    assert (order["status"], order["amount_refunded"]) == ("partially_refunded", 500)
    order = ledger.record_refunds(intent(), charge(0))
    assert (order["status"], order["amount_refunded"]) == ("paid", 0)
    # Everything else still moves forward only: a late processing does not undo paid.
    assert ledger.record_intent(intent(status="processing"))["status"] == "paid"


def test_a_closed_dispute_never_reopens_and_the_order_follows_its_outcome(ledger):
    ledger.record_intent(intent())
    assert ledger.record_dispute(intent(), dispute("needs_response"))["status"] == "disputed"
    order = ledger.record_dispute(intent(), dispute("won"), charge(0))
    assert (order["status"], order["dispute_status"]) == ("paid", "won")
    # A stale copy (retrieved before it closed) changes nothing, twice.
    for _ in range(2):
        order = ledger.record_dispute(intent(), dispute("under_review"), charge(0))
        assert (order["status"], order["dispute_status"]) == ("paid", "won")
    assert [d["status"] for d in ledger.disputes_for(order["id"])] == ["won"]
    # A refund after the dispute was won moves the order as any refund does.
    assert ledger.record_refunds(intent(), charge(700))["status"] == "partially_refunded"


def test_a_lost_dispute_is_final_but_a_second_open_one_shows(ledger):
    ledger.record_intent(intent())
    order = ledger.record_dispute(intent(), dispute("lost"))
    assert (order["status"], order["dispute_status"]) == ("dispute_lost", "lost")
    assert ledger.record_refunds(intent(), charge(0))["status"] == "dispute_lost"
    order = ledger.record_dispute(intent(), dispute("needs_response", "du_2"))
    assert (order["status"], order["dispute_status"]) == ("disputed", "needs_response")
    order = ledger.record_dispute(intent(), dispute("won", "du_2"), charge(0))
    assert (order["status"], order["dispute_status"]) == ("dispute_lost", "lost")


@pytest.mark.parametrize("decided", ["lost", "won"])
def test_a_decided_chargeback_appealed_is_open_again_and_decided_again(ledger, decided):
    ledger.record_intent(intent())
    ledger.record_dispute(intent(), dispute("needs_response"))
    ledger.record_dispute(intent(), dispute(decided), charge(0))
    order = ledger.record_dispute(intent(), dispute("appeal_needs_response"))
    assert (order["status"], order["dispute_status"]) == ("disputed", "appeal_needs_response")
    # A stale copy from before the appeal, or from before the decision, does not close it.
    for stale in ("needs_response", "under_review", "appeal_needs_response"):
        order = ledger.record_dispute(intent(), dispute(stale))
    order = ledger.record_dispute(intent(), dispute("appeal_under_review"))
    assert order["dispute_status"] == "appeal_under_review"
    order = ledger.record_dispute(intent(), dispute("appeal_needs_response"))
    assert order["dispute_status"] == "appeal_under_review"
    other = "won" if decided == "lost" else "lost"
    order = ledger.record_dispute(intent(), dispute(other), charge(0))
    expected = {"won": "paid", "lost": "dispute_lost"}[other]
    assert (order["status"], order["dispute_status"]) == (expected, other)
    assert [d["status"] for d in ledger.disputes_for(order["id"])] == [other]


def test_a_decision_whose_appeal_was_missed_is_the_later_one(ledger):
    ledger.record_intent(intent())
    ledger.record_dispute(intent(), dispute("lost"))
    order = ledger.record_dispute(intent(), dispute("won"), charge(0))
    assert (order["status"], order["dispute_status"]) == ("paid", "won")


@pytest.mark.parametrize("closed", ["warning_closed", "prevented"])
def test_an_inquiry_closed_or_a_dispute_prevented_never_reopens(ledger, closed):
    ledger.record_intent(intent())
    ledger.record_dispute(intent(), dispute(closed), charge(0))
    for stale in ("warning_needs_response", "needs_response", "appeal_needs_response", "lost"):
        order = ledger.record_dispute(intent(), dispute(stale))
        assert (order["status"], order["dispute_status"]) == ("paid", closed)


def test_an_inquiry_escalates_then_closes(ledger):
    ledger.record_intent(intent())
    ledger.record_dispute(intent(), dispute("warning_needs_response"))
    assert ledger.record_dispute(intent(), dispute("needs_response"))["status"] == "disputed"
    # The inquiry's stale copy does not take the chargeback back to an inquiry.
    order = ledger.record_dispute(intent(), dispute("warning_under_review"))
    assert order["dispute_status"] == "needs_response"


def test_an_inquiry_closed_goes_back_to_what_the_charge_says(ledger):
    ledger.record_intent(intent())
    ledger.record_dispute(intent(), dispute("warning_needs_response"))
    order = ledger.record_dispute(intent(), dispute("warning_closed"), charge(2300))
    assert (order["status"], order["dispute_status"]) == ("refunded", "warning_closed")


def test_a_failed_refund_is_noted_on_its_reversal_once(ledger):
    ledger.owe_tax_reversals("ord_1", "pi_1", [("re_1", 500), ("re_2", None)])
    assert ledger.refunds_failed("ord_1", ["re_1", "re_9"]) == 1
    assert ledger.refunds_failed("ord_1", ["re_1"]) == 0  # a redelivery notes nothing again
    noted = {r["refund"]: r["refund_failed_at"] for r in ledger.tax_records_for("ord_1")}
    assert noted["re_1"] is not None and noted["re_2"] is None
