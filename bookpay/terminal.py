"""Text from outside, made harmless for a terminal.

A shipping name, an e-mail, an event's type or a receiver's answer can hold escape sequences that
clear the screen, recolour the text, retitle the window or hide a line (a carriage return), and
bidirectional overrides that make text read differently from what it is. Everything bookpay
prints for a person passes through ``printable``, which shows each such character as a visible
escape (``\\x1b``, ``\\r``, ``\\u202e``) instead of sending it to the terminal. JSON output needs no
help: ``json.dumps`` escapes control characters itself. Text for elsewhere that must stay one line
(a receipt's shipping name) goes through ``plain_line``, which makes each of those characters a
space.
"""

from __future__ import annotations

# C0 controls, DEL and C1 controls (Unicode category Cc), the bidirectional embeddings, overrides
# and isolates, the implicit direction marks, the Unicode line and paragraph separators, and the
# invisible characters that join or split nothing a reader could see (the zero-width space, the
# word joiner and invisible operators, the deprecated format controls, the zero-width no-break
# space U+FEFF): each hides in an id or a name and moves a table's columns. The zero-width
# (non-)joiners U+200C and U+200D stay: names in Persian or Hindi, and emoji, need them.
_UNSAFE = [
    *range(0x00, 0x20),
    *range(0x7F, 0xA0),
    0x061C,
    0x200B,
    0x200E,
    0x200F,
    *range(0x202A, 0x202F),
    *range(0x2060, 0x2065),
    *range(0x2066, 0x2070),
    0xFEFF,
    0x2028,
    0x2029,
    *range(0xD800, 0xE000),  # lone surrogates (from JSON's "\\ud800"): no stream can encode them
]
_NAMED = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}


def _shown(code: int) -> str:
    if code in _NAMED:
        return _NAMED[code]
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


_TABLE = {code: _shown(code) for code in _UNSAFE}
_TABLE_KEEPING_NEWLINES = {code: shown for code, shown in _TABLE.items() if code != 0x0A}


def printable(text: object, *, keep_newlines: bool = False) -> str:
    """``text`` with every control character shown as an escape; newlines kept if asked."""
    text = text if isinstance(text, str) else str(text)
    return text.translate(_TABLE_KEEPING_NEWLINES if keep_newlines else _TABLE)


_SPACES = dict.fromkeys(_UNSAFE, " ")


def plain_line(text: object) -> str:
    """``text`` as one line of plain text, for text that is not for a terminal (a mail's subject
    or body): each character ``printable`` would escape (every line break among them: ``\\r``,
    ``\\n``, ``\\v``, ``\\f``, ``\\x1c``-``\\x1e``, ``\\x85``, ``\\u2028``, ``\\u2029``) becomes a
    space, runs of white space one space, and none is left at either end."""
    text = text if isinstance(text, str) else str(text)
    return " ".join(text.translate(_SPACES).split())


# For JSON text made with ``ensure_ascii=False``: json.dumps escapes the C0 controls itself; the
# rest of what ``printable`` shows as escapes it leaves raw. These occur only inside strings, so
# writing them as \u escapes keeps the same JSON.
_JSON_TABLE = {code: f"\\u{code:04x}" for code in _UNSAFE if code >= 0x7F}


def json_safe(text: str) -> str:
    """JSON text with DEL, C1 controls, bidirectional overrides, line separators and lone
    surrogates written as ``\\uXXXX`` escapes: the same data, safe for a terminal and
    encodable by any stream."""
    return text.translate(_JSON_TABLE)
