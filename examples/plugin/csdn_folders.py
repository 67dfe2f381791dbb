"""An example csdn dataset plug-in: a reader of ``ROOT/{train,query,gallery}/{visible,infrared}/<pid>_c<cam>_*``.

Three ways to make ``--dataset folders`` work (docs/datasets.md):

* installed: ``pip install ./examples/plugin``; its ``pyproject.toml`` declares the reader in the
  ``csdn.datasets`` entry-point group, which csdn reads when a dataset name is not registered;
* not installed, from the command line: ``csdn train --plugin examples/plugin/csdn_folders.py --dataset folders
  ...`` (or ``--plugin csdn_folders`` with this folder on ``PYTHONPATH``): importing the module runs the
  ``register_dataset`` decorator below;
* from Python: ``import csdn_folders`` (the same decorator), then ``open_dataset("folders", root)``.

Both routes may meet (the entry point imports this module, whose decorator has registered the class already):
registering the same class under the same name again is a no-op.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from csdn.data import Modality, Sample, TestSplit, TrainSplit, VIReIDDataset, register_dataset

__all__ = ["FolderReader", "csv_to_folders"]

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


def csv_to_folders(dataset, out: str | os.PathLike) -> Path:
    """Copy a :class:`csdn.data.CSVDataset`'s images into this reader's layout under ``out`` (same data)."""
    out = Path(out)
    split = dataset.test("ir2vis")
    parts = {"train": dataset.train.visible + dataset.train.infrared, "query": split.query, "gallery": split.gallery}
    for name, samples in parts.items():
        for s in samples:
            target = out / name / s.modality / f"{s.pid}_c{s.cam}_{Path(s.path).name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(s.path, target)
    return out
