% rebase('base.tpl')
<div class="checkout">
  <section class="summary" aria-labelledby="summary-title">
    <h1 id="summary-title">Your order</h1>
%   if notice:
    <p id="cart-notice" class="cart-notice" role="status">{{notice}}</p>
%   end
    <ul id="order-lines" class="lines lines--summary">
%   for line in lines:
      <li class="line" data-item="{{line['item_id']}}">
        <img class="cover" src="{{line['image']}}" width="60" height="90" alt="Cover of {{line['title']}}">
        <div class="line-text">
          <p class="line-title">{{line['title']}}</p>
          <p class="line-unit"><span class="line-unit-amount">{{line['unit']}}</span> each</p>
%     if editable:
          <form class="line-form" method="post" action="{{line['action']}}">
            <label>Quantity<span class="visually-hidden line-of"> of {{line['title']}}</span> <input type="number" name="quantity" value="{{line['quantity']}}" min="0" max="10" step="1" inputmode="numeric" required></label>
            <input type="hidden" name="next" value="/checkout">
            <button class="button button--small button--secondary line-update" type="submit">Update<span class="visually-hidden line-of"> quantity of {{line['title']}}</span></button>
          </form>
%     else:
          <p class="line-quantity">Quantity <span class="line-quantity-value">{{line['quantity']}}</span></p>
%     end
        </div>
        <p class="line-amount">{{line['amount']}}</p>
      </li>
%   end
    </ul>
    <dl id="order-totals" class="totals">
      <dt>Subtotal</dt><dd id="subtotal">{{quote.formatted(quote.subtotal)}}</dd>
      <dt>Shipping<span id="shipping-rate-name" class="totals-note"></span></dt><dd id="shipping-amount" class="totals-pending">—</dd>
      <dt>Tax</dt><dd id="tax-amount" class="totals-pending">{{"—" if tax_enabled else quote.formatted(0)}}</dd>
      <dt class="totals-total">Total</dt><dd id="total" class="totals-total">{{quote.formatted(quote.total)}}</dd>
    </dl>
    <p id="totals-note" class="totals-note-line">Shipping{{" and tax are" if tax_enabled else " is"}} worked out from your address.</p>
    <p id="order-status" class="order-status" role="status" aria-live="polite"></p>
    <p>
%   if editable:
      <a class="back-link" href="/cart">← Back to the cart</a>
%   else:
      <a class="back-link" href="/">← Back to the books</a>
%   end
    </p>
  </section>
  <section id="paid-notice" class="notice" tabindex="-1" aria-labelledby="paid-notice-text" hidden>
% if editable:
    <p id="paid-notice-text">You already paid for this order (order <code id="paid-order"></code>). Pay for it again?</p>
% else:
    <p id="paid-notice-text">You already paid for this book (order <code id="paid-order"></code>). Buy another copy?</p>
% end
    <p><a id="paid-order-link" class="text-link" hidden>See your order</a></p>
    <button id="new-attempt-button" class="button" type="button">{{"Pay again" if editable else "Buy another copy"}}</button>
  </section>
  <form id="payment-form" class="payment-form" aria-describedby="payment-message">
    <noscript>
      <p id="no-script-message" class="payment-message">Paying needs JavaScript, which is turned off in this browser: turn it on to see the payment form. You can still review your order{{" and change its quantities" if editable else ""}} here.</p>
    </noscript>
    <div id="checkout-fields" class="checkout-fields">
      <h2 id="contact-heading">Contact</h2>
      <div id="link-auth-element" class="element" role="group" aria-labelledby="contact-heading"></div>
      <h2 id="shipping-heading">Shipping address</h2>
      <div id="address-element" class="element" role="group" aria-labelledby="shipping-heading"></div>
      <fieldset id="shipping-rates" class="shipping-rates" aria-describedby="shipping-rates-message">
        <legend>Delivery</legend>
        <div id="shipping-rate-options" class="shipping-rate-options"></div>
        <p id="shipping-rates-message" class="shipping-rates-message" role="status" aria-live="polite">Enter your shipping address to see the delivery options.</p>
      </fieldset>
      <h2 id="payment-heading">Payment</h2>
      <div id="payment-element" class="element" role="group" aria-labelledby="payment-heading"></div>
    </div>
    <button id="submit-button" class="button button--pay" type="submit" aria-describedby="pay-hint" disabled>
      <span class="spinner" aria-hidden="true"></span><span class="button-text">Pay {{quote.formatted(quote.total)}}</span>
    </button>
    <p id="pay-hint" class="pay-hint" role="status" aria-live="polite">Enter your email address and complete the shipping address to pay.</p>
    <div id="payment-message" class="payment-message" role="status" aria-live="polite" tabindex="-1"></div>
    <button id="retry-button" class="button button--secondary" type="button" hidden>Reload the payment form</button>
    <a id="refused-link" class="button button--secondary" href="{{"/cart" if editable else "/"}}" hidden>{{"Back to the cart" if editable else "Back to the books"}}</a>
  </form>
</div>
