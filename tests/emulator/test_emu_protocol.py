"""The wire protocol: keys, error envelope, idempotency, pagination, CORS, publishable keys."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import stripe

from bookpay.emulator import routes, start_emulator
from bookpay.emulator.api import request_path
from bookpay.emulator.wire import decode_form


def intent(client: stripe.StripeClient, **extra: Any) -> stripe.PaymentIntent:
    """An intent a server may confirm without a return_url (no redirect-based methods)."""
    card_only = {"automatic_payment_methods": {"enabled": True, "allow_redirects": "never"}}
    return client.v1.payment_intents.create(
        params={"amount": 1000, "currency": "usd", **card_only, **extra}
    )


def test_decode_form_brackets() -> None:
    raw = (
        "amount=5&metadata[a]=1&metadata[0]=x&expand[]=latest_charge&expand[]=payment_method"
        "&payment_method_types[0]=card&payment_method_types[1]=link"
        "&payment_method_data[card][number]=4242&shipping[address][line1]=x&description="
    )
    assert decode_form(raw) == {
        "amount": "5",
        "metadata": {"a": "1", "0": "x"},
        "expand": ["latest_charge", "payment_method"],
        "payment_method_types": ["card", "link"],
        "payment_method_data": {"card": {"number": "4242"}},
        "shipping": {"address": {"line1": "x"}},
        "description": "",
    }


def test_request_id_and_version(call: Callable[..., Any]) -> None:
    resp = call("GET", "/v1/payment_intents", headers={"Stripe-Version": "2026-09-30.endive"})
    assert resp.status == 200
    assert resp.headers["request-id"].startswith("req_")
    assert resp.headers["stripe-version"] == "2026-09-30.endive"
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize("key", [None, "sk_live_abcdefghijkl1234", "nonsense", "pk_live_abc"])
def test_bad_keys_are_401(call: Callable[..., Any], key: str | None) -> None:
    resp = call("GET", "/v1/payment_intents", key=key)
    assert resp.status == 401
    err = resp.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert ("did not provide an API key" if key is None else "Invalid API Key") in err["message"]
    assert resp.headers["request-id"].startswith("req_")


def test_401_through_stripe_python(emu: Any) -> None:
    bad = stripe.StripeClient("sk_live_x", base_addresses={"api": emu.url}, max_network_retries=0)
    with pytest.raises(stripe.AuthenticationError):
        bad.v1.payment_intents.list()


def test_restricted_key_accepted(call: Callable[..., Any]) -> None:
    assert call("GET", "/v1/payment_intents", key="rk_test_123").status == 200


def test_404s(client: stripe.StripeClient, call: Callable[..., Any]) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.retrieve("pi_123")
    assert caught.value.http_status == 404
    assert caught.value.code == "resource_missing"
    assert caught.value.user_message == "No such payment_intent: 'pi_123'"
    for path in ("/v1/charges/ch_nope", "/v1/refunds/re_nope", "/v1/events/evt_nope"):
        resp = call("GET", path)
        assert resp.status == 404 and resp.json()["error"]["code"] == "resource_missing"
    resp = call("GET", "/v1/invoices")
    assert resp.status == 404
    assert resp.json()["error"]["message"].startswith(
        "Unrecognized request URL (GET: /v1/invoices)"
    )


def test_encoded_slash_stays_in_the_id(
    client: stripe.StripeClient, call: Callable[..., Any]
) -> None:
    # Decoding before routing would make this /v1/payment_intents/pi_../../v1/x, another URL.
    resp = call("GET", "/v1/payment_intents/pi_..%2F..%2Fv1%2Fx")
    assert resp.status == 404
    err = resp.json()["error"]
    assert err["code"] == "resource_missing"
    assert err["message"] == "No such payment_intent: 'pi_../../v1/x'"
    pi = intent(client)
    # Not the confirm route: the slash belongs to the id.
    resp = call(
        "POST", f"/v1/payment_intents/{pi.id}%2Fconfirm", {"payment_method": "pm_card_visa"}
    )
    assert resp.json()["error"]["message"] == f"No such payment_intent: '{pi.id}/confirm'"
    assert client.v1.payment_intents.retrieve(pi.id).status == "requires_payment_method"
    # Each segment is decoded: an encoded letter still names the object; queries still work.
    encoded = "/v1/payment_intents/%70" + pi.id[1:]
    resp = call("GET", encoded, {"expand[]": "latest_charge"})
    assert resp.status == 200 and resp.json()["id"] == pi.id
    resp = call("GET", "/v1/payment_intents", {"limit": "1"})
    assert resp.status == 200 and resp.json()["object"] == "list"
    resp = call("GET", "/v1/charges/ch_a%2Fb")
    assert resp.json()["error"]["message"] == "No such charge: 'ch_a/b'"
    resp = call("GET", "/v1/payment_intents%2Fpi_x")
    assert resp.json()["error"]["message"].startswith("Unrecognized request URL (GET: /v1/")


def test_request_path_sources() -> None:
    base = {"PATH_INFO": "/v1/a/b/c"}
    # gunicorn's RAW_URI, then waitress's REQUEST_URI, then the decoded PATH_INFO.
    assert request_path({**base, "RAW_URI": "/v1/a%2Fb?x=%2F"}) == ("/v1/a%2Fb", ["v1", "a/b"])
    assert request_path({**base, "REQUEST_URI": "/v1/a%2Fb"}) == ("/v1/a%2Fb", ["v1", "a/b"])
    assert request_path(base) == ("/v1/a/b/c", ["v1", "a", "b", "c"])
    assert request_path({"REQUEST_URI": "http://h:1/healthz?x"}) == ("/healthz", ["healthz"])
    assert request_path({"REQUEST_URI": "//v3/"}) == ("/v3/", ["v3", ""])
    assert request_path({}) == ("/", [""])


def test_unknown_parameter(client: stripe.StripeClient, call: Callable[..., Any]) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        intent(client, foo="bar")
    assert caught.value.http_status == 400
    assert caught.value.code == "parameter_unknown"
    assert caught.value.param == "foo"
    assert caught.value.user_message == "Received unknown parameter: foo"
    resp = call(
        "POST",
        "/v1/payment_intents",
        {"amount": "1000", "currency": "usd", "shipping[name]": "x", "shipping[bogus]": "y"},
    )
    assert resp.json()["error"]["message"] == "Received unknown parameter: shipping[bogus]"
    resp = call("GET", "/v1/payment_intents", {"bogus": "1"})
    assert resp.status == 400 and resp.json()["error"]["param"] == "bogus"


def test_error_envelope_fields(call: Callable[..., Any]) -> None:
    err = call("POST", "/v1/payment_intents", {"amount": "10", "currency": "usd"}).json()["error"]
    assert err["type"] == "invalid_request_error"
    assert err["code"] == "amount_too_small" and err["param"] == "amount"
    assert err["doc_url"] == "https://stripe.com/docs/error-codes/amount-too-small"
    assert err["request_log_url"].startswith("https://dashboard.stripe.com/test/logs/req_")


def test_idempotent_replay(client: stripe.StripeClient, call: Callable[..., Any]) -> None:
    params = {"amount": "1500", "currency": "usd", "metadata[x]": "1"}
    first = call("POST", "/v1/payment_intents", params, headers={"Idempotency-Key": "k-replay"})
    second = call("POST", "/v1/payment_intents", params, headers={"Idempotency-Key": "k-replay"})
    assert first.status == second.status == 200
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    other_key = call("POST", "/v1/payment_intents", params, headers={"Idempotency-Key": "k-other"})
    assert other_key.json()["id"] != first.json()["id"]
    # Scoped to the API key: another key with the same idempotency key is a new request.
    scoped = call(
        "POST",
        "/v1/payment_intents",
        params,
        headers={"Idempotency-Key": "k-replay"},
        key="sk_test_2",
    )
    assert scoped.json()["id"] != first.json()["id"]
    # stripe-python sees the same object again.
    opts: Any = {"idempotency_key": "k-sdk"}
    a = client.v1.payment_intents.create(params={"amount": 700, "currency": "usd"}, options=opts)
    b = client.v1.payment_intents.create(params={"amount": 700, "currency": "usd"}, options=opts)
    assert a.id == b.id
    assert b.last_response.headers["Idempotent-Replayed"] == "true"


def test_replay_has_its_own_request_id(call: Callable[..., Any]) -> None:
    params = {"amount": "1600", "currency": "usd"}
    first = call("POST", "/v1/payment_intents", params, headers={"Idempotency-Key": "k-reqid"})
    second = call("POST", "/v1/payment_intents", params, headers={"Idempotency-Key": "k-reqid"})
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["request-id"].startswith("req_")
    assert second.headers["request-id"] != first.headers["request-id"]
    assert second.headers["original-request"] == first.headers["request-id"]
    assert "original-request" not in first.headers
    # Browsers may read it, as they may read Idempotent-Replayed.
    exposed = second.headers["access-control-expose-headers"]
    assert "Original-Request" in exposed and "Idempotent-Replayed" in exposed


def test_idempotency_keys_expire_after_24_hours() -> None:
    # Its own emulator: the store's clock moves forward a day.
    with start_emulator() as emu:
        now = [time.time()]
        emu.app.store.clock = lambda: now[0]
        client = stripe.StripeClient(
            "sk_test_x", base_addresses={"api": emu.url}, max_network_retries=0
        )
        opts: Any = {"idempotency_key": "k-expiry"}

        def create(amount: int) -> stripe.PaymentIntent:
            params: Any = {"amount": amount, "currency": "usd"}
            return client.v1.payment_intents.create(params=params, options=opts)

        first = create(1700)
        now[0] += 24 * 3600 - 60
        replay = create(1700)
        assert replay.id == first.id
        assert replay.last_response.headers["Idempotent-Replayed"] == "true"
        now[0] += 120
        fresh = create(1700)
        assert fresh.id != first.id
        assert "Idempotent-Replayed" not in fresh.last_response.headers
        # The key now belongs to that new request: other parameters are a mismatch again...
        with pytest.raises(stripe.IdempotencyError):
            create(1800)
        # ...until it too has expired.
        now[0] += 24 * 3600 + 1
        assert create(1800).amount == 1800


def test_idempotent_errors_replay(client: stripe.StripeClient) -> None:
    pi = intent(client)
    opts: Any = {"idempotency_key": "k-decline"}
    params = {"payment_method": "pm_card_chargeDeclined"}
    with pytest.raises(stripe.CardError) as first:
        client.v1.payment_intents.confirm(pi.id, params=params, options=opts)
    with pytest.raises(stripe.CardError) as second:
        client.v1.payment_intents.confirm(pi.id, params=params, options=opts)
    assert first.value.json_body == second.value.json_body
    assert second.value.headers["Idempotent-Replayed"] == "true"
    assert len(client.v1.charges.list(params={"payment_intent": pi.id}).data) == 1


def test_idempotency_mismatch(client: stripe.StripeClient) -> None:
    opts: Any = {"idempotency_key": "k-mismatch"}
    client.v1.payment_intents.create(params={"amount": 700, "currency": "usd"}, options=opts)
    with pytest.raises(stripe.IdempotencyError) as caught:
        client.v1.payment_intents.create(params={"amount": 800, "currency": "usd"}, options=opts)
    assert caught.value.http_status == 400
    assert "k-mismatch" in caught.value.user_message


def test_an_idempotency_key_is_for_the_endpoint_it_was_first_used_on(
    client: stripe.StripeClient, call: Callable[..., Any]
) -> None:
    """Stripe's own refusal names both endpoints, this request's first; the parameters'
    refusal is for the same endpoint only."""
    opts: Any = {"idempotency_key": "k-endpoint"}
    pi = client.v1.payment_intents.create(params={"amount": 700, "currency": "usd"}, options=opts)
    with pytest.raises(stripe.IdempotencyError) as caught:
        client.v1.payment_intents.cancel(pi.id, options=opts)
    assert caught.value.http_status == 400
    assert caught.value.user_message == (
        "Keys for idempotent requests can only be used for the same endpoint they were first"
        f" used for ('/v1/payment_intents/{pi.id}/cancel' vs '/v1/payment_intents'). Try using a"
        " key other than 'k-endpoint' if you meant to execute a different request."
    )
    assert client.v1.payment_intents.retrieve(pi.id).status == "requires_payment_method"
    keyed = {"Idempotency-Key": "k-endpoint"}  # the client's API key: keys are per API key
    again = call("POST", "/v1/customers", {}, headers=keyed, key="sk_test_x").json()
    assert again["error"]["type"] == "idempotency_error"
    assert "('/v1/customers' vs '/v1/payment_intents')" in again["error"]["message"]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", '{"amount": 1000, "currency": "usd"}'),
        ("text/plain;charset=UTF-8", "amount=1000&currency=usd"),
        ("multipart/form-data; boundary=x", "amount=1000&currency=usd"),
        ("", "amount=1000&currency=usd"),
    ],
)
def test_a_body_that_is_not_form_encoded_is_refused(
    call: Callable[..., Any], content_type: str, body: str
) -> None:
    """Stripe's v1 API reads form-encoded bodies only, and says so: a JSON body is not
    misread as one unknown parameter named after all of it."""
    sent = {"Content-Type": content_type}
    resp = call("POST", "/v1/payment_intents", body=body, headers=sent)
    assert resp.status == 400, resp.body
    error = resp.json()["error"]
    assert error == {
        "type": "invalid_request_error",
        "message": f"Invalid request: unsupported Content-Type {content_type}. If error persists"
        " and you need assistance, please contact support@stripe.com.",
        "request_log_url": error["request_log_url"],
    }
    form = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    assert (
        call("POST", "/v1/payment_intents", body="amount=1000&currency=usd", headers=form).status
        == 200
    )
    # A POST without a body needs no Content-Type (`curl -X POST` sends none).
    assert call("POST", "/v1/customers", headers={"Content-Type": ""}).status == 200


def test_a_key_in_use_by_a_request_still_executing_is_refused_and_saves_nothing(
    emu: Any, call: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stripe does not queue a second request under a key whose first is still executing: it
    answers 409 `idempotency_key_in_use` and saves nothing, so a retry once the first has
    finished replays the first's answer."""
    entered, release = threading.Event(), threading.Event()
    i, route = next((i, r) for i, r in enumerate(routes.ROUTES) if r.op == "POST /v1/customers")

    def held(ctx: Any, *groups: str) -> Any:
        entered.set()
        release.wait(60)
        return route.handler(ctx, *groups)

    patched = list(routes.ROUTES)
    patched[i] = dataclasses.replace(route, handler=held)
    monkeypatch.setattr(routes, "ROUTES", patched)
    keyed = {"Idempotency-Key": "k-in-use"}
    first: list[Any] = []
    thread = threading.Thread(
        target=lambda: first.append(call("POST", "/v1/customers", {"name": "A"}, headers=keyed))
    )
    thread.start()
    try:
        assert entered.wait(60)
        second = call("POST", "/v1/customers", {"name": "A"}, headers=keyed)
    finally:
        release.set()
        thread.join(60)
    assert second.status == 409, second.body
    error = second.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "idempotency_key_in_use"
    assert error["message"] == (
        "There is currently another in-progress request using this Idempotent Key (that probably"
        " means you submitted twice, and the other request is still going through): k-in-use."
        " Please try again later."
    )
    assert "idempotent-replayed" not in second.headers
    assert first[0].status == 200
    again = call("POST", "/v1/customers", {"name": "A"}, headers=keyed)
    assert again.status == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["original-request"] == first[0].headers["request-id"]
    assert again.json()["id"] == first[0].json()["id"]


