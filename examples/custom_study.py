"""A study with a grid of your own, from Python: variants x seeds x RegDB splits, with CIs and paired tests.

Here the grid compares the full model with two stage-3 learning rates and the image-only baseline over RegDB
splits and seeds; each run is an ordinary ``csdn train`` run folder, the study folder is resumable (run the same
script again after an interruption: finished runs are not redone), and the results carry their uncertainty
(``study.md``, ``study.json``, ``index.html``).

Real data (RegDB's ten-split protocol, two seeds, four variants: 80 trainings)::

    python examples/custom_study.py --root data/RegDB --out runs/regdb-lr-study --splits 1-10 --seeds 2

No data, no download (synthetic RegDB, tiny random CLIP, 1 split x 1 seed x 2 variants)::

    python examples/custom_study.py --synthetic --quick

``--workers N`` runs N trainings at a time in worker processes (``csdn.study.ProcessExecutor``; ``gpus=[...]`` for
one per GPU); ``csdn.study.SubmititExecutor`` sends the same runs to Slurm.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from csdn.data.synthetic import make_regdb
from csdn.study import LocalExecutor, ProcessExecutor, Study, Variant, parse_numbers

#: The smallest training that runs every part (32x16 images, one epoch per stage).
QUICK = [
    "data.height=32", "data.width=16", "data.pad=2", "data.num_workers=0", "stage1.epochs=1", "stage1.batch_size=8",
    "stage2.epochs=1", "stage2.batch_size=16", "stage3.epochs=1", "stage3.num_ids=4", "stage3.num_pos=2",
    "stage3.milestones=", "runtime.progress=false",
]  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--root", help="RegDB folder in its public layout (idx/, Visible/, Thermal/)")
    data.add_argument("--synthetic", action="store_true", help="write and use a small synthetic RegDB")
    parser.add_argument("--out", help="study folder (default: a new temporary folder)")
    parser.add_argument("--splits", default="1-10", help="RegDB training splits, e.g. 1-10")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 1..N")
    parser.add_argument("--workers", type=int, default=1, help="trainings at a time (worker processes if > 1)")
    parser.add_argument("--quick", action="store_true", help="tiny runs, one split, two variants (CI)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="csdn-study-"))
    root = args.root
    if args.synthetic:
        root = make_regdb(out / "regdb", num_ids=16, images_per_id=2, image_size=(32, 16), num_trials=2)

    # 1. The grid's rows: a name, an optional paper ablation and config overrides per variant.
    variants = [
        Variant("csdn"),
        Variant("csdn-lr1e-4", overrides=("stage3.lr=1e-4",)),
        Variant("csdn-lr1e-3", overrides=("stage3.lr=1e-3",)),
        Variant("baseline", ablation="baseline"),
    ]
    splits = parse_numbers(args.splits, "--splits")
    preset, overrides = "regdb", []
    if args.quick:  # two variants, one split, tiny runs from the demo preset
        variants, splits, preset, overrides = [variants[3], variants[0]], [1], "demo", QUICK

    # 2. Plan (resolved configs recorded in study_plan.json), run what is left, report with uncertainty.
    study = Study(out / "study", root, dataset="regdb", variants=variants, seeds=range(1, args.seeds + 1),
                  splits=splits, preset=preset, overrides=overrides)  # fmt: skip
    executor = ProcessExecutor(workers=args.workers) if args.workers > 1 else LocalExecutor()
    results = study.run(executor, out=print)
    print()
    print(study.table(results))

    # 3. Every number is in the results: e.g. the paired mAP difference of the last two variants.
    first = results["comparisons"][0]
    low, high = (100 * x for x in first["mAP"]["ci"])
    print(f"\n{first['a']} - {first['b']} ({first['setting']}): mAP {100 * first['mAP']['difference']:+.2f} points, "
          f"95% CI [{low:+.2f}, {high:+.2f}], p={first['mAP']['p']:.2g}")  # fmt: skip
    print(f"study folder: {study.out}")


if __name__ == "__main__":
    main()
