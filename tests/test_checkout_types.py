"""checkout.js type-checks against Stripe.js's own declarations (@stripe/stripe-js).

`make test` installs TypeScript and @stripe/stripe-js from package-lock.json (`npm ci`) into
node_modules. Without node and npm this fails under CI=true and is skipped elsewhere, saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TSC = ROOT / "node_modules" / ".bin" / "tsc"
CHECKOUT_JS = ROOT / "bookpay" / "assets" / "static" / "checkout.js"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def tsc() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        _unavailable("node and npm are needed to type-check checkout.js (install Node.js 20+)")
    if not TSC.exists():
        _unavailable("TypeScript is not installed here: run `npm ci` (`make test` does)")
    return TSC


def run(tsc: Path, project: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(tsc), "-p", str(project)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_checkout_js_type_checks_against_the_stripe_js_declarations(tsc):
    result = run(tsc, ROOT / "tsconfig.json")
    assert result.returncode == 0, result.stdout + result.stderr
    config = json.loads((ROOT / "tsconfig.json").read_text())
    assert config["compilerOptions"]["checkJs"] is True
    assert config["compilerOptions"]["noEmit"] is True
    assert "bookpay/assets/static/checkout.js" in config["files"]


def test_a_wrong_call_into_stripe_js_fails_the_check(tsc, tmp_path):
    """The check is real: a misspelt confirmParams field or Element option is an error."""
    broken = tmp_path / "checkout.js"
    broken.write_text(
        CHECKOUT_JS.read_text()
        .replace("return_url: config.returnUrl", "returnUrl: config.returnUrl")
        .replace("layout: 'tabs'", "layout: 'tab'")
    )
    project = tmp_path / "tsconfig.json"
    project.write_text(
        json.dumps(
            {
                "extends": str(ROOT / "tsconfig.json"),
                "compilerOptions": {
                    "baseUrl": str(ROOT),
                    "paths": {"@stripe/stripe-js": ["node_modules/@stripe/stripe-js"]},
                },
                "files": [
                    str(ROOT / "types" / "stripe-global.d.ts"),
                    str(ROOT / "types" / "checkout-global.d.ts"),
                    str(ROOT / "types" / "fetch-global.d.ts"),
                    str(broken),
                ],
            }
        )
    )
    result = run(tsc, project)
    assert result.returncode != 0
    assert "'returnUrl' does not exist in type 'ConfirmPaymentData'" in result.stdout
    assert "layout" in result.stdout or "No overload matches this call" in result.stdout