def test_requests_with_one_key_one_after_another_execute_once(call: Callable[..., Any]) -> None:
    """Several threads sending one keyed creation: each is either the first's answer (itself,
    or replayed) or a 409 that saved nothing; one PaymentIntent in all."""
    results: list[Any] = []
    params = {"amount": "4200", "currency": "usd", "metadata[race]": "k-race"}

    def one() -> None:
        results.append(
            call("POST", "/v1/payment_intents", params, headers={"Idempotency-Key": "k-race"})
        )

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    answered = [r for r in results if r.status == 200]
    refused = [r for r in results if r.status != 200]
    assert {r.status for r in refused} <= {409}
    assert len({r.json()["id"] for r in answered}) == 1
    assert sum("idempotent-replayed" not in r.headers for r in answered) == 1
    made = call("GET", "/v1/payment_intents", {"limit": "100"}).json()["data"]
    assert sum(p["metadata"].get("race") == "k-race" for p in made) == 1


def test_pagination(client: stripe.StripeClient) -> None:
    tag = {"metadata": {"page": "yes"}}
    made = [intent(client, **tag).id for _ in range(5)]
    newest_first = list(reversed(made))
    page1 = client.v1.payment_intents.list(params={"limit": 2})
    assert [p.id for p in page1.data] == newest_first[:2]
    assert page1.has_more is True and page1.url == "/v1/payment_intents" and page1.object == "list"
    page2 = client.v1.payment_intents.list(params={"limit": 2, "starting_after": page1.data[-1].id})
    assert [p.id for p in page2.data] == newest_first[2:4]
    back = client.v1.payment_intents.list(params={"limit": 2, "ending_before": page2.data[0].id})
    assert [p.id for p in back.data] == newest_first[:2]
    assert back.has_more is False
    mid = client.v1.payment_intents.list(params={"limit": 1, "ending_before": newest_first[2]})
    assert [p.id for p in mid.data] == [newest_first[1]] and mid.has_more is True
    everything = [
        p.id for p in client.v1.payment_intents.list(params={"limit": 3}).auto_paging_iter()
    ]
    assert everything[:5] == newest_first
    for bad in (0, 101):
        with pytest.raises(stripe.InvalidRequestError):
            client.v1.payment_intents.list(params={"limit": bad})


