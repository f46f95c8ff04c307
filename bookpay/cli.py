"""The `bookpay` command: global options, command groups, and where errors become exit codes.

Command groups live in ``bookpay/commands/``; each is a thin adapter over the core. Heavy imports
(stripe, bottle, waitress) happen inside the commands that need them, so `bookpay --help` and
`bookpay catalog list` start as fast as Typer allows.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from typer.core import TyperGroup

from bookpay import __version__
from bookpay.errors import BookpayError

if TYPE_CHECKING:
    from bookpay.config import Settings


class State:
    """What the root callback learned, shared with every command through ``ctx.obj``.

    A plain class, and Settings built only when a command asks for them: `catalog list` needs
    the catalog's path alone, and config's dataclasses cost start-up time to define.
    """

    def __init__(
        self, live: bool = False, debug: bool = False, catalog_path: Path | None = None
    ) -> None:
        self.live = live
        self.debug = debug
        self.catalog_path = catalog_path
        self._settings: Settings | None = None
        self._gateway = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from bookpay.config import Settings

            self._settings = Settings.from_env(
                allow_live=self.live, catalog_path=self.catalog_path, debug=self.debug
            )
        return self._settings

    def catalog(self):
        from bookpay.catalog import Catalog

        if self._settings is not None:
            return Catalog.load(self._settings.catalog_path)
        # The same path Settings would hold, without building them.
        from bookpay import environment

        return Catalog.load(environment.catalog_path(environment.read()[0], self.catalog_path))

    def gateway(self):
        """The Stripe gateway, once the settings have passed their checks (exit 5 otherwise).

        A secret key is all the API needs: the publishable key is checked only by `serve`.
        """
        from bookpay.payments import Gateway

        if self._gateway is None:
            self._gateway = Gateway(self.settings.check(serving=False))
        return self._gateway

    def close(self) -> None:
        """Close what the command opened (the gateway's connections), when it ends."""
        gateway, self._gateway = self._gateway, None
        if gateway is not None:
            gateway.close()


def state(ctx: typer.Context) -> State:
    root = ctx.find_root()
    if root.obj is None:
        root.obj = State()
    return root.obj


# Every command, in the order `bookpay --help` lists them. Each lives in bookpay/commands/NAME.py
# as a Typer `app`, imported only when that command runs (or help lists them all), so starting
# `bookpay catalog list` pays for the catalog module and nothing else.
COMMANDS = (
    "serve",
    "worker",
    "emulator",
    "catalog",
    "intent",
    "refund",
    "orders",
    "report",
    "ledger",
    "webhook",
    "config",
)
SINGLE_COMMANDS = ("serve", "worker", "emulator")


class BookpayGroup(TyperGroup):
    """Loads command modules on demand, and maps bookpay's exceptions to exit codes.

    Errors become a one-line message and the contract's exit code. Tracebacks are for --debug
    (or BOOKPAY_DEBUG=1) only, and Typer is told never to show local variables in them: they
    would show keys.
    """

    def list_commands(self, ctx) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx, name: str):
        if name not in COMMANDS:
            return None
        if name not in self.commands:
            from importlib import import_module

            from typer.main import get_command, get_group

            app = import_module(f"bookpay.commands.{name}").app
            # serve and emulator are single commands; the others stay groups even when they
            # have one subcommand (`refund create`), so later subcommands change nothing.
            command = get_command(app) if name in SINGLE_COMMANDS else get_group(app)
            command.name = name
            _plain_help(command)
            self.commands[name] = command
        return self.commands[name]

    def resolve_command(self, ctx, args):
        try:
            return super().resolve_command(ctx, args)
        except typer.TyperException as exc:  # "No such command": suggest from all of them
            from difflib import get_close_matches

            matches = get_close_matches(args[0], COMMANDS) if args else []
            if matches and "Did you mean" not in getattr(exc, "message", "Did you mean"):
                exc.message = f"{exc.message.rstrip('.')}. Did you mean {matches[0]!r}?"
            raise

    def invoke(self, ctx):
        try:
            result = super().invoke(ctx)
            if sys.stdout is not None:  # None: started with stdout closed (`>&-`)
                sys.stdout.flush()  # a closed pipe must show up here, not at interpreter exit
            return result
        except BookpayError as exc:
            if _debugging(ctx):
                # Where it came from, for the developer; the exit code stays the contract's.
                # (The standard traceback shows no local variables, which could hold keys.)
                import traceback

                traceback.print_exc(file=sys.stderr)
            from bookpay.errors import stripe_codes
            from bookpay.terminal import printable

            message = exc.message
            codes = stripe_codes(
                getattr(exc, "stripe_code", None), getattr(exc, "decline_code", None)
            )
            if exc.exit_code == 3 and getattr(exc, "http_status", None) == 402 and codes:
                # A decline's codes, as `intent show` gives them: "Your card was declined." is
                # all Stripe says to the customer of a stolen card (card_declined/stolen_card).
                message = f"{message} ({codes})"
            elif getattr(exc, "param", None) and not _names(message, exc.param):
                # Stripe's "Not a valid URL" says not which: the parameter it names does.
                message = f"{message.rstrip('.')} (parameter {exc.param})."
            if exc.hint:
                message = f"{message} {exc.hint}"
            # A message may list problems on lines of its own (an invalid catalog); every line
            # after the first is indented, so none can pass for another message.
            first, *rest = printable(message, keep_newlines=True).split("\n")
            text = "".join([first, *(f"\n  {line.lstrip()}" for line in rest if line.strip())])
            sys.stderr.write(f"Error: {text}\n")
            raise typer.Exit(exc.exit_code) from None
        except BrokenPipeError:
            # The reader went away (`bookpay ... | head`): stop quietly, as Unix tools do, and
            # keep Python from complaining again when it flushes stdout at exit.
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(141) from None
        except typer.BadParameter as exc:  # a subcommand's options, parsed under this invoke
            exc.message = _plain_choice(exc.message)
            raise  # Typer reports it itself, with exit code 2
        except (typer.Exit, typer.Abort, typer.TyperException, KeyboardInterrupt):
            raise  # usage errors and exits: Typer reports them itself, with exit code 2
        except Exception as exc:
            if isinstance(exc, OutputError):
                # Stdout closed from the start (`>&-`), or a full disk (`> /dev/full`), as
                # `cat` says it: a write error, exit 1.
                sys.stderr.write(f"Error: cannot write the output: {exc.strerror}.\n")
                raise typer.Exit(1) from None
            if _debugging(ctx):
                raise
            from bookpay.terminal import printable

            sys.stderr.write(
                f"Error: unexpected {type(exc).__name__}: {printable(exc)} "
                "(run with --debug or BOOKPAY_DEBUG=1 for the traceback)\n"
            )
            raise typer.Exit(1) from None
        finally:
            if isinstance(ctx.obj, State):
                ctx.obj.close()  # the gateway's connections: not left for the collector


