% rebase('base.tpl')
<section class="result result--error" aria-labelledby="error-heading">
  <h1 id="error-heading">{{title}}</h1>
  <p class="lead">{{message}}</p>
  <p><a class="button" href="/">Back to the books</a></p>
</section>
