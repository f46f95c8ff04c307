"""Text from outside, made harmless for a terminal.

A shipping name, an e-mail, an event's type or a receiver's answer can hold escape sequences that
clear the screen, recolour the text, retitle the window or hide a line (a carriage return);
bidirectional overrides that make text read differently from what it is; and invisible
characters that hide or fake text in an id or a name, among them the Unicode TAG characters
("ASCII smuggling": a sentence no reader sees, that a copy-paste or a language model reads).
Everything bookpay prints for a person passes through ``printable``, which shows each such
character as a visible escape (``\\x1b``, ``\\r``, ``\\u202e``, ``\\U000e0041``) instead of
sending it to the terminal. JSON text goes through ``json_safe``, which writes them as ``\\u``
escapes (``json.dumps`` escapes only the C0 controls itself). Text for elsewhere that must stay
one line (a receipt's shipping name) goes through ``plain_line``, which makes each of those
characters a space.
"""

from __future__ import annotations

import re
import unicodedata

# Escaped wherever they are:
# - C0 controls, DEL and C1 controls (Unicode category Cc), the bidirectional embeddings,
#   overrides and isolates, the implicit direction marks, the Unicode line and paragraph
#   separators, and lone surrogates (from JSON's "\ud800": no stream can encode them).
# - The invisible characters that join or split nothing a reader could see, and the fillers
#   that show as blank: each hides in an id or a name (a copied id no longer matches, two names
#   that look alike differ) and moves a table's columns. All of Unicode's
#   Default_Ignorable_Code_Points but those kept below: the soft hyphen U+00AD (a terminal shows
#   it as nothing or as "-": either way not the text; a hyphenation hint no name needs), the
#   combining grapheme joiner U+034F (only scholarly Hebrew and German need it), the Hangul
#   fillers U+115F, U+1160, U+3164 and U+FFA0 (modern Korean names are written in whole
#   syllables; a lone filler is the well-known "invisible name"), the Khmer inherent vowels
#   U+17B4 and U+17B5 (Unicode says not to use them), the zero-width space, the word joiner
#   and invisible operators and the deprecated format controls (U+2060-U+206F, with the
#   unassigned U+2065), U+FEFF, the unassigned U+FFF0-U+FFF8, the shorthand format controls
#   U+1BCA0-U+1BCA3 and the musical beam and phrase controls U+1D173-U+1D17A. Beside them the
#   interlinear annotation controls U+FFF9-U+FFFB, which are not default-ignorable but make
#   a renderer that honours them hide the text between them.
# The zero-width (non-)joiners U+200C and U+200D stay: names in Persian or Hindi, and emoji,
# need them. The rest of the default-ignorables are kept only where real text needs them
# (``_IN_CONTEXT``).
_UNSAFE = [
    *range(0x00, 0x20),
    *range(0x7F, 0xA0),
    0x00AD,
    0x034F,
    0x061C,
    0x115F,
    0x1160,
    0x17B4,
    0x17B5,
    0x200B,
    0x200E,
    0x200F,
    *range(0x202A, 0x202F),
    *range(0x2060, 0x2070),
    0x3164,
    0xFEFF,
    0xFFA0,
    *range(0xFFF0, 0xFFFC),
    0x2028,
    0x2029,
    *range(0xD800, 0xE000),
    *range(0x1BCA0, 0x1BCA4),
    *range(0x1D173, 0x1D17B),
]
_NAMED = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}


def _shown(code: int) -> str:
    """Python's own escape for ``code``: ``\\x1b``, ``\\u202e``, ``\\U000e0041`` (eight hex digits
    above U+FFFF: ``\\ue0041`` would read as U+E004 and a "1")."""
    if code in _NAMED:
        return _NAMED[code]
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _json_escape(code: int) -> str:
    """JSON's escape for ``code``: a surrogate pair above U+FFFF (``\\udb40\\udc41``)."""
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


# Kept only where real text needs them, escaped anywhere else:
# - The TAG characters U+E0000-U+E007F, only in an emoji tag sequence as Unicode defines the
#   ones Unicode recommends for general interchange (UTS #51's RGI set): U+1F3F4 WAVING BLACK
#   FLAG, the tag letters of "gbeng", "gbsct" or "gbwls" and U+E007F CANCEL TAG, the flags of
#   England, Scotland and Wales. Any other tag text (a sentence behind a flag, or in flags of
#   that shape with other letters, three to six of them a flag), a sequence left open and the
#   deprecated LANGUAGE TAG U+E0001 are escaped, one tag character at a time.
# - One variation selector right after the character it selects a form of: U+FE00-U+FE0F
#   after a letter, number, punctuation or symbol (an emoji's presentation, "\u2764\ufe0f"; a
#   keycap "1\ufe0f\u20e3"), but after an ASCII character only in a keycap: U+FE0F after a
#   digit, "#" or "*" and before U+20E3 COMBINING ENCLOSING KEYCAP (the only ASCII sequence
#   Unicode defines, so an id, digits and all, carries none); never after a character shown as
#   an escape itself (a Hangul filler: the selector would be all that is left of it); U+E0100-
#   U+E01EF after a CJK unified ideograph (the Ideographic Variation Database's sequences, a
#   Japanese name's exact glyph); the Mongolian free variation selectors U+180B-U+180D, U+180F
#   and vowel separator U+180E after a Mongolian letter. A selector anywhere else, or a second
#   one, selects nothing and can only carry hidden data (a byte per selector after an emoji).
# - The rest of the plane-14 block, unassigned but default-ignorable: always escaped.
def _tag_flag(code: str) -> str:
    return "\U0001f3f4" + "".join(chr(0xE0000 + ord(c)) for c in code) + "\U000e007f"


