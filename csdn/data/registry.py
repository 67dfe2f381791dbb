"""Dataset registry: open a reader by name, register your own, or guess the dataset from a root folder's layout.

Built in: ``sysu`` (:class:`~csdn.data.SYSUMM01`), ``regdb`` (:class:`~csdn.data.RegDB`), ``llcm``
(:class:`~csdn.data.LLCM`) and ``csv`` (:class:`~csdn.data.CSVDataset`). Add a reader with
:func:`register_dataset` from Python, or from an installed package through the ``csdn.datasets`` entry-point
group (``mine = "my_package.reader:MyReader"`` in its ``pyproject.toml``), which is read when a name is not
found among the registered ones; from the command line, ``--plugin MODULE`` imports a module that registers
readers without packaging it (:func:`load_plugins`). ``examples/plugin`` is such a package.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any

from .base import VIReIDDataset
from .csv_dataset import CSVDataset
from .llcm import LLCM
from .regdb import RegDB
from .sysu import SYSUMM01

__all__ = [
    "DATASETS",
    "DatasetFactory",
    "open_dataset",
    "detect_dataset",
    "register_dataset",
    "load_plugins",
    "ENTRY_POINT_GROUP",
]

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

    Registering the same factory under the same name again is a no-op, so a module may be imported by an entry
    point and by ``--plugin`` (or twice) without error.

    Raises:
        ValueError: if ``name`` is malformed or already registered to another factory (built-in names and
            aliases included).
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
    if key in DATASETS and DATASETS[key] is factory:
        return factory  # the same reader again (a module imported twice, an entry point of a decorated class)
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
            f"Unknown dataset {name!r}. Valid names are {_names()} (a reader of your own: on the command line, "
            "--plugin MODULE, a module or .py file that calls csdn.data.register_dataset, or an installed package "
            f"declaring it in the {ENTRY_POINT_GROUP!r} entry-point group; in Python, "
            "csdn.data.register_dataset(name, factory) before use; see docs/datasets.md)."
        )
    return key


def load_plugins(modules: Iterable[str]) -> None:
    """Import modules that register dataset readers (``csdn --plugin MODULE``), without packaging them.

    Each item is a module name (``my_readers``, ``pkg.readers``; the current folder is searched after
    ``sys.path``) or the path of a ``.py`` file. Importing it runs its :func:`register_dataset` calls.

    Raises:
        ValueError: naming the item when the module cannot be found or fails to import (the first line of the
            error it raised).
    """
    for spec in modules:
        try:
            _import_plugin(spec)
        except Exception as error:  # any failure of user code is one line naming the plug-in
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ValueError(
                f"--plugin {spec!r} failed to load: {reason}; pass an importable module name (on PYTHONPATH or "
                "in the current folder) or the path of a .py file that calls csdn.data.register_dataset"
            ) from error


def _import_plugin(spec: str) -> None:
    if spec.endswith(".py") or os.sep in spec or "/" in spec:
        path = os.path.abspath(spec)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no such file {path}")
        name = "csdn_plugin_" + re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
        if name in sys.modules:
            return
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise ImportError(f"cannot import {path} as a Python module")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return
    try:
        importlib.import_module(spec)
    except ModuleNotFoundError as error:
        if error.name != spec.partition(".")[0] or os.getcwd() in sys.path:
            raise
        sys.path.append(os.getcwd())  # console scripts do not search the current folder; python -m does
        importlib.import_module(spec)


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
