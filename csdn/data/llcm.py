"""LLCM reader: raw public layout -> samples, with both search directions of the standard protocol.

Layout::

    root/idx/train_vis.txt, train_nir.txt   lines '<image path relative to root> <label>'
    root/idx/test_id.txt                    person ids separated by commas (or newlines)
    root/test_vis/cam1..cam9/<pid:04d>/*     visible test images
    root/test_nir/cam1,cam2,cam4..cam9/<pid:04d>/*   near-infrared test images (no cam3)
"""

from __future__ import annotations

import functools
import logging
import os

from .base import FolderListing, VIReIDDataset, gallery_single, query_all, scan_id_folders
from .layout import build_train_split, cam_from_relpath, check_choice, check_trial, require_dir
from .lists import check_label_folders, read_id_list, read_index_file
from .samples import Modality, TestSplit, TrainSplit

__all__ = ["LLCM"]

logger = logging.getLogger(__name__)

VISIBLE_CAMERAS = tuple((f"test_vis/cam{k}", k) for k in range(1, 10))
INFRARED_CAMERAS = tuple((f"test_nir/cam{k}", k) for k in (1, 2, 4, 5, 6, 7, 8, 9))
_CAMERAS = {Modality.VISIBLE.value: VISIBLE_CAMERAS, Modality.INFRARED.value: INFRARED_CAMERAS}
#: ``direction -> (query modality, gallery modality)``.
DIRECTIONS = {
    "ir2vis": (Modality.INFRARED.value, Modality.VISIBLE.value),
    "vis2ir": (Modality.VISIBLE.value, Modality.INFRARED.value),
}


class LLCM(VIReIDDataset):
    """LLCM (Zhang & Wang, CVPR 2023) read from its raw folder layout.

    Train: ``idx/train_vis.txt`` / ``idx/train_nir.txt`` (``pid`` = the label in the file, camera parsed from the
    ``camK`` folder of the relative path, ``-1`` if absent); labels ``0..C-1`` in sorted-pid order.
    Test: queries = every image of the query modality's cameras; gallery = one ``random.Random(trial).choice``
    per existing (id, camera) folder of the other modality, in sorted-id / camera-list / sorted-file order.
    Evaluate with ``protocol="llcm"`` (drop same pid and same camera). Camera folders or id folders that are
    missing or empty are skipped silently, as the dataset has them; a test id with no image at all is an error.
    The train lists must give one label per identity folder (``.../<pid:04d>/...``) across both files, and each
    image once.

    Args:
        root: dataset folder containing ``idx/``, ``test_vis/`` and ``test_nir/``.
        verify_images: check every image for truncation when the reader is built (cheap marker checks).
    """

    name = "LLCM"

    def __init__(self, root: str | os.PathLike, verify_images: bool = True) -> None:
        self.root = os.fspath(root)
        self.verify_images = verify_images
        require_dir(self.root, self.name, "the LLCM folder holding idx/, test_vis/ and test_nir/")
        idx = require_dir(
            os.path.join(self.root, "idx"), self.name, "idx/ with train_vis.txt, train_nir.txt, test_id.txt"
        )
        for sub in ("test_vis", "test_nir"):
            require_dir(os.path.join(self.root, sub), self.name, f"{sub}/ with camK/<pid:04d>/ folders")
        files = {mod: os.path.join(idx, f"train_{tag}.txt") for mod, tag in (("visible", "vis"), ("infrared", "nir"))}
        self._train_lists = {
            mod: read_index_file(path, self.root, self.name, verify_images) for mod, path in files.items()
        }
        check_label_folders([(files[mod], lines) for mod, lines in self._train_lists.items()], self.name)
        id_file = os.path.join(idx, "test_id.txt")
        test_ids = read_id_list(id_file, self.name)
        self.test_ids = list(test_ids)
        cameras = VISIBLE_CAMERAS + INFRARED_CAMERAS
        missing = [c for c, _ in cameras if not os.path.isdir(os.path.join(self.root, c))]
        if missing:
            logger.debug("LLCM: camera folders absent (skipped): %s", missing)
        self._listing: FolderListing = scan_id_folders(
            self.root, cameras, self.test_ids, self.name, verify=verify_images, allow_empty=True
        )
        seen = {pid for _, pid in self._listing}
        for pid, line in test_ids.items():
            if pid not in seen:
                raise ValueError(
                    f"{self.name}: id list {id_file} line {line} lists id {pid}, which has no test images:"
                    f" no non-empty {pid:04d}/ in test_vis/camK or test_nir/camK; remove the id or restore its images."
                )

    @functools.cached_property
    def train(self) -> TrainSplit:
        """Training lists in file order, labels ``0..C-1`` in sorted-pid order."""
        vis, ir = (
            [(os.path.join(self.root, e.relpath), e.label, cam_from_relpath(e.relpath)) for e in self._train_lists[mod]]
            for mod in (Modality.VISIBLE.value, Modality.INFRARED.value)
        )
        return build_train_split(vis, ir)

    def test(self, direction: str = "ir2vis", trial: int = 0) -> TestSplit:
        """One search direction for one gallery draw.

        Args:
            direction: ``"ir2vis"`` (infrared queries, visible gallery) or ``"vis2ir"``.
            trial: seed of the gallery draw (papers average trials 0..9).
        """
        check_choice(direction, "direction", tuple(DIRECTIONS))
        trial = check_trial(trial)
        q_mod, g_mod = DIRECTIONS[direction]
        return TestSplit(
            query=query_all(self.root, self._listing, _CAMERAS[q_mod], self.test_ids, q_mod),
            gallery=gallery_single(self.root, self._listing, _CAMERAS[g_mod], self.test_ids, g_mod, trial),
            protocol="llcm",
            query_modality=q_mod,
            gallery_modality=g_mod,
            name=f"llcm {'infrared->visible' if direction == 'ir2vis' else 'visible->infrared'}",
            trial=trial,
        )

    @property
    def trials(self) -> tuple[int, ...]:
        """Gallery draws 0..9 (papers report the mean)."""
        return tuple(range(10))

    def test_settings(self) -> list[dict]:
        """Infrared-to-visible and visible-to-infrared."""
        return [{"direction": "ir2vis"}, {"direction": "vis2ir"}]
