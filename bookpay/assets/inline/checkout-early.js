/*
 * The checkout's first request, inlined at the top of the page's <head> right after the shop's
 * fetch helper (fetch-answer.js): the two are one inline script, the only one of the shop
 * (`bookpay.web.assets.InlineScript`), whose SHA-256 is in the Content-Security-Policy, which
 * allows it and nothing else.
 *
 * It asks for the attempt's PaymentIntent while the rest of the page is still being parsed and
 * before the stylesheet, checkout.js or Stripe.js have arrived: an external script, even from
 * the cache, runs only after the parser has reached it and a task has come free, about 10 ms
 * later on a busy machine. checkout.js reads the answer (`window.bookpayAttempt.first`) and asks
 * through the same function (`ask`) whenever the shopper starts a new attempt.
 *
 * One attempt per book (or per cart and payment of it) per tab: its id is kept in the tab's
 * sessionStorage, so a reload reuses its PaymentIntent instead of making another, and in the
 * page, so that every ask of the page (Pay asks again before confirming) names the same attempt
 * even where storage is blocked (Chrome with the site's cookies blocked throws SecurityError on
 * `window.sessionStorage`): there a reload starts a new attempt, but the page can still pay.
 */
(function () {
  'use strict';

  const block = document.getElementById('checkout-config');
  /** @type {{item: string | null, attemptScope: string, createIntentUrl: string}} */
  const config = JSON.parse((block && block.textContent) || '{}');
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
  const ATTEMPT_KEY = 'bookpay.attempt.' + config.attemptScope;

  // The shop's fetch helper (fetch-answer.js), which the page inlines just before this script.
  const fetchAnswer = /** @type {BookpayFetch} */ (window.bookpayFetch).fetchAnswer;

  function uuid4() {
    if (window.crypto && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
    // crypto.randomUUID needs a secure context; getRandomValues does not (a LAN address).
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const hex = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return hex.slice(0, 8) + '-' + hex.slice(8, 12) + '-' + hex.slice(12, 16) + '-'
      + hex.slice(16, 20) + '-' + hex.slice(20);
  }

  // This page's attempt, once asked for: every later ask of the page names it (until the shopper
  // starts a new one), whether or not the tab's storage could keep it.
  /** @type {string | null} */
  let current = null;

  /** @param {boolean} fresh */
  function attemptId(fresh) {
    if (!fresh && current) return current;
    let id = null;
    try {
      id = fresh ? null : window.sessionStorage.getItem(ATTEMPT_KEY);
    } catch (e) {
      id = null; // storage disabled: the page's attempt is not the last load's
    }
    if (!id || !UUID.test(id)) {
      id = uuid4();
      try {
        window.sessionStorage.setItem(ATTEMPT_KEY, id);
      } catch (e) {
        // nothing to do: the attempt lasts as long as the page, not across a reload
      }
    }
    current = id;
    return id;
  }

  /**
   * The attempt's PaymentIntent, asked for: the attempt's id, and the shop's answer to come (a
   * rejected promise when the shop cannot be reached or does not answer in time; the caller
   * reports it).
   * @param {boolean} fresh a new attempt (the shopper asked to pay again), not this tab's last
   * @returns {AttemptAsked}
   */
  function ask(fresh) {
    const id = attemptId(fresh);
    const data = config.item === null
      ? {attemptId: id} // the cart, as the server has it now
      : {item: config.item, attemptId: id};
    const response = fetchAnswer(config.createIntentUrl, {
      method: 'POST',
      headers: {'Content-Type': 'application/json', 'Accept': 'application/json'},
      credentials: 'same-origin',
      body: JSON.stringify(data),
    });
    response.catch(() => {}); // reported when checkout.js reads it, not as an unhandled rejection
    return {id: id, response: response};
  }

  /** Forgets this tab's attempt: the page, loaded again, starts a new one. */
  function forget() {
    current = null;
    try {
      window.sessionStorage.removeItem(ATTEMPT_KEY);
    } catch (e) {
      // storage disabled: nothing was kept
    }
  }

  window.bookpayAttempt = {ask: ask, forget: forget, first: ask(false)};
})();
