"""Bring your own dataset: CSV lists, or your own reader class registered under a name, then train and evaluate.

Two ways in, both giving the same split objects as the SYSU-MM01/RegDB/LLCM readers:

1. **CSV lists** (no code): ``ROOT/train.csv``, ``ROOT/query.csv``, ``ROOT/gallery.csv`` with the header
   ``path,pid,cam,modality`` (paths relative to ROOT, modality ``visible`` or ``infrared``). Read with
   ``CSVDataset(ROOT)`` or ``open_dataset("csv", ROOT)``; ``csdn data stats ROOT`` recognises the layout.
2. **Your own reader**: subclass ``csdn.data.VIReIDDataset`` and ``register_dataset("name", YourReader)``;
   ``open_dataset("name", ROOT)`` then builds it (an installed package can declare it in the ``csdn.datasets``
   entry-point group instead). This example's reader reads ``ROOT/{train,query,gallery}/<modality>/<pid>_c<cam>_*``.

Your CSV dataset::

    python examples/custom_dataset.py --root data/my-dataset --out runs/mine

No data, no download (a synthetic CSV dataset and a tiny random CLIP; about a minute on a laptop CPU)::

    python examples/custom_dataset.py --synthetic --quick

See docs/datasets.md for every check the readers make.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

from csdn.data import (
    CSVDataset,
    Modality,
    Sample,
    TestSplit,
    TrainSplit,
    VIReIDDataset,
    open_dataset,
    register_dataset,
)
from csdn.data.synthetic import make_csv
from csdn.engine import Trainer, apply_overrides, build_csdn, get_preset
from csdn.evaluation import VIReIDEvaluator

QUICK = [
    "stage1.epochs=2", "stage2.epochs=1", "stage3.epochs=2", "stage3.warmup_epochs=1", "stage3.milestones=1",
    "runtime.progress=false",
]  # fmt: skip
_NAME = re.compile(r"^(\d+)_c(\d+)_")


@register_dataset("folders")
class FolderReader(VIReIDDataset):
    """``ROOT/{train,query,gallery}/{visible,infrared}/<pid>_c<cam>_<anything>.<ext>``; infrared queries."""

    name = "folders"

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = os.fspath(root)
        self._samples = {split: self._scan(split) for split in ("train", "query", "gallery")}

    def _scan(self, split: str) -> list[Sample]:
        samples = []
        for modality in Modality:
            folder = os.path.join(self.root, split, modality.value)
            if not os.path.isdir(folder):  # e.g. no visible queries
                continue
            for name in sorted(os.listdir(folder)):
                match = _NAME.match(name)
                if match is None:  # one clear line, as the built-in readers do
                    raise ValueError(f"folders: {os.path.join(folder, name)} is not named <pid>_c<cam>_*.")
                samples.append(Sample(os.path.join(folder, name), int(match[1]), int(match[2]), modality.value))
        return samples

    @property
    def train(self) -> TrainSplit:
        pids = sorted({s.pid for s in self._samples["train"]})
        label = {pid: i for i, pid in enumerate(pids)}
        train = [s._replace(label=label[s.pid]) for s in self._samples["train"]]
        by_mod = {m.value: [s for s in train if s.modality == m.value] for m in Modality}
        return TrainSplit(by_mod["visible"], by_mod["infrared"], num_classes=len(pids))

    def test(self, trial: int = 0) -> TestSplit:
        return TestSplit(
            query=[s for s in self._samples["query"] if s.modality == "infrared"],
            gallery=[s for s in self._samples["gallery"] if s.modality == "visible"],
            protocol="market",  # drop gallery items of the query's identity and camera; standard CMC
            query_modality="infrared",
            gallery_modality="visible",
            name="folders infrared->visible",
            trial=trial,
        )

    @property
    def trials(self) -> tuple[int, ...]:
        return (0,)

    def test_settings(self) -> list[dict]:
        return [{}]


def csv_to_folders(dataset: CSVDataset, out: Path) -> Path:
    """Copy a CSV dataset's images into FolderReader's layout (so both readers see the same data)."""
    split = dataset.test("ir2vis")
    parts = {"train": dataset.train.visible + dataset.train.infrared, "query": split.query, "gallery": split.gallery}
    for name, samples in parts.items():
        for s in samples:
            target = out / name / s.modality / f"{s.pid}_c{s.cam}_{Path(s.path).name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(s.path, target)
    return out


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

    # 2. A reader of your own, registered by name (the decorator above ran register_dataset("folders", ...)).
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
