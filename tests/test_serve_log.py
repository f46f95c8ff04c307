"""What `bookpay serve` shows while it runs: a line per request and per webhook received, in text
(coloured at a terminal) or JSON; never a secret, a client secret or a card number."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from contextlib import contextmanager

import pytest

from bookpay.commands.serve import _configure_logging, _remove_handler
from bookpay.config import Settings
from bookpay.testing import webhook_sender
from bookpay.web import logs
from bookpay.web.launch import start_shop
from bookpay.web.runner import Capacity


@pytest.fixture
def served(emulator, tmp_path):
    """A shop started as `bookpay serve` starts it, logging its requests and webhooks."""
    shop = start_shop(
        Settings(data_dir=tmp_path / "data", emulator_url=emulator.url),
        capacity=Capacity(threads=8),
        say=lambda line: None,
        background=True,
        log_requests=True,
    )
    try:
        yield shop
    finally:
        shop.stop()


@contextmanager
def console(log_format: str = "text"):
    """serve's logging, on the streams of the test's call (capsys's), for the ``with`` block."""
    handlers = _configure_logging(False, log_format, False)
    try:
        yield
    finally:
        _remove_handler(handlers)


def get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.status


def post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def pay(shop) -> str:
    created = post_json(
        shop.url + "/create-payment-intent",
        {"item": "1", "attemptId": str(uuid.uuid4())},
    )
    intent = created["paymentIntentId"]
    shop.services.gateway.confirm_intent(intent, payment_method="pm_card_visa")
    return intent


def wait_for_line(capsys, needle: str, timeout: float = 10.0) -> tuple[str, str]:
    """All stdout and stderr so far, once stdout holds ``needle``."""
    import time

    out = err = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        captured = capsys.readouterr()
        out, err = out + captured.out, err + captured.err
        if needle in out:
            return out, err
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} not in {out!r} (stderr: {err!r})")


def test_a_line_per_request_with_path_status_and_time_never_the_query(served, capsys):
    with console():
        check_request_lines(served, capsys)


def check_request_lines(served, capsys):
    assert get(served.url + "/") == 200
    secret = "pi_3Qabc_secret_Zyx987"
    assert get(f"{served.url}/checkout?item=1&payment_intent_client_secret={secret}") == 200
    with pytest.raises(urllib.error.HTTPError):
        get(served.url + "/checkout?item=nope")
    out, _ = wait_for_line(capsys, "GET /checkout 404")
    lines = out.splitlines()
    assert any(line.endswith(" ms") and "  GET / 200 " in line for line in lines)
    assert any("  GET /checkout 200 " in line for line in lines)
    assert "secret" not in out and "item=" not in out


def test_a_line_per_webhook_saying_what_it_came_to(served, capsys):
    with console():
        check_webhook_lines(served, capsys)


def check_webhook_lines(served, capsys):
    intent = pay(served)
    out, _ = wait_for_line(capsys, "--> payment_intent.succeeded")
    order = served.services.ledger.find_order(intent)
    line = next(x for x in out.splitlines() if "--> payment_intent.succeeded" in x)
    assert line.endswith(f" {intent} fulfilled: order {order['id']} ({intent})")
    assert "--> payment_intent.created" in out and "ignored: not an event bookpay handles" in out
    sender = webhook_sender(served.own_url and None, url=served.own_url + "/webhook",
                            secret=served.secrets[-1])  # fmt: skip
    assert sender("payment_intent.succeeded").outcome == "ignored"
    assert sender("payment_intent.succeeded", bad_signature=True).outcome == "refused"
    out, _ = wait_for_line(capsys, "refused: 400")
    assert "--> payment_intent.succeeded [evt_3QfxSucdB7WZ01zgkW0fixture]" in out
    assert "ignored: Stripe does not know pi_3QfxSucdB7WZ01zgkW0fixture" in out
    assert "refused: 400: Invalid Stripe-Signature" in out
    assert "POST /webhook 400" in out


