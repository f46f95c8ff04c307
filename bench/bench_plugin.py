"""What bookpay's pytest plugin adds to pytest's start-up, side by side in one run.

Run: ``python -m bench plugin``. In an empty folder, alternately, 21 times each
(``BENCH_PLUGIN_RUNS``): ``pytest
--version`` and ``pytest --co -q`` on one trivial test (a start-up that loads every plugin),
with the plugin as installed and with ``-p no:bookpay``; and, when ``BENCH_PYTHON_WITHOUT_BOOKPAY``
names a Python whose environment has pytest but no bookpay, the same with that one. The figure
is the ratio of the medians. Target: no measurable difference (at most 1.05).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = int(os.environ.get("BENCH_PLUGIN_RUNS", "21"))
TRIVIAL = "def test_nothing():\n    pass\n"


def _time(cmd: list[str], cwd: str) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def main() -> dict:
    without = os.environ.get("BENCH_PYTHON_WITHOUT_BOOKPAY")
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "test_one.py").write_text(TRIVIAL)
        pytest = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
        commands = {
            "--version, plugin": [*pytest, "--version"],
            "--version, -p no:bookpay": [*pytest, "--version", "-p", "no:bookpay"],
            "--co, plugin": [*pytest, "--co", "-q", "test_one.py"],
            "--co, -p no:bookpay": [*pytest, "--co", "-q", "test_one.py", "-p", "no:bookpay"],
        }
        if without:
            other = [without, "-m", "pytest", "-p", "no:cacheprovider"]
            commands["--version, no bookpay"] = [*other, "--version"]
            commands["--co, no bookpay"] = [*other, "--co", "-q", "test_one.py"]
        for cmd in commands.values():  # warm the file cache and .pyc files
            _time(cmd, folder)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(RUNS):
            for name, cmd in commands.items():
                samples[name].append(_time(cmd, folder))
    medians = {name: statistics.median(times) for name, times in samples.items()}
    print(f"{'pytest':<28}{'median ms':>10}{'min ms':>9}")
    for name, times in samples.items():
        print(f"{name:<28}{medians[name] * 1000:>10.1f}{min(times) * 1000:>9.1f}")
    ratios = {
        "version": medians["--version, plugin"] / medians["--version, -p no:bookpay"],
        "collect": medians["--co, plugin"] / medians["--co, -p no:bookpay"],
    }
    if without:
        ratios["version_vs_not_installed"] = (
            medians["--version, plugin"] / medians["--version, no bookpay"]
        )
        ratios["collect_vs_not_installed"] = medians["--co, plugin"] / medians["--co, no bookpay"]
    for name, ratio in ratios.items():
        print(f"{name}: with the plugin / without = {ratio:.3f} (target <= 1.05)")
    return {
        "runs": RUNS,
        "median_ms": {n: round(m * 1000, 1) for n, m in medians.items()},
        "ratios": {n: round(r, 3) for n, r in ratios.items()},
    }


if __name__ == "__main__":
    main()