def test_created_filters(client: stripe.StripeClient) -> None:
    pi = intent(client)
    exact = client.v1.payment_intents.list(params={"created": pi.created, "limit": 100})
    assert pi.id in [p.id for p in exact.data]
    assert all(p.created == pi.created for p in exact.data)
    later = client.v1.payment_intents.list(params={"created": {"gt": pi.created}})
    assert later.data == []
    upto = client.v1.payment_intents.list(
        params={"created": {"gte": pi.created, "lte": pi.created}}
    )
    assert upto.data[0].id == pi.id


def test_cors_preflight(call: Callable[..., Any]) -> None:
    resp = call(
        "OPTIONS",
        "/v1/payment_intents/pi_x/confirm",
        key=None,
        headers={"Origin": "http://127.0.0.1:4242", "Access-Control-Request-Method": "POST"},
    )
    assert resp.status == 204
    assert resp.headers["access-control-allow-origin"] == "*"
    allowed = resp.headers["access-control-allow-headers"].lower()
    for name in ("authorization", "content-type", "stripe-version", "idempotency-key"):
        assert name in allowed


def test_healthz_and_stripe_js(call: Callable[..., Any]) -> None:
    health = call("GET", "/healthz", key=None)
    assert health.status == 200
    body = health.json()
    assert body["ok"] is True and body["service"] == "bookpay-emulator" and body["version"]
    for path in ("/v3", "/v3/"):
        js = call("GET", path, key=None)
        # Another engineer ships the file: either it is served properly or it is a clean 404.
        if js.status == 200:
            assert js.headers["content-type"] == "application/javascript; charset=utf-8"
            assert js.headers["access-control-allow-origin"] == "*"
        else:
            assert js.status == 404


