/*
 * bookpay's checkout page: Link Authentication, Address and Payment Elements, as in Stripe's
 * accept-a-payment sample. The server fixes the amount; this script only asks it for the
 * PaymentIntent of this checkout attempt, mounts the Elements and confirms.
 *
 * Paying for a cart, the shopper can change a quantity here: the cart is changed, the server
 * updates the attempt's PaymentIntent to the new quote, the page shows it and refreshes the
 * Elements (`elements.fetchUpdates()`). Pay stays disabled while that is in flight, and just
 * before confirming the page asks the server once more for the attempt's quote: if it changed
 * meanwhile (another tab), the page shows the new total and does not confirm, so the shopper
 * never pays an amount they were not shown.
 *
 * Shipping and tax follow the address: once the Address Element is complete, the page asks the
 * server for a quote for it (`POST /checkout/quote`: the delivery options there, the shipping of
 * the one chosen and Stripe Tax's tax), shows it, and refreshes the Elements. Quotes carry a
 * version and go one at a time, the newest address last; Pay stays disabled until the server has
 * applied the quote for the address (with its name) and rate the shopper has now and the
 * Elements show it. An address no rate serves (or that Stripe Tax cannot place) is said so, and
 * Pay stays disabled.
 *
 * The page is ready to pay as soon as it can be: the attempt's PaymentIntent is asked for by the
 * page's inline script (checkout-early.js) at the top of the <head>, before anything else loads;
 * this script (loaded `async`) reads that answer, the rest waits for the parsed page, and the
 * Elements are mounted as soon as both the answer and Stripe.js (a deferred script) are there.
 *
 * Configuration comes from the page's JSON block, in the <head> before both scripts, so it is
 * there whenever they run (the CSP allows no other inline script than checkout-early.js). The
 * shop's fetch helper (fetch-answer.js, `window.bookpayFetch`), which the page scripts share,
 * comes with checkout-early.js, at the start of the same inline script.
 *
 * The JSDoc types are checked against Stripe.js's own declarations (@stripe/stripe-js) by
 * `tsc --checkJs` (tsconfig.json, run by the test suite): every call into Stripe.js here is one
 * the real Stripe.js accepts, although js.stripe.com cannot be loaded where bookpay is tested.
 */
/**
 * @typedef {import('@stripe/stripe-js').Stripe} Stripe
 * @typedef {import('@stripe/stripe-js').StripeElements} StripeElements
 * @typedef {import('@stripe/stripe-js').StripeError} StripeError
 * @typedef {import('@stripe/stripe-js').StripeLinkAuthenticationElement} LinkElement
 * @typedef {import('@stripe/stripe-js').StripeAddressElement} AddressElement
 * @typedef {import('@stripe/stripe-js').StripePaymentElement} PaymentElement
 * @typedef {LinkElement | AddressElement | PaymentElement} MountedElement
 * @typedef {{type?: string, message?: string, field?: string, charge?: string,
 *   payment_method?: {id?: string} | null, payment_intent?: PaymentIntent}} ShownError
 * @typedef {{item: string, title: string, quantity: number, unitText: string,
 *   lineText: string}} QuoteLineView
 * @typedef {{lines: QuoteLineView[], quoteId: string, subtotalText: string, totalText: string,
 *   shippingText: string, taxText: string, total: number, currency: string, priced: boolean,
 *   shippingRate: string | null}} QuoteView
 * @typedef {{id: string, displayName: string, amount: number, amountText: string,
 *   delivery: string, free: boolean}} ShippingRateView
 * @typedef {{item: string | null, attemptScope: string, publishableKey: string,
 *   createIntentUrl: string, quoteUrl: string, cartItemsUrl: string, returnUrl: string,
 *   quote: QuoteView, taxEnabled: boolean}} CheckoutConfig
 * @typedef {{clientSecret: string, paymentIntentId: string, changed?: boolean,
 *   quote: QuoteView, quoteVersion?: number, shippingRates?: ShippingRateView[],
 *   quoteAddress?: AddressValue | null}} AttemptIntent
 * @typedef {{line1: string, line2: string | null, city: string, state: string,
 *   postal_code: string, country: string}} AddressValue
 * @typedef {{address: AddressValue, name: string, shippingRate: string | null}} WantedQuote
 * @typedef {{paymentIntentId?: string, orderId?: string, status?: string}} PaidAttempt
 * @typedef {import('@stripe/stripe-js').PaymentIntent} PaymentIntent
 * @typedef {{error?: ShownError, text?: string, retry?: boolean, wait?: number,
 *   refused?: boolean}} Failure
 *   what to say after a failed Pay: a Stripe error (shown if written for shoppers), else `text`;
 *   `retry` offers Try again; `wait`: only after that many seconds (the shop asked to wait),
 *   Pay too; `refused`: the shop refused the order, paying cannot succeed
 */
