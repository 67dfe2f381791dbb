"""Your own dataset as three CSV lists: ``ROOT/train.csv``, ``ROOT/query.csv`` and ``ROOT/gallery.csv``.

Layout::

    root/train.csv     path,pid,cam,modality     one row per training image
    root/query.csv     path,pid,cam,modality     one row per query image
    root/gallery.csv   path,pid,cam,modality     one row per gallery image
    root/<path>                                   the images, at paths relative to root

``pid`` and ``cam`` are non-negative integers, ``modality`` is ``visible`` or ``infrared`` (or an alias:
``rgb``; ``ir``, ``nir``, ``thermal``). Columns are separated by ``,`` or, as the header shows, by ``;``, a tab
or ``|``. Every row is checked when the reader is built; a bad row is one error naming the file, the line and
what is wrong.
"""

from __future__ import annotations

import csv
import functools
import logging
import os
import re
from pathlib import PurePosixPath, PureWindowsPath
from typing import NamedTuple, TextIO

from .._modality import modality_choices
from .._untrusted import quoted
from .base import VIReIDDataset
from .layout import build_train_split, check_choice, check_image_file, check_trial, require_dir
from .samples import PROTOCOL_NAMES, Modality, Sample, TestSplit, TrainSplit

__all__ = ["CSVDataset", "COLUMNS"]

logger = logging.getLogger(__name__)

#: Columns every list must have (in any order, nothing else).
COLUMNS = ("path", "pid", "cam", "modality")
#: Separators a list may use between its columns; the header tells which one (:func:`_delimiter`).
DELIMITERS = (",", ";", "\t", "|")
_SPLITS = ("train", "query", "gallery")
#: ``direction -> (query modality, gallery modality)``.
DIRECTIONS = {
    "ir2vis": (Modality.INFRARED.value, Modality.VISIBLE.value),
    "vis2ir": (Modality.VISIBLE.value, Modality.INFRARED.value),
}
_INTEGER = re.compile(r"[0-9]+")
_MAX_DIGITS = 18  # pids and cams become int64 tensors


class _Row(NamedTuple):
    sample: Sample
    line: int


