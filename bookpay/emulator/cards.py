"""Stripe's test cards: numbers, PaymentMethod tokens, brands, Luhn and decline wording."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Decline:
    code: str
    decline_code: str
    message: str


DECLINES = {
    "generic_decline": Decline("card_declined", "generic_decline", "Your card was declined."),
    "insufficient_funds": Decline(
        "card_declined", "insufficient_funds", "Your card has insufficient funds."
    ),
    "lost_card": Decline("card_declined", "lost_card", "Your card was declined."),
    "stolen_card": Decline("card_declined", "stolen_card", "Your card was declined."),
    "expired_card": Decline("expired_card", "expired_card", "Your card has expired."),
    "incorrect_cvc": Decline(
        "incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect."
    ),
    "processing_error": Decline(
        "processing_error",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
    "card_velocity_exceeded": Decline(
        "card_declined",
        "card_velocity_exceeded",
        "Your card was declined for making repeated attempts too frequently or exceeding its"
        " amount limit.",
    ),
    # Blocked by Radar (its charge never reaches the card's network): Stripe says no more.
    "fraudulent": Decline("card_declined", "fraudulent", "Your card was declined."),
    # A card that needs 3-D Secure, charged off-session or with error_on_requires_action.
    "authentication_required": Decline(
        "authentication_required",
        "authentication_required",
        "Your card was declined. This transaction requires authentication.",
    ),
}


@dataclass(frozen=True)
class Behavior:
    """What a card number does when charged."""

    decline: str | None = None  # a DECLINES key, at confirmation
    three_ds: bool = False  # needs a 3-D Secure challenge first
    # Stripe's "Authenticate unless set up": once set up for off-session use (a payment with
    # setup_future_usage=off_session and a customer), charged off-session without a challenge.
    set_up_skips_3ds: bool = False
    # Stripe's "Already set up": needs 3-D Secure on-session, succeeds off-session as if set up.
    off_session_skips_3ds: bool = False
    decline_after_3ds: str | None = None  # a DECLINES key, once authenticated
    funding: str = "credit"
    country: str = "US"
    dispute: str | None = None  # a disputes.KINDS key: the charge is disputed some time later
    refund: str | None = None  # "fail" or "pending": how a refund of the charge behaves
    risk_level: str = "normal"  # Radar's, on the charge's outcome
    # Radar blocks the charge (decline "fraudulent"): always (4100000000000019), or by its
    # default rule "Block if :risk_level: = 'highest'" (4000000000004954).
    blocked: bool = False
    # The decline is the CVC check's failing: only a card given a CVC can fail it
    # (4000000000000101; 4000000000000127 declines "incorrect_cvc" whatever it is given).
    cvc_check_only: bool = False


SPECIAL_NUMBERS: dict[str, Behavior] = {
    "4000000000000002": Behavior(decline="generic_decline"),
    "4000000000009995": Behavior(decline="insufficient_funds"),
    "4000000000009987": Behavior(decline="lost_card"),
    "4000000000009979": Behavior(decline="stolen_card"),
    "4000000000000069": Behavior(decline="expired_card"),
    "4000000000000127": Behavior(decline="incorrect_cvc"),
    "4000000000000119": Behavior(decline="processing_error"),
    "4000000000006975": Behavior(decline="card_velocity_exceeded"),
    # "Decline after attaching": attached to a customer fine, every charge declined.
    "4000000000000341": Behavior(decline="generic_decline"),
    # Fraud prevention (docs.stripe.com/testing#fraud-prevention). The CVC check of a card
    # given with a CVC fails, which Radar's default rule declines as an incorrect CVC.
    "4100000000000019": Behavior(decline="fraudulent", blocked=True, risk_level="highest"),
    "4000000000004954": Behavior(decline="fraudulent", blocked=True, risk_level="highest"),
    "4000000000009235": Behavior(risk_level="elevated"),
    "4000000000000101": Behavior(decline="incorrect_cvc", cvc_check_only=True),
    # Cards by country: the United Kingdom's (every other test card here is a US card).
    "4000008260000000": Behavior(country="GB"),
    "4000002760003184": Behavior(three_ds=True),
    "4000002500003155": Behavior(three_ds=True, set_up_skips_3ds=True),
    "4000003800000446": Behavior(three_ds=True, off_session_skips_3ds=True),
    "4000000000003220": Behavior(three_ds=True),
    "4000008260003178": Behavior(three_ds=True, decline_after_3ds="insufficient_funds"),
    "4000008400001629": Behavior(three_ds=True, decline_after_3ds="generic_decline"),
    "4000056655665556": Behavior(funding="debit"),
    "5200828282828210": Behavior(funding="debit"),
    # Disputes: the charge succeeds, then is disputed (docs.stripe.com/testing#disputes).
    "4000000000000259": Behavior(dispute="fraudulent"),
    "4000000000002685": Behavior(dispute="product_not_received"),
    "4000000000001976": Behavior(dispute="inquiry"),
    "4000000404000079": Behavior(dispute="multiple"),
    "4000000404000038": Behavior(dispute="visa_ce3"),
    "4000008400000779": Behavior(dispute="visa_compliance"),
    "5105008400000002": Behavior(dispute="mastercard_compliance"),
    # Refunds: asynchronous failure and asynchronous success (docs.stripe.com/testing#refunds).
    "4000000000005126": Behavior(refund="fail"),
    "4000000000007726": Behavior(refund="pending"),
}

# Tokens usable wherever a PaymentMethod id is (each use makes a fresh pm_ object, as Stripe).
TOKENS: dict[str, str] = {
    "pm_card_visa": "4242424242424242",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_amex": "378282246310005",
    "pm_card_visa_debit": "4000056655665556",
    "pm_card_mastercard_debit": "5200828282828210",
    "pm_card_discover": "6011111111111117",
    "pm_card_jcb": "3566002020360505",
    "pm_card_unionpay": "6200000000000005",
    "pm_card_diners": "3056930009020004",
    "pm_card_us": "4242424242424242",
    "pm_card_gb": "4000008260000000",
    "pm_card_visa_chargeDeclined": "4000000000000002",
    "pm_card_visa_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_visa_chargeDeclinedLostCard": "4000000000009987",
    "pm_card_visa_chargeDeclinedStolenCard": "4000000000009979",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeDeclinedLostCard": "4000000000009987",
    "pm_card_chargeDeclinedStolenCard": "4000000000009979",
    "pm_card_chargeDeclinedExpiredCard": "4000000000000069",
    "pm_card_chargeDeclinedIncorrectCvc": "4000000000000127",
    "pm_card_chargeDeclinedProcessingError": "4000000000000119",
    "pm_card_visa_chargeDeclinedVelocityLimitExceeded": "4000000000006975",
    "pm_card_chargeCustomerFail": "4000000000000341",
    "pm_card_radarBlock": "4100000000000019",
    "pm_card_chargeDeclinedFraudulent": "4100000000000019",
    "pm_card_riskLevelHighest": "4000000000004954",
    "pm_card_riskLevelElevated": "4000000000009235",
    "pm_card_cvcCheckFail": "4000000000000101",
    "pm_card_authenticationRequired": "4000002760003184",
    "pm_card_authenticationRequiredOnSetup": "4000002500003155",
    "pm_card_threeDSecure2Required": "4000000000003220",
    "pm_card_createDispute": "4000000000000259",
    "pm_card_createDisputeProductNotReceived": "4000000000002685",
    "pm_card_createDisputeInquiry": "4000000000001976",
    "pm_card_createMultipleDisputes": "4000000404000079",
    "pm_card_createCe3EligibleDispute": "4000000404000038",
    "pm_card_createComplianceDispute": "4000008400000779",
    "pm_card_createMastercardComplianceDispute": "5105008400000002",
    "pm_card_refundFail": "4000000000005126",
    "pm_card_pendingRefund": "4000000000007726",
}


def behavior(number: str) -> Behavior:
    return SPECIAL_NUMBERS.get(number, Behavior())


def luhn_ok(number: str) -> bool:
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def brand(number: str) -> str:
    """The card network by IIN prefix, with Stripe's brand names."""
    two, four = int(number[:2]), int(number[:4])
    if number.startswith("4"):
        return "visa"
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return "mastercard"
    if two in (34, 37):
        return "amex"
    if number.startswith(("6011", "65")) or 644 <= int(number[:3]) <= 649:
        return "discover"
    if two == 35:
        return "jcb"
    if two in (30, 36, 38, 39):
        return "diners"
    if two == 62:
        return "unionpay"
    return "unknown"


def fingerprint(number: str) -> str:
    """Stable per number, like Stripe's (same card, same fingerprint), without revealing it."""
    digest = hashlib.sha256(b"bookpay-emulator:" + number.encode()).hexdigest()
    return digest[:16]
