"""Decode once, resize once: a store of resized uint8 training images shared by the loader's processes.

:class:`ResizedImageStore` holds one ``(N, H, W, 3)`` uint8 slot per image path and a stamp per slot (the
file's modification time and size when the slot was filled). A read whose stamp matches the file returns the
slot; otherwise the image is decoded (:func:`~csdn.data.images.load_image`), resized by the given function (the
pipeline's own ``Resize``, so the pixels are those the uncached pipeline would see), stored and returned: a
changed or replaced file is re-read. The slots live

- in memory (``"memory"``): an anonymous shared mapping, so DataLoader workers started by fork fill and read the
  same slots and the images are decoded once per run, not once per worker and epoch; pages are only used
  as images are filled;
- on disk (``"disk"``): two memory-mapped files in ``cache_dir`` (by default ``.csdn_cache`` beside the
  images) named by a hash of the paths and the target size, reused by later runs (each slot still checked
  against its file's stamp).

``"auto"`` picks memory when all slots fit ``memory_budget`` bytes, else disk. Workers started by spawn reopen
disk stores and start an empty private memory store.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image

from .images import load_image

__all__ = ["CACHE_MODES", "ResizedImageStore"]

logger = logging.getLogger(__name__)

CACHE_MODES = ("auto", "memory", "disk", "off")


def _shared(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return np.frombuffer(mmap.mmap(-1, max(size, 1)), dtype=dtype, count=int(np.prod(shape))).reshape(shape)


class ResizedImageStore:
    """Resized uint8 images of a fixed list of paths (see the module notes).

    Args:
        paths: Image files, one slot each (index = position).
        height: Height of the stored images.
        width: Width of the stored images.
        resize: PIL image -> PIL image of ``(width, height)`` (e.g. the pipeline's ``v2.Resize``).
        mode: ``"auto"``, ``"memory"`` or ``"disk"``.
        memory_budget: Bytes the memory store may use (``"auto"`` goes to disk above it).
        cache_dir: Folder of the disk store (default: ``.csdn_cache`` in the images' common folder).

    Raises:
        ValueError: On an unknown mode, or when ``"memory"`` is asked for more than ``memory_budget``.
    """

    def __init__(
        self,
        paths: Sequence[str],
        height: int,
        width: int,
        resize: Callable[[PIL.Image.Image], PIL.Image.Image],
        mode: str = "auto",
        memory_budget: int = 8 << 30,
        cache_dir: str | os.PathLike | None = None,
    ) -> None:
        if mode not in CACHE_MODES[:3]:
            raise ValueError(f"Unknown value {mode!r} for argument mode. Valid values are {list(CACHE_MODES[:3])}.")
        self.paths, self.height, self.width, self.resize = [os.fspath(p) for p in paths], height, width, resize
        self.nbytes = len(self.paths) * height * width * 3
        if mode == "memory" and self.nbytes > memory_budget:
            raise ValueError(
                f"the image cache needs {self.nbytes / 2**30:.2f} GiB but data.cache_memory_gb allows "
                f"{memory_budget / 2**30:.2f} GiB; raise it or use data.image_cache=disk"
            )
        self.mode = ("memory" if self.nbytes <= memory_budget else "disk") if mode == "auto" else mode
        self.file: Path | None = None
        if self.mode == "disk":
            self.file = self._disk_file(cache_dir)
        self._open()

    def _disk_file(self, cache_dir: str | os.PathLike | None) -> Path:
        folder = Path(cache_dir) if cache_dir else Path(os.path.commonpath([os.path.dirname(p) for p in self.paths]))
        folder = folder / ".csdn_cache" if not cache_dir else folder
        key = hashlib.sha256("\n".join([f"{self.height}x{self.width}", repr(self.resize), *self.paths]).encode())
        return folder / f"resized-{self.height}x{self.width}-{key.hexdigest()[:16]}"

    def _open(self) -> None:
        shape = (len(self.paths), self.height, self.width, 3)
        if self.file is None:
            self.pixels, self.stamps = _shared(shape, np.uint8), _shared((len(self.paths), 2), np.int64)
            return
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            self.pixels = self._memmap(self.file.with_suffix(".u8"), np.uint8, shape)
            self.stamps = self._memmap(self.file.with_suffix(".stamps"), np.int64, (len(self.paths), 2))
        except OSError as error:
            raise OSError(
                f"cannot write the image cache {self.file} ({error}); set data.cache_dir to a writable folder or "
                "data.image_cache=memory"
            ) from None

    @staticmethod
    def _memmap(path: Path, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
        size = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if not path.exists() or path.stat().st_size != size:
            with open(path, "ab") as f:  # sized, never emptied (another rank may be filling it); zeros = empty slots
                f.truncate(size)
        return np.memmap(path, dtype=dtype, mode="r+", shape=shape)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:
        """The resized image of slot ``index``, uint8 ``(H, W, 3)`` (a read-only view of the store)."""
        path = self.paths[index]
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"Image {path} not found; was the dataset moved after the reader was built?"
            ) from None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if tuple(self.stamps[index]) != stamp:
            image = self.resize(load_image(path))
            if image.size != (self.width, self.height):
                raise ValueError(f"resize gave {image.size[::-1]} for {path}, expected {(self.height, self.width)}")
            self.stamps[index] = (0, 0)  # a reader never sees a stamp with half-written pixels
            self.pixels[index] = np.asarray(image)
            self.stamps[index] = stamp
        view = self.pixels[index]
        view.flags.writeable = False
        return view

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("pixels", "stamps")}
        if self.file is None:
            logger.debug("image cache pickled (spawned worker): it starts an empty private memory store")
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._open()