class CSVDataset(VIReIDDataset):
    """A visible-infrared dataset described by ``train.csv``, ``query.csv`` and ``gallery.csv`` in ``root``.

    Train: every row of ``train.csv``, split by modality, labels ``0..C-1`` in sorted-pid order. Test: query
    rows of one modality searched in the gallery rows of the other, one setting per direction that has both
    (``"ir2vis"``, ``"vis2ir"``), rows in file order, with the original pids and cameras. The lists are fixed, so
    there is one trial, ``0``.

    By default evaluation uses ``protocol="market"``: gallery items of the query's identity taken by the query's
    camera are not counted (neither as matches nor as errors), standard CMC. Other rules: ``"llcm"`` (same
    removal, unique-identity CMC), ``"regdb"`` (nothing removed, standard CMC), ``"sysu"`` (SYSU-MM01's camera
    rule); see docs/protocols.md.

    Args:
        root: folder holding the three CSV files; image paths are relative to it.
        protocol: evaluation rule of the test splits.
        verify_images: check every image for truncation when the reader is built (cheap marker checks).

    Raises:
        FileNotFoundError: a missing CSV file or image, naming it (and the line).
        ValueError: naming the file and line: a bad header (missing, unknown or repeated column), a row with
            too few or too many fields, an empty value, a non-integer pid or cam, an unknown modality, an absolute
            path or one escaping ``root``, a non-image or corrupt file, an image listed twice in one file, a pid in
            both train and test lists (a leak), a query or gallery modality with nothing to search or be found by.
    """

    name = "CSV"

    def __init__(self, root: str | os.PathLike, protocol: str = "market", verify_images: bool = True) -> None:
        self.root = os.fspath(root)
        self.protocol = check_choice(protocol, "protocol", PROTOCOL_NAMES)
        require_dir(self.root, self.name, "a folder holding train.csv, query.csv and gallery.csv")
        self._rows = {split: read_csv_list(self._file(split), self.root, verify_images) for split in _SPLITS}
        self._check_leak()
        self._check_directions()

    def _file(self, split: str) -> str:
        return os.path.join(self.root, f"{split}.csv")

    def _check_leak(self) -> None:
        train: dict[int, int] = {}
        for row in self._rows["train"]:
            train.setdefault(row.sample.pid, row.line)
        for split in ("query", "gallery"):
            for row in self._rows[split]:
                if row.sample.pid in train:
                    raise ValueError(
                        f"{self.name}: {self._file(split)} line {row.line}: pid {row.sample.pid} is also a training "
                        f"identity ({self._file('train')} line {train[row.sample.pid]}); train and test identities "
                        "must be disjoint (an overlap leaks test identities into training)."
                    )

    def _modalities(self, split: str) -> dict[str, int]:
        """``{modality: first line}`` of one list."""
        out: dict[str, int] = {}
        for row in self._rows[split]:
            out.setdefault(row.sample.modality, row.line)
        return out

    def _check_directions(self) -> None:
        """Every query and gallery row must take part in a setting (none silently left out)."""
        query, gallery = self._modalities("query"), self._modalities("gallery")
        other = {q: g for q, g in DIRECTIONS.values()}
        for split, mine, theirs, side in (("query", query, gallery, "gallery"), ("gallery", gallery, query, "query")):
            for modality, line in mine.items():
                if other[modality] not in theirs:
                    raise ValueError(
                        f"{self.name}: {self._file(split)} line {line} is a {modality} {split} image, but "
                        f"{self._file(side)} has no {other[modality]} image to pair it with; queries of one modality "
                        "are searched in a gallery of the other."
                    )
        for setting in self.test_settings():
            test_split = self.test(**setting)
            found = {s.pid for s in test_split.gallery}
            unmatched = sorted({s.pid for s in test_split.query} - found)
            if unmatched:
                logger.warning(
                    "%s %s: %d query ids have no gallery image and are left out of the metrics: %s",
                    self.name, test_split.name, len(unmatched), unmatched[:10],
                )  # fmt: skip

    @functools.cached_property
    def train(self) -> TrainSplit:
        """Rows of ``train.csv`` in file order, labels ``0..C-1`` in sorted-pid order."""
        records = {
            m.value: [r.sample[:3] for r in self._rows["train"] if r.sample.modality == m.value] for m in Modality
        }
        return build_train_split(records[Modality.VISIBLE.value], records[Modality.INFRARED.value])

    def test(self, direction: str = "ir2vis", trial: int = 0) -> TestSplit:
        """Query rows of one modality against gallery rows of the other.

        Args:
            direction: ``"ir2vis"`` (infrared queries, visible gallery) or ``"vis2ir"``.
            trial: only ``0`` (the lists are fixed).
        """
        check_choice(direction, "direction", tuple(DIRECTIONS))
        trial = check_trial(trial, self.trials)
        q_mod, g_mod = DIRECTIONS[direction]
        return TestSplit(
            query=[r.sample for r in self._rows["query"] if r.sample.modality == q_mod],
            gallery=[r.sample for r in self._rows["gallery"] if r.sample.modality == g_mod],
            protocol=self.protocol,
            query_modality=q_mod,
            gallery_modality=g_mod,
            name=f"csv {q_mod}->{g_mod}",
            trial=trial,
        )

    @property
    def trials(self) -> tuple[int, ...]:
        """One trial: the lists are fixed."""
        return (0,)

    def test_settings(self) -> list[dict]:
        """The directions whose query modality appears in ``query.csv`` (``"ir2vis"`` first)."""
        query = self._modalities("query")
        return [{"direction": d} for d, (q_mod, _) in DIRECTIONS.items() if q_mod in query]

    def __repr__(self) -> str:
        return f"CSVDataset(root={self.root!r}, protocol={self.protocol!r})"