def test_json_lines_for_log_shippers(served, capsys):
    with console("json"):
        intent = pay(served)
        out, _ = wait_for_line(capsys, '"type": "payment_intent.succeeded"')
    records = [json.loads(line) for line in out.splitlines()]  # every line is one JSON object
    requests = [r for r in records if r.get("kind") == "request"]
    assert {"method": "POST", "path": "/create-payment-intent", "status": 200} in [
        {k: r[k] for k in ("method", "path", "status")} for r in requests
    ]
    assert all(isinstance(r["ms"], float) and r["time"].endswith("Z") for r in requests)
    webhook = next(r for r in records if r.get("type") == "payment_intent.succeeded")
    assert webhook["kind"] == "webhook"
    assert webhook["payment_intent"] == intent
    assert webhook["outcome"] == "fulfilled"
    assert webhook["event"].startswith("evt_")


def record(**fields) -> logging.LogRecord:
    made = logging.LogRecord(logs.ACCESS, logging.INFO, "x", 1, "m", None, None)
    made.__dict__.update(fields)
    return made


def test_colours_at_a_terminal_like_stripe_listen_and_none_elsewhere():
    ok = record(kind="request", method="GET", path="/", status=200, ms=3.2)
    broken = record(kind="request", method="POST", path="/webhook", status=500, ms=9)
    refused = record(kind="webhook", type="charge.refunded", event="evt_1",
                     payment_intent=None, outcome="refused", reason="400: bad")  # fmt: skip
    coloured = logs.TextFormatter(color=True)
    assert "\x1b[32m200\x1b[0m" in coloured.format(ok)
    assert "\x1b[31m500\x1b[0m" in coloured.format(broken)
    assert "\x1b[31mrefused: 400: bad\x1b[0m" in coloured.format(refused)
    plain = logs.TextFormatter().format(refused)
    assert "\x1b" not in plain
    assert plain.endswith("--> charge.refunded [evt_1] - refused: 400: bad")


def test_outside_text_is_made_printable():
    hostile = record(kind="request", method="GET", path="/x\x1b[2J\u202e", status=404, ms=1)
    line = logs.TextFormatter(color=False).format(hostile)
    assert "\x1b" not in line and "\u202e" not in line
    assert "/x\\x1b[2J\\u202e 404" in line


def test_outside_text_cannot_add_a_line_of_its_own():
    """A newline in a path or an event's fields is shown as an escape: one record, one line."""
    forged = "2026-12-06 20:30:00  POST /webhook 200 1 ms"
    request = record(kind="request", method="GET", path=f"/nope\n{forged}", status=404, ms=1)
    webhook = record(kind="webhook", type=f"a\n{forged}", event="evt_\r\n1",
                     payment_intent="pi_\n1", outcome="refused", reason="400: x\ny")  # fmt: skip
    for hostile in (request, webhook):
        line = logs.TextFormatter().format(hostile)
        assert "\n" not in line and "\r" not in line
        assert f"\\n{forged}" in line  # shown, as an escape, on the record's own line
    warning = logging.LogRecord("bookpay.webhooks", logging.ERROR, "x", 1,
                                "handling %s failed", (f"evt_1\n{forged}",), None)  # fmt: skip
    assert "\n" not in logs.TextFormatter().format(warning)
    try:
        raise RuntimeError(f"boom\n{forged}")
    except RuntimeError:
        import sys as _sys

        warning.exc_info = _sys.exc_info()
    lines = logs.TextFormatter().format(warning).splitlines()
    assert len(lines) > 2  # the traceback keeps its lines...
    assert all(line.startswith("    ") for line in lines[1:])  # ...each indented under the record
    assert not any(line.startswith("2026") for line in lines[1:])


def test_a_lone_surrogate_is_shown_as_an_escape_never_a_logging_error():
    hostile = record(kind="webhook", type="x", event="evt_\udfff", payment_intent=None,
                     outcome="refused", reason="400: missing")  # fmt: skip
    line = logs.TextFormatter().format(hostile)
    line.encode("utf-8")  # a stream can write it
    assert "[evt_\\udfff]" in line