# Only the flags Unicode recommends for general interchange (RGI): any other sequence of the
# same shape would carry three to six letters of hidden text a flag at a time.
_FLAGS = "|".join(_tag_flag(code) for code in ("gbeng", "gbsct", "gbwls"))
_IN_CONTEXT = re.compile(f"{_FLAGS}|[\u180b-\u180f\ufe00-\ufe0f\U000e0000-\U000e0fff]")
_MAYBE_IN_CONTEXT = re.compile("[\u180b-\u180f\ufe00-\ufe0f\U000e0000-\U000e0fff]").search
_ESCAPE_JSON = re.compile(r"\\(?:u[0-9a-fA-F]{4}|.)\Z", re.DOTALL).search


def _selects(selector: str, before: str, after: str) -> bool:
    """Whether the variation selector ``selector`` right after ``before`` (and before
    ``after``, "" at the end) selects its form."""
    if ord(before) in _UNSAFE_CODES:  # shown as an escape itself: no base for anything
        return False
    if "\ufe00" <= selector <= "\ufe0f":
        if before.isascii():  # only a keycap: "1\ufe0f\u20e3"
            return before in "0123456789#*" and selector == "\ufe0f" and after == "\u20e3"
        return unicodedata.category(before)[0] in "LNPS"
    if "\U000e0100" <= selector <= "\U000e01ef":
        return unicodedata.name(before, "").startswith("CJK UNIFIED IDEOGRAPH-")
    if "\u180b" <= selector <= "\u180f":
        return "\u1820" <= before <= "\u18aa" and unicodedata.category(before)[0] == "L"
    return False


def _in_context(text: str, replace, *, json_text: bool = False) -> str:
    """``text`` with each character of ``_IN_CONTEXT`` outside its context ``replace``d."""

    def one(match: re.Match) -> str:
        found, at = match.group(), match.start()
        if len(found) > 1:  # a flag's tag sequence
            return found
        # In JSON text, the character before may end an escape (``\u0030``, ``\"``): the
        # string's character before was not that one, so the selector goes too.
        if (
            at
            and _selects(found, text[at - 1], text[at + 1 : at + 2])
            and not (json_text and _ESCAPE_JSON(text, max(0, at - 6), at))
        ):
            return found
        return replace(ord(found))

    return _IN_CONTEXT.sub(one, text)


_TABLE = {code: _shown(code) for code in _UNSAFE}
_UNSAFE_CODES = frozenset(_UNSAFE)
_TABLE_KEEPING_NEWLINES = {code: shown for code, shown in _TABLE.items() if code != 0x0A}


def printable(text: object, *, keep_newlines: bool = False) -> str:
    """``text`` with every control character shown as an escape; newlines kept if asked."""
    text = text if isinstance(text, str) else str(text)
    if not text.isascii() and _MAYBE_IN_CONTEXT(text):  # isascii() is free: most text is
        text = _in_context(text, _shown)
    return text.translate(_TABLE_KEEPING_NEWLINES if keep_newlines else _TABLE)


_SPACES = dict.fromkeys(_UNSAFE, " ")


def plain_line(text: object) -> str:
    """``text`` as one line of plain text, for text that is not for a terminal (a mail's subject
    or body): each character ``printable`` would escape (every line break among them: ``\\r``,
    ``\\n``, ``\\v``, ``\\f``, ``\\x1c``-``\\x1e``, ``\\x85``, ``\\u2028``, ``\\u2029``) becomes a
    space, runs of white space one space, and none is left at either end."""
    text = text if isinstance(text, str) else str(text)
    if not text.isascii() and _MAYBE_IN_CONTEXT(text):
        text = _in_context(text, lambda code: " ")
    return " ".join(text.translate(_SPACES).split())


# For JSON text made with ``ensure_ascii=False``: json.dumps escapes the C0 controls itself; the
# rest of what ``printable`` shows as escapes it leaves raw. These occur only inside strings, so
# writing them as \u escapes (a surrogate pair above U+FFFF) keeps the same JSON.
_JSON_TABLE = {code: _json_escape(code) for code in _UNSAFE if code >= 0x7F}


def json_safe(text: str) -> str:
    """JSON text with DEL, C1 controls, bidirectional overrides, line separators, lone
    surrogates and the invisible characters ``printable`` escapes written as ``\\uXXXX``
    escapes: the same data, safe for a terminal and encodable by any stream."""
    if not text.isascii() and _MAYBE_IN_CONTEXT(text):
        text = _in_context(text, _json_escape, json_text=True)
    return text.translate(_JSON_TABLE)
