"""What the emulator says on its console under load: a warning that repeats (every request
meeting a full connection limit) shows once with a count, as `bookpay serve` shows waitress's;
for `bookpay emulator` on its own and for the emulator `bookpay serve` starts in its process."""

from __future__ import annotations

import logging

import pytest

LIMIT = "the emulator has %d connections open, its limit: new ones wait until one closes"  # httpd's


def flood() -> None:
    log = logging.getLogger("bookpay.emulator.httpd")
    for count in range(1000):
        log.warning(LIMIT, count)
    logging.getLogger("bookpay.emulator.clock").error("a failed timer always shows")


def test_bookpay_emulator_holds_back_repeated_warnings(capsys: pytest.CaptureFixture) -> None:
    from bookpay.commands.emulator import _remove, _warnings_handler

    handler = _warnings_handler()
    try:
        flood()
    finally:
        _remove(handler)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2, lines
    assert "WARNING bookpay.emulator.httpd: the emulator has 0 connections open" in lines[0]
    assert "a failed timer always shows" in lines[1]
    assert all(handler not in logging.getLogger(name).handlers for name in ("bookpay", "waitress"))


def test_the_emulator_in_serves_process_is_held_back_too(capsys: pytest.CaptureFixture) -> None:
    from bookpay.commands.serve import _configure_logging, _remove_handler

    handlers = _configure_logging(debug=False)
    try:
        flood()
    finally:
        _remove_handler(handlers)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2, lines
    assert "the emulator has 0 connections open" in lines[0] and "timer" in lines[1]
