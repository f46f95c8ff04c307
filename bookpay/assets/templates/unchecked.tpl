% rebase('base.tpl')
<section class="result result--unchecked" aria-labelledby="result-heading">
  <h1 id="result-heading">We could not check your payment just now</h1>
  <p class="lead">If you paid, your order is safe and your receipt will come by email.</p>
  <p>Reload this page in a moment to see your order.</p>
  <p><a id="reload-link" class="button" href="{{reload_href}}">Reload this page</a></p>
  <p><a class="back-link" href="/">← Back to the books</a></p>
</section>
