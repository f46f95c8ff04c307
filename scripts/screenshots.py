"""Refresh docs/screenshots/{catalog,checkout,success,cart,checkout-cart}.png for the README.

Runs the browser tests that take them (a real server, the emulator, Debian's Chromium) with
UPDATE_SCREENSHOTS=1, which makes it copy them into docs/screenshots/.

Usage: .venv/bin/python scripts/screenshots.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

if __name__ == "__main__":
    env = {**os.environ, "UPDATE_SCREENSHOTS": "1"}
    tests = [
        "tests/browser/test_checkout.py::test_screenshots",
        "tests/browser/test_cart_browser.py::test_cart_screenshot",
    ]
    sys.exit(subprocess.call([sys.executable, "-m", "pytest", "-q", *tests], cwd=ROOT, env=env))