def test_an_unreadable_body_is_named_so_in_the_log_however_deep_it_nests():
    assert logs._event_fields(b"[" * 5000) == ("(not JSON)", "-", None)
    assert logs._event_fields(b'{"a":' * 5000) == ("(not JSON)", "-", None)


def test_an_unsigned_deeply_nested_body_is_a_400_with_its_line(served, capsys):
    request = urllib.request.Request(
        served.url + "/webhook", data=b"[" * 3000, headers={"Content-Type": "application/json"}
    )
    with console(), pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 400
    assert json.loads(refused.value.read())["error"]["code"] == "missing_signature"
    out, err = wait_for_line(capsys, "POST /webhook 400")
    assert "--> (not JSON) [-] - refused: 400" in out
    assert "Traceback" not in out + err


def test_secrets_and_card_numbers_never_reach_a_line():
    text = logs.redact(
        "key sk_test_51Habcdefghij whsec_abcdef123456 rk_live_zzzzzzzz1 "
        "pi_3Qx_secret_abcDEF postgresql://shop:hunter2@db:5432/bookpay "
        "card 4242 4242 4242 4242 and 4000000000009995, amount 2300"
    )
    for secret in ("51Habcdefghij", "abcdef123456", "zzzzzzzz1", "abcDEF", "hunter2", "4242 4242"):
        assert secret not in text
    assert "9995" not in text
    assert "postgresql://shop:***@db:5432/bookpay" in text
    assert "amount 2300" in text  # ordinary numbers stay


@pytest.mark.parametrize(
    "secret",
    [
        "sk_test_51HqLyjWDarjtT1zdp7dcXsNpPS9fLbQbdjFQsHVdQ4bbz6wz" * 2,  # pasted twice
        "sk_test_51HqLyjWDarjtT1zdp7dcXsNpPS9fLbQbdjFQsHVdQ4bbz6wz_",  # a stray "_"
        "rk_live_51HqLyjWDarjtT1zdp_7dcXsNpPS9fLbQbdjFQsHVdQ4bbz6wz",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIRRIiOKmy" * 2,
        "whsec_MfKQ9r8G+KYqrTwjUP/D8ILPZIRRIiOKmy=",  # a secret's base64 may hold + / =
    ],
)
def test_a_key_is_redacted_whole_whatever_its_underscores(secret):
    """Only the key's first run of letters and digits was removed: a key pasted twice, or
    holding a "_" or "+", left the rest (the whole second copy) in the line."""
    text = logs.redact(f"Invalid key {secret}. Check it")
    assert text.startswith("Invalid key ") and text.endswith("_[redacted]. Check it")
    hidden = secret.split("_", 1)[1]
    assert [hidden[i : i + 8] for i in range(len(hidden) - 7) if hidden[i : i + 8] in text] == []


@pytest.mark.parametrize(
    "text",
    [
        "order ord_67107876212546f7 (pi_3Q1234567890123456xyz)",  # digits inside ids
        "order ord_a4242424242424242 and ord_4242424242424242f",
        "a reference 1234567890123 of no card",  # 13 digits that fail the Luhn check
    ],
)
def test_digits_that_are_no_card_number_stay(text):
    """An order id's run of 13 digits or more was shown as "[card number removed]" (about one
    order in a hundred): only a number a card can have, standing on its own, is removed."""
    assert logs.redact(text) == text


@pytest.mark.parametrize(
    "card",
    ["4242424242424242", "4000-0566-5566-5556", "5555 5555 5555 4444", "378282246310005"],
)
@pytest.mark.parametrize(
    "around",
    [
        "{}", "card={}", "({})", "card_{}", "Card_{}", "«{}»", "[{}]", "pan{}",
        "{} 123",  # its CVC after it: one run of digits that fails the Luhn check as a whole
        "{} 12/34", "qty 1 {}", "exp 12 {}",
    ],
)  # fmt: skip
def test_a_card_number_on_its_own_is_removed_wherever_it_stands(card, around):
    text = logs.redact("paid with " + around.format(card) + " today")
    assert card not in text and card[-4:] + " today" not in text
    assert "[card number removed]" in text


