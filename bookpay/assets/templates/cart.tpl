% rebase('base.tpl')
<section class="cart" aria-labelledby="cart-heading">
  <h1 id="cart-heading" tabindex="-1">Your cart</h1>
  <p id="cart-message" class="cart-message" role="alert">{{message}}</p>
  <p id="cart-notice" class="cart-notice" role="status">{{notice}}</p>
% # The empty cart's words are on every cart page: cart.js shows them when the last book goes.
  <div id="cart-empty" class="cart-empty"{{!"" if not lines else " hidden"}}>
    <p class="lead">Your cart is empty.</p>
    <p><a class="button" href="/">Browse the books</a></p>
  </div>
% if lines:
  <ul id="cart-lines" class="lines">
%   for line in lines:
    <li class="line" data-item="{{line['item_id']}}">
      <img class="cover" src="{{line['image']}}" width="60" height="90" alt="">
      <div class="line-text">
        <p class="line-title">{{line['title']}}</p>
        <p class="line-unit">{{line['unit']}} each</p>
      </div>
      <form class="line-form" method="post" action="{{line['action']}}">
        <label>Quantity<span class="visually-hidden line-of"> of {{line['title']}}</span> <input type="number" name="quantity" value="{{line['quantity']}}" min="0" max="10" step="1" inputmode="numeric" required></label>
        <input type="hidden" name="next" value="/cart">
        <button class="button button--small button--secondary" type="submit">Update<span class="visually-hidden line-of"> quantity of {{line['title']}}</span></button>
      </form>
      <form class="line-remove" method="post" action="{{line['action']}}">
        <input type="hidden" name="next" value="/cart">
        <button class="text-button" type="submit" name="quantity" value="0" aria-label="Remove {{line['title']}}">Remove</button>
      </form>
      <p class="line-amount">{{line['amount']}}</p>
    </li>
%   end
  </ul>
  <dl class="totals">
    <dt>Subtotal</dt><dd id="cart-subtotal">{{view.quote.formatted(view.quote.subtotal) if view.quote else ""}}</dd>
  </dl>
  <p class="cart-actions">
    <a class="back-link" href="/">← Keep shopping</a>
%   # Hidden while the cart cannot be paid for as it is (cart.js shows it once it can).
    <a id="checkout-link" class="button" href="/checkout"{{!"" if view.quote else " hidden"}}>Checkout</a>
  </p>
% end
</section>
