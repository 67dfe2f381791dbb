"""Common reader interface and the per-(id, camera) folder draws shared by SYSU-MM01 and LLCM.

The draws reproduce the reference loaders (AGW / CSDN ``process_query_sysu`` / ``process_gallery_sysu``,
LLCM ``process_query_llcm`` / ``process_gallery_llcm``) item for item:

- ids are visited in sorted order, cameras in the protocol's fixed list order, files in sorted name order;
- query: every image of every existing folder;
- single-shot gallery: a ``random.Random(trial)`` (same stream as ``random.seed(trial)``) makes one
  ``choice`` per existing, non-empty (id, camera) folder, in that order; the global RNG is never touched;
- multi-shot gallery (SYSU): 10 images per folder. The CSDN reference draws them with the *global* NumPy
  RNG (``np.random.choice(files, 10, replace=False)``) without seeding it per trial, so its lists are not
  reproducible. We draw exactly that call from a private ``np.random.RandomState(trial)``, i.e. what the
  reference gives after ``np.random.seed(trial)``; folders with fewer than 10 images contribute all of them
  (in drawn order).
"""

from __future__ import annotations

import abc
import os
import random
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .layout import list_image_dir
from .samples import Sample, TestSplit, TrainSplit

__all__ = ["VIReIDDataset", "FolderListing", "scan_id_folders", "query_all", "gallery_single", "gallery_multi"]

#: ``(camera folder relative to root, camera number, pid) -> sorted file names`` of existing folders.
FolderListing = dict[tuple[str, int], list[str]]


def scan_id_folders(
    root: str,
    cameras: Sequence[tuple[str, int]],
    ids: Sequence[int],
    dataset: str,
    verify: bool = True,
    allow_empty: bool = False,
) -> FolderListing:
    """List and check every existing ``root/<camera folder>/<pid:04d>`` folder.

    Args:
        root: dataset root.
        cameras: ``(camera folder relative to root, camera number)`` pairs, e.g. ``("cam3", 3)``.
        ids: person ids to look for.
        dataset: dataset name used in error messages.
        verify: also check image contents for truncation (cheap marker checks).
        allow_empty: skip empty id folders silently (LLCM) instead of raising (SYSU).

    Returns:
        ``{(camera folder, pid): sorted file names}`` for existing, non-empty folders.
    """
    listing: FolderListing = {}
    for cam_dir, _ in cameras:
        cam_root = os.path.join(root, cam_dir)
        if not os.path.isdir(cam_root):
            continue
        for pid in ids:
            folder = os.path.join(cam_root, f"{pid:04d}")
            if not os.path.isdir(folder):
                continue
            names = list_image_dir(folder, dataset, verify=verify)
            if names:
                listing[(cam_dir, pid)] = names
            elif not allow_empty:
                raise ValueError(
                    f"{dataset}: {folder} is an empty folder; expected the person's images (remove the folder "
                    "if the person was not seen by this camera)."
                )
    return listing


def _folders(
    listing: FolderListing, cameras: Sequence[tuple[str, int]], ids: Sequence[int]
) -> Iterator[tuple[str, int, int, list[str]]]:
    for pid in sorted(ids):
        for cam_dir, cam in cameras:
            names = listing.get((cam_dir, pid))
            if names:
                yield cam_dir, cam, pid, names


def _sample(root: str, cam_dir: str, cam: int, pid: int, name: str, modality: str) -> Sample:
    return Sample(os.path.join(root, cam_dir, f"{pid:04d}", name), pid, cam, modality)


def query_all(
    root: str, listing: FolderListing, cameras: Sequence[tuple[str, int]], ids: Sequence[int], modality: str
) -> list[Sample]:
    """Every image of every existing folder, in sorted-id / camera-list / sorted-file order."""
    return [
        _sample(root, cam_dir, cam, pid, name, modality)
        for cam_dir, cam, pid, names in _folders(listing, cameras, ids)
        for name in names
    ]