def test_stripe_js_is_revalidated_with_its_etag(call: Callable[..., Any]) -> None:
    """A page loading Stripe.js again gets a 304 for the copy it has, never a stale one: the
    ETag is a digest of the very bytes served."""
    js = call("GET", "/v3/", key=None)
    assert js.status == 200
    etag = js.headers["etag"]
    assert etag == f'"{hashlib.sha256(js.body).hexdigest()[:20]}"'
    assert js.headers["cache-control"] == "no-cache"
    for sent in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = call("GET", "/v3/", key=None, headers={"If-None-Match": sent})
        assert again.status == 304, sent
        assert again.body == b""
        assert again.headers["etag"] == etag
        assert again.headers["access-control-allow-origin"] == "*"
    changed = call("GET", "/v3/", key=None, headers={"If-None-Match": '"an-older-copy"'})
    assert changed.status == 200
    assert changed.body == js.body


def test_publishable_key_limits(client: stripe.StripeClient, call: Callable[..., Any]) -> None:
    pk = "pk_test_abc"
    pi = intent(client, metadata={"secret": "server-only"})
    for method, path, params in [
        ("GET", "/v1/payment_intents", {}),
        ("POST", "/v1/payment_intents", {"amount": "1000", "currency": "usd"}),
        ("POST", f"/v1/payment_intents/{pi.id}/cancel", {}),
        ("POST", "/v1/refunds", {"payment_intent": pi.id}),
        ("GET", "/v1/events", {}),
    ]:
        resp = call(method, path, params, key=pk)
        assert resp.status == 401, path
        assert "cannot be made with a publishable API key" in resp.json()["error"]["message"]
    no_secret = call("GET", f"/v1/payment_intents/{pi.id}", key=pk)
    assert no_secret.status == 400
    wrong = call("GET", f"/v1/payment_intents/{pi.id}", {"client_secret": "nope"}, key=pk)
    assert wrong.status == 400 and wrong.json()["error"]["param"] == "client_secret"
    # Stripe.js sends the key as a parameter, not a header.
    seen = call(
        "GET",
        f"/v1/payment_intents/{pi.id}",
        {"client_secret": pi.client_secret, "key": pk},
        key=None,
    )
    assert seen.status == 200
    view = seen.json()
    assert view["id"] == pi.id and view["client_secret"] == pi.client_secret
    assert "metadata" not in view and "customer" not in view
    pm = call(
        "POST",
        "/v1/payment_methods",
        {"type": "card", "card[number]": "4242424242424242", "card[exp_month]": "12",
         "card[exp_year]": str(dt.date.today().year + 2), "card[cvc]": "123", "key": pk},
        key=None,
    )  # fmt: skip
    assert pm.status == 200, pm.body
    pm_id = pm.json()["id"]
    assert call("GET", f"/v1/payment_methods/{pm_id}", key=pk).status == 401
    confirmed = call(
        "POST",
        f"/v1/payment_intents/{pi.id}/confirm",
        {"client_secret": pi.client_secret, "payment_method": pm_id, "key": pk},
        key=None,
    )
    assert confirmed.status == 200 and confirmed.json()["status"] == "succeeded"
    assert "metadata" not in confirmed.json()


