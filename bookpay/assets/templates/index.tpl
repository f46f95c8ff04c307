% rebase('base.tpl')
<h1>Books</h1>
<ul class="books">
% for book, href in books:
  <li class="book">
    <img class="cover" src="{{book.image}}" width="150" height="225" alt="Cover of {{book.title}}">
    <div class="book-text">
      <h2 class="book-title">{{book.title}}</h2>
      <p class="book-author">by {{book.author}}</p>
      <p class="book-description">{{book.description}}</p>
      <p class="book-price">{{book.price}}</p>
      <div class="book-actions">
        <form class="add-to-cart" method="post" action="/cart/items">
          <input type="hidden" name="item" value="{{book.id}}">
          <button class="button" type="submit">Add to cart<span class="visually-hidden"> ({{book.title}})</span></button>
        </form>
        <a class="button button--secondary" href="{{href}}">Buy now<span class="visually-hidden"> ({{book.title}}, {{book.price}})</span></a>
      </div>
    </div>
  </li>
% end
</ul>
