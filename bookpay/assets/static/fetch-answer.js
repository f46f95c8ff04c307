/*
 * How the shop's page scripts ask the shop, shared by all of them (`window.bookpayFetch`): a
 * request given up when no answer comes, the answer read whatever it is, and what to tell the
 * shopper when it says "not now".
 *
 * It comes first wherever it is used. The checkout page has it at the start of its one inline
 * script, the checkout's first request (`bookpay.web.assets.InlineScript`, ahead of
 * checkout-early.js), so that request goes out as early as ever and checkout.js (async) finds
 * it there; every other page loads it as a deferred script before cart.js (deferred scripts run
 * in the order of the page).
 *
 * It also says when the page scripts may show an answer (`afterPress`): not while a press is
 * under way, whose click would be lost under it.
 */
(function () {
  'use strict';

  // A request the shop never answers (a connection that hangs) fails as a lost one does after
  // this long, rather than leaving the page waiting for ever: longer than the shop's own budget
  // for a call to Stripe (15 s, retries included), so a slow Stripe is not cut short.
  const ANSWER_WAIT_MS = 30000;

  const GENERIC_ERROR = 'Something went wrong. Please try again.';
  const UNREACHED = 'Could not reach the shop. Check your connection and try again.';
  // The answers that say "not now" rather than "no": 429, the shop asks to wait (Retry-After
  // says how long; a proxy may not say); 408, the request timed out on its way.
  const BUSY = 'The shop is busy.';
  const TIMED_OUT = 'The shop took too long to answer.';
  const BUSY_WAIT_S = 5;

  /**
   * `fetch`, given up (rejected, as when the shop cannot be reached) when no answer has come
   * within ANSWER_WAIT_MS.
   * @param {string} url
   * @param {RequestInit} init
   * @returns {Promise<Response>}
   */
  function fetchAnswer(url, init) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), ANSWER_WAIT_MS);
    const sent = fetch(url, Object.assign({}, init, {signal: controller.signal}));
    sent.then(() => clearTimeout(timer), () => clearTimeout(timer));
    return sent;
  }

  /**
   * The answer to a request on its way: its status (0 when the shop was not reached or did not
   * answer in time), its JSON body (null when it is not JSON: a proxy's page) and the seconds
   * its Retry-After says to wait (0 when none). Never rejects.
   * @param {Promise<Response>} sent
   * @returns {Promise<ShopAnswer>}
   */
  async function readAnswer(sent) {
    let response;
    try {
      response = await sent;
    } catch (e) {
      return {status: 0, ok: false, body: null, retryAfter: 0};
    }
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    const retryAfter = Number(response.headers.get('Retry-After')) || 0;
    return {status: response.status, ok: response.ok, body: body, retryAfter: retryAfter};
  }

  /**
   * `data` posted as JSON to the shop, and its answer read.
   * @param {string} url
   * @param {object} data
   * @returns {Promise<ShopAnswer>}
   */
  function postJson(url, data) {
    return readAnswer(fetchAnswer(url, {
      method: 'POST',
      headers: {'Content-Type': 'application/json', 'Accept': 'application/json'},
      credentials: 'same-origin',
      body: JSON.stringify(data),
    }));
  }

  /**
   * The seconds to wait before asking again after a 429.
   * @param {number} retryAfter what its Retry-After said, 0 when nothing
   */
  function busyWait(retryAfter) {
    return Math.max(1, Math.ceil(retryAfter || BUSY_WAIT_S));
  }

  /**
   * What to say to an answer that says "not now" (408, 429), '' to any other: the shopper asks
   * again (after the wait a 429 says).
   * @param {number} status
   * @param {number} retryAfter
   */
  function notNowText(status, retryAfter) {
    if (status === 429) return BUSY + ' Please try again in ' + busyWait(retryAfter) + ' s.';
    if (status === 408) return TIMED_OUT + ' Please try again.';
    return '';
  }

  /* A press (a mouse button, a finger, a pen held down) clicks what is under it where it ends:
     an answer shown while it is down that moves the page (a message said above the button, a
     line above taken away) leaves the press to end on something else, and the click is lost,
     silently. It happens: the press takes the focus from a quantity just typed, whose change
     goes at once, and the shop answers in milliseconds, before a shopper's press ends (~100
     ms). So the page scripts show their answers once no press is under way, anywhere on the
     page (what moves may be anything below what the answer changes): `afterPress()`. A press
     ends released (in the page or out of it: the page still hears of it), given up (a finger
     that scrolls, a drag) or with the window's focus; released, once its click is made (a
     mouse's comes with its release, a tap's as an event of its own, soon after). A release the
     page cannot hear (over a frame of another site: Stripe's fields) ends it when the pointer
     is seen over a frame or with its button up, or a key is pressed; and no press holds the
     answers longer than MAX_HOLD_MS: one held that long is no quick click. */
  const TAP_CLICK_WAIT_MS = 100;
  const MAX_HOLD_MS = 1000;
  /** @type {number | undefined} the end of the longest hold of the press under way */
  let holdLimit;
  /** @type {Set<number>} the pointers pressed down now, by id */
  const pressed = new Set();
  /** @type {Array<() => void>} what waits for the press to end, in the order asked */
  let afterPressed = [];
  /** @type {number | undefined} the end of a press released, once its click is made */
  let ending;

  /** Resolves once no press is under way: at once (a resolved promise) when none is. */
  function afterPress() {
    if (!pressed.size && ending === undefined) return Promise.resolve();
    return new Promise((done) => afterPressed.push(() => done(undefined)));
  }

  function pressOver() {
    clearTimeout(ending);
    ending = undefined;
    if (pressed.size) return;
    clearTimeout(holdLimit);
    holdLimit = undefined;
    const waiting = afterPressed;
    afterPressed = [];
    waiting.forEach((done) => done());
  }

  /** @param {number} wait the milliseconds to let the press's click come */
  function pressEnds(wait) {
    clearTimeout(ending);
    ending = setTimeout(pressOver, wait);
  }

  window.addEventListener('pointerdown', (event) => {
    if (event.button !== 0) return; // not the primary button: no click
    clearTimeout(ending);
    ending = undefined;
    pressed.add(event.pointerId);
    clearTimeout(holdLimit);
    holdLimit = setTimeout(() => givenUp(new Event('timeout')), MAX_HOLD_MS);
  }, true);
  /** @param {PointerEvent} event a held pointer seen moving: over a frame, or released unheard */
  function seen(event) {
    if (!pressed.has(event.pointerId)) return;
    if (event.target instanceof HTMLIFrameElement) givenUp(event); // its release goes there
    else if (!(event.buttons & 1) && pressed.delete(event.pointerId) && !pressed.size) pressEnds(0);
  }
  window.addEventListener('pointerover', seen, true);
  window.addEventListener('pointermove', seen, true);
  window.addEventListener('pointerup', (event) => {
    if (!pressed.delete(event.pointerId) || pressed.size) return;
    pressEnds(event.pointerType === 'mouse' ? 0 : TAP_CLICK_WAIT_MS);
  }, true);
  window.addEventListener('click', () => {
    if (!pressed.size && ending !== undefined) pressEnds(0); // after this click's own work
  }, true);
  /** @param {Event} event */
  function givenUp(event) {
    if (event instanceof PointerEvent) pressed.delete(event.pointerId);
    else pressed.clear(); // a drag, the window's focus gone: no press makes a click now
    pressOver();
  }
  window.addEventListener('pointercancel', givenUp, true);
  window.addEventListener('dragstart', givenUp, true);
  window.addEventListener('blur', givenUp);
  window.addEventListener('keydown', givenUp, true); // the shopper is typing, not clicking

  window.bookpayFetch = {
    afterPress: afterPress,
    fetchAnswer: fetchAnswer,
    readAnswer: readAnswer,
    postJson: postJson,
    busyWait: busyWait,
    notNowText: notNowText,
    GENERIC_ERROR: GENERIC_ERROR,
    UNREACHED: UNREACHED,
    BUSY: BUSY,
    TIMED_OUT: TIMED_OUT,
  };
})();
