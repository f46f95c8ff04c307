"""Web origins written as browsers write them, so that two names for one origin compare equal.

A browser's ``Origin`` (and the origin of its ``Referer``) has the scheme and host in lower
case, an internationalised host in punycode (``xn--bcher-kva.example`` for ``bücher.example``)
and no port when it is the scheme's default (80, 443). ``BOOKPAY_BASE_URL`` may say the same
origin otherwise (``https://shop.example:443``, ``https://Bücher.example``); compared as
written, every POST from the shop's own pages would be taken for another site's.
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def ascii_host(host: str) -> str | None:
    """``host`` as browsers send it: lower case, an internationalised name in punycode (UTS #46,
    as current browsers map it: ``straße`` stays ``ß``); None when it cannot be one."""
    if host.isascii():
        return host.lower()
    import idna

    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError:
        pass
    try:  # IDNA 2003, which browsers still take for what IDNA 2008 refuses (symbols)
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None


def _split(url: str) -> tuple[SplitResult, str, int | None] | None:
    """The parts of an http(s) URL with a host and no login, its host as browsers send it and
    its port (None for the scheme's default); None for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError when out of range or not a number
    except ValueError:  # "http://[::1/": an IPv6 host never closed
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        return None
    host = ascii_host(parts.hostname)
    if host is None:
        return None
    if ":" in host:  # an IPv6 address, bracketed again
        host = f"[{host}]"
    return parts._replace(scheme=scheme), host, None if port == DEFAULT_PORTS[scheme] else port


def origin(url: str) -> str | None:
    """The origin of the http(s) URL ``url`` as a browser names it (``scheme://host[:port]``),
    or None when it has none: another scheme, no host, a login, a port that is not one."""
    found = _split(url)
    if found is None:
        return None
    parts, host, port = found
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def normal_url(url: str) -> str:
    """``url`` with its origin written as ``origin`` writes it, the rest as it is; a URL with
    no such origin is returned as given (for the configuration's checks to name it)."""
    found = _split(url)
    if found is None:
        return url
    parts = found[0]
    return parts._replace(netloc=origin(url).partition("://")[2]).geturl()
