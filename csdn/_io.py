"""Atomic writes: the one helper behind every file csdn writes (``csdn.clip`` keeps its own, being a leaf).

A writer creates its output under a temporary name in the target's folder; only once it has finished is that
renamed over the target with ``os.replace`` (atomic on POSIX and Windows within one file system). A crash or an
exception therefore never leaves a half-written file under the final name, and an existing file there stays
intact until the new one is complete. This module imports nothing else from csdn, so every layer may use it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_text"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary path next to ``path`` for the caller to create; it replaces ``path`` on success.

    The temporary name is hidden (leading dot), unique, and keeps ``path``'s suffix, so writers that pick the
    format from the name (``Figure.savefig``, ONNX exporters) behave. The caller creates the file (or a folder)
    itself, so it gets the usual permissions (``0o666`` / ``0o777`` minus the umask). The target's folder is
    created if needed. On an exception the temporary file or folder is removed and the exception propagates.

    Example::

        with atomic_path("runs/eval.json") as tmp:
            tmp.write_text(text)

    Args:
        path: Final location.

    Yields:
        The temporary path (it does not exist yet).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_path`); returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