@pytest.mark.parametrize(
    "param",
    [
        {"capture_method": "manual"},
        {"off_session": "true"},
        {"error_on_requires_action": "true"},
        {"allowed_payment_method_types[]": "card"},
        {"excluded_payment_method_types[]": "link"},
        {"mandate": "mandate_123"},
        {"radar_options[session]": "rse_123"},
    ],
)
def test_a_publishable_key_may_not_set_what_the_server_sets_on_confirm(
    client: stripe.StripeClient, call: Callable[..., Any], param: dict[str, str]
) -> None:
    """Only what Stripe.js sends: the rest is refused as Stripe refuses a parameter the key
    does not have, and the intent is left as the server made it."""
    pi = intent(client)
    name = next(iter(param)).split("[")[0]
    page = {"client_secret": pi.client_secret, "payment_method": "pm_card_visa", "key": "pk_test_x"}
    path = f"/v1/payment_intents/{pi.id}/confirm"
    refused = call("POST", path, {**page, **param}, key=None)
    assert refused.status == 400, refused.body
    error = refused.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "parameter_unknown"
    assert error["param"] == name and error["message"] == f"Received unknown parameter: {name}"
    kept = client.v1.payment_intents.retrieve(pi.id)
    assert kept.status == "requires_payment_method" and kept.capture_method == pi.capture_method
    assert kept.latest_charge is None


