"""Bring your own dataset: CSV lists, or your own reader class registered under a name, then train and evaluate.

Two ways in, both giving the same split objects as the SYSU-MM01/RegDB/LLCM readers:

1. **CSV lists** (no code): ``ROOT/train.csv``, ``ROOT/query.csv``, ``ROOT/gallery.csv`` with the header
   ``path,pid,cam,modality`` (paths relative to ROOT, modality ``visible`` or ``infrared``). Read with
   ``CSVDataset(ROOT)`` or ``open_dataset("csv", ROOT)``; ``csdn data stats ROOT`` recognises the layout.
2. **Your own reader**: subclass ``csdn.data.VIReIDDataset`` and ``register_dataset("name", YourReader)``;
   ``open_dataset("name", ROOT)`` then builds it (an installed package can declare it in the ``csdn.datasets``
   entry-point group instead; ``csdn --plugin MODULE`` loads one from the command line). This example's reader,
   ``examples/plugin/csdn_folders.py``, reads ``ROOT/{train,query,gallery}/<modality>/<pid>_c<cam>_*``.

Your CSV dataset::

    python examples/custom_dataset.py --root data/my-dataset --out runs/mine

No data, no download (a synthetic CSV dataset and a tiny random CLIP; about a minute on a laptop CPU)::

    python examples/custom_dataset.py --synthetic --quick

See docs/datasets.md for every check the readers make.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from csdn.data import open_dataset
from csdn.data.synthetic import make_csv
from csdn.engine import Trainer, apply_overrides, build_csdn, get_preset
from csdn.evaluation import VIReIDEvaluator

# The reader is the example plug-in package (examples/plugin, pip-installable); importing its module registers it
sys.path.insert(0, str(Path(__file__).resolve().parent / "plugin"))
from csdn_folders import csv_to_folders  # noqa: E402  (registers "folders" with @register_dataset)

QUICK = [
    "stage1.epochs=2", "stage2.epochs=1", "stage3.epochs=2", "stage3.warmup_epochs=1", "stage3.milestones=1",
    "runtime.progress=false",
]  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--root", help="your dataset folder with train.csv, query.csv, gallery.csv")
    data.add_argument("--synthetic", action="store_true", help="write and use a small synthetic CSV dataset")
    parser.add_argument("--out", help="run folder (default: a new temporary folder)")
    parser.add_argument("--quick", action="store_true", help="a few epochs (CI)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="csdn-custom-"))

    # 1. CSV lists: every row is checked (file, line, what is wrong) when the reader is built.
    if args.synthetic:
        root = make_csv(out / "csv-synthetic", num_train_ids=8, num_test_ids=4, images_per_cam=2)
        cfg = get_preset("demo")  # tiny random CLIP ("tiny-RN"), 64x32 inputs
    else:
        root, cfg = args.root, get_preset("sysu")  # the official hyper-parameters (RN50, 288x144)
    dataset = open_dataset("csv", root)  # == CSVDataset(root, protocol="market")
    print(dataset.describe())

    # 2. A reader of your own, registered by name (importing csdn_folders ran register_dataset("folders", ...)).
    folders = open_dataset("folders", csv_to_folders(dataset, out / "folders"))
    print(folders.describe())
    sizes = [(len(d.test().query), len(d.test().gallery)) for d in (dataset, folders)]
    same = sizes[0] == sizes[1]
    print(f"the registered reader sees the same test split as the CSV reader: {same}")

    # 3. Train on the registered dataset and evaluate it with its own protocol.
    overrides = [f"runtime.output_dir={out / 'run'}", *(QUICK if args.quick else []), *args.overrides]
    cfg = apply_overrides(cfg, overrides)
    model = build_csdn(cfg, folders.train.num_classes)
    final = Trainer(cfg, model, folders.train).fit()
    evaluator = VIReIDEvaluator(folders, height=cfg.data.height, width=cfg.data.width, num_workers=0)
    report = evaluator.run(model.eval(), chance=True)  # the table ends with the chance level
    print(report.to_table())
    print(f"checkpoint: {final}")


if __name__ == "__main__":
    main()