(function () {
  'use strict';

  /**
   * An element the page's template always has.
   * @template {HTMLElement} T
   * @param {string} id
   * @param {new () => T} kind
   * @returns {T}
   */
  function byId(id, kind) {
    const node = document.getElementById(id);
    if (!(node instanceof kind)) throw new Error('The checkout page has no #' + id + '.');
    return node;
  }

  /** @type {CheckoutConfig} */
  const config = JSON.parse(byId('checkout-config', HTMLScriptElement).textContent || '{}');
  // The shop's fetch helper (fetch-answer.js), run at the start of the page's inline script,
  // which also leaves `window.bookpayAttempt`. Where that script did not run (blocked), neither
  // is there: the first ask (postAttempt) then says the form could not load, and nothing here
  // uses the helper before that.
  const shop = window.bookpayFetch || /** @type {BookpayFetch} */ ({});
  const {GENERIC_ERROR, UNREACHED, BUSY, TIMED_OUT, busyWait, notNowText} = shop;
  const LOAD_ERROR = 'The payment form could not be loaded.';
  // The shop answers 503 when Stripe stays unreachable (its retries are spent): nothing the
  // shopper did; the same attempt can simply be tried again (it never charges twice).
  const UNAVAILABLE =
    'Payments are unavailable right now. Nothing was charged: please try again in a moment.';
  // Said while an answer that was not the shop's (a proxy's HTML page, a lost connection) is
  // asked for again.
  const NO_ANSWER = 'The shop did not answer. Trying again…';
  const CHANGED = 'Your order changed: check the new total, then pay.';
  // Said when the attempt's PaymentIntent was canceled under the page (the shop answered 409
  // `attempt_finished`, canceled): another tab paid the cart, or this quote let go a 3-D Secure
  // challenge pending for the attempt (in another tab, maybe closed): the shop does not wait for
  // it, and that challenge, passed later, charges nothing. That tab may be this one: Back from
  // the challenge loads the form blank, and the address typed again lets that challenge go.
  const ATTEMPT_OVER = 'This checkout is over: its payment was canceled (the order was paid for '
    + 'in another tab or window, or a payment was left waiting for your bank\'s confirmation). '
    + 'Nothing was charged here.';
  // Said before the shop's own words when a quote for the address hears that a payment of this
  // attempt is already confirmed (409 `payment_in_progress`): in another tab, and processing or
  // authorized, or confirmed there just as this quote was applied (a lost race). Not a 3-D Secure
  // challenge pending: the quote lets that go (`attempt_finished`, canceled). Nothing about the
  // address.
  const UNDER_WAY = 'A payment of this checkout is already under way, in this tab or another: '
    + 'its outcome shows where it was made, or on its own page once Stripe has it.';
  // Said when Pay's last look found the attempt quoted for another address (another tab of it):
  // this tab's own address is quoted again, and Pay waits for that.
  const QUOTED_ELSEWHERE = 'Your order was changed in another window: it is being priced again '
    + 'for the address here. Check the total, then pay.';
  // Said when Pay's last look at the order (before anything is confirmed) got no answer of the
  // shop's: paying again is safe, the same attempt is the same PaymentIntent.
  const NOT_PAID_YET = ' Nothing was charged: please try again, you will not be charged twice.';
  // Said when neither the confirmation's answer nor Stripe could say how the payment went. Paying
  // again is safe: the same attempt is the same PaymentIntent, which Stripe charges only once.
  const UNCHECKED =
    'We could not check whether your payment went through. Please try again in a moment: '
    + 'you will not be charged twice.';
  // Asking Stripe what became of a PaymentIntent: a few tries, a second apart, ride out a blip.
  const OUTCOME_TRIES = 3;
  const OUTCOME_WAIT_MS = 1000;
  // The statuses Stripe.js sends to the return_url, with the redirect_status it gives them.
  /** @type {Record<string, string>} */
  const REDIRECT_STATUS = {succeeded: 'succeeded', requires_capture: 'succeeded',
    processing: 'processing'};

  /**
   * An answer of the shop that is not the attempt's PaymentIntent (or none: status 0); its
   * message is for shoppers.
   */
  class ShopError extends Error {
    /**
     * @param {string} message
     * @param {number} status the HTTP status, 0 when the shop was not reached
     * @param {string} [code] the error's code
     * @param {number} [retryAfter] the seconds its Retry-After says to wait, 0 when none
     */
    constructor(message, status, code, retryAfter) {
      super(message);
      this.status = status;
      this.code = code || '';
      this.retryAfter = retryAfter || 0;
    }
  }

  /**
   * `data` posted as JSON to the shop: its answer (a ShopError when the shop was not reached).
   * @param {string} url
   * @param {object} data
   */
  function postJson(url, data) {
    return checked(shop.postJson(url, data));
  }

  /**
   * The shop's answer, read; a ShopError when the shop was not reached (or not in time).
   * @param {Promise<ShopAnswer>} read
   */
  async function checked(read) {
    const answer = await read;
    if (answer.status === 0) throw new ShopError(UNREACHED, 0);
    return answer;
  }

  let attempt = ''; // this page's attempt id, once asked for

  // The page's inline script (checkout-early.js) asked for this tab's attempt before anything
  // else loaded: its answer serves the first ask; a new attempt is asked for the same way.
  const early = window.bookpayAttempt;
  /** @type {AttemptAsked | null} */
  let firstAttempt = early ? early.first : null;

  /** @param {boolean} fresh */
  function postAttempt(fresh) {
    if (!early || !window.bookpayFetch) return Promise.reject(new Error(LOAD_ERROR));
    const asked = !fresh && firstAttempt ? firstAttempt : early.ask(fresh);
    firstAttempt = null; // the early request answers the first ask only
    attempt = asked.id;
    return checked(shop.readAnswer(asked.response));
  }

  // A tab restored from the back-forward cache shows the page as it was left, often while
  // "Processing…" a payment that has since gone through or failed: ask the shop afresh (the
  // reload keeps the tab's attempt, so a paid one shows the "already paid" notice).
  window.addEventListener('pageshow', (event) => {
    if (event.persisted) window.location.reload();
  });

  afterDeferredScripts(main);

  // Runs `run` once the page is parsed and its deferred scripts (Stripe.js) have run, which is
  // when DOMContentLoaded fires. This async script may run before or after that, or in between
  // (parsed, Stripe.js not run yet: readyState says "interactive" then too), so it asks the
  // navigation's timing whether DOMContentLoaded has begun.
  /** @param {() => void} run */
  function afterDeferredScripts(run) {
    const nav = performance.getEntriesByType('navigation')[0];
    const fired = nav instanceof PerformanceNavigationTiming && nav.domContentLoadedEventStart > 0;
    if (document.readyState === 'complete' || fired) {
      run();
      return;
    }
    let ran = false;
    const once = () => {
      if (!ran) {
        ran = true;
        run();
      }
    };
    document.addEventListener('DOMContentLoaded', once, {once: true});
    window.addEventListener('load', once, {once: true}); // without navigation timing
  }

  // Everything that needs the page's elements, once it is parsed.
  function main() {
    const form = byId('payment-form', HTMLFormElement);
    const fields = byId('checkout-fields', HTMLDivElement);
    const button = byId('submit-button', HTMLButtonElement);
    const buttonText = /** @type {HTMLElement} */ (button.querySelector('.button-text'));
    const hint = byId('pay-hint', HTMLElement);
    const message = byId('payment-message', HTMLDivElement);
    const retryButton = byId('retry-button', HTMLButtonElement);
    const refusedLink = byId('refused-link', HTMLAnchorElement);
    // The way to the page of this attempt's payment under way in another tab, once Stripe says
    // it went through or is processing (paymentUnderWay).
    const outcomeLink = document.createElement('a');
    outcomeLink.id = 'outcome-link';
    outcomeLink.className = 'button button--secondary';
    outcomeLink.textContent = 'See how the payment stands';
    outcomeLink.hidden = true;
    message.after(outcomeLink);
    const paidNotice = byId('paid-notice', HTMLElement);
    const paidNoticeText = byId('paid-notice-text', HTMLElement);
    const paidOrder = byId('paid-order', HTMLElement);
    const paidOrderLink = byId('paid-order-link', HTMLAnchorElement);
    const newAttemptButton = byId('new-attempt-button', HTMLButtonElement);
    const orderLines = byId('order-lines', HTMLUListElement);
    const subtotal = byId('subtotal', HTMLElement);
    const shippingAmount = byId('shipping-amount', HTMLElement);
    const shippingRateName = byId('shipping-rate-name', HTMLElement);
    const taxAmount = byId('tax-amount', HTMLElement);
    const totalsNote = byId('totals-note', HTMLElement);
    const total = byId('total', HTMLElement);
    const rateOptions = byId('shipping-rate-options', HTMLDivElement);
    const ratesMessage = byId('shipping-rates-message', HTMLElement);
    const orderStatus = byId('order-status', HTMLElement);
    const orderTotals = byId('order-totals', HTMLElement);

    /** What the page shows, and so what the PaymentIntent holds. */
    let shown = config.quote;

    const state = {
      /** @type {Set<MountedElement>} */
      ready: new Set(),
      email: '',
      emailComplete: false,
      addressComplete: false,
      loadFailed: false,
      busy: false,
      waiting: 0, // waits the shop asked for (a 429) before it is asked again
      updating: 0, // changes of the order on their way to the server
      focusWhenReady: false,
      /** @type {{address: AddressValue, name: string} | null} the last complete address */
      address: null,
    };
    // Quotes for the address: the version of the last one sent (the server applies them in
    // order), the address, name and rate the PaymentIntent holds (as a key) and the version the
    // shop recorded that quote under, and what went wrong.
    const quoting = {
      version: 0,
      queued: false, // a quote is waiting to go, or on its way
      /** @type {WantedQuote | null} */
      pending: null,
      applied: '',
      /** @type {WantedQuote | null} what `applied` is the key of */
      appliedQuote: null,
      appliedVersion: 0,
      problem: '',
      underWay: '', // what the shop said of this attempt's payment under way (no quote applies)
      unanswered: 0, // quotes in a row the shop did not answer
    };
    /** @type {ShippingRateView[]} the delivery options shown */
    let rates = [];
    // What the delivery's message says when it has no problem to say: the last quote for the
    // address applied, announced (a live region) once, not again for every quote that changes
    // neither the options nor the total (the shopper typing on in a complete address).
    let ratesNote = '';
    /** @type {{rates: string, total: string, text: string} | null} what ratesNote announced */
    let noted = null;
    /** @type {Stripe | null} */
    let stripe = null;
    /** @type {StripeElements | null} */
    let elements = null;
    /** @type {Array<[MountedElement, HTMLElement]>} each Element and its mount node, in page order */
    let mounted = [];
    let intentId = ''; // the PaymentIntent the Elements were mounted for
    let clientSecret = ''; // and its client secret

    /* ------------------------------------------------------------------ messages ---------- */

    /**
     * @param {string} text
     * @param {'info'} [kind]
     */
    function showMessage(text, kind) {
      message.textContent = text || '';
      message.classList.toggle('is-info', kind === 'info');
    }

    // A validation error about a field is already shown under that field (by Stripe.js, inside the
    // Element, which marks its node invalid); saying it again under Pay would say it twice.
    /** @param {ShownError | null} error */
    function isFieldError(error) {
      if (!error || error.type !== 'validation_error') return false;
      return !!(error.field || fields.querySelector('.StripeElement--invalid'));
    }

    // Where the keyboard goes after a failed attempt: the first invalid field, else the message.
    function focusFirstInvalid() {
      const input = /** @type {HTMLElement | null} */ (fields.querySelector('[aria-invalid="true"]'));
      if (input) {
        input.focus();
        return;
      }
      const invalid = mounted.find(([, node]) => node.classList.contains('StripeElement--invalid'));
      if (invalid) invalid[0].focus(); // Stripe's own Elements live in iframes: ask the Element
      else message.focus();
    }

    // Card and validation errors are written for shoppers; anything else is not.
    /** @param {ShownError | null} error */
    function showError(error) {
      if (isFieldError(error)) {
        showMessage('');
        focusFirstInvalid();
        return;
      }
      const shopperFacing = error && (error.type === 'card_error' || error.type === 'validation_error');
      showMessage(shopperFacing && error.message ? error.message : GENERIC_ERROR);
      message.focus();
    }

    function canPay() {
      return state.ready.size === 3 && state.emailComplete && state.addressComplete
        && !state.loadFailed && !state.updating && !state.waiting && quoteApplied();
    }

    // Whether the PaymentIntent holds the quote for the address, name and rate shown now.
    function quoteApplied() {
      const wanted = wantedQuote();
      return !!wanted && !quoting.queued && !quoting.problem && !quoting.underWay
        && quoting.applied === keyOf(wanted);
    }

    // Says what still keeps Pay disabled (never a field's own error: that is under the field).
    function hintText() {
      // the message says why, and when to retry (or that a payment is under way)
      if (state.loadFailed || state.waiting || quoting.underWay) return '';
      if (state.updating || quoting.queued) return 'Updating your order…';
      if (state.addressComplete && quoting.problem) return 'Check the shipping address to pay.';
      const missing = [];
      if (!state.emailComplete) missing.push('enter your email address');
      if (!state.addressComplete) missing.push('complete the shipping address');
      if (missing.length) {
        const text = missing.join(' and ');
        return text.charAt(0).toUpperCase() + text.slice(1) + ' to pay.';
      }
      return state.ready.size < 3 ? 'The payment form is still loading.' : '';
    }

    function refreshButton() {
      // While busy the button stays enabled but aria-disabled: a disabled button would drop the
      // keyboard focus to <body>. pay() ignores it meanwhile (the double-submit guard).
      button.disabled = !canPay();
      if (state.busy) button.setAttribute('aria-disabled', 'true');
      else button.removeAttribute('aria-disabled');
      const text = hintText();
      if (hint.textContent !== text) hint.textContent = text; // a live region: only real changes
    }

    /** @param {boolean} busy */
    function setBusy(busy) {
      state.busy = busy;
      form.classList.toggle('is-busy', busy);
      form.setAttribute('aria-busy', busy ? 'true' : 'false');
      // Nothing can be edited while the payment is confirmed: `inert` covers every Element (Stripe's
      // iframes too), and the Payment Element, which has a documented read-only state, shows it.
      fields.toggleAttribute('inert', busy);
      const payment = elements ? elements.getElement('payment') : null;
      if (payment) payment.update({readOnly: busy});
      buttonText.textContent = busy ? 'Processing…' : payLabel();
      refreshButton();
    }

    /**
     * @param {string} [text]
     * @param {number} [wait] seconds before the retry is offered (the shop asked to wait)
     */
    function loadFailed(text, wait) {
      state.loadFailed = true;
      refreshButton();
      // Nothing can be filled in: the section headings over empty boxes would only confuse.
      fields.hidden = true;
      showMessage(text || LOAD_ERROR);
      offerRetry(wait || 0);
    }

    // The shop refused this checkout (a total Stripe cannot charge, a book it does not sell, a
    // cart in another currency): asking again cannot change that, so there is no retry, only
    // the message, which says what to change, and the way back to where it can be changed.
    /** @param {string} text */
    function refused(text) {
      state.loadFailed = true;
      refreshButton();
      fields.hidden = true;
      button.hidden = true;
      hint.hidden = true;
      showMessage(text);
      retryButton.hidden = true;
      refusedLink.hidden = false;
    }

    // Whether a failure is the shop's refusal (a 4xx) rather than a failure to answer (a 5xx,
    // the network, a timeout or a rate limit), which trying again may mend.
    /** @param {unknown} e */
    function isRefusal(e) {
      return e instanceof ShopError && refuses(e.status);
    }

    /** @param {number} status */
    function refuses(status) {
      return status >= 400 && status < 500 && status !== 408 && status !== 409 && status !== 429;
    }

    // The client secret of each PaymentIntent this tab has paid with, so that "you already paid"
    // can link to that order's page (the server never sends a finished attempt's secret again).
    const SECRET_KEY = 'bookpay.secret.';

    /**
     * @param {string} key
     * @param {string} value
     */
    function remember(key, value) {
      try {
        window.sessionStorage.setItem(key, value);
      } catch (e) {
        // storage disabled: the notice simply has no link, declines are kept in memory only
      }
    }

    /** @param {string} key */
    function recall(key) {
      try {
        return window.sessionStorage.getItem(key);
      } catch (e) {
        return null;
      }
    }

    // The PaymentIntent of this attempt: {intent} or, when the attempt was already paid (the back
    // button after paying), {paid: {paymentIntentId, status}}, so the shopper decides whether to
    // buy again. A canceled attempt was never paid: a new one starts at once.
    /**
     * @param {boolean} fresh
     * @returns {Promise<{intent: AttemptIntent} | {paid: PaidAttempt}>}
     */
    async function createIntent(fresh) {
      const answer = await postAttempt(fresh);
      const body = answer.body;
      if (answer.ok && body && body.clientSecret) {
        remember(SECRET_KEY + body.paymentIntentId, body.clientSecret);
        quoting.version = Math.max(quoting.version, body.quoteVersion || 0);
        return {intent: body};
      }
      const error = (body && body.error) || {};
      if (answer.status === 409 && error.code === 'attempt_finished') {
        if (error.status === 'succeeded') return {paid: error};
        if (!fresh) return createIntent(true);
      }
      if (answer.status === 503) {
        retryButton.textContent = 'Try again';
        throw new ShopError(UNAVAILABLE, 503, error.code);
      }
      const notNow = notNowText(answer.status, answer.retryAfter);
      if (notNow) throw new ShopError(notNow, answer.status, error.code, answer.retryAfter);
      if (error.code === 'cart_empty') window.location.assign('/cart'); // nothing left to pay for
      throw new ShopError(error.message || GENERIC_ERROR, answer.status, error.code);
    }

    /* ------------------------------------------------------------ the order ------------- */

    function payLabel() {
      return 'Pay ' + shown.totalText;
    }

    /**
     * A line's node: the one shown, or a new one made like the first (a book added elsewhere).
     * @param {QuoteLineView} line
     * @returns {HTMLLIElement}
     */
    function lineNode(line) {
      const found = Array.from(orderLines.children).find(
        (node) => node instanceof HTMLLIElement && node.dataset.item === line.item);
      if (found instanceof HTMLLIElement) return found;
      const model = orderLines.firstElementChild;
      const node = /** @type {HTMLLIElement} */ (model ? model.cloneNode(true) : document.createElement('li'));
      node.dataset.item = line.item;
      const cover = node.querySelector('img');
      if (cover) {
        cover.src = '/covers/' + encodeURIComponent(line.item) + '.svg';
        cover.alt = 'Cover of ' + line.title;
      }
      const form = node.querySelector('form');
      if (form) form.action = config.cartItemsUrl + '/' + encodeURIComponent(line.item);
      // The quantity's and Update's names say which book (read by screen readers only).
      setText(node, 'label .line-of', ' of ' + line.title);
      setText(node, 'button .line-of', ' quantity of ' + line.title);
      const input = node.querySelector('input[name="quantity"]');
      if (input) {
        input.removeAttribute('aria-invalid');
        input.removeAttribute('aria-describedby');
      }
      return node;
    }

    /**
     * @param {HTMLElement} node
     * @param {string} selector
     * @param {string} text
     */
    function setText(node, selector, text) {
      const found = node.querySelector(selector);
      if (found) found.textContent = text;
    }

    /**
     * Puts `nodes` in the order's list, in their order, moving only what must move (as the cart
     * page does): a line taken out and put back would drop the keyboard focus on <body>. The
     * focus in a line that goes (its quantity set to 0) goes to the next line's quantity, else
     * the one before it; a focused line that had to move is focused again.
     * @param {HTMLLIElement[]} nodes
     */
    function placeLines(nodes) {
      const focused = document.activeElement;
      const all = Array.from(orderLines.children);
      const gone = all.filter((node) => !nodes.includes(/** @type {HTMLLIElement} */ (node)));
      const lost = gone.find((node) => focused instanceof Node && node.contains(focused));
      /** @type {Element | null} */
      let next = null;
      if (lost) {
        const at = all.indexOf(lost);
        next = all.slice(at + 1).find((node) => !gone.includes(node))
          || all.slice(0, at).reverse().find((node) => !gone.includes(node)) || null;
      }
      gone.forEach((node) => node.remove());
      nodes.forEach((node, i) => {
        if (orderLines.children[i] !== node) orderLines.insertBefore(node, orderLines.children[i] || null);
      });
      if (next) {
        const field = next.querySelector('input[name="quantity"], button');
        if (field instanceof HTMLElement) field.focus();
      } else if (focused instanceof HTMLElement && focused !== document.activeElement
          && orderLines.contains(focused)) {
        focused.focus();
      }
    }

    /** Show a quote: its lines, totals and the Pay button's amount. @param {QuoteView} quote */
    function showQuote(quote) {
      shown = quote;
      const nodes = quote.lines.map((line) => {
        const node = lineNode(line);
        setText(node, '.line-title', line.title);
        setText(node, '.line-unit-amount', line.unitText);
        setText(node, '.line-amount', line.lineText);
        setText(node, '.line-quantity-value', String(line.quantity));
        const input = node.querySelector('input[name="quantity"]');
        if (input instanceof HTMLInputElement && document.activeElement !== input) {
          input.value = String(line.quantity);
        }
        return node;
      });
      placeLines(nodes);
      // Paying for the cart, its lines are the cart's: the header's count follows them.
      const count = document.getElementById('cart-count');
      if (config.item === null && count) {
        count.textContent = String(quote.lines.reduce((n, line) => n + line.quantity, 0));
      }
      subtotal.textContent = quote.subtotalText;
      shippingAmount.textContent = quote.priced ? quote.shippingText : '—';
      shippingAmount.classList.toggle('totals-pending', !quote.priced);
      const rate = rates.find((r) => r.id === quote.shippingRate);
      shippingRateName.textContent = quote.priced && rate ? ' (' + rate.displayName + ')' : '';
      taxAmount.textContent = quote.priced || !config.taxEnabled ? quote.taxText : '—';
      taxAmount.classList.toggle('totals-pending', !quote.priced && config.taxEnabled);
      totalsNote.hidden = quote.priced;
      total.textContent = quote.totalText;
      if (!state.busy) buttonText.textContent = payLabel();
    }

    /* -------------------------------------------------------- shipping and tax ---------- */

    /**
     * The delivery options for the address, the one chosen checked; none: `problem` says why.
     * @param {ShippingRateView[]} shown
     * @param {string | null} chosen
     * @param {string} [problem]
     */
    function showRates(shown, chosen, problem) {
      if (JSON.stringify(shown) !== JSON.stringify(rates)) {
        rates = shown;
        rateOptions.replaceChildren(...shown.map((rate) => {
          const label = document.createElement('label');
          label.className = 'shipping-rate';
          const input = document.createElement('input');
          input.type = 'radio';
          input.name = 'shipping_rate';
          input.value = rate.id;
          const name = document.createElement('span');
          name.className = 'shipping-rate-name';
          name.textContent = rate.displayName;
          const delivery = document.createElement('span');
          delivery.className = 'shipping-rate-delivery';
          delivery.textContent = rate.delivery;
          const amount = document.createElement('span');
          amount.className = 'shipping-rate-amount';
          amount.textContent = rate.amountText;
          label.append(input, name, delivery, amount);
          return label;
        }));
      }
      rateOptions.querySelectorAll('input[name="shipping_rate"]').forEach((node) => {
        if (node instanceof HTMLInputElement) node.checked = node.value === chosen;
      });
      const text = problem || ratesNote;
      if (ratesMessage.textContent !== text) ratesMessage.textContent = text; // only real changes
      ratesMessage.classList.toggle('is-error', !!problem);
    }

    /**
     * What to announce of a quote for the address, applied: its delivery options and total when
     * they are new (or follow a problem said), only its total when just that changed (another
     * option chosen); nothing new when neither did.
     * @param {ShippingRateView[]} shown
     * @param {QuoteView} quote
     */
    function noteFor(shown, quote) {
      const key = JSON.stringify(shown);
      const said = ratesMessage.textContent;
      let text = 'Delivery options and total updated: ' + quote.totalText;
      if (noted && noted.rates === key && noted.text === said) {
        if (noted.total === quote.totalText) return said;
        text = 'Total updated: ' + quote.totalText;
      }
      noted = {rates: key, total: quote.totalText, text: text};
      return text;
    }

    /** @returns {string | null} the rate the shopper chose, if any */
    function chosenRate() {
      const checked = rateOptions.querySelector('input[name="shipping_rate"]:checked');
      return checked instanceof HTMLInputElement ? checked.value : null;
    }

    /** @returns {WantedQuote | null} what the PaymentIntent should hold now */
    function wantedQuote() {
      if (!state.address) return null;
      return {address: state.address.address, name: state.address.name, shippingRate: chosenRate()};
    }

    // The name is in the key: the PaymentIntent's shipping (where the parcel goes) holds it, so a
    // name corrected alone is quoted again too.
    /** @param {WantedQuote} wanted */
    function keyOf(wanted) {
      return JSON.stringify([wanted.address, wanted.name, wanted.shippingRate]);
    }

    // The address, name or rate changed: quote it, after what is on its way (the newest wins).
    function quoteWanted() {
      const wanted = wantedQuote();
      if (!wanted || (!quoting.queued && !quoting.problem && quoting.applied === keyOf(wanted))) {
        refreshButton();
        return;
      }
      quoting.pending = wanted;
      if (!quoting.queued) {
        quoting.queued = true;
        changes = changes.then(sendQuotes).finally(() => {
          quoting.queued = false;
          refreshButton();
        });
      }
      refreshButton();
    }

    async function sendQuotes() {
      while (quoting.pending) {
        const wanted = quoting.pending;
        quoting.pending = null;
        try {
          await sendQuote(wanted);
        } catch (e) {
          quoting.problem = e instanceof Error ? e.message : GENERIC_ERROR;
          showRates(rates, chosenRate(), quoting.problem);
        }
      }
    }

    /** @param {WantedQuote} wanted */
    async function sendQuote(wanted) {
      quoting.version += 1;
      let answer;
      try {
        answer = await postJson(config.quoteUrl, {
          attemptId: attempt,
          version: quoting.version,
          address: wanted.address,
          name: wanted.name,
          shippingRate: wanted.shippingRate,
        });
      } catch (e) {
        answer = {status: 0, ok: false, body: null, retryAfter: 0}; // the shop was not reached
      }
      const body = answer.body || {};
      const error = body.error || {};
      // No answer of the shop's (the network, a proxy's HTML 502, a 200 that is not the quote, a
      // timeout): nothing about the address; ask again after a wait, longer each time.
      if (answer.status === 0 || answer.status === 408
          || (answer.status >= 500 && answer.status !== 503) || (answer.ok && !body.quote)) {
        showRates(rates, chosenRate(), NO_ANSWER);
        quoting.unanswered += 1;
        const wait = answer.retryAfter || Math.min(2 ** quoting.unanswered, 30);
        await new Promise((done) => setTimeout(done, 1000 * wait));
        if (!quoting.pending) quoting.pending = wanted;
        return;
      }
      quoting.unanswered = 0;
      if (!answer.ok) {
        if (answer.status === 409 && error.code === 'attempt_finished') {
          // Paid in another tab, or canceled: no quote can change it, nor Pay pay it.
          attemptOver(error);
          return;
        }
        if (answer.status === 409 && error.code === 'payment_in_progress') {
          await paymentUnderWay(error.message || GENERIC_ERROR);
          return;
        }
        if (answer.status === 409 && error.code === 'stale_quote') {
          // Another answer of this attempt got there first: number past it and ask again.
          quoting.version = Math.max(quoting.version, error.version || 0);
          if (!quoting.pending) quoting.pending = wanted;
          return;
        }
        if (answer.status === 429 || answer.status === 503) {
          // Too many quotes, or Stripe unavailable for now: say so, and ask again when told (the
          // page does: the shopper has nothing to do).
          const wait = answer.status === 429 ? busyWait(answer.retryAfter) : answer.retryAfter || 1;
          showRates(rates, chosenRate(), answer.status === 429
            ? BUSY + ' Trying again in ' + wait + ' s…' : error.message || NO_ANSWER);
          await new Promise((done) => setTimeout(done, 1000 * wait));
          if (!quoting.pending) quoting.pending = wanted;
          return;
        }
        if (quoting.pending) return; // the shopper has already changed the address again
        quoting.problem = error.message || GENERIC_ERROR;
        quoting.applied = '';
        showRates(error.code === 'no_shipping_rate' ? [] : rates, null, quoting.problem);
        return;
      }
      if (quoting.pending) return; // a newer quote follows: show that one
      quoting.problem = '';
      if (quoting.underWay) {
        // That payment is over without paying (its 3-D Secure failed, say): this tab can pay.
        if (message.textContent === quoting.underWay) showMessage('');
        quoting.underWay = '';
        outcomeLink.hidden = true;
      }
      ratesNote = noteFor(body.shippingRates || [], body.quote);
      showRates(body.shippingRates || [], body.shippingRate);
      showQuote(body.quote);
      if (elements) {
        const updated = await elements.fetchUpdates();
        if (updated.error) throw new Error(updated.error.message || GENERIC_ERROR);
      }
      const applied = {address: wanted.address, name: wanted.name, shippingRate: body.shippingRate};
      quoting.applied = keyOf(applied);
      quoting.appliedQuote = applied;
      quoting.appliedVersion = Number(body.version) || 0;
    }

    /**
     * A quote for the address heard that a payment of this attempt is already confirmed (409
     * `payment_in_progress`: in another tab, and processing or authorized, or confirmed there
     * just as this quote was applied): no quote can change its amount, and Pay here waits. (A
     * 3-D Secure challenge pending is not waited for: the quote cancels it, attemptOver.) That is said where Pay says it, in the shop's words
     * as Pay's last look shows them, not under Delivery as an address problem (whatever the
     * delivery said before stays). As Pay does, Stripe is asked what became of the payment:
     * when it went through or is processing, a link leads to its page (the shopper follows it;
     * typing an address never leaves the page). A later quote that applies lifts all this.
     * @param {string} said the shop's message
     */
    async function paymentUnderWay(said) {
      quoting.applied = '';
      quoting.underWay = UNDER_WAY + ' ' + said;
      showRates(rates, chosenRate());
      showMessage(quoting.underWay, 'info');
      refreshButton();
      const intent = await retrieveIntent();
      const status = intent ? REDIRECT_STATUS[intent.status] : undefined;
      if (!intent || !status || !quoting.underWay) return;
      outcomeLink.href = returnPageUrl(intent.id, clientSecret, status);
      outcomeLink.hidden = false;
    }

    /**
     * What an attempt's PaymentIntent holds: its quote, and its delivery options once priced.
     * The delivery's message (a live region) says the total shown: a quote re-priced for a
     * changed quantity (or another tab's change) is announced as a quote for the address is
     * ("Total updated: …", or the options too when they changed), never leaving the total
     * before it said. A problem with the address stays said, its options as they were.
     * @param {AttemptIntent} intent
     */
    function showIntentQuote(intent) {
      if (!quoting.problem) {
        if (intent.shippingRates && intent.quote.priced) {
          if (ratesNote) ratesNote = noteFor(intent.shippingRates, intent.quote);
          showRates(intent.shippingRates, intent.quote.shippingRate);
        } else if (ratesNote) {
          ratesNote = ''; // no total to state: none is left stated
          showRates(rates, chosenRate());
        }
      }
      showQuote(intent.quote);
    }

    /** @param {number} step +1 when a change starts, -1 when it is done */
    function setUpdating(step) {
      state.updating += step;
      orderLines.setAttribute('aria-busy', state.updating ? 'true' : 'false');
      refreshButton();
    }

    // Changes go to the server one after the other, so answers are shown in the order asked.
    /** @type {Promise<void>} */
    let changes = Promise.resolve();

    // Ask the server for this attempt's PaymentIntent as the cart is now; show what it holds and
    // refresh the Elements when it changed. Resolves what to say when the order differs from
    // what was shown ('' when it does not).
    //
    // The PaymentIntent may hold a quote this tab did not make: another tab of the same attempt
    // (a duplicated tab shares its sessionStorage) quoted its own address since. Its total is
    // not this tab's to show or pay: Stripe.js confirms with this tab's Address Element, which
    // would ship somewhere the amount was not priced for (fulfilment refuses that). So this
    // tab's own address, name and rate are quoted again, and Pay waits for it.
    /** @returns {Promise<string>} */
    async function requote() {
      const before = shown.quoteId;
      const result = await createIntent(false);
      // A change is not shown under a press (another line's Update, which sent a changed
      // quantity by taking the focus from its field): a line taken away would move what is
      // pressed, and its click be lost (fetch-answer.js's afterPress). The same order (Pay's
      // last look, say) moves nothing, and waits for no press.
      const same = !('paid' in result) && result.intent.paymentIntentId === intentId
        && result.intent.quote.quoteId === before && !result.intent.changed;
      if (!same) await shop.afterPress();
      if ('paid' in result) {
        showPaidNotice(result.paid);
        return CHANGED;
      }
      if (result.intent.paymentIntentId !== intentId) {
        window.location.reload(); // the attempt had to start again: mount its Elements afresh
        return CHANGED;
      }
      if (quotedElsewhere(result.intent)) {
        quoting.applied = '';
        quoteWanted();
        return QUOTED_ELSEWHERE;
      }
      showIntentQuote(result.intent);
      const changed = result.intent.quote.quoteId !== before;
      if ((changed || result.intent.changed) && elements) {
        const updated = await elements.fetchUpdates();
        if (updated.error) throw new Error(updated.error.message || GENERIC_ERROR);
      }
      return changed ? CHANGED : '';
    }

    /**
     * Whether the attempt's PaymentIntent holds a quote for an address (or option) other than
     * the one this tab had applied. Only when its recorded quote is not the version this tab's
     * last quote was recorded under (only quotes number versions; a changed cart keeps it) is
     * another tab's quote compared: one for the same place and option is adopted as this tab's.
     * @param {AttemptIntent} intent
     */
    function quotedElsewhere(intent) {
      const mine = quoting.appliedQuote;
      const version = intent.quoteVersion || 0;
      if (!quoting.applied || !mine || !quoting.appliedVersion
          || version === quoting.appliedVersion) return false;
      if (intent.quote.shippingRate !== mine.shippingRate
          || !samePlace(intent.quoteAddress || null, mine.address)) return true;
      quoting.appliedVersion = version;
      return false;
    }

    /**
     * Whether two addresses are the same, as people type them (case and spaces aside).
     * @param {AddressValue | null} held
     * @param {AddressValue} mine
     */
    function samePlace(held, mine) {
      if (!held) return false;
      /** @param {unknown} text */
      const norm = (text) => String(text || '').replace(/\s+/g, ' ').trim().toUpperCase();
      const fields = /** @type {Array<keyof AddressValue>} */ (
        ['line1', 'line2', 'city', 'state', 'postal_code', 'country']);
      return fields.every((name) => norm(held[name]) === norm(mine[name]));
    }

    /**
     * Puts the quantity the order has for `item` back in its field.
     * @param {string} item
     */
    function showQuantity(item) {
      const line = shown.lines.find((l) => l.item === item);
      const node = Array.from(orderLines.children).find(
        (n) => n instanceof HTMLElement && n.dataset.item === item);
      const input = node ? node.querySelector('input[name="quantity"]') : null;
      if (line && input instanceof HTMLInputElement) input.value = String(line.quantity);
    }

    // The last quantity asked for (its item and quantity), to ask it once: Enter in the field
    // is its change, then the form's submit.
    let lastAsked = '';

    /**
     * The shopper changed a line's quantity on this page (0 removes it). The same change while
     * it is on its way is asked once; the field's change (when it loses the focus, which stays
     * on it after Enter) to the quantity the order has is not asked at all.
     * @param {string} item
     * @param {string} quantity
     * @param {boolean} fromField the field's change event (else its form's submit: Update)
     */
    function changeQuantity(item, quantity, fromField) {
      if (state.busy) return;
      const asked = JSON.stringify([item, quantity]);
      if (state.updating && asked === lastAsked) return;
      const line = shown.lines.find((l) => l.item === item);
      if (fromField && !state.updating && line && String(line.quantity) === quantity) return;
      lastAsked = asked;
      setUpdating(1);
      // Said once no press is under way: the press that sent this change (taking the focus from
      // the field) would be moved off what is under the status, the way back to the cart. (What
      // the answer says waits for that too, and so comes after.)
      shop.afterPress().then(() => {
        orderStatus.textContent = 'Updating your order…';
      });
      changes = changes.then(() => sendQuantity(item, quantity)).finally(() => setUpdating(-1));
    }

    /**
     * @param {string} item
     * @param {string} quantity
     */
    async function sendQuantity(item, quantity) {
      let problem = '';
      let refusal = false; // the shop refused this quantity (not: could not take it now)
      try {
        const url = config.cartItemsUrl + '/' + encodeURIComponent(item);
        const answer = await postJson(url, {quantity: /^\d+$/.test(quantity) ? Number(quantity) : quantity});
        // Done only when the shop answered with its cart (as the cart page has it): a 200 that
        // is not the shop's JSON (a proxy's page) did not change the order.
        if (!(answer.ok && answer.body && answer.body.cart)) {
          const said = answer.body && answer.body.error && answer.body.error.message;
          problem = notNowText(answer.status, answer.retryAfter) || said || GENERIC_ERROR;
          refusal = refuses(answer.status);
        }
        await requote(); // whatever happened, show the order as the server has it
        if (problem) showQuantity(item); // even in the field still focused: not what was refused
      } catch (e) {
        problem = e instanceof Error ? e.message : GENERIC_ERROR;
        refusal = false; // what is said is why the order could not be shown
      }
      await shop.afterPress(); // said in place of "Updating…": maybe longer, moving what is under
      orderStatus.textContent = problem || 'Your order was updated.';
      markRefused(refusal ? item : null);
    }

    /**
     * The quantity the shop refused is invalid and described by the order's status, which says
     * why; every other quantity (all of them once a change goes through) is not.
     * @param {string | null} item
     */
    function markRefused(item) {
      Array.from(orderLines.children).forEach((node) => {
        const input = node.querySelector('input[name="quantity"]');
        if (!(node instanceof HTMLElement) || !(input instanceof HTMLInputElement)) return;
        if (node.dataset.item === item) {
          input.setAttribute('aria-invalid', 'true');
          input.setAttribute('aria-describedby', orderStatus.id);
        } else {
          input.removeAttribute('aria-invalid');
          input.removeAttribute('aria-describedby');
        }
      });
    }

    /* ---------------------------------------------------------------- Elements ------------ */

    /** @param {string} clientSecret */
    function mountElements(clientSecret) {
      if (!window.Stripe) throw new Error('Stripe.js is not loaded.');
      stripe = window.Stripe(config.publishableKey);
      const group = stripe.elements({
        clientSecret: clientSecret,
        loader: 'auto',
        appearance: {theme: 'stripe', variables: {colorPrimary: '#4f46e5'}},
      });
      elements = group;
      const link = group.create('linkAuthentication');
      const address = group.create('address', {mode: 'shipping'});
      // The email comes from the Link Authentication Element, so the Payment Element doesn't ask.
      const payment = group.create('payment', {
        layout: 'tabs',
        fields: {billingDetails: {email: 'never'}},
      });
      mounted = [
        [link, byId('link-auth-element', HTMLDivElement)],
        [address, byId('address-element', HTMLDivElement)],
        [payment, byId('payment-element', HTMLDivElement)],
      ];

      /** @param {MountedElement} element */
      function ready(element) {
        state.ready.add(element);
        refreshButton();
      }
      function changed() {
        // The shopper is fixing things: clear the last error (not that a payment is under way).
        if (!state.busy && !quoting.underWay) {
          showMessage('');
          if (!state.loadFailed) retryButton.hidden = true; // Pay is the way to try again
        }
        refreshButton();
      }
      /** @param {{error: StripeError}} event */
      function failedToLoad(event) {
        loadFailed((event && event.error && event.error.message) || LOAD_ERROR);
      }

      link.on('ready', () => {
        if (state.focusWhenReady) link.focus(); // the shopper asked to buy again: start here
        state.focusWhenReady = false;
        ready(link);
      });
      link.on('change', (event) => {
        state.email = (event.value && event.value.email) || '';
        state.emailComplete = !!event.complete;
        changed();
      });
      link.on('loaderror', failedToLoad);
      address.on('ready', () => ready(address));
      address.on('change', (event) => {
        state.addressComplete = !!event.complete;
        if (event.complete) {
          state.address = {address: event.value.address, name: event.value.name};
          quoteWanted();
        }
        changed();
      });
      address.on('loaderror', failedToLoad);
      payment.on('ready', () => ready(payment));
      payment.on('change', changed);
      payment.on('loaderror', failedToLoad);

      mounted.forEach(([element, node]) => element.mount(node));
    }

    /** @param {SubmitEvent} event */
    async function pay(event) {
      event.preventDefault();
      if (state.busy || !canPay() || !stripe || !elements) return; // double-submit guard
      setBusy(true);
      showMessage('');
      retryButton.hidden = true;
      let changed = '';
      try {
        // The order as the server has it now: if it changed since it was shown, show it first
        // (or, quoted for another tab's address, quote this tab's again).
        changed = await requote();
      } catch (e) {
        showFailure(await requoteFailed(e));
        return;
      }
      if (changed) {
        setBusy(false);
        if (!paidNotice.hidden) return;
        showMessage(changed, 'info');
        message.focus();
        return;
      }
      const error = await confirm();
      noteDecline(error);
      noteDecline(error.payment_intent && error.payment_intent.last_payment_error);
      if (isShoppersOwn(error)) showFailure({error: error});
      else showFailure(await outcome({error: error}));
    }

    // The payment errors this page was told of (their charge or PaymentMethod): the one a
    // PaymentIntent still holds after another card's confirmation was lost or refused before
    // it ran says nothing of that card, and is not said again as its reason. Kept for the tab
    // by PaymentIntent (sessionStorage), as the attempt is: a reload keeps both, and a decline
    // said before it is still not the reason a card typed since failed. In memory too, for
    // when storage is disabled.
    const DECLINES_KEY = 'bookpay.declines.';
    /** @type {Set<string>} */
    const declines = new Set();

    /** @param {ShownError | null | undefined} error */
    function declineKey(error) {
      if (!error) return '';
      const method = error.payment_method;
      return error.charge || (method && method.id) || '';
    }

    /** @returns {string[]} the declines kept for this tab's PaymentIntent */
    function keptDeclines() {
      if (!intentId) return [];
      try {
        const kept = JSON.parse(recall(DECLINES_KEY + intentId) || '[]');
        return Array.isArray(kept) ? kept.filter((key) => typeof key === 'string') : [];
      } catch (e) {
        return []; // not ours: as if none
      }
    }

    /** @param {string} key */
    function declineSaid(key) {
      return declines.has(key) || keptDeclines().includes(key);
    }

    /** @param {ShownError | null | undefined} error */
    function noteDecline(error) {
      const key = declineKey(error);
      if (!key) return;
      declines.add(key);
      const kept = keptDeclines();
      if (intentId && !kept.includes(key)) {
        remember(DECLINES_KEY + intentId, JSON.stringify(kept.concat(key)));
      }
    }

    // Confirms with the Elements' details. Resolves only when that failed at once (otherwise the
    // browser is on its way to the return_url, or to the bank's 3-D Secure page): the error.
    /** @returns {Promise<ShownError>} */
    async function confirm() {
      if (!stripe || !elements) return {};
      try {
        const submitted = await elements.submit();
        if (submitted.error) return submitted.error;
        const result = await stripe.confirmPayment({
          elements: elements,
          confirmParams: {
            return_url: config.returnUrl,
            receipt_email: state.email,
            payment_method_data: {billing_details: {email: state.email}},
          },
        });
        return result.error || {};
      } catch (e) {
        return {};
      }
    }

    // A card's refusal or a field's problem is the shopper's to fix: the payment did not go
    // through. Anything else (the answer lost on the way, another tab paying the same attempt)
    // says nothing about whether it did.
    /** @param {ShownError} error */
    function isShoppersOwn(error) {
      return error.type === 'card_error' || error.type === 'validation_error';
    }

    /**
     * The shop did not answer Pay's last look at the order with the PaymentIntent: Stripe
     * unavailable (the shopper can try again, nothing was charged), the payment already under
     * way (another tab: it may have gone through), or the shop's own message.
     * @param {unknown} e
     * @returns {Promise<Failure | null>}
     */
    async function requoteFailed(e) {
      const text = e instanceof Error ? e.message : GENERIC_ERROR;
      if (!(e instanceof ShopError)) return {text: text, retry: true}; // the Elements' refresh
      if (isRefusal(e)) return {text: text, refused: true}; // as a refused checkout: no Pay
      if (e.status === 503) return {text: UNAVAILABLE, retry: true};
      if (e.status === 409) return outcome({text: text});
      // Nothing was confirmed, so paying again is safe: after the wait the shop asked for (429),
      // or at once after a timeout, a failure to reach the shop or an answer that was not the
      // shop's JSON (a server failure, a proxy's page).
      if (e.status === 429) {
        const wait = busyWait(e.retryAfter);
        return {text: BUSY + ' Nothing was charged: please try again in ' + wait
          + ' s, you will not be charged twice.', retry: true, wait: wait};
      }
      let said = 'The shop did not answer.';
      if (e.status === 0) said = 'Could not reach the shop.';
      else if (e.status === 408) said = TIMED_OUT;
      return {text: said + NOT_PAID_YET, retry: true};
    }

    /**
     * What became of the attempt's PaymentIntent, after Pay failed in a way that does not say
     * whether it was paid: when Stripe says it was (or is processing), the page goes where
     * Stripe.js would have sent it, the return page; otherwise resolves `failure`, or says that
     * the payment could not be checked when Stripe could not be asked.
     * @param {Failure} failure
     * @returns {Promise<Failure | null>} null: the page is leaving for the return page
     */
    async function outcome(failure) {
      for (let tries = 1; tries <= OUTCOME_TRIES; tries++) {
        if (tries > 1) await new Promise((done) => setTimeout(done, OUTCOME_WAIT_MS));
        const intent = await retrieveIntent();
        if (!intent) continue;
        // The lost confirmation left a challenge to pass (3-D Secure): Stripe.js shows it,
        // as confirmPayment would have.
        if (intent.status === 'requires_action') return finishAction(failure);
        // Declined (the card's refusal lost on the way): why, in the card's words, as the
        // confirmation's answer would have said it; unless it is a refusal already said.
        const declined = intent.status === 'requires_payment_method' && intent.last_payment_error;
        if (declined && declineKey(declined) && !declineSaid(declineKey(declined))) {
          noteDecline(declined);
          return {error: declined};
        }
        const status = REDIRECT_STATUS[intent.status];
        if (!status) return failure;
        window.location.assign(returnPageUrl(intent.id, clientSecret, status));
        return null;
      }
      return {text: UNCHECKED};
    }

    /**
     * The next action of a PaymentIntent whose confirmation's answer was lost on the way, handled
     * by Stripe.js; then the return page when it paid, or the card's refusal to show.
     * @param {Failure} failure what to say if the action ends with the payment still unpaid
     * @returns {Promise<Failure | null>}
     */
    async function finishAction(failure) {
      if (!stripe || !clientSecret) return failure;
      let result;
      try {
        result = await stripe.handleNextAction({clientSecret: clientSecret});
      } catch (e) {
        return failure;
      }
      noteDecline(result.error);
      if (result.error) return {error: result.error}; // the challenge failed: the card's words
      const intent = 'paymentIntent' in result ? result.paymentIntent : undefined;
      const status = intent ? REDIRECT_STATUS[intent.status] : undefined;
      if (!intent || !status) return failure;
      window.location.assign(returnPageUrl(intent.id, clientSecret, status));
      return null;
    }

    /** @returns {Promise<PaymentIntent | null>} the attempt's PaymentIntent as Stripe has it now */
    async function retrieveIntent() {
      if (!stripe || !clientSecret) return null;
      try {
        const retrieved = await stripe.retrievePaymentIntent(clientSecret);
        return retrieved.paymentIntent || null;
      } catch (e) {
        return null;
      }
    }

    /**
     * The return page of a PaymentIntent, as Stripe.js builds it from the return_url.
     * @param {string} id
     * @param {string} secret
     * @param {string} status the redirect_status
     */
    function returnPageUrl(id, secret, status) {
      const url = new URL(config.returnUrl, window.location.href);
      url.searchParams.set('payment_intent', id);
      url.searchParams.set('payment_intent_client_secret', secret);
      url.searchParams.set('redirect_status', status);
      return url.toString();
    }

    /** @param {Failure | null} failure null: nothing to say, the page is leaving */
    function showFailure(failure) {
      if (!failure) return;
      setBusy(false); // first: the fields must be focusable again before focus moves there
      if (failure.error) {
        showError(failure.error);
        return;
      }
      if (failure.refused) {
        refused(failure.text || GENERIC_ERROR);
        message.focus(); // Pay, which had the focus, is gone
        return;
      }
      showMessage(failure.text || GENERIC_ERROR);
      if (failure.retry) {
        retryButton.textContent = 'Try again';
        offerRetry(failure.wait || 0);
      }
      message.focus();
    }

    /**
     * Shows the retry button, after `wait` seconds when the shop asked to wait: Pay, another way
     * to try again, stays disabled until then too.
     * @param {number} wait
     */
    function offerRetry(wait) {
      retryButton.hidden = !!wait;
      if (!wait) return;
      state.waiting += 1;
      refreshButton();
      setTimeout(() => {
        state.waiting -= 1;
        if (!state.busy && message.textContent) retryButton.hidden = false; // still said
        refreshButton();
      }, 1000 * wait);
    }

    /** @param {PaidAttempt} paid */
    function showPaidNotice(paid) {
      const intentId = paid.paymentIntentId || '';
      paidOrder.textContent = paid.orderId || intentId;
      const secret = intentId ? recall(SECRET_KEY + intentId) : null;
      // The order's own page, as Stripe's return_url would show it.
      if (secret) paidOrderLink.href = returnPageUrl(intentId, secret, 'succeeded');
      paidOrderLink.hidden = !secret;
      showNotice();
    }

    /**
     * The attempt is over, as a quote for the address heard (409 `attempt_finished`): paid
     * (another tab of it paid), the "you already paid" notice, as Pay's last look shows it, with
     * the order's page and a new attempt; canceled (another tab paid the cart), that this
     * checkout is over and nothing was charged, and a new attempt: of the cart as it is now, or
     * the cart page when it is empty.
     * @param {PaidAttempt} finished
     */
    function attemptOver(finished) {
      quoting.pending = null; // nothing more to quote
      if (finished.status === 'succeeded') {
        showPaidNotice(finished);
        return;
      }
      paidNoticeText.textContent = ATTEMPT_OVER;
      paidOrderLink.hidden = true;
      newAttemptButton.textContent = 'Start a new checkout';
      showNotice();
    }

    // The notice instead of the form. The totals beside it are this page's, not what was paid
    // (which may have had shipping and tax the page never priced): the order's own page says
    // what was paid.
    function showNotice() {
      orderTotals.hidden = true;
      totalsNote.hidden = true;
      form.hidden = true;
      paidNotice.hidden = false;
      paidNotice.focus();
    }

    /** @param {boolean} fresh */
    async function start(fresh) {
      buttonText.textContent = payLabel();
      refreshButton();
      if (typeof window.Stripe !== 'function') {
        loadFailed(LOAD_ERROR + ' Stripe.js did not load.');
        return;
      }
      let result;
      try {
        result = await createIntent(fresh);
      } catch (e) {
        if (isRefusal(e)) {
          refused(e instanceof Error ? e.message : GENERIC_ERROR);
          message.focus(); // the form is gone: the keyboard and screen reader go to the why
        } else if (e instanceof ShopError && e.status === 429) {
          loadFailed(e.message, busyWait(e.retryAfter));
        } else {
          loadFailed(e instanceof Error ? e.message : LOAD_ERROR);
        }
        return;
      }
      if ('paid' in result) {
        showPaidNotice(result.paid);
        return;
      }
      intentId = result.intent.paymentIntentId;
      clientSecret = result.intent.clientSecret;
      orderTotals.hidden = false;
      try {
        // First: the Elements ask Stripe for the PaymentIntent, and the quote is shown meanwhile.
        mountElements(result.intent.clientSecret);
      } catch (e) {
        loadFailed(LOAD_ERROR);
        return;
      }
      showIntentQuote(result.intent);
    }

    form.addEventListener('submit', pay);
    // Quantities (paying for a cart): each change goes to the server, which re-prices the order.
    orderLines.addEventListener('submit', (event) => {
      const target = event.target;
      if (!(target instanceof HTMLFormElement)) return;
      event.preventDefault();
      const line = target.closest('[data-item]');
      const input = target.querySelector('input[name="quantity"]');
      if (line instanceof HTMLElement && input instanceof HTMLInputElement) {
        changeQuantity(line.dataset.item || '', input.value, false);
      }
    });
    orderLines.addEventListener('change', (event) => {
      const input = event.target;
      const line = input instanceof HTMLInputElement ? input.closest('[data-item]') : null;
      if (input instanceof HTMLInputElement && line instanceof HTMLElement) {
        changeQuantity(line.dataset.item || '', input.value, true);
      }
    });
    // A delivery option chosen: quote it (Pay waits for the new total).
    rateOptions.addEventListener('change', () => {
      if (!state.busy) quoteWanted();
    });
    retryButton.addEventListener('click', () => {
      // The form could not load: load it again. Pay failed for now: pay again, as filled in.
      if (state.loadFailed) {
        window.location.reload();
        return;
      }
      retryButton.hidden = true;
      form.requestSubmit(button);
    });
    newAttemptButton.addEventListener('click', () => {
      if (elements) {
        // The Elements on the page are the finished attempt's: the new attempt, a page of its
        // own (the cart's checkout as the cart is now, the cart page when it is empty).
        if (early) early.forget();
        window.location.reload();
        return;
      }
      paidNotice.hidden = true;
      form.hidden = false;
      state.focusWhenReady = true;
      start(true); // only now, because the shopper asked: a new attempt, a new PaymentIntent
    });
    start(false);
  }
})();
