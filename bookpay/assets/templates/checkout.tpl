% rebase('base.tpl')
<div class="checkout">
  <section class="summary" aria-labelledby="summary-title">
    <img class="cover" src="{{book.image}}" width="120" height="180" alt="Cover of {{book.title}}">
    <div>
      <h1 id="summary-title">{{book.title}}</h1>
      <p class="book-author">by {{book.author}}</p>
      <p class="total">Total <strong id="total-amount">{{book.price}}</strong></p>
      <p><a class="back-link" href="/">← Back to the books</a></p>
    </div>
  </section>
  <section id="paid-notice" class="notice" tabindex="-1" aria-labelledby="paid-notice-text" hidden>
    <p id="paid-notice-text">You already paid for this book (order <code id="paid-order"></code>). Buy another copy?</p>
    <p><a id="paid-order-link" class="text-link" hidden>See your order</a></p>
    <button id="new-attempt-button" class="button" type="button">Buy another copy</button>
  </section>
  <form id="payment-form" class="payment-form" aria-describedby="payment-message">
    <div id="checkout-fields" class="checkout-fields">
      <h2 id="contact-heading">Contact</h2>
      <div id="link-auth-element" class="element" role="group" aria-labelledby="contact-heading"></div>
      <h2 id="shipping-heading">Shipping address</h2>
      <div id="address-element" class="element" role="group" aria-labelledby="shipping-heading"></div>
      <h2 id="payment-heading">Payment</h2>
      <div id="payment-element" class="element" role="group" aria-labelledby="payment-heading"></div>
    </div>
    <button id="submit-button" class="button button--pay" type="submit" aria-describedby="pay-hint" disabled>
      <span class="spinner" aria-hidden="true"></span><span class="button-text">Pay {{book.price}}</span>
    </button>
    <p id="pay-hint" class="pay-hint" role="status" aria-live="polite">Enter your email address and complete the shipping address to pay.</p>
    <div id="payment-message" class="payment-message" role="status" aria-live="polite" tabindex="-1"></div>
    <button id="retry-button" class="button button--secondary" type="button" hidden>Reload the payment form</button>
  </form>
</div>
<script type="application/json" id="checkout-config">{{!config_json}}</script>
