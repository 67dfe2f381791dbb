"""Time ``csdn --help`` against ``python -c "import torch"`` in the same run (the floor any torch CLI pays).

Usage: ``python benchmarks/bench_startup.py [--repeat R]``. Each command runs ``R`` times (default 5) in a fresh
interpreter, alternating so that a busy machine slows both alike; the best and median wall times are printed
with the ratio of the medians. ``csdn`` is the checkout's (``PYTHONPATH`` points at it), run as ``python -m csdn``
so the console script's own start-up cost (the same for both) is not counted twice.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "import torch": [sys.executable, "-c", "import torch"],
    "csdn --help": [sys.executable, "-m", "csdn", "--help"],
    "import csdn": [sys.executable, "-c", "import csdn"],
}


def wall_time(argv: list[str], env: dict[str, str]) -> float:
    """Seconds one run of ``argv`` takes, start to exit (stdout discarded; a failure raises)."""
    start = time.perf_counter()
    subprocess.run(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each command (default 5)")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for argv in COMMANDS.values():  # warm the file cache once, untimed
        wall_time(argv, env)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.repeat):
        for name, argv in COMMANDS.items():
            times[name].append(wall_time(argv, env))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.repeat} runs each (wall time, seconds)")
    for name, values in times.items():
        print(f"  {name:<14} best {min(values):6.2f}   median {statistics.median(values):6.2f}")
    ratio = statistics.median(times["csdn --help"]) / statistics.median(times["import torch"])
    print(f"csdn --help / import torch (medians): {ratio:.2f}x")


if __name__ == "__main__":
    main()
