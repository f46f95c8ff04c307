% rebase('base.tpl')
<section class="result result--{{status}}" aria-labelledby="result-heading">
% if status == "succeeded" and refused == "mismatch":
  <h1 id="result-heading">Payment received, order not shipped</h1>
  <p class="lead">We received your payment for <strong>{{what}}</strong> ({{total}}), but we could not ship your order as priced: the address sent with the payment is not the one its shipping and tax were priced for.</p>
  <p class="reason" id="fulfilment-refused">Nothing has been shipped. We will contact you to put this right or to refund your payment in full.</p>
% elif status == "succeeded" and refused == "refunded_first":
  <h1 id="result-heading">Payment refunded</h1>
  <p class="lead">Your payment for <strong>{{what}}</strong> was refunded in full before your order was shipped, so it will not be shipped.</p>
% elif status == "succeeded" and refused:
  <h1 id="result-heading">Order on hold</h1>
  <p class="lead">Your payment for <strong>{{what}}</strong> is disputed, so your order will not be shipped while the dispute is open.</p>
% elif status == "succeeded":
  <h1 id="result-heading">Success!</h1>
  <p class="lead">Thank you for your order. Your {{"book is on its" if len(lines) == 1 and lines[0]['quantity'] == 1 else "books are on their"}} way.</p>
% elif status == "processing":
  <h1 id="result-heading">Payment processing</h1>
  <p class="lead">Your payment for <strong>{{what}}</strong> ({{total}}) is processing. We'll email you when it completes.</p>
% elif status == "requires_capture":
  <h1 id="result-heading">Payment authorized</h1>
  <p class="lead">Your payment for <strong>{{what}}</strong> ({{total}}) is authorized: the amount is held on your card, not charged yet.</p>
  <p id="authorized-note">It is charged before your order ships, and your receipt is emailed then; should the order not go ahead, the hold is released and nothing is charged.</p>
% elif status == "requires_payment_method" and reason:
  <h1 id="result-heading">Payment failed</h1>
  <p class="lead">Your payment for <strong>{{what}}</strong> did not go through.</p>
  <p class="reason" id="failure-reason">{{reason}}</p>
  <p><a class="button" href="{{retry_href}}">Try again</a></p>
% elif status == "requires_action":
  <h1 id="result-heading">Payment needs your confirmation</h1>
  <p class="lead">Your bank asked you to confirm the payment for <strong>{{what}}</strong>, and it was not confirmed.</p>
  <p><a class="button" href="{{retry_href}}">Try again</a></p>
% elif status == "canceled":
  <h1 id="result-heading">Payment canceled</h1>
  <p class="lead">The payment for <strong>{{what}}</strong> was canceled. You have not been charged.</p>
  <p><a class="button" href="{{retry_href}}">Start again</a></p>
% else:
  <h1 id="result-heading">Payment not completed</h1>
  <p class="lead">The payment for <strong>{{what}}</strong> has not completed.</p>
  <p><a class="button" href="{{retry_href}}">Try again</a></p>
% end
% if status in ("succeeded", "processing", "requires_capture"):
  <ul id="receipt-lines" class="lines lines--receipt" aria-label="What you ordered">
%   for line in lines:
    <li class="line" data-item="{{line['item_id']}}">
      <span class="line-quantity">{{line['quantity']}} ×</span>
      <span class="line-title">{{line['title']}}</span>
      <span class="line-unit">{{line['unit']}} each</span>
      <span class="line-amount">{{line['amount']}}</span>
    </li>
%   end
  </ul>
  <dl class="receipt">
%   if totals:
    <dt>Subtotal</dt><dd id="receipt-subtotal">{{totals['subtotal']}}</dd>
    <dt>Shipping{{" (" + totals['shipping_rate'] + ")" if totals['shipping_rate'] else ""}}</dt><dd id="receipt-shipping-amount">{{totals['shipping']}}</dd>
    <dt>Tax</dt><dd id="receipt-tax">{{totals['tax']}}</dd>
%   end
%   if released and status == "succeeded":
    <dt>Authorized</dt><dd id="receipt-released">{{released}}</dd>
%   end
    <dt>{{"Total charged" if status == "succeeded" else "Total authorized" if status == "requires_capture" else "Total"}}</dt><dd id="receipt-amount">{{total}}</dd>
%   if order_id:
    <dt>Order reference</dt><dd id="receipt-order"><code>{{order_id}}</code></dd>
%   end
    <dt>Payment reference</dt><dd id="receipt-intent"><code>{{intent_id}}</code></dd>
%   if email:
    <dt>Email</dt><dd id="receipt-email">{{email}}</dd>
%   end
%   if refused and priced_to:
    <dt>Priced for delivery to</dt>
    <dd id="receipt-priced-to">
%     for line in priced_to:
      <span class="address-line">{{line}}</span>
%     end
    </dd>
%   elif shipping and not refused:
    <dt>Shipping to</dt>
    <dd id="receipt-shipping">
%     for line in shipping:
      <span class="address-line">{{line}}</span>
%     end
    </dd>
%   end
  </dl>
%   if receipt_url and status == "succeeded":
  <p><a class="text-link" href="{{receipt_url}}" rel="noopener noreferrer">View your receipt</a></p>
%   end
% end
  <p><a class="back-link" href="/">← Back to the books</a></p>
</section>
