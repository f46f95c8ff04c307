"""The README's "Testing your own Stripe integration" examples, run as a reader would run them.

Every ```python block there that starts with `# NAME.py` is written to a fresh folder under that
name, and pytest (with bookpay's plugin, as installed) runs the folder: each example test must
pass. A change that breaks an example breaks this test, so the README stays true.
"""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Testing your own Stripe integration"


def example_files() -> dict[str, str]:
    text = README.read_text()
    assert SECTION in text
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    files = {}
    for block in re.findall(r"```python\n(.*?)```", section, re.S):
        named = re.fullmatch(r"# (\w+\.py)", block.splitlines()[0])
        if named:
            files[named.group(1)] = block
    return files


def test_the_readme_has_both_examples_and_the_unittest_one():
    files = example_files()
    assert {"billing.py", "test_billing.py", "test_bookshop.py", "test_with_unittest.py"} <= set(
        files
    )
    assert "import stripe" in files["billing.py"]  # the reader's own code: stripe-python
    assert (
        "bookpay_shop" in files["test_bookshop.py"] and "bookpay_cli" in files["test_bookshop.py"]
    )


def test_the_readme_examples_pass(pytester):
    files = example_files()
    for name, code in files.items():
        (pytester.path / name).write_text(code)
    tests = sum(
        code.count("\ndef test_") + code.count("\n    def test_") for code in files.values()
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=tests)
    assert tests >= 8
