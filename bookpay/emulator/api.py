"""The emulator's WSGI application: routing, API keys, idempotency, CORS, faults, pages."""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from bookpay import __version__

from . import control, faults, render, routes, threeds
from . import params as declared
from .clock import Clock
from .context import Ctx
from .delivery import Deliverer
from .events import Emitter
from .store import Store, Stored
from .wire import MAX_BODY, ApiError, Response, canonical, decode_form, invalid, new_request_id

log = logging.getLogger(__name__)

# The API version of the pinned stripe-python (from the generated parameter table).
API_VERSION = declared.api_version()
STATIC_JS = Path(__file__).parent / "static" / "stripe-v3.js"
CORS = [
    ("Access-Control-Allow-Origin", "*"),
    (
        "Access-Control-Expose-Headers",
        "Request-Id, Stripe-Version, Idempotent-Replayed, Original-Request, Stripe-Should-Retry",
    ),
]
PREFLIGHT = [
    *CORS,
    ("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS"),
    (
        "Access-Control-Allow-Headers",
        "Authorization, Content-Type, Stripe-Version, Idempotency-Key, Stripe-Account",
    ),
    ("Access-Control-Max-Age", "300"),
]
# Every API answer's headers, besides its Request-Id and Stripe-Version.
API_HEADERS = (*CORS, ("Cache-Control", "no-cache, no-store"))
NO_KEY = (
    "You did not provide an API key. You need to provide your API key in the Authorization"
    " header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See"
    " https://stripe.com/docs/api#authentication for details, or we can help at"
    " https://support.stripe.com/."
)
FROM_A_PAGE = (
    "The bookpay emulator does not take secret or restricted API keys from web pages: Stripe.js"
    " uses your publishable key (pk_test_...), and secret keys stay on your server."
)
# Stripe's refusal of a key that is empty or over 255 characters (its Idempotent requests page:
# "up to 255 characters long"), as its API answers it now: an `idempotency_error`, the length
# given in characters (a stripe-go user's record of one, and test mode's answer to a 272-character
# key quoted since; the 2016 quote this replaced had "length is 0," and no type).
IDEMPOTENCY_KEY_MAX = 255
IDEMPOTENCY_KEY_LENGTH = (
    "Idempotent key length is {length} characters long, which is outside accepted lengths."
    " Idempotent Keys must be 1-255 characters long. If you're looking for a decent generator,"
    " try using a UUID defined by IETF RFC 4122."
)
# Stripe's refusal of a body that is not form-encoded (JSON, text/plain, none named), as its API
# answers it (quoted in stripe client libraries' issues): a 400 with no code or param.
UNSUPPORTED_BODY = (
    "Invalid request: unsupported Content-Type {content_type}. If error persists and you need"
    " assistance, please contact support@stripe.com."
)
FORM = "application/x-www-form-urlencoded"
# Stripe's refusal of an idempotency key sent to another endpoint than the one it was first
# used on (this request's path first), as its API answers it (quoted in integrations' issues).
IDEMPOTENCY_OTHER_ENDPOINT = (
    "Keys for idempotent requests can only be used for the same endpoint they were first used"
    " for ('{path}' vs '{first}'). Try using a key other than '{key}' if you meant to execute a"
    " different request."
)
# Stripe's answer to a keyed request while another with the same key is still executing: a 409
# that saves nothing (its Idempotent requests page), so a retry once the first has finished gets
# that one's answer. Its body as its API answers it (stripe-go's debug log of one, quoted in
# integrations' tests): an `invalid_request_error`, code `idempotency_key_in_use`.
IDEMPOTENCY_KEY_IN_USE = (
    "There is currently another in-progress request using this Idempotent Key (that probably"
    " means you submitted twice, and the other request is still going through): {key}. Please"
    " try again later."
)
FAULT_HEADER = "Bookpay-Emulator-Fault"  # on every injected answer: its kind
# On a 500 an idempotency key keeps (its first answer and every replay): a retry would only
# replay it. Stripe's client libraries honour it before the status (stripe-python's
# HTTPClient._should_retry: "The API may ask us not to retry (eg; if doing so would be a
# no-op)"; "we expect the stripe-should-retry header to be false in most cases when a 500 is
# returned, since our idempotency framework would typically replay it anyway"). Never beside a
# Retry-After (Stripe's API keeps that invariant: stripe-node#692). Stripe's `true` is documented
# by its client libraries only for lock timeouts (a 429 `lock_timeout`, which the emulator never
# answers: it runs one request at a time on an object). Its 409 `idempotency_key_in_use` carries
# no Stripe-Should-Retry that Stripe documents, so the emulator's carries none: stripe-python
# retries a 409 for its status alone (its _should_retry: "Retry on conflict errors").
NO_RETRY = ("Stripe-Should-Retry", "false")
PUBLISHABLE_REFUSED = (
    "This API call cannot be made with a publishable API key. Please use a secret API key. You"
    " can find a list of your API keys at https://dashboard.stripe.com/account/apikeys."
)


