"""Train CSDN on SYSU-MM01 with the Python API (the pipeline behind ``csdn train``), then evaluate it.

Real data (CLIP RN50 weights are downloaded once, or pass a local file with --set model.clip=/path/RN50.pt)::

    python examples/train_sysu.py --root data/SYSU-MM01 --out runs/sysu

No data, no download (synthetic SYSU-MM01 layout, tiny random CLIP; about a minute on a laptop CPU)::

    python examples/train_sysu.py --synthetic --quick

Every hyper-parameter is a config field: ``--set stage3.epochs=60 --set runtime.amp=bf16`` (docs/api/engine.md).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from csdn.data import SYSUMM01
from csdn.data.synthetic import make_sysu
from csdn.engine import apply_overrides, build_csdn, get_preset, save_config
from csdn.engine.trainer import Trainer
from csdn.evaluation import VIReIDEvaluator

# A few epochs per stage: enough to see every stage run, not to learn much.
QUICK = [
    "stage1.epochs=2", "stage2.epochs=1", "stage3.epochs=2", "stage3.warmup_epochs=1", "stage3.milestones=1",
    "runtime.progress=false",
]  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--root", help="SYSU-MM01 folder in its public layout (exp/, cam1..cam6/)")
    data.add_argument("--synthetic", action="store_true", help="write and use a small synthetic SYSU-MM01")
    parser.add_argument("--out", help="run folder (default: a new temporary folder)")
    parser.add_argument("--quick", action="store_true", help="a few epochs and one evaluation trial (CI)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="csdn-train-"))

    # 1. Data: the reader validates the layout and reproduces the official query/gallery draws.
    if args.synthetic:
        root = make_sysu(out / "sysu-synthetic", num_train_ids=8, num_val_ids=2, num_test_ids=6, images_per_cam=2)
        cfg = get_preset("demo")  # tiny random CLIP ("tiny-RN"), 64x32 inputs
    else:
        root = args.root
        cfg = get_preset("sysu")  # the official hyper-parameters (RN50, 288x144, 60/60/120 epochs)
    dataset = SYSUMM01(root)
    print(dataset.describe())

    # 2. Configuration: a preset plus key=value overrides, saved next to the run.
    overrides = [f"runtime.output_dir={out / 'run'}", *(QUICK if args.quick else []), *args.overrides]
    cfg = apply_overrides(cfg, overrides)
    save_config(cfg, out / "config.json")  # .yaml works too with PyYAML installed

    # 3. Model and trainer. The trainer never imports the evaluator: it receives a callable.
    model = build_csdn(cfg, dataset.train.num_classes)
    evaluator = VIReIDEvaluator(dataset, height=cfg.data.height, width=cfg.data.width, num_workers=cfg.data.num_workers)
    periodic = evaluator.training_callback() if cfg.runtime.eval_every > 0 else None
    final = Trainer(cfg, model, dataset.train, evaluate=periodic).fit()

    # 4. Evaluate the last epoch (no test-set model selection) with the full SYSU-MM01 protocol.
    report = evaluator.run(model.eval(), trials=1 if args.quick else None)
    print(report.to_table())
    report.to_json(out / "eval.json")
    print(f"checkpoint: {final}\nresults: {out / 'eval.json'}")


if __name__ == "__main__":
    main()
