"""Replay: loading captured events byte for byte, planning, and delivering to a scripted receiver.

Also the `bookpay webhook replay | fixtures | sign` commands, through Typer's CliRunner.
"""

from __future__ import annotations

import io
import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from typer.testing import CliRunner

from bookpay import replay
from bookpay.cli import app
from bookpay.errors import UsageError, WebhookSignatureError
from bookpay.replay import (
    FIXTURES_DIR,
    USER_AGENT,
    Replayer,
    load_events,
    normalize_url,
    plan,
    split_document,
)
from bookpay.webhooks import sign, verify

SECRET = "whsec_replay_test"
MAX_REPEAT = 100_000  # as --help and the README say
EVENT_A = b'{\n  "id": "evt_A",\n  "object": "event",\n  "type": "payment_intent.succeeded",\n  "data": {"object": {"id": "pi_A"}}\n}\n'  # noqa: E501
EVENT_B = (
    b'{"id":"evt_B","object":"event","type":"charge.refunded","data":{"object":{"id":"ch_B"}}}'
)


class ScriptedReceiver:
    """A keep-alive HTTP server that records every request and answers per ``script``."""

    def __init__(self, script=None) -> None:
        self.requests: list[dict] = []
        self.script = script or (lambda request: (200, {}, b'{"received": true}'))
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = {
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": body,
                    "client": self.client_address,
                    "handler": self,  # to send informational (1xx) answers first
                }
                with owner.lock:
                    owner.requests.append(request)
                status, headers, answer = owner.script(request)
                # An answer is bytes, or pieces sent one at a time (with their Content-Length).
                if isinstance(answer, bytes):
                    headers = {"Content-Length": str(len(answer)), **headers}
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    for piece in [answer] if isinstance(answer, bytes) else answer:
                        self.wfile.write(piece)
                except OSError:
                    pass  # the replayer stopped reading

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhook"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(script=None):
        made.append(ScriptedReceiver(script))
        return made[-1]

    yield make
    for server in made:
        server.close()


@pytest.fixture
def files(tmp_path):
    (tmp_path / "a.json").write_bytes(EVENT_A)
    (tmp_path / "b.json").write_bytes(EVENT_B)
    return tmp_path


# Loading ----------------------------------------------------------------------------------------


def test_a_single_event_file_is_sent_byte_for_byte(files):
    [delivery] = load_events([str(files / "a.json")])
    assert delivery.body == EVENT_A
    assert (delivery.event_id, delivery.type) == ("evt_A", "payment_intent.succeeded")


def test_an_array_yields_the_exact_bytes_of_each_element():
    data = b"[\n  " + EVENT_A.strip() + b" ,\n" + EVENT_B + b"\n]\n"
    bodies = [body for body, _, _ in split_document(data, "x.json")]
    assert bodies == [EVENT_A.strip(), EVENT_B]


def test_json_lines_yield_the_exact_bytes_of_each_line():
    line_a = json.dumps(json.loads(EVENT_A)).encode()
    data = line_a + b"\r\n\n" + EVENT_B + b"\n"
    parsed = list(split_document(data, "x.jsonl"))
    assert [body for body, _, _ in parsed] == [line_a, EVENT_B]
    assert [where for _, _, where in parsed] == ["x.jsonl #1", "x.jsonl #2"]


# What `stripe listen --format JSON --forward-to URL` prints among the events, on stdout.
LISTEN_LINES = (
    b"2026-01-05 10:00:00  <--  [200] POST http://localhost:4242/webhook [evt_A]",
    b'2026-01-05 10:00:01            [ERROR] Failed to POST: Post "http://localhost:4242/webhook"'
    b": dial tcp [::1]:4242: connect: connection refused",
)


def test_lines_of_a_stripe_listen_capture_that_are_not_json_are_skipped_and_counted():
    line_a = json.dumps(json.loads(EVENT_A)).encode()
    data = b"\n".join([line_a, LISTEN_LINES[0], b"  " + EVENT_B, LISTEN_LINES[1], b""])
    skipped = {}
    parsed = list(split_document(data, "x.jsonl", skipped))
    assert [body for body, _, _ in parsed] == [line_a, EVENT_B]
    assert [where for _, _, where in parsed] == ["x.jsonl #1", "x.jsonl #2"]
    assert skipped == {"x.jsonl": 2}
    # One event among such lines is sent as it was printed, without them.
    [(body, _, where)] = split_document(LISTEN_LINES[1] + b"\r\n" + EVENT_B + b"\r\n", "y", skipped)
    assert (body, where, skipped["y"]) == (EVENT_B, "y", 1)
    # A file of nothing else holds no event.
    with pytest.raises(UsageError, match=r"^z holds no event: its 2 lines of text are not JSON"):
        list(split_document(b"\n".join(LISTEN_LINES), "z"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (EVENT_B + b"\n42\n", "#2: not a Stripe event"),  # JSON, but not an event
        (EVENT_B + b'\n"evt_1"\n', "#2: not a Stripe event"),
        (EVENT_B + b"\n{not json\n", "not valid JSON"),  # an object begun, and broken
        (EVENT_B + b"\n[1, \n", "not valid JSON"),
        (EVENT_B + b" trailing text\n", "not valid JSON"),  # after an event, on its line
    ],
)
def test_only_whole_lines_that_are_not_json_are_skipped(data, message):
    skipped = {}
    with pytest.raises(UsageError, match=message):
        list(split_document(data, "x.jsonl", skipped))
    assert skipped == {}


BOM = b"\xef\xbb\xbf"


def test_a_bom_starting_a_line_is_not_sent_and_its_event_is_kept():
    """`cat a.jsonl b.jsonl`, b saved with a BOM: the BOM starts a line partway through, and
    the event after it is an event (sent without the BOM, which Stripe never signed), as is a
    stripe listen line after one skipped; the file is not taken for a single event."""
    skipped = {}
    data = EVENT_B + b"\r\n" + BOM + EVENT_B.replace(b"evt_B", b"evt_C") + b"\r\n"
    data += BOM + LISTEN_LINES[0] + b"\r\n" + BOM + EVENT_A
    parsed = list(split_document(BOM + data, "x.jsonl", skipped))
    assert [event["id"] for _, event, _ in parsed] == ["evt_B", "evt_C", "evt_A"]
    assert [body for body, _, _ in parsed] == [
        EVENT_B,
        EVENT_B.replace(b"evt_B", b"evt_C"),
        EVENT_A.rstrip(b"\n"),
    ]
    assert skipped == {"x.jsonl": 1}
    # A file of one event after a blank line and a BOM: the event, without either.
    [(body, _, _)] = split_document(b"\r\n" + BOM + EVENT_A, "y.json")
    assert body == EVENT_A.rstrip(b"\n")


# What stripe listen prints when stdout is a file and stderr a terminal: the event's id as a
# hyperlink (OSC 8); and with CLICOLOR_FORCE, colours too.
LINKED = (
    b"2026-01-05 10:00:00  <--  [200] POST http://localhost:4242/webhook "
    b"[\x1b]8;;https://dashboard.stripe.com/test/events/evt_A\x1b\\evt_A\x1b]8;;\x1b\\]"
)
COLOURED = (
    b"\x1b[2m2026-01-05 10:00:01\x1b[0m            [\x1b[31mERROR\x1b[0m] Failed to POST: "
    b'Post "http://localhost:4242/webhook": EOF'
)