@functools.cache
def version() -> str:
    from importlib import metadata

    try:
        return metadata.version("bookpay")
    except metadata.PackageNotFoundError:
        return __version__


@functools.cache
def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


_static_lock = threading.Lock()
_static_bytes: bytes | None = None
_static_etag = ""


def _static_js() -> tuple[bytes, str] | None:
    """Stripe.js and its ETag (a digest of those bytes), read once; None (asked again next time)
    while the file is not installed."""
    global _static_bytes, _static_etag
    if _static_bytes is None:
        with _static_lock:
            if _static_bytes is None and STATIC_JS.is_file():
                script = STATIC_JS.read_bytes()
                _static_etag = f'"{hashlib.sha256(script).hexdigest()[:20]}"'
                _static_bytes = script
    return None if _static_bytes is None else (_static_bytes, _static_etag)


def _matches(if_none_match: str, etag: str) -> bool:
    """Whether an If-None-Match header names ``etag`` (weak comparison, as RFC 9110 asks)."""
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags


def _redact(key: str) -> str:
    if len(key) <= 12:
        return key[:3] + "*" * max(0, len(key) - 3)
    prefix = key[: key.index("_", 3) + 1] if key.count("_") >= 2 else key[:3]
    return prefix + "*" * (len(key) - len(prefix) - 4) + key[-4:]


def _header_key(environ: dict[str, Any]) -> str:
    """The key in the Authorization header (Bearer, or Basic as curl -u and the stripe CLI
    send it), or "" when there is none."""
    header = environ.get("HTTP_AUTHORIZATION", "")
    if header.startswith("Bearer "):
        return header[7:].strip()
    if header.startswith("Basic "):
        try:
            return base64.b64decode(header[6:]).decode().split(":", 1)[0]
        except ValueError:
            return ""
    return ""


def authenticate(environ: dict[str, Any], params: dict[str, Any]) -> tuple[str, bool]:
    """The API key and whether it is publishable.

    Stripe.js sends its publishable key as the `key` param, with no header, so that its calls
    need no CORS preflight; a secret key is taken only from the Authorization header, which no
    page can send cross-origin without a preflight. A secret key on a request that names a
    page's origin (a browser's `Origin` header) is refused whichever way it came: otherwise any
    web page could drive the secret-key API of an emulator it can reach.
    """
    key = _header_key(environ)
    key_param = params.pop("key", None)
    from_param = not key and isinstance(key_param, str) and bool(key_param)
    if from_param:
        key = key_param
    if not key:
        raise ApiError(401, NO_KEY)
    secret = key.startswith(("sk_", "rk_"))
    if secret and environ.get("HTTP_ORIGIN"):
        raise ApiError(403, FROM_A_PAGE)
    if secret and from_param:
        raise ApiError(401, NO_KEY)
    if key.startswith(("sk_test_", "rk_test_")) and len(key) > 8:
        return key, False
    if key.startswith("pk_test_") and len(key) > 8:
        return key, True
    raise ApiError(401, f"Invalid API Key provided: {_redact(key)}")


