"""Small helpers of the optional top-level extras (``csdn.viz``, ``csdn.export``): optional imports, atomic files."""

from __future__ import annotations

import contextlib
import importlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

__all__ = ["atomic_target", "require"]


def require(module: str, extra: str) -> ModuleType:
    """Import an optional dependency, or raise ImportError naming the pip extra that provides it.

    Example: ``plt = require("matplotlib.pyplot", "viz")``.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        raise ImportError(
            f"{top} is not installed; it comes with the {extra!r} extra: pip install 'csdn[{extra}]'"
        ) from None


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically, on error it is deleted.

    For writers that want a file name (ONNX exporters, ``Figure.savefig``): a crash never leaves a half-written
    file at ``path``, and an existing file there stays intact until the new one is complete. The temporary name
    keeps ``path``'s suffix so format-sniffing writers behave.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a fresh unique name that the writer creates itself, so the file gets the usual (umask) permissions
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{secrets.token_hex(6)}.tmp{path.suffix}")
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
