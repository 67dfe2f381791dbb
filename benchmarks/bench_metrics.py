"""Time csdn.evaluation.evaluate against a per-query loop evaluator written the way the field's are.

Usage: ``python benchmarks/bench_metrics.py [--quick] [--threads N] [--repeat R] [--no-contended]``. Each
measurement runs in a fresh process in the default environment; the reference is timed once (it takes seconds),
csdn as the best of ``--repeat`` runs, once on the machine as it is ("idle") and once beside one background busy
process the benchmark starts and stops itself ("busy"); ``busy/idle`` is the ratio of their median times.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import control_line, environment_line, gib, load_average, measure  # noqa: E402
from _reference import reference_evaluate  # noqa: E402

# name: (protocol, num_query, gallery builder args)
CASES = {
    "sysu-single": ("sysu", 3803, 1, 301),
    "sysu-multi": ("sysu", 3803, 10, 301),
    "regdb": ("regdb", 2060, 10, 206),
    "market": ("market", 3368, 1, 15913),
}


def make_case(protocol: str, num_q: int, per_cell: int, size: int, seed: int = 0, dim: int = 32):
    """Synthetic distances with identity structure (features = identity centre + noise; 1 - cosine)."""
    import torch

    rng = np.random.default_rng(seed)
    if protocol == "sysu":  # 96 test ids; IR queries from cams 3/6; gallery cells (id, RGB cam)
        ids = 96
        cells = [(p, c) for p in range(ids) for c in (1, 2, 4, 5)]
        chosen = rng.choice(len(cells), size, replace=False)
        g_pids = np.repeat([cells[i][0] for i in chosen], per_cell)
        g_cams = np.repeat([cells[i][1] for i in chosen], per_cell)
        q_pids, q_cams = rng.integers(0, ids, num_q), rng.choice([3, 6], num_q)
    elif protocol == "regdb":  # 206 ids x 10 images per modality
        g_pids = np.repeat(np.arange(size), per_cell)
        q_pids = np.repeat(np.arange(size), per_cell)  # as many queries as gallery items
        q_cams, g_cams = np.ones(len(q_pids), int), np.full(len(g_pids), 2)
    else:  # market-like: 751 ids, 6 cameras
        ids = 751
        g_pids, g_cams = rng.integers(0, ids, size), rng.integers(1, 7, size)
        q_pids, q_cams = rng.integers(0, ids, num_q), rng.integers(1, 7, num_q)
    centres = rng.normal(size=(int(max(q_pids.max(), g_pids.max())) + 1, dim)).astype(np.float32)
    qf = torch.from_numpy(centres[q_pids] + 1.2 * rng.normal(size=(len(q_pids), dim)).astype(np.float32))
    gf = torch.from_numpy(centres[g_pids] + 1.2 * rng.normal(size=(len(g_pids), dim)).astype(np.float32))
    qf, gf = torch.nn.functional.normalize(qf, dim=1), torch.nn.functional.normalize(gf, dim=1)
    dist = (1 - qf @ gf.T).numpy()
    return dist, q_pids, g_pids, q_cams, g_cams, protocol


def run_csdn(case):
    from csdn.evaluation import evaluate

    dist, q_pids, g_pids, q_cams, g_cams, protocol = case
    res = evaluate(dist, q_pids, g_pids, q_cams, g_cams, protocol=protocol)
    return res.cmc[:20].tolist(), res.mAP, res.mINP


def run_reference(case):
    dist, q_pids, g_pids, q_cams, g_cams, protocol = case
    cmc, m_ap, m_inp = reference_evaluate(dist, q_pids, g_pids, q_cams, g_cams, protocol=protocol)
    return cmc[:20].tolist(), m_ap, m_inp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="quarter-size queries and galleries")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--repeat", type=int, default=5, help="csdn runs per case (best is reported)")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES), help="cases to run")
    parser.add_argument("--no-contended", action="store_true", help="skip the runs beside a busy process")
    args = parser.parse_args()
    size = "quarter (--quick)" if args.quick else "full"
    print(f"{environment_line()}; torch threads: {args.threads or 'default'}; sizes {size}")
    if not args.no_contended:
        print(control_line())
    header = ("case", "csdn s", "ref s", "speed-up", "csdn +RSS", "ref +RSS", "max |diff|", "busy s", "busy/idle")
    print("{:28s} {:>9s} {:>8s} {:>9s} {:>10s} {:>10s} {:>10s} {:>9s} {:>9s}".format(*header))
    for name in args.cases:
        protocol, num_q, per_cell, size = CASES[name]
        if args.quick:
            num_q, size = num_q // 4, size // 4
        case_args = (protocol, num_q, per_cell, size)
        num_g = size * per_cell
        num_q = num_g if protocol == "regdb" else num_q
        name = f"{name} ({num_q}x{num_g})"
        ours = measure(make_case, run_csdn, case_args, repeat=args.repeat, threads=args.threads)
        busy = {} if args.no_contended else measure(make_case, run_csdn, case_args, args.repeat, args.threads, True)
        ref = measure(make_case, run_reference, case_args, repeat=1, threads=args.threads)
        if "error" in ours or "error" in ref:
            print(f"{name:28s} failed: {ours.get('error')} {ref.get('error')}")
            continue
        (c1, m1, i1), (c2, m2, i2) = ours["output"], ref["output"]
        diff = max(abs(m1 - m2), abs(i1 - i2), float(np.max(np.abs(np.subtract(c1, c2)))))
        print(
            f"{name:28s} {ours['seconds']:9.4f} {ref['seconds']:8.3f} {ref['seconds'] / ours['seconds']:8.1f}x "
            f"{gib(ours['extra_rss']):>10s} {gib(ref['extra_rss']):>10s} "
            f"{diff:10.2e} "
            + (f"{busy['median']:9.4f} {busy['median'] / ours['median']:8.2f}x" if "median" in busy else "")
        )
    print(f"load average at the end: {load_average()}")


if __name__ == "__main__":
    main()
