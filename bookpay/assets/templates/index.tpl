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
      <a class="button" href="{{href}}" aria-label="Purchase {{book.title}} for {{book.price}}">Purchase — {{book.price}}</a>
    </div>
  </li>
% end
</ul>
