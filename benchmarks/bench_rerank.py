"""Time csdn k-reciprocal re-ranking against the dense reference (N x N matrices, full argsort, Python loops).

Usage: ``python benchmarks/bench_rerank.py [--quick] [--threads N] [--rounds R] [--skip-market-reference]
[--no-contended]``. Everything runs in the default environment; each round also times csdn beside one background
busy process the benchmark starts and stops itself, and prints the busy/idle ratio of the median times.
Inputs are euclidean distances between synthetic 2048-d features with identity structure, computed once and
cached as .npy files; every measurement runs in a fresh process that loads them (so its memory counts
them); the reference and csdn alternate over ``--rounds`` rounds (the machine may be shared: a ratio is only meaningful
within a round, so the range over rounds is printed); csdn is the best of ``--repeat`` runs per round (the first
pays one-off imports), the reference runs once per round.
Measured: ``re_ranking(q_g, q_q, g_g)`` (csdn) vs the dense reference on the same matrices, and the fused
``distance(qf, gf, metric="euclidean", rerank=True)`` from the features against the three float32 matrix products
it cannot avoid (q.g, q.q, g.g with ``torch.mm``), alternating in one process with the same threads.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import control_line, environment_line, gib, load_average, measure  # noqa: E402
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


def fused_vs_matmul(feats, rounds: int = 3) -> dict:
    """Interleaved rounds of (the three float32 products q.g, q.q, g.g with torch.mm) and the fused re-ranking.

    Returns per-round seconds of both and their ratio (same process, same threads), and the seconds the fused run
    spent inside its own ``torch.mm`` product calls (timed around each call: a block-level interleaving that a
    shared machine's load disturbs far less than whole-run rounds).
    """
    import time

    import torch
    from _common import current_rss, peak_rss, reset_peak_rss

    from csdn.evaluation import distance

    q, g = (torch.from_numpy(x) for x in feats)
    distance(q[:200], g[:800], metric="euclidean", rerank=True)  # one-off imports (scipy) and thread start-up
    out: dict = {"matmul": [], "fused": [], "ratio": [], "fused_peak_rss": [], "fused_extra_rss": [], "in_products": []}
    real_mm, in_products = torch.mm, [0.0]

    def timed_mm(*args, **kwargs):  # the fused search's products, timed inside the same run
        start = time.perf_counter()
        result = real_mm(*args, **kwargs)
        in_products[0] += time.perf_counter() - start
        return result

    torch.mm = timed_mm
    for _ in range(rounds):
        start = time.perf_counter()
        for a, b in ((q, g), (q, q), (g, g)):
            torch.mm(a, b.T)  # result dropped at once, as the fused code keeps only blocks of it
        mm = time.perf_counter() - start
        before = current_rss()
        reset_peak_rss()  # the matmuls' outputs are freed by now; count only the fused run
        in_products[0] = 0.0
        start = time.perf_counter()
        distance(q, g, metric="euclidean", rerank=True)
        fused = time.perf_counter() - start
        out["in_products"].append(in_products[0])
        out["fused_peak_rss"].append(peak_rss())
        out["fused_extra_rss"].append(max(0, peak_rss() - before))
        out["matmul"].append(mm)
        out["fused"].append(fused)
        out["ratio"].append(fused / mm)
    return out


def _row(label: str, res: dict) -> str:
    if "error" in res:
        return f"  {label:34s} failed: {res['error']}"
    return (
        f"  {label:34s} {res['seconds']:9.3f} s  peak RSS {gib(res['peak_rss']):>10s}"
        f"  (+{gib(res['extra_rss'])} over inputs)"
    )


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def _span(values: list[float], fmt: str = "{:.1f}") -> str:
    lo, hi = min(values), max(values)
    return fmt.format(lo) if fmt.format(lo) == fmt.format(hi) else f"{fmt.format(lo)}-{fmt.format(hi)}"


def compare_reference(cache: Path, key: str, args: argparse.Namespace) -> None:
    """Interleaved rounds: the dense reference once, then csdn (best of --repeat), each in a fresh process."""
    ratios, contention = [], []
    for r in range(args.rounds):
        ref = measure(load_matrices, run_reference, (str(cache), key), threads=args.threads)
        ours = measure(load_matrices, run_csdn, (str(cache), key), repeat=args.repeat, threads=args.threads)
        print(_row(f"round {r + 1}: dense reference", ref))
        print(_row(f"round {r + 1}: csdn re_ranking", ours))
        if not args.no_contended:
            busy = measure(load_matrices, run_csdn, (str(cache), key), args.repeat, args.threads, contended=True)
            print(_row(f"round {r + 1}: csdn, one busy process", busy))
            if "median" in busy and "median" in ours:
                contention.append(busy["median"] / ours["median"])
                print(f"  round {r + 1}: csdn busy/idle (median of {args.repeat}) {contention[-1]:.2f}x")
        if "seconds" in ref and "seconds" in ours:
            ratios.append(ref["seconds"] / ours["seconds"])
            diff = np.abs(ours["output"] - ref["output"]).max()
            print(f"  round {r + 1}: speed-up {ratios[-1]:.1f}x; max |csdn - reference| on a 50x50 corner {diff:.2e}")
    if ratios:
        print(f"  re_ranking speed-up over the dense reference: {_span(ratios)}x over {len(ratios)} rounds")
    if contention:
        span = _span(contention, "{:.2f}")
        print(f"  re_ranking with one busy process / without: {span}x over {len(contention)} rounds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="quarter-size problems")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--repeat", type=int, default=3, help="csdn runs per round (best is reported)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved reference/csdn rounds")
    parser.add_argument("--skip-market-reference", action="store_true", help="the dense reference needs ~9 GB")
    parser.add_argument("--skip-fused", action="store_true", help="skip the fused distance(rerank=True) ratio")
    parser.add_argument("--no-contended", action="store_true", help="skip the runs beside a busy process")
    parser.add_argument("--cache", default=None, help="directory for the cached distance matrices")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES), help="cases to run")
    args = parser.parse_args()
    cache = Path(args.cache or tempfile.gettempdir()) / "csdn_bench_rerank"
    cache.mkdir(parents=True, exist_ok=True)
    size = "quarter (--quick)" if args.quick else "full"
    print(f"{environment_line()}; torch threads: {args.threads or 'default'}; sizes {size}")
    if not args.no_contended:
        print(control_line())
    for name in args.cases:
        num_q, num_g, ids = CASES[name]
        if args.quick:
            num_q, num_g = num_q // 4, num_g // 4
        key = f"{name}_{num_q}_{num_g}"
        print(f"{name}: {num_q} queries + {num_g} gallery = {num_q + num_g} items, 2048-d, k1=20 k2=6 lambda=0.3")
        if not (name == "market" and args.skip_market_reference):
            cache_matrices(cache, key, num_q, num_g, ids)
            compare_reference(cache, key, args)
        if args.skip_fused:
            continue
        fused = measure(make_features, fused_vs_matmul, (num_q, num_g, ids), threads=args.threads)
        if "error" in fused:
            print(f"  fused distance(rerank=True) failed: {fused['error']}")
            continue
        if not args.no_contended:
            busy = measure(make_features, fused_vs_matmul, (num_q, num_g, ids), threads=args.threads, contended=True)
            if "output" in busy:
                idle_s, busy_s = _median(fused["output"]["fused"]), _median(busy["output"]["fused"])
                mm_idle, mm_busy = _median(fused["output"]["matmul"]), _median(busy["output"]["matmul"])
                print(
                    f"  fused distance(rerank=True) with one busy process / without: {busy_s / idle_s:.2f}x"
                    f" ({busy_s:.2f} s / {idle_s:.2f} s); its three products alone: {mm_busy / mm_idle:.2f}x"
                )
        res = fused["output"]
        rounds = ", ".join(f"{f:.2f} s / {m:.2f} s" for f, m in zip(res["fused"], res["matmul"], strict=True))
        print(f"  fused distance(rerank=True) / its matmuls (q.g, q.q, g.g): {rounds}")
        print(
            f"  fused / matmul ratio: {_span(res['ratio'], '{:.2f}')} over {len(res['ratio'])} interleaved rounds;"
            f" peak RSS during the fused runs {gib(max(res['fused_peak_rss']))}"
            f" (+{gib(max(res['fused_extra_rss']))} over the features and process)"
        )
        own = [f / p for f, p in zip(res["fused"], res["in_products"], strict=True)]
        print(
            f"  fused / the time of its own product calls (the same products, timed inside each run):"
            f" {_span(own, '{:.2f}')} ({', '.join(f'{p:.1f} s' for p in res['in_products'])} in products)"
        )
    print(f"load average at the end: {load_average()}")


if __name__ == "__main__":
    main()
