"""`intent confirm --3ds`: finish the emulator's 3-D Secure challenge over HTTP, as a browser would.

The emulator's challenge page is a form with Stripe's test buttons ("Complete authentication",
"Fail authentication"). This reads the page, and submits it with the chosen button, without
following the redirect to the return_url (the shop's success page is for a shopper's browser).
Only pages the configured emulator serves are driven: never a URL from anywhere else.
"""

from __future__ import annotations

import http.client
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin, urlsplit

from bookpay.errors import StripeUnavailable, UsageError

TIMEOUT = 30.0


class _ChallengeForm(HTMLParser):
    """The first POST form of the page: its action, hidden inputs and submit buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.hidden: list[tuple[str, str]] = []
        self.buttons: list[dict[str, str]] = []
        self._inside = False
        self._done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form" and not self._done and values.get("method", "").lower() == "post":
            self.action, self._inside = values.get("action", ""), True
        elif self._inside and tag == "input" and values.get("type") == "hidden":
            self.hidden.append((values.get("name", ""), values.get("value", "")))
        elif self._inside and tag == "button" and values.get("type", "submit") == "submit":
            self.buttons.append(values)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._inside:
            self._inside, self._done = False, True


def finish_challenge(url: str, emulator_url: str, outcome: str) -> None:
    """Press "Complete authentication" (``outcome="complete"``) or "Fail authentication"."""
    if not _same_origin(url, emulator_url):
        raise UsageError(
            f"--3ds only drives the emulator's own challenge page; this one is at {url}.",
            hint="Open it in a browser instead.",
        )
    status, _, page = _http("GET", url)
    if status != 200:
        raise UsageError(f"The challenge page answered {status}: is the authentication finished?")
    form = _ChallengeForm()
    form.feed(page.decode("utf-8", "replace"))
    button = next((b for b in form.buttons if b.get("value") == outcome), None)
    if form.action is None or button is None:
        raise UsageError(f"The challenge page at {url} has no {outcome!r} button.")
    fields = [*form.hidden, (button.get("name", "action"), outcome)]
    target = urljoin(url, form.action)
    if not _same_origin(target, emulator_url):
        raise UsageError(f"The challenge page posts to {target}, outside the emulator.")
    status, _, _ = _http("POST", target, urlencode(fields).encode())
    if status >= 400:
        raise UsageError(f"The emulator refused the authentication ({status}).")


def _same_origin(url: str, other: str) -> bool:
    a, b = urlsplit(url), urlsplit(other)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


def _http(method: str, url: str, body: bytes | None = None) -> tuple[int, dict, bytes]:
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname, parts.port, timeout=TIMEOUT)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.headers), response.read()
    except OSError as exc:
        raise StripeUnavailable(f"Could not reach the emulator's challenge page: {exc}.") from exc
    finally:
        connection.close()
