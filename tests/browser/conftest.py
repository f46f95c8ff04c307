"""Playwright fixtures for every browser test.

One headless Debian Chromium for the session (its headless shell when installed; never a
browser downloaded by `playwright install`), a fresh context per test, and a screenshot of each
page of a failing test in `test-artifacts/screenshots/<test name>.png`, so a CI failure can be
looked at, not guessed at.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DEFAULT_TIMEOUT_MS = 10_000

_REPORTS = pytest.StashKey[dict]()


# Debian's headless build of Chromium first (package chromium-headless-shell: the same Blink
# and V8 without the browser's window machinery), which drives the suite's pages on less than
# half the CPU of the whole browser's headless mode; else Debian's chromium itself.
CHROMIUM_NAMES = ("chromium-headless-shell", "chromium")


def chromium_path() -> str | None:
    path = os.environ.get("BOOKPAY_CHROMIUM") or next(
        filter(None, map(shutil.which, CHROMIUM_NAMES)), None
    )
    return path if path and os.path.isfile(path) else None


def _unavailable(reason: str) -> None:
    """CI must run the browser tests, so there a missing browser fails; locally it skips."""
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    path = chromium_path()
    if path is None:
        _unavailable(
            "Chromium not found: install Debian's chromium-headless-shell or chromium "
            "(`make chromium`) or point BOOKPAY_CHROMIUM at a Chromium binary"
        )
    from playwright.sync_api import Error, sync_playwright

    playwright = sync_playwright().start()
    try:
        launched = playwright.chromium.launch(
            executable_path=path, headless=True, args=CHROMIUM_ARGS
        )
    except Error as exc:
        playwright.stop()
        _unavailable(f"Chromium at {path} did not start: {exc}")
    try:
        yield launched
    finally:
        launched.close()
        playwright.stop()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Keep each phase's report on the item, so fixtures can tell in teardown that a test failed."""
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


def _failed(item: pytest.Item) -> bool:
    return any(report.failed for report in item.stash.get(_REPORTS, {}).values())


def _save_screenshots(context: BrowserContext, item: pytest.Item) -> None:
    folder = item.config.rootpath / "test-artifacts" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^\w.-]+", "_", item.name).strip("_")
    for i, page in enumerate(context.pages):
        path = folder / (f"{name}.png" if i == 0 else f"{name}-{i + 1}.png")
        try:
            page.screenshot(path=str(path), full_page=True, timeout=5_000)
        except Exception as exc:  # a crashed or closed page must not hide the test's own failure
            print(f"screenshot of {page.url} failed: {exc}")


@pytest.fixture
def context(browser: Browser, request: pytest.FixtureRequest) -> Iterator[BrowserContext]:
    """A new browser context (cookies, storage, pages) for each test."""
    ctx = browser.new_context(
        viewport={"width": 1000, "height": 900}, locale="en-US", timezone_id="UTC"
    )
    ctx.set_default_timeout(DEFAULT_TIMEOUT_MS)
    ctx.set_default_navigation_timeout(DEFAULT_TIMEOUT_MS)
    try:
        yield ctx
    finally:
        if _failed(request.node):
            _save_screenshots(ctx, request.node)
        ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()
