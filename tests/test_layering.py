"""DESIGN.md's rules of the house, checked rather than hoped for."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bookpay"
# Everything but the two adapters (and the entry point) is core.
ADAPTERS = {"cli.py", "server.py", "__main__.py"}
CORE = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ADAPTERS)


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", CORE)
def test_core_imports_no_typer_rich_or_bottle(module):
    path = PACKAGE / module
    assert not imported_modules(path) & {"typer", "rich", "bottle", "click"}


def test_the_core_is_all_there():
    assert {"catalog.py", "config.py", "errors.py", "payments.py"} <= set(CORE)
    assert {"quote.py", "cart.py", "checkout.py", "report.py", "orderlines.py"} <= set(CORE)


def test_only_the_chart_writer_imports_matplotlib():
    """A heavy, optional import: made only when `report sales --chart` asks for a chart."""
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "matplotlib" in imported_modules(path)
        and path.relative_to(PACKAGE).as_posix() != "commands/chart.py"
    ]
    assert offenders == []


def test_only_the_gateway_and_the_webhook_module_import_stripe():
    """...and the testing toolkit, which hands tests a stripe-python client of their own (for
    code that uses stripe-python directly) and stamps its events with stripe's API version."""
    toolkit = {"testing/_emulator.py", "testing/_webhooks.py"}
    offenders = [
        rel
        for path in PACKAGE.rglob("*.py")
        if "stripe" in imported_modules(path)
        and path.name not in {"payments.py", "webhooks.py"}
        and (rel := str(path.relative_to(PACKAGE))) not in toolkit
    ]
    assert offenders == []


def test_the_emulator_is_reached_only_over_http():
    """Nothing outside the emulator imports it, except what starts it: the commands, the
    shop's launcher and the testing toolkit (which then drives it over HTTP too)."""
    allowed = {
        "commands/emulator.py",
        "commands/serve.py",
        "web/emulator_link.py",
        "testing/_emulator.py",
    }
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = str(path.relative_to(PACKAGE))
        if rel.startswith("emulator/") or rel in allowed:
            continue
        source = path.read_text()
        if "bookpay.emulator" in source:
            offenders.append(rel)
    assert offenders == []


def test_only_the_postgresql_backend_imports_psycopg():
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if imported_modules(path) & {"psycopg", "psycopg_pool"}
        and path.relative_to(PACKAGE).as_posix() != "ledger/postgres.py"
    ]
    assert offenders == []


def test_the_server_does_not_import_its_launcher():
    """web/launch.py builds the server; server.py must not import it back (no import circle)."""
    source = (PACKAGE / "server.py").read_text()
    assert "launch" not in imported_modules_full(PACKAGE / "server.py")
    assert "bookpay.web.launch" not in source


def imported_modules_full(path: Path) -> set[str]:
    """Every module path a file imports, in full (``bookpay.web.launch``), and each last part."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names | {name.rsplit(".", 1)[-1] for name in names}


def test_no_global_stripe_state():
    for path in PACKAGE.rglob("*.py"):
        assert "stripe.api_key" not in path.read_text(), path


def loaded_modules(*args: str) -> set[str]:
    code = (
        "import sys\n"
        "from bookpay.cli import app\n"
        "try:\n"
        f"    app({list(args)!r}, prog_name='bookpay')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(done.stderr.split())


@pytest.mark.parametrize("args", [["--help"], ["catalog", "list"], ["catalog", "list", "--json"]])
def test_fast_commands_import_neither_stripe_nor_bottle(args):
    modules = loaded_modules(*args)
    assert "bookpay.catalog" in modules or args == ["--help"]
    heavy = {"stripe", "bottle", "waitress", "psycopg", "psycopg_pool", "sqlite3"}
    assert not {m for m in modules if m.split(".")[0] in heavy}


def test_catalog_list_loads_only_what_it_uses():
    """`bookpay catalog list` starts within 1.2x of a hello-world Typer app (bench startup).

    It reads its catalog path without building Settings (config's dataclasses, the ledger's
    location), prints a table without json, and compiles no id pattern. These stay loaded on
    demand: a module-level import of any of them puts its cost back on every start-up.
    """
    modules = loaded_modules("catalog", "list")
    assert "bookpay.catalog" in modules and "bookpay.environment" in modules
    lazy = {"bookpay.config", "bookpay.ledger", "bookpay.ledger.location", "json", "dotenv"}
    assert modules & lazy == set()
    assert "json" in loaded_modules("catalog", "list", "--json")


def test_id_patterns_compile_on_first_use():
    """params holds its id patterns as text; re compiles them when an id is checked."""
    from bookpay.commands import params

    assert isinstance(params.INTENT_ID, str) and isinstance(params.ORDER_ID, str)


def test_a_closed_pipe_ends_quietly():
    """`bookpay catalog list | head -0`: no traceback, no "unexpected error" message."""
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before bookpay writes a byte
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bookpay", "catalog", "list"],
            # Buffered stdout, as in most shells: the failed write comes at the final flush.
            env={k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"},
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == 141


def test_debug_tracebacks_never_show_local_variables():
    """--debug shows where it broke, but not the values of locals: they could be keys."""
    code = (
        "import sys\n"
        "from bookpay import catalog\n"
        "def load(path):\n"
        "    api_key = 'sk_test_TOPSECRETVALUE1234'\n"
        "    raise RuntimeError('boom')\n"
        "catalog.Catalog.load = staticmethod(load)\n"
        "from bookpay.cli import app\n"
        "app(['--debug', 'catalog', 'list'], prog_name='bookpay')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "RuntimeError" in done.stderr and "boom" in done.stderr
    assert "TOPSECRETVALUE" not in done.stderr + done.stdout


# A path into the folder beside the repository, or its name as a string: what a fresh clone
# does not have.
_BESIDE = re.compile(r"""\.\.[/\\]shared\b|["']shared["']""")


def test_the_suite_needs_nothing_beside_the_repository():
    """A fresh clone is all `make test` gets: no test, benchmark or script reads the folder of
    design notes beside the repository."""
    root = PACKAGE.parent
    offenders = []
    for folder in ("bookpay", "tests", "bench", "scripts"):
        for path in (root / folder).rglob("*"):
            if path.suffix not in {".py", ".js", ".sh", ""} or not path.is_file():
                continue
            if path == Path(__file__).resolve():
                continue  # this test names what it looks for
            text = path.read_text(errors="replace")
            if _BESIDE.search(text):
                offenders.append(str(path.relative_to(root)))
    assert offenders == [], "vendor what these need under tests/ instead"