class _Failing:
    """A receiver whose handling fails (the ledger's database went away)."""

    def handle(self, payload, signature):
        raise RuntimeError(
            "could not write: postgresql://shop:hunter2@db/bookpay (key sk_test_51Hsecretsecret)"
        )


class _Ledger:
    def find_order(self, intent_id):
        return {"id": "ord_42"} if intent_id == "pi_42" else None


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_failed_fulfilment_is_logged_with_the_order_and_no_secret(capsys, log_format):
    receiver = logs.LoggedReceiver(_Failing(), _Ledger())
    payload = json.dumps(
        {
            "id": "evt_1",
            "type": "payment_intent.succeeded",
            "data": {"object": {"id": "pi_42", "object": "payment_intent"}},
        }
    ).encode()
    with console(log_format), pytest.raises(RuntimeError):
        receiver.handle(payload, "t=1,v1=x")
    out, err = capsys.readouterr()
    assert "failed" in out and "pi_42" in out  # the webhook's own line
    assert "order ord_42 (pi_42)" in err
    assert "Stripe will send it again" in err
    for secret in ("hunter2", "51Hsecretsecret"):
        assert secret not in out + err


def test_a_receipt_that_cannot_be_written_is_logged_with_its_order(emulator, tmp_path, caplog):
    from bookpay import testing

    stub = testing.StripeEmulator(emulator.url)
    with testing.shop(stub, data_dir=tmp_path / "data") as shop:
        shop.outbox.write_text("not a folder")  # every receipt write fails
        with caplog.at_level(logging.WARNING, logger="bookpay"):
            paid = shop.pay("1", card="4242424242424242")
            order = shop.wait_for_order(paid["id"], "paid")
            stub.wait_for(lambda: "not sent" in caplog.text, what="a receipt failure")
    line = next(r.getMessage() for r in caplog.records if "not sent" in r.getMessage())
    assert f"receipt for order {order['id']} ({paid['id']}) not sent" in line
    assert "4242424242424242" not in caplog.text


def run_serve(args, tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "bookpay", "serve", "--port", "0", "--emulator-port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "BOOKPAY_"))},
            "BOOKPAY_DATA_DIR": str(tmp_path / "data"),
        },
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines = []
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if "Press Ctrl-C" in line:
            return process, lines
    raise AssertionError(process.stderr.read())


@pytest.mark.parametrize("args", [["--log-format", "json"], ["--quiet"]])
def test_serve_log_options_from_the_command_line(args, tmp_path):
    process, lines = run_serve(args, tmp_path)
    try:
        if args == ["--quiet"]:
            url = lines[0].rsplit(" ", 1)[1]
        else:
            first = json.loads(lines[0])
            assert first["kind"] == "message" and first["level"] == "info"
            url = first["message"].rsplit(" ", 1)[1]
        for _ in range(3):
            assert get(url + "/healthz") == 200
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    lines += out.splitlines()
    if args == ["--quiet"]:
        assert not [line for line in lines if "/healthz" in line]
        assert "Stopping." in lines
    else:
        records = [json.loads(line) for line in lines]  # nothing but JSON on stdout
        healthz = [r for r in records if r.get("path") == "/healthz"]
        assert [r["status"] for r in healthz] == [200, 200, 200]
        assert records[-1]["message"] == "Stopping."
    assert "Traceback" not in err


class _Counting:
    """The ledger the log line may read, counting its reads."""

    def __init__(self, ledger) -> None:
        self.ledger, self.reads = ledger, 0

    def find_order(self, intent_id):
        self.reads += 1
        return self.ledger.find_order(intent_id)