def test_a_publishable_key_confirms_with_what_stripe_js_sends(
    client: stripe.StripeClient, call: Callable[..., Any]
) -> None:
    """What @stripe/stripe-js declares for confirmPayment / confirmCardPayment, and what Stripe.js
    adds itself; and the server, with its secret key, may still set capture_method."""
    pi = intent(client)
    page = {
        "client_secret": pi.client_secret,
        "key": "pk_test_x",
        "payment_method_data[type]": "card",
        "payment_method_data[card][number]": "4242424242424242",
        "payment_method_data[card][exp_month]": "12",
        "payment_method_data[card][exp_year]": str(dt.date.today().year + 2),
        "payment_method_data[card][cvc]": "123",
        "payment_method_data[billing_details][email]": "ada@example.com",
        "return_url": "https://shop.example/return",
        "receipt_email": "ada@example.com",
        "setup_future_usage": "off_session",
        "shipping[name]": "Ada Lovelace",
        "shipping[address][line1]": "12 St James's Square",
        "shipping[address][country]": "GB",
        "save_payment_method": "false",
        "use_stripe_sdk": "true",
        "expected_payment_method_type": "card",
        "expand[]": "payment_method",
    }
    confirmed = call("POST", f"/v1/payment_intents/{pi.id}/confirm", page, key=None)
    assert confirmed.status == 200, confirmed.body
    assert confirmed.json()["status"] == "succeeded"
    held = intent(client)
    server = {"capture_method": "manual", "payment_method": "pm_card_visa"}
    assert client.v1.payment_intents.confirm(held.id, params=server).status == "requires_capture"