def _plain_help(command) -> None:
    """Help as written: Click's own formatter, not Rich's.

    Rich reads "[default: ...]" in a help text as markup and drops it, and its option table cuts
    a long choice list mid-word; Click wraps prose at spaces and prints the rest verbatim.
    """
    command.rich_markup_mode = None
    if command.help and "\b\nExample:" not in command.help:
        # An example is a command line to copy: never rewrapped across lines.
        command.help = command.help.replace("\nExample: ", "\n\b\nExample: ")
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub)


_VALUE_ERROR = "Value error, "
_NOT_ONE_OF = " is not one of "


def _plain_choice(message: str) -> str:
    """A choice option's refusal in plain words: Typer checks the value through pydantic, which
    prefixes "Value error, " and quotes every choice ("'x' is not one of 'a', 'b'."); a user
    reads "'x' is not one of a, b." (the value keeps its quotes: it may be blank or hold a
    space)."""
    if not message.startswith(_VALUE_ERROR):
        return message
    message = message[len(_VALUE_ERROR) :]
    value, found, choices = message.rpartition(_NOT_ONE_OF)
    if not found or not choices.endswith("."):
        return message
    import ast

    try:
        names = ast.literal_eval(f"({choices[:-1]},)")
    except (ValueError, SyntaxError):
        return message
    if not all(isinstance(name, str) for name in names):
        return message
    return f"{value}{_NOT_ONE_OF}{', '.join(names)}."