@pytest.mark.parametrize(
    "line",
    [
        LINKED,
        COLOURED,
        b"2026-01-05 10:00:00   --> payment_intent.succeeded [evt_A]",  # without --format JSON
        b"\x1b[2m2026-01-05 10:00:00\x1b[0m  <--  [\x1b[1;32m200\x1b[0m] POST http://x/ [evt_A]",
        b"> Ready! You are using Stripe API Version [2026-10-28]. Your webhook signing secret is "
        b"whsec_x (^C to quit)",  # on stderr, in a capture of both (2>&1)
        b"Getting ready...",
    ],
)
def test_the_lines_stripe_listen_prints_are_skipped_coloured_or_not(line):
    skipped = {}
    data = EVENT_B + b"\r\n" + line + b"\r\n\r\n" + EVENT_A
    assert [event["id"] for _, event, _ in split_document(data, "x", skipped)] == ["evt_B", "evt_A"]
    assert skipped == {"x": 1}


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("\u00a0" + EVENT_B.decode(), '\'\\xa0{"id":"evt_B"'),  # an NBSP before an event
        ('\\{"id": "evt_C"}', '\'\\\\{"id"'),
        ("id: evt_C", "'id: evt_C'"),
        ("2026-01-05 10:00:00  an event, said in a log", "'2026-01-05 10:00:00  an"),
        ("<--  [200] POST http://x/ [evt_A]", "'<--  [200] POST"),  # no time: not stripe's
    ],
)
def test_a_line_neither_json_nor_stripe_listens_is_refused_naming_it(line, shown):
    """Only the lines stripe listen prints are skipped: any other line that is not JSON might
    be an event gone wrong (an NBSP before it, a stray character), and is refused, with its
    number, rather than passed over silently."""
    data = EVENT_B + b"\n" + LISTEN_LINES[0] + b"\n" + line.encode() + b"\n" + EVENT_B + b"\n"
    skipped = {}
    with pytest.raises(UsageError) as raised:
        list(split_document(data, "x.jsonl", skipped))
    message = str(raised.value)
    assert message.startswith("x.jsonl line 3: not JSON, nor a line stripe listen prints"), message
    assert shown in message
    assert skipped == {}


def test_many_events_on_one_line_are_read_in_linear_time():
    """Events one after another on a single line (joined by spaces): reading them costs what
    the text does, not what each event's distance from the line's start does. Counted, not
    timed: the characters looked at per event must not grow with the events before it."""
    looked_at = [0]
    real_find, real_rfind = str.find, str.rfind

    class Counted(str):
        def bounds(self, args):  # of find(sub, start, end) and rfind's
            start = args[0] if args else None
            end = args[1] if len(args) > 1 else None
            return slice(start, end).indices(len(self))[:2]

        def find(self, sub, *args):
            found = real_find(self, sub, *args)
            start, end = self.bounds(args)
            looked_at[0] += ((found + 1) if found >= 0 else end) - start
            return found

        def rfind(self, sub, *args):
            found = real_rfind(self, sub, *args)
            start, end = self.bounds(args)
            looked_at[0] += end - max(found, start)
            return found

        def __getitem__(self, key):
            part = str.__getitem__(self, key)
            if isinstance(key, slice):
                looked_at[0] += len(part)
            return part

    def reads(count):
        looked_at[0] = 0
        text = Counted(" ".join([EVENT_B.decode()] * count) + "\n")
        events = list(replay._lines(text, 0, "x", [0]))
        assert len(events) == count
        return looked_at[0]

    small, large = reads(200), reads(2000)
    # Linear: ten times the events, about ten times the looking (quadratic would be ~100x).
    assert large <= 12 * small, (small, large)


def test_replay_says_how_many_lines_of_each_capture_it_skipped(receiver, files):
    server = receiver()
    (files / "capture.jsonl").write_bytes(
        b"\n".join([EVENT_B, LISTEN_LINES[0], EVENT_B, LISTEN_LINES[1], LISTEN_LINES[0], b""])
    )
    stdin = LISTEN_LINES[0] + b"\n" + EVENT_A
    result = invoke("webhook", "replay", str(files / "capture.jsonl"), "-", "--to", server.url,
                    "--secret", SECRET, "--json", stdin=stdin)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [r["event_id"] for r in json.loads(result.stdout)] == ["evt_B", "evt_B", "evt_A"]
    # Each as it was printed: the event alone, without the lines around it.
    bodies = [EVENT_B, EVENT_B, EVENT_A.rstrip(b"\n")]
    assert [request["body"] for request in server.requests] == bodies
    assert result.stderr == (
        f"{files / 'capture.jsonl'}: skipped 3 lines stripe listen printed.\n"
        "<stdin>: skipped 1 line stripe listen printed.\n"
    )


def test_a_folder_stdin_and_a_bom(files):
    (files / "notes.txt").write_text("ignored")
    events = load_events([str(files), "-"], stdin=io.BytesIO(b"\xef\xbb\xbf" + EVENT_B))
    assert [e.event_id for e in events] == ["evt_A", "evt_B", "evt_B"]
    assert events[2].body == EVENT_B
    assert [e.index for e in events] == [0, 1, 2]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"id": "evt_1"}', "not a Stripe event"),
        (b"[1]", "not a Stripe event"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"id": "evt_1", "type": "t", "n": ' + b"1" * 5000 + b"}", "a number too long"),
        (b'[{"id": "evt_1", "type": "t"}', r"a ',' or a '\]' expected at character 29"),
        (b'[{"id": "evt_1", "type": "t"} {"id": "evt_2", "type": "t"}]', "a ',' or a"),
        (b'[{"id": "evt_1", "type": "t"},]', "not valid JSON"),
    ],
)
def test_what_is_not_an_event_is_a_usage_error(data, message):
    with pytest.raises(UsageError, match=message):
        list(split_document(data, "bad.json"))


def test_missing_paths_and_empty_folders_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        load_events([str(tmp_path / "nope.json")])
    with pytest.raises(UsageError, match=r"holds no \.json"):
        load_events([str(tmp_path)])


@pytest.mark.parametrize("data", [b"", b" \n\t\r\n", b"\xef\xbb\xbf\n"])
def test_an_empty_event_file_is_a_usage_error_naming_it(files, data):
    (files / "empty.json").write_bytes(data)
    result = invoke("webhook", "replay", str(files / "a.json"), str(files / "empty.json"),
                    "--to", "1", "--secret", SECRET)  # fmt: skip
    assert result.exit_code == 2, result.output
    assert result.stderr == f"Error: {files / 'empty.json'} is empty: it holds no event.\n"
    assert result.stdout == ""
    result = invoke("webhook", "replay", "-", "--to", "1", "--secret", SECRET, stdin=data)
    assert result.exit_code == 2, result.output
    assert result.stderr == "Error: <stdin> is empty: it holds no event.\n"


