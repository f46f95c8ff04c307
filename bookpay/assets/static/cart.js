/*
 * The catalog's "Add to cart" and the cart page's quantities, without leaving the page.
 *
 * Every form here works without this script (a plain POST and a redirect back). With it, the
 * same request is sent as JSON; the answer is the cart as the server has it, which updates the
 * header's count, the cart's lines and its subtotal, and says what happened in a live region.
 * A change the server refuses (more than 10 copies, a full cart, another currency) is shown as
 * the server worded it; an answer that is not the shop's (a proxy's page, a timeout, a rate limit,
 * a lost connection) says so, and the page asks the shop for the cart as it is. Every request of
 * the page goes one after the other, in the order made, so an older answer is never shown after
 * a newer one, and none while a press is under way (its click would be lost as the page moved
 * under it: fetch-answer.js's afterPress). Shown again from the browser's history (Back, the
 * back-forward cache), the cart page reloads and every other page asks the shop for the
 * header's count: this script is on every page but the checkout (which reloads itself).
 */
/**
 * @typedef {{item: string, title: string, quantity: number, unitText: string, lineText: string}}
 *   CartLine
 * @typedef {{count: number, lines: CartLine[], subtotalText: string, notice: string,
 *   problem: string}} CartAnswer
 */
(function () {
  'use strict';

  // The shop's fetch helper (fetch-answer.js, the deferred script before this one). Without it
  // (it did not load) the page's forms work as they do without this script.
  const found = window.bookpayFetch;
  if (!found) return;
  const shop = found;
  const {GENERIC_ERROR, UNREACHED, notNowText} = shop;

  /** @param {string} id */
  function find(id) {
    return document.getElementById(id);
  }

  /** @param {CartAnswer} cart */
  function showCount(cart) {
    const count = find('cart-count');
    if (count) count.textContent = String(cart.count);
  }

  // Every request of the page goes one after the other, in the order asked: the cart keeps the
  // last change made, and answers are shown in the order asked (an older, slower answer never
  // shows a cart older than the one shown).
  /** @type {Promise<void>} */
  let queue = Promise.resolve();

  /**
   * Runs `task` once every request asked before it has been answered and shown.
   * @param {() => Promise<void>} task
   * @returns {Promise<void>}
   */
  function enqueue(task) {
    const run = queue.then(task);
    queue = run.catch(() => {}); // one failed task does not stop the ones after it
    return run;
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
   * Sends `data` to `url` as JSON: the cart as the shop has it after the change, or what to say.
   * `refused`: the shop itself said no to this change (asking again will not change that).
   * @param {string} url
   * @param {Record<string, FormDataEntryValue>} data
   * @returns {Promise<{cart?: CartAnswer, error?: string, refused?: boolean}>}
   */
  async function send(url, data) {
    const answer = await shop.postJson(url, data);
    if (answer.status === 0) return {error: UNREACHED};
    const body = answer.body;
    if (answer.ok && body && body.cart) return {cart: body.cart};
    const notNow = notNowText(answer.status, answer.retryAfter);
    if (notNow) return {error: notNow};
    const said = (body && body.error && body.error.message) || '';
    const status = answer.status;
    // A 4xx of the shop's refuses the change, but a 409 (a payment under way) is about the cart,
    // not the quantity asked for (as checkout.js has it).
    const refused = Boolean(said) && status >= 400 && status < 500 && status !== 409;
    return {error: said || GENERIC_ERROR, refused: refused};
  }

  /**
   * The cart as the shop has it now, or null when the shop cannot say.
   * @returns {Promise<CartAnswer | null>}
   */
  async function askCart() {
    const link = document.querySelector('a.cart-link');
    const url = (link && link.getAttribute('href')) || '/cart';
    const answer = await shop.readAnswer(shop.fetchAnswer(url, {
      headers: {'Accept': 'application/json'},
      credentials: 'same-origin',
      cache: 'no-store',
    }));
    // null: not reached, or not the shop's JSON
    return answer.ok && answer.body && answer.body.cart ? answer.body.cart : null;
  }

  /* The catalog: "Add to cart" stays on the page. What became of it is said next to the button
     pressed, not at the top of the page, which a book further down has scrolled out of view
     with the header's count: a success politely (a status), a refusal or a failure as an error
     (an alert, styled as one). One message at a time: the last one. */
  /** @type {Map<HTMLFormElement, {ok: HTMLElement, error: HTMLElement}>} */
  const addMessages = new Map();
  document.querySelectorAll('form.add-to-cart').forEach((node) => {
    const form = /** @type {HTMLFormElement} */ (node);
    const button = form.querySelector('button');
    addMessages.set(form, messagesFor(form));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      // Not disabled (the focus would leave it): a second press while it is on its way is
      // ignored, so a double click adds one copy.
      if (button && button.getAttribute('aria-disabled') === 'true') return;
      if (button) button.setAttribute('aria-disabled', 'true');
      const data = fields(form);
      enqueue(() => add(form, data)).finally(() => {
        if (button) button.removeAttribute('aria-disabled');
      });
    });
  });

  /**
   * The book's two live regions, empty (and so not shown) until an add has something to say,
   * after its buttons: they are there before anything is said in them, so it is announced.
   * @param {HTMLFormElement} form
   */
  function messagesFor(form) {
    const place = form.closest('.book-actions') || form;
    const ok = document.createElement('p');
    ok.className = 'cart-status add-status';
    ok.setAttribute('role', 'status');
    const error = document.createElement('p');
    error.className = 'cart-message add-status';
    error.setAttribute('role', 'alert');
    place.after(ok, error);
    return {ok: ok, error: error};
  }

  /**
   * Says `text` next to `form`'s button (an error, or a success), in view, and nothing elsewhere.
   * @param {HTMLFormElement} form
   * @param {string} text
   * @param {boolean} error
   */
  function sayNear(form, text, error) {
    addMessages.forEach((regions) => {
      regions.ok.textContent = '';
      regions.error.textContent = '';
    });
    const regions = addMessages.get(form);
    if (!regions) return;
    const region = error ? regions.error : regions.ok;
    region.textContent = text;
    region.scrollIntoView({block: 'nearest'});
  }

  /**
   * @param {HTMLFormElement} form
   * @param {Record<string, FormDataEntryValue>} data
   */
  async function add(form, data) {
    const answer = await send(form.action, data);
    if (answer.cart) {
      showCount(answer.cart);
    } else {
      // The add may have gone through behind an answer that is not the shop's: the count is
      // the cart's own, asked again.
      const cart = await askCart();
      if (cart) showCount(cart);
    }
    if (answer.cart) {
      const title = form.closest('.book')?.querySelector('.book-title')?.textContent || 'The book';
      sayNear(form, title + ' is in your cart (' + answer.cart.count + ' in all).', false);
    } else {
      sayNear(form, answer.error || GENERIC_ERROR, true);
    }
  }

  /* Every page: shown again from the browser's history (restored from the back-forward cache,
     or loaded from the HTTP cache on Back), a page shows the cart as it was left, maybe changed
     or paid for since (on the cart page, in another tab): the cart page asks the shop afresh (a
     reload, as the checkout page does); any other page asks for the header's count. */
  window.addEventListener('pageshow', (event) => {
    if (find('cart-heading')) {
      if (event.persisted) window.location.reload(); // never stored: Back loads it afresh
    } else if (event.persisted || navigationType() === 'back_forward') {
      enqueue(refreshCount);
    }
  });

  function navigationType() {
    const nav = performance.getEntriesByType('navigation')[0];
    return nav instanceof PerformanceNavigationTiming ? nav.type : '';
  }

  // The header's count as the shop has it now (unchanged when the shop cannot say).
  async function refreshCount() {
    const cart = await askCart();
    if (cart) showCount(cart);
  }

  /* The cart page: quantities and removals update the page in place, as a reload would show it. */
  const lines = find('cart-lines');
  const message = find('cart-message');
  if (lines && message) enhanceCart(lines, message);

  /**
   * @param {HTMLElement} lines
   * @param {HTMLElement} message
   */
  function enhanceCart(lines, message) {
    const notice = find('cart-notice');
    const heading = find('cart-heading');
    /** @type {Map<string, number>} changes of each line asked for and not yet answered */
    const unanswered = new Map();
    /** @type {Map<string, string>} the quantity each line's field last sent */
    const sent = new Map();
    /** @type {Set<string>} the changes on their way (their form's action and fields) */
    const waiting = new Set();

    /** @param {Element} node */
    function itemOf(node) {
      return node instanceof HTMLElement ? node.dataset.item || '' : '';
    }

    /**
     * The line's node for `line`: the page's own, or one made like the first (a book added in
     * another tab), named for its own book.
     * @param {CartLine} line
     * @returns {HTMLElement | null}
     */
    function lineNode(line) {
      const found = Array.from(lines.children).find((node) => itemOf(node) === line.item);
      if (found instanceof HTMLElement) return found;
      const model = lines.firstElementChild;
      if (!model) return null;
      const node = /** @type {HTMLElement} */ (model.cloneNode(true));
      const path = '/cart/items/' + encodeURIComponent(line.item);
      node.dataset.item = line.item;
      const cover = node.querySelector('img');
      if (cover) cover.src = '/covers/' + encodeURIComponent(line.item) + '.svg';
      node.querySelectorAll('form').forEach((form) => {
        form.action = path;
      });
      setText(node, 'label .line-of', ' of ' + line.title);
      setText(node, 'button .line-of', ' quantity of ' + line.title);
      const remove = node.querySelector('button[value="0"]');
      if (remove) remove.setAttribute('aria-label', 'Remove ' + line.title);
      const input = quantityOf(node);
      if (input) input.dataset.quantity = '';
      return node;
    }

    /**
     * @param {Element} node
     * @param {string} selector
     * @param {string} text
     */
    function setText(node, selector, text) {
      const found = node.querySelector(selector);
      if (found) found.textContent = text;
    }

    /**
     * The quantity last sent for `item`'s field, else the one the page showed it with.
     * @param {string} item
     * @param {HTMLInputElement} input
     */
    function lastSent(item, input) {
      return sent.get(item) ?? input.dataset.quantity ?? input.defaultValue;
    }

    /** @param {Element} node */
    function quantityOf(node) {
      const input = node.querySelector('input[name="quantity"][type="number"]');
      return input instanceof HTMLInputElement ? input : null;
    }

    /**
     * Shows the cart as the shop answered it, as a reload would: its lines (in its order), the
     * subtotal, the count, the notice, the problem (unless `error` is said instead) and the way
     * to the checkout (not while the cart has a problem).
     * @param {CartAnswer} cart
     * @param {string} [error] what to say instead of the cart's problem
     */
    function showCart(cart, error) {
      showCount(cart);
      // The shop names a dropped book once, in the answer that drops it: the notice stays till
      // another replaces it (the answer to the next change may come before it is read).
      if (notice && cart.notice) notice.textContent = cart.notice;
      message.textContent = error || cart.problem || '';
      const checkout = find('checkout-link');
      if (checkout) checkout.hidden = Boolean(cart.problem) || !cart.lines.length;
      if (!cart.lines.length) {
        showEmpty();
        return;
      }
      const focused = document.activeElement;
      const gone = Array.from(lines.children).filter(
        (node) => !cart.lines.some((line) => line.item === itemOf(node)));
      const nodes = cart.lines.map(lineNode);
      if (nodes.some((node) => !node)) {
        window.location.reload(); // nothing to make a line like: the page shows the cart afresh
        return;
      }
      // The focus on a line that goes (its Remove) goes to the line after it, else before it.
      const lost = gone.find((node) => focused instanceof Node && node.contains(focused));
      let next = null;
      if (lost) {
        const all = Array.from(lines.children);
        const at = all.indexOf(lost);
        next = all.slice(at + 1).find((node) => !gone.includes(node))
          || all.slice(0, at).reverse().find((node) => !gone.includes(node)) || null;
      }
      gone.forEach((node) => node.remove());
      cart.lines.forEach((line, i) => {
        const node = /** @type {HTMLElement} */ (nodes[i]);
        if (lines.children[i] !== node) lines.insertBefore(node, lines.children[i] || null);
        setText(node, '.line-title', line.title);
        setText(node, '.line-unit', line.unitText + ' each');
        setText(node, '.line-amount', line.lineText);
        const input = quantityOf(node);
        if (input) {
          // A field whose later change is still on its way, or that the shopper is typing in
          // (not sent yet), keeps what the shopper typed.
          const typing = document.activeElement === input && input.value !== lastSent(line.item, input);
          if (!unanswered.get(line.item) && !typing) input.value = String(line.quantity);
          input.dataset.quantity = String(line.quantity);
        }
      });
      const subtotal = find('cart-subtotal');
      if (subtotal) subtotal.textContent = cart.subtotalText;
      if (next) {
        const input = quantityOf(next);
        if (input) input.focus();
      }
    }

    // The emptied cart, shown as its page shows it (with the notice, if a book was dropped).
    function showEmpty() {
      const focused = document.activeElement;
      const section = lines.closest('section');
      const empty = find('cart-empty');
      if (!section || !empty) {
        window.location.reload();
        return;
      }
      const lost = focused instanceof Node && section.contains(focused) && !empty.contains(focused);
      section.querySelectorAll('#cart-lines, .totals, .cart-actions').forEach((node) => node.remove());
      empty.hidden = false;
      if (lost && heading) heading.focus();
    }

    /**
     * Asks for a change, sent once every change asked before it is answered, with the fields as
     * the shopper left them now; the same change asked again while it is on its way (Enter,
     * then the change of the field; a double click) is not.
     * @param {HTMLFormElement} form
     * @param {HTMLElement | null} [submitter]
     */
    function change(form, submitter) {
      const data = fields(form, submitter);
      const key = form.action + ' ' + JSON.stringify(data);
      if (waiting.has(key)) return;
      const item = itemOf(form.closest('[data-item]') || form);
      waiting.add(key);
      if (typeof data.quantity === 'string' && quantityOf(form)) sent.set(item, data.quantity);
      unanswered.set(item, (unanswered.get(item) || 0) + 1);
      lines.setAttribute('aria-busy', 'true');
      enqueue(async () => {
        const answer = await send(form.action, data);
        // Not shown under a press (the Remove of another line, which sent this change by taking
        // the focus from its field): it would move what is pressed, and the click be lost. The
        // changes after this one wait with it, in order.
        await shop.afterPress();
        waiting.delete(key);
        unanswered.set(item, (unanswered.get(item) || 1) - 1);
        await showAnswer(form, item, answer);
      }).finally(() => {
        if (!waiting.size) lines.setAttribute('aria-busy', 'false');
      });
    }
    /**
     * @param {HTMLFormElement} form
     * @param {string} item
     * @param {{cart?: CartAnswer, error?: string, refused?: boolean}} answer
     */
    async function showAnswer(form, item, answer) {
      if (answer.cart) {
        markRefused(null);
        showCart(answer.cart);
        return;
      }
      const error = answer.error || GENERIC_ERROR;
      // Refused, or maybe made behind an answer that is not the shop's: the page shows the cart
      // as the shop has it now, and says why the change is not what the shopper asked.
      const cart = await askCart();
      await shop.afterPress();
      markRefused(answer.refused ? quantityOf(form) : null);
      if (cart) {
        showCart(cart, error);
        return;
      }
      message.textContent = error;
      const input = quantityOf(form);
      if (input && !unanswered.get(item)) input.value = input.dataset.quantity || input.defaultValue;
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

    // The second click of a double click sends nothing: on the same button it is the same
    // change, and the first's answer may have taken that line away and moved the next line's
    // Remove under the pointer, which the shopper never meant to press.
    lines.addEventListener('click', (event) => {
      if (event.detail > 1 && event.target instanceof Element && event.target.closest('button')) {
        event.preventDefault();
      }
    }, true);
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
