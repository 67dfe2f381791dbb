"""Stage-3 loader throughput: csdn's CrossModalityDataset against the official way of loading (same run).

Usage: ``python benchmarks/bench_data.py [--quick] [--batches N] [--workers 0 2] [--source-size 384x192]
[--no-contended] [--root DIR]``.

A synthetic SYSU-MM01 tree (JPEGs of ``--source-size``, written once under the temporary folder or ``--root``)
is loaded in global batches of 8 ids x 4 pairs (= 64 visible views + 32 infrared images, 96 images) by

- **csdn, cold**: a fresh :class:`csdn.data.CrossModalityDataset` (in-memory image cache, empty): every image is
  decoded and resized once, then the views are made from the cache;
- **csdn, warm**: the same dataset over the same batches again (every image cached);
- **csdn, uncached** (``image_cache="off"``): decode and the three pipelines per item, as before this work;
- **reference**: pre-resized arrays in memory (the official offline step, timed separately), then its three
  torchvision chains per pair (``benchmarks/_reference_data.py``).

For each it prints images/s (wall clock) and CPU ms per (visible, infrared) pair (this process and its loader
workers); ``vs ref`` compares images/s with the faster of the reference at the default torch threads and at one
thread (workers 0; a worker always runs at one). The ``busy`` rows repeat workers 0, warm, beside one background
busy process the benchmark starts and stops itself. Everything runs in the default environment, in this one
process, so the ratios come from one run.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import busy_process, control_line, environment_line  # noqa: E402
from _reference_data import ReferencePairs, pre_resize  # noqa: E402

from csdn._threads import torch_threads  # noqa: E402
from csdn.data import SYSUMM01, CrossModalityDataset, CrossModalityIdentitySampler  # noqa: E402
from csdn.data.loaders import collate  # noqa: E402
from csdn.data.synthetic import make_sysu  # noqa: E402

PAIRS_PER_BATCH = 32  # 8 ids x 4 images per modality


def make_tree(root: Path, height: int, width: int) -> SYSUMM01:
    folder = root / f"csdn_bench_data_{height}x{width}"
    if not (folder / "exp" / "test_id.txt").exists():
        make_sysu(folder, num_train_ids=12, num_val_ids=1, num_test_ids=2, images_per_cam=6,
                  image_size=(height, width), missing_cam_prob=0.0)  # fmt: skip
    return SYSUMM01(str(folder))


def global_batches(train, count: int) -> list[list[tuple[int, int, int]]]:
    """``count`` batches of seeded pairs from consecutive sampler epochs."""
    sampler = CrossModalityIdentitySampler.from_split(train, 8, 4, seed=0, sample_seeds=True)
    pairs = []
    for epoch in itertools.count():
        sampler.set_epoch(epoch)
        pairs += [tuple(p) for p in sampler]
        if len(pairs) >= count * PAIRS_PER_BATCH:
            break
    return [pairs[i * PAIRS_PER_BATCH : (i + 1) * PAIRS_PER_BATCH] for i in range(count)]


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_loader(dataset, batches, workers: int, threads: int | None = None) -> tuple[float, float]:
    """(images/s, CPU ms per pair) of one pass over ``batches`` (workers are joined, so their CPU counts).

    ``threads``: torch threads of this process during the pass (``None``: as it is).
    """
    collate_fn = collate if isinstance(dataset, CrossModalityDataset) else None  # as the stage-3 loader / official
    loader = DataLoader(dataset, batch_sampler=batches, num_workers=workers, collate_fn=collate_fn)
    cpu, start = _cpu_seconds(), time.perf_counter()
    with torch_threads(threads):
        for _ in loader:
            pass
    del loader  # joins the workers
    wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    pairs = len(batches) * PAIRS_PER_BATCH
    return 3 * pairs / wall, 1000 * cpu / pairs


def reference_dataset(train) -> tuple[ReferencePairs, float]:
    start = time.perf_counter()
    vis, ir = pre_resize([s.path for s in train.visible]), pre_resize([s.path for s in train.infrared])
    labels = [s.label for s in train.visible], [s.label for s in train.infrared]
    return ReferencePairs(vis, ir, *labels), time.perf_counter() - start


def _row(name: str, result: tuple[float, float], ref: tuple[float, float] | None = None) -> None:
    ratio = f"{result[0] / ref[0]:8.2f}x" if ref else f"{'':9s}"
    print(f"  {name:40s} {result[0]:9.0f} {result[1]:11.2f} {ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="8 batches per measurement instead of 40")
    parser.add_argument("--batches", type=int, default=None, help="global batches per measurement")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader worker counts")
    parser.add_argument("--source-size", default="384x192", help="HxW of the synthetic JPEGs")
    parser.add_argument("--no-contended", action="store_true", help="skip the rows beside a busy process")
    parser.add_argument("--root", default=None, help="folder for the synthetic tree (default: temporary folder)")
    args = parser.parse_args()
    height, width = (int(v) for v in args.source_size.lower().split("x"))
    count = args.batches or (8 if args.quick else 40)
    train = make_tree(Path(args.root or tempfile.gettempdir()), height, width).train
    batches = global_batches(train, count)
    print(f"{environment_line()}; fork start: {torch.multiprocessing.get_start_method()}; pid {os.getpid()}")
    if not args.no_contended:
        print(control_line())
    print(f"{len(train.visible)} visible + {len(train.infrared)} infrared {height}x{width} JPEGs -> 288x144; "
          f"{count} batches of {PAIRS_PER_BATCH} pairs (96 images) per row")  # fmt: skip
    reference, prep = reference_dataset(train)
    print(f"reference offline pre-resize of all {len(train.visible) + len(train.infrared)} images: {prep:.2f} s")
    print(f"  {'loader':40s} {'images/s':>9s} {'CPU ms/pair':>11s} {'vs ref':>9s}")
    warm0 = ref0 = None
    for workers in args.workers:
        ref = run_loader(reference, batches, workers)
        ref1 = run_loader(reference, batches, workers, threads=1) if workers == 0 else None
        cached = CrossModalityDataset(train, image_cache="memory")
        cold = run_loader(cached, batches, workers)
        warm = run_loader(cached, batches, workers)
        plain = run_loader(CrossModalityDataset(train, image_cache="off"), batches, workers)
        _row(f"reference, workers {workers}", ref)
        if ref1 is not None:  # the main process at one torch thread, as a worker would be: the fairer reference
            _row("reference at 1 torch thread, workers 0", ref1)
            ref = ref1 if ref1[0] > ref[0] else ref
        _row(f"csdn cold cache, workers {workers}", cold, ref)
        _row(f"csdn warm cache, workers {workers}", warm, ref)
        _row(f"csdn uncached (image_cache=off), workers {workers}", plain, ref)
        if workers == 0:
            warm0, ref0, dataset0 = warm, ref, cached
    if warm0 is not None and not args.no_contended:
        with busy_process():
            ref_busy = max(run_loader(reference, batches, 0), run_loader(reference, batches, 0, threads=1))
            warm_busy = run_loader(dataset0, batches, 0)
        _row("busy: reference, workers 0", ref_busy)
        _row("busy: csdn warm cache, workers 0", warm_busy, ref_busy)
        print(f"  busy/idle images/s: csdn {warm_busy[0] / warm0[0]:.2f}x, reference {ref_busy[0] / ref0[0]:.2f}x")
    print(f"load average at the end: {environment_line().rsplit('load average ', 1)[1]}")


if __name__ == "__main__":
    main()
