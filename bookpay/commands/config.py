"""`bookpay config`: what bookpay will use, with secrets masked, and what is wrong with it."""

from __future__ import annotations

import typer

from bookpay.cli import state
from bookpay.commands.output import JsonOption, emit_json, print_table

app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)


@app.command("check")
def check(
    ctx: typer.Context,
    as_json: JsonOption = False,
) -> None:
    """Show the effective settings (secrets masked) and every problem; exit 5 if there is one.

    Example: bookpay config check --json
    """
    settings = state(ctx).settings
    problems = settings.problems()
    if settings.catalog_path is not None:
        from bookpay.catalog import Catalog
        from bookpay.errors import ConfigError

        try:
            Catalog.load(settings.catalog_path)
        except ConfigError as exc:
            problems.extend(exc.problems or [exc.message])
    from bookpay.ledger.check import describe_ledger

    ledger = describe_ledger(settings)
    if ledger["problem"]:
        problems.append(f"the orders ledger: {ledger['problem']}")
    rows = settings.describe() + _ledger_rows(ledger)
    if as_json:
        emit_json(
            {
                "mode": settings.mode,
                "settings": {
                    name: value for name, value, _ in settings.describe() if name != "mode"
                },
                "ledger": ledger,
                "problems": problems,
                "ok": not problems,
            }
        )
    else:
        print_table(["Setting", "Value", "Source"], [list(row) for row in rows])
        if problems:
            print(f"\n{len(problems)} problem{'s' if len(problems) != 1 else ''}:")
            for problem in problems:
                print(f"  - {problem}")
        else:
            print("\nNo problems found.")
    if problems:
        raise typer.Exit(5)


def _ledger_rows(ledger: dict) -> list[tuple[str, str, str]]:
    """The database lines: which, its schema version, whether it answers (password masked)."""
    version = ledger["schema_version"]
    if not ledger["reachable"]:
        reach, schema = f"no: {ledger['problem']}", "unknown"
    else:
        reach = "yes"
        if version is None:
            schema = "none yet (`bookpay serve` creates it)"
        elif version < ledger["current_version"]:
            schema = f"{version} (migrated to {ledger['current_version']} at the next start)"
        else:
            schema = (
                f"{version} (up to date)" if version == ledger["current_version"] else str(version)
            )
    return [
        ("ledger", f"{ledger['backend'] or '?'}: {ledger['where']}", ""),
        ("ledger schema", schema, ""),
        ("ledger reachable", reach, ""),
    ]