class Emulator:
    """A WSGI app over one store and one deliverer. `close()` stops delivery and the store."""

    def __init__(self, options: Any) -> None:
        self.options = options
        self.faults = faults.Faults.from_options(options)
        self.store = Store(options.db_path)
        self.clock = Clock(self.store, self._clock_ctx, options.async_delay)
        self.store.clock = self.clock.now  # idempotency keys expire on the emulator's clock
        self.deliverer = Deliverer(
            self.store,
            tuple(options.retry_schedule),
            options.delivery_timeout,
            clock=self.clock.now,
        )
        self.clock.deliverer = self.deliverer
        self.deliverer.start()
        self.clock.start()
        self._key_locks: set[tuple[str, str]] = set()  # the keys of requests executing
        self._key_locks_guard = threading.Lock()

    def close(self) -> None:
        self.clock.stop()
        self.deliverer.stop()
        self.store.close()

    def delivery_attempts(self, event_id: str | None = None) -> list[dict[str, Any]]:
        """Every recorded webhook attempt (endpoint, url, status, time, error)."""
        return self.store.attempts(event_id)

    def reset(self) -> None:
        """As new: no objects, keys, deliveries or timers; the clock and faults as started."""
        with self.store.transaction():
            self.deliverer.reset()
            self.store.reset()
        self.clock.reset()
        self.faults.reset()

    # --- WSGI -------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        try:
            response = self._route(environ)
        except faults.Drop:
            if environ.get("bookpay.drops"):  # the emulator's own server closes the connection
                raise
            faults.drop_connection()  # under waitress (or another server: its 500)
            raise
        except Exception:
            log.exception("emulator error")
            response = Response.json(
                500,
                ApiError(500, "An unknown error occurred", type="api_error").envelope("req_0"),
                headers=list(CORS),
            )
        reason = _reason(response.status)
        headers = [("Content-Type", response.content_type), *response.headers]
        if response.status != 304:  # a 304 describes the cached copy: no length of its own
            headers.append(("Content-Length", str(len(response.body))))
        start_response(f"{response.status} {reason}", headers)
        return [response.body]

    def _route(self, environ: dict[str, Any]) -> Response:
        method = environ["REQUEST_METHOD"].upper()
        path, segments = request_path(environ)
        if method == "OPTIONS":
            # A page may call the API (Stripe.js does), never the control endpoints: no
            # preflight for those, so no page's script can fault, move or reset the emulator.
            allowed = [] if segments[0] == "_emulator" else list(PREFLIGHT)
            return Response(204, b"", headers=allowed, content_type="text/plain")
        if len(segments) > 1 and segments[0] == "v1":
            if self.faults.active:
                return self._api_faulty(environ, method, path, segments[1:])
            return self._api(environ, method, path, segments[1:])
        if segments == ["healthz"]:
            body = {
                "ok": True,
                "service": "bookpay-emulator",
                "version": version(),
                "state": self.store.state_id,  # the same for as long as its state lasts
                "ephemeral": self.options.db_path is None,
            }
            return Response.json(200, body, headers=list(CORS))
        if segments in (["v3"], ["v3", ""]) and method == "GET":
            return self._stripe_js(environ)
        ctx = self._page_ctx(environ)
        try:
            if len(segments) == 3 and segments[:2] == ["3ds", "authenticate"]:
                pi_id = segments[2]
                if method == "POST":
                    return threeds.submit(ctx, pi_id, decode_form(_body(environ)))
                if method not in ("GET", "HEAD"):
                    return threeds.not_allowed("GET, HEAD, POST")
                query = decode_form(environ.get("QUERY_STRING", ""))
                return threeds.challenge(ctx, pi_id, str(query.get("client_secret", "")))
        except ApiError as exc:  # a hostile form: answered, never a 500
            return threeds.bad_request(exc.message)
        if len(segments) == 2 and segments[0] == "receipts":
            if method not in ("GET", "HEAD"):
                return threeds.not_allowed("GET, HEAD")
            return threeds.receipt(ctx, segments[1])
        if len(segments) == 2 and segments[0] == "_emulator":
            return control.handle(self, environ, method, segments[1])
        return _unrecognized(method, path)

    def _stripe_js(self, environ: dict[str, Any]) -> Response:
        found = _static_js()
        if found is None:
            return Response(404, b"stripe-v3.js is not installed\n", list(CORS), "text/plain")
        script, etag = found
        # Revalidated at every use (no-cache), as js.stripe.com/v3/ is never pinned either, but
        # a browser that has these bytes gets a 304 and keeps its copy (and its compiled code).
        headers = [*CORS, ("Cache-Control", "no-cache"), ("ETag", etag)]
        kind = "application/javascript; charset=utf-8"
        if _matches(environ.get("HTTP_IF_NONE_MATCH", ""), etag):
            return Response(304, b"", headers, kind)
        return Response(200, script, headers, kind)

    def _page_ctx(self, environ: dict[str, Any]) -> Ctx:
        return self._ctx({}, False, _base_url(environ), Emitter(self.store, API_VERSION))

    def _clock_ctx(self) -> Ctx:
        """What a scheduled change (a dispute opening, a refund failing) runs with."""
        return self._ctx({}, False, "", Emitter(self.store, API_VERSION))

    def _ctx(self, params: dict, publishable: bool, base_url: str, emit: Emitter, op: str = ""):
        emit.notify = self.deliverer.notify
        return Ctx(
            self.store, params, publishable, base_url, emit, op, self.clock.schedule, self.clock.now
        )

    # --- the /v1 API ------------------------------------------------------------------------

    def _api_faulty(
        self, environ: dict[str, Any], method: str, path: str, segments: list[str]
    ) -> Response:
        """The API with latency and faults (only called when some are configured)."""
        delay = self.faults.delay()
        if delay:
            faults.wait(environ, delay)  # outside every lock and the server's slots
        fault = self.faults.pick(method, path)
        if fault is not None and fault.kind == "429":  # refused before anything is done
            limited = ApiError(429, faults.RATE_LIMIT_MESSAGE, code="rate_limit")
            return _fault_response(fault, limited)
        if fault is not None and fault.kind == "500":
            # Done and kept, then answered 500, which Stripe saves under the idempotency key as
            # any answer given once execution began: a retry with the key gets the 500 again.
            error = ApiError(500, faults.API_ERROR_MESSAGE, type="api_error")

            def fail(response: Response) -> Response:
                return _fault_response(fault, error, response.headers)

            response = self._api(environ, method, path, segments, fail)
            if any(name == FAULT_HEADER for name, _ in response.headers):
                return response  # it ran, and the key (if any) keeps this 500
            if response.status >= 500 and _replay(response):
                return response  # the key's 500 replayed, marked as every replay is
            return fail(response)  # over a replay of another answer, or a refusal: not saved
        response = self._api(environ, method, path, segments)
        if fault is None:
            return response
        if fault.kind == "timeout":
            faults.hold(fault, environ)
        raise faults.Drop

    def _api(
        self,
        environ: dict[str, Any],
        method: str,
        path: str,
        segments: list[str],
        fail: Callable[[Response], Response] | None = None,
    ) -> Response:
        """One API call. ``fail`` (an injected 500) turns the answer of a request that ran into
        its own, which is what an idempotency key then keeps."""
        request_id = new_request_id()
        version = API_VERSION
        idem_key = environ.get("HTTP_IDEMPOTENCY_KEY")
        try:
            asked = environ.get("HTTP_STRIPE_VERSION")
            if asked and asked != API_VERSION:
                version = declared.answer_version(asked)
            raw = _body(environ) if method == "POST" else environ.get("QUERY_STRING", "")
            params = decode_form(raw)
            api_key, publishable = authenticate(environ, params)
            if raw and method == "POST":
                _form_encoded(environ)
            if idem_key is not None and not 0 < len(idem_key) <= IDEMPOTENCY_KEY_MAX:
                length, idem_key = len(idem_key), None  # not echoed back in a header either
                message = IDEMPOTENCY_KEY_LENGTH.format(length=length)
                raise ApiError(400, message, type="idempotency_error")
            route, groups = routes.match(method, path, segments)
            if publishable and not route.publishable:
                raise ApiError(401, PUBLISHABLE_REFUSED)
            if publishable:
                declared.check_publishable(params, route.publishable_params)
            expand = render.expand_param(params)
            declared.check(params, route.spec, route.op)
        except ApiError as exc:
            headers = _api_headers(request_id, version, idem_key)
            return Response.json(exc.status, exc.envelope(request_id), headers=headers)
        headers = _api_headers(request_id, version, idem_key)
        emit = Emitter(self.store, API_VERSION, request_id, idem_key)
        ctx = self._ctx(params, publishable, _base_url(environ), emit, route.op)
        handler = route.handler
        # A read takes the lock but no transaction; whatever changes state runs in one.
        guard = self.store.reading if method == "GET" else self.store.transaction

        def run() -> tuple[Response, bool]:
            """The response, and whether an idempotency key may keep it. An answer the
            expansion refuses (an expand[] path Stripe would not take) raises Refused, which
            undoes what the handler did: Stripe checks a request before it acts on it."""
            try:
                with guard():
                    result = handler(ctx, *groups)
                    try:
                        body = self._render(ctx, result, expand, method == "GET")
                    except ApiError as exc:
                        raise Refused(exc) from None
                response, storable = Response(200, body, headers), True
            except ApiError as exc:
                response = Response.json(exc.status, exc.envelope(request_id), headers=headers)
                storable = exc.storable
            if fail is not None and storable:  # execution began: its 500 is the answer kept
                response = fail(response)
            return response, storable

        try:
            if method != "POST" or not idem_key:
                return run()[0]
            return self._idempotent(
                method, path, params, api_key, idem_key, request_id, headers, run
            )
        except Refused as refused:
            exc = refused.error
            return Response.json(exc.status, exc.envelope(request_id), headers=headers)

    def _idempotent(
        self,
        method: str,
        path: str,
        params: dict[str, Any],
        api_key: str,
        idem_key: str,
        request_id: str,
        headers: list[tuple[str, str]],
        run: Callable[[], tuple[Response, bool]],
    ) -> Response:
        """Run a keyed POST once: the same key and parameters replay the first answer; while
        the first still runs, another request with its key is refused (409), saving nothing."""
        # The endpoint, then a digest of the parameters: a key reused elsewhere is refused by
        # name. (A record an older emulator kept is a digest of all three: any change differs.)
        digest = hashlib.sha256(f"{method} {path} {canonical(params)}".encode()).hexdigest()
        fingerprint = f"{path} {digest}"
        try:
            held = self._key_lock(api_key, idem_key)
        except KeyInUse:
            message = IDEMPOTENCY_KEY_IN_USE.format(key=idem_key)
            exc = ApiError(409, message, code="idempotency_key_in_use")
            return Response.json(409, exc.envelope(request_id), headers=headers)
        # One transaction for lookup, execution and record: one commit per request.
        with held, self.store.transaction():
            record = self.store.idempotent_get(api_key, idem_key)
            if record is not None:
                first, _, _ = record["fingerprint"].rpartition(" ")
                if first and first != path:
                    message = IDEMPOTENCY_OTHER_ENDPOINT.format(
                        path=path, first=first, key=idem_key
                    )
                    exc = ApiError(400, message, type="idempotency_error")
                    return Response.json(400, exc.envelope(request_id), headers=headers)
                if record["fingerprint"] != fingerprint:
                    exc = ApiError(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters"
                        f" they were first used with. Try using a key other than '{idem_key}' if"
                        " you meant to execute a different request.",
                        type="idempotency_error",
                    )
                    return Response.json(400, exc.envelope(request_id), headers=headers)
                # A replay is a request of its own: its own Request-Id, pointing at the first.
                replay = [
                    *headers,
                    ("Idempotent-Replayed", "true"),
                    ("Original-Request", record["request_id"]),
                ]
                if record["status"] >= 500:
                    replay.append(NO_RETRY)
                return Response(record["status"], bytes(record["body"]), replay)
            response, storable = run()
            injected = any(name == FAULT_HEADER for name, _ in response.headers)
            if storable and (response.status < 500 or injected):
                self.store.idempotent_put(
                    api_key, idem_key, fingerprint, response.status, response.body, request_id
                )
                waits = any(name == "Retry-After" for name, _ in response.headers)
                if response.status >= 500 and not waits:
                    response.headers = [*response.headers, NO_RETRY]
            return response

    def _render(self, ctx: Ctx, result: dict[str, Any], paths: list[str], read: bool) -> bytes:
        if read and not paths and isinstance(result, Stored) and not ctx.publishable:
            # A retrieve answers with the object as stored (read handlers change nothing).
            return render.rendered(result.text)
        if result.get("object") == "list":
            return render.encode(render.expand(ctx.store, result, paths))
        out = render.complete(ctx.store, result)
        if ctx.publishable and out.get("object") == "payment_intent":
            out = render.publishable_view(out)
        return render.encode(render.expand(ctx.store, out, paths))

    def _key_lock(self, scope: str, key: str) -> _KeyLock:
        """The key, held until the returned lock's ``with`` ends; KeyInUse if another request
        holds it."""
        return _KeyLock(self, (scope, key))


