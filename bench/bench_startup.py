"""How fast `bookpay catalog list` starts, next to a hello-world Typer app, in the same run.

The two commands are run alternately (so load on this shared machine hits both alike), several
times each, with stdout to a pipe as in a script; the figure is the ratio of the medians.
Target: at most 1.2.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HELLO = """\
import typer

app = typer.Typer()


@app.command()
def hello() -> None:
    print("hello")


if __name__ == "__main__":
    app()
"""
RUNS = 21


def _time(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def main() -> dict:
    with tempfile.TemporaryDirectory() as folder:
        hello = Path(folder) / "hello.py"
        hello.write_text(HELLO)
        # The `bookpay` console script as installed next to this Python (python -m bookpay
        # where there is none), as a user types it.
        script = Path(sys.executable).with_name("bookpay")
        bookpay = [str(script)] if script.exists() else [sys.executable, "-m", "bookpay"]
        commands = {
            "hello-world Typer": [sys.executable, str(hello)],
            "bookpay catalog list": [*bookpay, "catalog", "list"],
            "bookpay --help": [*bookpay, "--help"],
        }
        for cmd in commands.values():  # warm the file cache and .pyc files
            _time(cmd)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(RUNS):
            for name, cmd in commands.items():
                samples[name].append(_time(cmd))
    medians = {name: statistics.median(times) for name, times in samples.items()}
    base = medians["hello-world Typer"]
    print(f"{'command':<24}{'median ms':>10}{'min ms':>9}{'ratio':>8}")
    for name, times in samples.items():
        median, fastest = medians[name] * 1000, min(times) * 1000
        print(f"{name:<24}{median:>10.1f}{fastest:>9.1f}{medians[name] / base:>8.2f}")
    ratio = medians["bookpay catalog list"] / base
    print(f"catalog list / hello-world Typer = {ratio:.2f} (target <= 1.20, {RUNS} runs each)")
    return {
        "runs": RUNS,
        "median_ms": {n: round(m * 1000, 1) for n, m in medians.items()},
        "catalog_list_ratio": round(ratio, 3),
    }


if __name__ == "__main__":
    main()
