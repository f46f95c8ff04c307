"""The headers every response of the checkout server carries, and where Stripe.js comes from.

The Content-Security-Policy allows exactly what Stripe.js needs (Stripe's integration security
guide, "Content Security Policy", its list for Stripe.js: scripts and frames from js.stripe.com
and its subdomains, API calls to api.stripe.com, 3-D Secure frames from hooks.stripe.com, Google
Maps for the Address Element's autocomplete; not the hosted Checkout's img-src *.stripe.com,
which bookpay does not use) or, in emulator mode, the emulator's origin instead, and nothing
else: no inline script but the checkout's first request (allowed by its SHA-256, see
``bookpay.web.assets``), so the pages pass their configuration in a JSON block and load
``checkout.js`` from ``/static/``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from bookpay.config import Settings

STRIPE_JS_URL = "https://js.stripe.com/v3/"

# Stripe's documented sources for Stripe.js, by directive, and no others.
_STRIPE_SOURCES = {
    "script-src": [
        "https://js.stripe.com",
        "https://*.js.stripe.com",
        "https://maps.googleapis.com",
    ],
    "frame-src": ["https://js.stripe.com", "https://*.js.stripe.com", "https://hooks.stripe.com"],
    "connect-src": ["https://api.stripe.com", "https://maps.googleapis.com"],
    "img-src": [],
    # Stripe.js sets style attributes on the elements it mounts; styles cannot run code.
    "style-src": ["'unsafe-inline'"],
}


def stripe_js_url(settings: Settings) -> str:
    """Stripe.js from Stripe in Stripe mode, the emulator's offline twin otherwise."""
    return f"{settings.emulator_url}/v3/" if settings.is_emulated else STRIPE_JS_URL


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(settings: Settings, inline_scripts: tuple[str, ...] = ()) -> str:
    """``inline_scripts``: CSP sources (``'sha256-...'``) of the inline scripts pages may run."""
    if settings.is_emulated:
        emulator = origin(settings.emulator_url)
        extra = {
            "script-src": [emulator],
            "frame-src": [emulator],
            "connect-src": [emulator],
            "img-src": [emulator],
            # The offline Stripe.js styles its inputs through the CSSOM, which 'self' allows.
            "style-src": [],
        }
    else:
        extra = _STRIPE_SOURCES
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", *inline_scripts, *extra["script-src"]],
        "frame-src": list(extra["frame-src"]),
        "connect-src": ["'self'", *extra["connect-src"]],
        "img-src": ["'self'", "data:", *extra["img-src"]],
        "style-src": ["'self'", *extra["style-src"]],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


# A year, the shop's own host only: its subdomains are not the shop's to promise HTTPS for.
HSTS = "max-age=31536000"


def security_headers(
    settings: Settings, inline_scripts: tuple[str, ...] = (), *, https: bool = False
) -> dict[str, str]:
    """Computed once per app: the settings are frozen. ``https``: shoppers reach the shop over
    HTTPS (``BOOKPAY_BASE_URL``), so browsers are told to keep to it (HSTS); never over plain
    HTTP, where it would mean nothing and pin a local shop's host to an HTTPS it does not have."""
    headers = {
        "Content-Security-Policy": content_security_policy(settings, inline_scripts),
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin-allow-popups",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    }
    if https:
        headers["Strict-Transport-Security"] = HSTS
    return headers
