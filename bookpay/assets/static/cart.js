/*
 * The catalog's "Add to cart" and the cart page's quantities, without leaving the page.
 *
 * Every form here works without this script (a plain POST and a redirect back). With it, the
 * same request is sent as JSON; the answer is the cart as the server has it, which updates the
 * header's count, the cart's lines and its subtotal, and says what happened in a live region.
 * A change the server refuses (more than 10 copies, a full cart, another currency) is shown as
 * the server worded it. Shown again from the browser's history (Back, the back-forward cache),
 * the cart page reloads and every other page asks the shop for the header's count: this script
 * is on every page but the checkout (which reloads itself).
 */
/**
 * @typedef {{item: string, quantity: number, lineText: string}} CartLine
 * @typedef {{count: number, lines: CartLine[], subtotalText: string, notice: string,
 *   problem: string}} CartAnswer
 */
(function () {
  'use strict';

  const GENERIC_ERROR = 'Something went wrong. Please try again.';

  /** @param {string} id */
  function find(id) {
    return document.getElementById(id);
  }

  /** @param {CartAnswer} cart */
  function showCount(cart) {
    const count = find('cart-count');
    if (count) count.textContent = String(cart.count);
  }

  /**
   * The form's fields (and the pressed button's: Remove is quantity 0).
   * @param {HTMLFormElement} form
   * @param {HTMLElement | null} [submitter]
   * @returns {Record<string, FormDataEntryValue>}
   */
  function fields(form, submitter) {
    /** @type {Record<string, FormDataEntryValue>} */
    const data = Object.fromEntries(new FormData(form).entries());
    if (submitter instanceof HTMLButtonElement && submitter.name) data[submitter.name] = submitter.value;
    delete data.next;
    return data;
  }

  /**
   * The form's fields (or `data`), as JSON.
   * @param {HTMLFormElement} form
   * @param {HTMLElement | null} [submitter]
   * @param {Record<string, FormDataEntryValue>} [data]
   * @returns {Promise<{cart?: CartAnswer, error?: string}>}
   */
  async function send(form, submitter, data) {
    data = data || fields(form, submitter);
    let response;
    try {
      response = await fetch(form.action, {
        method: 'POST',
        headers: {'Content-Type': 'application/json', 'Accept': 'application/json'},
        credentials: 'same-origin',
        body: JSON.stringify(data),
      });
    } catch (e) {
      return {error: 'Could not reach the shop. Check your connection and try again.'};
    }
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    if (response.ok && body && body.cart) return {cart: body.cart};
    return {error: (body && body.error && body.error.message) || GENERIC_ERROR};
  }

  /* The catalog: "Add to cart" stays on the page. */
  const status = find('cart-status');
  document.querySelectorAll('form.add-to-cart').forEach((node) => {
    const form = /** @type {HTMLFormElement} */ (node);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const button = form.querySelector('button');
      if (button) button.disabled = true;
      const answer = await send(form);
      if (button) button.disabled = false;
      if (!status) return;
      if (answer.cart) {
        showCount(answer.cart);
        const title = form.closest('.book')?.querySelector('.book-title')?.textContent || 'The book';
        status.textContent = title + ' is in your cart (' + answer.cart.count + ' in all).';
      } else {
        status.textContent = answer.error || GENERIC_ERROR;
      }
    });
  });

  /* Every page: shown again from the browser's history (restored from the back-forward cache,
     or loaded from the HTTP cache on Back), a page shows the cart as it was left, maybe changed
     or paid for since (on the cart page, in another tab): the cart page asks the shop afresh (a
     reload, as the checkout page does); any other page asks for the header's count. */
  window.addEventListener('pageshow', (event) => {
    if (find('cart-heading')) {
      if (event.persisted) window.location.reload(); // never stored: Back loads it afresh
    } else if (event.persisted || navigationType() === 'back_forward') {
      refreshCount();
    }
  });

  function navigationType() {
    const nav = performance.getEntriesByType('navigation')[0];
    return nav instanceof PerformanceNavigationTiming ? nav.type : '';
  }

  // The header's count as the shop has it now (unchanged when the shop cannot say).
  async function refreshCount() {
    const link = document.querySelector('a.cart-link');
    try {
      const response = await fetch((link && link.getAttribute('href')) || '/cart', {
        headers: {'Accept': 'application/json'},
        credentials: 'same-origin',
        cache: 'no-store',
      });
      const body = response.ok ? await response.json() : null;
      if (body && body.cart) showCount(body.cart);
    } catch (e) {
      // not reached, or not the shop's JSON: the count stays as it was
    }
  }

  /* The cart page: quantities and removals update the lines and the subtotal in place. */
  const lines = find('cart-lines');
  const message = find('cart-message');
  if (lines && message) enhanceCart(lines, message);

  /**
   * @param {HTMLElement} lines
   * @param {HTMLElement} message
   */
  function enhanceCart(lines, message) {
    /** @param {CartAnswer} cart */
    function showCart(cart) {
      if (!cart.lines.length) {
        window.location.reload(); // the empty cart's page says so and leads back to the books
        return;
      }
      showCount(cart);
      Array.from(lines.children).forEach((node) => {
        const item = /** @type {HTMLElement} */ (node).dataset.item;
        const line = cart.lines.find((l) => l.item === item);
        if (!line) {
          node.remove();
          return;
        }
        const amount = node.querySelector('.line-amount');
        if (amount) amount.textContent = line.lineText;
        const input = node.querySelector('input[name="quantity"][type="number"]');
        if (input instanceof HTMLInputElement) {
          input.value = String(line.quantity);
          input.dataset.quantity = input.value;
        }
      });
      const subtotal = find('cart-subtotal');
      if (subtotal) subtotal.textContent = cart.subtotalText;
    }

    // Changes go one after the other, each with the fields as the shopper left them: the cart
    // keeps the last one made, and answers are shown in the order asked.
    /** @type {Promise<void>} */
    let changes = Promise.resolve();
    let pending = 0;

    /**
     * @param {HTMLFormElement} form
     * @param {HTMLElement | null} [submitter]
     */
    function change(form, submitter) {
      const data = fields(form, submitter); // as the shopper left it now
      pending += 1;
      lines.setAttribute('aria-busy', 'true');
      changes = changes.then(() => sendChange(form, data)).finally(() => {
        pending -= 1;
        if (!pending) lines.setAttribute('aria-busy', 'false');
      });
    }

    /**
     * @param {HTMLFormElement} form
     * @param {Record<string, FormDataEntryValue>} data
     */
    async function sendChange(form, data) {
      const answer = await send(form, null, data);
      if (answer.cart) {
        message.textContent = answer.cart.problem || '';
        markRefused(null);
        showCart(answer.cart);
        return;
      }
      message.textContent = answer.error || GENERIC_ERROR;
      // A refused quantity is not the cart's: show the one it still has beside its subtotal.
      const input = form.querySelector('input[name="quantity"][type="number"]');
      markRefused(input instanceof HTMLInputElement ? input : null);
      if (input instanceof HTMLInputElement) input.value = input.dataset.quantity || input.defaultValue;
    }

    /**
     * The field whose quantity was refused is invalid and described by the message (an alert),
     * so a screen reader says why when it comes back to it; the others, and every field once a
     * change goes through, are not.
     * @param {HTMLInputElement | null} refused
     */
    function markRefused(refused) {
      lines.querySelectorAll('input[name="quantity"]').forEach((input) => {
        if (input === refused) {
          input.setAttribute('aria-invalid', 'true');
          input.setAttribute('aria-describedby', message.id);
        } else {
          input.removeAttribute('aria-invalid');
          input.removeAttribute('aria-describedby');
        }
      });
    }

    lines.addEventListener('submit', (event) => {
      if (!(event.target instanceof HTMLFormElement)) return;
      event.preventDefault();
      change(event.target, event.submitter);
    });
    lines.addEventListener('change', (event) => {
      const input = event.target;
      if (input instanceof HTMLInputElement && input.form && input.type === 'number') {
        change(input.form);
      }
    });
  }
})();