def _names(message: str, param: str) -> bool:
    """Does Stripe's message name the parameter it refused (``return_url``, ``payment_intent``
    as "PaymentIntent"), in any case, with or without its underscores?"""

    def letters(text: str) -> str:
        return "".join(c for c in text.lower() if c.isalnum())

    return letters(param) in letters(message)


def _debugging(ctx) -> bool:
    obj = ctx.find_root().obj
    if not obj:
        return False
    if obj.debug:
        return True
    try:  # the settings may be what failed: reading them here must not fail a second time
        return bool(obj.settings.debug)
    except Exception:
        return False


app = typer.Typer(
    cls=BookpayGroup,
    name="bookpay",
    help="A Stripe Payment Intents bookshop you can drive from the command line.\n\n"
    "Runs against bookpay's local Stripe emulator unless STRIPE_SECRET_KEY is set.",
    no_args_is_help=True,
    # --install-completion and --show-completion (bash, zsh, fish); the values offered are
    # computed only when the shell asks, so they cost nothing at start-up.
    add_completion=True,
    rich_markup_mode=None,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"bookpay {__version__}\n")
        raise typer.Exit()


def _catalog_file(ctx: typer.Context, value: str | None) -> Path | None:
    """--catalog's file. A blank one (an empty shell variable) is a mistake: never the current
    folder (what Path("") names), nor the built-in catalog."""
    if value is None or ctx.resilient_parsing or value.strip():
        return None if value is None else Path(value)
    raise typer.BadParameter(f"expected a catalog file (JSON or TOML), got {value!r}.")


@app.callback()
def root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks for unexpected errors.")
    ] = False,
    live: Annotated[
        bool, typer.Option("--live", help="Allow live-mode keys (real cards, real money).")
    ] = False,
    catalog: Annotated[
        Path | None,
        typer.Option(
            "--catalog",
            help="Catalog file (JSON or TOML) instead of the built-in one.",
            path_type=str,  # as given, for _catalog_file: Path("") would be "."
            callback=_catalog_file,
        ),
    ] = None,
    utc: Annotated[
        bool,
        typer.Option("--utc", help="Show times in UTC instead of the local time zone."),
    ] = False,
) -> None:
    from bookpay.commands.output import show_times_in_utc

    show_times_in_utc(utc)
    ctx.obj = State(live=live, debug=debug, catalog_path=catalog)


class OutputError(OSError):
    """Standard output could not be written (closed, a full disk, an I/O error): said in one
    line by ``invoke``, where any other OSError is unexpected. A reader that went away is a
    BrokenPipeError, handled apart (exit 141)."""


class ClosedOutput:
    """Standard output closed from the start (`bookpay ... >&-`): Python leaves ``sys.stdout``
    None, and the first write failed as an "unexpected AttributeError". Writing here fails as a
    write to a closed descriptor does (EBADF), which ``invoke`` reports in one line; a server's
    console handler drops its lines and keeps serving."""

    closed = False

    def write(self, text: str) -> int:
        import errno

        raise OutputError(errno.EBADF, "standard output is closed")

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


class CheckedOutput:
    """Standard output whose write errors are an OutputError, so that `bookpay orders export >
    /dev/full` says "cannot write the output: No space left on device" rather than an
    unexpected OSError. Everything else is the stream's own."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputError(exc.errno, exc.strerror or str(exc)) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputError(exc.errno, exc.strerror or str(exc)) from None

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def main() -> None:
    import os

    sys.stdout = ClosedOutput() if sys.stdout is None else CheckedOutput(sys.stdout)
    if sys.stderr is None:  # `2>&-`: no message can be seen, but the exit code stays the contract's
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
    app(prog_name="bookpay")
