"""What a refund's Stripe Tax reversal takes back when a reversal of a refund that failed is
already in Stripe Tax (``over_reversed``): Stripe Tax ends with exactly what was refunded
reversed, whichever of the later reversals is sent first."""

from __future__ import annotations

from bookpay.ledger.taxrecords import over_reversed, plan_reversal

TOTAL = 2967


def reversal(amount, *, status="recorded", reversed=None, failed=False) -> dict:
    return {
        "amount": amount,
        "status": status,
        "reversed": reversed,
        "refund_failed_at": "2026-01-01T00:00:00Z" if failed else None,
    }


def send(done: list[dict], amount: int) -> dict:
    """What the worker records for a refund of ``amount`` sent after ``done``."""
    took = max(amount - over_reversed(done, TOTAL), 0)
    return reversal(amount, status="recorded" if took else "skipped", reversed=took)


def test_nothing_over_reversed_without_a_failed_refund():
    assert over_reversed([], TOTAL) == 0
    assert over_reversed([reversal(1000, reversed=1000), reversal(None)], TOTAL) == 0
    # Not sent yet, or never to be sent: nothing in Stripe Tax.
    assert over_reversed([reversal(1000, status="pending", failed=True)], TOTAL) == 0
    assert over_reversed([reversal(1000, status="skipped", failed=True)], TOTAL) == 0


def test_a_failed_refunds_reversal_is_over_reversed_until_a_later_refund_takes_it_in():
    failed = reversal(1000, reversed=1000, failed=True)
    assert over_reversed([failed], TOTAL) == 1000
    assert over_reversed([reversal(None, failed=True)], TOTAL) == TOTAL  # before `reversed`
    assert over_reversed([failed, reversal(2967, reversed=1967)], TOTAL) == 0


def test_later_reversals_take_back_what_was_refunded_in_either_order():
    failed = reversal(1000, reversed=1000, failed=True)
    for amounts in ([500, 2467], [2467, 500]):
        done = [failed]
        for amount in amounts:
            done.append(send(done, amount))
        in_stripe_tax = sum(r["reversed"] for r in done if r["status"] == "recorded")
        assert in_stripe_tax == 500 + 2467, amounts
        assert over_reversed(done, TOTAL) == 0
    done = [failed]
    done.append(send(done, 500))  # all of it reversed already, by the failed refund's
    assert (done[-1]["status"], done[-1]["reversed"]) == ("skipped", 0)


def test_a_reversal_being_sent_counts_as_sent_even_once_its_refund_failed():
    """One worked out (``reversed`` kept, still pending) is sent with that amount, whatever
    happens meanwhile: another reversal worked out after it counts it as in Stripe Tax. Its
    refund failing since does not stop it (an earlier try may have reached Stripe Tax): it
    is then tax reversed that was not refunded."""
    failed = reversal(1000, reversed=1000, failed=True)
    sending = reversal(1500, status="pending", reversed=500)
    assert over_reversed([failed, sending], TOTAL) == 0
    assert send([failed, sending], 400)["reversed"] == 400
    # Not worked out yet (never sent if its refund fails): not counted.
    assert over_reversed([failed, reversal(1500, status="pending")], TOTAL) == 1000
    late = reversal(1500, status="pending", reversed=500, failed=True)
    assert over_reversed([failed, late], TOTAL) == 1500


def test_a_full_refund_after_a_failed_refunds_reversal_being_sent_is_not_a_full_reversal():
    """A reversal tried (its answer lost) whose refund then failed is sent as worked out: a
    later full refund takes back what is left after it, as a partial reversal, not the whole
    transaction again over it."""
    lost = {
        **reversal(500, status="pending", reversed=500, failed=True),
        "id": "rev:re_lost",
        "kind": "reversal",
    }
    full = {**reversal(None, status="pending"), "id": "rev:re_full", "kind": "reversal"}
    assert plan_reversal(full, [lost, full], TOTAL) == (TOTAL - 500, TOTAL - 500)


KWD_CHARGED, KWD_HELD = 6740, 6741  # the tax rounded down when charged; Stripe Tax's is not


def owed(refund: str, amount, *, status="pending", send=None, reversed=None, failed=False):
    record = reversal(amount, status=status, reversed=reversed, failed=failed)
    return {**record, "id": f"rev:{refund}", "kind": "reversal", "send_amount": send}


def plan(record: dict, records: list[dict]) -> tuple:
    return plan_reversal(record, records, KWD_CHARGED, KWD_HELD)


