"""`bookpay config`: what bookpay will use, with secrets masked, and what is wrong with it."""

from __future__ import annotations

import re
import sys
from typing import Annotated

import typer

from bookpay.cli import state
from bookpay.commands.output import JsonOption, emit_json, print_table
from bookpay.config import Finding, Settings, data_dir_problem
from bookpay.terminal import printable

app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)


@app.command("check", short_help="Show the settings, and every problem with its fix.")
def check(
    ctx: typer.Context,
    offline: Annotated[
        bool,
        typer.Option("--offline", help="Skip the request that checks Stripe (or the emulator)."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Show the effective settings (secrets masked), every problem and warning with its fix.

    Besides the values it checks the data folder, and asks Stripe (or the emulator) whether it
    answers and takes the key. Exits 5 if there is a problem; warnings alone exit 0.

    Example: bookpay config check --json
    """
    settings = state(ctx).settings
    findings = settings.findings()
    if settings.catalog_path is not None:
        from bookpay.catalog import Catalog
        from bookpay.errors import ConfigError

        try:
            catalog = Catalog.load(settings.catalog_path)
        except ConfigError as exc:
            fix = "correct the catalog file, or unset BOOKPAY_CATALOG for the built-in one"
            findings += [Finding(problem, fix) for problem in exc.problems or [exc.message]]
        else:
            fix = "raise the book's price in the catalog file, or sell it only with others"
            findings += [
                Finding(f"the catalog: {warning}", fix, level="warning", blocks="")
                for warning in catalog.warnings()
            ]
    if settings.smtp_url and not any("BOOKPAY_SMTP_URL" in f.message for f in findings):
        # What the receipt sender refuses when it starts (a from= that is not one address, say)
        # is said here too, without connecting to the server.
        from bookpay.errors import ConfigError
        from bookpay.mailer import SmtpTransport

        try:
            SmtpTransport(settings.smtp_url)
        except ConfigError as exc:
            findings.append(
                Finding(
                    exc.message.rstrip("."),
                    "correct BOOKPAY_SMTP_URL, or unset it to write receipts to the outbox folder",
                    blocks="",
                )
            )
    from bookpay.ledger.check import describe_ledger

    ledger = describe_ledger(settings)
    # A ledger in a data folder that is already a problem (a file, say) fails for that reason:
    # the data folder's finding says it once, with its fix.
    in_bad_folder = not settings.database_url and data_dir_problem(settings.data_dir)
    if ledger["problem"] and not in_bad_folder:
        findings.append(
            Finding(
                f"the orders ledger: {ledger['problem']}",
                "check BOOKPAY_DATABASE_URL (or BOOKPAY_DATA_DIR for SQLite) and that the "
                "database server answers",
                blocks="",
            )
        )
    # The network is asked only when the values it needs are sound (else it would only repeat
    # them).
    if not offline and not any(f.blocks == "commands" for f in findings):
        reached = reachability(settings)
        if reached:
            findings.append(reached)
        elif settings.tax_enabled and not settings.is_emulated:
            # The emulator calculates with its TEST rates; a Stripe account needs Stripe Tax.
            tax = tax_readiness(settings)
            if tax:
                findings.append(tax)
    problems = [f for f in findings if f.level == "problem"]
    warnings = [f for f in findings if f.level == "warning"]
    rows = settings.describe() + _ledger_rows(ledger)
    if as_json:
        emit_json(
            {
                "mode": settings.mode,
                "tax": settings.tax,
                "settings": {
                    name: value for name, value, _ in settings.describe() if name != "mode"
                },
                "ledger": ledger,
                "problems": [f.message for f in problems],
                "warnings": [f.message for f in warnings],
                "findings": [f.to_dict() for f in findings],
                "ok": not problems,
            }
        )
    else:
        print_table(["Setting", "Value", "Source"], [list(row) for row in rows])
        for title, group in (("problem", problems), ("warning", warnings)):
            if group:
                sys.stdout.write(f"\n{_count(len(group), title)}:\n")
                for finding in group:
                    sys.stdout.write(f"  - {printable(finding.message)}\n")
                    sys.stdout.write(f"    Fix: {printable(finding.fix)}\n")
        if not problems:
            sys.stdout.write("\nNo problems found.\n")
    if problems:
        raise typer.Exit(5)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


def reachability(settings: Settings) -> Finding | None:
    """Whether Stripe (or the emulator) answers and takes the key, as a finding when it does not."""
    from bookpay.errors import ConfigError, PaymentError, StripeUnavailable
    from bookpay.payments import Gateway

    url = settings.emulator_url if settings.is_emulated else "https://api.stripe.com"
    try:
        Gateway(settings).ping()
    except StripeUnavailable as exc:
        error = network_error(exc)
        if settings.is_emulated:
            return Finding(
                f"the emulator at {url} cannot be reached ({error})",
                "start it with `bookpay emulator` (`bookpay serve` starts its own), or point "
                "BOOKPAY_EMULATOR_URL at a running one",
                level="warning",
            )
        fix = "check the network connection and any HTTPS_PROXY, and https://status.stripe.com"
        if exc.hint and "HTTPS_PROXY" in exc.hint:  # the proxy refused the call: its own fix
            fix = exc.hint[:1].lower() + exc.hint[1:].rstrip(".")
        return Finding(f"Stripe at {url} cannot be reached ({error})", fix)
    except ConfigError as exc:
        fix = exc.hint if exc.hint and "config check" not in exc.hint else ""
        return Finding(exc.message, fix or "copy STRIPE_SECRET_KEY again from the Dashboard")
    except PaymentError as exc:
        if settings.is_emulated:  # it takes any test key, to read anything: not the emulator
            return Finding(
                f"the emulator at {url} refused a request to list PaymentIntents: {exc.message}",
                "check that BOOKPAY_EMULATOR_URL is the emulator's address (the one `bookpay "
                "emulator` prints), not another server's",
                level="warning",
            )
        return Finding(
            f"{url} refused a request to list PaymentIntents: {exc.message}",
            "check that the key may read PaymentIntents",
            level="warning",
        )
    return None


def tax_readiness(settings: Settings) -> Finding | None:
    """Whether Stripe Tax can calculate on the account (its tax settings ``active``), as a
    finding when it cannot: with BOOKPAY_TAX=stripe every checkout would fail at its address."""
    from bookpay.errors import BookpayError, ConfigError, StripeUnavailable
    from bookpay.payments import PERMISSION_HINT, Gateway
    from bookpay.pricing import TAX_FIX

    fix = TAX_FIX[:1].lower() + TAX_FIX[1:].rstrip(".")
    try:
        found = Gateway(settings).tax_settings()
    except BookpayError as exc:
        if isinstance(exc, ConfigError) and exc.hint == PERMISSION_HINT:
            first = "give the key read access to Tax settings (rak_tax_settings_read)"
        elif isinstance(exc, StripeUnavailable):
            first = "try again when Stripe answers (https://status.stripe.com)"
        else:
            first = (
                "look at the account's tax settings in the Dashboard "
                "(https://dashboard.stripe.com/settings/tax)"
            )
        return Finding(
            f"Stripe Tax's settings could not be read ({exc.message.rstrip('.')}): whether "
            "checkouts can work out their tax is not known",
            f"{first}, or set BOOKPAY_TAX=off to sell without tax",
            level="warning",
            blocks="",
        )
    status = found.get("status")
    if status == "active":
        return None
    pending = (found.get("status_details") or {}).get("pending") or {}
    missing = ", ".join(pending.get("missing_fields") or [])
    return Finding(
        f"Stripe Tax is not active on this Stripe account (its tax settings are {status}"
        + (f", missing {missing}" if missing else "")
        + "): with BOOKPAY_TAX=stripe every checkout fails at its address step",
        fix,
        blocks="",
    )


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


def network_error(exc: BaseException) -> str:
    """The short reason a connection failed ("Connection refused"), from stripe's long message."""
    cause = exc.__cause__ or exc
    text = str(cause)
    found = _ERRNO.search(text)
    if found:
        return found.group(1).strip()
    if "timed out" in text.lower():
        return "timed out"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[-1] if lines else type(cause).__name__)[:200]


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