class Refused(Exception):
    """A request refused after its handler ran: not an ApiError, so that the transaction
    around it rolls back instead of keeping what the handler did (see Store.transaction)."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(error.message)
        self.error = error


def _api_headers(request_id: str, version: str, idem_key: str | None) -> list[tuple[str, str]]:
    headers = [*API_HEADERS, ("Request-Id", request_id), ("Stripe-Version", version)]
    if idem_key:
        headers.append(("Idempotency-Key", idem_key))
    return headers


class KeyInUse(Exception):
    """Another request with this idempotency key is still executing."""


class _KeyLock:
    """One request at a time per idempotency key, taken when made: a request whose key another
    request holds gets KeyInUse (Stripe refuses the second, it does not queue it). The ``with``
    around the request lets the key go."""

    def __init__(self, app: Emulator, name: tuple[str, str]) -> None:
        self.app, self.name = app, name
        with app._key_locks_guard:
            if name in app._key_locks:
                raise KeyInUse(name[1])
            app._key_locks.add(name)

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc: object) -> None:
        with self.app._key_locks_guard:
            self.app._key_locks.discard(self.name)


def request_path(environ: dict[str, Any]) -> tuple[str, list[str]]:
    """The path as sent (undecoded) and its segments, each percent-decoded after splitting.

    PATH_INFO is decoded before it is split, so an id holding `%2F` would become several
    segments and reach another route. The raw request target keeps the id in one segment:
    RAW_URI (gunicorn) or REQUEST_URI (waitress); PATH_INFO only when neither is there.
    """
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not raw:
        path = environ.get("PATH_INFO", "") or "/"
        return path, path.lstrip("/").split("/")
    path = raw.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/"):  # absolute form: http://host/v1/...
        path = urlsplit(path).path
    path = "/" + path.lstrip("/")  # as waitress does for PATH_INFO
    prefix = environ.get("SCRIPT_NAME", "")
    if prefix and path.startswith(prefix + "/"):
        path = path[len(prefix) :]
    return path, [unquote(segment) for segment in path[1:].split("/")]


def _replay(response: Response) -> bool:
    return any(name == "Idempotent-Replayed" for name, _ in response.headers)


def _fault_response(
    fault: faults.Fault, error: ApiError, headers: list[tuple[str, str]] | None = None
) -> Response:
    """An injected error answer: Stripe's envelope, and the request's own headers if it ran.
    Not a replay (a 500 over a replay of another answer leaves that answer under the key), so
    without a replay's marks."""
    kept = [h for h in headers or () if h[0] not in ("Idempotent-Replayed", "Original-Request")]
    if not kept:
        kept = [*CORS, ("Request-Id", new_request_id()), ("Stripe-Version", API_VERSION)]
    request_id = next((value for name, value in kept if name == "Request-Id"), "req_0")
    extra = [(FAULT_HEADER, fault.kind)]
    if fault.retry_after is not None:
        extra.append(("Retry-After", str(fault.retry_after)))
    return Response.json(error.status, error.envelope(request_id), headers=[*kept, *extra])


def _unrecognized(method: str, path: str) -> Response:
    request_id = new_request_id()
    envelope = routes.unrecognized(method, path).envelope(request_id)
    return Response.json(404, envelope, headers=[*CORS, ("Request-Id", request_id)])


def _form_encoded(environ: dict[str, Any]) -> None:
    """Refuse a body that is not form-encoded, as Stripe does, rather than misread it."""
    content_type = environ.get("CONTENT_TYPE", "")
    if content_type.partition(";")[0].strip().lower() != FORM:
        shown = content_type if len(content_type) <= 200 else content_type[:200] + "..."
        raise invalid(UNSUPPORTED_BODY.format(content_type=shown))


def _body(environ: dict[str, Any]) -> str:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise invalid("Invalid Content-Length") from None
    if length < 0:
        raise invalid("Invalid Content-Length")
    if length > MAX_BODY:
        raise invalid(f"Request body too large: at most {MAX_BODY} bytes are accepted.")
    return environ["wsgi.input"].read(length).decode("utf-8", "replace") if length else ""


def _base_url(environ: dict[str, Any]) -> str:
    host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
    return f"{environ.get('wsgi.url_scheme', 'http')}://{host}"
