"""`bookpay ledger`: copy the orders ledger to another database, and check it."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from bookpay.cli import state
from bookpay.commands.output import JsonOption, emit_json, info, is_terminal, print_table
from bookpay.commands.paging import not_blank

app = typer.Typer(help="Copy and check the orders ledger.", no_args_is_help=True)


def _source(ctx: typer.Context):
    from bookpay.errors import NotFound
    from bookpay.ledger import LedgerMissing, locate, open_ledger

    settings = state(ctx).settings
    try:
        return open_ledger(settings, create=False)
    except LedgerMissing:
        where = locate(settings.database_url, settings.data_dir).masked
        raise NotFound(f"There is no ledger at {where} yet.", code="no_ledger") from None


@app.command("copy", short_help="Copy the ledger into another database and compare counts.")
def copy(
    ctx: typer.Context,
    to: Annotated[
        str,
        typer.Option(
            "--to",
            metavar="URL",
            callback=not_blank,
            help="The target: postgresql://user:password@host/db or sqlite:////path.sqlite3.",
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Copy this shop's ledger into another database, then compare the counts.

    The ledger copied is the one BOOKPAY_DATABASE_URL names (or SQLite in the data folder).
    Running it again brings the target up to date and copies nothing twice.

    Example: bookpay ledger copy --to postgresql://shop@db.internal:5432/bookpay
    """
    from bookpay.errors import BookpayError, ConfigError, UsageError
    from bookpay.ledger import Ledger, LedgerUnavailable, locate
    from bookpay.ledger.copy import copy_ledger, itself

    settings = state(ctx).settings
    try:
        target_location = locate(to, settings.data_dir, setting="--to")
    except ConfigError as exc:  # a URL given on the command line: a bad option, not a setting
        raise UsageError(exc.message, hint=exc.hint) from None
    with _source(ctx) as source:
        if source.location.same_place(target_location):
            raise itself()
        # Migrated by the copy, once it is known not to be another shop's.
        try:
            target = Ledger.at(target_location, settings.data_dir, migrate=False)
        except LedgerUnavailable as exc:
            exc.hint = "Check the URL given to --to." if exc.hint else None
            raise
        # A line rewritten in place: for a person at a terminal, not for a log.
        showing = not as_json and is_terminal(sys.stderr)
        with target:
            report = copy_ledger(
                source, target, progress=_progress(target.where) if showing else None
            )
    rows = [
        [table, str(report.copied[table]), str(report.source[table]), str(report.target[table])]
        for table in report.copied
    ]
    if as_json:
        emit_json(
            {
                "from": source.where,
                "to": target_location.masked,
                "tables": {
                    table: {
                        "copied": report.copied[table],
                        "source": report.source[table],
                        "target": report.target[table],
                    }
                    for table in report.copied
                },
                "matches": report.matches,
            }
        )
    else:
        if showing:
            sys.stderr.write("\n")  # ends the progress line
        print_table(["Table", "Copied", "Source", "Target"], rows, justify_right=["Copied"])
    if not report.matches:
        raise BookpayError(
            "The counts differ: the target has rows the source does not (or something wrote "
            "to the target during the copy). Copy into an empty database, or into an earlier "
            "copy of this ledger that nothing else writes to.",
            code="copy_mismatch",
        )
    if not as_json:
        info(f"Copied {source.where} to {target_location.masked}; the counts match.")
        if "BOOKPAY_SHOP_ID" not in settings.sources:
            info(
                f"This shop's id, {settings.shop_id}, is derived from where its ledger is. "
                f"Set BOOKPAY_SHOP_ID={settings.shop_id} before pointing BOOKPAY_DATABASE_URL "
                "at the copy, so payments already under way stay this shop's."
            )


def _progress(where: str):
    def show(table: str, count: int) -> None:
        sys.stderr.write(f"\rCopying to {where}: {table} {count}   ")
        sys.stderr.flush()

    return show


@app.command("check", short_help="Check the database and the ledger's invariants.")
def check(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Run the database's integrity checks and the ledger's own invariants; exit 1 on a problem.

    Invariants: one fulfilment per fulfilled order, one receipt per fulfilment, statuses
    known and never behind an event the shop handled.

    Example: bookpay ledger check
    """
    from bookpay.ledger.check import check_ledger

    with _source(ctx) as ledger:
        report = check_ledger(ledger)
        where, kind, version = ledger.where, ledger.kind, ledger.schema_version
        counts = ledger.counts()
    if as_json:
        emit_json(
            {
                "ledger": where,
                "backend": kind,
                "schema_version": version,
                "counts": counts,
                "integrity": report.integrity,
                "problems": {f.name: {"count": f.count, "examples": f.examples}
                             for f in report.problems},
                "warnings": {f.name: {"count": f.count, "examples": f.examples}
                             for f in report.warnings},
                "ok": report.ok,
            }
        )  # fmt: skip
    else:
        sys.stdout.write(f"Ledger {where} ({kind}, schema {version}): ")
        sys.stdout.write(", ".join(f"{count} {table}" for table, count in counts.items()) + "\n")
        sys.stdout.write(
            "Database integrity: "
            + ("ok" if not report.integrity else "; ".join(report.integrity))
            + "\n"
        )
        for finding in report.problems:
            sys.stdout.write(_line(finding, "ok"))
        for finding in report.warnings:
            sys.stdout.write(_line(finding, "none", label="warning: "))
    if not report.ok:
        raise typer.Exit(1)


def _line(finding, when_none: str, label: str = "") -> str:
    if not finding.count:
        return f"  {finding.name}: {when_none}\n"
    more = ", ..." if finding.count > len(finding.examples) else ""
    return f"  {label}{finding.name}: {finding.count} ({', '.join(finding.examples)}{more})\n"
