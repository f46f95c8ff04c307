"""From the last keystroke of an address to an enabled Pay button (issue 14's closing figure).

Run: ``python -m bench quote``.

The checkout page of one book in Chromium, on `bookpay serve` against the emulator (each a
process of its own), the email and card filled in, the address complete but for the last digit
of its ZIP code. Then that digit is typed: the page asks the server for a quote for the address
(a Stripe Tax calculation, then the PaymentIntent updated to the new total), refreshes the
Elements (``elements.fetchUpdates()``: the PaymentIntent retrieved again) and only then enables
Pay. The time is read inside the page, from the keystroke (``keydown``) to the moment Pay's
``disabled`` goes away (a MutationObserver), so none of the harness's round trips is in it.

``BENCH_QUOTE_RUNS`` (50) keystrokes on one page, the ZIP code alternating between two of one
city (78701 and 78702, Austin, TX: 6.25% on books and shipping), with the emulator adding 200 ms
to every API call (``EmulatorOptions(latency=0.2)``), and the same without latency for what the
shop and the browser cost on their own. Three API calls are on the way (the calculation, the
update, Stripe.js's retrieve), so about 600 ms of the first figure is the latency itself.
"""

from __future__ import annotations

import os

from bench.browser import browser, shop, summary

RUNS = int(os.environ.get("BENCH_QUOTE_RUNS", "50"))
LATENCIES = (0.2, 0.0)

# In the page: the time of the next keydown in the ZIP code, and of Pay's next enabling after it.
WATCH = """() => {
  const zip = document.querySelector('#address-element [name=postalCode]');
  const button = document.getElementById('submit-button');
  window.__keystroke = null;
  window.__enabled = null;
  zip.addEventListener('keydown', () => { window.__keystroke = performance.now(); }, {once: true});
  const observer = new MutationObserver(() => {
    if (window.__keystroke !== null && !button.disabled) {
      window.__enabled = performance.now();
      observer.disconnect();
    }
  });
  observer.observe(button, {attributes: true, attributeFilter: ['disabled']});
}"""
ENABLED = "() => window.__enabled !== null"


def _ready_page(chromium, url: str):
    context = chromium.new_context()
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(url + "/checkout?item=1")
    page.locator("#payment-element [name=number]").wait_for()
    page.fill("#link-auth-element [name=email]", "ada@example.com")
    payment = page.locator("#payment-element")
    payment.locator("[name=number]").fill("4242424242424242")
    payment.locator("[name=expiry]").fill("1234")
    payment.locator("[name=cvc]").fill("123")
    postal = payment.locator("[name=postalCode]")
    if postal.is_visible():
        postal.fill("78701")
    address = page.locator("#address-element")
    address.locator("[name=name]").fill("Ada Lovelace")
    address.locator("[name=addressLine1]").fill("1 Congress Ave")
    address.locator("[name=locality]").fill("Austin")
    address.locator("[name=administrativeArea]").fill("TX")
    return context, page


def _keystrokes(page, runs: int) -> list[float]:
    zip_code = page.locator("#address-element [name=postalCode]")
    times = []
    for run in range(runs + 1):  # the first one warms up
        zip_code.fill("7870")  # incomplete: no quote, Pay disabled
        page.wait_for_function("() => document.getElementById('submit-button').disabled")
        page.evaluate(WATCH)
        zip_code.press("1" if run % 2 else "2")
        page.wait_for_function(ENABLED)
        stamps = page.evaluate("() => [window.__keystroke, window.__enabled]")
        if run:
            times.append(stamps[1] - stamps[0])
    return times


def main() -> dict:
    figures: dict = {"runs": RUNS}
    with browser() as chromium:
        if chromium is None:
            return {"skipped": "no Chromium"}
        for latency in LATENCIES:
            with shop(latency) as url:
                context, page = _ready_page(chromium, url)
                try:
                    times = _keystrokes(page, RUNS)
                finally:
                    context.close()
            figures[f"latency_{int(latency * 1000)}ms"] = summary(times)
    print(f"Last ZIP keystroke to Pay enabled, Chromium, {RUNS} keystrokes (ms)")
    print(f"{'API latency':<12} {'median':>8} {'p95':>8} {'min':>8} {'max':>8}")
    for latency in LATENCIES:
        row = figures[f"latency_{int(latency * 1000)}ms"]
        print(
            f"{latency * 1000:>9.0f} ms {row['median_ms']:>8.1f} {row['p95_ms']:>8.1f}"
            f" {row['min_ms']:>8.1f} {row['max_ms']:>8.1f}"
        )
    return figures


if __name__ == "__main__":
    main()
