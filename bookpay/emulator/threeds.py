"""The emulated 3-D Secure challenge page, and the HTML receipt behind a charge's receipt_url."""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import unquote_plus, urlencode

from bookpay.money import format_amount  # the shop's way of showing an amount, per currency

from . import confirmation, validate
from .context import Ctx
from .wire import Response, same_secret

# The shop's own font stack (bookpay/assets/static/style.css), so the challenge does not look
# like a different site.
_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", sans-serif;
       background: #f6f9fc; color: #1a1f36; margin: 0; }
main { max-width: 28rem; margin: 4rem auto; background: #fff; padding: 2rem;
       border-radius: 8px; box-shadow: 0 2px 8px rgba(0,0,0,.1); }
h1 { font-size: 1.25rem; } .amount { font-size: 2rem; font-weight: 600; }
button { font: inherit; min-height: 44px; padding: .6rem 1rem; margin: .25rem;
         border-radius: 4px; border: 1px solid #687385; cursor: pointer; }
button:focus-visible, a:focus-visible { outline: 2px solid #635bff; outline-offset: 2px; }
#test-source-authorize-3ds { background: #635bff; color: #fff; border-color: #635bff; }
.muted { color: #697386; font-size: .9rem; }
"""


MERCHANT = "bookpay emulator"


def _page(title: str, body: str) -> str:
    # The empty data: icon keeps the browser from asking for /favicon.ico (a logged 404).
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}"
        "</title><meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<link rel='icon' href='data:,'>"
        f"<style>{_STYLE}</style></head><body><main>{body}</main></body></html>"
    )


# Every page's headers. Never cached: Back must ask again rather than show buttons no longer
# live, and the challenge page's URL holds the client secret, which no Referer carries on either.
# No script runs (none is needed: a value that escaped its escaping could do nothing), no other
# type is sniffed. No frame-ancestors or X-Frame-Options: Stripe shows the challenge in an
# iframe of the merchant's page. No form-action: the form's 303 goes on to the return_url.
PAGE_HEADERS = (
    ("Cache-Control", "no-store"),
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)
ACTIONS = ("complete", "fail")  # the challenge page's two buttons


def _html(status: int, title: str, body: str, headers: tuple = ()) -> Response:
    return Response(
        status,
        _page(title, body).encode(),
        headers=[*PAGE_HEADERS, *headers],
        content_type="text/html; charset=utf-8",
    )


def bad_request(message: str) -> Response:
    return _html(400, "Bad request", f"<h1>Bad request</h1><p>{escape(message)}</p>")


def not_allowed(allowed: str) -> Response:
    """405 for a method a page does not take, naming those it does."""
    body = f"<h1>Method not allowed</h1><p>This page takes {escape(allowed)}.</p>"
    return _html(405, "Method not allowed", body, (("Allow", allowed),))


def _amount(pi: dict[str, Any]) -> str:
    return _money(pi["amount"], pi["currency"])


def _money(amount: int, currency: str) -> str:
    """``0.010 KWD``, ``A$0.10``, ``2,500 ISK``: an amount for the shopper as the shop shows it
    (no symbol that two currencies share; ISK and UGX in whole units, though written with two
    decimals on the wire). Stripe's API messages keep their own form (``validate.money``)."""
    return format_amount(amount, currency)


def _not_found() -> Response:
    return _html(404, "Not found", "<h1>No such authentication</h1>")


def _redirect_status(pi: dict[str, Any]) -> str:
    if pi["status"] in ("succeeded", "requires_capture"):
        return "succeeded"
    return "processing" if pi["status"] == "processing" else "failed"


def _return_location(pi: dict[str, Any], return_url: str) -> str:
    """The return_url with Stripe's query parameters (`payment_intent`,
    `payment_intent_client_secret`, `redirect_status`), in ASCII: it goes in a Location header,
    which cannot carry other characters. The URL's own query is kept as given (decoding and
    encoding it again would turn `?flag` into `?flag=` and a `%FF` into U+FFFD), and ours go
    after it; but one of ours that the query already has (a return_url made from an earlier
    return's URL) is given this payment's value where it first stands, and said once, as
    URLSearchParams.set does and as the offline Stripe.js does for its own redirect: a page
    reading the first `payment_intent` must read this payment's. Stripe documents nothing for
    this case. Split at the first `#` and the first `?` before it, as a browser does, so an
    application URI with an empty authority (`bookshop:///done`) keeps it."""
    ours = {
        "payment_intent": pi["id"],
        "payment_intent_client_secret": pi["client_secret"],
        "redirect_status": _redirect_status(pi),
    }
    rest, hash_, fragment = return_url.partition("#")
    base, _, query = rest.partition("?")
    pieces: list[str] = []
    placed: set[str] = set()
    for piece in query.split("&") if query else []:
        name = unquote_plus(piece.partition("=")[0])  # as a page reads it: `payment%5Fintent`
        if name not in ours:
            pieces.append(piece)
        elif name not in placed:
            pieces.append(urlencode({name: ours[name]}))
            placed.add(name)
    missing = [urlencode({name: value}) for name, value in ours.items() if name not in placed]
    if missing and pieces and pieces[-1] == "":  # `?a=1&`: ours after its `&`, not another
        pieces.pop()
    query = "&".join(pieces + missing)
    return validate.ascii_url(f"{base}?{query}{hash_}{fragment}")


def _finished(pi: dict[str, Any]) -> Response:
    """Shown instead of the buttons once the intent has left requires_action (Back, a resubmit)."""
    return_url = pi.get("_return_url")
    if return_url:
        href = escape(_return_location(pi, return_url), quote=True)
        onward = f"<p><a id='return-link' href='{href}'>Return to the merchant</a></p>"
    else:
        onward = "<p class='muted'>You can close this window.</p>"
    body = (
        "<h1>This authentication is already finished</h1>"
        f"<p>The payment of {escape(_amount(pi))} no longer needs your confirmation.</p>" + onward
    )
    return _html(200, "Authentication finished", body)


def _find(ctx: Ctx, pi_id: str, secret: str) -> dict[str, Any] | None:
    pi = ctx.store.get(pi_id, "payment_intent")
    if pi is None or not same_secret(secret, pi["client_secret"]):
        return None
    return pi


def challenge(ctx: Ctx, pi_id: str, secret: str) -> Response:
    pi = _find(ctx, pi_id, secret)
    if pi is None:
        return _not_found()
    if pi["status"] != "requires_action":
        return _finished(pi)
    hidden = f"<input type='hidden' name='client_secret' value='{escape(secret, quote=True)}'>"
    action = f"/3ds/authenticate/{escape(pi_id)}"
    merchant = pi.get("statement_descriptor") or MERCHANT
    body = (
        "<h1>Emulated 3D Secure authentication</h1>"
        f"<p class='muted'>bookpay's Stripe emulator, test mode. PaymentIntent {escape(pi_id)}</p>"
        f"<p class='amount' id='amount'>{escape(_amount(pi))}</p>"
        f"<p id='prompt'>Your bank asks you to confirm this payment of {escape(_amount(pi))}"
        f" to {escape(merchant)}.</p>"
        f"<form method='post' action='{action}'>{hidden}"
        "<button type='submit' name='action' value='complete' id='test-source-authorize-3ds'>"
        "Complete authentication</button>"
        "<button type='submit' name='action' value='fail' id='test-source-fail-3ds'>"
        "Fail authentication</button></form>"
    )
    return _html(200, "Emulated 3D Secure authentication", body)


def _redirect(pi: dict[str, Any], return_url: str) -> Response:
    """303 to the return_url with Stripe's query parameters (and no Referer sent there)."""
    return Response(
        303,
        b"",
        headers=[("Location", _return_location(pi, return_url)), *PAGE_HEADERS],
        content_type="text/plain",
    )


def submit(ctx: Ctx, pi_id: str, form: dict[str, Any]) -> Response:
    """Finish authentication (the page's buttons), then send the browser back."""
    with ctx.store.transaction():
        pi = _find(ctx, pi_id, str(form.get("client_secret", "")))
        if pi is None:
            return _not_found()
        if pi["status"] != "requires_action":  # Back and a second click: nothing left to do
            return _finished(pi)
        if form.get("action") not in ACTIONS:  # not one of the buttons: nothing is decided
            return bad_request("The action is complete or fail, the page's two buttons.")
        if form.get("action") == "complete":
            pi = confirmation.complete_authentication(ctx, pi)
        else:
            pi = confirmation.fail_authentication(ctx, pi)
    return_url = pi.get("_return_url")
    if return_url:
        return _redirect(pi, return_url)
    error = (pi.get("last_payment_error") or {}).get("message")
    body = (
        "<h1>Emulated 3D Secure authentication</h1>"
        f"<p class='amount'>{escape(_amount(pi))}</p>"
        f"<p>Result: <strong id='status'>{escape(pi['status'])}</strong></p>"
        + (f"<p id='error'>{escape(error)}</p>" if error else "")
        + "<p class='muted'>No return_url was given; you can close this window.</p>"
    )
    return _html(200, "Authentication finished", body)


def receipt(ctx: Ctx, ch_id: str) -> Response:
    ch = ctx.store.get(ch_id, "charge")
    if ch is None or ch["status"] != "succeeded":
        return _html(404, "Not found", "<h1>No such receipt</h1>")
    card = ch["payment_method_details"]["card"]
    refunded = ""
    if ch["amount_refunded"]:
        refunded = f"<p>Refunded: {escape(_money(ch['amount_refunded'], ch['currency']))}</p>"
    body = (
        "<h1>Receipt</h1><p class='muted'>bookpay (Stripe emulator, test mode)</p>"
        f"<p class='amount'>{escape(_money(ch['amount'], ch['currency']))}</p>"
        f"<p>{escape(card['brand'].title())} ending in {escape(card['last4'])}</p>"
        f"<p>Charge {escape(ch['id'])}</p>{refunded}"
        + (f"<p>{escape(ch['description'])}</p>" if ch["description"] else "")
    )
    return _html(200, "Receipt", body)
