"""SYSU-MM01 reader: raw public layout -> samples, with the standard all-search / indoor-search protocol.

Layout::

    root/exp/train_id.txt, val_id.txt, test_id.txt   person ids separated by commas (or newlines)
    root/cam1 .. cam6/<pid:04d>/*.jpg                visible cams 1, 2, 4, 5; infrared cams 3, 6
"""

from __future__ import annotations

import functools
import os

from .base import FolderListing, VIReIDDataset, gallery_multi, gallery_single, query_all, scan_id_folders
from .layout import build_train_split, check_choice, check_trial, require_dir
from .lists import check_disjoint, read_id_list
from .samples import Modality, TestSplit, TrainSplit

__all__ = ["SYSUMM01"]

VISIBLE_CAMERAS = (("cam1", 1), ("cam2", 2), ("cam4", 4), ("cam5", 5))
INFRARED_CAMERAS = (("cam3", 3), ("cam6", 6))
#: Gallery cameras per search mode (queries always come from the infrared cams 3 and 6).
GALLERY_CAMERAS = {"all": VISIBLE_CAMERAS, "indoor": (("cam1", 1), ("cam2", 2))}
SHOTS = {"single": 1, "multi": 10}


class SYSUMM01(VIReIDDataset):
    """SYSU-MM01 (Wu et al., ICCV 2017) read from its raw folder layout.

    Train = ``train_id`` ∪ ``val_id`` (395 ids), labels ``0..C-1`` in sorted-id order. Test: infrared queries
    (all images of cams 3 and 6 of the 96 test ids); visible gallery of cams 1, 2, 4, 5 (all-search) or 1, 2
    (indoor-search), one seeded image per (id, camera) folder (single-shot) or 10 (multi-shot), see
    :mod:`csdn.data.base` for the exact draw. Evaluate with ``protocol="sysu"`` (cam-3 queries ignore cam-2
    gallery items).

    Args:
        root: dataset folder containing ``exp/`` and ``cam1`` .. ``cam6``.
        verify_images: check every image for truncation when the reader is built (cheap marker checks).

    Raises:
        FileNotFoundError / ValueError: on a bad layout, naming the offending file (and line): a malformed or
            repeated id, an id in two lists (train/val/test must be disjoint), a listed id without images, an
            empty id folder, a non-image or truncated file.
    """

    name = "SYSU-MM01"

    def __init__(self, root: str | os.PathLike, verify_images: bool = True) -> None:
        self.root = os.fspath(root)
        require_dir(self.root, self.name, "the SYSU-MM01 folder holding exp/ and cam1..cam6")
        exp = require_dir(os.path.join(self.root, "exp"), self.name, "exp/ with train_id.txt, val_id.txt, test_id.txt")
        for cam_dir, _ in VISIBLE_CAMERAS + INFRARED_CAMERAS:
            require_dir(
                os.path.join(self.root, cam_dir), self.name, f"camera folder {cam_dir}/ with <pid:04d>/ folders"
            )
        lists = {
            name: read_id_list(os.path.join(exp, f"{name}_id.txt"), self.name) for name in ("train", "val", "test")
        }
        where = {
            name: {pid: f"{os.path.join(exp, f'{name}_id.txt')} line {line}" for pid, line in ids.items()}
            for name, ids in lists.items()
        }
        check_disjoint(where["train"], where["val"], self.name, other="train")
        check_disjoint({**where["train"], **where["val"]}, where["test"], self.name)
        self.train_ids = sorted([*lists["train"], *lists["val"]])
        self.test_ids = list(lists["test"])
        cameras = VISIBLE_CAMERAS + INFRARED_CAMERAS
        self._listing: FolderListing = scan_id_folders(
            self.root, cameras, sorted(set(self.train_ids) | set(self.test_ids)), self.name, verify=verify_images
        )
        seen = {pid for _, pid in self._listing}
        for name in ("train", "val", "test"):
            for pid, place in where[name].items():
                if pid not in seen:
                    raise ValueError(
                        f"{self.name}: {place} lists id {pid}, which has no images: no folder {pid:04d}/ in "
                        "cam1..cam6. Remove the id from the list or restore its images."
                    )

    @functools.cached_property
    def train(self) -> TrainSplit:
        """Train ∪ val ids: visible from cams 1, 2, 4, 5 and infrared from cams 3, 6, sorted id/cam/file order."""
        vis = query_all(self.root, self._listing, VISIBLE_CAMERAS, self.train_ids, Modality.VISIBLE.value)
        ir = query_all(self.root, self._listing, INFRARED_CAMERAS, self.train_ids, Modality.INFRARED.value)
        return build_train_split([s[:3] for s in vis], [s[:3] for s in ir])

    def test(self, mode: str = "all", shot: str = "single", trial: int = 0) -> TestSplit:
        """Infrared queries against a visible gallery.

        Args:
            mode: ``"all"`` (gallery cams 1, 2, 4, 5) or ``"indoor"`` (gallery cams 1, 2).
            shot: ``"single"`` (one image per id and camera) or ``"multi"`` (10 per id and camera).
            trial: seed of the gallery draw (papers average trials 0..9).
        """
        check_choice(mode, "mode", tuple(GALLERY_CAMERAS))
        check_choice(shot, "shot", tuple(SHOTS))
        trial = check_trial(trial)
        query = query_all(self.root, self._listing, INFRARED_CAMERAS, self.test_ids, Modality.INFRARED.value)
        draw = gallery_single if shot == "single" else gallery_multi
        gallery = draw(self.root, self._listing, GALLERY_CAMERAS[mode], self.test_ids, Modality.VISIBLE.value, trial)
        return TestSplit(
            query=query,
            gallery=gallery,
            protocol="sysu",
            query_modality=Modality.INFRARED.value,
            gallery_modality=Modality.VISIBLE.value,
            name=f"sysu {mode}-search {shot}-shot",
            trial=int(trial),
        )

    @property
    def trials(self) -> tuple[int, ...]:
        """Gallery draws 0..9 (papers report the mean)."""
        return tuple(range(10))

    def test_settings(self) -> list[dict]:
        """All-search and indoor-search, single-shot then multi-shot."""
        return [{"mode": m, "shot": s} for s in SHOTS for m in GALLERY_CAMERAS]