@pytest.mark.parametrize(
    ("stdin", "reason"),
    [("closed", "standard input is closed"), ("write-only", "Bad file descriptor")],
)
@pytest.mark.parametrize(
    "args", [["replay", "-", "--to", "1"], ["sign", "-"]], ids=lambda args: args[0]
)
def test_standard_input_closed_or_unreadable_is_one_line_and_exit_2(tmp_path, stdin, reason, args):
    """`bookpay webhook replay - <&-` was "unexpected AttributeError" (Python leaves
    sys.stdin None), and with stdin open for writing only "unexpected OSError", exit 1; as an
    event file that cannot be read, it is a usage error naming what could not be read."""
    import os
    import subprocess
    import sys

    def prepare() -> None:
        if stdin == "closed":
            os.close(0)
        else:
            os.dup2(os.open(tmp_path / "write-only", os.O_WRONLY | os.O_CREAT), 0)

    done = subprocess.run(
        [sys.executable, "-m", "bookpay", "webhook", *args, "--secret", SECRET],
        capture_output=True,
        text=True,
        env={**os.environ, "BOOKPAY_DATA_DIR": str(tmp_path / "data")},
        preexec_fn=prepare,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    assert done.stderr == f"Error: <stdin>: cannot read it ({reason}).\n"


@pytest.mark.parametrize("data", [b"[]", b" [ \n ] \n"])
def test_an_event_file_of_an_empty_array_is_a_usage_error_naming_it(files, data):
    (files / "none.json").write_bytes(data)
    result = invoke("webhook", "replay", str(files / "a.json"), str(files / "none.json"),
                    "--to", "1", "--secret", SECRET)  # fmt: skip
    assert result.exit_code == 2, result.output
    assert (
        result.stderr == f"Error: {files / 'none.json'} holds an empty array: it holds no event.\n"
    )
    assert result.stdout == ""


def test_only_regular_files_are_read(files, monkeypatch):
    import os

    (files / "folder.json").mkdir()  # in a folder, what is not a file is passed over
    os.mkfifo(files / "pipe.json")  # (reading it would wait for a writer for ever)
    assert [e.event_id for e in load_events([str(files)])] == ["evt_A", "evt_B"]
    with pytest.raises(UsageError, match=r"pipe\.json: not a file or a folder"):
        load_events([str(files / "pipe.json")])
    monkeypatch.chdir(files)  # "" is not the current folder
    with pytest.raises(UsageError, match="An empty path names no events"):
        load_events([""])


def test_the_events_of_a_run_are_bounded_in_size(files, monkeypatch):
    monkeypatch.setattr(replay, "MAX_INPUT", len(EVENT_A) + len(EVENT_B) - 1)
    with pytest.raises(UsageError, match=r"b\.json: more than 0 MB of events in one run"):
        load_events([str(files)])
    with pytest.raises(UsageError, match="<stdin>: more than"):
        load_events([str(files / "a.json"), "-"], stdin=io.BytesIO(EVENT_B))


def test_a_run_of_too_many_events_is_refused_as_soon_as_one_too_many_is_read(
    files, monkeypatch, tmp_path
):
    monkeypatch.setattr(replay, "MAX_DELIVERIES", 5)
    real, read = replay.split_document, []

    def counted(data, source, skipped=None):
        for event in real(data, source, skipped):
            read.append(event[2])
            yield event

    monkeypatch.setattr(replay, "split_document", counted)
    many = tmp_path / "many.jsonl"
    many.write_bytes((EVENT_B + b"\n") * 20)
    message = (
        f"{many} #5: more than 5 events, more deliveries than one run may make; replay them in "
        "parts."
    )
    with pytest.raises(UsageError) as caught:
        load_events([str(files / "a.json"), str(many)])
    assert caught.value.message == message
    assert read == [str(files / "a.json"), *(f"{many} #{n}" for n in range(1, 6))]  # no more
    result = invoke("webhook", "replay", str(many), "-", "--to", "1", "--secret", SECRET,
                    stdin=EVENT_A)  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr == f"Error: {message.replace('#5', '#6')}\n"  # not "lower --repeat"
    assert result.stdout == ""
    assert len(load_events([str(files / "a.json")] * 5)) == 5  # as many as one run may make


# Planning ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "url"),
    [
        (None, "http://127.0.0.1:4242/webhook"),
        ("4242", "http://localhost:4242/webhook"),
        ("/webhook", "http://localhost:4242/webhook"),
        ("/hooks/stripe", "http://localhost:4242/hooks/stripe"),
        ("localhost:5000/hooks", "http://localhost:5000/hooks"),
        ("https://shop.example.com/webhook", "https://shop.example.com/webhook"),
    ],
)
def test_the_stripe_clis_shorthands(target, url):
    assert normalize_url(target) == url


def test_a_bad_url_is_a_usage_error():
    with pytest.raises(UsageError):
        normalize_url("ftp://example.com/x")


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        ("http://127.0.0.1:99999/", "'http://127.0.0.1:99999/': the port"),
        ("99999", "'99999' (http://localhost:99999/webhook): the port"),
        ("http://127.0.0.1:0/", "'http://127.0.0.1:0/': the port"),
        ("localhost:abc/hooks", "'localhost:abc/hooks' (http://localhost:abc/hooks): the port"),
        ("http://[::1", "'http://[::1' is not a valid URL: Invalid IPv6 URL"),
        ("\uff14\uff12\uff14\uff12", "write the port in ASCII digits"),
        ("http://localhost/w\u00e9bhook", "'http://localhost/w\u00e9bhook': a URL cannot hold"),
        ("localhost:4242/a b", "'localhost:4242/a b' (http://localhost:4242/a b): a URL cannot"),
        ("http://" + "a" * 64 + ".test/", "is not a host name"),
    ],
)
def test_a_bad_port_or_a_broken_url_is_a_usage_error_naming_it(target, shown):
    with pytest.raises(UsageError) as caught:
        normalize_url(target)
    assert shown in caught.value.message
    assert "\n" not in caught.value.message


@pytest.mark.parametrize(
    "target", ["http://127.0.0.1:99999/", "99999", "http://[::1", "http://localhost/w\u00e9bhook"]
)
def test_replay_to_a_bad_url_exits_2_in_one_line(target):
    result = invoke("webhook", "replay", "nope.json", "--to", target, "--secret", SECRET)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"Error: --to {target!r}")
    assert result.stderr.count("\n") == 1  # said before the missing file is even looked at


@pytest.mark.parametrize("target", ["", "  "])
def test_a_blank_to_exits_2_never_sends_to_the_default_url(target):
    """`--to "$URL"` with URL unset sent every event to http://127.0.0.1:4242/webhook."""
    result = invoke("webhook", "replay", "nope.json", "--to", target, "--secret", SECRET)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: --to is blank. ")
    assert result.stderr.count("\n") == 1  # said before the missing file is even looked at
    with pytest.raises(UsageError):
        Replayer(target, SECRET)


def test_credentials_in_the_url_go_as_basic_auth_and_are_never_shown(receiver, files):
    """As Stripe sends an endpoint URL's user and password: an Authorization header (Basic),
    the password percent-decoded; neither the summary nor an error shows the password."""
    import base64

    server = receiver()
    target = server.url.replace("http://", "http://shop:s%40cret@")
    result = invoke("webhook", "replay", str(files / "a.json"), "--to", target, "--secret", SECRET)
    assert result.exit_code == 0, result.output
    [request] = server.requests
    assert request["headers"]["Authorization"] == "Basic " + base64.b64encode(
        b"shop:s@cret"
    ).decode("ascii")
    assert "s%40cret" not in result.output
    assert result.stdout.splitlines()[-1].startswith(
        "1 delivery to " + server.url.replace("http://", "http://shop:***@")
    )
    refused = invoke(
        "webhook", "replay", "x.json", "--to", "http://shop:s3cret@[::1", "--secret", SECRET
    )
    assert refused.exit_code == 2
    assert refused.stderr.startswith("Error: --to 'http://shop:***@[::1' is not a valid URL")
    assert "s3cret" not in refused.output


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        (
            "shop:s3cret@localhost:99999/x",
            "'shop:***@localhost:99999/x' (http://shop:***@localhost:99999/x): the port",
        ),
        ("http://shop:s3@cret@localhost:99999/", "'http://shop:***@localhost:99999/': the port"),
    ],
)
def test_a_password_is_hidden_in_a_shorthand_and_whole_when_it_holds_an_at(target, shown):
    with pytest.raises(UsageError) as caught:
        normalize_url(target)
    assert shown in caught.value.message
    assert "s3" not in caught.value.message and "cret" not in caught.value.message


def test_a_plan_is_made_lazily_and_bounded(files, monkeypatch):
    import tracemalloc

    events = load_events([str(files)])
    tracemalloc.start()
    try:
        deliveries = plan(events, repeat=MAX_REPEAT, order="reverse")
        held, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(deliveries) == 2 * MAX_REPEAT
    assert held < 100_000  # bytes: no Delivery made before it is taken (a list: over 20 MB)
    assert [d.event_id for d in deliveries[:3]] == ["evt_B", "evt_A", "evt_B"]
    assert deliveries[-1].event_id == "evt_A" and deliveries[-1].index == 2 * MAX_REPEAT - 1
    with pytest.raises(IndexError):
        deliveries[2 * MAX_REPEAT]
    with pytest.raises(UsageError, match="--repeat must be from 1 to 100,000, not 100,001"):
        plan(events, repeat=MAX_REPEAT + 1)
    monkeypatch.setattr(replay, "MAX_DELIVERIES", 5, raising=False)
    with pytest.raises(UsageError, match="2 events sent 3 times make 6 deliveries, more than"):
        plan(events, repeat=3)


