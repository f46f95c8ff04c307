"""Stripe's v1 wire protocol: bracket-notation form decoding, ids, the error envelope."""

from __future__ import annotations

import hmac
import json
import random
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

_BASE62 = string.digits + string.ascii_letters
DOCS = "https://stripe.com/docs/error-codes/"
# The emulator's own error codes (for what it does not support yet): Stripe documents no page.
OWN_CODES = frozenset({"parameter_unsupported", "api_version_unsupported"})


# Random bytes become base62 characters through one table (C-level), without bias: the 8 values
# past 62 * 4 are dropped, and drawn again in the rare case too few remain.
_TO_BASE62 = bytes(ord(_BASE62[b % 62]) for b in range(256))
_PAST = bytes(range(62 * 4, 256))


def _base62(draw: Callable[[int], bytes], length: int) -> str:
    token = b""
    while len(token) < length:
        token += draw(length + 8).translate(_TO_BASE62, _PAST)
    return token[:length].decode("ascii")


def random_token(length: int = 25) -> str:
    """Random base62 from system randomness (ids, client secrets, webhook secrets)."""
    return _base62(secrets.token_bytes, length)


# Request ids only need to differ, not to be secret (ids and client secrets do): no system call.
_requests = random.Random()


def new_request_id() -> str:
    """A Stripe-looking request id (`req_` and 14 base62 characters)."""
    return "req_" + _base62(_requests.randbytes, 14)


def same_secret(given: object, expected: str) -> bool:
    """Whether a request's ``given`` value is the secret ``expected``, compared in constant time
    (hmac.compare_digest), so that how long a refusal takes does not tell how much of a guess
    was right. Compared as UTF-8 bytes: compare_digest refuses a str with non-ASCII characters,
    which a request may hold. A value that is not a str (a hash or a list, from bracketed names)
    is never the secret."""
    if not isinstance(given, str):
        return False
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def new_id(prefix: str, length: int = 24) -> str:
    """A Stripe-looking id: prefix, underscore, random base62 (24 chars as Stripe's are)."""
    return f"{prefix}_{random_token(length)}"


def now() -> int:
    return int(time.time())


class ApiError(Exception):
    """An error answered in Stripe's envelope; `extra` adds keys like charge or payment_intent."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        extra: dict[str, Any] | None = None,
        validation: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.decline_code = decline_code
        self.extra = extra or {}
        # A refusal of the parameters themselves (see `malformed`), or of their names.
        self.validation = validation or (code or "").startswith("parameter_")

    def envelope(self, request_id: str) -> dict[str, Any]:
        err: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            err["code"] = self.code
            if self.code not in OWN_CODES:
                err["doc_url"] = DOCS + self.code.replace("_", "-")
        if self.decline_code:
            err["decline_code"] = self.decline_code
        if self.param:
            err["param"] = self.param
        err["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}?t={now()}"
        err.update(self.extra)
        return {"error": err}

    @property
    def storable(self) -> bool:
        """Stripe does not save idempotent results for requests refused before execution: those
        whose parameters fail validation."""
        return not self.validation


def invalid(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    """A request refused as it executes, for what is stored (a state, an amount left): an
    answer, which its idempotency key keeps."""
    return ApiError(400, message, param=param, code=code)


def malformed(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    """A request refused for its parameters alone (a type, format, length, range, allowed value
    or combination of them), before it executes: Stripe saves no idempotent result for it
    ("If incoming parameters fail validation ... no idempotent result is saved"), so the
    corrected request may use the same key."""
    return ApiError(400, message, param=param, code=code, validation=True)


def missing(param: str) -> ApiError:
    return invalid(f"Missing required param: {param}.", param, "parameter_missing")


def no_such(kind: str, obj_id: str, param: str = "id", status: int = 404) -> ApiError:
    return ApiError(status, f"No such {kind}: '{obj_id}'", param=param, code="resource_missing")


# --- form decoding ------------------------------------------------------------------------

# Limits on what a request may hold. Stripe's deepest parameter is far shallower than MAX_DEPTH
# (tests/emulator/test_wire_limits.py checks it against stripe-python's declarations); the body
# limit keeps one request from holding the store's lock for long.
MAX_BODY = 1024 * 1024
MAX_DEPTH = 16
MAX_STRING = 5000


def _split_key(key: str) -> list[str]:
    """`a[b][]` -> ["a", "b", ""]. A key without brackets is one segment."""
    head, sep, rest = key.partition("[")
    if not sep:
        return [key]
    parts = [head]
    for chunk in ("[" + rest).split("[")[1:]:
        parts.append(chunk[:-1] if chunk.endswith("]") else chunk)
    return parts


def _index(key: str) -> tuple[int, str]:
    """Numeric order of a digit string without int() (which refuses 4,300+ digits)."""
    digits = key.lstrip("0")
    return len(digits), digits


def _to_lists(root: dict[str, Any]) -> dict[str, Any]:
    """Hashes keyed only by indices (`a[0]`, `a[1]`) become lists, except metadata's keys and the
    top level (where `0=x` is an unknown parameter named 0, as with Stripe). Iterative, so that
    no input can reach a recursion limit."""
    stack: list[Any] = [root]
    while stack:
        node = stack.pop()
        pairs = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in list(pairs):
            if isinstance(value, dict):
                if key != "metadata" and value and all(k.isdigit() for k in value):
                    value = node[key] = [value[k] for k in sorted(value, key=_index)]
                stack.append(value)
            elif isinstance(value, list):
                stack.append(value)
    return root


def decode_form(raw: str) -> dict[str, Any]:
    """Decode Stripe's form encoding into nested dicts and lists of strings."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        parts = _split_key(key)
        if len(parts) > MAX_DEPTH:
            name = key if len(key) <= 60 else key[:60] + "..."
            raise malformed(
                f"Invalid parameter name: {name} is nested more than {MAX_DEPTH} levels deep.",
                parts[0],
            )
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "" and isinstance(node, list):
                if last:
                    node.append(value)
                else:
                    node.append({})
                    node = node[-1]
                continue
            if not isinstance(node, dict):
                raise malformed(f"Invalid array: {key}", parts[0])
            if last:
                node[part] = value
                continue
            nxt = parts[i + 1]
            if part not in node or not isinstance(node[part], (dict, list)):
                node[part] = [] if nxt == "" else {}
            node = node[part]
    return _to_lists(root)


def canonical(params: dict[str, Any]) -> str:
    """A stable rendering of parameters, to compare idempotent requests."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def too_long(value: str, param: str, limit: int = MAX_STRING) -> ApiError:
    """Stripe's wording for an over-long string: its first and last ten characters."""
    shown = f"{value[:10]}...{value[-10:]}" if len(value) > 20 else value
    return malformed(f"Invalid string: {shown}; must be at most {limit} characters", param)


@dataclass
class Response:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json"

    @classmethod
    def json(cls, status: int, payload: Any, **kw: Any) -> Response:
        # Compact: the indented encoder is pure Python and would dominate a request's cost.
        return cls(status, json.dumps(payload, separators=(",", ":")).encode(), **kw)

    @classmethod
    def html(cls, status: int, text: str) -> Response:
        return cls(status, text.encode(), content_type="text/html; charset=utf-8")