def gallery_single(
    root: str,
    listing: FolderListing,
    cameras: Sequence[tuple[str, int]],
    ids: Sequence[int],
    modality: str,
    trial: int,
) -> list[Sample]:
    """One ``random.Random(trial).choice`` per existing (id, camera) folder, in the reference order."""
    rng = random.Random(trial)
    return [
        _sample(root, cam_dir, cam, pid, rng.choice(names), modality)
        for cam_dir, cam, pid, names in _folders(listing, cameras, ids)
    ]


def gallery_multi(
    root: str,
    listing: FolderListing,
    cameras: Sequence[tuple[str, int]],
    ids: Sequence[int],
    modality: str,
    trial: int,
    shots: int = 10,
) -> list[Sample]:
    """``shots`` images per folder drawn by ``np.random.RandomState(trial).choice(files, shots, replace=False)``."""
    rng = np.random.RandomState(trial)
    out: list[Sample] = []
    for cam_dir, cam, pid, names in _folders(listing, cameras, ids):
        picked = rng.choice(names, min(shots, len(names)), replace=False)
        out.extend(_sample(root, cam_dir, cam, pid, str(name), modality) for name in picked)
    return out


class VIReIDDataset(abc.ABC):
    """Interface of a visible-infrared re-ID dataset reader.

    Subclasses provide ``train``, ``test(**setting, trial=t)``, ``trials`` and ``test_settings()``;
    ``stats()`` and ``describe()`` are derived from them.
    """

    #: Display name used in messages and ``describe()``.
    name: str = "dataset"
    root: str

    @property
    @abc.abstractmethod
    def train(self) -> TrainSplit:
        """Training split with labels ``0..C-1``."""

    @abc.abstractmethod
    def test(self, *args: Any, **kwargs: Any) -> TestSplit:
        """One evaluation setting for one trial."""

    @property
    @abc.abstractmethod
    def trials(self) -> tuple[int, ...]:
        """Trials a paper averages over."""

    @abc.abstractmethod
    def test_settings(self) -> list[dict]:
        """Settings a paper reports; each is passed as ``test(**setting, trial=t)``."""

    def stats(self) -> dict:
        """Split statistics: train ids/images per modality and query/gallery sizes per setting (first trial)."""
        train = self.train
        settings = []
        for setting in self.test_settings():
            split = self.test(**setting, trial=self.trials[0])
            settings.append(
                {
                    "setting": split.name,
                    "query_ids": len({s.pid for s in split.query}),
                    "query": len(split.query),
                    "gallery_ids": len({s.pid for s in split.gallery}),
                    "gallery": len(split.gallery),
                }
            )
        return {
            "name": self.name,
            "root": self.root,
            "train_ids": train.num_classes,
            "train_visible": len(train.visible),
            "train_infrared": len(train.infrared),
            "trials": list(self.trials),
            "test": settings,
        }

    def describe(self) -> str:
        """Multi-line, human-readable split statistics (what ``csdn data stats ROOT`` prints)."""
        st = self.stats()
        lines = [
            f"{st['name']} at {st['root']}",
            f"  train: {st['train_ids']} ids, {st['train_visible']} visible + {st['train_infrared']} infrared images",
            f"  trials: {', '.join(str(t) for t in st['trials'])}",
            f"  {'setting':<40} {'query ids':>9} {'queries':>8} {'gallery ids':>11} {'gallery':>8}",
        ]
        for row in st["test"]:
            lines.append(
                f"  {row['setting']:<40} {row['query_ids']:>9} {row['query']:>8} "
                f"{row['gallery_ids']:>11} {row['gallery']:>8}"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        """The dataset as people name it: ``"SYSU-MM01 at data/SYSU-MM01"`` (tables, reports, ``eval.json``)."""
        name = self.name if self.name != VIReIDDataset.name else type(self).__name__
        return f"{name} at {self.root}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={self.root!r})"