def test_the_reversal_completing_a_full_refund_takes_what_is_left_of_the_transaction():
    first = owed("re_1", 1000, status="recorded", send=1000, reversed=1000)
    rest = owed("re_2", 5740)
    assert plan(rest, [first, rest]) == (KWD_HELD - 1000, 5740)
    # Not complete yet (more may be refunded): its own amount.
    part = owed("re_2", 2000)
    assert plan(part, [first, part]) == (2000, 2000)
    # Without what the transaction holds (not looked up): as before.
    assert plan_reversal(rest, [first, rest], KWD_CHARGED) == (5740, 5740)


def test_whichever_of_two_refunds_is_worked_out_last_takes_what_is_left():
    one, two = owed("re_1", 1000), owed("re_2", 5740)
    assert plan(two, [one, two]) == (5740, 5740)  # the other not worked out yet: not the last
    two = {**two, "send_amount": 5740, "reversed": 5740}  # being sent
    assert plan(one, [one, two]) == (KWD_HELD - 5740, 1000)


def test_a_full_refund_with_nothing_in_stripe_tax_before_it_is_a_full_reversal():
    gone = owed("re_0", 1000, status="skipped", failed=True)  # failed before it was sent
    full = owed("re_1", None)
    assert plan(full, [gone, full]) == (None, KWD_CHARGED)


def test_completing_a_refund_after_a_failed_refunds_reversal_takes_only_what_is_left():
    failed = owed("re_0", 1000, status="recorded", send=1000, reversed=1000, failed=True)
    full = owed("re_1", None)
    assert plan(full, [failed, full]) == (KWD_HELD - 1000, KWD_CHARGED - 1000)
    # A full reversal in Stripe Tax already (its refund failed since): nothing left to send.
    whole = owed("re_0", None, status="recorded", reversed=KWD_CHARGED, failed=True)
    assert plan(full, [whole, full]) == (0, 0)


def test_a_refused_reversal_leaves_the_last_one_its_own_amount():
    """A reversal Stripe refused is for a person to record by hand: the last one does not
    take its share as well."""
    refused = owed("re_1", 1000, status="refused")
    rest = owed("re_2", 5740)
    assert plan(rest, [refused, rest]) == (5740, 5740)


class SkewedLedger:
    """A reversal's round that reads the order's records just before its fulfilment commits (no
    transaction owed yet) and the order just after (fulfilled): the fulfilment writes both."""

    def __init__(self) -> None:
        self.reads = 0
        self.marked: list[tuple] = []

    def tax_records_for(self, order_id: str) -> list[dict]:
        self.reads += 1
        owed = {"id": f"txn:{order_id}", "kind": "transaction", "status": "pending"}
        return [] if self.reads == 1 else [owed]

    def find_order(self, order_id: str) -> dict:
        stamp = "2026-12-07T05:00:00.000Z"
        return {"id": order_id, "fulfilled_at": stamp, "status": "paid", "not_fulfilled_at": None}

    def tax_record_done(self, record_id, **fields) -> None:
        self.marked.append(("done", record_id, fields.get("status", "recorded")))

    def tax_record_failed(self, record_id, error, **fields) -> None:
        self.marked.append(("failed", record_id, error))


def test_a_reversal_that_reads_the_order_as_its_fulfilment_commits_is_left_due_not_refused():
    from bookpay.taxrecords import TaxRecorder

    ledger = SkewedLedger()
    record = {"id": "rev:re_1", "kind": "reversal", "order_id": "ord_1", "refund_failed_at": None}
    TaxRecorder(ledger, gateway=None)._reversal(record)
    assert ledger.marked == []  # the next round finds the transaction the fulfilment owes


def test_a_reversal_still_owed_after_its_refund_failed_says_what_becomes_of_it():
    """`orders show` and `report tax` say more than "owed ... stripe_unavailable": one never
    worked out is never sent; one worked out is sent as it was (Stripe Tax may have it), and
    is then tax under-reported unless a later refund's reversal took it into account."""
    from bookpay.commands.ledgerview import tax_record_state

    failed = {"id": "rev:re_1", "kind": "reversal", "attempts": 1, "last_error": "down."}
    failed |= {"next_attempt_at": None, "refund": "re_1"}
    never = reversal(1000, status="pending", failed=True) | failed
    said = tax_record_state(never)
    assert said.startswith("owed, not recorded yet (1 attempt, next ")
    assert "): down; the refund failed " in said  # the error's full stop goes
    assert said.endswith(" before it was sent: it will not be sent")
    sent = reversal(1000, status="pending", reversed=1000, failed=True) | failed
    assert tax_record_state(sent).endswith(
        "it is sent as worked out (Stripe Tax may have it from the try whose answer was lost),"
        " then Stripe Tax under-reports this tax (correct it in Stripe Tax)"
    )
    assert tax_record_state(sent, settled=True).endswith(
        "and a later refund's reversal took it into account"
    )
    assert "refund failed" not in tax_record_state(reversal(1000, status="pending") | failed)
