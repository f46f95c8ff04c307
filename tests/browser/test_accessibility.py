"""The shop's pages as a shopper with a keyboard, a screen reader, low vision or a phone meets
them: landmarks, headings and titles; names, required marks and errors tied to their fields;
where the focus goes; text contrast; reduced motion; 320 px wide (200% zoom) without scrolling
sideways. Hand checks in Chromium, on the real server, the emulator and its Stripe.js.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from test_checkout import BOOKS, fill_checkout, focused_id, open_checkout, pay
from test_checkout_hostile import PIN, add_to_cart, shop_selling

from bookpay.catalog import Book

# The longest title a narrow page must wrap: one word wider than a phone, and the largest price
# (ten copies of it make a line of six figures).
LONG = Book(
    id="long",
    title="Pneumonoultramicroscopicsilicovolcanoconiosis: The Collected Correspondence, 1899-1999",
    author="A. Lexicographer",
    amount=999_999,
    currency="usd",
    description="A long title.",
)


@pytest.fixture(scope="module")
def shop(emulator, tmp_path_factory) -> Iterator[str]:
    with shop_selling(emulator, tmp_path_factory.mktemp("a11y-shop"), PIN, LONG) as url:
        yield url


def paid_success_page(page, shop: str, cart: dict[str, int] | None = None) -> None:
    """The success page of one copy of book 2 ("Buy now"), or of a cart of ``cart``'s books
    (id: copies)."""
    if cart:
        for item, quantity in cart.items():
            add_to_cart(page, shop, item, quantity)
        page.goto(shop + "/checkout")
        page.locator("#payment-element [name=number]").wait_for()
    else:
        open_checkout(page, shop, "2")
    fill_checkout(page)
    pay(page)
    page.wait_for_url(re.compile(r"/success\?"))


def outline(page) -> dict:
    return page.evaluate(
        """() => ({
            lang: document.documentElement.lang,
            h1: Array.from(document.querySelectorAll('h1')).map((h) => h.textContent.trim()),
            main: document.querySelectorAll('main').length,
            nav: document.querySelectorAll('nav, [role=navigation]').length,
            title: document.title,
        })"""
    )


def test_each_page_has_lang_one_h1_main_nav_and_a_title_saying_where(page, shop):
    pages = {}
    page.goto(shop + "/")
    pages["catalog"] = outline(page)
    page.goto(shop + "/cart")
    pages["empty cart"] = outline(page)
    add_to_cart(page, shop, "1")
    page.goto(shop + "/cart")
    pages["cart"] = outline(page)
    open_checkout(page, shop, "1")
    pages["checkout"] = outline(page)
    page.goto(shop + "/checkout?item=nope")
    pages["404"] = outline(page)
    for name, seen in pages.items():
        assert seen["lang"] == "en", name
        assert len(seen["h1"]) == 1, (name, seen["h1"])
        assert seen["main"] == 1, name
        assert seen["nav"] == 1, name
        assert seen["title"].endswith(" · bookpay"), name
    assert pages["catalog"]["title"] == "Books · bookpay"
    assert pages["cart"]["title"] == "Your cart · bookpay"
    assert pages["checkout"]["title"] == f"Checkout: {BOOKS[0].title} · bookpay"
    assert pages["404"]["title"] == "Page not found · bookpay"
    # The cart's link is the site's navigation, named for screen readers' landmark list.
    page.goto(shop + "/")
    nav = page.get_by_role("navigation", name="Site")
    assert nav.get_by_role("link", name=re.compile(r"^Cart")).count() == 1


def visible_words(locator) -> str:
    """What a control shows, without its visually hidden text."""
    return locator.evaluate(
        """(e) => {
          const shown = e.cloneNode(true);
          shown.querySelectorAll('.visually-hidden').forEach((h) => h.remove());
          return shown.textContent.replace(/\\s+/g, ' ').trim();
        }"""
    )


def test_the_catalogs_buttons_are_named_by_their_visible_words_first(page, shop):
    """WCAG 2.5.3 (label in name): "click Add to cart" by voice finds the button; the rest of
    its name says which book, for a screen reader's list of buttons and links."""
    page.goto(shop + "/")
    for book in BOOKS:
        card = page.locator(".book").filter(has=page.locator(f"input[value='{book.id}']"))
        add = card.get_by_role("button", name=f"Add to cart ({book.title})", exact=True)
        buy = card.get_by_role("link", name=f"Buy now ({book.title}, {book.price})", exact=True)
        assert (add.count(), buy.count()) == (1, 1), book.title
        assert (visible_words(add), visible_words(buy)) == ("Add to cart", "Buy now")
    # Voice control's way: the visible words find every book's button and link.
    count = page.locator(".book").count()
    assert page.get_by_role("button", name=re.compile(r"^Add to cart\b")).count() == count
    assert page.get_by_role("link", name=re.compile(r"^Buy now\b")).count() == count


