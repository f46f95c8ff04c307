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
    rows = settings.describe()
    if as_json:
        emit_json(
            {
                "mode": settings.mode,
                "settings": {name: value for name, value, _ in rows if name != "mode"},
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
