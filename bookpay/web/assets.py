"""The shop's own files as its pages link them: fingerprinted static URLs, one inline script.

A page links ``/static/style.css?v=<digest>`` (the first 12 hex digits of the file's SHA-256):
what that URL names never changes, so it is served ``immutable`` for a year and a page loaded
after another page of the shop revalidates none of the files it already has. A file changed
while the server runs gets a new digest on the next page (digests are kept per file size and
modification time), and a URL whose ``v`` is not the file's digest now (a page from before the
change, or no ``v`` at all) is answered ``no-cache``, with Bottle's ETag: revalidated, never stale.

The checkout's first request is an inline script at the top of its page (``checkout-early.js``,
see there why), preceded in the same script by the page scripts' shared fetch helper
(``fetch-answer.js``, which every other page loads as a static file before ``cart.js``); the
Content-Security-Policy allows exactly that script by its SHA-256.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

IMMUTABLE = "public, max-age=31536000, immutable"
# The scripts of every page but the checkout (which has its own), deferred, in this order: the
# shared fetch helper first, which cart.js uses.
PAGE_SCRIPTS = ("fetch-answer.js", "cart.js")
REVALIDATE = "no-cache"


class StaticFiles:
    """Digests of the files in ``root``, for their URLs and their caching headers."""

    def __init__(self, root: Path) -> None:
        self._root = root
        # name -> ((mtime_ns, size), digest); a plain dict: a race only computes a digest twice.
        self._digests: dict[str, tuple[tuple[int, int], str]] = {}

    def digest(self, name: str) -> str | None:
        path = self._root / name
        try:
            stat = path.stat()
            key = (stat.st_mtime_ns, stat.st_size)
            known = self._digests.get(name)
            if known is not None and known[0] == key:
                return known[1]
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        except OSError:
            return None
        self._digests[name] = (key, digest)
        return digest

    def url(self, name: str) -> str:
        """``/static/NAME?v=DIGEST`` (no ``v`` for a file that is not there: a 404 anyway)."""
        digest = self.digest(name)
        return f"/static/{name}" if digest is None else f"/static/{name}?v={digest}"

    def cache_control(self, name: str, version: str) -> str:
        """For a file served under ``?v=version``: kept for good only if that is its digest."""
        return IMMUTABLE if version and version == self.digest(name) else REVALIDATE


class InlineScript:
    """A script inlined into a page, and the CSP source that allows exactly it: the files in
    ``paths``, one after the other, in one ``<script>`` element."""

    def __init__(self, *paths: Path) -> None:
        texts = []
        for path in paths:
            text = path.read_text(encoding="utf-8")
            if "</" in text:  # it would end the <script> element early
                raise ValueError(f"{path.name} cannot be inlined: it contains '</'")
            texts.append(text)
        self.text = "\n".join(texts)
        digest = hashlib.sha256(self.text.encode("utf-8")).digest()
        self.csp_source = f"'sha256-{base64.b64encode(digest).decode('ascii')}'"