def text_rows(locator) -> int:
    """How many lines of text an element's words take."""
    return locator.evaluate(
        """(e) => {
          const tops = new Set();
          const walker = document.createTreeWalker(e, NodeFilter.SHOW_TEXT);
          for (let t = walker.nextNode(); t; t = walker.nextNode()) {
            if (!t.textContent.trim()) continue;
            const range = document.createRange();
            range.selectNodeContents(t);
            for (const r of range.getClientRects()) tops.add(Math.round(r.bottom));
          }
          return tops.size;
        }"""
    )


def test_the_test_mode_note_is_in_the_pages_banner_landmark(page, shop):
    """Nothing outside a landmark, where a screen reader's landmark list would miss it."""
    for path in ("/", "/cart", "/checkout?item=nope"):
        page.goto(shop + path)
        banner = page.get_by_role("banner")
        assert banner.count() == 1, path
        note = banner.get_by_role("note")
        assert note.count() == 1, path
        assert note.inner_text().startswith("Local test mode: payments are emulated."), path
        assert page.get_by_role("navigation", name="Site").count() == 1, path


def test_the_cart_link_stays_on_one_line_at_320px(page, shop):
    """ "Cart (0)", its count beside it (with its space), not "Cart" over "(0)"."""
    for width in (1000, 320):
        page.set_viewport_size({"width": width, "height": 640})
        page.goto(shop + "/")
        link = page.locator(".cart-link")
        assert link.inner_text() == "Cart (0)", width
        assert page.get_by_role("link", name="Cart (0)", exact=True).count() == 1, width
        assert text_rows(link) == 1, width
    # Still a 44 px tap target on the phone (WCAG 2.5.5).
    assert link.evaluate("(e) => e.getBoundingClientRect().height") >= 44


def test_the_success_pages_title_says_the_order_was_paid_and_which(page, shop):
    paid_success_page(page, shop)
    seen = outline(page)
    order = page.locator("#receipt-order").inner_text()
    assert seen["h1"] == ["Success!"]
    assert seen["nav"] == 1
    assert seen["title"] == f"Order {order} paid · bookpay"


def visible_text_contrast_problems(page) -> list[str]:
    """Each visible text node's colour against what it sits on (ancestors' backgrounds and
    opacity composited): under 4.5:1 (3:1 for large text) is a problem. Disabled controls are
    exempt (WCAG 1.4.3)."""
    return page.evaluate(
        """() => {
          const parse = (c) => {
            const m = c.match(/rgba?\\(([^)]+)\\)/);
            if (!m) return [0, 0, 0, 0];
            const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
            return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
          };
          const over = (top, under) => {
            const a = top[3];
            return [0, 1, 2].map((i) => top[i] * a + under[i] * (1 - a)).concat([1]);
          };
          const lum = (c) => {
            const [r, g, b] = c.slice(0, 3).map((v) => {
              v /= 255;
              return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
            });
            return 0.2126 * r + 0.7152 * g + 0.0722 * b;
          };
          const backdrop = (el) => {
            const layers = [];
            for (let n = el; n; n = n.parentElement) {
              layers.push(parse(getComputedStyle(n).backgroundColor));
            }
            let bg = [255, 255, 255, 1];
            for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg);
            return bg;
          };
          const opacity = (el) => {
            let o = 1;
            for (let n = el; n; n = n.parentElement) o *= Number(getComputedStyle(n).opacity);
            return o;
          };
          const problems = [];
          const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
          for (let t = walker.nextNode(); t; t = walker.nextNode()) {
            const el = t.parentElement;
            if (!t.textContent.trim() || !el || !el.getClientRects().length) continue;
            if (el.closest('[disabled], .skip-link, [aria-hidden=true]')) continue;
            const s = getComputedStyle(el);
            if (s.visibility === 'hidden') continue;
            const bg = backdrop(el);
            const fg = parse(s.color);
            const ink = over([fg[0], fg[1], fg[2], fg[3] * opacity(el)], bg);
            const [hi, lo] = [lum(ink), lum(bg)].sort((a, b) => b - a);
            const ratio = (hi + 0.05) / (lo + 0.05);
            const size = parseFloat(s.fontSize);
            const large = size >= 24 || (size >= 18.66 && Number(s.fontWeight) >= 700);
            if (ratio < (large ? 3 : 4.5)) {
              problems.push(t.textContent.trim().slice(0, 40) + ': ' + ratio.toFixed(2));
            }
          }
          return problems;
        }"""
    )