def test_a_shuffled_plan_is_the_shuffle_of_the_whole_list(files):
    import random

    events = load_events([str(files)])
    rounds = [event for _ in range(7) for event in events]
    random.Random(11).shuffle(rounds)
    shuffled = plan(events, repeat=7, order="shuffle", seed=11)
    assert [d.event_id for d in shuffled] == [d.event_id for d in rounds]
    assert [d.index for d in shuffled] == list(range(14))


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("--repeat", "99999999999999999999", "less than or equal to"),
        ("--repeat", "100001", "less than or equal to"),
        ("--concurrency", "257", "less than or equal to"),
        ("--delay", "99999999999999999999", "from 0 to 3600, got 1e+20"),
        ("--timeout", "99999999999999999999", "from 0.1 to 3600, got 1e+20"),
    ],
)
def test_replay_options_beyond_their_maximum_exit_2(option, value, said):
    # A missing file, read before anything is planned or sent: the test fails and does not fill
    # the memory should a bound be lost.
    result = invoke("webhook", "replay", "nope.json", option, value)
    assert result.exit_code == 2, result.output
    assert option in result.stderr and said in result.stderr


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e400"])
@pytest.mark.parametrize(("option", "low"), [("--delay", "0"), ("--timeout", "0.1")])
def test_replay_seconds_that_are_no_number_are_said_so(option, low, value):
    """`--timeout nan` was refused as "Input should be less than or equal to 3600"."""
    result = invoke("webhook", "replay", "nope.json", option, value)
    assert result.exit_code == 2, result.output
    shown = {"NaN": "nan", "1e400": "inf"}.get(value, value)
    assert (
        f"Invalid value for '{option}': must be a number of seconds from {low} to 3600, "
        f"got {shown}." in result.stderr
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"concurrency": 10**20}, "--concurrency must be from 1 to 256"),
        ({"delay": 1e20}, "--delay must be from 0 to 3600 seconds"),
        ({"delay": float("nan")}, "--delay must be from 0 to 3600 seconds"),
        ({"timeout": 1e20}, "--timeout must be more than 0 and at most 3600 seconds"),
        ({"timestamp_offset": replay.LAST_TIMESTAMP}, r"--timestamp-offset 253,402,300,799 signs"),
        (
            {"timestamp_offset": -(10**10)},
            r"signs at Unix time -[\d,]+: a signature's time is from",
        ),
    ],
)
def test_the_replayer_refuses_values_threads_and_sleep_cannot_take(kwargs, message):
    with pytest.raises(UsageError, match=message):
        Replayer("4242", SECRET, **kwargs)


def test_repeat_goes_in_rounds_and_orders_reorder(files):
    events = load_events([str(files)])
    assert [d.event_id for d in plan(events, repeat=2)] == ["evt_A", "evt_B", "evt_A", "evt_B"]
    assert [d.event_id for d in plan(events, order="reverse")] == ["evt_B", "evt_A"]
    one = [d.event_id for d in plan(events, repeat=5, order="shuffle", seed=3)]
    two = [d.event_id for d in plan(events, repeat=5, order="shuffle", seed=3)]
    assert one == two and sorted(one) == ["evt_A"] * 5 + ["evt_B"] * 5
    assert [d.index for d in plan(events, repeat=2, order="reverse")] == [0, 1, 2, 3]


def test_new_event_id_gives_each_delivery_a_fresh_id_and_reserialises(files):
    deliveries = plan(load_events([str(files / "a.json")]), repeat=3, new_event_id=True)
    ids = [d.event_id for d in deliveries]
    assert len(set(ids)) == 3 and all(i.startswith("evt_") and i != "evt_A" for i in ids)
    for delivery in deliveries:
        event = json.loads(delivery.body)
        assert event["id"] == delivery.event_id
        assert event["data"] == {"object": {"id": "pi_A"}}
        assert delivery.body.startswith(b'{\n  "id"')


@pytest.mark.parametrize(("repeat", "order"), [(0, "as-is"), (1, "random")])
def test_bad_plans_are_usage_errors(files, repeat, order):
    with pytest.raises(UsageError):
        plan(load_events([str(files)]), repeat=repeat, order=order)


# Delivering -------------------------------------------------------------------------------------


def test_each_delivery_is_signed_at_send_time_with_stripes_headers(receiver, files):
    server = receiver()
    results = Replayer(server.url, SECRET).run(load_events([str(files)]))
    assert [(r.status, r.ok, r.answer) for r in results] == [(200, True, '{"received": true}')] * 2
    first, second = server.requests
    assert first["body"] == EVENT_A and second["body"] == EVENT_B
    headers = first["headers"]
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert headers["User-Agent"] == USER_AGENT
    assert first["path"] == "/webhook"
    verify(first["body"], headers["Stripe-Signature"], [SECRET])
    stamp = int(headers["Stripe-Signature"].split(",")[0][2:])
    assert abs(stamp - time.time()) < 5


def test_one_keep_alive_connection_is_reused(receiver, files):
    server = receiver()
    events = plan(load_events([str(files)]), repeat=5)
    assert all(r.ok for r in Replayer(server.url, SECRET).run(events))
    assert len({request["client"] for request in server.requests}) == 1


def test_a_server_that_closes_connections_is_still_served(receiver, files):
    server = receiver(lambda request: (200, {"Connection": "close"}, b"ok"))
    results = Replayer(server.url, SECRET).run(plan(load_events([str(files)]), repeat=3))
    assert [r.ok for r in results] == [True] * 6
    assert len(server.requests) == 6


class BareReceiver:
    """A receiver on a bare socket, for what an HTTP server does not do: each request is read
    whole and recorded (its event id, its connection's number), then ``then(its number)``
    says what to do: answer it, or close the connection without answering ("close"), or answer
    and then close it, cleanly or with a reset."""

    ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    def __init__(self, then) -> None:
        import socket

        self.requests: list[tuple[str, int]] = []
        self.then = then
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/webhook"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        for number in itertools.count(1):
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn, connection_number: int) -> None:
        import socket
        import struct

        reader = conn.makefile("rb")
        while True:
            if not reader.readline():
                break
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            self.requests.append((json.loads(reader.read(length))["id"], connection_number))
            action = self.then(len(self.requests))
            if action in ("answer", "answer, then close", "answer, then reset"):
                conn.sendall(self.ANSWER)
            if action.endswith("reset"):  # SO_LINGER 0: the close sends a reset
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            if action != "answer":
                conn.close()
                return
        conn.close()

    def close(self) -> None:
        self.server.close()


@pytest.mark.parametrize("cut", [1, 2])
def test_a_request_written_whole_is_never_sent_again(files, cut):
    """A receiver that reads a request whole, then closes the connection without answering,
    may have acted on it: the delivery failed, and the request is not sent once more (on a
    reused connection as on a new one)."""
    server = BareReceiver(lambda number: "close" if number == cut else "answer")
    try:
        result = invoke("webhook", "replay", str(files), "--to", server.url, "--secret", SECRET)
    finally:
        server.close()
    assert server.requests == [("evt_A", 1), ("evt_B", 2 if cut == 1 else 1)]
    assert result.exit_code == 6
    assert result.stderr == "Error: 1 of 2 deliveries did not get a 2xx answer.\n"
    assert "connection closed without an answer (after the whole event was sent)" in " ".join(
        result.stdout.split()
    )
    assert "1 accepted, 0 refused, 1 failed" in result.stdout


