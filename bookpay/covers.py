"""Book covers that bookpay draws itself: an SVG made from the title, the author and a colour.

No third-party images: the shop works offline and nothing on a page is fetched from elsewhere.
"""

from __future__ import annotations

import textwrap
from xml.sax.saxutils import escape

from bookpay.catalog import DEFAULT_COLOR, Book, hex_color

WIDTH, HEIGHT = 300, 450


def _ink_for(background: str) -> str:
    """Dark or light text, whichever reads better on the background (WCAG relative luminance)."""
    channels = [int(background[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return "#111111" if luminance > 0.35 else "#fdfcf7"


def cover_svg(book: Book) -> str:
    # A catalog's colours are checked when it is loaded; a Book made in code may hold anything.
    background = hex_color(book.color) or DEFAULT_COLOR
    ink = _ink_for(background)
    # Serif bold at 24px fits about 15 characters in the cover's 240px text column.
    title_lines = textwrap.wrap(book.title, width=15, break_on_hyphens=False)[:8]
    text = []
    y = 110
    for line in title_lines:
        text.append(f'<text x="30" y="{y}" font-size="24" font-weight="700">{escape(line)}</text>')
        y += 31
    text.append(
        f'<text x="30" y="{HEIGHT - 40}" font-size="18" opacity="0.85">{escape(book.author)}</text>'
    )
    label = escape(f"{book.title} by {book.author}", {'"': "&quot;"})
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{label}">'
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="{background}"/>'
        f'<rect x="0" y="0" width="14" height="{HEIGHT}" fill="{ink}" opacity="0.18"/>'
        f'<line x1="30" y1="60" x2="{WIDTH - 30}" y2="60" stroke="{ink}" stroke-width="2" '
        f'opacity="0.6"/>'
        f'<g fill="{ink}" font-family="Georgia, \'Times New Roman\', serif">{"".join(text)}</g>'
        "</svg>"
    )