def test_text_contrast_is_at_least_4_5_to_1(page, shop):
    problems = {}
    page.goto(shop + "/")
    problems["catalog"] = visible_text_contrast_problems(page)
    add_to_cart(page, shop, "1")
    page.goto(shop + "/cart")
    problems["cart"] = visible_text_contrast_problems(page)
    open_checkout(page, shop, "1")
    problems["checkout"] = visible_text_contrast_problems(page)
    page.goto(shop + "/checkout?item=nope")
    problems["404"] = visible_text_contrast_problems(page)
    assert problems == {name: [] for name in problems}


# The focused element's ring and what it is drawn over: the colour at the middle of each side
# of the ring (outline-offset and half its width outside the border box), below the element
# itself, composited through its ancestors' backgrounds.
FOCUS_RING = """() => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return [0, 0, 0, 0];
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, under) =>
    [0, 1, 2].map((i) => top[i] * top[3] + under[i] * (1 - top[3])).concat([1]);
  const lum = (c) => {
    const [r, g, b] = c.slice(0, 3).map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const ratio = (a, b) => {
    const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  };
  const backdrop = (el) => {
    const layers = [];
    for (let n = el; n; n = n.parentElement) {
      layers.push(parse(getComputedStyle(n).backgroundColor));
    }
    let bg = [255, 255, 255, 1];
    for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg);
    return bg;
  };
  let el = document.activeElement;
  while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
  if (!el || el === document.body) return null;
  const s = getComputedStyle(el);
  const name = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ' "' +
    (el.textContent || el.getAttribute('name') || '').trim().slice(0, 30) + '"';
  if (s.outlineStyle === 'none' || parseFloat(s.outlineWidth) === 0) return {name, ring: null};
  const ring = parse(s.outlineColor);
  const r = el.getBoundingClientRect();
  const offset = parseFloat(s.outlineOffset);
  const width = parseFloat(s.outlineWidth);
  const points = [];
  // Under the ring's middle, and just inside it: the gap between ring and element, or the
  // element itself where the ring touches it (an offset of 0 or less).
  for (const out of [offset + width / 2, offset - 0.5]) {
    const [x, y] = [r.left + r.width / 2, r.top + r.height / 2];
    points.push([r.left - out, y, out], [r.right + out, y, out],
      [x, r.top - out, out], [x, r.bottom + out, out]);
  }
  const under = [];
  for (const [x, y, out] of points) {
    if (x < 0 || y < 0 || x >= innerWidth || y >= innerHeight) continue;
    const below = out < 0 ? el
      : document.elementsFromPoint(x, y).find((n) => n !== el && !el.contains(n));
    if (!below) continue;
    const bg = backdrop(below);
    under.push({on: below.tagName.toLowerCase() + '.' + below.className,
                colour: bg.slice(0, 3).map(Math.round).join(','),
                ratio: Math.round(ratio(ring, bg) * 100) / 100});
  }
  return {name, ring: s.outlineColor, width: parseFloat(s.outlineWidth), under};
}"""


def focus_rings(page, presses: int = 40) -> list[dict]:
    """The ring of each element Tab reaches on the page, from its start."""
    page.evaluate("() => { document.activeElement?.blur(); window.scrollTo(0, 0); }")
    rings = []
    for _ in range(presses):
        page.keyboard.press("Tab")
        seen = page.evaluate(FOCUS_RING)
        if seen is None or (rings and seen["name"] == rings[0]["name"]):
            break
        rings.append(seen)
    return rings