def test_an_idle_connection_the_receiver_closed_is_not_used(files, monkeypatch):
    """Closed after its answer (no "Connection: close" said), the connection is seen closed
    before the next delivery and replaced: nothing is written on it, nothing fails."""
    real, written_on = Replayer._send, []

    def send(self, connection, delivery):
        written_on.append(connection.sock.getsockname() if connection.sock else "new")
        return real(self, connection, delivery)

    monkeypatch.setattr(Replayer, "_send", send)
    server = BareReceiver(lambda number: "answer, then close")
    try:
        deliveries = plan(load_events([str(files)]), repeat=2)
        results = Replayer(server.url, SECRET, delay=0.1).run(deliveries)
    finally:
        server.close()
    assert [(r.ok, r.outcome) for r in results] == [(True, "accepted")] * 4
    assert server.requests == [("evt_A", 1), ("evt_B", 2), ("evt_A", 3), ("evt_B", 4)]
    assert written_on == ["new"] * 4  # one attempt each, each on a new connection


def test_a_request_cut_off_while_it_is_written_goes_once_more_on_a_new_connection(
    files, monkeypatch
):
    """The receiver reset the reused connection just as the request went out (here: before,
    but unseen): writing it fails, the receiver cannot have had it whole, so it is sent again,
    once, on a new connection."""
    monkeypatch.setattr(replay, "dropped", lambda sock: False)
    server = BareReceiver(lambda number: "answer, then reset")
    try:
        results = Replayer(server.url, SECRET, delay=0.1).run(load_events([str(files)]))
    finally:
        server.close()
    assert [(r.ok, r.outcome) for r in results] == [(True, "accepted")] * 2
    assert server.requests == [("evt_A", 1), ("evt_B", 2)]


def test_timestamp_offset_and_bad_signature_make_signatures_the_receiver_refuses(receiver, files):
    server = receiver()
    events = load_events([str(files / "a.json")])
    Replayer(server.url, SECRET, timestamp_offset=-600).run(events)
    Replayer(server.url, SECRET, bad_signature=True).run(events)
    expired, forged = server.requests
    with pytest.raises(WebhookSignatureError, match="tolerance"):
        verify(expired["body"], expired["headers"]["Stripe-Signature"], [SECRET])
    with pytest.raises(WebhookSignatureError, match="No signatures found matching"):
        verify(forged["body"], forged["headers"]["Stripe-Signature"], [SECRET])


def test_redirects_are_not_followed_and_count_as_failures(receiver, files):
    target = receiver()
    server = receiver(lambda request: (308, {"Location": target.url}, b""))
    [result] = Replayer(server.url, SECRET).run(load_events([str(files / "a.json")]))
    assert (result.status, result.ok, result.location) == (308, False, target.url)
    assert "redirected to" in result.error and "not followed" in result.error
    assert target.requests == []


def test_informational_answers_are_read_past_to_the_final_one(receiver, files):
    def hints_first(request):  # as a receiver behind a CDN may answer (Stripe reads past them)
        request["handler"].wfile.write(
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 102 Processing\r\n\r\n"
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        )
        return 200, {"Content-Type": "application/json"}, b'{"received": true}'

    server = receiver(hints_first)
    results = Replayer(server.url, SECRET).run(plan(load_events([str(files)]), repeat=2))
    assert [(r.status, r.ok, r.outcome, r.answer) for r in results] == [
        (200, True, "accepted", '{"received": true}')
    ] * 4
    assert len({request["client"] for request in server.requests}) == 1  # still kept alive


def test_non_2xx_answers_and_refused_connections_are_failures(receiver, files):
    statuses = iter([500, 200])
    server = receiver(lambda request: (next(statuses), {}, b'{"error": "boom"}'))
    results = Replayer(server.url, SECRET).run(load_events([str(files)]))
    assert [(r.status, r.ok) for r in results] == [(500, False), (200, True)]
    server.close()
    [refused] = Replayer(server.url, SECRET, timeout=2).run(load_events([str(files / "b.json")]))
    assert (refused.status, refused.ok) == (None, False)
    port = urlsplit(server.url).port
    assert refused.error == f"127.0.0.1:{port} refused the connection (is the shop running there?)"
    assert "Errno" not in refused.error


def test_a_refused_connection_to_an_ipv6_host_brackets_it(files):
    import socket

    with socket.create_server(("::1", 0), family=socket.AF_INET6) as closed:
        port = closed.getsockname()[1]
    [refused] = Replayer(f"http://[::1]:{port}/webhook", SECRET, timeout=2).run(
        load_events([str(files / "b.json")])
    )
    assert refused.error == f"[::1]:{port} refused the connection (is the shop running there?)"


def test_concurrency_keeps_n_in_flight_and_answers_in_plan_order(receiver, files):
    in_flight, peak, lock = [0], [0], threading.Lock()

    def slow(request):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.05)
        with lock:
            in_flight[0] -= 1
        return 200, {}, b"{}"

    server = receiver(slow)
    deliveries = plan(load_events([str(files)]), repeat=6)
    results = Replayer(server.url, SECRET, concurrency=4).run(deliveries)
    assert [r.index for r in results] == list(range(12))
    assert all(r.ok for r in results)
    assert peak[0] == 4
    assert len({request["client"] for request in server.requests}) == 4


def test_the_timeout_bounds_a_whole_delivery_not_each_read(receiver, files):
    def trickle(request):  # a byte every 0.1 s: each read is quick, the answer never ends
        return 200, {"Content-Length": "100"}, (time.sleep(0.1) or b"x" for _ in range(100))

    server = receiver(trickle)
    started = time.perf_counter()
    [result] = Replayer(server.url, SECRET, timeout=0.5).run(load_events([str(files / "a.json")]))
    assert time.perf_counter() - started < 2
    assert (result.ok, result.outcome, result.reason) == (
        False,
        "failed",
        "TimeoutError: timed out",
    )


