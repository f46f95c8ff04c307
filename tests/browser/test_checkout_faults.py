"""The checkout page when Stripe stays unavailable: a message, and a way to try again that
neither charges nor creates twice. Real faults from the emulator (the plugin's fixtures), not a
faked answer: the shop's gateway retries, gives up, and answers 503."""

from __future__ import annotations

UNAVAILABLE = (
    "Payments are unavailable right now. Nothing was charged: please try again in a moment."
)


def test_when_stripe_stays_unavailable_the_page_says_so_and_try_again_works(
    page, bookpay_shop, stripe_emulator
):
    # The creation (which runs, then 500s), and the shop's look for what it made.
    stripe_emulator.faults.fail("500", path="/v1/payment_intents")
    page.goto(f"{bookpay_shop.url}/checkout?item=1")
    retry = page.locator("#retry-button")
    retry.wait_for(timeout=30_000)  # the shop tried, then looked three times first
    assert page.locator("#payment-message").inner_text() == UNAVAILABLE
    assert retry.inner_text() == "Try again"
    assert page.locator("#submit-button").is_disabled()
    assert stripe_emulator.faults.injected == {"500": 4}  # the creation, the look's 3 tries
    stripe_emulator.faults.clear()
    retry.click()
    page.locator("#payment-element [name=number]").wait_for()
    assert retry.is_hidden()
    # The failed create had run (a 500 after the fact): trying again got that same intent.
    intents = stripe_emulator.api("GET", "/v1/payment_intents")["data"]
    assert len(intents) == 1
