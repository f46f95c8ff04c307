% rebase('base.tpl')
<section class="result result--{{status}}" aria-labelledby="result-heading">
% if status == "succeeded":
  <h1 id="result-heading">Success!</h1>
  <p class="lead">Thank you for your order. Your book is on its way.</p>
  <dl class="receipt">
    <dt>Book</dt><dd id="receipt-title">{{book.title}}</dd>
    <dt>Total charged</dt><dd id="receipt-amount">{{total}}</dd>
    <dt>Order reference</dt><dd id="receipt-intent"><code>{{intent_id}}</code></dd>
%   if email:
    <dt>Email</dt><dd id="receipt-email">{{email}}</dd>
%   end
%   if shipping:
    <dt>Shipping to</dt>
    <dd id="receipt-shipping">
%     for line in shipping:
      <span class="address-line">{{line}}</span>
%     end
    </dd>
%   end
  </dl>
%   if receipt_url:
  <p><a class="text-link" href="{{receipt_url}}" rel="noopener noreferrer">View your receipt</a></p>
%   end
% elif status == "processing":
  <h1 id="result-heading">Payment processing</h1>
  <p class="lead">Your payment for <strong>{{book.title}}</strong> ({{total}}) is processing. We'll email you when it completes.</p>
  <p>Order reference <code id="receipt-intent">{{intent_id}}</code></p>
% elif status == "requires_payment_method" and reason:
  <h1 id="result-heading">Payment failed</h1>
  <p class="lead">Your payment for <strong>{{book.title}}</strong> did not go through.</p>
%   if reason:
  <p class="reason" id="failure-reason">{{reason}}</p>
%   end
  <p><a class="button" href="{{retry_href}}">Try again</a></p>
% elif status == "requires_action":
  <h1 id="result-heading">Payment needs your confirmation</h1>
  <p class="lead">Your bank asked you to confirm the payment for <strong>{{book.title}}</strong>, and it was not confirmed.</p>
  <p><a class="button" href="{{retry_href}}">Try again</a></p>
% elif status == "canceled":
  <h1 id="result-heading">Payment canceled</h1>
  <p class="lead">The payment for <strong>{{book.title}}</strong> was canceled. You have not been charged.</p>
  <p><a class="button" href="{{retry_href}}">Start again</a></p>
% else:
  <h1 id="result-heading">Payment not completed</h1>
  <p class="lead">The payment for <strong>{{book.title}}</strong> has not completed.</p>
  <p><a class="button" href="{{retry_href}}">Try again</a></p>
% end
  <p><a class="back-link" href="/">← Back to the books</a></p>
</section>
