<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
% # A page's configuration and its inline script come first: the script runs before the
% # stylesheet (which would hold it back) and the other scripts have even been asked for.
% if defined('head_json'):
  <script type="application/json" id="{{head_json[0]}}">{{!head_json[1]}}</script>
% end
% if defined('head_script'):
  <script>{{!head_script}}</script>
% end
  <title>{{title}} · bookpay</title>
  <link rel="icon" href="{{static('favicon.svg')}}" type="image/svg+xml">
  <link rel="stylesheet" href="{{static('style.css')}}">
% # scripts: a static file's name ("cart.js"), or a URL (Stripe.js); deferred unless a pair says.
% for script in scripts:
%   src, how = (script, "defer") if isinstance(script, str) else script
  <script src="{{src if '://' in src else static(src)}}" {{how}}></script>
% end
</head>
<body>
  <a class="skip-link" href="#main">Skip to the content</a>
  <header class="site-top">
% # The mode note is the page's banner's, as every landmark-less thing would be lost to a
% # screen reader's list of landmarks.
% if emulated:
    <p class="mode-banner" role="note">
      <strong>Local test mode: payments are emulated.</strong>
      No real card is charged; pay with 4242 4242 4242 4242.
    </p>
% elif not live:
    <p class="mode-banner mode-banner--stripe" role="note">
      <strong>Stripe test mode.</strong> Use Stripe's test cards, such as 4242 4242 4242 4242.
    </p>
% end
    <div class="site-header">
      <a class="brand" href="/">bookpay</a>
      <span class="tagline">a small bookshop</span>
      <nav class="site-nav" aria-label="Site">
% # One span inside the link: a flex box (the 44 px tap target) would drop the space before "(".
        <a class="cart-link" href="/cart"><span class="cart-link-text">Cart<span class="cart-count-wrap"> (<span id="cart-count" aria-live="polite">{{cart_count if cart_count is not None else ""}}</span>)</span></span></a>
      </nav>
    </div>
  </header>
  <main id="main" tabindex="-1">
{{!base}}
  </main>
  <footer class="site-footer">
    <p>Payments by Stripe Payment Intents and Elements.</p>
  </footer>
</body>
</html>
