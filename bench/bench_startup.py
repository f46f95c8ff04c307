"""How fast `bookpay catalog list` starts, next to a hello-world Typer app, in the same run.

The two commands are run alternately (so load on this shared machine hits both alike), several
times each, with stdout to a pipe as in a script; the figure is the ratio of the medians.
Target: at most 1.2. The CPU time (user + system) each took is shown beside it: on a busy machine
it moves less than the wall-clock time.

Both are measured as installed: the warm-up writes bookpay's .pyc files even where
PYTHONDONTWRITEBYTECODE is set (pip compiles Typer's at install time, but not an editable
checkout's), so neither side pays for compiling its source on every run.
"""

from __future__ import annotations

import os
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


def _time(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds) of one run."""
    started = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    child.stdout.read()
    child.stdout.close()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed")
    return wall, usage.ru_utime + usage.ru_stime


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
        writing = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        for cmd in commands.values():  # warm the file cache and write the .pyc files
            _time(cmd, writing)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(RUNS):
            for name, cmd in commands.items():
                wall, used = _time(cmd)
                samples[name].append(wall)
                cpu[name].append(used)
    medians = {name: statistics.median(times) for name, times in samples.items()}
    cpu_medians = {name: statistics.median(times) for name, times in cpu.items()}
    base, cpu_base = medians["hello-world Typer"], cpu_medians["hello-world Typer"]
    print(f"{'command':<24}{'median ms':>10}{'min ms':>9}{'ratio':>8}{'cpu ms':>9}{'ratio':>8}")
    for name, times in samples.items():
        median, fastest = medians[name] * 1000, min(times) * 1000
        used = cpu_medians[name]
        print(
            f"{name:<24}{median:>10.1f}{fastest:>9.1f}{medians[name] / base:>8.2f}"
            f"{used * 1000:>9.1f}{used / cpu_base:>8.2f}"
        )
    ratio = medians["bookpay catalog list"] / base
    print(f"catalog list / hello-world Typer = {ratio:.2f} (target <= 1.20, {RUNS} runs each)")
    return {
        "runs": RUNS,
        "median_ms": {n: round(m * 1000, 1) for n, m in medians.items()},
        "cpu_median_ms": {n: round(m * 1000, 1) for n, m in cpu_medians.items()},
        "catalog_list_ratio": round(ratio, 3),
        "catalog_list_cpu_ratio": round(cpu_medians["bookpay catalog list"] / cpu_base, 3),
    }


if __name__ == "__main__":
    main()
