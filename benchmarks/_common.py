"""Benchmark plumbing: run one measurement in a fresh process and report its time and peak memory."""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import time
from collections.abc import Callable
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
    queue.put({"seconds": min(times), "peak_rss": peak_rss(), "rss_before": before, "output": out})


def measure(setup: Callable, run: Callable, args: tuple, repeat: int = 1, threads: int | None = None) -> dict:
    """Run ``run(setup(*args))`` ``repeat`` times in a fresh process (best time, process peak RSS).

    Returns ``{"seconds", "peak_rss", "rss_before", "extra_rss", "output"}`` (peak_rss: the process's peak
    during the measured runs, data included; extra_rss: that peak minus the RSS before them), or
    ``{"error": ...}`` if the process died (e.g. killed for running out of memory).
    """
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, setup, run, args, repeat, threads))
    proc.start()
    try:
        result = queue.get(timeout=3600)
    except Exception as exc:  # noqa: BLE001 - a dead child just yields an error entry
        result = {"error": f"{type(exc).__name__}: exit code {proc.exitcode}"}
    if "peak_rss" in result:
        result["extra_rss"] = max(0, result["peak_rss"] - result["rss_before"])
    proc.join()
    return result


def configure_openmp() -> str:
    """Default OMP_WAIT_POLICY to PASSIVE for the measurement processes and return the policy in use.

    On a shared, oversubscribed machine OpenMP's default busy-waiting makes every parallel torch op wait for
    descheduled threads (a 2-thread run can be several times slower than a 1-thread run); passive waiting avoids
    that. It must be set before a process starts OpenMP, so it is set here for the spawned children.
    """
    return os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"
