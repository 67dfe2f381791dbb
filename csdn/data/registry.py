"""Dataset registry: open a reader by name, or guess the dataset from a root folder's layout."""

from __future__ import annotations

import os

from .base import VIReIDDataset
from .llcm import LLCM
from .regdb import RegDB
from .sysu import SYSUMM01

__all__ = ["DATASETS", "open_dataset", "detect_dataset"]

#: Canonical name -> reader class.
DATASETS: dict[str, type[VIReIDDataset]] = {"sysu": SYSUMM01, "regdb": RegDB, "llcm": LLCM}
_ALIASES = {"sysu-mm01": "sysu", "sysumm01": "sysu", "sysu_mm01": "sysu"}

#: Files/folders that identify each layout (all must exist), checked in this order.
_MARKERS = {
    "sysu": ("exp/test_id.txt", "cam1", "cam3"),
    "llcm": ("idx/test_id.txt", "test_vis", "test_nir"),
    "regdb": ("idx/test_visible_1.txt", "idx/test_thermal_1.txt"),
}


def _canonical(name: str) -> str:
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}. Valid names are {', '.join(map(repr, DATASETS))}.")
    return key


def detect_dataset(root: str | os.PathLike) -> str:
    """Guess the dataset of ``root`` from its layout: ``"sysu"``, ``"llcm"`` or ``"regdb"``.

    Raises:
        FileNotFoundError: if ``root`` is not a folder.
        ValueError: if no known layout matches; the message lists what each layout needs.
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"Dataset root {root} not found; expected a SYSU-MM01, RegDB or LLCM folder.")
    for name, markers in _MARKERS.items():
        if all(os.path.exists(os.path.join(root, m)) for m in markers):
            return name
    needs = "; ".join(f"{n}: {', '.join(m)}" for n, m in _MARKERS.items())
    raise ValueError(f"Cannot recognise the dataset layout of {root}; expected one of ({needs}).")


def open_dataset(name: str | None, root: str | os.PathLike, **kwargs) -> VIReIDDataset:
    """Build the reader ``name`` (``"sysu"``, ``"regdb"``, ``"llcm"``; ``None`` = detect) for ``root``.

    Args:
        name: dataset name or alias (``"sysu-mm01"``), or ``None`` to call :func:`detect_dataset`.
        root: dataset folder.
        **kwargs: reader options, e.g. ``trial=3`` for RegDB, ``verify_images=False``.
    """
    key = detect_dataset(root) if name is None else _canonical(name)
    return DATASETS[key](root, **kwargs)