def read_csv_list(path: str, root: str, verify_images: bool = True, dataset: str = "CSV") -> list[_Row]:
    """Read and check one ``path,pid,cam,modality`` list (UTF-8, an optional byte-order mark, blank lines skipped).

    Returns:
        One ``(Sample, line)`` per row in file order; ``Sample.path`` is ``root`` joined with the row's path.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{dataset}: file {path} not found; expected a CSV list with header {','.join(COLUMNS)}."
        )
    rows: list[_Row] = []
    seen: dict[str, int] = {}
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter=_delimiter(handle), strict=True)
            columns = None
            for fields in reader:
                if not any(f.strip() for f in fields):
                    continue
                where = f"{dataset}: {path} line {reader.line_num}"
                if columns is None:
                    columns = _header(fields, where)
                    continue
                values = _fields(fields, columns, where)
                sample = _sample(values, root, where, verify_images)
                key = os.path.normpath(values["path"])
                if key in seen:
                    raise ValueError(
                        f"{where}: {quoted(values['path'])} is already listed on line {seen[key]}; list each image "
                        "once."
                    )
                seen[key] = reader.line_num
                rows.append(_Row(sample, reader.line_num))
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{dataset}: {path} is not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8."
        ) from None
    except csv.Error as err:
        raise ValueError(f"{dataset}: {path} is not a valid CSV file ({err}).") from None
    if not rows:
        raise ValueError(
            f"{dataset}: {path} lists no image; expected a header {','.join(COLUMNS)} and one row per image."
        )
    return rows


def _delimiter(handle: TextIO) -> str:
    """The separator of a list: the one of :data:`DELIMITERS` that splits its header into the four column names
    (``,`` when none does; the header check then names the problem). Leaves ``handle`` at the start."""
    header = next((line for line in handle if line.strip()), "")
    handle.seek(0)
    for delimiter in DELIMITERS:
        fields = next(csv.reader([header], delimiter=delimiter), [])
        if sorted(f.strip().lower() for f in fields) == sorted(COLUMNS):
            return delimiter
    return ","


def _header(fields: list[str], where: str) -> list[str]:
    columns = [f.strip().lower() for f in fields]
    expected = ",".join(COLUMNS)
    for name in columns:
        if name not in COLUMNS:
            separators = " or ".join(repr(d) for d in DELIMITERS)
            raise ValueError(
                f"{where}: bad header, unknown column {quoted(name, 80)}; expected the columns {expected}, "
                f"separated by {separators} (the same one on every line)."
            )
        if columns.count(name) > 1:
            raise ValueError(f"{where}: bad header, column {name!r} appears twice; expected the columns {expected}.")
    missing = [name for name in COLUMNS if name not in columns]
    if missing:
        raise ValueError(f"{where}: bad header, missing column {missing[0]!r}; expected the columns {expected}.")
    return columns


def _fields(fields: list[str], columns: list[str], where: str) -> dict[str, str]:
    if len(fields) > len(columns):
        raise ValueError(f"{where}: {len(fields)} fields but the header has {len(columns)} ({','.join(columns)}).")
    if len(fields) < len(columns):
        raise ValueError(f"{where}: missing column {columns[len(fields)]!r} (the header has {','.join(columns)}).")
    values = {name: value.strip() for name, value in zip(columns, fields, strict=True)}
    for name in COLUMNS:
        if not values[name]:
            raise ValueError(f"{where}: column {name!r} is empty.")
    return values


def _sample(values: dict[str, str], root: str, where: str, verify_images: bool) -> Sample:
    for name in ("pid", "cam"):
        if len(values[name]) > _MAX_DIGITS:
            raise ValueError(
                f"{where}: {name} has {len(values[name])} digits; identities and cameras are integers of at most "
                f"{_MAX_DIGITS} digits."
            )
        if not _INTEGER.fullmatch(values[name]):
            raise ValueError(f"{where}: {name} {quoted(values[name], 80)} is not a non-negative integer.")
    try:
        modality = Modality.parse(values["modality"]).value
    except ValueError:
        raise ValueError(
            f"{where}: unknown modality {quoted(values['modality'], 80)}; expected {modality_choices()}."
        ) from None
    rel = values["path"]
    if PurePosixPath(rel).is_absolute() or PureWindowsPath(rel).is_absolute() or PureWindowsPath(rel).drive:
        raise ValueError(f"{where}: path {quoted(rel)} is absolute; write it relative to the dataset root {root}.")
    norm = os.path.normpath(rel.replace("\\", "/"))  # lexical: ".." components, either separator
    if norm == os.pardir or norm.startswith(os.pardir + os.sep):
        raise ValueError(f"{where}: path {quoted(rel)} escapes the dataset root {root}; images must be inside it.")
    full = os.path.join(root, rel)
    if not os.path.isfile(full):
        raise FileNotFoundError(f"{where}: image {full} not found; paths are relative to the dataset root {root}.")
    try:
        check_image_file(full, "CSV", verify=verify_images)
    except ValueError as err:
        raise ValueError(f"{where}: {str(err).removeprefix('CSV: ')}") from None
    return Sample(full, int(values["pid"]), int(values["cam"]), modality)
