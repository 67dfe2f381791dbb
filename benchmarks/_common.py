"""Benchmark plumbing: run one measurement in a fresh process and report its time and peak memory.

Measurements run in the user's default environment (no thread or wait-policy variables are set here). A
contended measurement runs beside one background busy process (:func:`busy_process`) that the benchmark starts
before and stops after it, so idle and contended times come from the same run.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any


def current_rss() -> int:
    """Resident set size of this process now, in bytes (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss() -> int:
    """Peak resident set size (VmHWM) of this process since the last :func:`reset_peak_rss`, in bytes."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter to the current RSS (Linux >= 4.0); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _child(queue: Any, setup: Callable, run: Callable, args: tuple, repeat: int, threads: int | None) -> None:
    import torch

    import csdn.evaluation  # noqa: F401 - imported before the measurement so its RSS is not counted

    if threads:
        torch.set_num_threads(threads)
    data = setup(*args)
    before = current_rss()
    reset_peak_rss()  # so the peak below belongs to the measured runs, not to the data set-up
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = run(data)
        times.append(time.perf_counter() - start)
    result = {"seconds": min(times), "median": sorted(times)[len(times) // 2], "output": out}
    queue.put({**result, "peak_rss": peak_rss(), "rss_before": before})


def measure(
    setup: Callable, run: Callable, args: tuple, repeat: int = 1, threads: int | None = None, contended: bool = False
) -> dict:
    """Run ``run(setup(*args))`` ``repeat`` times in a fresh process (best time, process peak RSS).

    With ``contended``, one background busy process runs for the whole measurement (started before the child,
    stopped after it).

    Returns ``{"seconds", "median", "peak_rss", "rss_before", "extra_rss", "output"}`` (best and median time;
    peak_rss: the process's peak
    during the measured runs, data included; extra_rss: that peak minus the RSS before them), or
    ``{"error": ...}`` if the process died (e.g. killed for running out of memory).
    """
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, setup, run, args, repeat, threads))
    with busy_process() if contended else contextlib.nullcontext():
        proc.start()
        try:
            result = queue.get(timeout=3600)
        except Exception as exc:  # noqa: BLE001 - a dead child just yields an error entry
            result = {"error": f"{type(exc).__name__}: exit code {proc.exitcode}"}
    if "peak_rss" in result:
        result["extra_rss"] = max(0, result["peak_rss"] - result["rss_before"])
    proc.join()
    return result


@contextlib.contextmanager
def busy_process(count: int = 1) -> Iterator[None]:
    """``count`` background processes spinning on a core each (a busy machine) for the duration of the block."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(0.2)  # let them reach the loop
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def load_average() -> str:
    """The 1/5/15-minute load averages (``/proc/loadavg``), or ``"n/a"``."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


def _python_loop(n: int = 2_000_000) -> float:
    start, x = time.perf_counter(), 0
    for i in range(n):
        x += i
    return time.perf_counter() - start


def control_line(repeat: int = 3) -> str:
    """What one busy process costs a single-threaded pure-Python loop here: the machine's own busy/idle factor.

    A csdn busy/idle ratio near this one means the slowdown is the CPU share the busy process takes, not threads
    waiting for each other.
    """
    idle = sorted(_python_loop() for _ in range(repeat))[repeat // 2]
    with busy_process():
        busy = sorted(_python_loop() for _ in range(repeat))[repeat // 2]
    return f"control (1-thread Python loop) busy/idle {busy / idle:.2f}x ({busy:.2f} s / {idle:.2f} s)"


def environment_line() -> str:
    """Thread settings and machine load, printed at the top of every benchmark."""
    import torch

    wait = os.environ.get("OMP_WAIT_POLICY", "unset (default)")
    return (
        f"torch {torch.__version__}, {torch.get_num_threads()} threads by default, {os.cpu_count()} CPUs; "
        f"OMP_WAIT_POLICY {wait}; load average {load_average()}"
    )


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"
