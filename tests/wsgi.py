"""Calling a WSGI app in-process, as a server would, for tests that assert exact responses."""

from __future__ import annotations

import dataclasses
import html
import io
import json
import urllib.parse
from wsgiref.util import setup_testing_defaults


@dataclasses.dataclass
class Response:
    status: int
    headers: dict[str, str]  # a header sent twice (Set-Cookie) keeps its last value here
    body: bytes
    cookies: list[str] = dataclasses.field(default_factory=list)  # every Set-Cookie, in order

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    @property
    def shown(self) -> str:
        """The text as a reader sees it: HTML entities decoded."""
        return html.unescape(self.text)

    def json(self):
        assert self.headers["Content-Type"].startswith("application/json"), self.headers
        return json.loads(self.body)


def call(app, method: str, target: str, body: bytes = b"", headers: dict | None = None) -> Response:
    """One request through the WSGI app, as a server would make it."""
    path, _, query = target.partition("?")
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": urllib.parse.unquote(path),
        "QUERY_STRING": query,
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
    }
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"] = value
    setup_testing_defaults(environ)
    started = {}

    def start_response(status, response_headers, exc_info=None):
        started["status"] = int(status.split()[0])
        started["headers"] = dict(response_headers)
        started["cookies"] = [value for name, value in response_headers if name == "Set-Cookie"]

    chunks = app(environ, start_response)
    try:
        data = b"".join(chunks)
    finally:
        if hasattr(chunks, "close"):
            chunks.close()
    return Response(started["status"], started["headers"], data, started["cookies"])
