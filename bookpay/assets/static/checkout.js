/*
 * bookpay's checkout page: Link Authentication, Address and Payment Elements, as in Stripe's
 * accept-a-payment sample. The server fixes the amount; this script only asks it for the
 * PaymentIntent of this checkout attempt, mounts the Elements and confirms.
 *
 * Configuration comes from the page's JSON block (no inline scripts: the CSP forbids them).
 */
(function () {
  'use strict';

  const config = JSON.parse(document.getElementById('checkout-config').textContent);
  const form = document.getElementById('payment-form');
  const button = document.getElementById('submit-button');
  const buttonText = button.querySelector('.button-text');
  const message = document.getElementById('payment-message');
  const retryButton = document.getElementById('retry-button');

  const GENERIC_ERROR = 'Something went wrong. Please try again.';
  const LOAD_ERROR = 'The payment form could not be loaded.';
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
  // One attempt per book per tab: a reload reuses its PaymentIntent instead of making another.
  const ATTEMPT_KEY = 'bookpay.attempt.' + config.item;

  const state = {
    ready: new Set(),
    email: '',
    emailComplete: false,
    addressComplete: false,
    loadFailed: false,
    busy: false,
  };
  let stripe = null;
  let elements = null;

  /* ------------------------------------------------------------------ messages ---------- */

  function showMessage(text, kind) {
    message.textContent = text || '';
    message.classList.toggle('is-info', kind === 'info');
  }

  // Card and validation errors are written for shoppers; anything else is not.
  function showError(error) {
    const shopperFacing = error && (error.type === 'card_error' || error.type === 'validation_error');
    showMessage(shopperFacing && error.message ? error.message : GENERIC_ERROR);
  }

  function canPay() {
    return state.ready.size === 3 && state.emailComplete && state.addressComplete
      && !state.loadFailed;
  }

  function refreshButton() {
    button.disabled = state.busy || !canPay();
  }

  function setBusy(busy) {
    state.busy = busy;
    form.classList.toggle('is-busy', busy);
    form.setAttribute('aria-busy', busy ? 'true' : 'false');
    buttonText.textContent = busy ? 'Processing…' : config.payLabel;
    refreshButton();
  }

  function loadFailed(text) {
    state.loadFailed = true;
    refreshButton();
    showMessage(text || LOAD_ERROR);
    retryButton.hidden = false;
  }

  /* ------------------------------------------------------------- the attempt ------------ */

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

  function attemptId(fresh) {
    let id = null;
    try {
      id = fresh ? null : window.sessionStorage.getItem(ATTEMPT_KEY);
    } catch (e) {
      id = null; // storage disabled: every load is a new attempt
    }
    if (!id || !UUID.test(id)) {
      id = uuid4();
      try {
        window.sessionStorage.setItem(ATTEMPT_KEY, id);
      } catch (e) {
        // nothing to do: the attempt simply won't survive a reload
      }
    }
    return id;
  }

  // The PaymentIntent of this attempt. A 409 means the attempt was already paid or canceled
  // (the back button after paying): start a new attempt, once.
  async function createIntent() {
    for (let round = 0; round < 2; round++) {
      let response;
      try {
        response = await fetch(config.createIntentUrl, {
          method: 'POST',
          headers: {'Content-Type': 'application/json', 'Accept': 'application/json'},
          credentials: 'same-origin',
          body: JSON.stringify({item: config.item, attemptId: attemptId(round > 0)}),
        });
      } catch (e) {
        throw new Error('Could not reach the shop. Check your connection and try again.');
      }
      let body = null;
      try {
        body = await response.json();
      } catch (e) {
        body = null;
      }
      if (response.ok && body && body.clientSecret) return body;
      if (response.status === 409 && round === 0) continue;
      throw new Error((body && body.error && body.error.message) || GENERIC_ERROR);
    }
    throw new Error(GENERIC_ERROR);
  }

  /* ---------------------------------------------------------------- Elements ------------ */

  function mountElements(clientSecret) {
    stripe = window.Stripe(config.publishableKey);
    elements = stripe.elements({
      clientSecret: clientSecret,
      loader: 'auto',
      appearance: {theme: 'stripe', variables: {colorPrimary: '#4f46e5'}},
    });
    const link = elements.create('linkAuthentication');
    const address = elements.create('address', {mode: 'shipping'});
    // The email comes from the Link Authentication Element, so the Payment Element doesn't ask.
    const payment = elements.create('payment', {
      layout: 'tabs',
      fields: {billingDetails: {email: 'never'}},
    });

    link.on('change', (event) => {
      state.email = (event.value && event.value.email) || '';
      state.emailComplete = !!event.complete;
    });
    address.on('change', (event) => {
      state.addressComplete = !!event.complete;
    });
    [link, address, payment].forEach((element) => {
      element.on('ready', () => {
        state.ready.add(element);
        refreshButton();
      });
      element.on('change', () => {
        if (!state.busy) showMessage(''); // the shopper is fixing things: clear the last error
        refreshButton();
      });
      element.on('loaderror', (event) => {
        loadFailed((event && event.error && event.error.message) || LOAD_ERROR);
      });
    });

    link.mount('#link-auth-element');
    address.mount('#address-element');
    payment.mount('#payment-element');
  }

  async function pay(event) {
    event.preventDefault();
    if (state.busy || !canPay()) return; // double-submit guard
    setBusy(true);
    showMessage('');
    try {
      const submitted = await elements.submit();
      if (submitted.error) {
        showError(submitted.error);
        return;
      }
      const {error} = await stripe.confirmPayment({
        elements: elements,
        confirmParams: {
          return_url: config.returnUrl,
          receipt_email: state.email,
          payment_method_data: {billing_details: {email: state.email}},
        },
      });
      // Only reached when confirming failed at once; otherwise the browser is on its way to the
      // return_url (or to the bank's 3-D Secure page).
      showError(error);
    } catch (e) {
      showError(null);
    } finally {
      setBusy(false);
    }
  }

  async function start() {
    buttonText.textContent = config.payLabel;
    refreshButton();
    if (typeof window.Stripe !== 'function') {
      loadFailed(LOAD_ERROR + ' Stripe.js did not load.');
      return;
    }
    let intent;
    try {
      intent = await createIntent();
    } catch (e) {
      loadFailed(e.message);
      return;
    }
    try {
      mountElements(intent.clientSecret);
    } catch (e) {
      loadFailed(LOAD_ERROR);
    }
  }

  form.addEventListener('submit', pay);
  retryButton.addEventListener('click', () => window.location.reload());
  start();
})();