def test_a_huge_answer_is_read_only_so_far(receiver, files):
    import tracemalloc

    size = 32 * 2**20
    answers = iter(
        [
            (200, {"Content-Length": str(size)}, (b"x " * 2**19 for _ in range(size // 2**20))),
            (200, {}, b"ok"),
        ]
    )
    server = receiver(lambda request: next(answers))
    events = load_events([str(files)])
    tracemalloc.start()
    try:
        results = Replayer(server.url, SECRET).run(events)
        _held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20  # bytes: the answer's first 64 KiB, not its 32 MiB
    assert [(r.ok, r.outcome) for r in results] == [(True, "accepted")] * 2
    assert len(results[0].reason) == replay.MAX_REASON and results[0].reason.endswith("\u2026")
    assert len(results[0].answer) == 500 and results[1].answer == "ok"  # on a new connection


def test_an_error_in_a_worker_thread_stops_the_run_and_is_not_lost(receiver, files, monkeypatch):
    real = Replayer._deliver

    def deliver(self, connection, delivery):
        if delivery.index == 3:
            raise RuntimeError("boom")
        return real(self, connection, delivery)

    monkeypatch.setattr(Replayer, "_deliver", deliver)
    server = receiver()
    deliveries = plan(load_events([str(files)]), repeat=4)
    with pytest.raises(RuntimeError, match="boom"):
        Replayer(server.url, SECRET, concurrency=2).run(deliveries)


def test_delay_spaces_the_deliveries(receiver, files):
    server = receiver()
    started = time.perf_counter()
    Replayer(server.url, SECRET, delay=0.1).run(plan(load_events([str(files)]), repeat=2))
    assert time.perf_counter() - started >= 0.3


def test_a_stopped_run_starts_no_delivery_nor_waits_out_its_delay(receiver, files):
    server, stop = receiver(), threading.Event()
    deliveries = plan(load_events([str(files)]), repeat=5)
    started = time.perf_counter()
    results = Replayer(server.url, SECRET, delay=60).run(
        deliveries, progress=lambda result: stop.set(), stop=stop
    )
    assert time.perf_counter() - started < 10
    assert [(r.index, r.ok) for r in results] == [(0, True)]
    assert len(server.requests) == 1


# The commands -----------------------------------------------------------------------------------

runner = CliRunner()


def invoke(*args, env=None, stdin=None):
    return runner.invoke(app, list(args), env=env or {}, input=stdin)


def test_replay_prints_a_table_and_exits_0(receiver, files):
    server = receiver()
    result = invoke("webhook", "replay", str(files), "--to", server.url, "--secret", SECRET)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["#", "Event", "Type", "Status", "Outcome", "Latency", "Reason"]
    assert lines[1].split()[:5] == ["1", "evt_A", "payment_intent.succeeded", "200", "accepted"]
    assert lines[2].split()[:5] == ["2", "evt_B", "charge.refunded", "200", "accepted"]
    assert lines[-1].startswith(f"2 deliveries to {server.url} in ")
    assert lines[-1].endswith(
        ": 0 fulfilled, 0 duplicate, 0 ignored, 2 accepted, 0 refused, 0 failed"
    )


def test_replay_json_prints_only_json_and_exits_6_on_a_failure(receiver, files):
    statuses = iter([200, 400])
    server = receiver(lambda request: (next(statuses), {}, b'{"error": {"code": "x"}}'))
    result = invoke(
        "webhook", "replay", str(files), "--to", server.url, "--secret", SECRET, "--json"
    )
    assert result.exit_code == 6
    deliveries = json.loads(result.stdout)
    assert [(d["event_id"], d["status"], d["ok"]) for d in deliveries] == [
        ("evt_A", 200, True),
        ("evt_B", 400, False),
    ]
    assert set(deliveries[0]) >= {"type", "latency_ms", "answer", "error", "location"}
    assert result.stderr == "Error: 1 of 2 deliveries did not get a 2xx answer.\n"


def test_replay_with_every_option(receiver, files):
    server = receiver()
    result = invoke(
        "webhook", "replay", str(files / "a.json"), "-", "--to", server.url,
        "--repeat", "3", "--order", "shuffle", "--seed", "1", "--concurrency", "2",
        "--delay", "0.01", "--new-event-id", "--timestamp-offset", "-30", "--json",
        env={"STRIPE_WEBHOOK_SECRET": f"{SECRET},whsec_other"},
        stdin=EVENT_B,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    deliveries = json.loads(result.stdout)
    assert len(deliveries) == 6 and len({d["event_id"] for d in deliveries}) == 6
    assert (
        sorted(d["type"] for d in deliveries)
        == ["charge.refunded"] * 3 + ["payment_intent.succeeded"] * 3
    )
    for request in server.requests:
        verify(request["body"], request["headers"]["Stripe-Signature"], [SECRET])
        assert int(request["headers"]["Stripe-Signature"][2:12]) < time.time() - 25


@pytest.mark.parametrize("offset", ["253000000000", "-99999999999999999999"])
def test_a_timestamp_offset_outside_1970_to_9999_exits_2_before_anything_is_read(offset):
    # A missing file, and no secret: the offset is said first, as for `webhook sign`.
    result = invoke("webhook", "replay", "nope.json", "--timestamp-offset", offset)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(
        f"Error: --timestamp-offset {int(offset):,} signs at Unix time "
    )
    assert result.stderr.endswith(
        ": a signature's time is from 0 (1970) to 253,402,300,799 (the end of year 9999).\n"
    )
    assert len(result.stderr.splitlines()) == 1 and result.stdout == ""


def test_replay_a_redirect_exits_6_and_says_so(receiver, files):
    server = receiver(lambda request: (302, {"Location": "https://elsewhere.example/"}, b""))
    result = invoke("webhook", "replay", str(files / "a.json"), "--to", server.url,
                    "--secret", SECRET)  # fmt: skip
    assert result.exit_code == 6
    assert "302" in result.stdout and "redirected to https://elsewhere.example/" in result.stdout


@pytest.mark.parametrize(
    ("code", "strerror", "reason"),
    [
        ("EAI_NONAME", "Name or service not known", "cannot find"),
        ("EAI_AGAIN", "Temporary failure in name resolution", "cannot look up"),
    ],
)
def test_a_host_dns_cannot_find_is_a_failed_delivery_said_in_one_line(
    files, monkeypatch, code, strerror, reason
):
    """Not refused before the run (exit 2): a name is only known not to resolve once it is
    looked up, so it is a failed delivery (exit 6), its reason the host, not a raw gaierror."""
    import socket

    real = socket.getaddrinfo

    def lookup(host, *args, **kwargs):
        if host == "shop.invalid":
            raise socket.gaierror(getattr(socket, code), strerror)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    result = invoke("webhook", "replay", str(files / "a.json"), "--to",
                    "http://shop.invalid/webhook", "--secret", SECRET, "--json")  # fmt: skip
    assert result.exit_code == 6, result.output
    [failed] = json.loads(result.stdout)
    assert failed["reason"] == failed["error"] == f"{reason} the host shop.invalid ({strerror})"
    assert "gaierror" not in result.output and "Errno" not in result.output


def test_a_dotenv_that_cannot_be_read_stops_every_replay_and_sign_but_not_fixtures(
    files, tmp_path, monkeypatch
):
    """A replay with --bad-signature takes no secret from the settings, but reads them as every
    other command does; `webhook fixtures` reads no settings at all (as the README says)."""
    (tmp_path / ".env").write_bytes(b"BOOKPAY_TAX=\xff\n")
    monkeypatch.chdir(tmp_path)
    event = str(files / "a.json")
    for args in (
        ["replay", event, "--to", "1", "--bad-signature"],
        ["replay", event, "--to", "1", "--secret", SECRET],
        ["sign", event, "--secret", SECRET],
    ):
        result = invoke("webhook", *args)
        assert result.exit_code == 5, (args, result.output)
        assert result.stderr.startswith("Error: Cannot read .env: it is not UTF-8 text"), args
    assert invoke("webhook", "fixtures").exit_code == 0


def test_replay_without_a_secret_in_emulator_mode_says_to_pass_one(files, tmp_path):
    result = invoke(
        "webhook", "replay", str(files), env={"BOOKPAY_DATA_DIR": str(tmp_path / "data")}
    )
    assert result.exit_code == 5
    assert "pass --secret whsec_" in result.stderr
    assert result.stdout == ""


def test_replay_reads_the_secret_bookpay_serve_saved(receiver, files, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    saved = data / "webhook_secret"
    saved.write_text(SECRET + "\n")
    saved.chmod(0o600)
    server = receiver()
    env = {"BOOKPAY_DATA_DIR": str(data)}
    result = invoke("webhook", "replay", str(files / "a.json"), "--to", server.url, env=env)
    assert result.exit_code == 0, result.output
    verify(server.requests[0]["body"], server.requests[0]["headers"]["Stripe-Signature"], [SECRET])
    saved.chmod(0o644)  # readable by others: not trusted
    assert invoke("webhook", "replay", str(files), "--to", server.url, env=env).exit_code == 5


def test_replay_signs_with_the_secret_of_the_server_at_its_to_port(receiver, files, tmp_path):
    """Several `bookpay serve` on one data folder each save their secret by port; an older
    bookpay's single file is read when no server saved one for that port."""
    data = tmp_path / "data"
    data.mkdir()
    servers = [receiver(), receiver()]
    secrets = ["whsec_first_server", "whsec_second_server"]
    for server, secret in zip(servers, secrets, strict=True):
        replay.save_secret(data, secret, replay.port_of(server.url))
    legacy = data / "webhook_secret"
    legacy.write_text("whsec_older_bookpay\n")
    legacy.chmod(0o600)
    env = {"BOOKPAY_DATA_DIR": str(data)}
    for server, secret in zip(servers, secrets, strict=True):
        result = invoke("webhook", "replay", str(files / "a.json"), "--to", server.url, env=env)
        assert result.exit_code == 0, result.output
        [request] = server.requests
        verify(request["body"], request["headers"]["Stripe-Signature"], [secret])
    # A server stopping removes its own file only, and only while it still holds its secret.
    replay.forget_secret(data, "whsec_another", replay.port_of(servers[0].url))
    replay.forget_secret(data, secrets[1], replay.port_of(servers[1].url))
    assert sorted(p.name for p in data.iterdir()) == [
        "webhook_secret",
        f"webhook_secret.{replay.port_of(servers[0].url)}",
    ]
    result = invoke("webhook", "replay", str(files / "a.json"), "--to", servers[1].url, env=env)
    assert result.exit_code == 0, result.output
    verify(EVENT_A, servers[1].requests[-1]["headers"]["Stripe-Signature"], ["whsec_older_bookpay"])


def test_several_saved_secrets_none_for_the_target_exit_5_naming_their_ports(files, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    replay.save_secret(data, "whsec_first_server", 4242)
    replay.save_secret(data, "whsec_second_server", 4243)
    env = {"BOOKPAY_DATA_DIR": str(data)}
    result = invoke("webhook", "replay", str(files / "a.json"), "--to", "4244", env=env)
    assert result.exit_code == 5
    assert result.stderr.startswith(
        "Error: No webhook secret saved for port 4244 (--to); servers on ports 4242, 4243 saved "
    )
    assert result.stderr.count("\n") == 1
    signed = invoke("webhook", "sign", str(files / "a.json"), env=env)
    assert signed.exit_code == 5
    assert "ports 4242, 4243" in signed.stderr and "pass --secret" in signed.stderr
    (data / "webhook_secret.4243").unlink()  # the only one left is used, whatever the target
    signed = invoke("webhook", "sign", str(files / "a.json"), env=env)
    assert signed.exit_code == 0
    verify(EVENT_A, signed.stdout.strip(), ["whsec_first_server"])


def test_replay_of_a_missing_file_exits_2():
    result = invoke("webhook", "replay", "nope.json", "--secret", SECRET)
    assert result.exit_code == 2
    assert result.stderr == "Error: nope.json: no such file, folder or bundled fixture.\n"


def test_fixtures_lists_the_bundled_events():
    result = invoke("webhook", "fixtures", "--json")
    assert result.exit_code == 0
    listed = json.loads(result.stdout)
    assert [f["name"] for f in listed] == sorted(p.stem for p in FIXTURES_DIR.glob("*.json"))
    succeeded = next(f for f in listed if f["name"] == "payment_intent.succeeded")
    assert succeeded["type"] == "payment_intent.succeeded"
    assert succeeded["item_id"] == "1"
    assert succeeded["payment_intent"].startswith("pi_")
    table = invoke("webhook", "fixtures")
    assert table.exit_code == 0
    assert table.stdout.splitlines()[0].split() == [
        "Name",
        "Type",
        "PaymentIntent",
        "Item",
        "Description",
    ]
    assert "charge.refunded.partial" in table.stdout


def test_sign_prints_a_header_curl_can_send(files):
    result = invoke(
        "webhook", "sign", str(files / "a.json"), "--secret", SECRET, "--timestamp", "1700000000"
    )
    assert result.exit_code == 0
    assert result.stdout == sign(EVENT_A, SECRET, 1700000000) + "\n"
    assert result.stdout.startswith("t=1700000000,v1=")
    from_stdin = invoke("webhook", "sign", "-", "--secret", SECRET, "--timestamp", "1700000000",
                        stdin=EVENT_A)  # fmt: skip
    assert from_stdin.stdout == result.stdout


def test_sign_uses_stripe_webhook_secret_and_refuses_a_missing_file():
    env = {"STRIPE_WEBHOOK_SECRET": SECRET}
    assert invoke("webhook", "sign", "nope.json", env=env).exit_code == 2
    result = invoke("webhook", "sign", "-", env=env, stdin=EVENT_B)
    verify(EVENT_B, result.stdout.strip(), [SECRET])


def test_sign_reads_a_bounded_regular_file_or_stdin(files, monkeypatch, tmp_path):
    """A FIFO is not waited on (pipe it to -), and what is signed is bounded as replay's events
    are: each refusal one line, exit 2."""
    import os

    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    result = invoke("webhook", "sign", str(fifo), "--secret", SECRET)
    assert result.exit_code == 2, result.output
    assert (
        result.stderr
        == f"Error: {fifo}: not a file (send a pipe's contents on standard input: -).\n"
    )
    monkeypatch.setattr(replay, "MAX_INPUT", len(EVENT_A) - 1)
    for source, stdin in ((str(files / "a.json"), None), ("-", EVENT_A)):
        result = invoke("webhook", "sign", source, "--secret", SECRET, stdin=stdin)
        assert result.exit_code == 2, result.output
        assert "more than 0 MB of events" in result.stderr
        assert result.stderr.count("\n") == 1


# What each delivery came to -----------------------------------------------------------------------

LONG_REASON = (
    "Stripe does not know pi_3QfxSucdB7WZ01zgkW0fixture: it was created in another account, "
    "or in live mode, or the fixture was never sent to this emulator"
)
# A bookpay receiver's answers, one per outcome, in the order the events are replayed.
ANSWERS = [
    (200, {"received": True, "duplicate": False, "handled": True, "outcome": "fulfilled"}),
    (200, {"received": True, "duplicate": False, "handled": True,
           "outcome": "order ord_1 is refunded"}),
    (200, {"received": True, "duplicate": True, "handled": True}),
    (200, {"received": True, "duplicate": False, "handled": False,
           "outcome": f"ignored: {LONG_REASON}"}),
    (200, {"received": True, "duplicate": False, "handled": False,
           "outcome": f"ignored: {LONG_REASON}"}),
    (400, {"error": {"message": "Invalid Stripe-Signature: timestamp outside the tolerance",
                     "code": "invalid_signature"}}),
    (503, {"error": {"message": "Stripe is not answering", "code": "stripe_unavailable"}}),
]  # fmt: skip


@pytest.fixture
def bookpay_receiver(receiver, tmp_path):
    answers = itertools.cycle(ANSWERS)  # the same answers for every run of the events

    def script(request):
        status, body = next(answers)
        return status, {"Content-Type": "application/json"}, json.dumps(body).encode()

    events = tmp_path / "events.jsonl"
    events.write_bytes(
        b"\n".join(
            json.dumps(
                {
                    "id": f"evt_{n}",
                    "type": "payment_intent.succeeded",
                    "data": {"object": {"id": "pi_1"}},
                }
            ).encode()
            for n in range(len(ANSWERS))
        )
    )
    return receiver(script), events


def test_each_outcome_is_read_from_the_answer(bookpay_receiver):
    server, events = bookpay_receiver
    result = invoke("webhook", "replay", str(events), "--to", server.url, "--secret", SECRET,
                    "--json")  # fmt: skip
    assert result.exit_code == 6
    assert [(d["outcome"], d["reason"]) for d in json.loads(result.stdout)] == [
        ("fulfilled", "fulfilled"),
        ("updated", "order ord_1 is refunded"),
        ("duplicate", "already received, and handled"),
        ("ignored", LONG_REASON),
        ("ignored", LONG_REASON),
        ("refused", "400: Invalid Stripe-Signature: timestamp outside the tolerance"),
        ("failed", "503: Stripe is not answering"),
    ]


def test_the_summary_counts_outcomes_and_gives_the_reasons(bookpay_receiver):
    server, events = bookpay_receiver
    result = invoke("webhook", "replay", str(events), "--to", server.url, "--secret", SECRET)
    assert result.exit_code == 6
    lines = result.stdout.splitlines()
    summary = next(i for i, line in enumerate(lines) if line.startswith("7 deliveries"))
    assert lines[summary].endswith(
        ": 1 fulfilled, 1 updated, 1 duplicate, 2 ignored, 1 refused, 1 failed"
    )
    assert lines[summary + 1 :] == [
        "Ignored:",
        f"     2 x {LONG_REASON}",
        "Refused:",
        "     1 x 400: Invalid Stripe-Signature: timestamp outside the tolerance",
        "Failed:",
        "     1 x 503: Stripe is not answering",
    ]
    # In the table, the reason is there in full (a pipe is not cut to any width).
    assert lines[4].endswith(LONG_REASON)


@pytest.mark.parametrize("columns", [80, 100, 200])
def test_reasons_wrap_at_a_terminal_and_are_never_cut(bookpay_receiver, monkeypatch, columns):
    from bookpay.commands import output

    monkeypatch.setattr(output, "is_terminal", lambda stream=None: True)
    server, events = bookpay_receiver
    result = invoke("webhook", "replay", str(events), "--to", server.url, "--secret", SECRET,
                    env={"COLUMNS": str(columns)})  # fmt: skip
    table = result.stdout.split("\n\n")[0].splitlines()
    assert all(len(line) <= columns for line in table), result.stdout
    words = " ".join(" ".join(table).split())
    # Each row's reason, wrapped or under its row: all of it, in order.
    tokens = iter(words.split())
    for _ in range(2):
        assert all(any(t == word for t in tokens) for word in LONG_REASON.split())
    assert "payment_intent.succeeded" in words.split()


def test_quiet_prints_the_summary_and_the_failures_only(bookpay_receiver):
    server, events = bookpay_receiver
    result = invoke("webhook", "replay", str(events), "--to", server.url, "--secret", SECRET,
                    "--quiet")  # fmt: skip
    assert result.exit_code == 6
    lines = result.stdout.splitlines()
    assert lines[:2] == [
        "#6 evt_5 payment_intent.succeeded: refused: 400: Invalid Stripe-Signature: timestamp "
        "outside the tolerance",
        "#7 evt_6 payment_intent.succeeded: failed: 503: Stripe is not answering",
    ]
    assert lines[2] == ""
    assert lines[3].startswith("7 deliveries to ")
    assert "fulfilled" not in "\n".join(lines[:2])


def test_failures_only_lists_the_failed_deliveries(bookpay_receiver):
    server, events = bookpay_receiver
    result = invoke("webhook", "replay", str(events), "--to", server.url, "--secret", SECRET,
                    "--failures-only")  # fmt: skip
    rows = result.stdout.split("\n\n")[0].splitlines()[1:]
    assert [row.split()[:5] for row in rows] == [
        ["6", "evt_5", "payment_intent.succeeded", "400", "refused"],
        ["7", "evt_6", "payment_intent.succeeded", "503", "failed"],
    ]
    as_json = invoke("webhook", "replay", str(events), "--to", server.url, "--secret", SECRET,
                     "--failures-only", "--json")  # fmt: skip
    assert [d["outcome"] for d in json.loads(as_json.stdout)] == ["refused", "failed"]


def test_a_long_run_at_a_terminal_shows_a_progress_bar(receiver, files, monkeypatch):
    from bookpay.commands import output, webhook

    monkeypatch.setattr(output, "is_terminal", lambda stream=None: True)
    monkeypatch.setattr(webhook, "is_terminal", lambda stream=None: True)
    shown = []
    real = webhook._with_progress
    monkeypatch.setattr(
        webhook, "_with_progress", lambda r, d, stop: shown.append(len(d)) or real(r, d, stop)
    )
    server = receiver()
    short = invoke("webhook", "replay", str(files), "--to", server.url, "--secret", SECRET)
    assert short.exit_code == 0 and shown == []
    long = invoke("webhook", "replay", str(files), "--to", server.url, "--secret", SECRET,
                  "--repeat", "10", "--quiet")  # fmt: skip
    assert long.exit_code == 0 and shown == [20]


def test_a_fixture_can_be_named_instead_of_its_path(receiver):
    server = receiver()
    result = invoke("webhook", "replay", "payment_intent.succeeded", "charge.refunded.partial",
                    "--to", server.url, "--secret", SECRET, "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [d["type"] for d in json.loads(result.stdout)] == [
        "payment_intent.succeeded",
        "charge.refunded",
    ]
    assert (
        server.requests[0]["body"] == (FIXTURES_DIR / "payment_intent.succeeded.json").read_bytes()
    )


# Ctrl-C ----------------------------------------------------------------------------------------


def replay_process(tmp_path, *args):
    """`bookpay webhook replay ARGS` as a user runs it: a real process, to send Ctrl-C to."""
    import os
    import subprocess
    import sys

    return subprocess.Popen(
        [sys.executable, "-m", "bookpay", "webhook", "replay", *args, "--secret", SECRET],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "BOOKPAY_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"},
    )


def held_receiver(receiver, held: int):
    """A receiver that holds its ``held``-th request until ``release`` is set (each of the
    others takes 20 ms): (the receiver, ``arrived``: that request came, ``release``)."""
    arrived, release, numbers = threading.Event(), threading.Event(), itertools.count(1)

    def script(request):
        if next(numbers) == held:
            arrived.set()
            release.wait(20)
        else:
            time.sleep(0.02)
        return 200, {}, b'{"received": true}'

    return receiver(script), arrived, release


@pytest.mark.parametrize(("concurrency", "as_json"), [("1", False), ("3", True)])
def test_ctrl_c_stops_starting_deliveries_lets_those_under_way_finish_and_says_what_was_done(
    receiver, files, tmp_path, concurrency, as_json
):
    import signal

    server, arrived, release = held_receiver(receiver, held=5)
    process = replay_process(
        tmp_path, str(files), "--to", server.url, "--repeat", "100",
        "--concurrency", concurrency, *(["--json"] if as_json else []),
    )  # fmt: skip
    try:
        assert arrived.wait(30), "the receiver never got its 5th request"
        process.send_signal(signal.SIGINT)
        time.sleep(0.3)  # the delivery under way is waited for, not cut off
        release.set()
        out, err = process.communicate(timeout=30)
    finally:
        release.set()
        process.kill()
    made = len(server.requests)  # every request the receiver got is reported, none after
    assert 5 <= made < 200
    assert process.returncode == 130
    assert err.splitlines() == [
        f"Interrupted (Ctrl-C) after {made} of 200 deliveries: the other {200 - made} were not "
        "sent."
    ]
    if as_json:
        reported = json.loads(out)
        assert [d["index"] for d in reported] == list(range(made))
        assert all(d["status"] == 200 and d["ok"] for d in reported)
    else:
        lines = out.splitlines()
        assert len(lines) == 1 + made + 2  # the heading, a row each, a blank line, the summary
        assert lines[5].split()[:5] == ["5", "evt_A", "payment_intent.succeeded", "200", "accepted"]
        assert lines[-1].startswith(
            f"{made} of 200 deliveries (interrupted by Ctrl-C) to {server.url} in "
        )
        assert lines[-1].endswith(f": 0 fulfilled, 0 duplicate, 0 ignored, {made} accepted, "
                                  "0 refused, 0 failed")  # fmt: skip


def test_a_second_ctrl_c_stops_at_once(receiver, files, tmp_path):
    import signal

    server, arrived, release = held_receiver(receiver, held=3)
    process = replay_process(tmp_path, str(files), "--to", server.url, "--repeat", "100")
    try:
        assert arrived.wait(30), "the receiver never got its 3rd request"
        process.send_signal(signal.SIGINT)
        time.sleep(0.3)
        assert process.poll() is None  # waiting for the delivery under way (--timeout 30 s)
        process.send_signal(signal.SIGINT)
        started = time.monotonic()
        _out, err = process.communicate(timeout=10)
        took = time.monotonic() - started
    finally:
        release.set()
        process.kill()
    assert process.returncode == 130
    assert took < 5
    assert "Traceback" not in err
    assert len(server.requests) == 3
