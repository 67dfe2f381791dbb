"""Dataset registry: open a reader by name, register your own, or guess the dataset from a root folder's layout.

Built in: ``sysu`` (:class:`~csdn.data.SYSUMM01`), ``regdb`` (:class:`~csdn.data.RegDB`), ``llcm``
(:class:`~csdn.data.LLCM`) and ``csv`` (:class:`~csdn.data.CSVDataset`). Add a reader with
:func:`register_dataset` from Python, or from an installed package through the ``csdn.datasets`` entry-point
group (``mine = "my_package.reader:MyReader"`` in its ``pyproject.toml``), which is read when a name is not
found among the registered ones.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import re
from collections.abc import Callable
from typing import Any

from .base import VIReIDDataset
from .csv_dataset import CSVDataset
from .llcm import LLCM
from .regdb import RegDB
from .sysu import SYSUMM01

__all__ = ["DATASETS", "DatasetFactory", "open_dataset", "detect_dataset", "register_dataset", "ENTRY_POINT_GROUP"]

logger = logging.getLogger(__name__)

#: Builds a reader: ``factory(root, **options) -> VIReIDDataset`` (a reader class is one).
DatasetFactory = Callable[..., VIReIDDataset]
#: Canonical name -> reader factory.
DATASETS: dict[str, DatasetFactory] = {"sysu": SYSUMM01, "regdb": RegDB, "llcm": LLCM, "csv": CSVDataset}
_ALIASES = {"sysu-mm01": "sysu", "sysumm01": "sysu", "sysu_mm01": "sysu"}
#: Entry-point group read for names that are not registered.
ENTRY_POINT_GROUP = "csdn.datasets"
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")

#: Files/folders that identify each layout (all must exist), checked in this order.
_MARKERS = {
    "sysu": ("exp/test_id.txt", "cam1", "cam3"),
    "llcm": ("idx/test_id.txt", "test_vis", "test_nir"),
    "regdb": ("idx/test_visible_1.txt", "idx/test_thermal_1.txt"),
    "csv": ("train.csv", "query.csv", "gallery.csv"),
}


def register_dataset(name: str, factory: DatasetFactory | None = None) -> Any:
    """Register a reader under ``name`` so ``open_dataset(name, root)`` (and ``--dataset name``) builds it.

    Use it as a call, ``register_dataset("mine", MyReader)``, or as a class decorator,
    ``@register_dataset("mine")``. The factory is called as ``factory(root, **options)`` and must return a
    :class:`~csdn.data.VIReIDDataset` (subclass it: ``train``, ``test(**setting, trial=t)``, ``trials``,
    ``test_settings()``).

    Args:
        name: lower-case name: letters, digits, ``_``, ``.``, ``-`` (case-insensitive when looked up).
        factory: reader class or function; omit it to get a decorator.

    Returns:
        ``factory`` (or, without it, a decorator that registers and returns the class it decorates).

    Raises:
        ValueError: if ``name`` is malformed or already registered (built-in names and aliases included).
        TypeError: if ``factory`` is not callable.
    """
    if factory is None:
        return lambda cls: register_dataset(name, cls)
    key = str(name).strip().lower()
    if not _NAME.fullmatch(key):
        raise ValueError(
            f"Invalid dataset name {name!r}; use lower-case letters, digits, '_', '.' or '-', starting with a "
            "letter or digit."
        )
    if key in DATASETS or key in _ALIASES:
        owner = DATASETS[_ALIASES.get(key, key)]
        raise ValueError(
            f"Dataset name {name!r} is already registered (to {getattr(owner, '__qualname__', owner)!r}); "
            f"choose another name. Registered names are {_names()}."
        )
    if not callable(factory):
        raise TypeError(f"register_dataset({name!r}, ...) needs a reader class or function, got {factory!r}.")
    DATASETS[key] = factory
    return factory


def _names() -> str:
    return ", ".join(map(repr, DATASETS))


def _load_entry_points() -> None:
    """Register the readers of installed packages (entry-point group ``csdn.datasets``) not registered yet."""
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        key = entry.name.strip().lower()
        if key in DATASETS or key in _ALIASES:
            continue
        try:
            factory = entry.load()
        except Exception as err:  # a broken plug-in must not hide the others; name it and go on
            logger.warning("dataset entry point %r (%s) failed to load: %s", entry.name, entry.value, err)
            continue
        register_dataset(key, factory)


def _canonical(name: str) -> str:
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        _load_entry_points()
    if key not in DATASETS:
        raise ValueError(
            f"Unknown dataset {name!r}. Valid names are {_names()} "
            "(add your own with csdn.data.register_dataset(name, factory))."
        )
    return key


def detect_dataset(root: str | os.PathLike) -> str:
    """Guess the dataset of ``root`` from its layout: ``"sysu"``, ``"llcm"``, ``"regdb"`` or ``"csv"``.

    Raises:
        FileNotFoundError: if ``root`` is not a folder.
        ValueError: if no known layout matches; the message lists what each layout needs.
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(
            f"Dataset root {root} not found; expected a SYSU-MM01, RegDB, LLCM or CSV-list dataset folder."
        )
    for name, markers in _MARKERS.items():
        if all(os.path.exists(os.path.join(root, m)) for m in markers):
            return name
    needs = "; ".join(f"{n}: {', '.join(m)}" for n, m in _MARKERS.items())
    raise ValueError(f"Cannot recognise the dataset layout of {root}; expected one of ({needs}).")


def open_dataset(name: str | None, root: str | os.PathLike, **kwargs: Any) -> VIReIDDataset:
    """Build the reader ``name`` (a registered name or alias; ``None`` = detect the layout) for ``root``.

    Args:
        name: dataset name or alias (``"sysu-mm01"``), or ``None`` to call :func:`detect_dataset`.
        root: dataset folder.
        **kwargs: reader options, e.g. ``trial=3`` for RegDB, ``protocol="llcm"`` for CSV, ``verify_images=False``.

    Raises:
        ValueError: on an unknown name (the message lists the registered names).
        TypeError: if a registered factory returns something that is not a :class:`~csdn.data.VIReIDDataset`.
    """
    key = detect_dataset(root) if name is None else _canonical(name)
    reader = DATASETS[key](root, **kwargs)
    if not isinstance(reader, VIReIDDataset):
        raise TypeError(
            f"The factory registered as dataset {key!r} returned {type(reader).__name__}, not a "
            "csdn.data.VIReIDDataset; subclass VIReIDDataset (train, test, trials, test_settings)."
        )
    return reader
