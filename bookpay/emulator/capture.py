"""Manual capture: capturing an authorized PaymentIntent in full or in part, and releasing it.

With capture_method=manual a successful confirmation only authorizes: the intent waits in
requires_capture with amount_capturable, and the charge is uncaptured. Capturing less than was
authorized releases the rest, which Stripe shows as refunded on the charge; canceling releases
it all. An authorization not captured within its window (seven days for an online card payment
the customer made; the charge's `payment_method_details.card.capture_before`) expires on the
emulator's clock: the hold is released, `charge.expired`, and the PaymentIntent is canceled
with `cancellation_reason: automatic`.
"""

from __future__ import annotations

from typing import Any

from . import disputes, objects, validate
from .clock import handles
from .context import Ctx
from .intent_base import load, unexpected_state
from .params import ANY, unsupported
from .wire import invalid, new_id, now

AUTHORIZATION_WINDOW = 7 * 86400  # seconds a card authorization holds (customer-initiated)

CAPTURE_SPEC = {
    "amount_to_capture": None,
    "final_capture": None,
    "metadata": ANY,
    "statement_descriptor": None,
    "statement_descriptor_suffix": None,
    "expand": None,
}


def capture(ctx: Ctx, pi_id: str) -> dict[str, Any]:
    p = ctx.params
    pi = load(ctx, pi_id)
    if pi["status"] != "requires_capture":
        raise unexpected_state(
            ctx,
            pi,
            f"This PaymentIntent could not be captured because it has a status of {pi['status']}."
            " Only a PaymentIntent with one of the following statuses may be captured:"
            " requires_capture.",
        )
    if "final_capture" in p and not validate.boolean(p["final_capture"], "final_capture"):
        # final_capture=false is multicapture, which the emulator does not do: refused by name.
        raise unsupported("final_capture", "false")
    amount = pi["amount_capturable"]
    if "amount_to_capture" in p:
        amount = validate.integer(p["amount_to_capture"], "amount_to_capture")
        if amount < 1:
            raise invalid("This value must be greater than or equal to 1.", "amount_to_capture")
        if amount > pi["amount_capturable"]:
            raise invalid(
                "The amount_to_capture must be less than or equal to the PaymentIntent's"
                f" amount_capturable ({pi['amount_capturable']}).",
                "amount_to_capture",
            )
    if "metadata" in p:
        pi["metadata"] = validate.metadata(p["metadata"], pi["metadata"])
    for field in ("statement_descriptor", "statement_descriptor_suffix"):
        if field in p:
            pi[field] = validate.string(p[field], field, max_length=22)
    ch = ctx.store.get(pi["latest_charge"] or "", "charge")
    if ch is None:  # an authorized intent always has its charge; this store was edited
        raise invalid(f"PaymentIntent {pi['id']} has no charge to capture.")
    previous = {"amount_captured": ch["amount_captured"], "captured": ch["captured"]}
    ch["captured"] = True
    ch["amount_captured"] = amount
    ch["balance_transaction"] = new_id("txn")
    ch["payment_method_details"]["card"]["amount_authorized"] = pi["amount"]
    ctx.store.save(ch)
    pi["status"] = "succeeded"
    pi["amount_received"] = amount
    pi["amount_capturable"] = 0
    ctx.store.save(pi)
    ctx.emit("charge.captured", ch, previous)
    released = pi["amount"] - amount
    if released:
        _release(ctx, ch, released)
    ctx.emit("payment_intent.succeeded", pi)
    pm = ctx.store.get(ch["payment_method"] or "", "payment_method")
    if pm is not None:
        disputes.after_capture(ctx, ch, pm)
    return pi


def hold_until_expiry(ctx: Ctx, pi: dict[str, Any], ch: dict[str, Any]) -> None:
    """An authorization just made: say until when it holds, and let it expire then."""
    ch["payment_method_details"]["card"]["capture_before"] = ch["created"] + AUTHORIZATION_WINDOW
    ctx.store.save(ch)
    ctx.schedule("authorization.expire", pi["id"], after=AUTHORIZATION_WINDOW)


@handles("authorization.expire")
def expire(ctx: Ctx, pi_id: str) -> None:
    """The window has passed: an intent still waiting for its capture is canceled."""
    pi = ctx.store.get(pi_id, "payment_intent")
    if pi is None or pi["status"] != "requires_capture":
        return  # captured or canceled in time
    release(ctx, pi)
    ch = ctx.store.get(pi["latest_charge"] or "", "charge")
    if ch is not None:
        ctx.emit("charge.expired", ch)
    pi["status"] = "canceled"
    pi["canceled_at"] = now()
    pi["cancellation_reason"] = "automatic"
    pi["amount_capturable"] = 0
    pi["next_action"] = None
    ctx.store.save(pi)
    ctx.emit("payment_intent.canceled", pi)


def release(ctx: Ctx, pi: dict[str, Any]) -> None:
    """Cancel an authorization: the whole uncaptured amount goes back to the customer."""
    ch = ctx.store.get(pi["latest_charge"] or "", "charge")
    if ch is not None and not ch["captured"]:
        _release(ctx, ch, ch["amount"] - ch["amount_refunded"])


def _release(ctx: Ctx, ch: dict[str, Any], amount: int) -> None:
    refund = objects.refund(ch, amount, None, {})
    ctx.store.save(refund)
    previous = {"amount_refunded": ch["amount_refunded"], "refunded": ch["refunded"]}
    ch["amount_refunded"] += amount
    ch["refunded"] = ch["amount_refunded"] >= ch["amount"]
    ctx.store.save(ch)
    ctx.emit("refund.created", refund)
    ctx.emit("charge.refunded", ch, previous)
