"""Where the ledger lives: ``BOOKPAY_DATABASE_URL``, or SQLite in the data folder.

Accepted URLs:

- unset: ``bookpay.sqlite3`` in ``BOOKPAY_DATA_DIR``;
- ``sqlite:///relative/file.sqlite3`` or ``sqlite:////absolute/file.sqlite3`` (SQLAlchemy's
  spelling: what follows ``sqlite:///`` is the path);
- ``postgresql://user:password@host:5432/dbname?options=...`` (or ``postgres://``): anything
  libpq accepts, since psycopg hands it to libpq as is.

A password never leaves this module unmasked: ``masked`` is what messages and ``config check``
show.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bookpay.errors import ConfigError

DB_NAME = "bookpay.sqlite3"
SCHEMES = ("sqlite", "postgresql", "postgres")


@dataclass(frozen=True)
class Location:
    kind: str  # "sqlite" or "postgresql"
    url: str  # what to connect with (a password included)
    path: Path | None = None  # the SQLite file

    @property
    def masked(self) -> str:
        return str(self.path) if self.path is not None else mask_url(self.url)

    @property
    def identity(self) -> str:
        """The same ledger gives the same text, whoever looks: no password, no user."""
        if self.path is not None:
            return f"sqlite:{self.path.resolve()}"
        parts = urlsplit(self.url)
        host = (parts.hostname or "").lower()
        # libpq takes the user and the password as parameters too: they are left out there as
        # well, so a rotated password does not make another shop of the same ledger.
        query = "&".join(
            item
            for item in parts.query.split("&")
            if item and item.partition("=")[0] not in ("user", "password")
        )
        return f"postgresql://{host}:{parts.port or 5432}{parts.path}?{query}"

    def same_place(self, other: Location) -> bool:
        """Whether ``other`` names this ledger: the same identity, or this SQLite file under
        another name (a hard link, which SQLite would give a WAL file of its own)."""
        if self.identity == other.identity:
            return True
        if self.path is None or other.path is None:
            return False
        try:
            return os.path.samefile(self.path, other.path)
        except OSError:  # one of them does not exist (yet)
            return False


def locate(
    database_url: str | None, data_dir: Path, *, setting: str = "BOOKPAY_DATABASE_URL"
) -> Location:
    """The ledger named by ``database_url``, or the default SQLite file under ``data_dir``;
    ``setting`` is where the URL came from, for the messages (`ledger copy --to`)."""
    if not database_url:
        return Location("sqlite", "", Path(data_dir) / DB_NAME)
    scheme = database_url.partition(":")[0].lower()
    if scheme == "sqlite":
        rest = database_url[len("sqlite:") :]
        if not rest.startswith("///") or len(rest) == 3:
            raise ConfigError(
                f"{setting} {mask_url(database_url)!r} is not a SQLite URL bookpay "
                "reads: use "
                "sqlite:///relative/path.sqlite3 or sqlite:////absolute/path.sqlite3."
            )
        return Location("sqlite", database_url, Path(unquote(rest[3:])).expanduser())
    if scheme in ("postgresql", "postgres"):
        try:
            parts = urlsplit(database_url)
            parts.port  # noqa: B018  (raises ValueError for a port out of range)
        except ValueError as exc:
            raise ConfigError(
                f"{setting} {mask_url(database_url)} is not a URL bookpay can read ({exc})."
            ) from None
        if not parts.path.strip("/") and "dbname=" not in database_url:
            raise ConfigError(
                f"{setting} {mask_url(database_url)} names no database: add "
                "/DBNAME, as in postgresql://user@host:5432/bookpay."
            )
        return Location("postgresql", database_url)
    raise ConfigError(
        f"{setting} must start with postgresql:// or sqlite:///, got {mask_url(database_url)!r}."
    )


def mask_url(url: str) -> str:
    """``postgresql://shop:***@db:5432/bookpay``: the password replaced, everything else kept.

    The URL's own text is edited, not rebuilt: ``urlunsplit`` would drop the empty host of
    ``sqlite:////abs/path`` or ``postgresql:///db?host=/run/postgresql`` (``sqlite://abs/path``).
    It is cut as ``urlsplit`` cuts it (the password runs from the user's ``:`` to the last ``@``
    before the first ``/``, ``?`` or ``#`` after ``//``) but not parsed, so a URL that does not
    parse (``http://shop:secret@[::1``) is shown, masked, in the message saying so. Every URL
    bookpay shows goes through here (the ledger's, ``BOOKPAY_SMTP_URL``, replay's ``--to``).
    """
    masked = url
    start = url.find("//")
    if start != -1:
        start += 2
        ends = [i for i in (url.find(c, start) for c in "/?#") if i != -1]
        end = min(ends, default=len(url))
        userinfo, at, hostinfo = url[start:end].rpartition("@")
        if at and ":" in userinfo:
            masked = f"{url[:start]}{userinfo.split(':', 1)[0]}:***@{hostinfo}{url[end:]}"
    query_start = masked.find("?")
    if query_start != -1:  # libpq also takes the password as a parameter
        query_end = masked.find("#", query_start)
        query_end = len(masked) if query_end == -1 else query_end
        query = masked[query_start + 1 : query_end]
        if "password=" in query:
            query = "&".join(
                "password=***" if item.startswith("password=") else item
                for item in query.split("&")
            )
            masked = f"{masked[: query_start + 1]}{query}{masked[query_end:]}"
    return masked


def hide_passwords(text: str, url: str) -> str:
    """``text`` (a driver's message about ``url``) with the URL's passwords, as written and as
    decoded, replaced by ``***``: libpq quotes a token it cannot read (``"hunter2%ZZ"``)."""
    found = []
    start = url.find("//")
    if start != -1:
        ends = [i for i in (url.find(c, start + 2) for c in "/?#") if i != -1]
        userinfo, at, _ = url[start + 2 : min(ends, default=len(url))].rpartition("@")
        if at and ":" in userinfo:
            found.append(userinfo.split(":", 1)[1])
    query = url.partition("?")[2].partition("#")[0]
    found += [item[len("password=") :] for item in query.split("&") if item.startswith("password=")]
    variants = {form for secret in found for form in (secret, unquote(secret)) if form}
    for secret in sorted(variants, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
