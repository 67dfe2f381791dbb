"""Split files of the dataset readers: id lists and index files, read strictly.

Anything a reader would otherwise drop, duplicate or contradict is one error naming the file and line: a
malformed id, an id listed twice, the same image listed twice, an identity folder with two labels, a label
shared by two identity folders, an identity in both the train and the test lists. What the public files really
contain is accepted: ids separated by commas, whitespace or newlines, a UTF-8 byte-order mark, blank lines.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from .layout import check_image_file, require_file

__all__ = ["IndexEntry", "read_id_list", "read_index_file", "check_label_folders", "check_disjoint", "folder_id"]

_SEPARATORS = re.compile(r"[,\s]+")


class IndexEntry(NamedTuple):
    """One line of an index file: ``relpath`` (relative to the dataset root), its ``label`` and 1-based ``line``."""

    relpath: str
    label: int
    line: int


def _read_lines(path: str) -> list[str]:
    # utf-8-sig drops a leading byte-order mark (files saved by Windows editors start with one).
    with open(path, encoding="utf-8-sig") as handle:
        return handle.read().splitlines()


def read_id_list(path: str, dataset: str) -> dict[int, int]:
    """Read a person-id list (SYSU ``exp/*_id.txt``, LLCM ``idx/test_id.txt``).

    Ids are non-negative integers separated by commas, whitespace or newlines (the public files hold one
    comma-separated line); blank lines and a UTF-8 byte-order mark are accepted.

    Returns:
        ``{pid: 1-based line number}`` in file order.

    Raises:
        FileNotFoundError: if the file is missing.
        ValueError: if the file lists no id, holds a non-integer token, or repeats an id (naming the lines).
    """
    require_file(path, dataset, "a list of person ids separated by commas or newlines, such as '1,2,3'")
    ids: dict[int, int] = {}
    for number, line in enumerate(_read_lines(path), start=1):
        for token in _SEPARATORS.split(line.strip()):
            if not token:
                continue
            if not token.isdigit() or not token.isascii():
                raise ValueError(
                    f"{dataset}: id list {path} line {number} has a malformed id {token!r}; expected non-negative "
                    "integers separated by commas or newlines, like '1,2,3'."
                )
            pid = int(token)
            if pid in ids:
                raise ValueError(
                    f"{dataset}: id list {path} line {number} has a duplicate id {pid} (first on line {ids[pid]}); "
                    "each id must appear once."
                )
            ids[pid] = number
    if not ids:
        raise ValueError(f"{dataset}: id list {path} is empty; expected person ids separated by commas, like '1,2,3'.")
    return ids


def read_index_file(path: str, root: str, dataset: str, verify_images: bool = True) -> list[IndexEntry]:
    """Read an index file of ``relative/path.ext label`` lines (RegDB ``idx/*.txt``, LLCM ``idx/train_*.txt``).

    Blank lines and a UTF-8 byte-order mark are accepted; every other line must be
    ``<path relative to root> <integer label>`` and name an existing image listed nowhere else in the file.

    Returns:
        One :class:`IndexEntry` per line, in file order.

    Raises:
        FileNotFoundError: if the index file or an image it names is missing.
        ValueError: on a malformed or duplicate line, an empty file, or a listed file that is not a valid image.
    """
    require_file(path, dataset, "lines of '<image path relative to the dataset root> <integer label>'")
    entries: list[IndexEntry] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not re.fullmatch(r"-?[0-9]+", parts[1]):
            raise ValueError(
                f"{dataset}: index file {path} line {number} is malformed ({line.strip()!r}); expected "
                "'<image path relative to the dataset root> <integer label>'."
            )
        relpath = parts[0]
        key = os.path.normpath(relpath)
        if key in seen:
            raise ValueError(
                f"{dataset}: index file {path} line {number} repeats {relpath} (already on line {seen[key]}); "
                "each image must be listed once."
            )
        seen[key] = number
        full = os.path.join(root, relpath)
        if not os.path.isfile(full):
            raise FileNotFoundError(
                f"{dataset}: index file {path} line {number} points to a missing image {full}; "
                "check that root is the dataset folder the index paths are relative to."
            )
        check_image_file(full, dataset, verify=verify_images)
        entries.append(IndexEntry(relpath, int(parts[1]), number))
    if not entries:
        raise ValueError(f"{dataset}: index file {path} is empty; expected '<relative image path> <label>' lines.")
    return entries


def folder_id(relpath: str) -> int | None:
    """Identity of an image from its parent folder name (``Visible/12/x.bmp`` -> 12), or ``None`` if not numeric."""
    parent = os.path.basename(os.path.dirname(os.path.normpath(relpath)))
    return int(parent) if parent.isascii() and parent.isdigit() else None


def check_label_folders(lists: Iterable[tuple[str, Sequence[IndexEntry]]], dataset: str) -> None:
    """Check that labels and identity folders correspond one to one across index files that share labels.

    Within one split (RegDB ``train_visible_t`` + ``train_thermal_t``, LLCM ``train_vis`` + ``train_nir``) the
    label is the identity: one identity folder must carry one label, and one label one identity folder. Lines whose
    parent folder is not a number are not checked.

    Args:
        lists: ``(index file path, its entries)`` pairs sharing one label space.
        dataset: dataset name used in error messages.

    Raises:
        ValueError: naming the contradicting line and the line it contradicts.
    """
    by_folder: dict[int, tuple[int, str, int]] = {}
    by_label: dict[int, tuple[int, str, int]] = {}
    for path, entries in lists:
        for entry in entries:
            folder = folder_id(entry.relpath)
            if folder is None:
                continue
            where = f"{dataset}: index file {path} line {entry.line}"
            label, first_path, first_line = by_folder.setdefault(folder, (entry.label, path, entry.line))
            if label != entry.label:
                raise ValueError(
                    f"{where} labels {entry.relpath} as {entry.label}, but identity folder {folder} has label {label} "
                    f"in {first_path} line {first_line}; one identity must have one label."
                )
            other, first_path, first_line = by_label.setdefault(entry.label, (folder, path, entry.line))
            if other != folder:
                raise ValueError(
                    f"{where} gives label {entry.label} to identity folder {folder}, but {first_path} "
                    f"line {first_line} gives it to folder {other}; one label must name one identity."
                )


def check_disjoint(
    train: Mapping[int, str], test: Mapping[int, str], dataset: str, what: str = "id", other: str = "training"
) -> None:
    """Raise if an identity is in both groups of lists (train vs test: a leak; train vs val: counted twice).

    Args:
        train: ``{identity: "file line N"}`` of the first group (the training lists).
        test: ``{identity: "file line N"}`` of the second group (the test lists).
        dataset: dataset name used in error messages.
        what: what the identity is called in the message (``"id"``, ``"identity folder"``).
        other: what the first group is called in the message.
    """
    for key, where in test.items():
        if key in train:
            raise ValueError(
                f"{dataset}: {where} lists {what} {key}, which is also a {other} {what} ({train[key]}); these lists "
                "must be disjoint (an identity in both leaks test identities into training or counts one twice)."
            )
