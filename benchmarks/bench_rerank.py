"""Time csdn k-reciprocal re-ranking against the dense reference (N x N matrices, full argsort, Python loops).

Usage: ``python benchmarks/bench_rerank.py [--quick] [--threads N] [--skip-market-reference]``.
Inputs are euclidean distances between synthetic 2048-d features with identity structure, computed once and
cached as .npy files; every measurement runs in a fresh process that loads them (so its memory counts
them); csdn is timed as the best of ``--repeat`` runs (the first pays one-off imports), the reference once.
Measured: ``re_ranking(q_g, q_q, g_g)`` (csdn) vs the dense reference on the same matrices, and the fused
``distance(qf, gf, metric="euclidean", rerank=True)`` from the features (its time includes the N x N matmuls of
the neighbour search; it never holds an N x N matrix).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import configure_openmp, gib, measure  # noqa: E402
from _reference import reference_rerank  # noqa: E402

CASES = {"sysu-single": (3803, 301, 96), "market": (3368, 15913, 751)}


def make_features(num_q: int, num_g: int, ids: int, dim: int = 2048, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(ids, dim)).astype(np.float32)
    pids = rng.integers(0, ids, num_q + num_g)
    feats = centres[pids] + 1.5 * rng.normal(size=(num_q + num_g, dim)).astype(np.float32)
    return feats[:num_q], feats[num_q:]


def cache_matrices(cache: Path, name: str, num_q: int, num_g: int, ids: int) -> None:
    import torch

    if (cache / f"{name}_g_g.npy").exists():
        return
    qf, gf = (torch.from_numpy(x) for x in make_features(num_q, num_g, ids))
    for tag, a, b in (("q_g", qf, gf), ("q_q", qf, qf), ("g_g", gf, gf)):
        np.save(cache / f"{name}_{tag}.npy", torch.cdist(a, b).numpy().astype(np.float32))


def load_matrices(cache: str, name: str):
    return tuple(np.load(Path(cache) / f"{name}_{tag}.npy") for tag in ("q_g", "q_q", "g_g"))


def run_csdn(mats):
    from csdn.evaluation import re_ranking

    return re_ranking(*mats)[:50, :50]


def run_reference(mats):
    return reference_rerank(*mats)[:50, :50]


def run_fused(feats):
    from csdn.evaluation import distance

    return distance(*feats, metric="euclidean", rerank=True).numpy()[:50, :50]


def _row(label: str, res: dict, ref_seconds: float | None = None) -> str:
    if "error" in res:
        return f"  {label:34s} failed: {res['error']}"
    ratio = f"{ref_seconds / res['seconds']:8.1f}x" if ref_seconds else " " * 9
    return (
        f"  {label:34s} {res['seconds']:9.3f} s {ratio}  peak RSS {gib(res['peak_rss']):>10s}"
        f"  (+{gib(res['extra_rss'])} over inputs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="quarter-size problems")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--repeat", type=int, default=3, help="csdn runs per case (best is reported)")
    parser.add_argument("--skip-market-reference", action="store_true", help="the dense reference needs ~9 GB")
    parser.add_argument("--cache", default=None, help="directory for the cached distance matrices")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES), help="cases to run")
    args = parser.parse_args()
    cache = Path(args.cache or tempfile.gettempdir()) / "csdn_bench_rerank"
    cache.mkdir(parents=True, exist_ok=True)
    policy = configure_openmp()
    size = "quarter (--quick)" if args.quick else "full"
    print(f"torch threads: {args.threads or 'default'}; OMP_WAIT_POLICY={policy}; sizes {size}")
    for name in args.cases:
        num_q, num_g, ids = CASES[name]
        if args.quick:
            num_q, num_g = num_q // 4, num_g // 4
        key = f"{name}_{num_q}_{num_g}"
        cache_matrices(cache, key, num_q, num_g, ids)
        print(f"{name}: {num_q} queries + {num_g} gallery = {num_q + num_g} items, 2048-d, k1=20 k2=6 lambda=0.3")
        ours = measure(load_matrices, run_csdn, (str(cache), key), repeat=args.repeat, threads=args.threads)
        ref = {"error": "skipped"}
        if not (name == "market" and args.skip_market_reference):
            ref = measure(load_matrices, run_reference, (str(cache), key), threads=args.threads)
        fused_repeat = 1 if num_q + num_g > 10_000 else args.repeat  # tens of seconds each: once is enough
        fused = measure(make_features, run_fused, (num_q, num_g, ids), repeat=fused_repeat, threads=args.threads)
        ref_s = ref.get("seconds")
        print(_row("dense reference (matrices)", ref))
        print(_row("csdn re_ranking (matrices)", ours, ref_s))
        print(_row("csdn distance(rerank=True) (feats)", fused))
        if "output" in ours and "output" in ref:
            print(f"  max |csdn - reference| on a 50x50 corner: {np.abs(ours['output'] - ref['output']).max():.2e}")
        if "output" in ours and "output" in fused:
            print(f"  max |fused - matrices| on a 50x50 corner: {np.abs(ours['output'] - fused['output']).max():.2e}")


if __name__ == "__main__":
    main()