@pytest.mark.parametrize(
    ("before", "sent", "allowed"),
    [
        ("on_session", "off_session", True),
        ("off_session", "off_session", True),
        (None, "on_session", True),
        ("off_session", "on_session", False),
        ("off_session", "", False),
        ("on_session", "", False),
    ],
)
def test_a_publishable_key_may_only_raise_setup_future_usage(
    client: stripe.StripeClient,
    call: Callable[..., Any],
    before: str | None,
    sent: str,
    allowed: bool,
) -> None:
    """Stripe's documented rule: once set, a publishable key may only move it from on_session
    to off_session (a secret key may change it as it likes)."""
    pi = intent(client, **({"setup_future_usage": before} if before else {}))
    page = {"client_secret": pi.client_secret, "payment_method": "pm_card_visa", "key": "pk_test_x"}
    answer = call("POST", f"/v1/payment_intents/{pi.id}/confirm",
                  {**page, "setup_future_usage": sent}, key=None)  # fmt: skip
    kept = client.v1.payment_intents.retrieve(pi.id)
    if allowed:
        assert answer.status == 200, answer.body
        assert kept.status == "succeeded" and kept.setup_future_usage == (sent or None)
    else:
        assert answer.status == 400 and answer.json()["error"]["param"] == "setup_future_usage"
        assert kept.status == "requires_payment_method" and kept.setup_future_usage == before
        server = {"setup_future_usage": sent, "payment_method": "pm_card_visa"}
        done = client.v1.payment_intents.confirm(pi.id, params=server)
        assert done.status == "succeeded" and done.setup_future_usage == (sent or None)


def test_refused_parameters_leave_the_key_unused(call: Callable[..., Any]) -> None:
    key = {"Idempotency-Key": "k-param"}
    bad = call("POST", "/v1/payment_intents", {"amount": "1000", "currency": "usd", "x": "1"},
               headers=key)  # fmt: skip
    assert bad.status == 400 and bad.json()["error"]["code"] == "parameter_unknown"
    # Nothing ran, so nothing was kept: the key takes other parameters, and executes.
    good = call("POST", "/v1/payment_intents", {"amount": "1000", "currency": "usd"}, headers=key)
    assert good.status == 200 and "idempotent-replayed" not in good.headers
    # A refusal of what is stored, once the request executes, is an answer: kept and replayed.
    pi = call("POST", "/v1/payment_intents", {"amount": "1000", "currency": "usd",
              "confirm": "true", "payment_method": "pm_card_visa",
              "return_url": "https://shop.example/r"}).json()  # fmt: skip
    key = {"Idempotency-Key": "k-state"}
    refused = call("POST", f"/v1/payment_intents/{pi['id']}/cancel", headers=key)
    again = call("POST", f"/v1/payment_intents/{pi['id']}/cancel", headers=key)
    assert refused.status == again.status == 400
    assert refused.json()["error"]["code"] == "payment_intent_unexpected_state"
    assert again.body == refused.body and again.headers["idempotent-replayed"] == "true"


