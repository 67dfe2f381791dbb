"""RegDB reader: the ten standard split files -> samples, both search directions.

Layout::

    root/idx/{train,test}_{visible,thermal}_{1..10}.txt   lines '<relative image path> <label>'
    root/Visible/<id>/*.bmp, root/Thermal/<id>/*.bmp      (paths as written in the index files)
"""

from __future__ import annotations

import functools
import os

from .base import VIReIDDataset
from .layout import build_train_split, check_choice, read_index_file, require_dir
from .samples import Modality, Sample, TestSplit, TrainSplit

__all__ = ["RegDB"]

#: RegDB has no camera ids; these are used so that every Sample carries one.
VISIBLE_CAM, THERMAL_CAM = 1, 2
#: ``direction -> (query modality, gallery modality)``.
DIRECTIONS = {
    "v2t": (Modality.VISIBLE.value, Modality.INFRARED.value),
    "t2v": (Modality.INFRARED.value, Modality.VISIBLE.value),
}
_FILE_MODALITY = {Modality.VISIBLE.value: ("visible", VISIBLE_CAM), Modality.INFRARED.value: ("thermal", THERMAL_CAM)}


def _check_regdb_trial(trial) -> int:
    if isinstance(trial, bool) or not isinstance(trial, int) or trial < 1:
        raise ValueError(f"Unknown RegDB trial {trial!r}. Valid trials are 1..10 (the split file number).")
    return trial


class RegDB(VIReIDDataset):
    """RegDB (Nguyen et al., Sensors 2017) read through its standard split files.

    Trial ``t`` is split file ``t``: ``idx/train_*_t.txt`` gives the 206 training ids, ``idx/test_*_t.txt`` the
    206 test ids. ``pid`` is the label written in the index file (what the reference evaluates with); training
    labels are ``0..C-1`` in sorted-pid order. Both directions use the whole test lists, nothing is removed
    (``protocol="regdb"``, standard CMC); papers average trials 1..10, one reader per trial.

    Args:
        root: dataset folder containing ``idx/`` and the image folders named in the index files.
        trial: split file number, 1..10.
        verify_images: check every listed image for truncation when it is read (cheap marker checks).
    """

    name = "RegDB"

    def __init__(self, root: str | os.PathLike, trial: int = 1, verify_images: bool = True) -> None:
        self.root = os.fspath(root)
        self.trial = _check_regdb_trial(trial)
        self.verify_images = verify_images
        self._lists: dict[tuple[str, str, int], tuple[Sample, ...]] = {}
        require_dir(self.root, self.name, "the RegDB folder holding idx/, Visible/ and Thermal/")
        require_dir(os.path.join(self.root, "idx"), self.name, "idx/ with {train,test}_{visible,thermal}_N.txt")
        self._read("train", Modality.VISIBLE.value, self.trial)
        self._read("train", Modality.INFRARED.value, self.trial)
        self._read("test", Modality.VISIBLE.value, self.trial)
        self._read("test", Modality.INFRARED.value, self.trial)

    def _read(self, split: str, modality: str, trial: int) -> tuple[Sample, ...]:
        key = (split, modality, trial)
        if key not in self._lists:
            file_mod, cam = _FILE_MODALITY[modality]
            path = os.path.join(self.root, "idx", f"{split}_{file_mod}_{trial}.txt")
            entries = read_index_file(path, self.root, self.name, verify_images=self.verify_images)
            self._lists[key] = tuple(Sample(os.path.join(self.root, rel), lab, cam, modality) for rel, lab in entries)
        return self._lists[key]

    @functools.cached_property
    def train(self) -> TrainSplit:
        """Training lists of the reader's trial, labels ``0..C-1`` in sorted-pid order."""
        vis = self._read("train", Modality.VISIBLE.value, self.trial)
        ir = self._read("train", Modality.INFRARED.value, self.trial)
        return build_train_split([s[:3] for s in vis], [s[:3] for s in ir])

    def test(self, direction: str = "t2v", trial: int | None = None) -> TestSplit:
        """Whole test lists of one split file as query and gallery.

        Args:
            direction: ``"t2v"`` (thermal queries, visible gallery) or ``"v2t"`` (visible queries).
            trial: split file number; ``None`` means the reader's ``trial``.
        """
        check_choice(direction, "direction", tuple(DIRECTIONS))
        trial = self.trial if trial is None else _check_regdb_trial(trial)
        q_mod, g_mod = DIRECTIONS[direction]
        return TestSplit(
            query=list(self._read("test", q_mod, trial)),
            gallery=list(self._read("test", g_mod, trial)),
            protocol="regdb",
            query_modality=q_mod,
            gallery_modality=g_mod,
            name=f"regdb {'visible->thermal' if direction == 'v2t' else 'thermal->visible'}",
            trial=trial,
        )

    @property
    def trials(self) -> tuple[int, ...]:
        """Only the reader's own trial: a RegDB model is trained per split file."""
        return (self.trial,)

    def test_settings(self) -> list[dict]:
        """Visible-to-thermal and thermal-to-visible."""
        return [{"direction": "v2t"}, {"direction": "t2v"}]

    def __repr__(self) -> str:
        return f"RegDB(root={self.root!r}, trial={self.trial})"
