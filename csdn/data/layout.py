"""Layout validation shared by the dataset readers: folders, image folders, image files (split files: ``lists``).

Every check raises one clear error that names the offending file, says what was expected and how to fix it:
``FileNotFoundError`` for something missing, ``ValueError`` for something present but malformed.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence

import numpy as np

from .samples import Sample, TrainSplit

__all__ = [
    "IMAGE_EXTENSIONS",
    "require_dir",
    "require_file",
    "check_image_file",
    "list_image_dir",
    "build_train_split",
    "cam_from_relpath",
    "check_choice",
    "check_trial",
]

logger = logging.getLogger(__name__)

#: File extensions accepted as images (lower case).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
_JPEG_EOI = b"\xff\xd9"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CAM_DIR = re.compile(r"^cam(\d+)$")


def require_dir(path: str, dataset: str, hint: str) -> str:
    """Return ``path`` if it is a directory, else raise ``FileNotFoundError`` naming it and ``hint``."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{dataset}: folder {path} not found; expected {hint}.")
    return path


def require_file(path: str, dataset: str, hint: str) -> str:
    """Return ``path`` if it is a file, else raise ``FileNotFoundError`` naming it and ``hint``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{dataset}: file {path} not found; expected {hint}.")
    return path


def check_image_file(path: str, dataset: str, verify: bool = True) -> None:
    """Check that ``path`` is an image by extension and, if ``verify``, not truncated (cheap marker checks).

    JPEG must start with SOI and carry the EOI marker in its last 64 bytes; PNG must carry its signature and
    an IEND chunk; BMP must start with ``BM`` and be at least as long as its header declares.

    Raises:
        ValueError: for a non-image file or a truncated/corrupt image, naming the file.
    """
    ext = os.path.splitext(path)[1].lower()
    if ext not in IMAGE_EXTENSIONS:
        raise ValueError(
            f"{dataset}: {path} is not an image file; expected one of {', '.join(IMAGE_EXTENSIONS)}. "
            "Remove stray files from the dataset folders."
        )
    if not verify:
        return
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        head = handle.read(16)
        handle.seek(max(0, size - 64))
        tail = handle.read()
    if ext in (".jpg", ".jpeg"):
        ok = head.startswith(b"\xff\xd8") and _JPEG_EOI in tail
    elif ext == ".png":
        ok = head.startswith(_PNG_SIGNATURE) and b"IEND" in tail
    else:
        ok = head.startswith(b"BM") and len(head) >= 6 and int.from_bytes(head[2:6], "little") <= size
    if not ok:
        raise ValueError(
            f"{dataset}: {path} is a truncated or corrupt image ({size} bytes); re-extract it from the dataset archive."
        )


def list_image_dir(folder: str, dataset: str, verify: bool = True) -> list[str]:
    """Sorted file names in ``folder`` (the reference loaders' ``sorted(os.listdir(...))``), each checked."""
    names = sorted(os.listdir(folder))
    for name in names:
        full = os.path.join(folder, name)
        if os.path.isdir(full):
            raise ValueError(f"{dataset}: {full} is a folder inside an image folder; expected only image files.")
        check_image_file(full, dataset, verify=verify)
    return names


def check_choice(value: str, name: str, valid: Sequence[str]) -> str:
    """Return ``value`` if it is in ``valid``, else raise ``ValueError`` listing the valid values."""
    if value not in valid:
        raise ValueError(
            f"Unknown value {value!r} for argument {name}. Valid values are {', '.join(map(repr, valid))}."
        )
    return value


def check_trial(trial: int, valid: Sequence[int] | None = None) -> int:
    """Return ``trial`` as ``int``; it must be a non-negative integer and, if ``valid`` is given, one of them."""
    ok = not isinstance(trial, bool) and isinstance(trial, (int, np.integer)) and int(trial) >= 0
    if not ok or (valid is not None and int(trial) not in valid):
        expected = ", ".join(map(str, valid)) if valid is not None else "a non-negative integer"
        raise ValueError(f"Unknown trial {trial!r}. Valid trials are {expected}.")
    return int(trial)


def cam_from_relpath(relpath: str) -> int:
    """Camera number from the first ``camK`` component of a path relative to the dataset root, or ``-1``."""
    for part in re.split(r"[\\/]", relpath):
        match = _CAM_DIR.match(part)
        if match:
            return int(match.group(1))
    return -1


def build_train_split(visible: Iterable[tuple[str, int, int]], infrared: Iterable[tuple[str, int, int]]) -> TrainSplit:
    """Relabel ``(path, pid, cam)`` records of both modalities to ``0..C-1`` in sorted-pid order.

    Identities present in only one modality keep a label (so labels stay dense) and are logged as a warning:
    cross-modality samplers skip them.
    """
    vis, ir = list(visible), list(infrared)
    vis_pids, ir_pids = {r[1] for r in vis}, {r[1] for r in ir}
    pids = sorted(vis_pids | ir_pids)
    one_sided = sorted(vis_pids ^ ir_pids)
    if one_sided:
        logger.warning("%d training ids have images in one modality only: %s", len(one_sided), one_sided[:10])
    label = {pid: i for i, pid in enumerate(pids)}
    return TrainSplit(
        visible=_labelled(vis, label, "visible"),
        infrared=_labelled(ir, label, "infrared"),
        num_classes=len(pids),
    )


def _labelled(records: Sequence[tuple[str, int, int]], label: dict[int, int], modality: str) -> list[Sample]:
    return [Sample(path, pid, cam, modality, label[pid]) for path, pid, cam in records]