@pytest.mark.parametrize(
    ("amount", "code"), [("10", "amount_too_small"), ("100000000", "amount_too_large")]
)
def test_an_amount_out_of_range_leaves_the_key_unused(
    call: Callable[..., Any], amount: str, code: str
) -> None:
    """An amount below Stripe's minimum or over its largest is a parameter failing validation,
    refused before the request executes: Stripe saves no result under its key ("most 400s that
    sent invalid parameters"), so the same key is no conflict for the corrected amount (other
    parameters than the refused request's), which then executes and is what the key keeps."""
    key = {"Idempotency-Key": f"k-{code}"}
    refused = call("POST", "/v1/payment_intents", {"amount": amount, "currency": "usd"},
                   headers=key)  # fmt: skip
    assert refused.status == 400 and refused.json()["error"]["code"] == code
    again = call("POST", "/v1/payment_intents", {"amount": amount, "currency": "usd"},
                 headers=key)  # fmt: skip
    assert again.status == 400 and "idempotent-replayed" not in again.headers
    good = call("POST", "/v1/payment_intents", {"amount": "1000", "currency": "usd"}, headers=key)
    assert good.status == 200, good.body
    assert "idempotent-replayed" not in good.headers and good.json()["amount"] == 1000
    replay = call("POST", "/v1/payment_intents", {"amount": "1000", "currency": "usd"},
                  headers=key)  # fmt: skip
    assert replay.headers["idempotent-replayed"] == "true" and replay.body == good.body
    # Now that the key holds an answer, the refused amount is another request's parameters.
    other = call("POST", "/v1/payment_intents", {"amount": amount, "currency": "usd"},
                 headers=key)  # fmt: skip
    assert other.status == 400 and other.json()["error"]["type"] == "idempotency_error"


def test_filtered_list_cursors(client: stripe.StripeClient) -> None:
    pi = intent(client)
    with pytest.raises(stripe.CardError):
        client.v1.payment_intents.confirm(
            pi.id, params={"payment_method": "pm_card_chargeDeclined"}
        )
    client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"})
    other = intent(client, confirm=True, payment_method="pm_card_visa")
    first = client.v1.charges.list(params={"payment_intent": pi.id, "limit": 1})
    assert [c.status for c in first.data] == ["succeeded"] and first.has_more is True
    rest = client.v1.charges.list(
        params={"payment_intent": pi.id, "limit": 1, "starting_after": first.data[0].id}
    )
    assert [c.status for c in rest.data] == ["failed"] and rest.has_more is False
    back = client.v1.charges.list(
        params={"payment_intent": pi.id, "limit": 5, "ending_before": rest.data[0].id}
    )
    assert [c.id for c in back.data] == [first.data[0].id] and back.has_more is False
    # A cursor must be an object of the filtered list.
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.charges.list(
            params={"payment_intent": pi.id, "starting_after": other.latest_charge}
        )
    assert caught.value.http_status == 400 and caught.value.param == "starting_after"
    assert caught.value.user_message == f"No such charge: '{other.latest_charge}'"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.list(params={"ending_before": pi.id})
    assert caught.value.user_message == f"No such refund: '{pi.id}'"


def test_charge_shows_ten_refunds_and_has_more(client: stripe.StripeClient) -> None:
    pi = intent(client, amount=1200, confirm=True, payment_method="pm_card_visa")
    made = [
        client.v1.refunds.create(params={"charge": pi.latest_charge, "amount": 100}).id
        for _ in range(11)
    ]
    # refunds is includable: absent unless expanded, as with Stripe since 2022-11-15.
    assert "refunds" not in client.v1.charges.retrieve(pi.latest_charge)
    charge = client.v1.charges.retrieve(pi.latest_charge, params={"expand": ["refunds"]})
    assert [r.id for r in charge.refunds.data] == list(reversed(made))[:10]
    assert charge.refunds.has_more is True
    listed = client.v1.refunds.list(params={"charge": pi.latest_charge, "limit": 100})
    assert [r.id for r in listed.data] == list(reversed(made))
    expanded = client.v1.payment_intents.retrieve(
        pi.id, params={"expand": ["latest_charge.refunds"]}
    )
    assert expanded.latest_charge.amount_refunded == 1100
    assert len(expanded.latest_charge.refunds.data) == 10
