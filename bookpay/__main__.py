"""The `bookpay` command (and `python -m bookpay`).

Kept apart from bookpay.cli so that a Ctrl-C while the command is still importing its modules
(Typer, Click, the commands: the first tenth of a second) ends it as a Ctrl-C during a command
does, with exit code 130 and nothing on stderr, instead of Python's traceback of the import.
"""

import sys


def main() -> None:
    try:
        from bookpay.cli import main as run
    except KeyboardInterrupt:
        sys.exit(130)
    run()


if __name__ == "__main__":
    main()
