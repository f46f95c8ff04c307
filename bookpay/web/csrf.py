"""Cross-site request forgery: every state-changing request must come from the shop's own pages.

The cart lives behind a cookie, so a form on another site could post to it with the shopper's
cookie attached (``SameSite=Lax`` keeps the cookie off cross-site POSTs in current browsers, and
this check does not rely on it). Browsers name the page a request comes from in ``Origin`` (and
``Referer``); a request is accepted when that origin is the shop's own: the one it is reached at
(its ``Host``) or ``BOOKPAY_BASE_URL``'s, each written as browsers write an origin (no default
port, a punycode host: ``bookpay.origins``). A request that names no origin at all is not from a
browser form: a JSON request (which a browser only sends cross-site after a CORS preflight that
the shop never grants) is accepted, anything else refused.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import bottle

from bookpay.errors import UsageError
from bookpay.origins import origin


class CrossOrigin(UsageError):
    http_status = 403
    code = "cross_origin"


def _origin_of(url: str | None) -> str | None:
    if not url:
        return None
    # "null" (sandboxed frames, file: pages), another scheme or junk: never ours
    return origin(url) or "null"


def _claimed_origin(header: str) -> str:
    """An ``Origin`` header's origin; "null" unless it is one (no path, query or fragment)."""
    header = header.strip()
    found = origin(header)
    if found is None or urlsplit(header)[2:] != ("", "", ""):
        return "null"
    return found


def own_origins(request: bottle.BaseRequest, shop_url: str | None) -> set[str]:
    found = set()
    host = request.environ.get("HTTP_HOST")
    if host:
        scheme = request.environ.get("wsgi.url_scheme", "http")
        found.add(origin(f"{scheme}://{host}") or "")
    if shop_url:
        found.add(origin(shop_url) or "")
    return found - {""}


def check_origin(request: bottle.BaseRequest, shop_url: str | None) -> None:
    """Raise CrossOrigin unless the request comes from one of the shop's own pages."""
    claimed = request.environ.get("HTTP_ORIGIN")
    if claimed is None:
        claimed = _origin_of(request.environ.get("HTTP_REFERER"))
    else:
        claimed = _claimed_origin(claimed)
    if claimed is None:
        content_type = request.content_type.split(";", 1)[0].strip().lower()
        if content_type == "application/json":
            return
        raise CrossOrigin(
            "This request does not say which page it comes from (no Origin or Referer header), "
            "so the shop cannot tell it from a forged one. Use the shop's own pages."
        )
    if claimed not in own_origins(request, shop_url):
        raise CrossOrigin(
            "This request comes from another site, so the shop refused it. "
            "Use the shop's own pages."
        )