def test_the_focus_ring_has_3_to_1_against_what_it_is_drawn_on(page, shop):
    """WCAG 1.4.11: the keyboard focus indicator, at least 2 px, contrasts 3:1 with the colours
    around it on every page: the page's paper, the cards, the test-mode banner under the skip
    link."""
    rings = {}
    page.goto(shop + "/")
    rings["catalog"] = focus_rings(page)
    add_to_cart(page, shop, "1")
    page.goto(shop + "/cart")
    rings["cart"] = focus_rings(page)
    open_checkout(page, shop, "1")
    rings["checkout"] = focus_rings(page)
    page.goto(shop + "/checkout?item=nope")
    rings["404"] = focus_rings(page)
    problems = []
    for where, seen in rings.items():
        assert len(seen) >= 3, (where, seen)
        for ring in seen:
            if ring["ring"] is None or ring["width"] < 2:
                problems.append((where, ring["name"], "no ring"))
            problems += [(where, ring["name"], u) for u in ring["under"] if u["ratio"] < 3]
            if not ring["under"]:
                problems.append((where, ring["name"], "nothing seen under the ring"))
    assert problems == []


def test_the_busy_pay_button_keeps_its_contrast(page, shop):
    """While paying, Pay says "Processing…" (aria-disabled, not disabled): still legible."""
    open_checkout(page, shop, "1")
    page.evaluate(
        """() => {
          const b = document.getElementById('submit-button');
          b.setAttribute('aria-disabled', 'true');
          b.disabled = false;
        }"""
    )
    problems = [p for p in visible_text_contrast_problems(page) if p.startswith("Pay ")]
    assert problems == []


def test_the_spinner_does_not_spin_under_reduced_motion(page, shop):
    page.emulate_media(reduced_motion="reduce")
    open_checkout(page, shop, "1")
    page.evaluate("document.getElementById('payment-form').classList.add('is-busy')")
    spinner = page.locator("#submit-button .spinner")
    assert spinner.is_visible()  # the busy state still shows, without the motion
    assert spinner.evaluate("(s) => getComputedStyle(s).animationName") == "none"
    page.emulate_media(reduced_motion="no-preference")
    assert spinner.evaluate("(s) => getComputedStyle(s).animationName") == "spin"