def test_a_fulfilled_event_is_logged_with_its_order_without_reading_the_ledger_again(
    tmp_path, capsys
):
    """The handling knows the event, its PaymentIntent and the order it fulfilled: the line is
    written from that, not from the body parsed a second time and the order looked up again
    (a read per event, on the busiest path of a busy shop)."""
    from stripe_fakes import SHOP, FakeGateway, event, intent

    from bookpay.catalog import Catalog
    from bookpay.fulfilment import Fulfiller
    from bookpay.ledger import open_ledger
    from bookpay.webhooks import WebhookReceiver, sign

    settings = Settings(data_dir=tmp_path / "data", webhook_secrets=("whsec_log",), shop_id=SHOP)
    ledger = open_ledger(settings)
    fulfiller = Fulfiller(ledger, FakeGateway(intent()), Catalog.default(), settings)
    try:
        looked_up = _Counting(ledger)
        receiver = logs.LoggedReceiver(WebhookReceiver(settings, ledger, fulfiller), looked_up)
        payload = json.dumps(event("payment_intent.succeeded", intent())).encode()
        with console():
            answer = receiver.handle(payload, sign(payload, "whsec_log"))
            again = receiver.handle(payload, sign(payload, "whsec_log"))
        order = ledger.get_order("pi_1")
    finally:
        fulfiller.close()
        ledger.close()
    assert answer["outcome"] == "fulfilled" and again["duplicate"] is True
    assert set(answer) == {"received", "id", "type", "duplicate", "handled", "outcome"}
    out, _ = capsys.readouterr()
    first, second = out.splitlines()
    said = (
        f"--> payment_intent.succeeded [{answer['id']}] pi_1 fulfilled: order {order['id']} (pi_1)"
    )
    assert said in first
    assert f"--> payment_intent.succeeded [{answer['id']}] pi_1 duplicate" in second
    assert looked_up.reads == 0


def test_the_line_names_the_payment_intent_stripe_has_not_the_events_copy(tmp_path, capsys):
    """A refund event's copy names a PaymentIntent (its Charge's ``payment_intent``), which a
    signed but edited body can change; the handling files the event under the one Stripe's own
    Charge names, and the line, first delivery and duplicate alike, says that one."""
    from stripe_fakes import SHOP, FakeGateway, charge, event, intent

    from bookpay.catalog import Catalog
    from bookpay.fulfilment import Fulfiller
    from bookpay.ledger import open_ledger
    from bookpay.webhooks import WebhookReceiver, sign

    settings = Settings(data_dir=tmp_path / "data", webhook_secrets=("whsec_log",), shop_id=SHOP)
    ledger = open_ledger(settings)
    gateway = FakeGateway(intent())
    gateway.charges["ch_pi_1"] = charge(refunded=500)
    fulfiller = Fulfiller(ledger, gateway, Catalog.default(), settings)
    try:
        receiver = logs.LoggedReceiver(WebhookReceiver(settings, ledger, fulfiller), ledger)
        paid = json.dumps(event("payment_intent.succeeded", intent())).encode()
        copy = {**charge(refunded=500), "payment_intent": "pi_edited"}
        refunded = json.dumps(event("charge.refunded", copy)).encode()
        with console():
            receiver.handle(paid, sign(paid, "whsec_log"))
            first = receiver.handle(refunded, sign(refunded, "whsec_log"))
            again = receiver.handle(refunded, sign(refunded, "whsec_log"))
        filed = ledger.get_event(first["id"])["payment_intent"]
    finally:
        fulfiller.close()
        ledger.close()
    assert first["handled"] is True and again["duplicate"] is True
    assert filed == "pi_1"
    out, _ = capsys.readouterr()
    lines = [line for line in out.splitlines() if "charge.refunded" in line]
    assert len(lines) == 2, out
    for line in lines:
        assert f"--> charge.refunded [{first['id']}] pi_1 " in line, line
        assert "pi_edited" not in line, line
