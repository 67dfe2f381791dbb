"""RegDB reader: the ten standard split files -> samples, both search directions.

Layout::

    root/idx/{train,test}_{visible,thermal}_{1..10}.txt   lines '<relative image path> <label>'
    root/Visible/<id>/*.bmp, root/Thermal/<id>/*.bmp      (paths as written in the index files)
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Iterable
from typing import Any

from .base import VIReIDDataset
from .layout import build_train_split, check_choice, require_dir
from .lists import IndexEntry, check_disjoint, check_label_folders, folder_id, read_index_file
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


_SPLIT_FILE = re.compile(r"^(train|test)_(visible|thermal)_([0-9]+)\.txt$")


def available_trials(idx: str) -> tuple[int, ...]:
    """Trials ``t`` with any ``{train,test}_{visible,thermal}_t.txt`` split file in the folder ``idx``."""
    names = os.listdir(idx) if os.path.isdir(idx) else []
    return tuple(sorted({int(m.group(3)) for m in map(_SPLIT_FILE.match, names) if m}))


def _ranges(values: tuple[int, ...]) -> str:
    """``(1, 2, 3, 5, 6)`` -> ``"1..3, 5, 6"``."""
    parts, start = [], None
    for i, value in enumerate(values):
        start = value if start is None else start
        if i + 1 == len(values) or values[i + 1] != value + 1:
            run = [str(start)] if start == value else [str(start), str(value)]
            parts.extend(run if value - start <= 1 else [f"{start}..{value}"])
            start = None
    return ", ".join(parts) or "none"


def _check_regdb_trial(trial: object, idx: str) -> int:
    """The trial as ``int`` if it is a positive integer with split files in ``idx``, else one clear error."""
    present = available_trials(idx)
    if isinstance(trial, bool) or not isinstance(trial, int) or trial < 1 or trial not in present:
        raise ValueError(
            f"Unknown RegDB trial {trial!r}: no split files idx/{{train,test}}_{{visible,thermal}}_{trial}.txt. "
            f"Valid trials are {_ranges(present)} (the split files in {idx})."
        )
    return trial


def _places(files: Iterable[tuple[str, list[IndexEntry]]], key: Callable[[str], Any]) -> dict[Any, str]:
    """``{key(relpath): "index file F line N"}`` over ``(path, entries)`` files, first occurrence, skipping ``None``."""
    out: dict[Any, str] = {}
    for path, entries in files:
        for entry in entries:
            k = key(entry.relpath)
            if k is not None:
                out.setdefault(k, f"index file {path} line {entry.line}")
    return out


class RegDB(VIReIDDataset):
    """RegDB (Nguyen et al., Sensors 2017) read through its standard split files.

    Trial ``t`` is split file ``t``: ``idx/train_*_t.txt`` gives the 206 training ids, ``idx/test_*_t.txt`` the
    206 test ids. ``pid`` is the label written in the index file (what the reference evaluates with); training
    labels are ``0..C-1`` in sorted-pid order. Both directions use the whole test lists, nothing is removed
    (``protocol="regdb"``, standard CMC); papers average trials 1..10, one reader per trial.

    Args:
        root: dataset folder containing ``idx/`` and the image folders named in the index files.
        trial: split file number, 1..10 (any trial whose four split files are in ``idx/``).
        verify_images: check every listed image for truncation when it is read (cheap marker checks).

    Raises:
        FileNotFoundError / ValueError: on a bad layout, naming the file and line: an unknown trial (the message
            lists the trials present), a malformed or repeated line, a missing or corrupt image, an identity
            folder with two labels or a label on two folders, an image or identity folder in both the train and
            the test lists of the trial.
    """

    name = "RegDB"

    def __init__(self, root: str | os.PathLike, trial: int = 1, verify_images: bool = True) -> None:
        self.root = os.fspath(root)
        self.verify_images = verify_images
        self._lists: dict[tuple[str, str, int], tuple[Sample, ...]] = {}
        require_dir(self.root, self.name, "the RegDB folder holding idx/, Visible/ and Thermal/")
        self._idx = require_dir(
            os.path.join(self.root, "idx"), self.name, "idx/ with {train,test}_{visible,thermal}_N.txt"
        )
        self.trial = _check_regdb_trial(trial, self._idx)
        self._read_trial(self.trial)

    def _read_trial(self, trial: int) -> None:
        """Read and cross-check the four split files of ``trial`` (once)."""
        if ("train", Modality.VISIBLE.value, trial) in self._lists:
            return
        entries = {}
        for split in ("train", "test"):
            for modality, (file_mod, _) in _FILE_MODALITY.items():
                path = os.path.join(self._idx, f"{split}_{file_mod}_{trial}.txt")
                if not os.path.isfile(path):
                    raise FileNotFoundError(
                        f"{self.name}: split file {path} not found; RegDB trial {trial} needs all four "
                        f"idx/{{train,test}}_{{visible,thermal}}_{trial}.txt files."
                    )
                entries[split, modality] = (path, read_index_file(path, self.root, self.name, self.verify_images))
        for split in ("train", "test"):  # labels are the identities of one split: one folder, one label
            check_label_folders([entries[split, m] for m in _FILE_MODALITY], self.name)
        for what, key in (("image", os.path.normpath), ("identity folder", folder_id)):
            train, test = (_places([entries[split, m] for m in _FILE_MODALITY], key) for split in ("train", "test"))
            check_disjoint(train, test, self.name, what=what)
        for (split, modality), (_, lines) in entries.items():
            cam = _FILE_MODALITY[modality][1]
            self._lists[split, modality, trial] = tuple(
                Sample(os.path.join(self.root, e.relpath), e.label, cam, modality) for e in lines
            )

    def _read(self, split: str, modality: str, trial: int) -> tuple[Sample, ...]:
        self._read_trial(trial)
        return self._lists[split, modality, trial]

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
        trial = self.trial if trial is None else _check_regdb_trial(trial, self._idx)
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

    def __str__(self) -> str:
        return f"RegDB at {self.root} (split {self.trial})"

    def __repr__(self) -> str:
        return f"RegDB(root={self.root!r}, trial={self.trial})"