def scroll_width(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def test_no_page_scrolls_sideways_at_320px(page, shop):
    """320 CSS pixels is a 1280 px window at 400% zoom, or a small phone (WCAG 1.4.10)."""
    page.set_viewport_size({"width": 320, "height": 640})
    widths = {}
    page.goto(shop + "/")
    widths["catalog"] = scroll_width(page)
    add_to_cart(page, shop, "2", 3)
    page.goto(shop + "/cart")
    widths["cart"] = scroll_width(page)
    open_checkout(page, shop, "2")
    widths["checkout"] = scroll_width(page)
    page.goto(shop + "/checkout?item=nope")
    widths["404"] = scroll_width(page)
    page.set_viewport_size({"width": 1000, "height": 900})
    # Every book's line, the longest titles and amounts among them (ten copies of each), in a
    # cart of their own.
    page.context.clear_cookies()
    paid_success_page(page, shop, {book.id: 10 for book in (*BOOKS, LONG)})
    assert page.locator("#receipt-lines .line").count() == len(BOOKS) + 1
    page.set_viewport_size({"width": 320, "height": 640})
    widths["success"] = scroll_width(page)
    assert widths == {name: 320 for name in widths}
    # Each line's quantity and amounts stay on one line of text each.
    for part in ("line-quantity", "line-unit", "line-amount"):
        rows = [text_rows(each) for each in page.locator(f"#receipt-lines .{part}").all()]
        assert rows == [1] * (len(BOOKS) + 1), part


def test_each_quantity_and_its_update_button_name_their_book(page, shop):
    """Two lines: "Quantity" and "Update" alone would not say which book they change."""
    add_to_cart(page, shop, "1")
    add_to_cart(page, shop, "3")
    page.goto(shop + "/cart")
    for book in (BOOKS[0], BOOKS[2]):
        line = page.locator(f"#cart-lines [data-item='{book.id}']")
        assert page.get_by_role("spinbutton", name=f"Quantity of {book.title}").count() == 1
        assert line.get_by_role("spinbutton", name=f"Quantity of {book.title}").count() == 1
        assert page.get_by_role("button", name=f"Update quantity of {book.title}").count() == 1
    page.goto(shop + "/checkout")
    page.locator("#payment-element [name=number]").wait_for()
    for book in (BOOKS[0], BOOKS[2]):
        assert page.get_by_role("spinbutton", name=f"Quantity of {book.title}").count() == 1
    # A book added in another tab shows as a new line, made like the first: named for its own.
    add_to_cart(page, shop, "2")
    page.locator("#order-lines [data-item='1'] input[name=quantity]").fill("2")
    page.locator("#order-lines [data-item='1'] input[name=quantity]").dispatch_event("change")
    page.locator("#order-lines [data-item='2']").wait_for()
    for book in BOOKS:
        box = page.get_by_role("spinbutton", name=f"Quantity of {book.title}", exact=True)
        assert box.count() == 1, book.title
        update = page.get_by_role("button", name=f"Update quantity of {book.title}", exact=True)
        assert update.count() == 1, book.title


def test_a_refused_quantity_on_the_cart_page_is_tied_to_its_field(page, shop):
    add_to_cart(page, shop, "1", 2)
    page.goto(shop + "/cart")
    quantity = page.locator("#cart-lines [data-item='1'] input[name=quantity]")
    quantity.fill("11")
    quantity.dispatch_event("change")
    page.wait_for_function("() => document.getElementById('cart-message').textContent")
    assert page.locator("#cart-message").get_attribute("role") == "alert"
    assert quantity.get_attribute("aria-invalid") == "true"
    assert quantity.get_attribute("aria-describedby") == "cart-message"
    # Mended: no longer invalid, nor described by a message that is gone.
    quantity.fill("3")
    quantity.dispatch_event("change")
    page.wait_for_function("() => !document.getElementById('cart-message').textContent")
    assert quantity.get_attribute("aria-invalid") != "true"
    assert quantity.get_attribute("aria-describedby") is None


def test_a_refused_quantity_at_checkout_is_tied_to_its_field(page, shop):
    add_to_cart(page, shop, "1", 2)
    add_to_cart(page, shop, "3")
    page.goto(shop + "/checkout")
    page.locator("#payment-element [name=number]").wait_for()
    quantity = page.locator("#order-lines [data-item='1'] input[name=quantity]")
    other = page.locator("#order-lines [data-item='3'] input[name=quantity]")
    quantity.fill("11")
    quantity.dispatch_event("change")
    page.wait_for_function(
        "() => /copies|quantity/i.test(document.getElementById('order-status').textContent)"
    )
    assert quantity.get_attribute("aria-invalid") == "true"
    assert quantity.get_attribute("aria-describedby") == "order-status"
    assert other.get_attribute("aria-invalid") is None
    quantity.fill("3")
    quantity.dispatch_event("change")
    page.wait_for_function(
        "() => document.getElementById('order-status').textContent === 'Your order was updated.'"
    )
    assert quantity.get_attribute("aria-invalid") is None
    assert quantity.get_attribute("aria-describedby") is None


def test_a_refusal_as_the_page_loads_moves_the_focus_to_the_message(page, shop):
    page.goto(f"{shop}/checkout?item=pin")
    page.locator("#refused-link").wait_for()
    assert focused_id(page) == "payment-message"


def test_required_fields_are_marked_as_required(page, shop):
    """Every field of the Elements whose label does not say "(optional)" is required, and a
    screen reader says so; the optional ones are not marked."""
    open_checkout(page, shop, "1")
    fields = page.evaluate(
        """() => Array.from(document.querySelectorAll(
              '#checkout-fields input:not([type=radio]), #checkout-fields select'))
            .filter((i) => i.getClientRects().length)
            .map((i) => [i.labels[0].textContent,
              i.required || i.getAttribute('aria-required') === 'true'])"""
    )
    assert len(fields) >= 9
    for label, required in fields:
        assert required == ("(optional)" not in label), label
